// stackup — what keeps a component running (DESIGN §10): its restart policy, its
// liveness probe, and what it does when a dependency restarts. Config types only;
// the loop that honours them is stackup::supervise (<stackup/supervise.hpp>).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>

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
