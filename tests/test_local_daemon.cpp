// LocalDaemon against a real process (tests/programs/test_daemon): start, stop,
// readiness, escalation to SIGKILL, hostile pid files, permissions, and two
// processes racing to bring it up. Every test kills what it started, even when
// it fails (Scratch).
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"
#include "support/users.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Daemon = stackup::LocalDaemon<"orchestrator">;

static_assert(stackup::Provisionable<Daemon> && stackup::Resumable<Daemon> && stackup::Suspendable<Daemon> &&
              stackup::Deprovisionable<Daemon>);
static_assert(std::is_move_constructible_v<Daemon> && std::is_move_assignable_v<Daemon>);

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

// Live processes of session `sid`.
std::vector<pid_t> in_session(pid_t sid) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc{}) continue;
    const auto s = stat_of(pid);
    if (s && s->session == sid && alive(pid)) out.push_back(pid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Something accepts connections on 127.0.0.1:port.
bool port_open(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const auto addr = ports::loopback(port);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Runs a program (argv, no shell) and returns its exit status and stdout+stderr.
struct Ran {
  int status = -1;
  std::string out;
};
Ran run(const std::vector<std::string>& argv) {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::dup2(p[1], 2);
    ::close(p[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(p[1]);
  Ran r;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Starts a process directly (not through stackup): an "unrelated" process.
pid_t start_process(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// One test's world: a temp directory that tags its processes, a free port.
struct World {
  Scratch tmp{"daemon"};
  std::uint16_t port = free_port();
  fs::path state = tmp.path / "state";

  std::vector<std::string> command(std::initializer_list<std::string> extra = {}, std::uint16_t on = 0) const {
    std::vector<std::string> c{STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(on ? on : port), "--tag",
                               tmp.path.string()};
    c.insert(c.end(), extra.begin(), extra.end());
    return c;
  }
  [[nodiscard]] Daemon daemon(std::initializer_list<std::string> extra = {}, stackup::ready::Probe probe = {},
                              std::chrono::milliseconds start_timeout = 10s,
                              std::chrono::milliseconds stop_timeout = 5s) const {
    if (probe.kind == stackup::ready::Probe::Kind::none) probe = stackup::ready::http(port, "/health");
    return Daemon{{.name = "web",
                   .command = command(extra),
                   .state_dir = state,
                   .ready = probe,
                   .start_timeout = start_timeout,
                   .stop_timeout = stop_timeout}};
  }
  [[nodiscard]] std::vector<pid_t> processes() const { return tagged(tmp.path.string()); }
};

} // namespace

TEST_CASE("local_daemon: up starts a real process, another process sees it, down stops it, force removes its state") {
  World w;
  stackup::Stack s{"local", w.daemon()};
  auto& web = s.get<"orchestrator">();
  CHECK_FALSE(s.is_provisioned());
  CHECK(web.name() == "web");
  CHECK(web.state_dir() == w.state);

  s.up();
  REQUIRE(web.pid().has_value());
  const pid_t pid = *web.pid();
  CHECK(alive(pid));
  CHECK(port_open(w.port));
  CHECK(web.is_running());
  CHECK(w.processes() == std::vector<pid_t>{pid});
  // Its own session and process group; the pid file records pid, start time,
  // the invocation id in its environment, and the waiter that holds it (its parent).
  CHECK(stat_of(pid)->pgrp == pid);
  CHECK(stat_of(pid)->session == pid);
  const std::string record = slurp(web.pid_file()).value_or("");
  const std::string prefix = std::to_string(pid) + " " + std::to_string(stat_of(pid)->start) + " ";
  REQUIRE(record.rfind(prefix, 0) == 0);
  const std::string id = record.substr(prefix.size(), 32);
  const pid_t waiter = std::atoi(record.c_str() + prefix.size() + 33);
  CHECK(record == prefix + id + " " + std::to_string(waiter) + " " + std::to_string(stat_of(waiter)->start) + "\n");
  CHECK(slurp("/proc/" + std::to_string(pid) + "/stat").value_or("").find(") S " + std::to_string(waiter) + " ") !=
        std::string::npos);
  CHECK(id.size() == 32);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(contains(slurp("/proc/" + std::to_string(pid) + "/environ").value_or(""),
                 std::string("STACKUP_INVOCATION_ID=") + id + '\0'));
  // Ready once it listens; it prints that line just after, so wait for it.
  CHECK(eventually([&] {
    return contains(slurp(web.log_file()).value_or(""), "listening on 127.0.0.1:" + std::to_string(w.port));
  }));
  const auto status = s.status();
  CHECK(status[0].flavor == "local_daemon");
  CHECK(status[0].state == stackup::State::running);
  CHECK(status[0].detail == "pid " + std::to_string(pid) + ", port " + std::to_string(w.port));

  // A second process that knows only the state directory.
  CHECK(run({STACKUP_DAEMON_QUERY_PATH, w.state.string()}).out == "running " + std::to_string(pid) + "\n");

  // A second up calls no action and starts nothing.
  std::vector<stackup::Outcome> outcomes;
  s.on_event([&](const stackup::Event& e) { outcomes.push_back(e.outcome); });
  s.up();
  CHECK(outcomes == std::vector<stackup::Outcome>{stackup::Outcome::already_done});
  CHECK(web.pid() == pid);
  CHECK(w.processes() == std::vector<pid_t>{pid});

  outcomes.clear();
  s.down();
  CHECK(outcomes == std::vector<stackup::Outcome>{stackup::Outcome::started, stackup::Outcome::succeeded});
  CHECK_FALSE(alive(pid));
  CHECK_FALSE(port_open(w.port));
  CHECK_FALSE(fs::exists(web.pid_file()));
  CHECK(fs::exists(w.state / "config"));
  CHECK(s.get<"orchestrator">().state() == stackup::State::suspended);
  CHECK(run({STACKUP_DAEMON_QUERY_PATH, w.state.string()}).out == "stopped\n");

  outcomes.clear();
  s.down(); // nothing to stop
  CHECK(outcomes == std::vector<stackup::Outcome>{stackup::Outcome::already_done});

  s.down({.force = true});
  CHECK_FALSE(fs::exists(w.state));
  CHECK_FALSE(s.is_provisioned());
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: the state directory is created with mode 0700 and read back by from_state_dir") {
  World w;
  Daemon d{{.name = "web",
            .command = w.command(),
            .state_dir = w.state,
            .ready = stackup::ready::tcp(w.port),
            .start_timeout = 7s,
            .stop_timeout = 3s,
            .env = {{"GREETING", "hello world"}},
            .working_dir = w.tmp.path}};
  const auto old_mask = ::umask(0); // a permissive umask must not loosen the state directory
  d.provision();
  ::umask(old_mask);
  struct stat st{};
  REQUIRE(::stat(w.state.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(d.is_provisioned());
  CHECK_FALSE(d.is_running());

  const auto copy = Daemon::from_state_dir(w.state);
  CHECK(copy.name() == "web");
  CHECK(copy.config().command == d.config().command);
  CHECK(copy.config().ready == d.config().ready);
  CHECK(copy.config().start_timeout == 7s);
  CHECK(copy.config().stop_timeout == 3s);
  CHECK(copy.config().env == d.config().env);
  CHECK(copy.config().working_dir == w.tmp.path);

  // Another role's state, a missing directory and a corrupt config are errors.
  CHECK(contains(error_of([&] { (void)stackup::LocalDaemon<"model_deployer">::from_state_dir(w.state); }),
                 "belongs to role 'orchestrator'"));
  CHECK(contains(error_of([&] { (void)Daemon::from_state_dir(w.tmp.path / "nowhere"); }), "no state directory"));
  const std::string config = *slurp(w.state / "config");
  spit(w.state / "config", config.substr(0, config.size() / 2));
  CHECK(contains(error_of([&] { (void)Daemon::from_state_dir(w.state); }), "is corrupt"));

  // An existing private directory with a looser (but safe) mode is tightened.
  d.deprovision();
  CHECK_FALSE(fs::exists(w.state));
  REQUIRE(::mkdir(w.state.c_str(), 0755) == 0);
  ::chmod(w.state.c_str(), 0755);
  d.provision();
  REQUIRE(::stat(w.state.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
}

TEST_CASE("local_daemon: env and working_dir reach the process") {
  World w;
  const std::string program = STACKUP_TEST_DAEMON_PATH;
  Daemon d{{.command = {"/bin/sh", "-c", "pwd; echo \"greeting=$GREETING\"; exec \"$0\" --port " +
                                             std::to_string(w.port) + " --tag " + w.tmp.path.string(),
                        program},
            .state_dir = w.state,
            .ready = stackup::ready::tcp(w.port),
            .env = {{"GREETING", "hello world"}},
            .working_dir = w.tmp.path}};
  CHECK(d.name() == "orchestrator"); // no name: the role
  d.provision();
  d.resume();
  CHECK(d.is_running());
  const std::string log = slurp(d.log_file()).value_or("");
  CHECK(contains(log, w.tmp.path.string() + "\n"));
  CHECK(contains(log, "greeting=hello world\n"));
  d.deprovision();
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a daemon that ignores SIGTERM is killed after stop_timeout") {
  World w;
  auto d = w.daemon({"--ignore-term"}, stackup::ready::tcp(w.port), 10s, 300ms);
  d.provision();
  d.resume();
  const pid_t pid = d.pid().value_or(0);
  REQUIRE(alive(pid));
  d.suspend();
  CHECK_FALSE(alive(pid));
  CHECK_FALSE(d.is_running());
  const std::string log = slurp(d.log_file()).value_or("");
  CHECK(contains(log, "got SIGTERM, ignoring it")); // it did receive SIGTERM first
  CHECK(contains(log, "stopped with SIGKILL"));
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: suspend stops the daemon's whole process group") {
  World w;
  auto d = w.daemon({"--spawn-child"});
  d.provision();
  d.resume();
  REQUIRE(eventually([&] { return w.processes().size() == 2; }));
  for (pid_t p : w.processes()) CHECK(stat_of(p)->pgrp == *d.pid());
  d.suspend();
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a command that puts its server in the background fails up, and the rollback stops that server") {
  World w;
  // `sh` starts the server in the background and exits at once: the process
  // stackup started is gone, the server it left runs on in its session. The
  // server never answers 2xx, so up cannot pass for ready by chance.
  Daemon d{{.name = "web",
            .command = {"/bin/sh", "-c",
                        "echo \"leader $$\"; \"$0\" --port " + std::to_string(w.port) + " --unhealthy --tag " +
                            w.tmp.path.string() + " &",
                        STACKUP_TEST_DAEMON_PATH},
            .state_dir = w.state,
            .ready = stackup::ready::http(w.port, "/health"),
            .stop_timeout = 5s}};
  stackup::Stack s{"local", std::move(d)};
  std::string message;
  try {
    s.up();
    FAIL("up should have failed");
  } catch (const stackup::TransitionError& e) {
    message = e.what();
  }
  CHECK(contains(message, "exited with exit status 0 before it was ready"));
  CHECK(contains(message, "it left processes running, which were stopped"));
  CHECK(contains(message, "(rolled back)"));
  const auto at = message.find("    leader ");
  REQUIRE(at != std::string::npos); // the log tail in the message
  const pid_t leader = std::atoi(message.c_str() + at + 11);
  REQUIRE(leader > 1);
  CHECK(in_session(leader).empty());
  CHECK(w.processes().empty());
  CHECK(listenable(w.port));
  CHECK_FALSE(fs::exists(w.state));
}

TEST_CASE("local_daemon: what an exited daemon left in its session is stopped by the next up and by down --force") {
  World w;
  // `sh` waits for its server, so up succeeds; killing `sh` then leaves the
  // server running in the session of a recorded process that is gone.
  Daemon d{{.name = "web",
            .command = {"/bin/sh", "-c",
                        "\"$0\" --port " + std::to_string(w.port) + " --tag " + w.tmp.path.string() + " & wait",
                        STACKUP_TEST_DAEMON_PATH},
            .state_dir = w.state,
            .ready = stackup::ready::http(w.port, "/health"),
            .stop_timeout = 5s}};
  stackup::Stack s{"local", std::move(d)};
  auto& web = s.get<"orchestrator">();
  // Kills the running daemon's recorded process; returns it and the server it leaves.
  auto orphan_the_server = [&] {
    const pid_t leader = web.pid().value_or(0);
    REQUIRE(leader > 1);
    std::vector<pid_t> members;
    REQUIRE(eventually([&] { return (members = in_session(leader)).size() == 2; }));
    // Every process of the daemon carries the invocation id its pid file records.
    const std::string record = slurp(web.pid_file()).value_or("");
    const auto second_space = record.find(' ', record.find(' ') + 1);
    const std::string id = record.substr(second_space + 1, 32); // "<pid> <start> <id> <waiter> <waiter start>"
    for (pid_t p : members) {
      CAPTURE(p);
      CHECK(contains(slurp("/proc/" + std::to_string(p) + "/environ").value_or(""),
                     std::string("STACKUP_INVOCATION_ID=") + id + '\0'));
    }
    const pid_t server = members.front() == leader ? members.back() : members.front();
    REQUIRE(::kill(leader, SIGKILL) == 0);
    REQUIRE(eventually([&] { return !alive(leader); }));
    CHECK_FALSE(web.is_running()); // the daemon is its recorded process: gone (and now reaped)
    // The main process's end is the daemon's end: its waiter stops what it left.
    CHECK(eventually([&] { return in_session(leader).empty() && !alive(server); }));
    CHECK(eventually([&] { return listenable(w.port); }));
    return std::pair{leader, server};
  };

  s.up();
  const auto [first, first_server] = orphan_the_server();
  // The next up starts anew: one server, not two.
  s.up();
  CHECK_FALSE(alive(first_server));
  CHECK(in_session(first).empty());
  const pid_t second = web.pid().value_or(0);
  CHECK(second != first);
  CHECK(web.is_running());
  CHECK(w.processes() == in_session(second));

  const auto [leader, server] = orphan_the_server();
  s.down({.force = true});
  CHECK_FALSE(alive(server));
  CHECK(in_session(leader).empty());
  CHECK(w.processes().empty());
  CHECK(listenable(w.port));
  CHECK_FALSE(fs::exists(w.state));
}

TEST_CASE("local_daemon: what an exited daemon left is stopped, also a process without the invocation id") {
  World w;
  // Two servers in the session: the second runs without the invocation id
  // (env -i) and ignores SIGTERM. Once the first has exited nothing left in the
  // session carries the id (as when an exiting process's environment can no
  // longer be read), yet the stop must go on to SIGKILL the second.
  const std::uint16_t other = free_port();
  const std::string tag = " --tag " + w.tmp.path.string();
  Daemon d{{.name = "web",
            .command = {"/bin/sh", "-c",
                        "\"$0\" --port " + std::to_string(w.port) + tag + " & /usr/bin/env -i \"$0\" --port " +
                            std::to_string(other) + " --ignore-term" + tag + " & wait",
                        STACKUP_TEST_DAEMON_PATH},
            .state_dir = w.state,
            .ready = stackup::ready::http(w.port, "/health"),
            .stop_timeout = 1s}};
  stackup::Stack s{"local", std::move(d)};
  auto& web = s.get<"orchestrator">();
  s.up();
  const pid_t leader = web.pid().value_or(0);
  REQUIRE(leader > 1);
  REQUIRE(eventually([&] { return in_session(leader).size() == 3 && port_open(other); }));
  REQUIRE(::kill(leader, SIGKILL) == 0);
  REQUIRE(eventually([&] { return !alive(leader); }));
  CHECK_FALSE(web.is_running());
  // Its waiter stops both servers, the one without the id too: the hold does
  // not need the id while the waiter lives.
  CHECK(eventually([&] { return in_session(leader).empty(); }));

  s.down({.force = true});
  CHECK(in_session(leader).empty());
  CHECK(w.processes().empty());
  CHECK(listenable(other));
  CHECK_FALSE(fs::exists(w.state));
}

TEST_CASE("local_daemon: a stale record naming an unrelated session whose leader exited: nothing is signalled") {
  World w;
  // An unrelated session whose leader has exited and left a process behind:
  // what the pid of a stale record can name once that pid has been reused.
  const std::uint16_t other_port = free_port();
  int report[2];
  REQUIRE(::pipe(report) == 0);
  const pid_t leader = ::fork();
  REQUIRE(leader >= 0);
  if (leader == 0) {
    ::setsid();
    const pid_t member = start_process(w.command({}, other_port));
    [[maybe_unused]] const ssize_t n = ::write(report[1], &member, sizeof member);
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t member = 0;
  REQUIRE(::read(report[0], &member, sizeof member) == static_cast<ssize_t>(sizeof member));
  ::close(report[0]);
  REQUIRE(eventually([&] { return !alive(leader); }));
  const std::string leader_start = std::to_string(stat_of(leader)->start); // a zombie still has it
  ::waitpid(leader, nullptr, 0);
  REQUIRE(eventually([&] { return port_open(other_port); }));
  REQUIRE(stat_of(member)->session == leader);

  auto d = w.daemon();
  const std::vector<std::string> records = {
      std::to_string(leader) + " " + leader_start + "\n",                                     // 0.1.0's format
      std::to_string(leader) + " " + leader_start + " 0123456789abcdef0123456789abcdef\n", // another start's id
  };
  for (const auto& record : records) {
    CAPTURE(record);
    d.provision();
    spit(d.pid_file(), record);
    CHECK_FALSE(d.is_running());
    CHECK_FALSE(d.pid().has_value());
    d.suspend(); // stale: removed, nothing signalled
    CHECK_FALSE(fs::exists(d.pid_file()));
    spit(d.pid_file(), record);
    stackup::Stack s{"local", w.daemon()};
    s.up(); // starts a daemon of its own
    CHECK(s.is_running());
    s.down();
    spit(d.pid_file(), record);
    s.down({.force = true});
    CHECK_FALSE(fs::exists(w.state));
    CHECK(alive(member));
    CHECK(port_open(other_port));
  }
  ::kill(member, SIGKILL); // the sweeper also ends the daemon whose record was overwritten
}

TEST_CASE("local_daemon: a daemon that exits at start fails resume with its exit status and log tail") {
  World w;
  stackup::Stack s{"local", w.daemon({"--exit-now", "boom: no config file found"})};
  try {
    s.up();
    FAIL("up should have failed");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "orchestrator");
    CHECK(e.transition() == stackup::Transition::resume);
    CHECK(contains(e.what(), "exited with exit status 3 before it was ready"));
    CHECK(contains(e.what(), "boom: no config file found"));
    CHECK(contains(e.what(), "(rolled back)"));
  }
  // up rolled back its provision: nothing is left.
  CHECK_FALSE(fs::exists(w.state));
  CHECK(w.processes().empty());

  // The component's own error is a TransitionError too.
  auto d = w.daemon({"--exit-now", "boom again"});
  d.provision();
  std::string message;
  try {
    d.resume();
  } catch (const stackup::TransitionError& e) {
    message = e.what();
  }
  CHECK(contains(message, "exit status 3"));
  CHECK(contains(message, "boom again"));
  CHECK_FALSE(contains(message, "boom: no config file found")); // only this run's output
  CHECK_FALSE(fs::exists(d.pid_file()));
  CHECK_FALSE(d.is_running());
}

TEST_CASE("local_daemon: a daemon that never becomes ready times out and leaves no process") {
  World w;
  auto d = w.daemon({"--ready-after", "600000"}, {}, 300ms, 2s);
  d.provision();
  std::string message;
  try {
    d.resume();
  } catch (const stackup::TransitionError& e) {
    message = e.what();
  }
  CHECK(contains(message, "was not ready within 300ms"));
  CHECK(contains(message, "http://127.0.0.1:" + std::to_string(w.port) + "/health"));
  CHECK(contains(message, "test_daemon: pid")); // the log tail
  CHECK(w.processes().empty());
  CHECK_FALSE(fs::exists(d.pid_file()));
}

TEST_CASE("local_daemon: a command that cannot be executed is a TransitionError") {
  World w;
  Daemon d{{.command = {(w.tmp.path / "no-such-program").string()}, .state_dir = w.state}};
  d.provision();
  const std::string message = error_of([&] { d.resume(); });
  CHECK(contains(message, "no-such-program"));
  CHECK(contains(message, "No such file or directory"));
  CHECK_FALSE(fs::exists(d.pid_file()));
  CHECK_THROWS_AS(d.resume(), stackup::TransitionError);

  Daemon empty{{.state_dir = w.state}};
  CHECK(contains(error_of([&] { empty.resume(); }), "no command configured"));
}

TEST_CASE("local_daemon: the http probe needs a 2xx answer, the tcp probe only an open port") {
  World w;
  auto tcp = w.daemon({"--unhealthy"}, stackup::ready::tcp(w.port));
  tcp.provision();
  tcp.resume();
  CHECK(tcp.is_running());
  const auto http = w.daemon({"--unhealthy"}, stackup::ready::http(w.port, "/health"));
  CHECK(http.pid() == tcp.pid()); // same state directory, same process
  CHECK_FALSE(http.is_running());
  tcp.suspend();
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a daemon killed behind the stack's back is seen as stopped and restarted by up") {
  World w;
  stackup::Stack s{"local", w.daemon()};
  s.up();
  const pid_t first = s.get<"orchestrator">().pid().value_or(0);
  REQUIRE(first > 1);
  REQUIRE(::kill(first, SIGKILL) == 0);
  REQUIRE(eventually([&] { return !alive(first); }));
  CHECK_FALSE(s.is_running());
  // is_running reaped its zombie child.
  errno = 0;
  CHECK(::waitpid(first, nullptr, WNOHANG) == -1);
  CHECK(errno == ECHILD);
  s.up();
  const pid_t second = s.get<"orchestrator">().pid().value_or(0);
  CHECK(second != first);
  CHECK(alive(second));
  CHECK(port_open(w.port));
  s.down({.force = true});
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a daemon started by one process can be stopped by another") {
  World w;
  auto d = w.daemon();
  d.provision();
  d.resume();
  const pid_t pid = d.pid().value_or(0);
  const auto ran = run({STACKUP_DAEMON_QUERY_PATH, w.state.string(), "down"});
  CHECK(ran.status == 0);
  CHECK(ran.out == "stopped\n");
  CHECK_FALSE(alive(pid));
  CHECK_FALSE(d.is_running());
  CHECK_FALSE(fs::exists(d.pid_file()));
}

TEST_CASE("local_daemon: a pid file naming a live unrelated process: not running, never signalled") {
  World w;
  const std::uint16_t other_port = free_port();
  const pid_t other = start_process(w.command({}, other_port));
  REQUIRE(eventually([&] { return port_open(other_port); }));
  const auto other_start = stat_of(other)->start;

  auto d = w.daemon();
  d.provision();
  const std::string forged = std::to_string(other) + " " + std::to_string(other_start + 12345) + "\n";
  spit(d.pid_file(), forged);
  CHECK_FALSE(d.is_running());
  CHECK_FALSE(d.pid().has_value());
  d.suspend(); // stale: removed, nothing signalled
  CHECK_FALSE(fs::exists(d.pid_file()));
  CHECK(alive(other));

  spit(d.pid_file(), forged);
  d.resume(); // starts its own daemon
  const pid_t ours = d.pid().value_or(0);
  CHECK(ours != other);
  CHECK(alive(ours));
  spit(d.pid_file(), forged);
  d.deprovision();
  CHECK_FALSE(fs::exists(w.state));
  CHECK(alive(other)); // SIGTERM would have ended it
  CHECK(port_open(other_port));
  // Our daemon's record was overwritten, so stackup has lost it; the sweeper ends it.
  ::kill(other, SIGKILL);
  ::waitpid(other, nullptr, 0);
}

TEST_CASE("local_daemon: a stale pid file is cleaned without signalling") {
  World w;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  REQUIRE(eventually([&] { return stat_of(child).has_value(); }));
  const auto start = stat_of(child)->start;
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);

  auto d = w.daemon();
  d.provision();
  spit(d.pid_file(), std::to_string(child) + " " + std::to_string(start) + "\n");
  CHECK_FALSE(d.is_running());
  d.suspend();
  CHECK_FALSE(fs::exists(d.pid_file()));

  spit(d.pid_file(), std::to_string(child) + " " + std::to_string(start) + "\n");
  d.resume(); // a stale record does not stop a fresh start
  CHECK(d.is_running());
  d.suspend();
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: garbage, empty, 0, 1, negative and huge pid files are clear errors; nothing is signalled") {
  World w;
  const std::uint16_t other_port = free_port();
  const pid_t other = start_process(w.command({}, other_port));
  REQUIRE(eventually([&] { return port_open(other_port); }));
  const std::string other_start = std::to_string(stat_of(other)->start);
  const std::string init_start = std::to_string(stat_of(1)->start);

  auto d = w.daemon();
  d.provision();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage", "hello world\n"},
      {"empty", ""},
      {"pid only", std::to_string(other) + "\n"},
      {"zero", "0 " + other_start + "\n"},
      {"init", "1 " + init_start + "\n"},
      {"negative", "-" + std::to_string(other) + " " + other_start + "\n"},
      {"huge", "99999999999999999999 " + other_start + "\n"},
      {"above pid_max", "4194305 " + other_start + "\n"},
      {"trailing junk", std::to_string(other) + " " + other_start + " x\n"},
  };
  for (const auto& one : cases) {
    const std::string& what = one.first;
    const std::string& content = one.second;
    CAPTURE(what);
    spit(d.pid_file(), content);
    const std::string message = error_of([&] { (void)d.is_running(); });
    REQUIRE(contains(message, d.pid_file().string()));
    CHECK(contains(message, "nothing was signalled"));
    CHECK(contains(message, "delete the pid file"));
    CHECK(contains(error_of([&] { (void)d.pid(); }), d.pid_file().string()));
    CHECK(contains(error_of([&] { d.suspend(); }), d.pid_file().string()));
    CHECK(contains(error_of([&] { d.deprovision(); }), d.pid_file().string()));
    CHECK(contains(error_of([&] { d.resume(); }), d.pid_file().string()));
    // Nothing deleted, nothing started, nothing signalled.
    CHECK(slurp(d.pid_file()) == content);
    CHECK(fs::exists(w.state / "config"));
    CHECK(alive(other));
    CHECK(alive(1));
    CHECK(w.processes() == std::vector<pid_t>{other});
  }
  CHECK(contains(error_of([&] {
                   spit(d.pid_file(), "0 1\n");
                   (void)d.is_running();
                 }),
                 "never a daemon's"));
  CHECK(contains(error_of([&] {
                   spit(d.pid_file(), "-5 1\n");
                   (void)d.is_running();
                 }),
                 "negative"));
  ::kill(other, SIGKILL);
  ::waitpid(other, nullptr, 0);
}

TEST_CASE("local_daemon: an unsafe state directory is refused") {
  World w;
  const fs::path real = w.tmp.path / "real";
  fs::create_directory(real);
  ::chmod(real.c_str(), 0700);

  SUBCASE("a symlink") {
    fs::create_directory_symlink(real, w.state);
    auto d = w.daemon();
    const std::string message = error_of([&] { d.provision(); });
    CHECK(contains(message, w.state.string()));
    CHECK(contains(message, "symlink"));
    CHECK(contains(error_of([&] { (void)d.is_running(); }), "symlink"));
    CHECK(fs::is_empty(real));
  }
  SUBCASE("world-writable") {
    fs::create_directory(w.state);
    ::chmod(w.state.c_str(), 0777);
    auto d = w.daemon();
    const std::string message = error_of([&] { d.provision(); });
    CHECK(contains(message, w.state.string()));
    CHECK(contains(message, "writable by group or others (mode 0777)"));
    CHECK(contains(message, "chmod 700"));
    CHECK(fs::is_empty(w.state));
  }
  SUBCASE("group-writable") {
    fs::create_directory(w.state);
    ::chmod(w.state.c_str(), 0770);
    auto d = w.daemon();
    CHECK(contains(error_of([&] { d.provision(); }), "writable by group or others"));
  }
  SUBCASE("a file") {
    spit(w.state, "not a directory");
    auto d = w.daemon();
    CHECK(contains(error_of([&] { d.provision(); }), "is not a directory"));
  }
  SUBCASE("a directory holding someone else's files") {
    fs::create_directory(w.state);
    ::chmod(w.state.c_str(), 0755);
    spit(w.state / "notes.txt", "mine\n");
    auto d = w.daemon();
    const std::string message = error_of([&] { d.provision(); });
    CHECK(contains(message, w.state.string()));
    CHECK(contains(message, "it has no stackup marker"));
    CHECK_FALSE(fs::exists(w.state / "lock"));
    CHECK_FALSE(fs::exists(w.state / "config"));
    struct stat st{};
    REQUIRE(::stat(w.state.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755); // untouched
    // Nor does deprovision touch it, not even a file with one of stackup's names.
    ::chmod(w.state.c_str(), 0700);
    spit(w.state / "daemon.log", "old log\n");
    CHECK(contains(error_of([&] { d.deprovision(); }), "it has no stackup marker"));
    CHECK(slurp(w.state / "daemon.log") == "old log\n");
    CHECK(slurp(w.state / "notes.txt") == "mine\n");
  }
  SUBCASE("the root or the home directory") {
    Daemon root{{.command = w.command(), .state_dir = "/"}};
    CHECK(contains(error_of([&] { root.provision(); }), "it is the root directory"));
    CHECK(contains(error_of([&] { root.deprovision(); }), "it is the root directory"));
    CHECK_FALSE(fs::exists("/config"));
    CHECK_FALSE(fs::exists("/lock"));

    const fs::path home = w.tmp.path / "home";
    fs::create_directory(home);
    ::chmod(home.c_str(), 0700);
    const char* old = std::getenv("HOME");
    const std::string saved = old != nullptr ? old : "";
    ::setenv("HOME", home.c_str(), 1);
    Daemon at_home{{.command = w.command(), .state_dir = home}};
    const std::string message = error_of([&] { at_home.provision(); });
    Daemon above_home{{.command = w.command(), .state_dir = w.tmp.path}};
    const std::string above = error_of([&] { above_home.deprovision(); });
    if (old != nullptr) ::setenv("HOME", saved.c_str(), 1);
    else ::unsetenv("HOME");
    CHECK(contains(message, "it is the home directory"));
    CHECK(contains(above, "holds the home directory"));
    CHECK(fs::is_empty(home));
  }
  SUBCASE("owned by another user") {
    fs::create_directory(w.state);
    ::chmod(w.state.c_str(), 0700);
    if (::geteuid() == 0 && ::chown(w.state.c_str(), 65534, 65534) == 0) {
      auto d = w.daemon();
      CHECK(contains(error_of([&] { d.provision(); }), "is owned by uid 65534"));
      CHECK(fs::is_empty(w.state));
    } else {
      MESSAGE("not root: cannot give a directory to another user; skipped");
    }
  }
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: two processes running up at the same moment start exactly one daemon") {
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    World w;
    processes::race(2, [&](int, const auto& go) {
      stackup::Stack s{"race", w.daemon()};
      go();
      s.up();
      return 0;
    });
    auto d = w.daemon();
    const auto processes = w.processes();
    CHECK(processes.size() == 1);
    CHECK(d.is_running());
    CHECK(processes == std::vector<pid_t>{d.pid().value_or(0)});
    d.deprovision();
    CHECK(eventually([&] { return w.processes().empty(); }));
  }
}

TEST_CASE("local_daemon: a host started with stdin, stdout and stderr closed starts, stops and runs commands") {
  World w;
  const fs::path result = w.tmp.path / "result";
  std::vector<std::string> argv{STACKUP_CLOSED_STDIO_PATH, result.string(), w.state.string(), std::to_string(w.port)};
  for (const auto& a : w.command()) argv.push_back(a);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(0);
    ::close(1);
    ::close(2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(slurp(result).value_or("no result") == "ok\n");
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // The daemon's output went to its log, not to a descriptor of the host (the
  // line it prints before it listens: it may be stopped before it says more).
  CHECK(contains(slurp(w.state / "daemon.log").value_or(""), "starting on port " + std::to_string(w.port)));
  CHECK(contains(slurp(w.state / "daemon.log").value_or(""), "stopped with SIGTERM"));
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a timeout of milliseconds::max() means wait, not overflow") {
  World w;
  constexpr auto forever = std::chrono::milliseconds::max();
  // Ready only after a while: resume waits for it.
  auto d = w.daemon({"--ready-after", "300", "--term-delay", "300"}, stackup::ready::tcp(w.port), forever, forever);
  d.provision();
  d.resume();
  const pid_t pid = d.pid().value_or(0);
  REQUIRE(alive(pid));
  CHECK(port_open(w.port));
  // Takes a while to exit after SIGTERM: suspend waits for it instead of killing it.
  d.suspend();
  CHECK_FALSE(alive(pid));
  const std::string log = slurp(d.log_file()).value_or("");
  CHECK(contains(log, "test_daemon: exiting after SIGTERM"));
  CHECK(contains(log, "stopped with SIGTERM"));
  CHECK_FALSE(contains(log, "SIGKILL"));
  // The config keeps the value, and another process reads it back.
  CHECK(Daemon::from_state_dir(w.state).config().start_timeout == forever);
  CHECK(Daemon::from_state_dir(w.state).config().stop_timeout == forever);
  d.deprovision();
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a zero or negative timeout means no wait") {
  World w;
  // Negative counts as zero, so the config file stays readable by another process.
  auto never_ready = w.daemon({"--ready-after", "600000"}, stackup::ready::tcp(w.port), -5s, -1ms);
  CHECK(never_ready.config().start_timeout == 0ms);
  CHECK(never_ready.config().stop_timeout == 0ms);
  never_ready.provision();
  CHECK(Daemon::from_state_dir(w.state).config().start_timeout == 0ms);
  CHECK(Daemon::from_state_dir(w.state).config().stop_timeout == 0ms);
  // start_timeout 0: not ready at the first look, so resume fails and stops it.
  CHECK(contains(error_of([&] { never_ready.resume(); }), "was not ready within 0ms"));
  CHECK(w.processes().empty());

  // stop_timeout 0: SIGKILL right after SIGTERM, although it would exit in time.
  auto slow_to_stop = w.daemon({"--term-delay", "600000"}, stackup::ready::tcp(w.port), 10s, 0ms);
  slow_to_stop.resume();
  const pid_t pid = slow_to_stop.pid().value_or(0);
  REQUIRE(alive(pid));
  slow_to_stop.suspend();
  CHECK_FALSE(alive(pid));
  CHECK(contains(slurp(slow_to_stop.log_file()).value_or(""), "stopped with SIGKILL: still running 0ms after SIGTERM"));

  // With no probe, zero is enough: the daemon is ready once started.
  Daemon quick{{.command = w.command(), .state_dir = w.tmp.path / "quick", .start_timeout = 0ms}};
  quick.provision();
  quick.resume();
  CHECK(quick.is_running());
  quick.deprovision();
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a state directory made by 0.1.0 (no marker) stays manageable with its daemon running") {
  World w;
  for (const std::string how : {"status, then down --force", "down and up again adopt it"}) {
    CAPTURE(how);
    // 0.1.0 wrote the same files minus the marker: build one, with a live daemon.
    {
      auto d = w.daemon();
      d.provision();
      d.resume();
    }
    REQUIRE(fs::remove(w.state / Daemon::marker));
    REQUIRE(slurp(w.state / "config").value_or("").rfind("stackup local_daemon config 1\n", 0) == 0);
    const pid_t pid = Daemon::from_state_dir(w.state).pid().value_or(0);
    REQUIRE(alive(pid));

    stackup::Stack s{"legacy", w.daemon()};
    CHECK(s.status()[0].state == stackup::State::running);
    CHECK(run({STACKUP_DAEMON_QUERY_PATH, w.state.string()}).out == "running " + std::to_string(pid) + "\n");
    if (how == "down and up again adopt it") {
      s.down();
      CHECK_FALSE(alive(pid));
      CHECK_FALSE(fs::exists(w.state / Daemon::marker));
      s.up(); // resume writes the marker: the directory is now provably stackup's
      CHECK(s.get<"orchestrator">().is_running());
      CHECK(contains(slurp(w.state / Daemon::marker).value_or(""), "created by stackup"));
    }
    s.down({.force = true});
    CHECK_FALSE(alive(pid));
    CHECK_FALSE(fs::exists(w.state));
    CHECK(w.processes().empty());
  }
}

TEST_CASE("local_daemon: a deprovision killed between moving the state directory away and removing it is finished later") {
  World w;
  // The pid of a process that has ended: a deprovision that was killed.
  const auto dead_pid = [] {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(0);
    REQUIRE(::waitpid(pid, nullptr, 0) == pid);
    return pid;
  };
  const pid_t dead = dead_pid();
  const auto leftover = [&](std::string_view owner_pid, bool legacy) {
    auto d = w.daemon();
    d.provision();
    spit(w.state / "daemon.log", "a log\n");
    fs::create_directories(w.state / "data" / "deep");
    spit(w.state / "data" / "deep" / "file", "x\n");
    if (legacy) fs::remove(w.state / Daemon::marker);
    fs::path moved = w.state;
    moved += ".removing-" + std::string(owner_pid);
    fs::rename(w.state, moved);
    return moved;
  };
  const fs::path stale = leftover(std::to_string(dead), false);
  const fs::path stale_legacy = leftover(std::to_string(dead_pid()), true); // as 0.1.0 left it
  // Not provably stackup's, or its deprovision may still be running: left alone.
  const fs::path busy = leftover(std::to_string(::getpid()), false);
  fs::path foreign = w.state;
  foreign += ".removing-" + std::to_string(dead) + "1";
  fs::create_directory(foreign);
  ::chmod(foreign.c_str(), 0700);
  spit(foreign / "config", "not stackup's\n");
  fs::path unrelated = w.state;
  unrelated += ".removing-backup";
  fs::create_directory(unrelated);
  spit(unrelated / Daemon::marker, "created by stackup\n");

  SUBCASE("provision cleans up") { w.daemon().provision(); }
  SUBCASE("deprovision cleans up") {
    auto d = w.daemon();
    d.provision();
    d.deprovision();
    CHECK_FALSE(fs::exists(w.state));
  }
  SUBCASE("deprovision cleans up even with no state directory") { w.daemon().deprovision(); }
  CHECK_FALSE(fs::exists(stale));
  CHECK_FALSE(fs::exists(stale_legacy));
  CHECK(fs::exists(busy / Daemon::marker));
  CHECK(slurp(foreign / "config") == "not stackup's\n");
  CHECK(fs::exists(unrelated / Daemon::marker));
}

// ---- user: running the daemon as another user ------------------------------------------

namespace {

// The fields of the line `name:` of /proc/<pid>/status ("Uid", "Gid", "Groups").
std::vector<long> status_numbers(pid_t pid, std::string_view name) {
  const std::string text = slurp("/proc/" + std::to_string(pid) + "/status").value_or("");
  const std::string key = "\n" + std::string(name) + ":";
  const auto at = text.find(key);
  if (at == std::string::npos) return {};
  std::istringstream in(text.substr(at + key.size(), text.find('\n', at + 1) - at - key.size()));
  std::vector<long> out;
  for (long n = 0; in >> n;) out.push_back(n);
  return out;
}

// What `id -G USER` prints, run by this process rather than by stackup, sorted.
std::vector<long> groups_of(const std::string& user) {
  const Ran r = run({"/usr/bin/id", "-G", user});
  REQUIRE(r.status == 0);
  std::istringstream in(r.out);
  std::vector<long> out;
  for (long n = 0; in >> n;) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<long> sorted(std::vector<long> v) {
  std::sort(v.begin(), v.end());
  return v;
}


} // namespace

TEST_CASE("local_daemon: user runs the daemon as that user: /proc/<pid>/status has its uid, gid and groups") {
  if (!users::root_or_skip()) return;
  for (const users::Account& account : users::other_users()) {
    const std::string& user = account.name;
    CAPTURE(user);
    const long uid = account.uid, gid = account.gid;
    const std::string& home = account.home;
    World w;
    Daemon d{{.name = "web",
              .command = w.command(),
              .state_dir = w.state,
              .ready = stackup::ready::http(w.port, "/health"),
              .working_dir = "/",
              .user = user}};
    d.provision();
    d.resume();
    REQUIRE(d.pid().has_value());
    const pid_t pid = *d.pid();
    CHECK(d.is_running());
    CHECK(status_numbers(pid, "Uid") == std::vector<long>{uid, uid, uid, uid});
    CHECK(status_numbers(pid, "Gid") == std::vector<long>{gid, gid, gid, gid});
    CHECK(sorted(status_numbers(pid, "Groups")) == groups_of(user));
    const std::string env = slurp("/proc/" + std::to_string(pid) + "/environ").value_or("");
    CHECK(contains(env, std::string("HOME=") + home + '\0'));
    CHECK(contains(env, std::string("USER=") + user + '\0'));
    CHECK(contains(env, std::string("LOGNAME=") + user + '\0'));
    // It writes to daemon.log (root's, mode 0600) through the descriptor it was started with.
    CHECK(eventually([&] {
      return contains(slurp(d.log_file()).value_or(""), "listening on 127.0.0.1:" + std::to_string(w.port));
    }));
    // Another process that knows only the state directory starts it as the same user.
    CHECK(Daemon::from_state_dir(w.state).config().user == user);
    d.suspend();
    CHECK_FALSE(alive(pid));
    d.deprovision();
    CHECK(w.processes().empty());
  }
}

TEST_CASE("local_daemon: user empty or the current user changes nothing") {
  const passwd* me = ::getpwuid(::geteuid());
  REQUIRE(me != nullptr);
  // A value no login would give, so that any change shows.
  const std::optional<std::string> home_before =
      std::getenv("HOME") != nullptr ? std::optional<std::string>(std::getenv("HOME")) : std::nullopt;
  ::setenv("HOME", "/stackup-test-home", 1);
  struct Restore {
    const std::optional<std::string>& home;
    ~Restore() {
      if (home) ::setenv("HOME", home->c_str(), 1);
      else ::unsetenv("HOME");
    }
  } restore{home_before};
  for (const std::string& user : {std::string(), std::string(me->pw_name)}) {
    CAPTURE(user);
    World w;
    Daemon d{{.command = w.command(), .state_dir = w.state, .ready = stackup::ready::tcp(w.port), .user = user}};
    d.provision();
    d.resume();
    REQUIRE(d.pid().has_value());
    const long uid = ::geteuid();
    CHECK(status_numbers(*d.pid(), "Uid") == std::vector<long>{uid, uid, uid, uid});
    const std::string env = slurp("/proc/" + std::to_string(*d.pid()) + "/environ").value_or("");
    CHECK(contains(env, std::string("HOME=/stackup-test-home") + '\0'));
    d.deprovision();
    CHECK(w.processes().empty());
  }
}

TEST_CASE("local_daemon: a user that does not exist is an error naming it; nothing starts") {
  World w;
  Daemon d{{.name = "web", .command = w.command(), .state_dir = w.state, .user = "stackup-no-such-user"}};
  d.provision();
  CHECK(error_of([&] { d.resume(); }) ==
        "stackup: local_daemon 'web' (orchestrator): there is no user 'stackup-no-such-user' on this system (see "
        "`getent passwd stackup-no-such-user`): create it, or fix or remove `user`");
  CHECK_FALSE(fs::exists(d.pid_file()));
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: another user without root is an error naming the component and the fix") {
  World w;
  // "root" is another user for anyone but root.
  const std::string message = users::error_without_root([&] {
    Daemon d{{.name = "web", .command = w.command(), .state_dir = w.state, .user = "root"}};
    d.resume();
  });
  const std::string me = users::unprivileged_user_name();
  CHECK(message == "stackup: local_daemon 'web' (orchestrator): running as user 'root' needs root, and this process "
                   "runs as '" + me + "': run stackup as root, or remove `user` to run it as '" + me + "'");
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: a working_dir the user cannot enter is a TransitionError naming the directory and the user") {
  if (!users::root_or_skip()) return;
  REQUIRE(::getpwnam("nobody") != nullptr);
  World w; // its directory is root's, mode 0700: nobody cannot enter it
  Daemon d{{.name = "web", .command = w.command(), .state_dir = w.state, .working_dir = w.tmp.path, .user = "nobody"}};
  d.provision();
  const std::string message = error_of([&] { d.resume(); });
  CHECK(message == "stackup: local_daemon 'web' (orchestrator): cannot start '" + std::string(STACKUP_TEST_DAEMON_PATH) +
                       "': change to its working directory failed: Permission denied (working_dir '" +
                       w.tmp.path.string() +
                       "', as user 'nobody': that user must be allowed to enter it and every directory above it)");
  CHECK_THROWS_AS(d.resume(), stackup::TransitionError);
  CHECK_FALSE(fs::exists(d.pid_file()));
  CHECK(w.processes().empty());
}

TEST_CASE("local_daemon: keep: down(dependency, keep) stops the dependency's process; its dependent's runs on") {
  World w;
  const std::uint16_t web_port = free_port();
  stackup::DynamicStack s("local", [&] {
    std::vector<stackup::AnyComponent> parts;
    parts.emplace_back("db", w.daemon());
    parts.emplace_back("web", Daemon{{.name = "web",
                                      .command = w.command({}, web_port),
                                      .state_dir = w.tmp.path / "web_state",
                                      .ready = stackup::ready::http(web_port, "/health"),
                                      .start_timeout = 10s,
                                      .stop_timeout = 5s}},
                       std::vector<std::string>{"db"});
    return parts;
  }());
  s.up();
  const pid_t db = s.get("db").target<Daemon>()->pid().value_or(0);
  const pid_t web = s.get("web").target<Daemon>()->pid().value_or(0);
  REQUIRE(db > 1);
  REQUIRE(web > 1);
  s.down("db", {.dependents = stackup::Dependents::keep});
  CHECK(eventually([&] { return !alive(db); }));
  CHECK(alive(web));
  CHECK(s.get("web").target<Daemon>()->is_running());
  CHECK(port_open(web_port));
  s.down({.force = true});
  CHECK(w.processes().empty());
}
