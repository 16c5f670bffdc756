// Command with real shell commands: actions and queries by exit status, stderr
// in errors, timeouts that kill the process group, empty actions skipped.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Cmd = stackup::Command<"experiment_tracker">;

static_assert(stackup::Provisionable<Cmd> && stackup::Resumable<Cmd> && stackup::Suspendable<Cmd> &&
              stackup::Deprovisionable<Cmd>);
static_assert(std::is_move_constructible_v<Cmd>);

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/stackup-command-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool alive(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  const char state = stat[stat.rfind(')') + 2];
  return state != 'Z' && state != 'X';
}

// Kills, at the end of the scope, the process whose pid a command wrote to
// `file`: a test never leaves its background process behind, even when it fails.
struct KillRecorded {
  fs::path file;
  ~KillRecorded() {
    const std::string text = slurp(file);
    pid_t pid = 0;
    if (std::from_chars(text.data(), text.data() + text.size(), pid).ec == std::errc{} && pid > 1 && alive(pid))
      ::kill(pid, SIGKILL);
  }
};

pid_t recorded_pid(const fs::path& file) {
  const std::string text = slurp(file);
  pid_t pid = 0;
  std::from_chars(text.data(), text.data() + text.size(), pid);
  return pid;
}

template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const stackup::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// A tracker whose resources are two files in `dir`.
Cmd files_in(const fs::path& dir) {
  return Cmd{{.name = "tracker",
              .provision = "touch provisioned",
              .deprovision = "rm provisioned",
              .resume = "touch running",
              .suspend = "rm running",
              .is_provisioned = "test -f provisioned",
              .is_running = "test -f running",
              .working_dir = dir}};
}

} // namespace

TEST_CASE("command: actions run, queries answer by exit status") {
  TempDir t;
  stackup::Stack s{"local", files_in(t.path)};
  auto& c = s.get<"experiment_tracker">();
  CHECK(c.name() == "tracker");
  CHECK_FALSE(c.is_provisioned());
  CHECK_FALSE(c.is_running());
  CHECK(c.state() == stackup::State::deprovisioned);

  s.up();
  CHECK(fs::exists(t.path / "provisioned"));
  CHECK(fs::exists(t.path / "running"));
  CHECK(c.is_running());
  const auto status = s.status();
  CHECK(status[0].flavor == "command");
  CHECK(status[0].detail == "query: test -f running");

  std::vector<stackup::Outcome> outcomes;
  s.on_event([&](const stackup::Event& e) { outcomes.push_back(e.outcome); });
  s.up();
  CHECK(outcomes == std::vector<stackup::Outcome>{stackup::Outcome::already_done});

  s.down();
  CHECK_FALSE(fs::exists(t.path / "running"));
  CHECK(fs::exists(t.path / "provisioned"));
  CHECK(c.state() == stackup::State::suspended);
  s.down({.force = true});
  CHECK_FALSE(fs::exists(t.path / "provisioned"));
  CHECK(c.state() == stackup::State::deprovisioned);
}

TEST_CASE("command: env and working_dir reach the shell") {
  TempDir t;
  Cmd c{{.resume = R"sh(printf '%s|%s\n' "$(pwd)" "$GREETING" > out)sh",
         .working_dir = t.path,
         .env = {{"GREETING", "hello world"}}}};
  c.resume();
  CHECK(slurp(t.path / "out") == t.path.string() + "|hello world\n");
}

TEST_CASE("command: a failing action is a TransitionError with its exit status and stderr tail") {
  TempDir t;
  Cmd c{{.provision = "echo 'line one' >&2; for i in $(seq 1 40); do echo \"noise $i\" >&2; done; "
                      "echo 'cluster create failed: port taken' >&2; exit 4",
         .is_provisioned = "false"}};
  std::string message;
  try {
    c.provision();
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "experiment_tracker");
    CHECK(e.transition() == stackup::Transition::provision);
    message = e.what();
  }
  CHECK(contains(message, "exit status 4"));
  CHECK(contains(message, "cluster create failed: port taken"));
  CHECK(contains(message, "noise 40"));
  CHECK_FALSE(contains(message, "\n    line one")); // only the tail (the command text itself has it)

  stackup::Stack s{"local", Cmd{{.provision = "echo nope >&2; exit 1", .is_provisioned = "false"}}};
  try {
    s.up();
    FAIL("up should have failed");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.transition() == stackup::Transition::provision);
    CHECK(contains(e.what(), "nope"));
  }

  Cmd killed{{.resume = "kill -9 $$"}};
  CHECK(contains(error_of([&] { killed.resume(); }), "killed by SIGKILL"));
}

TEST_CASE("command: a query that cannot run, or dies, is an error rather than false") {
  Cmd missing{{.is_provisioned = "no-such-command-anywhere --version"}};
  const std::string message = error_of([&] { (void)missing.is_provisioned(); });
  CHECK(contains(message, "exit status 127"));
  CHECK(contains(message, "not found"));
  Cmd killed{{.is_running = "kill -TERM $$"}};
  CHECK(contains(error_of([&] { (void)killed.is_running(); }), "killed by SIGTERM"));
  Cmd plain_no{{.is_provisioned = "exit 1", .is_running = "exit 3"}};
  CHECK_FALSE(plain_no.is_provisioned());
  CHECK_FALSE(plain_no.is_running());
}

TEST_CASE("command: empty queries default to provisioned, and running = provisioned") {
  Cmd always{{}};
  CHECK(always.is_provisioned());
  CHECK(always.is_running());
  Cmd off{{.is_provisioned = "false"}};
  CHECK_FALSE(off.is_running());
}

TEST_CASE("command: a command past its timeout is killed with its whole process group") {
  TempDir t;
  const KillRecorded guard{t.path / "background"};
  Cmd c{{.resume = "sleep 600 & echo $! > background; sleep 600", .timeout = 300ms, .working_dir = t.path}};
  std::string message;
  try {
    c.resume();
  } catch (const stackup::TransitionError& e) {
    message = e.what();
  }
  CHECK(contains(message, "did not finish within 300ms"));
  CHECK(contains(message, "killed with its process group"));
  const pid_t background = recorded_pid(t.path / "background");
  REQUIRE(background > 1);
  // The background sleep was in the group: it is gone (or a zombie awaiting its new parent).
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (alive(background) && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(2ms);
  CHECK_FALSE(alive(background));

  Cmd slow_query{{.is_running = "sleep 600", .timeout = 200ms}};
  CHECK(contains(error_of([&] { (void)slow_query.is_running(); }), "did not finish within 200ms"));
}

TEST_CASE("command: a background process that keeps stderr open does not hold up the action") {
  TempDir t;
  // The shell exits at once; the sleep it leaves behind keeps the stderr pipe
  // open. Waiting for the pipe to close would hit the timeout and throw.
  const KillRecorded guard{t.path / "background"};
  Cmd c{{.resume = "(sleep 600 & echo $! > background); echo started >&2", .timeout = 20s, .working_dir = t.path}};
  CHECK_NOTHROW(c.resume());
  const pid_t background = recorded_pid(t.path / "background");
  REQUIRE(background > 1);
  CHECK(alive(background)); // a successful command's background work is left running
}

TEST_CASE("command: an empty action is not implemented; down skips it, up reports it") {
  TempDir t;
  stackup::Stack s{"local", Cmd{{.name = "cluster",
                                 .provision = "touch p",
                                 .is_provisioned = "test -f p",
                                 .is_running = "test -f p",
                                 .working_dir = t.path}}};
  s.up();
  std::vector<stackup::Outcome> outcomes;
  s.on_event([&](const stackup::Event& e) { outcomes.push_back(e.outcome); });
  s.down(); // no suspend command: skipped, not an error
  CHECK(outcomes == std::vector<stackup::Outcome>{stackup::Outcome::started, stackup::Outcome::not_implemented});
  CHECK(fs::exists(t.path / "p"));
  s.down({.force = true}); // nor a deprovision command
  CHECK(fs::exists(t.path / "p"));

  Cmd bare{{.is_provisioned = "false"}};
  CHECK_THROWS_AS(bare.provision(), stackup::NotImplementedError);
  CHECK_THROWS_AS(bare.resume(), stackup::NotImplementedError);
  stackup::Stack needs{"local", Cmd{{.is_provisioned = "false"}}};
  try {
    needs.up();
    FAIL("up should have failed");
  } catch (const stackup::TransitionError& e) {
    CHECK(contains(e.what(), "provision"));
    CHECK_THROWS_AS(std::rethrow_exception(e.cause()), stackup::NotImplementedError);
  }
}

TEST_CASE("command: a timeout of milliseconds::max() means wait; zero or negative means no time at all") {
  TempDir tmp;
  Cmd forever{{.provision = "sleep 0.2; echo done > '" + (tmp.path / "out").string() + "'",
               .is_provisioned = "sleep 0.2",
               .timeout = std::chrono::milliseconds::max()}};
  CHECK(forever.is_provisioned());
  forever.provision();
  CHECK(slurp(tmp.path / "out") == "done\n");

  for (const auto timeout : {0ms, -1ms, std::chrono::milliseconds::min()}) {
    CAPTURE(timeout.count());
    Cmd none{{.provision = "sleep 30", .timeout = timeout}};
    const std::string message = error_of([&] { none.provision(); });
    CHECK(contains(message, "did not finish within 0ms"));
  }
}
