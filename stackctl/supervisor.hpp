// stackctl's detached supervisor (DESIGN §10 "Detached"): `stack supervise`
// keeps the stack running in the foreground, one per stack (an exclusive flock
// on `supervisor.lock`, held for its whole life); a detached `stack up` of a
// stack with a restart policy starts one in its own session, not as a child of
// anything that would take it down, so that killing it (even with SIGKILL)
// leaves every component running.
#pragma once

#include <stackup/cli.hpp>
#include <stackup/dynamic_stack.hpp>
#include <stackup/format.hpp>
#include <stackup/supervise.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

namespace stackctl {

namespace fs = std::filesystem;
namespace record = stackup::detail::supervisor;
using posix = stackup::detail::posix;

/// Whether any component has a restart policy: then a detached `stack up` leaves a supervisor.
inline bool wants_supervisor(const stackup::StackView& v) {
  for (const std::string_view r : v.roles())
    if (v.supervision(r).restart.policy != stackup::Restart::no) return true;
  return false;
}

/// `stack up` without `--attach` (`-a`, alone or among short flags): the
/// command after which a supervisor is started.
inline bool detached_up(std::span<const std::string_view> command) {
  if (command.size() < 2 || command[0] != "stack" || command[1] != "up") return false;
  for (const std::string_view w : command.subspan(2)) {
    if (w == "--attach" || w == "--help" || w == "-h") return false;
    if (w.size() > 1 && w[0] == '-' && w[1] != '-' && w.find('a') != std::string_view::npos) return false;
  }
  return true;
}

/// `stack down --force` (`-f`, alone or among short flags).
inline bool forced_down(std::span<const std::string_view> command) {
  if (command.size() < 2 || command[0] != "stack" || command[1] != "down") return false;
  for (const std::string_view w : command.subspan(2))
    if (w == "--force" || (w.size() > 1 && w[0] == '-' && w[1] != '-' && w.find('f') != std::string_view::npos))
      return true;
  return false;
}

/// The supervision directory's lock file, open (created if missing).
inline posix::Fd open_lock(int dirfd, const fs::path& dir) {
  posix::Fd fd(::openat(dirfd, record::lock_file, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd)
    throw stackup::Error(fmt::format("cannot open {}: {}: remove it if it is not a regular file",
                                     (dir / record::lock_file).string(), posix::sys_message(errno)));
  return fd;
}

/// Whether a supervisor holds the stack's lock now.
inline bool supervised(int dirfd, const fs::path& dir) {
  const posix::Fd fd = open_lock(dirfd, dir);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return false; // released as fd closes
  return errno == EWOULDBLOCK;
}

namespace signals {
inline std::atomic<bool> stop{false};
inline int wake = -1;
inline void handler(int) {
  stop.store(true);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake, &one, sizeof one);
}
/// The stop token supervise() watches: set by SIGTERM or SIGINT.
struct Token {
  [[nodiscard]] bool stop_requested() const noexcept { return stop.load(); }
  [[nodiscard]] bool stop_possible() const noexcept { return true; }
};
} // namespace signals

/// `stack supervise`: takes the stack's supervisor lock (exit 1 when another
/// holds it), records itself, brings the stack up (`up`: the library's `stack
/// up`, which does nothing to what runs), then keeps it running until SIGTERM or
/// SIGINT; exits 0 leaving every component as it is. Each restart holds the
/// stack file's lock (`lock_file`; empty: none), as the commands do.
inline int supervise(stackup::DynamicStack& stack, const fs::path& dir, const fs::path& lock_file,
                     const std::function<int()>& up, std::ostream& out, std::ostream& err) {
  const posix::Fd dirfd = stackup::detail::supervision::open_state_dir(dir, true);
  const posix::Fd lock = open_lock(dirfd.get(), dir);
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    const auto other = record::running(dir);
    err << fmt::format("stackctl: stack '{}' is already supervised{}: one supervisor per stack; 'stackctl stack down' "
                       "stops it\n", stack.name(), other ? fmt::format(" by pid {}", other->pid) : std::string());
    return stackup::cli::exit_failure;
  }
  // The record of an earlier supervisor (killed) is not this one's: status
  // reads the record of the supervisor the pid file names.
  ::unlinkat(dirfd.get(), stackup::detail::supervision::record_file, 0);
  posix::write_file_atomic(dirfd.get(), record::pid_file, record::format_pid(record::self()), dir / record::pid_file);
  if (const int code = up(); code != stackup::cli::exit_success) {
    ::unlinkat(dirfd.get(), record::pid_file, 0);
    return code;
  }
  const posix::Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  signals::wake = wake.get();
  struct sigaction sa{};
  sa.sa_handler = &signals::handler;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  out << fmt::format("supervising stack '{}' (pid {}); SIGTERM or Ctrl-C stops supervising and leaves it running\n",
                     stack.name(), ::getpid());
  out.flush();
  const signals::Token token;
  // Plain lines: its output goes to a log file, mostly.
  // The actions of its restarts, between its own events.
  stack.on_event([&out](const stackup::Event& e) {
    out << stackup::progress_line(e, false) << '\n';
    out.flush();
  });
  stackup::supervise(stack, stackup::SuperviseOptions{
                                .stop = &token,
                                .on_event =
                                    [&out](const stackup::SupervisionEvent& e) {
                                      out << stackup::supervision_line(e, false) << '\n';
                                      out.flush();
                                    },
                                .wake_fd = wake.get(),
                                .state_dir = dir,
                                .lock_file = lock_file,
                            });
  ::unlinkat(dirfd.get(), record::pid_file, 0);
  out << fmt::format("stopped supervising stack '{}'; it is left as it is\n", stack.name());
  out.flush();
  return stackup::cli::exit_success;
}

/// After a detached `stack up`: starts `stackctl -f <file> stack supervise` in
/// its own session (stdin /dev/null, output to `supervisor.log`) unless a
/// supervisor holds the lock, then waits (up to 2 s) for it to record itself.
/// Its pid, or nullopt (said on `err`) when it did not come up.
inline std::optional<pid_t> start_detached(const fs::path& file, const fs::path& dir, std::ostream& err) {
  const posix::Fd dirfd = stackup::detail::supervision::open_state_dir(dir, true);
  pid_t child = -1;
  if (!supervised(dirfd.get(), dir)) {
    const posix::Fd log(::openat(dirfd.get(), record::log_file, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
                                 0600));
    const posix::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!log || !null)
      throw stackup::Error(fmt::format("cannot open {}: {}", (dir / record::log_file).string(),
                                       posix::sys_message(errno)));
    const std::string path = file.string();
    const char* argv[] = {"stackctl", "-f", path.c_str(), "stack", "supervise", nullptr};
    child = ::fork();
    if (child < 0) throw stackup::Error(fmt::format("cannot start the supervisor: fork: {}", posix::sys_message(errno)));
    if (child == 0) {
      // Only async-signal-safe calls here: the parent may hold locks of its own.
      ::setsid();
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGPIPE, SIG_DFL);
      if (::dup2(null.get(), 0) < 0 || ::dup2(log.get(), 1) < 0 || ::dup2(log.get(), 2) < 0) ::_exit(127);
      ::execv("/proc/self/exe", const_cast<char* const*>(argv));
      ::_exit(127);
    }
  }
  // Wait for the supervisor (this one, or one another `stack up` started) to record itself.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (true) {
    if (child > 0 && ::waitpid(child, nullptr, WNOHANG) == child) child = -1; // it found another one running
    if (const auto p = record::running(dir); p && supervised(dirfd.get(), dir)) return p->pid;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  err << fmt::format("stackctl: the stack's supervisor did not start within 2s: see {}; 'stackctl stack supervise' "
                     "runs it in the foreground\n", (dir / record::log_file).string());
  return std::nullopt;
}

} // namespace stackctl
