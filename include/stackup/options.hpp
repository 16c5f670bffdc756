// stackup — the options of up() and down(), shared by every kind of stack.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>

#include <cstddef>
#include <stop_token>

namespace stackup {

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
  const std::stop_token* stop = nullptr;
};
/// Options of `down`. Members in this order, for designated initialisers.
struct DownOptions {
  bool force = false;    ///< also deprovision (zenml stack down --force)
  bool parallel = false; ///< run each action as soon as its dependents are done, on several threads
  std::size_t max_threads = 0; ///< with `parallel`: at most this many threads (0: one per ready component)
  /// A stop token to watch (`.stop = &token`; it must outlive the call). When a
  /// stop is requested: the action in flight finishes, no further action starts;
  /// TransitionError (cause: InterruptedError) names what was left as it was.
  const std::stop_token* stop = nullptr;
};

namespace detail {
// The stop token of the up running a forward action on this thread, if any.
inline thread_local const std::stop_token* current_stop = nullptr;
} // namespace detail

/// True when the operation that runs the calling component's action was asked
/// to stop (UpOptions::stop, or Ctrl-C under cli::run). Only provision and
/// resume during an up see it (undo and down actions are left to finish): a
/// long action may poll it and give up early by throwing.
inline bool stop_requested() noexcept { return detail::current_stop && detail::current_stop->stop_requested(); }

} // namespace stackup
