// stackup — bring a stack of infrastructure components up and down.
// Version 0.1.0. https://github.com/stackup-cpp/stackup
// SPDX-License-Identifier: MIT (the MIT licence)
//
// Single-header distribution: generated — do not edit, run tools/amalgamate.py
// (`python3 tools/amalgamate.py` from the source tree) after changing include/.
#pragma once

// ---- begin stackup/stackup.hpp ----
// stackup — the only include you need.
// SPDX-License-Identifier: MIT


// ---- begin stackup/version.hpp ----
// stackup — bring a stack of infrastructure components up and down.
// SPDX-License-Identifier: MIT

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "stackup requires C++20: compile with -std=c++20 (or link the CMake target stackup::stackup, which sets cxx_std_20)."
#endif

#define STACKUP_VERSION_MAJOR 0
#define STACKUP_VERSION_MINOR 1
#define STACKUP_VERSION_PATCH 0
// Major * 10000 + minor * 100 + patch, for `#if STACKUP_VERSION >= ...`.
#define STACKUP_VERSION (STACKUP_VERSION_MAJOR * 10000 + STACKUP_VERSION_MINOR * 100 + STACKUP_VERSION_PATCH)
// ---- end stackup/version.hpp ----
// Below C++20, version.hpp has just issued its #error; skip the rest so that it is
// the only diagnostic rather than the first of hundreds. Add new headers inside.
#if defined(__cplusplus) && __cplusplus >= 202002L

// ---- begin stackup/component.hpp ----
// stackup — the component contract: StackComponent (CRTP defaults), the concepts,
// State / Transition / Outcome, role constants and FixedString.
// SPDX-License-Identifier: MIT


#include <algorithm>
#include <concepts>
#include <cstddef>
#include <ranges>
#include <string>
#include <string_view>
#include <utility>

namespace stackup {

/// Where a component is: derived from `is_running()` and `is_provisioned()`.
enum class State { deprovisioned, suspended, running };
/// The four actions of a component.
enum class Transition { provision, resume, suspend, deprovision };
/// What happened to one action, as reported to observers.
enum class Outcome { started, succeeded, failed, not_implemented, already_done, rolled_back };

/// Lower-case name of a State ("running").
constexpr std::string_view to_string(State s) noexcept {
  switch (s) {
  case State::deprovisioned: return "deprovisioned";
  case State::suspended: return "suspended";
  case State::running: return "running";
  }
  return "?";
}
/// Lower-case name of a Transition ("provision").
constexpr std::string_view to_string(Transition t) noexcept {
  switch (t) {
  case Transition::provision: return "provision";
  case Transition::resume: return "resume";
  case Transition::suspend: return "suspend";
  case Transition::deprovision: return "deprovision";
  }
  return "?";
}
/// Lower-case name of an Outcome ("already_done").
constexpr std::string_view to_string(Outcome o) noexcept {
  switch (o) {
  case Outcome::started: return "started";
  case Outcome::succeeded: return "succeeded";
  case Outcome::failed: return "failed";
  case Outcome::not_implemented: return "not_implemented";
  case Outcome::already_done: return "already_done";
  case Outcome::rolled_back: return "rolled_back";
  }
  return "?";
}

/// A string usable as a template argument: `LocalDaemon<"orchestrator">`,
/// `stack.get<"orchestrator">()`.
template <std::size_t N> struct FixedString {
  char data[N]{};
  constexpr FixedString() = default;
  constexpr FixedString(const char (&s)[N]) noexcept { std::copy_n(s, N, data); } // NOLINT: implicit by design
  [[nodiscard]] constexpr std::string_view view() const noexcept { return {data, N - 1}; }
  constexpr operator std::string_view() const noexcept { return view(); } // NOLINT: implicit by design
  [[nodiscard]] static constexpr std::size_t size() noexcept { return N - 1; }
};
template <std::size_t N> FixedString(const char (&)[N]) -> FixedString<N>;

/// ZenML's stack component types. Any other string is a valid role too.
namespace roles {
inline constexpr std::string_view orchestrator = "orchestrator";
inline constexpr std::string_view artifact_store = "artifact_store";
inline constexpr std::string_view container_registry = "container_registry";
inline constexpr std::string_view step_operator = "step_operator";
inline constexpr std::string_view secrets_manager = "secrets_manager";
inline constexpr std::string_view feature_store = "feature_store";
inline constexpr std::string_view model_deployer = "model_deployer";
inline constexpr std::string_view experiment_tracker = "experiment_tracker";
inline constexpr std::string_view alerter = "alerter";
inline constexpr std::string_view annotator = "annotator";
inline constexpr std::string_view data_validator = "data_validator";
inline constexpr std::string_view image_builder = "image_builder";
} // namespace roles

namespace detail {
template <class B> concept boolean_testable = std::convertible_to<B, bool> && requires(B&& b) {
  { !std::forward<B>(b) } -> std::convertible_to<bool>;
};
template <class T> concept has_role = requires {
  { T::role } -> std::convertible_to<std::string_view>;
};
template <class T> concept has_is_provisioned = requires(const T& c) {
  { c.is_provisioned() } -> boolean_testable;
};
template <class T> concept has_is_running = requires(const T& c) {
  { c.is_running() } -> boolean_testable;
};
} // namespace detail

/// The contract: a static `role` convertible to std::string_view, and const
/// `is_provisioned()` / `is_running()` returning something boolean-testable.
template <class T> concept Component = std::is_class_v<T> && detail::has_role<T> &&
    detail::has_is_provisioned<T> && detail::has_is_running<T>;
/// A Component that can create its resources.
template <class T> concept Provisionable = Component<T> && requires(T& c) { c.provision(); };
/// A Component that can destroy its resources.
template <class T> concept Deprovisionable = Component<T> && requires(T& c) { c.deprovision(); };
/// A Component that can start its provisioned resources.
template <class T> concept Resumable = Component<T> && requires(T& c) { c.resume(); };
/// A Component that can stop its running resources and keep them.
template <class T> concept Suspendable = Component<T> && requires(T& c) { c.suspend(); };

namespace detail {
template <class T> concept has_name = requires(const T& c) {
  { c.name() } -> std::convertible_to<std::string_view>;
};
template <class T> concept has_depends_on = requires {
  std::ranges::begin(T::depends_on);
  std::ranges::size(T::depends_on);
};

/// The component's display name: `name()` when it has one, else its role.
template <class T> constexpr std::string_view name_of(const T& c) {
  if constexpr (has_name<T>) {
    static_assert(!std::is_same_v<decltype(c.name()), std::string>,
                  "stackup: a component's name() must not return a std::string by value (events and status keep a "
                  "view of it): return std::string_view, or a const std::string& to a member");
    return std::string_view(c.name());
  }
  else return std::string_view(T::role);
}
template <class T> constexpr std::size_t dependency_count() {
  if constexpr (has_depends_on<T>) return std::ranges::size(T::depends_on);
  else return 0;
}
template <class T> constexpr std::string_view dependency(std::size_t i) {
  if constexpr (has_depends_on<T>) return std::string_view(std::ranges::begin(T::depends_on)[static_cast<std::ptrdiff_t>(i)]);
  else return (void)i, std::string_view{};
}
} // namespace detail

/// CRTP base with ZenML's defaults: always provisioned, always running, no
/// actions. Declares no constructor, so `Derived{}` stays aggregate initialisation.
template <class Derived> class StackComponent {
public:
  /// Resources exist. Default: always.
  [[nodiscard]] constexpr bool is_provisioned() const noexcept { return true; }
  /// Resources are running. Default: always.
  [[nodiscard]] constexpr bool is_running() const noexcept { return true; }
  /// `!is_running()`, through the derived class's query.
  [[nodiscard]] constexpr bool is_suspended() const { return !static_cast<bool>(self().is_running()); }
  /// Display name. Default: the role.
  [[nodiscard]] constexpr std::string_view name() const noexcept { return std::string_view(Derived::role); }
  /// running if is_running(), else suspended if is_provisioned(), else deprovisioned.
  [[nodiscard]] constexpr State state() const {
    if (self().is_running()) return State::running;
    if (self().is_provisioned()) return State::suspended;
    return State::deprovisioned;
  }

private:
  constexpr const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }
};

/// State of any Component (it need not derive from StackComponent).
template <Component C> constexpr State state_of(const C& c) {
  if (c.is_running()) return State::running;
  if (c.is_provisioned()) return State::suspended;
  return State::deprovisioned;
}

} // namespace stackup
// ---- end stackup/component.hpp ----

// ---- begin stackup/errors.hpp ----
// stackup — errors. Every error stackup throws derives from stackup::Error.
// SPDX-License-Identifier: MIT


#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup {

/// Base of every error stackup throws.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// An action is needed but the component does not implement it (absent member,
/// or a component configured at run time that throws this from the action).
class NotImplementedError : public Error {
public:
  using Error::Error;
};

/// `resume` was asked of a component that has nothing provisioned.
class ProvisioningError : public Error {
public:
  using Error::Error;
};

/// A role string that the stack does not hold; the message lists the valid roles.
class UnknownComponentError : public Error {
public:
  using Error::Error;
};

/// An action or an operation failed. Holds the component's role, the transition,
/// the original exception (as `cause()` and as the nested exception), and every
/// failure of the operation, including anything a rollback could not undo.
///
/// Construct it inside the `catch` that handles the cause: `std::nested_exception`
/// captures the exception currently being handled.
class TransitionError : public Error, public std::nested_exception {
public:
  /// One failure: which component, which transition, what it said.
  struct Failure {
    std::string role;
    Transition transition;
    std::string message;
    bool rollback = false; ///< an undo of `up`'s rollback that failed (the action stays done)
  };

  /// Nests `std::current_exception()`; `failures` lists every failure of the
  /// operation (the first one is the cause).
  TransitionError(std::string role, Transition transition, std::string_view message,
                  std::vector<Failure> failures = {})
      : Error(std::string(message)), role_(std::move(role)), transition_(transition),
        failures_(std::move(failures)) {}

  /// Role of the component whose action stopped the operation.
  [[nodiscard]] const std::string& role() const noexcept { return role_; }
  /// The transition that failed.
  [[nodiscard]] Transition transition() const noexcept { return transition_; }
  /// The original exception (also reachable through `std::rethrow_if_nested`).
  [[nodiscard]] std::exception_ptr cause() const noexcept { return nested_ptr(); }
  /// Every failure of the operation, in the order they happened: for `down`,
  /// every component that failed; for `up`, the actions that failed (more than
  /// one only in parallel mode), then anything the rollback could not undo
  /// (`Failure::rollback`).
  [[nodiscard]] const std::vector<Failure>& failures() const noexcept { return failures_; }

private:
  std::string role_;
  Transition transition_;
  std::vector<Failure> failures_;
};

/// Throws a TransitionError for a failure that has no exception behind it (a
/// component's own check failed): its cause is an Error with the same message, so
/// `cause()` is never null and `std::rethrow_if_nested` never terminates.
[[noreturn]] inline void throw_transition_error(std::string role, Transition transition, const std::string& message) {
  try {
    throw Error(message);
  } catch (const Error&) {
    throw TransitionError(std::move(role), transition, message);
  }
}

namespace detail {
/// The message of the exception being handled (call only inside a `catch`).
inline std::string current_message() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}
} // namespace detail

} // namespace stackup
// ---- end stackup/errors.hpp ----

// ---- begin stackup/events.hpp ----
// stackup — what observers receive (Event) and what status() returns (ComponentStatus).
// SPDX-License-Identifier: MIT


#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace stackup {

/// One step of an operation, as delivered to `Stack::on_event` observers.
/// Every `started` is followed by exactly one end for the same component and
/// transition (`succeeded`, `failed`, `not_implemented`, or `rolled_back` for an
/// undo during rollback). `already_done` and compile-time `not_implemented`
/// stand alone. The string_views stay valid while the stack lives.
struct Event {
  std::string_view stack;     ///< the stack's name
  std::string_view role;      ///< the component's role
  std::string_view component; ///< the component's name
  Transition transition{};
  Outcome outcome{};
  std::chrono::nanoseconds elapsed{}; ///< duration of the action (end events), else 0
  std::string message;                ///< why: the error text, "already running", ...
};

/// The observer type: called once per event, never concurrently.
using Observer = std::function<void(const Event&)>;

/// One row of `Stack::status()`.
struct ComponentStatus {
  std::string_view role;
  std::string_view name;
  State state{};
  std::string_view flavor; ///< the component's `flavor` (e.g. "local_daemon"), or "custom"
  std::string detail;      ///< what the component's `detail()` offers (pid, port, path), or empty
};

namespace detail {
template <class T> concept has_flavor = requires {
  { T::flavor } -> std::convertible_to<std::string_view>;
};
template <class T> concept has_detail = requires(const T& c) {
  { c.detail() } -> std::convertible_to<std::string>;
};
template <class T> constexpr std::string_view flavor_of() {
  if constexpr (has_flavor<T>) return std::string_view(T::flavor);
  else return "custom";
}
} // namespace detail

} // namespace stackup
// ---- end stackup/events.hpp ----

// ---- begin stackup/stack.hpp ----
// stackup — Stack<Components...>: ZenML's stack up / stack down over a compile-time
// dependency order, dispatched by folds (no virtual calls, no heap on the way).
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/parallel.hpp ----
// stackup — the scheduler of parallel transitions (internal).
// SPDX-License-Identifier: MIT

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

namespace stackup::detail {

/// Runs `step(i)` for every component i with `mask[i]`, each as soon as its
/// prerequisites among the masked ones have finished: its dependencies, or with
/// `reverse` its dependents. `first`/`dep` are the dependency lists (Plan::Result).
/// `step` must not throw; it returns false to stop scheduling new steps (steps in
/// flight still finish). Threads: one per ready component, at most `max_threads`
/// (0: no limit), the calling thread included. Returns when every started step ended.
template <class Step>
void run_dag(std::span<const bool> mask, std::span<const std::size_t> first, std::span<const std::size_t> dep,
             bool reverse, std::size_t max_threads, Step&& step) {
  const std::size_t n = mask.size();
  std::vector<std::size_t> waiting(n, 0);
  std::vector<std::vector<std::size_t>> next(n); // who waits for i
  std::size_t pending = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!mask[i]) continue;
    ++pending;
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) {
      const std::size_t d = dep[e];
      if (!mask[d]) continue;
      const std::size_t before = reverse ? i : d, after = reverse ? d : i;
      next[before].push_back(after);
      ++waiting[after];
    }
  }
  std::vector<std::size_t> ready;
  for (std::size_t i = n; i-- > 0;) // reversed, so that pop_back takes the lowest index first
    if (mask[i] && waiting[i] == 0) ready.push_back(i);

  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::size_t idle = 0;
  const std::size_t limit = max_threads == 0 ? n : max_threads;
  std::vector<std::jthread> threads; // declared last: joined before the state above dies
  threads.reserve(limit);

  auto work = [&](auto& self) -> void {
    std::unique_lock lock(m);
    for (;;) {
      ++idle;
      cv.wait(lock, [&] { return stop || pending == 0 || !ready.empty(); });
      --idle;
      if (stop || pending == 0) return;
      const std::size_t i = ready.back();
      ready.pop_back();
      // Everything else that is ready gets a worker now: idle ones are woken, the
      // rest started here, so a busy machine costs one scheduling delay, not one per thread.
      for (std::size_t more = ready.size(), woken = 0; more > 0; --more) {
        if (woken < idle) ++woken, cv.notify_one();
        else if (threads.size() + 1 < limit) {
          try {
            threads.emplace_back([&self] { self(self); });
          } catch (const std::system_error&) {
            break; // no more threads to be had: the running ones carry on
          }
        } else break;
      }
      lock.unlock();
      const bool ok = step(i);
      lock.lock();
      --pending;
      if (!ok) stop = true;
      else
        for (std::size_t j : next[i])
          if (--waiting[j] == 0) ready.push_back(j);
      std::sort(ready.begin(), ready.end(), std::greater<>());
      cv.notify_all();
    }
  };
  work(work);
  // Once the caller's thread saw the end (stop, or nothing pending), no worker
  // starts a thread any more; wait for the steps still in flight.
  for (auto& t : threads) t.join();
}

} // namespace stackup::detail
// ---- end stackup/detail/parallel.hpp ----

// ---- begin stackup/detail/plan.hpp ----
// stackup — compile-time checks and action order of a Stack (internal).
// SPDX-License-Identifier: MIT


#include <array>
#include <cstddef>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace stackup::detail {

template <class...> inline constexpr bool always_false = false;

/// A string_view as a template argument, so diagnostics show the role.
template <std::size_t N> constexpr FixedString<N> fixed(std::string_view s) {
  FixedString<N> f;
  for (std::size_t i = 0; i + 1 < N && i < s.size(); ++i) f.data[i] = s[i];
  return f;
}

/// A role spelt as a pack of characters. Reporting templates take the role in
/// this form because clang prints a FixedString argument as numbers
/// ({{97, 112, 105, 0}}), while both compilers print role_name<'a', 'p', 'i'>.
template <char... Chars> struct role_name {};
template <FixedString S, std::size_t... I> role_name<S.data[I]...> spell(std::index_sequence<I...>);
template <FixedString S> using spelled = decltype(spell<S>(std::make_index_sequence<S.size()>{}));

// Reporting templates: instantiated only on a broken stack, so the compiler's
// "in instantiation of ..." line shows the role and the component types.
template <class Role, class First, class Second> struct duplicate_role {
  static_assert(always_false<First, Second>,
                "stackup: two components of this Stack have the same role (first template argument); "
                "a stack holds one component per role: remove one of them or give it another `role`");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <class Role, class MissingDependency, class ComponentType> struct missing_dependency {
  static_assert(always_false<ComponentType>,
                "stackup: a component's depends_on names a role that this Stack does not hold "
                "(second template argument): add a component with that role to the Stack, or remove it from depends_on");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <class Role, class ComponentType> struct dependency_cycle {
  static_assert(always_false<ComponentType>,
                "stackup: dependency cycle: this component's depends_on leads back to itself; "
                "remove one depends_on entry on the cycle");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <class T> struct not_a_component {
  // The class-type rule first: clang reports only the first failed assertion here.
  static_assert(std::is_class_v<T>, "stackup: this Stack template argument is not a Component: it must be a class type");
  static_assert(!std::is_class_v<T> || has_role<T>, "stackup: this Stack template argument is not a Component: it needs "
                             "`static constexpr std::string_view role = \"...\";`");
  static_assert(!std::is_class_v<T> || has_is_provisioned<T>, "stackup: this Stack template argument is not a Component: it needs "
                                       "`bool is_provisioned() const` (derive from stackup::StackComponent<T> for the default)");
  static_assert(!std::is_class_v<T> || has_is_running<T>, "stackup: this Stack template argument is not a Component: it needs "
                                   "`bool is_running() const` (derive from stackup::StackComponent<T> for the default)");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

template <class Role, class... StackComponents> struct unknown_role {
  static_assert(always_false<Role>,
                "stackup: the Stack has no component with this role: check the spelling or add the component");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

enum class PlanError { none, duplicate, missing, cycle };

/// Dependency graph and action order of `Cs...`, computed by constant evaluation.
template <class... Cs> struct Plan {
  static constexpr std::size_t size = sizeof...(Cs);
  static constexpr std::array<std::string_view, size> roles{std::string_view(Cs::role)...};
  static constexpr std::array<std::size_t, size> dep_counts{dependency_count<Cs>()...};
  static constexpr std::size_t edges = (dependency_count<Cs>() + ... + 0);

  struct Result {
    std::array<std::size_t, size> order{};        // topological, ties by listing order
    std::array<std::size_t, size + 1> first{};    // dependencies of i: dep[first[i] .. first[i+1])
    std::array<std::size_t, edges + 1> dep{};     // dependency indices
    PlanError error = PlanError::none;
    std::size_t a = 0, b = 0;                     // offending component(s) / depends_on entry
  };

  static constexpr Result compute() {
    Result r{};
    std::array<std::string_view, edges + 1> names{};
    {
      std::size_t e = 0, i = 0;
      ((r.first[i] = e, [&] { for (std::size_t k = 0; k < dependency_count<Cs>(); ++k) names[e++] = dependency<Cs>(k); }(), ++i), ...);
      r.first[size] = e;
    }
    for (std::size_t i = 0; i < size; ++i)
      for (std::size_t j = i + 1; j < size; ++j)
        if (roles[i] == roles[j]) { r.error = PlanError::duplicate; r.a = i; r.b = j; return r; }
    for (std::size_t i = 0; i < size; ++i)
      for (std::size_t e = r.first[i]; e < r.first[i + 1]; ++e) {
        std::size_t j = 0;
        while (j < size && roles[j] != names[e]) ++j;
        if (j == size) { r.error = PlanError::missing; r.a = i; r.b = e - r.first[i]; return r; }
        r.dep[e] = j;
      }
    std::array<bool, size + 1> placed{};
    for (std::size_t n = 0; n < size; ++n) {
      std::size_t pick = size;
      for (std::size_t i = 0; i < size && pick == size; ++i) {
        if (placed[i]) continue;
        bool ready = true;
        for (std::size_t e = r.first[i]; e < r.first[i + 1] && ready; ++e) ready = placed[r.dep[e]];
        if (ready) pick = i;
      }
      if (pick == size) { // every unplaced component waits: walk unplaced dependencies until one repeats
        std::size_t at = 0;
        while (placed[at]) ++at;
        for (std::size_t step = 0; step < size; ++step)
          for (std::size_t e = r.first[at]; e < r.first[at + 1]; ++e)
            if (!placed[r.dep[e]]) { at = r.dep[e]; break; }
        r.error = PlanError::cycle; r.a = at;
        return r;
      }
      placed[pick] = true;
      r.order[n] = pick;
    }
    return r;
  }

  static constexpr Result result = compute();

  /// Components that `K` needs, transitively, plus K itself.
  static constexpr std::array<bool, size> closure_of(std::size_t k) {
    std::array<bool, size> need{};
    need[k] = true;
    for (std::size_t n = size; n-- > 0;) {
      const std::size_t i = result.order[n];
      if (need[i])
        for (std::size_t e = result.first[i]; e < result.first[i + 1]; ++e) need[result.dep[e]] = true;
    }
    return need;
  }
  /// Components that need `K`, transitively (K excluded).
  static constexpr std::array<bool, size> dependents_of(std::size_t k) {
    std::array<bool, size> hit{};
    for (std::size_t n = 0; n < size; ++n) {
      const std::size_t i = result.order[n];
      for (std::size_t e = result.first[i]; e < result.first[i + 1]; ++e)
        if (result.dep[e] == k || hit[result.dep[e]]) { hit[i] = true; break; }
    }
    return hit;
  }
};

template <std::size_t I, class... Ts> using nth = std::tuple_element_t<I, std::tuple<Ts...>>;

/// True when the stack is well-formed; otherwise instantiates the reporting
/// template that names the rule, the fix, the role and the types.
template <class... Cs> constexpr bool check_plan() {
  using P = Plan<Cs...>;
  constexpr auto& r = P::result;
  if constexpr (r.error == PlanError::duplicate) {
    using A = nth<r.a, Cs...>;
    return duplicate_role<spelled<fixed<std::string_view(A::role).size() + 1>(A::role)>, A, nth<r.b, Cs...>>::value;
  } else if constexpr (r.error == PlanError::missing) {
    using A = nth<r.a, Cs...>;
    constexpr std::string_view missing = dependency<A>(r.b);
    return missing_dependency<spelled<fixed<std::string_view(A::role).size() + 1>(A::role)>,
                              spelled<fixed<missing.size() + 1>(missing)>, A>::value;
  } else if constexpr (r.error == PlanError::cycle) {
    using A = nth<r.a, Cs...>;
    return dependency_cycle<spelled<fixed<std::string_view(A::role).size() + 1>(A::role)>, A>::value;
  } else {
    return true;
  }
}

} // namespace stackup::detail
// ---- end stackup/detail/plan.hpp ----

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// Forces inlining of the few functions on the transition path, so a stack's
// operations compile to the checks and calls a person would write; GCC and Clang
// otherwise stop inlining the per-component folds of larger stacks.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_ALWAYS_INLINE [[gnu::always_inline]] inline
#elif defined(_MSC_VER)
#define STACKUP_ALWAYS_INLINE [[msvc::forceinline]] inline
#else
#define STACKUP_ALWAYS_INLINE inline
#endif
// Marks what runs only when something fails, so it stays out of the inlined path.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_COLD [[gnu::cold, gnu::noinline]]
#else
#define STACKUP_COLD
#endif

namespace stackup {

/// Options of `up`. Members in this order, for designated initialisers.
struct UpOptions {
  bool rollback = true;  ///< on failure, undo what this call did, in reverse
  bool parallel = false; ///< run each action as soon as its dependencies are done, on several threads
  std::size_t max_threads = 0; ///< with `parallel`: at most this many threads (0: one per ready component)
};
/// Options of `down`. Members in this order, for designated initialisers.
struct DownOptions {
  bool force = false;    ///< also deprovision (zenml stack down --force)
  bool parallel = false; ///< run each action as soon as its dependents are done, on several threads
  std::size_t max_threads = 0; ///< with `parallel`: at most this many threads (0: one per ready component)
};

namespace detail {
template <class T> constexpr bool checked_component() {
  if constexpr (Component<T>) return true;
  else return not_a_component<T>::value;
}
template <bool AllComponents, class... Cs> constexpr bool checked_stack() {
  if constexpr (AllComponents) return check_plan<Cs...>();
  else return false;
}
template <class T> constexpr std::string_view role_of() {
  if constexpr (has_role<T>) return std::string_view(T::role);
  else return {};
}
template <bool WellFormed, class... Cs> constexpr std::array<std::size_t, sizeof...(Cs)> order_of() {
  if constexpr (WellFormed) return Plan<Cs...>::result.order;
  else return {};
}
template <class T, class... Cs> constexpr std::size_t type_index() {
  constexpr std::array<bool, sizeof...(Cs)> same{std::is_same_v<T, Cs>...};
  for (std::size_t i = 0; i < same.size(); ++i)
    if (same[i]) return i;
  return sizeof...(Cs);
}
inline void append(std::string& s, std::initializer_list<std::string_view> parts) {
  for (auto p : parts) s.append(p);
}
} // namespace detail

/// A stack of components with unique roles. Actions run in dependency order
/// (`depends_on`, ties broken by listing order); suspend and deprovision in reverse.
template <class... Cs> class Stack {
  static_assert((detail::checked_component<Cs>() && ... && true));
  static constexpr bool well_formed = (Component<Cs> && ... && true);
  static_assert(detail::checked_stack<well_formed, Cs...>() || !well_formed);
  using Plan = std::conditional_t<well_formed, detail::Plan<Cs...>, detail::Plan<>>;

public:
  /// Number of components.
  static constexpr std::size_t size = sizeof...(Cs);
  /// Roles in template-argument order.
  static constexpr std::array<std::string_view, size> roles{detail::role_of<Cs>()...};
  /// Indices of the components in action order (provision/resume order).
  static constexpr std::array<std::size_t, size> order = detail::order_of<well_formed, Cs...>();

  /// A stack named "default" of default-constructed components.
  Stack() : name_("default") {}
  /// A named stack of the given components: `Stack s{"local", Orchestrator{}, ArtifactStore{}}`.
  explicit Stack(std::string_view name, Cs... components)
      : name_(name), components_(std::move(components)...) {}

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }

  /// The component of type T.
  template <class T> [[nodiscard]] T& get() noexcept { return std::get<index_of<T>()>(components_); }
  template <class T> [[nodiscard]] const T& get() const noexcept { return std::get<index_of<T>()>(components_); }
  /// The component with role R: `stack.get<"orchestrator">()`.
  template <FixedString R> [[nodiscard]] auto& get() noexcept { return std::get<index_of<R>()>(components_); }
  template <FixedString R> [[nodiscard]] const auto& get() const noexcept { return std::get<index_of<R>()>(components_); }

  /// Index (template-argument position) of a role, or `size` when absent.
  [[nodiscard]] static constexpr std::size_t find(std::string_view role) noexcept {
    for (std::size_t i = 0; i < size; ++i)
      if (roles[i] == role) return i;
    return size;
  }

  /// Set the observer (replaces any previous one; an empty function removes it).
  /// It is called for every event, one at a time. An exception thrown by the
  /// observer is ignored: it never interrupts an action or replaces its error.
  void on_event(Observer observer) { observer_ = std::move(observer); }

  // ---- ZenML's Stack primitives -------------------------------------------------

  /// Provision every component that is not provisioned, in dependency order.
  /// Throws NotImplementedError / ProvisioningError as themselves, a component's
  /// own exception wrapped in TransitionError. No rollback.
  void provision() { primitive<Phase::provision>(); }
  /// Resume every component that is not running, in dependency order. Errors as provision().
  void resume() { primitive<Phase::resume>(); }
  /// Suspend every running component, in reverse order; tries every component,
  /// then throws one TransitionError listing every failure.
  void suspend() { exhaustive<Phase::suspend>(); }
  /// Deprovision every provisioned component, in reverse order; tries every component.
  void deprovision() { exhaustive<Phase::deprovision>(); }

  // ---- Operations ---------------------------------------------------------------

  /// `zenml stack up`: provision() then resume(). All-or-nothing unless
  /// `.rollback = false`. Throws TransitionError.
  void up(UpOptions options = {}) {
    Run r;
    r.did = {};
    if (run_phase<Phase::provision, All>(r, options.parallel, options.max_threads) &&
        run_phase<Phase::resume, All>(r, options.parallel, options.max_threads))
      return;
    fail_up(r, options, false);
  }

  /// `zenml stack down [--force]`: suspend every component; with `.force`, also
  /// deprovision. Tries every component, then throws one TransitionError listing all failures.
  void down(DownOptions options = {}) {
    Run r;
    if (options.force) run_phase<Phase::force, All>(r, options.parallel, options.max_threads);
    else run_phase<Phase::suspend, All>(r, options.parallel, options.max_threads);
    if (r.failed) [[unlikely]] raise(r, "down");
  }

  /// `zenml <C> up`: C's dependencies first, then C. Same guarantees as up().
  template <class C> void up(UpOptions options = {}) { up_at<index_of<C>()>(options); }
  /// `zenml <C> down [--force]`: C's dependents first, then C. Same guarantees as down().
  template <class C> void down(DownOptions options = {}) { down_at<index_of<C>()>(options); }
  /// up<C>() by role string; UnknownComponentError when the stack has no such role.
  void up(std::string_view role, UpOptions options = {}) {
    by_role(role, [&]<std::size_t K>() { up_at<K>(options); });
  }
  /// down<C>() by role string; UnknownComponentError when the stack has no such role.
  void down(std::string_view role, DownOptions options = {}) {
    by_role(role, [&]<std::size_t K>() { down_at<K>(options); });
  }

  // ---- Queries ------------------------------------------------------------------

  /// Every component is provisioned.
  [[nodiscard]] bool is_provisioned() const {
    return std::apply([](const auto&... c) { return (static_cast<bool>(c.is_provisioned()) && ... && true); }, components_);
  }
  /// Every component is running.
  [[nodiscard]] bool is_running() const {
    return std::apply([](const auto&... c) { return (static_cast<bool>(c.is_running()) && ... && true); }, components_);
  }
  /// One row per component, in template-argument order. Changes nothing.
  [[nodiscard]] std::array<ComponentStatus, size> status() const {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<ComponentStatus, size>{status_at<I>()...};
    }(std::make_index_sequence<size>{});
  }
  /// UnknownComponentError listing the valid roles, for a role string not in the stack.
  [[nodiscard]] UnknownComponentError unknown_role(std::string_view role) const {
    std::string m = "stackup: stack '" + name_ + "' has no component with role '" + std::string(role) + "'; valid roles: ";
    for (std::size_t i = 0; i < size; ++i) detail::append(m, {i ? ", " : "", roles[i]});
    return UnknownComponentError(m);
  }

private:
  template <class T> static constexpr std::size_t index_of() {
    constexpr std::size_t i = detail::type_index<T, Cs...>();
    static_assert(i < size, "stackup: this type is not a component of the Stack: add it to the Stack's template arguments");
    return i < size ? i : 0; // after the assertion, no second error from std::get
  }
  template <FixedString R> static constexpr std::size_t index_of() {
    constexpr std::size_t i = find(R.view());
    if constexpr (i >= size) static_assert(detail::unknown_role<detail::spelled<R>, Cs...>::value);
    return i < size ? i : 0; // after the assertion, no second error from std::get
  }

  using Clock = std::chrono::steady_clock;
  enum class Did : unsigned char { done, not_implemented };

  // What went wrong in one operation; allocated at its first failure only.
  struct Failed {
    std::exception_ptr cause; // first failure
    std::size_t cause_index = 0;
    Transition cause_transition = Transition::provision;
    std::vector<TransitionError::Failure> failures;
  };
  // Bookkeeping of one operation; lives on the caller's stack, allocates only on
  // failure. Kept small so that an operation that succeeds only sets and tests a
  // few words besides what its components do.
  struct Run {
    // What this call did, per component (bit 1: provisioned, bit 2: resumed), for
    // rollback; set to zero by up (down never reads it). One byte per component:
    // parallel steps write different bytes, no lock.
    std::array<unsigned char, size> did;
    std::mutex* guard = nullptr;         // set while steps run on several threads
    std::unique_ptr<Failed> failed;      // null while nothing failed

    std::unique_lock<std::mutex> lock() { return guard ? std::unique_lock(*guard) : std::unique_lock<std::mutex>(); }
    STACKUP_ALWAYS_INLINE void record(std::size_t k, Transition t) {
      did[k] |= t == Transition::provision ? 1 : 2;
    }
    // Call inside a catch: records the exception being handled.
    STACKUP_COLD void fail(std::size_t k, Transition t, std::string_view prefix = {}) {
      auto held = lock();
      if (!failed) failed = std::make_unique<Failed>();
      failed->failures.push_back(
          {std::string(roles[k]), t, std::string(prefix) + detail::current_message(), !prefix.empty()});
      if (!failed->cause) {
        failed->cause = std::current_exception();
        failed->cause_index = k;
        failed->cause_transition = t;
      }
    }
  };

  template <class F> static void each_in_order(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<order[I]>(), ...);
    }(std::make_index_sequence<size>{});
  }
  template <class F> static void each_in_reverse(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<order[size - 1 - I]>(), ...);
    }(std::make_index_sequence<size>{});
  }
  template <class F> void by_role(std::string_view role, F&& f) {
    const bool found = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return ((roles[I] == role && (f.template operator()<I>(), true)) || ... || false);
    }(std::make_index_sequence<size>{});
    if (!found) throw unknown_role(role);
  }

  template <std::size_t K> auto& at() noexcept { return std::get<K>(components_); }
  template <std::size_t K> const auto& at() const noexcept { return std::get<K>(components_); }
  [[nodiscard]] std::string_view name_at(std::size_t k) const {
    std::string_view n;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == k ? (n = detail::name_of(std::get<I>(components_)), 0) : 0), ...);
    }(std::make_index_sequence<size>{});
    return n;
  }
  template <std::size_t I> [[nodiscard]] ComponentStatus status_at() const {
    using C = std::tuple_element_t<I, std::tuple<Cs...>>;
    const auto& c = std::get<I>(components_);
    ComponentStatus s{roles[I], detail::name_of(c), state_of(c), detail::flavor_of<C>(), {}};
    if constexpr (detail::has_detail<C>) s.detail = c.detail();
    return s;
  }

  // ---- events -------------------------------------------------------------------

  template <std::size_t K> void emit(Transition t, Outcome o, std::chrono::nanoseconds elapsed, std::string_view message) {
    // An observer watches; it must not steer. Its exception is dropped so that it can
    // neither skip an action's bookkeeping nor replace a component's error.
    try {
      Event e{name_, roles[K], detail::name_of(at<K>()), t, o, elapsed, std::string(message)};
      if (!guard_) return observer_(e);
      std::lock_guard serialise(*guard_);
      observer_(e);
    } catch (...) {
    }
  }
  // A stand-alone event (already_done, not_implemented known at compile time).
  // `Quiet`: the caller has seen that there is no observer, so nothing is tested here.
  template <std::size_t K, bool Quiet = false>
  STACKUP_ALWAYS_INLINE void note(Transition t, Outcome o, std::string_view message) {
    if constexpr (!Quiet)
      if (observer_) [[unlikely]] emit<K>(t, o, {}, message);
  }

  template <Transition T, class C> static void invoke(C& c) {
    if constexpr (T == Transition::provision) c.provision();
    else if constexpr (T == Transition::resume) c.resume();
    else if constexpr (T == Transition::suspend) c.suspend();
    else c.deprovision();
  }

  // Runs one action with its started/end events. A NotImplementedError from the
  // component is "not implemented learned at run time", not a failure.
  // `Quiet`: as for note().
  template <std::size_t K, Transition T, bool Quiet = false> STACKUP_ALWAYS_INLINE Did act(bool undo = false) {
    if constexpr (!Quiet)
      if (observer_) [[unlikely]] return act_observed<K, T>(undo);
    try {
      invoke<T>(at<K>());
    } catch (const NotImplementedError&) {
      return Did::not_implemented;
    }
    return Did::done;
  }
  // act() with its events, out of line so that act() itself stays small.
  template <std::size_t K, Transition T> STACKUP_COLD Did act_observed(bool undo) {
    auto& c = at<K>();
    emit<K>(T, Outcome::started, {}, {});
    const auto t0 = Clock::now();
    try {
      invoke<T>(c);
    } catch (const NotImplementedError& e) {
      emit<K>(T, Outcome::not_implemented, Clock::now() - t0, e.what());
      return Did::not_implemented;
    } catch (...) {
      emit<K>(T, Outcome::failed, Clock::now() - t0, detail::current_message());
      throw;
    }
    emit<K>(T, undo ? Outcome::rolled_back : Outcome::succeeded, Clock::now() - t0, {});
    return Did::done;
  }

  template <std::size_t K> [[nodiscard]] std::string describe() const {
    return std::string(roles[K]) + " '" + std::string(detail::name_of(at<K>())) + "'";
  }
  template <std::size_t K> [[noreturn]] STACKUP_COLD void not_provisioned() {
    throw ProvisioningError("stackup: cannot resume " + describe<K>() +
                            ": nothing is provisioned; provision it first (provision() or up())");
  }
  template <std::size_t K> [[noreturn]] STACKUP_COLD void not_implemented(Transition t, std::string_view advice) {
    std::string m = "stackup: " + describe<K>() + " does not implement " + std::string(to_string(t)) + "()";
    if (!advice.empty()) detail::append(m, {"; ", advice});
    throw NotImplementedError(m);
  }

  // ---- steps: one component, one phase --------------------------------------------

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void provision_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    // The action on the straight path, as compilers lay out the hand-written
    // `if (!c.is_provisioned()) c.provision();`; without the hint GCC moves it
    // behind a jump and back (two instructions per action).
    if (!at<K>().is_provisioned()) [[likely]] {
      if constexpr (Provisionable<C>) {
        if (act<K, Transition::provision, Quiet>() == Did::done) return r.record(K, Transition::provision);
      } else {
        note<K, Quiet>(Transition::provision, Outcome::not_implemented, "provision not implemented");
      }
      not_implemented<K>(Transition::provision, "it is not provisioned and cannot provision itself");
    }
  }

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void resume_step(Run& r, bool announce_running) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    if (!at<K>().is_running()) [[likely]] {
      if (!at<K>().is_provisioned()) not_provisioned<K>();
      if constexpr (Resumable<C>) {
        if (act<K, Transition::resume, Quiet>() == Did::done) return r.record(K, Transition::resume);
      } else {
        note<K, Quiet>(Transition::resume, Outcome::not_implemented, "resume not implemented");
      }
      not_implemented<K>(Transition::resume, "it is provisioned but not running and cannot start itself");
    } else if (announce_running) {
      note<K, Quiet>(Transition::resume, Outcome::already_done, "already running");
    }
  }

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void suspend_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_running()) return note<K, Quiet>(Transition::suspend, Outcome::already_done, "not running");
      if constexpr (Suspendable<C>) act<K, Transition::suspend, Quiet>();
      else note<K, Quiet>(Transition::suspend, Outcome::not_implemented, "suspend not implemented; use force to deprovision");
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
  }

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void deprovision_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_provisioned()) return note<K, Quiet>(Transition::deprovision, Outcome::already_done, "not provisioned");
      if constexpr (Deprovisionable<C>) act<K, Transition::deprovision, Quiet>();
      else note<K, Quiet>(Transition::deprovision, Outcome::not_implemented, "deprovision not implemented");
    } catch (...) {
      r.fail(K, Transition::deprovision);
    }
  }

  // Force down of one component. As a dependent or part of the stack (`target` false),
  // missing actions are skipped; as the target of down<C>, a missing deprovision is an error.
  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void force_step(Run& r, bool target) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    bool running = false;
    try {
      running = at<K>().is_running();
      if (running) {
        if constexpr (Suspendable<C>) act<K, Transition::suspend, Quiet>();
        else note<K, Quiet>(Transition::suspend, Outcome::not_implemented,
                     Deprovisionable<C> ? "suspend not implemented; deprovision stops it" : "suspend not implemented");
      }
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
    try {
      if (!at<K>().is_provisioned()) {
        if (!running) note<K, Quiet>(Transition::deprovision, Outcome::already_done, "already deprovisioned");
        return;
      }
      if constexpr (Deprovisionable<C>) {
        if (act<K, Transition::deprovision, Quiet>() == Did::done || !target) return;
      } else {
        note<K, Quiet>(Transition::deprovision, Outcome::not_implemented, "deprovision not implemented");
        if (!target) return;
      }
      not_implemented<K>(Transition::deprovision, "it cannot be removed");
    } catch (...) {
      r.fail(K, Transition::deprovision);
    }
  }

  // The target of a non-force down<C>: a missing suspend is an error that suggests force.
  template <std::size_t K> void suspend_target(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_running()) return note<K>(Transition::suspend, Outcome::already_done, "not running");
      if constexpr (Suspendable<C>) {
        if (act<K, Transition::suspend>() == Did::done) return;
      } else {
        note<K>(Transition::suspend, Outcome::not_implemented, "suspend not implemented");
      }
      not_implemented<K>(Transition::suspend, "use down with force (--force) to deprovision it instead");
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
  }

  // ---- per-component operations ---------------------------------------------------

  template <std::size_t K> void up_at(UpOptions options) {
    Run r;
    r.did = {};
    if (!run_phase<Phase::up_one, Needs<K>>(r, options.parallel, options.max_threads)) fail_up(r, options, true);
  }

  template <std::size_t K> void down_at(DownOptions options) {
    Run r;
    if (options.force) run_phase<Phase::force, Dependents<K>>(r, options.parallel, options.max_threads);
    else run_phase<Phase::suspend, Dependents<K>>(r, options.parallel, options.max_threads);
    if (options.force) force_step<K>(r, true);
    else suspend_target<K>(r);
    if (r.failed) [[unlikely]] raise(r, "down");
  }

  // ---- phases: one step per component, in order or in parallel --------------------

  enum class Phase { provision, resume, up_one, suspend, deprovision, force };
  struct All {
    static constexpr auto value = [] {
      std::array<bool, size> a{};
      a.fill(true);
      return a;
    }();
  };
  template <std::size_t K> struct Needs {
    static constexpr auto value = Plan::closure_of(K);
  };
  template <std::size_t K> struct Dependents {
    static constexpr auto value = Plan::dependents_of(K);
  };

  // One component's part of a phase. Never throws: failures go to `r`.
  // Returns false when the phase must stop (a failure of up).
  template <Phase P, std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE bool step(Run& r) {
    if constexpr (P == Phase::provision || P == Phase::resume) {
      try {
        if constexpr (P == Phase::provision) provision_step<K, Quiet>(r);
        else resume_step<K, Quiet>(r, true);
        return true;
      } catch (...) {
        r.fail(K, P == Phase::provision ? Transition::provision : Transition::resume);
        return false;
      }
    } else if constexpr (P == Phase::up_one) {
      Transition t = Transition::resume;
      try {
        if (at<K>().is_running()) {
          note<K, Quiet>(Transition::resume, Outcome::already_done, "already running");
          return true;
        }
        t = Transition::provision;
        provision_step<K, Quiet>(r);
        t = Transition::resume;
        resume_step<K, Quiet>(r, false);
        return true;
      } catch (...) {
        r.fail(K, t);
        return false;
      }
    } else if constexpr (P == Phase::suspend) {
      suspend_step<K, Quiet>(r);
      return true;
    } else if constexpr (P == Phase::deprovision) {
      deprovision_step<K, Quiet>(r);
      return true;
    } else {
      force_step<K, Quiet>(r, false);
      return true;
    }
  }

  // Runs the phase's step for every component in Mask. Without an observer and
  // threads, a fold in (reverse) dependency order whose steps test nothing but the
  // components' state: the observer is tested once per phase, not once per action
  // (an observer set by a component's own action takes effect from the next phase).
  // With an observer, or in parallel, the steps that test it, one call each.
  template <Phase P, class Mask> STACKUP_ALWAYS_INLINE bool run_phase(Run& r, bool parallel, std::size_t max_threads) {
    constexpr bool reverse = P == Phase::suspend || P == Phase::deprovision || P == Phase::force;
    if (parallel || observer_) [[unlikely]] return run_observed<P, Mask>(r, reverse, parallel, max_threads);
    return run_quiet<P, Mask, reverse>(r, std::make_index_sequence<size>{});
  }
  // The steps in (reverse) order, stopping at the first that returns false.
  template <Phase P, class Mask, bool Reverse, std::size_t... I>
  STACKUP_ALWAYS_INLINE bool run_quiet(Run& r, std::index_sequence<I...>) {
    return ((!Mask::value[order[Reverse ? size - 1 - I : I]] || step<P, order[Reverse ? size - 1 - I : I], true>(r)) && ...);
  }
  // step<P, K> of every component, by index: out-of-line steps for the observed
  // and parallel paths (one instantiation each, not one inlined fold per path).
  template <Phase P>
  static constexpr auto step_table = []<std::size_t... I>(std::index_sequence<I...>) {
    return std::array<bool (Stack::*)(Run&), size>{&Stack::step<P, I>...};
  }(std::make_index_sequence<size>{});

  template <Phase P, class Mask> STACKUP_COLD bool run_observed(Run& r, bool reverse, bool parallel, std::size_t max_threads) {
    if (parallel) return run_parallel<P, Mask>(r, reverse, max_threads);
    for (std::size_t n = 0; n < size; ++n) {
      const std::size_t k = order[reverse ? size - 1 - n : n];
      if (Mask::value[k] && !(this->*step_table<P>[k])(r)) return false;
    }
    return true;
  }

  template <Phase P, class Mask> bool run_parallel(Run& r, bool reverse, std::size_t max_threads) {
    std::mutex guard;
    r.guard = &guard;
    guard_ = &guard;
    struct Reset {
      Stack& s;
      Run& r;
      ~Reset() { s.guard_ = nullptr, r.guard = nullptr; }
    } reset{*this, r};
    const auto& plan = Plan::result;
    detail::run_dag(Mask::value, plan.first, plan.dep, reverse, max_threads,
                    [&](std::size_t i) { return (this->*step_table<P>[i])(r); });
    return !r.failed;
  }

  // ---- failure handling -----------------------------------------------------------

  template <Phase P> void primitive() {
    Run r;
    r.did = {};
    if (run_phase<P, All>(r, false, 0)) return;
    try {
      std::rethrow_exception(r.failed->cause);
    } catch (const NotImplementedError&) {
      throw;
    } catch (const ProvisioningError&) {
      throw;
    } catch (...) {
      raise(r, to_string(r.failed->cause_transition));
    }
  }
  template <Phase P> void exhaustive() {
    Run r;
    run_phase<P, All>(r, false, 0);
    if (r.failed) raise(r, P == Phase::suspend ? "suspend" : "deprovision");
  }

  // Undo what this call did, in reverse, then throw.
  // The undo runs in reverse dependency order: for a whole-stack up, every resume
  // is undone before any provision; for up<C> (`per_component`), one component at a time.
  [[noreturn]] STACKUP_COLD void fail_up(Run& r, UpOptions options, bool per_component) {
    if (options.rollback) {
      for (std::size_t pass = per_component ? 1 : 2; pass-- > 0;)
        for (std::size_t n = size; n-- > 0;) {
          const std::size_t k = order[n];
          if ((r.did[k] & 2) && (per_component || pass == 1)) undo(k, Transition::resume, r);
          if ((r.did[k] & 1) && (per_component || pass == 0)) undo(k, Transition::provision, r);
        }
    }
    raise(r, "up", options.rollback);
  }

  void undo(std::size_t k, Transition t, Run& r) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == k ? (undo_at<I>(t, r), 0) : 0), ...);
    }(std::make_index_sequence<size>{});
  }
  template <std::size_t K> void undo_at(Transition done, Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    const bool resumed = done == Transition::resume;
    const Transition t = resumed ? Transition::suspend : Transition::deprovision;
    try {
      Did did = Did::not_implemented;
      if (resumed) {
        if constexpr (Suspendable<C>) did = act<K, Transition::suspend>(true);
      } else {
        if constexpr (Deprovisionable<C>) did = act<K, Transition::deprovision>(true);
      }
      if (did == Did::not_implemented) {
        if (!(resumed ? Suspendable<C> : Deprovisionable<C>)) note<K>(t, Outcome::not_implemented, "cannot undo");
        not_implemented<K>(t, resumed ? "it was left running" : "it was left provisioned");
      }
    } catch (...) {
      r.fail(K, t, "rollback: ");
    }
  }

  // Throws the TransitionError of a failed operation, nesting its first failure.
  [[noreturn]] STACKUP_COLD void raise(Run& run, std::string_view operation, bool rolled_back = false) {
    Failed& r = *run.failed;
    std::string m = "stackup: stack '" + name_ + "' " + std::string(operation) + " failed: ";
    const std::string_view role = roles[r.cause_index];
    detail::append(m, {role, " '", name_at(r.cause_index), "' failed to ", to_string(r.cause_transition), ": ",
                       r.failures.front().message});
    for (std::size_t i = 1; i < r.failures.size(); ++i) {
      const auto& f = r.failures[i];
      detail::append(m, {i == 1 ? "; also: " : "; ", f.role, " ", to_string(f.transition), ": ", f.message});
    }
    if (rolled_back) {
      const bool complete = std::none_of(r.failures.begin(), r.failures.end(), [](const auto& f) { return f.rollback; });
      m += complete ? " (rolled back)" : " (rollback incomplete)";
    }
    try {
      std::rethrow_exception(r.cause);
    } catch (...) {
      throw TransitionError(std::string(role), r.cause_transition, m, std::move(r.failures));
    }
  }

  std::string name_;
  std::tuple<Cs...> components_;
  Observer observer_;
  std::mutex* guard_ = nullptr; // serialises events while a phase runs in parallel
};

template <class... Cs> Stack(std::string_view, Cs...) -> Stack<Cs...>;

} // namespace stackup
// ---- end stackup/stack.hpp ----

// ---- begin stackup/format.hpp ----
// stackup — fmt formatters, the status table and the console observer.
// SPDX-License-Identifier: MIT


#include <fmt/color.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <unistd.h>

template <> struct fmt::formatter<stackup::State> : fmt::formatter<std::string_view> {
  auto format(stackup::State v, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(stackup::to_string(v), ctx);
  }
};
template <> struct fmt::formatter<stackup::Transition> : fmt::formatter<std::string_view> {
  auto format(stackup::Transition v, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(stackup::to_string(v), ctx);
  }
};
template <> struct fmt::formatter<stackup::Outcome> : fmt::formatter<std::string_view> {
  auto format(stackup::Outcome v, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(stackup::to_string(v), ctx);
  }
};
/// `role 'name': state`, plus ` (detail)` when the component offers one.
template <> struct fmt::formatter<stackup::ComponentStatus> : fmt::formatter<std::string_view> {
  auto format(const stackup::ComponentStatus& s, fmt::format_context& ctx) const {
    std::string text = fmt::format("{} '{}': {}", s.role, s.name, s.state);
    if (!s.detail.empty()) text += fmt::format(" ({})", s.detail);
    return fmt::formatter<std::string_view>::format(text, ctx);
  }
};

namespace stackup {

/// Whether to decorate output written to `stream`: a terminal, and NO_COLOR unset.
inline bool use_color(std::FILE* stream) {
  const char* no_color = std::getenv("NO_COLOR");
  return (no_color == nullptr || *no_color == '\0') && ::isatty(::fileno(stream)) == 1;
}

/// Past tense of a transition, for progress lines ("resumed").
constexpr std::string_view past_tense(Transition t) noexcept {
  switch (t) {
  case Transition::provision: return "provisioned";
  case Transition::resume: return "resumed";
  case Transition::suspend: return "suspended";
  case Transition::deprovision: return "deprovisioned";
  }
  return "?";
}
/// Present participle of a transition ("resuming").
constexpr std::string_view participle(Transition t) noexcept {
  switch (t) {
  case Transition::provision: return "provisioning";
  case Transition::resume: return "resuming";
  case Transition::suspend: return "suspending";
  case Transition::deprovision: return "deprovisioning";
  }
  return "?";
}

/// One progress line for an event, e.g. `✔ orchestrator 'web' resumed  0.21s`.
/// `fancy` selects colour and symbols; otherwise plain ASCII.
inline std::string progress_line(const Event& e, bool fancy) {
  struct Look {
    std::string_view symbol, ascii;
    fmt::text_style style;
  };
  const auto seconds = std::chrono::duration<double>(e.elapsed).count();
  std::string what;
  Look look{"•", "-", fmt::fg(fmt::terminal_color::cyan)};
  switch (e.outcome) {
  case Outcome::started: what = fmt::format("{} ...", participle(e.transition)); break;
  case Outcome::succeeded:
    what = fmt::format("{}  {:.2f}s", past_tense(e.transition), seconds);
    look = {"✔", "+", fmt::fg(fmt::terminal_color::green)};
    break;
  case Outcome::rolled_back:
    what = fmt::format("{} (rollback)  {:.2f}s", past_tense(e.transition), seconds);
    look = {"↺", "~", fmt::fg(fmt::terminal_color::yellow)};
    break;
  case Outcome::failed:
    what = fmt::format("{} failed  {:.2f}s: {}", e.transition, seconds, e.message);
    look = {"✘", "x", fmt::fg(fmt::terminal_color::red) | fmt::emphasis::bold};
    break;
  case Outcome::not_implemented:
    what = fmt::format("{} skipped: {}", e.transition, e.message);
    look = {"○", "o", fmt::fg(fmt::terminal_color::yellow)};
    break;
  case Outcome::already_done:
    what = e.message.empty() ? fmt::format("{}: nothing to do", e.transition) : e.message;
    look = {"✔", "=", fmt::fg(fmt::terminal_color::bright_black)};
    break;
  }
  if (!fancy) return fmt::format("{} {} '{}' {}", look.ascii, e.role, e.component, what);
  return fmt::format("{} {} '{}' {}", fmt::styled(look.symbol, look.style), fmt::styled(e.role, fmt::emphasis::bold),
                     e.component, what);
}

/// A ready-made observer printing ZenML-like progress lines to `stream`
/// (colour and symbols only on a terminal, NO_COLOR honoured):
/// `stack.on_event(stackup::console_observer());`
inline Observer console_observer(std::FILE* stream = stdout) {
  const bool fancy = use_color(stream);
  return [stream, fancy](const Event& e) {
    fmt::print(stream, "{}\n", progress_line(e, fancy));
    std::fflush(stream);
  };
}

/// Renders `status()` as an aligned table: ROLE, NAME, FLAVOR, STATE, DETAIL.
inline std::string status_table(std::span<const ComponentStatus> rows, bool fancy = false) {
  std::size_t w_role = 4, w_name = 4, w_flavor = 6;
  for (const auto& r : rows) {
    w_role = std::max(w_role, r.role.size());
    w_name = std::max(w_name, r.name.size());
    w_flavor = std::max(w_flavor, r.flavor.size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:<13}  {}\n", "ROLE", w_role, "NAME", w_name, "FLAVOR",
                                w_flavor, "STATE", "DETAIL");
  for (const auto& r : rows) {
    std::string state = fmt::format("{:<13}", r.state);
    if (fancy) {
      const auto color = r.state == State::running     ? fmt::terminal_color::green
                         : r.state == State::suspended ? fmt::terminal_color::yellow
                                                       : fmt::terminal_color::bright_black;
      state = fmt::format("{}", fmt::styled(state, fmt::fg(color)));
    }
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}  {}", r.role, w_role, r.name, w_name, r.flavor, w_flavor, state,
                       r.detail);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

} // namespace stackup
// ---- end stackup/format.hpp ----

// ---- begin stackup/cli.hpp ----
// stackup — cli::run: ZenML's command line (`stack up`, `stack down --force`,
// `orchestrator up`, `orchestrator logs`, ...) for any Stack, in one call.
// SPDX-License-Identifier: MIT


#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace stackup::cli {

/// When to decorate output with colour and symbols.
enum class Color {
  automatic, ///< only when the stream is a terminal (std::cout / std::cerr) and NO_COLOR is unset
  always,    ///< always (ANSI colours, Unicode symbols)
  never,     ///< plain ASCII
};

/// How `run` presents itself. Every member is optional.
struct Options {
  /// Program name in usage and messages; empty: the base name of argv[0].
  std::string_view program{};
  /// The host program's own options, shown in the usage line before the
  /// command (e.g. "[--state-dir DIR]"); the host parses them itself.
  std::string_view host_synopsis{};
  /// Lines describing the host's own options, appended to `--help`.
  std::string_view host_help{};
  /// Colour and symbols (default: on a terminal only).
  Color color = Color::automatic;
};

/// Exit status: the command did what was asked (also when there was nothing to do).
inline constexpr int exit_success = 0;
/// Exit status: an action failed (the error, its causes and the rollback are printed).
inline constexpr int exit_failure = 1;
/// Exit status: the command line is wrong (unknown role, verb or option, ...).
inline constexpr int exit_usage = 2;

namespace detail {

/// A component that keeps a log file (e.g. LocalDaemon): `<role> logs` prints it.
template <class T> concept has_log_file = requires(const T& c) {
  { c.log_file() } -> std::convertible_to<std::filesystem::path>;
};

enum class Verb { up, down, status, logs };

struct Command {
  bool help = false;
  bool whole_stack = true;
  std::size_t index = 0; // component index (template-argument order) when !whole_stack
  Verb verb = Verb::status;
  bool force = false;
  bool parallel = false;
  bool rollback = true;
  std::optional<std::size_t> tail;
};

inline bool decorate(const std::ostream& stream, Color color) {
  switch (color) {
  case Color::always: return true;
  case Color::never: return false;
  case Color::automatic: break;
  }
  if (&stream == &std::cout) return stackup::use_color(stdout);
  if (&stream == &std::cerr || &stream == &std::clog) return stackup::use_color(stderr);
  return false; // an arbitrary stream: no way to know it is a terminal
}

inline std::string_view base_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

inline std::string seconds(std::chrono::nanoseconds d) {
  return fmt::format("{:.2f}s", std::chrono::duration<double>(d).count());
}

/// Writes the last `n` lines of `path` (all of it when `n` is empty) to `out`,
/// reading backwards from the end so a large log costs only what is printed.
inline void copy_tail(const std::filesystem::path& path, std::optional<std::size_t> n, std::ostream& out) {
  // Only a regular file, not through a symlink: a FIFO in its place would block forever.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec)))
    throw Error("cannot show " + path.string() + ": it is not a regular file (a symlink, a FIFO or a device?): remove it");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  if (!n) {
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) out.write(buf, in.gcount());
    return;
  }
  if (*n == 0) return;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  std::streamoff start = 0, pos = size;
  std::size_t newlines = 0;
  bool found = false;
  char buf[1 << 16];
  while (pos > 0 && !found) {
    const std::streamoff chunk = std::min<std::streamoff>(pos, static_cast<std::streamoff>(sizeof buf));
    pos -= chunk;
    in.seekg(pos);
    in.read(buf, chunk);
    for (std::streamoff i = chunk; i-- > 0;) {
      if (buf[i] != '\n' || pos + i == size - 1) continue; // a final newline ends the last line
      if (++newlines == *n) {
        start = pos + i + 1;
        found = true;
        break;
      }
    }
  }
  in.clear();
  in.seekg(start);
  while (in.read(buf, sizeof buf) || in.gcount() > 0) out.write(buf, in.gcount());
}

/// Parses, runs and reports one command against a Stack.
template <class... Cs> class Runner {
  using S = Stack<Cs...>;
  using Plan = stackup::detail::Plan<Cs...>;
  static constexpr std::size_t size = sizeof...(Cs);
  using Clock = std::chrono::steady_clock;

public:
  Runner(S& stack, std::ostream& out, std::ostream& err, const Options& options, std::string_view program)
      : stack_(stack), out_(out), err_(err), options_(options), program_(program),
        fancy_out_(decorate(out, options.color)), fancy_err_(decorate(err, options.color)) {}

  int run(std::span<const std::string_view> args) {
    Command cmd;
    if (auto problem = parse(args, cmd)) return usage_error(*problem);
    if (cmd.help) {
      out_ << help();
      return exit_success;
    }
    if (cmd.verb == Verb::status) return status(cmd);
    if (cmd.verb == Verb::logs) return logs(cmd);
    return operate(cmd);
  }

  // Last resort for anything that escaped (e.g. bad_alloc while reporting).
  int crashed() noexcept {
    try {
      err_ << program_ << ": internal error: " << stackup::detail::current_message() << '\n';
    } catch (...) {
    }
    return exit_failure;
  }

private:
  // ---- parsing --------------------------------------------------------------------

  [[nodiscard]] std::string roles_list() const {
    std::string s;
    for (std::size_t i = 0; i < size; ++i) s += fmt::format("{}{}", i ? ", " : "", S::roles[i]);
    return s;
  }
  [[nodiscard]] std::string logging_roles() const {
    std::string s;
    each_type([&]<std::size_t I, class C>() {
      if constexpr (has_log_file<C>) s += fmt::format("{}{}", s.empty() ? "" : ", ", S::roles[I]);
    });
    return s.empty() ? "none" : s;
  }

  // Returns the problem with the command line, or nothing when `cmd` is complete.
  std::optional<std::string> parse(std::span<const std::string_view> args, Command& cmd) const {
    // `--help` anywhere wins, so `<anything> --help` always shows the help.
    cmd.help = std::ranges::any_of(args, [](std::string_view a) { return a == "--help" || a == "-h"; }) ||
               (!args.empty() && args[0] == "help");
    if (cmd.help) return std::nullopt;
    if (args.empty()) return "missing command";
    const std::string_view target = args[0];
    if (!target.empty() && target[0] == '-') return fmt::format("unknown option '{}'", target);
    if (target == "stack") {
      cmd.whole_stack = true;
    } else {
      cmd.whole_stack = false;
      cmd.index = S::find(target);
      if (cmd.index == size)
        return fmt::format("unknown component role '{}'; valid roles: {} (or 'stack' for all of them)", target,
                           roles_list());
    }
    const std::string_view verbs = cmd.whole_stack ? "up, down, status" : "up, down, status, logs";
    if (args.size() < 2) return fmt::format("missing command after '{}'; expected one of: {}", target, verbs);
    const std::string_view verb = args[1];
    if (verb == "up") cmd.verb = Verb::up;
    else if (verb == "down") cmd.verb = Verb::down;
    else if (verb == "status") cmd.verb = Verb::status;
    else if (verb == "logs" && !cmd.whole_stack) cmd.verb = Verb::logs;
    else if (verb == "logs")
      return fmt::format("'stack logs' is not a command: logs belong to one component; try '<role> logs' with one of: {}",
                         logging_roles());
    else return fmt::format("unknown command '{}' for '{}'; expected one of: {}", verb, target, verbs);

    const std::string where = fmt::format("{} {}", target, verb);
    std::string_view valid;
    switch (cmd.verb) {
    case Verb::up: valid = "--parallel (-p), --no-rollback"; break;
    case Verb::down: valid = "--force (-f), --parallel (-p)"; break;
    case Verb::status: valid = "none"; break;
    case Verb::logs: valid = "--tail N (-n N)"; break;
    }
    for (std::size_t i = 2; i < args.size(); ++i) {
      const std::string_view a = args[i];
      if (cmd.verb == Verb::logs && (a == "--tail" || a == "-n" || a.starts_with("--tail="))) {
        std::string_view value;
        if (a.starts_with("--tail=")) value = a.substr(7);
        else if (i + 1 < args.size()) value = args[++i];
        else return fmt::format("option '{}' needs a number of lines, e.g. '{} 20'", a, a);
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.empty() || ec != std::errc{} || end != value.data() + value.size())
          return fmt::format("option '--tail' needs a whole number of lines (0 or more), not '{}'", value);
        cmd.tail = n;
        continue;
      }
      if (a.size() >= 2 && a[0] == '-' && a[1] != '-') { // short options, clustered: -fp
        for (const char c : a.substr(1)) {
          if (c == 'p' && cmd.verb != Verb::status && cmd.verb != Verb::logs) cmd.parallel = true;
          else if (c == 'f' && cmd.verb == Verb::down) cmd.force = true;
          else return fmt::format("unknown option '-{}' for '{}'; valid options: {}", c, where, valid);
        }
        continue;
      }
      if (a == "--parallel" && (cmd.verb == Verb::up || cmd.verb == Verb::down)) cmd.parallel = true;
      else if (a == "--force" && cmd.verb == Verb::down) cmd.force = true;
      else if (a == "--no-rollback" && cmd.verb == Verb::up) cmd.rollback = false;
      else if (!a.empty() && a[0] == '-')
        return fmt::format("unknown option '{}' for '{}'; valid options: {}", a, where, valid);
      else return fmt::format("unexpected argument '{}' after '{}'", a, where);
    }
    if (cmd.verb == Verb::logs) {
      bool keeps_log = false;
      at_index(cmd.index, [&]<std::size_t I, class C>() { keeps_log = has_log_file<C>; });
      if (!keeps_log)
        return fmt::format("{} ({}) keeps no log; components with a log: {}", describe(cmd.index),
                           flavor(cmd.index), logging_roles());
    }
    return std::nullopt;
  }

  [[nodiscard]] std::string synopsis() const {
    std::string prefix = std::string(program_);
    if (!options_.host_synopsis.empty()) prefix += fmt::format(" {}", options_.host_synopsis);
    return fmt::format("usage: {} <stack|role> <command> [options]\n"
                       "\n"
                       "  stack up [-p] [--no-rollback]   provision and start every component\n"
                       "  stack down [-f] [-p]            stop every component; with --force also deprovision\n"
                       "  stack status                    show every component's state (changes nothing)\n"
                       "  <role> up [-p] [--no-rollback]  bring one component up, its dependencies first\n"
                       "  <role> down [-f] [-p]           bring one component down, its dependents first\n"
                       "  <role> status                   show one component's state\n"
                       "  <role> logs [--tail N]          print the component's log, where it keeps one\n"
                       "  --help                          show the roles and options\n",
                       prefix);
  }

  [[nodiscard]] std::string help() const {
    std::string s = synopsis();
    s += fmt::format("\nroles of stack '{}':\n", stack_.name());
    std::size_t width = 0;
    for (auto r : S::roles) width = std::max(width, r.size());
    std::size_t fwidth = 0;
    each_type([&]<std::size_t I, class C>() { fwidth = std::max(fwidth, stackup::detail::flavor_of<C>().size()); });
    each_type([&]<std::size_t I, class C>() {
      std::string line = fmt::format("  {:<{}}  {:<{}}", S::roles[I], width, stackup::detail::flavor_of<C>(), fwidth);
      std::string deps;
      for (std::size_t d = 0; d < stackup::detail::dependency_count<C>(); ++d)
        deps += fmt::format("{}{}", d ? ", " : "", stackup::detail::dependency<C>(d));
      if (!deps.empty()) line += fmt::format("  needs {}", deps);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      s += line + '\n';
    });
    s += "\noptions:\n"
         "  -f, --force      down: also deprovision (remove what the components created)\n"
         "  -p, --parallel   up/down: act on independent components at the same time\n"
         "  --no-rollback    up: when an action fails, leave what was done in place\n"
         "  --tail N         logs: print only the last N lines\n"
         "  -h, --help       show this help\n";
    if (!options_.host_help.empty()) {
      s += options_.host_help;
      if (s.back() != '\n') s += '\n';
    }
    s += "\nexit status: 0 done (also when there was nothing to do), 1 an action failed, 2 usage error\n";
    return s;
  }

  int usage_error(const std::string& problem) {
    err_ << label("error", fmt::terminal_color::red) << ": " << problem << "\n\n"
         << synopsis() << "\nrun '" << program_ << " --help' for the roles and options\n";
    return exit_usage;
  }

  // ---- helpers over the component types -----------------------------------------

  template <class F> static void each_type(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I, std::tuple_element_t<I, std::tuple<Cs...>>>(), ...);
    }(std::make_index_sequence<size>{});
  }
  template <class F> static void at_index(std::size_t k, F&& f) {
    each_type([&]<std::size_t I, class C>() {
      if (I == k) f.template operator()<I, C>();
    });
  }
  [[nodiscard]] std::string_view name(std::size_t k) const {
    std::string_view n;
    at_index(k, [&]<std::size_t I, class C>() { n = stackup::detail::name_of(stack_.template get<C>()); });
    return n;
  }
  [[nodiscard]] std::string_view flavor(std::size_t k) const {
    std::string_view f;
    at_index(k, [&]<std::size_t I, class C>() { f = stackup::detail::flavor_of<C>(); });
    return f;
  }
  // Whether component k has a deprovision() (a Command may still refuse at run time).
  [[nodiscard]] static bool deprovisionable(std::size_t k) {
    bool result = false;
    at_index(k, [&]<std::size_t I, class C>() { result = Deprovisionable<C>; });
    return result;
  }
  // Component k's state; nothing when its queries throw (the operation that
  // follows will report the error itself).
  [[nodiscard]] std::optional<State> state_at(std::size_t k) const noexcept {
    std::optional<State> result;
    try {
      at_index(k, [&]<std::size_t I, class C>() { result = state_of(stack_.template get<C>()); });
    } catch (...) {
    }
    return result;
  }
  [[nodiscard]] std::string describe(std::size_t k) const { return fmt::format("{} '{}'", S::roles[k], name(k)); }
  // Roles flagged in `set`, in action order.
  static std::string listed(const std::array<bool, size>& set, std::size_t& count) {
    std::string s;
    count = 0;
    for (auto i : Plan::result.order)
      if (set[i]) s += fmt::format("{}{}", count++ ? ", " : "", S::roles[i]);
    return s;
  }

  [[nodiscard]] std::string label(std::string_view text, fmt::terminal_color color) const {
    return fancy_err_ ? fmt::format("{}", fmt::styled(text, fmt::fg(color) | fmt::emphasis::bold)) : std::string(text);
  }
  void note(std::string_view text) {
    if (fancy_out_) out_ << fmt::format("{} {}\n", fmt::styled("•", fmt::fg(fmt::terminal_color::cyan)), text);
    else out_ << "* " << text << '\n';
    out_.flush();
  }

  // ---- progress -----------------------------------------------------------------

  struct Tally {
    std::size_t actions = 0, rolled_back = 0;
  };

  // Sets the observer that prints one line per action start and end; the guard
  // removes it again, since it refers to this Runner.
  struct ObserverGuard {
    S& stack;
    ~ObserverGuard() { stack.on_event({}); }
  };
  void observe(const Command& cmd, Tally& tally) {
    const std::string_view dash = fancy_out_ ? "—" : "--";
    stack_.on_event([this, &tally, force = cmd.force, dash](const Event& e) {
      try {
        if (e.outcome == Outcome::started) ++tally.actions;
        if (e.outcome == Outcome::rolled_back) ++tally.rolled_back;
        if (e.outcome != Outcome::not_implemented) {
          out_ << progress_line(e, fancy_out_) << '\n';
        } else {
          // Say why in the command line's terms: what the user can do about it.
          Event said = e;
          const bool removable = deprovisionable(S::find(e.role));
          if (e.transition == Transition::suspend && removable)
            said.message = fmt::format("not implemented {} {}", dash,
                                       force ? "deprovision follows" : "use --force to deprovision");
          else if (e.transition == Transition::suspend)
            said.message = fmt::format("not implemented {} it keeps running", dash);
          else if (e.transition == Transition::deprovision)
            said.message = fmt::format("not implemented {} left in place", dash);
          else
            said.message = "not implemented";
          out_ << progress_line(said, fancy_out_) << '\n';
        }
        out_.flush();
      } catch (...) {
        // Printing must never turn into a failed action.
      }
    });
  }

  // ---- commands -----------------------------------------------------------------

  int status(const Command& cmd) {
    try {
      const auto rows = stack_.status();
      std::span<const ComponentStatus> shown(rows);
      if (!cmd.whole_stack) shown = shown.subspan(cmd.index, 1);
      out_ << status_table(shown, fancy_out_);
      if (cmd.whole_stack) {
        std::size_t running = 0, provisioned = 0;
        for (const auto& r : rows) {
          running += r.state == State::running;
          provisioned += r.state != State::deprovisioned;
        }
        out_ << fmt::format("stack '{}': {} of {} running, {} provisioned\n", stack_.name(), running, size, provisioned);
      }
      return exit_success;
    } catch (...) {
      return report("status failed", std::current_exception(), cmd, {});
    }
  }

  int logs(const Command& cmd) {
    std::filesystem::path path;
    at_index(cmd.index, [&]<std::size_t I, class C>() {
      if constexpr (has_log_file<C>) path = stack_.template get<C>().log_file();
    });
    try {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        err_ << fmt::format("{}: {} has no log yet: {} does not exist (it has not been started since it was "
                            "provisioned, or it is deprovisioned)\n",
                            program_, describe(cmd.index), path.string());
        return exit_success;
      }
      copy_tail(path, cmd.tail, out_);
      out_.flush();
      return exit_success;
    } catch (...) {
      return report(fmt::format("cannot read the log of {}", describe(cmd.index)), std::current_exception(), cmd, {});
    }
  }

  int operate(const Command& cmd) {
    Tally tally;
    ObserverGuard guard{stack_};
    observe(cmd, tally);
    const bool up = cmd.verb == Verb::up;
    if (!cmd.whole_stack) {
      std::size_t n = 0;
      const auto role = S::roles[cmd.index];
      // Name the other components this command will act on, before it does.
      if (up) {
        auto needs = Plan::closure_of(cmd.index);
        needs[cmd.index] = false;
        for (std::size_t i = 0; i < size; ++i) needs[i] = needs[i] && state_at(i) != State::running;
        const std::string list = listed(needs, n);
        if (n) note(fmt::format("{} needs {}: {} first", role, list, n == 1 ? "it comes up" : "they come up"));
      } else {
        auto dependents = Plan::dependents_of(cmd.index);
        for (std::size_t i = 0; i < size; ++i) {
          if (!dependents[i]) continue;
          const auto now = state_at(i); // those with something to stop (or, forced, to remove)
          dependents[i] = !now || (cmd.force ? *now != State::deprovisioned : *now == State::running);
        }
        const std::string list = listed(dependents, n);
        if (n) note(fmt::format("{} {} on {}: {} first", list, n == 1 ? "depends" : "depend", role,
                                n == 1 ? "it goes down" : "they go down"));
      }
    }
    const auto t0 = Clock::now();
    try {
      if (cmd.whole_stack && up) stack_.up(UpOptions{.rollback = cmd.rollback, .parallel = cmd.parallel});
      else if (cmd.whole_stack) stack_.down(DownOptions{.force = cmd.force, .parallel = cmd.parallel});
      else if (up) stack_.up(S::roles[cmd.index], UpOptions{.rollback = cmd.rollback, .parallel = cmd.parallel});
      else stack_.down(S::roles[cmd.index], DownOptions{.force = cmd.force, .parallel = cmd.parallel});
    } catch (...) {
      const std::string what = fmt::format("{} {}{}", cmd.whole_stack ? "stack" : S::roles[cmd.index],
                                           up ? "up" : "down", cmd.force ? " --force" : "");
      return report(what + " failed", std::current_exception(), cmd, tally);
    }
    const std::string subject = cmd.whole_stack ? fmt::format("stack '{}'", stack_.name()) : describe(cmd.index);
    const std::string took = seconds(Clock::now() - t0);
    std::string summary;
    if (up && tally.actions == 0) summary = fmt::format("{} is already running: nothing to do", subject);
    else if (up) summary = fmt::format("{} is up  {}", subject, took);
    else if (tally.actions == 0) summary = fmt::format("{}: nothing to {}", subject, cmd.force ? "remove" : "stop");
    else summary = fmt::format("{} {}  {}", subject, cmd.force ? "is down and deprovisioned" : "is down", took);
    if (fancy_out_) out_ << fmt::format("{}\n", fmt::styled(summary, fmt::emphasis::bold));
    else out_ << summary << '\n';
    return exit_success;
  }

  // Prints a failure: the error, each nested cause, and what the rollback did.
  int report(std::string_view what, std::exception_ptr error, const Command& cmd, const Tally& tally) {
    err_ << label("error", fmt::terminal_color::red) << ": " << what << '\n';
    try {
      std::rethrow_exception(error);
    } catch (const TransitionError& e) {
      print_chain(e, 0);
      print_failures(e, cmd, tally);
    } catch (const std::exception& e) {
      print_chain(e, 0);
    } catch (...) {
      err_ << "  unknown exception (not derived from std::exception)\n";
    }
    return exit_failure;
  }

  void print_chain(const std::exception& e, int depth) {
    const std::string indent(static_cast<std::size_t>(2 + 2 * depth), ' ');
    std::string text = e.what();
    for (std::size_t at = 0; (at = text.find('\n', at)) != std::string::npos; at += 1 + indent.size())
      text.insert(at + 1, indent); // keep a multi-line message (a log tail) inside its level
    err_ << indent << (depth ? "caused by: " : "") << text << '\n';
    // A nested_exception made outside a catch holds no cause; rethrow_if_nested
    // would call std::terminate on it, so look before rethrowing.
    const auto* nested = dynamic_cast<const std::nested_exception*>(&e);
    if (nested == nullptr || !nested->nested_ptr() || depth >= 16) return;
    try {
      std::rethrow_exception(nested->nested_ptr());
    } catch (const std::exception& inner) {
      print_chain(inner, depth + 1);
    } catch (...) {
      err_ << indent << "  caused by: unknown exception (not derived from std::exception)\n";
    }
  }

  void print_failures(const TransitionError& e, const Command& cmd, const Tally& tally) {
    const auto& failures = e.failures();
    if (cmd.verb == Verb::up) {
      if (!cmd.rollback) {
        err_ << "rollback: off (--no-rollback): what this command did is left in place; "
             << "'" << program_ << " stack status' shows it\n";
        return;
      }
      const auto undone = std::count_if(failures.begin(), failures.end(), [](const auto& f) { return f.rollback; });
      if (undone == 0) {
        if (tally.rolled_back == 0) err_ << "rollback: this command had changed nothing, so nothing was undone\n";
        else
          err_ << fmt::format("rollback: undid the {} action{} this command had done; the stack is as it was before\n",
                              tally.rolled_back, tally.rolled_back == 1 ? "" : "s");
        return;
      }
      err_ << fmt::format("rollback: undid {} action{}, but could not undo:\n", tally.rolled_back,
                          tally.rolled_back == 1 ? "" : "s");
      for (const auto& f : failures)
        if (f.rollback) err_ << fmt::format("  - {} {}: {}\n", f.role, f.transition, f.message);
      err_ << "'" << program_ << " stack status' shows what is left\n";
      return;
    }
    if (failures.size() > 1) {
      err_ << fmt::format("{} components failed (every other component was still tried):\n", failures.size());
      for (const auto& f : failures) err_ << fmt::format("  - {} {}: {}\n", f.role, f.transition, f.message);
    }
  }

  S& stack_;
  std::ostream& out_;
  std::ostream& err_;
  const Options& options_;
  std::string_view program_;
  bool fancy_out_;
  bool fancy_err_;
};

template <class... Cs>
int run_words(Stack<Cs...>& stack, std::span<const std::string_view> args, std::ostream& out, std::ostream& err,
              const Options& options, std::string_view program) noexcept {
  try {
    Runner<Cs...> runner(stack, out, err, options, program.empty() ? std::string_view("stack") : program);
    try {
      return runner.run(args);
    } catch (...) {
      stack.on_event({});
      return runner.crashed();
    }
  } catch (...) {
    return exit_failure;
  }
}

} // namespace detail

/// Runs one command line against `stack`: the words after the program name
/// (`{"stack", "down", "--force"}`), writing progress and results to `out`,
/// errors to `err`. Returns 0 done, 1 an action failed, 2 usage error; never
/// throws. While it runs it is the stack's observer; it leaves none set.
template <class... Cs>
int run(Stack<Cs...>& stack, std::span<const std::string_view> args, std::ostream& out, std::ostream& err,
        const Options& options = {}) noexcept {
  return detail::run_words(stack, args, out, err, options, options.program);
}

/// `main`'s arguments, written to `out` and `err` (for tests and embedding).
template <class... Cs>
int run(Stack<Cs...>& stack, int argc, char** argv, std::ostream& out, std::ostream& err,
        const Options& options = {}) noexcept {
  try {
    std::vector<std::string_view> words;
    std::string_view program = options.program;
    if (argv != nullptr && argc > 0) {
      if (program.empty() && argv[0] != nullptr) program = detail::base_name(argv[0]);
      for (int i = 1; i < argc && argv[i] != nullptr; ++i) words.emplace_back(argv[i]);
    }
    return detail::run_words(stack, words, out, err, options, program);
  } catch (...) {
    return exit_failure;
  }
}

/// ZenML's command line for `stack`, in one call from `main`:
/// `return stackup::cli::run(stack, argc, argv);` Grammar: `stack up`,
/// `stack down [--force]`, `stack status`, `<role> up|down|status|logs`, `--help`.
/// Progress goes to std::cout, errors to std::cerr.
template <class... Cs> int run(Stack<Cs...>& stack, int argc, char** argv, const Options& options = {}) noexcept {
  return run(stack, argc, argv, std::cout, std::cerr, options);
}

} // namespace stackup::cli
// ---- end stackup/cli.hpp ----
// The shipped components need Linux (/proc); elsewhere define STACKUP_NO_COMPONENTS.
#if !defined(STACKUP_NO_COMPONENTS)

// ---- begin stackup/components/local_daemon.hpp ----
// stackup — LocalDaemon<"role">: a local process that the stack starts and stops,
// tracked by a pid file holding the pid and the process start time, with
// readiness probes and cross-process locking.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix.hpp ----
// stackup — POSIX internals of the shipped components: file descriptors, private
// state directories with flock locks, process spawning, pid records carrying the
// process start time, process-group stop with escalation, loopback readiness
// probes and log tails. Not part of the public API.
// SPDX-License-Identifier: MIT


#if !defined(__linux__)
#error "stackup: the shipped components (LocalDaemon, LocalDirectory, Command) need Linux: they read process start times from /proc/<pid>/stat to never signal a reused pid. On other systems define STACKUP_NO_COMPONENTS before including <stackup/stackup.hpp> to use the core alone, and write your own components."
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern "C" char** environ; // NOLINT: the process environment, inherited by spawned commands

namespace stackup::detail::posix {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

/// The text of an errno value (thread-safe, unlike strerror).
inline std::string sys_message(int e) { return std::system_category().message(e); }

/// `'path'`, for messages.
inline std::string quoted(const std::filesystem::path& p) {
  // Built by appending: `"'" + p.string()` trips GCC 12's false -Wrestrict at -O3.
  std::string s(1, '\'');
  s += p.native();
  s += '\'';
  return s;
}

/// "250ms", "10s", "1.5s": a duration for messages.
inline std::string format_duration(milliseconds d) {
  const auto ms = d.count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms / 1000) + "." + std::to_string((ms % 1000) / 100) + "s";
}

/// An owned file descriptor, closed on destruction. Movable, not copyable.
class Fd {
public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
};

/// Back-off for polling: 1 ms, doubling, capped at 10 ms — quick to notice
/// readiness, cheap while waiting.
class Backoff {
public:
  /// The next pause, never past `deadline`.
  [[nodiscard]] Clock::duration next(Clock::time_point deadline) {
    const auto d = std::min<Clock::duration>(step_, std::max<Clock::duration>(deadline - Clock::now(), {}));
    step_ = std::min<Clock::duration>(step_ * 2, milliseconds(10));
    return d;
  }
  /// Sleeps for the next pause.
  void sleep(Clock::time_point deadline) { std::this_thread::sleep_for(next(deadline)); }

private:
  Clock::duration step_ = milliseconds(1);
};

// ---- files ----------------------------------------------------------------------

/// Writes all of `data`; false (errno set) on failure.
inline bool write_all(int fd, std::string_view data) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// Opens `name` in `dirfd` as one of stackup's own files: never through a
/// symlink (errno ELOOP) and only a regular file (errno EINVAL otherwise): a
/// FIFO or a device put in its place would block open() or read() forever.
/// Empty, with errno set, on failure.
inline Fd open_own_file(int dirfd, const char* name, int flags, mode_t mode = 0) {
  Fd fd(::openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode));
  if (!fd) {
    if (errno == ENXIO) errno = EINVAL; // a FIFO opened for writing with no reader
    return fd;
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    fd.reset();
    errno = EINVAL;
    return fd;
  }
  // Blocking again: the log becomes a daemon's stdout and stderr.
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

/// Why open_own_file failed, for messages.
inline std::string own_file_error(int e) {
  return e == EINVAL ? "it is not a regular file (a FIFO, a device or a directory?): remove it" : sys_message(e);
}

/// Reads at most `limit` bytes of `name` in directory `dirfd` without following
/// a symlink. Empty optional when the file does not exist; Error otherwise.
inline std::optional<std::string> read_file_at(int dirfd, const char* name, std::size_t limit,
                                               const std::filesystem::path& shown_as) {
  Fd fd = open_own_file(dirfd, name, O_RDONLY);
  if (!fd) {
    const int e = errno;
    if (e == ENOENT) return std::nullopt;
    if (e == ELOOP)
      throw Error("stackup: " + quoted(shown_as) + " is a symlink; stackup never reads its state through a symlink: "
                  "remove the link");
    throw Error("stackup: cannot open " + quoted(shown_as) + ": " + own_file_error(e));
  }
  std::string out;
  char buf[4096];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("stackup: cannot read " + quoted(shown_as) + ": " + sys_message(errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// Replaces `name` in `dirfd` atomically (write a temporary file, then rename),
/// so a reader sees the old content or the new, never a part.
inline void write_file_atomic(int dirfd, const std::string& name, std::string_view content,
                              const std::filesystem::path& shown_as) {
  const std::string tmp = name + ".tmp";
  ::unlinkat(dirfd, tmp.c_str(), 0);
  Fd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw Error("stackup: cannot create " + quoted(shown_as) + ".tmp: " + sys_message(errno));
  if (!write_all(fd.get(), content)) {
    const int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    throw Error("stackup: cannot write " + quoted(shown_as) + ".tmp: " + sys_message(e));
  }
  fd.reset();
  if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    const int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    throw Error("stackup: cannot replace " + quoted(shown_as) + ": " + sys_message(e));
  }
}

/// `fd` itself when it is 3 or above, else a close-on-exec duplicate that is, so
/// a child can dup2 it onto 0, 1 or 2 without clobbering another.
inline Fd above_stdio(Fd fd) {
  if (!fd || fd.get() > 2) return fd;
  Fd dup(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!dup) throw Error(std::string("stackup: cannot duplicate a file descriptor: ") + sys_message(errno));
  return dup;
}

// ---- paths stackup never takes over ---------------------------------------------------

/// The user's home directories ($HOME and the password database's), as given.
inline std::vector<std::filesystem::path> home_directories() {
  std::vector<std::filesystem::path> out;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') out.emplace_back(h);
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_dir != nullptr && *found->pw_dir != '\0')
    out.emplace_back(found->pw_dir);
  return out;
}

/// Why stackup must never create, own or remove `p` as a whole: it is empty,
/// the root directory, a home directory or a parent of one (symlinks in
/// parents resolved). Empty when `p` is fine.
inline std::string forbidden_directory(const std::filesystem::path& p) {
  if (p.empty()) return "the path is empty";
  std::error_code ec;
  const auto real = std::filesystem::weakly_canonical(p, ec);
  const auto& path = ec ? p : real;
  if (path == path.root_path()) return "it is the root directory";
  for (const auto& home : home_directories()) {
    const auto h = std::filesystem::weakly_canonical(home, ec);
    if (ec) continue;
    if (path == h) return "it is the home directory";
    const auto rel = h.lexically_relative(path);
    if (!rel.empty() && *rel.begin() != "..") return "it holds the home directory " + h.string();
  }
  return {};
}

// ---- private state directories ----------------------------------------------------

/// Opens `dir` as a private state directory: a real directory (not a symlink),
/// owned by this user and writable by no one else. Empty when it does not exist;
/// Error, naming the path, the reason and the fix, otherwise.
inline Fd open_private_dir(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    const int e = errno;
    if (e == ENOENT) return {};
    struct stat st{};
    if (::lstat(dir.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode))
        throw Error("stackup: state directory " + quoted(dir) +
                    " is a symlink; stackup keeps pid files and locks only in a real directory (a link could be "
                    "redirected): remove the link or configure the real path");
      if (!S_ISDIR(st.st_mode))
        throw Error("stackup: state directory " + quoted(dir) +
                    " exists but is not a directory: remove it or configure another state_dir");
    }
    throw Error("stackup: cannot open state directory " + quoted(dir) + ": " + sys_message(e));
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0)
    throw Error("stackup: cannot stat state directory " + quoted(dir) + ": " + sys_message(errno));
  if (st.st_uid != ::geteuid())
    throw Error("stackup: state directory " + quoted(dir) + " is owned by uid " + std::to_string(st.st_uid) +
                ", not by this user (uid " + std::to_string(::geteuid()) +
                "); another user could forge its pid file: use a directory of your own");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    const auto r = std::to_chars(mode, mode + sizeof mode, st.st_mode & 07777, 8);
    throw Error("stackup: state directory " + quoted(dir) + " is writable by group or others (mode 0" +
                std::string(mode, r.ptr) + "); another user could forge its pid file: run `chmod 700 " +
                dir.string() + "` or configure another state_dir");
  }
  return fd;
}

/// A private state directory, opened and exclusively locked (flock on `lock`
/// inside it). The lock is released when this is destroyed. Empty when the
/// directory does not exist and was not to be created.
struct LockedDir {
  Fd dir;
  Fd lock;
  explicit operator bool() const noexcept { return static_cast<bool>(dir); }
};

/// Opens and locks the private state directory `dir` (creating it with mode 0700
/// when `create`). Blocks while another process or thread holds the lock, then
/// checks the directory was not removed or replaced meanwhile (retrying if so).
inline LockedDir lock_private_dir(const std::filesystem::path& dir, bool create) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (create) {
      std::error_code ec;
      if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error("stackup: cannot create state directory " + quoted(dir) + ": " + sys_message(errno));
    }
    LockedDir l;
    l.dir = open_private_dir(dir);
    if (!l.dir) {
      if (create) continue;
      return {};
    }
    if (create) {
      struct stat st{};
      // mkdir's mode is filtered by the umask; the state directory is exactly 0700.
      if (::fstat(l.dir.get(), &st) == 0 && (st.st_mode & 07777) != 0700 && ::fchmod(l.dir.get(), 0700) != 0)
        throw Error("stackup: cannot set mode 0700 on state directory " + quoted(dir) + ": " + sys_message(errno));
    }
    l.lock = Fd(::openat(l.dir.get(), "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
    if (!l.lock) {
      if (errno == ENOENT) continue; // the directory was removed under us
      throw Error("stackup: cannot open lock file " + quoted(dir / "lock") + ": " + sys_message(errno));
    }
    while (::flock(l.lock.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw Error("stackup: cannot lock " + quoted(dir / "lock") + ": " + sys_message(errno));
    }
    // While we waited, the holder may have removed the directory (deprovision):
    // the lock we hold must be the one at the path now.
    struct stat held{}, linked{}, opened{}, at_path{};
    if (::fstat(l.lock.get(), &held) == 0 && ::fstatat(l.dir.get(), "lock", &linked, AT_SYMLINK_NOFOLLOW) == 0 &&
        ::fstat(l.dir.get(), &opened) == 0 && ::lstat(dir.c_str(), &at_path) == 0 && held.st_ino == linked.st_ino &&
        held.st_dev == linked.st_dev && opened.st_ino == at_path.st_ino && opened.st_dev == at_path.st_dev)
      return l;
  }
  throw Error("stackup: cannot lock state directory " + quoted(dir) +
              ": it keeps being removed or replaced by another process");
}

// ---- processes ----------------------------------------------------------------------

/// What stackup needs from /proc/<pid>/stat.
struct ProcStat {
  char state = '?';                 ///< field 3: R, S, D, Z (zombie), ...
  pid_t pgrp = 0;                   ///< field 5: process group
  unsigned long long start_time = 0; ///< field 22: start time in clock ticks since boot
};

/// Parses the content of /proc/<pid>/stat. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last ')'.
inline std::optional<ProcStat> parse_proc_stat(std::string_view s) {
  const auto close = s.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  s.remove_prefix(close + 1);
  ProcStat out;
  // Fields after ')' start at field 3.
  for (int field = 3; field <= 22; ++field) {
    if (s.empty() || s.front() != ' ') return std::nullopt;
    s.remove_prefix(1);
    const auto end = std::min(s.find(' '), s.size());
    const std::string_view tok = s.substr(0, end);
    if (tok.empty()) return std::nullopt;
    if (field == 3) {
      out.state = tok.front();
    } else if (field == 5) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.pgrp).ec != std::errc{}) return std::nullopt;
    } else if (field == 22) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.start_time).ec != std::errc{}) return std::nullopt;
    }
    s.remove_prefix(end);
  }
  return out;
}

/// /proc/<pid>/stat of a process, or empty when there is no such process.
inline std::optional<ProcStat> read_proc_stat(pid_t pid) {
  const std::string file = "/proc/" + std::to_string(pid) + "/stat";
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  char buf[1024];
  std::size_t len = 0;
  while (len < sizeof buf) {
    const ssize_t n = ::read(fd.get(), buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  return parse_proc_stat(std::string_view(buf, len));
}

/// A zombie has exited; only its parent's wait is missing.
inline bool is_live_state(char state) noexcept { return state != 'Z' && state != 'X' && state != 'x'; }

/// The largest pid the system hands out (/proc/sys/kernel/pid_max).
inline pid_t max_pid() {
  Fd fd(::open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC));
  char buf[32];
  long value = 0;
  if (fd) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) std::from_chars(buf, buf + n, value);
  }
  return value > 1 ? static_cast<pid_t>(value) : pid_t{4194304}; // Linux's PID_MAX_LIMIT on 64-bit
}

/// A pid file's content: the pid and the start time of that process, which
/// together identify it even after the pid number is reused.
struct PidRecord {
  pid_t pid = 0;
  unsigned long long start_time = 0;
};

/// "<pid> <start time>\n".
inline std::string format_pid_record(PidRecord r) {
  return std::to_string(r.pid) + " " + std::to_string(r.start_time) + "\n";
}

/// Parses a pid file strictly. On failure returns false and says why in `why`;
/// a pid of 0, 1, a negative or an out-of-range value is never accepted (they
/// would make kill() hit a process group, init or everything).
inline bool parse_pid_record(std::string_view text, PidRecord& out, std::string& why) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) {
    why = "is empty";
    return false;
  }
  auto shown = [&] {
    std::string s;
    for (char c : text.substr(0, 40)) s += (c >= 0x20 && c < 0x7f) ? c : '?';
    return "'" + s + (text.size() > 40 ? "...'" : "'");
  };
  const auto space = text.find(' ');
  const std::string_view pid_text = text.substr(0, space);
  const std::string_view start_text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!pid_text.empty() && pid_text.front() == '-' && digits(pid_text.substr(1))) {
    why = "holds a negative pid (" + shown() + ")";
    return false;
  }
  if (!digits(pid_text) || !digits(start_text)) {
    why = "holds " + shown() + ", not '<pid> <start time>'";
    return false;
  }
  long long pid = 0;
  const pid_t limit = max_pid();
  if (pid_text.size() > 12 || std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid).ec != std::errc{} ||
      pid > limit) {
    why = "holds pid " + std::string(pid_text.substr(0, 24)) + ", above the system's maximum (" +
          std::to_string(limit) + ")";
    return false;
  }
  if (pid <= 1) {
    why = "holds pid " + std::to_string(pid) + ", which is never a daemon's (0 is a process group, 1 is init)";
    return false;
  }
  if (std::from_chars(start_text.data(), start_text.data() + start_text.size(), out.start_time).ec != std::errc{}) {
    why = "holds an out-of-range start time (" + shown() + ")";
    return false;
  }
  out.pid = static_cast<pid_t>(pid);
  return true;
}

/// Whether the process a record names is still that process.
enum class Identity {
  ours,   ///< alive, same start time
  gone,   ///< no such process, or it has exited (zombie)
  reused, ///< the pid now belongs to another process: never signal it
};

/// Checks a record against /proc; reaps the process when it is a zombie child
/// of this process, so a long-lived host does not collect zombies.
inline Identity identify(PidRecord r, bool reap_zombie = true) {
  const auto st = read_proc_stat(r.pid);
  if (!st) return Identity::gone;
  if (st->start_time != r.start_time) return Identity::reused;
  if (is_live_state(st->state)) return Identity::ours;
  if (reap_zombie) {
    while (::waitpid(r.pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
    }
  }
  return Identity::gone;
}

/// How a child process ended (waitid's si_code and si_status).
struct ChildExit {
  int code = 0;
  int status = 0;
};

/// ChildExit::code when the status is unknown: the child was reaped elsewhere
/// (e.g. the host sets SIGCHLD to SIG_IGN) or is not a child of this process.
inline constexpr int unknown_exit = -1;

/// The end of `pid` if it is a child of this process and has ended, without
/// reaping it (its pid number stays reserved, so its group can still be
/// signalled safely). `ChildExit{unknown_exit}` when `pid` is not (or no longer)
/// a child of this process; empty while it runs.
inline std::optional<ChildExit> peek_exit(pid_t pid) {
  siginfo_t si{};
  for (;;) {
    if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0) break;
    if (errno != EINTR) return ChildExit{unknown_exit, 0}; // ECHILD
  }
  if (si.si_pid == 0) return std::nullopt;
  return ChildExit{si.si_code, si.si_status};
}

/// Reaps `pid` if it is a child that has ended.
inline void reap(pid_t pid) noexcept {
  while (::waitpid(pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
  }
}

/// "SIGTERM", or "signal 42".
inline std::string signal_name(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
#endif
  return "signal " + std::to_string(sig);
}

/// "exit status 3", "killed by SIGKILL".
inline std::string describe_exit(ChildExit e) {
  switch (e.code) {
  case CLD_EXITED: return "exit status " + std::to_string(e.status);
  case CLD_KILLED: return "killed by " + signal_name(e.status);
  case CLD_DUMPED: return "killed by " + signal_name(e.status) + " (core dumped)";
  case unknown_exit: return "an unknown exit status (reaped elsewhere: is SIGCHLD ignored?)";
  default: return "an unknown end (code " + std::to_string(e.code) + ")";
  }
}

/// Whether any process in group `pgid` is alive (zombies do not count).
inline bool group_has_live_member(pid_t pgid) {
  if (::kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  // kill() also reaches zombies; look for a live member.
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return true;
  bool live = false;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view n = entry->d_name;
    if (std::from_chars(n.data(), n.data() + n.size(), pid).ec != std::errc{}) continue;
    const auto st = read_proc_stat(pid);
    if (st && st->pgrp == pgid && is_live_state(st->state)) {
      live = true;
      break;
    }
  }
  ::closedir(proc);
  return live;
}

/// How stop_process ended.
enum class Stopped {
  not_running, ///< nothing to stop (gone, or the pid belongs to another process now)
  terminated,  ///< exited after SIGTERM
  killed,      ///< needed SIGKILL after the timeout
};

/// Stops the process a record names, and its process group when it leads one:
/// SIGTERM, wait up to `timeout`, then SIGKILL. Signals nothing unless the
/// record's start time matches the live process. Error if it survives SIGKILL.
inline Stopped stop_process(PidRecord r, milliseconds timeout, std::string_view who) {
  const auto first = read_proc_stat(r.pid);
  if (!first || first->start_time != r.start_time) return Stopped::not_running;
  const bool group = first->pgrp == r.pid; // it leads its own group (a session we created)
  const pid_t target = group ? -r.pid : r.pid;
  auto gone = [&] {
    if (identify(r, false) == Identity::ours) return false;
    return !group || !group_has_live_member(r.pid);
  };
  auto finish = [&](Stopped how) {
    reap(r.pid);
    return how;
  };
  if (gone()) return finish(Stopped::not_running);
  if (::kill(target, SIGTERM) != 0 && errno != ESRCH)
    throw Error("stackup: cannot signal " + std::string(who) + " (pid " + std::to_string(r.pid) +
                "): " + sys_message(errno));
  auto deadline = Clock::now() + timeout;
  Backoff backoff;
  while (true) {
    if (gone()) return finish(Stopped::terminated);
    if (Clock::now() >= deadline) break;
    backoff.sleep(deadline);
  }
  // The leader is unreaped (a zombie child of ours) or a member is alive, so the
  // group's number cannot have been reused: signalling it is safe.
  if (::kill(target, SIGKILL) != 0 && errno != ESRCH)
    throw Error("stackup: cannot kill " + std::string(who) + " (pid " + std::to_string(r.pid) +
                "): " + sys_message(errno));
  deadline = Clock::now() + std::chrono::seconds(10);
  Backoff again;
  while (true) {
    if (gone()) return finish(Stopped::killed);
    if (Clock::now() >= deadline) break;
    again.sleep(deadline);
  }
  throw Error("stackup: " + std::string(who) + " (pid " + std::to_string(r.pid) +
              ") survived SIGKILL for 10s (stuck in the kernel?); its pid file is kept: check it with `ps -o "
              "pid,stat,cmd -g " + std::to_string(r.pid) + "`");
}

/// What to run, and with which standard streams.
struct SpawnOptions {
  std::vector<std::string> argv;                        ///< argv[0] is looked up in PATH if it has no '/'
  const std::map<std::string, std::string>* env = nullptr; ///< variables added to the inherited environment
  std::filesystem::path working_dir;                    ///< empty: inherit
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;     ///< each must be above 2 (see above_stdio)
};

/// Starts `o.argv` in a new session (so it leads its own process group and has
/// no controlling terminal), with default signal dispositions and an empty
/// signal mask, and with no descriptor of ours but the three given.
///
/// `gate(pid)` runs in this process after the fork and before the child may
/// exec: if this process dies during `gate`, the child exits instead of running
/// unrecorded. Throws Error (after reaping the child) when the command cannot be
/// started; what `gate` throws is rethrown after killing the child.
template <class Gate> pid_t spawn(const SpawnOptions& o, Gate&& gate) {
  if (o.argv.empty() || o.argv.front().empty()) throw Error("stackup: cannot start an empty command");
  // Everything the child needs is built here: between fork and exec it may only
  // make async-signal-safe calls (no allocation), as the host may have threads.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    if (o.env != nullptr && o.env->count(std::string(kv.substr(0, kv.find('=')))) != 0) continue;
    env_strings.emplace_back(kv);
  }
  std::string path_var = "/usr/local/bin:/usr/bin:/bin";
  if (const char* p = std::getenv("PATH")) path_var = p;
  if (o.env != nullptr) {
    for (const auto& [key, value] : *o.env) {
      if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos)
        throw Error("stackup: invalid environment variable name '" + key + "': it must be non-empty, without '='");
      env_strings.push_back(key + "=" + value);
      if (key == "PATH") path_var = value;
    }
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args(o.argv);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> candidates;
  if (o.argv.front().find('/') != std::string::npos) {
    candidates.push_back(o.argv.front());
  } else {
    std::string_view rest = path_var;
    while (true) {
      const auto colon = rest.find(':');
      const std::string_view dir = rest.substr(0, colon);
      candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + o.argv.front());
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  const char* cwd = o.working_dir.empty() ? nullptr : o.working_dir.c_str();

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
  Fd report_read(report[0]), report_write(report[1]);
  int go[2];
  // A socket, not a pipe: writing to it after the child died must not raise SIGPIPE.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0)
    throw Error("stackup: cannot create a socket pair: " + sys_message(errno));
  Fd go_parent(go[0]), go_child(go[1]);

  const pid_t pid = ::fork();
  if (pid < 0) throw Error("stackup: cannot fork to start '" + o.argv.front() + "': " + sys_message(errno));
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    struct Report {
      int stage, err;
    };
    auto fail = [&](int stage) {
      const Report rep{stage, errno};
      [[maybe_unused]] const ssize_t n = ::write(report_write.get(), &rep, sizeof rep);
      ::_exit(127);
    };
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    }
    if (::setsid() < 0) fail(1);
    if (::dup2(o.stdin_fd, 0) < 0 || ::dup2(o.stdout_fd, 1) < 0 || ::dup2(o.stderr_fd, 2) < 0) fail(2);
#if defined(SYS_close_range)
    // Any descriptor the host left inheritable is closed at exec, not leaked to the daemon.
    ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
    if (cwd != nullptr && ::chdir(cwd) != 0) fail(3);
    char byte = 0;
    ssize_t got = 0;
    do got = ::read(go_child.get(), &byte, 1);
    while (got < 0 && errno == EINTR);
    if (got != 1) ::_exit(125); // the parent did not record us: do not run
    int err = ENOENT;
    for (const auto& c : candidates) {
      ::execve(c.c_str(), argv.data(), envp.data());
      if (errno != ENOENT && errno != ENOTDIR) err = errno;
      if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) break;
    }
    errno = err;
    fail(4);
  }
  report_write.reset();
  go_child.reset();
  try {
    gate(pid);
  } catch (...) {
    ::kill(pid, SIGKILL); // still ours and not yet exec'd: safe
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  const char byte = 'g';
  while (::send(go_parent.get(), &byte, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
  go_parent.reset();
  int rep[2] = {0, 0};
  std::size_t got = 0;
  while (got < sizeof rep) {
    const ssize_t n = ::read(report_read.get(), reinterpret_cast<char*>(rep) + got, sizeof rep - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == 0) return pid; // the report pipe closed on exec: started
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  const char* stages[] = {"", "setsid", "redirect its output", "change to its working directory", "execute it"};
  std::string what = "stackup: cannot start '" + o.argv.front() + "'";
  const int stage = got == sizeof rep && rep[0] >= 1 && rep[0] <= 4 ? rep[0] : 4;
  what += ": " + std::string(stages[stage]) + " failed: " + sys_message(rep[1]);
  if (stage == 3) what += " (working_dir " + quoted(o.working_dir) + ")";
  if (stage == 4 && rep[1] == ENOENT && candidates.size() > 1) what += " (not found in PATH)";
  throw Error(what);
}

// ---- shell commands -------------------------------------------------------------------

/// The result of run_shell.
struct ShellResult {
  ChildExit exit;      ///< how the shell ended (after a kill when timed out)
  bool timed_out = false;
  std::string stderr_tail; ///< the last few KiB of its standard error
};

/// Runs `command` with /bin/sh -c in its own session (stdin and stdout /dev/null,
/// stderr captured). Past `timeout`, its whole process group gets SIGTERM, then
/// SIGKILL two seconds later. Returns when the shell exits, even if a process it
/// started in the background still holds its stderr.
inline ShellResult run_shell(const std::string& command, milliseconds timeout,
                             const std::filesystem::path& working_dir, const std::map<std::string, std::string>& env) {
  constexpr std::size_t keep = 8192;
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw Error("stackup: cannot open /dev/null: " + sys_message(errno));
  null = above_stdio(std::move(null));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
  Fd err_read(p[0]), err_write(p[1]);
  err_write = above_stdio(std::move(err_write));
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);

  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", command};
  o.env = &env;
  o.working_dir = working_dir;
  o.stdin_fd = null.get();
  o.stdout_fd = null.get();
  o.stderr_fd = err_write.get();
  const pid_t pid = spawn(o, [](pid_t) {});
  err_write.reset();

  ShellResult result;
  bool open = true;
  auto drain = [&] {
    char buf[4096];
    while (open) {
      const ssize_t n = ::read(err_read.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n == 0) open = false;
        break;
      }
      result.stderr_tail.append(buf, static_cast<std::size_t>(n));
      if (result.stderr_tail.size() > 2 * keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
    }
  };
  auto deadline = Clock::now() + timeout;
  Backoff backoff;
  std::optional<ChildExit> ended;
  while (!(ended = peek_exit(pid))) {
    if (Clock::now() >= deadline) break;
    const auto wait = std::chrono::duration_cast<milliseconds>(backoff.next(deadline));
    if (open) {
      pollfd pfd{err_read.get(), POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>(std::max<milliseconds::rep>(wait.count(), 1)));
      drain();
    } else {
      std::this_thread::sleep_for(wait);
    }
  }
  if (!ended) {
    result.timed_out = true;
    ::kill(-pid, SIGTERM);
    deadline = Clock::now() + std::chrono::seconds(2);
    Backoff grace;
    while (!(ended = peek_exit(pid)) && Clock::now() < deadline) grace.sleep(deadline);
    // The shell is not reaped yet, so its group number cannot have been reused.
    ::kill(-pid, SIGKILL);
  }
  siginfo_t si{};
  int r = 0;
  while ((r = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED)) != 0 && errno == EINTR) {
  }
  result.exit = r == 0 ? ChildExit{si.si_code, si.si_status} : ended.value_or(ChildExit{unknown_exit, 0});
  drain();
  if (result.stderr_tail.size() > keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
  return result;
}

// ---- readiness probes -----------------------------------------------------------------

/// A connected TCP socket to 127.0.0.1:port, or empty (refused, or not within `timeout`).
inline Fd connect_loopback(std::uint16_t port, milliseconds timeout) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
  if (errno != EINPROGRESS) return {};
  pollfd pfd{fd.get(), POLLOUT, 0};
  if (::poll(&pfd, 1, static_cast<int>(std::max<milliseconds::rep>(timeout.count(), 1))) != 1) return {};
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return {};
  return fd;
}

/// Something accepts connections on 127.0.0.1:port.
inline bool tcp_probe(std::uint16_t port, milliseconds timeout) {
  return static_cast<bool>(connect_loopback(port, timeout));
}

/// `GET path` on 127.0.0.1:port answers 2xx within `timeout`.
inline bool http_probe(std::uint16_t port, std::string_view path, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Fd fd = connect_loopback(port, timeout);
  if (!fd) return false;
  auto left = [&] {
    return static_cast<int>(std::max<long long>(
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count(), 1));
  };
  const std::string request = "GET " + std::string(path) + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) +
                              "\r\nUser-Agent: stackup\r\nConnection: close\r\n\r\n";
  std::string_view out = request;
  while (!out.empty()) {
    const ssize_t n = ::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (Clock::now() >= deadline || ::poll(&pfd, 1, left()) != 1) return false;
  }
  std::string in;
  char buf[256];
  while (in.find('\n') == std::string::npos && in.size() < 512) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    pollfd pfd{fd.get(), POLLIN, 0};
    if (Clock::now() >= deadline || ::poll(&pfd, 1, left()) != 1) return false;
  }
  // "HTTP/1.x 2xx ..."
  const auto space = in.find(' ');
  return in.compare(0, 5, "HTTP/") == 0 && space != std::string::npos && space + 4 <= in.size() &&
         in[space + 1] == '2';
}

// ---- logs -----------------------------------------------------------------------------

/// The last `max_lines` lines of `name` in `dirfd` from byte `from` on (at most
/// the last 4 KiB), each indented, for error messages. Empty if there are none.
inline std::string log_tail(int dirfd, const char* name, off_t from, std::size_t max_lines = 15) {
  Fd fd = open_own_file(dirfd, name, O_RDONLY);
  if (!fd) return {};
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || st.st_size <= from) return {};
  const off_t start = std::max<off_t>(from, st.st_size - 4096);
  std::string text(static_cast<std::size_t>(st.st_size - start), '\0');
  const ssize_t n = ::pread(fd.get(), text.data(), text.size(), start);
  if (n <= 0) return {};
  text.resize(static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  if (start > from && !lines.empty()) lines.erase(lines.begin()); // cut mid-line
  std::string out;
  for (std::size_t i = lines.size() > max_lines ? lines.size() - max_lines : 0; i < lines.size(); ++i) {
    out += "\n    ";
    out += lines[i];
  }
  return out;
}

/// The last lines of a captured text, indented like log_tail.
inline std::string text_tail(std::string_view text, std::size_t max_lines = 15) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::size_t begin = text.size();
  for (std::size_t lines = 0; begin > 0; --begin) {
    if (text[begin - 1] == '\n' && ++lines == max_lines) break;
  }
  std::string out;
  std::string_view rest = text.substr(begin);
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    out += "\n    ";
    out += rest.substr(0, nl);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

} // namespace stackup::detail::posix
// ---- end stackup/detail/posix.hpp ----

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace stackup {

/// Readiness probes: how LocalDaemon knows its process is ready to serve.
/// Probes only ever talk to 127.0.0.1.
namespace ready {

/// A readiness probe; build one with none(), tcp() or http().
struct Probe {
  /// What the probe checks.
  enum class Kind : unsigned char { none, tcp, http };
  Kind kind = Kind::none;
  std::uint16_t port = 0; ///< tcp and http: the loopback port
  std::string path{};     ///< http: the request path, e.g. "/health"

  /// "none", "tcp 127.0.0.1:8765", "http://127.0.0.1:8765/health".
  [[nodiscard]] std::string describe() const {
    switch (kind) {
    case Kind::none: return "none";
    case Kind::tcp: return "tcp 127.0.0.1:" + std::to_string(port);
    case Kind::http: return "http://127.0.0.1:" + std::to_string(port) + path;
    }
    return "?";
  }
  friend bool operator==(const Probe&, const Probe&) = default;
};

/// No probe: the daemon is ready as soon as it is started (the default).
inline Probe none() { return {}; }

/// Ready when 127.0.0.1:`port` accepts a TCP connection.
inline Probe tcp(std::uint16_t port) {
  if (port == 0) throw Error("stackup: ready::tcp(0): give the port the daemon listens on");
  return {Probe::Kind::tcp, port, {}};
}

/// Ready when `GET path` on 127.0.0.1:`port` answers with a 2xx status.
inline Probe http(std::uint16_t port, std::string path = "/") {
  if (port == 0) throw Error("stackup: ready::http(0, ...): give the port the daemon listens on");
  if (path.empty() || path.front() != '/' ||
      path.find_first_of(std::string_view(" \r\n\t\0", 5)) != std::string::npos)
    throw Error("stackup: ready::http: path '" + path + "' must start with '/' and hold no spaces or line breaks");
  return {Probe::Kind::http, port, std::move(path)};
}

} // namespace ready

/// Configuration of a LocalDaemon; use designated initialisers, in this order.
struct LocalDaemonConfig {
  std::string name{};                  ///< display name; empty: the role
  std::vector<std::string> command{};  ///< argv, no shell; argv[0] is looked up in PATH if it has no '/'
  std::filesystem::path state_dir{};   ///< holds config, pid file, lock and daemon.log (mode 0700)
  ready::Probe ready = ready::none(); ///< when the started process counts as ready
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30); ///< resume: wait this long for readiness
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(10);  ///< suspend: SIGTERM, then SIGKILL after this
  std::map<std::string, std::string> env{}; ///< variables added to (or replacing) the inherited environment
  std::filesystem::path working_dir{};      ///< empty: the caller's current directory
};

namespace detail {

inline std::string escape_config_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out;
}

inline bool unescape_config_value(std::string_view v, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      out += v[i];
      continue;
    }
    if (++i == v.size()) return false;
    if (v[i] == '\\') out += '\\';
    else if (v[i] == 'n') out += '\n';
    else if (v[i] == 'r') out += '\r';
    else return false;
  }
  return true;
}

inline constexpr std::string_view daemon_config_header = "stackup local_daemon config 1";

/// The state directory's `config` file: one `key value` per line, values
/// escaped, closed by `end` so that a truncated file is detected.
inline std::string format_daemon_config(std::string_view role, const LocalDaemonConfig& c) {
  std::string out(daemon_config_header);
  out += '\n';
  auto line = [&](std::string_view key, std::string_view value) {
    out.append(key).append(" ").append(escape_config_value(value)).append("\n");
  };
  line("role", role);
  line("name", c.name);
  for (const auto& a : c.command) line("arg", a);
  switch (c.ready.kind) {
  case ready::Probe::Kind::none: line("ready", "none"); break;
  case ready::Probe::Kind::tcp: line("ready", "tcp " + std::to_string(c.ready.port)); break;
  case ready::Probe::Kind::http: line("ready", "http " + std::to_string(c.ready.port) + " " + c.ready.path); break;
  }
  line("start_timeout_ms", std::to_string(c.start_timeout.count()));
  line("stop_timeout_ms", std::to_string(c.stop_timeout.count()));
  for (const auto& [k, v] : c.env) line("env", k + "=" + v);
  line("working_dir", c.working_dir.string());
  out += "end\n";
  return out;
}

/// Parses a `config` file written by format_daemon_config. On failure returns
/// false and says why (with the line number) in `why`. `role` receives the role
/// the file was written for.
inline bool parse_daemon_config(std::string_view text, LocalDaemonConfig& c, std::string& role, std::string& why) {
  c = LocalDaemonConfig{};
  std::size_t number = 0;
  bool ended = false, header = false;
  std::string value;
  auto fail = [&](std::string reason) {
    why = "line " + std::to_string(number) + ": " + std::move(reason);
    return false;
  };
  auto to_ms = [](std::string_view s, std::chrono::milliseconds& out) {
    long long v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || v < 0) return false;
    out = std::chrono::milliseconds(v);
    return true;
  };
  auto to_port = [](std::string_view s, std::uint16_t& out) {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc{} && r.ptr == s.data() + s.size() && out != 0;
  };
  while (!text.empty()) {
    ++number;
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return fail("no line break at the end (the file was cut short)");
    const std::string_view l = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (ended) return fail("text after 'end'");
    if (!header) {
      if (l != daemon_config_header) return fail("not a stackup local_daemon config (first line '" +
                                                 std::string(l.substr(0, 60)) + "')");
      header = true;
      continue;
    }
    if (l == "end") {
      ended = true;
      continue;
    }
    const auto sp = l.find(' ');
    if (sp == std::string_view::npos) return fail("expected 'key value'");
    const std::string_view key = l.substr(0, sp);
    if (!unescape_config_value(l.substr(sp + 1), value)) return fail("bad escape in the value of '" + std::string(key) + "'");
    if (key == "role") role = value;
    else if (key == "name") c.name = value;
    else if (key == "arg") c.command.push_back(value);
    else if (key == "working_dir") c.working_dir = value;
    else if (key == "start_timeout_ms") {
      if (!to_ms(value, c.start_timeout)) return fail("start_timeout_ms is not a number of milliseconds");
    } else if (key == "stop_timeout_ms") {
      if (!to_ms(value, c.stop_timeout)) return fail("stop_timeout_ms is not a number of milliseconds");
    } else if (key == "env") {
      const auto eq = value.find('=');
      if (eq == 0 || eq == std::string::npos) return fail("env entry is not KEY=VALUE");
      c.env[value.substr(0, eq)] = value.substr(eq + 1);
    } else if (key == "ready") {
      const std::string_view v = value;
      const auto s1 = v.find(' ');
      const std::string_view kind = v.substr(0, s1);
      if (kind == "none" && s1 == std::string_view::npos) {
        c.ready = ready::none();
      } else if (kind == "tcp" && s1 != std::string_view::npos) {
        std::uint16_t port = 0;
        if (!to_port(v.substr(s1 + 1), port)) return fail("ready tcp: bad port");
        c.ready = {ready::Probe::Kind::tcp, port, {}};
      } else if (kind == "http" && s1 != std::string_view::npos) {
        const auto s2 = v.find(' ', s1 + 1);
        std::uint16_t port = 0;
        if (s2 == std::string_view::npos || !to_port(v.substr(s1 + 1, s2 - s1 - 1), port))
          return fail("ready http: bad port");
        const std::string_view path = v.substr(s2 + 1);
        if (path.empty() || path.front() != '/' || path.find(' ') != std::string_view::npos)
          return fail("ready http: bad path");
        c.ready = {ready::Probe::Kind::http, port, std::string(path)};
      } else {
        return fail("ready is not 'none', 'tcp PORT' or 'http PORT PATH'");
      }
    } else {
      return fail("unknown key '" + std::string(key.substr(0, 40)) + "'");
    }
  }
  if (!header) {
    why = "the file is empty";
    return false;
  }
  if (!ended) {
    why = "no 'end' line (the file was cut short)";
    return false;
  }
  return true;
}

} // namespace detail

/// A local process that the stack starts and stops (ZenML's LocalDaemonService,
/// done right). Its state directory (mode 0700) holds `config`, the pid file
/// `pid` ("<pid> <start time>"), `daemon.log` and a `lock` file.
///
/// - Queries read the real world on every call (pid file, /proc, probe), so a
///   second process that knows only the state directory sees the truth.
/// - `resume` starts the command in its own session (stdin /dev/null, output
///   appended to daemon.log) and waits for readiness with 1–10 ms back-off.
/// - `suspend` sends SIGTERM to the daemon's process group, then SIGKILL after
///   `stop_timeout`. A pid whose start time does not match is never signalled.
/// - Every action holds an exclusive flock on `lock`: two processes running
///   `up` at once start one daemon.
///
/// ```cpp
/// stackup::LocalDaemon<"orchestrator"> web{{
///     .name = "web",
///     .command = {"/usr/bin/python3", "-m", "http.server", "8765", "--bind", "127.0.0.1"},
///     .state_dir = ".stackup/orchestrator",
///     .ready = stackup::ready::http(8765, "/"),
/// }};
/// ```
template <FixedString Role> class LocalDaemon : public StackComponent<LocalDaemon<Role>> {
public:
  /// The component's role, from the template argument.
  static constexpr std::string_view role = Role;
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "local_daemon";
  /// The configuration type (designated initialisers).
  using Config = LocalDaemonConfig;

  /// A daemon with this configuration; `state_dir` and `working_dir` are made
  /// absolute now, so a later change of the current directory does not move them. Error when
  /// `state_dir` is empty. Starts nothing.
  explicit LocalDaemon(Config config) : config_(std::move(config)) {
    if (config_.state_dir.empty())
      throw Error("stackup: local_daemon (" + std::string(role) + "): .state_dir is empty: give it a directory");
    config_.state_dir = std::filesystem::absolute(config_.state_dir).lexically_normal();
    if (config_.state_dir.has_relative_path() && !config_.state_dir.has_filename())
      config_.state_dir = config_.state_dir.parent_path();
    if (!config_.working_dir.empty()) config_.working_dir = std::filesystem::absolute(config_.working_dir);
  }

  /// The daemon whose state directory is `state_dir`, configured from its
  /// `config` file: what another process (e.g. a status or down command) needs.
  /// Error when the directory or its config is missing, unsafe or corrupt, or
  /// was written for another role.
  [[nodiscard]] static LocalDaemon from_state_dir(const std::filesystem::path& state_dir) {
    LocalDaemon probe{Config{.state_dir = state_dir}};
    const auto& dir = probe.config_.state_dir;
    const auto fd = detail::posix::open_private_dir(dir);
    if (!fd)
      throw Error("stackup: no state directory " + detail::posix::quoted(dir) + " for role " + std::string(role) +
                  ": provision the daemon first (e.g. `stack up`)");
    const auto text = detail::posix::read_file_at(fd.get(), "config", 1 << 20, dir / "config");
    if (!text)
      throw Error("stackup: state directory " + detail::posix::quoted(dir) +
                  " has no config file: provision the daemon again (it writes one)");
    Config c;
    std::string file_role, why;
    if (!detail::parse_daemon_config(*text, c, file_role, why))
      throw Error("stackup: config file " + detail::posix::quoted(dir / "config") + " is corrupt (" + why +
                  "): provision the daemon again to rewrite it, or remove the file");
    if (file_role != role)
      throw Error("stackup: state directory " + detail::posix::quoted(dir) + " belongs to role '" + file_role +
                  "', not '" + std::string(role) + "': open it with LocalDaemon<\"" + file_role + "\">");
    c.state_dir = dir;
    return LocalDaemon(std::move(c));
  }

  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? role : std::string_view(config_.name);
  }
  /// The configuration (state_dir absolute).
  [[nodiscard]] const Config& config() const noexcept { return config_; }
  /// The state directory (absolute).
  [[nodiscard]] const std::filesystem::path& state_dir() const noexcept { return config_.state_dir; }
  /// The daemon's output: `<state_dir>/daemon.log`.
  [[nodiscard]] std::filesystem::path log_file() const { return config_.state_dir / "daemon.log"; }
  /// The pid file: `<state_dir>/pid`.
  [[nodiscard]] std::filesystem::path pid_file() const { return config_.state_dir / "pid"; }

  /// The daemon's pid while its process is alive (whether or not it is ready);
  /// empty otherwise. Error on an unsafe state directory or a corrupt pid file.
  [[nodiscard]] std::optional<pid_t> pid() const {
    const auto dir = detail::posix::open_private_dir(config_.state_dir);
    if (!dir) return std::nullopt;
    const auto rec = read_pid(dir.get());
    if (!rec || detail::posix::identify(*rec) != detail::posix::Identity::ours) return std::nullopt;
    return rec->pid;
  }

  /// For status tables: "pid 1234, port 8765" while alive, else where the log is.
  [[nodiscard]] std::string detail() const {
    try {
      if (const auto p = pid()) {
        std::string d = "pid " + std::to_string(*p);
        if (config_.ready.kind != ready::Probe::Kind::none) d += ", port " + std::to_string(config_.ready.port);
        return d;
      }
      return is_provisioned() ? "log " + log_file().string() : "state " + config_.state_dir.string();
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  /// The state directory exists with its config. Error when it is unsafe
  /// (a symlink, another user's, group/world-writable).
  [[nodiscard]] bool is_provisioned() const {
    const auto dir = detail::posix::open_private_dir(config_.state_dir);
    struct stat st{};
    return dir && ::fstatat(dir.get(), "config", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  }

  /// The pid file parses, its process is alive with the recorded start time
  /// (a reused pid is not ours), and the readiness probe, if any, passes.
  /// Error on an unsafe state directory or a corrupt pid file.
  [[nodiscard]] bool is_running() const {
    const auto dir = detail::posix::open_private_dir(config_.state_dir);
    if (!dir) return false;
    const auto rec = read_pid(dir.get());
    if (!rec || detail::posix::identify(*rec) != detail::posix::Identity::ours) return false;
    return probe(std::chrono::seconds(1));
  }

  /// Creates the state directory (mode 0700, parents as needed) and writes the
  /// config. Refuses (Error naming the path and the reason) a state directory
  /// that is a symlink, another user's, or group/world-writable; and `/`, a home
  /// directory (or a parent of one), or an existing directory holding files
  /// stackup did not write: the state directory is stackup's own.
  void provision() {
    refuse_foreign_state_dir();
    const auto locked = detail::posix::lock_private_dir(config_.state_dir, true);
    write_config(locked.dir.get());
  }

  /// Starts the command detached and waits until it is ready. Nothing to do if
  /// it already runs. TransitionError when it exits before it is ready (with
  /// its exit status and the last lines of its log) or when it is not ready
  /// within start_timeout (it is stopped first); ProvisioningError when there
  /// is no state directory.
  void resume() {
    namespace px = detail::posix;
    if (config_.command.empty())
      throw Error("stackup: " + who() + ": no command configured: set .command (argv of the daemon)");
    const auto locked = px::lock_private_dir(config_.state_dir, false);
    if (!locked)
      throw ProvisioningError("stackup: " + who() + ": state directory " + px::quoted(config_.state_dir) +
                              " does not exist: provision first");
    const int dir = locked.dir.get();
    write_config(dir);
    if (const auto rec = read_pid(dir)) {
      // Under the lock, so a concurrent `up` that started it is seen here.
      if (px::identify(*rec) == px::Identity::ours) return await_ready(dir, *rec, 0);
      ::unlinkat(dir, "pid", 0); // stale: the process is gone or the pid reused
    }

    px::Fd log = px::open_own_file(dir, "daemon.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (!log) throw Error("stackup: " + who() + ": cannot open " + px::quoted(log_file()) + ": " + px::own_file_error(errno));
    log = px::above_stdio(std::move(log));
    px::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null) throw Error("stackup: cannot open /dev/null: " + px::sys_message(errno));
    null = px::above_stdio(std::move(null));
    std::string header = "--- stackup " + timestamp() + ": starting";
    for (const auto& a : config_.command) header += " " + a;
    header += "\n";
    px::write_all(log.get(), header);
    const off_t run_start = ::lseek(log.get(), 0, SEEK_END);

    px::SpawnOptions o;
    o.argv = config_.command;
    o.env = &config_.env;
    o.working_dir = config_.working_dir;
    o.stdin_fd = null.get();
    o.stdout_fd = log.get();
    o.stderr_fd = log.get();
    px::PidRecord rec;
    try {
      // The pid file is written before the child may exec, so no daemon ever
      // runs unrecorded, even if this process dies right now.
      px::spawn(o, [&](pid_t child) {
        const auto st = px::read_proc_stat(child);
        if (!st) throw Error("stackup: cannot read /proc/" + std::to_string(child) + "/stat of the new process");
        rec = {child, st->start_time};
        px::write_file_atomic(dir, "pid", px::format_pid_record(rec), pid_file());
      });
    } catch (const std::exception& e) {
      ::unlinkat(dir, "pid", 0);
      throw TransitionError(std::string(role), Transition::resume, "stackup: " + who() + ": " + e.what());
    }
    await_ready(dir, rec, run_start);
  }

  /// SIGTERM to the daemon's process group, up to stop_timeout for it to exit,
  /// then SIGKILL; removes the pid file. A stale pid file (process gone, or
  /// the pid now another process's) is removed without signalling anything.
  void suspend() {
    const auto locked = detail::posix::lock_private_dir(config_.state_dir, false);
    if (locked) stop(locked.dir.get());
  }

  /// Stops the daemon if it runs, then removes the state directory. Without a
  /// config (not provisioned by stackup) only stackup's own files are removed,
  /// and the directory only if nothing else is left in it.
  void deprovision() {
    namespace px = detail::posix;
    if (const std::string why = px::forbidden_directory(config_.state_dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing to remove state directory " + px::quoted(config_.state_dir) +
                  ": " + why);
    const auto locked = px::lock_private_dir(config_.state_dir, false);
    if (!locked) return;
    const int dir = locked.dir.get();
    stop(dir);
    struct stat st{};
    std::filesystem::path doomed = config_.state_dir; // where the directory is while it is removed
    std::error_code ec;
    if (::fstatat(dir, "config", &st, AT_SYMLINK_NOFOLLOW) == 0) {
      // Move the directory away while holding its lock: a process waiting for
      // that lock then finds no state directory at the path and gives up,
      // instead of locking a new lock file inside a directory being removed
      // (two holders at once). A waiter may still add one lock file to the moved
      // directory before it notices: removing again takes care of it.
      doomed = config_.state_dir;
      doomed += ".removing-" + std::to_string(::getpid());
      if (::rename(config_.state_dir.c_str(), doomed.c_str()) != 0) doomed = config_.state_dir;
      for (int attempt = 0; attempt < 16; ++attempt) {
        ec.clear();
        std::filesystem::remove_all(doomed, ec); // does not follow symlinks inside
        if (ec != std::errc::directory_not_empty) break;
      }
    } else {
      for (const char* f : own_files) ::unlinkat(dir, f, 0);
      if (::rmdir(config_.state_dir.c_str()) != 0 && errno != ENOENT)
        throw Error("stackup: " + who() + ": removed stackup's files but left state directory " +
                    px::quoted(config_.state_dir) + " in place: it has no config and holds files stackup did not "
                    "write (" + px::sys_message(errno) + "); remove it yourself if you mean to");
    }
    if (ec)
      throw Error("stackup: " + who() + ": cannot remove state directory " + px::quoted(doomed) + ": " +
                  ec.message() + "; remove it yourself");
  }

private:
  // Every file stackup writes in a state directory.
  static constexpr const char* own_files[] = {"config", "config.tmp", "pid", "pid.tmp", "daemon.log", "lock"};

  // Before taking over an existing state directory: it must not be a directory
  // stackup must never own, nor hold anything but stackup's files (unless it
  // already has a config: then it is ours).
  void refuse_foreign_state_dir() const {
    namespace px = detail::posix;
    const auto& dir = config_.state_dir;
    if (const std::string why = px::forbidden_directory(dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing state directory " + px::quoted(dir) + ": " + why +
                  "; give the daemon a directory of its own");
    const auto fd = px::open_private_dir(dir); // Error if unsafe
    struct stat st{};
    if (!fd || ::fstatat(fd.get(), "config", &st, AT_SYMLINK_NOFOLLOW) == 0) return;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const std::string n = entry.path().filename().string();
      if (std::none_of(std::begin(own_files), std::end(own_files), [&](const char* f) { return n == f; }))
        throw Error("stackup: " + who() + ": refusing state directory " + px::quoted(dir) +
                    ": it already holds files stackup did not write (e.g. '" + n +
                    "'); give the daemon a directory of its own");
    }
  }

  [[nodiscard]] std::string who() const {
    return "local_daemon '" + std::string(name()) + "' (" + std::string(role) + ")";
  }

  static std::string timestamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    return std::string(buf, std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm));
  }

  void write_config(int dir) const {
    detail::posix::write_file_atomic(dir, "config", detail::format_daemon_config(role, config_),
                                     config_.state_dir / "config");
  }

  // The pid file's record; empty when there is none. Error when it is corrupt:
  // it names the file and what to do, and nothing has been signalled.
  [[nodiscard]] std::optional<detail::posix::PidRecord> read_pid(int dir) const {
    const auto text = detail::posix::read_file_at(dir, "pid", 256, pid_file());
    if (!text) return std::nullopt;
    detail::posix::PidRecord rec;
    std::string why;
    if (!detail::posix::parse_pid_record(*text, rec, why))
      throw Error("stackup: " + who() + ": pid file " + detail::posix::quoted(pid_file()) + " " + why +
                  "; nothing was signalled. If no process of this daemon is running (see " + log_file().string() +
                  "), delete the pid file; otherwise stop that process yourself first");
    return rec;
  }

  [[nodiscard]] bool probe(std::chrono::milliseconds timeout) const {
    switch (config_.ready.kind) {
    case ready::Probe::Kind::none: return true;
    case ready::Probe::Kind::tcp: return detail::posix::tcp_probe(config_.ready.port, timeout);
    case ready::Probe::Kind::http: return detail::posix::http_probe(config_.ready.port, config_.ready.path, timeout);
    }
    return false;
  }

  // Polls (1 ms back-off up to 10 ms) until the probe passes, the process ends,
  // or start_timeout passes. `log_from`: where this run's output begins.
  void await_ready(int dir, detail::posix::PidRecord rec, off_t log_from) {
    namespace px = detail::posix;
    using px::Clock;
    const auto deadline = Clock::now() + config_.start_timeout;
    px::Backoff backoff;
    auto fail = [&](std::string what) {
      ::unlinkat(dir, "pid", 0);
      std::string tail = px::log_tail(dir, "daemon.log", log_from);
      what += tail.empty() ? " (" + log_file().string() + " has nothing from it)"
                           : "; last lines of " + log_file().string() + ":" + tail;
      throw_transition_error(std::string(role), Transition::resume, "stackup: " + who() + " " + what);
    };
    while (true) {
      // Identify without reaping, then look at the exit again: a process that
      // ends between the two checks still reports its exit status.
      const bool gone = px::identify(rec, false) != px::Identity::ours;
      const auto ended = px::peek_exit(rec.pid);
      if (ended && ended->code != px::unknown_exit) {
        px::reap(rec.pid);
        fail("exited with " + px::describe_exit(*ended) + " before it was ready");
      }
      if (gone) fail("exited before it was ready");
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (probe(std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(1000)))) return;
      if (Clock::now() >= deadline) {
        const auto how = px::stop_process(rec, config_.stop_timeout, who());
        append_log(dir, how == px::Stopped::killed ? "stopped with SIGKILL: not ready in time"
                                                   : "stopped with SIGTERM: not ready in time");
        fail("was not ready within " + px::format_duration(config_.start_timeout) + " (probe " +
             config_.ready.describe() + "); it was stopped");
      }
      backoff.sleep(deadline);
    }
  }

  // Stops the recorded process (if it is still ours) and removes the pid file.
  void stop(int dir) {
    namespace px = detail::posix;
    const auto rec = read_pid(dir);
    if (!rec) return;
    const auto how = px::stop_process(*rec, config_.stop_timeout, who());
    if (how == px::Stopped::terminated) append_log(dir, "stopped with SIGTERM");
    if (how == px::Stopped::killed)
      append_log(dir, "stopped with SIGKILL: still running " + px::format_duration(config_.stop_timeout) +
                          " after SIGTERM");
    ::unlinkat(dir, "pid", 0);
  }

  void append_log(int dir, std::string_view what) const {
    const auto log = detail::posix::open_own_file(dir, "daemon.log", O_WRONLY | O_APPEND);
    if (log) detail::posix::write_all(log.get(), "--- stackup " + timestamp() + ": " + std::string(what) + "\n");
  }

  Config config_;
};

} // namespace stackup
// ---- end stackup/components/local_daemon.hpp ----

// ---- begin stackup/components/local_directory.hpp ----
// stackup — LocalDirectory<"role">: a directory that provision creates and
// deprovision removes, but only if stackup created it (an ownership marker).
// SPDX-License-Identifier: MIT


#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace stackup {

/// Configuration of a LocalDirectory; use designated initialisers.
struct LocalDirectoryConfig {
  std::string name{};           ///< display name; empty: the role
  std::filesystem::path path{}; ///< the directory (made absolute at construction)
};

/// A directory (an artifact store, a data folder). `provision` creates it
/// (parents too) and writes stackup's ownership marker `.stackup-directory` in
/// it; `deprovision` removes it, refusing a directory without the marker (one
/// stackup did not create), a symlink, `/`, the user's home or one of its
/// parents. Provisioned = the directory exists with the marker; running =
/// provisioned (there is no resume or suspend).
///
/// ```cpp
/// stackup::LocalDirectory<"artifact_store"> artifacts{{.name = "artifacts", .path = ".stackup/artifacts"}};
/// ```
template <FixedString Role> class LocalDirectory : public StackComponent<LocalDirectory<Role>> {
public:
  /// The component's role, from the template argument.
  static constexpr std::string_view role = Role;
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "local_directory";
  /// The configuration type (designated initialisers).
  using Config = LocalDirectoryConfig;
  /// The ownership marker's file name, inside the directory.
  static constexpr const char* marker = ".stackup-directory";

  /// A directory with this configuration; a relative path is made absolute now.
  explicit LocalDirectory(Config config) : config_(std::move(config)) {
    if (!config_.path.empty()) {
      config_.path = std::filesystem::absolute(config_.path).lexically_normal();
      if (!config_.path.has_filename() && config_.path.has_relative_path())
        config_.path = config_.path.parent_path();
    }
  }

  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? role : std::string_view(config_.name);
  }
  /// The directory (absolute).
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return config_.path; }
  /// For status tables: the path.
  [[nodiscard]] std::string detail() const { return config_.path.string(); }

  /// The directory exists (not through a symlink) and carries the marker.
  [[nodiscard]] bool is_provisioned() const {
    if (config_.path.empty()) return false;
    struct stat st{};
    if (::lstat(config_.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    return ::lstat((config_.path / marker).c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }
  /// Same as is_provisioned(): a directory is running when it exists.
  [[nodiscard]] bool is_running() const { return is_provisioned(); }

  /// Creates the directory (parents too) and writes the marker. An existing
  /// empty directory is adopted; Error (naming the path) for a symlink, a file,
  /// or a non-empty directory without the marker.
  void provision() {
    namespace px = detail::posix;
    check_path("create");
    struct stat st{};
    if (::lstat(config_.path.c_str(), &st) != 0) {
      std::error_code ec;
      std::filesystem::create_directories(config_.path, ec); // no error if another process just made it
      if (ec) throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": " + ec.message());
    }
    px::Fd dir(::open(config_.path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) {
      const int e = errno;
      if (::lstat(config_.path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
        refuse("create", "it is a symlink; stackup never works through a symlink: configure the real path");
      if (e == ENOTDIR) refuse("create", "it exists and is not a directory: remove it or choose another path");
      throw Error("stackup: " + who() + ": cannot open " + px::quoted(config_.path) + ": " + px::sys_message(e));
    }
    if (is_provisioned()) return;
    // Anything but the marker (which a concurrent provision may have just
    // written) means the directory is someone else's.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(config_.path, ec)) {
      if (entry.path().filename() != marker)
        refuse("take over", "it exists, is not empty and has no stackup marker (stackup did not create it): "
                            "choose another path, or empty it yourself");
    }
    // O_EXCL: never open something planted in the marker's place (a FIFO, a link).
    px::Fd m(::openat(dir.get(), marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!m && errno == EEXIST && is_provisioned()) return; // a concurrent provision won the race
    if (!m || !px::write_all(m.get(), "created by stackup for " + std::string(role) +
                                          "; deprovision removes this directory and everything in it\n"))
      throw Error("stackup: " + who() + ": cannot write the marker " + px::quoted(config_.path / marker) + ": " +
                  px::sys_message(errno));
  }

  /// Removes the directory and everything in it. Nothing to do if it does not
  /// exist. Error (naming the path, removing nothing) when it lacks the marker,
  /// is a symlink, or is `/`, empty, the home directory or a parent of it.
  void deprovision() {
    check_path("remove");
    struct stat st{};
    if (::lstat(config_.path.c_str(), &st) != 0) {
      if (errno == ENOENT) return;
      throw Error("stackup: " + who() + ": cannot inspect " + detail::posix::quoted(config_.path) + ": " +
                  detail::posix::sys_message(errno));
    }
    if (S_ISLNK(st.st_mode)) refuse("remove", "it is a symlink; stackup never removes through a symlink");
    if (!S_ISDIR(st.st_mode)) refuse("remove", "it is not a directory");
    if (!is_provisioned())
      refuse("remove", std::string("it has no stackup marker (") + marker +
                           "), so stackup did not create it: remove it yourself if you mean to");
    std::error_code ec;
    std::filesystem::remove_all(config_.path, ec); // does not follow symlinks inside
    if (ec) throw Error("stackup: " + who() + ": cannot remove " + detail::posix::quoted(config_.path) + ": " + ec.message());
  }

private:
  [[nodiscard]] std::string who() const {
    return "local_directory '" + std::string(name()) + "' (" + std::string(role) + ")";
  }
  [[noreturn]] void refuse(std::string_view action, std::string_view why) const {
    throw Error("stackup: " + who() + ": refusing to " + std::string(action) + " " +
                detail::posix::quoted(config_.path) + ": " + std::string(why));
  }

  // Paths stackup never creates or removes: empty, "/", a home directory or a
  // parent of one.
  void check_path(std::string_view action) const {
    if (const std::string why = detail::posix::forbidden_directory(config_.path); !why.empty()) {
      refuse(action, config_.path.empty() ? why + ": set .path" : why);
    }
  }

  Config config_;
};

} // namespace stackup
// ---- end stackup/components/local_directory.hpp ----

// ---- begin stackup/components/command.hpp ----
// stackup — Command<"role">: a component driven by shell commands, one per action
// and per query (k3d, kubectl, terraform, docker compose, ...).
// SPDX-License-Identifier: MIT


#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace stackup {

/// Configuration of a Command; use designated initialisers, in this order.
/// Every command runs with `/bin/sh -c`. An empty action is "not implemented";
/// an empty `is_provisioned` counts as true, an empty `is_running` as
/// `is_provisioned()`.
struct CommandConfig {
  std::string name{};           ///< display name; empty: the role
  std::string provision{};      ///< creates the resources
  std::string deprovision{};    ///< destroys them
  std::string resume{};         ///< starts them
  std::string suspend{};        ///< stops them, keeping them
  std::string is_provisioned{}; ///< query: exit status 0 = provisioned
  std::string is_running{};     ///< query: exit status 0 = running
  std::chrono::milliseconds timeout = std::chrono::minutes(5); ///< per command; then its process group is killed
  std::filesystem::path working_dir{};      ///< empty: the caller's current directory
  std::map<std::string, std::string> env{}; ///< variables added to (or replacing) the inherited environment
};

/// A component whose actions and queries are shell commands: the way a stack
/// drives engines beyond one machine instead of reimplementing them.
///
/// - Query: exit status 0 = true, any other = false; but a query that the shell
///   cannot run (status 126/127), that is killed, or that times out is an Error.
/// - Action: exit status 0 = done; otherwise TransitionError with the exit
///   status and the tail of its stderr. An empty action throws
///   NotImplementedError, which the stack treats as an absent action.
/// - Each command runs in its own session, stdin and stdout on /dev/null,
///   stderr captured; past `timeout` its whole process group is killed.
///   A command that leaves a process running in the background should redirect
///   that process's output (`server > log 2>&1 &`).
///
/// ```cpp
/// stackup::Command<"orchestrator"> k3d{{
///     .name = "k3d-demo",
///     .provision = "k3d cluster create demo",
///     .deprovision = "k3d cluster delete demo",
///     .resume = "k3d cluster start demo",
///     .suspend = "k3d cluster stop demo",
///     .is_provisioned = "k3d cluster get demo",
///     .is_running = "k3d cluster list demo --no-headers | grep -q ' 1/1 '",
/// }};
/// ```
template <FixedString Role> class Command : public StackComponent<Command<Role>> {
public:
  /// The component's role, from the template argument.
  static constexpr std::string_view role = Role;
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "command";
  /// The configuration type (designated initialisers).
  using Config = CommandConfig;

  /// A component with these commands. Runs nothing.
  explicit Command(Config config) : config_(std::move(config)) {}

  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? role : std::string_view(config_.name);
  }
  /// The configuration.
  [[nodiscard]] const Config& config() const noexcept { return config_; }
  /// For status tables: the query that decides the state.
  [[nodiscard]] std::string detail() const {
    const std::string& q = config_.is_running.empty() ? config_.is_provisioned : config_.is_running;
    if (q.empty()) return {};
    return "query: " + (q.size() > 60 ? q.substr(0, 57) + "..." : q);
  }

  /// Runs the `is_provisioned` query (true when it is empty).
  [[nodiscard]] bool is_provisioned() const {
    return config_.is_provisioned.empty() || query(config_.is_provisioned, "is_provisioned");
  }
  /// Runs the `is_running` query (is_provisioned() when it is empty).
  [[nodiscard]] bool is_running() const {
    return config_.is_running.empty() ? is_provisioned() : query(config_.is_running, "is_running");
  }

  /// Runs the `provision` command.
  void provision() { act(config_.provision, Transition::provision); }
  /// Runs the `deprovision` command.
  void deprovision() { act(config_.deprovision, Transition::deprovision); }
  /// Runs the `resume` command.
  void resume() { act(config_.resume, Transition::resume); }
  /// Runs the `suspend` command.
  void suspend() { act(config_.suspend, Transition::suspend); }

private:
  [[nodiscard]] std::string who() const { return "command '" + std::string(name()) + "' (" + std::string(role) + ")"; }

  [[nodiscard]] detail::posix::ShellResult run(const std::string& command) const {
    return detail::posix::run_shell(command, config_.timeout, config_.working_dir, config_.env);
  }

  static std::string stderr_part(const detail::posix::ShellResult& r) {
    const std::string tail = detail::posix::text_tail(r.stderr_tail);
    return tail.empty() ? std::string(" (no stderr output)") : "; stderr:" + tail;
  }

  [[nodiscard]] bool query(const std::string& command, std::string_view which) const {
    namespace px = detail::posix;
    const auto r = run(command);
    const std::string where = "stackup: " + who() + ": " + std::string(which) + " query `" + command + "` ";
    if (r.timed_out)
      throw Error(where + "did not finish within " + px::format_duration(config_.timeout) +
                  " and was killed with its process group" + stderr_part(r));
    if (r.exit.code != CLD_EXITED)
      throw Error(where + "ended with " + px::describe_exit(r.exit) + ", neither yes nor no" + stderr_part(r));
    if (r.exit.status == 126 || r.exit.status == 127)
      throw Error(where + "could not be run by the shell (exit status " + std::to_string(r.exit.status) +
                  "): check the command and PATH" + stderr_part(r));
    return r.exit.status == 0;
  }

  void act(const std::string& command, Transition t) {
    namespace px = detail::posix;
    if (command.empty())
      throw NotImplementedError("stackup: " + who() + " has no " + std::string(to_string(t)) + " command");
    const auto r = run(command);
    const std::string where = "stackup: " + who() + ": " + std::string(to_string(t)) + " `" + command + "` ";
    if (r.timed_out)
      throw_transition_error(std::string(role), t,
                            where + "did not finish within " + px::format_duration(config_.timeout) +
                                " and was killed with its process group" + stderr_part(r));
    if (r.exit.code != CLD_EXITED || r.exit.status != 0)
      throw_transition_error(std::string(role), t, where + "failed with " + px::describe_exit(r.exit) + stderr_part(r));
  }

  Config config_;
};

} // namespace stackup
// ---- end stackup/components/command.hpp ----
#endif
#endif // C++20: add new headers above this line
// ---- end stackup/stackup.hpp ----
