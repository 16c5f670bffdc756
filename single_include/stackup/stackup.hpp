// stackup — bring a stack of infrastructure components up and down.
// Version 0.2.0. https://github.com/stackup-cpp/stackup
// SPDX-License-Identifier: MIT (the MIT licence)
//
// Single-header distribution: generated — do not edit, run tools/amalgamate.py
// (`python3 tools/amalgamate.py` from the source tree) after changing include/.
#pragma once

// ---- begin stackup/stackup.hpp ----
// stackup — the only include you need for stacks, components and their output.
// Opt-in beside it: <stackup/cli.hpp> (the command-line runner, cli::run) and
// <stackup/stack_file.hpp> (stack files; needs toml++).
// SPDX-License-Identifier: MIT


// ---- begin stackup/version.hpp ----
// stackup — bring a stack of infrastructure components up and down.
// SPDX-License-Identifier: MIT

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "stackup requires C++20: compile with -std=c++20 (or link the CMake target stackup::stackup, which sets cxx_std_20)."
#endif

#define STACKUP_VERSION_MAJOR 0
#define STACKUP_VERSION_MINOR 2
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


#include <concepts>
#include <cstddef>
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
  constexpr FixedString(const char (&s)[N]) noexcept { // NOLINT: implicit by design
    for (std::size_t i = 0; i < N; ++i) data[i] = s[i];
  }
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
// std::begin / std::size (from <string_view>) rather than <ranges>, which costs every includer:
// depends_on is an array, a std::array or a std::span of roles.
template <class T> concept has_depends_on = requires {
  std::begin(T::depends_on);
  std::size(T::depends_on);
};

/// A component that owns files says so with `owned_paths()`: a range (an array,
/// a std::vector, ...) of the directories it creates and removes, each absolute,
/// lexically normal and convertible to std::string_view. A stack refuses two
/// components whose owned paths are the same or lie one inside the other.
template <class T> concept has_owned_paths = requires(const T& c) {
  std::begin(c.owned_paths());
  std::end(c.owned_paths());
  { *std::begin(c.owned_paths()) } -> std::convertible_to<std::string_view>;
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
  if constexpr (has_depends_on<T>) return static_cast<std::size_t>(std::size(T::depends_on));
  else return 0;
}
template <class T> constexpr std::string_view dependency(std::size_t i) {
  if constexpr (has_depends_on<T>) return std::string_view(std::begin(T::depends_on)[static_cast<std::ptrdiff_t>(i)]);
  else return (void)i, std::string_view{};
}
} // namespace detail

namespace detail {
/// The role of a shipped component: the template argument (`LocalDaemon<"cache">`),
/// or, with none (`LocalDaemon<>`, `LocalDaemon{config}`), the role it is given at
/// run time by AnyComponent (`assign_role`). The second kind has no static `role`,
/// so it is not a Component of Stack<Cs...>, only of a DynamicStack.
template <FixedString Role, bool AtRunTime = (Role.size() == 0)> class RoleOf {
public:
  /// The component's role, from the template argument.
  static constexpr std::string_view role = Role;
  [[nodiscard]] constexpr std::string_view role_name() const noexcept { return role; }
};
template <FixedString Role> class RoleOf<Role, true> {
public:
  /// The role given at run time (empty until then).
  [[nodiscard]] std::string_view role_name() const noexcept { return role_; }
  /// Called by AnyComponent with the role the stack knows this component by.
  void assign_role(std::string_view role) { role_ = role; }

private:
  std::string role_;
};
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

/// An operation stopped early because a stop was requested (UpOptions::stop,
/// DownOptions::stop, or Ctrl-C under cli::run); the cause of its TransitionError.
class InterruptedError : public Error {
public:
  using Error::Error;
};

/// A stack that cannot exist: an empty or duplicate role, a dependency on a role
/// the stack lacks, a dependency cycle, an empty (moved-from) AnyComponent. The
/// message names the rule, the roles and the fix; thrown when a DynamicStack is
/// built (Stack<Cs...> reports the same rules at compile time). Also two
/// components owning overlapping paths (`owned_paths()`), for both kinds of
/// stack when they are built.
///
/// What went wrong is also kept as data (kind(), roles(), components(),
/// paths()), from which the message is written, so a caller need not parse it.
class StackDefinitionError : public Error {
public:
  /// Which rule the stack breaks.
  enum class Kind : unsigned char {
    other,              ///< built from a message alone (a StackFileError about the file itself)
    empty_component,    ///< a moved-from AnyComponent; roles() is empty
    empty_role,         ///< a component with an empty role; roles() is {""}
    duplicate_role,     ///< two components with one role; roles() is {role, role}
    unknown_dependency, ///< roles() is {role, dependency the stack does not hold}
    cycle,              ///< roles() is the cycle (see roles())
    overlapping_paths,  ///< roles() is {first owner, second owner}, paths() their paths
  };

  /// An error with this message and no data: kind() is Kind::other.
  explicit StackDefinitionError(const std::string& message) : Error(message) {}
  explicit StackDefinitionError(const char* message) : Error(message) {}

  /// An error about stack `stack`, its message written from the data. `components`:
  /// listing indices (0-based), one per entry of `roles` that names a component
  /// (the dependency of unknown_dependency names none). `held`: for
  /// unknown_dependency, the stack's roles as the message lists them.
  StackDefinitionError(std::string stack, Kind kind, std::vector<std::string> roles,
                       std::vector<std::size_t> components, std::vector<std::string> paths = {},
                       std::string_view held = {})
      : Error(message_of(stack, kind, roles, components, paths, held)), stack_(std::move(stack)), kind_(kind),
        roles_(std::move(roles)), components_(std::move(components)), paths_(std::move(paths)) {}

  /// Which rule the stack breaks; Kind::other when the error has no data.
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  /// The stack's name (empty for Kind::other).
  [[nodiscard]] const std::string& stack() const noexcept { return stack_; }
  /// The roles involved, in the order the message names them: for a cycle, the
  /// roles on it from the first in listing order, each depending on the next and
  /// the last on the first; for overlapping paths, the two owners in listing order.
  [[nodiscard]] const std::vector<std::string>& roles() const noexcept { return roles_; }
  /// Listing indices (0-based) of the components involved, in the order of
  /// roles(): one for empty_component, empty_role and unknown_dependency (the
  /// component whose depends_on names the missing role), two for duplicate_role
  /// and overlapping_paths, one per role on a cycle.
  [[nodiscard]] const std::vector<std::size_t>& components() const noexcept { return components_; }
  /// For overlapping_paths: the path each of roles() owns (without a trailing
  /// slash), the same path twice or one inside the other. Empty otherwise.
  [[nodiscard]] const std::vector<std::string>& paths() const noexcept { return paths_; }

protected:
  /// The data of `from` under another message (a StackFileError placing it in a file).
  StackDefinitionError(const std::string& message, const StackDefinitionError& from)
      : Error(message), stack_(from.stack_), kind_(from.kind_), roles_(from.roles_), components_(from.components_),
        paths_(from.paths_) {}

private:
  // The one place the messages are written.
  static std::string message_of(std::string_view stack, Kind kind, const std::vector<std::string>& roles,
                                const std::vector<std::size_t>& components, const std::vector<std::string>& paths,
                                std::string_view held);

  std::string stack_;
  Kind kind_ = Kind::other;
  std::vector<std::string> roles_;
  std::vector<std::size_t> components_;
  std::vector<std::string> paths_;
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
/// The parts one after another: one allocation, and cheaper to compile than a
/// chain of std::string operator+ (each of which is inlined where it is used).
inline std::string cat(std::initializer_list<std::string_view> parts) {
  std::size_t n = 0;
  for (const std::string_view p : parts) n += p.size();
  std::string s;
  s.reserve(n);
  for (const std::string_view p : parts) s.append(p);
  return s;
}
/// `message` without its leading "stackup: ", to quote it inside another message.
inline std::string_view unprefixed(std::string_view message) noexcept {
  constexpr std::string_view prefix = "stackup: ";
  if (message.substr(0, prefix.size()) == prefix) message.remove_prefix(prefix.size());
  return message;
}
} // namespace detail

inline std::string StackDefinitionError::message_of(std::string_view stack, Kind kind,
                                                    const std::vector<std::string>& roles,
                                                    const std::vector<std::size_t>& components,
                                                    const std::vector<std::string>& paths, std::string_view held) {
  const auto role = [&](std::size_t i) -> std::string_view { return i < roles.size() ? roles[i] : std::string_view(); };
  const auto number = [&](std::size_t i) { return i < components.size() ? std::to_string(components[i] + 1) : "?"; };
  const auto path = [&](std::size_t i) -> std::string_view { return i < paths.size() ? paths[i] : std::string_view(); };
  std::string problem;
  switch (kind) {
  case Kind::other:
    break;
  case Kind::empty_component:
    problem = detail::cat({"component ", number(0),
                           " is empty (a moved-from AnyComponent): put a component in it or leave it out"});
    break;
  case Kind::empty_role:
    problem = detail::cat({"component ", number(0), " has an empty role: give every component a role"});
    break;
  case Kind::duplicate_role:
    problem = detail::cat({"duplicate role '", role(0), "' (components ", number(0), " and ", number(1),
                           "); a stack holds one component per role: remove one of them or give it another role"});
    break;
  case Kind::unknown_dependency:
    problem = detail::cat({"'", role(0), "' depends on '", role(1), "', which the stack does not hold (roles: ", held,
                           "): add a component with that role or remove it from depends_on"});
    break;
  case Kind::cycle:
    problem = "dependency cycle: ";
    for (const std::string& r : roles) problem.append(r).append(" -> ");
    problem.append(role(0)).append("; remove one depends_on entry on the cycle");
    break;
  case Kind::overlapping_paths: {
    // Two distinct overlapping paths: the longer lies inside the shorter.
    const std::string_view how = path(0) == path(1)              ? " too"
                                 : path(1).size() > path(0).size() ? ", inside it"
                                                                   : ", which holds it";
    problem = detail::cat({"'", role(0), "' owns ", path(0), " and '", role(1), "' owns ", path(1), how,
                           ": one would remove or take over the other's files (a pid file, data); give each component "
                           "a directory of its own, not inside another's"});
    break;
  }
  }
  return detail::cat({"stackup: stack '", stack, "' cannot exist: ", problem});
}

} // namespace stackup
// ---- end stackup/errors.hpp ----

// ---- begin stackup/events.hpp ----
// stackup — what observers receive (Event) and what status() returns (ComponentStatus).
// SPDX-License-Identifier: MIT


#include <cstddef>
#include <functional>
// Event::elapsed is a std::chrono::nanoseconds. libstdc++ declares the durations
// and clocks apart from <chrono>'s calendar, time zones and I/O, which cost every
// includer more than the rest of the core together.
#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif
#include <optional>
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

/// How a component stopped running on its own (DESIGN §10): an exit status, a
/// signal, a liveness failure, or a restart that failed; and when. Exactly one
/// of `code`, `signal`, `liveness`, `error` is set.
struct Exit {
  std::optional<int> code{};   ///< it exited with this status
  std::optional<int> signal{}; ///< a signal killed it
  std::string liveness{};      ///< its liveness probe failed: what the probe saw
  std::string error{};         ///< a restart of it failed: why
  std::chrono::system_clock::time_point at{};
  /// Whether the policy `on-failure` counts it as a failure (all but exit status 0).
  [[nodiscard]] bool failed() const noexcept { return !code || *code != 0; }
};

/// What `<role> logs` and `stack logs` ask of a component whose log an engine
/// keeps (its optional `log_command()`, DESIGN §11): how much of it, and whether
/// to follow it.
struct LogRequest {
  std::optional<std::size_t> tail{}; ///< its last N lines; all of it when empty
  bool follow = false;               ///< go on with what is written, until the reader stops
  /// Only what was written from then on (a follow taken up again after the
  /// engine's reader ended); empty: from the start, or the last `tail` lines.
  std::optional<std::chrono::system_clock::time_point> since{};
};

/// Where supervision stands for one component.
enum class SupervisionState : unsigned char {
  none,        ///< not supervised, or no supervisor is running
  watching,    ///< running, watched for an exit
  backing_off, ///< exited; waits for its back-off (or its dependencies) to restart it
  failed,      ///< gave up: too many restarts within `within`, until its next up
};
/// As in `status --json`: "none", "watching", "backing-off", "failed".
constexpr std::string_view to_string(SupervisionState s) noexcept {
  switch (s) {
  case SupervisionState::none: return "none";
  case SupervisionState::watching: return "watching";
  case SupervisionState::backing_off: return "backing-off";
  case SupervisionState::failed: return "failed";
  }
  return "?";
}

/// One row of `Stack::status()`.
struct ComponentStatus {
  std::string_view role;
  std::string_view name;
  State state{};
  std::string_view flavor; ///< the component's `flavor` (e.g. "local_daemon"), or "custom"
  std::string detail;      ///< what the component's `detail()` offers (pid, port, path), or empty
  /// How it last stopped running on its own since its last start (a component
  /// with `exit_status()`), or what its supervisor recorded; empty otherwise
  /// and after a down.
  std::optional<Exit> exit{};
  unsigned restarts = 0; ///< restarts by its supervisor since its last up (0 when none is running)
  SupervisionState supervision = SupervisionState::none; ///< as its supervisor reports it
  /// False when it is provisioned and its `is_current()` says its settings
  /// changed since (DESIGN §11): the next up updates or recreates it. True for a
  /// component without `is_current()` and for one not provisioned.
  bool current = true;
};

/// What a supervisor (stackup::supervise) reports, besides the ordinary events
/// of the actions it runs: an exit, a restart planned, a give-up, a liveness failure.
struct SupervisionEvent {
  enum class Kind : unsigned char {
    exited,     ///< it stopped running on its own (`exit` says how)
    restarting, ///< it will be restarted after `delay`; `restarts` is this restart's number
    failed,     ///< given up: `restarts` restarts within the policy's `within`
    unhealthy,  ///< its liveness probe failed (`message`); `restarts` counts failures in a row here
  };
  std::string_view stack;
  std::string_view role;
  std::string_view component;
  Kind kind{};
  std::optional<Exit> exit{};
  std::chrono::milliseconds delay{};
  unsigned restarts = 0;
  std::string message{};
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

// ---- begin stackup/options.hpp ----
// stackup — the options of up() and down(), shared by every kind of stack.
// SPDX-License-Identifier: MIT


#include <concepts>
#include <cstddef>

namespace stackup {

/// What `UpOptions::stop` and `DownOptions::stop` hold: a pointer to a stop token
/// (`.stop = &token`: a std::stop_token, or anything with `stop_requested()` and
/// `stop_possible()`; it must outlive the call), or nothing. The token is reached
/// through one function per token type, so the core headers need not include
/// <stop_token> (with it come <atomic>, <semaphore> and the thread support).
class StopTokenRef {
public:
  constexpr StopTokenRef() noexcept = default;
  constexpr StopTokenRef(std::nullptr_t) noexcept {} // NOLINT: implicit by design (`.stop = nullptr`)
  template <class Token>
    requires requires(const Token& t) {
      { t.stop_requested() } -> std::convertible_to<bool>;
      { t.stop_possible() } -> std::convertible_to<bool>;
    }
  StopTokenRef(const Token* token) noexcept // NOLINT: implicit by design (`.stop = &token`)
      : token_(token), query_(token ? &query<Token> : nullptr) {}

  /// A token is held.
  explicit operator bool() const noexcept { return token_ != nullptr; }
  /// A token is held and a stop was requested on it.
  [[nodiscard]] bool stop_requested() const noexcept { return token_ && query_(token_, true); }
  /// A token is held and a stop can still be requested on it.
  [[nodiscard]] bool stop_possible() const noexcept { return token_ && query_(token_, false); }

private:
  template <class Token> static bool query(const void* t, bool requested) noexcept {
    const Token& token = *static_cast<const Token*>(t);
    return requested ? static_cast<bool>(token.stop_requested()) : static_cast<bool>(token.stop_possible());
  }
  const void* token_ = nullptr;
  bool (*query_)(const void*, bool) noexcept = nullptr;
};

/// Options of `up`. Members in this order, for designated initialisers.
struct UpOptions {
  bool rollback = true;  ///< on failure, undo what this call did, in reverse
  bool parallel = false; ///< run each action as soon as its dependencies are done, on several threads
  std::size_t max_threads = 0; ///< with `parallel`: at most this many threads (0: one per ready component)
  /// A stop token to watch, e.g. `.stop = &token` (it must outlive the call).
  /// When a stop is requested: no further action starts, stackup's own waits
  /// (readiness, commands) give up, and what this call did is rolled back as for
  /// a failure (unless `.rollback = false`); the failure's cause is an
  /// InterruptedError. An action already running when the stop comes may finish:
  /// if it was the last one, up has succeeded. Null (the default): nothing is
  /// checked, nothing is paid.
  StopTokenRef stop = nullptr;
};
/// What `down(role)` does with the role's running dependents (`DownOptions::dependents`).
enum class Dependents : unsigned char {
  /// Bring them down first, then the role (ZenML's `zenml <role> down`).
  stop,
  /// Leave them as they are: the role alone goes down, its dependents keep
  /// running on a dependency that is gone. For restarting or stopping one
  /// component (a supervisor's restart step). With `.force` the role is also
  /// deprovisioned under its running dependents: allowed, the caller's choice.
  keep,
};

/// Options of `down`. Members in this order, for designated initialisers.
struct DownOptions {
  bool force = false;    ///< also deprovision (zenml stack down --force)
  bool parallel = false; ///< run each action as soon as its dependents are done, on several threads
  std::size_t max_threads = 0; ///< with `parallel`: at most this many threads (0: one per ready component)
  /// A stop token to watch (`.stop = &token`; it must outlive the call). When a
  /// stop is requested: the action in flight finishes, no further action starts;
  /// TransitionError (cause: InterruptedError) names what was left as it was.
  StopTokenRef stop = nullptr;
  /// `down(role)` only: stop the role's dependents first (the default), or keep
  /// them as they are and act on the role alone. `down()` of the whole stack
  /// ignores it: every component goes down.
  Dependents dependents = Dependents::stop;
};

namespace detail {
// The stop token of the up running a forward action on this thread, if any.
inline thread_local const StopTokenRef* current_stop = nullptr;
} // namespace detail

/// True when the operation that runs the calling component's action was asked
/// to stop (UpOptions::stop, or Ctrl-C under cli::run). Only provision and
/// resume during an up see it (undo and down actions are left to finish): a
/// long action may poll it and give up early by throwing.
inline bool stop_requested() noexcept { return detail::current_stop && detail::current_stop->stop_requested(); }

} // namespace stackup
// ---- end stackup/options.hpp ----

// ---- begin stackup/stack.hpp ----
// stackup — Stack<Components...>: a stack whose components are known when
// compiling. Its checks and action order are settled at compile time; its
// operations are those of the shared engine (detail/engine.hpp), with a quiet
// path for up() and down() that the compiler turns into the checks and calls a
// person would write (no virtual call, no heap).
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/diagnostics.hpp ----
// stackup — compile-time diagnostics of Stack<Cs...> (internal): reporting
// templates whose names and arguments carry the rule, the role and the types.
// SPDX-License-Identifier: MIT


#include <cstddef>
#include <string_view>
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

template <class Role, class... StackComponents> struct no_such_role {
  static_assert(always_false<Role>,
                "stackup: the Stack has no component with this role: check the spelling or add the component");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

template <class Role, class ComponentType> struct empty_role {
  static_assert(always_false<ComponentType>,
                "stackup: a component of this Stack has an empty role: give it `static constexpr std::string_view role = \"...\";`");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

} // namespace stackup::detail
// ---- end stackup/detail/diagnostics.hpp ----

// ---- begin stackup/detail/engine.hpp ----
// stackup — the transition engine (internal): ZenML's rules (DESIGN §3, §4) —
// steps, rollback, exhaustive down, per-component operations, events, errors —
// written once for every kind of stack. Stack<Cs...> and DynamicStack only say
// where their components are (a Table); the rules of one step are templates over
// how the step reaches its component (the component itself: calls the compiler
// can inline; an Indirect: through the component type's Ops, with events).
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/plan.hpp ----
// stackup — the dependency plan of a stack (internal): checks and action order,
// one algorithm for compile time (Stack<Cs...>) and run time (DynamicStack).
// SPDX-License-Identifier: MIT

#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

namespace stackup::detail {

/// Why a stack cannot exist.
enum class PlanError : unsigned char { none, empty_role, duplicate, missing, cycle };

/// The first problem of a stack, in listing order: `empty_role` a; `duplicate`
/// components a < b; `missing` entry b of a's depends_on; `cycle` a lies on one.
struct PlanProblem {
  PlanError error = PlanError::none;
  std::size_t a = 0, b = 0;
};

/// Working memory of compute_plan, given by the caller (arrays at compile time,
/// vectors at run time): n = components, e = dependency entries.
struct PlanScratch {
  std::span<std::size_t> sorted;      // n: indices sorted by role
  std::span<std::size_t> waiting;     // n: unplaced dependencies; after a cycle, > 0 exactly for unplaced ones
  std::span<std::size_t> next_first;  // n + 1: dependents of i: next[next_first[i] .. next_first[i+1])
  std::span<std::size_t> next;        // e
  std::span<std::size_t> heap;        // n: ready components, lowest index first
};

// Binary heaps of indices, written here because <algorithm> (with C++20's ranges
// algorithms) would cost every includer of the core more than the rest of the plan.
// `before(x, y)`: x sinks below y (a max-heap for `<`).
template <class Before> constexpr void sift_down(std::span<std::size_t> h, std::size_t i, std::size_t n, Before before) {
  for (std::size_t c = 2 * i + 1; c < n; i = c, c = 2 * i + 1) {
    if (c + 1 < n && before(h[c], h[c + 1])) ++c;
    if (!before(h[i], h[c])) return;
    std::swap(h[i], h[c]);
  }
}
template <class Before> constexpr void sift_up(std::span<std::size_t> h, std::size_t i, Before before) {
  for (std::size_t parent = (i - 1) / 2; i > 0 && before(h[parent], h[i]); i = parent, parent = (i - 1) / 2)
    std::swap(h[i], h[parent]);
}
/// Sorts by a strict total order (heap sort: O(N log N), usable in constant expressions).
template <class Less> constexpr void heap_sort(std::span<std::size_t> v, Less less) {
  const std::size_t n = v.size();
  for (std::size_t i = n / 2; i-- > 0;) sift_down(v, i, n, less);
  for (std::size_t end = n; end-- > 1;) {
    std::swap(v[0], v[end]);
    sift_down(v, 0, end, less);
  }
}

/// After compute_plan found a cycle: the next component on it after `at`.
constexpr std::size_t cycle_next(std::size_t at, std::span<const std::size_t> first, std::span<const std::size_t> dep,
                                 const PlanScratch& s) {
  for (std::size_t e = first[at]; e < first[at + 1]; ++e)
    if (s.waiting[dep[e]] != 0) return dep[e];
  return at; // not reached: an unplaced component has an unplaced dependency
}

/// Checks a stack and computes its action order: topological by `depends_on`,
/// ties by listing order (the lowest index whose dependencies are placed goes
/// next). `first`/`names`: the dependency names of i are names[first[i] ..
/// first[i+1]). Writes `dep` (names resolved to indices) and `order`.
/// O(N log N + E log N) comparisons of roles; usable in constant expressions.
constexpr PlanProblem compute_plan(std::span<const std::string_view> roles, std::span<const std::size_t> first,
                                   std::span<const std::string_view> names, std::span<std::size_t> dep,
                                   std::span<std::size_t> order, PlanScratch s) {
  const std::size_t n = roles.size();
  for (std::size_t i = 0; i < n; ++i)
    if (roles[i].empty()) return {PlanError::empty_role, i, 0};

  for (std::size_t i = 0; i < n; ++i) s.sorted[i] = i;
  heap_sort(s.sorted, [&](std::size_t x, std::size_t y) { return roles[x] != roles[y] ? roles[x] < roles[y] : x < y; });
  // Equal roles are adjacent, lowest index first: report the pair whose first index is lowest.
  PlanProblem dup{PlanError::none, n, n};
  for (std::size_t j = 0; j + 1 < n; ++j)
    if (roles[s.sorted[j]] == roles[s.sorted[j + 1]] && (j == 0 || roles[s.sorted[j - 1]] != roles[s.sorted[j]]) &&
        s.sorted[j] < dup.a)
      dup = {PlanError::duplicate, s.sorted[j], s.sorted[j + 1]};
  if (dup.error != PlanError::none) return dup;

  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) {
      std::size_t lo = 0, hi = n; // binary search: the first role not below names[e]
      while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (roles[s.sorted[mid]] < names[e]) lo = mid + 1;
        else hi = mid;
      }
      if (lo == n || roles[s.sorted[lo]] != names[e]) return {PlanError::missing, i, e - first[i]};
      dep[e] = s.sorted[lo];
    }

  // Kahn's algorithm with a min-heap of ready indices.
  for (std::size_t i = 0; i <= n; ++i) s.next_first[i] = 0;
  for (std::size_t i = 0; i < n; ++i) {
    s.waiting[i] = first[i + 1] - first[i];
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) ++s.next_first[dep[e] + 1];
  }
  for (std::size_t i = 0; i < n; ++i) s.next_first[i + 1] += s.next_first[i];
  for (std::size_t i = 0; i < n; ++i) s.heap[i] = s.next_first[i]; // fill positions
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) s.next[s.heap[dep[e]]++] = i;
  std::size_t ready = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (s.waiting[i] == 0) s.heap[ready++] = i; // ascending: already a min-heap
  const auto later = [](std::size_t x, std::size_t y) { return x > y; }; // a min-heap: lowest index on top
  std::size_t placed = 0;
  while (ready > 0) {
    const std::size_t i = s.heap[0];
    s.heap[0] = s.heap[--ready];
    sift_down(s.heap, 0, ready, later);
    order[placed++] = i;
    for (std::size_t x = s.next_first[i]; x < s.next_first[i + 1]; ++x)
      if (--s.waiting[s.next[x]] == 0) {
        s.heap[ready] = s.next[x];
        sift_up(s.heap, ready++, later);
      }
  }
  if (placed == n) return {};
  // Every unplaced component waits for an unplaced one: n steps along unplaced
  // dependencies from the first of them end on a cycle.
  std::size_t at = 0;
  while (s.waiting[at] == 0) ++at;
  for (std::size_t step = 0; step < n; ++step) at = cycle_next(at, first, dep, s);
  return {PlanError::cycle, at, 0};
}

// The marking rules of up_one and down_one, which StackView's plans also follow
// (on marks of their own, of any unsigned type); `marks` has one per component.

/// Marks (bit `bit` of `marks`) component k and everything it needs, transitively.
template <class Mark>
void mark_closure(std::size_t k, std::span<const std::size_t> order, std::span<const std::size_t> first,
                  std::span<const std::size_t> dep, Mark* marks, Mark bit) {
  marks[k] |= bit;
  for (std::size_t n = order.size(); n-- > 0;) {
    const std::size_t i = order[n];
    if (marks[i] & bit)
      for (std::size_t e = first[i]; e < first[i + 1]; ++e) marks[dep[e]] |= bit;
  }
}

/// Marks (bit `bit` of `marks`) every component that needs k, transitively (k excluded).
template <class Mark>
void mark_dependents(std::size_t k, std::span<const std::size_t> order, std::span<const std::size_t> first,
                     std::span<const std::size_t> dep, Mark* marks, Mark bit) {
  for (const std::size_t i : order)
    for (std::size_t e = first[i]; e < first[i + 1]; ++e)
      if (dep[e] == k || (marks[dep[e]] & bit)) {
        marks[i] |= bit;
        break;
      }
}

} // namespace stackup::detail
// ---- end stackup/detail/plan.hpp ----

// ---- begin stackup/detail/round_hook.hpp ----
// stackup — how the engine opens a query round (detail/query_round.hpp) for a
// walk of a whole stack without putting <atomic> in every stack's includes:
// query_round.hpp, which the components that answer from a round include, sets
// the hooks; with no such component compiled in, a walk opens nothing. Not public API.
// SPDX-License-Identifier: MIT

namespace stackup::detail {

struct RoundHooks {
  static inline void (*open)() noexcept = nullptr;
  static inline void (*close)() noexcept = nullptr;
};

/// A query round for its lifetime: one per walk of a whole stack (status, up,
/// down, the primitives). A query of one component alone never opens one.
class WalkRound {
public:
  WalkRound() noexcept : close_(RoundHooks::close) {
    if (close_) RoundHooks::open();
  }
  ~WalkRound() {
    if (close_) close_();
  }
  WalkRound(const WalkRound&) = delete;
  WalkRound& operator=(const WalkRound&) = delete;

private:
  void (*close_)() noexcept; // read once: the round closed is the round opened
};

} // namespace stackup::detail
// ---- end stackup/detail/round_hook.hpp ----

// ---- begin stackup/stack_view.hpp ----
// stackup — StackView: a stack's public, read-only face (DESIGN §12). Both kinds
// of stack give one (`stack.view()`); whatever is built on a stack (the command
// line, stack files, a host's dashboard) reads the stack through it instead of
// reaching inside. Its members are defined beside the engine, which every kind
// of stack includes; this header stays light.
// SPDX-License-Identifier: MIT


// ---- begin stackup/restart.hpp ----
// stackup — what keeps a component running (DESIGN §10): its restart policy, its
// liveness probe, and what it does when a dependency restarts. Config types only;
// the loop that honours them is stackup::supervise (<stackup/supervise.hpp>).
// SPDX-License-Identifier: MIT


// Durations only: see events.hpp for why not <chrono>.
#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stackup {

/// When a component that stopped running on its own is started again.
enum class Restart : unsigned char {
  no,         ///< never: the exit is only recorded (the default)
  on_failure, ///< after a non-zero exit, a signal or a liveness failure
  always,     ///< after any exit
};

/// A component's restart policy (stack files: `restart = "on-failure"` or a table
/// with these keys). Members in this order, for designated initialisers.
struct RestartPolicy {
  Restart policy = Restart::no;
  /// The delay before the first restart; each further one doubles it.
  std::chrono::milliseconds backoff = std::chrono::milliseconds(100);
  /// The doubling stops here.
  std::chrono::milliseconds max_backoff = std::chrono::seconds(30);
  /// Running this long counts as stable: the next restart waits `backoff` again.
  std::chrono::milliseconds reset_after = std::chrono::seconds(10);
  /// At most this many restarts within `within`, then the component is failed
  /// (no more restarts until its next up). Unset: no limit for `always`, 5 for
  /// `on_failure`. Zero: no limit.
  std::optional<unsigned> max{};
  std::chrono::milliseconds within = std::chrono::minutes(1);
};

/// A liveness probe: checked every `period` once the component is ready;
/// `failures` failures in a row count as an exit (the component is suspended,
/// then its restart policy decides). Stack files: `liveness = { http = 8090,
/// path = "/health" }`, `{ tcp = 6379 }` or `{ exec = "shell command" }`.
struct Liveness {
  enum class Kind : unsigned char {
    none, ///< no probe (the default)
    tcp,  ///< a TCP connect to 127.0.0.1:`port` succeeds
    http, ///< GET `path` on 127.0.0.1:`port` answers 2xx or 3xx
    exec, ///< `/bin/sh -c exec` exits 0
  };
  Kind kind = Kind::none;
  std::uint16_t port = 0;    ///< tcp, http
  std::string path = "/";    ///< http
  std::string exec{};        ///< exec: the shell command
  std::chrono::milliseconds period = std::chrono::seconds(5);
  std::chrono::milliseconds timeout = std::chrono::seconds(1); ///< one probe's limit
  unsigned failures = 3;     ///< failures in a row that count as an exit
};

/// What a component does while one of its dependencies restarts.
enum class OnDependencyRestart : unsigned char {
  ignore,  ///< keep running (the default)
  restart, ///< suspended before the dependency restarts, resumed once it is ready again
};

/// Everything supervision reads of one component. Shipped components return
/// it from `supervision()`, built from their config's `restart`, `liveness` and
/// `on_dependency_restart`; a component without that member has the defaults.
struct SupervisionConfig {
  RestartPolicy restart{};
  Liveness liveness{};
  OnDependencyRestart on_dependency_restart = OnDependencyRestart::ignore;
};

/// Stack-file spelling: "no", "on-failure", "always".
constexpr std::string_view to_string(Restart r) noexcept {
  switch (r) {
  case Restart::no: return "no";
  case Restart::on_failure: return "on-failure";
  case Restart::always: return "always";
  }
  return "?";
}
/// Stack-file spelling: "ignore", "restart".
constexpr std::string_view to_string(OnDependencyRestart r) noexcept {
  return r == OnDependencyRestart::restart ? "restart" : "ignore";
}

/// The `max` in force: the policy's own, else its default (5 for on_failure,
/// none for always); 0 means no limit.
constexpr unsigned max_restarts(const RestartPolicy& p) noexcept {
  if (p.max) return *p.max;
  return p.policy == Restart::on_failure ? 5U : 0U;
}

} // namespace stackup
// ---- end stackup/restart.hpp ----

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup {

namespace detail {
struct Table;
} // namespace detail

/// A range of roles (`std::string_view`), as a StackView hands them out: sized,
/// random access, valid while the stack lives. It either reads the stack's own
/// arrays (roles, order, dependencies: nothing is copied) or holds the positions
/// it was computed from (dependents, plans: one allocation).
class RoleRange {
public:
  /// Random access, by its operations (C++20's iterator concepts).
  class iterator {
  public:
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    std::string_view operator*() const { return (*range_)[i_]; }
    std::string_view operator[](difference_type n) const { return (*range_)[i_ + static_cast<std::size_t>(n)]; }
    iterator& operator++() { return ++i_, *this; }
    iterator operator++(int) { return {range_, i_++}; }
    iterator& operator--() { return --i_, *this; }
    iterator operator--(int) { return {range_, i_--}; }
    iterator& operator+=(difference_type n) { return i_ += static_cast<std::size_t>(n), *this; }
    iterator& operator-=(difference_type n) { return i_ -= static_cast<std::size_t>(n), *this; }
    friend iterator operator+(iterator a, difference_type n) { return a += n; }
    friend iterator operator+(difference_type n, iterator a) { return a += n; }
    friend iterator operator-(iterator a, difference_type n) { return a -= n; }
    friend difference_type operator-(const iterator& a, const iterator& b) {
      return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.i_ == b.i_; }
    friend bool operator<(const iterator& a, const iterator& b) { return a.i_ < b.i_; }
    friend bool operator>(const iterator& a, const iterator& b) { return a.i_ > b.i_; }
    friend bool operator<=(const iterator& a, const iterator& b) { return a.i_ <= b.i_; }
    friend bool operator>=(const iterator& a, const iterator& b) { return a.i_ >= b.i_; }

  private:
    friend class RoleRange;
    iterator(const RoleRange* r, std::size_t i) : range_(r), i_(i) {}
    const RoleRange* range_ = nullptr;
    std::size_t i_ = 0;
  };

  RoleRange() = default;
  RoleRange(const RoleRange& other) : roles_(other.roles_), index_(other.index_), size_(other.size_) {
    if (other.own_) index_ = own_ = copy(other.index_, size_);
  }
  RoleRange(RoleRange&& other) noexcept
      : roles_(other.roles_), index_(other.index_), size_(other.size_), own_(other.own_) {
    other.own_ = nullptr;
    other.index_ = nullptr;
    other.size_ = 0;
  }
  RoleRange& operator=(RoleRange other) noexcept {
    std::swap(roles_, other.roles_);
    std::swap(index_, other.index_);
    std::swap(size_, other.size_);
    std::swap(own_, other.own_);
    return *this;
  }
  ~RoleRange() { delete[] own_; }

  [[nodiscard]] iterator begin() const noexcept { return {this, 0}; }
  [[nodiscard]] iterator end() const noexcept { return {this, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// The i-th role (i < size()).
  [[nodiscard]] std::string_view operator[](std::size_t i) const noexcept { return roles_[index_ ? index_[i] : i]; }
  [[nodiscard]] std::string_view front() const noexcept { return (*this)[0]; }
  [[nodiscard]] std::string_view back() const noexcept { return (*this)[size_ - 1]; }

private:
  friend class StackView;
  // roles[index[i]] (index null: roles[i]); `own`, when given, is the block
  // (allocated with new[]) that index points into, which the range now owns.
  RoleRange(const std::string_view* roles, const std::size_t* index, std::size_t size,
            std::size_t* own = nullptr) noexcept
      : roles_(roles), index_(index), size_(size), own_(own) {}
  static std::size_t* copy(const std::size_t* from, std::size_t n) {
    auto* to = new std::size_t[n == 0 ? 1 : n];
    for (std::size_t i = 0; i < n; ++i) to[i] = from[i];
    return to;
  }

  // A block of its own rather than a std::vector: this header is in every
  // stack's includes, and each instantiation it makes costs every includer.
  const std::string_view* roles_ = nullptr;
  const std::size_t* index_ = nullptr;
  std::size_t size_ = 0;
  std::size_t* own_ = nullptr;
};

/// A stack's public, read-only face: `stack.view()` on Stack<Cs...> and
/// DynamicStack. Cheap to copy (one pointer); valid while the stack lives (and,
/// for a DynamicStack, until it is moved from). Every range is a RoleRange of
/// `std::string_view` roles. A role the stack does not hold throws
/// UnknownComponentError naming the valid roles.
class StackView {
public:
  /// Built by the stacks' `view()`.
  explicit StackView(const detail::Table& table) noexcept : t_(&table) {}

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept;
  /// Number of components.
  [[nodiscard]] std::size_t size() const noexcept;
  /// The roles in declaration order (template arguments, or the order given).
  [[nodiscard]] RoleRange roles() const noexcept;
  /// The roles in the order `up` acts on them; `down` acts in the reverse.
  [[nodiscard]] RoleRange order() const noexcept;
  /// Position of `role` in roles(), or size() when the stack does not hold it.
  [[nodiscard]] std::size_t find(std::string_view role) const noexcept;
  /// The stack holds a component with that role.
  [[nodiscard]] bool contains(std::string_view role) const noexcept { return find(role) != size(); }

  /// What `role` depends on directly, in its declaration order (`depends_on`).
  [[nodiscard]] RoleRange dependencies(std::string_view role) const;
  /// What depends on `role` directly, in declaration order.
  [[nodiscard]] RoleRange dependents(std::string_view role) const;

  /// One row per component, in declaration order; as `stack.status()`. Changes nothing.
  [[nodiscard]] std::vector<ComponentStatus> status() const;
  /// The row of one component, as in status().
  [[nodiscard]] ComponentStatus status(std::string_view role) const;
  /// One component's state (its two queries; no `detail()`).
  [[nodiscard]] State state(std::string_view role) const;

  /// What `up()` visits, in the order it acts: every role (as order()).
  [[nodiscard]] RoleRange plan_up() const noexcept;
  /// What `up(role)` visits, in the order it acts: its dependencies (transitively), then it.
  [[nodiscard]] RoleRange plan_up(std::string_view role) const;
  /// What `down()` visits, in the order it acts: every role, order() reversed.
  [[nodiscard]] RoleRange plan_down() const;
  /// What `down(role)` visits, in the order it acts: its dependents (transitively), then it.
  /// This is the `Dependents::stop` plan; with `Dependents::keep`, down(role) visits the role alone.
  [[nodiscard]] RoleRange plan_down(std::string_view role) const;

  /// The component's name (`name()`, else its role).
  [[nodiscard]] std::string_view component_name(std::string_view role) const;
  /// The component's flavour (`flavor`, e.g. "local_daemon"; "custom" when it declares none).
  [[nodiscard]] std::string_view flavor(std::string_view role) const;
  /// The file the component writes its log to (`log_file()`); empty when it keeps none.
  [[nodiscard]] std::string log_file(std::string_view role) const;
  /// The program (argv) whose output is the component's log as its engine keeps
  /// it (its `log_command()`: a container's `podman logs`), for `request`; empty
  /// when it has none. A component has a log file, a log command, or neither.
  [[nodiscard]] std::vector<std::string> log_command(std::string_view role, const LogRequest& request) const;
  /// Whether the component has `log_command()` (asking for the command itself may ask its engine).
  [[nodiscard]] bool has_log_command(std::string_view role) const;

  /// A new descriptor (close it) that becomes readable when the component stops
  /// running on its own (its `exit_fd()`: a LocalDaemon's is a pidfd); -1 when
  /// it cannot tell, or is not running: then poll `state(role)`.
  [[nodiscard]] int exit_fd(std::string_view role) const;
  /// How the component last stopped running on its own since its last start
  /// (its `exit_status()`); empty when it has not, or cannot tell.
  [[nodiscard]] std::optional<Exit> exit_status(std::string_view role) const;
  /// Whether the component has `exit_status()`: then, not running with no exit
  /// to report, it was brought down (a supervisor does not restart it).
  [[nodiscard]] bool reports_exits(std::string_view role) const;
  /// False when the component is provisioned and its `is_current()` says its
  /// settings changed since (the next up updates or recreates it); true without
  /// that member and when nothing is provisioned. As `status(role).current`.
  [[nodiscard]] bool is_current(std::string_view role) const;
  /// Stops the component at once, without grace (its optional `void kill()
  /// const`): what a suspend would stop is killed now. Safe to call from another
  /// thread while a suspend of the same component is in progress (a down that
  /// waits out its stop timeout). False, doing nothing, when it has no kill().
  bool kill(std::string_view role) const;
  /// Its restart policy, liveness probe and on_dependency_restart (its
  /// `supervision()`; the defaults, `Restart::no`, without one).
  [[nodiscard]] SupervisionConfig supervision(std::string_view role) const;

private:
  [[nodiscard]] std::size_t at(std::string_view role) const; // its position, else UnknownComponentError
  const detail::Table* t_;
};

} // namespace stackup
// ---- end stackup/stack_view.hpp ----

#include <cstddef>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

// stackup — internal macros; every header that includes this includes
// macro_unscope.hpp at its end, so none of them leaks into user code.
// SPDX-License-Identifier: MIT
// (no include guard: each header defines the macros again for itself)

// Forces inlining where a measurement shows it pays: the steps of Stack<Cs...>'s
// quiet path, so an operation compiles to the checks and calls a person would write.
// Not without optimisation (-O0): there it buys no speed and costs compile time
// (a 64-component stack compiled about twice as long).
#if (defined(__GNUC__) || defined(__clang__)) && defined(__OPTIMIZE__)
#define STACKUP_ALWAYS_INLINE [[gnu::always_inline]] inline
#else
#define STACKUP_ALWAYS_INLINE inline
#endif
// Marks what runs only when something fails, so it stays out of the inlined path.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_COLD [[gnu::cold, gnu::noinline]]
#else
#define STACKUP_COLD
#endif
// Stack<Cs...>'s up() and down() inline their steps (the checks and calls a person
// would write) only when optimising: without optimisation that buys no speed, and
// the engine's walk through the per-type table, the same rules, compiles far faster.
// (Files of one program built at different levels hold two bodies of up()/down();
// the linker keeps one, and either does the same.)
#if defined(__OPTIMIZE__)
#define STACKUP_INLINE_STEPS 1
#else
#define STACKUP_INLINE_STEPS 0
#endif

namespace stackup::detail {

using Clock = std::chrono::steady_clock;

enum class Did : unsigned char { done, not_implemented };
/// One component's part of an operation.
enum class Phase : unsigned char { provision, resume, up_one, suspend, deprovision, force };
inline constexpr std::size_t phase_count = 6;
/// What a failed up undoes: the whole stack (every resume, then every provision)
/// or one component and its dependencies (one component at a time).
enum class Undo : unsigned char { stack, per_component };

// Bits of a component's byte in Run::marks.
inline constexpr unsigned char did_provision = 1; // this operation provisioned it
inline constexpr unsigned char did_resume = 2;    // this operation resumed it
inline constexpr unsigned char in_scope = 4;      // a per-component operation acts on it

// ---- what an action may be asked of a type -------------------------------------------

template <class T> concept has_provision = requires(T& c) { c.provision(); };
template <class T> concept has_resume = requires(T& c) { c.resume(); };
template <class T> concept has_suspend = requires(T& c) { c.suspend(); };
template <class T> concept has_deprovision = requires(T& c) { c.deprovision(); };
/// Drift (DESIGN §11): `bool is_current() const` says whether what is provisioned
/// matches the component's settings (default: it does); `void update()` brings a
/// provisioned component up to date in place (without it, up recreates it).
template <class T> concept has_is_current = requires(const T& c) {
  { c.is_current() } -> boolean_testable;
};
template <class T> concept has_update = requires(T& c) { c.update(); };
/// The two queries: all a type needs to be wrapped with a role given at run time.
template <class T> concept has_queries = std::is_class_v<T> && has_is_provisioned<T> && has_is_running<T>;

// The transition is a template argument wherever a component type is known, so
// that each instantiation holds only its own action (cheaper to compile, at -O0
// too, than a run-time choice the optimiser must prune).
template <class T, Transition X> inline constexpr bool has_action =
    X == Transition::provision ? has_provision<T>
    : X == Transition::resume  ? has_resume<T>
    : X == Transition::suspend ? has_suspend<T>
                               : has_deprovision<T>;
/// The bit of transition t in Ops::actions.
inline constexpr unsigned char action_bit(Transition t) noexcept { return static_cast<unsigned char>(1u << static_cast<int>(t)); }
/// Ops::actions bits beyond the four actions: the type has is_current(), update().
inline constexpr unsigned char tells_current = 16, updates = 32;
template <class C> inline constexpr unsigned char actions_of =
    (has_provision<C> ? action_bit(Transition::provision) : 0) | (has_resume<C> ? action_bit(Transition::resume) : 0) |
    (has_suspend<C> ? action_bit(Transition::suspend) : 0) | (has_deprovision<C> ? action_bit(Transition::deprovision) : 0) |
    (has_is_current<C> ? tells_current : 0) | (has_update<C> ? updates : 0);

// ---- one operation's bookkeeping ----------------------------------------------------------

/// A lock, given by the parallel scheduler (the core does not include <mutex>).
class Lock {
public:
  virtual void lock() = 0;
  virtual void unlock() = 0;

protected:
  ~Lock() = default;
};
struct Locked {
  Lock* held;
  explicit Locked(Lock* l) : held(l) {
    if (held) held->lock();
  }
  ~Locked() {
    if (held) held->unlock();
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;
};

/// What went wrong in one operation; allocated at its first failure only.
struct Failed {
  std::exception_ptr cause; // first failure
  std::size_t cause_index = 0;
  Transition cause_transition = Transition::provision;
  std::vector<TransitionError::Failure> failures;
};
/// Owns an operation's Failed (a std::unique_ptr would cost every includer <memory>).
class FailedRecord {
public:
  constexpr FailedRecord(std::nullptr_t = nullptr) noexcept {} // NOLINT: implicit, as a null pointer
  FailedRecord(const FailedRecord&) = delete;
  FailedRecord& operator=(const FailedRecord&) = delete;
  ~FailedRecord() { delete p_; }
  void create() { p_ = new Failed(); }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  Failed* operator->() const noexcept { return p_; }
  Failed& operator*() const noexcept { return *p_; }

private:
  Failed* p_ = nullptr;
};

/// Bookkeeping of one operation; lives on the caller's stack and allocates only
/// on failure, so an operation that succeeds only sets and tests a few bytes
/// besides what its components do.
struct Run {
  std::span<const std::string_view> roles;
  std::span<unsigned char> marks; // one byte per component (did_provision, did_resume, in_scope)
  Lock* guard = nullptr;          // set while steps run on several threads
  FailedRecord failed;            // null while nothing failed
  const StopTokenRef* stop = nullptr; // the options' token, or null: nothing to check
  bool refresh = false;               // an up: a provisioned component that is not current is brought up to date

  /// Call inside a catch: records the exception being handled.
  STACKUP_COLD void fail(std::size_t k, Transition t, bool rollback = false) {
    Locked hold(guard);
    if (!failed) failed.create();
    failed->failures.push_back({std::string(roles[k]), t, cat({rollback ? "rollback: " : "", current_message()}), rollback});
    if (!failed->cause) {
      failed->cause = std::current_exception();
      failed->cause_index = k;
      failed->cause_transition = t;
    }
  }
};

// ---- component types, reached at run time ----------------------------------------------

/// A query or action of a component, as Ops::call does it.
enum class Call : unsigned char { provision, resume, suspend, deprovision, is_provisioned, is_running, is_current, update };
/// What the engine needs of one component type, built once per type.
struct Ops {
  bool (*call)(void*, Call);                             // a query's answer; an action returns true
  unsigned char actions;                                 // action_bit of each action the type has
  bool (*quiet[phase_count])(void*, Run&, std::size_t);  // a step without events
  std::string_view (*name)(const void*);                 // null: the role
  std::string (*detail)(const void*);                    // null: none
  std::string (*log_file)(const void*);                  // null: keeps no log
  void (*destroy)(void*);
  std::string_view flavor;
  const void* type;                                      // &type_tag<C>
  int (*exit_fd)(const void*);                           // null: cannot tell (polled)
  std::optional<Exit> (*exit_status)(const void*);       // null: not known
  SupervisionConfig (*supervision)(const void*);         // null: the defaults
  bool (*is_stopped)(const void*);                       // null: when not running
  void (*kill)(const void*);                             // null: it has no kill()
  std::vector<std::string> (*log_command)(const void*, const LogRequest&); // null: no engine keeps its log
};
template <class T> inline constexpr char type_tag = 0;

/// A component of a stack: where it is, what its type can do, its listing index.
struct Slot {
  void* object;
  const Ops* ops;
  std::size_t index;
};

/// A stack as the engine sees it: its components in listing order, their roles,
/// the plan, the observer and one byte of scratch per component.
struct Events;
struct Table {
  std::string_view stack;
  std::span<const Slot> slots;   // listing order
  std::span<const Slot> ordered; // action order, for the quiet walk of a DynamicStack; empty: every walk is walk()
  std::span<const std::string_view> roles;
  std::span<const std::size_t> order, first, dep; // action order; dependencies of i: dep[first[i] .. first[i+1])
  Events* events;
  std::span<unsigned char> marks;

  [[nodiscard]] std::size_t size() const noexcept { return slots.size(); }
  [[nodiscard]] std::string_view name(std::size_t k) const {
    return slots[k].ops->name ? slots[k].ops->name(slots[k].object) : roles[k];
  }
  [[nodiscard]] bool is_provisioned(std::size_t k) const { return slots[k].ops->call(slots[k].object, Call::is_provisioned); }
  [[nodiscard]] bool is_running(std::size_t k) const { return slots[k].ops->call(slots[k].object, Call::is_running); }
  [[nodiscard]] State state(std::size_t k) const {
    if (is_running(k)) return State::running;
    if (is_provisioned(k)) return State::suspended;
    return State::deprovisioned;
  }
  [[nodiscard]] bool has(std::size_t k, Transition t) const {
    return (slots[k].ops->actions & action_bit(t)) != 0;
  }
  /// False only for a provisioned component whose is_current() says so.
  [[nodiscard]] bool is_current(std::size_t k, State s) const {
    return s == State::deprovisioned || !(slots[k].ops->actions & tells_current) ||
           slots[k].ops->call(slots[k].object, Call::is_current);
  }
  [[nodiscard]] ComponentStatus status(std::size_t k) const {
    const Ops& o = *slots[k].ops;
    const State s = state(k);
    return {roles[k], name(k), s, o.flavor, o.detail ? o.detail(slots[k].object) : std::string(),
            o.exit_status ? o.exit_status(slots[k].object) : std::nullopt, 0, SupervisionState::none, is_current(k, s)};
  }
  /// Index of `role`, or size() (linear: for messages and the command line).
  [[nodiscard]] std::size_t find(std::string_view role) const noexcept {
    std::size_t i = 0;
    while (i < roles.size() && roles[i] != role) ++i;
    return i;
  }
};

// ---- events ---------------------------------------------------------------------------

/// A stack's observer, and what keeps calls to it safe.
struct Events;
/// The stacks whose observers this thread is running, innermost first (an
/// observer may act on another stack, whose observer runs inside it).
struct Reporting {
  const Events* events;
  const Reporting* outer;
  [[nodiscard]] bool on(const Events* e) const noexcept {
    for (const Reporting* r = this; r; r = r->outer)
      if (r->events == e) return true;
    return false;
  }
};
inline thread_local const Reporting* reporting = nullptr;

struct Events {
  Observer observer;
  Lock* guard = nullptr; // set while a phase runs in parallel: events are serialised
  bool replaced = false; // the observer called on_event(): `pending` takes over when it returns
  Observer pending;

  /// on_event(): returns the observer it replaces. The observer's own
  /// replacement waits for it to return (the running function must not be
  /// destroyed under its feet): it gets a copy of itself back.
  Observer set(Observer o) {
    if (reporting && reporting->on(this)) { // called by its observer: this thread holds the guard already
      Observer previous = replaced ? std::move(pending) : observer;
      pending = std::move(o);
      replaced = true;
      return previous;
    }
    Locked hold(guard);
    Observer previous = std::move(observer);
    observer = std::move(o);
    return previous;
  }
};

/// An operation started from inside the stack's own observer is refused: the
/// stack is in the middle of another one.
[[noreturn]] STACKUP_COLD inline void refuse_reentry(std::string_view stack) {
  throw Error(cat({"stackup: an observer of stack '", stack,
                   "' started an operation on that stack while being told of an event; an observer must not act on "
                   "the stack it watches: act after the operation returns"}));
}
inline void check_not_reporting(const Table& t) {
  if (reporting && reporting->on(t.events)) [[unlikely]] refuse_reentry(t.stack);
}

/// Calls the observer, if any, one event at a time. Its exception is dropped: an
/// observer watches, it must not steer (skip bookkeeping or replace an error).
STACKUP_COLD inline void emit(const Table& t, std::size_t k, Transition x, Outcome o, std::chrono::nanoseconds elapsed,
                              std::string_view message) {
  Events& ev = *t.events;
  Locked hold(ev.guard);
  if (!ev.observer) return;
  const Reporting frame{&ev, reporting};
  reporting = &frame;
  try {
    ev.observer(Event{t.stack, t.roles[k], t.name(k), x, o, elapsed, std::string(message)});
  } catch (...) {
  }
  reporting = frame.outer;
  if (ev.replaced) {
    ev.observer = std::move(ev.pending);
    ev.pending = nullptr;
    ev.replaced = false;
  }
}

// ---- reaching one component ---------------------------------------------------------------

// A step acts on the component itself (the quiet paths: its calls are inlined) or
// on an Indirect, which reaches it through its type's Ops. The rules below are
// one function per phase, and the only helper templated on the component is
// perform<X> (one per action): a compiler's cost at -O2 grows with the number of
// functions it builds per component type, even those it then inlines.

/// A component reached through its Ops, with its events.
struct Indirect {
  const Table& t;
  std::size_t k;
  [[nodiscard]] bool is_provisioned() const { return t.is_provisioned(k); }
  [[nodiscard]] bool is_running() const { return t.is_running(k); }
  [[nodiscard]] bool has(Transition x) const { return t.has(k, x); }
  [[nodiscard]] bool is_current() const { return !(t.slots[k].ops->actions & tells_current) || t.slots[k].ops->call(t.slots[k].object, Call::is_current); }
  [[nodiscard]] bool has_update() const { return (t.slots[k].ops->actions & updates) != 0; }
  /// Action x (with `update`: the component's update(), reported as x), its
  /// start and success events saying `why` it is done.
  [[gnu::noinline]] Did act(Transition x, bool undo, std::string_view advice, std::string_view why = {},
                            bool update = false) { // one copy for every step of the walk
    bool (*const call)(void*, Call) = t.slots[k].ops->call;
    void* const object = t.slots[k].object;
    const Call what = update ? Call::update : static_cast<Call>(x);
    // Without an observer (tested under the lock in parallel mode), no events.
    if (!t.events->guard && !t.events->observer) {
      try {
        call(object, what);
      } catch (const NotImplementedError&) {
        return Did::not_implemented;
      }
      return Did::done;
    }
    emit(t, k, x, Outcome::started, {}, why);
    const auto t0 = Clock::now();
    try {
      call(object, what);
    } catch (const NotImplementedError& e) { // the component's own reason, then the advice
      emit(t, k, x, Outcome::not_implemented, Clock::now() - t0,
           advice.empty() ? std::string(e.what()) : cat({e.what(), "; ", advice}));
      return Did::not_implemented;
    } catch (...) {
      emit(t, k, x, Outcome::failed, Clock::now() - t0, current_message());
      throw;
    }
    emit(t, k, x, undo ? Outcome::rolled_back : Outcome::succeeded, Clock::now() - t0, why);
    return Did::done;
  }
  void note(Transition x, Outcome o, std::string_view message) const {
    if (t.events->guard || t.events->observer) [[unlikely]] emit(t, k, x, o, {}, message);
  }
  /// The not_implemented event of an action its type lacks, with what follows from it.
  void absent(Transition x, std::string_view advice) const {
    if (t.events->guard || t.events->observer) [[unlikely]]
      emit(t, k, x, Outcome::not_implemented, {}, advice.empty() ? std::string("not implemented") : cat({"not implemented; ", advice}));
  }
};

template <class C> concept stand_in = std::is_same_v<C, Indirect>;

// Optional members that supervision (DESIGN §10) reads, where a component has them:
// - `int exit_fd() const`: a new descriptor (the caller closes it) that becomes
//   readable when the component stops running on its own (LocalDaemon: a pidfd
//   of its waiter); -1 when it cannot tell (then it is polled).
// - `std::optional<Exit> exit_status() const`: how it last stopped running on
//   its own since its last start; empty while running and after a down.
// - `SupervisionConfig supervision() const`: its restart policy, liveness probe
//   and on_dependency_restart (the defaults without the member).
template <class T> concept has_exit_fd = requires(const T& c) {
  { c.exit_fd() } -> std::convertible_to<int>;
};
template <class T> concept has_exit_status = requires(const T& c) {
  { c.exit_status() } -> std::convertible_to<std::optional<Exit>>;
};
template <class T> concept has_supervision = requires(const T& c) {
  { c.supervision() } -> std::convertible_to<SupervisionConfig>;
};

/// A component not running by is_running() may still hold something a suspend
/// stops or clears (a LocalDaemon alive but not ready, or ended on its own with
/// its end on record): it says so with an optional `bool is_stopped() const`,
/// false then. A down suspends it all the same: no process escapes a down, and
/// what a down stopped never reads as an exit (so no supervisor restarts it).
template <class T> concept has_is_stopped = requires(const T& c) {
  { c.is_stopped() } -> std::convertible_to<bool>;
};
/// `void kill() const`: stop at once, without grace — what suspend would stop is
/// killed now. It may be called from another thread while a suspend of the same
/// component runs (a supervisor's or a command line's second Ctrl-C); the engine
/// never calls it itself, it only carries it (AnyComponent, StackView).
template <class T> concept has_kill = requires(const T& c) { c.kill(); };
/// `std::vector<std::string> log_command(const LogRequest&) const`: the program
/// (argv) whose standard output and error are the component's log as its engine
/// keeps it (a container's `podman logs`); the CLI runs it for `logs`. For a
/// component whose log is no file of its own (no `log_file()`).
template <class T> concept has_log_command = requires(const T& c, const LogRequest& r) {
  { c.log_command(r) } -> std::convertible_to<std::vector<std::string>>;
};
template <class C> bool is_stopped(const C& c) {
  if constexpr (stand_in<C>) {
    const Slot& s = c.t.slots[c.k];
    return !s.ops->is_stopped || s.ops->is_stopped(s.object);
  } else if constexpr (has_is_stopped<C>) {
    return static_cast<bool>(c.is_stopped());
  } else {
    return true;
  }
}

/// Events of a step: only an Indirect with an observer has any.
inline void note(const void* /*component*/, Transition, Outcome, std::string_view) noexcept {}
inline void note(const Indirect* c, Transition x, Outcome o, std::string_view message) { c->note(x, o, message); }

/// How an error message names a component: its `name()`, if it has one (null: its role).
using NameOf = std::string_view (*)(const void*);

// ---- errors of one step -----------------------------------------------------------------

[[noreturn]] STACKUP_COLD inline void not_implemented(std::string_view role, std::string_view name, Transition t,
                                                      std::string_view advice) {
  throw NotImplementedError(cat({"stackup: ", role, " '", name, "' does not implement ", to_string(t), "()",
                                 advice.empty() ? "" : "; ", advice}));
}
/// The ProvisioningError of a resume asked of a component with nothing provisioned.
[[noreturn]] STACKUP_COLD inline void not_provisioned(std::string_view role, std::string_view name) {
  throw ProvisioningError(cat({"stackup: cannot resume ", role, " '", name,
                               "': nothing is provisioned; provision it first (provision() or up())"}));
}
// The errors of component k (at `c`), found out of line so that the inlined
// steps keep nothing in memory for them; one body for every component type. The
// first three parameters are those of a DynamicStack's quiet step, in its order.
[[noreturn]] STACKUP_COLD inline void not_provisioned(const void* c, const Run& r, std::size_t k, NameOf name) {
  not_provisioned(r.roles[k], name ? name(c) : r.roles[k]);
}
[[noreturn]] STACKUP_COLD inline void lacks(const void* c, const Run& r, std::size_t k, NameOf name, Transition t,
                                            std::string_view advice) {
  not_implemented(r.roles[k], name ? name(c) : r.roles[k], t, advice);
}

// ---- the rules of one step (DESIGN §3), written once ------------------------------------

/// What a step does when an action it needs is missing: skip it (a dependent, or
/// the whole stack) or report an error (the target of a per-component down).
enum class Missing : unsigned char { skip, error };
/// Whether a resume step reports a component that is already running (not when
/// it follows the provision of a per-component up).
enum class Running : unsigned char { report, quiet };
/// Where a failure of a provision or resume step is caught: in the step, or by
/// the walk that called it (DynamicStack's quiet walk: one handler per walk keeps
/// its steps smaller and faster).
enum class Catch : unsigned char { in_step, by_walk };


/// Does action X of `c` when it has it: Did::done, or Did::not_implemented when it
/// lacks X or throws NotImplementedError, reported as an event whose message ends
/// with `advice`: what follows for the component, what the user can do. These
/// messages are the one place that says it (the command line prints them as they come).
template <Transition X, class C>
STACKUP_ALWAYS_INLINE Did perform(C& c, std::string_view advice, bool undo = false, std::string_view why = {}) {
  if constexpr (stand_in<C>) {
    if (c.has(X)) return c.act(X, undo, advice, why);
    c.absent(X, advice);
    return Did::not_implemented;
  } else if constexpr (has_action<C, X>) {
    try {
      if constexpr (X == Transition::provision) c.provision();
      else if constexpr (X == Transition::resume) c.resume();
      else if constexpr (X == Transition::suspend) c.suspend();
      else c.deprovision();
    } catch (const NotImplementedError&) {
      return Did::not_implemented;
    }
    return Did::done;
  } else {
    return Did::not_implemented;
  }
}
template <class C> std::string_view name_ptr_of(const void* o) { return detail::name_of(*static_cast<const C*>(o)); }
template <class C> constexpr auto name_entry() {
  if constexpr (has_name<C>) return &name_ptr_of<C>;
  else return static_cast<std::string_view (*)(const void*)>(nullptr);
}
/// How error messages name a C.
template <class C> inline constexpr NameOf name_of_type = name_entry<C>();
template <> inline constexpr NameOf name_of_type<Indirect> = [](const void* c) {
  return static_cast<const Indirect*>(c)->t.name(static_cast<const Indirect*>(c)->k);
};

// ---- drift (DESIGN §11) -------------------------------------------------------------------

/// What the events of bringing a component up to date say.
inline constexpr std::string_view settings_changed = "settings changed";
inline constexpr std::string_view settings_changed_update = "settings changed: update";

template <class C> bool is_current(const C& c) {
  if constexpr (stand_in<C>) return c.is_current();
  else if constexpr (has_is_current<C>) return static_cast<bool>(c.is_current());
  else return true;
}
/// The component's update(): Did::not_implemented when it has none or throws NotImplementedError.
template <class C> Did update(C& c) {
  if constexpr (stand_in<C>) {
    return c.has_update() ? c.act(Transition::provision, false, "recreating it instead", settings_changed_update, true)
                          : Did::not_implemented;
  } else if constexpr (has_update<C>) {
    try {
      c.update();
    } catch (const NotImplementedError&) {
      return Did::not_implemented;
    }
    return Did::done;
  } else {
    return Did::not_implemented;
  }
}
/// Brings provisioned component k, which is not current, up to date for an up:
/// its update(), else suspend (when running), deprovision and provision; the
/// resume that follows is the up's own. It sets no mark: a rollback treats it
/// as a component the up found provisioned (its old settings are gone: it is
/// left provisioned, with the new ones) and undoes only the up's resume of it.
/// A failure is recorded under the action that failed; returns false then.
template <class C> STACKUP_COLD bool refresh(C& c, std::size_t k, Run& r) {
  Transition at = Transition::provision;
  try {
    if (detail::update(c) == Did::done) return true;
    at = Transition::suspend;
    if (c.is_running()) detail::perform<Transition::suspend>(c, "deprovision follows", false, settings_changed);
    at = Transition::deprovision;
    if (detail::perform<Transition::deprovision>(c, "it cannot be recreated", false, settings_changed) != Did::done)
      detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::deprovision,
                    "it is outdated (settings changed) and can be brought up to date only by update() or by recreating it");
    at = Transition::provision;
    if (detail::perform<Transition::provision>(c, {}, false, settings_changed) != Did::done)
      detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::provision,
                    "it was deprovisioned to be recreated (settings changed) and cannot provision itself");
    return true;
  } catch (...) {
    r.fail(k, at);
    return false;
  }
}

/// Component k's part of phase P, reaching it through `c` (the component or a
/// stand-in); `marks` is the operation's record (a local of the caller: no reload
/// after the component's own stores). Never throws: failures go to `r`. Returns
/// false when the phase must stop (a failure of up). With Catch::by_walk, a
/// provision or resume step leaves its failure to the caller.
template <Phase P, Catch Where = Catch::in_step, class C, class K>
STACKUP_ALWAYS_INLINE bool step(C& c, K k, Run& r, unsigned char* marks, Missing missing = Missing::skip,
                                Running running = Running::report) {
  // Calls that take the component are qualified: its namespace (argument-dependent
  // lookup) must not change what the engine calls. Its address is taken with
  // __builtin_addressof (std::addressof without <memory>): it may overload operator&.
  if constexpr (P == Phase::provision) {
    try {
      // The action on the straight path, as compilers lay out the hand-written
      // `if (!c.is_provisioned()) c.provision();`.
      if (!c.is_provisioned()) [[likely]] {
        if (detail::perform<Transition::provision>(c, {}) != Did::done)
          detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::provision, "it is not provisioned and cannot provision itself");
        marks[k] |= did_provision;
      } else {
        if constexpr (stand_in<C> || has_is_current<C>)
          if (r.refresh && !detail::is_current(c)) [[unlikely]] return detail::refresh(c, k, r);
      }
      return true;
    } catch (...) {
      if constexpr (Where == Catch::by_walk) throw;
      r.fail(k, Transition::provision);
      return false;
    }
  } else if constexpr (P == Phase::resume) {
    try {
      if (!c.is_running()) [[likely]] {
        if (!c.is_provisioned()) detail::not_provisioned(__builtin_addressof(c), r, k, name_of_type<C>);
        if (detail::perform<Transition::resume>(c, {}) != Did::done)
          detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::resume, "it is provisioned but not running and cannot start itself");
        marks[k] |= did_resume;
      } else if (running == Running::report) {
        detail::note(__builtin_addressof(c), Transition::resume, Outcome::already_done, "already running");
      }
      return true;
    } catch (...) {
      if constexpr (Where == Catch::by_walk) throw;
      r.fail(k, Transition::resume);
      return false;
    }
  } else if constexpr (P == Phase::up_one) {
    try {
      if (c.is_running() && detail::is_current(c)) {
        detail::note(__builtin_addressof(c), Transition::resume, Outcome::already_done, "already running");
        return true;
      }
    } catch (...) {
      r.fail(k, Transition::resume);
      return false;
    }
    return detail::step<Phase::provision>(c, k, r, marks) && detail::step<Phase::resume>(c, k, r, marks, missing, Running::quiet);
  } else if constexpr (P == Phase::suspend) {
    try {
      bool deprovisions = has_deprovision<C>;
      if constexpr (stand_in<C>) deprovisions = c.has(Transition::deprovision);
      if (!c.is_running() && detail::is_stopped(c)) {
        detail::note(__builtin_addressof(c), Transition::suspend, Outcome::already_done, "not running");
      } else if (detail::perform<Transition::suspend>(c, deprovisions ? "use force (--force) to deprovision" : "it keeps running") != Did::done &&
                 missing == Missing::error) {
        detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::suspend,
                      deprovisions ? "use down with force (--force) to deprovision it instead"
                                   : "it has no deprovision() either: it cannot be brought down");
      }
    } catch (...) {
      r.fail(k, Transition::suspend);
    }
    return true;
  } else if constexpr (P == Phase::deprovision) {
    try {
      if (!c.is_provisioned()) detail::note(__builtin_addressof(c), Transition::deprovision, Outcome::already_done, "not provisioned");
      else detail::perform<Transition::deprovision>(c, "left in place");
    } catch (...) {
      r.fail(k, Transition::deprovision);
    }
    return true;
  } else { // force: stop it if it runs and can, then deprovision it; a failed suspend still gets its deprovision attempt
    bool was_running = false;
    try {
      was_running = c.is_running();
      if (was_running) [[likely]] { // as for provision: the action on the straight path
        bool deprovisions = has_deprovision<C>;
        if constexpr (stand_in<C>) deprovisions = c.has(Transition::deprovision);
        detail::perform<Transition::suspend>(c, deprovisions ? "deprovision follows" : "it keeps running");
      }
    } catch (...) {
      r.fail(k, Transition::suspend);
    }
    try {
      if (c.is_provisioned()) [[likely]] { // the deprovision on the straight path, as for provision
        if (detail::perform<Transition::deprovision>(c, "left in place") != Did::done && missing == Missing::error)
          detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::deprovision, "it cannot be removed");
      } else if (!was_running) {
        detail::note(__builtin_addressof(c), Transition::deprovision, Outcome::already_done, "already deprovisioned");
      }
    } catch (...) {
      r.fail(k, Transition::deprovision);
    }
    return true;
  }
}
/// step<P> for a phase known at run time (the engine's own walks).
inline bool step(Phase p, Indirect& c, Run& r) {
  unsigned char* const marks = r.marks.data();
  switch (p) {
  case Phase::provision: return step<Phase::provision>(c, c.k, r, marks);
  case Phase::resume: return step<Phase::resume>(c, c.k, r, marks);
  case Phase::up_one: return step<Phase::up_one>(c, c.k, r, marks);
  case Phase::suspend: return step<Phase::suspend>(c, c.k, r, marks);
  case Phase::deprovision: return step<Phase::deprovision>(c, c.k, r, marks);
  case Phase::force: return step<Phase::force>(c, c.k, r, marks);
  }
  return true;
}

// Undoes what an up did to one component (rollback): resumed → suspend, provisioned → deprovision.
template <Transition Done> void undo_step(Indirect& c, Run& r) {
  constexpr bool resumed = Done == Transition::resume;
  constexpr Transition x = resumed ? Transition::suspend : Transition::deprovision;
  try {
    if (perform<x>(c, resumed ? "left running" : "left in place", true) == Did::done) return;
    lacks(__builtin_addressof(c), r, c.k, name_of_type<Indirect>, x, resumed ? "it was left running" : "it was left provisioned");
  } catch (...) {
    r.fail(c.k, x, true);
  }
}

inline constexpr bool reversed(Phase p) noexcept {
  return p == Phase::suspend || p == Phase::deprovision || p == Phase::force;
}
/// The transition a phase's failure is reported under before it acts.
inline constexpr Transition first_transition(Phase p) noexcept {
  switch (p) {
  case Phase::provision: case Phase::up_one: return Transition::provision;
  case Phase::resume: return Transition::resume;
  case Phase::suspend: case Phase::force: return Transition::suspend;
  case Phase::deprovision: return Transition::deprovision;
  }
  return Transition::provision;
}

/// While an up's forward phase runs on this thread, its components' own waits
/// see the stop request (stackup::stop_requested()); undo and down actions do not.
class StopScope {
public:
  StopScope(const Run& r, Phase p) : saved_(current_stop) {
    if (p == Phase::provision || p == Phase::resume || p == Phase::up_one) current_stop = r.stop;
  }
  ~StopScope() { current_stop = saved_; }
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;

private:
  const StopTokenRef* saved_;
};

/// Records that the phase stopped before component k because a stop was
/// requested; `left` names what was left as it was. Returns false (stop the phase).
STACKUP_COLD inline bool interrupted(Run& r, std::size_t k, Phase p, const std::string& left) noexcept {
  try {
    throw InterruptedError(cat({"stopped before acting on it: a stop was requested; left as they were: ", left}));
  } catch (...) {
    r.fail(k, first_transition(p));
  }
  return false;
}

// ---- Ops of a type ---------------------------------------------------------------------

/// The quiet step of a DynamicStack's component of type C, inlined for that type.
template <class C, Phase P> bool quiet_step(void* object, Run& r, std::size_t k) {
  return detail::step<P, Catch::by_walk>(*static_cast<C*>(object), k, r, r.marks.data());
}
template <class T> concept has_log_file = requires(const T& c) {
  { c.log_file().string() } -> std::convertible_to<std::string>;
};
// The entries of ops_of<C>: plain function templates (a lambda costs the
// compiler two functions, its call operator and its conversion).
// One function per type for its queries and actions: a compiler's cost is per
// function as much as per line.
template <class C> bool call_of(void* o, Call what) {
  C& c = *static_cast<C*>(o);
  switch (what) {
  case Call::is_provisioned: return static_cast<bool>(std::as_const(c).is_provisioned());
  case Call::is_running: return static_cast<bool>(std::as_const(c).is_running());
  case Call::is_current:
    if constexpr (has_is_current<C>) return static_cast<bool>(std::as_const(c).is_current());
    break;
  case Call::update: if constexpr (has_update<C>) c.update(); break;
  case Call::provision: if constexpr (has_provision<C>) c.provision(); break;
  case Call::resume: if constexpr (has_resume<C>) c.resume(); break;
  case Call::suspend: if constexpr (has_suspend<C>) c.suspend(); break;
  case Call::deprovision: if constexpr (has_deprovision<C>) c.deprovision(); break;
  }
  return true;
}
template <class C> std::string detail_of(const void* o) { return std::string(static_cast<const C*>(o)->detail()); }
template <class C> std::string log_file_of(const void* o) { return std::string(static_cast<const C*>(o)->log_file().string()); }
template <class C> void destroy_of(void* o) { delete static_cast<C*>(o); }
template <class C> int exit_fd_of(const void* o) { return static_cast<int>(static_cast<const C*>(o)->exit_fd()); }
template <class C> std::optional<Exit> exit_status_of(const void* o) { return static_cast<const C*>(o)->exit_status(); }
template <class C> SupervisionConfig supervision_of(const void* o) { return static_cast<const C*>(o)->supervision(); }
template <class C> bool is_stopped_of(const void* o) { return static_cast<bool>(static_cast<const C*>(o)->is_stopped()); }
template <class C> void kill_of(const void* o) { static_cast<const C*>(o)->kill(); }
template <class C> std::vector<std::string> log_command_of(const void* o, const LogRequest& r) {
  return static_cast<const C*>(o)->log_command(r);
}
template <class C, bool Dynamic, Phase P> constexpr bool (*quiet_entry())(void*, Run&, std::size_t) {
  if constexpr (Dynamic) return &quiet_step<C, P>;
  else return nullptr;
}
template <class C, bool Dynamic> constexpr void (*destroy_entry())(void*) {
  if constexpr (Dynamic) return &destroy_of<C>;
  else return nullptr;
}
template <class C> constexpr auto detail_entry() {
  if constexpr (has_detail<C>) return &detail_of<C>;
  else return static_cast<std::string (*)(const void*)>(nullptr);
}
template <class C> constexpr auto log_file_entry() {
  if constexpr (has_log_file<C>) return &log_file_of<C>;
  else return static_cast<std::string (*)(const void*)>(nullptr);
}
template <class C> constexpr auto exit_fd_entry() {
  if constexpr (has_exit_fd<C>) return &exit_fd_of<C>;
  else return static_cast<int (*)(const void*)>(nullptr);
}
template <class C> constexpr auto exit_status_entry() {
  if constexpr (has_exit_status<C>) return &exit_status_of<C>;
  else return static_cast<std::optional<Exit> (*)(const void*)>(nullptr);
}
template <class C> constexpr auto is_stopped_entry() {
  if constexpr (has_is_stopped<C>) return &is_stopped_of<C>;
  else return static_cast<bool (*)(const void*)>(nullptr);
}
template <class C> constexpr auto kill_entry() {
  if constexpr (has_kill<C>) return &kill_of<C>;
  else return static_cast<void (*)(const void*)>(nullptr);
}
template <class C> constexpr auto log_command_entry() {
  if constexpr (has_log_command<C>) return &log_command_of<C>;
  else return static_cast<std::vector<std::string> (*)(const void*, const LogRequest&)>(nullptr);
}
template <class C> constexpr auto supervision_entry() {
  if constexpr (has_supervision<C>) return &supervision_of<C>;
  else return static_cast<SupervisionConfig (*)(const void*)>(nullptr);
}

/// The Ops of type C. For a DynamicStack (an AnyComponent), with C's own quiet
/// steps and destroy; for Stack<Cs...> without them (they are most of the code
/// compiled per type): its up and down inline their own steps, and its other
/// operations take the engine's walk().
template <class C, bool Dynamic = true>
inline constexpr Ops ops_of{
    &call_of<C>,
    actions_of<C>,
    {quiet_entry<C, Dynamic, Phase::provision>(), quiet_entry<C, Dynamic, Phase::resume>(),
     quiet_entry<C, Dynamic, Phase::up_one>(), quiet_entry<C, Dynamic, Phase::suspend>(),
     quiet_entry<C, Dynamic, Phase::deprovision>(), quiet_entry<C, Dynamic, Phase::force>()},
    name_entry<C>(),
    detail_entry<C>(),
    log_file_entry<C>(),
    destroy_entry<C, Dynamic>(),
    flavor_of<C>(),
    &type_tag<C>,
    exit_fd_entry<C>(),
    exit_status_entry<C>(),
    supervision_entry<C>(),
    is_stopped_entry<C>(),
    kill_entry<C>(),
    log_command_entry<C>(),
};

// ---- phases ---------------------------------------------------------------------------

/// Runs `run_dag` for a phase in parallel; set by <stackup/parallel.hpp>.
inline bool (*parallel_phase)(const Table&, Run&, Phase, unsigned char scope, std::size_t max_threads) = nullptr;

[[noreturn]] STACKUP_COLD inline void no_scheduler() {
  throw Error("stackup: parallel mode (.parallel = true) needs the scheduler: #include <stackup/parallel.hpp> "
              "(the umbrella header <stackup/stackup.hpp> includes it)");
}

template <class It> STACKUP_ALWAYS_INLINE bool quiet_walk(It first, It last, Run& r, Phase p) {
  const auto q = static_cast<int>(p);
  try {
    for (; first != last; ++first)
      if (!first->ops->quiet[q](first->object, r, first->index)) return false;
  } catch (...) { // only provision and resume throw (Catch::by_walk)
    r.fail(first->index, p == Phase::provision ? Transition::provision : Transition::resume);
    return false;
  }
  return true;
}

/// run_phase off the quiet path: with an observer, a scope or a stop token, and for
/// Stack<Cs...> (no quiet steps of its own) every phase that is not inlined.
[[gnu::noinline]] inline bool walk(const Table& t, Run& r, Phase p, unsigned char scope) {
  const std::size_t n = t.size();
  const bool reverse = reversed(p);
  const StopScope stop_scope(r, p);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = t.order[reverse ? n - 1 - i : i];
    if (scope != 0 && !(r.marks[k] & scope)) continue;
    if (r.stop && r.stop->stop_requested()) [[unlikely]] {
      std::string left;
      for (std::size_t j = i; j < n; ++j) {
        const std::size_t x = t.order[reverse ? n - 1 - j : j];
        if (scope == 0 || (r.marks[x] & scope)) left.append(left.empty() ? "" : ", ").append(t.roles[x]);
      }
      return interrupted(r, k, p, left);
    }
    Indirect a{t, k};
    if (!step(p, a, r)) return false;
  }
  return true;
}

/// Runs the phase's step for every component in scope (scope 0: all), in
/// (reverse) action order, stopping at the first step that returns false. On the
/// quiet path the observer is tested once per phase: one set by a component's
/// own action takes effect from the next phase.
inline bool run_phase(const Table& t, Run& r, Phase p, unsigned char scope, bool parallel, std::size_t max_threads) {
  if (parallel) {
    if (!parallel_phase) no_scheduler();
    return parallel_phase(t, r, p, scope, max_threads);
  }
  if (!t.ordered.empty() && !t.events->observer && scope == 0 && !r.stop) // the quiet path: one indirect call per step
    return reversed(p) ? quiet_walk(t.ordered.rbegin(), t.ordered.rend(), r, p)
                       : quiet_walk(t.ordered.begin(), t.ordered.end(), r, p);
  return walk(t, r, p, scope);
}

// ---- failures -----------------------------------------------------------------------------

/// Throws the TransitionError of a failed operation, nesting its first failure.
[[noreturn]] STACKUP_COLD inline void raise(const Table& t, Run& run, std::string_view operation, bool rolled_back = false) {
  Failed& f = *run.failed;
  const std::string_view role = t.roles[f.cause_index];
  std::string m = cat({"stackup: stack '", t.stack, "' ", operation, " failed: "});
  m.append(role).append(" '").append(t.name(f.cause_index)).append("' failed to ").append(to_string(f.cause_transition));
  m.append(": ").append(f.failures.front().message);
  for (std::size_t i = 1; i < f.failures.size(); ++i) {
    const auto& x = f.failures[i];
    m.append(i == 1 ? "; also: " : "; ").append(x.role).append(" ").append(to_string(x.transition)).append(": ").append(x.message);
  }
  if (rolled_back) {
    bool complete = true;
    for (const auto& x : f.failures) complete = complete && !x.rollback;
    m += complete ? " (rolled back)" : " (rollback incomplete)";
  }
  try {
    std::rethrow_exception(f.cause);
  } catch (...) {
    throw TransitionError(std::string(role), f.cause_transition, m, std::move(f.failures));
  }
}

/// Undoes what this up did, in reverse, then throws. For a whole-stack up every
/// resume is undone before any provision; for up of one component, one component
/// at a time.
[[noreturn]] STACKUP_COLD inline void fail_up(const Table& t, Run& r, const UpOptions& options, Undo undo) {
  if (options.rollback) {
    const bool per_component = undo == Undo::per_component;
    for (std::size_t pass = per_component ? 1 : 2; pass-- > 0;)
      for (std::size_t n = t.size(); n-- > 0;) {
        const std::size_t k = t.order[n];
        Indirect a{t, k};
        if ((r.marks[k] & did_resume) && (per_component || pass == 1)) undo_step<Transition::resume>(a, r);
        if ((r.marks[k] & did_provision) && (per_component || pass == 0)) undo_step<Transition::provision>(a, r);
      }
  }
  raise(t, r, "up", options.rollback);
}

// ---- operations -----------------------------------------------------------------------------

/// What an operation keeps per component: nothing (a whole-stack down) or what
/// it did and which components it acts on (up, per-component operations).
enum class Record : unsigned char { nothing, marks };

inline Run start(const Table& t, Record record, const StopTokenRef* stop = nullptr, bool refresh = false) {
  check_not_reporting(t);
  if (record == Record::marks)
    for (auto& m : t.marks) m = 0;
  return Run{t.roles, t.marks, nullptr, nullptr, stop && stop->stop_possible() ? stop : nullptr, refresh};
}

/// `zenml stack up`: provision() then resume(), all-or-nothing unless `.rollback = false`.
inline void up(const Table& t, const UpOptions& o) {
  Run r = start(t, Record::marks, &o.stop, true);
  const WalkRound round;
  if (run_phase(t, r, Phase::provision, 0, o.parallel, o.max_threads) &&
      run_phase(t, r, Phase::resume, 0, o.parallel, o.max_threads))
    return;
  fail_up(t, r, o, Undo::stack);
}

/// `zenml stack down [--force]`: every component tried, one TransitionError listing all failures.
inline void down(const Table& t, const DownOptions& o) {
  Run r = start(t, Record::nothing, &o.stop);
  const WalkRound round;
  run_phase(t, r, o.force ? Phase::force : Phase::suspend, 0, o.parallel, o.max_threads);
  if (r.failed) [[unlikely]] raise(t, r, "down");
}

/// `zenml <role> up`: k's dependencies first, then k.
inline void up_one(const Table& t, std::size_t k, const UpOptions& o) {
  Run r = start(t, Record::marks, &o.stop, true);
  mark_closure(k, t.order, t.first, t.dep, t.marks.data(), in_scope);
  if (!run_phase(t, r, Phase::up_one, in_scope, o.parallel, o.max_threads)) fail_up(t, r, o, Undo::per_component);
}

/// `zenml <role> down [--force]`: k's dependents first, then k; a missing action of k is an error.
/// With Dependents::keep, k alone: nothing is marked, so no dependent is visited.
inline void down_one(const Table& t, std::size_t k, const DownOptions& o) {
  Run r = start(t, Record::marks, &o.stop);
  if (o.dependents == Dependents::stop) {
    mark_dependents(k, t.order, t.first, t.dep, t.marks.data(), in_scope);
    run_phase(t, r, o.force ? Phase::force : Phase::suspend, in_scope, o.parallel, o.max_threads);
  }
  if (r.stop && r.stop->stop_requested()) [[unlikely]] { // k itself is left as it was too
    interrupted(r, k, o.force ? Phase::force : Phase::suspend, std::string(t.roles[k]));
    raise(t, r, "down");
  }
  Indirect a{t, k};
  if (o.force) step<Phase::force>(a, k, r, r.marks.data(), Missing::error);
  else step<Phase::suspend>(a, k, r, r.marks.data(), Missing::error);
  if (r.failed) [[unlikely]] raise(t, r, "down");
}

/// ZenML's provision() / resume(): NotImplementedError and ProvisioningError as
/// themselves, a component's own exception wrapped in TransitionError; no rollback.
inline void primitive(const Table& t, Phase p) {
  Run r = start(t, Record::marks);
  const WalkRound round;
  if (run_phase(t, r, p, 0, false, 0)) return;
  try {
    std::rethrow_exception(r.failed->cause);
  } catch (const NotImplementedError&) {
    throw;
  } catch (const ProvisioningError&) {
    throw;
  } catch (...) {
    raise(t, r, to_string(r.failed->cause_transition));
  }
}

/// ZenML's suspend() / deprovision(): every component tried, then one TransitionError.
inline void exhaustive(const Table& t, Phase p) {
  Run r = start(t, Record::nothing);
  const WalkRound round;
  run_phase(t, r, p, 0, false, 0);
  if (r.failed) raise(t, r, p == Phase::suspend ? "suspend" : "deprovision");
}

/// UnknownComponentError listing the valid roles.
[[nodiscard]] inline UnknownComponentError unknown_role(std::string_view stack, std::span<const std::string_view> roles,
                                                        std::string_view role) {
  std::string m = cat({"stackup: stack '", stack, "' has no component with role '", role, "'; valid roles: "});
  for (std::size_t i = 0; i < roles.size(); ++i) m.append(i ? ", " : "").append(roles[i]);
  return UnknownComponentError(m);
}

} // namespace stackup::detail

namespace stackup {

// ---- StackView (declared in <stackup/stack_view.hpp>): the Table, read ---------------------

inline std::string_view StackView::name() const noexcept { return t_->stack; }
inline std::size_t StackView::size() const noexcept { return t_->size(); }
inline RoleRange StackView::roles() const noexcept { return {t_->roles.data(), nullptr, t_->roles.size()}; }
inline RoleRange StackView::order() const noexcept { return {t_->roles.data(), t_->order.data(), t_->order.size()}; }
inline std::size_t StackView::find(std::string_view role) const noexcept { return t_->find(role); }
inline std::size_t StackView::at(std::string_view role) const {
  const std::size_t k = t_->find(role);
  if (k == t_->size()) throw detail::unknown_role(t_->stack, t_->roles, role);
  return k;
}
inline RoleRange StackView::dependencies(std::string_view role) const {
  const std::size_t k = at(role);
  return {t_->roles.data(), t_->dep.data() + t_->first[k], t_->first[k + 1] - t_->first[k]};
}
inline RoleRange StackView::dependents(std::string_view role) const {
  const std::size_t k = at(role), n = t_->size();
  std::size_t* on = new std::size_t[n == 0 ? 1 : n];
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t e = t_->first[i]; e < t_->first[i + 1]; ++e)
      if (t_->dep[e] == k) {
        on[count++] = i;
        break;
      }
  return {t_->roles.data(), on, count, on};
}
inline std::vector<ComponentStatus> StackView::status() const {
  const detail::WalkRound round;
  std::vector<ComponentStatus> rows(t_->size());
  for (std::size_t k = 0; k < rows.size(); ++k) rows[k] = t_->status(k);
  return rows;
}
inline ComponentStatus StackView::status(std::string_view role) const { return t_->status(at(role)); }
inline State StackView::state(std::string_view role) const { return t_->state(at(role)); }
inline RoleRange StackView::plan_up() const noexcept { return order(); }
// The plans mark what the engine's up_one and down_one mark (detail/plan.hpp),
// on marks of their own: a view never writes the stack's scratch. One block:
// the marks, then the roles visited.
inline RoleRange StackView::plan_up(std::string_view role) const {
  const std::size_t k = at(role), n = t_->size();
  std::size_t* block = new std::size_t[2 * n]();
  detail::mark_closure(k, t_->order, t_->first, t_->dep, block, std::size_t{1});
  std::size_t count = 0;
  for (const std::size_t i : t_->order)
    if (block[i]) block[n + count++] = i;
  return {t_->roles.data(), block + n, count, block};
}
inline RoleRange StackView::plan_down() const {
  const std::size_t n = t_->size();
  std::size_t* visits = new std::size_t[n == 0 ? 1 : n];
  for (std::size_t i = 0; i < n; ++i) visits[i] = t_->order[n - 1 - i];
  return {t_->roles.data(), visits, n, visits};
}
inline RoleRange StackView::plan_down(std::string_view role) const {
  const std::size_t k = at(role), n = t_->size();
  std::size_t* block = new std::size_t[2 * n]();
  detail::mark_dependents(k, t_->order, t_->first, t_->dep, block, std::size_t{1});
  block[k] = 1; // down_one acts on k after its dependents
  std::size_t count = 0;
  for (std::size_t x = n; x-- > 0;)
    if (block[t_->order[x]]) block[n + count++] = t_->order[x];
  return {t_->roles.data(), block + n, count, block};
}
inline std::string_view StackView::component_name(std::string_view role) const { return t_->name(at(role)); }
inline std::string_view StackView::flavor(std::string_view role) const { return t_->slots[at(role)].ops->flavor; }
inline std::string StackView::log_file(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->log_file ? s.ops->log_file(s.object) : std::string();
}
inline std::vector<std::string> StackView::log_command(std::string_view role, const LogRequest& request) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->log_command ? s.ops->log_command(s.object, request) : std::vector<std::string>{};
}
inline bool StackView::has_log_command(std::string_view role) const {
  return t_->slots[at(role)].ops->log_command != nullptr;
}
inline int StackView::exit_fd(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->exit_fd ? s.ops->exit_fd(s.object) : -1;
}
inline std::optional<Exit> StackView::exit_status(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->exit_status ? s.ops->exit_status(s.object) : std::nullopt;
}
inline bool StackView::is_current(std::string_view role) const {
  const std::size_t k = at(role);
  return t_->is_current(k, (t_->slots[k].ops->actions & detail::tells_current) ? t_->state(k) : State::running);
}
inline bool StackView::kill(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  if (!s.ops->kill) return false;
  s.ops->kill(s.object);
  return true;
}
inline bool StackView::reports_exits(std::string_view role) const { return t_->slots[at(role)].ops->exit_status != nullptr; }
inline SupervisionConfig StackView::supervision(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->supervision ? s.ops->supervision(s.object) : SupervisionConfig{};
}

} // namespace stackup

// stackup — undefines the macros of macro_scope.hpp.
// SPDX-License-Identifier: MIT
#undef STACKUP_ALWAYS_INLINE
#undef STACKUP_COLD
#undef STACKUP_INLINE_STEPS
// ---- end stackup/detail/engine.hpp ----

// ---- begin stackup/detail/owned_paths.hpp ----
// stackup — one owner per path: the check both kinds of stack run when they are
// built, on what their components list with `owned_paths()`.
// SPDX-License-Identifier: MIT

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup::detail {

/// One path a component owns: the path, and the component's listing index.
struct OwnedPath {
  std::string_view path;
  std::size_t owner;
};

inline std::string_view without_trailing_slash(std::string_view p) noexcept {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  return p;
}

/// `inner` is `outer` or lies inside it, compared lexically (absolute, normal paths).
inline bool path_within(std::string_view inner, std::string_view outer) noexcept {
  inner = without_trailing_slash(inner);
  outer = without_trailing_slash(outer);
  if (!inner.starts_with(outer)) return false;
  return inner.size() == outer.size() || outer == "/" || inner[outer.size()] == '/';
}

/// Path order with '/' before every other byte: a path's descendants then follow
/// it without a gap ("/a/b", "/a/b/c", "/a/b-c").
inline bool path_before(std::string_view a, std::string_view b) noexcept {
  const auto key = [](char c) { return c == '/' ? 0 : static_cast<unsigned char>(c) + 1; };
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [&](char x, char y) { return key(x) < key(y); });
}

/// Two components whose paths overlap, in listing order (`first` < `second`):
/// the paths are views of the ones given, without a trailing slash.
struct OwnedClash {
  bool found = false;
  std::size_t first = 0, second = 0;
  std::string_view first_path, second_path;
};

/// The clash that keeps these components from sharing a stack (found is false if
/// none): two components own the same path, or one owns a path inside another's.
/// O(P²) for P paths (one or two per component).
inline OwnedClash owned_path_clash(std::vector<OwnedPath> paths) {
  if (paths.size() < 2) return {};
  for (auto& p : paths) p.path = without_trailing_slash(p.path);
  // Insertion sort: a stack owns a few paths, and <algorithm> would cost every
  // file that includes <stackup/stack.hpp> more than the sort ever takes.
  const auto before = [](const OwnedPath& a, const OwnedPath& b) {
    if (a.path == b.path) return a.owner < b.owner;
    return path_before(a.path, b.path);
  };
  for (std::size_t i = 1; i < paths.size(); ++i)
    for (std::size_t j = i; j > 0 && before(paths[j], paths[j - 1]); --j) std::swap(paths[j], paths[j - 1]);
  // A sweep in that order keeping the chain of paths that hold the current one:
  // each held by the one before it, so all of one owner until a clash is found.
  std::vector<OwnedPath> chain;
  for (const OwnedPath& p : paths) {
    while (!chain.empty() && !path_within(p.path, chain.back().path)) chain.pop_back();
    if (chain.empty() || chain.back().owner == p.owner) {
      chain.push_back(p);
      continue;
    }
    OwnedPath a = chain.back(), b = p;
    // Named in listing order: the second is the one to move.
    if (b.owner < a.owner) std::swap(a, b);
    return {true, a.owner, b.owner, a.path, b.path};
  }
  return {};
}

} // namespace stackup::detail
// ---- end stackup/detail/owned_paths.hpp ----

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

// stackup — internal macros; every header that includes this includes
// macro_unscope.hpp at its end, so none of them leaks into user code.
// SPDX-License-Identifier: MIT
// (no include guard: each header defines the macros again for itself)

// Forces inlining where a measurement shows it pays: the steps of Stack<Cs...>'s
// quiet path, so an operation compiles to the checks and calls a person would write.
// Not without optimisation (-O0): there it buys no speed and costs compile time
// (a 64-component stack compiled about twice as long).
#if (defined(__GNUC__) || defined(__clang__)) && defined(__OPTIMIZE__)
#define STACKUP_ALWAYS_INLINE [[gnu::always_inline]] inline
#else
#define STACKUP_ALWAYS_INLINE inline
#endif
// Marks what runs only when something fails, so it stays out of the inlined path.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_COLD [[gnu::cold, gnu::noinline]]
#else
#define STACKUP_COLD
#endif
// Stack<Cs...>'s up() and down() inline their steps (the checks and calls a person
// would write) only when optimising: without optimisation that buys no speed, and
// the engine's walk through the per-type table, the same rules, compiles far faster.
// (Files of one program built at different levels hold two bodies of up()/down();
// the linker keeps one, and either does the same.)
#if defined(__OPTIMIZE__)
#define STACKUP_INLINE_STEPS 1
#else
#define STACKUP_INLINE_STEPS 0
#endif

namespace stackup {

namespace detail {
template <class T> constexpr bool checked_component() {
  if constexpr (Component<T>) return true;
  else return not_a_component<T>::value;
}
template <class T> constexpr std::string_view role_of() {
  if constexpr (has_role<T>) return std::string_view(T::role);
  else return {};
}
template <class T, class... Cs> constexpr std::size_t type_index() {
  constexpr bool same[]{std::is_same_v<T, Cs>..., false};
  std::size_t i = 0;
  while (i < sizeof...(Cs) && !same[i]) ++i;
  return i;
}

// Storage of the components: one base per component, reached by index without
// walking a std::tuple.
template <std::size_t I, class C> struct Holder {
  C value;
};
template <class Seq, class... Cs> struct Storage;
template <std::size_t... I, class... Cs> struct Storage<std::index_sequence<I...>, Cs...> : Holder<I, Cs>... {
  Storage() : Holder<I, Cs>{}... {}
  explicit Storage(std::in_place_t, Cs&&... cs) : Holder<I, Cs>{std::move(cs)}... {}
};
template <std::size_t K, class C> constexpr C& held(Holder<K, C>& h) noexcept { return h.value; }
template <std::size_t K, class C> constexpr const C& held(const Holder<K, C>& h) noexcept { return h.value; }
template <std::size_t K, class C> std::type_identity<C> type_at(const Holder<K, C>*);

template <class C> void collect_owned_paths(const C& c, std::vector<std::string>& into) {
  if constexpr (has_owned_paths<C>)
    for (auto&& p : c.owned_paths()) into.emplace_back(std::string_view(p));
}

/// The plan of Cs..., computed at compile time by the same algorithm as DynamicStack's.
template <std::size_t N, std::size_t E> struct CompiledPlan {
  std::array<std::size_t, N> order{};
  std::array<std::size_t, N + 1> first{};
  std::array<std::size_t, E> dep{};
  PlanProblem problem{};
};
template <class C> constexpr void add_dependencies(std::string_view* names, std::size_t& at) {
  for (std::size_t k = 0; k < dependency_count<C>(); ++k) names[at++] = dependency<C>(k);
}
template <class... Cs> constexpr auto compile_plan() {
  constexpr std::size_t n = sizeof...(Cs), e = (dependency_count<Cs>() + ... + 0);
  CompiledPlan<n, e> p;
  const std::array<std::string_view, n> roles{role_of<Cs>()...};
  std::array<std::string_view, e + 1> names{};
  std::size_t at = 0, i = 0;
  ((p.first[i++] = at, add_dependencies<Cs>(names.data(), at)), ...);
  p.first[n] = at;
  std::array<std::size_t, n> sorted{}, waiting{}, heap{};
  std::array<std::size_t, n + 1> next_first{};
  std::array<std::size_t, e> next{};
  p.problem = compute_plan(roles, p.first, std::span(names).first(e), p.dep, p.order,
                           PlanScratch{sorted, waiting, next_first, next, heap});
  return p;
}

template <class C> using role_spelled = spelled<fixed<role_of<C>().size() + 1>(role_of<C>())>;

/// True when the stack is well-formed; otherwise instantiates the reporting
/// template that names the rule, the fix, the role and the types.
template <PlanProblem P, class Types, class... Cs> constexpr bool check_plan() {
  if constexpr (P.error == PlanError::none) {
    return true;
  } else {
    using A = typename decltype(type_at<P.a>(static_cast<const Types*>(nullptr)))::type;
    if constexpr (P.error == PlanError::empty_role) {
      return empty_role<role_spelled<A>, A>::value;
    } else if constexpr (P.error == PlanError::duplicate) {
      using B = typename decltype(type_at<P.b>(static_cast<const Types*>(nullptr)))::type;
      return duplicate_role<role_spelled<A>, A, B>::value;
    } else if constexpr (P.error == PlanError::missing) {
      constexpr std::string_view missing = dependency<A>(P.b);
      return missing_dependency<role_spelled<A>, spelled<fixed<missing.size() + 1>(missing)>, A>::value;
    } else {
      return dependency_cycle<role_spelled<A>, A>::value;
    }
  }
}
template <bool WellFormed, PlanProblem P, class Types, class... Cs> constexpr bool checked_plan() {
  if constexpr (WellFormed) return check_plan<P, Types, Cs...>();
  else return true; // the not-a-component diagnostic is the only one
}
} // namespace detail

/// A stack of components with unique roles. Actions run in dependency order
/// (`depends_on`, ties broken by listing order); suspend and deprovision in reverse.
template <class... Cs> class Stack {
  static_assert((detail::checked_component<Cs>() && ... && true));
  static constexpr bool well_formed = (Component<Cs> && ... && true);
  using Storage = detail::Storage<std::index_sequence_for<Cs...>, Cs...>;
  static constexpr auto plan_ = detail::compile_plan<Cs...>();
  static_assert(detail::checked_plan<well_formed, plan_.problem, Storage, Cs...>());

public:
  /// Number of components.
  static constexpr std::size_t size = sizeof...(Cs);
  /// Roles in template-argument order.
  static constexpr std::array<std::string_view, size> roles{detail::role_of<Cs>()...};
  /// Indices of the components in action order (provision/resume order).
  static constexpr std::array<std::size_t, size> order = plan_.order;

  /// A stack named "default" of value-initialised components.
  /// StackDefinitionError when two components own overlapping paths (`owned_paths()`).
  Stack() : name_("default") { check_owned_paths(); }
  /// A named stack of the given components: `Stack s{"local", Orchestrator{}, ArtifactStore{}}`.
  /// StackDefinitionError when two components own overlapping paths (`owned_paths()`).
  explicit Stack(std::string_view name, Cs... components)
      : name_(name), storage_(std::in_place, std::move(components)...) {
    check_owned_paths();
  }

  // The view's table refers to this stack's own members: a copy or a moved-to
  // stack gets one of its own.
  Stack(const Stack& other)
    requires std::is_copy_constructible_v<Storage>
      : name_(other.name_), storage_(other.storage_), events_(other.events_) {}
  Stack(Stack&& other) noexcept(std::is_nothrow_move_constructible_v<Storage>)
      : name_(std::move(other.name_)), storage_(std::move(other.storage_)), events_(std::move(other.events_)) {}
  Stack& operator=(const Stack& other)
    requires std::is_copy_assignable_v<Storage>
  {
    name_ = other.name_;
    storage_ = other.storage_;
    events_ = other.events_;
    face_.table.stack = name_;
    return *this;
  }
  Stack& operator=(Stack&& other) noexcept(std::is_nothrow_move_assignable_v<Storage>) {
    name_ = std::move(other.name_);
    storage_ = std::move(other.storage_);
    events_ = std::move(other.events_);
    face_.table.stack = name_;
    return *this;
  }
  ~Stack() = default;

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }

  /// The component of type T.
  template <class T> [[nodiscard]] T& get() noexcept { return detail::held<index_of<T>()>(storage_); }
  template <class T> [[nodiscard]] const T& get() const noexcept { return detail::held<index_of<T>()>(storage_); }
  /// The component with role R: `stack.get<"orchestrator">()`.
  template <FixedString R> [[nodiscard]] auto& get() noexcept { return detail::held<index_of<R>()>(storage_); }
  template <FixedString R> [[nodiscard]] const auto& get() const noexcept { return detail::held<index_of<R>()>(storage_); }

  /// Index (template-argument position) of a role, or `size` when absent.
  [[nodiscard]] static constexpr std::size_t find(std::string_view role) noexcept {
    for (std::size_t i = 0; i < size; ++i)
      if (roles[i] == role) return i;
    return size;
  }

  /// The stack's public, read-only face (roles, order, dependencies, plans,
  /// status, flavours, log files); valid while the stack lives.
  [[nodiscard]] StackView view() const noexcept { return StackView(face_.table); }

  /// Set the observer (replaces any previous one; an empty function removes it)
  /// and return the one it replaces, so that a tool can put it back.
  /// It is called for every event, one at a time. An exception thrown by the
  /// observer is ignored: it never interrupts an action or replaces its error.
  /// Called by the observer itself, the replacement takes effect when it returns.
  Observer on_event(Observer observer) { return events_.set(std::move(observer)); }

  // ---- ZenML's Stack primitives -------------------------------------------------

  /// Provision every component that is not provisioned, in dependency order.
  /// Throws NotImplementedError / ProvisioningError as themselves, a component's
  /// own exception wrapped in TransitionError. No rollback.
  void provision() { detail::primitive(View(*this).table, detail::Phase::provision); }
  /// Resume every component that is not running, in dependency order. Errors as provision().
  void resume() { detail::primitive(View(*this).table, detail::Phase::resume); }
  /// Suspend every running component, in reverse order; tries every component,
  /// then throws one TransitionError listing every failure.
  void suspend() { detail::exhaustive(View(*this).table, detail::Phase::suspend); }
  /// Deprovision every provisioned component, in reverse order; tries every component.
  void deprovision() { detail::exhaustive(View(*this).table, detail::Phase::deprovision); }

  // ---- Operations ---------------------------------------------------------------

  /// `zenml stack up`: provision() then resume(). All-or-nothing unless
  /// `.rollback = false`. Throws TransitionError.
  STACKUP_ALWAYS_INLINE void up(UpOptions options = {}) {
#if STACKUP_INLINE_STEPS
    if (!options.parallel && !events_.observer && !options.stop) [[likely]] {
      const detail::WalkRound round;
      std::array<unsigned char, size> marks{};
      detail::Run r{roles, marks, nullptr, nullptr, nullptr, true}; // refresh: an up brings outdated components up to date
      if (quiet<detail::Phase::provision, false>(r, std::make_index_sequence<size>{}) &&
          quiet<detail::Phase::resume, false>(r, std::make_index_sequence<size>{}))
        return;
      rollback(r, options);
    }
#endif
    engine_up(options);
  }

  /// `zenml stack down [--force]`: suspend every component; with `.force`, also
  /// deprovision. Tries every component, then throws one TransitionError listing all failures.
  STACKUP_ALWAYS_INLINE void down(DownOptions options = {}) {
#if STACKUP_INLINE_STEPS
    if (!options.parallel && !events_.observer && !options.stop) [[likely]] {
      const detail::WalkRound round;
      detail::Run r{roles, {}, nullptr, nullptr}; // down records nothing per component
      if (options.force) quiet<detail::Phase::force, true>(r, std::make_index_sequence<size>{});
      else quiet<detail::Phase::suspend, true>(r, std::make_index_sequence<size>{});
      if (r.failed) [[unlikely]] raise(r);
      return;
    }
#endif
    engine_down(options);
  }

  /// `zenml <C> up`: C's dependencies first, then C. Same guarantees as up().
  template <class C> void up(UpOptions options = {}) { detail::up_one(View(*this).table, index_of<C>(), options); }
  /// `zenml <C> down [--force]`: C's dependents first, then C. Same guarantees as down().
  /// With `.dependents = Dependents::keep`, C alone: its dependents are left running.
  template <class C> void down(DownOptions options = {}) {
    detail::down_one(View(*this).table, index_of<C>(), options);
  }
  /// up<C>() by role string; UnknownComponentError when the stack has no such role.
  void up(std::string_view role, UpOptions options = {}) { detail::up_one(View(*this).table, checked(role), options); }
  /// down<C>() by role string; UnknownComponentError when the stack has no such role.
  void down(std::string_view role, DownOptions options = {}) {
    detail::down_one(View(*this).table, checked(role), options);
  }

  // ---- Queries ------------------------------------------------------------------

  /// Every component is provisioned.
  [[nodiscard]] bool is_provisioned() const {
    const detail::WalkRound round;
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (static_cast<bool>(detail::held<I>(storage_).is_provisioned()) && ... && true);
    }(std::make_index_sequence<size>{});
  }
  /// Every component is running.
  [[nodiscard]] bool is_running() const {
    const detail::WalkRound round;
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (static_cast<bool>(detail::held<I>(storage_).is_running()) && ... && true);
    }(std::make_index_sequence<size>{});
  }
  /// One row per component, in template-argument order. Changes nothing.
  [[nodiscard]] std::array<ComponentStatus, size> status() const {
    const detail::WalkRound round;
    const View v(const_cast<Stack&>(*this));
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<ComponentStatus, size>{v.table.status(I)...};
    }(std::make_index_sequence<size>{});
  }
  /// UnknownComponentError listing the valid roles, for a role string not in the stack.
  [[nodiscard]] UnknownComponentError unknown_role(std::string_view role) const {
    return detail::unknown_role(name_, roles, role);
  }

private:
  // One owner per path, checked only when two or more component types own paths.
  void check_owned_paths() const {
    if constexpr ((std::size_t{detail::has_owned_paths<Cs>} + ... + std::size_t{0}) >= 2) {
      std::vector<std::vector<std::string>> owned(size);
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (detail::collect_owned_paths(detail::held<I>(storage_), owned[I]), ...);
      }(std::make_index_sequence<size>{});
      std::vector<detail::OwnedPath> paths;
      for (std::size_t k = 0; k < size; ++k)
        for (const auto& path : owned[k]) paths.push_back({path, k});
      if (const detail::OwnedClash c = detail::owned_path_clash(std::move(paths)); c.found)
        throw StackDefinitionError(name_, StackDefinitionError::Kind::overlapping_paths,
                                   {std::string(roles[c.first]), std::string(roles[c.second])}, {c.first, c.second},
                                   {std::string(c.first_path), std::string(c.second_path)});
    }
  }

  template <class T> static constexpr std::size_t index_of() {
    constexpr std::size_t i = detail::type_index<T, Cs...>();
    static_assert(i < size, "stackup: this type is not a component of the Stack: add it to the Stack's template arguments");
    return i < size ? i : 0; // after the assertion, no second error
  }
  template <FixedString R> static constexpr std::size_t index_of() {
    constexpr std::size_t i = find(R.view());
    if constexpr (i >= size) static_assert(detail::no_such_role<detail::spelled<R>, Cs...>::value);
    return i < size ? i : 0; // after the assertion, no second error
  }
  [[nodiscard]] std::size_t checked(std::string_view role) const {
    const std::size_t k = find(role);
    if (k == size) throw unknown_role(role);
    return k;
  }

  // The stack as the engine sees it; built only off the quiet path.
  struct View {
    std::array<detail::Slot, size> slots;
    std::array<unsigned char, size> own_marks{};
    detail::Table table;
    explicit View(Stack& s, std::span<unsigned char> marks = {})
        : slots([&]<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<detail::Slot, size>{detail::Slot{__builtin_addressof(detail::held<I>(s.storage_)), &detail::ops_of<Cs, false>, I}...};
          }(std::make_index_sequence<size>{})),
          table{s.name_, slots, {}, roles, order, plan_.first, plan_.dep, &s.events_,
                marks.empty() ? std::span<unsigned char>(own_marks) : marks} {}
    View(const View&) = delete;
    View& operator=(const View&) = delete;
  };

  // The quiet path's failures, out of line: the View they need stays off the path.
  [[noreturn]] STACKUP_COLD void rollback(detail::Run& r, const UpOptions& options) {
    detail::fail_up(View(*this, r.marks).table, r, options, detail::Undo::stack);
  }
  [[noreturn]] STACKUP_COLD void raise(detail::Run& r) { detail::raise(View(*this).table, r, "down"); }
  // With an observer, or in parallel: the engine's own walk, also out of line.
  [[gnu::noinline]] void engine_up(const UpOptions& options) { detail::up(View(*this).table, options); }
  [[gnu::noinline]] void engine_down(const DownOptions& options) { detail::down(View(*this).table, options); }

  // The quiet path: the steps of one phase, inlined in (reverse) action order,
  // stopping at the first that returns false.
  template <detail::Phase P, bool Reverse, std::size_t... I>
  STACKUP_ALWAYS_INLINE bool quiet(detail::Run& r, std::index_sequence<I...>) {
    unsigned char* const marks = r.marks.data(); // read once: the components' stores could alias it
    return (detail::step<P>(detail::held<at(Reverse, I)>(storage_), std::integral_constant<std::size_t, at(Reverse, I)>{},
                            r, marks) &&
            ...);
  }
  // The component at position i of the action order, or of its reverse.
  static constexpr std::size_t at(bool reverse, std::size_t i) { return order[reverse ? size - 1 - i : i]; }

  // What view() reads: the engine's table of this stack, with no scratch (a view
  // never acts). Built last, from the members above.
  struct Face {
    std::array<detail::Slot, size> slots;
    detail::Table table;
    explicit Face(Stack& s)
        : slots([&]<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<detail::Slot, size>{detail::Slot{__builtin_addressof(detail::held<I>(s.storage_)), &detail::ops_of<Cs, false>, I}...};
          }(std::make_index_sequence<size>{})),
          table{s.name_, slots, {}, roles, order, plan_.first, plan_.dep, &s.events_, {}} {}
    Face(const Face&) = delete;
    Face& operator=(const Face&) = delete;
  };

  std::string name_;
  Storage storage_;
  detail::Events events_;
  Face face_{*this};
};

template <class... Cs> Stack(std::string_view, Cs...) -> Stack<Cs...>;

} // namespace stackup

// stackup — undefines the macros of macro_scope.hpp.
// SPDX-License-Identifier: MIT
#undef STACKUP_ALWAYS_INLINE
#undef STACKUP_COLD
#undef STACKUP_INLINE_STEPS
// ---- end stackup/stack.hpp ----

// ---- begin stackup/any_component.hpp ----
// stackup — AnyComponent: any component, chosen at run time (value semantics).
// SPDX-License-Identifier: MIT


#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace stackup {

namespace detail {
template <class C> std::vector<std::string> dependencies_of() {
  std::vector<std::string> deps;
  deps.reserve(dependency_count<C>());
  for (std::size_t k = 0; k < dependency_count<C>(); ++k) deps.emplace_back(dependency<C>(k));
  return deps;
}
template <class T, class Self> concept other_than = !std::is_same_v<std::remove_cvref_t<T>, Self>;
template <class C> std::vector<std::string> owned_paths_of(const void* object) {
  std::vector<std::string> paths;
  for (auto&& p : static_cast<const C*>(object)->owned_paths()) paths.emplace_back(std::string_view(p));
  return paths;
}
} // namespace detail

/// Any component, chosen at run time: the element of a DynamicStack. Movable,
/// not copyable. Calls reach the wrapped object through a table built once per
/// wrapped type; what the type lacks (an action, `name()`, `detail()`) is known
/// from its type, as for Stack<Cs...>. A moved-from AnyComponent is empty.
class AnyComponent {
public:
  /// Wraps a Component: role and `depends_on` from its type.
  template <class C>
    requires detail::other_than<C, AnyComponent> && Component<std::remove_cvref_t<C>>
  AnyComponent(C&& component) // NOLINT(google-explicit-constructor): a component is an AnyComponent
      : AnyComponent(std::string(std::remove_cvref_t<C>::role), std::forward<C>(component),
                     detail::dependencies_of<std::remove_cvref_t<C>>()) {}

  /// Wraps any type with const `is_provisioned()` and `is_running()` (and any of
  /// the four actions) under a role and dependencies given at run time. A type
  /// with `void assign_role(std::string_view)` (the shipped components without a
  /// role argument) is told its role.
  template <class C>
    requires detail::other_than<C, AnyComponent> && detail::has_queries<std::remove_cvref_t<C>>
  AnyComponent(std::string role, C&& component, std::vector<std::string> depends_on = {})
      : object_(new std::remove_cvref_t<C>(std::forward<C>(component))),
        ops_(&detail::ops_of<std::remove_cvref_t<C>>), role_(std::move(role)), depends_on_(std::move(depends_on)) {
    if constexpr (detail::has_owned_paths<std::remove_cvref_t<C>>) owned_ = &detail::owned_paths_of<std::remove_cvref_t<C>>;
    if constexpr (requires(std::remove_cvref_t<C>& c) { c.assign_role(std::string_view()); })
      static_cast<std::remove_cvref_t<C>*>(object_)->assign_role(role_);
  }

  AnyComponent(AnyComponent&& other) noexcept
      : object_(std::exchange(other.object_, nullptr)), ops_(std::exchange(other.ops_, nullptr)),
        role_(std::exchange(other.role_, {})), depends_on_(std::exchange(other.depends_on_, {})),
        owned_(std::exchange(other.owned_, nullptr)) {}
  AnyComponent& operator=(AnyComponent&& other) noexcept {
    if (this != &other) {
      reset();
      object_ = std::exchange(other.object_, nullptr);
      ops_ = std::exchange(other.ops_, nullptr);
      role_ = std::exchange(other.role_, {});
      depends_on_ = std::exchange(other.depends_on_, {});
      owned_ = std::exchange(other.owned_, nullptr);
    }
    return *this;
  }
  AnyComponent(const AnyComponent&) = delete;
  AnyComponent& operator=(const AnyComponent&) = delete;
  ~AnyComponent() { reset(); }

  /// False for a moved-from AnyComponent (which a DynamicStack refuses).
  [[nodiscard]] bool has_value() const noexcept { return object_ != nullptr; }
  /// The role.
  [[nodiscard]] const std::string& role() const noexcept { return role_; }
  /// The roles this component needs, in the order given.
  [[nodiscard]] const std::vector<std::string>& depends_on() const noexcept { return depends_on_; }
  /// The display name: the wrapped `name()`, else the role.
  [[nodiscard]] std::string_view name() const { return ops().name ? ops_->name(object_) : std::string_view(role_); }
  /// The wrapped type's `flavor` (e.g. "local_daemon"), or "custom".
  [[nodiscard]] std::string_view flavor() const { return ops().flavor; }
  /// What the wrapped `detail()` offers (pid, port, path), or empty.
  [[nodiscard]] std::string detail() const { return ops().detail ? ops_->detail(object_) : std::string(); }
  /// The file `<role> logs` prints (the wrapped `log_file()`), or empty when it keeps none.
  [[nodiscard]] std::string log_file() const { return ops().log_file ? ops_->log_file(object_) : std::string(); }
  /// The wrapped `log_command(request)`: the program whose output is its log as
  /// its engine keeps it; empty without one.
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const {
    return ops().log_command ? ops_->log_command(object_, request) : std::vector<std::string>{};
  }
  /// The wrapped `exit_fd()` (a new descriptor: close it), or -1 without one.
  [[nodiscard]] int exit_fd() const { return ops().exit_fd ? ops_->exit_fd(object_) : -1; }
  /// The wrapped `exit_status()`, or empty without one.
  [[nodiscard]] std::optional<Exit> exit_status() const {
    return ops().exit_status ? ops_->exit_status(object_) : std::nullopt;
  }
  /// The wrapped `supervision()`, or the defaults (`Restart::no`) without one.
  [[nodiscard]] SupervisionConfig supervision() const {
    return ops().supervision ? ops_->supervision(object_) : SupervisionConfig{};
  }
  /// The wrapped `kill()`: stop at once, without grace (it may run while a
  /// suspend of the same component is in progress on another thread). False,
  /// doing nothing, when the type has no kill().
  bool kill() const {
    if (!ops().kill) return false;
    ops_->kill(object_);
    return true;
  }
  /// The paths the wrapped `owned_paths()` lists (absolute, lexically normal), or
  /// none when the type owns no files.
  [[nodiscard]] std::vector<std::string> owned_paths() const {
    (void)ops(); // an empty AnyComponent says so
    return owned_ ? owned_(object_) : std::vector<std::string>{};
  }
  /// running if is_running(), else suspended if is_provisioned(), else deprovisioned.
  [[nodiscard]] State state() const {
    if (is_running()) return State::running;
    return is_provisioned() ? State::suspended : State::deprovisioned;
  }
  /// The wrapped `is_provisioned()`.
  [[nodiscard]] bool is_provisioned() const { return ops().call(object_, detail::Call::is_provisioned); }
  /// The wrapped `is_running()`.
  [[nodiscard]] bool is_running() const { return ops().call(object_, detail::Call::is_running); }
  /// Whether the wrapped type has that action (it may still refuse at run time
  /// by throwing NotImplementedError).
  [[nodiscard]] bool has(Transition t) const { return (ops().actions & detail::action_bit(t)) != 0; }
  /// The wrapped `is_current()` (settings unchanged since it was provisioned), or true without one.
  [[nodiscard]] bool is_current() const { return ops().call(object_, detail::Call::is_current); }
  /// Whether the wrapped type has `update()` (without it, up recreates an outdated component).
  [[nodiscard]] bool has_update() const { return (ops().actions & detail::updates) != 0; }

  /// The wrapped action; NotImplementedError when the type lacks it.
  void provision() { act(Transition::provision); }
  void resume() { act(Transition::resume); }
  void suspend() { act(Transition::suspend); }
  void deprovision() { act(Transition::deprovision); }
  /// The wrapped `update()`; NotImplementedError when the type lacks it.
  void update() {
    if (!has_update())
      throw NotImplementedError(detail::cat({"stackup: ", role_, " '", name(), "' does not implement update()"}));
    ops_->call(object_, detail::Call::update);
  }

  /// The wrapped object if it is a T, else nullptr (as std::function::target).
  template <class T> [[nodiscard]] T* target() noexcept {
    return ops_ && ops_->type == &detail::type_tag<T> ? static_cast<T*>(object_) : nullptr;
  }
  template <class T> [[nodiscard]] const T* target() const noexcept {
    return ops_ && ops_->type == &detail::type_tag<T> ? static_cast<const T*>(object_) : nullptr;
  }

private:
  friend class DynamicStack;

  [[nodiscard]] const detail::Ops& ops() const {
    if (!ops_) [[unlikely]]
      throw Error("stackup: this AnyComponent is empty (it was moved from): assign a component to it first");
    return *ops_;
  }
  void act(Transition t) {
    if (!has(t)) detail::not_implemented(role_, name(), t, {});
    ops_->call(object_, static_cast<detail::Call>(t));
  }
  void reset() noexcept {
    if (object_) ops_->destroy(object_);
    object_ = nullptr;
    ops_ = nullptr;
    owned_ = nullptr;
  }

  void* object_ = nullptr;
  const detail::Ops* ops_ = nullptr;
  std::string role_;
  std::vector<std::string> depends_on_;
  std::vector<std::string> (*owned_)(const void*) = nullptr; // the type's owned_paths(), if it has them
};

/// What `DynamicStack::get()` returns (as ComponentRef, or ConstComponentRef
/// from a const stack): a handle to one of the stack's components, through which
/// its queries, its actions (not through a ConstComponentRef) and `target<T>()`
/// work. It refers to the component the stack holds, so it cannot replace or
/// empty it: it cannot be assigned (neither an AnyComponent nor another handle)
/// nor moved from, and it gives no AnyComponent& out. A copy is a second handle
/// to the same component; a ComponentRef converts to a ConstComponentRef, as
/// `T*` to `const T*`. Valid while the stack lives and is not moved.
template <class Any> class BasicComponentRef {
  static constexpr bool read_only = std::is_const_v<Any>;

public:
  BasicComponentRef(const BasicComponentRef&) noexcept = default;
  template <class Other>
    requires(read_only && std::is_same_v<Other, std::remove_const_t<Any>>)
  BasicComponentRef(const BasicComponentRef<Other>& r) noexcept : c_(r.c_) {} // NOLINT(google-explicit-constructor)
  BasicComponentRef(BasicComponentRef&&) = delete;
  BasicComponentRef& operator=(const BasicComponentRef&) = delete;
  BasicComponentRef& operator=(BasicComponentRef&&) = delete;
  ~BasicComponentRef() = default;

  /// As AnyComponent: the role, dependencies, display name, flavor, detail, log file and command,
  /// exit descriptor, exit status, supervision config, owned paths, state.
  [[nodiscard]] const std::string& role() const noexcept { return c_->role(); }
  [[nodiscard]] const std::vector<std::string>& depends_on() const noexcept { return c_->depends_on(); }
  [[nodiscard]] std::string_view name() const { return c_->name(); }
  [[nodiscard]] std::string_view flavor() const { return c_->flavor(); }
  [[nodiscard]] std::string detail() const { return c_->detail(); }
  [[nodiscard]] std::string log_file() const { return c_->log_file(); }
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const { return c_->log_command(request); }
  [[nodiscard]] int exit_fd() const { return c_->exit_fd(); }
  [[nodiscard]] std::optional<Exit> exit_status() const { return c_->exit_status(); }
  [[nodiscard]] SupervisionConfig supervision() const { return c_->supervision(); }
  [[nodiscard]] std::vector<std::string> owned_paths() const { return c_->owned_paths(); }
  [[nodiscard]] State state() const { return c_->state(); }
  /// The wrapped queries.
  [[nodiscard]] bool is_provisioned() const { return c_->is_provisioned(); }
  [[nodiscard]] bool is_running() const { return c_->is_running(); }
  /// Whether the wrapped type has that action.
  [[nodiscard]] bool has(Transition t) const { return c_->has(t); }
  /// The wrapped `is_current()` (true without one); whether it has `update()`.
  [[nodiscard]] bool is_current() const { return c_->is_current(); }
  [[nodiscard]] bool has_update() const { return c_->has_update(); }
  /// The wrapped actions (NotImplementedError when the type lacks one), run on
  /// this component alone, as AnyComponent's. Not through a ConstComponentRef.
  void provision() const requires(!read_only) { c_->provision(); }
  void resume() const requires(!read_only) { c_->resume(); }
  void suspend() const requires(!read_only) { c_->suspend(); }
  void deprovision() const requires(!read_only) { c_->deprovision(); }
  void update() const requires(!read_only) { c_->update(); }
  /// The wrapped `kill()` (false without one), as AnyComponent's. Not through a ConstComponentRef.
  bool kill() const requires(!read_only) { return c_->kill(); }
  /// The wrapped object if it is a T (a const T through a ConstComponentRef), else nullptr.
  template <class T> [[nodiscard]] auto* target() const noexcept { return c_->template target<T>(); }

private:
  friend class DynamicStack;
  template <class> friend class BasicComponentRef;
  explicit BasicComponentRef(Any& c) noexcept : c_(&c) {}
  Any* c_;
};

/// A handle to a DynamicStack's component: see BasicComponentRef.
using ComponentRef = BasicComponentRef<AnyComponent>;
/// A handle to a const DynamicStack's component: queries and a const `target<T>()`, no actions.
using ConstComponentRef = BasicComponentRef<const AnyComponent>;

} // namespace stackup
// ---- end stackup/any_component.hpp ----

// ---- begin stackup/dynamic_stack.hpp ----
// stackup — DynamicStack: a stack assembled at run time (from a file, a plugin, a
// command line), with the same operations, semantics, events and errors as
// Stack<Cs...>: both are fronts over one engine (detail/engine.hpp).
// SPDX-License-Identifier: MIT


#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup {

/// A stack of AnyComponents with unique roles, checked when it is built
/// (StackDefinitionError). Actions run in dependency order (ties by listing
/// order); suspend and deprovision in reverse. Movable, not copyable.
class DynamicStack {
public:
  /// A stack named "default".
  explicit DynamicStack(std::vector<AnyComponent> components) : DynamicStack("default", std::move(components)) {}
  /// A named stack of the given components; StackDefinitionError if it cannot exist.
  DynamicStack(std::string name, std::vector<AnyComponent> components)
      : name_(std::move(name)), parts_(std::move(components)) {
    plan();
    table_ = make_table();
  }
  DynamicStack(DynamicStack&& other) noexcept
      : name_(std::move(other.name_)), parts_(std::move(other.parts_)), roles_(std::move(other.roles_)),
        slots_(std::move(other.slots_)), ordered_(std::move(other.ordered_)), order_(std::move(other.order_)),
        first_(std::move(other.first_)), dep_(std::move(other.dep_)), sorted_(std::move(other.sorted_)),
        marks_(std::move(other.marks_)), events_(std::move(other.events_)), table_(make_table()) {
    other.table_ = other.make_table(); // empty: a moved-from stack acts on nothing
  }
  DynamicStack& operator=(DynamicStack&& other) noexcept {
    if (this != &other) {
      name_ = std::move(other.name_);
      parts_ = std::move(other.parts_);
      roles_ = std::move(other.roles_);
      slots_ = std::move(other.slots_);
      ordered_ = std::move(other.ordered_);
      order_ = std::move(other.order_);
      first_ = std::move(other.first_);
      dep_ = std::move(other.dep_);
      sorted_ = std::move(other.sorted_);
      marks_ = std::move(other.marks_);
      events_ = std::move(other.events_);
      table_ = make_table();
      other.table_ = other.make_table();
    }
    return *this;
  }
  DynamicStack(const DynamicStack&) = delete;
  DynamicStack& operator=(const DynamicStack&) = delete;
  ~DynamicStack() = default;

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }
  /// Number of components.
  [[nodiscard]] std::size_t size() const noexcept { return parts_.size(); }
  /// Roles in the order given.
  [[nodiscard]] std::span<const std::string_view> roles() const noexcept { return roles_; }
  /// Indices of the components in action order (provision/resume order).
  [[nodiscard]] std::span<const std::size_t> order() const noexcept { return order_; }
  /// Index (position in the order given) of a role, or size() when absent. O(log N).
  [[nodiscard]] std::size_t find(std::string_view role) const noexcept {
    const auto at = std::lower_bound(sorted_.begin(), sorted_.end(), role,
                                     [&](std::size_t i, std::string_view r) { return roles_[i] < r; });
    return at != sorted_.end() && roles_[*at] == role ? *at : size();
  }
  /// A handle to the component with that role (its queries, its actions,
  /// `target<T>()`), which cannot replace or empty it; UnknownComponentError when
  /// the stack lacks it.
  [[nodiscard]] ComponentRef get(std::string_view role) { return ComponentRef(parts_[checked(role)]); }
  [[nodiscard]] ConstComponentRef get(std::string_view role) const { return ConstComponentRef(parts_[checked(role)]); }

  /// The stack's public, read-only face (roles, order, dependencies, plans,
  /// status, flavours, log files); valid while the stack lives, until it is moved from.
  [[nodiscard]] StackView view() const noexcept { return StackView(table_); }

  /// Set the observer (replaces any previous one; an empty function removes it)
  /// and return the one it replaces, so that a tool can put it back. As for
  /// Stack<Cs...>: called one event at a time, its exceptions ignored; called by
  /// the observer itself, the replacement takes effect when it returns.
  Observer on_event(Observer observer) { return events_.set(std::move(observer)); }

  // ---- ZenML's Stack primitives (as Stack<Cs...>) ----------------------------------

  /// Provision every component that is not provisioned, in dependency order.
  void provision() { detail::primitive(table(), detail::Phase::provision); }
  /// Resume every component that is not running, in dependency order.
  void resume() { detail::primitive(table(), detail::Phase::resume); }
  /// Suspend every running component, in reverse order; tries every component.
  void suspend() { detail::exhaustive(table(), detail::Phase::suspend); }
  /// Deprovision every provisioned component, in reverse order; tries every component.
  void deprovision() { detail::exhaustive(table(), detail::Phase::deprovision); }

  // ---- Operations (as Stack<Cs...>) ---------------------------------------------------

  /// `zenml stack up`: provision() then resume(); all-or-nothing unless `.rollback = false`.
  void up(UpOptions options = {}) { detail::up(table(), options); }
  /// `zenml stack down [--force]`: tries every component, then one TransitionError.
  void down(DownOptions options = {}) { detail::down(table(), options); }
  /// `zenml <role> up`: its dependencies first; UnknownComponentError for a role it lacks.
  void up(std::string_view role, UpOptions options = {}) { detail::up_one(table(), checked(role), options); }
  /// `zenml <role> down [--force]`: its dependents first (with `.dependents = Dependents::keep`,
  /// the role alone); UnknownComponentError for a role it lacks.
  void down(std::string_view role, DownOptions options = {}) { detail::down_one(table(), checked(role), options); }

  // ---- Queries ----------------------------------------------------------------------

  /// Every component is provisioned.
  [[nodiscard]] bool is_provisioned() const {
    const detail::WalkRound round;
    return std::all_of(parts_.begin(), parts_.end(), [](const AnyComponent& c) { return c.is_provisioned(); });
  }
  /// Every component is running.
  [[nodiscard]] bool is_running() const {
    const detail::WalkRound round;
    return std::all_of(parts_.begin(), parts_.end(), [](const AnyComponent& c) { return c.is_running(); });
  }
  /// One row per component, in the order given. Changes nothing.
  [[nodiscard]] std::vector<ComponentStatus> status() const {
    const detail::WalkRound round;
    const detail::Table& t = table();
    std::vector<ComponentStatus> rows;
    rows.reserve(size());
    for (std::size_t k = 0; k < size(); ++k) rows.push_back(t.status(k));
    return rows;
  }
  /// UnknownComponentError listing the valid roles, for a role string not in the stack.
  [[nodiscard]] UnknownComponentError unknown_role(std::string_view role) const {
    return detail::unknown_role(name_, roles_, role);
  }

private:
  [[nodiscard]] const detail::Table& table() const noexcept { return table_; }
  // The engine's view of this stack: spans of the members, rebuilt when it moves.
  [[nodiscard]] detail::Table make_table() const {
    return {name_, slots_, ordered_, roles_, order_, first_, dep_, &events_, marks_};
  }
  [[nodiscard]] std::size_t checked(std::string_view role) const {
    const std::size_t k = find(role);
    if (k == size()) throw unknown_role(role);
    return k;
  }

  [[noreturn]] void refuse(StackDefinitionError::Kind kind, std::vector<std::string> roles,
                            std::vector<std::size_t> components, std::vector<std::string> paths = {},
                            std::string_view held = {}) const {
    throw StackDefinitionError(name_, kind, std::move(roles), std::move(components), std::move(paths), held);
  }
  [[nodiscard]] std::string listed_roles() const {
    constexpr std::size_t shown = 20;
    std::string s;
    for (std::size_t i = 0; i < roles_.size() && i < shown; ++i) s.append(i ? ", " : "").append(roles_[i]);
    if (roles_.size() > shown) s += ", ... (" + std::to_string(roles_.size() - shown) + " more)";
    return s;
  }

  // Checks the stack and computes its plan: O(N log N + E log N).
  void plan() {
    const std::size_t n = parts_.size();
    std::size_t edges = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!parts_[i].has_value()) refuse(StackDefinitionError::Kind::empty_component, {}, {i});
      edges += parts_[i].depends_on_.size();
    }
    roles_.reserve(n);
    slots_.reserve(n);
    first_.reserve(n + 1);
    std::vector<std::string_view> names;
    names.reserve(edges);
    for (auto& c : parts_) {
      roles_.emplace_back(c.role_);
      slots_.push_back({c.object_, c.ops_, slots_.size()});
      first_.push_back(names.size());
      for (const auto& d : c.depends_on_) names.emplace_back(d);
    }
    first_.push_back(names.size());
    dep_.resize(edges);
    order_.resize(n);
    marks_.resize(n);
    sorted_.resize(n);
    std::vector<std::size_t> waiting(n), next_first(n + 1), next(edges), heap(n);
    const detail::PlanScratch scratch{sorted_, waiting, next_first, next, heap};
    const detail::PlanProblem p = detail::compute_plan(roles_, first_, names, dep_, order_, scratch);
    using Kind = StackDefinitionError::Kind;
    switch (p.error) {
    case detail::PlanError::none: {
      ordered_.reserve(n);
      for (const std::size_t k : order_) ordered_.push_back(slots_[k]);
      // One owner per path, when two or more components own paths; the strings
      // live until the check is done.
      if (std::count_if(parts_.begin(), parts_.end(), [](const AnyComponent& c) { return c.owned_ != nullptr; }) < 2)
        return;
      std::vector<std::vector<std::string>> owned(n);
      std::vector<detail::OwnedPath> paths;
      for (std::size_t k = 0; k < n; ++k) {
        if (!parts_[k].owned_) continue;
        owned[k] = parts_[k].owned_paths();
        for (const auto& path : owned[k]) paths.push_back({path, k});
      }
      if (const detail::OwnedClash c = detail::owned_path_clash(std::move(paths)); c.found)
        refuse(Kind::overlapping_paths, {std::string(roles_[c.first]), std::string(roles_[c.second])},
               {c.first, c.second}, {std::string(c.first_path), std::string(c.second_path)});
      return;
    }
    case detail::PlanError::empty_role:
      refuse(Kind::empty_role, {std::string()}, {p.a});
    case detail::PlanError::duplicate:
      refuse(Kind::duplicate_role, {std::string(roles_[p.a]), std::string(roles_[p.b])}, {p.a, p.b});
    case detail::PlanError::missing:
      refuse(Kind::unknown_dependency, {std::string(roles_[p.a]), std::string(names[first_[p.a] + p.b])}, {p.a}, {},
             listed_roles());
    case detail::PlanError::cycle: {
      // The path from the cycle's first component in listing order, back to it.
      std::size_t start = p.a;
      for (std::size_t at = detail::cycle_next(p.a, first_, dep_, scratch); at != p.a;
           at = detail::cycle_next(at, first_, dep_, scratch))
        start = std::min(start, at);
      std::vector<std::string> path;
      std::vector<std::size_t> on;
      std::size_t at = start;
      do {
        path.emplace_back(roles_[at]);
        on.push_back(at);
        at = detail::cycle_next(at, first_, dep_, scratch);
      } while (at != start);
      refuse(Kind::cycle, std::move(path), std::move(on));
    }
    }
  }

  std::string name_;
  std::vector<AnyComponent> parts_;
  std::vector<std::string_view> roles_; // views of parts_[i].role_, which do not move
  std::vector<detail::Slot> slots_, ordered_; // listing order, action order
  std::vector<std::size_t> order_, first_, dep_, sorted_;
  mutable std::vector<unsigned char> marks_; // the engine's scratch, one byte per component
  mutable detail::Events events_;
  detail::Table table_{make_table()};
};

} // namespace stackup
// ---- end stackup/dynamic_stack.hpp ----

// ---- begin stackup/parallel.hpp ----
// stackup — the scheduler of parallel transitions (`.parallel = true`), kept out
// of the core headers so that a stack that does not use it does not pay for
// <thread> and <mutex>. The umbrella header <stackup/stackup.hpp> includes it.
// SPDX-License-Identifier: MIT


#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace stackup::detail {

/// Runs `step(i)` for every component i in scope (`scope` 0: all; else those
/// whose mark has a `scope` bit), each as soon as its prerequisites in scope have
/// finished: its dependencies, or with `reverse` its dependents. `step` must not
/// throw; it returns false to stop scheduling new steps (steps in flight still
/// finish). Threads: one per ready component, at most `max_threads` (0: no
/// limit), the calling thread included. Returns when every started step ended.
template <class Step>
void run_dag(const Table& t, std::span<const unsigned char> marks, unsigned char scope, bool reverse,
             std::size_t max_threads, Step&& step) {
  const std::size_t n = t.size();
  auto in = [&](std::size_t i) { return scope == 0 || (marks[i] & scope) != 0; };
  std::vector<std::size_t> waiting(n, 0);
  std::vector<std::vector<std::size_t>> next(n); // who waits for i
  std::size_t pending = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!in(i)) continue;
    ++pending;
    for (std::size_t e = t.first[i]; e < t.first[i + 1]; ++e) {
      const std::size_t d = t.dep[e];
      if (!in(d)) continue;
      const std::size_t before = reverse ? i : d, after = reverse ? d : i;
      next[before].push_back(after);
      ++waiting[after];
    }
  }
  std::vector<std::size_t> ready;
  for (std::size_t i = n; i-- > 0;) // reversed, so that pop_back takes the lowest index first
    if (in(i) && waiting[i] == 0) ready.push_back(i);

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
  for (auto& th : threads) th.join();
}

/// A std::mutex as the engine's Lock.
class MutexLock final : public Lock {
public:
  void lock() override { m_.lock(); }
  void unlock() override { m_.unlock(); }

private:
  std::mutex m_;
};

/// One phase in parallel: failures and events are serialised by one lock.
inline bool run_parallel_phase(const Table& t, Run& r, Phase p, unsigned char scope, std::size_t max_threads) {
  MutexLock guard;
  r.guard = &guard;
  t.events->guard = &guard;
  struct Reset {
    const Table& t;
    Run& r;
    ~Reset() { t.events->guard = nullptr, r.guard = nullptr; }
  } reset{t, r};
  // Workers carry the caller's observers in progress, so that an operation they
  // start from inside one is refused there too (the frames outlive run_dag).
  const Reporting* const caller = reporting;
  run_dag(t, r.marks, scope, reversed(p), max_threads, [&](std::size_t k) {
    if (r.stop && r.stop->stop_requested()) [[unlikely]]
      return interrupted(r, k, p, "this one and those not started yet");
    const StopScope stop_scope(r, p); // on this worker's thread
    const Reporting* const own = std::exchange(reporting, caller);
    Indirect a{t, k};
    const bool ok = step(p, a, r);
    reporting = own;
    return ok;
  });
  return !r.failed;
}

// Registers the scheduler with the engine when this header is part of the program.
inline const bool parallel_registered = (parallel_phase = &run_parallel_phase, true);

} // namespace stackup::detail
// ---- end stackup/parallel.hpp ----

// ---- begin stackup/format.hpp ----
// stackup — fmt formatters, the status table and the console observer.
// SPDX-License-Identifier: MIT


#include <fmt/color.h>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <unistd.h>

namespace stackup::detail {
/// Formats a name (a State, an Outcome...) as fmt formats a string, format spec
/// included (`{:>9}`, `{:<{}}`, `{:.3}`). It does not inherit from
/// fmt::formatter<std::string_view>: run at run time for a type of ours, that
/// formatter's parse draws GCC 12's -Wstringop-overflow at -O3 inside fmt's
/// header (a false positive in fmt 8 and 9, where no pragma of ours reaches).
/// The spec is checked by fmt at compile time as before; at run time it is
/// kept as text and handed to fmt's own formatting of a string.
class NameFormatter {
public:
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    if (std::is_constant_evaluated()) return fmt::formatter<std::string_view>().parse(ctx); // fmt's own checks
    auto it = ctx.begin();
    const auto end = ctx.end();
    while (it != end && *it != '}') {
      if (*it != '{') {
        ++it;
        continue;
      }
      // A dynamic width or precision: `{}`, `{2}` or `{name}`; claim its argument
      // as fmt would, so the arguments after it keep their numbers.
      const auto open = ++it;
      while (it != end && *it != '}') ++it;
      if (it == end || refs_ == 2) throw fmt::format_error("invalid format specifier");
      Ref& r = ref_[refs_++];
      r.text = std::string_view(open, static_cast<std::size_t>(it - open));
      if (r.text.empty()) r.id = ctx.next_arg_id();
      else if (r.text.find_first_not_of("0123456789") == std::string_view::npos) {
        r.id = 0;
        for (const char c : r.text) r.id = r.id * 10 + (c - '0');
        ctx.check_arg_id(r.id);
      } else ctx.check_arg_id(fmt::string_view(r.text.data(), r.text.size()));
      ++it;
    }
    spec_ = std::string_view(ctx.begin(), static_cast<std::size_t>(it - ctx.begin()));
    return it;
  }

  auto format(std::string_view text, fmt::format_context& ctx) const -> decltype(ctx.out()) {
    if (spec_.empty()) {
      auto out = ctx.out();
      for (const char c : text) *out++ = c;
      return out;
    }
    // The spec again, its dynamic values written in: "{:<{}}" becomes "{:<12}".
    std::string spec = "{:";
    std::string_view rest = spec_;
    for (std::size_t i = 0; i < refs_; ++i) {
      const std::size_t at = rest.find('{');
      spec.append(rest.substr(0, at));
      spec += std::to_string(value(ctx, ref_[i]));
      rest.remove_prefix(rest.find('}', at) + 1);
    }
    spec.append(rest);
    spec += '}';
    return fmt::vformat_to(ctx.out(), spec, fmt::make_format_args(text));
  }

private:
  struct Ref {
    std::string_view text; // between the braces
    int id = -1;           // the argument's number; -1: by name
  };
  static unsigned long long value(fmt::format_context& ctx, const Ref& r) {
    const auto arg = r.id >= 0 ? ctx.arg(r.id) : ctx.arg(fmt::string_view(r.text.data(), r.text.size()));
    const auto number = [](auto v) -> unsigned long long {
      using T = decltype(v);
      if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>) {
        if constexpr (std::is_signed_v<T>)
          if (v < 0) throw fmt::format_error("negative width");
        return static_cast<unsigned long long>(v);
      } else {
        throw fmt::format_error("width is not integer");
      }
    };
#if FMT_VERSION >= 110000
    return arg.visit(number);
#else
    return fmt::visit_format_arg(number, arg);
#endif
  }

  std::string_view spec_;
  Ref ref_[2];
  std::size_t refs_ = 0;
};
} // namespace stackup::detail

template <> struct fmt::formatter<stackup::State> : stackup::detail::NameFormatter {
  auto format(stackup::State v, fmt::format_context& ctx) const { return NameFormatter::format(stackup::to_string(v), ctx); }
};
template <> struct fmt::formatter<stackup::Transition> : stackup::detail::NameFormatter {
  auto format(stackup::Transition v, fmt::format_context& ctx) const {
    return NameFormatter::format(stackup::to_string(v), ctx);
  }
};
template <> struct fmt::formatter<stackup::Outcome> : stackup::detail::NameFormatter {
  auto format(stackup::Outcome v, fmt::format_context& ctx) const {
    return NameFormatter::format(stackup::to_string(v), ctx);
  }
};
/// `role 'name': state`, plus ` (detail)` when the component offers one, and
/// `outdated` first in the parentheses when its settings changed (`current` false).
template <> struct fmt::formatter<stackup::ComponentStatus> : stackup::detail::NameFormatter {
  auto format(const stackup::ComponentStatus& s, fmt::format_context& ctx) const {
    std::string text = fmt::format("{} '{}': {}", s.role, s.name, s.state);
    if (!s.current) text += s.detail.empty() ? std::string(" (outdated)") : fmt::format(" (outdated; {})", s.detail);
    else if (!s.detail.empty()) text += fmt::format(" ({})", s.detail);
    return NameFormatter::format(text, ctx);
  }
};

namespace stackup {

/// Whether to decorate output written to `stream`: a terminal, and NO_COLOR unset.
inline bool use_color(std::FILE* stream) {
  const char* no_color = std::getenv("NO_COLOR");
  return (no_color == nullptr || *no_color == '\0') && ::isatty(::fileno(stream)) == 1;
}

namespace detail {
/// `text` in `style`: the bytes fmt::styled(text, style) gives. fmt::styled runs
/// fmt::formatter<std::string_view>'s parse at run time, which draws GCC 12's
/// -Wstringop-overflow at -O3 inside fmt's header (see NameFormatter).
inline std::string styled(std::string_view text, const fmt::text_style& style) {
  return fmt::format(style, "{}", text);
}
} // namespace detail

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
  // A start or success says why when the engine gave a reason ("settings changed").
  case Outcome::started:
    what = e.message.empty() ? fmt::format("{} ...", participle(e.transition))
                             : fmt::format("{} ({}) ...", participle(e.transition), e.message);
    break;
  case Outcome::succeeded:
    what = e.message.empty() ? fmt::format("{}  {:.2f}s", past_tense(e.transition), seconds)
                             : fmt::format("{} ({})  {:.2f}s", past_tense(e.transition), e.message, seconds);
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
  return fmt::format("{} {} '{}' {}", detail::styled(look.symbol, look.style), detail::styled(e.role, fmt::emphasis::bold),
                     e.component, what);
}

namespace detail {
/// A signal's name ("SIGKILL"), or "signal N" for one not in the table
/// (strsignal is neither thread-safe nor the name).
inline std::string signal_name(int signal) {
  static constexpr std::pair<int, std::string_view> names[] = {
      {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},     {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},
      {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},     {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
      {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},   {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
      {SIGCHLD, "SIGCHLD"}, {SIGCONT, "SIGCONT"},   {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
      {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},     {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGVTALRM, "SIGVTALRM"},
      {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"}, {SIGSYS, "SIGSYS"},
  };
  for (const auto& [number, name] : names)
    if (number == signal) return std::string(name);
  return fmt::format("signal {}", signal);
}
/// "1st", "2nd", "3rd", "4th", "11th", "21st".
inline std::string ordinal(unsigned n) {
  const unsigned tens = n % 100, ones = n % 10;
  const char* suffix = (tens >= 11 && tens <= 13) ? "th" : ones == 1 ? "st" : ones == 2 ? "nd" : ones == 3 ? "rd" : "th";
  return fmt::format("{}{}", n, suffix);
}
/// A duration as a stack file writes one: "400ms", "2s", "1m", "1500ms".
inline std::string duration_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 60000 == 0) return fmt::format("{}m", ms / 60000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}
/// HH:MM:SS in local time, for the status table.
inline std::string local_time_of_day(std::chrono::system_clock::time_point at) {
  const std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  if (::localtime_r(&t, &tm) == nullptr) return "?";
  return fmt::format("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
}
/// RFC 3339 in UTC with milliseconds ("2026-12-07T12:00:01.123Z"), for JSON.
inline std::string utc_timestamp(std::chrono::system_clock::time_point at) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const auto millis = ((ms % 1000) + 1000) % 1000; // before 1970 too
  const std::time_t t = static_cast<std::time_t>((ms - millis) / 1000);
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return "?";
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}
/// How it ended, without when: "exited 3", "killed by SIGKILL", "unhealthy
/// (<what the probe saw>)", "restart failed (<why>)".
inline std::string exit_phrase(const Exit& e) {
  if (e.code) return fmt::format("exited {}", *e.code);
  if (e.signal) return "killed by " + signal_name(*e.signal);
  if (!e.liveness.empty()) return fmt::format("unhealthy ({})", e.liveness);
  if (!e.error.empty()) return fmt::format("restart failed ({})", e.error);
  return "exited";
}
/// What the status table's DETAIL says of supervision before the component's
/// own detail; empty for a row without an exit, restarts or supervision
/// (such a row looks as it did before supervision).
inline std::string supervision_phrase(const ComponentStatus& r) {
  std::string out;
  const auto add = [&out](std::string_view part) {
    if (!out.empty()) out += ", ";
    out += part;
  };
  if (r.supervision == SupervisionState::failed) {
    out = "failed";
    if (r.exit) out += ": " + exit_phrase(*r.exit);
    out += fmt::format("{}{} restart{}", r.exit ? ", " : ": ", r.restarts, r.restarts == 1 ? "" : "s");
    return out;
  }
  if (r.exit) add(fmt::format("{} at {}", exit_phrase(*r.exit), local_time_of_day(r.exit->at)));
  if (r.supervision == SupervisionState::backing_off) add(fmt::format("restarting ({})", ordinal(r.restarts + 1)));
  else if (r.restarts > 0) add(fmt::format("restarts {}", r.restarts));
  return out;
}
} // namespace detail

/// One line for a supervisor's event; `fancy` selects colour and symbols
/// (plain ASCII otherwise: `~` for an exit or restart, `x` for a give-up or a
/// liveness failure):
/// - exited: `↻ cache 'redis' exited (exit status 3)`, `(killed by SIGKILL)`, `(unhealthy: ...)`
/// - restarting: `↻ cache 'redis' restarting in 100ms (1st)`
/// - failed: `✘ cache 'redis' failed: 5 restarts within 1m, last exited 3`; the
///   event's `message` says why it gave up ("5 restarts within 1m"), else
///   `<restarts> restarts`
/// - unhealthy: `✘ app 'app' unhealthy (1st failure): http 127.0.0.1:8090/health: 503`
///   (`restarts`: failures in a row; `message`: what the probe saw)
inline std::string supervision_line(const SupervisionEvent& e, bool fancy) {
  std::string what;
  switch (e.kind) {
  case SupervisionEvent::Kind::exited:
    what = "exited";
    if (e.exit) {
      if (e.exit->code) what += fmt::format(" (exit status {})", *e.exit->code);
      else if (e.exit->signal) what += " (killed by " + detail::signal_name(*e.exit->signal) + ")";
      else if (!e.exit->liveness.empty()) what += fmt::format(" (unhealthy: {})", e.exit->liveness);
      else if (!e.exit->error.empty()) what += fmt::format(" (restart failed: {})", e.exit->error);
    }
    if (!e.message.empty()) what += ": " + e.message;
    break;
  case SupervisionEvent::Kind::restarting:
    what = fmt::format("restarting in {} ({})", detail::duration_text(e.delay), detail::ordinal(e.restarts));
    if (!e.message.empty()) what += ": " + e.message;
    break;
  case SupervisionEvent::Kind::failed:
    what = "failed: ";
    what += e.message.empty() ? fmt::format("{} restart{}", e.restarts, e.restarts == 1 ? "" : "s") : e.message;
    if (e.exit) what += ", last " + detail::exit_phrase(*e.exit);
    break;
  case SupervisionEvent::Kind::unhealthy:
    what = "unhealthy";
    if (e.restarts > 0) what += fmt::format(" ({} failure)", detail::ordinal(e.restarts));
    if (!e.message.empty()) what += ": " + e.message;
    break;
  }
  const bool bad = e.kind == SupervisionEvent::Kind::failed || e.kind == SupervisionEvent::Kind::unhealthy;
  if (!fancy) return fmt::format("{} {} '{}' {}", bad ? "x" : "~", e.role, e.component, what);
  return fmt::format("{} {} '{}' {}",
                     detail::styled(bad ? "✘" : "↻", fmt::fg(bad ? fmt::terminal_color::red : fmt::terminal_color::yellow)),
                     detail::styled(e.role, fmt::emphasis::bold), e.component, what);
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
/// DETAIL is the component's detail, after `outdated` (its settings changed
/// since it was provisioned: the next up updates or recreates it) and what
/// supervision says of the row, parts joined by "; ": `exited 3 at 12:00:01; pid 7`, `killed by
/// SIGKILL at 12:00:01, restarting (3rd)`, `failed: exited 3, 5 restarts`,
/// `restarts 2; pid 9` (times local, HH:MM:SS).
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
      state = detail::styled(state, fmt::fg(color));
    }
    std::string detail = r.current ? "" : "outdated";
    for (const std::string& part : {detail::supervision_phrase(r), r.detail})
      if (!part.empty()) detail.append(detail.empty() ? "" : "; ").append(part);
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}  {}", r.role, w_role, r.name, w_name, r.flavor, w_flavor, state,
                       detail);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

namespace detail {
// Length of the well-formed UTF-8 sequence at the start of `s`, or 0.
inline std::size_t utf8_length(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b = byte(0);
  const std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || n > s.size()) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((byte(i) & 0xc0) != 0x80) return 0;
  const unsigned second = byte(n > 1 ? 1 : 0);
  if ((b == 0xc0 || b == 0xc1) || (b == 0xe0 && second < 0xa0) || (b == 0xed && second > 0x9f) ||
      (b == 0xf0 && second < 0x90) || b > 0xf4 || (b == 0xf4 && second > 0x8f))
    return 0; // overlong, surrogate or beyond U+10FFFF
  return n;
}

// A JSON string literal: quotes, backslashes and control characters escaped,
// bytes that are not UTF-8 (a path may hold any) replaced by U+FFFD.
inline void json_string(std::string& out, std::string_view text) {
  out += '"';
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const std::size_t n = utf8_length(text.substr(i));
      if (n == 0) {
        out += "\\ufffd";
        continue;
      }
      out += text.substr(i, n);
      i += n - 1;
      continue;
    }
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      else out += c;
    }
  }
  out += '"';
}
} // namespace detail

/// Renders `status()` as a JSON array, one object per component with the keys
/// `role`, `name`, `flavor`, `state` and `detail` (strings), `restarts` (a
/// number), `exit` (null, or one of `{"code": 3, "at": T}`, `{"signal":
/// "SIGKILL", "at": T}`, `{"liveness": "...", "at": T}`, `{"error": "...", "at":
/// T}`, T in RFC 3339 UTC with milliseconds) and `supervision` ("none",
/// "watching", "backing-off", "failed") and `current` (false: outdated, its
/// settings changed since it was provisioned), and a final newline.
inline std::string status_json(std::span<const ComponentStatus> rows) {
  std::string out = "[";
  for (const auto& r : rows) {
    out += out.size() == 1 ? "\n  {" : ",\n  {";
    const std::pair<std::string_view, std::string_view> fields[] = {
        {"role", r.role}, {"name", r.name}, {"flavor", r.flavor}, {"state", to_string(r.state)}, {"detail", r.detail}};
    for (const auto& [key, value] : fields) {
      if (key != "role") out += ", ";
      detail::json_string(out, key);
      out += ": ";
      detail::json_string(out, value);
    }
    out += fmt::format(", \"restarts\": {}, \"exit\": ", r.restarts);
    if (!r.exit) out += "null";
    else {
      const Exit& e = *r.exit;
      if (e.code) out += fmt::format("{{\"code\": {}", *e.code);
      else if (e.signal) {
        out += "{\"signal\": ";
        detail::json_string(out, detail::signal_name(*e.signal));
      } else {
        out += e.liveness.empty() && !e.error.empty() ? "{\"error\": " : "{\"liveness\": ";
        detail::json_string(out, e.liveness.empty() ? e.error : e.liveness);
      }
      out += ", \"at\": ";
      detail::json_string(out, detail::utc_timestamp(e.at));
      out += '}';
    }
    out += ", \"supervision\": ";
    detail::json_string(out, to_string(r.supervision));
    out += r.current ? ", \"current\": true}" : ", \"current\": false}";
  }
  out += rows.empty() ? "]\n" : "\n]\n";
  return out;
}

} // namespace stackup
// ---- end stackup/format.hpp ----

// ---- begin stackup/stack_lock.hpp ----
// stackup — StackLock: one transition of a stack at a time, across processes.
// SPDX-License-Identifier: MIT


#include <cerrno>
#include <ctime>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stackup {

/// How a StackLock is held.
enum class LockMode {
  shared,    ///< many holders at once: what only reads the stack (status, logs)
  exclusive, ///< one holder, no shared ones: what acts on the stack (up, down)
};

/// An advisory lock (flock) on a stack's file, so that processes acting on the
/// same stack take turns: `cli::run` takes it exclusive for up and down and
/// shared for status and logs when `cli::Options::lock_file` names the file.
/// A host that acts on the stack itself takes it the same way:
///
///     stackup::StackLock lock("stackup.toml", stackup::LockMode::exclusive);
///     lock.lock();        // waits while another process holds it
///     stack.up();         // released when `lock` goes
///
/// The stack file is locked, not its directory: a LocalDirectory locks its
/// parent directory while it provisions or deprovisions, and flock does not nest
/// within one process (a second descriptor of the same directory would wait for
/// the first for ever), so a directory component beside the stack file would
/// hang. The file is opened read-only without following a symlink (name the
/// target) and must be a regular file. Movable, not copyable.
class StackLock {
public:
  /// Holds nothing.
  StackLock() noexcept = default;
  /// Opens `file` (a regular file, not through a symlink) to lock it in `mode`;
  /// takes nothing yet (`lock()`, `try_lock()`). Error naming the file and the
  /// fix when it cannot be opened or is not a regular file.
  StackLock(const std::filesystem::path& file, LockMode mode) : file_(file.string()), mode_(mode) {
    // O_NONBLOCK: a FIFO put in the file's place does not block the open.
    fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd_ < 0) {
      const int e = errno;
      throw Error("stackup: cannot lock the stack file " + file_ + ": " +
                  (e == ELOOP ? std::string("it is a symlink: name the file it points to")
                              : std::generic_category().message(e)));
    }
    struct ::stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      close();
      throw Error("stackup: cannot lock the stack file " + file_ +
                  ": it is not a regular file (a FIFO, a device, a directory?): name the stack file itself");
    }
  }
  StackLock(StackLock&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), held_(std::exchange(other.held_, false)), file_(std::move(other.file_)),
        mode_(other.mode_) {}
  StackLock& operator=(StackLock&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
      held_ = std::exchange(other.held_, false);
      file_ = std::move(other.file_);
      mode_ = other.mode_;
    }
    return *this;
  }
  StackLock(const StackLock&) = delete;
  StackLock& operator=(const StackLock&) = delete;
  /// Releases the lock (closing the file does).
  ~StackLock() { close(); }

  /// Takes the lock if no other process's hold is in the way; true when held.
  bool try_lock() {
    require_file();
    if (held_) return true;
    while (::flock(fd_, operation() | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return false;
      fail(errno);
    }
    return held_ = true;
  }
  /// Takes the lock, waiting while another process holds it. With a stop token
  /// (`.stop` as for up and down), a stop requested while waiting ends the wait
  /// with InterruptedError, holding nothing; without one, the wait ends only
  /// when the lock is taken (a signal handled meanwhile does not end it).
  void lock(StopTokenRef stop = nullptr) {
    require_file();
    if (held_) return;
    if (!stop) {
      while (::flock(fd_, operation()) != 0)
        if (errno != EINTR) fail(errno);
      held_ = true;
      return;
    }
    // A blocking flock cannot be woken by a stop token: look again every 20 ms.
    while (!try_lock()) {
      if (stop.stop_requested())
        throw InterruptedError("stackup: stopped while waiting for the lock on " + file_ +
                               " (another command on this stack was running): nothing was done");
      const struct ::timespec pause {0, 20'000'000};
      ::nanosleep(&pause, nullptr);
    }
  }
  /// Releases the lock, keeping the file open to take it again.
  void unlock() noexcept {
    if (held_ && fd_ >= 0) ::flock(fd_, LOCK_UN);
    held_ = false;
  }

  /// The lock is held.
  [[nodiscard]] bool owns_lock() const noexcept { return held_; }
  /// The mode it is (or would be) held in.
  [[nodiscard]] LockMode mode() const noexcept { return mode_; }
  /// The locked file, as named.
  [[nodiscard]] const std::string& file() const noexcept { return file_; }

private:
  [[nodiscard]] int operation() const noexcept { return mode_ == LockMode::exclusive ? LOCK_EX : LOCK_SH; }
  void require_file() const {
    if (fd_ < 0) throw Error("stackup: this StackLock has no file (default-constructed or moved from): make one with a file");
  }
  [[noreturn]] void fail(int e) const {
    throw Error("stackup: cannot lock the stack file " + file_ + ": " + std::generic_category().message(e));
  }
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    held_ = false;
  }

  int fd_ = -1;
  bool held_ = false;
  std::string file_;
  LockMode mode_ = LockMode::exclusive;
};

} // namespace stackup
// ---- end stackup/stack_lock.hpp ----
// The shipped components need Linux (/proc); elsewhere define STACKUP_NO_COMPONENTS.
#if !defined(STACKUP_NO_COMPONENTS)

// ---- begin stackup/components/local_daemon.hpp ----
// stackup — LocalDaemon<"role">: a local process that the stack starts and stops,
// tracked by a pid file holding the pid and the process start time, with
// readiness probes and cross-process locking.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix.hpp ----
// stackup — POSIX internals of the shipped components, assembled from their parts
// in detail/posix/: files, paths, directories, processes, sockets, spawn, probes,
// logs (each part builds on the ones before it). Not part of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/logs.hpp ----
// stackup — POSIX internals of the shipped components: log tails for error messages.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/probes.hpp ----
// stackup — POSIX internals of the shipped components: loopback readiness probes.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/spawn.hpp ----
// stackup — POSIX internals of the shipped components: spawning: running as another user,
// the child side, the waiter that stays a daemon's parent, shell commands.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/sockets.hpp ----
// stackup — POSIX internals of the shipped components: the TCP sockets listening on a
// port, and which processes hold them.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/processes.hpp ----
// stackup — POSIX internals of the shipped components: pid records carrying the process
// start time, reading /proc, and stopping a process group with escalation.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/directories.hpp ----
// stackup — POSIX internals of the shipped components: private state directories with
// flock locks, directories shared with other processes, removal that stays below a
// held directory, and the parents stackup creates.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/paths.hpp ----
// stackup — POSIX internals of the shipped components: paths stackup never takes over:
// home directories, and directories another user can write.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/posix/files.hpp ----
// stackup — POSIX internals of the shipped components: file descriptors (Fd), polling
// back-off, reading and writing files relative to a held directory, ownership markers.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT


#if !defined(__linux__)
#error "stackup: the shipped components (LocalDaemon, LocalDirectory, Command) need Linux: they read process start times from /proc/<pid>/stat to never signal a reused pid. On other systems define STACKUP_NO_COMPONENTS before including <stackup/stackup.hpp> to use the core alone, and write your own components."
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <ctime>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixFiles {

using milliseconds = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

/// The text of an errno value (thread-safe, unlike strerror).
static std::string sys_message(int e) { return std::system_category().message(e); }

/// `'path'`, for messages.
static std::string quoted(const std::filesystem::path& p) {
  // Built by appending: `"'" + p.string()` trips GCC 12's false -Wrestrict at -O3.
  std::string s(1, '\'');
  s += p.native();
  s += '\'';
  return s;
}

/// The deadline `timeout` from now. Saturates: a timeout too large for the
/// clock (milliseconds::max()) means "wait", where `Clock::now() + timeout`
/// would overflow (undefined behaviour) into a deadline in the past. Zero or
/// negative means now: no wait at all.
static Clock::time_point deadline_after(milliseconds timeout) noexcept {
  const auto now = Clock::now();
  if (timeout <= milliseconds::zero()) return now;
  if (timeout >= std::chrono::duration_cast<milliseconds>(Clock::time_point::max() - now))
    return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

/// "250ms", "10s", "1.5s": a duration for messages.
static std::string format_duration(milliseconds d) {
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
  /// The descriptor, now the caller's to close.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

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
static bool write_all(int fd, std::string_view data) noexcept {
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
static Fd open_own_file(int dirfd, const char* name, int flags, mode_t mode = 0) {
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
static std::string own_file_error(int e) {
  return e == EINVAL ? "it is not a regular file (a FIFO, a device or a directory?): remove it" : sys_message(e);
}

/// Reads at most `limit` bytes of `name` in directory `dirfd` without following
/// a symlink. Empty optional when the file does not exist; Error otherwise.
static std::optional<std::string> read_file_at(int dirfd, const char* name, std::size_t limit,
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
static void write_file_atomic(int dirfd, const std::string& name, std::string_view content,
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
static Fd above_stdio(Fd fd) {
  if (!fd || fd.get() > 2) return fd;
  Fd dup(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!dup) throw Error(std::string("stackup: cannot duplicate a file descriptor: ") + sys_message(errno));
  return dup;
}

// ---- ownership markers -----------------------------------------------------------------

/// How every ownership marker stackup writes begins: what tells a marker from a
/// file that merely has its name.
static constexpr std::string_view marker_prefix = "created by stackup";

/// Whether `name` in `dirfd` is a regular file (not a symlink) whose content
/// begins with `prefix`. False when it is not, or cannot be read.
static bool begins_with(int dirfd, const char* name, std::string_view prefix) {
  const Fd fd = open_own_file(dirfd, name, O_RDONLY);
  if (!fd) return false;
  std::string head(prefix.size(), '\0');
  std::size_t got = 0;
  while (got < head.size()) {
    const ssize_t n = ::read(fd.get(), head.data() + got, head.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got == head.size() && head == prefix;
}

/// Whether `name` in `dirfd` is a stackup ownership marker: a regular file
/// whose content begins with marker_prefix.
static bool has_marker(int dirfd, const char* name) { return begins_with(dirfd, name, marker_prefix); }

/// Creates the ownership marker `name` in `dirfd` with `content` (which begins
/// with marker_prefix), never replacing an existing file: the content is
/// written to `<name>.tmp` (O_CREAT | O_EXCL) and hard-linked to `name`, so a
/// reader sees no marker or the whole one. False when `name` already exists;
/// Error when it cannot be created.
static bool create_marker(int dirfd, const char* name, std::string_view content, const std::filesystem::path& shown_as) {
  const std::string tmp = std::string(name) + ".tmp";
  ::unlinkat(dirfd, tmp.c_str(), 0); // left by a create that was interrupted
  Fd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd || !write_all(fd.get(), content)) {
    const int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    throw Error("stackup: cannot write the ownership marker " + quoted(shown_as) + ": " + sys_message(e));
  }
  fd.reset();
  const int linked = ::linkat(dirfd, tmp.c_str(), dirfd, name, 0);
  const int e = errno;
  ::unlinkat(dirfd, tmp.c_str(), 0);
  if (linked == 0) return true;
  if (e == EEXIST) return false;
  throw Error("stackup: cannot create the ownership marker " + quoted(shown_as) + ": " + sys_message(e));
}

}; // struct PosixFiles

} // namespace stackup::detail
// ---- end stackup/detail/posix/files.hpp ----

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixPaths : PosixFiles<> {

// ---- paths stackup never takes over ---------------------------------------------------

/// Held while walking the user database: getpwent has one cursor per process.
static std::mutex& user_database() {
  static std::mutex m;
  return m;
}

/// A home directory and whose it is.
struct Home {
  std::filesystem::path path;
  std::string owner; ///< "user 'alice'", or "$HOME"
};

/// Every home directory: $HOME, and every user's in the user database — not
/// only the caller's: stackup run as root must not take over anyone's.
static std::vector<Home> home_directories() {
  std::vector<Home> out;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') out.push_back({h, "$HOME"});
  auto add = [&](const passwd& pw) {
    if (pw.pw_dir != nullptr && *pw.pw_dir != '\0')
      out.push_back({pw.pw_dir, "user '" + std::string(pw.pw_name != nullptr ? pw.pw_name : "?") + "'"});
  };
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  {
    const std::lock_guard<std::mutex> hold(user_database());
    ::setpwent();
    while (true) {
      const int r = ::getpwent_r(&pw, buf.data(), buf.size(), &found);
      if (r == ERANGE && buf.size() < (1U << 20)) {
        buf.resize(buf.size() * 2);
        continue;
      }
      if (r != 0 || found == nullptr) break;
      add(*found);
    }
    ::endpwent();
  }
  // A directory service may not list its users: the caller's own, looked up.
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) add(*found);
  return out;
}

/// Why stackup must never create, own or remove `p` as a whole: it is empty,
/// the root directory, a home directory of any user (or $HOME) or a parent of
/// one (symlinks in parents resolved). Empty when `p` is fine.
static std::string forbidden_directory(const std::filesystem::path& p) {
  if (p.empty()) return "the path is empty";
  std::error_code ec;
  const auto real = std::filesystem::weakly_canonical(p, ec);
  const auto& path = ec ? p : real;
  if (path == path.root_path()) return "it is the root directory";
  for (const auto& home : home_directories()) {
    const auto h = std::filesystem::weakly_canonical(home.path, ec);
    if (ec || h == h.root_path()) continue; // a home of "/" is no one's in particular: "/" is refused above
    if (path == h) return "it is the home directory of " + home.owner + " (" + h.string() + ")";
    const auto rel = h.lexically_relative(path);
    if (!rel.empty() && *rel.begin() != "..")
      return "it holds the home directory " + h.string() + " of " + home.owner;
  }
  return {};
}

/// The name of user `uid` ("uid 1234" when it has none).
static std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr && found->pw_name != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(uid);
}

/// Why a directory with status `st` is another user's, which stackup does not
/// take over: empty when it belongs to this user, or to a user named in `users`
/// (the users a stack runs its components as: a data directory owned by
/// postgres is the postgres daemon's).
static std::string foreign_owner(const struct stat& st, const std::vector<std::string>& users) {
  if (st.st_uid == ::geteuid()) return {};
  const std::string owner = user_name(st.st_uid);
  for (const auto& u : users) {
    if (u == owner) return {};
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    uid_t uid = 0;
    const auto r = std::from_chars(u.data(), u.data() + u.size(), uid);
    if ((r.ec == std::errc{} && r.ptr == u.data() + u.size() && uid == st.st_uid) ||
        (::getpwnam_r(u.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
         found->pw_uid == st.st_uid))
      return {};
  }
  return "it is owned by user '" + owner + "', not by this user (" + user_name(::geteuid()) +
         "), and no component of the stack runs as that user: stackup takes over no one else's directory";
}

/// The users other than this one and root that are members of group `gid`
/// (listed in the group, or with it as their primary group).
static std::vector<std::string> group_members(gid_t gid) {
  std::vector<std::string> out;
  const std::string me = user_name(::geteuid());
  auto add = [&](const char* n) {
    if (n == nullptr || *n == '\0' || me == n || std::string_view(n) == "root") return;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.emplace_back(n);
  };
  std::vector<char> buf(16384);
  group gr{};
  group* g = nullptr;
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &g) == 0 && g != nullptr && g->gr_mem != nullptr)
    for (char** m = g->gr_mem; *m != nullptr; ++m) add(*m);
  const std::lock_guard<std::mutex> hold(user_database());
  passwd pw{};
  passwd* found = nullptr;
  ::setpwent();
  while (::getpwent_r(&pw, buf.data(), buf.size(), &found) == 0 && found != nullptr)
    if (found->pw_gid == gid) add(found->pw_name);
  ::endpwent();
  return out;
}

/// Who, besides this user and root, can rename or replace entries in the
/// directory with status `st` — and so swap what stackup checked for a symlink
/// before it acts. Empty when no one: owned by this user or root, and writable
/// by no one else (or sticky, like /tmp: then only an entry's owner can move it).
static std::string foreign_writers(const struct stat& st) {
  std::string who;
  if (st.st_uid != ::geteuid() && st.st_uid != 0) who = "user '" + user_name(st.st_uid) + "' (its owner)";
  if ((st.st_mode & S_ISVTX) != 0) return who;
  auto also = [&](const std::string& w) { who += (who.empty() ? "" : " and ") + w; };
  if ((st.st_mode & S_IWOTH) != 0) {
    also("every user (it is writable by others and not sticky)");
    return who;
  }
  if ((st.st_mode & S_IWGRP) != 0) {
    const auto members = group_members(st.st_gid);
    if (!members.empty()) {
      std::vector<char> buf(16384);
      group gr{};
      group* g = nullptr;
      std::string name = ::getgrgid_r(st.st_gid, &gr, buf.data(), buf.size(), &g) == 0 && g != nullptr
                             ? std::string(g->gr_name)
                             : "gid " + std::to_string(st.st_gid);
      std::string list;
      for (const auto& m : members) list += (list.empty() ? "" : ", ") + m;
      also("the members of group '" + name + "' (" + list + ")");
    }
  }
  return who;
}

/// Error unless the directory `dirfd` (shown as `dir`, the parent of what
/// `who` is about to `action`) can be changed by no other user: one who can
/// rename entries in it could swap the checked directory for a symlink to
/// anything between the check and the action.
static void check_parent(int dirfd, const std::filesystem::path& dir, const std::string& who, std::string_view action,
                         const std::filesystem::path& target) {
  struct stat st{};
  if (::fstat(dirfd, &st) != 0)
    throw Error("stackup: " + who + ": cannot inspect " + quoted(dir) + ": " + sys_message(errno));
  if (const std::string writers = foreign_writers(st); !writers.empty())
    throw Error("stackup: " + who + ": refusing to " + std::string(action) + " " + quoted(target) +
                ": its parent directory " + quoted(dir) + " can be changed by " + writers +
                ", who could swap it for a symlink to another directory between stackup's check and its action: "
                "use a path whose parent only you (or root) can write, or make the parent sticky (chmod +t)");
  // The directories above count too: one that another user can write lets
  // them swap the parent itself for a symlink (to another stack's directory
  // of the same name) before it is opened. Both the path as given and the
  // path its symlinks lead to are looked at.
  std::vector<std::filesystem::path> above;
  for (auto a = dir; a.has_relative_path() && a.has_parent_path();) above.push_back(a = a.parent_path());
  std::error_code ec;
  if (const auto real = std::filesystem::weakly_canonical(dir, ec); !ec)
    for (auto a = real; a.has_relative_path() && a.has_parent_path();) above.push_back(a = a.parent_path());
  for (const auto& a : above) {
    struct stat ast{};
    if (::stat(a.c_str(), &ast) != 0) continue;
    if (const std::string writers = foreign_writers(ast); !writers.empty())
      throw Error("stackup: " + who + ": refusing to " + std::string(action) + " " + quoted(target) +
                  ": the directory " + quoted(a) + " above it can be changed by " + writers +
                  ", who could move the parent directory " + quoted(dir) +
                  " away and put a symlink to another directory in its place: use a path whose every directory "
                  "only you (or root) can write, or make that directory sticky (chmod +t)");
  }
}

}; // struct PosixPaths

} // namespace stackup::detail
// ---- end stackup/detail/posix/paths.hpp ----

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixDirectories : PosixPaths<> {

// ---- private state directories ----------------------------------------------------

/// Opens `dir` as a private state directory: a real directory (not a symlink),
/// owned by this user and writable by no one else. Empty when it does not exist;
/// Error, naming the path, the reason and the fix, otherwise.
static Fd open_private_dir(const std::filesystem::path& dir) {
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
static LockedDir lock_private_dir(const std::filesystem::path& dir, bool create) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (create) {
      // Missing parents are made (and marked, to go again with the last
      // directory in them); the directory is made in the parent held, whose
      // shared lock keeps a removal of empty parents from taking it meanwhile.
      const Fd parent = make_parents(dir, LOCK_SH, "state directory " + quoted(dir));
      if (::mkdirat(parent.get(), dir.filename().c_str(), 0700) != 0 && errno != EEXIST)
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

// ---- directories shared with other processes -------------------------------------

/// Opens the directory `dir` and takes an exclusive flock on it, blocking while
/// another process or thread holds it. The lock lasts as long as the returned
/// descriptor and leaves no file behind. Symlinks in `dir` are followed (it is
/// the parent of what is acted on, not that). If `dir` was replaced while this
/// waited, the directory now at the path is locked instead. Empty when `dir`
/// does not exist; Error when it cannot be opened or locked.
static Fd lock_directory(const std::filesystem::path& dir) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) return {};
      throw Error("stackup: cannot open directory " + quoted(dir) + " to lock it: " + sys_message(errno));
    }
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw Error("stackup: cannot lock directory " + quoted(dir) + ": " + sys_message(errno));
    }
    struct stat held{}, at_path{};
    if (::fstat(fd.get(), &held) == 0 && ::stat(dir.c_str(), &at_path) == 0 && held.st_ino == at_path.st_ino &&
        held.st_dev == at_path.st_dev)
      return fd;
  }
  throw Error("stackup: cannot lock directory " + quoted(dir) + ": it keeps being replaced by another process");
}

/// The names in directory `dirfd` (without "." and ".."), appended to `names`.
/// 0, or the errno of the failure.
static int list_directory(int dirfd, std::vector<std::string>& names) {
  // A descriptor of its own: readdir moves the offset of the one it reads.
  const int own = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) return errno;
  DIR* d = ::fdopendir(own);
  if (d == nullptr) {
    const int e = errno;
    ::close(own);
    return e;
  }
  errno = 0;
  while (const dirent* entry = ::readdir(d)) {
    const std::string_view n = entry->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  const int e = errno;
  ::closedir(d);
  return e;
}

/// Why a removal through descriptors stopped: the errno, and the entry where,
/// relative to the directory it started from (empty: that directory itself).
struct Removal {
  int error = 0;
  std::string where{};
  explicit operator bool() const noexcept { return error != 0; }
};

/// Whether the open directory `child`, an entry of `parent`, is the root of
/// another mount (a bind mount of the same file system too).
static bool is_mount_point(int parent, int child) noexcept {
#if defined(STATX_BASIC_STATS)
  constexpr unsigned int mnt_id = 0x1000U;                // STATX_MNT_ID (Linux 5.8)
  constexpr unsigned long long mount_root = 0x2000ULL;    // STATX_ATTR_MOUNT_ROOT (Linux 5.8)
  struct statx c{}, p{};
  if (::statx(child, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | mnt_id, &c) == 0) {
    if ((c.stx_attributes_mask & mount_root) != 0) return (c.stx_attributes & mount_root) != 0;
    if ((c.stx_mask & mnt_id) != 0 &&
        ::statx(parent, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | mnt_id, &p) == 0 &&
        (p.stx_mask & mnt_id) != 0)
      return c.stx_mnt_id != p.stx_mnt_id;
  }
#endif
  struct stat c_st{}, p_st{}; // older kernels: another file system at least
  return ::fstat(child, &c_st) == 0 && ::fstat(parent, &p_st) == 0 && c_st.st_dev != p_st.st_dev;
}

/// Opens the directory `name` in `dirfd`, never through a symlink (ELOOP or
/// ENOTDIR) and never onto another mount (EXDEV): openat2 with
/// RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH where the kernel has
/// it, else openat(O_NOFOLLOW) and a look at the mount. Empty, errno set, when not.
static Fd open_below(int dirfd, const char* name) {
  constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
#if defined(SYS_openat2)
  struct {
    std::uint64_t flags, mode, resolve;
  } how{static_cast<std::uint64_t>(flags), 0, 0x01U | 0x04U | 0x08U}; // NO_XDEV, NO_SYMLINKS, BENEATH
  const long r = ::syscall(SYS_openat2, dirfd, name, &how, sizeof how);
  if (r >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL && errno != EPERM)) {
    Fd fd(static_cast<int>(r));
    if (fd && is_mount_point(dirfd, fd.get())) { // belt and braces
      errno = EXDEV;
      return {};
    }
    return fd;
  }
#endif
  Fd fd(::openat(dirfd, name, flags));
  if (fd && is_mount_point(dirfd, fd.get())) {
    errno = EXDEV;
    return {};
  }
  return fd;
}

/// The first mount point (a directory or a file another file system, or a bind
/// mount, is mounted on) inside directory `dirfd`, searched through
/// descriptors without following symlinks: looked for before a removal
/// starts, so that one is refused with nothing removed or moved. {EXDEV, its
/// path relative to `dirfd`}, or nothing found.
static Removal find_mount(int dirfd) {
  std::vector<std::string> names;
  if (const int e = list_directory(dirfd, names)) return {e, {}};
  for (const auto& n : names) {
#if defined(STATX_BASIC_STATS)
    constexpr unsigned long long mount_root = 0x2000ULL; // STATX_ATTR_MOUNT_ROOT
    struct statx sx{};
    if (::statx(dirfd, n.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &sx) == 0 &&
        (sx.stx_attributes_mask & mount_root) != 0 && (sx.stx_attributes & mount_root) != 0)
      return {EXDEV, n};
#endif
    struct stat st{};
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    const Fd sub = open_below(dirfd, n.c_str());
    if (!sub) {
      if (errno == EXDEV) return {EXDEV, n};
      continue; // gone meanwhile: the removal itself looks again
    }
    if (Removal r = find_mount(sub.get()); r.error == EXDEV) return {EXDEV, n + "/" + r.where};
  }
  return {};
}

/// Removes everything inside directory `dirfd` but the entries named in
/// `keep`, depth first, through descriptors only: each directory is opened
/// below the one held (open_below), never through a symlink (a link is removed,
/// not what it points to), never onto another mount (a mount point stops the
/// removal, EXDEV, with everything on that mount intact) and never back up.
/// On failure, the errno and the entry; what is left stays as it is.
static Removal remove_contents(int dirfd, std::initializer_list<std::string_view> keep = {}) {
  std::vector<std::string> names;
  if (const int e = list_directory(dirfd, names)) return {e, {}};
  for (const auto& n : names) {
    if (std::find(keep.begin(), keep.end(), n) != keep.end()) continue;
    if (::unlinkat(dirfd, n.c_str(), 0) == 0 || errno == ENOENT) continue;
    const int unlink_error = errno;
    if (unlink_error != EISDIR && unlink_error != EPERM) return {unlink_error, n}; // Linux says EISDIR, POSIX EPERM
    Fd sub = open_below(dirfd, n.c_str());
    if (!sub) return {errno == ENOTDIR || errno == ELOOP ? unlink_error : errno, n};
    if (Removal r = remove_contents(sub.get())) return {r.error, n + "/" + r.where};
    if (::unlinkat(dirfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return {errno, n};
  }
  return {};
}

/// Removes the directory `name` in `parent`, open as `dir` (the caller opened it
/// with open_below and proved it its own): its contents, then the files named
/// in `proofs` in that order (what proves it stackup's goes last, so that a
/// removal cut short leaves something still provably stackup's), then the
/// directory. `restore(dir)` puts the proofs back when the directory could
/// not go after all. Up to `attempts` rounds: a process may add a file just
/// before the directory goes.
template <class Restore>
static Removal remove_directory_at(int parent, const std::string& name, int dir,
                                   std::initializer_list<std::string_view> proofs, Restore&& restore,
                                   int attempts = 3) {
  int e = 0;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (Removal r = remove_contents(dir, proofs)) return r;
    for (const auto proof : proofs)
      if (::unlinkat(dir, std::string(proof).c_str(), 0) != 0 && errno != ENOENT) return {errno, std::string(proof)};
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return {};
    e = errno;
    restore(dir);
    if (e != ENOTEMPTY && e != EEXIST) break;
  }
  return {e, {}};
}

/// The message for a removal of `dir` that stopped at `r`.
static std::string removal_error(const std::filesystem::path& dir, const Removal& r) {
  const auto at = r.where.empty() ? dir : dir / r.where;
  if (r.error == EXDEV)
    return quoted(at) + " is a mount point; stackup never removes anything on another mount: unmount it (umount " +
           at.string() + "), then remove again";
  if (r.error == EBUSY) return quoted(at) + " is in use as a mount point: unmount it (umount " + at.string() + ")";
  return "cannot remove " + quoted(at) + ": " + sys_message(r.error);
}

// ---- parents stackup creates ------------------------------------------------------

/// The extended attribute stackup sets on each parent directory it creates
/// for a component's directory: such a directory goes again once it is empty,
/// so `down` leaves the place as `up` found it. An attribute, not a file: a
/// directory another program empties last is empty, not left holding a
/// marker. Root uses `trusted.`, which only a privileged process can set:
/// anyone who can write a directory can set its `user.` attributes, and a
/// mark another user set must not make root remove a directory it never made.
static constexpr const char* parent_attribute = "user.stackup.parent";
static constexpr const char* trusted_parent_attribute = "trusted.stackup.parent";
static const char* parent_attribute_here() noexcept {
  return ::geteuid() == 0 ? trusted_parent_attribute : parent_attribute;
}

/// Marks the directory `fd` as a parent stackup created; false when the file
/// system keeps no such extended attributes (the directory then stays, as before).
static bool mark_parent(int fd, std::string_view content) noexcept {
  return ::fsetxattr(fd, parent_attribute_here(), content.data(), content.size(), 0) == 0;
}

/// Whether the directory `fd` carries mark_parent's attribute, beginning with marker_prefix.
static bool is_made_parent(int fd) noexcept {
  char buf[512];
  const ssize_t n = ::fgetxattr(fd, parent_attribute_here(), buf, sizeof buf);
  return n >= static_cast<ssize_t>(marker_prefix.size()) && std::string_view(buf, marker_prefix.size()) == marker_prefix;
}

/// Takes a flock on `fd` (LOCK_SH or LOCK_EX); false when the directory was
/// removed meanwhile (no links left).
static bool lock_linked(int fd, int how) {
  while (::flock(fd, how) != 0) {
    if (errno != EINTR) return false;
  }
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_nlink > 0) return true;
  ::flock(fd, LOCK_UN);
  return false;
}

/// Opens the parent of `dir` and locks it (flock `how`), creating the parents
/// that do not exist one level at a time: mkdirat relative to the directory
/// held, never through a symlink, each new one marked (mark_parent).
/// Symlinks in the existing part of the path are followed. A directory that a
/// concurrent removal of empty parents took meanwhile is made again.
static Fd make_parents(const std::filesystem::path& dir, int how, const std::string& who) {
  const auto parent = dir.parent_path();
  for (int attempt = 0; attempt < 64; ++attempt) {
    // The deepest ancestor that exists, and the names below it.
    std::vector<std::string> missing;
    auto at = parent;
    Fd fd;
    while (true) {
      fd = Fd(::open(at.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (fd) break;
      if (errno != ENOENT || !at.has_relative_path())
        throw Error("stackup: " + who + ": cannot open " + quoted(at) + ": " + sys_message(errno));
      missing.push_back(at.filename().string());
      at = at.parent_path();
    }
    bool again = false;
    while (!missing.empty() && !again) {
      const std::string name = std::move(missing.back());
      missing.pop_back();
      if (!lock_linked(fd.get(), LOCK_SH)) {
        again = true;
        break;
      }
      const bool made = ::mkdirat(fd.get(), name.c_str(), 0777) == 0;
      if (!made && errno != EEXIST) {
        const int e = errno;
        throw Error("stackup: " + who + ": cannot create " + quoted(at / name) + ": " + sys_message(e));
      }
      Fd sub(::openat(fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) {
        const int e = errno;
        if (e == ENOENT) {
          again = true;
          break;
        }
        throw Error("stackup: " + who + ": cannot open " + quoted(at / name) + ": " +
                    (e == ELOOP || e == ENOTDIR ? std::string("it is not a directory (a symlink?)") : sys_message(e)));
      }
      if (made) {
        struct stat st{};
        if (::fstat(sub.get(), &st) == 0 && st.st_uid == ::geteuid())
          (void)mark_parent(sub.get(), std::string(marker_prefix) + " as a parent directory of " + dir.string() +
                                           "; it is removed when it is empty");
      }
      ::flock(fd.get(), LOCK_UN);
      fd = std::move(sub);
      at /= name;
    }
    if (again) continue;
    if (lock_linked(fd.get(), how)) return fd;
  }
  throw Error("stackup: " + who + ": cannot create the parents of " + quoted(dir) +
              ": they keep being removed by another process");
}

/// Removes the parents of `dir` that stackup created (marked by mark_parent,
/// this user's, writable by no other user, and empty), deepest first, each
/// by unlinkat(AT_REMOVEDIR) relative to the directory above it, under an
/// exclusive flock so that the last of several components removing their
/// directories from it takes it. Stops quietly at the first that stays.
static void remove_made_parents(const std::filesystem::path& dir) {
  for (auto p = dir.parent_path(); p.has_relative_path(); p = p.parent_path()) {
    const Fd above(::open(p.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!above) return;
    const std::string name = p.filename().string();
    const Fd here(::openat(above.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!here || !lock_linked(here.get(), LOCK_EX)) return;
    struct stat st{};
    std::vector<std::string> names;
    if (::fstat(here.get(), &st) != 0 || st.st_uid != ::geteuid() || list_directory(here.get(), names) != 0 ||
        !names.empty() || !is_made_parent(here.get()) || is_mount_point(above.get(), here.get()))
      return;
    // Anyone who can write a directory can set its `user.` attributes: a mark
    // on a directory others can write may be theirs, not stackup's.
    if (!foreign_writers(st).empty()) return;
    // Only an empty directory goes: anything that arrived meanwhile keeps it.
    if (::unlinkat(above.get(), name.c_str(), AT_REMOVEDIR) != 0) return;
  }
}

/// How rename_entry moves `a` to `b` (the flags of renameat2, from <linux/fs.h>).
enum class Rename : unsigned {
  only_if_free = 1U << 0, ///< RENAME_NOREPLACE: fails (EEXIST) when `b` exists
  exchange = 1U << 1,     ///< RENAME_EXCHANGE: `a` and `b` swap places
};

/// Renames the entry `a` of directory `dirfd` to `b` in one atomic step
/// (renameat2). False, with errno set, when it cannot, also when the kernel or
/// the file system cannot do it that way (EINVAL, ENOSYS).
static bool rename_entry(int dirfd, const char* a, const char* b, Rename how) noexcept {
#if defined(SYS_renameat2)
  return ::syscall(SYS_renameat2, dirfd, a, dirfd, b, static_cast<unsigned>(how)) == 0;
#else
  errno = ENOSYS;
  return false;
#endif
}

}; // struct PosixDirectories

} // namespace stackup::detail
// ---- end stackup/detail/posix/directories.hpp ----

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixProcesses : PosixDirectories<> {

// ---- processes ----------------------------------------------------------------------

/// What stackup needs from /proc/<pid>/stat.
struct ProcStat {
  char state = '?';                 ///< field 3: R, S, D, Z (zombie), ...
  pid_t ppid = 0;                   ///< field 4: parent
  pid_t pgrp = 0;                   ///< field 5: process group
  pid_t session = 0;                ///< field 6: session
  unsigned long long start_time = 0; ///< field 22: start time in clock ticks since boot
};

/// Parses the content of /proc/<pid>/stat. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last ')'.
static std::optional<ProcStat> parse_proc_stat(std::string_view s) {
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
    } else if (field == 4) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.ppid).ec != std::errc{}) return std::nullopt;
    } else if (field == 5) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.pgrp).ec != std::errc{}) return std::nullopt;
    } else if (field == 6) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.session).ec != std::errc{}) return std::nullopt;
    } else if (field == 22) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.start_time).ec != std::errc{}) return std::nullopt;
    }
    s.remove_prefix(end);
  }
  return out;
}

/// /proc/<pid>/stat of a process, or empty when there is no such process.
static std::optional<ProcStat> read_proc_stat(pid_t pid) {
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
static bool is_live_state(char state) noexcept { return state != 'Z' && state != 'X' && state != 'x'; }

/// The largest pid the system hands out (/proc/sys/kernel/pid_max).
static pid_t max_pid() {
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
/// together identify it even after the pid number is reused, and the invocation
/// id of that start (see invocation_variable).
struct PidRecord {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  std::string invocation_id{}; ///< 32 hexadecimal digits; empty in pid files of stackup 0.1.0
  /// The waiter that holds the daemon (see spawn_held) and its start time;
  /// 0 in pid files written before the hold (stackup 0.2 and earlier).
  pid_t waiter = 0;
  unsigned long long waiter_start = 0;
};

/// The environment variable LocalDaemon sets to the invocation id of a start.
/// Every process the daemon starts inherits it: once the daemon's own process
/// has exited, it is what proves that a process it left behind is its.
static constexpr std::string_view invocation_variable = "STACKUP_INVOCATION_ID";

/// Whether `s` is an invocation id: 32 lowercase hexadecimal digits.
static bool is_invocation_id(std::string_view s) noexcept {
  return s.size() == 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// A new random invocation id; empty if the system gives no random bytes.
static std::string new_invocation_id() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};
    got += static_cast<std::size_t>(n);
  }
  std::string id;
  for (const unsigned char b : bytes) {
    id += "0123456789abcdef"[b >> 4];
    id += "0123456789abcdef"[b & 15];
  }
  return id;
}

/// "<pid> <start time> <invocation id> <waiter pid> <waiter start time>\n";
/// without a waiter "<pid> <start time> <invocation id>\n" (stackup 0.2), and
/// without an id "<pid> <start time>\n" (0.1.0).
static std::string format_pid_record(const PidRecord& r) {
  std::string out = std::to_string(r.pid) + " " + std::to_string(r.start_time);
  if (r.waiter != 0)
    out += " " + (r.invocation_id.empty() ? std::string(32, '0') : r.invocation_id) + " " + std::to_string(r.waiter) +
           " " + std::to_string(r.waiter_start);
  else if (!r.invocation_id.empty())
    out += " " + r.invocation_id;
  return out + "\n";
}

/// Parses a pid file strictly. On failure returns false and says why in `why`;
/// a pid of 0, 1, a negative or an out-of-range value is never accepted (they
/// would make kill() hit a process group, init or everything).
static bool parse_pid_record(std::string_view text, PidRecord& out, std::string& why) {
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
  std::string_view start_text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  std::optional<std::string_view> id_text; // 0.1.0 wrote none
  std::optional<std::string_view> waiter_text, waiter_start_text; // 0.2 wrote none
  if (const auto second = start_text.find(' '); second != std::string_view::npos) {
    id_text = start_text.substr(second + 1);
    start_text = start_text.substr(0, second);
    if (const auto third = id_text->find(' '); third != std::string_view::npos) {
      waiter_text = id_text->substr(third + 1);
      id_text = id_text->substr(0, third);
      const auto fourth = waiter_text->find(' ');
      waiter_start_text = fourth == std::string_view::npos ? std::string_view{} : waiter_text->substr(fourth + 1);
      waiter_text = waiter_text->substr(0, fourth);
    }
  }
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!pid_text.empty() && pid_text.front() == '-' && digits(pid_text.substr(1))) {
    why = "holds a negative pid (" + shown() + ")";
    return false;
  }
  if (!digits(pid_text) || !digits(start_text) || (id_text && !is_invocation_id(*id_text)) ||
      (waiter_text && (!digits(*waiter_text) || !digits(*waiter_start_text) || waiter_text->size() > 12))) {
    why = "holds " + shown() + ", not '<pid> <start time> <invocation id>'";
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
  out.invocation_id = id_text.value_or(std::string_view{});
  out.waiter = 0;
  out.waiter_start = 0;
  if (waiter_text) {
    long long waiter = 0;
    std::from_chars(waiter_text->data(), waiter_text->data() + waiter_text->size(), waiter);
    if (waiter <= 1 || waiter > limit) {
      why = "holds waiter pid " + std::string(*waiter_text) + ", which is never a daemon's waiter";
      return false;
    }
    if (std::from_chars(waiter_start_text->data(), waiter_start_text->data() + waiter_start_text->size(),
                        out.waiter_start).ec != std::errc{}) {
      why = "holds an out-of-range start time (" + shown() + ")";
      return false;
    }
    out.waiter = static_cast<pid_t>(waiter);
  }
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
static Identity identify(const PidRecord& r, bool reap_zombie = true) {
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
static constexpr int unknown_exit = -1;

/// The end of `pid` if it is a child of this process and has ended, without
/// reaping it (its pid number stays reserved, so its group can still be
/// signalled safely). `ChildExit{unknown_exit}` when `pid` is not (or no longer)
/// a child of this process; empty while it runs.
static std::optional<ChildExit> peek_exit(pid_t pid) {
  siginfo_t si{};
  for (;;) {
    if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0) break;
    if (errno != EINTR) return ChildExit{unknown_exit, 0}; // ECHILD
  }
  if (si.si_pid == 0) return std::nullopt;
  return ChildExit{si.si_code, si.si_status};
}

/// Reaps `pid` if it is a child that has ended.
static void reap(pid_t pid) noexcept {
  while (::waitpid(pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
  }
}

/// "SIGTERM", or "signal 42".
static std::string signal_name(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
#endif
  return "signal " + std::to_string(sig);
}

/// "exit status 3", "killed by SIGKILL".
static std::string describe_exit(ChildExit e) {
  switch (e.code) {
  case CLD_EXITED: return "exit status " + std::to_string(e.status);
  case CLD_KILLED: return "killed by " + signal_name(e.status);
  case CLD_DUMPED: return "killed by " + signal_name(e.status) + " (core dumped)";
  case unknown_exit: return "an unknown exit status (reaped elsewhere: is SIGCHLD ignored?)";
  default: return "an unknown end (code " + std::to_string(e.code) + ")";
  }
}

/// Whether the environment `pid` started with holds `entry` ("NAME=value") as
/// a whole entry. False when it cannot be read (gone, or another user's).
static bool environment_has(pid_t pid, std::string_view entry) {
  const std::string file = "/proc/" + std::to_string(pid) + "/environ";
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  std::string env;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    env.append(buf, static_cast<std::size_t>(n));
  }
  std::string_view rest = env;
  while (!rest.empty()) {
    const auto end = rest.find('\0');
    if (rest.substr(0, end) == entry) return true;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return false;
}

/// A process as stackup identifies it: its pid and its start time.
struct ProcessId {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

/// What is left alive of the daemon a record names.
struct Remains {
  bool leader = false;             ///< the recorded process itself is alive
  std::vector<pid_t> groups{};     ///< the process groups of its session that hold a live process
  std::vector<ProcessId> members{}; ///< the live processes of its session, when it is provably the daemon's
  [[nodiscard]] bool empty() const noexcept { return !leader && groups.empty(); }
};

/// What is left alive of the daemon `r` records: its process, and every process
/// in its session (spawn made it a session leader, so the session id is the
/// recorded pid), which includes what a command that puts its server in the
/// background leaves behind. The session counts only while it is provably the
/// daemon's: while the recorded process exists with the recorded start time
/// (alive, or a zombie not yet reaped) its pid cannot be reused; once it is
/// reaped, Linux still does not reuse the pid while the session has a process,
/// but may after the session ended, for another session. So then the session
/// counts only if one of its processes carries the record's invocation id, or
/// is one of the `earlier` members (same pid and start time): a process never
/// rejoins a session, so the session it is still in is the one proven then.
/// That keeps a stop going while the proof can no longer be read: an exiting
/// process has no environment in /proc (its memory is released before it
/// becomes a zombie, while it still holds its files and ports), and a member
/// may have been started without the id.
static Remains remains_of(const PidRecord& r, const Remains* earlier = nullptr) {
  Remains out;
  const auto leader = read_proc_stat(r.pid);
  if (leader && leader->start_time != r.start_time) return out; // the pid is another process's now
  out.leader = leader && is_live_state(leader->state);
  if (leader && leader->session != r.pid) return out; // leads no session: stackup did not start it
  if (!leader && r.invocation_id.empty()) return out; // reaped, and nothing could prove the session is its
  const std::string mark = std::string(invocation_variable) + "=" + r.invocation_id;
  bool proven = leader.has_value();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view n = entry->d_name;
    if (std::from_chars(n.data(), n.data() + n.size(), pid).ec != std::errc{}) continue;
    const auto st = read_proc_stat(pid);
    if (!st || st->session != r.pid || !is_live_state(st->state)) continue;
    const ProcessId member{pid, st->start_time};
    proven = proven ||
             (earlier != nullptr &&
              std::find(earlier->members.begin(), earlier->members.end(), member) != earlier->members.end()) ||
             environment_has(pid, mark);
    out.members.push_back(member);
    if (std::find(out.groups.begin(), out.groups.end(), st->pgrp) == out.groups.end()) out.groups.push_back(st->pgrp);
  }
  ::closedir(proc);
  if (!proven) {
    out.groups.clear();
    out.members.clear();
  }
  return out;
}

/// Sends `sig` to each process group of what remains of a daemon, or to its
/// process alone when it leads no session (a record stackup did not write).
static void signal_remains(const PidRecord& r, const Remains& left, int sig, std::string_view who) {
  auto send = [&](pid_t target) {
    if (::kill(target, sig) != 0 && errno != ESRCH)
      throw Error("stackup: cannot send " + signal_name(sig) + " to " + std::string(who) + " (pid " +
                  std::to_string(r.pid) + "): " + sys_message(errno));
  };
  if (left.groups.empty() && left.leader) send(r.pid);
  for (const pid_t group : left.groups) {
    if (group > 1) send(-group); // never -1 (every process) or -0 (our own group)
  }
}

/// How stop_process ended.
enum class Stopped {
  not_running, ///< nothing to stop (gone, or the pid belongs to another process now)
  terminated,  ///< exited after SIGTERM
  killed,      ///< needed SIGKILL after the timeout
  remains,     ///< the main process had exited; what it left running was killed
};

/// Stops the daemon a record names and what it left in its session (see
/// remains_of): SIGTERM, wait up to `timeout` for all of it to exit, then
/// SIGKILL. Signals nothing that is not provably the daemon's: a pid whose start
/// time differs is another process's. Error if something survives SIGKILL.
static Stopped stop_process(const PidRecord& r, milliseconds timeout, std::string_view who) {
  if (const auto first = read_proc_stat(r.pid); first && first->start_time != r.start_time)
    return Stopped::not_running;
  Remains left = remains_of(r);
  auto gone = [&] {
    // Cheap while the recorded process lives; the session is looked at once it is gone.
    if (identify(r, false) == Identity::ours) return false;
    left = remains_of(r, &left);
    return left.empty();
  };
  auto finish = [&](Stopped how) {
    reap(r.pid);
    return how;
  };
  if (left.empty()) return finish(Stopped::not_running);
  signal_remains(r, left, SIGTERM, who);
  auto deadline = deadline_after(timeout);
  Backoff backoff;
  while (true) {
    if (gone()) return finish(Stopped::terminated);
    if (Clock::now() >= deadline) break;
    backoff.sleep(deadline);
  }
  left = remains_of(r, &left);
  signal_remains(r, left, SIGKILL, who);
  deadline = deadline_after(std::chrono::seconds(10));
  Backoff again;
  while (true) {
    if (gone()) return finish(Stopped::killed);
    if (Clock::now() >= deadline) break;
    again.sleep(deadline);
  }
  throw Error("stackup: " + std::string(who) + " (pid " + std::to_string(r.pid) +
              ") survived SIGKILL for 10s (stuck in the kernel?); its pid file is kept: check it with `ps -o "
              "pid,stat,cmd -s " + std::to_string(r.pid) + "`");
}

/// Whether the process `pid` that started at `start` is alive (not a zombie).
static bool alive_as(pid_t pid, unsigned long long start) {
  const auto st = read_proc_stat(pid);
  return st && st->start_time == start && is_live_state(st->state);
}

/// Waits (up to `timeout`) until the process `pid` that started at `start` is
/// gone; reaps it should it be a child of this process. Whether it is gone.
static bool await_gone(pid_t pid, unsigned long long start, milliseconds timeout) {
  const auto deadline = deadline_after(timeout);
  Backoff backoff;
  while (true) {
    reap(pid);
    if (!alive_as(pid, start)) return true;
    if (Clock::now() >= deadline) return false;
    backoff.sleep(deadline);
  }
}

// ---- the hold: finding and stopping what a waiter holds -------------------------

/// Every live process, with its parent and start time, read from /proc.
struct ProcessEntry {
  ProcessId id;
  pid_t ppid = 0;
};
static std::vector<ProcessEntry> live_processes() {
  std::vector<ProcessEntry> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view n = entry->d_name;
    const auto r = std::from_chars(n.data(), n.data() + n.size(), pid);
    if (r.ec != std::errc{} || r.ptr != n.data() + n.size()) continue;
    const auto st = read_proc_stat(pid);
    if (st && is_live_state(st->state)) out.push_back({{pid, st->start_time}, st->ppid});
  }
  ::closedir(proc);
  return out;
}

/// The live processes the waiter `waiter` holds: its descendants, by their
/// parent pids. Empty when the waiter is not alive with its recorded start time.
static std::vector<ProcessId> held_processes(const ProcessId& waiter) {
  std::vector<ProcessId> out;
  if (!alive_as(waiter.pid, waiter.start_time)) return out;
  const auto all = live_processes();
  std::vector<pid_t> parents{waiter.pid};
  for (std::size_t i = 0; i < parents.size(); ++i) {
    for (const auto& e : all) {
      if (e.ppid != parents[i] || e.id.pid == waiter.pid) continue;
      if (std::find(parents.begin(), parents.end(), e.id.pid) != parents.end()) continue;
      parents.push_back(e.id.pid);
      out.push_back(e.id);
    }
  }
  return out;
}

/// The live processes whose environment carries invocation id `id`: what
/// proves a process is a daemon's once its waiter is gone.
static std::vector<ProcessId> processes_with_id(std::string_view id) {
  std::vector<ProcessId> out;
  if (!is_invocation_id(id)) return out;
  const std::string mark = std::string(invocation_variable) + "=" + std::string(id);
  for (const auto& e : live_processes())
    if (e.id.pid != ::getpid() && environment_has(e.id.pid, mark)) out.push_back(e.id);
  return out;
}

/// The live processes of the daemon `r` records (a record with a waiter): the
/// waiter's descendants while it lives; once it is gone (killed), the main
/// process if alive and the processes carrying the record's invocation id.
static std::vector<ProcessId> daemon_processes(const PidRecord& r) {
  const ProcessId main{r.pid, r.start_time}, waiter{r.waiter, r.waiter_start};
  auto out = alive_as(waiter.pid, waiter.start_time) ? held_processes(waiter) : processes_with_id(r.invocation_id);
  if (alive_as(main.pid, main.start_time) && std::find(out.begin(), out.end(), main) == out.end()) out.push_back(main);
  return out;
}

/// A pidfd (close-on-exec, as pidfd_open always makes it) of the process `p`
/// names, only if it is still that process: the pidfd is opened first and the
/// start time checked after, so the pid cannot have been reused in between.
/// It becomes readable when that process exits. Empty with errno ESRCH when
/// the process is gone or the pid is another's now; empty with another errno
/// (ENOSYS, EPERM, ...) when the system gives no pidfds.
static Fd open_pidfd(const ProcessId& p) {
#if defined(SYS_pidfd_open)
  Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0U)));
  if (!fd) return fd;
  const auto st = read_proc_stat(p.pid);
  if (!st || st->start_time != p.start_time) {
    fd.reset();
    errno = ESRCH;
  }
  return fd;
#else
  (void)p;
  errno = ENOSYS;
  return Fd();
#endif
}

/// Sends `sig` to the process `p` names, only if it is still that process
/// (see open_pidfd; a plain kill() after the check where pidfds are missing).
static bool signal_process(const ProcessId& p, int sig) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
  if (const Fd fd = open_pidfd(p)) return ::syscall(SYS_pidfd_send_signal, fd.get(), sig, nullptr, 0U) == 0;
  if (errno == ESRCH) return false;
#endif
  const auto st = read_proc_stat(p.pid);
  if (!st || st->start_time != p.start_time) return false;
  return ::kill(p.pid, sig) == 0;
}

/// Stops a daemon started under the hold, as systemd's KillMode=mixed does:
/// SIGTERM to the main process; once it has exited, or `timeout` has passed,
/// SIGKILL to every process still held; then waits until the waiter is gone
/// (it reaps them all, records the exit and exits). A waiter that is itself
/// gone (killed) leaves its processes to init: those carrying the record's
/// invocation id are stopped the same way. Error if something survives SIGKILL.
static Stopped stop_held(const PidRecord& r, milliseconds timeout, std::string_view who) {
  const ProcessId main{r.pid, r.start_time}, waiter{r.waiter, r.waiter_start};
  const bool held = alive_as(waiter.pid, waiter.start_time);
  auto remaining = [&] { return daemon_processes(r); };
  auto everything_gone = [&] { return remaining().empty() && (!held || !alive_as(waiter.pid, waiter.start_time)); };
  if (everything_gone()) {
    if (held) (void)await_gone(waiter.pid, waiter.start_time, std::chrono::seconds(10));
    return Stopped::not_running;
  }
  Stopped how = Stopped::not_running;
  if (alive_as(main.pid, main.start_time)) {
    signal_process(main, SIGTERM);
    how = Stopped::terminated;
    const auto deadline = deadline_after(timeout);
    Backoff backoff;
    while (alive_as(main.pid, main.start_time) && Clock::now() < deadline) backoff.sleep(deadline);
    if (alive_as(main.pid, main.start_time)) how = Stopped::killed;
  }
  // Once the main process is gone the waiter kills the rest itself; this does it
  // too, for what a killed waiter left behind and in case the waiter is stopped.
  const auto deadline = deadline_after(std::chrono::seconds(10));
  Backoff backoff;
  while (true) {
    const auto left = remaining();
    for (const auto& p : left)
      if (signal_process(p, SIGKILL) && how == Stopped::not_running) how = Stopped::remains;
    if (left.empty() && (!held || !alive_as(waiter.pid, waiter.start_time))) return how;
    if (Clock::now() >= deadline) break;
    backoff.sleep(deadline);
  }
  throw Error("stackup: " + std::string(who) + " (pid " + std::to_string(r.pid) + ", waiter " +
              std::to_string(r.waiter) +
              ") still has processes 10s after SIGKILL (stuck in the kernel?); its pid file is kept: check them with "
              "`ps -o pid,ppid,stat,cmd --ppid " + std::to_string(r.waiter) + "`");
}

/// How a daemon's main process ended, as its waiter recorded it in `exit`.
struct ExitRecord {
  std::string invocation_id;
  pid_t pid = 0;
  ChildExit exit{};            ///< CLD_EXITED, CLD_KILLED or CLD_DUMPED, with the status or signal
  long long seconds = 0;       ///< when (the Unix epoch), seconds and nanoseconds
  long nanoseconds = 0;
  unsigned long long left = 0; ///< processes still held then, which the waiter killed
};

/// Parses an `exit` file ("<id> <pid> exited|killed|dumped <n> <s>.<ns> <left>\n").
static std::optional<ExitRecord> parse_exit_record(std::string_view text) {
  if (text.empty() || text.back() != '\n') return std::nullopt;
  text.remove_suffix(1);
  std::vector<std::string_view> f;
  while (!text.empty()) {
    const auto sp = text.find(' ');
    f.push_back(text.substr(0, sp));
    if (sp == std::string_view::npos) break;
    text.remove_prefix(sp + 1);
  }
  if (f.size() != 6 || !is_invocation_id(f[0])) return std::nullopt;
  ExitRecord r;
  r.invocation_id = f[0];
  auto number = [](std::string_view s, auto& out) {
    const auto res = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && res.ec == std::errc{} && res.ptr == s.data() + s.size();
  };
  if (f[2] == "exited") r.exit.code = CLD_EXITED;
  else if (f[2] == "killed") r.exit.code = CLD_KILLED;
  else if (f[2] == "dumped") r.exit.code = CLD_DUMPED;
  else return std::nullopt;
  const auto dot = f[4].find('.');
  if (!number(f[1], r.pid) || !number(f[3], r.exit.status) || dot == std::string_view::npos ||
      !number(f[4].substr(0, dot), r.seconds) || !number(f[4].substr(dot + 1), r.nanoseconds) || !number(f[5], r.left))
    return std::nullopt;
  return r;
}

}; // struct PosixProcesses

} // namespace stackup::detail
// ---- end stackup/detail/posix/processes.hpp ----

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixSockets : PosixProcesses<> {

// ---- listening sockets ------------------------------------------------------------

/// The inodes of the TCP sockets listening on `port` at an address a
/// connection to 127.0.0.1 reaches (any address, or loopback), from
/// /proc/net/tcp and /proc/net/tcp6 of the calling thread's network namespace.
static std::vector<unsigned long long> listening_inodes(std::uint16_t port) {
  std::vector<unsigned long long> out;
  for (const char* file : {"tcp", "tcp6"}) {
    // thread-self: the probe connects from this thread's namespace (/proc/net is the main thread's).
    Fd fd(::open(("/proc/thread-self/net/" + std::string(file)).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fd = Fd(::open(("/proc/net/" + std::string(file)).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;
    std::string text;
    char buf[8192];
    while (true) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    std::string_view rest = text;
    bool header = true;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (std::exchange(header, false)) continue;
      std::vector<std::string_view> f;
      while (!line.empty()) {
        const auto b = line.find_first_not_of(' ');
        if (b == std::string_view::npos) break;
        line.remove_prefix(b);
        const auto e = line.find(' ');
        f.push_back(line.substr(0, e));
        line.remove_prefix(e == std::string_view::npos ? line.size() : e);
      }
      if (f.size() < 10 || f[3] != "0A") continue; // 0A: LISTEN
      const auto colon = f[1].find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view address = f[1].substr(0, colon);
      unsigned local_port = 0;
      if (std::from_chars(f[1].data() + colon + 1, f[1].data() + f[1].size(), local_port, 16).ec != std::errc{} ||
          local_port != port)
        continue;
      // In /proc the address is in network order, each 32-bit word printed as a
      // host (little-endian) number: 127.0.0.1 is 0100007F, ::1 ends 01000000,
      // ::ffff:127.0.0.1 is 0000000000000000FFFF00000100007F.
      const bool any = address.find_first_not_of('0') == std::string_view::npos;
      const bool loopback4 = address.size() == 8 && address.substr(6) == "7F";
      const bool loopback6 = address == "00000000000000000000000001000000";
      const bool mapped = address.size() == 32 && address.substr(0, 24) == "0000000000000000FFFF0000" &&
                          address.substr(30) == "7F";
      if (!any && !loopback4 && !loopback6 && !mapped) continue;
      unsigned long long inode = 0;
      if (std::from_chars(f[9].data(), f[9].data() + f[9].size(), inode).ec == std::errc{} && inode != 0)
        out.push_back(inode);
    }
  }
  return out;
}

/// Whether process `pid` holds one of the sockets `inodes` (its /proc/<pid>/fd).
static bool holds_socket(pid_t pid, const std::vector<unsigned long long>& inodes) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  char target[64];
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const ssize_t n = ::readlinkat(::dirfd(d), e->d_name, target, sizeof target - 1);
    if (n <= 8) continue;
    const std::string_view t(target, static_cast<std::size_t>(n));
    if (!t.starts_with("socket:[") || t.back() != ']') continue;
    unsigned long long inode = 0;
    if (std::from_chars(t.data() + 8, t.data() + t.size() - 1, inode).ec != std::errc{}) continue;
    if (std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

/// Who listens on `port` (see listening_inodes), for messages: "pid 123
/// (nginx)", several joined by ", "; "a process this user cannot see" when the
/// socket's holder cannot be read (another user's, another namespace's).
/// Empty when nothing listens.
static std::string listener_holders(std::uint16_t port) {
  const auto inodes = listening_inodes(port);
  if (inodes.empty()) return {};
  std::string out;
  for (const auto& e : live_processes()) {
    if (!holds_socket(e.id.pid, inodes)) continue;
    std::string comm = read_file_text("/proc/" + std::to_string(e.id.pid) + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    out += (out.empty() ? "" : ", ") + ("pid " + std::to_string(e.id.pid)) + (comm.empty() ? "" : " (" + comm + ")");
  }
  return out.empty() ? std::string("a process this user cannot see") : out;
}

/// The first `limit` bytes of a /proc file (empty when unreadable).
static std::string read_file_text(const std::string& file, std::size_t limit = 256) {
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  std::string out;
  if (!fd) return out;
  char buf[256];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}; // struct PosixSockets

} // namespace stackup::detail
// ---- end stackup/detail/posix/sockets.hpp ----

extern "C" char** environ; // NOLINT: the process environment, inherited by spawned commands

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixSpawn : PosixSockets<> {

// ---- running as another user -------------------------------------------------------

/// The user a spawned process runs as, resolved in the parent: between fork and
/// exec the child may only make async-signal-safe calls, and looking up a user
/// or its groups reads files and allocates.
struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;              ///< the primary group
  std::vector<gid_t> groups{}; ///< the supplementary groups (the primary one included), as initgroups sets them
  std::string home{};
  std::string shell{}; ///< the login shell (the password database's; /bin/sh when it names none)
};

/// The PATH a process run as another user gets unless its `env` sets one: the
/// standard one `su -` gives an ordinary user, nothing of the caller's.
static constexpr std::string_view standard_path = "/usr/local/bin:/usr/bin:/bin";

/// The name of the user this process runs as (its effective uid), or "uid N"
/// when the password database has none.
static std::string current_user_name() {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(::geteuid());
}

/// What spawn needs to run `who`'s processes as `user` (the components'
/// `.user`): empty when `user` is empty or names the current user, which
/// changes nothing. Error naming the user when there is no such user; Error
/// naming `who` and the fix when it is another user and this process is not
/// root, the only one allowed to switch.
static std::optional<RunAs> run_as(const std::string& user, std::string_view who) {
  if (user.empty()) return std::nullopt;
  const std::string where = "stackup: " + std::string(who) + ": ";
  if (user.find('\0') != std::string::npos)
    throw Error(where + "user '" + user + "' holds a NUL byte: give a user name");
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int e = 0;
  while ((e = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1U << 20))
    buf.resize(buf.size() * 2);
  // ENOENT, ESRCH, EBADF and EPERM are how some systems say "no such user".
  if (found == nullptr && e != 0 && e != ENOENT && e != ESRCH && e != EBADF && e != EPERM)
    throw Error(where + "cannot look up user '" + user + "': " + sys_message(e));
  if (found == nullptr)
    throw Error(where + "there is no user '" + user + "' on this system (see `getent passwd " + user +
                "`): create it, or fix or remove `user`");
  if (pw.pw_uid == ::geteuid()) return std::nullopt;
  if (::geteuid() != 0)
    throw Error(where + "running as user '" + user + "' needs root, and this process runs as '" +
                current_user_name() + "': run stackup as root, or remove `user` to run it as '" +
                current_user_name() + "'");
  RunAs as{user, pw.pw_uid, pw.pw_gid, {}, pw.pw_dir != nullptr ? pw.pw_dir : "",
           pw.pw_shell != nullptr && *pw.pw_shell != '\0' ? pw.pw_shell : "/bin/sh"};
  int count = 32;
  for (int attempt = 0; attempt < 8; ++attempt) {
    as.groups.resize(static_cast<std::size_t>(count));
    int n = count;
    if (::getgrouplist(user.c_str(), as.gid, as.groups.data(), &n) >= 0) {
      as.groups.resize(static_cast<std::size_t>(n));
      return as;
    }
    count = std::max(n, count * 2); // too small: n is the size it needs
  }
  throw Error(where + "cannot list the groups of user '" + user + "'");
}

/// What to run, and with which standard streams.
struct SpawnOptions {
  std::vector<std::string> argv;                        ///< argv[0] is looked up in PATH if it has no '/'
  const std::map<std::string, std::string>* env = nullptr; ///< variables added to the inherited environment
  std::filesystem::path working_dir;                    ///< empty: inherit
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;     ///< each must be above 2 (see above_stdio)
  /// Run as this user (see run_as): groups, gid, uid set before the working
  /// directory is entered, and a clean environment as `su -` and systemd give:
  /// `env`, then HOME, USER, LOGNAME and SHELL of that user and PATH
  /// standard_path where `env` does not set them; nothing inherited from this
  /// process. Null: as this process, with its environment plus `env`.
  const RunAs* user = nullptr;
};

/// What a started child needs between fork and exec, prepared before the fork:
/// it may then make only async-signal-safe calls (no allocation, no locks), as
/// the host may have threads.
struct ChildPlan {
  std::vector<std::string> env_strings{}, args{}, candidates{};
  std::vector<char*> envp{}, argv{};
  const char* cwd = nullptr;
  const RunAs* user = nullptr;
  int in = -1, out = -1, err = -1; ///< the child's standard streams
  int report = -1;                 ///< where a failure is reported (closed at exec)
  int go = -1;                     ///< one byte here lets the child exec; end of file makes it exit
};

/// Builds the environment, argv and PATH candidates of `o` (see SpawnOptions).
static void plan_child(const SpawnOptions& o, ChildPlan& p) {
  if (o.argv.empty() || o.argv.front().empty()) throw Error("stackup: cannot start an empty command");
  const auto configured = [&](std::string_view key) { return o.env != nullptr && o.env->count(std::string(key)) != 0; };
  std::string path_var(standard_path);
  if (o.user == nullptr) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string_view kv(*e);
      if (!configured(kv.substr(0, kv.find('=')))) p.env_strings.emplace_back(kv);
    }
    if (const char* path = std::getenv("PATH")) path_var = path;
  } else {
    // Another user gets nothing of this process's environment (root's PATH,
    // credentials of its tools): what a login as that user would have, and `env`.
    const std::string path(standard_path);
    const std::pair<const char*, const std::string*> vars[] = {{"HOME", &o.user->home},
                                                               {"USER", &o.user->name},
                                                               {"LOGNAME", &o.user->name},
                                                               {"SHELL", &o.user->shell},
                                                               {"PATH", &path}};
    for (const auto& [key, value] : vars)
      if (!configured(key)) p.env_strings.push_back(std::string(key) + "=" + *value);
  }
  if (o.env != nullptr) {
    for (const auto& [key, value] : *o.env) {
      if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos)
        throw Error("stackup: invalid environment variable name '" + key + "': it must be non-empty, without '='");
      p.env_strings.push_back(key + "=" + value);
      if (key == "PATH") path_var = value;
    }
  }
  for (auto& s : p.env_strings) p.envp.push_back(s.data());
  p.envp.push_back(nullptr);
  p.args = o.argv;
  for (auto& s : p.args) p.argv.push_back(s.data());
  p.argv.push_back(nullptr);
  if (o.argv.front().find('/') != std::string::npos) {
    p.candidates.push_back(o.argv.front());
  } else {
    std::string_view rest = path_var;
    while (true) {
      const auto colon = rest.find(':');
      const std::string_view dir = rest.substr(0, colon);
      p.candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + o.argv.front());
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  p.cwd = o.working_dir.empty() ? nullptr : o.working_dir.c_str();
  p.user = o.user;
  if (o.stdin_fd <= 2 || o.stdout_fd <= 2 || o.stderr_fd <= 2)
    throw Error("stackup: spawn: the child's standard streams must be descriptors above 2 (see above_stdio)");
  p.in = o.stdin_fd;
  p.out = o.stdout_fd;
  p.err = o.stderr_fd;
}

/// What a child writes to the report pipe: a failure (stage >= 1, with its
/// errno), or, from a waiter, that it started the daemon (stage 0).
struct Report {
  int stage = 0, err = 0;
  pid_t waiter = 0, main = 0;
};

// Child side: async-signal-safe calls only.
[[noreturn]] static void child_fail(int report, int stage) noexcept {
  const Report rep{stage, errno, 0, 0};
  [[maybe_unused]] const ssize_t n = ::write(report, &rep, sizeof rep);
  ::_exit(127);
}

static void default_signals() noexcept {
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
}

// The child proper: its own session, its streams, its user and directory; then
// it waits for the go byte and executes the command.
[[noreturn]] static void run_child(const ChildPlan& p) noexcept {
  if (::setsid() < 0) child_fail(p.report, 1);
  if (::dup2(p.in, 0) < 0 || ::dup2(p.out, 1) < 0 || ::dup2(p.err, 2) < 0) child_fail(p.report, 2);
#if defined(SYS_close_range)
  // Any descriptor the host left inheritable is closed at exec, not leaked to the daemon.
  ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
  if (p.user != nullptr) {
    // Groups and gid first: once the uid is not root, they cannot be changed.
    if (::setgroups(p.user->groups.size(), p.user->groups.data()) != 0) child_fail(p.report, 5);
    if (::setgid(p.user->gid) != 0) child_fail(p.report, 6);
    if (::setuid(p.user->uid) != 0) child_fail(p.report, 7);
  }
  // As that user: a directory it cannot enter is an error here, not a surprise later.
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) child_fail(p.report, 3);
  char byte = 0;
  ssize_t got = 0;
  do got = ::read(p.go, &byte, 1);
  while (got < 0 && errno == EINTR);
  if (got != 1) ::_exit(125); // the parent did not record us: do not run
  int err = ENOENT;
  for (const auto& c : p.candidates) {
    ::execve(c.c_str(), p.argv.data(), p.envp.data());
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) break;
  }
  errno = err;
  child_fail(p.report, 4);
}

// ---- the hold: a waiter that stays a daemon's parent ---------------------------

/// The waiter's SIGTERM: passed on to the daemon's main process.
static inline volatile sig_atomic_t waiter_term = 0;
static void on_waiter_term(int) noexcept { waiter_term = 1; }

/// Appends the decimal digits of `v` at `out`; returns how many.
static std::size_t put_number(char* out, unsigned long long v) noexcept {
  char tmp[24];
  std::size_t n = 0;
  do tmp[n++] = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

/// Parses a decimal number at the start of `s` (at most `len` bytes), moving past it.
static bool take_number(const char*& s, const char* end, long long& v) noexcept {
  v = 0;
  const char* begin = s;
  while (s < end && *s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return s != begin;
}

/// Signals every live child of this process (found in /proc by its parent
/// pid: a child's pid stays ours until we reap it, so it cannot be another
/// process's) with `sig`; returns how many. Async-signal-safe: the waiter runs it.
static unsigned long long signal_children(int sig) noexcept {
  struct Entry { // linux_dirent64
    std::uint64_t ino;
    std::int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[1];
  };
  const pid_t self = ::getpid();
  const int proc = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return 0;
  unsigned long long count = 0;
  alignas(8) char buf[4096];
  while (true) {
    const long n = ::syscall(SYS_getdents64, proc, buf, sizeof buf);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const auto* e = reinterpret_cast<const Entry*>(buf + at);
      at += e->reclen;
      const char* name = e->name;
      const char* name_end = name;
      while (*name_end != '\0') ++name_end;
      long long pid = 0;
      const char* q = name;
      if (!take_number(q, name_end, pid) || q != name_end || pid <= 1) continue;
      char path[40] = "/proc/";
      std::size_t len = 6 + put_number(path + 6, static_cast<unsigned long long>(pid));
      const char tail[] = "/stat";
      for (std::size_t i = 0; i < sizeof tail; ++i) path[len + i] = tail[i];
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char st[512];
      const ssize_t got = ::read(fd, st, sizeof st);
      ::close(fd);
      if (got <= 0) continue;
      const char* close = nullptr;
      for (const char* c = st; c < st + got; ++c)
        if (*c == ')') close = c;
      // ") S 1234 ": state, then the parent pid.
      if (close == nullptr || close + 4 >= st + got) continue;
      const char state = close[2];
      const char* pp = close + 4;
      long long ppid = 0;
      if (!take_number(pp, st + got, ppid) || ppid != self) continue;
      if (state == 'Z' || state == 'X' || state == 'x') continue;
      if (::kill(static_cast<pid_t>(pid), sig) == 0) ++count;
    }
  }
  ::close(proc);
  return count;
}

/// The waiter's life once the daemon's main process is started: it reaps every
/// process that comes back to it (a child subreaper); when the main process
/// ends it writes how into `exit` in the state directory (`dir`), SIGKILLs
/// every process still held, reaps them all and exits. Never returns.
[[noreturn]] static void run_waiter(pid_t main, int dir, const char* prefix) noexcept {
  // Only the state directory stays open: a pipe of the host kept open here would
  // keep its reader waiting (`stackctl stack up | cat`).
  int limit = 65536;
#if defined(SYS_close_range)
  const bool ranged = (dir <= 3 || ::syscall(SYS_close_range, 3U, static_cast<unsigned>(dir - 1), 0U) == 0) &&
                      ::syscall(SYS_close_range, static_cast<unsigned>(dir + 1), ~0U, 0U) == 0;
  if (ranged) limit = 0;
#endif
  for (int fd = 3; fd < limit; ++fd)
    if (fd != dir) ::close(fd);
  struct sigaction sa{};
  sa.sa_handler = on_waiter_term; // no SA_RESTART: waitpid returns EINTR
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  bool main_done = false;
  while (true) {
    int status = 0;
    const pid_t p = ::waitpid(-1, &status, 0);
    if (p < 0) {
      if (errno == EINTR) {
        if (waiter_term != 0 && !main_done) ::kill(main, SIGTERM); // not reaped yet: still the main process
        waiter_term = 0;
        continue;
      }
      break; // ECHILD: nothing is held any more
    }
    if (p == main) {
      main_done = true;
      timespec now{};
      ::clock_gettime(CLOCK_REALTIME, &now);
      const unsigned long long left = signal_children(SIGKILL);
      // "<invocation id> <pid> exited|killed|dumped <n> <seconds>.<nanoseconds> <left>\n"
      char line[160];
      std::size_t len = 0;
      for (const char* c = prefix; *c != '\0' && len < 64; ++c) line[len++] = *c;
      len += put_number(line + len, static_cast<unsigned long long>(main));
      const char* how = WIFEXITED(status) ? " exited " : WCOREDUMP(status) ? " dumped " : " killed ";
      for (const char* c = how; *c != '\0'; ++c) line[len++] = *c;
      len += put_number(line + len, static_cast<unsigned long long>(WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
      line[len++] = ' ';
      len += put_number(line + len, static_cast<unsigned long long>(now.tv_sec));
      line[len++] = '.';
      char ns[16];
      const std::size_t digits = put_number(ns, static_cast<unsigned long long>(now.tv_nsec));
      for (std::size_t i = digits; i < 9; ++i) line[len++] = '0';
      for (std::size_t i = 0; i < digits; ++i) line[len++] = ns[i];
      line[len++] = ' ';
      len += put_number(line + len, left);
      line[len++] = '\n';
      ::unlinkat(dir, "exit.tmp", 0);
      const int fd = ::openat(dir, "exit.tmp", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0) {
        const bool written = ::write(fd, line, len) == static_cast<ssize_t>(len);
        ::close(fd);
        if (written) ::renameat(dir, "exit.tmp", dir, "exit");
        else ::unlinkat(dir, "exit.tmp", 0);
      }
    } else if (main_done) {
      // One that died leaves its children to us: they are signalled in turn.
      signal_children(SIGKILL);
    }
  }
  ::_exit(0);
}

/// Why a child could not be started, from its report.
static std::string start_error(const SpawnOptions& o, const ChildPlan& p, const Report& rep, bool complete) {
  const char* stages[] = {"",
                          "setsid",
                          "redirect its output",
                          "change to its working directory",
                          "execute it",
                          "set its supplementary groups",
                          "set its group id",
                          "set its user id",
                          "start its waiter (fork)",
                          "make its waiter a child subreaper",
                          "start it under its waiter (fork)"};
  std::string what = "stackup: cannot start '" + o.argv.front() + "'";
  const int stage = complete && rep.stage >= 1 && rep.stage <= 10 ? rep.stage : 4;
  what += ": " + std::string(stages[stage]) + " failed: " + sys_message(rep.err);
  const std::string as_user = o.user != nullptr ? "user '" + o.user->name + "'" : std::string();
  if (stage == 3 && o.user == nullptr) what += " (working_dir " + quoted(o.working_dir) + ")";
  if (stage == 3 && o.user != nullptr)
    what += " (working_dir " + quoted(o.working_dir) + ", as " + as_user +
            (rep.err == EACCES ? ": that user must be allowed to enter it and every directory above it)" : ")");
  if (stage == 4 && rep.err == ENOENT && p.candidates.size() > 1) what += " (not found in PATH)";
  if (stage == 4 && rep.err == EACCES && o.user != nullptr) what += " (as " + as_user + ")";
  if (stage >= 5 && stage <= 7)
    what += " (" + as_user + ", uid " + std::to_string(o.user->uid) + ", gid " + std::to_string(o.user->gid) +
            (rep.err == EPERM ? ": switching users needs root with CAP_SETUID and CAP_SETGID (a container may drop "
                                "them): grant them, or remove `user`)"
                              : ")");
  return what;
}

/// Reads one Report; returns the bytes read (0 at end of file).
static std::size_t read_report(int fd, Report& rep) noexcept {
  std::size_t got = 0;
  while (got < sizeof rep) {
    const ssize_t n = ::read(fd, reinterpret_cast<char*>(&rep) + got, sizeof rep - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

/// The pipe and socket pair a start uses (see ChildPlan::report and ::go).
struct StartChannels {
  Fd report_read, report_write, go_parent, go_child;
  StartChannels() {
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
    report_read = above_stdio(Fd(report[0]));
    report_write = above_stdio(Fd(report[1]));
    int go[2];
    // A socket, not a pipe: writing to it after the child died must not raise SIGPIPE.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0)
      throw Error("stackup: cannot create a socket pair: " + sys_message(errno));
    go_parent = above_stdio(Fd(go[0]));
    go_child = above_stdio(Fd(go[1]));
  }
  void go() {
    const char byte = 'g';
    while (::send(go_parent.get(), &byte, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
    go_parent.reset();
  }
};

/// Starts `o.argv` in a new session (so it leads its own process group and has
/// no controlling terminal), with default signal dispositions and an empty
/// signal mask, and with no descriptor of ours but the three given; as
/// `o.user` when given (its groups, gid and uid set before exec).
///
/// `gate(pid)` runs in this process after the fork and before the child may
/// exec: if this process dies during `gate`, the child exits instead of running
/// unrecorded. Throws Error (after reaping the child) when the command cannot be
/// started; what `gate` throws is rethrown after killing the child.
template <class Gate> static pid_t spawn(const SpawnOptions& o, Gate&& gate) {
  ChildPlan plan;
  plan_child(o, plan);
  // Every descriptor here is moved above 2 (a host started with closed stdio
  // gets 0-2 from pipe()), so the child's dup2 onto 0-2 clobbers none of them.
  StartChannels ch;
  plan.report = ch.report_write.get();
  plan.go = ch.go_child.get();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("stackup: cannot fork to start '" + o.argv.front() + "': " + sys_message(errno));
  if (pid == 0) {
    default_signals();
    run_child(plan);
  }
  ch.report_write.reset();
  ch.go_child.reset();
  try {
    gate(pid);
  } catch (...) {
    ::kill(pid, SIGKILL); // still ours and not yet exec'd: safe
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  ch.go();
  Report rep;
  const std::size_t got = read_report(ch.report_read.get(), rep);
  if (got == 0) return pid; // the report pipe closed on exec: started
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  throw Error(start_error(o, plan, rep, got == sizeof rep));
}

/// A daemon started under the hold: its waiter and its main process.
struct Held {
  pid_t waiter = 0, main = 0;
};

/// Starts `o.argv` like spawn, but under the hold: a waiter process (its own
/// session, a child subreaper, not a child of this process) forks and keeps
/// the daemon's main process as its child, so every process the daemon starts
/// — double forks and setsid() included — stays the waiter's descendant. The
/// waiter holds `hold_dir` (the state directory) open to write `exit` there
/// when the main process ends (see run_waiter); `exit_prefix` begins that line.
///
/// `gate(Held)` runs before the main process may exec (see spawn); if it
/// throws, the main process exits without running and the waiter with it.
/// Error when the command cannot be started (its waiter is then gone too).
template <class Gate>
static Held spawn_held(const SpawnOptions& o, int hold_dir, const std::string& exit_prefix, Gate&& gate) {
  ChildPlan plan;
  plan_child(o, plan);
  StartChannels ch;
  plan.report = ch.report_write.get();
  plan.go = ch.go_child.get();
  const char* prefix = exit_prefix.c_str();
  // Above 2, like every descriptor here: the waiter's dup2 onto 0-2 must not replace it.
  const Fd hold(::fcntl(hold_dir, F_DUPFD_CLOEXEC, 3));
  if (!hold) throw Error("stackup: cannot duplicate a file descriptor: " + sys_message(errno));
  const pid_t first = ::fork();
  if (first < 0) throw Error("stackup: cannot fork to start '" + o.argv.front() + "': " + sys_message(errno));
  if (first == 0) {
    default_signals();
    const pid_t waiter = ::fork(); // the waiter is nobody's child here: this process exits at once
    if (waiter < 0) child_fail(plan.report, 8);
    if (waiter > 0) ::_exit(0);
    if (::setsid() < 0) child_fail(plan.report, 1);
    if (::dup2(plan.in, 0) < 0 || ::dup2(plan.out, 1) < 0 || ::dup2(plan.err, 2) < 0) child_fail(plan.report, 2);
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) != 0) child_fail(plan.report, 9);
    const pid_t main = ::fork();
    if (main < 0) child_fail(plan.report, 10);
    if (main == 0) run_child(plan);
    const Report started{0, 0, ::getpid(), main};
    [[maybe_unused]] const ssize_t n = ::write(plan.report, &started, sizeof started);
    run_waiter(main, hold.get(), prefix);
  }
  ch.report_write.reset();
  ch.go_child.reset();
  while (::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {
  }
  Report rep;
  std::size_t got = read_report(ch.report_read.get(), rep);
  if (got != sizeof rep || rep.stage != 0) throw Error(start_error(o, plan, rep, got == sizeof rep));
  const Held held{rep.waiter, rep.main};
  const auto waiter = read_proc_stat(held.waiter);
  auto await_waiter = [&] {
    if (waiter) (void)await_gone(held.waiter, waiter->start_time, std::chrono::seconds(10));
  };
  try {
    gate(held);
  } catch (...) {
    ch.go_parent.reset(); // the main process exits without running, then the waiter
    // It may have failed on its own before (its working directory, its user),
    // and be gone before the gate could read it: that failure is the one to report.
    got = read_report(ch.report_read.get(), rep);
    await_waiter();
    if (got != 0) throw Error(start_error(o, plan, rep, got == sizeof rep));
    throw;
  }
  ch.go();
  got = read_report(ch.report_read.get(), rep);
  if (got == 0) return held; // the report pipe closed on exec: started
  await_waiter();
  throw Error(start_error(o, plan, rep, got == sizeof rep));
}

// ---- programs and shell commands ------------------------------------------------------

/// How run_program runs a program.
struct ProgramOptions {
  milliseconds timeout = milliseconds::max();           ///< then SIGTERM to its group, SIGKILL 2s later
  std::filesystem::path working_dir{};                   ///< empty: inherit
  const std::map<std::string, std::string>* env = nullptr; ///< added to the inherited environment (see SpawnOptions)
  const RunAs* user = nullptr;                            ///< see SpawnOptions::user
  bool capture_stdout = false; ///< keep its standard output (else /dev/null)
  std::string_view input{};    ///< written to its standard input (else /dev/null); must outlive the call
};

/// The result of run_program (and run_shell).
struct ShellResult {
  ChildExit exit;      ///< how it ended (after a kill when timed out or stopped)
  bool timed_out = false;
  bool stopped = false; ///< killed because the operation was asked to stop (stackup::stop_requested())
  std::string stderr_tail; ///< the last few KiB of its standard error
  std::string out{};       ///< its standard output, when captured (at most 64 MiB: more is an error)
  [[nodiscard]] bool ok() const noexcept { return !timed_out && !stopped && exit.code == CLD_EXITED && exit.status == 0; }
};

/// Runs `argv` (argv[0] looked up in PATH) in its own session, its standard
/// error captured (the last few KiB), its standard output captured or
/// /dev/null, its standard input fed from `o.input` or /dev/null. Past
/// `o.timeout`, or once the operation is asked to stop, its whole process group
/// gets SIGTERM, then SIGKILL two seconds later. Returns when it exits, even if a
/// process it started in the background still holds its output. Error when it
/// cannot be started (naming argv[0]) or writes more than 64 MiB.
static ShellResult run_program(const std::vector<std::string>& argv, const ProgramOptions& o) {
  constexpr std::size_t keep = 8192, out_limit = std::size_t{64} << 20;
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw Error("stackup: cannot open /dev/null: " + sys_message(errno));
  null = above_stdio(std::move(null));
  const auto make_pipe = [](Fd& read_end, Fd& write_end) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
    read_end = above_stdio(Fd(p[0]));
    write_end = above_stdio(Fd(p[1]));
  };
  Fd err_read, err_write, out_read, out_write, in_read, in_write;
  make_pipe(err_read, err_write);
  if (o.capture_stdout) make_pipe(out_read, out_write);
  if (!o.input.empty()) make_pipe(in_read, in_write);

  SpawnOptions so;
  so.argv = argv;
  so.env = o.env;
  so.working_dir = o.working_dir;
  so.stdin_fd = in_read ? in_read.get() : null.get();
  so.stdout_fd = out_write ? out_write.get() : null.get();
  so.stderr_fd = err_write.get();
  so.user = o.user;
  const pid_t pid = spawn(so, [](pid_t) {});
  err_write.reset();
  out_write.reset();
  in_read.reset();
  for (Fd* f : {&err_read, &out_read, &in_write})
    if (*f) ::fcntl(f->get(), F_SETFL, O_NONBLOCK);

  ShellResult result;
  std::size_t fed = 0;
  bool too_much = false;
  // Moves what can move without blocking: input in, output and error out.
  auto pump = [&] {
    char buf[16384];
    if (err_read) {
      for (;;) {
        const ssize_t n = ::read(err_read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) err_read.reset();
        if (n <= 0) break;
        result.stderr_tail.append(buf, static_cast<std::size_t>(n));
        if (result.stderr_tail.size() > 2 * keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
      }
    }
    if (out_read) {
      for (;;) {
        const ssize_t n = ::read(out_read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) out_read.reset();
        if (n <= 0) break;
        if (result.out.size() + static_cast<std::size_t>(n) > out_limit) {
          too_much = true;
          out_read.reset();
          break;
        }
        result.out.append(buf, static_cast<std::size_t>(n));
      }
    }
    while (in_write && fed < o.input.size()) {
      const ssize_t n = ::write(in_write.get(), o.input.data() + fed, o.input.size() - fed);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) { // EPIPE: it does not read its input
        in_write.reset();
        break;
      }
      fed += static_cast<std::size_t>(n);
    }
    if (in_write && fed == o.input.size()) in_write.reset(); // end of file
  };
  auto deadline = deadline_after(o.timeout);
  Backoff backoff;
  std::optional<ChildExit> ended;
  pump();
  while (!(ended = peek_exit(pid))) {
    if (Clock::now() >= deadline || too_much) break;
    if (stop_requested()) {
      result.stopped = true;
      break;
    }
    const auto wait = std::chrono::duration_cast<milliseconds>(backoff.next(deadline));
    pollfd pfd[3];
    nfds_t n = 0;
    if (err_read) pfd[n++] = {err_read.get(), POLLIN, 0};
    if (out_read) pfd[n++] = {out_read.get(), POLLIN, 0};
    if (in_write) pfd[n++] = {in_write.get(), POLLOUT, 0};
    if (n > 0) {
      ::poll(pfd, n, static_cast<int>(std::max<milliseconds::rep>(wait.count(), 1)));
      pump();
      // Its output closed: it is exiting. Look again within a millisecond, not
      // after the pause the poll grew to (up to 10 ms per command).
      if (!err_read && !out_read) backoff = Backoff{};
    } else {
      std::this_thread::sleep_for(wait);
    }
  }
  if (!ended) {
    result.timed_out = !result.stopped && !too_much;
    ::kill(-pid, SIGTERM);
    deadline = deadline_after(std::chrono::seconds(2));
    Backoff grace;
    while (!(ended = peek_exit(pid)) && Clock::now() < deadline) grace.sleep(deadline);
    // Not reaped yet, so its group number cannot have been reused.
    ::kill(-pid, SIGKILL);
  }
  siginfo_t si{};
  int r = 0;
  while ((r = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED)) != 0 && errno == EINTR) {
  }
  result.exit = r == 0 ? ChildExit{si.si_code, si.si_status} : ended.value_or(ChildExit{unknown_exit, 0});
  in_write.reset();
  pump(); // what is left in the pipes (a background process may hold them: no waiting)
  if (result.stderr_tail.size() > keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
  if (too_much)
    throw Error("stackup: `" + argv.front() + "` wrote more than 64 MiB to its standard output; stopped");
  return result;
}

/// Runs `command` with /bin/sh -c (see run_program: stdout /dev/null, stderr
/// captured), as `user` when given (see run_as).
static ShellResult run_shell(const std::string& command, milliseconds timeout,
                             const std::filesystem::path& working_dir, const std::map<std::string, std::string>& env,
                             const RunAs* user = nullptr) {
  return run_program({"/bin/sh", "-c", command},
                     {.timeout = timeout, .working_dir = working_dir, .env = &env, .user = user});
}

}; // struct PosixSpawn

} // namespace stackup::detail
// ---- end stackup/detail/posix/spawn.hpp ----

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixProbes : PosixSpawn<> {

// ---- readiness probes -----------------------------------------------------------------

/// Whether TCP socket `fd` is connected to itself. A connect() from an unbound
/// socket to a port nothing listens on can pick that very port as its source
/// port (when it lies in the ephemeral range), and the socket then connects to
/// itself (TCP simultaneous open): a connection with no server behind it.
static bool connected_to_itself(int fd) noexcept {
  sockaddr_in self{}, peer{};
  socklen_t self_len = sizeof self, peer_len = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &self_len) != 0 ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
    return false;
  return self.sin_port == peer.sin_port && self.sin_addr.s_addr == peer.sin_addr.s_addr;
}

/// Closes a socket with a reset instead of the closing handshake: it leaves no
/// TIME_WAIT behind, so its port is free again at once.
static void close_with_reset(Fd& fd) noexcept {
  const linger reset{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  fd.reset();
}

/// A TCP socket connected to a server on 127.0.0.1:port, or empty (refused, not
/// within `timeout`, or connected to itself). A socket connected to itself holds
/// the port the daemon is about to listen on: it is reset at once, leaving
/// nothing on the port.
static Fd connect_loopback(std::uint16_t port, milliseconds timeout) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return {};
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::clamp<milliseconds::rep>(timeout.count(), 1, INT_MAX))) != 1) return {};
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return {};
  }
  if (connected_to_itself(fd.get())) close_with_reset(fd);
  return fd;
}

/// Something accepts connections on 127.0.0.1:port.
static bool tcp_probe(std::uint16_t port, milliseconds timeout) {
  return static_cast<bool>(connect_loopback(port, timeout));
}

/// `GET path` on 127.0.0.1:port answers 2xx within `timeout`.
static bool http_probe(std::uint16_t port, std::string_view path, milliseconds timeout) {
  const auto deadline = deadline_after(timeout);
  Fd fd = connect_loopback(port, timeout);
  if (!fd) return false;
  auto left = [&] {
    return static_cast<int>(std::clamp<long long>(
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count(), 1, INT_MAX));
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

}; // struct PosixProbes

} // namespace stackup::detail
// ---- end stackup/detail/posix/probes.hpp ----

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixLogs : PosixProbes<> {

// ---- logs -----------------------------------------------------------------------------

/// The last `max_lines` lines of `name` in `dirfd` from byte `from` on (at most
/// the last 4 KiB), each indented, for error messages. Empty if there are none.
static std::string log_tail(int dirfd, const char* name, off_t from, std::size_t max_lines = 15) {
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
static std::string text_tail(std::string_view text, std::size_t max_lines = 15) {
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

}; // struct PosixLogs

} // namespace stackup::detail
// ---- end stackup/detail/posix/logs.hpp ----

namespace stackup::detail {

// A class template used as a namespace (`detail::posix::...`): its functions are
// compiled only in a file that calls them (a component's action), not in every
// file that includes a component header (the umbrella: 0.15 s less with g++).
// Each part is a class template of its own, deriving from the part before it
// (files <- paths <- directories <- processes <- sockets <- spawn <- probes <-
// logs), so a part names what the earlier ones define unqualified, and
// `posix::name` finds any of them.
template <class = void> struct Posix : PosixLogs<> {};

using posix = Posix<>;

} // namespace stackup::detail
// ---- end stackup/detail/posix.hpp ----

// ---- begin stackup/detail/shipped_component.hpp ----
// stackup — what the shipped components (LocalDaemon, LocalDirectory, Command)
// have in common, written once: the configuration with its display name, the
// role, how messages name the component, how an owned path is kept, and the
// stack-file keys they share. Not part of the public API.
// SPDX-License-Identifier: MIT


#include <chrono>
#include <concepts>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace stackup::detail {

/// The base of a shipped component `Derived` (which declares `flavor`): the
/// contract's defaults (StackComponent), the role (a template argument, or
/// given at run time), and its configuration `Config`, whose `name` is the
/// display name.
template <class Derived, FixedString Role, class Config>
class ShippedComponent : public StackComponent<Derived>, public RoleOf<Role> {
public:
  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? this->role_name() : std::string_view(config_.name);
  }
  /// The configuration (paths as the constructor made them: see each component).
  [[nodiscard]] const Config& config() const noexcept { return config_; }

protected:
  explicit ShippedComponent(Config config) : config_(std::move(config)) {}

  // How messages name the component: "local_daemon 'redis' (cache)".
  [[nodiscard]] std::string who() const {
    return std::string(Derived::flavor) + " '" + std::string(name()) + "' (" + std::string(this->role_name()) + ")";
  }

  Config config_;
};

/// A directory's path lexically normal and without a trailing '/'
/// ("a/./b/" -> "a/b"; "/" stays "/"), so that two spellings of one directory
/// compare equal.
inline std::filesystem::path normal_directory(const std::filesystem::path& p) {
  std::filesystem::path out = p.lexically_normal();
  if (out.has_relative_path() && !out.has_filename()) out = out.parent_path();
  return out;
}

/// A directory a component owns, as owned_paths() gives it (see
/// docs/components.md): absolute, and normal_directory.
inline std::filesystem::path owned_directory(const std::filesystem::path& p) {
  return normal_directory(std::filesystem::absolute(p));
}

/// `user` of a stack file's table (the components that run as a user),
/// checked now by the components' own rule (run_as): a user that does not
/// exist, or another user without root, is an error at the key before
/// anything starts. `Table`: StackFileTable's interface.
template <class Table> std::string user_from_table(const Table& t) {
  auto user = t.optional_string("user").value_or("");
  try {
    (void)posix::run_as(user, "component '" + std::string(t.role()) + "'");
  } catch (const Error& e) {
    t.fail("user", unprefixed(e.what()));
  }
  return user;
}

/// A table with the accessors supervision_from_table needs besides the
/// older ones (StackFileTable has them; a table type written against the
/// interface before them reads no supervision keys).
template <class Table> concept supervision_table = requires(const Table& t, std::string_view k) {
  { t.kind(k) } -> std::convertible_to<std::string_view>;
  { t.optional_integer(k) } -> std::convertible_to<std::optional<long long>>;
};

/// "an integer", "a table": a kind() for messages.
inline std::string with_article(std::string_view kind) {
  const bool vowel = !kind.empty() && std::string_view("aeiou").find(kind.front()) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(kind);
}

/// `restart`, `liveness` and `on_dependency_restart` of a stack file's
/// component table (DESIGN §10), checked strictly: every error is at its key
/// and names what is valid. `cannot_restart`: when not empty, why the
/// component cannot be restarted and the fix; a policy other than "no" is then
/// an error at `restart`. `Table`: StackFileTable's interface.
template <class Table>
SupervisionConfig supervision_from_table(const Table& t, std::string_view cannot_restart = {}) {
  SupervisionConfig out;
  if constexpr (supervision_table<Table>) {
    using std::chrono::milliseconds;
    const std::string of = "component '" + std::string(t.role()) + "'";
    const auto quoted = [](const std::string& v) { return "\"" + v + "\""; };
    // A duration above zero, or `fallback`.
    const auto positive = [&](const auto& table, std::string_view key, const std::string& where, milliseconds fallback) {
      const auto d = table.duration(key);
      if (!d) return fallback;
      if (d->count() <= 0)
        table.fail(key, "'" + std::string(key) + "' of " + where + " must be a duration above zero, such as \"100ms\"");
      return *d;
    };
    // A whole number from `least` up (and not absurdly large), or empty.
    const auto count = [&](const auto& table, std::string_view key, const std::string& where, long long least,
                           std::string_view meaning) -> std::optional<unsigned> {
      const auto n = table.optional_integer(key);
      if (!n) return std::nullopt;
      if (*n < least || *n > 1'000'000'000)
        table.fail(key, "'" + std::string(key) + "' of " + where + " is " + std::to_string(*n) + ": give " +
                            std::string(meaning));
      return static_cast<unsigned>(*n);
    };

    // restart = "on-failure", or the whole policy as a table.
    const std::string restart_of = "'restart' of " + of;
    const auto policy = [&](const auto& table, std::string_view key, const std::string& where, const std::string& v) {
      if (v == "no") return Restart::no;
      if (v == "on-failure") return Restart::on_failure;
      if (v == "always") return Restart::always;
      table.fail(key, where + " must be \"no\", \"on-failure\" or \"always\", not " + quoted(v));
    };
    const std::string_view kind = t.kind("restart");
    if (kind == "string") {
      out.restart.policy = policy(t, "restart", restart_of, *t.optional_string("restart"));
    } else if (kind == "table") {
      const auto r = *t.table("restart");
      const auto word = r.optional_string("policy");
      if (!word)
        r.fail(restart_of + " lacks the required key 'policy' (\"no\", \"on-failure\" or \"always\"), e.g. "
                            "restart = { policy = \"on-failure\", backoff = \"1s\" }");
      RestartPolicy& p = out.restart;
      p.policy = policy(r, "policy", "'policy' of " + restart_of, *word);
      p.backoff = positive(r, "backoff", restart_of, p.backoff);
      const bool own_max = r.duration("max_backoff").has_value();
      p.max_backoff = positive(r, "max_backoff", restart_of, p.max_backoff);
      if (p.max_backoff < p.backoff) {
        const std::string least = posix::format_duration(p.backoff);
        if (own_max)
          r.fail("max_backoff", "'max_backoff' of " + restart_of + " (" + posix::format_duration(p.max_backoff) +
                                    ") is below its 'backoff' (" + least + "): the delay grows from 'backoff' up to "
                                    "'max_backoff'; make max_backoff at least " + least);
        r.fail("backoff", "'backoff' of " + restart_of + " (" + least + ") is above the default 'max_backoff' (" +
                              posix::format_duration(p.max_backoff) + "): set max_backoff too, at least " + least);
      }
      p.reset_after = positive(r, "reset_after", restart_of, p.reset_after);
      p.max = count(r, "max", restart_of, 0, "a number of restarts from 0 (0: no limit)");
      p.within = positive(r, "within", restart_of, p.within);
    } else if (!kind.empty()) {
      t.fail("restart", restart_of + " must be \"no\", \"on-failure\" or \"always\", or a table such as { policy = "
                                     "\"on-failure\", backoff = \"100ms\", max = 5 }, not " + with_article(kind));
    }
    if (out.restart.policy != Restart::no && !cannot_restart.empty())
      t.fail("restart", restart_of + " is " + quoted(std::string(to_string(out.restart.policy))) + ", but " +
                            std::string(cannot_restart));

    // liveness = { tcp = PORT } | { http = PORT, path = "/health" } | { exec = "command" }, with period, timeout, failures.
    if (const auto l = t.table("liveness")) {
      const std::string live_of = "'liveness' of " + of;
      Liveness& p = out.liveness;
      const auto tcp = l->port("tcp");
      const auto http = l->port("http");
      const auto path = l->optional_string("path");
      const auto exec = l->optional_string("exec");
      const char* first = tcp ? "tcp" : http ? "http" : exec ? "exec" : nullptr;
      const char* second = tcp && http ? "http" : (tcp || http) && exec ? "exec" : nullptr;
      if (!first)
        l->fail(live_of + " needs one probe: write liveness = { tcp = PORT }, { http = PORT, path = \"/health\" } or "
                          "{ exec = \"shell command\" }");
      if (second)
        l->fail(second, live_of + " has both " + first + " and " + second + ": choose one probe");
      if (path && !http)
        l->fail("path", "'path' goes with http, not " + std::string(first) +
                            ": write liveness = { http = PORT, path = \"/health\" }");
      if (tcp) {
        p.kind = Liveness::Kind::tcp;
        p.port = *tcp;
      } else if (http) {
        p.kind = Liveness::Kind::http;
        p.port = *http;
        p.path = path.value_or("/");
        if (p.path.empty() || p.path.front() != '/' ||
            p.path.find_first_of(std::string_view(" \r\n\t\0", 5)) != std::string::npos)
          l->fail("path", "'path' of " + live_of + " is " + quoted(p.path) +
                              ": it must start with '/' and hold no spaces or line breaks");
      } else {
        p.kind = Liveness::Kind::exec;
        p.exec = *exec;
        if (p.exec.empty()) l->fail("exec", "'exec' of " + live_of + " is empty: give a shell command that exits 0 while it is alive");
      }
      p.period = positive(*l, "period", live_of, p.period);
      p.timeout = positive(*l, "timeout", live_of, p.timeout);
      p.failures = count(*l, "failures", live_of, 1, "a number of failures in a row from 1").value_or(p.failures);
    }

    if (const auto r = t.optional_string("on_dependency_restart")) {
      if (*r == "restart") out.on_dependency_restart = OnDependencyRestart::restart;
      else if (*r != "ignore")
        t.fail("on_dependency_restart",
               "'on_dependency_restart' of " + of + " must be \"ignore\" or \"restart\", not " + quoted(*r));
    }
  }
  return out;
}

/// For a flavour that cannot honour supervision (local_directory): any of
/// `restart`, `liveness`, `on_dependency_restart` is an error at its key
/// saying why and to remove it. A table type without refuse() checks nothing.
template <class Table> void refuse_supervision(const Table& t, std::string_view flavor, std::string_view why) {
  if constexpr (requires { t.refuse(std::string_view{}, std::string_view{}); }) {
    for (const std::string_view key : {std::string_view("restart"), std::string_view("liveness"),
                                       std::string_view("on_dependency_restart")})
      t.refuse(key, std::string(flavor) + " cannot honour '" + std::string(key) + "': " + std::string(why) +
                        "; remove the key");
  }
}

} // namespace stackup::detail
// ---- end stackup/detail/shipped_component.hpp ----

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
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
  /// tcp and http: also count a listener that is not one of the daemon's own
  /// processes (for a daemon that hands its port to another process, such as
  /// `docker run -p`). By default only a socket held by the daemon's processes
  /// counts, so another server already on the port never passes for the daemon.
  bool any_listener = false;

  /// This probe, counting any listener on the port (see any_listener).
  [[nodiscard]] Probe with_any_listener(bool yes = true) const {
    Probe p = *this;
    p.any_listener = yes;
    return p;
  }

  /// The probe a stack file's `ready` table describes: `{ tcp = PORT }` or
  /// `{ http = PORT, path = "/health" }`, each with an optional `any_listener`.
  /// `Table` is stackup::StackFileTable (<stackup/stack_file.hpp>), or a type
  /// with its interface.
  template <class Table> [[nodiscard]] static Probe from_table(const Table& r);

  /// "none", "tcp 127.0.0.1:8765", "http://127.0.0.1:8765/health", with
  /// " (any listener)" when any_listener is set.
  [[nodiscard]] std::string describe() const {
    const std::string any = any_listener ? " (any listener)" : "";
    switch (kind) {
    case Kind::none: return "none";
    case Kind::tcp: return "tcp 127.0.0.1:" + std::to_string(port) + any;
    case Kind::http: return "http://127.0.0.1:" + std::to_string(port) + path + any;
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
  return {Probe::Kind::tcp, port, {}, false};
}

/// Ready when `GET path` on 127.0.0.1:`port` answers with a 2xx status.
inline Probe http(std::uint16_t port, std::string path = "/") {
  if (port == 0) throw Error("stackup: ready::http(0, ...): give the port the daemon listens on");
  if (path.empty() || path.front() != '/' ||
      path.find_first_of(std::string_view(" \r\n\t\0", 5)) != std::string::npos)
    throw Error("stackup: ready::http: path '" + path + "' must start with '/' and hold no spaces or line breaks");
  return {Probe::Kind::http, port, std::move(path), false};
}

template <class Table> Probe Probe::from_table(const Table& r) {
  const auto tcp = r.port("tcp");
  const auto http = r.port("http");
  const auto path = r.optional_string("path");
  const std::string role(r.role());
  if (tcp && http) r.fail("http", "'ready' of component '" + role + "' has both tcp and http: choose one");
  if (tcp && path) r.fail("path", "'path' goes with http, not tcp: write ready = { http = PORT, path = \"/health\" }");
  // Any listener on the port counts, not only the daemon's own (docker run -p).
  const bool any = r.optional_bool("any_listener").value_or(false);
  if (tcp) return ready::tcp(*tcp).with_any_listener(any);
  if (http) {
    try {
      return ready::http(*http, path.value_or("/")).with_any_listener(any);
    } catch (const Error& e) {
      r.fail("path", detail::unprefixed(e.what()));
    }
  }
  r.fail("'ready' of component '" + role +
         "' needs tcp or http: write ready = { tcp = PORT } or ready = { http = PORT, path = \"/health\" }");
}

} // namespace ready

/// Configuration of a LocalDaemon; use designated initialisers, in this order.
struct LocalDaemonConfig {
  std::string name{};                  ///< display name; empty: the role
  std::vector<std::string> command{};  ///< argv, no shell; argv[0] is looked up in PATH if it has no '/'
  std::filesystem::path state_dir{};   ///< stackup's own directory (mode 0700): marker, config, pid file, lock, daemon.log
  ready::Probe ready = ready::none(); ///< when the started process counts as ready
  /// resume: wait this long for readiness. milliseconds::max() waits for ever;
  /// zero (or negative, which counts as zero) looks once.
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
  /// suspend: SIGTERM, then SIGKILL after this. milliseconds::max() never
  /// escalates; zero (or negative, which counts as zero) sends SIGKILL at once.
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(10);
  std::map<std::string, std::string> env{}; ///< variables added to (or replacing) the inherited environment
  std::filesystem::path working_dir{};      ///< empty: the caller's current directory
  /// Run the daemon as this user (its uid, gid and groups; HOME, USER and
  /// LOGNAME are its own unless `env` sets them). Empty or the current user:
  /// as this process. Another user needs root; the user must be able to enter
  /// `working_dir`. The state directory stays stackup's: the daemon writes
  /// daemon.log through the descriptor it is started with. The daemon gets a
  /// clean environment, as `su -` and systemd give: `env`, that user's HOME,
  /// USER, LOGNAME and SHELL, and PATH=/usr/local/bin:/usr/bin:/bin (each
  /// unless `env` sets it); nothing of this process's environment.
  std::string user{};
  /// resume without a readiness probe: how long the main process must keep
  /// running for the start to count. One that exits within it (`sh -c 'exit
  /// 3'`, or a command that puts its server in the background and returns)
  /// fails resume with its exit status. Zero (or negative): no wait; an exit
  /// already seen still fails. Unused with a probe (readiness decides).
  std::chrono::milliseconds start_grace = std::chrono::milliseconds(500);
  /// Whether a supervisor (stackup::supervise) starts the daemon again when its
  /// main process ends without a down, after what back-off, and when it gives
  /// up (DESIGN §10). With a policy other than Restart::no, an exit during
  /// resume's start-up grace or readiness wait does not fail resume: the exit
  /// is recorded (exit_status()) and left to the policy.
  RestartPolicy restart{};
  /// A probe a supervisor runs every `period` once the daemon is ready;
  /// `failures` failures in a row count as an exit. Default: none.
  Liveness liveness{};
  /// Whether a supervisor suspends the daemon while one of its dependencies
  /// restarts, and resumes it once that one is ready again. Default: ignore.
  OnDependencyRestart on_dependency_restart{};
};

/// How a daemon's main process ended, as its waiter recorded it (see
/// LocalDaemon::last_exit).
struct DaemonExit {
  pid_t pid = 0;                  ///< the main process
  std::optional<int> exit_code{}; ///< its exit status, when it exited
  std::optional<int> signal{};    ///< the signal that killed it, when one did
  bool core_dumped = false;       ///< killed with a core dump
  std::chrono::system_clock::time_point when{}; ///< when its waiter saw it end
  /// How many processes the daemon had left running then: the waiter killed them.
  unsigned long long left_running = 0;
  /// Whether this is the end of the start the pid file records (false: of an earlier one).
  bool current = false;
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
  // Each only when set: a config without them stays readable by earlier versions.
  if (c.ready.any_listener && c.ready.kind != ready::Probe::Kind::none) line("ready_any_listener", "1");
  if (c.start_grace != LocalDaemonConfig{}.start_grace)
    line("start_grace_ms", std::to_string(std::max<long long>(c.start_grace.count(), 0)));
  line("start_timeout_ms", std::to_string(c.start_timeout.count()));
  line("stop_timeout_ms", std::to_string(c.stop_timeout.count()));
  for (const auto& [k, v] : c.env) line("env", k + "=" + v);
  line("working_dir", c.working_dir.string());
  if (!c.user.empty()) line("user", c.user); // only when set: a config without it stays readable by earlier versions
  out += "end\n";
  return out;
}

/// Parses a `config` file written by format_daemon_config. On failure returns
/// false and says why (with the line number) in `why`. `role` receives the role
/// the file was written for.
inline bool parse_daemon_config(std::string_view text, LocalDaemonConfig& c, std::string& role, std::string& why) {
  c = LocalDaemonConfig{};
  std::size_t number = 0;
  bool ended = false, header = false, any_listener = false;
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
    else if (key == "user") c.user = value;
    else if (key == "start_timeout_ms") {
      if (!to_ms(value, c.start_timeout)) return fail("start_timeout_ms is not a number of milliseconds");
    } else if (key == "start_grace_ms") {
      if (!to_ms(value, c.start_grace)) return fail("start_grace_ms is not a number of milliseconds");
    } else if (key == "ready_any_listener") {
      if (value != "1") return fail("ready_any_listener is not 1");
      any_listener = true;
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
        c.ready = {ready::Probe::Kind::tcp, port, {}, false};
      } else if (kind == "http" && s1 != std::string_view::npos) {
        const auto s2 = v.find(' ', s1 + 1);
        std::uint16_t port = 0;
        if (s2 == std::string_view::npos || !to_port(v.substr(s1 + 1, s2 - s1 - 1), port))
          return fail("ready http: bad port");
        const std::string_view path = v.substr(s2 + 1);
        if (path.empty() || path.front() != '/' || path.find(' ') != std::string_view::npos)
          return fail("ready http: bad path");
        c.ready = {ready::Probe::Kind::http, port, std::string(path), false};
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
  if (any_listener && c.ready.kind == ready::Probe::Kind::none) {
    why = "ready_any_listener without a tcp or http probe";
    return false;
  }
  c.ready.any_listener = any_listener;
  return true;
}

} // namespace detail

/// A local process that the stack starts and stops (ZenML's LocalDaemonService,
/// done right). Its state directory (mode 0700) holds the ownership marker
/// `.stackup-daemon`, `config`, the pid file `pid` ("<pid> <start time>
/// <invocation id> <waiter pid> <waiter start time>"), `exit` (how the main
/// process last ended), `daemon.log` and a `lock` file.
///
/// - The state directory is stackup's own: provision creates it (or takes an
///   empty one) and writes the marker. A directory without the marker — one
///   stackup did not create, such as a `.git` or `~/.ssh` that happens to hold a
///   `config` — is refused by every query and action with an Error, and is
///   never written to, signalled from or removed. (A directory made by
///   stackup 0.1.0, which wrote no marker, is recognised by its config's first
///   line and gets the marker at its next provision or resume.)
/// - Queries read the real world on every call (pid file, /proc, probe), so a
///   second process that knows only the state directory sees the truth.
/// - `resume` starts the command under the hold: a waiter process (a fork of
///   this one, in a session of its own, a child subreaper) forks it as its
///   child, the main process, in a session of its own too (stdin /dev/null,
///   output appended to daemon.log, `STACKUP_INVOCATION_ID` set to a new
///   random id). Every process the daemon starts stays the waiter's
///   descendant, even through a double fork or setsid(). The pid file records
///   the main process and the waiter (pid and start time each) and the id.
///   With a probe, resume fails at once if the port is already taken, and
///   waits (1-10 ms back-off) until the probe passes on a socket of the
///   daemon's own processes (see ready::Probe::any_listener); without one, it
///   waits start_grace and fails if the main process exited. With `user`, the
///   process runs as that user, in a clean environment (see LocalDaemonConfig::user).
/// - The main process ending is the daemon's end: the waiter records how in
///   `exit` (see last_exit), SIGKILLs every process still held and exits.
/// - `suspend` stops as systemd's KillMode=mixed does: SIGTERM to the main
///   process, then, once it has exited or after `stop_timeout`, SIGKILL to
///   every process still held, and waits until the waiter is gone. A pid whose
///   start time does not match is never signalled. A pid file of stackup 0.2
///   (no waiter) is stopped as 0.2 did: the process groups of its session,
///   while that session is provably the daemon's.
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
template <FixedString Role = "">
class LocalDaemon : public detail::ShippedComponent<LocalDaemon<Role>, Role, LocalDaemonConfig> {
  using Base = detail::ShippedComponent<LocalDaemon<Role>, Role, LocalDaemonConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "local_daemon";
  /// The configuration type (designated initialisers).
  using Config = LocalDaemonConfig;
  /// The ownership marker's file name, inside the state directory: proof that
  /// stackup created the directory.
  static constexpr const char* marker = ".stackup-daemon";

  /// A daemon with this configuration; `state_dir` and `working_dir` are made
  /// absolute now, so a later change of the current directory does not move them;
  /// a negative timeout becomes zero. Error when `state_dir` is empty. Starts nothing.
  explicit LocalDaemon(Config config) : Base(std::move(config)) {
    if (config_.state_dir.empty())
      throw Error("stackup: local_daemon" + (Role.size() ? " (" + std::string(Role.view()) + ")" : std::string()) +
                  ": .state_dir is empty: give it a directory");
    config_.start_timeout = std::max(config_.start_timeout, std::chrono::milliseconds::zero());
    config_.stop_timeout = std::max(config_.stop_timeout, std::chrono::milliseconds::zero());
    config_.start_grace = std::max(config_.start_grace, std::chrono::milliseconds::zero());
    config_.state_dir = detail::owned_directory(config_.state_dir);
    if (!config_.working_dir.empty()) config_.working_dir = std::filesystem::absolute(config_.working_dir);
  }

  /// The daemon a stack file's table describes (`flavor = "local_daemon"`, see
  /// docs/stack-files.md): `name`, the required `command`, `ready` (see
  /// ready::Probe::from_table), the timeouts, `env`, `working_dir` (default:
  /// the file's directory), `state_dir` (default: `.stackup/<role>` there),
  /// `user`, and `restart`, `liveness` and `on_dependency_restart`
  /// (detail::supervision_from_table). `Table` is stackup::StackFileTable (<stackup/stack_file.hpp>), or
  /// a type with its interface.
  template <class Table> [[nodiscard]] static LocalDaemon from_table(const Table& t) {
    Config c;
    c.name = t.optional_string("name").value_or("");
    c.command = t.strings("command");
    if (!t.contains("command"))
      t.fail(t.what() + " lacks the required key 'command' "
             "(the daemon's argv, e.g. command = [\"redis-server\", \"--port\", \"6390\"])");
    const std::string role(t.role());
    if (c.command.empty()) t.fail("command", "'command' of component '" + role + "' is empty: give the daemon's argv");
    if (c.command.front().empty())
      t.fail("command", "'command' of component '" + role + "' starts with an empty program name: give the program first");
    if (const auto r = t.table("ready")) c.ready = ready::Probe::from_table(*r);
    c.start_timeout = t.duration("start_timeout").value_or(c.start_timeout);
    c.stop_timeout = t.duration("stop_timeout").value_or(c.stop_timeout);
    c.start_grace = t.duration("start_grace").value_or(c.start_grace);
    c.env = t.string_map("env");
    c.working_dir = t.path_or("working_dir", t.directory());
    c.state_dir = t.path_or("state_dir", t.directory() / ".stackup" / role);
    c.user = detail::user_from_table(t);
    const auto supervision = detail::supervision_from_table(t);
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    return LocalDaemon(std::move(c));
  }

  /// The daemon whose state directory is `state_dir`, configured from its
  /// `config` file: what another process (e.g. a status or down command) needs.
  /// Error when the directory or its config is missing, unsafe or corrupt, was
  /// written for another role, or the directory is not stackup's.
  [[nodiscard]] static LocalDaemon from_state_dir(const std::filesystem::path& state_dir) {
    LocalDaemon probe{Config{.state_dir = state_dir}};
    const auto& dir = probe.config_.state_dir;
    const auto fd = probe.open_state();
    if (!fd)
      throw Error("stackup: no state directory " + detail::posix::quoted(dir) + ": provision the daemon first (e.g. `stack up`)");
    const auto text = detail::posix::read_file_at(fd.get(), "config", 1 << 20, dir / "config");
    if (!text)
      throw Error("stackup: state directory " + detail::posix::quoted(dir) +
                  " has no config file: provision the daemon again (it writes one)");
    Config c;
    std::string file_role, why;
    if (!detail::parse_daemon_config(*text, c, file_role, why))
      throw Error("stackup: config file " + detail::posix::quoted(dir / "config") + " is corrupt (" + why +
                  "): provision the daemon again to rewrite it, or remove the file");
    c.state_dir = dir;
    LocalDaemon daemon(std::move(c));
    if constexpr (Role.size() == 0) {
      daemon.assign_role(file_role); // the role the directory was made for
    } else if (file_role != Role.view()) {
      throw Error("stackup: state directory " + detail::posix::quoted(dir) + " belongs to role '" + file_role +
                  "', not '" + std::string(Role.view()) + "': open it with LocalDaemon<\"" + file_role + "\">");
    }
    return daemon;
  }

  // name() (the configured name, or the role) and config() (state_dir
  // absolute) come from Base.
  /// The state directory (absolute).
  [[nodiscard]] const std::filesystem::path& state_dir() const noexcept { return config_.state_dir; }
  /// What this daemon owns (one owner per path, checked by the stack): its state directory.
  [[nodiscard]] std::array<std::string_view, 1> owned_paths() const noexcept { return {config_.state_dir.native()}; }
  /// The daemon's output: `<state_dir>/daemon.log`.
  [[nodiscard]] std::filesystem::path log_file() const { return config_.state_dir / "daemon.log"; }
  /// The pid file: `<state_dir>/pid`.
  [[nodiscard]] std::filesystem::path pid_file() const { return config_.state_dir / "pid"; }

  /// The daemon's pid while its process is alive (whether or not it is ready);
  /// empty otherwise. Error on an unsafe or foreign state directory or a corrupt pid file.
  [[nodiscard]] std::optional<pid_t> pid() const {
    const auto dir = open_state();
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

  /// The state directory exists, is stackup's, and holds its config. Error
  /// when it is unsafe (a symlink, another user's, group/world-writable) or
  /// not stackup's (no marker): "no" would make `up` provision into it.
  [[nodiscard]] bool is_provisioned() const {
    const auto dir = open_state();
    struct stat st{};
    return dir && ::fstatat(dir.get(), "config", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  }

  /// The pid file parses, its main process is alive with the recorded start
  /// time (a reused pid is not ours), and the readiness probe, if any, passes
  /// against a listener of the daemon's own processes (any listener with
  /// ready::Probe::any_listener). Processes still held once the main process
  /// has exited do not count (its waiter is stopping them, and the next
  /// suspend, resume or deprovision stops what is left). Error on an unsafe or
  /// foreign state directory or a corrupt pid file.
  [[nodiscard]] bool is_running() const {
    const auto dir = open_state();
    if (!dir) return false;
    const auto rec = read_pid(dir.get());
    if (!rec || detail::posix::identify(*rec) != detail::posix::Identity::ours) return false;
    return ready_now(*rec, std::chrono::seconds(1));
  }

  /// How the daemon's main process last ended, as the waiter that held it
  /// recorded it in `<state_dir>/exit` (exit status or signal, and when);
  /// empty when no start under the hold has ended yet, or the record cannot be
  /// read. What another process (a status command, a supervisor) reads.
  [[nodiscard]] std::optional<DaemonExit> last_exit() const {
    const auto dir = open_state();
    if (!dir) return std::nullopt;
    const auto r = read_exit(dir.get());
    if (!r) return std::nullopt;
    DaemonExit out;
    out.pid = r->pid;
    if (r->exit.code == CLD_EXITED) out.exit_code = r->exit.status;
    else out.signal = r->exit.status;
    out.core_dumped = r->exit.code == CLD_DUMPED;
    out.when = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(r->seconds) + std::chrono::nanoseconds(r->nanoseconds)));
    out.left_running = r->left;
    try {
      const auto rec = read_pid(dir.get());
      out.current = rec && rec->invocation_id == r->invocation_id && rec->pid == r->pid;
    } catch (const Error&) {
      out.current = false;
    }
    return out;
  }

  /// A new descriptor (the caller closes it) that becomes readable when the
  /// daemon has ended on its own: a pidfd (close-on-exec) of the waiter the
  /// pid file records. The waiter exits only after it has written `exit` and
  /// killed and reaped every process it held, so once the descriptor is
  /// readable exit_status() tells how the daemon ended and its port is free.
  /// For a pid file of stackup 0.2 (no waiter): a pidfd of the main process.
  /// -1 when there is no pid file or it cannot be read, the waiter has exited
  /// (even if not yet reaped) or its pid is another process's now, or the
  /// system gives no pidfds.
  [[nodiscard]] int exit_fd() const {
    using px = detail::posix;
    try {
      const auto dir = open_state();
      if (!dir) return -1;
      const auto rec = read_pid(dir.get());
      if (!rec) return -1;
      const px::ProcessId target = rec->waiter != 0 ? px::ProcessId{rec->waiter, rec->waiter_start}
                                                    : px::ProcessId{rec->pid, rec->start_time};
      px::Fd fd = px::open_pidfd(target);
      // A waiter that has exited but is not yet reaped (by init) still has a
      // pidfd: it is not running, so none is given.
      if (!fd || !px::alive_as(target.pid, target.start_time)) return -1;
      return fd.release();
    } catch (const std::exception&) {
      return -1; // unsafe state directory, corrupt pid file: the queries say why
    }
  }

  /// Stops the daemon at once, without grace: SIGKILL to its main process and
  /// to every process it holds (its waiter then records the end and exits).
  /// Takes no lock, so it may run while a suspend in another thread waits out
  /// the daemon's stop_timeout (a second Ctrl-C of `stack up --attach`); that
  /// suspend then finds the daemon gone and finishes. Only processes the pid
  /// file proves to be the daemon's are signalled (pid and start time). Errors
  /// are swallowed: there is nothing better to do with them at that point.
  void kill() const noexcept {
    using px = detail::posix;
    try {
      const auto dir = open_state();
      if (!dir) return;
      const auto rec = read_pid(dir.get());
      if (!rec) return;
      (void)px::signal_process({rec->pid, rec->start_time}, SIGKILL);
      for (const auto& p : px::daemon_processes(*rec)) (void)px::signal_process(p, SIGKILL);
    } catch (...) {
      // An unsafe state directory or a corrupt pid file: the queries say why.
    }
  }

  /// Nothing of this start is left: no pid file (never started, or stopped by
  /// a suspend). False for a daemon that is not running by is_running() but
  /// still has a pid file: alive but not ready (its probe fails), or ended on
  /// its own with its end on record. A down suspends those all the same, so no
  /// process escapes a down and what a down stopped never reads as an exit.
  [[nodiscard]] bool is_stopped() const {
    const auto dir = open_state();
    if (!dir) return true;
    struct ::stat st {};
    return ::fstatat(dir.get(), "pid", &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
  }

  /// How the daemon last ended on its own, from last_exit(): its exit status
  /// (`code`) or signal, and when (`at`). Only the end of the start the pid
  /// file records: empty while it runs, after a new start, after a down (which
  /// removes the pid file), and when nothing can be read.
  [[nodiscard]] std::optional<Exit> exit_status() const {
    try {
      const auto e = last_exit();
      if (!e || !e->current) return std::nullopt;
      Exit out;
      out.code = e->exit_code;
      out.signal = e->signal;
      out.at = e->when;
      return out;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  /// What a supervisor reads: the config's `restart`, `liveness` and
  /// `on_dependency_restart`.
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

  /// Creates the state directory (mode 0700, parents as needed) with the
  /// ownership marker, and writes the config. Refuses (Error naming the path and
  /// the reason) a state directory that is a symlink, another user's, or
  /// group/world-writable; `/`, a home directory (or a parent of one); and an
  /// existing directory without the marker that is not empty: the state
  /// directory is stackup's own. Also finishes removals a killed deprovision
  /// left behind (`<state_dir>.removing-<pid>`).
  void provision() {
    using px = detail::posix;
    if (const std::string why = px::forbidden_directory(config_.state_dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing state directory " + px::quoted(config_.state_dir) + ": " + why +
                  "; give the daemon a directory of its own");
    {
      // Missing parents are made here (marked, so that deprovision removes
      // them again); one another user can write is refused.
      const px::Fd parent = px::make_parents(config_.state_dir, LOCK_SH, who());
      px::check_parent(parent.get(), config_.state_dir.parent_path(), who(), "use state directory",
                       config_.state_dir);
      remove_leftovers(parent.get());
    }
    const auto locked = lock_state(true);
    claim(locked.dir.get());
    write_config(locked.dir.get());
  }

  /// Starts the command under its waiter and waits until it is ready. Nothing
  /// to do if it already runs. TransitionError when the probe's port is
  /// already taken (naming the port and its holder; nothing is started), when
  /// the main process exits before it is ready or within start_grace (with its
  /// exit status and the last lines of its log; what it left is stopped), or
  /// when it is not ready within start_timeout (it is stopped first);
  /// ProvisioningError when there is no state directory. With a restart policy
  /// (`restart.policy` other than Restart::no) the main process exiting during
  /// that wait is not a failure: resume logs it and returns, keeping the pid
  /// file and `exit` (exit_status() says how it ended), and a supervisor
  /// restarts it by the policy. A taken port or a daemon not ready in time
  /// still fails.
  void resume() {
    using px = detail::posix;
    if (config_.command.empty())
      throw Error("stackup: " + who() + ": no command configured: set .command (argv of the daemon)");
    const auto as = px::run_as(config_.user, who()); // before anything is written: no such user, or not root
    const auto locked = lock_state(false);
    if (!locked)
      throw ProvisioningError("stackup: " + who() + ": state directory " + px::quoted(config_.state_dir) +
                              " does not exist: provision first");
    const int dir = locked.dir.get();
    claim(dir);
    write_config(dir);
    if (const auto rec = read_pid(dir)) {
      // Under the lock, so a concurrent `up` that started it is seen here.
      if (px::identify(*rec) == px::Identity::ours) return await_ready(dir, *rec, 0, false);
      // Stale: the main process is gone or the pid reused. What it left
      // running is stopped, so that this start is the only one.
      stop(dir);
    }
    if (config_.ready.kind != ready::Probe::Kind::none) {
      // Whatever answers on the port now is not this daemon: its probe would pass
      // for it while the daemon itself dies of "address already in use".
      if (const std::string holders = px::listener_holders(config_.ready.port); !holders.empty())
        throw TransitionError(std::string(this->role_name()), Transition::resume,
                              "stackup: " + who() + ": port " + std::to_string(config_.ready.port) +
                                  " is already taken by " + holders +
                                  " before the daemon started: stop that process, or give the daemon another port");
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

    px::PidRecord rec{0, 0, px::new_invocation_id()};
    if (rec.invocation_id.empty()) rec.invocation_id = std::string(32, '0'); // no random bytes: no id to prove by
    auto env = config_.env;
    if (rec.invocation_id != std::string(32, '0')) env[std::string(px::invocation_variable)] = rec.invocation_id;
    px::SpawnOptions o;
    o.argv = config_.command;
    o.env = &env;
    o.working_dir = config_.working_dir;
    o.stdin_fd = null.get();
    o.stdout_fd = log.get();
    o.stderr_fd = log.get();
    o.user = as ? &*as : nullptr;
    try {
      // The pid file is written before the main process may exec, so no daemon
      // ever runs unrecorded, even if this process dies right now. Its waiter
      // holds everything it starts and writes `exit` when it ends.
      px::spawn_held(o, dir, rec.invocation_id + " ", [&](const px::Held& held) {
        const auto main = px::read_proc_stat(held.main);
        const auto waiter = px::read_proc_stat(held.waiter);
        if (!main || !waiter)
          throw Error("stackup: cannot read /proc/" + std::to_string(main ? held.waiter : held.main) +
                      "/stat of the new process");
        rec.pid = held.main;
        rec.start_time = main->start_time;
        rec.waiter = held.waiter;
        rec.waiter_start = waiter->start_time;
        px::write_file_atomic(dir, "pid", px::format_pid_record(rec), pid_file());
      });
    } catch (const std::exception& e) {
      ::unlinkat(dir, "pid", 0);
      throw TransitionError(std::string(this->role_name()), Transition::resume,
                            "stackup: " + who() + ": " + std::string(detail::unprefixed(e.what())));
    }
    await_ready(dir, rec, run_start, true);
  }

  /// SIGTERM to the main process, up to stop_timeout for it to exit, then
  /// SIGKILL to every process still held; returns once the waiter is gone
  /// (nothing the daemon started is left) and removes the pid file. A stale
  /// pid file (process gone, or the pid now another process's) is removed
  /// without signalling anything but what its waiter still holds.
  void suspend() {
    if (const auto locked = lock_state(false)) stop(locked.dir.get());
  }

  /// Stops the daemon if it runs, then removes the state directory, the
  /// ownership marker last. Refuses (Error, removing nothing) a directory that
  /// is not stackup's. Also finishes removals a killed deprovision left behind
  /// (`<state_dir>.removing-<pid>`).
  void deprovision() {
    using px = detail::posix;
    if (const std::string why = px::forbidden_directory(config_.state_dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing to remove state directory " + px::quoted(config_.state_dir) +
                  ": " + why);
    {
      // Everything is removed relative to this descriptor of the parent,
      // never by path: a directory swapped for a symlink is not followed.
      const auto parent_dir = config_.state_dir.parent_path();
      const px::Fd parent(::open(parent_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!parent) {
        if (errno == ENOENT) return; // no parent, no state directory
        throw Error("stackup: " + who() + ": cannot open " + px::quoted(parent_dir) + ": " + px::sys_message(errno));
      }
      px::check_parent(parent.get(), parent_dir, who(), "remove state directory", config_.state_dir);
      remove_leftovers(parent.get());
      const auto locked = lock_state(false);
      if (locked) {
        const int dir = locked.dir.get();
        if (const auto mount = px::find_mount(dir))
          throw Error("stackup: " + who() + ": refusing to remove state directory " + px::quoted(config_.state_dir) +
                      ": " + px::removal_error(config_.state_dir, mount) + "; nothing was removed or stopped");
        stop(dir);
        // The directory locked must be the entry of the parent held.
        const std::string leaf = config_.state_dir.filename().string();
        struct stat held{}, entry{};
        if (::fstat(dir, &held) != 0 || ::fstatat(parent.get(), leaf.c_str(), &entry, AT_SYMLINK_NOFOLLOW) != 0 ||
            held.st_ino != entry.st_ino || held.st_dev != entry.st_dev)
          throw Error("stackup: " + who() + ": state directory " + px::quoted(config_.state_dir) +
                      " was replaced while it was being removed; nothing was removed: look at what is there now");
        if (px::is_mount_point(parent.get(), dir))
          throw Error("stackup: " + who() + ": state directory " + px::quoted(config_.state_dir) +
                      " is a mount point; stackup never removes anything on another mount: unmount it (umount " +
                      config_.state_dir.string() + "), then deprovision again");
        // Move the directory away while holding its lock: a process waiting for
        // that lock then finds no state directory at the path and gives up,
        // instead of locking a new lock file inside a directory being removed (two
        // holders at once). If this process dies before the removal ends, the next
        // provision or deprovision finishes it (remove_leftovers).
        std::string doomed = leaf + ".removing-" + std::to_string(::getpid());
        if (::renameat(parent.get(), leaf.c_str(), parent.get(), doomed.c_str()) != 0) doomed = leaf;
        if (const auto r = remove_state_tree(parent.get(), doomed, dir))
          throw Error("stackup: " + who() + ": " + px::removal_error(parent_dir / doomed, r) +
                      "; what is left keeps stackup's marker: remove the cause, then deprovision again");
      }
    } // the parent is let go: removing it takes its lock
    px::remove_made_parents(config_.state_dir);
  }

private:
  // What proves that a state directory is stackup's.
  enum class Owner : unsigned char {
    ours,      // it carries the marker
    legacy,    // made by stackup 0.1.0: no marker, but a config in stackup's format
    unclaimed, // empty, or only what an interrupted provision leaves: provision may take it
    foreign,   // anything else: never written to, signalled from or removed
  };

  static Owner owner_of(int dir) {
    using px = detail::posix;
    if (px::has_marker(dir, marker)) return Owner::ours;
    if (px::begins_with(dir, "config", std::string(detail::daemon_config_header) + "\n")) return Owner::legacy;
    const int copy = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); // readdir has its own position
    DIR* entries = copy >= 0 ? ::fdopendir(copy) : nullptr;
    if (entries == nullptr) {
      if (copy >= 0) ::close(copy);
      return Owner::foreign;
    }
    const std::string marker_tmp = std::string(marker) + ".tmp"; // create_marker's temporary file
    Owner found = Owner::unclaimed;
    while (const dirent* e = ::readdir(entries)) {
      const std::string_view n = e->d_name;
      struct stat st{};
      if (n == "." || n == "..") continue;
      // The lock file lock_private_dir creates is empty; nothing ever writes to it.
      if (n == "lock" && ::fstatat(dir, "lock", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
          st.st_size == 0)
        continue;
      if (n == marker_tmp) continue;
      // Another process may have claimed it since the marker was looked for
      // (it writes the marker first, then everything else): look again.
      found = px::has_marker(dir, marker) ? Owner::ours : Owner::foreign;
      break;
    }
    ::closedir(entries);
    return found;
  }

  // The owner of the open state directory `dir`; Error, naming the path and
  // the fix, when it is foreign.
  Owner check_owner(int dir) const {
    const Owner owner = owner_of(dir);
    if (owner == Owner::foreign)
      throw Error("stackup: " + who() + ": refusing state directory " + detail::posix::quoted(config_.state_dir) +
                  ": it has no stackup marker (" + marker +
                  ") and is not empty, so stackup did not create it and leaves it untouched: give the daemon a "
                  "directory of its own (a new or empty one)");
    return owner;
  }

  // The state directory, opened and checked (Error when unsafe or foreign);
  // empty when it does not exist.
  [[nodiscard]] detail::posix::Fd open_state() const {
    auto dir = detail::posix::open_private_dir(config_.state_dir);
    if (dir) check_owner(dir.get());
    return dir;
  }

  // The state directory, locked (created if `create`); checked to be
  // stackup's before the lock file is created in it, and again under the lock.
  // Empty when it does not exist and was not to be created.
  [[nodiscard]] detail::posix::LockedDir lock_state(bool create) const {
    (void)open_state();
    auto locked = detail::posix::lock_private_dir(config_.state_dir, create);
    if (locked) check_owner(locked.dir.get());
    return locked;
  }

  // Under the lock: makes the directory provably stackup's (writes the marker
  // into an empty directory or one made by 0.1.0). Error when it is foreign.
  void claim(int dir) const {
    if (check_owner(dir) == Owner::ours) return;
    const std::string content = std::string(detail::posix::marker_prefix) + " as the state directory of local_daemon " +
                                std::string(this->role_name()) + "; deprovision removes this directory and everything in it\n";
    if (!detail::posix::create_marker(dir, marker, content, config_.state_dir / marker) &&
        !detail::posix::has_marker(dir, marker))
      check_owner(dir); // something that is not a marker appeared in its place: foreign now
  }

  // Removes the state directory `name` in `parent`, open as `dir` (checked to
  // be that entry and stackup's), with everything in it, through descriptors
  // only: never through a symlink, never onto another mount, never above
  // `dir`. Its proofs of ownership (config, then the marker) go last: a
  // removal cut short leaves a directory that is still provably stackup's, so
  // a later remove_leftovers finishes it. A process that was waiting for the
  // lock may add one lock file meanwhile: it goes again, up to 16 times.
  static detail::posix::Removal remove_state_tree(int parent, const std::string& name, int dir) {
    return detail::posix::remove_directory_at(parent, name, dir, {std::string_view("config"), std::string_view(marker)},
                                              [](int) {}, 16);
  }

  // Finishes removals that a deprovision killed after moving the state
  // directory away left behind: `<state_dir>.removing-<pid>` entries of the
  // parent held as `parent` whose process is gone and that are, as opened,
  // this user's private directories and provably stackup's (or hold nothing).
  // Best effort: what cannot be removed now is left for the next call.
  void remove_leftovers(int parent) const {
    using px = detail::posix;
    const std::string prefix = config_.state_dir.filename().string() + ".removing-";
    std::vector<std::string> names;
    if (px::list_directory(parent, names) != 0) return;
    for (const auto& n : names) {
      if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
      pid_t pid = 0;
      const auto r = std::from_chars(n.data() + prefix.size(), n.data() + n.size(), pid);
      if (r.ec != std::errc{} || r.ptr != n.data() + n.size() || pid <= 0) continue;
      if (const auto st = px::read_proc_stat(pid); st && px::is_live_state(st->state)) continue; // may be removing it
      const px::Fd dir = px::open_below(parent, n.c_str());
      struct stat st{};
      if (!dir || ::fstat(dir.get(), &st) != 0 || st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ||
          owner_of(dir.get()) == Owner::foreign)
        continue;
      (void)remove_state_tree(parent, n, dir.get());
    }
  }

  using Base::config_;
  using Base::who;

  static std::string timestamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    return std::string(buf, std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm));
  }

  void write_config(int dir) const {
    detail::posix::write_file_atomic(dir, "config", detail::format_daemon_config(this->role_name(), config_),
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

  // The waiter's record of how the main process ended; empty when there is
  // none or it cannot be read (not a regular file, corrupt).
  [[nodiscard]] std::optional<detail::posix::ExitRecord> read_exit(int dir) const {
    try {
      const auto text = detail::posix::read_file_at(dir, "exit", 256, config_.state_dir / "exit");
      return text ? detail::posix::parse_exit_record(*text) : std::nullopt;
    } catch (const Error&) {
      return std::nullopt;
    }
  }

  // Whether the daemon answers its probe now, on a listener of its own
  // processes (the waiter's descendants) unless any_listener says any will do.
  [[nodiscard]] bool ready_now(const detail::posix::PidRecord& rec, std::chrono::milliseconds timeout) const {
    using px = detail::posix;
    if (config_.ready.kind == ready::Probe::Kind::none) return true;
    if (!probe(timeout)) return false;
    if (config_.ready.any_listener || rec.waiter == 0) return true; // a record from before the hold: none to ask
    const auto inodes = px::listening_inodes(config_.ready.port);
    if (inodes.empty()) return false;
    for (const auto& p : px::daemon_processes(rec))
      if (px::holds_socket(p.pid, inodes)) return true;
    return false;
  }

  // Stops what a record names: under the hold (KillMode=mixed), or, for a pid
  // file of stackup 0.2 (no waiter), by its session and invocation id.
  detail::posix::Stopped halt(const detail::posix::PidRecord& rec) const {
    using px = detail::posix;
    return rec.waiter != 0 ? px::stop_held(rec, config_.stop_timeout, who())
                           : px::stop_process(rec, config_.stop_timeout, who());
  }

  // Polls (1 ms back-off up to 10 ms) until the daemon is ready, its main
  // process ends, or start_timeout passes. Ready: the probe passes (see
  // ready_now); without a probe, the main process is still running once
  // start_grace has passed (`fresh`: this call started it; a daemon found
  // running is ready at once). `log_from`: where this run's output begins.
  void await_ready(int dir, const detail::posix::PidRecord& rec, off_t log_from, bool fresh) {
    using px = detail::posix;
    using Clock = px::Clock;
    const bool probed = config_.ready.kind != ready::Probe::Kind::none;
    const auto deadline = px::deadline_after(config_.start_timeout);
    const auto grace_end = px::deadline_after(fresh && !probed ? config_.start_grace : std::chrono::milliseconds(0));
    px::Backoff backoff;
    auto fail = [&](std::string what) {
      ::unlinkat(dir, "pid", 0);
      std::string tail = px::log_tail(dir, "daemon.log", log_from);
      what += tail.empty() ? " (" + log_file().string() + " has nothing from it)"
                           : "; last lines of " + log_file().string() + ":" + tail;
      throw_transition_error(std::string(this->role_name()), Transition::resume, "stackup: " + who() + " " + what);
    };
    const std::string when = probed ? "before it was ready" : "within its start-up grace of " +
                                                                 px::format_duration(config_.start_grace);
    while (true) {
      if (rec.waiter != 0 && px::identify(rec, false) != px::Identity::ours) {
        // Its waiter kills what it left and records how it ended; stop_held waits for that.
        const bool left = halt(rec) == px::Stopped::remains;
        const auto ended = read_exit(dir);
        const bool known = ended && ended->invocation_id == rec.invocation_id && ended->pid == rec.pid;
        std::string what = known ? "exited with " + px::describe_exit(ended->exit) + " " + when
                                 : "exited " + when;
        if (left || (known && ended->left > 0)) {
          append_log(dir, "stopped the processes it left running");
          what += "; it left processes running, which were stopped: the command must run its server in the "
                  "foreground (one that puts it in the background, like `sh -c 'server &'` or `redis-server "
                  "--daemonize yes`, is not supported)";
        }
        if (supervised()) return left_to_policy(dir, what);
        fail(what);
      }
      if (rec.waiter == 0) {
        // A daemon started by stackup 0.2, found running: no waiter holds it.
        const bool gone = px::identify(rec, false) != px::Identity::ours;
        const auto ended = px::peek_exit(rec.pid);
        const bool status = ended && ended->code != px::unknown_exit;
        if (gone || status) {
          const bool left = halt(rec) != px::Stopped::not_running;
          std::string what = status ? "exited with " + px::describe_exit(*ended) + " " + when : "exited " + when;
          if (left) append_log(dir, "stopped the processes it left in its session");
          if (supervised()) return left_to_policy(dir, what);
          fail(what);
        }
      }
      if (!probed) {
        if (Clock::now() >= grace_end) return;
      } else {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (ready_now(rec, std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(1000)))) return;
      }
      if (stop_requested()) { // Ctrl-C, or UpOptions::stop: give up the wait, leave nothing running
        halt(rec);
        append_log(dir, "stopped: the start was interrupted (a stop was requested)");
        ::unlinkat(dir, "pid", 0);
        throw InterruptedError("stackup: " + who() + " was stopped before it was ready: a stop was requested");
      }
      if (probed && Clock::now() >= deadline) {
        const auto how = halt(rec);
        append_log(dir, how == px::Stopped::killed ? "stopped with SIGKILL: not ready in time"
                                                   : "stopped with SIGTERM: not ready in time");
        fail("was not ready within " + px::format_duration(config_.start_timeout) + " (probe " +
             config_.ready.describe() + "); it was stopped");
      }
      backoff.sleep(probed ? deadline : grace_end);
    }
  }

  // Whether an exit during start-up is its restart policy's to handle (DESIGN
  // §10) rather than resume's failure.
  [[nodiscard]] bool supervised() const noexcept { return config_.restart.policy != Restart::no; }

  // An exit during start-up of a daemon with a restart policy: resume does not
  // fail. The pid file and `exit` stay, so exit_status() and status show how it
  // ended; a supervisor restarts it by its policy.
  void left_to_policy(int dir, const std::string& what) const {
    append_log(dir, what + "; resume leaves it to its restart policy (" + std::string(to_string(config_.restart.policy)) +
                        ")");
  }

  // Stops the recorded daemon (if it is still ours) and everything it holds,
  // and removes the pid file.
  void stop(int dir) {
    using px = detail::posix;
    const auto rec = read_pid(dir);
    if (!rec) return;
    const auto how = halt(*rec);
    if (how == px::Stopped::terminated) append_log(dir, "stopped with SIGTERM");
    if (how == px::Stopped::killed)
      append_log(dir, "stopped with SIGKILL: still running " + px::format_duration(config_.stop_timeout) +
                          " after SIGTERM");
    if (how == px::Stopped::remains) append_log(dir, "stopped with SIGKILL what it had left running");
    ::unlinkat(dir, "pid", 0);
  }

  void append_log(int dir, std::string_view what) const {
    const auto log = detail::posix::open_own_file(dir, "daemon.log", O_WRONLY | O_APPEND);
    if (log) detail::posix::write_all(log.get(), "--- stackup " + timestamp() + ": " + std::string(what) + "\n");
  }
};

} // namespace stackup
// ---- end stackup/components/local_daemon.hpp ----

// ---- begin stackup/components/local_directory.hpp ----
// stackup — LocalDirectory<"role">: a directory that provision creates and
// deprovision removes, but only if stackup created it (an ownership marker).
// SPDX-License-Identifier: MIT


#include <array>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace stackup {

/// Configuration of a LocalDirectory; use designated initialisers.
struct LocalDirectoryConfig {
  std::string name{};           ///< display name; empty: the role
  std::filesystem::path path{}; ///< the directory (made absolute at construction)
  /// Users whose existing directories this component may take over and remove
  /// (e.g. "postgres" for a data directory the postgres daemon owns). Any other
  /// user's directory is refused. A stack file fills it with every `user` its
  /// components run as.
  std::vector<std::string> users{};
};

/// A directory (an artifact store, a data folder). `provision` creates it
/// (parents too, each marked with the extended attribute
/// `trusted.stackup.parent` as root, `user.stackup.parent` otherwise, and
/// removed again by `deprovision` once empty) and writes stackup's ownership
/// marker `.stackup-directory` in it; `deprovision` removes it, refusing a
/// directory without the marker (one stackup did not create), a symlink, `/`,
/// any user's home directory or a parent of one, a directory owned by another
/// user (unless named in `users`), and a path whose parent another user can
/// write (who could swap it for a symlink). Removal goes through descriptors
/// only, never through a symlink, and stops at a mount point inside, leaving
/// it intact. Provisioned = the directory exists with the marker; running =
/// provisioned (there is no resume or suspend).
///
/// Processes and threads acting on the same directory take turns: each action
/// holds an exclusive flock on the parent directory, so nothing is left behind
/// once the directory is gone. Racing a deprovision, a provision succeeds and
/// the directory ends as the last of the two left it. `deprovision` swaps the
/// directory with an empty marked one in one step (its contents leave the path
/// at once, to `<path>.removing-<pid>`), then removes the contents with the
/// marker last, then the empty one: until everything is gone the path carries
/// the marker, so a removal that fails half-way or is killed leaves the
/// directory provisioned, and the next `deprovision` finishes the job. A new
/// directory is made beside the path with its marker, then moved into place
/// (where the file system can rename without replacing): a process writing
/// files into the path meanwhile never finds it unmarked.
///
/// ```cpp
/// stackup::LocalDirectory<"artifact_store"> artifacts{{.name = "artifacts", .path = ".stackup/artifacts"}};
/// ```
template <FixedString Role = "">
class LocalDirectory : public detail::ShippedComponent<LocalDirectory<Role>, Role, LocalDirectoryConfig> {
  using Base = detail::ShippedComponent<LocalDirectory<Role>, Role, LocalDirectoryConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "local_directory";
  /// The configuration type (designated initialisers).
  using Config = LocalDirectoryConfig;
  /// The ownership marker's file name, inside the directory.
  static constexpr const char* marker = ".stackup-directory";

  /// A directory with this configuration; a relative path is made absolute now.
  explicit LocalDirectory(Config config) : Base(std::move(config)) {
    if (!config_.path.empty()) config_.path = detail::owned_directory(config_.path);
  }

  /// The directory a stack file's table describes (`flavor =
  /// "local_directory"`, see docs/stack-files.md): `name` and the required
  /// `path`; `restart`, `liveness` and `on_dependency_restart` are errors at
  /// their key (a directory never stops on its own). `Table` is stackup::StackFileTable (<stackup/stack_file.hpp>), or
  /// a type with its interface.
  template <class Table> [[nodiscard]] static LocalDirectory from_table(const Table& t) {
    Config c;
    c.name = t.optional_string("name").value_or("");
    auto p = t.path("path");
    if (!p) t.fail(t.what() + " lacks the required key 'path' (the directory)");
    c.path = std::move(*p);
    detail::refuse_supervision(t, flavor, "it never stops on its own");
    return LocalDirectory(std::move(c));
  }

  // name() (the configured name, or the role) and config() come from Base.

  /// The directory (absolute).
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return config_.path; }
  /// The users whose directories this component may take over (see
  /// LocalDirectoryConfig::users); a stack file sets those its components run as.
  [[nodiscard]] const std::vector<std::string>& users() const noexcept { return config_.users; }
  /// Replaces users().
  void set_users(std::vector<std::string> users) { config_.users = std::move(users); }
  /// What this component owns (one owner per path, checked by the stack): the directory.
  [[nodiscard]] std::array<std::string_view, 1> owned_paths() const noexcept { return {config_.path.native()}; }
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
    using px = detail::posix;
    check_path("create");
    // The parent, made if missing and locked: the lock of every action here.
    const px::Fd parent = px::make_parents(config_.path, LOCK_EX, who());
    px::check_parent(parent.get(), config_.path.parent_path(), who(), "create", config_.path);
    const std::string leaf = config_.path.filename().string();
    if (create_marked(parent.get(), leaf)) return;
    if (::mkdirat(parent.get(), leaf.c_str(), 0777) != 0 && errno != EEXIST)
      throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": " + px::sys_message(errno));
    const px::Fd dir = open_dir(parent.get(), leaf, "create");
    if (!dir) throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": it was removed meanwhile");
    check_owner(dir.get(), "take over");
    if (marked(dir.get())) return;
    std::vector<std::string> entries;
    if (const int e = px::list_directory(dir.get(), entries))
      throw Error("stackup: " + who() + ": cannot read " + px::quoted(config_.path) + ": " + px::sys_message(e));
    if (!entries.empty())
      refuse("take over", "it exists, is not empty and has no stackup marker (stackup did not create it): "
                          "choose another path, or empty it yourself");
    if (!write_marker(dir.get()))
      throw Error("stackup: " + who() + ": cannot write the marker " + px::quoted(config_.path / marker) + ": " +
                  px::sys_message(errno));
  }

  /// Removes the directory and everything in it, and what an interrupted
  /// deprovision left beside it (`<path>.removing-<pid>` with the marker).
  /// Nothing to do if it does not exist. Error (naming the path, removing
  /// nothing) when it lacks the marker, is a symlink, or is `/`, empty, the
  /// home directory or a parent of it. Error when something in it cannot be
  /// removed: what is left keeps the marker, so the directory is still
  /// provisioned and deprovisioning again finishes the job.
  void deprovision() {
    using px = detail::posix;
    check_path("remove");
    {
      const px::Fd parent = lock_parent();
      if (!parent) return; // no parent, no directory
      const int at = parent.get();
      px::check_parent(at, config_.path.parent_path(), who(), "remove", config_.path);
      const std::string leaf = config_.path.filename().string();
      remove_leftovers(at, leaf);
      // Everything below acts on what is opened here, never on the path again.
      const px::Fd dir = open_dir(at, leaf, "remove");
      if (dir) {
        if (!marked(dir.get()))
          refuse("remove", std::string("it has no stackup marker (") + marker +
                               "), so stackup did not create it: remove it yourself if you mean to");
        const struct stat st = check_owner(dir.get(), "remove");
        if (const auto mount = px::find_mount(dir.get()))
          refuse("remove", px::removal_error(config_.path, mount) + "; nothing was removed");
        // Swap in an empty marked directory; where the file system cannot swap,
        // the directory is removed in place, with the same guarantees.
        const std::string aside = beside(leaf);
        if (make_marked(at, aside, st.st_mode & 07777)) {
          if (!px::rename_entry(at, aside.c_str(), leaf.c_str(), px::Rename::exchange)) {
            (void)remove_marked(at, aside); // still the empty one
          } else if (const auto r = remove_marked(at, aside, &st)) {
            fail_removal(config_.path.parent_path() / aside, r);
          }
        }
        if (const auto r = remove_marked(at, leaf)) fail_removal(config_.path, r);
      }
    } // the parent's lock goes first: removing the parent takes it again
    px::remove_made_parents(config_.path);
  }

private:
  // The contents of `<path>` are removed as `<path>.removing-<pid>`, and a new
  // directory is made under that name before it moves into place.
  static constexpr std::string_view removing = ".removing-";
  static std::string beside(const std::string& leaf) { return leaf + std::string(removing) + std::to_string(::getpid()); }

  using Base::config_;
  using Base::who;

  [[noreturn]] void refuse(std::string_view action, std::string_view why) const {
    throw Error("stackup: " + who() + ": refusing to " + std::string(action) + " " +
                detail::posix::quoted(config_.path) + ": " + std::string(why));
  }
  [[noreturn]] void fail_removal(const std::filesystem::path& where, const detail::posix::Removal& r) const {
    throw Error("stackup: " + who() + ": " + detail::posix::removal_error(where, r) +
                "; what is left keeps stackup's marker, so " + detail::posix::quoted(config_.path) +
                " is still provisioned: remove the cause, then deprovision again (e.g. `down --force`)");
  }

  // The directory `leaf` in `parent`, opened below it (never through a
  // symlink, never onto another mount); empty when it does not exist. Error,
  // naming the reason, for anything else.
  [[nodiscard]] detail::posix::Fd open_dir(int parent, const std::string& leaf, std::string_view action) const {
    using px = detail::posix;
    px::Fd dir = px::open_below(parent, leaf.c_str());
    if (dir) return dir;
    const int e = errno;
    if (e == ENOENT) return {};
    struct stat st{};
    if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
      refuse(action, "it is a symlink; stackup never works through a symlink: configure the real path");
    if (e == ENOTDIR || e == ELOOP) refuse(action, "it exists and is not a directory: remove it or choose another path");
    if (e == EXDEV)
      refuse(action, "it is a mount point; stackup never removes anything on another mount: use a directory "
                     "inside it, or unmount it (umount " + config_.path.string() + ")");
    throw Error("stackup: " + who() + ": cannot open " + px::quoted(config_.path) + ": " + px::sys_message(e));
  }

  // The status of the open directory `dir`; Error when it is another user's
  // that `users` does not name (a home directory, someone's data).
  struct stat check_owner(int dir, std::string_view action) const {
    struct stat st{};
    if (::fstat(dir, &st) != 0)
      throw Error("stackup: " + who() + ": cannot inspect " + detail::posix::quoted(config_.path) + ": " +
                  detail::posix::sys_message(errno));
    if (const std::string why = detail::posix::foreign_owner(st, config_.users); !why.empty())
      refuse(action, why + " (a user the stack runs a component as may be named in `users`)");
    return st;
  }

  // Paths stackup never creates or removes: empty, "/", a home directory or a
  // parent of one.
  void check_path(std::string_view action) const {
    if (const std::string why = detail::posix::forbidden_directory(config_.path); !why.empty()) {
      refuse(action, config_.path.empty() ? why + ": set .path" : why);
    }
  }

  // The parent directory, locked: every action on this directory, and on
  // what a deprovision moves aside next to it, runs under this lock.
  [[nodiscard]] detail::posix::Fd lock_parent() const {
    return detail::posix::lock_directory(config_.path.parent_path());
  }

  [[nodiscard]] static bool marked(int dir) {
    struct stat st{};
    return ::fstatat(dir, marker, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  }
  // `name` in `parent` is a real directory carrying the marker.
  [[nodiscard]] static bool marked_at(int parent, const std::string& name) {
    const detail::posix::Fd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    return dir && marked(dir.get());
  }

  // O_EXCL: never open something planted in the marker's place (a FIFO, a link).
  bool write_marker(int dir) const {
    const detail::posix::Fd m(::openat(dir, marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    return m && detail::posix::write_all(m.get(), "created by stackup for " + std::string(this->role_name()) +
                                                      "; deprovision removes this directory and everything in it\n");
  }

  // Creates `name` in `parent` as an empty directory with the marker; false
  // (and nothing left) when it cannot.
  bool make_marked(int parent, const std::string& name, mode_t mode) const {
    if (::mkdirat(parent, name.c_str(), mode) != 0) return false;
    const detail::posix::Fd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (dir && write_marker(dir.get())) return true;
    if (dir) ::unlinkat(dir.get(), marker, 0);
    ::unlinkat(parent, name.c_str(), AT_REMOVEDIR);
    return false;
  }

  // A new directory appears at its path with the marker already in it: made
  // beside it (under the name deprovision uses, so that what a crash leaves is
  // cleaned the same way), then moved into place. A process writing into the
  // path while it is created cannot make it look like someone else's. False,
  // leaving nothing, when the path exists or cannot be taken that way.
  bool create_marked(int parent, const std::string& leaf) const {
    struct stat st{};
    if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) return false;
    const std::string fresh = beside(leaf);
    if (!make_marked(parent, fresh, 0777)) return false;
    if (detail::posix::rename_entry(parent, fresh.c_str(), leaf.c_str(), detail::posix::Rename::only_if_free))
      return true;
    (void)remove_marked(parent, fresh);
    return false;
  }

  // Removes the marked directory `name` in `parent`, opened below it and
  // checked to carry the marker (and, given `was`, to be that directory): its
  // contents, then the marker, then the directory, so that it carries the
  // proof of ownership until nothing else is left. On failure the marker is
  // still there (written again if the directory itself could not go).
  detail::posix::Removal remove_marked(int parent, const std::string& name, const struct stat* was = nullptr) const {
    using px = detail::posix;
    const px::Fd dir = px::open_below(parent, name.c_str());
    if (!dir) return errno == ENOENT ? px::Removal{} : px::Removal{errno, {}};
    struct stat st{};
    if (!marked(dir.get()) ||
        (was != nullptr && (::fstat(dir.get(), &st) != 0 || st.st_ino != was->st_ino || st.st_dev != was->st_dev)))
      return {ESTALE, {}}; // not what was checked: leave it
    return px::remove_directory_at(parent, name, dir.get(), {std::string_view(marker)},
                                   [this](int d) { (void)write_marker(d); });
  }

  // What an interrupted deprovision or provision left: `<leaf>.removing-<digits>`
  // with the marker. Under the lock, no other action is using it. One of that
  // name without the marker goes only if it is empty (a provision killed before
  // its marker); anything else without the marker is not stackup's and stays.
  void remove_leftovers(int parent, const std::string& leaf) const {
    std::vector<std::string> entries;
    if (const int e = detail::posix::list_directory(parent, entries))
      throw Error("stackup: " + who() + ": cannot read " + detail::posix::quoted(config_.path.parent_path()) + ": " +
                  detail::posix::sys_message(e));
    const std::string prefix = leaf + std::string(removing);
    for (const auto& n : entries) {
      if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0 ||
          n.find_first_not_of("0123456789", prefix.size()) != std::string::npos)
        continue;
      if (!marked_at(parent, n)) {
        ::unlinkat(parent, n.c_str(), AT_REMOVEDIR); // fails, changing nothing, unless it is an empty directory
        continue;
      }
      if (const auto r = remove_marked(parent, n)) fail_removal(config_.path.parent_path() / n, r);
    }
  }
};

} // namespace stackup
// ---- end stackup/components/local_directory.hpp ----

// ---- begin stackup/components/command.hpp ----
// stackup — Command<"role">: a component driven by shell commands, one per action
// and per query (k3d, kubectl, terraform, docker compose, ...).
// SPDX-License-Identifier: MIT


#include <algorithm>
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
  /// Per command; then its process group is killed. milliseconds::max() waits
  /// for ever; zero (or negative, which counts as zero) gives no time at all.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  std::filesystem::path working_dir{};      ///< empty: the caller's current directory
  std::map<std::string, std::string> env{}; ///< variables added to (or replacing) the inherited environment
  /// Run every command as this user (its uid, gid and groups; HOME, USER and
  /// LOGNAME are its own unless `env` sets them). Empty or the current user:
  /// as this process. Another user needs root; the user must be able to enter
  /// `working_dir`.
  std::string user{};
  /// Whether a supervisor (stackup::supervise) runs `resume` again when the
  /// `is_running` query turns false without a down (it polls: a Command
  /// cannot tell of its exit), after what back-off, and when it gives up
  /// (DESIGN §10). A policy needs a `resume` command.
  RestartPolicy restart{};
  /// A probe a supervisor runs every `period` once the component is running;
  /// `failures` failures in a row count as an exit. Default: none.
  Liveness liveness{};
  /// Whether a supervisor suspends the component while one of its
  /// dependencies restarts, and resumes it once that one is ready again.
  /// Default: ignore.
  OnDependencyRestart on_dependency_restart{};
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
/// - With `user`, each command runs as that user (see CommandConfig::user);
///   that another user needs root is an Error naming the component.
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
template <FixedString Role = "">
class Command : public detail::ShippedComponent<Command<Role>, Role, CommandConfig> {
  using Base = detail::ShippedComponent<Command<Role>, Role, CommandConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "command";
  /// The configuration type (designated initialisers).
  using Config = CommandConfig;

  /// A component with these commands; a negative timeout becomes zero. Runs nothing.
  explicit Command(Config config) : Base(std::move(config)) {
    config_.timeout = std::max(config_.timeout, std::chrono::milliseconds::zero());
  }

  /// The component a stack file's table describes (`flavor = "command"`, see
  /// docs/stack-files.md): `name`, the six commands, `timeout`, `working_dir`
  /// (default: the file's directory), `env`, `user`, and `restart`,
  /// `liveness` and `on_dependency_restart` (a policy needs `resume`). `Table` is
  /// stackup::StackFileTable (<stackup/stack_file.hpp>), or a type with its interface.
  template <class Table> [[nodiscard]] static Command from_table(const Table& t) {
    Config c;
    c.name = t.optional_string("name").value_or("");
    c.provision = t.optional_string("provision").value_or("");
    c.deprovision = t.optional_string("deprovision").value_or("");
    c.resume = t.optional_string("resume").value_or("");
    c.suspend = t.optional_string("suspend").value_or("");
    c.is_provisioned = t.optional_string("is_provisioned").value_or("");
    c.is_running = t.optional_string("is_running").value_or("");
    c.timeout = t.duration("timeout").value_or(c.timeout);
    c.working_dir = t.path_or("working_dir", t.directory());
    c.env = t.string_map("env");
    c.user = detail::user_from_table(t);
    const auto supervision = detail::supervision_from_table(
        t, c.resume.empty() ? "the component has no 'resume' command, so there is nothing to restart it with: add "
                              "resume = \"...\" (the command that starts it), or remove 'restart'"
                            : "");
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    return Command(std::move(c));
  }

  // name() (the configured name, or the role) and config() come from Base.

  /// What a supervisor reads: the config's `restart`, `liveness` and
  /// `on_dependency_restart`. (No exit_fd() or exit_status(): a Command
  /// cannot tell when or how what it started ends; a supervisor polls
  /// is_running().)
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

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
  using Base::config_;
  using Base::who;

  [[nodiscard]] detail::posix::ShellResult run(const std::string& command) const {
    using px = detail::posix;
    const auto as = px::run_as(config_.user, who());
    try {
      return px::run_shell(command, config_.timeout, config_.working_dir, config_.env, as ? &*as : nullptr);
    } catch (const Error& e) {
      // "cannot start '/bin/sh': ...": say whose command it was, and which.
      throw Error("stackup: " + who() + ": `" + command + "`: " + std::string(detail::unprefixed(e.what())));
    }
  }

  static std::string stderr_part(const detail::posix::ShellResult& r) {
    const std::string tail = detail::posix::text_tail(r.stderr_tail);
    return tail.empty() ? std::string(" (no stderr output)") : "; stderr:" + tail;
  }

  [[nodiscard]] bool query(const std::string& command, std::string_view which) const {
    using px = detail::posix;
    const auto r = run(command);
    const std::string where = "stackup: " + who() + ": " + std::string(which) + " query `" + command + "` ";
    if (r.stopped)
      throw InterruptedError(where + "was stopped with its process group: a stop was requested" + stderr_part(r));
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
    using px = detail::posix;
    if (command.empty())
      throw NotImplementedError("stackup: " + who() + " has no " + std::string(to_string(t)) + " command");
    const auto r = run(command);
    const std::string where = "stackup: " + who() + ": " + std::string(to_string(t)) + " `" + command + "` ";
    if (r.stopped)
      throw InterruptedError(where + "was stopped with its process group: a stop was requested" + stderr_part(r));
    if (r.timed_out)
      throw_transition_error(std::string(this->role_name()), t,
                            where + "did not finish within " + px::format_duration(config_.timeout) +
                                " and was killed with its process group" + stderr_part(r));
    if (r.exit.code != CLD_EXITED || r.exit.status != 0)
      throw_transition_error(std::string(this->role_name()), t, where + "failed with " + px::describe_exit(r.exit) + stderr_part(r));
  }
};

} // namespace stackup
// ---- end stackup/components/command.hpp ----

// ---- begin stackup/components/container.hpp ----
// stackup — Container<"role">: a container that the stack creates, starts, stops
// and removes through the engine's own command-line client (podman or docker),
// found again by its labels, with readiness probes as LocalDaemon's.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/container_engine.hpp ----
// stackup — a container engine driven through its own command-line client
// (podman or docker): which one to use, running it, reading its Go-template
// output, and turning its failures into errors that name the thing and the
// fix. Used by Container and by the kubernetes flavour's podman engine. Not
// part of the public API.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/query_round.hpp ----
// stackup — a query round: while a stack operation walks its components (a
// status, an up, a down), components driven by one engine (containers, cluster
// objects) may answer their queries from one engine call for the whole stack
// instead of one call each. Outside a round every query asks afresh, so a
// supervisor polling one component never reads a stale answer. Not public API.
// SPDX-License-Identifier: MIT


#include <atomic>
#include <cstdint>

namespace stackup::detail {

struct QueryRounds {
  static inline std::atomic<std::uint64_t> number{0}; // the latest round opened
  static inline std::atomic<unsigned> open{0};        // rounds open now (operations may nest)
};

/// Opens a round for its lifetime. The engine opens one per walk of a stack;
/// a component that changes what the engine would answer (it creates, starts,
/// stops or removes something) forgets its cached answer itself.
class QueryRound {
public:
  QueryRound() noexcept {
    QueryRounds::number.fetch_add(1, std::memory_order_relaxed);
    QueryRounds::open.fetch_add(1, std::memory_order_relaxed);
  }
  ~QueryRound() { QueryRounds::open.fetch_sub(1, std::memory_order_relaxed); }
  QueryRound(const QueryRound&) = delete;
  QueryRound& operator=(const QueryRound&) = delete;
};

/// The round a cached answer may belong to, or 0 when none is open (then
/// nothing may be answered from a cache).
inline std::uint64_t current_query_round() noexcept {
  return QueryRounds::open.load(std::memory_order_relaxed) == 0 ? 0
                                                                : QueryRounds::number.load(std::memory_order_relaxed);
}

// The engine opens its rounds through RoundHooks (detail/round_hook.hpp), set
// here, in any program that compiles a component reading current_query_round().
inline void open_query_round() noexcept {
  QueryRounds::number.fetch_add(1, std::memory_order_relaxed);
  QueryRounds::open.fetch_add(1, std::memory_order_relaxed);
}
inline void close_query_round() noexcept { QueryRounds::open.fetch_sub(1, std::memory_order_relaxed); }
inline const bool query_rounds_hooked = (RoundHooks::open = &open_query_round, RoundHooks::close = &close_query_round, true);

} // namespace stackup::detail
// ---- end stackup/detail/query_round.hpp ----

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup::detail::container {

/// The engines stackup drives, by the word a configuration uses for them.
inline constexpr std::string_view engine_words = "\"podman\" or \"docker\"";

/// How to install an engine, for messages.
inline constexpr std::string_view install_hint =
    "install one (Debian/Ubuntu: apt-get install podman; Docker: https://docs.docker.com/engine/install/)";

/// The engine to run: its word ("podman" or "docker") and the program found
/// for it on PATH, once, when it was chosen (run() starts that file, not a
/// second lookup of the name).
struct Engine {
  std::string word;
  std::string program;
  [[nodiscard]] bool is_podman() const noexcept { return word == "podman"; }
};

/// The executable file `name` in a PATH directory, or empty.
inline std::string find_on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (dir.empty()) dir = ".";
    const std::string file = dir + "/" + std::string(name);
    struct ::stat st {};
    if (::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(file.c_str(), X_OK) == 0) return file;
    if (colon == std::string_view::npos) return {};
    rest.remove_prefix(colon + 1);
  }
}

/// Whether `word` names an engine.
inline bool valid_engine(std::string_view word) noexcept { return word == "podman" || word == "docker"; }

/// The engine for `configured` ("podman", "docker", or empty: then
/// $STACKUP_CONTAINER_ENGINE, else podman when it is on PATH, else docker).
/// Error naming `who`, the engine(s) looked for and how to install one.
inline Engine find_engine(std::string_view configured, std::string_view who) {
  const std::string where = "stackup: " + std::string(who) + ": ";
  std::string word(configured);
  std::string from = "engine";
  if (word.empty()) {
    if (const char* env = std::getenv("STACKUP_CONTAINER_ENGINE"); env != nullptr && *env != '\0') {
      word = env;
      from = "$STACKUP_CONTAINER_ENGINE";
    }
  }
  if (!word.empty()) {
    if (!valid_engine(word))
      throw Error(where + from + " is \"" + word + "\": give " + std::string(engine_words));
    std::string program = find_on_path(word);
    if (program.empty())
      throw Error(where + "the container engine " + word + " (" + from + ") is not on PATH: " +
                  std::string(install_hint) + ", or choose the other engine");
    return {word, std::move(program)};
  }
  for (const char* w : {"podman", "docker"})
    if (std::string program = find_on_path(w); !program.empty()) return {w, std::move(program)};
  throw Error(where + "no container engine found: neither podman nor docker is on PATH; " + std::string(install_hint) +
              ", or set engine (or $STACKUP_CONTAINER_ENGINE) to the one you have");
}

/// The last non-empty line of an engine's standard error, without its
/// "Error: " prefix: what it says went wrong.
inline std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  const auto nl = text.rfind('\n');
  std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  for (std::string_view prefix : {"Error: ", "Error response from daemon: ", "error: "})
    if (line.starts_with(prefix)) line.remove_prefix(prefix.size());
  return std::string(line);
}

/// What an engine's failure means, from its standard error.
enum class Failure : unsigned char { other, no_daemon, image_missing, port_taken, name_taken, no_such_container };

inline Failure classify(std::string_view err) {
  const auto has = [&](std::string_view s) { return err.find(s) != std::string_view::npos; };
  if (has("Cannot connect to the Docker daemon") || has("Is the docker daemon running") ||
      has("permission denied while trying to connect to the Docker daemon") ||
      has("unable to connect to Podman socket") || has("Cannot connect to Podman"))
    return Failure::no_daemon;
  if (has("address already in use") || has("port is already allocated")) return Failure::port_taken;
  if (has("is already in use") || has("already in use by")) return Failure::name_taken;
  if (has("no such container") || has("No such container")) return Failure::no_such_container;
  if (has("image not known") || has("No such image") || has("manifest unknown") || has("not found") ||
      has("pinging container registry") || has("no such host") || has("connection refused") ||
      has("requested access to the resource is denied") || has("pull access denied"))
    return Failure::image_missing;
  return Failure::other;
}

/// The result of one engine call.
using Result = posix::ShellResult;

/// Runs `engine` with `args`; its standard output captured, `input` fed to
/// it. `timeout`: then it is killed. Error when it cannot be started.
inline Result run(const Engine& engine, const std::vector<std::string>& args,
                  std::chrono::milliseconds timeout = std::chrono::minutes(2), std::string_view input = {}) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 1);
  argv.push_back(engine.program);
  argv.insert(argv.end(), args.begin(), args.end());
  return posix::run_program(argv, {.timeout = timeout, .capture_stdout = true, .input = input});
}

/// `podman stop x` as a message shows it (arguments with spaces quoted).
inline std::string shown(const Engine& engine, const std::vector<std::string>& args) {
  std::string out = engine.word;
  for (const auto& a : args)
    out += " " + (a.find_first_of(" \t'\"") == std::string::npos && !a.empty() ? a : "'" + a + "'");
  return out;
}

/// Why a call failed, for messages: the engine's own last line, or how it
/// ended; and, when the engine cannot be reached at all, what to do.
inline std::string why(const Engine& engine, const Result& r) {
  if (r.timed_out) return "it did not finish in time";
  if (r.stopped) return "it was stopped (a stop was requested)";
  std::string line = last_line(r.stderr_tail);
  if (line.empty()) line = "it exited with status " + std::to_string(r.exit.status);
  if (classify(r.stderr_tail) == Failure::no_daemon)
    line += " — the " + engine.word + " daemon is not reachable: start it (e.g. `systemctl start " + engine.word +
            "`), check that this user may use it, or use the other engine (engine = \"" +
            (engine.is_podman() ? "docker" : "podman") + "\")";
  return line;
}

/// `text` cut at `sep`: every field kept, empty ones too (an empty text is one
/// empty field).
inline std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  while (true) {
    const auto at = text.find(sep);
    out.emplace_back(text.substr(0, at));
    if (at == std::string_view::npos) return out;
    text.remove_prefix(at + 1);
  }
}

/// The lines of an engine's output, without empty ones.
inline std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  for (auto& l : split(text, '\n')) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (!l.empty()) out.push_back(std::move(l));
  }
  return out;
}

/// The value of label `key` in a `{{.Labels}}` rendering, as podman
/// (`map[k1:v1 k2:v2]`) or docker (`k1=v1,k2=v2`) prints it; empty when it
/// is absent. Exact for values without spaces or commas (stackup's own
/// labels); the keys it looks for are its own.
inline std::string label_value(std::string_view labels, std::string_view key) {
  const bool podman_map = labels.starts_with("map[");
  if (podman_map) {
    labels.remove_prefix(4);
    if (labels.ends_with("]")) labels.remove_suffix(1);
  }
  const char sep = podman_map ? ' ' : ',';
  const char eq = podman_map ? ':' : '=';
  std::size_t at = 0;
  while (at <= labels.size()) {
    const auto end = labels.find(sep, at);
    const std::string_view field = labels.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (field.size() > key.size() && field.starts_with(key) && field[key.size()] == eq)
      return std::string(field.substr(key.size() + 1));
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return {};
}

/// One container as `ps -a` lists it.
struct Listed {
  std::string id, name, status, labels;
  /// "Up 3 seconds (healthy)": running, not paused. Both engines' status text.
  [[nodiscard]] bool up() const {
    return status.starts_with("Up ") && status.find("(Paused)") == std::string::npos &&
           status.find("(paused)") == std::string::npos;
  }
  /// Its healthcheck's verdict: "healthy", "unhealthy", "starting", or empty without one.
  [[nodiscard]] std::string health() const {
    if (status.find("(healthy)") != std::string::npos) return "healthy";
    if (status.find("(unhealthy)") != std::string::npos) return "unhealthy";
    if (status.find("starting)") != std::string::npos) return "starting";
    return {};
  }
  [[nodiscard]] std::string label(std::string_view key) const { return label_value(labels, key); }
};

/// The `ps` format both engines accept (podman's `.State` is a sentence and
/// docker has no `index .Labels`, so status and labels are read as text).
inline constexpr std::string_view ps_format = "{{.ID}}\t{{.Names}}\t{{.Status}}\t{{.Labels}}";

/// Every container (running or not) with label `key`=`value`. Error when the
/// engine fails.
inline std::vector<Listed> list(const Engine& engine, std::string_view key, std::string_view value, std::string_view who) {
  const std::vector<std::string> args{"ps", "-a", "--no-trunc", "--filter", "label=" + std::string(key) + "=" + std::string(value),
                                      "--format", std::string(ps_format)};
  const Result r = run(engine, args, std::chrono::seconds(60));
  if (!r.ok()) throw Error("stackup: " + std::string(who) + ": `" + shown(engine, args) + "` failed: " + why(engine, r));
  std::vector<Listed> out;
  for (const auto& l : lines(r.out)) {
    auto f = split(l, '\t');
    if (f.size() < 4) continue;
    out.push_back({f[0], f[1], f[2], f[3]});
  }
  return out;
}

/// Answers of `list` kept for one query round (detail::QueryRound): within
/// it, every component of one (engine, label value) asks the engine once.
/// A component that changes what the engine would answer forgets the entry.
class ListCache {
public:
  static std::vector<Listed> get(const Engine& engine, std::string_view key, std::string_view value, std::string_view who) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return list(engine, key, value, who);
    const std::string k = cache_key(engine, key, value);
    {
      const std::lock_guard<std::mutex> lock(mutex());
      const auto it = entries().find(k);
      if (it != entries().end() && it->second.first == round) return it->second.second;
    }
    auto rows = list(engine, key, value, who);
    const std::lock_guard<std::mutex> lock(mutex());
    entries()[k] = {round, rows};
    return rows;
  }
  static void forget(const Engine& engine, std::string_view key, std::string_view value) {
    const std::lock_guard<std::mutex> lock(mutex());
    entries().erase(cache_key(engine, key, value));
  }
  /// A component's action changed container `id` as it knows: `change` gets
  /// its row in this round's answer (null when there is none) and returns
  /// whether the row is to go (removed). Saves asking the engine again for
  /// what the action itself did.
  template <class F> static void note(const Engine& engine, std::string_view key, std::string_view value,
                                      const std::string& id, F change) {
    const std::uint64_t round = current_query_round();
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = entries().find(cache_key(engine, key, value));
    if (it == entries().end()) return;
    if (it->second.first != round || round == 0) {
      entries().erase(it);
      return;
    }
    auto& rows = it->second.second;
    for (auto r = rows.begin(); r != rows.end(); ++r)
      if (r->id == id) {
        if (change(&*r)) rows.erase(r);
        return;
      }
  }

private:
  static std::string cache_key(const Engine& engine, std::string_view key, std::string_view value) {
    return engine.program + '\0' + std::string(key) + '\0' + std::string(value);
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::pair<std::uint64_t, std::vector<Listed>>>& entries() {
    static std::map<std::string, std::pair<std::uint64_t, std::vector<Listed>>> e;
    return e;
  }
};

/// One volume as `volume ls` lists it.
struct ListedVolume {
  std::string name, labels;
  [[nodiscard]] std::string label(std::string_view key) const { return label_value(labels, key); }
};

/// Every volume with label `key`=`value`, checked here too (podman joins
/// label filters with "or"). Error when the engine fails.
inline std::vector<ListedVolume> list_volumes(const Engine& engine, std::string_view key, std::string_view value,
                                              std::string_view who) {
  const std::vector<std::string> args{"volume", "ls", "--filter", "label=" + std::string(key) + "=" + std::string(value),
                                      "--format", "{{.Name}}\t{{.Labels}}"};
  const Result r = run(engine, args, std::chrono::seconds(60));
  if (!r.ok()) throw Error("stackup: " + std::string(who) + ": `" + shown(engine, args) + "` failed: " + why(engine, r));
  std::vector<ListedVolume> out;
  for (const auto& l : lines(r.out)) {
    const auto tab = l.find('\t');
    if (tab == std::string::npos) continue;
    ListedVolume v{l.substr(0, tab), l.substr(tab + 1)};
    if (v.label(key) == value) out.push_back(std::move(v));
  }
  return out;
}

/// Answers of `list_volumes` kept for one query round, as ListCache: the
/// components of one stack taken down together list its volumes once.
class VolumeCache {
public:
  static std::vector<ListedVolume> get(const Engine& engine, std::string_view key, std::string_view value,
                                       std::string_view who) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return list_volumes(engine, key, value, who);
    const std::string k = engine.program + '\0' + std::string(key) + '\0' + std::string(value);
    {
      const std::lock_guard<std::mutex> lock(mutex());
      const auto it = entries().find(k);
      if (it != entries().end() && it->second.first == round) return it->second.second;
    }
    auto rows = list_volumes(engine, key, value, who);
    const std::lock_guard<std::mutex> lock(mutex());
    entries()[k] = {round, rows};
    return rows;
  }
  /// A volume was created: the next get asks the engine.
  static void forget(const Engine& engine, std::string_view key, std::string_view value) {
    const std::lock_guard<std::mutex> lock(mutex());
    entries().erase(engine.program + '\0' + std::string(key) + '\0' + std::string(value));
  }
  /// Volume `name` was removed: this round's answer goes on without it.
  static void erase(const Engine& engine, std::string_view key, std::string_view value, std::string_view name) {
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = entries().find(engine.program + '\0' + std::string(key) + '\0' + std::string(value));
    if (it == entries().end()) return;
    if (it->second.first != current_query_round() || current_query_round() == 0) {
      entries().erase(it);
      return;
    }
    std::erase_if(it->second.second, [&](const ListedVolume& v) { return v.name == name; });
  }

private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::pair<std::uint64_t, std::vector<ListedVolume>>>& entries() {
    static std::map<std::string, std::pair<std::uint64_t, std::vector<ListedVolume>>> e;
    return e;
  }
};

/// Whether `name` can be part of a container's name (`[A-Za-z0-9_.-]`,
/// as both engines require), so that the name and the labels read back exactly.
inline bool name_safe(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (const char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

/// FNV-1a, 64 bits: a short, stable digest for a label value (not a defence
/// against an adversary: it only tells whether something changed).
struct Hash {
  std::uint64_t h = 14695981039346656037ULL;
  void add(std::string_view s) {
    for (const char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
    // A separator, so that ("ab", "c") and ("a", "bc") differ.
    h ^= 0xff;
    h *= 1099511628211ULL;
  }
  [[nodiscard]] std::string hex() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 0; i < 16; ++i) out[static_cast<std::size_t>(15 - i)] = digits[(h >> (4 * i)) & 0xf];
    return out;
  }
};

/// A 64-bit FNV-1a hash in 16 hex digits: the settings' fingerprint in a label.
inline std::string fingerprint(std::string_view text) {
  Hash h;
  h.add(text);
  return h.hex();
}

/// A published port as `ports` takes it: `[IP:][HOST:]CONTAINER[/tcp|udp|sctp]`.
struct PortSpec {
  std::string ip{};
  std::uint16_t host = 0; ///< 0: the engine picks one
  std::uint16_t container = 0;
  std::string protocol = "tcp";
};

/// Parses a port spec; empty optional and `why` set when it is not one.
inline std::optional<PortSpec> parse_port(std::string_view spec, std::string& why) {
  const auto number = [](std::string_view s, std::uint16_t& out) {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (const char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v < 1 || v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
  };
  PortSpec p;
  std::string_view s = spec;
  if (const auto slash = s.rfind('/'); slash != std::string_view::npos) {
    p.protocol = std::string(s.substr(slash + 1));
    s = s.substr(0, slash);
    if (p.protocol != "tcp" && p.protocol != "udp" && p.protocol != "sctp") {
      why = "the protocol after '/' must be tcp, udp or sctp";
      return std::nullopt;
    }
  }
  const auto last = s.rfind(':');
  if (last == std::string_view::npos) {
    if (!number(s, p.container)) {
      why = "the container port must be a number from 1 to 65535";
      return std::nullopt;
    }
    return p;
  }
  if (!number(s.substr(last + 1), p.container)) {
    why = "the container port (after the last ':') must be a number from 1 to 65535";
    return std::nullopt;
  }
  std::string_view front = s.substr(0, last);
  const auto colon = front.rfind(':');
  const std::string_view host = colon == std::string_view::npos ? front : front.substr(colon + 1);
  if (colon != std::string_view::npos) {
    p.ip = std::string(front.substr(0, colon));
    if (p.ip.empty() || p.ip.find_first_of(" \t") != std::string::npos) {
      why = "the address before the host port is empty or holds a space";
      return std::nullopt;
    }
  }
  if (!(host.empty() && colon != std::string_view::npos) && !number(host, p.host)) {
    why = "the host port must be a number from 1 to 65535 (port ranges are not supported)";
    return std::nullopt;
  }
  return p;
}

} // namespace stackup::detail::container
// ---- end stackup/detail/container_engine.hpp ----

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace stackup {

/// Configuration of a Container; use designated initialisers, in this order.
struct ContainerConfig {
  std::string name{};  ///< display name; empty: the role
  /// The stack's name: the container is `stackup-<stack>-<role>`, labelled
  /// `io.stackup.stack=<stack>`. Required (a stack file gives its own name);
  /// letters, digits, '_', '.' and '-' only, as container names allow.
  std::string stack{};
  std::string image{}; ///< required, e.g. "docker.io/library/postgres:16"
  /// "podman" or "docker"; empty: $STACKUP_CONTAINER_ENGINE, else podman when
  /// it is on PATH, else docker.
  std::string engine{};
  std::vector<std::string> command{};       ///< replaces the image's command; empty: the image's
  std::map<std::string, std::string> env{}; ///< variables set in the container
  std::vector<std::string> ports{};         ///< published ports: "[IP:][HOST:]CONTAINER[/tcp|udp|sctp]"
  /// "NAME:/path[:opts]" (a named volume: created by provision if absent,
  /// removed by deprovision if it created it) or "./dir:/path[:opts]" /
  /// "/dir:/path" (a bind mount; a relative source is against working_dir).
  std::vector<std::string> volumes{};
  std::filesystem::path working_dir{}; ///< relative bind sources resolve here; empty: the current directory
  /// stackup's own directory (mode 0700): the record of the stops it made, so
  /// that no process reads such a stop as an exit of the container's own.
  /// Empty: `<working_dir>/.stackup/<role>`.
  std::filesystem::path state_dir{};
  std::vector<std::string> run_args{}; ///< passed to `create` as they are, before the image
  std::string user{};                  ///< the user inside the container (`--user`); empty: the image's
  /// When the started container counts as ready: a probe on 127.0.0.1 (a
  /// published port), or none: then the image's healthcheck if it has one,
  /// else running.
  ready::Probe ready = ready::none();
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30); ///< resume: wait this long for readiness
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(10);  ///< suspend: `stop -t`, then the engine kills it
  RestartPolicy restart{};                     ///< see LocalDaemonConfig::restart (the engine's --restart is never set)
  Liveness liveness{};                         ///< see LocalDaemonConfig::liveness
  OnDependencyRestart on_dependency_restart{}; ///< see LocalDaemonConfig::on_dependency_restart
};

/// A container that the stack creates, starts, stops and removes through the
/// engine's command-line client (DESIGN §11). No daemon of stackup's and no
/// client library: `podman`/`docker` is run for each action and query.
///
/// - provision: pulls the image if it is not on this machine (a line on
///   standard error says so), creates the named volumes it needs (labelled as
///   its own) and creates the container `stackup-<stack>-<role>` labelled
///   `io.stackup.stack`, `io.stackup.role` and `io.stackup.config` (a hash of
///   its settings). Never `--restart`: stackup's supervisor restarts.
/// - resume: starts it, then waits for readiness (ContainerConfig::ready).
/// - suspend: `stop` within stop_timeout. deprovision: removes the container and
///   the volumes it created.
/// - Queries find the container by its labels. Within a query round (one walk
///   of a stack) the containers of one (engine, stack) ask the engine once.
/// - Ownership: a container named `stackup-<stack>-<role>` without these labels
///   is not stackup's: it is never started, stopped or removed; provision fails
///   naming it and the fix. A volume that exists without stackup's labels is
///   mounted but never removed.
template <FixedString Role = "">
class Container : public detail::ShippedComponent<Container<Role>, Role, ContainerConfig> {
  using Base = detail::ShippedComponent<Container<Role>, Role, ContainerConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "container";
  /// The configuration type (designated initialisers).
  using Config = ContainerConfig;
  /// The labels stackup sets (and finds its containers and volumes by).
  static constexpr std::string_view stack_label = "io.stackup.stack", role_label = "io.stackup.role",
                                    config_label = "io.stackup.config";

  /// A container with this configuration; `working_dir` is made absolute now.
  /// Error when `image` or `stack` is empty, `stack` holds a character a
  /// container name cannot, `engine` is not "podman" or "docker", or a port
  /// spec is malformed. Runs nothing.
  explicit Container(Config config) : Base(std::move(config)) {
    const std::string where =
        "stackup: container" + (Role.size() ? " (" + std::string(Role.view()) + ")" : std::string()) + ": ";
    if (config_.image.empty()) throw Error(where + ".image is empty: give the image to run, e.g. \"docker.io/library/redis:7\"");
    if (config_.stack.empty())
      throw Error(where + ".stack is empty: give the stack's name (the container is stackup-<stack>-<role>)");
    if (!detail::container::name_safe(config_.stack))
      throw Error(where + "the stack name '" + config_.stack +
                  "' cannot be part of a container name: use letters, digits, '_', '.' and '-' only");
    if (!config_.engine.empty() && !detail::container::valid_engine(config_.engine))
      throw Error(where + ".engine is \"" + config_.engine + "\": give " + std::string(detail::container::engine_words) +
                  " (or leave it empty to choose one)");
    for (const auto& p : config_.ports) {
      std::string why;
      if (!detail::container::parse_port(p, why))
        throw Error(where + "port \"" + p + "\" is not [IP:][HOST:]CONTAINER[/tcp|udp|sctp]: " + why);
    }
    for (const auto& v : config_.volumes)
      if (v.find(':') == std::string::npos || v.front() == ':')
        throw Error(where + "volume \"" + v + "\" is not SOURCE:/path[:options] (a named volume or a ./directory)");
    config_.start_timeout = std::max(config_.start_timeout, std::chrono::milliseconds::zero());
    config_.stop_timeout = std::max(config_.stop_timeout, std::chrono::milliseconds::zero());
    if (!config_.working_dir.empty()) config_.working_dir = std::filesystem::absolute(config_.working_dir);
    if (!config_.state_dir.empty()) config_.state_dir = detail::owned_directory(config_.state_dir);
  }

  /// The container a stack file's table describes (`flavor = "container"`, see
  /// docs/stack-files.md); the stack is the file's. `Table` is
  /// stackup::StackFileTable (<stackup/stack_file.hpp>), or a type with its interface.
  template <class Table> [[nodiscard]] static Container from_table(const Table& t) {
    Config c;
    const std::string role(t.role());
    c.name = t.optional_string("name").value_or("");
    c.stack = t.stack_name();
    if (!t.contains("image"))
      t.fail(t.what() + " lacks the required key 'image' (the image to run, e.g. image = \"docker.io/library/redis:7\")");
    c.image = t.string("image");
    if (c.image.empty()) t.fail("image", "'image' of component '" + role + "' is empty: give the image to run");
    c.engine = t.optional_string("engine").value_or("");
    if (!c.engine.empty() && !detail::container::valid_engine(c.engine))
      t.fail("engine", "'engine' of component '" + role + "' is \"" + c.engine + "\": give " +
                           std::string(detail::container::engine_words) + " (absent: $STACKUP_CONTAINER_ENGINE, else "
                           "podman, else docker)");
    c.command = t.strings("command");
    c.env = t.string_map("env");
    c.ports = t.strings("ports");
    for (const auto& p : c.ports) {
      std::string why;
      if (!detail::container::parse_port(p, why))
        t.fail("ports", "port \"" + p + "\" of component '" + role + "' is not [IP:][HOST:]CONTAINER[/tcp|udp|sctp] (" +
                            why + "), e.g. \"127.0.0.1:5433:5432\"");
    }
    c.volumes = t.strings("volumes");
    for (const auto& v : c.volumes)
      if (v.find(':') == std::string::npos || v.front() == ':')
        t.fail("volumes", "volume \"" + v + "\" of component '" + role +
                              "' is not SOURCE:/path[:options], e.g. \"data:/var/lib/data\" or \"./init:/init:ro\"");
    c.working_dir = t.path_or("working_dir", t.directory());
    c.state_dir = t.path_or("state_dir", t.directory() / ".stackup" / role);
    c.run_args = t.strings("run_args");
    c.user = t.optional_string("user").value_or("");
    if (const auto r = t.table("ready")) c.ready = ready::Probe::from_table(*r).with_any_listener();
    c.start_timeout = t.duration("start_timeout").value_or(c.start_timeout);
    c.stop_timeout = t.duration("stop_timeout").value_or(c.stop_timeout);
    const auto supervision = detail::supervision_from_table(t);
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    if (!detail::container::name_safe(c.stack))
      t.fail("component '" + role + "': the stack name '" + c.stack +
             "' cannot be part of a container name (letters, digits, '_', '.' and '-' only): set name = \"...\" at "
             "the top of the file");
    if (!detail::container::name_safe(role))
      t.fail("component '" + role + "': a container's role is part of its name: use letters, digits, '_', '.' and '-' only");
    return Container(std::move(c));
  }

  /// The container's name: `stackup-<stack>-<role>`. Error when the role holds
  /// a character a container name cannot.
  [[nodiscard]] std::string container_name() const {
    if (!detail::container::name_safe(this->role_name()))
      throw Error("stackup: " + who() + ": the role cannot be part of a container name: use letters, digits, '_', "
                                        "'.' and '-' only");
    return "stackup-" + config_.stack + "-" + std::string(this->role_name());
  }

  /// The fingerprint of the settings the container is created with (image,
  /// command, env, ports, volumes, working_dir, run_args, user): its
  /// `io.stackup.config` label.
  [[nodiscard]] std::string config_hash() const {
    std::string text = "image\n" + config_.image + "\n";
    const auto list = [&](std::string_view key, const std::vector<std::string>& v) {
      for (const auto& s : v) text.append(key).append("\n").append(s).append("\n");
    };
    list("arg", config_.command);
    for (const auto& [k, v] : config_.env) text += "env\n" + k + "=" + v + "\n";
    list("port", config_.ports);
    list("volume", resolved_volumes());
    list("run_arg", config_.run_args);
    text += "user\n" + config_.user + "\n";
    return detail::container::fingerprint(text);
  }

  /// The state directory: the configured one, else `<working_dir>/.stackup/<role>`.
  [[nodiscard]] std::filesystem::path state_dir() const {
    if (!config_.state_dir.empty()) return config_.state_dir;
    const std::filesystem::path base = config_.working_dir.empty() ? std::filesystem::current_path() : config_.working_dir;
    return detail::owned_directory(base / ".stackup" / std::string(this->role_name()));
  }

  /// A container with this stack's and role's labels exists.
  [[nodiscard]] bool is_provisioned() const { return find(false).has_value(); }

  /// It is running (not paused), healthy where it has a healthcheck, and its
  /// readiness probe, if any, passes.
  [[nodiscard]] bool is_running() const {
    const auto row = find(false);
    if (!row || !row->up()) return false;
    const std::string health = row->health();
    if (health == "unhealthy" || health == "starting") return false;
    return probe(std::chrono::seconds(1));
  }

  /// Whether the container was created with the current settings (its
  /// `io.stackup.config` label matches config_hash()); true when there is none.
  [[nodiscard]] bool is_current() const {
    const auto row = find(false);
    return !row || row->label(config_label) == config_hash();
  }

  /// For status tables: "container 3f2a1b0c9d8e, image ..., ports ...".
  [[nodiscard]] std::string detail() const {
    try {
      const auto row = find(false);
      std::string d = row ? "container " + row->id.substr(0, 12) : "container " + container_name() + " (not created)";
      d += ", image " + config_.image;
      if (!config_.ports.empty()) {
        d += ", ports ";
        for (std::size_t i = 0; i < config_.ports.size(); ++i) d += (i ? " " : "") + config_.ports[i];
      }
      return d;
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  /// How the container last ended, when it exited on its own (not stopped by
  /// a suspend of stackup's, in this process or another: stackup records its
  /// stops in state_dir()): its exit code as the engine reports it (128+N
  /// for signal N) and when. Empty while it runs, before its first start, and
  /// when the engine cannot be asked.
  [[nodiscard]] std::optional<Exit> exit_status() const {
    try {
      if (stopped_by_us_) return std::nullopt;
      // From the stack's one listing in a round (a status asks the engine once);
      // only a container that has exited is asked how and when.
      const auto row = find(false);
      if (!row || !row->status.starts_with("Exited")) return std::nullopt;
      const auto e = engine();
      const auto r = detail::container::run(
          e, {"inspect", "--format", "{{.State.Status}}\t{{.State.ExitCode}}\t{{.State.FinishedAt}}\t{{.State.StartedAt}}", row->id});
      if (!r.ok()) return std::nullopt;
      const auto l = detail::container::lines(r.out);
      const auto f = detail::container::split(l.empty() ? "" : l.front(), '\t');
      if (f.size() < 4 || f[0] != "exited") return std::nullopt;
      Exit out;
      out.code = std::stoi(f[1]);
      out.at = parse_time(f[2]);
      if (stopped_by_stackup(row->id, parse_time(f[3]), out.at)) return std::nullopt;
      return out;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  /// What a supervisor reads: the config's `restart`, `liveness` and `on_dependency_restart`.
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

  /// Pulls the image if absent, creates the named volumes it needs and the
  /// container (not started). Nothing to do when the container exists. Error
  /// when the engine is missing or unreachable, the image can be neither
  /// found nor pulled, or a container of that name exists that is not stackup's.
  void provision() {
    const auto e = engine();
    forget(e);
    if (find_in(e, true)) return;
    const std::string name = container_name();
    ensure_image(e);
    for (const auto& v : named_volumes()) ensure_volume(e, v);
    std::vector<std::string> args{"create", "--name", name, "--label", std::string(stack_label) + "=" + config_.stack,
                                  "--label", std::string(role_label) + "=" + std::string(this->role_name()),
                                  "--label", std::string(config_label) + "=" + config_hash()};
    // Values go through standard input (--env-file /dev/stdin), not the command
    // line, which every user can read in /proc; one the file format cannot
    // hold (a line break) goes as an argument.
    std::string env_file;
    for (const auto& [k, v] : config_.env) {
      const bool fits = (k + v).find_first_of("\r\n") == std::string::npos && !k.empty() && k.front() != '#' &&
                        k.find_first_of(" \t") == std::string::npos;
      if (fits) env_file += k + "=" + v + "\n";
      else args.insert(args.end(), {"--env", k + "=" + v});
    }
    if (!env_file.empty()) args.insert(args.end(), {"--env-file", "/dev/stdin"});
    for (const auto& p : config_.ports) args.insert(args.end(), {"--publish", p});
    for (const auto& v : resolved_volumes()) args.insert(args.end(), {"--volume", v});
    if (!config_.user.empty()) args.insert(args.end(), {"--user", config_.user});
    args.insert(args.end(), config_.run_args.begin(), config_.run_args.end());
    args.push_back(config_.image);
    args.insert(args.end(), config_.command.begin(), config_.command.end());
    const auto r = detail::container::run(e, args, std::chrono::minutes(2), env_file);
    forget(e);
    if (r.ok()) return;
    if (detail::container::classify(r.stderr_tail) == detail::container::Failure::name_taken) refuse_foreign(e, name);
    fail(Transition::provision, "cannot create container " + name + ": `" + detail::container::shown(e, args) +
                                    "` failed: " + detail::container::why(e, r));
  }

  /// Starts the container and waits until it is ready (ContainerConfig::ready).
  /// Nothing to start when it runs. TransitionError when a published port is
  /// taken (naming it and its holder), it exits before it is ready (with its
  /// exit code and last log lines; with a restart policy that exit is left to
  /// the policy instead), or it is not ready within start_timeout (it is
  /// stopped); ProvisioningError when there is no container.
  void resume() {
    const auto e = engine();
    forget(e);
    const auto row = find_in(e, true);
    if (!row)
      throw ProvisioningError("stackup: " + who() + ": there is no container " + container_name() + ": provision first");
    stopped_by_us_ = false;
    if (!row->up()) {
      for (const auto& spec : config_.ports) {
        std::string why;
        const auto p = detail::container::parse_port(spec, why);
        if (!p || p->host == 0 || p->protocol != "tcp") continue;
        if (const std::string holders = detail::posix::listener_holders(p->host); !holders.empty())
          fail(Transition::resume, "cannot start: port " + std::to_string(p->host) + " (\"" + spec +
                                       "\") is already taken by " + holders +
                                       ": stop that process, or publish another host port in `ports`");
      }
      const std::vector<std::string> args{"start", row->id};
      const auto r = detail::container::run(e, args);
      forget(e);
      if (!r.ok()) {
        if (detail::container::classify(r.stderr_tail) == detail::container::Failure::port_taken)
          fail(Transition::resume, "cannot start: a published port is already taken (" +
                                       detail::container::last_line(r.stderr_tail) +
                                       "): stop what holds it, or publish another host port in `ports`");
        fail(Transition::resume, "cannot start container " + container_name() + ": `" +
                                     detail::container::shown(e, args) + "` failed: " + detail::container::why(e, r));
      }
    }
    await_ready(e, row->id);
  }

  /// Stops the container within stop_timeout (`stop -t`; the engine kills it
  /// after that). Nothing to do when it is not running or does not exist.
  void suspend() {
    const auto e = engine();
    // The round's listing will do: a container is found by its labels, then
    // named by its id, which no other container ever has. It is stopped
    // whatever the listing said of its state.
    const auto row = find_in(e, false);
    if (!row) return;
    stop(e, row->id);
  }

  /// Stops and removes the container, then the named volumes it created.
  void deprovision() {
    namespace dc = detail::container;
    const auto e = engine();
    // As suspend: the round's listing, the container named by its id.
    if (const auto row = find_in(e, false)) {
      const auto seconds = std::to_string((config_.stop_timeout.count() + 999) / 1000);
      // One call: podman's `rm -f -t N` stops it within stop_timeout as `stop`
      // does; docker's `rm -f` kills at once, so a running one is stopped first.
      std::vector<std::string> args{"rm", "-f", "-t", seconds, row->id};
      if (!e.is_podman()) {
        if (row->up()) stop(e, row->id, false);
        args = {"rm", "-f", row->id};
      }
      stopped_by_us_ = true;
      const auto r = dc::run(e, args, config_.stop_timeout + std::chrono::seconds(60));
      if (!r.ok() && dc::classify(r.stderr_tail) != dc::Failure::no_such_container) {
        forget(e);
        fail(Transition::deprovision, "cannot remove container " + container_name() + ": `" + dc::shown(e, args) +
                                          "` failed: " + dc::why(e, r));
      }
      dc::ListCache::note(e, stack_label, config_.stack, row->id, [](dc::Listed*) { return true; });
      forget_stop(row->id);
    }
    // The stack's volumes, listed once in a round; only those labelled with
    // this role too are its own.
    std::vector<dc::ListedVolume> volumes;
    try {
      volumes = dc::VolumeCache::get(e, stack_label, config_.stack, who());
    } catch (const Error& x) {
      throw_transition_error(std::string(this->role_name()), Transition::deprovision, x.what());
    }
    for (const auto& v : volumes) {
      if (v.label(role_label) != this->role_name()) continue; // another component's
      const std::vector<std::string> args{"volume", "rm", v.name};
      const auto rm = dc::run(e, args);
      if (rm.ok()) dc::VolumeCache::erase(e, stack_label, config_.stack, v.name);
      else dc::VolumeCache::forget(e, stack_label, config_.stack);
      if (!rm.ok())
        fail(Transition::deprovision, "cannot remove volume " + v.name + ": `" + dc::shown(e, args) +
                                          "` failed: " + dc::why(e, rm));
    }
  }

  /// The command whose output is the container's log as the engine keeps it:
  /// `<engine> logs [--tail N] [--follow] [--since <RFC 3339>] <id>` (what
  /// `stackctl <role> logs` runs). The container is the one found by its
  /// labels, named by its id. Error naming the role and the fix when there is
  /// none (not provisioned), or the container of its name is not stackup's.
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const {
    const auto e = engine();
    const auto row = find(false);
    if (!row) {
      const std::string name = container_name();
      // Its name may be taken by a container stackup did not create: say so
      // rather than "not provisioned", and never read that one's log.
      if (detail::container::run(e, {"container", "inspect", "--format", "{{.Id}}", name}).ok())
        throw Error("stackup: " + who() + ": a container named " + name + " exists that stackup did not create (it lacks the labels " +
                    std::string(stack_label) + "=" + config_.stack + " and " + std::string(role_label) + "=" +
                    std::string(this->role_name()) + "), so stackup does not read its log: read it with `" + e.word +
                    " logs " + name + "` if it is yours, or give the stack another name");
      throw Error("stackup: " + who() + ": not provisioned: there is no container " + name +
                  ", so no log: run `up` first");
    }
    std::vector<std::string> argv{e.program, "logs"};
    if (request.tail) argv.insert(argv.end(), {"--tail", std::to_string(*request.tail)});
    if (request.follow) argv.emplace_back("--follow");
    if (request.since) argv.insert(argv.end(), {"--since", rfc3339(*request.since)});
    argv.push_back(row->id);
    return argv;
  }

  /// Kills the container's main process (`kill`, SIGKILL), as a crash would:
  /// exit_status() then tells how it ended. Nothing to do when it is not running.
  void kill() const {
    const auto e = engine();
    forget(e);
    const auto row = find_in(e, true);
    if (!row || !row->up()) return;
    const std::vector<std::string> args{"kill", row->id};
    const auto r = detail::container::run(e, args);
    forget(e);
    if (!r.ok())
      throw Error("stackup: " + who() + ": `" + detail::container::shown(e, args) + "` failed: " + detail::container::why(e, r));
  }

private:
  using Base::config_;
  using Base::who;
  // Whether this object's suspend stopped the container (then its exit is no
  // exit of its own). Reset by resume.
  mutable bool stopped_by_us_ = false;

  [[nodiscard]] detail::container::Engine engine() const { return detail::container::find_engine(config_.engine, who()); }

  void forget(const detail::container::Engine& e) const { detail::container::ListCache::forget(e, stack_label, config_.stack); }

  [[nodiscard]] std::optional<detail::container::Listed> find(bool fresh) const { return find_in(engine(), fresh); }

  // This role's container among the stack's (asked once per query round, or
  // afresh), found by its labels.
  [[nodiscard]] std::optional<detail::container::Listed> find_in(const detail::container::Engine& e, bool fresh) const {
    const auto rows = fresh ? detail::container::list(e, stack_label, config_.stack, who())
                            : detail::container::ListCache::get(e, stack_label, config_.stack, who());
    for (const auto& row : rows)
      if (row.label(role_label) == this->role_name()) return row;
    return std::nullopt;
  }

  [[noreturn]] void fail(Transition t, const std::string& what) const {
    throw_transition_error(std::string(this->role_name()), t, "stackup: " + who() + ": " + what);
  }

  // A bind mount's source: starts with '/', '.' or '~'; anything else names a volume.
  static bool is_bind(std::string_view source) {
    return !source.empty() && (source.front() == '/' || source.front() == '.' || source.front() == '~');
  }

  [[nodiscard]] std::vector<std::string> named_volumes() const {
    std::vector<std::string> out;
    for (const auto& v : config_.volumes) {
      const std::string source = v.substr(0, v.find(':'));
      if (!is_bind(source)) out.push_back(source);
    }
    return out;
  }

  // The volumes with relative bind sources made absolute against working_dir.
  [[nodiscard]] std::vector<std::string> resolved_volumes() const {
    std::vector<std::string> out;
    for (const auto& v : config_.volumes) {
      const auto colon = v.find(':');
      const std::string source = v.substr(0, colon);
      if (source.front() == '~' && (source.size() == 1 || source[1] == '/')) { // the engines do not expand it
        const char* home = std::getenv("HOME");
        out.push_back(detail::normal_directory(std::string(home != nullptr ? home : "/") + source.substr(1)).string() +
                      v.substr(colon));
        continue;
      }
      if (source.front() != '.') {
        out.push_back(v);
        continue;
      }
      const std::filesystem::path base = config_.working_dir.empty() ? std::filesystem::current_path() : config_.working_dir;
      out.push_back(detail::normal_directory(base / source).string() + v.substr(colon));
    }
    return out;
  }

  void ensure_image(const detail::container::Engine& e) const {
    const auto r = detail::container::run(e, {"image", "inspect", "--format", "{{.Id}}", config_.image});
    if (r.ok()) return;
    if (detail::container::classify(r.stderr_tail) == detail::container::Failure::no_daemon)
      fail(Transition::provision, "cannot look up image " + config_.image + ": " + detail::container::why(e, r));
    std::fprintf(stderr, "stackup: %s: pulling image %s (not on this machine)\n", who().c_str(), config_.image.c_str());
    std::fflush(stderr);
    const std::vector<std::string> args{"pull", config_.image};
    const auto p = detail::container::run(e, args, std::chrono::minutes(30));
    if (p.ok()) return;
    fail(Transition::provision,
         "image " + config_.image + " is not on this machine and cannot be pulled (" + detail::container::why(e, p) +
             "): build it (`" + e.word + " build -t " + config_.image + " DIR`) or load it (`" + e.word +
             " load -i FILE`), or fix `image`");
  }

  void ensure_volume(const detail::container::Engine& e, const std::string& name) const {
    if (detail::container::run(e, {"volume", "inspect", "--format", "{{.Name}}", name}).ok()) return; // kept, never removed
    const std::vector<std::string> args{"volume", "create", "--label", std::string(stack_label) + "=" + config_.stack,
                                        "--label", std::string(role_label) + "=" + std::string(this->role_name()), name};
    const auto r = detail::container::run(e, args);
    detail::container::VolumeCache::forget(e, stack_label, config_.stack);
    if (!r.ok())
      fail(Transition::provision, "cannot create volume " + name + ": `" + detail::container::shown(e, args) +
                                      "` failed: " + detail::container::why(e, r));
  }

  // The name is taken: by a container that is not ours (no labels of this
  // stack and role). Error naming it and the fix.
  [[noreturn]] void refuse_foreign(const detail::container::Engine& e, const std::string& name) const {
    fail(Transition::provision,
         "a container named " + name + " exists that stackup did not create (it lacks the labels " +
             std::string(stack_label) + "=" + config_.stack + " and " + std::string(role_label) + "=" +
             std::string(this->role_name()) + "), so stackup leaves it alone: remove it if it is yours to remove (`" +
             e.word + " rm " + name + "`), or give the stack another name");
  }

  // Stops it; with `record`, a stop of stackup's (not an exit of its own),
  // written down for every process (record_stop).
  void stop(const detail::container::Engine& e, const std::string& id, bool record = true) {
    const auto seconds = (config_.stop_timeout.count() + 999) / 1000;
    const std::vector<std::string> args{"stop", "-t", std::to_string(seconds), id};
    stopped_by_us_ = true;
    const auto asked = std::chrono::system_clock::now();
    const auto r = detail::container::run(e, args, config_.stop_timeout + std::chrono::seconds(60));
    if (r.ok()) // what the round's listing would now say, without asking again
      detail::container::ListCache::note(e, stack_label, config_.stack, id, [](detail::container::Listed* row) {
        row->status = "Exited";
        return false;
      });
    else
      forget(e);
    if (!r.ok() && detail::container::classify(r.stderr_tail) != detail::container::Failure::no_such_container)
      fail(Transition::suspend, "cannot stop container " + container_name() + ": `" + detail::container::shown(e, args) +
                                    "` failed: " + detail::container::why(e, r));
    if (record && r.ok()) record_stop(id, asked);
  }

  // The record of a stop: file `stopped-<id>` in state_dir() holding when
  // stackup asked the engine to stop it (nanoseconds since the epoch, UTC).
  // A run that started before that and ended after it was stopped by stackup;
  // a later start (anyone's) makes a later run, whose end is its own. (Podman
  // 4.3 reports no StoppedByUser, and docker none a client can read.)
  void record_stop(const std::string& id, std::chrono::system_clock::time_point asked) const {
    using px = detail::posix;
    try {
      const auto dir = state_dir();
      if (const std::string why = px::forbidden_directory(dir); !why.empty())
        throw Error("refusing state directory " + px::quoted(dir) + ": " + why + "; set state_dir to a directory of its own");
      const auto l = px::lock_private_dir(dir, true);
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(asked.time_since_epoch()).count();
      px::write_file_atomic(l.dir.get(), "stopped-" + id, std::to_string(ns) + "\n", dir / ("stopped-" + id));
    } catch (const std::exception& ex) {
      // The container is stopped all the same; only a later reading of it suffers.
      std::fprintf(stderr, "stackup: %s: cannot record its stop (%s): another process may show it as an exit\n",
                   who().c_str(), ex.what());
    }
  }

  // Whether the run that started at `started` and ended at `finished` was
  // ended by a stop of stackup's (its record, see record_stop). The engine's
  // clock may be another machine's: a second's slack on the end.
  [[nodiscard]] bool stopped_by_stackup(const std::string& id, std::chrono::system_clock::time_point started,
                                        std::chrono::system_clock::time_point finished) const {
    using px = detail::posix;
    try {
      const auto dir = state_dir();
      const auto l = px::lock_private_dir(dir, false);
      if (!l) return false;
      const auto text = px::read_file_at(l.dir.get(), ("stopped-" + id).c_str(), 64, dir / ("stopped-" + id));
      if (!text) return false;
      const auto asked = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(std::stoll(*text))));
      return started <= asked && finished + std::chrono::seconds(1) >= asked;
    } catch (const std::exception&) {
      return false; // no readable record: the engine's word stands
    }
  }

  void forget_stop(const std::string& id) const {
    using px = detail::posix;
    try {
      const auto dir = state_dir();
      const auto l = px::lock_private_dir(dir, false);
      if (l) ::unlinkat(l.dir.get(), ("stopped-" + id).c_str(), 0);
    } catch (const std::exception&) {
      // A record left behind names a container that no longer exists: harmless.
    }
  }

  [[nodiscard]] bool probe(std::chrono::milliseconds timeout) const {
    switch (config_.ready.kind) {
    case ready::Probe::Kind::none: return true;
    case ready::Probe::Kind::tcp: return detail::posix::tcp_probe(config_.ready.port, timeout);
    case ready::Probe::Kind::http: return detail::posix::http_probe(config_.ready.port, config_.ready.path, timeout);
    }
    return false;
  }

  // The last lines of the container's output, for messages.
  [[nodiscard]] std::string log_tail(const detail::container::Engine& e, const std::string& id) const {
    const auto r = detail::container::run(e, {"logs", "--tail", "10", id}, std::chrono::seconds(30));
    std::string text = r.out + r.stderr_tail;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text.empty() ? " (it wrote nothing)" : "; its last lines:\n" + text;
  }

  // Polls until the container is ready: its probe passes, else its
  // healthcheck reports healthy, else it runs. Fails when it exits first or
  // start_timeout passes (it is stopped then).
  void await_ready(const detail::container::Engine& e, const std::string& id) {
    namespace dc = detail::container;
    const auto deadline = detail::posix::deadline_after(config_.start_timeout);
    auto pause = std::chrono::milliseconds(10);
    while (true) {
      const auto r = dc::run(e, {"inspect", "--format", "{{.State.Status}}\t{{.State.ExitCode}}\t{{if .Config.Healthcheck}}health{{end}}", id});
      const auto l = dc::lines(r.out);
      const auto f = dc::split(l.empty() ? "" : l.front(), '\t');
      if (!r.ok() || f.size() < 3)
        fail(Transition::resume, "cannot read the state of container " + container_name() + ": " + dc::why(e, r));
      if (f[0] != "running") {
        // With a restart policy the exit is the policy's (DESIGN §10): exit_status() tells it.
        if (config_.restart.policy != Restart::no) return;
        const std::string tail = log_tail(e, id);
        fail(Transition::resume, "container " + container_name() + " exited with code " + f[1] + " before it was ready" + tail);
      }
      bool ready = false;
      if (config_.ready.kind != ready::Probe::Kind::none) {
        ready = probe(std::chrono::milliseconds(500));
      } else if (f[2] == "health") {
        // Podman runs healthchecks from systemd timers, absent on many hosts:
        // run the check itself. Docker's daemon runs them: read its verdict.
        if (e.is_podman()) {
          ready = dc::run(e, {"healthcheck", "run", id}).ok();
        } else {
          const auto h = dc::run(e, {"inspect", "--format", "{{.State.Health.Status}}", id});
          const auto hl = dc::lines(h.out);
          ready = h.ok() && !hl.empty() && hl.front() == "healthy";
        }
      } else {
        ready = true;
      }
      if (ready) return;
      if (stop_requested()) {
        stop(e, id);
        throw InterruptedError("stackup: " + who() + " was stopped before it was ready: a stop was requested");
      }
      if (detail::posix::Clock::now() >= deadline) {
        stop(e, id, false);
        stopped_by_us_ = false;
        fail(Transition::resume, "was not ready within " + detail::posix::format_duration(config_.start_timeout) +
                                     " (" + (config_.ready.kind != ready::Probe::Kind::none
                                                 ? "probe " + config_.ready.describe()
                                                 : std::string("its image's healthcheck")) +
                                     "); it was stopped");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
  }

  // "2026-12-08T03:28:21.123456789Z": both engines' `logs --since` take it.
  static std::string rfc3339(std::chrono::system_clock::time_point t) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    auto secs = static_cast<std::time_t>(ns / 1'000'000'000);
    auto frac = ns % 1'000'000'000;
    if (frac < 0) {
      frac += 1'000'000'000;
      --secs;
    }
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(frac));
    return buf;
  }

  // "2026-12-07 23:35:02.91 +0000 UTC" (podman) or "2026-12-07T23:35:02.91Z" (docker), as UTC.
  static std::chrono::system_clock::time_point parse_time(const std::string& s) {
    std::tm tm{};
    if (s.size() < 19 || std::sscanf(s.c_str(), "%d-%d-%d%*c%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                                     &tm.tm_min, &tm.tm_sec) != 6)
      return {};
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    auto t = std::chrono::system_clock::from_time_t(::timegm(&tm));
    // The fraction of the second, to the nanosecond (both engines print one).
    if (s.size() > 20 && s[19] == '.') {
      long long ns = 0;
      int digits = 0;
      for (std::size_t i = 20; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
        if (digits < 9) ns = ns * 10 + (s[i] - '0'), ++digits;
      for (; digits < 9; ++digits) ns *= 10;
      t += std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns));
    }
    return t;
  }
};

} // namespace stackup
// ---- end stackup/components/container.hpp ----

// ---- begin stackup/components/kubernetes.hpp ----
// stackup — Kubernetes<"role">: Kubernetes manifests, applied to a cluster
// with kubectl (server-side apply, our labels on every object) or run on this
// machine with `podman kube play`.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/kube.hpp ----
// stackup — what the kubernetes flavour needs besides its component: the hash
// of its manifests and settings, the files a manifest entry stands for, and the
// reading of the line-per-object answers it asks kubectl and podman for
// (jsonpath and --format templates: no YAML or JSON parser of ours). Not part of
// the public API.
// SPDX-License-Identifier: MIT


#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace stackup::detail::kube {

/// The podman that runs manifests here: found as the container flavour finds
/// its engine (an error naming the component and how to install podman).
inline std::string podman_program(std::string_view who) { return container::find_engine("podman", who).program; }

/// The files a manifest entry stands for, as kubectl reads them: a file as it
/// is; a directory's *.yaml, *.yml and *.json files (not its subdirectories),
/// in name order. Error naming the entry and the fix when it is missing or
/// names no manifest.
inline std::vector<std::filesystem::path> manifest_files(const std::filesystem::path& entry, std::string_view who) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(entry, ec);
  if (ec || !fs::exists(st))
    throw Error("stackup: " + std::string(who) + ": manifest '" + entry.string() +
                "' does not exist: fix 'manifests' (relative paths are against the working directory, for a stack "
                "file its directory)");
  if (!fs::is_directory(st)) return {entry};
  std::vector<fs::path> out;
  // By path, on purpose: manifests are named by the stack file, which is read
  // only when it is trusted (StrictModes), and what is read is only ever sent
  // to the engine the same user drives; nothing is removed or written here.
  for (const auto& e : fs::directory_iterator(entry, ec)) {
    const auto ext = e.path().extension();
    if ((ext == ".yaml" || ext == ".yml" || ext == ".json") && e.is_regular_file()) out.push_back(e.path());
  }
  if (ec)
    throw Error("stackup: " + std::string(who) + ": cannot list manifest directory '" + entry.string() +
                "': " + ec.message());
  if (out.empty())
    throw Error("stackup: " + std::string(who) + ": manifest directory '" + entry.string() +
                "' holds no *.yaml, *.yml or *.json file: add the manifests, or fix 'manifests'");
  std::sort(out.begin(), out.end());
  return out;
}


/// The bytes of a manifest file. Error naming it when it cannot be read.
inline std::string read_manifest(const std::filesystem::path& file, std::string_view who) {
  // By path (see manifest_files): the bytes read are the bytes hashed and
  // applied, from one open; nothing is decided on a second look.
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("stackup: " + std::string(who) + ": cannot read manifest '" + file.string() + "'");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Cutting text into fields and lines, as for the container engines' answers.
using container::lines;
using container::split;

/// A whole number >= 0 from kubectl's answer; -1 for an empty field (absent).
inline long long number(std::string_view s) {
  if (s.empty()) return -1;
  long long v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9' || v > 1'000'000'000) return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

/// Whether `v` is a valid Kubernetes label value that is not empty: at most 63
/// characters, [A-Za-z0-9._-], starting and ending with a letter or digit.
inline bool label_value(std::string_view v) {
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (v.empty() || v.size() > 63 || !alnum(v.front()) || !alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(), [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

/// The lower-case form of an ASCII word (a kind, for `kubectl get`).
inline std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

/// One engine answer kept for one query round (detail::QueryRound), shared by
/// every component that asks the same question (the same key: kubectl, its
/// context, namespace and stack; or the podman program): within a round, a
/// stack's components ask once. `kinds`: what the answer covers (the object
/// kinds it lists). A component that changes what the engine would answer
/// forgets the entry; outside a round nothing is kept.
class RoundCache {
public:
  struct Entry {
    std::uint64_t round = 0;
    std::vector<std::string> kinds{};
    std::string text{};
  };
  /// The entry for `key` from the current round, if any.
  static std::optional<Entry> find(const std::string& key) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return std::nullopt;
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = entries().find(key);
    if (it == entries().end() || it->second.round != round) return std::nullopt;
    return it->second;
  }
  /// Keeps `text` as the answer for `key` in the current round (none open: nothing).
  static void store(const std::string& key, std::vector<std::string> kinds, std::string text) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return;
    const std::lock_guard<std::mutex> lock(mutex());
    for (const auto& k : kinds) add(known()[key], k);
    entries()[key] = {round, std::move(kinds), std::move(text)};
  }
  /// Every kind asked for under `key` so far in this process: a later round
  /// asks for all of them at once, so that components with different kinds
  /// still share one call.
  static std::vector<std::string> known_kinds(const std::string& key) {
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = known().find(key);
    return it == known().end() ? std::vector<std::string>{} : it->second;
  }
  static void forget(const std::string& key) {
    const std::lock_guard<std::mutex> lock(mutex());
    entries().erase(key);
  }
  /// Adds `k` to `kinds` unless it is there.
  static void add(std::vector<std::string>& kinds, const std::string& k) {
    if (!k.empty() && std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
  }

private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, Entry>& entries() {
    static std::map<std::string, Entry> e;
    return e;
  }
  static std::map<std::string, std::vector<std::string>>& known() {
    static std::map<std::string, std::vector<std::string>> k;
    return k;
  }
};

/// `t` as RFC 3339 in UTC with nanoseconds ("2026-12-08T03:28:21.123456789Z"):
/// what `kubectl logs --since-time` and `podman logs --since` take.
inline std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  long long secs = ns / 1'000'000'000;
  long long frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  const auto tt = static_cast<::time_t>(secs);
  ::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

} // namespace stackup::detail::kube
// ---- end stackup/detail/kube.hpp ----

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace stackup {

/// Which client runs a Kubernetes component's manifests.
enum class KubernetesEngine : unsigned char {
  kubectl, ///< a cluster, through `kubectl` (its context and namespace)
  podman,  ///< this machine, through `podman kube play`
};

/// Stack-file spelling: "kubectl", "podman".
constexpr std::string_view to_string(KubernetesEngine e) noexcept {
  return e == KubernetesEngine::podman ? "podman" : "kubectl";
}

/// Configuration of a Kubernetes component; use designated initialisers, in this order.
struct KubernetesConfig {
  std::string name{}; ///< display name; empty: the role
  /// YAML (or JSON) manifest files, or directories of them (their *.yaml,
  /// *.yml and *.json files); relative paths are against `working_dir`.
  std::vector<std::filesystem::path> manifests{};
  KubernetesEngine engine = KubernetesEngine::kubectl;
  std::string context{};      ///< kubectl: the context (`--context`); empty: kubectl's current one
  std::string namespace_{};   ///< kubectl: the namespace (`-n`); empty: the context's
  /// resume: how long every Deployment/StatefulSet (kubectl) or pod (podman)
  /// has to become ready, all together.
  std::chrono::milliseconds ready_timeout = std::chrono::minutes(5);
  std::filesystem::path working_dir{}; ///< what relative manifests are against; empty: the current directory
  /// stackup's own directory (mode 0700): what it applied (kubectl), the pods
  /// it created (podman). Empty: `<working_dir>/.stackup/<role>`.
  std::filesystem::path state_dir{};
  /// The stack the objects are labelled with (`stackup.io/stack`); a stack
  /// file gives its name. Empty: the name of `working_dir`.
  std::string stack{};
  /// Whether a supervisor (stackup::supervise) resumes it when it stops
  /// running without a down (it polls), after what back-off, and when it
  /// gives up (DESIGN §10).
  RestartPolicy restart{};
  Liveness liveness{}; ///< a probe a supervisor runs while it runs; default: none
  OnDependencyRestart on_dependency_restart{};
};

/// Kubernetes manifests as a stack component (DESIGN §11).
///
/// kubectl engine (a cluster):
/// - provision: `kubectl label --local` adds `stackup.io/stack`,
///   `stackup.io/role` and `stackup.io/config` (a hash of the manifests and
///   settings) to every object, then `kubectl apply --server-side
///   --field-manager=stackup`. An object that exists without our labels is
///   never changed: an error names it. A conflict with another field manager
///   is an error naming the object (stackup never forces).
/// - resume: Deployments and StatefulSets scaled back to the replicas recorded
///   in their `stackup.io/replicas` annotation (CronJobs unsuspended), then
///   `kubectl rollout status` of each within `ready_timeout`.
/// - suspend: their replicas recorded in that annotation, then scaled to 0
///   (CronJobs: `suspend: true`).
/// - deprovision: every object with our labels deleted, waiting until gone.
/// - is_provisioned: an object with our labels exists; is_running: every such
///   Deployment/StatefulSet has `readyReplicas == replicas > 0` (none: running
///   whenever provisioned).
///
/// podman engine (this machine): provision `podman kube play --start=false`,
/// the pods it created recorded in the state directory (podman cannot label
/// them: that record is the ownership); resume starts them and waits until they
/// run; suspend stops them; deprovision `podman kube down` (or removes the pods
/// on record, when the manifests changed since).
///
/// Drift: is_current() compares the hash of the manifests' bytes and settings
/// with the one recorded at apply; update() applies again.
///
/// ```cpp
/// stackup::Kubernetes<"orchestrator"> k8s{{
///     .manifests = {"k8s/"},
///     .context = "k3d-dev",
///     .namespace_ = "ml",
///     .working_dir = "/srv/project",
///     .stack = "ml",
/// }};
/// ```
template <FixedString Role = "">
class Kubernetes : public detail::ShippedComponent<Kubernetes<Role>, Role, KubernetesConfig> {
  using Base = detail::ShippedComponent<Kubernetes<Role>, Role, KubernetesConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "kubernetes";
  /// The configuration type (designated initialisers).
  using Config = KubernetesConfig;

  /// A component with this configuration; paths are made absolute and a
  /// negative ready_timeout becomes zero. Error when there is no manifest, or
  /// `stack` is not a valid label value. Runs nothing.
  explicit Kubernetes(Config config) : Base(std::move(config)) {
    namespace fs = std::filesystem;
    config_.ready_timeout = std::max(config_.ready_timeout, std::chrono::milliseconds::zero());
    config_.working_dir = config_.working_dir.empty() ? fs::current_path() : fs::absolute(config_.working_dir);
    for (auto& m : config_.manifests) m = (config_.working_dir / m).lexically_normal();
    if (!config_.state_dir.empty()) config_.state_dir = detail::owned_directory(config_.working_dir / config_.state_dir);
    if (config_.stack.empty()) config_.stack = detail::normal_directory(config_.working_dir).filename().string();
    if (config_.stack.empty()) config_.stack = "default";
    // The role may not be known yet (Kubernetes<>): the configured name, if any.
    const std::string named = config_.name.empty() ? std::string() : " '" + config_.name + "'";
    if (config_.manifests.empty())
      throw Error("stackup: kubernetes component" + named +
                  ": no manifests: give the YAML files or directories to apply (manifests = [\"k8s/\"])");
    if (!detail::kube::label_value(config_.stack))
      throw Error("stackup: kubernetes component" + named + ": " + stack_name_error(config_.stack));
  }

  /// The component a stack file's table describes (`flavor = "kubernetes"`,
  /// see docs/stack-files.md): `name`, the required `manifests`, `engine`,
  /// `context`, `namespace`, `ready_timeout`, `working_dir` (default: the
  /// file's directory), `state_dir` (default: `.stackup/<role>` there), and
  /// `restart`, `liveness` and `on_dependency_restart`. `Table` is
  /// stackup::StackFileTable (<stackup/stack_file.hpp>), or a type with its interface.
  template <class Table> [[nodiscard]] static Kubernetes from_table(const Table& t) {
    Config c;
    const std::string role(t.role());
    c.name = t.optional_string("name").value_or("");
    const auto manifests = t.strings("manifests");
    if (!t.contains("manifests"))
      t.fail(t.what() + " lacks the required key 'manifests' (YAML files or directories, e.g. manifests = [\"k8s/\"])");
    if (manifests.empty()) t.fail("manifests", "'manifests' of " + t.what() + " is empty: give the YAML files or directories to apply");
    for (const auto& m : manifests) {
      if (m.empty()) t.fail("manifests", "'manifests' of " + t.what() + " holds an empty path: give a file or directory");
      c.manifests.push_back(detail::normal_directory(t.directory() / m));
    }
    if (const auto e = t.optional_string("engine")) {
      if (*e == "podman") c.engine = KubernetesEngine::podman;
      else if (*e != "kubectl")
        t.fail("engine", "'engine' of " + t.what() + " must be \"kubectl\" (a cluster) or \"podman\" (this machine, "
                         "podman kube play), not \"" + *e + "\"");
    }
    c.context = t.optional_string("context").value_or("");
    c.namespace_ = t.optional_string("namespace").value_or("");
    if (c.engine == KubernetesEngine::podman) {
      if (!c.context.empty())
        t.fail("context", "'context' of " + t.what() + " is for engine = \"kubectl\": podman runs the manifests on "
                          "this machine; remove 'context' or set engine = \"kubectl\"");
      if (!c.namespace_.empty())
        t.fail("namespace", "'namespace' of " + t.what() + " is for engine = \"kubectl\": podman kube play has no "
                            "namespaces; remove 'namespace' or set engine = \"kubectl\"");
    }
    c.ready_timeout = t.duration("ready_timeout").value_or(c.ready_timeout);
    c.working_dir = t.path_or("working_dir", t.directory());
    c.state_dir = t.path_or("state_dir", t.directory() / ".stackup" / role);
    if constexpr (requires { t.stack_name(); }) c.stack = t.stack_name();
    if (!c.stack.empty() && !detail::kube::label_value(c.stack)) t.fail(t.what() + ": " + stack_name_error(c.stack));
    if (!detail::kube::label_value(role))
      t.fail(t.what() + ": the role '" + role + "' cannot be a Kubernetes label value (at most 63 letters, digits, "
             "'.', '_' or '-', starting and ending with a letter or digit): rename the component");
    const auto supervision = detail::supervision_from_table(t);
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    try {
      return Kubernetes(std::move(c));
    } catch (const Error& e) {
      t.fail(detail::unprefixed(e.what()));
    }
  }

  // name() (the configured name, or the role) and config() come from Base.

  /// What a supervisor reads: the config's `restart`, `liveness` and
  /// `on_dependency_restart`. (No exit_fd(): a supervisor polls is_running().)
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

  /// The state directory: the configured one, else `<working_dir>/.stackup/<role>`.
  [[nodiscard]] std::filesystem::path state_dir() const {
    if (!config_.state_dir.empty()) return config_.state_dir;
    return detail::owned_directory(config_.working_dir / ".stackup" / std::string(this->role_name()));
  }

  /// The label selector of this component's objects: `stackup.io/stack=S,stackup.io/role=R`.
  [[nodiscard]] std::string selector() const {
    return "stackup.io/stack=" + config_.stack + ",stackup.io/role=" + checked_role();
  }

  /// The hash of the manifests' bytes and the settings that shape what is
  /// applied (engine, context, namespace, stack, role): 16 hex digits.
  [[nodiscard]] std::string config_hash() const {
    detail::container::Hash h;
    h.add(to_string(config_.engine));
    h.add(config_.context);
    h.add(config_.namespace_);
    h.add(config_.stack);
    h.add(this->role_name());
    for (const auto& f : files()) {
      h.add(f.string());
      h.add(detail::kube::read_manifest(f, who()));
    }
    return h.hex();
  }

  /// For status tables: `outdated` when the manifests or settings changed
  /// since they were applied, else where they run.
  [[nodiscard]] std::string detail() const {
    try {
      if (is_provisioned() && !is_current()) return "outdated: manifests or settings changed";
    } catch (const Error& e) {
      return std::string(detail::unprefixed(e.what())); // a status table still shows the others
    }
    if (config_.engine == KubernetesEngine::podman) return "podman kube play";
    std::string out = "kubectl";
    if (!config_.context.empty()) out += " context " + config_.context;
    if (!config_.namespace_.empty()) out += " namespace " + config_.namespace_;
    return out;
  }

  /// kubectl: an object with our labels exists. podman: a pod on record exists.
  [[nodiscard]] bool is_provisioned() const {
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      const auto pods = podman_pods();
      return std::any_of(rec.pods.begin(), rec.pods.end(), [&](const auto& p) { return find_pod(pods, p.id) != nullptr; });
    }
    return !objects().empty();
  }

  /// kubectl: provisioned, and every labelled Deployment/StatefulSet has
  /// readyReplicas == replicas > 0. podman: every pod on record is Running.
  [[nodiscard]] bool is_running() const {
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      if (rec.pods.empty()) return false;
      const auto pods = podman_pods();
      return std::all_of(rec.pods.begin(), rec.pods.end(), [&](const auto& p) {
        const auto* found = find_pod(pods, p.id);
        return found != nullptr && found->status == "Running";
      });
    }
    const auto objs = objects();
    if (objs.empty()) return false;
    return std::all_of(objs.begin(), objs.end(), [](const Object& o) {
      return !o.scalable() || (o.replicas > 0 && o.ready == o.replicas);
    });
  }

  /// Whether what runs was made from the manifests and settings as they are
  /// now (see config_hash()). True when nothing is provisioned.
  [[nodiscard]] bool is_current() const {
    const std::string now = config_hash();
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      return rec.pods.empty() || rec.hash == now;
    }
    const auto objs = objects();
    return std::all_of(objs.begin(), objs.end(), [&](const Object& o) { return o.config == now; });
  }

  /// Applies the manifests (see the class comment).
  void provision() {
    forget();
    if (config_.engine == KubernetesEngine::podman) return podman_play();
    kubectl_apply();
  }

  /// Applies the manifests again after they or the settings changed (kubectl:
  /// server-side apply, nothing deleted; podman: its pods on record are taken
  /// down and played again, started again if they ran).
  void update() {
    forget();
    if (config_.engine == KubernetesEngine::podman) {
      const bool was_running = is_running();
      deprovision();
      provision();
      if (was_running) resume();
      return;
    }
    kubectl_apply();
  }

  /// Scales back up (kubectl) or starts the pods (podman), then waits until
  /// ready within ready_timeout.
  void resume() {
    forget();
    if (config_.engine == KubernetesEngine::podman) return podman_start();
    kubectl_resume();
  }

  /// Scales to 0 (kubectl) or stops the pods (podman).
  void suspend() {
    forget();
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      if (rec.pods.empty()) return;
      std::vector<std::string> argv{podman(), "pod", "stop"};
      for (const auto& p : existing(rec)) argv.push_back(p.id);
      if (argv.size() > 3) checked(Call{argv}, "stop its pods");
      forget();
      return;
    }
    for (const auto& o : objects()) {
      if (o.kind == "CronJob" && o.suspend != "true")
        checked(kubectl({"patch", o.ref(), "--type=merge", "-p", R"({"spec":{"suspend":true}})"}), "suspend " + o.ref());
      if (!o.scalable() || o.replicas <= 0) continue;
      checked(kubectl({"annotate", o.ref(), "stackup.io/replicas=" + std::to_string(o.replicas), "--overwrite"}),
              "record the replicas of " + o.ref());
      checked(kubectl({"scale", o.ref(), "--replicas=0"}), "scale " + o.ref() + " to 0");
    }
    forget();
  }

  /// The program whose output is its log, as the engine keeps it (DESIGN §11).
  /// kubectl: `kubectl [--context C] [-n NS] logs -l <its selector>
  /// --all-containers --prefix --tail N|-1 [--follow] [--since-time T]
  /// --max-log-requests 64`: every container of every pod with its labels, each
  /// line prefixed with its pod and container (`--tail` is per container; -1,
  /// all of it, unless a tail is asked: kubectl's own default for a selector is 10).
  /// podman: `podman logs --names [--tail N] [--follow] [--since T]` of the
  /// containers of its pods on record (not their infra containers); empty when
  /// none exists (nothing provisioned).
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const {
    if (config_.engine == KubernetesEngine::podman) {
      const auto ids = podman_containers();
      if (ids.empty()) return {};
      std::vector<std::string> argv{podman(), "logs", "--names"};
      if (request.tail) argv.insert(argv.end(), {"--tail", std::to_string(*request.tail)});
      if (request.follow) argv.emplace_back("--follow");
      if (request.since) argv.insert(argv.end(), {"--since", detail::kube::rfc3339(*request.since)});
      argv.insert(argv.end(), ids.begin(), ids.end());
      return argv;
    }
    std::vector<std::string> args{"logs", "-l", selector(), "--all-containers", "--prefix",
                                  "--tail=" + (request.tail ? std::to_string(*request.tail) : std::string("-1"))};
    if (request.follow) args.emplace_back("--follow");
    if (request.since) args.push_back("--since-time=" + detail::kube::rfc3339(*request.since));
    // kubectl refuses to follow more log streams than this at once (its default is 5).
    args.push_back("--max-log-requests=" + std::to_string(max_log_requests));
    return kubectl(std::move(args)).argv;
  }

  /// Deletes every object with our labels and waits until gone (kubectl), or
  /// takes down the pods on record (podman).
  void deprovision() {
    forget();
    if (config_.engine == KubernetesEngine::podman) return podman_down();
    const auto kinds = kinds_in_use();
    if (!kinds.empty()) {
      checked(kubectl({"delete", join(kinds, ','), "-l", selector(), "--ignore-not-found", "--wait=true"},
                      std::chrono::milliseconds::max() == config_.ready_timeout ? call_timeout : config_.ready_timeout + call_timeout),
              "delete its objects");
    }
    remove_record();
    forget();
  }

private:
  using Base::config_;
  using Base::who;
  using milliseconds = std::chrono::milliseconds;
  static constexpr milliseconds call_timeout = std::chrono::minutes(2);
  static constexpr int max_log_requests = 64;

  // Why `stack` cannot label objects, and the fix.
  static std::string stack_name_error(const std::string& stack) {
    return "the stack's name '" + stack + "' cannot be a Kubernetes label value (at most 63 letters, digits, '.', "
           "'_' or '-', starting and ending with a letter or digit): rename the stack";
  }

  // ---- running the clients -----------------------------------------------------

  struct Call {
    std::vector<std::string> argv;
    std::string input{};
    milliseconds timeout = call_timeout;
  };

  [[nodiscard]] std::string checked_role() const {
    std::string r(this->role_name());
    if (!detail::kube::label_value(r))
      throw Error("stackup: " + who() + ": role '" + r +
                  "' cannot be a Kubernetes label value (at most 63 letters, digits, '.', '_' or '-', starting and "
                  "ending with a letter or digit): rename the role");
    return r;
  }

  std::string podman() const { return detail::kube::podman_program(who()); }

  // kubectl with the context and namespace.
  [[nodiscard]] Call kubectl(std::vector<std::string> args, milliseconds timeout = call_timeout) const {
    Call c{{"kubectl"}, {}, timeout};
    if (!config_.context.empty()) c.argv.insert(c.argv.end(), {"--context", config_.context});
    if (!config_.namespace_.empty()) c.argv.insert(c.argv.end(), {"-n", config_.namespace_});
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    return c;
  }

  [[nodiscard]] std::string context_named() const {
    return config_.context.empty() ? std::string("kubectl's current context") : "context '" + config_.context + "'";
  }

  static std::string join(const std::vector<std::string>& v, char sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : std::string(1, sep)) + s;
    return out;
  }

  static std::string shown(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) {
      const bool plain = !a.empty() && a.find_first_of(" \t\n'\"{}") == std::string::npos;
      out += (out.empty() ? "" : " ") + (plain ? a : "'" + a + "'");
    }
    return out;
  }

  // Runs it; Error when the program is missing (with how to install it) or
  // cannot be started.
  [[nodiscard]] detail::posix::ShellResult run(const Call& c) const {
    using px = detail::posix;
    try {
      return px::run_program(c.argv, {.timeout = c.timeout, .working_dir = config_.working_dir, .capture_stdout = true,
                                      .input = c.input});
    } catch (const Error& e) {
      const std::string m = e.what();
      if (m.find("No such file") != std::string::npos || m.find("not found in PATH") != std::string::npos) {
        if (c.argv.front() == "kubectl")
          throw Error("stackup: " + who() + ": kubectl is not installed (not found in PATH): install it "
                      "(https://kubernetes.io/docs/tasks/tools/, or your distribution's kubectl package), or run the "
                      "manifests on this machine with engine = \"podman\"");
        throw Error("stackup: " + who() + ": " + c.argv.front() + " is not installed (not found in PATH): install "
                    "podman (your distribution's podman package), or use engine = \"kubectl\"");
      }
      throw Error("stackup: " + who() + ": " + std::string(detail::unprefixed(m)));
    }
  }

  // What kubectl's failure means, as an Error naming the thing and the fix.
  [[noreturn]] void fail(const Call& c, const detail::posix::ShellResult& r, const std::string& doing) const {
    using px = detail::posix;
    const std::string where = "stackup: " + who() + ": cannot " + doing + ": ";
    if (r.stopped) throw InterruptedError(where + "`" + shown(c.argv) + "` was stopped: a stop was requested");
    const std::string& err = r.stderr_tail;
    const std::string tail = px::text_tail(err, 8);
    if (r.timed_out)
      throw Error(where + "`" + shown(c.argv) + "` did not finish within " + px::format_duration(c.timeout) +
                  (c.argv.front() == "kubectl" ? ": is the cluster of " + context_named() + " reachable?" : std::string()) +
                  (tail.empty() ? std::string() : "; stderr:" + tail));
    if (c.argv.front() == "kubectl") {
      if (err.find("context was not found") != std::string::npos)
        throw Error(where + "kubectl has no context '" + config_.context +
                    "' (see `kubectl config get-contexts`): fix 'context', or create the cluster first");
      for (const char* unreachable : {"Unable to connect to the server", "couldn't get current server API group list",
                                      "connection refused", "no such host", "i/o timeout", "was refused"})
        if (err.find(unreachable) != std::string::npos)
          throw Error(where + "the cluster of " + context_named() + " cannot be reached: start it, or fix 'context'; "
                      "kubectl said:" + tail);
      if (err.find("Apply failed with") != std::string::npos && err.find("conflict") != std::string::npos)
        throw Error(where + "server-side apply conflict on " + conflict_object(err) +
                    ": another field manager owns fields these manifests set, and stackup never forces "
                    "(--force-conflicts); change the manifests to leave those fields alone, or remove that "
                    "manager's ownership; kubectl said:" + tail);
    }
    throw Error(where + "`" + shown(c.argv) + "` failed with " + px::describe_exit(r.exit) +
                (tail.empty() ? std::string(" (no stderr output)") : "; stderr:" + tail));
  }

  // "Deployment/web" from kubectl's conflict message (`Kind=Deployment` ...
  // `Name: "web"`), or "an object" when it names none.
  static std::string conflict_object(const std::string& err) {
    std::string kind, name;
    if (const auto k = err.find("Kind="); k != std::string::npos)
      kind = err.substr(k + 5, err.find_first_of("\"\n, ", k + 5) - (k + 5));
    if (const auto n = err.find("Name: \""); n != std::string::npos)
      name = err.substr(n + 7, err.find('"', n + 7) - (n + 7));
    if (kind.empty() || name.empty()) return "an object";
    return kind + "/" + name;
  }

  std::string checked(const Call& c, const std::string& doing) const {
    const auto r = run(c);
    if (!r.ok()) fail(c, r, doing);
    return r.out;
  }

  // ---- kubectl: what the cluster holds ------------------------------------------

  struct Object {
    std::string kind, name, config, suspend;
    long long replicas = -1, ready = -1, recorded = -1;
    [[nodiscard]] bool scalable() const { return kind == "Deployment" || kind == "StatefulSet"; }
    [[nodiscard]] std::string ref() const { return detail::kube::lower(kind) + "/" + name; }
  };

  // One line per object, `|`-separated (jsonpath, so no parser of ours).
  static constexpr const char* object_template =
      R"(jsonpath={range .items[*]}{.kind}/{.metadata.name}|{.metadata.labels.stackup\.io/config}|{.spec.replicas}|)"
      R"({.status.readyReplicas}|{.metadata.annotations.stackup\.io/replicas}|{.spec.suspend}|)"
      R"({.metadata.labels.stackup\.io/role}{"\n"}{end})";

  // What the stack's kubernetes components of one context and namespace share
  // in a query round: one `kubectl get` of the stack's objects.
  [[nodiscard]] std::string shared_key() const {
    return "kubectl\0" + config_.context + '\0' + config_.namespace_ + '\0' + config_.stack;
  }

  // The objects with our labels. Outside a query round one `kubectl get` of the
  // kinds in use with our stack's and role's labels; within one, one `kubectl
  // get` of the stack's objects (every kind its components use) answers every
  // kubernetes component of the stack, context and namespace.
  [[nodiscard]] std::vector<Object> objects() const {
    const auto kinds = kinds_in_use();
    if (kinds.empty()) return {};
    std::string text;
    if (detail::current_query_round() == 0) {
      text = checked(kubectl({"get", join(kinds, ','), "-l", selector(), "-o", object_template}), "list its objects");
    } else {
      using Cache = detail::kube::RoundCache;
      const std::string key = shared_key();
      auto entry = Cache::find(key);
      const bool covered = entry && std::all_of(kinds.begin(), kinds.end(), [&](const std::string& k) {
        return std::find(entry->kinds.begin(), entry->kinds.end(), k) != entry->kinds.end();
      });
      if (covered) {
        text = std::move(entry->text);
      } else {
        auto asked = Cache::known_kinds(key);
        if (entry)
          for (const auto& k : entry->kinds) Cache::add(asked, k);
        for (const auto& k : kinds) Cache::add(asked, k);
        text = checked(kubectl({"get", join(asked, ','), "-l", "stackup.io/stack=" + config_.stack, "-o", object_template}),
                       "list its objects");
        Cache::store(key, asked, text);
      }
    }
    const std::string mine = checked_role();
    std::vector<Object> out;
    for (const auto& line : detail::kube::lines(text)) {
      const auto f = detail::kube::split(line, '|');
      if (f.size() < 7 || f[6] != mine) continue;
      Object o;
      const auto slash = f[0].find('/');
      o.kind = f[0].substr(0, slash);
      o.name = slash == std::string::npos ? std::string() : f[0].substr(slash + 1);
      // Only the kinds it uses (the shared answer holds others' too).
      if (std::find(kinds.begin(), kinds.end(), detail::kube::lower(o.kind)) == kinds.end()) continue;
      o.config = f[1];
      o.replicas = detail::kube::number(f[2]);
      o.ready = std::max(detail::kube::number(f[3]), 0LL);
      o.recorded = detail::kube::number(f[4]);
      o.suspend = f[5];
      if (o.scalable() && o.replicas < 0) o.replicas = 1; // Kubernetes' default
      out.push_back(std::move(o));
    }
    return out;
  }

  // What it changed may be in a shared answer: every component asks afresh.
  void forget() const {
    detail::kube::RoundCache::forget(config_.engine == KubernetesEngine::podman ? pods_key() : shared_key());
  }

  // Every manifest file, in order.
  [[nodiscard]] std::vector<std::filesystem::path> files() const {
    std::vector<std::filesystem::path> out;
    for (const auto& m : config_.manifests) {
      auto f = detail::kube::manifest_files(m, who());
      out.insert(out.end(), f.begin(), f.end());
    }
    return out;
  }

  [[nodiscard]] std::vector<std::string> file_args() const {
    std::vector<std::string> out;
    for (const auto& f : files()) out.insert(out.end(), {"-f", f.string()});
    return out;
  }

  // The manifests with our labels added, as a stream of JSON objects.
  [[nodiscard]] std::string labelled(const std::string& hash) const {
    Call c{{"kubectl", "label", "--local", "--overwrite"}, {}, call_timeout};
    const auto f = file_args();
    c.argv.insert(c.argv.end(), f.begin(), f.end());
    c.argv.insert(c.argv.end(), {"stackup.io/stack=" + config_.stack, "stackup.io/role=" + checked_role(),
                                 "stackup.io/config=" + hash, "-o", "json"});
    const auto r = run(c);
    if (!r.ok()) {
      if (r.timed_out || r.stopped) fail(c, r, "read its manifests");
      throw Error("stackup: " + who() + ": a manifest is invalid (kubectl cannot read it): " +
                  detail::posix::text_tail(r.stderr_tail, 8) + " — fix the manifest");
    }
    return r.out;
  }

  // The kinds its objects may have: those it applied last (its record), and
  // those of the manifests now.
  [[nodiscard]] std::vector<std::string> kinds_in_use() const {
    auto kinds = recorded_kinds();
    if (kinds.empty()) {
      Call c{{"kubectl", "label", "--local", "--overwrite"}, {}, call_timeout};
      const auto f = file_args();
      c.argv.insert(c.argv.end(), f.begin(), f.end());
      c.argv.insert(c.argv.end(), {"stackup.io/role=" + checked_role(), "-o", R"(jsonpath={.kind}{"\n"})"});
      const auto r = run(c);
      if (!r.ok()) return kinds; // an invalid manifest was never applied
      for (auto& k : detail::kube::lines(r.out)) add_kind(kinds, detail::kube::lower(k));
    }
    return kinds;
  }

  static void add_kind(std::vector<std::string>& kinds, std::string k) {
    if (!k.empty() && std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(std::move(k));
  }

  void kubectl_apply() {
    const std::string hash = config_hash();
    const std::string objects_json = labelled(hash);
    // Ownership: an object of these names that exists without our labels is
    // someone else's. (`get -f` answers a List, or the object itself when
    // there is just one: the template reads both.)
    static constexpr const char* owner_template =
        R"(jsonpath={.kind}/{.metadata.name}|{.metadata.labels.stackup\.io/stack}|{.metadata.labels.stackup\.io/role}{"\n"})"
        R"({range .items[*]}{.kind}/{.metadata.name}|{.metadata.labels.stackup\.io/stack}|{.metadata.labels.stackup\.io/role}{"\n"}{end})";
    Call own = kubectl({"get", "-f", "-", "--ignore-not-found", "-o", owner_template});
    own.input = objects_json;
    const std::string mine = checked_role();
    for (const auto& line : detail::kube::lines(checked(own, "check who owns its objects"))) {
      const auto f = detail::kube::split(line, '|');
      if (f.size() < 3 || f[0].starts_with("List/") || f[0].back() == '/') continue;
      if (f[1] == config_.stack && f[2] == mine) continue;
      const auto slash = f[0].find('/');
      throw Error("stackup: " + who() + ": " + f[0] + " exists in the cluster of " + context_named() +
                  " without stackup's labels for stack '" + config_.stack + "' and role '" + mine + "'" +
                  (f[1].empty() && f[2].empty() ? std::string()
                                                : " (it has stack '" + f[1] + "', role '" + f[2] + "')") +
                  ": stackup never changes an object it did not create; delete it (`kubectl delete " +
                  detail::kube::lower(f[0].substr(0, slash)) + " " + f[0].substr(slash + 1) +
                  "`) if it may go, or rename it in the manifests");
    }
    Call apply = kubectl({"apply", "--server-side", "--field-manager=stackup", "-f", "-", "-o",
                          R"(jsonpath={.kind}{"\n"})"});
    apply.input = objects_json;
    const auto out = checked(apply, "apply its manifests");
    auto kinds = recorded_kinds();
    for (auto& k : detail::kube::lines(out)) add_kind(kinds, detail::kube::lower(k));
    write_record("kubectl " + hash + "\n" + join(kinds, ',') + "\n");
    forget();
  }

  void kubectl_resume() {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto objs = objects();
    std::vector<Object> waited;
    for (const auto& o : objs) {
      if (o.kind == "CronJob" && o.suspend == "true")
        checked(kubectl({"patch", o.ref(), "--type=merge", "-p", R"({"spec":{"suspend":false}})"}), "resume " + o.ref());
      if (!o.scalable()) continue;
      if (o.replicas <= 0) {
        const long long to = o.recorded > 0 ? o.recorded : 1;
        checked(kubectl({"scale", o.ref(), "--replicas=" + std::to_string(to)}),
                "scale " + o.ref() + " to " + std::to_string(to));
      }
      waited.push_back(o);
    }
    forget();
    for (const auto& o : waited) {
      const auto spent = std::chrono::duration_cast<milliseconds>(clock::now() - start);
      const milliseconds left =
          config_.ready_timeout == milliseconds::max() ? milliseconds::max() : std::max(config_.ready_timeout - spent, milliseconds(1));
      std::vector<std::string> args{"rollout", "status", o.ref()};
      if (left != milliseconds::max()) args.push_back("--timeout=" + std::to_string(left.count()) + "ms");
      const Call c = kubectl(args, left == milliseconds::max() ? left : left + std::chrono::seconds(30));
      const auto r = run(c);
      if (r.ok()) continue;
      const std::string& err = r.stderr_tail;
      if (!r.stopped && (err.find("timed out") != std::string::npos || r.timed_out))
        throw Error("stackup: " + who() + ": " + o.ref() + " is not ready within ready_timeout (" +
                    detail::posix::format_duration(config_.ready_timeout) + "): " + why_not_ready(o) +
                    "; see `kubectl describe " + o.ref() + "`, or raise ready_timeout");
      fail(c, r, "wait for " + o.ref());
    }
  }

  // What a Deployment's status says: its ready replicas and its conditions.
  [[nodiscard]] std::string why_not_ready(const Object& o) const {
    const auto r = run(kubectl({"get", o.ref(), "-o",
                                R"(jsonpath={.status.readyReplicas}|{.spec.replicas}|{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}; {end})"}));
    if (!r.ok()) return "its status cannot be read";
    const auto f = detail::kube::split(detail::kube::lines(r.out).empty() ? "" : detail::kube::lines(r.out).front(), '|');
    std::string out = std::to_string(std::max(detail::kube::number(f[0]), 0LL)) + " of " +
                      (f.size() > 1 && !f[1].empty() ? f[1] : "?") + " replicas ready";
    if (f.size() > 2 && !f[2].empty()) {
      std::string conditions = f[2];
      while (!conditions.empty() && (conditions.back() == ' ' || conditions.back() == ';')) conditions.pop_back();
      out += "; conditions: " + conditions;
    }
    return out;
  }

  // ---- the state directory's record ----------------------------------------------

  struct Pod {
    std::string id, name;
  };
  struct Record {
    std::string hash;
    std::vector<std::string> kinds; // kubectl
    std::vector<Pod> pods;          // podman
  };

  // Record file `applied`: "<engine> <hash>\n", then kubectl: "kind,kind\n";
  // podman: "<pod id> <pod name>\n" per pod it created.
  [[nodiscard]] Record record() const {
    using px = detail::posix;
    Record out;
    const auto dir = state_dir();
    const auto l = px::lock_private_dir(dir, false);
    if (!l) return out;
    const auto text = px::read_file_at(l.dir.get(), "applied", 1 << 20, dir / "applied");
    if (!text) return out;
    const auto ls = detail::kube::lines(*text);
    if (ls.empty()) return out;
    const auto head = detail::kube::split(ls[0], ' ');
    if (head.size() != 2 || head[0] != to_string(config_.engine))
      throw Error("stackup: " + who() + ": " + px::quoted(dir / "applied") + " was not written for engine '" +
                  std::string(to_string(config_.engine)) + "': take the component down with the engine it was "
                  "brought up with, or remove that file");
    out.hash = head[1];
    for (std::size_t i = 1; i < ls.size(); ++i) {
      if (config_.engine == KubernetesEngine::kubectl) {
        for (auto& k : detail::kube::split(ls[i], ',')) add_kind(out.kinds, std::move(k));
      } else {
        const auto sp = ls[i].find(' ');
        out.pods.push_back({ls[i].substr(0, sp), sp == std::string::npos ? std::string() : ls[i].substr(sp + 1)});
      }
    }
    return out;
  }

  [[nodiscard]] std::vector<std::string> recorded_kinds() const { return record().kinds; }

  void write_record(const std::string& text) const {
    using px = detail::posix;
    const auto dir = state_dir();
    if (const std::string why = px::forbidden_directory(dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing state directory " + px::quoted(dir) + ": " + why +
                  "; set state_dir to a directory of its own");
    const auto l = px::lock_private_dir(dir, true);
    px::write_file_atomic(l.dir.get(), "applied", text, dir / "applied");
  }

  void remove_record() const {
    using px = detail::posix;
    const auto dir = state_dir();
    const auto l = px::lock_private_dir(dir, false);
    if (l && ::unlinkat(l.dir.get(), "applied", 0) != 0 && errno != ENOENT)
      throw Error("stackup: " + who() + ": cannot remove " + px::quoted(dir / "applied") + ": " + px::sys_message(errno));
  }

  // ---- podman -----------------------------------------------------------------------

  struct PodState {
    std::string id, name, status;
  };

  [[nodiscard]] std::string pods_key() const { return "podman pods\0" + podman(); }

  // Every pod podman has: one call, or its answer from earlier in the same
  // query round (shared by every podman-engine kubernetes component).
  [[nodiscard]] std::vector<PodState> podman_pods() const {
    using Cache = detail::kube::RoundCache;
    const std::string key = pods_key();
    std::string text;
    if (auto entry = Cache::find(key)) {
      text = std::move(entry->text);
    } else {
      text = checked(Call{{podman(), "pod", "ps", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Status}}"}},
                     "list its pods");
      Cache::store(key, {}, text);
    }
    std::vector<PodState> out;
    for (const auto& line : detail::kube::lines(text)) {
      const auto f = detail::kube::split(line, ' ');
      if (f.size() >= 3) out.push_back({f[0], f[1], f[2]});
    }
    return out;
  }

  static const PodState* find_pod(const std::vector<PodState>& pods, const std::string& id) {
    for (const auto& p : pods)
      if (p.id == id) return &p;
    return nullptr;
  }

  [[nodiscard]] std::vector<Pod> existing(const Record& rec) const {
    const auto pods = podman_pods();
    std::vector<Pod> out;
    for (const auto& p : rec.pods)
      if (find_pod(pods, p.id) != nullptr) out.push_back(p);
    return out;
  }

  // The containers of its pods on record that exist, infra containers left
  // out (they print nothing): their full IDs, from one podman call.
  [[nodiscard]] std::vector<std::string> podman_containers() const {
    const auto mine = existing(record());
    if (mine.empty()) return {};
    std::vector<std::string> argv{podman(), "ps", "-a", "--no-trunc"};
    for (const auto& p : mine) argv.insert(argv.end(), {"--filter", "pod=" + p.id});
    argv.insert(argv.end(), {"--format", "{{.ID}} {{.IsInfra}} {{.Pod}}"});
    std::vector<std::string> out;
    for (const auto& line : detail::kube::lines(checked(Call{argv}, "list the containers of its pods"))) {
      const auto f = detail::kube::split(line, ' ');
      // Only a container of a pod on record, whatever the filter matched.
      if (f.size() < 3 || f[1] != "false") continue;
      if (std::any_of(mine.begin(), mine.end(), [&](const Pod& p) { return p.id == f[2]; })) out.push_back(f[0]);
    }
    return out;
  }

  void podman_play() {
    const std::string hash = config_hash();
    Call c{{podman(), "kube", "play", "--start=false"}, {}, call_timeout};
    for (const auto& f : files()) c.argv.push_back(f.string());
    const auto r = run(c);
    // The pods it created, as podman reports them ("Pod:\n<id>\n...").
    std::vector<std::string> ids;
    bool in_pods = false;
    for (const auto& line : detail::kube::lines(r.out)) {
      if (line.back() == ':') {
        in_pods = line == "Pod:" || line == "Pods:";
        continue;
      }
      if (in_pods) ids.push_back(line);
    }
    std::string text = "podman " + hash + "\n";
    forget();
    const auto pods = podman_pods();
    for (const auto& id : ids) {
      const auto* p = find_pod(pods, id);
      text += id + " " + (p ? p->name : std::string()) + "\n";
    }
    // What it created is recorded even when it failed part way, so a rollback
    // (deprovision) can remove it.
    if (!ids.empty()) write_record(text);
    if (!r.ok()) {
      const std::string tail = detail::posix::text_tail(r.stderr_tail, 8);
      if (r.stderr_tail.find("already in use") != std::string::npos || r.stderr_tail.find("already exists") != std::string::npos)
        throw Error("stackup: " + who() + ": a pod or container of these manifests' names already exists and is not "
                    "this component's (stackup never changes what it did not create): remove it (`podman pod rm -f "
                    "NAME`) if it may go, or rename it in the manifests; podman said:" + tail);
      fail(c, r, "play its manifests (podman kube play)");
    }
    if (ids.empty())
      throw Error("stackup: " + who() + ": `" + shown(c.argv) + "` created no pod: the manifests need a Pod, "
                  "Deployment or other workload that podman kube play runs");
    forget();
  }

  void podman_start() {
    using clock = std::chrono::steady_clock;
    const auto rec = record();
    if (rec.pods.empty())
      throw Error("stackup: " + who() + ": no pods on record in " + detail::posix::quoted(state_dir() / "applied") +
                  ": provision it first (stack up)");
    const auto mine = existing(rec);
    if (mine.size() != rec.pods.size())
      throw Error("stackup: " + who() + ": a pod on record is gone (removed outside stackup): take the component "
                  "down and up again to play the manifests afresh");
    std::vector<std::string> argv{podman(), "pod", "start"};
    for (const auto& p : mine) argv.push_back(p.id);
    checked(Call{argv}, "start its pods");
    const auto deadline = clock::now() + std::min(config_.ready_timeout, milliseconds(std::chrono::hours(24 * 365)));
    while (true) {
      forget();
      const auto pods = podman_pods();
      const PodState* waiting = nullptr;
      for (const auto& p : mine) {
        const auto* s = find_pod(pods, p.id);
        if (s == nullptr || s->status != "Running") {
          waiting = s;
          if (s == nullptr || s->status == "Exited" || s->status == "Dead" || s->status == "Stopped")
            throw Error("stackup: " + who() + ": pod " + p.name + " " +
                        (s == nullptr ? std::string("is gone") : "is " + s->status) +
                        " instead of running: see `podman pod logs " + p.name + "` or `podman logs` of its containers");
          break;
        }
      }
      if (waiting == nullptr) return;
      if (clock::now() >= deadline)
        throw Error("stackup: " + who() + ": pod " + waiting->name + " is not running within ready_timeout (" +
                    detail::posix::format_duration(config_.ready_timeout) + "): its status is " + waiting->status +
                    "; see `podman pod inspect " + waiting->name + "`, or raise ready_timeout");
      if (stop_requested()) throw InterruptedError("stackup: " + who() + ": stopped while waiting for its pods: a stop was requested");
      std::this_thread::sleep_for(milliseconds(100));
    }
  }

  void podman_down() {
    const auto rec = record();
    const auto mine = existing(rec);
    if (!mine.empty()) {
      // `kube down` removes the pods the manifests name: when the manifests are
      // those it played and every pod of those names is one it created, that is
      // exactly its pods; otherwise only the pods on record are removed.
      const bool same = rec.hash == config_hash() && mine.size() == rec.pods.size();
      if (same) {
        Call c{{podman(), "kube", "down"}, {}, call_timeout};
        for (const auto& f : files()) c.argv.push_back(f.string());
        checked(c, "take down its pods (podman kube down)");
      } else {
        std::vector<std::string> argv{podman(), "pod", "rm", "--force"};
        for (const auto& p : mine) argv.push_back(p.id);
        checked(Call{argv}, "remove its pods");
      }
    }
    remove_record();
    forget();
  }

};

} // namespace stackup
// ---- end stackup/components/kubernetes.hpp ----
#endif
#endif // C++20: add new headers above this line
// ---- end stackup/stackup.hpp ----
