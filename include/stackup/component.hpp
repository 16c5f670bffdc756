// stackup — the component contract: StackComponent (CRTP defaults), the concepts,
// State / Transition / Outcome, role constants and FixedString.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>

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
