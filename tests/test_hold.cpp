// The hold: every process a LocalDaemon starts stays under stackup's hold for
// its whole life (a waiter that is a child subreaper stays its parent), so a
// double fork, setsid() or a daemonizing server cannot slip away; how the main
// process ended is recorded; readiness counts only the daemon's own listener;
// a daemon that exits during start-up fails resume every time; a daemon run as
// another user gets a clean environment. Real processes throughout.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"
#include "support/users.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Daemon = stackup::LocalDaemon<"orchestrator">;
using files::slurp;
using files::spit;
using messages::contains;
using messages::error_of;
using ports::free_port;
using ports::listenable;
using processes::alive;
using processes::eventually;
using processes::Scratch;
using processes::stat_of;
using processes::tagged;

// Live processes whose command line is exactly `argv` (NUL-separated).
std::vector<pid_t> running(const std::vector<std::string>& argv) {
  std::string want;
  for (const auto& a : argv) want += a + '\0';
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc{}) continue;
    if (slurp(entry.path() / "cmdline").value_or("") == want && alive(pid)) out.push_back(pid);
  }
  return out;
}

// Kills, on destruction, the processes whose command line is `argv`: what a
// test that fails leaves behind is not left running (Scratch does this for the
// processes carrying its path).
struct KillOnExit {
  std::vector<std::vector<std::string>> argvs;
  ~KillOnExit() {
    for (const auto& argv : argvs)
      for (pid_t p : running(argv)) ::kill(p, SIGKILL);
  }
};

// A sleep whose length no other test uses: its command line finds it.
std::string unique_seconds(int salt) { return std::to_string(100000 + (::getpid() % 50000) * 10 + salt); }

// A listening socket of this process on 127.0.0.1:port.
struct Listener {
  int fd = -1;
  explicit Listener(std::uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const auto addr = ports::loopback(port);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
  }
  ~Listener() { ::close(fd); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
};

} // namespace

TEST_CASE("hold: a double fork with setsid() stays held; down --force leaves none of its processes") {
  Scratch tmp{"hold"};
  const std::string tag = tmp.path.string();
  stackup::Stack s{"local", Daemon{{.command = {STACKUP_ESCAPER_PATH, "stay", tag}, .state_dir = tmp.path / "state"}}};
  auto& d = s.get<"orchestrator">();
  s.up();
  const pid_t main = d.pid().value_or(0);
  REQUIRE(main > 1);
  REQUIRE(eventually([&] { return tagged(tag).size() == 2; }));
  pid_t escaped = 0;
  for (pid_t p : tagged(tag))
    if (p != main) escaped = p;
  CHECK(stat_of(escaped)->session != stat_of(main)->session); // it left the daemon's session
  CHECK(d.is_running());
  s.down({.force = true});
  CHECK_FALSE(alive(escaped));
  CHECK(tagged(tag).empty());
  CHECK_FALSE(fs::exists(tmp.path / "state"));
}

TEST_CASE("hold: sh -c 'setsid sleep A & exec sleep B': down --force stops both") {
  Scratch tmp{"hold"};
  const std::string a = unique_seconds(1), b = unique_seconds(2);
  KillOnExit guard{{{"sleep", a}, {"sleep", b}}};
  stackup::Stack s{"local", Daemon{{.command = {"/bin/sh", "-c", "setsid sleep " + a + " & exec sleep " + b},
                                    .state_dir = tmp.path / "state"}}};
  s.up();
  REQUIRE(eventually([&] { return running({"sleep", a}).size() == 1 && running({"sleep", b}).size() == 1; }));
  CHECK(s.get<"orchestrator">().pid() == running({"sleep", b}).front());
  s.down({.force = true});
  CHECK(running({"sleep", a}).empty());
  CHECK(running({"sleep", b}).empty());
}

TEST_CASE("hold: a daemon that daemonizes (double fork, then exit 0) fails up and leaves nothing running") {
  Scratch tmp{"hold"};
  const std::string tag = tmp.path.string();
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    stackup::Stack s{"local",
                     Daemon{{.command = {STACKUP_ESCAPER_PATH, "exit", tag}, .state_dir = tmp.path / "state"}}};
    const std::string message = error_of([&] { s.up(); });
    CHECK(contains(message, "exited with exit status 0 within its start-up grace"));
    CHECK(contains(message, "it left processes running, which were stopped"));
    CHECK(tagged(tag).empty()); // the grandchild in its own session too
    CHECK_FALSE(fs::exists(tmp.path / "state"));
  }
}

TEST_CASE("hold: redis-server --daemonize yes fails up and leaves no Redis running") {
  const char* redis = "/usr/bin/redis-server";
  if (!fs::exists(redis)) {
    MESSAGE("skipped: redis-server is not installed (apt-get install redis-server)");
    return;
  }
  Scratch tmp{"hold"};
  for (const bool probed : {false, true}) {
    CAPTURE(probed);
    const std::uint16_t port = free_port();
    const fs::path pidfile = tmp.path / ("redis-" + std::to_string(port) + ".pid");
    stackup::Stack s{"local", Daemon{{.command = {redis, "--port", std::to_string(port), "--bind", "127.0.0.1",
                                                  "--daemonize", "yes", "--pidfile", pidfile.string(), "--dir",
                                                  tmp.path.string(), "--save", ""},
                                      .state_dir = tmp.path / "state",
                                      .ready = probed ? stackup::ready::tcp(port) : stackup::ready::none()}}};
    const std::string message = error_of([&] { s.up(); });
    CHECK(contains(message, "exited with exit status 0"));
    CHECK(listenable(port)); // no Redis holds its port
    const auto server = slurp(pidfile);
    if (server) CHECK_FALSE(alive(std::atoi(server->c_str())));
    CHECK_FALSE(fs::exists(tmp.path / "state"));
  }
}

TEST_CASE("hold: the main process's end is recorded, with its exit status or signal, for another process to read") {
  Scratch tmp{"hold"};
  const fs::path state = tmp.path / "state", go = tmp.path / "go";
  Daemon d{{.command = {"/bin/sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.01; done; exit 3", go.string()},
            .state_dir = state}};
  d.provision();
  CHECK_FALSE(d.last_exit().has_value());
  d.resume();
  const pid_t main = d.pid().value_or(0);
  REQUIRE(main > 1);
  const auto before = std::chrono::system_clock::now();
  spit(go, "");
  REQUIRE(eventually([&] { return Daemon::from_state_dir(state).last_exit().has_value(); }));
  const auto ended = Daemon::from_state_dir(state).last_exit();
  CHECK(ended->pid == main);
  CHECK(ended->exit_code == 3);
  CHECK_FALSE(ended->signal.has_value());
  CHECK(ended->current);
  CHECK(ended->when >= before - 1s); // the wall clock: a sanity check, not a timing assertion
  CHECK(ended->when <= std::chrono::system_clock::now() + 1s);
  CHECK_FALSE(d.is_running());
  fs::remove(go);

  d.resume(); // the stale record is cleaned; a new start
  const pid_t second = d.pid().value_or(0);
  REQUIRE(second > 1);
  CHECK_FALSE(Daemon::from_state_dir(state).last_exit()->current); // the first start's end
  REQUIRE(::kill(second, SIGKILL) == 0);
  REQUIRE(eventually([&] {
    const auto e = Daemon::from_state_dir(state).last_exit();
    return e && e->pid == second;
  }));
  const auto killed = Daemon::from_state_dir(state).last_exit();
  CHECK(killed->signal == SIGKILL);
  CHECK_FALSE(killed->exit_code.has_value());
  d.deprovision();
  CHECK(tagged(tmp.path.string()).empty());
}

TEST_CASE("hold: a daemon that exits during start-up fails up every time") {
  Scratch tmp{"hold"};
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    stackup::Stack s{"local", Daemon{{.command = {"/bin/sh", "-c", "exit 3"}, .state_dir = tmp.path / "state"}}};
    const std::string message = error_of([&] { s.up(); });
    CHECK(contains(message, "exited with exit status 3 within its start-up grace of 500ms"));
    CHECK_FALSE(fs::exists(tmp.path / "state"));
  }
  // A command that puts its server in the background and returns: its server is stopped too.
  const std::string tag = tmp.path.string();
  const std::uint16_t port = free_port();
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    stackup::Stack s{"local", Daemon{{.command = {"/bin/sh", "-c",
                                                  "\"$0\" --port " + std::to_string(port) + " --tag " + tag + " &",
                                                  STACKUP_TEST_DAEMON_PATH},
                                      .state_dir = tmp.path / "state"}}};
    const std::string message = error_of([&] { s.up(); });
    CHECK(contains(message, "exited with exit status 0 within its start-up grace"));
    CHECK(tagged(tag).empty());
    CHECK(listenable(port));
  }
}

TEST_CASE("hold: start_grace is kept in the config, and zero waits for nothing") {
  Scratch tmp{"hold"};
  Daemon d{{.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(free_port()), "--tag", tmp.path.string()},
            .state_dir = tmp.path / "state",
            .start_grace = 0ms}};
  d.provision();
  CHECK(Daemon::from_state_dir(tmp.path / "state").config().start_grace == 0ms);
  d.resume(); // no wait, but running
  CHECK(d.is_running());
  Daemon e{{.command = {"/bin/true"}, .state_dir = tmp.path / "other", .start_grace = 2500ms}};
  e.provision();
  CHECK(Daemon::from_state_dir(tmp.path / "other").config().start_grace == 2500ms);
  CHECK(Daemon{{.command = {"/bin/true"}, .state_dir = tmp.path / "x", .start_grace = -5ms}}.config().start_grace ==
        0ms);
  e.deprovision();
  d.deprovision();
}

TEST_CASE("hold: a port already taken before resume fails it, naming the port and the holder") {
  Scratch tmp{"hold"};
  const std::uint16_t port = free_port();
  const Listener other(port);
  for (const auto& probe : {stackup::ready::tcp(port), stackup::ready::http(port, "/health")}) {
    CAPTURE(probe.describe());
    Daemon d{{.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(port), "--tag", tmp.path.string()},
              .state_dir = tmp.path / "state",
              .ready = probe,
              .start_timeout = 5s}};
    d.provision();
    const std::string message = error_of([&] { d.resume(); });
    CHECK(contains(message, "port " + std::to_string(port) + " is already taken by pid " + std::to_string(::getpid())));
    CHECK_FALSE(d.is_running());
    CHECK(tagged(tmp.path.string()).empty()); // nothing was started
    d.deprovision();
  }
}

TEST_CASE("hold: a daemon that dies while another process holds its port is not ready") {
  Scratch tmp{"hold"};
  const std::uint16_t port = free_port();
  const fs::path go = tmp.path / "go";
  // The daemon waits until the test holds its port, then fails to listen there
  // ("address already in use") and exits: the probe reaches only the test's socket.
  Daemon d{{.command = {"/bin/sh", "-c",
                        "while [ ! -e \"$0\" ]; do sleep 0.01; done; exec \"$1\" --port " + std::to_string(port) +
                            " --tag " + tmp.path.string(),
                        go.string(), STACKUP_TEST_DAEMON_PATH},
            .state_dir = tmp.path / "state",
            .ready = stackup::ready::tcp(port),
            .start_timeout = 20s}};
  d.provision();
  std::string message = "resume did not return";
  std::optional<Listener> other;
  std::thread starter([&] { message = error_of([&] { d.resume(); }); });
  const bool started = eventually([&] { return fs::exists(d.pid_file()); });
  if (started) other.emplace(port);
  // Once a probe has reached the test's socket (so a probe that takes any
  // listener has passed), the daemon may go on, and die.
  const bool probed = started && eventually([&] {
    const int client = ::accept4(other->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return false;
    ::close(client);
    return true;
  });
  spit(go, "");
  starter.join();
  REQUIRE(started);
  CHECK(probed);
  CHECK(contains(message, "exited with exit status"));
  CHECK_FALSE(d.is_running());
  CHECK(tagged(tmp.path.string()).empty());

  // any_listener: a listener that is not the daemon's counts (docker run -p).
  fs::remove(go);
  Daemon any{{.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(free_port()), "--tag", tmp.path.string()},
              .state_dir = tmp.path / "any",
              .ready = stackup::ready::tcp(port).with_any_listener(),
              .start_timeout = 5s}};
  any.provision();
  // The port is taken before the start: refused even so, the probe would pass for anything.
  CHECK(contains(error_of([&] { any.resume(); }), "is already taken"));
  other.reset();
  std::thread late([&] {
    (void)eventually([&] { return fs::exists(any.pid_file()); });
    other.emplace(port);
  });
  any.resume();
  late.join();
  CHECK(any.is_running());
  CHECK(Daemon::from_state_dir(tmp.path / "any").config().ready.any_listener);
  // Without any_listener the same daemon is not running: the listener is not its own.
  Daemon own{{.command = {"/bin/true"}, .state_dir = tmp.path / "any", .ready = stackup::ready::tcp(port)}};
  CHECK_FALSE(own.is_running());
  any.deprovision();
  d.deprovision();
  CHECK(tagged(tmp.path.string()).empty());
}

TEST_CASE("hold: a daemon run as another user gets a clean environment, not this process's") {
  if (!users::root_or_skip()) return;
  Scratch tmp{"hold"};
  ::setenv("STACKUP_TEST_PARENT_SECRET", "root-only", 1);
  const std::uint16_t port = free_port();
  Daemon d{{.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(port), "--tag", tmp.path.string()},
            .state_dir = tmp.path / "state",
            .ready = stackup::ready::http(port, "/health"),
            .env = {{"FROM_FILE", "yes"}},
            .working_dir = "/",
            .user = "nobody"}};
  d.provision();
  d.resume();
  ::unsetenv("STACKUP_TEST_PARENT_SECRET");
  const pid_t pid = d.pid().value_or(0);
  REQUIRE(pid > 1);
  const std::string env = slurp("/proc/" + std::to_string(pid) + "/environ").value_or("");
  CHECK_FALSE(contains(env, "STACKUP_TEST_PARENT_SECRET"));
  CHECK(contains(env, std::string("PATH=/usr/local/bin:/usr/bin:/bin") + '\0'));
  CHECK(contains(env, std::string("USER=nobody") + '\0'));
  CHECK(contains(env, std::string("LOGNAME=nobody") + '\0'));
  CHECK(contains(env, "SHELL="));
  CHECK(contains(env, "HOME="));
  CHECK(contains(env, std::string("FROM_FILE=yes") + '\0'));
  d.deprovision();
  CHECK(tagged(tmp.path.string()).empty());
}

TEST_CASE("hold: with its waiter killed behind stackup's back, down --force still stops the daemon and its child") {
  Scratch tmp{"hold"};
  const std::string tag = tmp.path.string();
  const std::uint16_t port = free_port();
  Daemon d{{.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(port), "--spawn-child", "--tag", tag},
            .state_dir = tmp.path / "state",
            .ready = stackup::ready::http(port, "/health")}};
  d.provision();
  d.resume();
  REQUIRE(eventually([&] { return tagged(tag).size() == 2; }));
  const std::string record = slurp(d.pid_file()).value_or("");
  const auto fields = [&] {
    std::vector<std::string> f;
    std::string word;
    for (char c : record) {
      if (c == ' ' || c == '\n') {
        f.push_back(word);
        word.clear();
      } else {
        word += c;
      }
    }
    return f;
  }();
  REQUIRE(fields.size() == 5);
  const pid_t waiter = std::atoi(fields[3].c_str());
  REQUIRE(::kill(waiter, SIGKILL) == 0);
  REQUIRE(eventually([&] { return !alive(waiter); }));
  CHECK(d.is_running()); // the main process runs on, no longer held
  d.deprovision();        // by the invocation id in their environment
  CHECK(tagged(tag).empty());
  CHECK(listenable(port));
}

TEST_CASE("hold: a Command run as another user gets the same clean environment") {
  if (!users::root_or_skip()) return;
  Scratch tmp{"hold"};
  const fs::path out = tmp.path / "shared";
  fs::create_directory(out);
  fs::permissions(out, fs::perms::all); // the other user writes its environment here
  fs::permissions(tmp.path, fs::perms::others_exec, fs::perm_options::add);
  ::setenv("STACKUP_TEST_PARENT_SECRET", "root-only", 1);
  stackup::Command<"c"> c{{.resume = "env > " + (out / "env").string(),
                           .working_dir = "/",
                           .env = {{"FROM_FILE", "yes"}},
                           .user = "nobody"}};
  c.resume();
  ::unsetenv("STACKUP_TEST_PARENT_SECRET");
  const std::string env = "\n" + slurp(out / "env").value_or("");
  CHECK_FALSE(contains(env, "STACKUP_TEST_PARENT_SECRET"));
  CHECK(contains(env, "\nPATH=/usr/local/bin:/usr/bin:/bin\n"));
  CHECK(contains(env, "\nUSER=nobody\n"));
  CHECK(contains(env, "\nFROM_FILE=yes\n"));
}

// ---- what supervision reads: exit_fd(), exit_status(), and an exit during start-up with a policy ----

namespace {

// Whether `fd` becomes readable within `limit` (a ceiling for a slow machine, not a timing assertion).
bool readable(int fd, int limit_ms) {
  pollfd p{fd, POLLIN, 0};
  int n = 0;
  while ((n = ::poll(&p, 1, limit_ms)) < 0 && errno == EINTR) {
  }
  return n == 1 && (p.revents & POLLIN) != 0;
}

// Closes a descriptor a test was handed.
struct Closer {
  int fd;
  ~Closer() {
    if (fd >= 0) ::close(fd);
  }
};

// A child that waits for SIGKILL, and its start time.
struct Sleeper {
  pid_t pid = ::fork();
  unsigned long long start = 0;
  Sleeper() {
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::pause();
      ::_exit(0);
    }
    REQUIRE(eventually([&] { return stat_of(pid).has_value(); }));
    start = stat_of(pid)->start;
  }
  ~Sleeper() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  Sleeper(const Sleeper&) = delete;
  Sleeper& operator=(const Sleeper&) = delete;
};

const std::string invocation(32, 'a');

} // namespace

TEST_CASE("hold: exit_fd() becomes readable when the main process is killed; then exit_status() says SIGKILL") {
  Scratch tmp{"hold"};
  const std::uint16_t port = free_port();
  stackup::Stack s{"local", Daemon{{.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(port), "--spawn-child",
                                               "--tag", tmp.path.string()},
                                   .state_dir = tmp.path / "state",
                                   .ready = stackup::ready::http(port, "/health")}}};
  auto& d = s.get<"orchestrator">();
  CHECK(d.exit_fd() == -1); // nothing provisioned
  s.up();
  CHECK_FALSE(d.exit_status().has_value()); // running
  const Closer fd{d.exit_fd()};
  REQUIRE(fd.fd >= 0);
  CHECK((::fcntl(fd.fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK_FALSE(readable(fd.fd, 0));
  const Closer viewed{s.view().exit_fd("orchestrator")}; // through the view too
  CHECK(viewed.fd >= 0);
  const pid_t main = d.pid().value_or(0);
  REQUIRE(main > 1);
  REQUIRE(::kill(main, SIGKILL) == 0);
  REQUIRE(readable(fd.fd, 30000));
  // The waiter is gone: it wrote `exit` and stopped the child it held first.
  const auto e = d.exit_status();
  REQUIRE(e.has_value());
  CHECK(e->signal == SIGKILL);
  CHECK_FALSE(e->code.has_value());
  CHECK(e->failed());
  CHECK(e->at > std::chrono::system_clock::time_point{});
  CHECK(tagged(tmp.path.string()).empty());
  CHECK(listenable(port));
  CHECK(Daemon::from_state_dir(tmp.path / "state").exit_status().has_value()); // another process reads it too
  const auto row = s.status().front();
  REQUIRE(row.exit.has_value());
  CHECK(row.exit->signal == SIGKILL);
  CHECK(d.exit_fd() == -1); // the waiter is gone
  d.suspend();
  CHECK_FALSE(d.exit_status().has_value()); // a down forgets it
  CHECK(d.exit_fd() == -1);
  s.down({.force = true});
}

TEST_CASE("hold: exit_status() is the current start's: empty after a new start and after a down") {
  Scratch tmp{"hold"};
  const fs::path go = tmp.path / "go";
  Daemon d{{.command = {"/bin/sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.01; done; exit 3", go.string()},
            .state_dir = tmp.path / "state"}};
  d.provision();
  CHECK_FALSE(d.exit_status().has_value());
  d.resume();
  const Closer fd{d.exit_fd()};
  REQUIRE(fd.fd >= 0);
  spit(go, "");
  REQUIRE(readable(fd.fd, 30000));
  REQUIRE(d.exit_status().has_value());
  CHECK(d.exit_status()->code == 3);
  CHECK_FALSE(d.exit_status()->signal.has_value());
  fs::remove(go);
  d.resume(); // a new start: the old end is no longer its
  CHECK_FALSE(d.exit_status().has_value());
  const Closer again{d.exit_fd()};
  CHECK(again.fd >= 0);
  d.suspend();
  CHECK_FALSE(d.exit_status().has_value());
  CHECK(d.exit_fd() == -1);
  d.deprovision();
}

// is_running() of a LocalDaemon includes its readiness probe: one alive but not
// ready reads "not running". A down stops it all the same (is_stopped()).
TEST_CASE("hold: a down stops a daemon that is alive but not ready (its probe fails)") {
  Scratch tmp{"hold"};
  const std::uint16_t port = free_port();
  stackup::Stack s{"hold", stackup::LocalDaemon<"web">{{.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(port),
                                                                     "--tag", tmp.path.string()},
                                                        .state_dir = tmp.path / "state",
                                                        .ready = stackup::ready::http(port, "/health"),
                                                        .stop_timeout = 200ms}}};
  s.up();
  const pid_t pid = static_cast<pid_t>(std::stol(slurp(tmp.path / "state" / "pid").value()));
  REQUIRE(::kill(pid, SIGSTOP) == 0); // alive, its listener there, no answer to the probe
  CHECK_FALSE(s.is_running());
  CHECK_FALSE(s.get<"web">().is_stopped());
  s.down();
  CHECK_FALSE(processes::alive(pid));
  CHECK(s.get<"web">().is_stopped());
  s.down({.force = true});
}

// A stack's down of a daemon that ended on its own clears its end: a down is never
// an exit (status shows none, and a supervisor would not restart it).
TEST_CASE("hold: a stack's down clears the end of a daemon that exited on its own, on both kinds of stack") {
  Scratch tmp{"hold"};
  const auto config = [&](const char* dir) {
    return stackup::LocalDaemonConfig{.command = {"/bin/sh", "-c", "sleep 0.2; exit 3"},
                                      .state_dir = tmp.path / dir,
                                      .restart = {.policy = stackup::Restart::on_failure}};
  };
  const auto ended = [](const auto& stack) {
    for (int i = 0; i < 3000 && !stack.status()[0].exit; ++i) ::usleep(10'000);
    return stack.status()[0].exit;
  };
  stackup::Stack fixed{"hold", stackup::LocalDaemon<"worker">{config("fixed")}};
  fixed.up(); // the exit comes after up: a start-up exit with a policy does not fail up
  const auto first = ended(fixed);
  REQUIRE(first.has_value());
  CHECK(first->code == 3);
  fixed.down();
  CHECK_FALSE(fixed.status()[0].exit.has_value());
  CHECK_FALSE(fixed.get<"worker">().exit_status().has_value());
  fixed.down({.force = true});

  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back("worker", stackup::LocalDaemon<>{config("dynamic")});
  stackup::DynamicStack dynamic{"hold", std::move(parts)};
  dynamic.up();
  const auto second = ended(dynamic);
  REQUIRE(second.has_value());
  CHECK(second->code == 3);
  dynamic.down();
  CHECK_FALSE(dynamic.status()[0].exit.has_value());
  CHECK(dynamic.view().exit_status("worker") == std::nullopt);
  dynamic.down({.force = true});
}

TEST_CASE("hold: exit_fd() of a record whose waiter's start time is wrong (a recycled pid) is -1") {
  Scratch tmp{"hold"};
  const Sleeper other;
  Daemon d{{.command = {"/bin/true"}, .state_dir = tmp.path / "state"}};
  d.provision();
  const std::string main = std::to_string(other.pid) + " " + std::to_string(other.start) + " " + invocation + " ";
  spit(d.pid_file(), main + std::to_string(other.pid) + " " + std::to_string(other.start + 1) + "\n");
  CHECK(d.exit_fd() == -1);
  spit(d.pid_file(), main + std::to_string(other.pid) + " " + std::to_string(other.start) + "\n");
  const Closer right{d.exit_fd()}; // the same record with the right start time: a pidfd
  CHECK(right.fd >= 0);
  CHECK_FALSE(readable(right.fd, 0));
  ::unlink(d.pid_file().c_str()); // never signalled: deprovision finds no record
  d.deprovision();
  CHECK(alive(other.pid));
}

TEST_CASE("hold: exit_fd() of a pid file of stackup 0.2 (no waiter) is a pidfd of the main process") {
  Scratch tmp{"hold"};
  auto other = std::make_unique<Sleeper>();
  Daemon d{{.command = {"/bin/true"}, .state_dir = tmp.path / "state"}};
  d.provision();
  spit(d.pid_file(), std::to_string(other->pid) + " " + std::to_string(other->start + 1) + " " + invocation + "\n");
  CHECK(d.exit_fd() == -1); // a recycled pid
  spit(d.pid_file(), std::to_string(other->pid) + " " + std::to_string(other->start) + " " + invocation + "\n");
  const Closer fd{d.exit_fd()};
  REQUIRE(fd.fd >= 0);
  CHECK_FALSE(readable(fd.fd, 0));
  ::kill(other->pid, SIGKILL);
  CHECK(readable(fd.fd, 30000));
  other.reset();
  ::unlink(d.pid_file().c_str());
  d.deprovision();
}

TEST_CASE("hold: with a restart policy, an exit during start-up does not fail up; it is recorded for the policy") {
  Scratch tmp{"hold"};
  for (const bool probed : {false, true}) {
    CAPTURE(probed);
    stackup::Stack s{"local", Daemon{{.command = {"/bin/sh", "-c", "sleep 0.3; exit 3"},
                                     .state_dir = tmp.path / "state",
                                     .ready = probed ? stackup::ready::tcp(free_port()) : stackup::ready::none(),
                                     .restart = {.policy = stackup::Restart::on_failure}}}};
    auto& d = s.get<"orchestrator">();
    s.up(); // succeeds: the supervisor's to restart
    const auto e = d.exit_status();
    REQUIRE(e.has_value());
    CHECK(e->code == 3);
    CHECK_FALSE(d.is_running());
    CHECK(fs::exists(d.pid_file()));
    CHECK(contains(slurp(d.log_file()).value_or(""), "exited with exit status 3 " +
                                                         std::string(probed ? "before it was ready"
                                                                            : "within its start-up grace of 500ms") +
                                                         "; resume leaves it to its restart policy (on-failure)"));
    CHECK(d.exit_fd() == -1);
    CHECK(s.view().supervision("orchestrator").restart.policy == stackup::Restart::on_failure);
    d.suspend();
    CHECK_FALSE(d.exit_status().has_value());
    CHECK(d.exit_fd() == -1);
    s.down({.force = true});
  }
  // Not ready in time, or its port taken: still a failure, policy or not.
  const std::uint16_t port = free_port();
  Daemon slow{{.command = {"/bin/sh", "-c", "sleep 1000; true", tmp.path.string()},
               .state_dir = tmp.path / "slow",
               .ready = stackup::ready::tcp(port),
               .start_timeout = 200ms,
               .restart = {.policy = stackup::Restart::always}}};
  slow.provision();
  CHECK(contains(error_of([&] { slow.resume(); }), "was not ready within 200ms"));
  const Listener taken(port);
  CHECK(contains(error_of([&] { slow.resume(); }), "is already taken by"));
  slow.deprovision();
  CHECK(tagged(tmp.path.string()).empty());
}
