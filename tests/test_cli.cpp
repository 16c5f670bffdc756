// cli::run against small in-memory components: grammar, exit codes, progress
// lines, error reports, and that no argv can make it throw or crash. Every case
// runs against both kinds of stack (tests/support/kinds.hpp): cli::run is
// compiled once over the engine's view, so the two must print the same.
#include "support/kinds.hpp"

#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using stackup::State;
namespace cli = stackup::cli;

// What the fake components act on: one state per role, a journal of actions,
// and the action (e.g. "deployer.resume") that should fail.
struct World {
  // `-p` runs independent components' actions on several threads at once.
  mutable std::mutex mutex;
  std::map<std::string, State, std::less<>> states;
  std::vector<std::string> calls;
  std::string fail;             // "role.action" that throws a nested std::runtime_error
  std::string fail_foreign;     // "role.action" that throws an int
  std::string fail_query;       // role whose is_running() throws
  std::string fail_bare;        // "role.action" that throws a TransitionError with no cause, two lines
  std::filesystem::path log;    // the log file of the components that keep one
};

template <class Self> struct Fake : stackup::StackComponent<Self> {
  explicit Fake(World& w) : world(&w) {}
  World* world;

  [[nodiscard]] State get() const {
    const std::lock_guard lock(world->mutex);
    auto it = world->states.find(Self::role);
    return it == world->states.end() ? State::deprovisioned : it->second;
  }
  [[nodiscard]] bool is_provisioned() const { return get() != State::deprovisioned; }
  [[nodiscard]] bool is_running() const {
    if (world->fail_query == Self::role) throw std::runtime_error(std::string(Self::role) + ": pid file is garbage");
    return get() == State::running;
  }

protected:
  void act(std::string_view action, State to) {
    const std::string key = std::string(Self::role) + "." + std::string(action);
    {
      const std::lock_guard lock(world->mutex);
      world->calls.push_back(key);
    }
    if (world->fail_foreign == key) throw 42;
    if (world->fail_bare == key)  // made outside any catch: its nested_ptr() is null
      throw stackup::TransitionError(std::string(Self::role), stackup::Transition::resume, "exited early; log:\n  boom");
    if (world->fail == key) {
      try {
        throw std::system_error(std::make_error_code(std::errc::connection_refused), "GET /health");
      } catch (...) {
        std::throw_with_nested(std::runtime_error(key + ": did not become ready"));
      }
    }
    const std::lock_guard lock(world->mutex);
    world->states[std::string(Self::role)] = to;
  }
};

// A directory-like component: provision/deprovision only, running = provisioned.
struct Store : Fake<Store> {
  using Fake::Fake;
  static constexpr std::string_view role = "store";
  [[nodiscard]] bool is_running() const { return is_provisioned(); }
  void provision() { act("provision", State::running); }
  void deprovision() { act("deprovision", State::deprovisioned); }
};
// A daemon-like component with all four actions and a log.
template <class Self> struct Daemonish : Fake<Self> {
  using Fake<Self>::Fake;
  void provision() { this->act("provision", State::suspended); }
  void resume() { this->act("resume", State::running); }
  void suspend() { this->act("suspend", State::suspended); }
  void deprovision() { this->act("deprovision", State::deprovisioned); }
  [[nodiscard]] std::filesystem::path log_file() const { return this->world->log; }
  [[nodiscard]] std::string detail() const { return this->is_running() ? "pid 4242" : ""; }
};
struct Orch : Daemonish<Orch> {
  using Daemonish::Daemonish;
  static constexpr std::string_view role = "orch";
  static constexpr std::string_view flavor = "fake_daemon";
  [[nodiscard]] std::string_view name() const { return "web"; }
};
struct Deployer : Daemonish<Deployer> {
  using Daemonish::Daemonish;
  static constexpr std::string_view role = "deployer";
  static constexpr std::string_view depends_on[] = {"store", "orch"};
};
// All four actions, no log.
struct Tracker : Fake<Tracker> {
  using Fake::Fake;
  static constexpr std::string_view role = "tracker";
  void provision() { act("provision", State::suspended); }
  void resume() { act("resume", State::running); }
  void suspend() { act("suspend", State::suspended); }
  void deprovision() { act("deprovision", State::deprovisioned); }
};

template <class K> struct Fixture {
  World world;
  kinds::StackOf<K, Store, Orch, Deployer, Tracker> stack =
      kinds::make_from<K>("demo", Store{world}, Orch{world}, Deployer{world}, Tracker{world});
  std::filesystem::path dir;

  Fixture() {
    static int counter = 0;
    dir = std::filesystem::temp_directory_path() /
          ("stackup-test-cli-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(dir);
    world.log = dir / "daemon.log";
  }
  ~Fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  struct Result {
    int code;
    std::string out, err;
  };
  Result run(std::vector<std::string_view> words, cli::Options options = {.program = "t"}) {
    std::ostringstream out, err;
    const int code = cli::run(stack, std::span<const std::string_view>(words), out, err, options);
    return {code, out.str(), err.str()};
  }
  void set_all(State s) {
    for (auto r : kinds::roles(stack)) world.states[std::string(r)] = s;
    world.states["store"] = s == State::suspended ? State::running : s; // a directory has no "suspended"
  }
};

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// Masks timings so whole outputs can be compared.
std::string masked(std::string s) {
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i])) || (i > 0 && std::isdigit(static_cast<unsigned char>(s[i - 1]))))
      continue;
    std::size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j + 3 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[j + 2])) && s[j + 3] == 's')
      s.replace(i, j + 4 - i, "T");
  }
  return s;
}

} // namespace

TEST_CASE_TEMPLATE("cli: stack up prints one line per action start and end, then a summary", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  auto r = f.run({"stack", "up"});
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(f.stack.is_running());
  CHECK(masked(r.out) == "- store 'store' provisioning ...\n"
                         "+ store 'store' provisioned  T\n"
                         "- orch 'web' provisioning ...\n"
                         "+ orch 'web' provisioned  T\n"
                         "- deployer 'deployer' provisioning ...\n"
                         "+ deployer 'deployer' provisioned  T\n"
                         "- tracker 'tracker' provisioning ...\n"
                         "+ tracker 'tracker' provisioned  T\n"
                         "= store 'store' already running\n"
                         "- orch 'web' resuming ...\n"
                         "+ orch 'web' resumed  T\n"
                         "- deployer 'deployer' resuming ...\n"
                         "+ deployer 'deployer' resumed  T\n"
                         "- tracker 'tracker' resuming ...\n"
                         "+ tracker 'tracker' resumed  T\n"
                         "stack 'demo' is up  T\n");

  SUBCASE("a second up does nothing and says so") {
    f.world.calls.clear();
    r = f.run({"stack", "up"});
    CHECK(r.code == 0);
    CHECK(f.world.calls.empty());
    CHECK(contains(r.out, "= orch 'web' already running\n"));
    CHECK(contains(r.out, "stack 'demo' is already running: nothing to do\n"));
  }
}

TEST_CASE_TEMPLATE("cli: stack down stops, skips what cannot suspend and says why; --force removes", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  f.set_all(State::running);
  auto r = f.run({"stack", "down"});
  CHECK(r.code == 0);
  CHECK(f.world.states["orch"] == State::suspended);
  CHECK(f.world.states["store"] == State::running);
  CHECK(contains(r.out, "o store 'store' suspend skipped: not implemented; use force (--force) to deprovision\n"));
  CHECK(contains(r.out, "+ deployer 'deployer' suspended  "));
  CHECK(contains(masked(r.out), "stack 'demo' is down  T\n"));
  // Reverse order: the deployer stops before what it depends on.
  CHECK(r.out.find("deployer 'deployer' suspended") < r.out.find("orch 'web' suspended"));

  SUBCASE("down again: nothing to stop") {
    f.world.calls.clear();
    r = f.run({"stack", "down"});
    CHECK(r.code == 0);
    CHECK(f.world.calls.empty());
    CHECK(contains(r.out, "= orch 'web' not running\n"));
    CHECK(contains(r.out, "stack 'demo': nothing to stop\n"));
  }
}

TEST_CASE_TEMPLATE("cli: stack down --force and -f deprovision everything; again: nothing to remove", K, kinds::Typed,
                   kinds::Dynamic) {
  for (std::string_view flag : {"--force", "-f", "-fp", "-pf"}) {
    CAPTURE(flag);
    Fixture<K> f;
    f.set_all(State::running);
    auto r = f.run({"stack", "down", flag});
    CHECK(r.code == 0);
    for (auto role : kinds::roles(f.stack)) CHECK(f.world.states[std::string(role)] == State::deprovisioned);
    CHECK(contains(masked(r.out), "stack 'demo' is down and deprovisioned  T\n"));
    CHECK(contains(r.out, "+ store 'store' deprovisioned  "));
    f.world.calls.clear();
    r = f.run({"stack", "down", "--force"});
    CHECK(r.code == 0);
    CHECK(f.world.calls.empty());
    CHECK(contains(r.out, "stack 'demo': nothing to remove\n"));
  }
}

TEST_CASE_TEMPLATE("cli: status works fully down and half up, and changes nothing", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  auto r = f.run({"stack", "status"});
  CHECK(r.code == 0);
  CHECK(f.world.calls.empty());
  CHECK(r.out == "ROLE      NAME      FLAVOR       STATE          DETAIL\n"
                 "store     store     custom       deprovisioned\n"
                 "orch      web       fake_daemon  deprovisioned\n"
                 "deployer  deployer  custom       deprovisioned\n"
                 "tracker   tracker   custom       deprovisioned\n"
                 "stack 'demo': 0 of 4 running, 0 provisioned\n");
  f.world.states["store"] = State::running;
  f.world.states["orch"] = State::running;
  f.world.states["tracker"] = State::suspended;
  r = f.run({"stack", "status"});
  CHECK(r.code == 0);
  CHECK(f.world.calls.empty());
  CHECK(contains(r.out, "orch      web       fake_daemon  running        pid 4242\n"));
  CHECK(contains(r.out, "tracker   tracker   custom       suspended\n"));
  CHECK(contains(r.out, "stack 'demo': 2 of 4 running, 3 provisioned\n"));

  r = f.run({"orch", "status"});
  CHECK(r.code == 0);
  CHECK(r.out == "ROLE  NAME  FLAVOR       STATE          DETAIL\n"
                 "orch  web   fake_daemon  running        pid 4242\n");
}

TEST_CASE_TEMPLATE("cli: status --json is the status as JSON, one object per component", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  f.world.states["orch"] = State::running;
  auto r = f.run({"stack", "status", "--json"});
  CHECK(r.code == 0);
  CHECK(f.world.calls.empty());
  CHECK(r.out == "[\n"
                 "  {\"role\": \"store\", \"name\": \"store\", \"flavor\": \"custom\", \"state\": \"deprovisioned\", \"detail\": \"\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true},\n"
                 "  {\"role\": \"orch\", \"name\": \"web\", \"flavor\": \"fake_daemon\", \"state\": \"running\", \"detail\": \"pid 4242\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true},\n"
                 "  {\"role\": \"deployer\", \"name\": \"deployer\", \"flavor\": \"custom\", \"state\": \"deprovisioned\", \"detail\": \"\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true},\n"
                 "  {\"role\": \"tracker\", \"name\": \"tracker\", \"flavor\": \"custom\", \"state\": \"deprovisioned\", \"detail\": \"\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true}\n"
                 "]\n");
  r = f.run({"orch", "status", "--json"});
  CHECK(r.out == "[\n  {\"role\": \"orch\", \"name\": \"web\", \"flavor\": \"fake_daemon\", \"state\": \"running\", \"detail\": \"pid 4242\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true}\n]\n");
  CHECK(f.run({"stack", "up", "--json"}).code == 2);
}

TEST_CASE_TEMPLATE("cli: status reports a query that throws as a failure, exit 1", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  f.world.fail_query = "orch";
  auto r = f.run({"stack", "status"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "error: status failed\n  orch: pid file is garbage\n");
}

TEST_CASE_TEMPLATE("cli: <role> up brings its dependencies up first and says so", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  auto r = f.run({"deployer", "up"});
  CHECK(r.code == 0);
  CHECK(f.world.calls == std::vector<std::string>{"store.provision", "orch.provision", "orch.resume",
                                                  "deployer.provision", "deployer.resume"});
  CHECK(r.out.starts_with("* deployer needs store, orch: they come up first\n"));
  CHECK(contains(masked(r.out), "deployer 'deployer' is up  T\n"));
  CHECK(f.world.states["tracker"] == State::deprovisioned);

  f.world.states["orch"] = State::suspended;
  r = f.run({"deployer", "up"});
  CHECK(r.out.starts_with("* deployer needs orch: it comes up first\n")); // only what is not running yet

  r = f.run({"orch", "up", "-p"});
  CHECK(r.code == 0);
  CHECK(r.out == "= orch 'web' already running\norch 'web' is already running: nothing to do\n");
}

TEST_CASE_TEMPLATE("cli: <role> down takes its dependents down first and says so", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  f.set_all(State::running);
  auto r = f.run({"orch", "down"});
  CHECK(r.code == 0);
  CHECK(f.world.calls == std::vector<std::string>{"deployer.suspend", "orch.suspend"});
  CHECK(r.out.starts_with("* deployer depends on orch: it goes down first\n"));
  CHECK(contains(masked(r.out), "orch 'web' is down  T\n"));

  r = f.run({"orch", "down"});
  CHECK(r.code == 0);
  CHECK(r.out == "= deployer 'deployer' not running\n= orch 'web' not running\norch 'web': nothing to stop\n");

  f.world.calls.clear();
  r = f.run({"store", "down", "--force"});
  CHECK(r.code == 0);
  CHECK(f.world.calls == std::vector<std::string>{"deployer.deprovision", "store.deprovision"});
  CHECK(r.out.starts_with("* deployer depends on store: it goes down first\n"));
  CHECK(f.world.states["orch"] == State::suspended);
  CHECK(f.world.states["tracker"] == State::running);
}

TEST_CASE_TEMPLATE("cli: <role> down of a component that cannot suspend fails and suggests --force", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  f.set_all(State::running);
  auto r = f.run({"store", "down"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "error: store down failed\n"));
  CHECK(contains(r.err, "--force"));
  CHECK(f.world.states["store"] == State::running);
}

TEST_CASE_TEMPLATE("cli: a failed up prints the error, each nested cause and what the rollback did", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  f.world.fail = "deployer.resume";
  auto r = f.run({"stack", "up"});
  CHECK(r.code == 1);
  CHECK(contains(r.out, "x deployer 'deployer' resume failed  "));
  CHECK(contains(r.out, "~ orch 'web' suspended (rollback)  "));
  CHECK(contains(r.out, "~ store 'store' deprovisioned (rollback)  "));
  const std::vector<std::string_view> lines{
      "error: stack up failed\n",
      "  stackup: stack 'demo' up failed: deployer 'deployer' failed to resume: deployer.resume: did not become ready",
      "    caused by: deployer.resume: did not become ready\n",
      "      caused by: GET /health: Connection refused\n",
      "rollback: undid the 5 actions this command had done; the stack is as it was before\n"};
  std::size_t at = 0;
  for (auto line : lines) {
    CAPTURE(line);
    const auto found = r.err.find(line, at);
    if (found == std::string::npos) MESSAGE(r.out, r.err);
    REQUIRE(found != std::string::npos);
    at = found;
  }
  for (auto role : kinds::roles(f.stack)) CHECK(f.world.states[std::string(role)] == State::deprovisioned);

  SUBCASE("--no-rollback leaves the partial state and says so") {
    r = f.run({"stack", "up", "--no-rollback"});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "rollback: off (--no-rollback)"));
    CHECK(f.world.states["orch"] == State::running);
    CHECK(f.world.states["deployer"] == State::suspended);
  }
  SUBCASE("a rollback that fails is listed") {
    f.world.fail = "orch.resume";
    f.world.fail_foreign = "store.deprovision";
    r = f.run({"stack", "up"});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "rollback: undid 3 actions, but could not undo:\n"));
    CHECK(contains(r.err, "  - store deprovision: rollback: unknown exception (not derived from std::exception)\n"));
  }
}

TEST_CASE_TEMPLATE("cli: a cause that is a nested_exception without a cause, and a multi-line message", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  f.world.fail_bare = "orch.resume";
  auto r = f.run({"orch", "up"});
  CHECK(r.code == 1); // std::rethrow_if_nested on it would have called std::terminate
  CHECK(contains(r.err, "  stackup: stack 'demo' up failed: orch 'web' failed to resume: exited early; log:\n    boom"));
  CHECK(contains(r.err, "\n    caused by: exited early; log:\n      boom\n"));
  CHECK(contains(r.err, "rollback: undid the 1 action this command had done"));
}

TEST_CASE_TEMPLATE("cli: a failed down lists every failure and still tries every component", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  f.set_all(State::running);
  f.world.fail = "deployer.suspend";
  f.world.fail_foreign = "tracker.suspend";
  auto r = f.run({"stack", "down"});
  CHECK(r.code == 1);
  CHECK(f.world.states["orch"] == State::suspended);
  CHECK(contains(r.err, "error: stack down failed\n"));
  CHECK(contains(r.err, "2 components failed (every other component was still tried):\n"));
  CHECK(contains(r.err, "  - tracker suspend: unknown exception (not derived from std::exception)\n"));
  CHECK(contains(r.err, "  - deployer suspend: deployer.suspend: did not become ready\n"));
}

TEST_CASE_TEMPLATE("cli: logs prints the component's log, --tail N its last lines", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  auto r = f.run({"orch", "logs"});
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "t: orch 'web' has no log yet: "));
  {
    std::ofstream(f.world.log) << "one\ntwo\nthree\nfour\n";
  }
  r = f.run({"orch", "logs"});
  CHECK(r.code == 0);
  CHECK(r.out == "one\ntwo\nthree\nfour\n");
  CHECK(f.run({"orch", "logs", "--tail", "2"}).out == "three\nfour\n");
  CHECK(f.run({"orch", "logs", "-n", "1"}).out == "four\n");
  CHECK(f.run({"orch", "logs", "-n1"}).out == "four\n"); // a short option's value in the same word
  CHECK(f.run({"orch", "logs", "--tail=3"}).out == "two\nthree\nfour\n");
  CHECK(f.run({"orch", "logs", "--tail", "0"}).out.empty());
  CHECK(f.run({"orch", "logs", "--tail", "99"}).out == "one\ntwo\nthree\nfour\n");
  {
    std::ofstream(f.world.log) << "a\n\nb"; // no final newline, an empty line
  }
  CHECK(f.run({"deployer", "logs", "--tail", "1"}).out == "b");
  CHECK(f.run({"deployer", "logs", "--tail", "2"}).out == "\nb");
  {
    std::ofstream big(f.world.log);
    for (int i = 0; i < 50000; ++i) big << "line " << i << '\n'; // larger than one read chunk
  }
  CHECK(f.run({"orch", "logs", "--tail", "2"}).out == "line 49998\nline 49999\n");
  CHECK(f.run({"orch", "logs"}).out.size() == std::filesystem::file_size(f.world.log));
}

TEST_CASE_TEMPLATE("cli: bad command lines exit 2 with a message that names the problem, and the usage", K,
                   kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  struct Case {
    std::vector<std::string_view> words;
    std::string_view message;
  };
  const std::vector<Case> cases{
      {{}, "error: missing command\n"},
      {{"bogus", "up"}, "error: unknown component role 'bogus'; valid roles: store, orch, deployer, tracker (or 'stack' for all of them)\n"},
      {{"stack", "sideways"}, "error: unknown command 'sideways' for 'stack'; expected one of: up, down, status, logs\n"},
      {{"orch", "sideways"}, "error: unknown command 'sideways' for 'orch'; expected one of: up, down, status, logs\n"},
      {{"stack"}, "error: missing command after 'stack'; expected one of: up, down, status, logs\n"},
      {{"orch"}, "error: missing command after 'orch'; expected one of: up, down, status, logs\n"},
      {{"stack", "up", "--force"}, "error: unknown option '--force' for 'stack up'; valid options: --parallel (-p), --no-rollback, "
                                   "--attach (-a), --no-prefix, --timestamps, --abort-on-exit\n"},
      {{"orch", "up", "-a"}, "error: unknown option '-a' for 'orch up'; valid options: --parallel (-p), --no-rollback\n"},
      {{"stack", "up", "--no-prefix"}, "error: option '--no-prefix' is for 'stack up --attach': add --attach (-a)\n"},
      {{"stack", "up", "-p", "--timestamps"}, "error: option '--timestamps' is for 'stack up --attach': add --attach (-a)\n"},
      {{"stack", "up", "--abort-on-exit"}, "error: option '--abort-on-exit' is for 'stack up --attach': add --attach (-a)\n"},
      {{"stack", "down", "--bogus"}, "error: unknown option '--bogus' for 'stack down'; valid options: --force (-f), --parallel (-p)\n"},
      {{"stack", "down", "-x"}, "error: unknown option '-x' for 'stack down'; valid options: --force (-f), --parallel (-p)\n"},
      {{"stack", "down", "-fx"}, "error: unknown option '-x' for 'stack down'"},
      {{"stack", "status", "-p"}, "error: unknown option '-p' for 'stack status'; valid options: --json\n"},
      {{"stack", "up", "now"}, "error: unexpected argument 'now' after 'stack up'\n"},
      {{"orch", "down", "--force", "extra"}, "error: unexpected argument 'extra' after 'orch down'\n"},
      {{"--bogus"}, "error: unknown option '--bogus'; valid options before the command: --help (-h), --version, "
                    "--completion SHELL\n"},
      {{"orch", "logs", "--tail"}, "error: option '--tail' needs a number of lines, e.g. '--tail 20'\n"},
      {{"orch", "logs", "--tail", "ten"}, "error: option '--tail' needs a whole number of lines (0 or more), not 'ten'\n"},
      {{"orch", "logs", "--tail", "-3"}, "not '-3'\n"},
      {{"orch", "logs", "--tail", "5x"}, "not '5x'\n"},
      {{"orch", "logs", "--tail="}, "not ''\n"},
      {{"orch", "logs", "--tail", "99999999999999999999999"}, "option '--tail' got '99999999999999999999999' lines: too large (at most 18446744073709551615)\n"},
      {{"orch", "logs", "--tail", "-1"}, "needs a whole number of lines (0 or more), not '-1'\n"},
      {{"orch", "logs", "--force"}, "error: unknown option '--force' for 'orch logs'; valid options: --tail N (-n N), --follow\n"},
      {{"tracker", "logs"}, "error: tracker 'tracker' (custom) keeps no log; components with a log: orch, deployer\n"},
      {{"stack", "logs", "--tail", "x"}, "error: option '--tail' needs a whole number of lines (0 or more), not 'x'\n"},
      {{"stack", "logs", "--force"}, "error: unknown option '--force' for 'stack logs'; valid options: --tail N (-n N), "
                                     "--follow, --no-prefix, --timestamps\n"},
      {{"orch", "logs", "--no-prefix"}, "error: unknown option '--no-prefix' for 'orch logs'; valid options: --tail N (-n N), --follow\n"},
      {{"orch", "logs", "--timestamps"}, "error: unknown option '--timestamps' for 'orch logs'"},
      {{""}, "error: unknown component role ''"},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (auto w : c.words) joined += std::string(w) + " ";
    CAPTURE(joined);
    const auto r = f.run(c.words);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.starts_with("error: "));
    CHECK(contains(r.err, c.message));
    CHECK(contains(r.err, "usage: t <stack|role> <command> [options]\n"));
    CHECK(contains(r.err, "run 't --help' for the roles and options\n"));
  }
  CHECK(f.world.calls.empty());
}

TEST_CASE_TEMPLATE("cli: --help anywhere shows the help on the output stream, exit 0", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  for (auto words : std::vector<std::vector<std::string_view>>{
           {"--help"}, {"-h"}, {"help"}, {"stack", "--help"}, {"orch", "down", "--help"}, {"bogus", "--help"},
           {"stack", "up", "--bogus", "-h"}}) {
    const auto r = f.run(words);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.starts_with("usage: t <stack|role> <command> [options]\n"));
    CHECK(contains(r.out, "roles of stack 'demo':\n"
                          "  store     custom\n"
                          "  orch      fake_daemon\n"
                          "  deployer  custom       needs store, orch\n"
                          "  tracker   custom\n"));
    CHECK(contains(r.out, "exit status: 0 done"));
  }
  CHECK(f.world.calls.empty());

  const auto r = f.run({"--help"}, {.program = "ctl", .host_synopsis = "[--state-dir DIR]",
                                    .host_help = "  --state-dir DIR where state lives"});
  CHECK(r.out.starts_with("usage: ctl [--state-dir DIR] <stack|role> <command> [options]\n"));
  CHECK(contains(r.out, "  --state-dir DIR where state lives\n"));
}

TEST_CASE_TEMPLATE("cli: a host's own verb (Options::verbs) is parsed, listed, completed and run like the library's",
                   K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  std::vector<std::string> seen;
  const std::vector<cli::VerbSpec> verbs{
      {.name = "greet",
       .scope = cli::Scope::both,
       .options = {{.name = "loud", .letter = 'l', .help = "shout"},
                   {.name = "times", .letter = 't', .value = "N", .help = "say it N times", .needs = "a count",
                    .example = "3"}},
       .help = "say hello to the stack",
       .role_help = "say hello to one component",
       .run = [&seen](const cli::Invocation& inv) {
         seen.push_back(fmt::format("{} {} {} {} loud={} times={}", inv.program, inv.whole_stack ? "stack" : inv.role,
                                    inv.index, inv.verb, inv.has("loud"), inv.value("times").value_or("-")));
         inv.out << "hello\n";
         return inv.role == "deployer" ? cli::exit_failure : cli::exit_success;
       }},
      {.name = "boom", .scope = cli::Scope::stack, .help = "throws",
       .run = [](const cli::Invocation&) -> int { throw std::runtime_error("it broke"); }},
      {.name = "ping", .scope = cli::Scope::role, .help = "ping a component with a log",
       .run = [](const cli::Invocation&) { return 0; },
       .check = [](const cli::Invocation& inv) -> std::optional<std::string> {
         if (inv.role == "orch" || inv.role == "deployer") return std::nullopt;
         return fmt::format("{} cannot be pinged", inv.role);
       }},
  };
  const cli::Options options{.program = "t", .verbs = verbs};

  auto r = f.run({"stack", "greet"}, options);
  CHECK(r.code == 0);
  CHECK(r.out == "hello\n");
  for (auto words : std::vector<std::vector<std::string_view>>{{"orch", "greet", "-lt3"},
                                                                {"orch", "greet", "--times=3", "--loud"},
                                                                {"orch", "greet", "-l", "--times", "3"},
                                                                {"orch", "greet", "-t", "3", "-l"},
                                                                {"orch", "greet", "-lt", "3"}})
    CHECK(f.run(words, options).code == 0);
  CHECK(f.run({"deployer", "greet"}, options).code == cli::exit_failure); // the handler's exit status
  CHECK(seen == std::vector<std::string>{"t stack 0 greet loud=false times=-", "t orch 1 greet loud=true times=3",
                                         "t orch 1 greet loud=true times=3", "t orch 1 greet loud=true times=3",
                                         "t orch 1 greet loud=true times=3", "t orch 1 greet loud=true times=3",
                                         "t deployer 2 greet loud=false times=-"});
  seen.clear();

  struct Case {
    std::vector<std::string_view> words;
    std::string_view message;
  };
  for (const auto& c : std::vector<Case>{
           {{"orch", "greet", "-t"}, "error: option '-t' needs a count, e.g. '-t 3'\n"},
           {{"orch", "greet", "--times"}, "error: option '--times' needs a count, e.g. '--times 3'\n"},
           {{"orch", "greet", "--loud=yes"}, "error: option '--loud' takes no value, not 'yes'\n"},
           {{"orch", "greet", "-x"}, "error: unknown option '-x' for 'orch greet'; valid options: --loud (-l), --times N (-t N)\n"},
           {{"stack", "bogus"}, "error: unknown command 'bogus' for 'stack'; expected one of: up, down, status, logs, greet, boom\n"},
           {{"orch", "bogus"}, "error: unknown command 'bogus' for 'orch'; expected one of: up, down, status, logs, greet, ping\n"},
           {{"orch", "boom"}, "error: 'orch boom' is not a command: 'boom' is for the whole stack; try 'stack boom'\n"},
           {{"stack", "ping"}, "error: 'stack ping' is not a command: 'ping' is for one component at a time; try "
                               "'<role> ping' with one of: orch, deployer\n"},
           {{"store", "ping"}, "error: store cannot be pinged\n"},
           {{"stack", "boom", "-f"}, "error: unknown option '-f' for 'stack boom': it takes no options\n"},
           {{"stack", "boom", "now"}, "error: unexpected argument 'now' after 'stack boom'\n"},
       }) {
    CAPTURE(c.message);
    r = f.run(c.words, options);
    CHECK(r.code == cli::exit_usage);
    CHECK(r.err.starts_with(c.message));
    CHECK(contains(r.err, "  stack greet [-l] [--times N]        say hello to the stack\n"));
  }
  CHECK(seen.empty());

  r = f.run({"stack", "boom"}, options);
  CHECK(r.code == cli::exit_failure);
  CHECK(r.err == "error: stack boom failed: it broke\n");

  r = f.run({"--help"}, options);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "  stack status [--json]               show every component's state (changes nothing)\n"
                        "  stack logs [--tail N] [--follow] [--no-prefix] [--timestamps]\n"
                        "                                      print every component's log, merged, each line after its role\n"
                        "  stack greet [-l] [--times N]        say hello to the stack\n"
                        "  stack boom                          throws\n"
                        "  <role> up [-p] [--no-rollback]      bring one component up, its dependencies first\n"));
  CHECK(contains(r.out, "  <role> greet [-l] [--times N]       say hello to one component\n"
                        "  <role> ping                         ping a component with a log\n"
                        "  --help                              show the roles and options\n"));
  CHECK(contains(r.out, "  -l, --loud       greet: shout\n"
                        "  -t, --times N    greet: say it N times\n"));
  CHECK(f.world.calls.empty());

  r = f.run({"--completion", "bash"}, options);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "      stack) words='up down status logs greet boom' ;;\n"
                        "      role) words='up down status logs greet ping' ;;\n"));
  CHECK(contains(r.out, "      'role greet') words='-h --help --loud -l --times -t' ;;\n"));
  CHECK(contains(r.out, "      'role greet') valued='--times -t' ;;\n"));
  CHECK(contains(r.out, "      'stack logs') words='-h --help --tail -n --follow --no-prefix --timestamps' ;;\n"));
  CHECK(contains(r.out, "      'role logs') words='-h --help --tail -n --follow' ;;\n"));
  CHECK(r.out.ends_with("complete -F _t t\n"));
}

TEST_CASE_TEMPLATE("cli: --version prints the program's name and version, the library's unless the host names its own",
                   K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  const std::string version =
      fmt::format("{}.{}.{}", STACKUP_VERSION_MAJOR, STACKUP_VERSION_MINOR, STACKUP_VERSION_PATCH);
  CHECK(version == "0.2.0");
  auto r = f.run({"--version"});
  CHECK(r.code == 0);
  CHECK(r.out == "t " + version + "\n");
  CHECK(r.err.empty());
  r = f.run({"--version"}, {.program = "ctl", .version = "3.1.4"});
  CHECK(r.out == "ctl 3.1.4\n");
  r = f.run({"--version", "now"});
  CHECK(r.code == cli::exit_usage);
  CHECK(r.err.starts_with("error: unexpected argument 'now' after '--version'\n"));
  r = f.run({"stack", "up", "--version"}); // before the command only
  CHECK(r.code == cli::exit_usage);
  CHECK(contains(r.err, "unknown option '--version' for 'stack up'"));
  r = f.run({"--completion"});
  CHECK(r.code == cli::exit_usage);
  CHECK(r.err.starts_with("error: option '--completion' needs a shell, e.g. '--completion bash'\n"));
  r = f.run({"--completion=zsh"});
  CHECK(r.err.starts_with("error: option '--completion' knows only 'bash', not 'zsh'\n"));
  CHECK(f.run({"--completion=bash"}).code == 0);
  CHECK(contains(f.run({"--help"}).out, "  --version        print the program's name and version\n"));
  CHECK(f.world.calls.empty());
}

TEST_CASE_TEMPLATE("cli: 'stack roles' lists the roles, one a line, for scripts; it is in no usage", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  const auto r = f.run({"stack", "roles"});
  CHECK(r.code == 0);
  CHECK(r.out == "store\norch\ndeployer\ntracker\n");
  CHECK(!contains(f.run({"--help"}).out, "roles\n  "));
  CHECK(!contains(f.run({"--help"}).out, "stack roles"));
  CHECK(!contains(f.run({"--completion", "bash"}).out, "roles'"));
  CHECK(f.run({"orch", "roles"}).code == cli::exit_usage);
}

TEST_CASE("cli: run_without_stack answers --help (no roles), --version, --completion and unknown options; "
          "nothing for the rest") {
  const std::vector<cli::VerbSpec> verbs{{.name = "config", .help = "print the config", .run = {}}};
  const cli::Options options{.program = "ctl", .verbs = verbs};
  const auto run = [&options](std::vector<std::string_view> words) {
    std::ostringstream out, err;
    const auto code = cli::run_without_stack(words, out, err, options);
    return std::tuple{code, out.str(), err.str()};
  };
  auto [code, out, err] = run({"--help"});
  CHECK(code == 0);
  CHECK(out.starts_with("usage: ctl <stack|role> <command> [options]\n"));
  CHECK(contains(out, "  stack config                        print the config\n"));
  CHECK(!contains(out, "roles of stack"));
  std::tie(code, out, err) = run({"stack", "up", "-h"});
  CHECK(code == 0);
  std::tie(code, out, err) = run({"--version"});
  CHECK(code == 0);
  CHECK(out == "ctl 0.2.0\n");
  std::tie(code, out, err) = run({"--completion", "bash"});
  CHECK(code == 0);
  CHECK(contains(out, "complete -F _ctl ctl\n"));
  std::tie(code, out, err) = run({"--bogus"});
  CHECK(code == cli::exit_usage);
  CHECK(err.starts_with("error: unknown option '--bogus'"));
  for (auto words : std::vector<std::vector<std::string_view>>{{}, {"stack", "up"}, {"orch", "logs"}, {"stack", "config"}})
    CHECK(!std::get<0>(run(words)));
}

TEST_CASE_TEMPLATE("cli: colour and symbols only when asked, plain ASCII otherwise", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  auto plain = f.run({"stack", "up"});
  CHECK(std::all_of(plain.out.begin(), plain.out.end(), [](char c) { return static_cast<unsigned char>(c) < 128; }));
  f.run({"stack", "down", "--force"});
  auto fancy = f.run({"stack", "up"}, {.color = cli::Color::always});
  CHECK(fancy.code == 0);
  CHECK(contains(fancy.out, "\x1b["));
  CHECK(contains(fancy.out, "✔"));
  fancy = f.run({"stack", "down"}, {.color = cli::Color::always});
  CHECK(contains(fancy.out, "\x1b[1mstore\x1b[0m 'store' suspend skipped: not implemented; use force (--force) to deprovision"));
  CHECK(contains(fancy.out, "not implemented; use force (--force) to deprovision"));
  // Streams other than std::cout / std::cerr are never taken for terminals.
  auto automatic = f.run({"stack", "status"}, {.color = cli::Color::automatic});
  CHECK(!contains(automatic.out, "\x1b["));
}

TEST_CASE_TEMPLATE("cli: run() leaves no observer behind", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  {
    std::ostringstream out, err;
    std::vector<std::string_view> words{"stack", "up"};
    CHECK(cli::run(f.stack, std::span<const std::string_view>(words), out, err) == 0);
  } // out and err are gone: an observer still writing to them would crash below
  f.stack.down({.force = true});
  CHECK(!f.stack.is_provisioned());
}

TEST_CASE_TEMPLATE("cli: main's argc/argv, including argc 0 and a null argv", K, kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  std::ostringstream out, err;
  std::string prog = "/usr/local/bin/ctl", stack = "stack", up = "up";
  char* argv[] = {prog.data(), stack.data(), up.data(), nullptr};
  CHECK(cli::run(f.stack, 3, argv, out, err) == 0);
  CHECK(f.stack.is_running());
  CHECK(cli::run(f.stack, 1, argv, out, err) == 2);
  CHECK(contains(err.str(), "run 'ctl --help'"));
  CHECK(cli::run(f.stack, 0, nullptr, out, err) == 2);
  CHECK(cli::run(f.stack, 5, argv, out, err) == 0); // stops at the terminating null
  CHECK(cli::run(f.stack, -1, argv, out, err) == 2);
}

TEST_CASE_TEMPLATE("cli: no command line makes run() throw, crash or act wrongly", K, kinds::Typed, kinds::Dynamic) {
  // Every sequence of up to three words from a vocabulary of valid and invalid
  // words: the exit code is always 0, 1 or 2, and usage errors change nothing.
  const std::vector<std::string_view> vocabulary{"stack", "orch", "tracker", "up",     "down", "status", "logs",
                                                 "--force", "-f", "-p",     "--tail", "3",    "x",      "",
                                                 "--",      "-", "--tail=", "-n"};
  Fixture<K> f;
  std::size_t runs = 0;
  for (std::size_t n = 0; n <= 3; ++n) {
    std::vector<std::size_t> pick(n, 0);
    while (true) {
      std::vector<std::string_view> words;
      for (auto i : pick) words.push_back(vocabulary[i]);
      const auto calls = f.world.calls.size();
      const auto r = f.run(words);
      ++runs;
      CHECK((r.code == 0 || r.code == 1 || r.code == 2));
      if (r.code == 2) CHECK(f.world.calls.size() == calls);
      std::size_t k = 0;
      while (k < n && ++pick[k] == vocabulary.size()) pick[k++] = 0;
      if (k == n) break;
    }
  }
  CHECK(runs == 1 + 18 + 18 * 18 + 18 * 18 * 18);
}

namespace {
// ZenML's defaults: always provisioned, always running, no actions at all.
struct Fixed : stackup::StackComponent<Fixed> {
  static constexpr std::string_view role = "fixed";
};
} // namespace

TEST_CASE_TEMPLATE("cli: a skipped action says what the user can do about it", K, kinds::Typed, kinds::Dynamic) {
  World world;
  auto stack = kinds::make_from<K>("s", Fixed{}, Store{world});
  world.states["store"] = State::running;
  auto run = [&](std::vector<std::string_view> words) {
    std::ostringstream out, err;
    const int code = cli::run(stack, std::span<const std::string_view>(words), out, err);
    CHECK(code == 0);
    return out.str();
  };
  std::string out = run({"stack", "down"});
  CHECK(contains(out, "o store 'store' suspend skipped: not implemented; use force (--force) to deprovision\n"));
  CHECK(contains(out, "o fixed 'fixed' suspend skipped: not implemented; it keeps running\n"));
  out = run({"stack", "down", "--force"});
  CHECK(contains(out, "o store 'store' suspend skipped: not implemented; deprovision follows\n"));
  CHECK(contains(out, "o fixed 'fixed' suspend skipped: not implemented; it keeps running\n"));
  CHECK(contains(out, "o fixed 'fixed' deprovision skipped: not implemented; left in place\n"));
  CHECK(world.states["store"] == State::deprovisioned);
}

namespace {
// A directory for the follow tests, removed at the end.
struct FollowDir {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("stackup-test-follow-" + std::to_string(::getpid()));
  FollowDir() { std::filesystem::create_directories(dir); }
  ~FollowDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  FollowDir(const FollowDir&) = delete;
  FollowDir& operator=(const FollowDir&) = delete;
};
void put(const std::filesystem::path& file, std::string_view text, std::ios::openmode mode = std::ios::app) {
  std::ofstream(file, std::ios::binary | mode) << text;
}
void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
} // namespace

TEST_CASE("cli follow: a log removed and made anew (re-provisioned) is read from its start, "
          "even when the new one gets the old one's inode number") {
  FollowDir d;
  const auto log = d.dir / "daemon.log";
  put(log, "old 1\nold 2\n");
  std::ostringstream out;
  std::stop_source stop;
  std::jthread follower([&] { cli::detail::follow(log, 12, out, stop.get_token()); });
  pause_ms(300);
  // Removed and created again between two looks, as a quick 'down --force; up' does:
  // a file system that reuses inode numbers may give the new log the old one's.
  const auto inode = [&] {
    struct ::stat st {};
    return ::stat(log.c_str(), &st) == 0 ? st.st_ino : ::ino_t{0};
  };
  const auto old_inode = inode();
  for (int i = 0; i < 100; ++i) { // empty until it has the old number, if the file system gives it back
    std::filesystem::remove(log);
    put(log, "");
    if (inode() == old_inode) break;
  }
  if (inode() != old_inode) MESSAGE("the new log got another inode number: only the plain replacement is checked");
  put(log, "new daemon, its first line\n");
  pause_ms(300);
  put(log, "second\n");
  pause_ms(300);
  stop.request_stop();
  follower.join();
  CHECK(out.str() == "new daemon, its first line\nsecond\n");
}

TEST_CASE("cli follow: a log that appears later, and one truncated, are read from their start") {
  FollowDir d;
  const auto log = d.dir / "daemon.log";
  std::ostringstream out;
  std::stop_source stop;
  std::jthread follower([&] { cli::detail::follow(log, 0, out, stop.get_token()); });
  pause_ms(250);
  put(log, "a longer first line\n");
  pause_ms(250);
  put(log, "x\n", std::ios::trunc);
  pause_ms(250);
  stop.request_stop();
  follower.join();
  CHECK(out.str() == "a longer first line\nx\n");
}

TEST_CASE("cli follow: ends when its output fails (a closed pipe with SIGPIPE ignored), not only when stopped") {
  FollowDir d;
  const auto log = d.dir / "daemon.log";
  put(log, "line\n");
  std::ostream closed(nullptr); // every write fails, as on a pipe whose reader is gone
  std::stop_source stop;
  std::atomic<bool> returned = false;
  std::jthread follower([&] {
    cli::detail::follow(log, 0, closed, stop.get_token());
    returned = true;
  });
  for (int i = 0; i < 50 && !returned; ++i) pause_ms(20);
  CHECK(returned);
  stop.request_stop();
}

namespace {
// Feeds `text` to a LineSplitter in the chunks `cuts` marks; the lines it gives, each ended with '\n'.
std::string split_lines(std::string_view text, const std::vector<std::size_t>& cuts, std::size_t longest,
                        bool flush) {
  cli::detail::LineSplitter lines(longest);
  std::string got;
  const auto line = [&got](std::string_view l) {
    got += l;
    got += '\n';
  };
  std::size_t at = 0;
  for (const std::size_t cut : cuts) {
    lines.feed(text.substr(at, cut - at), line);
    at = cut;
  }
  lines.feed(text.substr(at), line);
  if (flush) lines.flush(line);
  return got;
}
} // namespace

TEST_CASE("cli merge: chunks cut anywhere give whole lines, each once; an unfinished one waits") {
  const std::string text = "one\n\ntwo two\nthree three three\nfour";
  // Every way to cut it in two and in three pieces.
  for (std::size_t i = 0; i <= text.size(); ++i)
    for (std::size_t j = i; j <= text.size(); ++j) {
      CAPTURE(i);
      CAPTURE(j);
      CHECK(split_lines(text, {i, j}, 1 << 20, false) == "one\n\ntwo two\nthree three three\n");
      CHECK(split_lines(text, {i, j}, 1 << 20, true) == "one\n\ntwo two\nthree three three\nfour\n");
    }
  // One byte at a time.
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i < text.size(); ++i) bytes.push_back(i);
  CHECK(split_lines(text, bytes, 1 << 20, false) == "one\n\ntwo two\nthree three three\n");
  // A line longer than the longest kept is given in pieces, nothing lost.
  CHECK(split_lines("abcdefghij\nxy\n", {3, 6, 9}, 4, false) == "abcdef\nghij\nxy\n");
  cli::detail::LineSplitter lines;
  std::vector<std::string> got;
  lines.feed("half", [&](std::string_view l) { got.emplace_back(l); });
  CHECK(got.empty());
  CHECK(lines.pending() == 4);
  lines.feed(" and the rest\nnext", [&](std::string_view l) { got.emplace_back(l); });
  CHECK(got == std::vector<std::string>{"half and the rest"});
  CHECK(lines.pending() == 4);
}

TEST_CASE("cli merge: where the last N lines start; a colour per role, the same every time") {
  FollowDir d;
  const auto log = d.dir / "tail.log";
  const auto start = [&](std::string_view text, std::size_t n, bool follow) {
    put(log, text, std::ios::trunc);
    const int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
    const auto at = cli::detail::MergedLogs::tail_start(fd, text.size(), n, follow);
    ::close(fd);
    return at;
  };
  CHECK(start("a\nb\nc\n", 1, false) == 4);
  CHECK(start("a\nb\nc\n", 2, false) == 2);
  CHECK(start("a\nb\nc\n", 9, false) == 0);
  CHECK(start("a\nb\nc\n", 0, false) == 6);
  CHECK(start("a\nb\nc\n", 0, true) == 6);
  CHECK(start("a\nb\nc", 1, false) == 4); // an unfinished last line counts as one
  CHECK(start("a\nb\nc", 0, true) == 4);  // following from the end: that line is not cut
  CHECK(start("a\nb\nc", 0, false) == 5);
  CHECK(start("", 3, true) == 0);
  std::string big;
  for (int i = 0; i < 30000; ++i) big += "line " + std::to_string(i) + '\n'; // more than one read
  CHECK(start(big, 2, false) == big.size() - std::string("line 29998\nline 29999\n").size());
  CHECK(cli::detail::role_color("web") == cli::detail::role_color("web"));
  std::set<fmt::terminal_color> colours;
  for (const auto* role : {"a", "b", "c", "d", "e", "f", "g", "h", "web", "db", "cache", "worker"})
    colours.insert(cli::detail::role_color(role));
  CHECK(colours.size() > 1);
  CHECK(cli::detail::rfc3339_ms(std::chrono::system_clock::time_point(std::chrono::milliseconds(1796672931123))) ==
        "2026-12-07T19:48:51.123Z");
}

TEST_CASE_TEMPLATE("cli: stack logs merges every log, each line after its role, in the stack's order", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f; // orch and deployer keep a log (the same file here)
  auto r = f.run({"stack", "logs"});
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "t: orch has no log yet: "));
  CHECK(contains(r.err, "t: deployer has no log yet: "));
  put(f.world.log, "one\ntwo\nthree", std::ios::trunc);
  r = f.run({"stack", "logs"});
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(r.out == "orch | one\norch | two\norch | three\ndeployer | one\ndeployer | two\ndeployer | three\n");
  CHECK(f.run({"stack", "logs", "--tail", "1"}).out == "orch | three\ndeployer | three\n");
  CHECK(f.run({"stack", "logs", "-n2", "--no-prefix"}).out == "two\nthree\ntwo\nthree\n");
  CHECK(f.run({"stack", "logs", "--tail=0"}).out.empty());
  r = f.run({"stack", "logs", "--timestamps", "-n", "1"});
  REQUIRE(r.out.size() > 25);
  CHECK(r.out[4] == '-');
  CHECK(r.out[10] == 'T');
  CHECK(r.out[19] == '.'); // milliseconds
  CHECK(std::isdigit(static_cast<unsigned char>(r.out[22])));
  CHECK(r.out.substr(23, 14) == "Z orch | three");
  CHECK(!contains(f.run({"stack", "logs"}).out, "\x1b"));
  r = f.run({"stack", "logs"}, {.program = "t", .color = cli::Color::always});
  const std::string orch = stackup::detail::styled("orch |", fmt::fg(cli::detail::role_color("orch")));
  CHECK(contains(r.out, orch + " one\n"));
  // Not a regular file: said, and the others still shown; exit 1.
  std::filesystem::remove(f.world.log);
  REQUIRE(::mkfifo(f.world.log.c_str(), 0600) == 0);
  r = f.run({"stack", "logs"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "it is not a regular file"));
}

TEST_CASE("cli merge: following gives each whole line once, across halves, replacement and truncation") {
  FollowDir d;
  const auto a = d.dir / "a.log", b = d.dir / "sub" / "b.log";
  put(a, "a0\na1 half");
  cli::detail::MergedLogs logs({{"a", a}, {"b", b}}, {});
  std::string out;
  std::vector<cli::detail::LogProblem> problems;
  logs.start(std::nullopt, true, out, problems);
  CHECK(out == "a | a0\n");
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].missing);
  std::mutex m;
  std::string followed;
  std::stop_source stop;
  std::jthread follower([&] {
    logs.follow(stop.get_token(), [&](std::string_view s) {
      const std::lock_guard lock(m);
      followed += s;
      return true;
    });
  });
  const auto seen = [&](std::string_view part) {
    for (int i = 0; i < 200; ++i) {
      {
        const std::lock_guard lock(m);
        if (contains(followed, part)) return true;
      }
      pause_ms(10);
    }
    return false;
  };
  pause_ms(100);
  put(a, " and its end\n");
  CHECK(seen("a | a1 half and its end\n"));
  std::filesystem::create_directories(b.parent_path()); // a directory made later: found by the fallback
  put(b, "b0\n");
  CHECK(seen("b | b0\n"));
  put(a, "a2 unfinished");
  std::filesystem::rename(a, d.dir / "a.old"); // replaced: the old one's end, then the new one from its start
  put(d.dir / "a.new", "a3\n");
  std::filesystem::rename(d.dir / "a.new", a);
  CHECK(seen("a | a3\n"));
  put(b, "x\n", std::ios::trunc); // truncated: from its start
  CHECK(seen("b | x\n"));
  put(b, "last, unfinished");
  pause_ms(100);
  stop.request_stop();
  follower.join();
  CHECK(followed == "a | a1 half and its end\nb | b0\na | a2 unfinished\na | a3\nb | x\nb | last, unfinished\n");
}

namespace {
// Fails its resume as the shipped components report their own checks: a
// TransitionError whose cause is an Error with the same message.
struct SelfChecked {
  bool running = false;
  bool is_provisioned() const { return true; }
  bool is_running() const { return running; }
  void resume() { stackup::throw_transition_error("server", stackup::Transition::resume, "server: exited with status 4"); }
};
} // namespace

TEST_CASE("cli: a cause that repeats the message above it is printed once, its own causes still are") {
  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back("server", SelfChecked{});
  stackup::DynamicStack s{"demo", std::move(parts)};
  std::ostringstream out, err;
  const std::vector<std::string_view> words{"stack", "up"};
  CHECK(cli::run(s, words, out, err, {.color = cli::Color::never}) == cli::exit_failure);
  CHECK(err.str() == "error: stack up failed\n"
                     "  stackup: stack 'demo' up failed: server 'server' failed to resume: server: exited with status 4 (rolled back)\n"
                     "    caused by: server: exited with status 4\n"
                     "rollback: this command had changed nothing, so nothing was undone\n");
}

// ---- the stack's lock ---------------------------------------------------------------------------

namespace {
struct LockDir {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("stackup-test-lock-" + std::to_string(::getpid()));
  std::filesystem::path file = dir / "stackup.toml";
  LockDir() {
    std::filesystem::create_directories(dir);
    put(file, "# a stack file\n");
  }
  ~LockDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  LockDir(const LockDir&) = delete;
  LockDir& operator=(const LockDir&) = delete;
};
std::string lock_error(const std::filesystem::path& file) {
  try {
    stackup::StackLock lock(file, stackup::LockMode::shared);
  } catch (const stackup::Error& e) {
    return e.what();
  }
  return {};
}
} // namespace

TEST_CASE("StackLock: exclusive excludes every other hold, shared admits shared, and it goes with its owner") {
  LockDir d;
  using stackup::LockMode;
  stackup::StackLock a(d.file, LockMode::exclusive), b(d.file, LockMode::shared), c(d.file, LockMode::shared);
  CHECK(a.try_lock());
  CHECK(a.owns_lock());
  CHECK_FALSE(b.try_lock());
  a.unlock();
  CHECK(b.try_lock());
  CHECK(c.try_lock());
  CHECK_FALSE(a.try_lock());
  {
    const stackup::StackLock moved = std::move(b);
    CHECK(moved.owns_lock());
    CHECK_FALSE(b.owns_lock()); // NOLINT(bugprone-use-after-move): a moved-from lock holds nothing
    c.unlock();
    CHECK_FALSE(a.try_lock());
  } // the moved-to lock released it
  CHECK(a.try_lock());
  CHECK_THROWS_AS(b.lock(), stackup::Error);
}

TEST_CASE("StackLock: what is not a regular file is refused with the reason, nothing is opened through a symlink") {
  LockDir d;
  std::filesystem::create_symlink(d.file, d.dir / "link.toml");
  REQUIRE(::mkfifo((d.dir / "fifo.toml").c_str(), 0600) == 0);
  CHECK(lock_error(d.dir / "link.toml") == "stackup: cannot lock the stack file " + (d.dir / "link.toml").string() +
                                               ": it is a symlink: name the file it points to");
  // A FIFO neither blocks the open nor is locked.
  CHECK(lock_error(d.dir / "fifo.toml").ends_with(": it is not a regular file (a FIFO, a device, a directory?): "
                                                  "name the stack file itself"));
  CHECK(lock_error(d.dir).ends_with("it is not a regular file (a FIFO, a device, a directory?): name the stack file itself"));
  CHECK(lock_error(d.dir / "missing.toml").ends_with(": No such file or directory"));
  CHECK(lock_error(d.file).empty());
}

TEST_CASE("StackLock: a stop requested while waiting ends the wait holding nothing") {
  LockDir d;
  stackup::StackLock holder(d.file, stackup::LockMode::exclusive);
  holder.lock();
  stackup::StackLock waiter(d.file, stackup::LockMode::shared);
  std::stop_source stop;
  const std::stop_token token = stop.get_token();
  std::jthread stopper([&] {
    pause_ms(100);
    stop.request_stop();
  });
  CHECK_THROWS_AS(waiter.lock(&token), stackup::InterruptedError);
  CHECK_FALSE(waiter.owns_lock());
}

TEST_CASE("cli: with a lock file, status waits for a command that holds the stack, and then sees what it did") {
  LockDir d;
  Fixture<kinds::Dynamic> f;
  stackup::StackLock transition(d.file, stackup::LockMode::exclusive);
  transition.lock();
  std::ostringstream out, err;
  std::atomic<int> code = -1;
  const std::string lock_file = d.file.string();
  std::jthread status([&] {
    const std::vector<std::string_view> words{"stack", "status"};
    code = cli::run(f.stack, words, out, err, {.color = cli::Color::never, .lock_file = lock_file});
  });
  pause_ms(200);
  CHECK(code == -1); // still waiting
  f.set_all(State::running); // what the holder did
  transition.unlock();
  status.join();
  CHECK(code == 0);
  CHECK(err.str() == "stack: waiting for another command on this stack to finish (it holds the lock on " + lock_file + ")\n");
  CHECK(contains(out.str(), "stack 'demo': 4 of 4 running, 4 provisioned"));
}

TEST_CASE("cli: the lock is the stack file's, so a directory component beside it does not deadlock") {
  // LocalDirectory locks its parent directory while it acts; flock does not nest
  // in one process, so a lock on the stack file's directory would wait for ever.
  LockDir d;
  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back("files", stackup::LocalDirectory{{.path = d.dir / "data"}});
  stackup::DynamicStack s{"demo", std::move(parts)};
  std::ostringstream out, err;
  const std::string lock_file = d.file.string();
  std::atomic<int> code = -1;
  std::thread up([&] {
    const std::vector<std::string_view> words{"stack", "up"};
    code = cli::run(s, words, out, err, {.color = cli::Color::never, .lock_file = lock_file});
  });
  for (int i = 0; i < 3000 && code == -1; ++i) pause_ms(10);
  if (code == -1) {
    MESSAGE("stack up did not return: the lock deadlocked");
    std::_Exit(1);
  }
  up.join();
  CHECK(code == 0);
  CHECK(std::filesystem::is_directory(d.dir / "data"));
  const std::vector<std::string_view> down{"stack", "down", "--force"};
  CHECK(cli::run(s, down, out, err, {.color = cli::Color::never, .lock_file = lock_file}) == 0);
}

TEST_CASE("cli: a lock file that cannot be locked fails the command before it acts") {
  LockDir d;
  Fixture<kinds::Dynamic> f;
  std::ostringstream out, err;
  const std::string dir = d.dir.string();
  const std::vector<std::string_view> words{"stack", "up"};
  CHECK(cli::run(f.stack, words, out, err, {.color = cli::Color::never, .lock_file = dir}) == cli::exit_failure);
  CHECK(contains(err.str(), "error: stack up: cannot take the stack's lock\n"));
  CHECK(contains(err.str(), "it is not a regular file"));
  CHECK(f.world.calls.empty());
}
