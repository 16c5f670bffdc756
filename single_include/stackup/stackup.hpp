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
  if constexpr (has_name<T>) return std::string_view(c.name());
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
  /// every component that failed; for `up`, the cause then anything the
  /// rollback could not undo.
  [[nodiscard]] const std::vector<Failure>& failures() const noexcept { return failures_; }

private:
  std::string role_;
  Transition transition_;
  std::vector<Failure> failures_;
};

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
      if (!ready.empty()) { // more is ready: wake an idle worker, or start one
        if (idle > 0) cv.notify_one();
        else if (threads.size() + 1 < limit) threads.emplace_back([&self] { self(self); });
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

namespace stackup::detail {

template <class...> inline constexpr bool always_false = false;

/// A string_view as a template argument, so diagnostics show the role.
template <std::size_t N> constexpr FixedString<N> fixed(std::string_view s) {
  FixedString<N> f;
  for (std::size_t i = 0; i + 1 < N && i < s.size(); ++i) f.data[i] = s[i];
  return f;
}

// Reporting templates: instantiated only on a broken stack, so the compiler's
// "in instantiation of ..." line shows the role and the component types.
template <FixedString Role, class First, class Second> struct duplicate_role {
  static_assert(always_false<First, Second>,
                "stackup: two components of this Stack have the same role (first template argument); "
                "a stack holds one component per role: remove one of them or give it another `role`");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <FixedString Role, FixedString MissingDependency, class ComponentType> struct missing_dependency {
  static_assert(always_false<ComponentType>,
                "stackup: a component's depends_on names a role that this Stack does not hold "
                "(second template argument): add a component with that role to the Stack, or remove it from depends_on");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <FixedString Role, class ComponentType> struct dependency_cycle {
  static_assert(always_false<ComponentType>,
                "stackup: dependency cycle: this component's depends_on leads back to itself; "
                "remove one depends_on entry on the cycle");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <class T> struct not_a_component {
  static_assert(has_role<T>, "stackup: this Stack template argument is not a Component: it needs "
                             "`static constexpr std::string_view role = \"...\";`");
  static_assert(has_is_provisioned<T>, "stackup: this Stack template argument is not a Component: it needs "
                                       "`bool is_provisioned() const` (derive from stackup::StackComponent<T> for the default)");
  static_assert(has_is_running<T>, "stackup: this Stack template argument is not a Component: it needs "
                                   "`bool is_running() const` (derive from stackup::StackComponent<T> for the default)");
  static_assert(std::is_class_v<T>, "stackup: this Stack template argument is not a Component: it must be a class type");
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
    return duplicate_role<fixed<std::string_view(A::role).size() + 1>(A::role), A, nth<r.b, Cs...>>::value;
  } else if constexpr (r.error == PlanError::missing) {
    using A = nth<r.a, Cs...>;
    constexpr std::string_view missing = dependency<A>(r.b);
    return missing_dependency<fixed<std::string_view(A::role).size() + 1>(A::role), fixed<missing.size() + 1>(missing), A>::value;
  } else if constexpr (r.error == PlanError::cycle) {
    using A = nth<r.a, Cs...>;
    return dependency_cycle<fixed<std::string_view(A::role).size() + 1>(A::role), A>::value;
  } else {
    return true;
  }
}

} // namespace stackup::detail
// ---- end stackup/detail/plan.hpp ----

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

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
  /// It is called for every event, one at a time.
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
    if (run_phase<Phase::provision, All>(r, options.parallel, options.max_threads) &&
        run_phase<Phase::resume, All>(r, options.parallel, options.max_threads))
      return;
    fail_up(r, options);
  }

  /// `zenml stack down [--force]`: suspend every component; with `.force`, also
  /// deprovision. Tries every component, then throws one TransitionError listing all failures.
  void down(DownOptions options = {}) {
    Run r;
    if (options.force) run_phase<Phase::force, All>(r, options.parallel, options.max_threads);
    else run_phase<Phase::suspend, All>(r, options.parallel, options.max_threads);
    if (r.cause) raise(r, "down");
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
    return i;
  }
  template <FixedString R> static constexpr std::size_t index_of() {
    constexpr std::size_t i = find(R.view());
    static_assert(i < size, "stackup: the Stack has no component with this role: check the spelling or add the component");
    return i;
  }

  using Clock = std::chrono::steady_clock;
  enum class Did : unsigned char { done, not_implemented };

  // Bookkeeping of one operation; lives on the caller's stack, allocates only on failure.
  struct Run {
    struct Done {
      std::uint32_t index;
      Transition transition;
    };
    std::array<Done, 2 * size + 1> done; // journal of performed actions, for rollback
    std::size_t count = 0;
    std::mutex* guard = nullptr;         // set while steps run on several threads
    std::exception_ptr cause;            // first failure
    std::size_t cause_index = 0;
    Transition cause_transition = Transition::provision;
    std::vector<TransitionError::Failure> failures;

    std::unique_lock<std::mutex> lock() { return guard ? std::unique_lock(*guard) : std::unique_lock<std::mutex>(); }
    void record(std::size_t k, Transition t) {
      auto held = lock();
      done[count++] = {static_cast<std::uint32_t>(k), t};
    }
    // Call inside a catch: records the exception being handled.
    void fail(std::size_t k, Transition t, std::string_view prefix = {}) {
      auto held = lock();
      failures.push_back({std::string(roles[k]), t, std::string(prefix) + detail::current_message()});
      if (!cause) {
        cause = std::current_exception();
        cause_index = k;
        cause_transition = t;
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

  template <std::size_t K> void emit(Transition t, Outcome o, std::chrono::nanoseconds elapsed, std::string message) {
    Event e{name_, roles[K], detail::name_of(at<K>()), t, o, elapsed, std::move(message)};
    if (!guard_) return observer_(e);
    std::lock_guard serialise(*guard_);
    observer_(e);
  }
  // A stand-alone event (already_done, not_implemented known at compile time).
  template <std::size_t K> void note(Transition t, Outcome o, std::string_view message) {
    if (observer_) [[unlikely]] emit<K>(t, o, {}, std::string(message));
  }

  template <Transition T, class C> static void invoke(C& c) {
    if constexpr (T == Transition::provision) c.provision();
    else if constexpr (T == Transition::resume) c.resume();
    else if constexpr (T == Transition::suspend) c.suspend();
    else c.deprovision();
  }

  // Runs one action with its started/end events. A NotImplementedError from the
  // component is "not implemented learned at run time", not a failure.
  template <std::size_t K, Transition T> Did act(bool undo = false) {
    auto& c = at<K>();
    if (!observer_) [[likely]] {
      try {
        invoke<T>(c);
      } catch (const NotImplementedError&) {
        return Did::not_implemented;
      }
      return Did::done;
    }
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
  template <std::size_t K> [[noreturn]] void not_implemented(Transition t, std::string_view advice) {
    std::string m = "stackup: " + describe<K>() + " does not implement " + std::string(to_string(t)) + "()";
    if (!advice.empty()) detail::append(m, {"; ", advice});
    throw NotImplementedError(m);
  }

  // ---- steps: one component, one phase --------------------------------------------

  template <std::size_t K> void provision_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    if (at<K>().is_provisioned()) return;
    if constexpr (Provisionable<C>) {
      if (act<K, Transition::provision>() == Did::done) return r.record(K, Transition::provision);
    } else {
      note<K>(Transition::provision, Outcome::not_implemented, "provision not implemented");
    }
    not_implemented<K>(Transition::provision, "it is not provisioned and cannot provision itself");
  }

  template <std::size_t K> void resume_step(Run& r, bool announce_running) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    if (at<K>().is_running()) {
      if (announce_running) note<K>(Transition::resume, Outcome::already_done, "already running");
      return;
    }
    if (!at<K>().is_provisioned())
      throw ProvisioningError("stackup: cannot resume " + describe<K>() +
                              ": nothing is provisioned; provision it first (provision() or up())");
    if constexpr (Resumable<C>) {
      if (act<K, Transition::resume>() == Did::done) return r.record(K, Transition::resume);
    } else {
      note<K>(Transition::resume, Outcome::not_implemented, "resume not implemented");
    }
    not_implemented<K>(Transition::resume, "it is provisioned but not running and cannot start itself");
  }

  template <std::size_t K> void suspend_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_running()) return note<K>(Transition::suspend, Outcome::already_done, "not running");
      if constexpr (Suspendable<C>) act<K, Transition::suspend>();
      else note<K>(Transition::suspend, Outcome::not_implemented, "suspend not implemented; use force to deprovision");
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
  }

  template <std::size_t K> void deprovision_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_provisioned()) return note<K>(Transition::deprovision, Outcome::already_done, "not provisioned");
      if constexpr (Deprovisionable<C>) act<K, Transition::deprovision>();
      else note<K>(Transition::deprovision, Outcome::not_implemented, "deprovision not implemented");
    } catch (...) {
      r.fail(K, Transition::deprovision);
    }
  }

  // Force down of one component. As a dependent or part of the stack (`target` false),
  // missing actions are skipped; as the target of down<C>, a missing deprovision is an error.
  template <std::size_t K> void force_step(Run& r, bool target) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    bool running = false;
    try {
      running = at<K>().is_running();
      if (running) {
        if constexpr (Suspendable<C>) act<K, Transition::suspend>();
        else note<K>(Transition::suspend, Outcome::not_implemented,
                     Deprovisionable<C> ? "suspend not implemented; deprovision stops it" : "suspend not implemented");
      }
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
    try {
      if (!at<K>().is_provisioned()) {
        if (!running) note<K>(Transition::deprovision, Outcome::already_done, "already deprovisioned");
        return;
      }
      if constexpr (Deprovisionable<C>) {
        if (act<K, Transition::deprovision>() == Did::done || !target) return;
      } else {
        note<K>(Transition::deprovision, Outcome::not_implemented, "deprovision not implemented");
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
    if (!run_phase<Phase::up_one, Needs<K>>(r, options.parallel, options.max_threads)) fail_up(r, options);
  }

  template <std::size_t K> void down_at(DownOptions options) {
    Run r;
    if (options.force) run_phase<Phase::force, Dependents<K>>(r, options.parallel, options.max_threads);
    else run_phase<Phase::suspend, Dependents<K>>(r, options.parallel, options.max_threads);
    if (options.force) force_step<K>(r, true);
    else suspend_target<K>(r);
    if (r.cause) raise(r, "down");
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
  template <Phase P, std::size_t K> bool step(Run& r) {
    if constexpr (P == Phase::provision || P == Phase::resume) {
      try {
        if constexpr (P == Phase::provision) provision_step<K>(r);
        else resume_step<K>(r, true);
        return true;
      } catch (...) {
        r.fail(K, P == Phase::provision ? Transition::provision : Transition::resume);
        return false;
      }
    } else if constexpr (P == Phase::up_one) {
      Transition t = Transition::resume;
      try {
        if (at<K>().is_running()) {
          note<K>(Transition::resume, Outcome::already_done, "already running");
          return true;
        }
        t = Transition::provision;
        provision_step<K>(r);
        t = Transition::resume;
        resume_step<K>(r, false);
        return true;
      } catch (...) {
        r.fail(K, t);
        return false;
      }
    } else if constexpr (P == Phase::suspend) {
      suspend_step<K>(r);
      return true;
    } else if constexpr (P == Phase::deprovision) {
      deprovision_step<K>(r);
      return true;
    } else {
      force_step<K>(r, false);
      return true;
    }
  }

  // Runs the phase's step for every component in Mask: a fold in (reverse)
  // dependency order, or the parallel scheduler.
  template <Phase P, class Mask> bool run_phase(Run& r, bool parallel, std::size_t max_threads) {
    constexpr bool reverse = P == Phase::suspend || P == Phase::deprovision || P == Phase::force;
    if (parallel) [[unlikely]] return run_parallel<P, Mask>(r, reverse, max_threads);
    bool ok = true;
    auto each = [&]<std::size_t K>() {
      if constexpr (Mask::value[K]) {
        if (ok) ok = step<P, K>(r);
      }
    };
    if constexpr (reverse) each_in_reverse(each);
    else each_in_order(each);
    return ok;
  }

  template <Phase P, class Mask> bool run_parallel(Run& r, bool reverse, std::size_t max_threads) {
    static constexpr auto table = []<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<bool (Stack::*)(Run&), size>{&Stack::step<P, I>...};
    }(std::make_index_sequence<size>{});
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
                    [&](std::size_t i) { return (this->*table[i])(r); });
    return !r.cause;
  }

  // ---- failure handling -----------------------------------------------------------

  template <Phase P> void primitive() {
    Run r;
    if (run_phase<P, All>(r, false, 0)) return;
    try {
      std::rethrow_exception(r.cause);
    } catch (const NotImplementedError&) {
      throw;
    } catch (const ProvisioningError&) {
      throw;
    } catch (...) {
      raise(r, to_string(r.cause_transition));
    }
  }
  template <Phase P> void exhaustive() {
    Run r;
    run_phase<P, All>(r, false, 0);
    if (r.cause) raise(r, P == Phase::suspend ? "suspend" : "deprovision");
  }

  // Undo what this call did, in reverse, then throw.
  [[noreturn]] void fail_up(Run& r, UpOptions options) {
    if (options.rollback) {
      for (std::size_t i = r.count; i-- > 0;) undo(r.done[i].index, r.done[i].transition, r);
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
  [[noreturn]] void raise(Run& r, std::string_view operation, bool rolled_back = false) {
    std::string m = "stackup: stack '" + name_ + "' " + std::string(operation) + " failed: ";
    const std::string_view role = roles[r.cause_index];
    detail::append(m, {role, " '", name_at(r.cause_index), "' failed to ", to_string(r.cause_transition), ": ",
                       r.failures.front().message});
    for (std::size_t i = 1; i < r.failures.size(); ++i) {
      const auto& f = r.failures[i];
      detail::append(m, {i == 1 ? "; also: " : "; ", f.role, " ", to_string(f.transition), ": ", f.message});
    }
    if (rolled_back) m += r.failures.size() == 1 ? " (rolled back)" : " (rollback incomplete)";
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
         "  -f, --force     down: also deprovision (remove what the components created)\n"
         "  -p, --parallel  up/down: act on independent components at the same time\n"
         "  --no-rollback   up: when an action fails, leave what was done in place\n"
         "  --tail N        logs: print only the last N lines\n"
         "  -h, --help      show this help\n";
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
          Event said = e;
          if (e.transition == Transition::suspend && !force)
            said.message = fmt::format("not implemented {} use --force to deprovision", dash);
          else if (e.transition == Transition::suspend)
            said.message = fmt::format("not implemented {} deprovision stops it", dash);
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
      if (up) {
        auto needs = Plan::closure_of(cmd.index);
        needs[cmd.index] = false;
        const std::string list = listed(needs, n);
        if (n) note(fmt::format("{} needs {}: {} first", role, list, n == 1 ? "it comes up" : "they come up"));
      } else {
        const std::string list = listed(Plan::dependents_of(cmd.index), n);
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
    err_ << fmt::format("{:{}}{}{}\n", "", 2 + 2 * depth, depth ? "caused by: " : "", e.what());
    if (depth >= 16) return; // a cycle of nested exceptions is not possible, but stay bounded
    try {
      std::rethrow_if_nested(e);
    } catch (const std::exception& nested) {
      print_chain(nested, depth + 1);
    } catch (...) {
      err_ << fmt::format("{:{}}caused by: unknown exception (not derived from std::exception)\n", "", 4 + 2 * depth);
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
      if (failures.size() <= 1) {
        if (tally.rolled_back == 0) err_ << "rollback: this command had changed nothing, so nothing was undone\n";
        else
          err_ << fmt::format("rollback: undid the {} action{} this command had done; the stack is as it was before\n",
                              tally.rolled_back, tally.rolled_back == 1 ? "" : "s");
        return;
      }
      err_ << fmt::format("rollback: undid {} action{}, but could not undo:\n", tally.rolled_back,
                          tally.rolled_back == 1 ? "" : "s");
      for (std::size_t i = 1; i < failures.size(); ++i)
        err_ << fmt::format("  - {} {}: {}\n", failures[i].role, failures[i].transition, failures[i].message);
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
#endif // C++20: add new headers above this line
// ---- end stackup/stackup.hpp ----
