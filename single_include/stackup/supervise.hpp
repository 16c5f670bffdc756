// stackup — bring a stack of infrastructure components up and down.
// Version 0.2.0. https://github.com/stackup-cpp/stackup
// SPDX-License-Identifier: MIT (the MIT licence)
//
// Single-header distribution: generated — do not edit, run tools/amalgamate.py
// (`python3 tools/amalgamate.py` from the source tree) after changing include/.
#pragma once
#include "stackup.hpp"
// Below C++20 the single header has issued its #error: skip the rest.
#if defined(__cplusplus) && __cplusplus >= 202002L

// ---- begin stackup/supervise.hpp ----
// stackup — keeping a stack running (DESIGN §10): stackup::supervise watches
// every component with a restart policy or a liveness probe and restarts what
// stops running on its own, by its policy. Not part of the umbrella header.
// SPDX-License-Identifier: MIT


#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace stackup {

/// What supervise() does when a component exits.
enum class OnExit : unsigned char {
  policy, ///< what the component's restart policy says (the default)
  abort,  ///< return at once with that exit (stackctl's `--abort-on-exit`)
};

/// Options of supervise(). Members in this order, for designated initialisers.
struct SuperviseOptions {
  /// Run until a stop is requested on this token (`.stop = &token`; it must
  /// outlive the call). Null: until every supervised component is failed or down.
  StopTokenRef stop = nullptr;
  /// Per role, a policy that replaces the component's own (`supervision().restart`).
  std::map<std::string, RestartPolicy, std::less<>> policies{};
  /// How often a component that cannot tell of its exit (no `exit_fd()`) is
  /// asked `is_running()`, and a down or failed one whether it was brought up again.
  std::chrono::milliseconds poll = std::chrono::seconds(2);
  /// Called for every exit, restart, give-up and liveness failure, from the
  /// calling thread. The actions of a restart go to the stack's own observer.
  std::function<void(const SupervisionEvent&)> on_event{};
  /// A descriptor whose readability wakes the loop to see `stop` at once (e.g.
  /// an eventfd written by a signal handler); -1: a stop is seen within 100 ms.
  int wake_fd = -1;
  OnExit on_exit = OnExit::policy;
  /// Where the loop records what it sees (one file, `supervision`) and reads
  /// the marks of `down`s from other processes (`down/<role>`, `down/.stack`),
  /// so that a down always wins. Empty: nothing is recorded or read.
  std::filesystem::path state_dir{};
};

/// How supervise() returned.
struct SuperviseResult {
  /// Returned because a stop was requested (or nothing is left to supervise).
  bool stopped = true;
  /// With OnExit::abort: the role that exited, and how.
  std::string role{};
  std::optional<Exit> exit{};
};

/// Keeps `stack` (a Stack<Cs...> or a DynamicStack) running by DESIGN §10
/// until `options.stop` is requested; never brings anything down itself when
/// it returns. UnknownComponentError for a role in `options.policies` that the
/// stack lacks.
template <class S> SuperviseResult supervise(S& stack, SuperviseOptions options = {}) {
  (void)stack;
  (void)options;
  throw Error("stackup::supervise: not yet");
}

} // namespace stackup
// ---- end stackup/supervise.hpp ----
#endif // C++20
