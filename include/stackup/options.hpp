// stackup — the options of up() and down(), shared by every kind of stack.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>

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
