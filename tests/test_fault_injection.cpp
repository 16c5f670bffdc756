// Fault injection: every action of every component of a six-component stack is
// made to fail in turn — a std::exception, a run-time "not implemented", an
// exception that is not a std::exception — in every start state the dependencies
// allow, sequentially and in parallel, with and without an observer. After each
// operation the suite checks stackup's promises:
//   - up is all-or-nothing: on failure the stack is exactly as it was found
//     (with .rollback = false: exactly what the events report was done);
//   - down tries every component and reports every failure in failures();
//   - no exception is lost (cause(), the nested exception, failures(), events);
//   - every `started` event gets exactly one end, and the observer is never
//     called concurrently;
//   - actions respect the dependency order and are never called needlessly;
//   - a failure during rollback is reported and the rest of the rollback goes on.
// Every case runs against both kinds of stack (tests/support/kinds.hpp): the same
// six component types as a Stack<Cs...> and as a DynamicStack of AnyComponents.
#include "support/kinds.hpp"

#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using stackup::Outcome;
using stackup::State;
using stackup::Transition;

constexpr std::size_t n_components = 6;
constexpr std::array<std::string_view, n_components> role_of{
    "artifact_store", "container_registry", "orchestrator", "experiment_tracker", "model_deployer", "alerter"};
constexpr std::array<Transition, 4> all_transitions{Transition::provision, Transition::resume, Transition::suspend,
                                                     Transition::deprovision};

// needs[i][j]: component i depends directly on component j.
//   orchestrator -> artifact_store, container_registry
//   experiment_tracker -> artifact_store
//   model_deployer -> orchestrator, experiment_tracker
//   alerter: independent
constexpr auto needs = [] {
  std::array<std::array<bool, n_components>, n_components> d{};
  d[2][0] = d[2][1] = true;
  d[3][0] = true;
  d[4][2] = d[4][3] = true;
  return d;
}();

constexpr std::size_t ix(Transition t) { return static_cast<std::size_t>(t); }
constexpr int rank(State s) { return static_cast<int>(s); } // deprovisioned < suspended < running

template <std::size_t I> constexpr std::size_t dependency_count() {
  std::size_t n = 0;
  for (bool b : needs[I])
    if (b) ++n;
  return n;
}
template <std::size_t I> constexpr auto dependency_roles() {
  std::array<std::string_view, dependency_count<I>()> a{};
  std::size_t k = 0;
  for (std::size_t j = 0; j < n_components; ++j)
    if (needs[I][j]) a[k++] = role_of[j];
  return a;
}

// Transitive closures, computed here independently of the library's plan.
using Set = std::array<bool, n_components>;
Set dependencies_closure(std::size_t k) {
  Set s{};
  s[k] = true;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < n_components; ++i)
      for (std::size_t j = 0; j < n_components; ++j)
        if (s[i] && needs[i][j] && !s[j]) s[j] = changed = true;
  }
  return s;
}
Set dependents_closure(std::size_t k) {
  Set s{};
  s[k] = true;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < n_components; ++i)
      for (std::size_t j = 0; j < n_components; ++j)
        if (s[j] && needs[i][j] && !s[i]) s[i] = changed = true;
  }
  return s;
}

// ---- faults ---------------------------------------------------------------------

enum class Kind { none, error, not_implemented, foreign };
constexpr std::array<Kind, 3> all_kinds{Kind::error, Kind::not_implemented, Kind::foreign};
constexpr std::string_view kind_name(Kind k) {
  switch (k) {
  case Kind::none: return "none";
  case Kind::error: return "error";
  case Kind::not_implemented: return "not_implemented";
  case Kind::foreign: return "foreign";
  }
  return "?";
}

std::string fault_message(std::size_t c, Transition t, int call) {
  return "injected fault: " + std::string(role_of[c]) + " " + std::string(stackup::to_string(t)) + " call #" +
         std::to_string(call);
}

/// A component's own exception.
class InjectedFault : public std::runtime_error {
public:
  InjectedFault(std::size_t c, Transition t, const std::string& message)
      : std::runtime_error(message), component(c), action(t) {}
  std::size_t component;
  Transition action;
};
/// An exception that does not derive from std::exception.
struct Foreign {
  std::size_t component;
  Transition action;
};

struct Fault {
  Kind kind = Kind::none;
  int on_call = 0; // the k-th call (counted from the World's creation) fails
};
struct Fired {
  std::size_t component;
  Transition action;
  Kind kind;
  std::string message;
};

using Snapshot = std::array<State, n_components>;

/// The "real world" the components manage: per component, whether its
/// resources exist and run. Components may act concurrently (parallel mode),
/// so states are atomics, and each action checks the dependency order against
/// the others' states and in-flight actions.
class World {
public:
  void set(std::size_t c, State s) {
    slots_[c].provisioned = s != State::deprovisioned;
    slots_[c].running = s == State::running;
  }
  void set(const Snapshot& s) {
    for (std::size_t c = 0; c < n_components; ++c) set(c, s[c]);
  }
  [[nodiscard]] bool provisioned(std::size_t c) const { return slots_[c].provisioned; }
  [[nodiscard]] bool running(std::size_t c) const { return slots_[c].running; }
  [[nodiscard]] State state(std::size_t c) const {
    return running(c) ? State::running : provisioned(c) ? State::suspended : State::deprovisioned;
  }
  [[nodiscard]] Snapshot snapshot() const {
    Snapshot s{};
    for (std::size_t c = 0; c < n_components; ++c) s[c] = state(c);
    return s;
  }

  void inject(std::size_t c, Transition t, Kind kind, int on_call = 1) { slots_[c].faults[ix(t)] = {kind, on_call}; }
  void clear_faults() {
    for (auto& s : slots_) s.faults = {};
  }

  /// Start of an operation: forget what was fired, remember the call counts.
  void mark() {
    for (auto& s : slots_)
      for (std::size_t a = 0; a < 4; ++a) s.calls_at_mark[a] = s.calls[a];
    std::lock_guard lock(mutex_);
    fired_.clear();
  }
  [[nodiscard]] int calls_since_mark(std::size_t c, Transition t) const {
    return slots_[c].calls[ix(t)] - slots_[c].calls_at_mark[ix(t)];
  }
  [[nodiscard]] std::vector<Fired> fired() const {
    std::lock_guard lock(mutex_);
    return fired_;
  }
  [[nodiscard]] std::vector<std::string> violations() const {
    std::lock_guard lock(mutex_);
    return violations_;
  }

  /// What every action of every component does.
  void act(std::size_t c, Transition t) {
    const std::size_t a = ix(t);
    Slot& s = slots_[c];
    if (s.busy_total.fetch_add(1) != 0) violate(std::string(role_of[c]) + ": two actions at once");
    s.busy[a].fetch_add(1);
    struct Leave {
      Slot& slot;
      std::size_t action;
      ~Leave() {
        slot.busy[action].fetch_sub(1);
        slot.busy_total.fetch_sub(1);
      }
    } leave{s, a};
    check_order(c, t);
    check_needed(c, t);
    const int call = s.calls[a].fetch_add(1) + 1;
    const Fault fault = s.faults[a];
    if (fault.kind != Kind::none && call == fault.on_call) {
      std::string message = fault_message(c, t, call);
      {
        std::lock_guard lock(mutex_);
        fired_.push_back({c, t, fault.kind, message});
      }
      switch (fault.kind) {
      case Kind::error: throw InjectedFault(c, t, message);
      case Kind::not_implemented: throw stackup::NotImplementedError(message);
      case Kind::foreign: throw Foreign{c, t};
      case Kind::none: break;
      }
    }
    switch (t) { // a failed action changes nothing; a successful one does exactly its job
    case Transition::provision: s.provisioned = true; break;
    case Transition::resume: s.running = true; break;
    case Transition::suspend: s.running = false; break;
    case Transition::deprovision: s.running = false, s.provisioned = false; break;
    }
  }

private:
  struct Slot {
    std::atomic<bool> provisioned{false};
    std::atomic<bool> running{false};
    std::atomic<int> busy_total{0};
    std::array<std::atomic<int>, 4> busy{};
    std::array<std::atomic<int>, 4> calls{};
    std::array<int, 4> calls_at_mark{};
    std::array<Fault, 4> faults{};
  };

  void violate(std::string what) {
    std::lock_guard lock(mutex_);
    violations_.push_back(std::move(what));
  }
  [[nodiscard]] bool busy(std::size_t c, Transition t) const { return slots_[c].busy[ix(t)] != 0; }

  // The stack calls an action only when the state says it is needed.
  void check_needed(std::size_t c, Transition t) {
    const std::string who = std::string(role_of[c]) + " " + std::string(stackup::to_string(t));
    switch (t) {
    case Transition::provision:
      if (provisioned(c)) violate(who + " called on a provisioned component");
      break;
    case Transition::resume:
      if (running(c) || !provisioned(c)) violate(who + " called on a running or unprovisioned component");
      break;
    case Transition::suspend:
      if (!running(c)) violate(who + " called on a component that is not running");
      break;
    case Transition::deprovision:
      if (!provisioned(c)) violate(who + " called on a component that is not provisioned");
      break;
    }
  }

  // Dependencies come up first and go down last; dependents the other way round.
  // In-flight checks allow pipelining (a dependent may provision while its
  // dependency resumes; a dependency may suspend while its dependent deprovisions).
  void check_order(std::size_t c, Transition t) {
    const std::string who = std::string(role_of[c]) + " " + std::string(stackup::to_string(t));
    for (std::size_t j = 0; j < n_components; ++j) {
      const std::string other(role_of[j]);
      if (needs[c][j]) { // j is a dependency of c
        switch (t) {
        case Transition::provision:
          if (!provisioned(j)) violate(who + " before its dependency " + other + " is provisioned");
          if (busy(j, Transition::provision) || busy(j, Transition::deprovision))
            violate(who + " while its dependency " + other + " is being (de)provisioned");
          break;
        case Transition::resume:
          if (!running(j)) violate(who + " before its dependency " + other + " runs");
          if (slots_[j].busy_total != 0) violate(who + " while its dependency " + other + " is busy");
          break;
        case Transition::suspend:
          if (busy(j, Transition::suspend) || busy(j, Transition::deprovision))
            violate(who + " while its dependency " + other + " is stopping");
          break;
        case Transition::deprovision:
          if (busy(j, Transition::deprovision)) violate(who + " while its dependency " + other + " is deprovisioning");
          break;
        }
      }
      if (needs[j][c]) { // j is a dependent of c
        switch (t) {
        case Transition::provision:
          if (busy(j, Transition::provision)) violate(who + " while its dependent " + other + " provisions");
          break;
        case Transition::resume:
          if (busy(j, Transition::resume)) violate(who + " while its dependent " + other + " resumes");
          break;
        case Transition::suspend:
          if (running(j) && calls_since_mark(j, Transition::suspend) == 0)
            violate(who + " while its dependent " + other + " runs and was not asked to stop");
          if (busy(j, Transition::suspend) || busy(j, Transition::resume))
            violate(who + " while its dependent " + other + " is starting or stopping");
          break;
        case Transition::deprovision:
          if (provisioned(j) && calls_since_mark(j, Transition::deprovision) == 0)
            violate(who + " while its dependent " + other + " is provisioned and was not asked to deprovision");
          if (slots_[j].busy_total != 0) violate(who + " while its dependent " + other + " is busy");
          break;
        }
      }
    }
  }

  std::array<Slot, n_components> slots_{};
  mutable std::mutex mutex_;
  std::vector<Fired> fired_;
  std::vector<std::string> violations_;
};

/// A component whose queries read the World and whose actions go through World::act.
template <std::size_t I> struct Faulty : stackup::StackComponent<Faulty<I>> {
  static constexpr std::string_view role = role_of[I];
  static constexpr auto depends_on = dependency_roles<I>();
  World* world = nullptr;

  [[nodiscard]] bool is_provisioned() const { return world->provisioned(I); }
  [[nodiscard]] bool is_running() const { return world->running(I); }
  void provision() { world->act(I, Transition::provision); }
  void resume() { world->act(I, Transition::resume); }
  void suspend() { world->act(I, Transition::suspend); }
  void deprovision() { world->act(I, Transition::deprovision); }
};
static_assert(stackup::Provisionable<Faulty<0>> && stackup::Resumable<Faulty<0>> && stackup::Suspendable<Faulty<0>> &&
              stackup::Deprovisionable<Faulty<0>>);

// Listed out of dependency order on purpose: the stack sorts.
template <class K>
using FaultyStack = kinds::StackOf<K, Faulty<4>, Faulty<5>, Faulty<2>, Faulty<3>, Faulty<0>, Faulty<1>>;

// ---- events -----------------------------------------------------------------------

struct Recorded {
  std::size_t component;
  Transition transition;
  Outcome outcome;
  std::string message;
};

std::size_t component_of(std::string_view role) {
  const auto it = std::find(role_of.begin(), role_of.end(), role);
  return static_cast<std::size_t>(it - role_of.begin());
}

class Recorder {
public:
  void record(const stackup::Event& e) {
    if (inside_.exchange(true)) concurrent_ = true;
    const std::size_t c = component_of(e.role);
    if (c == n_components || e.stack != "faulty" || e.component != e.role) malformed_ = true;
    else events_.push_back({c, e.transition, e.outcome, e.message});
    inside_ = false;
  }
  void clear() { events_.clear(); }
  [[nodiscard]] const std::vector<Recorded>& events() const { return events_; }
  [[nodiscard]] bool concurrent() const { return concurrent_; }
  [[nodiscard]] bool malformed() const { return malformed_; }

private:
  std::atomic<bool> inside_{false};
  bool concurrent_ = false;
  bool malformed_ = false;
  std::vector<Recorded> events_;
};

template <class K> struct Fixture {
  World world;
  Recorder recorder;
  FaultyStack<K> stack = kinds::make_from<K>("faulty", Faulty<4>{{}, &world}, Faulty<5>{{}, &world},
                                             Faulty<2>{{}, &world}, Faulty<3>{{}, &world}, Faulty<0>{{}, &world},
                                             Faulty<1>{{}, &world});
  explicit Fixture(bool observe = true) {
    if (observe) stack.on_event([this](const stackup::Event& e) { recorder.record(e); });
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
};

// ---- operations and their checks ----------------------------------------------------

struct Op {
  enum What { up, down, up_one, down_one } what = up;
  bool rollback = true;
  bool force = false;
  bool parallel = false;
  std::size_t target = 0; // for up_one / down_one
  bool observe = true;

  [[nodiscard]] bool is_up() const { return what == up || what == up_one; }
  [[nodiscard]] Set scope() const {
    if (what == up_one) return dependencies_closure(target);
    if (what == down_one) return dependents_closure(target);
    Set all{};
    all.fill(true);
    return all;
  }
};

std::string describe(const Op& op, const Snapshot& before) {
  std::string s;
  switch (op.what) {
  case Op::up: s = "up"; break;
  case Op::down: s = "down"; break;
  case Op::up_one: s = "up(\"" + std::string(role_of[op.target]) + "\")"; break;
  case Op::down_one: s = "down(\"" + std::string(role_of[op.target]) + "\")"; break;
  }
  s += op.is_up() ? (op.rollback ? " rollback" : " no-rollback") : (op.force ? " force" : "");
  s += op.parallel ? " parallel" : " sequential";
  s += op.observe ? "" : " unobserved";
  s += " from [";
  for (std::size_t c = 0; c < n_components; ++c)
    s += std::string(c ? ", " : "") + std::string(role_of[c]) + "=" + std::string(stackup::to_string(before[c]));
  return s + "]";
}

struct Result {
  std::optional<stackup::TransitionError> error;
  std::string other; // any other exception: always a defect
};

template <class K> Result run(Fixture<K>& f, const Op& op) {
  Result r;
  f.world.mark();
  f.recorder.clear();
  try {
    const stackup::UpOptions up{.rollback = op.rollback, .parallel = op.parallel};
    const stackup::DownOptions down{.force = op.force, .parallel = op.parallel};
    switch (op.what) {
    case Op::up: f.stack.up(up); break;
    case Op::down: f.stack.down(down); break;
    case Op::up_one: f.stack.up(role_of[op.target], up); break;
    case Op::down_one: f.stack.down(role_of[op.target], down); break;
    }
  } catch (const stackup::TransitionError& e) {
    r.error.emplace(e);
  } catch (const std::exception& e) {
    r.other = std::string("std::exception: ") + e.what();
  } catch (...) {
    r.other = "an exception that is not a std::exception";
  }
  return r;
}

// A fired fault that the operation must report as a failure, and the text the
// failure must carry.
bool is_failure(const Fired& x, const Op& op) {
  if (x.kind != Kind::not_implemented) return true;
  if (op.is_up()) return true; // up needs every action it calls (and rollback every undo)
  // down: "not implemented" is skipped, except for the target of down("role"), which must act.
  return op.what == Op::down_one && x.component == op.target &&
         x.action == (op.force ? Transition::deprovision : Transition::suspend);
}
bool failure_matches(const stackup::TransitionError::Failure& f, const Fired& x) {
  if (f.role != role_of[x.component] || f.transition != x.action) return false;
  switch (x.kind) {
  case Kind::error: return f.message.find(x.message) != std::string::npos;
  case Kind::not_implemented: return f.message.find("does not implement") != std::string::npos;
  case Kind::foreign: return f.message.find("unknown exception") != std::string::npos;
  case Kind::none: return false;
  }
  return false;
}

// The cause must be the very exception that stopped the operation.
void check_cause(std::exception_ptr cause, const Fired& x) {
  REQUIRE(cause);
  try {
    std::rethrow_exception(cause);
  } catch (const InjectedFault& e) {
    CHECK(x.kind == Kind::error);
    CHECK(e.component == x.component);
    CHECK(e.action == x.action);
    CHECK(std::string(e.what()) == x.message);
  } catch (const stackup::NotImplementedError& e) {
    CHECK(x.kind == Kind::not_implemented);
    CHECK(std::string_view(e.what()).find(role_of[x.component]) != std::string_view::npos);
  } catch (const Foreign& e) {
    CHECK(x.kind == Kind::foreign);
    CHECK(e.component == x.component);
    CHECK(e.action == x.action);
  } catch (...) {
    FAIL_CHECK("the cause is not the component's exception");
  }
}

void check_error(const stackup::TransitionError& e, const std::vector<Fired>& failing, const Op& op) {
  const auto& failures = e.failures();
  REQUIRE(failures.size() == failing.size());
  for (const auto& x : failing) {
    INFO("fault not found in failures(): ", x.message);
    CHECK(std::any_of(failures.begin(), failures.end(), [&](const auto& f) { return failure_matches(f, x); }));
  }
  // The error names the first failure; its cause is that failure's exception.
  CHECK(e.role() == failures.front().role);
  CHECK(e.transition() == failures.front().transition);
  const auto first = std::find_if(failing.begin(), failing.end(),
                                  [&](const Fired& x) { return failure_matches(failures.front(), x); });
  REQUIRE(first != failing.end());
  if (op.is_up()) // up fails on a forward action; undo failures come after it
    CHECK((first->action == Transition::provision || first->action == Transition::resume));
  check_cause(e.cause(), *first);
  const auto* nested = dynamic_cast<const std::nested_exception*>(&e);
  REQUIRE(nested != nullptr);
  CHECK(nested->nested_ptr() == e.cause());
  const std::string what = e.what();
  CHECK(what.find(std::string(role_of[first->component])) != std::string::npos);
  CHECK(what.find(std::string(stackup::to_string(first->action))) != std::string::npos);
  for (const auto& f : failures) {
    INFO("failure not in what(): ", f.role, " ", stackup::to_string(f.transition));
    CHECK(what.find(f.role) != std::string::npos);
  }
  // After up's first failure come undo failures (marked "rollback: ") and, in
  // parallel mode only, failures of forward actions that were already running.
  for (std::size_t i = 1; i < failures.size() && op.is_up(); ++i) {
    const auto& f = failures[i];
    INFO("failure #", i, ": ", f.role, " ", stackup::to_string(f.transition), ": ", f.message);
    const bool forward = f.transition == Transition::provision || f.transition == Transition::resume;
    CHECK(f.rollback == !forward);
    CHECK(f.message.rfind("rollback: ", 0) == (forward ? std::string::npos : 0));
    if (forward) CHECK(op.parallel);
  }
  CHECK_FALSE(failures.front().rollback);
  if (!op.is_up())
    for (const auto& f : failures) CHECK_FALSE(f.rollback);
}

// Every started gets exactly one end; the state is exactly what the events say.
template <class K> void check_events(const Fixture<K>& f, const Snapshot& before, const std::vector<Fired>& fired) {
  const auto& events = f.recorder.events();
  CHECK_FALSE(f.recorder.concurrent());
  CHECK_FALSE(f.recorder.malformed());
  std::array<std::array<bool, 4>, n_components> open{};
  std::array<std::array<int, 4>, n_components> started{};
  std::size_t failed = 0, not_implemented = 0;
  Snapshot replay = before;
  for (const auto& e : events) {
    bool& o = open[e.component][ix(e.transition)];
    State& s = replay[e.component];
    INFO("event ", role_of[e.component], " ", stackup::to_string(e.transition), " ", stackup::to_string(e.outcome));
    switch (e.outcome) {
    case Outcome::started:
      CHECK_FALSE(o);
      o = true;
      ++started[e.component][ix(e.transition)];
      break;
    case Outcome::succeeded:
    case Outcome::rolled_back:
      CHECK(o);
      o = false;
      switch (e.transition) {
      case Transition::provision: s = State::suspended; break;
      case Transition::resume: s = State::running; break;
      case Transition::suspend: s = State::suspended; break;
      case Transition::deprovision: s = State::deprovisioned; break;
      }
      break;
    case Outcome::failed:
      CHECK(o);
      o = false;
      ++failed;
      break;
    case Outcome::not_implemented: // the end of a started action, or stand-alone
      if (o) ++not_implemented;
      o = false;
      break;
    case Outcome::already_done: CHECK_FALSE(o); break;
    }
  }
  for (std::size_t c = 0; c < n_components; ++c)
    for (Transition t : all_transitions) {
      INFO(role_of[c], " ", stackup::to_string(t));
      CHECK_FALSE(open[c][ix(t)]);                               // no start without an end
      CHECK(started[c][ix(t)] == f.world.calls_since_mark(c, t)); // no action without events
    }
  CHECK(replay == f.world.snapshot());
  // Each fired fault reached the observer with its own message (a run-time "not
  // implemented" then says what follows: "; it keeps running", ...).
  std::size_t expect_failed = 0, expect_not_implemented = 0;
  for (const auto& x : fired) {
    const Outcome want = x.kind == Kind::not_implemented ? Outcome::not_implemented : Outcome::failed;
    (want == Outcome::failed ? expect_failed : expect_not_implemented) += 1;
    const bool seen = std::any_of(events.begin(), events.end(), [&](const Recorded& e) {
      return e.component == x.component && e.transition == x.action && e.outcome == want &&
             (x.kind == Kind::foreign ? e.message.find("unknown exception") != std::string::npos
                                      : x.kind == Kind::not_implemented ? e.message == x.message || e.message.starts_with(x.message + "; ")
                                                                        : e.message == x.message);
    });
    INFO("fault not seen by the observer: ", x.message, " (", kind_name(x.kind), ")");
    CHECK(seen);
  }
  CHECK(failed == expect_failed);
  CHECK(not_implemented == expect_not_implemented);
}

/// Runs one operation and checks every promise. Returns the faults it fired.
template <class K> std::vector<Fired> run_and_check(Fixture<K>& f, const Op& op) {
  const Snapshot before = f.world.snapshot();
  const std::string what = describe(op, before);
  INFO(what);
  const Result r = run(f, op);
  CHECK_MESSAGE(r.other.empty(), "operations throw only TransitionError, got ", r.other);
  const std::vector<Fired> fired = f.world.fired();
  std::vector<Fired> failing;
  for (const auto& x : fired)
    if (is_failure(x, op)) failing.push_back(x);
  const Set scope = op.scope();

  CHECK(r.error.has_value() == !failing.empty());
  if (r.error) check_error(*r.error, failing, op);
  if (op.observe) check_events(f, before, fired);
  for (const auto& v : f.world.violations()) FAIL_CHECK(v);

  const Snapshot after = f.world.snapshot();
  for (std::size_t c = 0; c < n_components; ++c) {
    INFO("component ", role_of[c], " was ", stackup::to_string(before[c]), ", is ", stackup::to_string(after[c]));
    if (!scope[c]) { // outside the operation: untouched
      CHECK(after[c] == before[c]);
      for (Transition t : all_transitions) CHECK(f.world.calls_since_mark(c, t) == 0);
      continue;
    }
    const bool faulted = std::any_of(fired.begin(), fired.end(), [&](const Fired& x) { return x.component == c; });
    if (op.is_up()) {
      if (before[c] == State::running) // idempotent: nothing to do
        for (Transition t : all_transitions) CHECK(f.world.calls_since_mark(c, t) == 0);
      if (!r.error) CHECK(after[c] == State::running);
      else if (op.rollback && !faulted) CHECK(after[c] == before[c]); // all-or-nothing
      else if (op.rollback) // only a failed undo may leave a trace
        CHECK((after[c] == before[c] || std::any_of(fired.begin(), fired.end(), [&](const Fired& x) {
                 return x.component == c && (x.action == Transition::suspend || x.action == Transition::deprovision);
               })));
      if (!op.rollback) { // nothing is undone, nothing goes backwards
        CHECK(f.world.calls_since_mark(c, Transition::suspend) == 0);
        CHECK(f.world.calls_since_mark(c, Transition::deprovision) == 0);
        CHECK(rank(after[c]) >= rank(before[c]));
      }
    } else {
      // Exhaustive: every component that needed stopping was asked, exactly once.
      CHECK(f.world.calls_since_mark(c, Transition::suspend) == (before[c] == State::running ? 1 : 0));
      CHECK(f.world.calls_since_mark(c, Transition::deprovision) ==
            (op.force && before[c] != State::deprovisioned ? 1 : 0));
      CHECK(f.world.calls_since_mark(c, Transition::provision) == 0);
      CHECK(f.world.calls_since_mark(c, Transition::resume) == 0);
      if (!faulted) {
        if (op.force) CHECK(after[c] == State::deprovisioned);
        else CHECK(after[c] == (before[c] == State::running ? State::suspended : before[c]));
      }
    }
  }
  return fired;
}

// Every assignment of states that respects the dependencies (a component is
// never "further up" than what it depends on).
std::vector<Snapshot> consistent_states() {
  std::vector<Snapshot> out;
  int combinations = 1;
  for (std::size_t c = 0; c < n_components; ++c) combinations *= 3;
  for (int code = 0; code < combinations; ++code) {
    Snapshot s{};
    int rest = code;
    for (std::size_t c = 0; c < n_components; ++c, rest /= 3) s[c] = static_cast<State>(rest % 3);
    bool ok = true;
    for (std::size_t i = 0; i < n_components; ++i)
      for (std::size_t j = 0; j < n_components; ++j)
        if (needs[i][j] && rank(s[i]) > rank(s[j])) ok = false;
    if (ok) out.push_back(s);
  }
  return out;
}

constexpr Snapshot all_in(State s) { return {s, s, s, s, s, s}; }

// One fault at every (component, action, kind), k = 1, every operation of the
// stack, from every consistent start state (or every `stride`-th from `first`,
// to bound time).
template <class K> void single_fault_matrix(bool parallel, std::size_t stride, std::size_t first = 0) {
  const auto states = consistent_states();
  REQUIRE(states.size() > 50);
  std::size_t ops = 0;
  for (std::size_t si = first; si < states.size(); si += stride) {
    for (std::size_t c = 0; c < n_components; ++c)
      for (Transition t : all_transitions)
        for (Kind kind : all_kinds) {
          const std::string fault = std::string(kind_name(kind)) + " on " + std::string(role_of[c]) + "." +
                                    std::string(stackup::to_string(t));
          INFO("fault: ", fault);
          const std::array<Op, 4> operations{Op{.what = Op::up, .rollback = true, .parallel = parallel},
                                             Op{.what = Op::up, .rollback = false, .parallel = parallel},
                                             Op{.what = Op::down, .force = false, .parallel = parallel},
                                             Op{.what = Op::down, .force = true, .parallel = parallel}};
          for (const Op& op : operations) {
            Fixture<K> f;
            f.world.set(states[si]);
            f.world.inject(c, t, kind);
            run_and_check(f, op);
            ++ops;
          }
        }
  }
  MESSAGE(ops, " operations checked");
}

// The k-th call of one action fails, somewhere in a script of operations that
// walks the stack up and down (whole stack and per component), starting empty.
template <class K> void kth_call_script(bool parallel) {
  for (std::size_t c = 0; c < n_components; ++c)
    for (Transition t : all_transitions)
      for (Kind kind : all_kinds)
        for (int k = 1; k <= 3; ++k)
          for (bool observe : {true, false}) {
            INFO("fault: ", kind_name(kind), " on ", role_of[c], ".", stackup::to_string(t), " call #", k);
            Fixture<K> f(observe);
            f.world.inject(c, t, kind, k);
            const std::size_t target = (c + 2) % n_components;
            const std::array<Op, 9> script{
                Op{.what = Op::up, .parallel = parallel, .observe = observe},
                Op{.what = Op::down, .parallel = parallel, .observe = observe},
                Op{.what = Op::up, .rollback = false, .parallel = parallel, .observe = observe},
                Op{.what = Op::down_one, .force = true, .parallel = parallel, .target = target, .observe = observe},
                Op{.what = Op::up_one, .parallel = parallel, .target = c, .observe = observe},
                Op{.what = Op::down, .force = true, .parallel = parallel, .observe = observe},
                Op{.what = Op::up, .parallel = parallel, .observe = observe},
                Op{.what = Op::down_one, .parallel = parallel, .target = c, .observe = observe},
                Op{.what = Op::down, .force = true, .parallel = parallel, .observe = observe}};
            std::size_t fired = 0;
            for (const Op& op : script) fired += run_and_check(f, op).size();
            CHECK(fired <= 1);
            // With the fault spent, a force down always ends clean.
            f.world.clear_faults();
            run_and_check(f, Op{.what = Op::down, .force = true, .parallel = parallel, .observe = observe});
            CHECK(f.world.snapshot() == all_in(State::deprovisioned));
            CHECK_FALSE(f.stack.is_provisioned());
          }
}

// A forward action fails, then an undo fails too: both are reported, and the
// rest of the rollback still happens.
template <class K> void rollback_failure_matrix(bool parallel) {
  std::size_t both = 0;
  for (std::size_t c = 0; c < n_components; ++c)
    for (Transition t : {Transition::provision, Transition::resume})
      for (std::size_t u = 0; u < n_components; ++u)
        for (Transition undo : {Transition::suspend, Transition::deprovision})
          for (Kind kind : all_kinds) {
            INFO("fault: error on ", role_of[c], ".", stackup::to_string(t), ", then ", kind_name(kind), " on ",
                 role_of[u], ".", stackup::to_string(undo));
            Fixture<K> f;
            f.world.inject(c, t, Kind::error);
            f.world.inject(u, undo, kind);
            const auto fired = run_and_check(f, Op{.what = Op::up, .parallel = parallel});
            if (fired.size() == 2) ++both;
            // Whatever the rollback could not undo, a force down cleans up.
            f.world.clear_faults();
            run_and_check(f, Op{.what = Op::down, .force = true, .parallel = parallel});
            CHECK(f.world.snapshot() == all_in(State::deprovisioned));
          }
  CHECK(both > 0); // the matrix does exercise failing undos
}

// Every action of every component fails: down still tries them all and reports
// each failure; up reports its one failure and undoes what it did.
template <class K> void everything_fails(bool parallel) {
  for (Kind kind : {Kind::error, Kind::foreign}) {
    Fixture<K> f;
    f.world.set(all_in(State::running));
    for (std::size_t c = 0; c < n_components; ++c)
      for (Transition t : all_transitions) f.world.inject(c, t, kind);
    const auto fired = run_and_check(f, Op{.what = Op::down, .force = true, .parallel = parallel});
    CHECK(fired.size() == 2 * n_components);
    CHECK(f.world.snapshot() == all_in(State::running));

    const auto second = run_and_check(f, Op{.what = Op::down, .force = false, .parallel = parallel});
    CHECK(second.empty()); // every fault was spent on its first call
    CHECK(f.world.snapshot() == all_in(State::suspended));
  }
  {
    Fixture<K> f;
    for (std::size_t c = 0; c < n_components; ++c)
      for (Transition t : all_transitions) f.world.inject(c, t, Kind::error, 1);
    const auto fired = run_and_check(f, Op{.what = Op::up, .parallel = parallel});
    CHECK(!fired.empty());
    CHECK(f.world.snapshot() == all_in(State::deprovisioned));
  }
}

} // namespace

TEST_CASE_TEMPLATE("fault injection: the test stack is well-formed", K, kinds::Typed, kinds::Dynamic) {
  CHECK(consistent_states().size() > 50);
  // The independent closures agree with the declared dependencies.
  CHECK(dependencies_closure(4) == Set{true, true, true, true, true, false});
  CHECK(dependents_closure(0) == Set{true, false, true, true, true, false});
  Fixture<K> f;
  CHECK(kinds::size(f.stack) == n_components);
  CHECK(kinds::roles(f.stack) == std::vector<std::string_view>{"model_deployer", "alerter", "orchestrator",
                                                               "experiment_tracker", "artifact_store",
                                                               "container_registry"});
  run_and_check(f, Op{.what = Op::up});
  CHECK(f.world.snapshot() == all_in(State::running));
  run_and_check(f, Op{.what = Op::down, .force = true});
  CHECK(f.world.snapshot() == all_in(State::deprovisioned));
}

TEST_CASE_TEMPLATE("fault injection: one fault at every (component, action) from every start state", K, kinds::Typed,
                   kinds::Dynamic) {
  single_fault_matrix<K>(false, 1);
}
TEST_CASE_TEMPLATE("fault injection: the k-th call fails, across a script of operations", K, kinds::Typed,
                   kinds::Dynamic) {
  kth_call_script<K>(false);
}
TEST_CASE_TEMPLATE("fault injection: a failing undo is reported and the rest of the rollback goes on", K, kinds::Typed,
                   kinds::Dynamic) {
  rollback_failure_matrix<K>(false);
}
TEST_CASE_TEMPLATE("fault injection: when everything fails, down tries everything and reports everything", K,
                   kinds::Typed, kinds::Dynamic) {
  everything_fails<K>(false);
}

// The same promises with parallel execution. The sequential case covers every
// start state with both kinds of stack; here, to keep the suite quick under
// ThreadSanitizer, each kind takes every sixth start state, the two interleaved
// (Stack from the first, DynamicStack from the fourth): together every third.
TEST_CASE_TEMPLATE("parallel: fault injection: one fault at every (component, action)", K, kinds::Typed,
                   kinds::Dynamic) {
  single_fault_matrix<K>(true, 6, kinds::is_dynamic<K> ? 3 : 0);
}
TEST_CASE_TEMPLATE("parallel: fault injection: the k-th call fails, across a script of operations", K, kinds::Typed,
                   kinds::Dynamic) {
  kth_call_script<K>(true);
}
TEST_CASE_TEMPLATE("parallel: fault injection: a failing undo is reported and the rest of the rollback goes on", K,
                   kinds::Typed, kinds::Dynamic) {
  rollback_failure_matrix<K>(true);
}
TEST_CASE_TEMPLATE("parallel: fault injection: when everything fails, down tries everything and reports everything", K,
                   kinds::Typed, kinds::Dynamic) {
  everything_fails<K>(true);
}
