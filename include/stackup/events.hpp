// stackup — what observers receive (Event) and what status() returns (ComponentStatus).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>

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
