// stackup — the command line and its terminal (internal, part of <stackup/cli.hpp>):
// colour or not, the program's name, durations, and the signals an operation
// must survive (Ctrl-C and SIGTERM ask it to stop; a closed pipe fails a write).
// SPDX-License-Identifier: MIT
#include <stackup/cli.hpp> // the public types it works on (cli.hpp includes this file after them)

#ifndef STACKUP_DETAIL_CLI_TERMINAL_HPP
#define STACKUP_DETAIL_CLI_TERMINAL_HPP

#include <stackup/format.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <functional>
#include <iostream>
#include <ostream>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace stackup::cli::detail {

inline bool decorate(const std::ostream& stream, Color color) {
  switch (color) {
  case Color::always: return true;
  case Color::never: return false;
  case Color::automatic: break;
  }
  if (&stream == &std::cout) return stackup::use_color(stdout);
  if (&stream == &std::cerr || &stream == &std::clog) return stackup::use_color(stderr);
  return false; // an arbitrary stream: no way to know it is a terminal
}

inline std::string_view base_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

inline std::string seconds(std::chrono::nanoseconds d) {
  return fmt::format("{:.2f}s", std::chrono::duration<double>(d).count());
}

// ---- Ctrl-C and SIGTERM while an operation runs ------------------------------------

// What the signal handler may touch: plain data, set before it is installed.
struct SignalState {
  static inline volatile std::sig_atomic_t caught = 0; // the first signal, 0 while none
  static inline int wake = -1;                         // write end of the pipe the watcher reads
  static inline char again[512]{};                     // said on a second signal, before exiting
  static inline std::size_t again_size = 0;
  static inline volatile std::sig_atomic_t handing_over = 0; // a second signal goes to the watcher
  static inline volatile std::sig_atomic_t seen = 0;         // signals caught so far
};

// First signal: wake the watcher (which asks the operation to stop). Second: say
// what state things may be in and end the process at once. Async-signal-safe.
// With an `on_again` (Interrupts), the second goes to the watcher, which runs it
// first; a third ends the process at once whatever it is doing.
inline void on_signal(int sig) {
  const int n_seen = SignalState::seen + 1;
  SignalState::seen = n_seen;
  if (n_seen == 1) SignalState::caught = sig;
  if (n_seen == 1 || (n_seen == 2 && SignalState::handing_over != 0)) {
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(SignalState::wake, &byte, 1);
    return;
  }
  [[maybe_unused]] const auto n = ::write(STDERR_FILENO, SignalState::again, SignalState::again_size);
  ::_exit(128 + SignalState::caught);
}

/// While it lives, SIGINT and SIGTERM ask the operation to stop (through
/// `token()`); a second one ends the process at once, after `on_again` when
/// given (it runs on a thread of its own: e.g. kill what is left without
/// grace), saying `again` either way. The host's handlers are put back when it
/// dies. Without a pipe (no descriptors left) it does nothing.
class Interrupts {
public:
  explicit Interrupts(std::string_view again, std::function<void()> on_again = {}) : on_again_(std::move(on_again)) {
    if (::pipe2(fds_, O_CLOEXEC) != 0) {
      fds_[0] = fds_[1] = -1;
      return;
    }
    SignalState::caught = 0;
    SignalState::seen = 0;
    SignalState::handing_over = on_again_ ? 1 : 0;
    SignalState::wake = fds_[1];
    SignalState::again_size = std::min(again.size(), sizeof SignalState::again);
    std::copy_n(again.data(), SignalState::again_size, SignalState::again);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    // A signal the host ignores (a background job in a script) stays ignored.
    installed_int_ = take(SIGINT, sa, host_int_);
    installed_term_ = take(SIGTERM, sa, host_term_);
    watcher_ = std::jthread([this] {
      for (int signals = 0;;) {
        char byte = 0;
        const ssize_t n = ::read(fds_[0], &byte, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 1) return; // closed: this object is going
        if (++signals == 1) {
          source_.request_stop();
          continue;
        }
        on_again_();
        [[maybe_unused]] const auto w = ::write(STDERR_FILENO, SignalState::again, SignalState::again_size);
        ::_exit(128 + SignalState::caught);
      }
    });
  }
  ~Interrupts() {
    if (fds_[0] < 0) return;
    if (installed_int_) ::sigaction(SIGINT, &host_int_, nullptr);
    if (installed_term_) ::sigaction(SIGTERM, &host_term_, nullptr);
    SignalState::wake = -1;
    SignalState::handing_over = 0;
    ::close(fds_[1]); // the watcher's read ends
    watcher_.join();
    ::close(fds_[0]);
  }
  Interrupts(const Interrupts&) = delete;
  Interrupts& operator=(const Interrupts&) = delete;

  [[nodiscard]] std::stop_token token() const noexcept { return source_.get_token(); }
  /// The signal that asked the operation to stop, or 0.
  [[nodiscard]] static int signal() noexcept { return SignalState::caught; }

private:
  static bool take(int sig, const struct sigaction& ours, struct sigaction& host) {
    if (::sigaction(sig, nullptr, &host) != 0 || host.sa_handler == SIG_IGN) return false;
    return ::sigaction(sig, &ours, nullptr) == 0;
  }

  int fds_[2]{-1, -1};
  bool installed_int_ = false, installed_term_ = false;
  struct sigaction host_int_ {}, host_term_ {};
  std::function<void()> on_again_;
  std::stop_source source_;
  std::jthread watcher_;
};

inline void on_sigpipe(int) {}

/// While it lives, a write to a closed pipe fails with EPIPE (the stream goes
/// bad) instead of ending the process: an operation is finished or rolled back
/// whatever happens to its output. A handler rather than SIG_IGN, because an
/// ignored signal stays ignored in the programs the components start, a handler
/// does not. A SIGPIPE the host ignores or handles is left alone.
class PipeGuard {
public:
  PipeGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_sigpipe;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    installed_ = ::sigaction(SIGPIPE, nullptr, &host_) == 0 && host_.sa_handler == SIG_DFL &&
                 (host_.sa_flags & SA_SIGINFO) == 0 && ::sigaction(SIGPIPE, &sa, nullptr) == 0;
  }
  ~PipeGuard() {
    if (installed_) ::sigaction(SIGPIPE, &host_, nullptr);
  }
  PipeGuard(const PipeGuard&) = delete;
  PipeGuard& operator=(const PipeGuard&) = delete;

private:
  bool installed_ = false;
  struct sigaction host_ {};
};

} // namespace stackup::cli::detail

#endif // STACKUP_DETAIL_CLI_TERMINAL_HPP
