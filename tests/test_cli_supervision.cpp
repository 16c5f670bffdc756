// cli::run with Options::supervision_dir (DESIGN §10, "Detached"): the marks a
// down leaves for a supervisor and an up clears, `stack status` merging the
// running supervisor's record and naming it, `stack down` stopping it first,
// `stack down --force` removing its state. Both kinds of stack.
#include "support/kinds.hpp"

#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace cli = stackup::cli;
namespace fs = std::filesystem;
namespace sv = stackup::detail::supervision;
namespace record = stackup::detail::supervisor;
using stackup::State;

struct Power {
  bool provisioned = false, running = false;
};
template <class Self> struct Part {
  Power* p = nullptr;
  bool is_provisioned() const { return p->provisioned; }
  bool is_running() const { return p->running; }
  void provision() { p->provisioned = true; }
  void resume() { p->running = true; }
  void suspend() { p->running = false; }
  void deprovision() { p->provisioned = p->running = false; }
};
// db <- api <- web; cache alone.
struct Db : Part<Db> {
  static constexpr std::string_view role = "db";
};
struct Api : Part<Api> {
  static constexpr std::string_view role = "api";
  static constexpr std::string_view depends_on[] = {"db"};
};
struct Web : Part<Web> {
  static constexpr std::string_view role = "web";
  static constexpr std::string_view depends_on[] = {"api"};
  std::string detail() const { return p->running ? "pid 7" : ""; }
};
struct Cache : Part<Cache> {
  static constexpr std::string_view role = "cache";
};

struct Result {
  int code;
  std::string out, err;
};

template <class K> struct Fixture {
  Power db, api, web, cache;
  kinds::StackOf<K, Db, Api, Web, Cache> stack =
      kinds::make_from<K>("sup", Db{{&db}}, Api{{&api}}, Web{{&web}}, Cache{{&cache}});
  fs::path dir;
  std::string dir_text;

  Fixture() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("stackup-test-cli-supervision-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)) / "stack";
    dir_text = dir.string();
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir.parent_path(), ec);
  }
  Result run(std::vector<std::string_view> args) {
    std::ostringstream out, err;
    const int code = cli::run(stack, args, out, err, cli::Options{.program = "prog", .supervision_dir = dir_text});
    return {code, out.str(), err.str()};
  }
  [[nodiscard]] bool marked(std::string_view role) const { return fs::exists(dir / "down" / sv::mark_name(role)); }
  void make_dir() const { (void)sv::open_state_dir(dir, true); }
};

std::string last_line(const std::string& text) {
  const auto end = text.find_last_not_of('\n');
  const auto start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

} // namespace

TEST_CASE_TEMPLATE("cli supervision: status ends with 'supervisor: none', --json stays an array, nothing is created", K,
                   kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  auto r = f.run({"stack", "status"});
  CHECK(r.code == 0);
  CHECK(last_line(r.out) == "supervisor: none");
  r = f.run({"stack", "status", "--json"});
  CHECK(r.out.find("supervisor") == std::string::npos);
  CHECK(r.out.back() == '\n');
  CHECK(r.out.rfind("]\n") == r.out.size() - 2);
  CHECK(f.run({"web", "status"}).out.find("supervisor") == std::string::npos);
  // Without a supervisor ever started, downs and ups leave no state behind.
  CHECK(f.run({"stack", "up"}).code == 0);
  CHECK(f.run({"web", "down"}).code == 0);
  CHECK(f.run({"stack", "down"}).code == 0);
  CHECK(!fs::exists(f.dir));
}

TEST_CASE_TEMPLATE("cli supervision: a down marks what it stops, an up clears what it brings up", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  f.make_dir(); // as a supervisor does
  REQUIRE(f.run({"stack", "up"}).code == 0);
  // <role> down: the role and the dependents it stops.
  REQUIRE(f.run({"api", "down"}).code == 0);
  CHECK(f.marked("api"));
  CHECK(f.marked("web"));
  CHECK(!f.marked("db"));
  CHECK(!f.marked("cache"));
  // <role> up: what it brings up.
  REQUIRE(f.run({"web", "up"}).code == 0);
  CHECK(!f.marked("api"));
  CHECK(!f.marked("web"));
  // stack down: the whole stack; <role> up then leaves the rest marked, one by one.
  REQUIRE(f.run({"stack", "down"}).code == 0);
  CHECK(f.marked(sv::whole_stack));
  REQUIRE(f.run({"api", "up"}).code == 0);
  CHECK(!f.marked(sv::whole_stack));
  CHECK(!f.marked("db"));
  CHECK(!f.marked("api"));
  CHECK(f.marked("web"));
  CHECK(f.marked("cache"));
  // stack up: every mark.
  REQUIRE(f.run({"stack", "up"}).code == 0);
  for (const std::string_view r : {"db", "api", "web", "cache"}) CHECK(!f.marked(r));
  // A down that is refused (a usage error) marks nothing.
  CHECK(f.run({"cache", "down", "--bogus"}).code == 2);
  CHECK(!f.marked("cache"));
}

TEST_CASE_TEMPLATE("cli supervision: status merges the running supervisor's record and names it", K, kinds::Typed,
                   kinds::Dynamic) {
  Fixture<K> f;
  const auto fd = sv::open_state_dir(f.dir, true);
  REQUIRE(f.run({"stack", "up"}).code == 0);
  const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'796'644'801'123));
  const sv::Row rows[] = {{"web", stackup::SupervisionState::watching, 2, stackup::Exit{.code = 3, .at = at}},
                          {"cache", stackup::SupervisionState::failed, 5, stackup::Exit{.signal = 9, .at = at}}};
  sv::write_record(fd.get(), rows, f.dir);

  // The record of a supervisor that is not running is not shown.
  auto r = f.run({"stack", "status"});
  CHECK(last_line(r.out) == "supervisor: none");
  CHECK(r.out.find("restarts") == std::string::npos);

  // This process stands for the supervisor: the pid file names it.
  stackup::detail::posix::write_file_atomic(fd.get(), record::pid_file, record::format_pid(record::self()),
                                            f.dir / record::pid_file);
  r = f.run({"stack", "status"});
  CHECK(r.code == 0);
  CHECK(last_line(r.out) == "supervisor: pid " + std::to_string(::getpid()));
  CHECK(r.out.find(", restarts 2; pid 7\n") != std::string::npos);
  CHECK(r.out.find("failed: killed by SIGKILL, 5 restarts\n") != std::string::npos);
  r = f.run({"stack", "status", "--json"});
  CHECK(r.out.find("\"detail\": \"pid 7\", \"restarts\": 2, \"exit\": {\"code\": 3, \"at\": \"2026-12-07T12:00:01.123Z\"}, "
                   "\"supervision\": \"watching\", \"current\": true}") != std::string::npos);
  CHECK(r.out.find("\"restarts\": 5, \"exit\": {\"signal\": \"SIGKILL\", \"at\": \"2026-12-07T12:00:01.123Z\"}, "
                   "\"supervision\": \"failed\", \"current\": true}") != std::string::npos);
  CHECK(r.out.find("\"role\": \"db\", \"name\": \"db\", \"flavor\": \"custom\", \"state\": \"running\", \"detail\": \"\", "
                   "\"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true}") != std::string::npos);
  // One role's status: its row merged, no supervisor line.
  r = f.run({"web", "status"});
  CHECK(r.out.find(", restarts 2; pid 7\n") != std::string::npos);
  CHECK(r.out.find("supervisor:") == std::string::npos);
  ::unlinkat(fd.get(), record::pid_file, 0); // this process must not be stopped by a stack down
}

TEST_CASE_TEMPLATE("cli supervision: stack down stops the recorded supervisor first; --force removes its state", K,
                   kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  const auto fd = sv::open_state_dir(f.dir, true);
  REQUIRE(f.run({"stack", "up"}).code == 0);
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGTERM, SIG_DFL); // not the test runner's handler
    ::close(ready[0]);
    ::close(ready[1]); // the parent reads EOF: the handler is in place
    while (true) ::pause(); // until a signal ends it
  }
  ::close(ready[1]);
  char c = 0;
  CHECK(::read(ready[0], &c, 1) == 0);
  ::close(ready[0]);
  const auto st = stackup::detail::posix::read_proc_stat(child);
  REQUIRE(st.has_value());
  const stackup::detail::posix::ProcessId p{child, st->start_time};
  stackup::detail::posix::write_file_atomic(fd.get(), record::pid_file, record::format_pid(p), f.dir / record::pid_file);
  CHECK(last_line(f.run({"stack", "status"}).out) == "supervisor: pid " + std::to_string(child));

  const auto r = f.run({"stack", "down"});
  CHECK(r.code == 0);
  CHECK(r.out.find("* stopped the stack's supervisor (pid " + std::to_string(child) + ")\n") == 0);
  CHECK(!stackup::detail::posix::alive_as(child, st->start_time));
  ::waitpid(child, nullptr, WNOHANG); // reaped already, or now
  CHECK(f.marked(sv::whole_stack));
  CHECK(!f.db.running);
  CHECK(last_line(f.run({"stack", "status"}).out) == "supervisor: none");

  // --force: the stack deprovisioned, the supervision state removed.
  CHECK(f.run({"stack", "down", "--force"}).code == 0);
  CHECK(!fs::exists(f.dir));
  CHECK(fs::exists(f.dir.parent_path()));
}
