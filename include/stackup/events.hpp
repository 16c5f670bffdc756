// stackup — what observers receive (Event) and what status() returns (ComponentStatus).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>

#include <functional>
// Event::elapsed is a std::chrono::nanoseconds. libstdc++ declares the durations
// and clocks apart from <chrono>'s calendar, time zones and I/O, which cost every
// includer more than the rest of the core together.
#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif
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
