// stackup — a stack's detached supervisor as the command line sees it (internal,
// part of <stackup/cli.hpp> through the runner): its pid file in the supervision
// directory (cli::Options::supervision_dir), whether it runs, and stopping it.
//
//   supervisor.pid   `<pid> <start time>` (clock ticks since boot, /proc/<pid>/stat
//                    field 22), replaced atomically by the supervisor
//   supervisor.lock  held (flock, exclusive) by the supervisor for its whole life
//   supervisor.log   its output
//
// A pid is acted on only while it is still the process recorded (its start time
// checked after a pidfd is opened on it), never a pid reused since.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix.hpp>
#include <stackup/detail/supervision_record.hpp>
#include <stackup/errors.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace stackup::detail::supervisor {

inline constexpr const char* pid_file = "supervisor.pid";
inline constexpr const char* lock_file = "supervisor.lock";
inline constexpr const char* log_file = "supervisor.log";

/// The pid file's text for the process `p`.
inline std::string format_pid(const posix::ProcessId& p) {
  return std::to_string(p.pid) + " " + std::to_string(p.start_time) + "\n";
}
/// Parses `<pid> <start time>\n`; nullopt for anything else.
inline std::optional<posix::ProcessId> parse_pid(std::string_view text) {
  posix::ProcessId p;
  const char* end = text.data() + text.size();
  auto r = std::from_chars(text.data(), end, p.pid);
  if (r.ec != std::errc{} || p.pid <= 0 || r.ptr == end || *r.ptr != ' ') return std::nullopt;
  r = std::from_chars(r.ptr + 1, end, p.start_time);
  if (r.ec != std::errc{} || r.ptr == end || *r.ptr != '\n' || r.ptr + 1 != end) return std::nullopt;
  return p;
}

/// This process, as its pid file records it.
inline posix::ProcessId self() {
  const auto st = posix::read_proc_stat(::getpid());
  if (!st) throw Error("stackup: cannot read /proc/self/stat: is /proc mounted?");
  return {::getpid(), st->start_time};
}

/// The supervisor recorded in the supervision directory `dir`, when it is alive
/// (the process that wrote the pid file, by its start time); nullopt otherwise.
/// Error for a directory that is not a private one.
inline std::optional<posix::ProcessId> running(const std::filesystem::path& dir) {
  const posix::Fd d = posix::open_private_dir(dir);
  if (!d) return std::nullopt;
  const auto text = posix::read_file_at(d.get(), pid_file, 64, dir / pid_file);
  if (!text) return std::nullopt;
  const auto p = parse_pid(*text);
  if (!p || !posix::alive_as(p->pid, p->start_time)) return std::nullopt;
  return p;
}

/// Stops the supervisor recorded in `dir`, if one runs: SIGTERM (it returns
/// from its loop and leaves every component as it is), then SIGKILL after
/// `grace`. The pid it stopped, or nullopt when none ran. Error if it survives.
inline std::optional<posix::ProcessId> stop(const std::filesystem::path& dir, std::chrono::milliseconds grace) {
  const auto p = running(dir);
  if (!p) return std::nullopt;
  if (!posix::signal_process(*p, SIGTERM)) return p; // gone already
  if (posix::await_gone(p->pid, p->start_time, grace)) return p;
  posix::signal_process(*p, SIGKILL);
  if (!posix::await_gone(p->pid, p->start_time, std::chrono::seconds(5)))
    throw Error("stackup: the stack's supervisor (pid " + std::to_string(p->pid) +
                ") survived SIGKILL: stop it by hand, then run the command again");
  return p;
}

} // namespace stackup::detail::supervisor
