// Command with real shell commands: actions and queries by exit status, stderr
// in errors, timeouts that kill the process group, empty actions skipped.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/processes.hpp"
#include "support/users.hpp"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
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

using files::slurp;
using files::TempDir;
using messages::contains;
using messages::error_of;
using processes::alive;

// Kills, at the end of the scope, the process whose pid a command wrote to
// `file`: a test never leaves its background process behind, even when it fails.
struct KillRecorded {
  fs::path file;
  ~KillRecorded() {
    const std::string text = slurp(file).value_or("");
    pid_t pid = 0;
    if (std::from_chars(text.data(), text.data() + text.size(), pid).ec == std::errc{} && pid > 1 && alive(pid))
      ::kill(pid, SIGKILL);
  }
};

pid_t recorded_pid(const fs::path& file) {
  const std::string text = slurp(file).value_or("");
  pid_t pid = 0;
  std::from_chars(text.data(), text.data() + text.size(), pid);
  return pid;
}

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
  TempDir t{"command"};
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
  TempDir t{"command"};
  Cmd c{{.resume = R"sh(printf '%s|%s\n' "$(pwd)" "$GREETING" > out)sh",
         .working_dir = t.path,
         .env = {{"GREETING", "hello world"}}}};
  c.resume();
  CHECK(slurp(t.path / "out").value_or("") == t.path.string() + "|hello world\n");
}

TEST_CASE("command: a failing action is a TransitionError with its exit status and stderr tail") {
  TempDir t{"command"};
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
  TempDir t{"command"};
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
  TempDir t{"command"};
  // The shell exits at once; the sleep it leaves behind keeps the stderr pipe
  // open. Waiting for the pipe to close would hit the timeout and throw.
  const KillRecorded guard{t.path / "background"};
  Cmd c{{.resume = "(sleep 600 & echo $! > background); echo started >&2", .timeout = 20s, .working_dir = t.path}};
  CHECK_NOTHROW(c.resume());
  const pid_t background = recorded_pid(t.path / "background");
  REQUIRE(background > 1);
  CHECK(alive(background)); // a successful command's background work is left running
}

TEST_CASE("run_program: output captured whole, input fed, a slow reader not stalled, a timeout kills") {
  using px = stackup::detail::posix;
  // 4 MiB through `cat`: far more than a pipe holds, both ways at once.
  std::string input;
  for (int i = 0; input.size() < (std::size_t{4} << 20); ++i) input += "line " + std::to_string(i) + '\n';
  const auto echoed = px::run_program({"cat"}, {.capture_stdout = true, .input = input});
  CHECK(echoed.ok());
  CHECK(echoed.out == input);
  const auto both = px::run_program({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, {.capture_stdout = true});
  CHECK_FALSE(both.ok());
  CHECK(both.exit.code == CLD_EXITED);
  CHECK(both.exit.status == 3);
  CHECK(both.out == "out\n");
  CHECK(both.stderr_tail == "err\n");
  const auto slow = px::run_program({"sleep", "600"}, {.timeout = 200ms});
  CHECK(slow.timed_out);
  CHECK_FALSE(slow.ok());
  CHECK(contains(error_of([] { (void)px::run_program({"stackup-no-such-program"}, {}); }), "stackup-no-such-program"));
}

TEST_CASE("command: an empty action is not implemented; down skips it, up reports it") {
  TempDir t{"command"};
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
  TempDir tmp{"command"};
  Cmd forever{{.provision = "sleep 0.2; echo done > '" + (tmp.path / "out").string() + "'",
               .is_provisioned = "sleep 0.2",
               .timeout = std::chrono::milliseconds::max()}};
  CHECK(forever.is_provisioned());
  forever.provision();
  CHECK(slurp(tmp.path / "out").value_or("") == "done\n");

  for (const auto timeout : {0ms, -1ms, std::chrono::milliseconds::min()}) {
    CAPTURE(timeout.count());
    Cmd none{{.provision = "sleep 30", .timeout = timeout}};
    const std::string message = error_of([&] { none.provision(); });
    CHECK(contains(message, "did not finish within 0ms"));
  }
}

// ---- user: running the commands as another user ----------------------------------------

namespace {

// What `id FLAGS USER` prints, run by this process rather than by stackup.
std::string id_of(const std::string& flags, const std::string& user) {
  FILE* f = ::popen(("id " + flags + " " + user).c_str(), "r");
  REQUIRE(f != nullptr);
  std::string out;
  char buf[256];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  CHECK(::pclose(f) == 0);
  return out;
}

// The numbers of a line like "65534 27 100", sorted: group lists compare as sets.
std::vector<long> sorted_numbers(std::string_view line) {
  std::vector<long> out;
  std::istringstream in{std::string(line)};
  for (long n = 0; in >> n;) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Sets an environment variable for a scope, then restores it.
struct SetEnv {
  std::string name;
  std::optional<std::string> before;
  SetEnv(std::string n, const char* value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) before = v;
    ::setenv(name.c_str(), value, 1);
  }
  ~SetEnv() {
    if (before) ::setenv(name.c_str(), before->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
  SetEnv(const SetEnv&) = delete;
  SetEnv& operator=(const SetEnv&) = delete;
};


} // namespace

TEST_CASE("command: user runs every command as that user: its uid, gid, groups, HOME, USER and LOGNAME") {
  if (!users::root_or_skip()) return;
  for (const users::Account& account : users::other_users()) {
    const std::string& user = account.name;
    CAPTURE(user);
    const uid_t uid = account.uid;
    const std::string& home = account.home;
    TempDir t{"command"};
    REQUIRE(::chmod(t.path.c_str(), 0777) == 0); // the user writes its answers there
    Cmd c{{.resume = R"sh(id -u > out; id -g >> out; id -G >> out; printf '%s|%s|%s\n' "$HOME" "$USER" "$LOGNAME" >> out)sh",
           .is_running = "test \"$(id -u)\" = " + std::to_string(uid),
           .working_dir = t.path,
           .user = user}};
    c.resume();
    const auto out = lines_of(slurp(t.path / "out").value_or(""));
    REQUIRE(out.size() == 4);
    CHECK(out[0] + "\n" == id_of("-u", user));
    CHECK(out[1] + "\n" == id_of("-g", user));
    CHECK(sorted_numbers(out[2]) == sorted_numbers(id_of("-G", user)));
    CHECK(out[3] == home + "|" + user + "|" + user);
    struct stat st{};
    REQUIRE(::stat((t.path / "out").c_str(), &st) == 0);
    CHECK(st.st_uid == uid);
    CHECK(c.is_running()); // queries run as the user too

    // A variable the config sets wins over the user's own.
    Cmd custom{{.resume = R"sh(printf '%s|%s\n' "$HOME" "$USER" > custom)sh",
                .working_dir = t.path,
                .env = {{"HOME", "/custom"}},
                .user = user}};
    custom.resume();
    CHECK(slurp(t.path / "custom").value_or("") == "/custom|" + user + "\n");
  }
}

TEST_CASE("command: user empty or the current user changes nothing") {
  // Values no login would give, so that any change shows.
  const SetEnv home("HOME", "/stackup-test-home"), user_var("USER", "stackup-test-user"),
      logname("LOGNAME", "stackup-test-logname");
  for (const std::string& user : {std::string(), users::my_user_name()}) {
    CAPTURE(user);
    TempDir t{"command"};
    Cmd c{{.resume = R"sh(id -u > out; id -G >> out; printf '%s|%s|%s\n' "$HOME" "$USER" "$LOGNAME" >> out)sh",
           .working_dir = t.path,
           .user = user}};
    c.resume();
    const auto out = lines_of(slurp(t.path / "out").value_or(""));
    REQUIRE(out.size() == 3);
    CHECK(out[0] == std::to_string(::geteuid()));
    std::vector<gid_t> groups(static_cast<std::size_t>(::getgroups(0, nullptr)));
    groups.resize(static_cast<std::size_t>(::getgroups(static_cast<int>(groups.size()), groups.data())));
    std::vector<long> mine{static_cast<long>(::getegid())};
    for (const gid_t g : groups) mine.push_back(static_cast<long>(g));
    std::sort(mine.begin(), mine.end());
    mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
    CHECK(sorted_numbers(out[1]) == mine);
    CHECK(out[2] == "/stackup-test-home|stackup-test-user|stackup-test-logname");
  }
}

TEST_CASE("command: a user that does not exist is an error naming it; nothing runs") {
  TempDir t{"command"};
  Cmd c{{.name = "db", .resume = "touch ran", .is_running = "touch ran", .working_dir = t.path, .user = "stackup-no-such-user"}};
  const std::string expected = "stackup: command 'db' (experiment_tracker): there is no user 'stackup-no-such-user' on "
                               "this system (see `getent passwd stackup-no-such-user`): create it, or fix or remove `user`";
  CHECK(error_of([&] { c.resume(); }) == expected);
  CHECK(error_of([&] { (void)c.is_running(); }) == expected);
  CHECK_FALSE(fs::exists(t.path / "ran"));
}

TEST_CASE("command: another user without root is an error naming the component and the fix") {
  // "root" is another user for anyone but root.
  const std::string message = users::error_without_root([] {
    Cmd c{{.name = "db", .resume = "true", .user = "root"}};
    c.resume();
  });
  const std::string me = users::unprivileged_user_name();
  CHECK(message == "stackup: command 'db' (experiment_tracker): running as user 'root' needs root, and this process "
                   "runs as '" + me + "': run stackup as root, or remove `user` to run it as '" + me + "'");
}

TEST_CASE("command: a working_dir the user cannot enter is an error naming the directory and the user") {
  if (!users::root_or_skip()) return;
  REQUIRE(::getpwnam("nobody") != nullptr);
  TempDir t{"command"}; // mode 0700, root's: nobody cannot enter what is inside
  const fs::path inner = t.path / "inner";
  fs::create_directory(inner);
  Cmd c{{.name = "db", .resume = "true", .working_dir = inner, .user = "nobody"}};
  CHECK(error_of([&] { c.resume(); }) ==
        "stackup: command 'db' (experiment_tracker): `true`: cannot start '/bin/sh': change to its working directory "
        "failed: Permission denied (working_dir '" + inner.string() +
            "', as user 'nobody': that user must be allowed to enter it and every directory above it)");
}

TEST_CASE("command: supervision() returns its restart, liveness and on_dependency_restart; it has no exit_fd or exit_status") {
  Cmd c{{.resume = "true",
         .restart = {.policy = stackup::Restart::always, .backoff = 50ms, .max = 2U},
         .liveness = {.kind = stackup::Liveness::Kind::exec, .exec = "true"},
         .on_dependency_restart = stackup::OnDependencyRestart::restart}};
  const auto s = c.supervision();
  CHECK(s.restart.policy == stackup::Restart::always);
  CHECK(s.restart.backoff == 50ms);
  CHECK(s.restart.max == 2U);
  CHECK(s.liveness.kind == stackup::Liveness::Kind::exec);
  CHECK(s.liveness.exec == "true");
  CHECK(s.on_dependency_restart == stackup::OnDependencyRestart::restart);
  CHECK(Cmd{{}}.supervision().restart.policy == stackup::Restart::no); // the defaults
  // It cannot tell of its exit: a supervisor polls is_running().
  static_assert(!stackup::detail::has_exit_fd<Cmd> && !stackup::detail::has_exit_status<Cmd>);
  static_assert(stackup::detail::has_supervision<Cmd>);
  static_assert(!stackup::detail::has_supervision<stackup::LocalDirectory<"d">>);
  stackup::Stack st{"x", std::move(c), stackup::LocalDirectory<"d">{{.path = "/nonexistent/stackup-d"}}};
  CHECK(st.view().exit_fd("experiment_tracker") == -1);
  CHECK_FALSE(st.view().exit_status("experiment_tracker").has_value());
  CHECK(st.view().supervision("experiment_tracker").restart.policy == stackup::Restart::always);
  CHECK(st.view().supervision("d").restart.policy == stackup::Restart::no);
}
