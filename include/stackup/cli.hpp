// stackup — cli::run: ZenML's command line (`stack up`, `stack down --force`,
// `orchestrator up`, `orchestrator logs`, ...) for any Stack, in one call.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/format.hpp>
#include <stackup/options.hpp>
#include <stackup/stack_lock.hpp>
#include <stackup/stack_view.hpp>

#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <ostream>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stackup::cli {

/// When to decorate output with colour and symbols.
enum class Color {
  automatic, ///< only when the stream is a terminal (std::cout / std::cerr) and NO_COLOR is unset
  always,    ///< always (ANSI colours, Unicode symbols)
  never,     ///< plain ASCII
};

/// How `run` presents itself. Every member is optional.
struct Options {
  /// Program name in usage and messages; empty: the base name of argv[0].
  std::string_view program{};
  /// The host program's own options, shown in the usage line before the
  /// command (e.g. "[--state-dir DIR]"); the host parses them itself.
  std::string_view host_synopsis{};
  /// Lines describing the host's own options, appended to `--help`.
  std::string_view host_help{};
  /// Colour and symbols (default: on a terminal only).
  Color color = Color::automatic;
  /// The stack file to lock (a StackLock) for each command, so that commands on
  /// the same stack from several processes take turns: exclusive for up and down,
  /// shared for status and logs, none for `logs --follow`; held for that one
  /// command. Empty (the default): no lock.
  std::string_view lock_file{};
};

/// Exit status: the command did what was asked (also when there was nothing to do).
inline constexpr int exit_success = 0;
/// Exit status: an action failed (the error, its causes and the rollback are printed).
inline constexpr int exit_failure = 1;
/// Exit status: the command line is wrong (unknown role, verb or option, ...).
inline constexpr int exit_usage = 2;

namespace detail {

enum class Verb { up, down, status, logs };

struct Command {
  bool help = false;
  bool whole_stack = true;
  std::size_t index = 0; // component index (template-argument order) when !whole_stack
  Verb verb = Verb::status;
  bool force = false;
  bool parallel = false;
  bool rollback = true;
  bool json = false;   // status: JSON instead of the table
  bool follow = false; // logs: keep printing what is appended
  std::optional<std::size_t> tail;
};

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

/// Writes the last `n` lines of `path` (all of it when `n` is empty) to `out`,
/// reading backwards from the end so a large log costs only what is printed.
/// Returns the offset it read up to.
inline std::uintmax_t copy_tail(const std::filesystem::path& path, std::optional<std::size_t> n, std::ostream& out) {
  // Only a regular file, not through a symlink: a FIFO in its place would block forever.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec)))
    throw Error("cannot show " + path.string() + ": it is not a regular file (a symlink, a FIFO or a device?): remove it");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  char buf[1 << 16];
  std::uintmax_t end = 0;
  if (!n) {
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      out.write(buf, in.gcount());
      end += static_cast<std::uintmax_t>(in.gcount());
    }
    return end;
  }
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (*n == 0) return static_cast<std::uintmax_t>(size);
  std::streamoff start = 0, pos = size;
  std::size_t newlines = 0;
  bool found = false;
  while (pos > 0 && !found) {
    const std::streamoff chunk = std::min<std::streamoff>(pos, static_cast<std::streamoff>(sizeof buf));
    pos -= chunk;
    in.seekg(pos);
    in.read(buf, chunk);
    for (std::streamoff i = chunk; i-- > 0;) {
      if (buf[i] != '\n' || pos + i == size - 1) continue; // a final newline ends the last line
      if (++newlines == *n) {
        start = pos + i + 1;
        found = true;
        break;
      }
    }
  }
  in.clear();
  in.seekg(start);
  end = static_cast<std::uintmax_t>(start);
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.write(buf, in.gcount());
    end += static_cast<std::uintmax_t>(in.gcount());
  }
  return end;
}

/// Writes what is appended to `path` after `offset` to `out` until `stop` is
/// requested or `out` fails, as `tail -F` does: a log that does not exist yet is
/// waited for, and one that is replaced or truncated (the component provisioned
/// anew) is read again from its start. The log being read is held open, so a new
/// one cannot take its inode number and pass for it.
inline void follow(const std::filesystem::path& path, std::uintmax_t offset, std::ostream& out,
                   const std::stop_token& stop) {
  // O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO put in the log's place is not read.
  const auto open_log = [&path]() -> int {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct ::stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
      ::close(fd);
      return -1;
    }
    return fd;
  };
  struct Held {
    int fd = -1;
    ~Held() {
      if (fd >= 0) ::close(fd);
    }
  } log;
  log.fd = open_log(); // the file the caller read up to `offset`
  if (log.fd < 0) offset = 0;
  char buf[1 << 16];
  while (!stop.stop_requested() && out) {
    if (log.fd >= 0) {
      struct ::stat st {};
      if (::fstat(log.fd, &st) == 0 && static_cast<std::uintmax_t>(st.st_size) < offset) offset = 0; // truncated
      ssize_t got = 0;
      while ((got = ::pread(log.fd, buf, sizeof buf, static_cast<off_t>(offset))) > 0 && out) {
        out.write(buf, got);
        offset += static_cast<std::uintmax_t>(got);
      }
      out.flush();
    }
    // Replaced (or created): once what the old one held is written, the new one from its start.
    const int now = open_log();
    struct ::stat a {}, b {};
    if (now >= 0 && (log.fd < 0 || ::fstat(now, &a) != 0 || ::fstat(log.fd, &b) != 0 || a.st_ino != b.st_ino ||
                     a.st_dev != b.st_dev)) {
      if (log.fd >= 0) ::close(log.fd);
      log.fd = now;
      offset = 0;
      continue;
    }
    if (now >= 0) ::close(now);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

/// What the command line does to a stack, through its public operations: the
/// kind of stack is erased here (one pointer per operation), so that the Runner
/// is compiled once, whatever the stack.
struct Front {
  void* stack;
  void (*up)(void*, const UpOptions&);
  void (*down)(void*, const DownOptions&);
  void (*up_one)(void*, std::string_view, const UpOptions&);
  void (*down_one)(void*, std::string_view, const DownOptions&);
  Observer (*on_event)(void*, Observer);
};
template <class S> void up_of(void* s, const UpOptions& o) { static_cast<S*>(s)->up(o); }
template <class S> void down_of(void* s, const DownOptions& o) { static_cast<S*>(s)->down(o); }
template <class S> void up_one_of(void* s, std::string_view role, const UpOptions& o) { static_cast<S*>(s)->up(role, o); }
template <class S> void down_one_of(void* s, std::string_view role, const DownOptions& o) {
  static_cast<S*>(s)->down(role, o);
}
template <class S> Observer on_event_of(void* s, Observer o) { return static_cast<S*>(s)->on_event(std::move(o)); }
template <class S> Front front_of(S& s) noexcept {
  return {&s, &up_of<S>, &down_of<S>, &up_one_of<S>, &down_one_of<S>, &on_event_of<S>};
}

// ---- Ctrl-C and SIGTERM while an operation runs ------------------------------------

// What the signal handler may touch: plain data, set before it is installed.
struct SignalState {
  static inline volatile std::sig_atomic_t caught = 0; // the first signal, 0 while none
  static inline int wake = -1;                         // write end of the pipe the watcher reads
  static inline char again[512]{};                     // said on a second signal, before exiting
  static inline std::size_t again_size = 0;
};

// First signal: wake the watcher (which asks the operation to stop). Second: say
// what state things may be in and end the process at once. Async-signal-safe.
inline void on_signal(int sig) {
  if (SignalState::caught == 0) {
    SignalState::caught = sig;
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(SignalState::wake, &byte, 1);
    return;
  }
  [[maybe_unused]] const auto n = ::write(STDERR_FILENO, SignalState::again, SignalState::again_size);
  ::_exit(128 + SignalState::caught);
}

/// While it lives, SIGINT and SIGTERM ask the operation to stop (through
/// `token()`); a second one ends the process at once. The host's handlers are
/// put back when it dies. Without a pipe (no descriptors left) it does nothing.
class Interrupts {
public:
  explicit Interrupts(std::string_view again) {
    if (::pipe2(fds_, O_CLOEXEC) != 0) {
      fds_[0] = fds_[1] = -1;
      return;
    }
    SignalState::caught = 0;
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
      char byte = 0;
      ssize_t n = 0;
      while ((n = ::read(fds_[0], &byte, 1)) < 0 && errno == EINTR) {
      }
      if (n == 1) source_.request_stop();
    });
  }
  ~Interrupts() {
    if (fds_[0] < 0) return;
    if (installed_int_) ::sigaction(SIGINT, &host_int_, nullptr);
    if (installed_term_) ::sigaction(SIGTERM, &host_term_, nullptr);
    SignalState::wake = -1;
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

/// Parses, runs and reports one command against a stack, which it reads through
/// its StackView and acts on through its public operations (a Front): compiled
/// once, whatever the kind of stack. A template (of Front) only so that a file
/// compiles it where it runs a command line, not wherever it includes the header.
template <class StackFront> class Runner {
  using Clock = std::chrono::steady_clock;

public:
  Runner(StackView stack, const StackFront& front, std::ostream& out, std::ostream& err, const Options& options,
         std::string_view program)
      : stack_(stack), front_(front), size(stack.size()), out_(out), err_(err), options_(options), program_(program),
        fancy_out_(decorate(out, options.color)), fancy_err_(decorate(err, options.color)) {}

  int run(std::span<const std::string_view> args) {
    Command cmd;
    if (auto problem = parse(args, cmd)) return usage_error(*problem);
    if (cmd.help) {
      out_ << help();
      return exit_success;
    }
    if (cmd.verb == Verb::status) return status(cmd);
    if (cmd.verb == Verb::logs) return logs(cmd);
    return operate(cmd);
  }

  // Last resort for anything that escaped (e.g. bad_alloc while reporting).
  int crashed() noexcept {
    try {
      err_ << program_ << ": internal error: " << stackup::detail::current_message() << '\n';
    } catch (...) {
    }
    return exit_failure;
  }

private:
  // ---- parsing --------------------------------------------------------------------

  [[nodiscard]] std::string roles_list() const {
    std::string s;
    for (std::size_t i = 0; i < size; ++i) s += fmt::format("{}{}", i ? ", " : "", stack_.roles()[i]);
    return s;
  }
  [[nodiscard]] bool keeps_log(std::size_t k) const { return !stack_.log_file(stack_.roles()[k]).empty(); }
  [[nodiscard]] std::string logging_roles() const {
    std::string s;
    for (std::size_t i = 0; i < size; ++i)
      if (keeps_log(i)) s += fmt::format("{}{}", s.empty() ? "" : ", ", stack_.roles()[i]);
    return s.empty() ? "none" : s;
  }

  // Returns the problem with the command line, or nothing when `cmd` is complete.
  std::optional<std::string> parse(std::span<const std::string_view> args, Command& cmd) const {
    // `--help` anywhere wins, so `<anything> --help` always shows the help.
    cmd.help = std::ranges::any_of(args, [](std::string_view a) { return a == "--help" || a == "-h"; }) ||
               (!args.empty() && args[0] == "help");
    if (cmd.help) return std::nullopt;
    if (args.empty()) return "missing command";
    const std::string_view target = args[0];
    if (!target.empty() && target[0] == '-') return fmt::format("unknown option '{}'", target);
    if (target == "stack") {
      cmd.whole_stack = true;
    } else {
      cmd.whole_stack = false;
      cmd.index = stack_.find(target);
      if (cmd.index == size)
        return fmt::format("unknown component role '{}'; valid roles: {} (or 'stack' for all of them)", target,
                           roles_list());
    }
    const std::string_view verbs = cmd.whole_stack ? "up, down, status" : "up, down, status, logs";
    if (args.size() < 2) return fmt::format("missing command after '{}'; expected one of: {}", target, verbs);
    const std::string_view verb = args[1];
    if (verb == "up") cmd.verb = Verb::up;
    else if (verb == "down") cmd.verb = Verb::down;
    else if (verb == "status") cmd.verb = Verb::status;
    else if (verb == "logs" && !cmd.whole_stack) cmd.verb = Verb::logs;
    else if (verb == "logs")
      return fmt::format("'stack logs' is not a command: logs belong to one component; try '<role> logs' with one of: {}",
                         logging_roles());
    else return fmt::format("unknown command '{}' for '{}'; expected one of: {}", verb, target, verbs);

    const std::string where = fmt::format("{} {}", target, verb);
    std::string_view valid;
    switch (cmd.verb) {
    case Verb::up: valid = "--parallel (-p), --no-rollback"; break;
    case Verb::down: valid = "--force (-f), --parallel (-p)"; break;
    case Verb::status: valid = "--json"; break;
    case Verb::logs: valid = "--tail N (-n N), --follow"; break;
    }
    for (std::size_t i = 2; i < args.size(); ++i) {
      const std::string_view a = args[i];
      if (cmd.verb == Verb::logs && (a == "--tail" || a == "-n" || a.starts_with("--tail="))) {
        std::string_view value;
        if (a.starts_with("--tail=")) value = a.substr(7);
        else if (i + 1 < args.size()) value = args[++i];
        else return fmt::format("option '{}' needs a number of lines, e.g. '{} 20'", a, a);
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec == std::errc::result_out_of_range && end == value.data() + value.size())
          return fmt::format("option '--tail' got '{}' lines: too large (at most {})", value, std::size_t(-1));
        if (value.empty() || ec != std::errc{} || end != value.data() + value.size())
          return fmt::format("option '--tail' needs a whole number of lines (0 or more), not '{}'", value);
        cmd.tail = n;
        continue;
      }
      if (a.size() >= 2 && a[0] == '-' && a[1] != '-') { // short options, clustered: -fp
        for (const char c : a.substr(1)) {
          if (c == 'p' && cmd.verb != Verb::status && cmd.verb != Verb::logs) cmd.parallel = true;
          else if (c == 'f' && cmd.verb == Verb::down) cmd.force = true;
          else return fmt::format("unknown option '-{}' for '{}'; valid options: {}", c, where, valid);
        }
        continue;
      }
      if (a == "--parallel" && (cmd.verb == Verb::up || cmd.verb == Verb::down)) cmd.parallel = true;
      else if (a == "--force" && cmd.verb == Verb::down) cmd.force = true;
      else if (a == "--no-rollback" && cmd.verb == Verb::up) cmd.rollback = false;
      else if (a == "--json" && cmd.verb == Verb::status) cmd.json = true;
      else if (a == "--follow" && cmd.verb == Verb::logs) cmd.follow = true;
      else if (!a.empty() && a[0] == '-')
        return fmt::format("unknown option '{}' for '{}'; valid options: {}", a, where, valid);
      else return fmt::format("unexpected argument '{}' after '{}'", a, where);
    }
    if (cmd.verb == Verb::logs) {
      if (!keeps_log(cmd.index))
        return fmt::format("{} ({}) keeps no log; components with a log: {}", describe(cmd.index),
                           flavor(cmd.index), logging_roles());
    }
    return std::nullopt;
  }

  [[nodiscard]] std::string synopsis() const {
    std::string prefix = std::string(program_);
    if (!options_.host_synopsis.empty()) prefix += fmt::format(" {}", options_.host_synopsis);
    return fmt::format("usage: {} <stack|role> <command> [options]\n"
                       "\n"
                       "  stack up [-p] [--no-rollback]       provision and start every component\n"
                       "  stack down [-f] [-p]                stop every component; with --force also deprovision\n"
                       "  stack status [--json]               show every component's state (changes nothing)\n"
                       "  <role> up [-p] [--no-rollback]      bring one component up, its dependencies first\n"
                       "  <role> down [-f] [-p]               bring one component down, its dependents first\n"
                       "  <role> status [--json]              show one component's state\n"
                       "  <role> logs [--tail N] [--follow]   print the component's log, where it keeps one\n"
                       "  --help                              show the roles and options\n",
                       prefix);
  }

  [[nodiscard]] std::string help() const {
    std::string s = synopsis();
    s += fmt::format("\nroles of stack '{}':\n", stack_.name());
    std::size_t width = 0;
    for (auto r : stack_.roles()) width = std::max(width, r.size());
    std::size_t fwidth = 0;
    for (std::size_t i = 0; i < size; ++i) fwidth = std::max(fwidth, flavor(i).size());
    for (std::size_t i = 0; i < size; ++i) {
      std::string line = fmt::format("  {:<{}}  {:<{}}", stack_.roles()[i], width, flavor(i), fwidth);
      std::string deps;
      for (const std::string_view d : stack_.dependencies(stack_.roles()[i]))
        deps += fmt::format("{}{}", deps.empty() ? "" : ", ", d);
      if (!deps.empty()) line += fmt::format("  needs {}", deps);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      s += line + '\n';
    }
    s += "\noptions:\n"
         "  -f, --force      down: also deprovision (remove what the components created)\n"
         "  -p, --parallel   up/down: act on independent components at the same time\n"
         "  --no-rollback    up: when an action fails, leave what was done in place\n"
         "  --tail N         logs: print only the last N lines\n"
         "  --follow         logs: keep printing what is appended, until Ctrl-C\n"
         "  --json           status: a JSON array (role, name, flavor, state, detail)\n"
         "  -h, --help       show this help\n";
    if (!options_.host_help.empty()) {
      s += options_.host_help;
      if (s.back() != '\n') s += '\n';
    }
    s += "\nexit status: 0 done (also when there was nothing to do), 1 an action failed, 2 usage error\n";
    return s;
  }

  int usage_error(const std::string& problem) {
    err_ << label("error", fmt::terminal_color::red) << ": " << problem << "\n\n"
         << synopsis() << "\nrun '" << program_ << " --help' for the roles and options\n";
    return exit_usage;
  }

  // ---- helpers over the components ------------------------------------------------

  [[nodiscard]] std::string_view role(std::size_t k) const { return stack_.roles()[k]; }
  [[nodiscard]] std::string_view name(std::size_t k) const { return stack_.component_name(role(k)); }
  [[nodiscard]] std::string_view flavor(std::size_t k) const { return stack_.flavor(role(k)); }
  // A component's state; nothing when its queries throw (the operation that
  // follows will report the error itself).
  [[nodiscard]] std::optional<State> state_at(std::string_view r) const noexcept {
    try {
      return stack_.state(r);
    } catch (...) {
      return std::nullopt;
    }
  }
  [[nodiscard]] std::string describe(std::size_t k) const { return fmt::format("{} '{}'", role(k), name(k)); }
  // The roles of `plan` other than component k that `keep` selects, listed; `count` of them.
  template <class Keep>
  [[nodiscard]] std::string listed(const RoleRange& plan, std::size_t k, Keep keep, std::size_t& count) const {
    std::string s;
    count = 0;
    for (const std::string_view r : plan)
      if (r != role(k) && keep(r)) s += fmt::format("{}{}", count++ ? ", " : "", r);
    return s;
  }

  [[nodiscard]] std::string label(std::string_view text, fmt::terminal_color color) const {
    return fancy_err_ ? fmt::format("{}", fmt::styled(text, fmt::fg(color) | fmt::emphasis::bold)) : std::string(text);
  }
  void note(std::string_view text) {
    if (fancy_out_) out_ << fmt::format("{} {}\n", fmt::styled("•", fmt::fg(fmt::terminal_color::cyan)), text);
    else out_ << "* " << text << '\n';
    out_.flush();
  }

  // ---- progress -----------------------------------------------------------------

  struct Tally {
    std::size_t actions = 0, rolled_back = 0;
  };

  // Puts the host's own observer back (the one on_event replaced), since the
  // command line's refers to this Runner.
  struct ObserverGuard {
    const StackFront& front;
    Observer host;
    ~ObserverGuard() { front.on_event(front.stack, std::move(host)); }
  };
  // The observer that prints one line per event, as it comes (a skipped action's
  // line says, in the engine's words, what follows and what the user can do).
  [[nodiscard]] Observer observer(Tally& tally) {
    return [this, &tally](const Event& e) {
      try {
        if (e.outcome == Outcome::started) ++tally.actions;
        if (e.outcome == Outcome::rolled_back) ++tally.rolled_back;
        out_ << progress_line(e, fancy_out_) << '\n';
        out_.flush();
      } catch (...) {
        // Printing must never turn into a failed action.
      }
    };
  }

  // ---- commands -----------------------------------------------------------------

  [[nodiscard]] std::string command_name(const Command& cmd) const {
    const std::string_view verb = cmd.verb == Verb::up ? "up" : cmd.verb == Verb::down ? "down"
                                : cmd.verb == Verb::status ? "status" : "logs";
    return fmt::format("{} {}{}", cmd.whole_stack ? "stack" : role(cmd.index), verb,
                       cmd.force ? " --force" : "");
  }

  // Takes the stack's lock when the host named a file (Options::lock_file). A
  // stop on `stop` (or, without one, Ctrl-C or SIGTERM) while waiting ends the
  // command having done nothing. Returns the exit status when the lock was not
  // taken (the reason printed), nothing when it is held or there is none.
  std::optional<int> take_lock(StackLock& lock, LockMode mode, const Command& cmd, const std::stop_token* stop) {
    if (options_.lock_file.empty()) return std::nullopt;
    try {
      lock = StackLock(std::filesystem::path(options_.lock_file), mode);
      if (lock.try_lock()) return std::nullopt;
      err_ << fmt::format("{}: waiting for another command on this stack to finish (it holds the lock on {})\n", program_,
                          lock.file());
      err_.flush();
      if (stop != nullptr) {
        lock.lock(stop);
      } else {
        const Interrupts interrupts(fmt::format("\n{}: interrupted again: stopped at once; nothing was done\n", program_));
        const std::stop_token token = interrupts.token();
        lock.lock(&token);
      }
      return std::nullopt;
    } catch (const InterruptedError&) {
      const int sig = Interrupts::signal();
      err_ << label("error", fmt::terminal_color::red) << ": "
           << fmt::format("{} interrupted ({}) while it waited for another command on this stack: nothing was done\n",
                          command_name(cmd), sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return 128 + (sig ? sig : SIGINT);
    } catch (...) {
      return report(fmt::format("{}: cannot take the stack's lock", command_name(cmd)), std::current_exception(), cmd, {});
    }
  }

  int status(const Command& cmd) {
    StackLock lock;
    if (auto code = take_lock(lock, LockMode::shared, cmd, nullptr)) return *code;
    try {
      const std::vector<ComponentStatus> rows = stack_.status();
      std::span<const ComponentStatus> shown(rows);
      if (!cmd.whole_stack) shown = shown.subspan(cmd.index, 1);
      if (cmd.json) {
        out_ << status_json(shown);
        return exit_success;
      }
      out_ << status_table(shown, fancy_out_);
      if (cmd.whole_stack) {
        std::size_t running = 0, provisioned = 0;
        for (const auto& r : rows) {
          running += r.state == State::running;
          provisioned += r.state != State::deprovisioned;
        }
        out_ << fmt::format("stack '{}': {} of {} running, {} provisioned\n", stack_.name(), running, size, provisioned);
      }
      return exit_success;
    } catch (...) {
      return report("status failed", std::current_exception(), cmd, {});
    }
  }

  int logs(const Command& cmd) {
    // Following lasts as long as the user likes: it must not hold up other commands.
    StackLock lock;
    if (!cmd.follow)
      if (auto code = take_lock(lock, LockMode::shared, cmd, nullptr)) return *code;
    try {
      const std::filesystem::path path = stack_.log_file(role(cmd.index));
      std::error_code ec;
      const bool exists = std::filesystem::exists(path, ec);
      if (!exists)
        err_ << fmt::format("{}: {} has no log yet: {} does not exist (it has not been started since it was "
                            "provisioned, or it is deprovisioned){}\n",
                            program_, describe(cmd.index), path.string(), cmd.follow ? "; waiting for it" : "");
      const std::uintmax_t end = exists ? copy_tail(path, cmd.tail, out_) : 0;
      out_.flush();
      if (cmd.follow) {
        // Following ends with Ctrl-C or SIGTERM: the way it is meant to end, so exit 0.
        const Interrupts interrupts(fmt::format("\n{}: interrupted again: stopped at once\n", program_));
        follow(path, end, out_, interrupts.token());
        if (!out_) throw Error("cannot write the log: the output is closed (what read it, a pipe or a terminal, has gone)");
      }
      return exit_success;
    } catch (...) {
      return report(fmt::format("cannot read the log of {}", describe(cmd.index)), std::current_exception(), cmd, {});
    }
  }

  int operate(const Command& cmd) {
    const bool up = cmd.verb == Verb::up;
    // A closed output must not stop the operation half-way: its writes fail
    // instead, and the exit status says so once it is done.
    const PipeGuard pipe_guard;
    // Ctrl-C (or SIGTERM) stops the operation as a failure would: up rolls back,
    // down finishes the component in flight; a second one ends the process at once.
    const Interrupts interrupts(fmt::format(
        "\n{}: interrupted again: stopped at once; the stack may be partly {}: '{} stack down --force' cleans it up\n",
        program_, up ? "up" : "down", program_));
    const std::stop_token stop = interrupts.token();
    // One transition of the stack at a time: the states below are read holding it.
    StackLock lock;
    if (auto code = take_lock(lock, LockMode::exclusive, cmd, &stop)) return *code;
    Tally tally;
    const ObserverGuard guard{front_, front_.on_event(front_.stack, observer(tally))};
    if (!cmd.whole_stack) {
      std::size_t n = 0;
      const std::string_view target = role(cmd.index);
      // Name the other components this command will act on, before it does: the
      // stack's own plan, less those with nothing to do.
      if (up) {
        const std::string list = listed(stack_.plan_up(target), cmd.index,
                                        [&](std::string_view r) { return state_at(r) != State::running; }, n);
        if (n) note(fmt::format("{} needs {}: {} first", target, list, n == 1 ? "it comes up" : "they come up"));
      } else {
        const std::string list = listed(stack_.plan_down(target), cmd.index, [&](std::string_view r) {
          const auto now = state_at(r); // those with something to stop (or, forced, to remove)
          return !now || (cmd.force ? *now != State::deprovisioned : *now == State::running);
        }, n);
        if (n) note(fmt::format("{} {} on {}: {} first", list, n == 1 ? "depends" : "depend", target,
                                n == 1 ? "it goes down" : "they go down"));
      }
    }
    const auto t0 = Clock::now();
    try {
      const UpOptions up_options{.rollback = cmd.rollback, .parallel = cmd.parallel, .stop = &stop};
      const DownOptions down_options{.force = cmd.force, .parallel = cmd.parallel, .stop = &stop};
      void* const stack = front_.stack;
      if (cmd.whole_stack && up) front_.up(stack, up_options);
      else if (cmd.whole_stack) front_.down(stack, down_options);
      else if (up) front_.up_one(stack, role(cmd.index), up_options);
      else front_.down_one(stack, role(cmd.index), down_options);
    } catch (...) {
      const std::string what = command_name(cmd);
      const int sig = Interrupts::signal();
      if (sig == 0) {
        report(what + " failed", std::current_exception(), cmd, tally);
        return output_failed(exit_failure);
      }
      report(fmt::format("{} interrupted ({})", what, sig == SIGINT ? "SIGINT" : "SIGTERM"), std::current_exception(), cmd,
             tally);
      return output_failed(128 + sig);
    }
    const std::string subject = cmd.whole_stack ? fmt::format("stack '{}'", stack_.name()) : describe(cmd.index);
    const std::string took = seconds(Clock::now() - t0);
    std::string summary;
    if (up && tally.actions == 0) summary = fmt::format("{} is already running: nothing to do", subject);
    else if (up) summary = fmt::format("{} is up  {}", subject, took);
    else if (tally.actions == 0) summary = fmt::format("{}: nothing to {}", subject, cmd.force ? "remove" : "stop");
    else summary = fmt::format("{} {}  {}", subject, cmd.force ? "is down and deprovisioned" : "is down", took);
    if (fancy_out_) out_ << fmt::format("{}\n", fmt::styled(summary, fmt::emphasis::bold));
    else out_ << summary << '\n';
    return output_failed(exit_success);
  }

  // The exit status of an operation that ended with `code`: a failure when what
  // it wrote did not all get out (a closed pipe), said on whichever stream works.
  int output_failed(int code) {
    out_.flush();
    err_.flush();
    if (out_ && err_) return code;
    const std::string_view which = !out_ && !err_ ? "its output and its errors" : !out_ ? "its output" : "its errors";
    const std::string message = fmt::format(
        "{}: the command finished, but {} could not all be written (the pipe or terminal was closed); "
        "'{} stack status' shows the stack\n", program_, which, program_);
    if (err_) err_ << message << std::flush;
    else if (out_) out_ << message << std::flush;
    return code == exit_success ? exit_failure : code;
  }

  // Prints a failure: the error, each nested cause, and what the rollback did.
  int report(std::string_view what, std::exception_ptr error, const Command& cmd, const Tally& tally) {
    err_ << label("error", fmt::terminal_color::red) << ": " << what << '\n';
    try {
      std::rethrow_exception(error);
    } catch (const TransitionError& e) {
      print_chain(e, 0);
      print_failures(e, cmd, tally);
    } catch (const std::exception& e) {
      print_chain(e, 0);
    } catch (...) {
      err_ << "  unknown exception (not derived from std::exception)\n";
    }
    return exit_failure;
  }

  // Prints `e` and its nested causes, one level of indent per cause. A cause
  // whose message repeats the level above (an action's TransitionError carries
  // its cause's own message) is not printed again; its causes still are.
  void print_chain(const std::exception& e, int depth, std::string_view above = {}) {
    const std::string indent(static_cast<std::size_t>(2 + 2 * depth), ' ');
    std::string text = e.what();
    const bool repeated = depth > 0 && text == above;
    if (!repeated) {
      std::string shown = text;
      for (std::size_t at = 0; (at = shown.find('\n', at)) != std::string::npos; at += 1 + indent.size())
        shown.insert(at + 1, indent); // keep a multi-line message (a log tail) inside its level
      err_ << indent << (depth ? "caused by: " : "") << shown << '\n';
    }
    // A nested_exception made outside a catch holds no cause; rethrow_if_nested
    // would call std::terminate on it, so look before rethrowing.
    const auto* nested = dynamic_cast<const std::nested_exception*>(&e);
    if (nested == nullptr || !nested->nested_ptr() || depth >= 16) return;
    const int next = repeated ? depth : depth + 1;
    try {
      std::rethrow_exception(nested->nested_ptr());
    } catch (const std::exception& inner) {
      print_chain(inner, next, text);
    } catch (...) {
      err_ << std::string(static_cast<std::size_t>(2 + 2 * next), ' ')
           << "caused by: unknown exception (not derived from std::exception)\n";
    }
  }

  void print_failures(const TransitionError& e, const Command& cmd, const Tally& tally) {
    const auto& failures = e.failures();
    if (cmd.verb == Verb::up) {
      if (!cmd.rollback) {
        err_ << "rollback: off (--no-rollback): what this command did is left in place; "
             << "'" << program_ << " stack status' shows it\n";
        return;
      }
      const auto undone = std::count_if(failures.begin(), failures.end(), [](const auto& f) { return f.rollback; });
      if (undone == 0) {
        if (tally.rolled_back == 0) err_ << "rollback: this command had changed nothing, so nothing was undone\n";
        else
          err_ << fmt::format("rollback: undid the {} action{} this command had done; the stack is as it was before\n",
                              tally.rolled_back, tally.rolled_back == 1 ? "" : "s");
        return;
      }
      err_ << fmt::format("rollback: undid {} action{}, but could not undo:\n", tally.rolled_back,
                          tally.rolled_back == 1 ? "" : "s");
      for (const auto& f : failures)
        if (f.rollback) err_ << fmt::format("  - {} {}: {}\n", f.role, f.transition, f.message);
      err_ << "'" << program_ << " stack status' shows what is left\n";
      return;
    }
    if (failures.size() > 1) {
      err_ << fmt::format("{} components failed (every other component was still tried):\n", failures.size());
      for (const auto& f : failures) err_ << fmt::format("  - {} {}: {}\n", f.role, f.transition, f.message);
    }
  }

  StackView stack_; // the stack, read
  const StackFront& front_; // the stack, acted on
  std::size_t size;
  std::ostream& out_;
  std::ostream& err_;
  const Options& options_;
  std::string_view program_;
  bool fancy_out_;
  bool fancy_err_;
};

template <class StackFront>
int run_words(StackView stack, const StackFront& front, std::span<const std::string_view> args, std::ostream& out,
              std::ostream& err, const Options& options, std::string_view program) noexcept {
  try {
    Runner<StackFront> runner(stack, front, out, err, options, program.empty() ? std::string_view("stack") : program);
    try {
      return runner.run(args);
    } catch (...) {
      return runner.crashed();
    }
  } catch (...) {
    return exit_failure;
  }
}

template <class StackFront>
int run_main(StackView stack, const StackFront& front, int argc, char** argv, std::ostream& out, std::ostream& err,
             const Options& options) noexcept {
  try {
    std::vector<std::string_view> words;
    std::string_view program = options.program;
    if (argv != nullptr && argc > 0) {
      if (program.empty() && argv[0] != nullptr) program = base_name(argv[0]);
      for (int i = 1; i < argc && argv[i] != nullptr; ++i) words.emplace_back(argv[i]);
    }
    return run_words(stack, front, words, out, err, options, program);
  } catch (...) {
    return exit_failure;
  }
}

/// Either kind of stack (Stack<Cs...> or DynamicStack): what the command line
/// reads and does, all public.
template <class S> concept runnable = requires(S& s, std::string_view role) {
  { std::as_const(s).view() } -> std::same_as<StackView>;
  { s.on_event(Observer()) } -> std::same_as<Observer>;
  s.up(UpOptions{});
  s.down(DownOptions{});
  s.up(role, UpOptions{});
  s.down(role, DownOptions{});
};

} // namespace detail

/// Runs one command line against `stack` (a Stack<Cs...> or a DynamicStack): the
/// words after the program name (`{"stack", "down", "--force"}`), writing
/// progress and results to `out`, errors to `err`. Returns 0 done, 1 an action
/// failed, 2 usage error; never throws. While it runs it is the stack's
/// observer; the host's own observer is back when it returns.
template <detail::runnable S>
int run(S& stack, std::span<const std::string_view> args, std::ostream& out, std::ostream& err,
        const Options& options = {}) noexcept {
  return detail::run_words(std::as_const(stack).view(), detail::front_of(stack), args, out, err, options, options.program);
}

/// `main`'s arguments, written to `out` and `err` (for tests and embedding).
template <detail::runnable S>
int run(S& stack, int argc, char** argv, std::ostream& out, std::ostream& err, const Options& options = {}) noexcept {
  return detail::run_main(std::as_const(stack).view(), detail::front_of(stack), argc, argv, out, err, options);
}

/// ZenML's command line for `stack`, in one call from `main`:
/// `return stackup::cli::run(stack, argc, argv);` Grammar: `stack up`,
/// `stack down [--force]`, `stack status`, `<role> up|down|status|logs`, `--help`.
/// Progress goes to std::cout, errors to std::cerr.
template <detail::runnable S> int run(S& stack, int argc, char** argv, const Options& options = {}) noexcept {
  return run(stack, argc, argv, std::cout, std::cerr, options);
}

} // namespace stackup::cli
