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
class StackDefinitionError : public Error {
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

} // namespace stackup
