// stackup::supervise (DESIGN §10) against real processes: exits seen through a
// pidfd or by polling, restart policies, back-off and its reset, max within a
// window, liveness probes, dependents that restart with their dependency, "a
// down always wins", a restart that fails, the wake descriptor, OnExit::abort;
// and the supervisor's record and down marks. No threads: the loop is stopped
// by a token that looks at what the test counts (or a ceiling for a broken
// loop), never by a wall-clock assertion.
#include <stackup/stackup.hpp>
#include <stackup/supervise.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace sv = stackup::detail::supervision;
using namespace std::chrono_literals;
using Kind = stackup::SupervisionEvent::Kind;
using processes::Scratch;
using stackup::Restart;

// ---- a component backed by a real child process -------------------------------------------

// What a Proc shares with its copies (a stack holds a copy): its process and counts.
struct ProcState {
  std::string script;     // run with /bin/sh -c
  pid_t pid = 0;          // running child, or 0
  int starts = 0;         // resumes that started a process
  int resumes = 0;        // resumes tried (a failing one too)
  int suspends = 0;
  bool fail_after_first = false; // every resume but the first throws
  bool no_fd = false;             // exit_fd() is -1 (as without pidfds): polled
  std::optional<stackup::Exit> exit{};

  ProcState() = default;
  ProcState(const ProcState&) = delete;
  ProcState& operator=(const ProcState&) = delete;
  // A test that ends with its process running leaves nothing behind: the child
  // leads a process group of its own (a shell's children included), killed here.
  ~ProcState() {
    if (pid <= 0) return;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

// A component whose process is a child of the test: exit_fd() is a pidfd,
// exit_status() what waitid says; a suspend (a down) leaves no exit behind.
template <stackup::FixedString R, stackup::FixedString... Deps>
struct Proc : stackup::StackComponent<Proc<R, Deps...>> {
  static constexpr std::string_view role = R;
  static constexpr std::array<std::string_view, sizeof...(Deps)> depends_on{std::string_view(Deps)...};

  std::shared_ptr<ProcState> s = std::make_shared<ProcState>();
  stackup::SupervisionConfig config{};

  bool is_provisioned() const { return true; }
  bool is_running() const {
    reap();
    return s->pid > 0;
  }
  void resume() {
    ++s->resumes;
    if (s->fail_after_first && s->resumes > 1) throw std::runtime_error("resume refused");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);
      ::execl("/bin/sh", "sh", "-c", s->script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid, pid); // as the child does: whichever runs first
    s->pid = pid;
    s->exit.reset();
    ++s->starts;
  }
  void suspend() {
    ++s->suspends;
    if (s->pid > 0) {
      ::kill(-s->pid, SIGKILL);
      ::waitpid(s->pid, nullptr, 0);
    }
    s->pid = 0;
    s->exit.reset(); // a down is not an exit
  }
  int exit_fd() const {
    if (s->pid <= 0 || s->no_fd) return -1;
    return static_cast<int>(::syscall(SYS_pidfd_open, s->pid, 0U));
  }
  std::optional<stackup::Exit> exit_status() const {
    reap();
    return s->exit;
  }
  stackup::SupervisionConfig supervision() const { return config; }

private:
  void reap() const {
    if (s->pid <= 0) return;
    siginfo_t si{};
    if (::waitid(P_PID, static_cast<id_t>(s->pid), &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0) return;
    stackup::Exit e;
    if (si.si_code == CLD_EXITED) e.code = si.si_status;
    else e.signal = si.si_status;
    e.at = std::chrono::system_clock::now();
    s->exit = e;
    s->pid = 0;
  }
};

// ---- stopping the loop ------------------------------------------------------------------------

// A stop token that is requested once `done()` holds, or past a ceiling (a loop
// that never gets there fails the test's checks instead of hanging it).
struct Until {
  std::function<bool()> done;
  std::chrono::steady_clock::time_point ceiling = std::chrono::steady_clock::now() + 20s;
  mutable int asked = 0;
  mutable bool latched = false; // once requested, a stop stays requested (as std::stop_token's)
  bool stop_requested() const {
    ++asked;
    if (!latched) latched = std::chrono::steady_clock::now() >= ceiling || (done && done());
    return latched;
  }
  bool stop_possible() const { return true; }
};

// The events a loop reported.
struct Events {
  std::vector<stackup::SupervisionEvent> all;
  [[nodiscard]] int count(Kind k, std::string_view role = {}) const {
    int n = 0;
    for (const auto& e : all)
      if (e.kind == k && (role.empty() || e.role == role)) ++n;
    return n;
  }
  [[nodiscard]] std::vector<stackup::SupervisionEvent> of(Kind k, std::string_view role = {}) const {
    std::vector<stackup::SupervisionEvent> out;
    for (const auto& e : all)
      if (e.kind == k && (role.empty() || e.role == role)) out.push_back(e);
    return out;
  }
  std::function<void(const stackup::SupervisionEvent&)> observer() {
    return [this](const stackup::SupervisionEvent& e) {
      all.push_back(e); // its views point into the stack, which outlives this
    };
  }
};

stackup::RestartPolicy policy(Restart r, std::chrono::milliseconds backoff = 10ms) {
  stackup::RestartPolicy p;
  p.policy = r;
  p.backoff = backoff;
  return p;
}

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

std::size_t lines_of(const fs::path& p) {
  const auto text = files::slurp(p);
  return text ? static_cast<std::size_t>(std::count(text->begin(), text->end(), '\n')) : 0;
}

using A = Proc<"a">;
using B = Proc<"b", "a">;
using C = Proc<"c">;

} // namespace

// ---- exits, policies, back-off ----------------------------------------------------------------

TEST_CASE("supervise: an exit is seen through exit_fd and on-failure restarts it with a new process") {
  Scratch w("supervise");
  A a;
  a.s->script = "sleep 0.2; exit 3";
  stackup::Stack<A> s("local", a);
  CHECK(s.view().reports_exits("a"));
  s.up();
  const pid_t first = a.s->pid;
  Events ev;
  Until until{[&] { return ev.count(Kind::exited) >= 2; }};
  const auto r = stackup::supervise(
      s, {.stop = &until, .policies = {{"a", policy(Restart::on_failure)}}, .on_event = ev.observer()});
  CHECK(r.stopped);
  REQUIRE(ev.all.size() >= 3);
  CHECK(ev.all[0].kind == Kind::exited);
  REQUIRE(ev.all[0].exit);
  CHECK(ev.all[0].exit->code == 3);
  CHECK(ev.all[1].kind == Kind::restarting);
  CHECK(ev.all[1].delay == 10ms);
  CHECK(ev.all[1].restarts == 1);
  CHECK(ev.all[2].kind == Kind::exited);
  CHECK(a.s->starts == 2);
  CHECK(a.s->pid != first);
}

TEST_CASE("supervise: always restarts after exit status 0, on-failure does not, no only records the exit") {
  Scratch w("supervise");
  A a;
  B b; // depends on a; it is the policy that matters here
  C c;
  a.s->script = b.s->script = c.s->script = "sleep 0.1; exit 0";
  // c has no restart policy: a liveness probe (never due here) makes it watched.
  c.config.liveness.kind = stackup::Liveness::Kind::tcp;
  c.config.liveness.port = 1;
  c.config.liveness.period = 1h;
  stackup::Stack<A, B, C> s("local", a, b, c);
  s.up();
  Events ev;
  Until until{[&] { return a.s->starts >= 3 && ev.count(Kind::exited, "b") >= 1 && ev.count(Kind::exited, "c") >= 1; }};
  const auto r = stackup::supervise(s, {.stop = &until,
                                        .policies = {{"a", policy(Restart::always)}, {"b", policy(Restart::on_failure)}},
                                        .on_event = ev.observer(),
                                        .state_dir = w.path / "state"});
  CHECK(r.stopped);
  CHECK(a.s->starts >= 3);
  CHECK(b.s->starts == 1);
  CHECK(c.s->starts == 1);
  CHECK(ev.count(Kind::restarting, "b") == 0);
  CHECK(ev.count(Kind::restarting, "c") == 0);
  REQUIRE(ev.count(Kind::exited, "c") == 1);
  CHECK(ev.of(Kind::exited, "c")[0].exit->code == 0);
  // The record says what it saw, and that no supervisor watches any more.
  const auto rows = sv::read_record(w.path / "state");
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  CHECK((*rows)[2].role == "c");
  REQUIRE((*rows)[2].exit);
  CHECK((*rows)[2].exit->code == 0);
  for (const auto& row : *rows) CHECK(row.state == stackup::SupervisionState::none);
}

TEST_CASE("supervise: a command that exits at once is restarted with back-off, never in a hot loop") {
  Scratch w("supervise");
  const fs::path log = w.path / "starts";
  A a;
  a.s->script = "echo start >> '" + log.string() + "'; exit 1";
  stackup::Stack<A> s("local", a);
  s.up();
  auto p = policy(Restart::on_failure, 50ms);
  p.max_backoff = 400ms;
  p.max = 0; // no limit: only the back-off holds it
  Until until{{}, std::chrono::steady_clock::now() + 1500ms};
  Events ev;
  (void)stackup::supervise(s, {.stop = &until, .policies = {{"a", p}}, .on_event = ev.observer()});
  const auto n = lines_of(log);
  CHECK(n >= 3); // it was restarted
  CHECK(n <= 8); // 50+100+200+400+400 ms: a hot loop would start it hundreds of times
  // Each delay doubles, up to max_backoff.
  const auto r = ev.of(Kind::restarting);
  REQUIRE(r.size() >= 3);
  CHECK(r[0].delay == 50ms);
  CHECK(r[1].delay == 100ms);
  CHECK(r[2].delay == 200ms);
  for (const auto& e : r) CHECK(e.delay <= 400ms);
}

TEST_CASE("supervise: max restarts within the window make it failed; the rest of the stack keeps running") {
  Scratch w("supervise");
  A a;
  C c;
  a.s->script = "exit 1";
  c.s->script = "sleep 100";
  stackup::Stack<A, C> s("local", a, c);
  s.up();
  auto p = policy(Restart::on_failure);
  p.max = 3;
  p.within = 1min;
  Events ev;
  std::optional<std::chrono::steady_clock::time_point> failed_at;
  Until until{[&] {
    if (!failed_at && ev.count(Kind::failed) > 0) failed_at = std::chrono::steady_clock::now();
    return failed_at && std::chrono::steady_clock::now() - *failed_at > 300ms; // room for a 5th start, if any
  }};
  (void)stackup::supervise(s, {.stop = &until,
                               .policies = {{"a", p}, {"c", policy(Restart::always)}},
                               .poll = 50ms,
                               .on_event = ev.observer()});
  CHECK(a.s->starts == 4); // the first and 3 restarts
  CHECK(ev.count(Kind::failed, "a") == 1);
  CHECK(ev.count(Kind::restarting, "a") == 3);
  CHECK(ev.of(Kind::failed, "a")[0].restarts == 3);
  CHECK(c.s->pid > 0);
  CHECK(s.view().state("c") == stackup::State::running);
  CHECK(c.s->starts == 1);
}

TEST_CASE("supervise: a run that lasts reset_after starts the back-off again from backoff") {
  Scratch w("supervise");
  A a;
  a.s->script = "sleep 0.3; exit 1";
  stackup::Stack<A> s("local", a);
  s.up();
  auto p = policy(Restart::on_failure, 20ms);
  p.reset_after = 100ms;
  p.max = 0;
  Events ev;
  Until until{[&] { return ev.count(Kind::restarting) >= 3; }};
  (void)stackup::supervise(s, {.stop = &until, .policies = {{"a", p}}, .on_event = ev.observer()});
  const auto r = ev.of(Kind::restarting);
  REQUIRE(r.size() == 3);
  for (const auto& e : r) CHECK(e.delay == 20ms); // without the reset: 20, 40, 80
  CHECK(r[2].restarts == 3);
}

// ---- polling, liveness, cascades --------------------------------------------------------------

TEST_CASE("supervise: a Command, which has no exit_fd, is polled; a restart runs its resume again") {
  Scratch w("supervise");
  const fs::path marker = w.path / "running", count = w.path / "count";
  // Each start runs for a while, then stops on its own (its marker goes).
  stackup::Command<"a"> cmd{{
      .resume = "echo x >> '" + count.string() + "'; touch '" + marker.string() + "'; (sleep 0.3; rm -f '" +
                marker.string() + "') >/dev/null 2>&1 &",
      .suspend = "rm -f '" + marker.string() + "'",
      .is_running = "test -f '" + marker.string() + "'",
  }};
  stackup::Stack<stackup::Command<"a">> s("local", cmd);
  s.up();
  CHECK(s.view().exit_fd("a") == -1);
  CHECK_FALSE(s.view().reports_exits("a")); // so a stop it cannot explain is an exit, not a down
  Events ev;
  Until until{[&] { return ev.count(Kind::exited) >= 2; }};
  (void)stackup::supervise(s, {.stop = &until,
                               .policies = {{"a", policy(Restart::always)}},
                               .poll = 50ms,
                               .on_event = ev.observer()});
  CHECK(lines_of(count) == 2);
  REQUIRE(ev.count(Kind::exited) == 2);
  const auto e = ev.of(Kind::exited)[0].exit;
  REQUIRE(e);
  CHECK_FALSE(e->code);
  CHECK_FALSE(e->error.empty()); // how it ended is not known: said so
}

TEST_CASE("supervise: a liveness probe that fails `failures` times in a row stops it; its policy restarts it") {
  Scratch w("supervise");
  A a;
  a.s->script = "exec sleep 100";
  SUBCASE("exec") {
    a.config.liveness.kind = stackup::Liveness::Kind::exec;
    a.config.liveness.exec = "test -f '" + (w.path / "healthy").string() + "'";
  }
#ifdef STACKUP_TEST_DAEMON_PATH // (not in builds without the test programs)
  SUBCASE("http: a daemon that answers 503") {
    const auto port = ports::free_port();
    a.s->script = std::string("exec '") + STACKUP_TEST_DAEMON_PATH + "' --port " + std::to_string(port) +
                  " --unhealthy --tag '" + w.path.string() + "'";
    a.config.liveness.kind = stackup::Liveness::Kind::http;
    a.config.liveness.port = port;
    a.config.liveness.path = "/health";
  }
#endif
  SUBCASE("tcp: nothing listens") {
    a.config.liveness.kind = stackup::Liveness::Kind::tcp;
    a.config.liveness.port = ports::free_port();
  }
  a.config.liveness.period = 20ms;
  a.config.liveness.failures = 2;
  a.config.restart = policy(Restart::on_failure);
  stackup::Stack<A> s("local", a);
  s.up();
  Events ev;
  Until until{[&] { return ev.count(Kind::unhealthy) >= 3; }};
  (void)stackup::supervise(s, {.stop = &until, .on_event = ev.observer()});
  CHECK(ev.count(Kind::unhealthy) == 3);
  const auto u = ev.of(Kind::unhealthy);
  CHECK(u[0].restarts == 1);
  CHECK(u[1].restarts == 2);
  CHECK_FALSE(u[0].message.empty());
  REQUIRE(ev.count(Kind::exited) == 1);
  const auto e = ev.of(Kind::exited)[0].exit;
  REQUIRE(e);
  CHECK(e->liveness == u[1].message);
  CHECK(e->failed());
  CHECK(a.s->suspends == 1); // stopped first
  CHECK(a.s->starts == 2);   // then restarted by its policy
}

TEST_CASE("supervise: on_dependency_restart = restart suspends the dependent and resumes it after") {
  Scratch w("supervise");
  A a;
  B b;
  const fs::path once = w.path / "once";
  // a ends once (its first run), then keeps running.
  a.s->script = "if [ -f '" + once.string() + "' ]; then exec sleep 100; fi; touch '" + once.string() +
                "'; sleep 0.2; exit 1";
  b.s->script = "exec sleep 100";
  std::vector<std::string> actions;
  bool cascade = false;
  SUBCASE("restart") { cascade = true; }
  SUBCASE("ignore") { cascade = false; }
  if (cascade) b.config.on_dependency_restart = stackup::OnDependencyRestart::restart;
  stackup::Stack<A, B> s("local", a, b);
  s.up();
  const pid_t b_pid = b.s->pid;
  s.on_event([&](const stackup::Event& e) {
    if (e.outcome == stackup::Outcome::succeeded)
      actions.push_back(std::string(stackup::to_string(e.transition)) + " " + std::string(e.role));
  });
  Until until{[&] { return a.s->starts >= 2 && b.s->pid > 0 && (!cascade || b.s->starts >= 2); }};
  (void)stackup::supervise(s, {.stop = &until,
                               .policies = {{"a", policy(Restart::always)}, {"b", policy(Restart::always)}}});
  CHECK(a.s->starts == 2);
  std::string seen;
  for (const auto& x : actions) seen += x + "; ";
  INFO("actions: ", seen);
  if (cascade) {
    CHECK(actions == std::vector<std::string>{"suspend b", "resume a", "resume b"});
    CHECK(b.s->pid != b_pid);
  } else {
    CHECK(actions == std::vector<std::string>{"resume a"});
    CHECK(b.s->pid == b_pid);
    CHECK(b.s->starts == 1);
  }
}

// ---- a down wins; failing restarts; stopping ---------------------------------------------------

TEST_CASE("supervise: a role marked down by another process is not restarted") {
  Scratch w("supervise");
  A a;
  a.s->script = "exec sleep 100";
  stackup::Stack<A> s("local", a);
  s.up();
  const fs::path state = w.path / "state";
  const pid_t target = a.s->pid;
  // Another process marks it down, then stops it (as `stackctl a down` does).
  const pid_t other = ::fork();
  REQUIRE(other >= 0);
  if (other == 0) {
    ::usleep(200'000);
    try {
      sv::mark_down(state, "a");
    } catch (...) {
      ::_exit(1);
    }
    ::kill(target, SIGTERM);
    ::_exit(0);
  }
  Events ev;
  std::optional<std::chrono::steady_clock::time_point> gone;
  Until until{[&] {
    if (!gone && ::waitpid(other, nullptr, WNOHANG) == other) gone = std::chrono::steady_clock::now();
    return gone && std::chrono::steady_clock::now() - *gone > 300ms; // many back-offs of 10ms
  }};
  (void)stackup::supervise(s, {.stop = &until,
                               .policies = {{"a", policy(Restart::always)}},
                               .poll = 20ms,
                               .on_event = ev.observer(),
                               .state_dir = state});
  CHECK(a.s->starts == 1);
  CHECK(ev.count(Kind::restarting) == 0);
  CHECK(ev.count(Kind::exited) == 0); // a down is not an exit
}

TEST_CASE("supervise: a down (no exit left behind) wins; a later up is watched again") {
  Scratch w("supervise");
  A a;
  a.s->script = "exec sleep 100";
  SUBCASE("seen through its exit descriptor") {}
  SUBCASE("polled: it has no exit descriptor, but reports its exits") { a.s->no_fd = true; }
  stackup::Stack<A> s("local", a);
  s.up();
  // down() from this process: the loop sees the descriptor turn readable with no exit.
  Events ev;
  const fs::path state = w.path / "state";
  // Where the loop stands with a, as its record says.
  const auto shown = [&] {
    const auto rows = sv::read_record(state);
    return rows && rows->size() == 1 ? (*rows)[0].state : stackup::SupervisionState::failed;
  };
  int phase = 0;
  // Called by the loop between its steps (never inside an up: none runs before the kill).
  Until until{[&] {
    if (phase == 0 && shown() == stackup::SupervisionState::watching) {
      s.down("a"); // from this process: the descriptor turns readable with no exit behind
      phase = 1;
    } else if (phase == 1 && shown() == stackup::SupervisionState::none) { // seen as a down
      s.up("a"); // its next up: watched again
      phase = 2;
    } else if (phase == 2 && shown() == stackup::SupervisionState::watching) {
      ::kill(a.s->pid, SIGKILL);
      phase = 3;
    }
    return phase == 3 && ev.count(Kind::restarting) >= 1 && a.s->starts >= 3;
  }};
  (void)stackup::supervise(s, {.stop = &until,
                               .policies = {{"a", policy(Restart::always)}},
                               .poll = 10ms,
                               .on_event = ev.observer(),
                               .state_dir = state});
  CHECK(ev.count(Kind::exited) == 1);
  REQUIRE(ev.of(Kind::exited).size() == 1);
  CHECK(ev.of(Kind::exited)[0].exit->signal == SIGKILL);
  CHECK(a.s->starts == 3); // up, the test's up, the restart after the kill
}

TEST_CASE("supervise: a restart that fails counts as an exit and ends in failed after max") {
  Scratch w("supervise");
  A a;
  a.s->script = "sleep 0.1; exit 1";
  a.s->fail_after_first = true;
  stackup::Stack<A> s("local", a);
  s.up();
  auto p = policy(Restart::on_failure);
  p.max = 3;
  Events ev;
  Until until{[&] { return ev.count(Kind::failed) >= 1; }};
  (void)stackup::supervise(s, {.stop = &until, .policies = {{"a", p}}, .on_event = ev.observer()});
  CHECK(a.s->resumes == 4); // the up and 3 restarts, each of which failed
  CHECK(ev.count(Kind::failed) == 1);
  const auto ex = ev.of(Kind::exited);
  REQUIRE(ex.size() == 4);
  CHECK(ex[0].exit->code == 1);
  for (std::size_t i = 1; i < ex.size(); ++i) CHECK(ex[i].exit->error.find("resume refused") != std::string::npos);
}

TEST_CASE("supervise: a stop with a wake descriptor is seen when it is written, and no descriptor is left open") {
  Scratch w("supervise");
  A a;
  a.s->script = "exec sleep 100";
  stackup::Stack<A> s("local", a);
  s.up();
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(wake >= 0);
  const std::size_t before = open_fds();
  // Another process writes the descriptor a second later (a signal handler would).
  const pid_t writer = ::fork();
  REQUIRE(writer >= 0);
  if (writer == 0) {
    ::usleep(1'000'000);
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake, &one, sizeof one);
    ::_exit(0);
  }
  Until until{[&] {
    pollfd p{wake, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }};
  const auto r = stackup::supervise(s, {.stop = &until, .policies = {{"a", policy(Restart::always)}}, .wake_fd = wake,
                                        .state_dir = w.path / "state"});
  ::waitpid(writer, nullptr, 0);
  CHECK(r.stopped);
  // Idle while it waited: no look at the token every 100 ms (a second of it would be 10 or more).
  CHECK(until.asked <= 8);
  CHECK(open_fds() == before);
  ::close(wake);
  CHECK(a.s->pid > 0); // never brings anything down when it returns
}

TEST_CASE("supervise: OnExit::abort returns the first exit; an unknown role in policies is an error") {
  Scratch w("supervise");
  A a;
  C c;
  a.s->script = "sleep 0.1; exit 7";
  c.s->script = "exec sleep 100";
  stackup::Stack<A, C> s("local", a, c);
  s.up();
  Until until{};
  const auto r = stackup::supervise(s, {.stop = &until, .on_exit = stackup::OnExit::abort});
  CHECK_FALSE(r.stopped);
  CHECK(r.role == "a");
  REQUIRE(r.exit);
  CHECK(r.exit->code == 7);
  CHECK(a.s->starts == 1); // not restarted
  CHECK(c.s->pid > 0);

  const auto message = messages::error_of([&] { (void)stackup::supervise(s, {.policies = {{"nope", {}}}}); });
  CHECK(messages::contains(message, "nope"));
  CHECK(messages::contains(message, "policies"));
  CHECK_THROWS_AS((void)stackup::supervise(s, {.policies = {{"nope", {}}}}), stackup::UnknownComponentError);
}

TEST_CASE("supervise: without a stop token it returns once nothing is left to restart") {
  Scratch w("supervise");
  A a;
  a.s->script = "exit 1";
  stackup::Stack<A> s("local", a);
  s.up();
  auto p = policy(Restart::on_failure);
  p.max = 1;
  const auto r = stackup::supervise(s, {.policies = {{"a", p}}});
  CHECK(r.stopped);
  CHECK(a.s->starts == 2);
}

// ---- the record and the down marks ----------------------------------------------------------

TEST_CASE("supervision record: round trip, and anything else is refused") {
  stackup::Exit code;
  code.code = 3;
  code.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1733572801123));
  stackup::Exit sig;
  sig.signal = 9;
  stackup::Exit live;
  live.liveness = "http 127.0.0.1:8090/health: no 2xx answer within 1s";
  stackup::Exit err;
  err.error = "line one\nline \\two";
  const std::vector<sv::Row> rows{{"cache", stackup::SupervisionState::watching, 2, code},
                                   {"my role", stackup::SupervisionState::backing_off, 1, live},
                                   {"w", stackup::SupervisionState::failed, 5, sig},
                                   {"e", stackup::SupervisionState::failed, 5, err},
                                   {"db", stackup::SupervisionState::none, 0, std::nullopt}};
  const std::string text = sv::format_record(rows);
  CHECK(text.starts_with("stackup supervision 1\ncache watching 2 code 1733572801123 3\n"));
  CHECK(text.ends_with("db none 0 -\nend\n"));
  const auto back = sv::parse_record(text);
  REQUIRE(back);
  REQUIRE(back->size() == rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) CHECK(sv::same_row((*back)[i], rows[i]));
  CHECK(sv::parse_record("stackup supervision 1\nend\n")->empty());

  for (const std::string_view bad : {
           "", "stackup supervision 2\nend\n", "stackup supervision 1\n", "stackup supervision 1\nend",
           "stackup supervision 1\nend\nx\n", "stackup supervision 1\na watching 0 -\na watching 0 -\nend\n",
           "stackup supervision 1\na sleeping 0 -\nend\n", "stackup supervision 1\na watching -1 -\nend\n",
           "stackup supervision 1\na watching 01 -\nend\n", "stackup supervision 1\na watching 0 - \nend\n",
           "stackup supervision 1\na watching 0 code 1 x\nend\n", "stackup supervision 1\na watching 0 code 1\nend\n",
           "stackup supervision 1\na watching 0 signal 1 0\nend\n", "stackup supervision 1\na watching 0 liveness 1 \nend\n",
           "stackup supervision 1\na watching 0 error -5 x\nend\n", "stackup supervision 1\na watching 0 later 1 x\nend\n",
           "stackup supervision 1\n watching 0 -\nend\n", "stackup supervision 1\na\\q watching 0 -\nend\n",
           "stackup supervision 1\na watching 0 code 99999999999999 3\nend\n",
       }) {
    CAPTURE(bad);
    CHECK_FALSE(sv::parse_record(bad));
  }
}

TEST_CASE("supervision record: written atomically in a private directory; down marks") {
  files::TempDir t("supervise");
  const fs::path dir = t.path / "state";
  CHECK_FALSE(sv::read_record(dir)); // nothing yet
  sv::mark_down(dir, "a");           // creates the directory, mode 0700
  struct stat st{};
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  const auto fd = sv::open_state_dir(dir, false);
  REQUIRE(fd);
  CHECK(sv::marked_down(fd.get(), "a"));
  CHECK_FALSE(sv::marked_down(fd.get(), "b"));
  sv::mark_down(dir, sv::whole_stack);
  CHECK(sv::marked_down(fd.get(), "b")); // the whole stack
  sv::clear_down(dir, sv::whole_stack);
  sv::clear_down(dir, "a");
  CHECK_FALSE(sv::marked_down(fd.get(), "a"));
  // A role is never a path.
  sv::mark_down(dir, "../x");
  CHECK_FALSE(fs::exists(dir / "x"));
  CHECK(sv::marked_down(fd.get(), "../x"));
  CHECK_FALSE(sv::marked_down(fd.get(), ".."));

  const std::vector<sv::Row> rows{{"a", stackup::SupervisionState::watching, 1, std::nullopt}};
  sv::write_record(fd.get(), rows, dir);
  const auto back = sv::read_record(dir);
  REQUIRE(back);
  CHECK(sv::same_row(back->at(0), rows[0]));
  files::spit(dir / "supervision", "garbage");
  CHECK_FALSE(sv::read_record(dir));

  // Writable by others: refused, naming it and the fix.
  ::chmod(dir.c_str(), 0777);
  const auto message = messages::error_of([&] { (void)sv::read_record(dir); });
  CHECK(messages::contains(message, dir.string()));
  CHECK(messages::contains(message, "chmod 700"));
  ::chmod(dir.c_str(), 0700);
}

// ---- LocalDaemon: the pidfd of its waiter, its recorded exit, its hold ---------------------------

#ifdef STACKUP_TEST_DAEMON_PATH
namespace {

// A daemon config whose command appends a line (its pid) to `starts` on each start, then
// runs `script` (/bin/sh -c; $0 is the scratch path, which tags its processes).
stackup::LocalDaemonConfig counted(const Scratch& w, std::string_view name, const fs::path& starts,
                                   const std::string& script) {
  stackup::LocalDaemonConfig c;
  c.command = {"/bin/sh", "-c", "echo $$ >> '" + starts.string() + "'; " + script, w.path.string()};
  c.state_dir = w.path / "state" / std::string(name);
  c.start_grace = 50ms;
  c.stop_timeout = 2s;
  return c;
}

std::string test_daemon(std::uint16_t port, const Scratch& w, std::string_view extra = {}) {
  return std::string("exec '") + STACKUP_TEST_DAEMON_PATH + "' --port " + std::to_string(port) + " --tag '" +
         w.path.string() + "' " + std::string(extra);
}

using DA = stackup::LocalDaemon<"a">;
using DC = stackup::LocalDaemon<"c">;

} // namespace

TEST_CASE("supervise LocalDaemon: an exit is seen through its pidfd, with its code; on-failure restarts it") {
  Scratch w("supervise");
  const fs::path starts = w.path / "starts";
  auto c = counted(w, "a", starts, "sleep 0.3; exit 3");
  c.restart = policy(Restart::on_failure);
  stackup::Stack<DA> s("local", DA{c});
  s.up();
  Events ev;
  Until until{[&] { return ev.count(Kind::exited) >= 2; }};
  (void)stackup::supervise(s, {.stop = &until, .on_event = ev.observer()});
  const auto ex = ev.of(Kind::exited);
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].exit->code == 3);
  CHECK(ex[0].exit->at.time_since_epoch().count() != 0);
  // Each start wrote its pid: a new process.
  const auto pids = files::slurp(starts).value_or("");
  const auto nl = pids.find('\n');
  REQUIRE(nl != std::string::npos);
  CHECK(pids.substr(0, nl + 1) != pids.substr(nl + 1));
  CHECK(lines_of(starts) == 2);
}

// Killed a moment before supervise() starts: no end on record yet (its waiter,
// stopped here, has not written it), yet its exit descriptor opens: it is watched
// and its end, when it comes, goes to the policy (not taken for a down).
TEST_CASE("supervise LocalDaemon: one ending as supervise starts (its waiter still at work) is an exit") {
  Scratch w("supervise");
  auto c = counted(w, "a", w.path / "starts", "exec sleep 100");
  stackup::Stack<DA> s("local", DA{c});
  s.up();
  const auto fields = files::slurp(c.state_dir / "pid").value_or("");
  std::istringstream in(fields);
  long main = 0, waiter = 0;
  unsigned long long start = 0;
  std::string id;
  in >> main >> start >> id >> waiter;
  REQUIRE(waiter > 0);
  REQUIRE(::kill(static_cast<pid_t>(waiter), SIGSTOP) == 0);
  REQUIRE(::kill(static_cast<pid_t>(main), SIGKILL) == 0);
  const pid_t resumer = ::fork();
  if (resumer == 0) {
    ::usleep(300'000);
    ::kill(static_cast<pid_t>(waiter), SIGCONT);
    ::_exit(0);
  }
  CHECK_FALSE(s.get<"a">().exit_status().has_value()); // not yet on record
  const auto r = stackup::supervise(s, {.on_exit = stackup::OnExit::abort});
  ::waitpid(resumer, nullptr, 0);
  CHECK_FALSE(r.stopped);
  CHECK(r.role == "a");
  REQUIRE(r.exit);
  CHECK(r.exit->signal == SIGKILL);
  s.down({.force = true});
}

TEST_CASE("supervise LocalDaemon: one that exits at once is restarted with back-off, then failed after max") {
  Scratch w("supervise");
  const fs::path starts = w.path / "starts";
  auto c = counted(w, "a", starts, "exit 1");
  c.restart = policy(Restart::on_failure, 50ms);
  c.restart.max_backoff = 400ms;
  const auto port = ports::free_port();
  auto sibling = counted(w, "c", w.path / "sibling", test_daemon(port, w));
  sibling.ready = stackup::ready::tcp(port);
  SUBCASE("no limit: the back-off alone holds it") {
    c.restart.max = 0;
    stackup::Stack<DA, DC> s("local", DA{c}, DC{sibling});
    s.up(); // an exit during start-up is the policy's: up succeeds
    Until until{{}, std::chrono::steady_clock::now() + 1500ms};
    (void)stackup::supervise(s, {.stop = &until});
    CHECK(lines_of(starts) >= 3);
    CHECK(lines_of(starts) <= 8); // a hot loop would start it hundreds of times
  }
  SUBCASE("max = 3 within 1m: four starts, failed; the sibling keeps running") {
    c.restart.backoff = 10ms;
    c.restart.max = 3;
    stackup::Stack<DA, DC> s("local", DA{c}, DC{sibling});
    s.up();
    Events ev;
    Until until{[&] { return ev.count(Kind::failed) >= 1; }};
    (void)stackup::supervise(s, {.stop = &until, .on_event = ev.observer()});
    CHECK(lines_of(starts) == 4);
    CHECK(ev.count(Kind::failed, "a") == 1);
    CHECK(s.view().state("c") == stackup::State::running);
    CHECK(lines_of(w.path / "sibling") == 1);
  }
}

TEST_CASE("supervise LocalDaemon: an http liveness failure stops it (its hold too) and its policy restarts it") {
  Scratch w("supervise");
  const fs::path starts = w.path / "starts";
  const auto port = ports::free_port();
  auto c = counted(w, "a", starts, test_daemon(port, w, "--unhealthy"));
  c.ready = stackup::ready::tcp(port);
  c.restart = policy(Restart::on_failure);
  c.liveness.kind = stackup::Liveness::Kind::http;
  c.liveness.port = port;
  c.liveness.path = "/health";
  c.liveness.period = 50ms;
  c.liveness.failures = 2;
  stackup::Stack<DA> s("local", DA{c});
  s.up();
  Events ev;
  Until until{[&] { return ev.count(Kind::unhealthy) >= 3; }};
  (void)stackup::supervise(s, {.stop = &until, .on_event = ev.observer()});
  REQUIRE(ev.count(Kind::exited) == 1);
  const auto e = ev.of(Kind::exited)[0].exit;
  CHECK(messages::contains(e->liveness, "/health"));
  CHECK(lines_of(starts) == 2);
}

TEST_CASE("supervise LocalDaemon: a killed dependency; on_dependency_restart = restart suspends and resumes b") {
  Scratch w("supervise");
  const auto pa = ports::free_port(), pb = ports::free_port();
  auto a = counted(w, "a", w.path / "a", test_daemon(pa, w));
  a.ready = stackup::ready::tcp(pa);
  a.restart = policy(Restart::always);
  auto b = counted(w, "b", w.path / "b", test_daemon(pb, w));
  b.ready = stackup::ready::tcp(pb);
  b.restart = policy(Restart::always);
  bool cascade = false;
  SUBCASE("restart") { cascade = true; }
  SUBCASE("ignore") { cascade = false; }
  if (cascade) b.on_dependency_restart = stackup::OnDependencyRestart::restart;
  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back("a", stackup::LocalDaemon<>{a});
  parts.emplace_back("b", stackup::LocalDaemon<>{b}, std::vector<std::string>{"a"});
  stackup::DynamicStack s("local", std::move(parts));
  s.up();
  const auto pid_of = [&](std::string_view role) {
    return s.get(role).target<stackup::LocalDaemon<>>()->pid().value_or(0);
  };
  const pid_t b_pid = pid_of("b");
  std::vector<std::string> actions;
  s.on_event([&](const stackup::Event& e) {
    if (e.outcome == stackup::Outcome::succeeded)
      actions.push_back(std::string(stackup::to_string(e.transition)) + " " + std::string(e.role));
  });
  bool killed = false;
  Until until{[&] {
    if (!killed) killed = ::kill(pid_of("a"), SIGKILL) == 0;
    // Once the restart (and b's, with the cascade) has succeeded.
    const auto has = [&](std::string_view x) { return std::find(actions.begin(), actions.end(), x) != actions.end(); };
    return has("resume a") && (!cascade || has("resume b"));
  }};
  Events ev;
  (void)stackup::supervise(s, {.stop = &until, .on_event = ev.observer()});
  CHECK(ev.count(Kind::exited) == 1);
  CHECK(lines_of(w.path / "a") == 2);
  std::string seen;
  for (const auto& x : actions) seen += x + "; ";
  INFO("actions: ", seen);
  if (cascade) {
    CHECK(actions == std::vector<std::string>{"suspend b", "resume a", "resume b"});
    CHECK(pid_of("b") != b_pid);
  } else {
    CHECK(actions == std::vector<std::string>{"resume a"});
    CHECK(pid_of("b") == b_pid);
  }
}

TEST_CASE("supervise LocalDaemon: a down from another process wins") {
  Scratch w("supervise");
  const fs::path starts = w.path / "starts", state = w.path / "supervision";
  const auto port = ports::free_port();
  auto c = counted(w, "a", starts, test_daemon(port, w));
  c.ready = stackup::ready::tcp(port);
  c.restart = policy(Restart::always, 200ms);
  stackup::Stack<DA> s("local", DA{c});
  s.up();
  bool mark = false;
  SUBCASE("with a down mark (as stackctl leaves)") { mark = true; }
  SUBCASE("without one: its exit record goes with the pid file") { mark = false; }
  // Another process, on its own copy of the stack, brings it down.
  const pid_t other = ::fork();
  REQUIRE(other >= 0);
  if (other == 0) {
    int code = 0;
    try {
      ::usleep(100'000);
      if (mark) sv::mark_down(state, "a");
      stackup::Stack<DA> mine("local", DA{c});
      mine.down("a");
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  Events ev;
  std::optional<std::chrono::steady_clock::time_point> gone;
  int status = -1;
  Until until{[&] {
    if (!gone && ::waitpid(other, &status, WNOHANG) == other) gone = std::chrono::steady_clock::now();
    return gone && std::chrono::steady_clock::now() - *gone > 800ms; // past several back-offs
  }};
  (void)stackup::supervise(s, {.stop = &until, .poll = 50ms, .on_event = ev.observer(), .state_dir = state});
  CHECK(status == 0);
  CHECK(lines_of(starts) == 1);
  CHECK(s.view().state("a") != stackup::State::running);
  if (mark) CHECK(ev.count(Kind::exited) == 0);
}

TEST_CASE("supervise LocalDaemon: a down from another process in the middle of a restart comes after it, and wins") {
  // a restarts with its dependent b, which takes a while to stop (it ignores
  // SIGTERM): the restart is in flight for a second before a is started again.
  // Another process takes the stack's lock, marks a down and brings it down in
  // that second, as stackctl does. Without the supervisor holding the lock
  // through the restart, that down finds a stopped and does nothing, and the
  // restart then starts a again behind its back.
  Scratch w("supervise");
  const fs::path state = w.path / "supervision", lock_file = w.path / "stackup.toml";
  files::spit(lock_file, "# the stack file commands lock\n");
  const auto pa = ports::free_port(), pb = ports::free_port();
  auto a = counted(w, "a", w.path / "a", test_daemon(pa, w));
  a.ready = stackup::ready::tcp(pa);
  a.restart = policy(Restart::always);
  auto b = counted(w, "b", w.path / "b", test_daemon(pb, w, "--ignore-term"));
  b.ready = stackup::ready::tcp(pb);
  b.stop_timeout = 1s;
  b.restart = policy(Restart::always);
  b.on_dependency_restart = stackup::OnDependencyRestart::restart;
  const auto make = [&] {
    std::vector<stackup::AnyComponent> parts;
    parts.emplace_back("a", stackup::LocalDaemon<>{a});
    parts.emplace_back("b", stackup::LocalDaemon<>{b}, std::vector<std::string>{"a"});
    return stackup::DynamicStack("local", std::move(parts));
  };
  stackup::DynamicStack s = make();
  s.up();
  const pid_t a_pid = s.get("a").target<stackup::LocalDaemon<>>()->pid().value_or(0);
  REQUIRE(a_pid > 0);
  bool b_stopping = false;
  s.on_event([&](const stackup::Event& e) {
    if (e.role == "b" && e.transition == stackup::Transition::suspend && e.outcome == stackup::Outcome::started)
      b_stopping = true;
  });
  pid_t other = -1;
  int status = -1;
  std::optional<std::chrono::steady_clock::time_point> gone;
  Until until{[&] {
    if (!b_stopping && lines_of(w.path / "a") == 1) (void)::kill(a_pid, SIGKILL);
    if (b_stopping && other < 0) {
      // The restart is in flight (b is being stopped): the other process's down now.
      other = ::fork();
      if (other == 0) {
        int code = 0;
        try {
          stackup::StackLock lock(lock_file, stackup::LockMode::exclusive);
          lock.lock();
          sv::mark_down(state, "a");
          stackup::DynamicStack mine = make();
          mine.down("a");
        } catch (...) {
          code = 1;
        }
        ::_exit(code);
      }
    }
    if (other > 0 && !gone && ::waitpid(other, &status, WNOHANG) == other) gone = std::chrono::steady_clock::now();
    return gone && std::chrono::steady_clock::now() - *gone > 500ms; // past several back-offs
  }};
  (void)stackup::supervise(s, {.stop = &until, .poll = 50ms, .state_dir = state, .lock_file = lock_file});
  REQUIRE(other > 0);
  CHECK(status == 0);
  CHECK(s.view().state("a") != stackup::State::running);
  CHECK(s.view().state("b") != stackup::State::running);
  CHECK(ports::listenable(pa)); // nothing of a listens any more
  s.down(stackup::DownOptions{.force = true});
}

TEST_CASE("supervise LocalDaemon: a stop requested during a restart is seen once the restart is over") {
  // A supervisor told to stop (SIGTERM from systemd, or `stack down` first
  // stopping it) in the middle of a restart finishes it: stopping there would
  // leave the daemon down with no exit on record, so no later supervisor would
  // bring it back.
  Scratch w("supervise");
  const fs::path starts = w.path / "starts";
  const auto port = ports::free_port();
  auto c = counted(w, "a", starts, test_daemon(port, w, "--ready-after 600"));
  c.ready = stackup::ready::tcp(port);
  c.restart = policy(Restart::always);
  stackup::Stack<DA> s("local", DA{c});
  s.up();
  const pid_t first = s.get<DA>().pid().value_or(0);
  REQUIRE(first > 0);
  REQUIRE(::kill(first, SIGKILL) == 0);
  Events ev;
  Until until{[&] { return lines_of(starts) == 2; }}; // the restart has started the new process
  (void)stackup::supervise(s, {.stop = &until, .on_event = ev.observer()});
  CHECK(lines_of(starts) == 2);
  CHECK(ev.count(Kind::restarting) == 1);
  CHECK(s.view().state("a") == stackup::State::running);
  CHECK(s.get<DA>().pid().value_or(first) != first);
  s.down();
}

TEST_CASE("supervise LocalDaemon: a resume that is not ready within start_timeout counts, and ends in failed") {
  Scratch w("supervise");
  const fs::path starts = w.path / "starts";
  const auto port = ports::free_port();
  // Ready the first time, for half a second; each restart hangs (not listening) past start_timeout.
  const fs::path once = w.path / "once";
  auto c = counted(w, "a", starts,
                   "if [ -f '" + once.string() + "' ]; then " + test_daemon(port, w, "--ready-after 10000") +
                       "; fi; touch '" + once.string() + "'; exec timeout 0.5 " +
                       test_daemon(port, w).substr(5)); // without its `exec `
  c.ready = stackup::ready::tcp(port);
  c.start_timeout = 1s;
  c.restart = policy(Restart::on_failure);
  c.restart.max = 2;
  stackup::Stack<DA> s("local", DA{c});
  s.up();
  Events ev;
  Until until{[&] { return ev.count(Kind::failed) >= 1; }};
  (void)stackup::supervise(s, {.stop = &until, .on_event = ev.observer()});
  CHECK(ev.count(Kind::failed) == 1);
  CHECK(lines_of(starts) == 3); // the first start and two restarts
  const auto ex = ev.of(Kind::exited);
  REQUIRE(ex.size() == 3);
  CHECK(ex[0].exit->code == 124); // timeout's
  CHECK_FALSE(ex[1].exit->error.empty());
  CHECK_FALSE(ex[2].exit->error.empty());
  CHECK(s.view().state("a") != stackup::State::running);
}
#endif
