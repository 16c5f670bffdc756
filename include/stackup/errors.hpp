// stackup — errors. Every error stackup throws derives from stackup::Error.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>
#include <stackup/component.hpp>

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
