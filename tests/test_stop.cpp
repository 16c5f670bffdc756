// A stop requested while an operation runs (UpOptions::stop, DownOptions::stop,
// and Ctrl-C / SIGTERM under cli::run): no further action starts, up rolls back
// what it did, down finishes the action in flight and names what it left, the
// stackup waits (readiness, shell commands) give up, and a host's own signal
// handlers are back once cli::run returns. Both kinds of stack
// (tests/support/kinds.hpp); real processes where a process is involved.
//
// No test waits a fixed time for something to happen: each stop is requested
// once the action it must interrupt is known to be running (a gate the
// component opens, a pid file, a line in a log), and every wait has a ceiling
// (far beyond what a loaded machine needs) so that a broken build fails instead
// of hanging.
#include "support/fake.hpp"
#include "support/files.hpp"
#include "support/kinds.hpp"
#include "support/messages.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"

#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using stackup::State;
using stackup::Transition;
using kinds::get;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Calls = std::vector<std::string>;

// A ceiling for anything the test waits for: never reached unless the library
// is broken (then the test fails instead of hanging).
constexpr auto ceiling = 60s;

// What the components of one test share with it: every call in order, which
// calls saw stackup::stop_requested() true, which started after the test's stop
// was requested, and one gate: the action (role, transition) that holds until
// the stop is requested.
struct Control {
  enum class Mode {
    ignore, // holds until the test releases it (after requesting the stop), then succeeds
    poll,   // polls stackup::stop_requested() and gives up with its own error
  };

  std::mutex m;
  std::condition_variable cv;
  Calls calls;       // "provision a", ... in the order they started
  Calls done;        // the actions that returned
  Calls saw_stop;    // the calls in which stackup::stop_requested() was true
  Calls after_stop;  // the calls that started after the stop was requested
  const std::stop_source* source = nullptr;

  std::string gate_role;
  Transition gate{};
  Mode mode = Mode::ignore;
  bool entered = false, released = false, finished = false;

  void act(std::string_view role, Transition t) {
    const std::string call = std::string(stackup::to_string(t)) + " " + std::string(role);
    std::unique_lock lock(m);
    calls.push_back(call);
    if (source && source->stop_requested()) after_stop.push_back(call);
    if (stackup::stop_requested()) saw_stop.push_back(call);
    if (role == gate_role && t == gate) {
      entered = true;
      cv.notify_all();
      if (mode == Mode::poll) {
        lock.unlock();
        const auto end = std::chrono::steady_clock::now() + ceiling;
        while (!stackup::stop_requested()) {
          if (std::chrono::steady_clock::now() > end) throw std::runtime_error(call + ": never saw the stop");
          std::this_thread::sleep_for(1ms);
        }
        lock.lock();
        saw_stop.push_back(call + " (polling)");
        throw std::runtime_error(call + ": gave up: a stop was requested");
      }
      if (!cv.wait_for(lock, ceiling, [&] { return released; }))
        throw std::runtime_error(call + ": never released by the test");
      if (stackup::stop_requested()) saw_stop.push_back(call + " (at its end)");
    }
    done.push_back(call);
    cv.notify_all(); // a Stopper may wait for this action's end
  }
};

template <stackup::FixedString R, stackup::FixedString... Deps>
struct Slow : stackup::StackComponent<Slow<R, Deps...>> {
  static constexpr std::string_view role = R;
  static constexpr std::array<std::string_view, sizeof...(Deps)> depends_on{std::string_view(Deps)...};

  bool provisioned = false;
  bool running = false;
  Control* control = nullptr;

  bool is_provisioned() const { return provisioned; }
  bool is_running() const { return running; }
  void provision() { control->act(role, Transition::provision), provisioned = true; }
  void resume() { control->act(role, Transition::resume), running = true; }
  void suspend() { control->act(role, Transition::suspend), running = false; }
  void deprovision() { control->act(role, Transition::deprovision), running = false, provisioned = false; }
};

using A = Slow<"a">;
using B = Slow<"b", "a">;
using C = Slow<"c", "b">;

template <class K> auto chain(Control& control) {
  auto s = kinds::make<K, A, B, C>();
  get<A>(s).control = get<B>(s).control = get<C>(s).control = &control;
  return s;
}

template <class S> std::vector<State> states(const S& s) {
  std::vector<State> v;
  for (const auto& row : s.status()) v.push_back(row.state);
  return v;
}

// Requests the stop once the gate is entered (and `also_done` has returned, if
// given), then releases the gate. Its destructor ends the wait when the
// operation returned without reaching the gate.
class Stopper {
public:
  Stopper(Control& c, std::stop_source& source, std::string also_done = {}) : c_(c) {
    c.source = &source;
    thread_ = std::jthread([&c, &source, also_done] {
      {
        std::unique_lock lock(c.m);
        c.cv.wait_for(lock, ceiling, [&] {
          return c.finished ||
                 (c.entered && (also_done.empty() || std::count(c.done.begin(), c.done.end(), also_done) == 1));
        });
        if (c.finished) return;
      }
      source.request_stop();
      {
        std::lock_guard lock(c.m);
        c.released = true;
      }
      c.cv.notify_all();
    });
  }
  ~Stopper() { finish(); }
  void finish() {
    {
      std::lock_guard lock(c_.m);
      c_.finished = true;
    }
    c_.cv.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  Stopper(const Stopper&) = delete;
  Stopper& operator=(const Stopper&) = delete;

private:
  Control& c_;
  std::jthread thread_;
};

using messages::contains;

// The TransitionError an operation throws (REQUIREs one).
template <class F> stackup::TransitionError transition_error(F&& f) {
  try {
    f();
  } catch (const stackup::TransitionError& e) {
    return e;
  }
  FAIL("the operation did not throw a TransitionError");
  throw std::logic_error("unreachable");
}

template <class E> bool cause_is(const stackup::TransitionError& e) {
  try {
    std::rethrow_exception(e.cause());
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}
std::string cause_message(const stackup::TransitionError& e) {
  try {
    std::rethrow_exception(e.cause());
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "?";
  }
}

std::vector<std::string> with_outcome(const fake::Recorder& r, stackup::Outcome o) {
  std::vector<std::string> out;
  for (const auto& e : r.events)
    if (e.outcome == o) out.push_back(std::string(stackup::to_string(e.transition)) + " " + std::string(e.role));
  return out;
}

} // namespace

// ---- up -------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("stop: a provision that polls stop_requested() gives up; nothing else starts; the rest is rolled back",
                   K, kinds::Typed, kinds::Dynamic) {
  Control control;
  control.gate_role = "b", control.gate = Transition::provision, control.mode = Control::Mode::poll;
  auto s = chain<K>(control);
  fake::Recorder events;
  s.on_event(events.observer());
  std::stop_source source;
  const std::stop_token token = source.get_token();
  Stopper stopper(control, source);

  const auto e = transition_error([&] { s.up({.stop = &token}); });
  stopper.finish();
  CHECK(e.role() == "b");
  CHECK(e.transition() == Transition::provision);
  CHECK(cause_message(e) == "provision b: gave up: a stop was requested"); // the component's own error
  CHECK(contains(e.what(), "(rolled back)"));
  CHECK(control.calls == Calls{"provision a", "provision b", "deprovision a"});
  CHECK(control.after_stop == Calls{"deprovision a"});
  CHECK(with_outcome(events, stackup::Outcome::rolled_back) == Calls{"deprovision a"});
  // Only the forward action saw the stop; the undo did not.
  CHECK(control.saw_stop == Calls{"provision b (polling)"});
  CHECK(states(s) == std::vector{State::deprovisioned, State::deprovisioned, State::deprovisioned});
  CHECK_FALSE(stackup::stop_requested()); // nothing left behind on this thread
}

TEST_CASE_TEMPLATE("stop: a resume that ignores the stop finishes; the next action never starts (InterruptedError); "
                   "everything this up did is undone, and the undo actions do not see the stop",
                   K, kinds::Typed, kinds::Dynamic) {
  Control control;
  control.gate_role = "b", control.gate = Transition::resume, control.mode = Control::Mode::ignore;
  auto s = chain<K>(control);
  get<A>(s).provisioned = true; // a was provisioned before this up: the rollback must leave it so
  fake::Recorder events;
  s.on_event(events.observer());
  std::stop_source source;
  const std::stop_token token = source.get_token();
  Stopper stopper(control, source);

  const auto e = transition_error([&] { s.up({.stop = &token}); });
  stopper.finish();
  CHECK(e.role() == "c"); // the first action not started
  CHECK(e.transition() == Transition::resume);
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK(contains(cause_message(e), "a stop was requested; left as they were: c"));
  CHECK(contains(e.what(), "(rolled back)"));
  REQUIRE(e.failures().size() == 1);
  CHECK_FALSE(e.failures()[0].rollback);
  CHECK(control.calls == Calls{"provision b", "provision c", "resume a", "resume b", "suspend b", "suspend a",
                               "deprovision c", "deprovision b"});
  CHECK(control.after_stop == Calls{"suspend b", "suspend a", "deprovision c", "deprovision b"});
  CHECK(with_outcome(events, stackup::Outcome::rolled_back) ==
        Calls{"suspend b", "suspend a", "deprovision c", "deprovision b"});
  // The resume in flight saw the stop (it could have given up); the undo actions did not.
  CHECK(control.saw_stop == Calls{"resume b (at its end)"});
  CHECK(states(s) == std::vector{State::suspended, State::deprovisioned, State::deprovisioned});
}

TEST_CASE_TEMPLATE("stop: with .rollback = false, what was done stays done", K, kinds::Typed, kinds::Dynamic) {
  Control control;
  control.gate_role = "b", control.gate = Transition::resume, control.mode = Control::Mode::ignore;
  auto s = chain<K>(control);
  fake::Recorder events;
  s.on_event(events.observer());
  std::stop_source source;
  const std::stop_token token = source.get_token();
  Stopper stopper(control, source);

  const auto e = transition_error([&] { s.up({.rollback = false, .stop = &token}); });
  stopper.finish();
  CHECK(e.role() == "c");
  CHECK(e.transition() == Transition::resume);
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK_FALSE(contains(e.what(), "rolled back"));
  CHECK(control.calls == Calls{"provision a", "provision b", "provision c", "resume a", "resume b"});
  CHECK(control.after_stop.empty());
  CHECK(with_outcome(events, stackup::Outcome::rolled_back).empty());
  CHECK(states(s) == std::vector{State::running, State::running, State::suspended});
}

TEST_CASE_TEMPLATE("stop: up of one component stops before the next component and undoes its dependencies", K,
                   kinds::Typed, kinds::Dynamic) {
  Control control;
  control.gate_role = "a", control.gate = Transition::resume, control.mode = Control::Mode::ignore;
  auto s = chain<K>(control);
  std::stop_source source;
  const std::stop_token token = source.get_token();
  Stopper stopper(control, source);

  const auto e = transition_error([&] { kinds::up<C>(s, {.stop = &token}); });
  stopper.finish();
  CHECK(e.role() == "b");
  CHECK(e.transition() == Transition::provision);
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK(contains(cause_message(e), "left as they were: b, c"));
  CHECK(control.calls == Calls{"provision a", "resume a", "suspend a", "deprovision a"});
  CHECK(control.saw_stop == Calls{"resume a (at its end)"});
  CHECK(states(s) == std::vector{State::deprovisioned, State::deprovisioned, State::deprovisioned});
}

TEST_CASE_TEMPLATE("stop: a token already requested: up and down act on nothing", K, kinds::Typed, kinds::Dynamic) {
  Control control;
  auto s = chain<K>(control);
  fake::Recorder events;
  s.on_event(events.observer());
  std::stop_source source;
  source.request_stop();
  const std::stop_token token = source.get_token();

  auto e = transition_error([&] { s.up({.stop = &token}); });
  CHECK(e.role() == "a");
  CHECK(e.transition() == Transition::provision);
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK(contains(cause_message(e), "left as they were: a, b, c"));
  e = transition_error([&] { s.up({.parallel = true, .stop = &token}); });
  CHECK(e.role() == "a");
  CHECK(cause_is<stackup::InterruptedError>(e));
  e = transition_error([&] { kinds::up<C>(s, {.stop = &token}); });
  CHECK(e.role() == "a");
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK(control.calls.empty());
  CHECK(events.lines.empty());
  CHECK(states(s) == std::vector{State::deprovisioned, State::deprovisioned, State::deprovisioned});

  // A token that can never be stopped is as good as none.
  const std::stop_token never;
  s.up({.stop = &never});
  CHECK(states(s) == std::vector{State::running, State::running, State::running});
  control.calls.clear();
  events.lines.clear();

  for (const bool force : {false, true}) {
    CAPTURE(force);
    e = transition_error([&] { s.down({.force = force, .stop = &token}); });
    CHECK(e.role() == "c");
    CHECK(e.transition() == Transition::suspend);
    CHECK(cause_is<stackup::InterruptedError>(e));
    CHECK(contains(cause_message(e), "left as they were: c, b, a"));
    e = transition_error([&] { s.down({.force = force, .parallel = true, .stop = &token}); });
    CHECK(e.role() == "c");
    CHECK(cause_is<stackup::InterruptedError>(e));
    e = transition_error([&] { kinds::down<A>(s, {.force = force, .stop = &token}); });
    CHECK(e.role() == "c");
    CHECK(cause_is<stackup::InterruptedError>(e));
    REQUIRE(e.failures().size() == 2); // its dependents, then a itself
    CHECK(e.failures()[1].role == "a");
  }
  CHECK(control.calls.empty());
  CHECK(events.lines.empty());
  CHECK(states(s) == std::vector{State::running, State::running, State::running});
}

TEST_CASE_TEMPLATE("stop: a stack that never had an observer takes a token, one that can stop or not", K, kinds::Typed,
                   kinds::Dynamic) {
  // Off the quiet path, the walk that checks the token comes with the token.
  Control control;
  auto s = chain<K>(control);
  const std::stop_token never;
  s.up({.stop = &never});
  CHECK(states(s) == std::vector{State::running, State::running, State::running});
  s.down({.force = true, .stop = &never});
  CHECK(states(s) == std::vector{State::deprovisioned, State::deprovisioned, State::deprovisioned});
  std::stop_source source;
  const std::stop_token token = source.get_token();
  s.up({.stop = &token});
  CHECK(states(s) == std::vector{State::running, State::running, State::running});
  s.down({.stop = &token});
  CHECK(states(s) == std::vector{State::suspended, State::suspended, State::suspended});
  CHECK(control.calls == Calls{"provision a", "provision b", "provision c", "resume a", "resume b", "resume c",
                               "suspend c", "deprovision c", "suspend b", "deprovision b", "suspend a",
                               "deprovision a", "provision a", "provision b", "provision c", "resume a", "resume b",
                               "resume c", "suspend c", "suspend b", "suspend a"});
}

// ---- down ------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("stop: down finishes the suspend in flight, leaves the rest as it was and names it", K,
                   kinds::Typed, kinds::Dynamic) {
  for (const bool force : {false, true}) {
    CAPTURE(force);
    Control control;
    auto s = chain<K>(control);
    s.up();
    control.calls.clear();
    control.done.clear();
    control.gate_role = "c", control.gate = Transition::suspend;
    std::stop_source source;
    const std::stop_token token = source.get_token();
    Stopper stopper(control, source);

    const auto e = transition_error([&] { s.down({.force = force, .stop = &token}); });
    stopper.finish();
    CHECK(e.role() == "b");
    CHECK(e.transition() == Transition::suspend);
    CHECK(cause_is<stackup::InterruptedError>(e));
    CHECK(contains(e.what(), "left as they were: b, a"));
    // c's step finished (with --force: its deprovision too); b and a were not touched.
    CHECK(control.calls == (force ? Calls{"suspend c", "deprovision c"} : Calls{"suspend c"}));
    CHECK(states(s) == std::vector{State::running, State::running, force ? State::deprovisioned : State::suspended});
    // Down actions never see the stop: they are left to finish.
    CHECK(control.saw_stop.empty());
    CHECK(control.after_stop == (force ? Calls{"deprovision c"} : Calls{}));
  }
}

TEST_CASE_TEMPLATE("stop: down of one component with dependents stops between them and leaves the component up", K,
                   kinds::Typed, kinds::Dynamic) {
  SUBCASE("stopped while the first dependent suspends") {
    Control control;
    auto s = chain<K>(control);
    s.up();
    control.calls.clear();
    control.gate_role = "c", control.gate = Transition::suspend;
    std::stop_source source;
    const std::stop_token token = source.get_token();
    Stopper stopper(control, source);

    const auto e = transition_error([&] { kinds::down<A>(s, {.stop = &token}); });
    stopper.finish();
    CHECK(e.role() == "b");
    CHECK(e.transition() == Transition::suspend);
    CHECK(cause_is<stackup::InterruptedError>(e));
    REQUIRE(e.failures().size() == 2);
    CHECK(e.failures()[1].role == "a");
    CHECK(contains(e.failures()[1].message, "left as they were: a"));
    CHECK(control.calls == Calls{"suspend c"});
    CHECK(control.saw_stop.empty());
    CHECK(states(s) == std::vector{State::running, State::running, State::suspended});
  }
  SUBCASE("stopped while the last dependent suspends") {
    Control control;
    auto s = chain<K>(control);
    s.up();
    control.calls.clear();
    control.gate_role = "b", control.gate = Transition::suspend;
    std::stop_source source;
    const std::stop_token token = source.get_token();
    Stopper stopper(control, source);

    const auto e = transition_error([&] { kinds::down<A>(s, {.force = true, .stop = &token}); });
    stopper.finish();
    CHECK(e.role() == "a");
    CHECK(e.transition() == Transition::suspend);
    CHECK(cause_is<stackup::InterruptedError>(e));
    CHECK(contains(cause_message(e), "left as they were: a"));
    REQUIRE(e.failures().size() == 1);
    CHECK(control.calls == Calls{"suspend c", "deprovision c", "suspend b", "deprovision b"});
    CHECK(control.saw_stop.empty());
    CHECK(states(s) == std::vector{State::running, State::deprovisioned, State::deprovisioned});
  }
}

// ---- parallel --------------------------------------------------------------------------

namespace {
using P = Slow<"p">;
using Q = Slow<"q">;
using R = Slow<"r", "p", "q">;
using T = Slow<"t", "r">;

template <class K> auto diamond(Control& control) {
  auto s = kinds::make<K, P, Q, R, T>();
  get<P>(s).control = get<Q>(s).control = get<R>(s).control = get<T>(s).control = &control;
  return s;
}
} // namespace

TEST_CASE_TEMPLATE("stop: in parallel mode no step starts after the request, and what was done is rolled back", K,
                   kinds::Typed, kinds::Dynamic) {
  for (const auto mode : {Control::Mode::ignore, Control::Mode::poll}) {
    CAPTURE(static_cast<int>(mode));
    Control control;
    control.gate_role = "q", control.gate = Transition::provision, control.mode = mode;
    auto s = diamond<K>(control);
    fake::Recorder events;
    s.on_event(events.observer());
    std::stop_source source;
    const std::stop_token token = source.get_token();
    // p and q start together; the stop comes once p is provisioned and q is in
    // its provision, so r (which needs both) is the next step to start.
    Stopper stopper(control, source, "provision p");

    const auto e = transition_error([&] { s.up({.parallel = true, .stop = &token}); });
    stopper.finish();
    Calls first_two(control.calls.begin(), control.calls.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(2, control.calls.size())));
    std::sort(first_two.begin(), first_two.end());
    CHECK(first_two == Calls{"provision p", "provision q"});
    if (mode == Control::Mode::ignore) {
      CHECK(e.role() == "r");
      CHECK(e.transition() == Transition::provision);
      CHECK(cause_is<stackup::InterruptedError>(e));
      CHECK(control.calls.size() == 4);
      CHECK(std::vector(control.calls.begin() + 2, control.calls.end()) == Calls{"deprovision q", "deprovision p"});
      CHECK(control.after_stop == Calls{"deprovision q", "deprovision p"});
      CHECK(control.saw_stop == Calls{"provision q (at its end)"}); // the worker's action saw it
    } else {
      CHECK(e.role() == "q");
      CHECK(cause_message(e) == "provision q: gave up: a stop was requested");
      CHECK(std::vector(control.calls.begin() + 2, control.calls.end()) == Calls{"deprovision p"});
      CHECK(control.after_stop == Calls{"deprovision p"});
      CHECK(control.saw_stop == Calls{"provision q (polling)"});
    }
    CHECK(contains(e.what(), "(rolled back)"));
    for (const auto& call : control.after_stop) CHECK(call.starts_with("deprovision")); // only undo actions
    CHECK(with_outcome(events, stackup::Outcome::rolled_back) == control.after_stop);
    CHECK(states(s) ==
          std::vector{State::deprovisioned, State::deprovisioned, State::deprovisioned, State::deprovisioned});
  }
}

TEST_CASE_TEMPLATE("stop: a parallel down finishes the steps in flight and starts no other", K, kinds::Typed,
                   kinds::Dynamic) {
  Control control;
  auto s = diamond<K>(control);
  s.up();
  control.calls.clear();
  control.gate_role = "t", control.gate = Transition::suspend;
  std::stop_source source;
  const std::stop_token token = source.get_token();
  Stopper stopper(control, source);

  const auto e = transition_error([&] { s.down({.parallel = true, .stop = &token}); });
  stopper.finish();
  CHECK(e.role() == "r");
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK(control.calls == Calls{"suspend t"});
  CHECK(control.saw_stop.empty());
  CHECK(states(s) == std::vector{State::running, State::running, State::running, State::suspended});
}

// ---- shipped components: their own waits give up ------------------------------------------

namespace {

using files::slurp;
using processes::alive;
using processes::eventually;
using processes::Scratch;
using processes::tagged;

std::optional<pid_t> pid_in(const fs::path& file) {
  const auto text = slurp(file);
  if (!text || text->empty() || text->back() != '\n') return std::nullopt; // not written completely yet
  pid_t pid = 0;
  if (std::from_chars(text->data(), text->data() + text->size(), pid).ec != std::errc{} || pid <= 0) return std::nullopt;
  return pid;
}

// Requests a stop from another thread once `ready` holds.
class StopWhen {
public:
  StopWhen(std::stop_source& source, std::function<bool()> ready)
      : thread_([&source, ready = std::move(ready), this] {
          if (eventually([&] { return finished_.load() || ready(); }, ceiling)) {
            if (!finished_.load()) source.request_stop();
          }
        }) {}
  ~StopWhen() { finish(); }
  void finish() {
    finished_ = true;
    if (thread_.joinable()) thread_.join();
  }

private:
  std::atomic<bool> finished_{false};
  std::jthread thread_;
};

using Daemon = stackup::LocalDaemon<"orchestrator">;
using Tracker = stackup::Command<"tracker">;
using After = Slow<"after", "tracker">;

} // namespace

TEST_CASE_TEMPLATE("stop: a LocalDaemon that never becomes ready is stopped when the stop is requested, and nothing "
                   "is left", K, kinds::Typed, kinds::Dynamic) {
  Scratch dir{"stop"};
  const fs::path state = dir.path / "state";
  Control control;
  // Listens only after ten minutes; the probe's port is refused meanwhile. A
  // start_timeout of a minute: without the stop, resume fails with a timeout.
  const std::uint16_t port = ports::free_port();
  Daemon daemon{{.name = "web",
                 .command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(port), "--ready-after", "600000",
                             "--tag", dir.path.string()},
                 .state_dir = state,
                 .ready = stackup::ready::tcp(port),
                 .start_timeout = 60s,
                 .stop_timeout = 10s}};
  A a;
  a.control = &control;
  auto s = kinds::make_from<K>("local", a, daemon);
  std::stop_source source;
  const std::stop_token token = source.get_token();
  pid_t pid = 0;
  StopWhen stopper(source, [&] {
    const auto log = slurp(state / "daemon.log");
    if (!log || !contains(*log, "test_daemon: pid ")) return false; // the process runs
    pid = std::stoi(log->substr(log->find("test_daemon: pid ") + 17));
    return true;
  });

  const auto e = transition_error([&] { s.up({.stop = &token}); });
  stopper.finish();
  REQUIRE(pid > 0);
  CHECK(e.role() == "orchestrator");
  CHECK(e.transition() == Transition::resume);
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK(contains(cause_message(e), "was stopped before it was ready: a stop was requested"));
  CHECK(contains(e.what(), "(rolled back)"));
  CHECK_FALSE(contains(e.what(), "rollback incomplete"));
  // The process was stopped and reaped, not left to start; the rollback removed its state.
  CHECK_FALSE(alive(pid));
  CHECK((::kill(pid, 0) != 0 && errno == ESRCH));
  CHECK(tagged(dir.path.string()).empty());
  CHECK_FALSE(fs::exists(state));
  CHECK(control.calls == Calls{"provision a", "resume a", "suspend a", "deprovision a"});
  CHECK(states(s) == std::vector{State::deprovisioned, State::deprovisioned});
}

TEST_CASE_TEMPLATE("stop: a Command's provision (sleep 60 with a child) is killed with its process group", K,
                   kinds::Typed, kinds::Dynamic) {
  Scratch dir{"stop"};
  Control control;
  A a;
  a.control = &control;
  After after;
  after.control = &control;
  Tracker tracker{{
      .name = "sleeper",
      .provision = "sleep 60 & echo $! > child.pid; echo $$ > shell.pid; wait; touch provisioned",
      .deprovision = "rm -f provisioned",
      .is_provisioned = "test -f provisioned",
      .is_running = "test -f provisioned",
      .working_dir = dir.path,
  }};
  auto s = kinds::make_from<K>("local", a, tracker, after);
  std::stop_source source;
  const std::stop_token token = source.get_token();
  StopWhen stopper(source, [&] { return pid_in(dir.path / "child.pid") && pid_in(dir.path / "shell.pid"); });

  const auto e = transition_error([&] { s.up({.stop = &token}); });
  stopper.finish();
  const auto shell = pid_in(dir.path / "shell.pid"), child = pid_in(dir.path / "child.pid");
  REQUIRE(shell);
  REQUIRE(child);
  CHECK(e.role() == "tracker");
  CHECK(e.transition() == Transition::provision);
  CHECK(cause_is<stackup::InterruptedError>(e));
  CHECK(contains(cause_message(e), "was stopped with its process group: a stop was requested"));
  CHECK(contains(e.what(), "(rolled back)"));
  CHECK_FALSE(alive(*shell));
  CHECK(eventually([&] { return !alive(*child); }, ceiling)); // the sleep in the background too
  CHECK_FALSE(fs::exists(dir.path / "provisioned"));
  CHECK(control.calls == Calls{"provision a", "deprovision a"}); // `after` never started
}

// ---- cli::run in a host program ----------------------------------------------------------

namespace {

struct Ran {
  int status = -1; // exit status, or 128 + signal
  std::string out;
};

// Starts tests/programs/stop_host with `args` (stdout and stderr to one file in
// `dir`); `when` is polled while it runs, and on its first true the host gets
// `sig` (0: none).
Ran run_host(const fs::path& dir, const std::vector<std::string>& args, int sig = 0,
             const std::function<bool()>& when = {}) {
  const fs::path out = dir / "host.out";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) ::_exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<std::string> argv{STACKUP_STOP_HOST_PATH, dir.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  bool sent = sig == 0;
  int status = 0;
  const auto end = std::chrono::steady_clock::now() + ceiling;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL_CHECK("stop_host did not finish");
      break;
    }
    if (!sent && when()) {
      ::kill(pid, sig);
      sent = true;
    }
    std::this_thread::sleep_for(2ms);
  }
  CHECK(sent);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out).value_or("")};
}

} // namespace

TEST_CASE("stop: cli::run gives the host its own SIGINT and SIGTERM handlers back, interrupted or not") {
  Scratch dir{"stop"};
  {
    const Ran r = run_host(dir.path, {"stack", "down"}); // nothing to stop: ends by itself
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(contains(r.out, "run returned 0\n"));
    CHECK(contains(r.out, "host handlers restored\n"));
  }
  for (const int sig : {SIGINT, SIGTERM}) {
    CAPTURE(sig);
    const Ran r = run_host(dir.path, {"stack", "up"}, sig, [&] { return pid_in(dir.path / "job.pid").has_value(); });
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(contains(r.out, "run returned " + std::to_string(128 + sig) + "\n"));
    CHECK(contains(r.out, sig == SIGINT ? "stack up interrupted (SIGINT)" : "stack up interrupted (SIGTERM)"));
    CHECK(contains(r.out, "host handlers restored\n"));
    const auto job = pid_in(dir.path / "job.pid");
    REQUIRE(job);
    CHECK(eventually([&] { return !alive(*job); }, ceiling));
    std::error_code ec;
    fs::remove(dir.path / "job.pid", ec);
  }
}

TEST_CASE("cli::run leaves a signal the host ignores ignored: SIGINT to a background job does not stop its up") {
  Scratch dir("stop-ignored");
  const auto pid_file = dir.path / "job.pid";
  const auto out_file = dir.path / "out.txt";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int code = 3; // anything thrown here must end this copy of the test program, not run the suite again
    try {
      ::signal(SIGINT, SIG_IGN); // as a shell starts a background job
      std::vector<stackup::AnyComponent> parts;
      parts.emplace_back("job", stackup::Command{{.provision = "echo $$ > job.pid; sleep 1; touch job.done",
                                                  .is_provisioned = "test -f job.done", .working_dir = dir.path}});
      stackup::DynamicStack s{"ignored", std::move(parts)};
      std::ofstream out(out_file);
      std::vector<std::string_view> words{"stack", "up"};
      code = stackup::cli::run(s, std::span<const std::string_view>(words), out, out, {.program = "ctl"});
      out.flush();
    } catch (...) {
    }
    ::_exit(code);
  }
  struct Reaper { // a failed REQUIRE below must not leave the child running
    pid_t pid;
    bool reaped = false;
    ~Reaper() {
      if (!reaped) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  CHECK(eventually([&] { return std::filesystem::exists(pid_file); }, ceiling));
  REQUIRE(std::filesystem::exists(pid_file));
  REQUIRE(::kill(child, SIGINT) == 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  reaper.reaped = true;
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0); // not 130: the up went on
  std::ifstream in(out_file);
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(out.find("stack 'ignored' is up") != std::string::npos);
}
