// stackup — POSIX internals of the shipped components: pid records carrying the process
// start time, reading /proc, and stopping a process group with escalation.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/directories.hpp>

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixProcesses : PosixDirectories<> {

// ---- processes ----------------------------------------------------------------------

/// What stackup needs from /proc/<pid>/stat.
struct ProcStat {
  char state = '?';                 ///< field 3: R, S, D, Z (zombie), ...
  pid_t ppid = 0;                   ///< field 4: parent
  pid_t pgrp = 0;                   ///< field 5: process group
  pid_t session = 0;                ///< field 6: session
  unsigned long long start_time = 0; ///< field 22: start time in clock ticks since boot
};

/// Parses the content of /proc/<pid>/stat. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last ')'.
static std::optional<ProcStat> parse_proc_stat(std::string_view s) {
  const auto close = s.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  s.remove_prefix(close + 1);
  ProcStat out;
  // Fields after ')' start at field 3.
  for (int field = 3; field <= 22; ++field) {
    if (s.empty() || s.front() != ' ') return std::nullopt;
    s.remove_prefix(1);
    const auto end = std::min(s.find(' '), s.size());
    const std::string_view tok = s.substr(0, end);
    if (tok.empty()) return std::nullopt;
    if (field == 3) {
      out.state = tok.front();
    } else if (field == 4) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.ppid).ec != std::errc{}) return std::nullopt;
    } else if (field == 5) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.pgrp).ec != std::errc{}) return std::nullopt;
    } else if (field == 6) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.session).ec != std::errc{}) return std::nullopt;
    } else if (field == 22) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.start_time).ec != std::errc{}) return std::nullopt;
    }
    s.remove_prefix(end);
  }
  return out;
}

/// /proc/<pid>/stat of a process, or empty when there is no such process.
static std::optional<ProcStat> read_proc_stat(pid_t pid) {
  const std::string file = "/proc/" + std::to_string(pid) + "/stat";
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  char buf[1024];
  std::size_t len = 0;
  while (len < sizeof buf) {
    const ssize_t n = ::read(fd.get(), buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  return parse_proc_stat(std::string_view(buf, len));
}

/// A zombie has exited; only its parent's wait is missing.
static bool is_live_state(char state) noexcept { return state != 'Z' && state != 'X' && state != 'x'; }

/// The largest pid the system hands out (/proc/sys/kernel/pid_max).
static pid_t max_pid() {
  Fd fd(::open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC));
  char buf[32];
  long value = 0;
  if (fd) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) std::from_chars(buf, buf + n, value);
  }
  return value > 1 ? static_cast<pid_t>(value) : pid_t{4194304}; // Linux's PID_MAX_LIMIT on 64-bit
}

/// A pid file's content: the pid and the start time of that process, which
/// together identify it even after the pid number is reused, and the invocation
/// id of that start (see invocation_variable).
struct PidRecord {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  std::string invocation_id{}; ///< 32 hexadecimal digits; empty in pid files of stackup 0.1.0
  /// The waiter that holds the daemon (see spawn_held) and its start time;
  /// 0 in pid files written before the hold (stackup 0.2 and earlier).
  pid_t waiter = 0;
  unsigned long long waiter_start = 0;
};

/// The environment variable LocalDaemon sets to the invocation id of a start.
/// Every process the daemon starts inherits it: once the daemon's own process
/// has exited, it is what proves that a process it left behind is its.
static constexpr std::string_view invocation_variable = "STACKUP_INVOCATION_ID";

/// Whether `s` is an invocation id: 32 lowercase hexadecimal digits.
static bool is_invocation_id(std::string_view s) noexcept {
  return s.size() == 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// A new random invocation id; empty if the system gives no random bytes.
static std::string new_invocation_id() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};
    got += static_cast<std::size_t>(n);
  }
  std::string id;
  for (const unsigned char b : bytes) {
    id += "0123456789abcdef"[b >> 4];
    id += "0123456789abcdef"[b & 15];
  }
  return id;
}

/// "<pid> <start time> <invocation id> <waiter pid> <waiter start time>\n";
/// without a waiter "<pid> <start time> <invocation id>\n" (stackup 0.2), and
/// without an id "<pid> <start time>\n" (0.1.0).
static std::string format_pid_record(const PidRecord& r) {
  std::string out = std::to_string(r.pid) + " " + std::to_string(r.start_time);
  if (r.waiter != 0)
    out += " " + (r.invocation_id.empty() ? std::string(32, '0') : r.invocation_id) + " " + std::to_string(r.waiter) +
           " " + std::to_string(r.waiter_start);
  else if (!r.invocation_id.empty())
    out += " " + r.invocation_id;
  return out + "\n";
}

/// Parses a pid file strictly. On failure returns false and says why in `why`;
/// a pid of 0, 1, a negative or an out-of-range value is never accepted (they
/// would make kill() hit a process group, init or everything).
static bool parse_pid_record(std::string_view text, PidRecord& out, std::string& why) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) {
    why = "is empty";
    return false;
  }
  auto shown = [&] {
    std::string s;
    for (char c : text.substr(0, 40)) s += (c >= 0x20 && c < 0x7f) ? c : '?';
    return "'" + s + (text.size() > 40 ? "...'" : "'");
  };
  const auto space = text.find(' ');
  const std::string_view pid_text = text.substr(0, space);
  std::string_view start_text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  std::optional<std::string_view> id_text; // 0.1.0 wrote none
  std::optional<std::string_view> waiter_text, waiter_start_text; // 0.2 wrote none
  if (const auto second = start_text.find(' '); second != std::string_view::npos) {
    id_text = start_text.substr(second + 1);
    start_text = start_text.substr(0, second);
    if (const auto third = id_text->find(' '); third != std::string_view::npos) {
      waiter_text = id_text->substr(third + 1);
      id_text = id_text->substr(0, third);
      const auto fourth = waiter_text->find(' ');
      waiter_start_text = fourth == std::string_view::npos ? std::string_view{} : waiter_text->substr(fourth + 1);
      waiter_text = waiter_text->substr(0, fourth);
    }
  }
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!pid_text.empty() && pid_text.front() == '-' && digits(pid_text.substr(1))) {
    why = "holds a negative pid (" + shown() + ")";
    return false;
  }
  if (!digits(pid_text) || !digits(start_text) || (id_text && !is_invocation_id(*id_text)) ||
      (waiter_text && (!digits(*waiter_text) || !digits(*waiter_start_text) || waiter_text->size() > 12))) {
    why = "holds " + shown() + ", not '<pid> <start time> <invocation id>'";
    return false;
  }
  long long pid = 0;
  const pid_t limit = max_pid();
  if (pid_text.size() > 12 || std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid).ec != std::errc{} ||
      pid > limit) {
    why = "holds pid " + std::string(pid_text.substr(0, 24)) + ", above the system's maximum (" +
          std::to_string(limit) + ")";
    return false;
  }
  if (pid <= 1) {
    why = "holds pid " + std::to_string(pid) + ", which is never a daemon's (0 is a process group, 1 is init)";
    return false;
  }
  if (std::from_chars(start_text.data(), start_text.data() + start_text.size(), out.start_time).ec != std::errc{}) {
    why = "holds an out-of-range start time (" + shown() + ")";
    return false;
  }
  out.pid = static_cast<pid_t>(pid);
  out.invocation_id = id_text.value_or(std::string_view{});
  out.waiter = 0;
  out.waiter_start = 0;
  if (waiter_text) {
    long long waiter = 0;
    std::from_chars(waiter_text->data(), waiter_text->data() + waiter_text->size(), waiter);
    if (waiter <= 1 || waiter > limit) {
      why = "holds waiter pid " + std::string(*waiter_text) + ", which is never a daemon's waiter";
      return false;
    }
    if (std::from_chars(waiter_start_text->data(), waiter_start_text->data() + waiter_start_text->size(),
                        out.waiter_start).ec != std::errc{}) {
      why = "holds an out-of-range start time (" + shown() + ")";
      return false;
    }
    out.waiter = static_cast<pid_t>(waiter);
  }
  return true;
}

/// Whether the process a record names is still that process.
enum class Identity {
  ours,   ///< alive, same start time
  gone,   ///< no such process, or it has exited (zombie)
  reused, ///< the pid now belongs to another process: never signal it
};

/// Checks a record against /proc; reaps the process when it is a zombie child
/// of this process, so a long-lived host does not collect zombies.
static Identity identify(const PidRecord& r, bool reap_zombie = true) {
  const auto st = read_proc_stat(r.pid);
  if (!st) return Identity::gone;
  if (st->start_time != r.start_time) return Identity::reused;
  if (is_live_state(st->state)) return Identity::ours;
  if (reap_zombie) {
    while (::waitpid(r.pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
    }
  }
  return Identity::gone;
}

/// How a child process ended (waitid's si_code and si_status).
struct ChildExit {
  int code = 0;
  int status = 0;
};

/// ChildExit::code when the status is unknown: the child was reaped elsewhere
/// (e.g. the host sets SIGCHLD to SIG_IGN) or is not a child of this process.
static constexpr int unknown_exit = -1;

/// The end of `pid` if it is a child of this process and has ended, without
/// reaping it (its pid number stays reserved, so its group can still be
/// signalled safely). `ChildExit{unknown_exit}` when `pid` is not (or no longer)
/// a child of this process; empty while it runs.
static std::optional<ChildExit> peek_exit(pid_t pid) {
  siginfo_t si{};
  for (;;) {
    if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0) break;
    if (errno != EINTR) return ChildExit{unknown_exit, 0}; // ECHILD
  }
  if (si.si_pid == 0) return std::nullopt;
  return ChildExit{si.si_code, si.si_status};
}

/// Reaps `pid` if it is a child that has ended.
static void reap(pid_t pid) noexcept {
  while (::waitpid(pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
  }
}

/// "SIGTERM", or "signal 42".
static std::string signal_name(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
#endif
  return "signal " + std::to_string(sig);
}

/// "exit status 3", "killed by SIGKILL".
static std::string describe_exit(ChildExit e) {
  switch (e.code) {
  case CLD_EXITED: return "exit status " + std::to_string(e.status);
  case CLD_KILLED: return "killed by " + signal_name(e.status);
  case CLD_DUMPED: return "killed by " + signal_name(e.status) + " (core dumped)";
  case unknown_exit: return "an unknown exit status (reaped elsewhere: is SIGCHLD ignored?)";
  default: return "an unknown end (code " + std::to_string(e.code) + ")";
  }
}

/// Whether the environment `pid` started with holds `entry` ("NAME=value") as
/// a whole entry. False when it cannot be read (gone, or another user's).
static bool environment_has(pid_t pid, std::string_view entry) {
  const std::string file = "/proc/" + std::to_string(pid) + "/environ";
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  std::string env;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    env.append(buf, static_cast<std::size_t>(n));
  }
  std::string_view rest = env;
  while (!rest.empty()) {
    const auto end = rest.find('\0');
    if (rest.substr(0, end) == entry) return true;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return false;
}

/// A process as stackup identifies it: its pid and its start time.
struct ProcessId {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

/// What is left alive of the daemon a record names.
struct Remains {
  bool leader = false;             ///< the recorded process itself is alive
  std::vector<pid_t> groups{};     ///< the process groups of its session that hold a live process
  std::vector<ProcessId> members{}; ///< the live processes of its session, when it is provably the daemon's
  [[nodiscard]] bool empty() const noexcept { return !leader && groups.empty(); }
};

/// What is left alive of the daemon `r` records: its process, and every process
/// in its session (spawn made it a session leader, so the session id is the
/// recorded pid), which includes what a command that puts its server in the
/// background leaves behind. The session counts only while it is provably the
/// daemon's: while the recorded process exists with the recorded start time
/// (alive, or a zombie not yet reaped) its pid cannot be reused; once it is
/// reaped, Linux still does not reuse the pid while the session has a process,
/// but may after the session ended, for another session. So then the session
/// counts only if one of its processes carries the record's invocation id, or
/// is one of the `earlier` members (same pid and start time): a process never
/// rejoins a session, so the session it is still in is the one proven then.
/// That keeps a stop going while the proof can no longer be read: an exiting
/// process has no environment in /proc (its memory is released before it
/// becomes a zombie, while it still holds its files and ports), and a member
/// may have been started without the id.
static Remains remains_of(const PidRecord& r, const Remains* earlier = nullptr) {
  Remains out;
  const auto leader = read_proc_stat(r.pid);
  if (leader && leader->start_time != r.start_time) return out; // the pid is another process's now
  out.leader = leader && is_live_state(leader->state);
  if (leader && leader->session != r.pid) return out; // leads no session: stackup did not start it
  if (!leader && r.invocation_id.empty()) return out; // reaped, and nothing could prove the session is its
  const std::string mark = std::string(invocation_variable) + "=" + r.invocation_id;
  bool proven = leader.has_value();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view n = entry->d_name;
    if (std::from_chars(n.data(), n.data() + n.size(), pid).ec != std::errc{}) continue;
    const auto st = read_proc_stat(pid);
    if (!st || st->session != r.pid || !is_live_state(st->state)) continue;
    const ProcessId member{pid, st->start_time};
    proven = proven ||
             (earlier != nullptr &&
              std::find(earlier->members.begin(), earlier->members.end(), member) != earlier->members.end()) ||
             environment_has(pid, mark);
    out.members.push_back(member);
    if (std::find(out.groups.begin(), out.groups.end(), st->pgrp) == out.groups.end()) out.groups.push_back(st->pgrp);
  }
  ::closedir(proc);
  if (!proven) {
    out.groups.clear();
    out.members.clear();
  }
  return out;
}

/// Sends `sig` to each process group of what remains of a daemon, or to its
/// process alone when it leads no session (a record stackup did not write).
static void signal_remains(const PidRecord& r, const Remains& left, int sig, std::string_view who) {
  auto send = [&](pid_t target) {
    if (::kill(target, sig) != 0 && errno != ESRCH)
      throw Error("stackup: cannot send " + signal_name(sig) + " to " + std::string(who) + " (pid " +
                  std::to_string(r.pid) + "): " + sys_message(errno));
  };
  if (left.groups.empty() && left.leader) send(r.pid);
  for (const pid_t group : left.groups) {
    if (group > 1) send(-group); // never -1 (every process) or -0 (our own group)
  }
}

/// How stop_process ended.
enum class Stopped {
  not_running, ///< nothing to stop (gone, or the pid belongs to another process now)
  terminated,  ///< exited after SIGTERM
  killed,      ///< needed SIGKILL after the timeout
  remains,     ///< the main process had exited; what it left running was killed
};

/// Stops the daemon a record names and what it left in its session (see
/// remains_of): SIGTERM, wait up to `timeout` for all of it to exit, then
/// SIGKILL. Signals nothing that is not provably the daemon's: a pid whose start
/// time differs is another process's. Error if something survives SIGKILL.
static Stopped stop_process(const PidRecord& r, milliseconds timeout, std::string_view who) {
  if (const auto first = read_proc_stat(r.pid); first && first->start_time != r.start_time)
    return Stopped::not_running;
  Remains left = remains_of(r);
  auto gone = [&] {
    // Cheap while the recorded process lives; the session is looked at once it is gone.
    if (identify(r, false) == Identity::ours) return false;
    left = remains_of(r, &left);
    return left.empty();
  };
  auto finish = [&](Stopped how) {
    reap(r.pid);
    return how;
  };
  if (left.empty()) return finish(Stopped::not_running);
  signal_remains(r, left, SIGTERM, who);
  auto deadline = deadline_after(timeout);
  Backoff backoff;
  while (true) {
    if (gone()) return finish(Stopped::terminated);
    if (Clock::now() >= deadline) break;
    backoff.sleep(deadline);
  }
  left = remains_of(r, &left);
  signal_remains(r, left, SIGKILL, who);
  deadline = deadline_after(std::chrono::seconds(10));
  Backoff again;
  while (true) {
    if (gone()) return finish(Stopped::killed);
    if (Clock::now() >= deadline) break;
    again.sleep(deadline);
  }
  throw Error("stackup: " + std::string(who) + " (pid " + std::to_string(r.pid) +
              ") survived SIGKILL for 10s (stuck in the kernel?); its pid file is kept: check it with `ps -o "
              "pid,stat,cmd -s " + std::to_string(r.pid) + "`");
}

/// Whether the process `pid` that started at `start` is alive (not a zombie).
static bool alive_as(pid_t pid, unsigned long long start) {
  const auto st = read_proc_stat(pid);
  return st && st->start_time == start && is_live_state(st->state);
}

/// Waits (up to `timeout`) until the process `pid` that started at `start` is
/// gone; reaps it should it be a child of this process. Whether it is gone.
static bool await_gone(pid_t pid, unsigned long long start, milliseconds timeout) {
  const auto deadline = deadline_after(timeout);
  Backoff backoff;
  while (true) {
    reap(pid);
    if (!alive_as(pid, start)) return true;
    if (Clock::now() >= deadline) return false;
    backoff.sleep(deadline);
  }
}

// ---- the hold: finding and stopping what a waiter holds -------------------------

/// Every live process, with its parent and start time, read from /proc.
struct ProcessEntry {
  ProcessId id;
  pid_t ppid = 0;
};
static std::vector<ProcessEntry> live_processes() {
  std::vector<ProcessEntry> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view n = entry->d_name;
    const auto r = std::from_chars(n.data(), n.data() + n.size(), pid);
    if (r.ec != std::errc{} || r.ptr != n.data() + n.size()) continue;
    const auto st = read_proc_stat(pid);
    if (st && is_live_state(st->state)) out.push_back({{pid, st->start_time}, st->ppid});
  }
  ::closedir(proc);
  return out;
}

/// The live processes the waiter `waiter` holds: its descendants, by their
/// parent pids. Empty when the waiter is not alive with its recorded start time.
static std::vector<ProcessId> held_processes(const ProcessId& waiter) {
  std::vector<ProcessId> out;
  if (!alive_as(waiter.pid, waiter.start_time)) return out;
  const auto all = live_processes();
  std::vector<pid_t> parents{waiter.pid};
  for (std::size_t i = 0; i < parents.size(); ++i) {
    for (const auto& e : all) {
      if (e.ppid != parents[i] || e.id.pid == waiter.pid) continue;
      if (std::find(parents.begin(), parents.end(), e.id.pid) != parents.end()) continue;
      parents.push_back(e.id.pid);
      out.push_back(e.id);
    }
  }
  return out;
}

/// The live processes whose environment carries invocation id `id`: what
/// proves a process is a daemon's once its waiter is gone.
static std::vector<ProcessId> processes_with_id(std::string_view id) {
  std::vector<ProcessId> out;
  if (!is_invocation_id(id)) return out;
  const std::string mark = std::string(invocation_variable) + "=" + std::string(id);
  for (const auto& e : live_processes())
    if (e.id.pid != ::getpid() && environment_has(e.id.pid, mark)) out.push_back(e.id);
  return out;
}

/// The live processes of the daemon `r` records (a record with a waiter): the
/// waiter's descendants while it lives; once it is gone (killed), the main
/// process if alive and the processes carrying the record's invocation id.
static std::vector<ProcessId> daemon_processes(const PidRecord& r) {
  const ProcessId main{r.pid, r.start_time}, waiter{r.waiter, r.waiter_start};
  auto out = alive_as(waiter.pid, waiter.start_time) ? held_processes(waiter) : processes_with_id(r.invocation_id);
  if (alive_as(main.pid, main.start_time) && std::find(out.begin(), out.end(), main) == out.end()) out.push_back(main);
  return out;
}

/// A pidfd (close-on-exec, as pidfd_open always makes it) of the process `p`
/// names, only if it is still that process: the pidfd is opened first and the
/// start time checked after, so the pid cannot have been reused in between.
/// It becomes readable when that process exits. Empty with errno ESRCH when
/// the process is gone or the pid is another's now; empty with another errno
/// (ENOSYS, EPERM, ...) when the system gives no pidfds.
static Fd open_pidfd(const ProcessId& p) {
#if defined(SYS_pidfd_open)
  Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0U)));
  if (!fd) return fd;
  const auto st = read_proc_stat(p.pid);
  if (!st || st->start_time != p.start_time) {
    fd.reset();
    errno = ESRCH;
  }
  return fd;
#else
  (void)p;
  errno = ENOSYS;
  return Fd();
#endif
}

/// Sends `sig` to the process `p` names, only if it is still that process
/// (see open_pidfd; a plain kill() after the check where pidfds are missing).
static bool signal_process(const ProcessId& p, int sig) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
  if (const Fd fd = open_pidfd(p)) return ::syscall(SYS_pidfd_send_signal, fd.get(), sig, nullptr, 0U) == 0;
  if (errno == ESRCH) return false;
#endif
  const auto st = read_proc_stat(p.pid);
  if (!st || st->start_time != p.start_time) return false;
  return ::kill(p.pid, sig) == 0;
}

/// Stops a daemon started under the hold, as systemd's KillMode=mixed does:
/// SIGTERM to the main process; once it has exited, or `timeout` has passed,
/// SIGKILL to every process still held; then waits until the waiter is gone
/// (it reaps them all, records the exit and exits). A waiter that is itself
/// gone (killed) leaves its processes to init: those carrying the record's
/// invocation id are stopped the same way. Error if something survives SIGKILL.
static Stopped stop_held(const PidRecord& r, milliseconds timeout, std::string_view who) {
  const ProcessId main{r.pid, r.start_time}, waiter{r.waiter, r.waiter_start};
  const bool held = alive_as(waiter.pid, waiter.start_time);
  auto remaining = [&] { return daemon_processes(r); };
  auto everything_gone = [&] { return remaining().empty() && (!held || !alive_as(waiter.pid, waiter.start_time)); };
  if (everything_gone()) {
    if (held) (void)await_gone(waiter.pid, waiter.start_time, std::chrono::seconds(10));
    return Stopped::not_running;
  }
  Stopped how = Stopped::not_running;
  if (alive_as(main.pid, main.start_time)) {
    signal_process(main, SIGTERM);
    how = Stopped::terminated;
    const auto deadline = deadline_after(timeout);
    Backoff backoff;
    while (alive_as(main.pid, main.start_time) && Clock::now() < deadline) backoff.sleep(deadline);
    if (alive_as(main.pid, main.start_time)) how = Stopped::killed;
  }
  // Once the main process is gone the waiter kills the rest itself; this does it
  // too, for what a killed waiter left behind and in case the waiter is stopped.
  const auto deadline = deadline_after(std::chrono::seconds(10));
  Backoff backoff;
  while (true) {
    const auto left = remaining();
    for (const auto& p : left)
      if (signal_process(p, SIGKILL) && how == Stopped::not_running) how = Stopped::remains;
    if (left.empty() && (!held || !alive_as(waiter.pid, waiter.start_time))) return how;
    if (Clock::now() >= deadline) break;
    backoff.sleep(deadline);
  }
  throw Error("stackup: " + std::string(who) + " (pid " + std::to_string(r.pid) + ", waiter " +
              std::to_string(r.waiter) +
              ") still has processes 10s after SIGKILL (stuck in the kernel?); its pid file is kept: check them with "
              "`ps -o pid,ppid,stat,cmd --ppid " + std::to_string(r.waiter) + "`");
}

/// How a daemon's main process ended, as its waiter recorded it in `exit`.
struct ExitRecord {
  std::string invocation_id;
  pid_t pid = 0;
  ChildExit exit{};            ///< CLD_EXITED, CLD_KILLED or CLD_DUMPED, with the status or signal
  long long seconds = 0;       ///< when (the Unix epoch), seconds and nanoseconds
  long nanoseconds = 0;
  unsigned long long left = 0; ///< processes still held then, which the waiter killed
};

/// Parses an `exit` file ("<id> <pid> exited|killed|dumped <n> <s>.<ns> <left>\n").
static std::optional<ExitRecord> parse_exit_record(std::string_view text) {
  if (text.empty() || text.back() != '\n') return std::nullopt;
  text.remove_suffix(1);
  std::vector<std::string_view> f;
  while (!text.empty()) {
    const auto sp = text.find(' ');
    f.push_back(text.substr(0, sp));
    if (sp == std::string_view::npos) break;
    text.remove_prefix(sp + 1);
  }
  if (f.size() != 6 || !is_invocation_id(f[0])) return std::nullopt;
  ExitRecord r;
  r.invocation_id = f[0];
  auto number = [](std::string_view s, auto& out) {
    const auto res = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && res.ec == std::errc{} && res.ptr == s.data() + s.size();
  };
  if (f[2] == "exited") r.exit.code = CLD_EXITED;
  else if (f[2] == "killed") r.exit.code = CLD_KILLED;
  else if (f[2] == "dumped") r.exit.code = CLD_DUMPED;
  else return std::nullopt;
  const auto dot = f[4].find('.');
  if (!number(f[1], r.pid) || !number(f[3], r.exit.status) || dot == std::string_view::npos ||
      !number(f[4].substr(0, dot), r.seconds) || !number(f[4].substr(dot + 1), r.nanoseconds) || !number(f[5], r.left))
    return std::nullopt;
  return r;
}

}; // struct PosixProcesses

} // namespace stackup::detail
