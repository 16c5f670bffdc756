// stackup — cli::run: ZenML's command line (`stack up`, `stack down --force`,
// `orchestrator up`, `orchestrator logs`, ...) for any Stack, in one call.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/plan.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/format.hpp>
#include <stackup/stack.hpp>

#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

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
};

/// Exit status: the command did what was asked (also when there was nothing to do).
inline constexpr int exit_success = 0;
/// Exit status: an action failed (the error, its causes and the rollback are printed).
inline constexpr int exit_failure = 1;
/// Exit status: the command line is wrong (unknown role, verb or option, ...).
inline constexpr int exit_usage = 2;

namespace detail {

/// A component that keeps a log file (e.g. LocalDaemon): `<role> logs` prints it.
template <class T> concept has_log_file = requires(const T& c) {
  { c.log_file() } -> std::convertible_to<std::filesystem::path>;
};

enum class Verb { up, down, status, logs };

struct Command {
  bool help = false;
  bool whole_stack = true;
  std::size_t index = 0; // component index (template-argument order) when !whole_stack
  Verb verb = Verb::status;
  bool force = false;
  bool parallel = false;
  bool rollback = true;
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
inline void copy_tail(const std::filesystem::path& path, std::optional<std::size_t> n, std::ostream& out) {
  // Only a regular file, not through a symlink: a FIFO in its place would block forever.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec)))
    throw Error("cannot show " + path.string() + ": it is not a regular file (a symlink, a FIFO or a device?): remove it");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  if (!n) {
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) out.write(buf, in.gcount());
    return;
  }
  if (*n == 0) return;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  std::streamoff start = 0, pos = size;
  std::size_t newlines = 0;
  bool found = false;
  char buf[1 << 16];
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
  while (in.read(buf, sizeof buf) || in.gcount() > 0) out.write(buf, in.gcount());
}

/// Parses, runs and reports one command against a Stack.
template <class... Cs> class Runner {
  using S = Stack<Cs...>;
  using Plan = stackup::detail::Plan<Cs...>;
  static constexpr std::size_t size = sizeof...(Cs);
  using Clock = std::chrono::steady_clock;

public:
  Runner(S& stack, std::ostream& out, std::ostream& err, const Options& options, std::string_view program)
      : stack_(stack), out_(out), err_(err), options_(options), program_(program),
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
    for (std::size_t i = 0; i < size; ++i) s += fmt::format("{}{}", i ? ", " : "", S::roles[i]);
    return s;
  }
  [[nodiscard]] std::string logging_roles() const {
    std::string s;
    each_type([&]<std::size_t I, class C>() {
      if constexpr (has_log_file<C>) s += fmt::format("{}{}", s.empty() ? "" : ", ", S::roles[I]);
    });
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
      cmd.index = S::find(target);
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
    case Verb::status: valid = "none"; break;
    case Verb::logs: valid = "--tail N (-n N)"; break;
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
      else if (!a.empty() && a[0] == '-')
        return fmt::format("unknown option '{}' for '{}'; valid options: {}", a, where, valid);
      else return fmt::format("unexpected argument '{}' after '{}'", a, where);
    }
    if (cmd.verb == Verb::logs) {
      bool keeps_log = false;
      at_index(cmd.index, [&]<std::size_t I, class C>() { keeps_log = has_log_file<C>; });
      if (!keeps_log)
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
                       "  stack up [-p] [--no-rollback]   provision and start every component\n"
                       "  stack down [-f] [-p]            stop every component; with --force also deprovision\n"
                       "  stack status                    show every component's state (changes nothing)\n"
                       "  <role> up [-p] [--no-rollback]  bring one component up, its dependencies first\n"
                       "  <role> down [-f] [-p]           bring one component down, its dependents first\n"
                       "  <role> status                   show one component's state\n"
                       "  <role> logs [--tail N]          print the component's log, where it keeps one\n"
                       "  --help                          show the roles and options\n",
                       prefix);
  }

  [[nodiscard]] std::string help() const {
    std::string s = synopsis();
    s += fmt::format("\nroles of stack '{}':\n", stack_.name());
    std::size_t width = 0;
    for (auto r : S::roles) width = std::max(width, r.size());
    std::size_t fwidth = 0;
    each_type([&]<std::size_t I, class C>() { fwidth = std::max(fwidth, stackup::detail::flavor_of<C>().size()); });
    each_type([&]<std::size_t I, class C>() {
      std::string line = fmt::format("  {:<{}}  {:<{}}", S::roles[I], width, stackup::detail::flavor_of<C>(), fwidth);
      std::string deps;
      for (std::size_t d = 0; d < stackup::detail::dependency_count<C>(); ++d)
        deps += fmt::format("{}{}", d ? ", " : "", stackup::detail::dependency<C>(d));
      if (!deps.empty()) line += fmt::format("  needs {}", deps);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      s += line + '\n';
    });
    s += "\noptions:\n"
         "  -f, --force      down: also deprovision (remove what the components created)\n"
         "  -p, --parallel   up/down: act on independent components at the same time\n"
         "  --no-rollback    up: when an action fails, leave what was done in place\n"
         "  --tail N         logs: print only the last N lines\n"
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

  // ---- helpers over the component types -----------------------------------------

  template <class F> static void each_type(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I, std::tuple_element_t<I, std::tuple<Cs...>>>(), ...);
    }(std::make_index_sequence<size>{});
  }
  template <class F> static void at_index(std::size_t k, F&& f) {
    each_type([&]<std::size_t I, class C>() {
      if (I == k) f.template operator()<I, C>();
    });
  }
  [[nodiscard]] std::string_view name(std::size_t k) const {
    std::string_view n;
    at_index(k, [&]<std::size_t I, class C>() { n = stackup::detail::name_of(stack_.template get<C>()); });
    return n;
  }
  [[nodiscard]] std::string_view flavor(std::size_t k) const {
    std::string_view f;
    at_index(k, [&]<std::size_t I, class C>() { f = stackup::detail::flavor_of<C>(); });
    return f;
  }
  // Whether component k has a deprovision() (a Command may still refuse at run time).
  [[nodiscard]] static bool deprovisionable(std::size_t k) {
    bool result = false;
    at_index(k, [&]<std::size_t I, class C>() { result = Deprovisionable<C>; });
    return result;
  }
  // Component k's state; nothing when its queries throw (the operation that
  // follows will report the error itself).
  [[nodiscard]] std::optional<State> state_at(std::size_t k) const noexcept {
    std::optional<State> result;
    try {
      at_index(k, [&]<std::size_t I, class C>() { result = state_of(stack_.template get<C>()); });
    } catch (...) {
    }
    return result;
  }
  [[nodiscard]] std::string describe(std::size_t k) const { return fmt::format("{} '{}'", S::roles[k], name(k)); }
  // Roles flagged in `set`, in action order.
  static std::string listed(const std::array<bool, size>& set, std::size_t& count) {
    std::string s;
    count = 0;
    for (auto i : Plan::result.order)
      if (set[i]) s += fmt::format("{}{}", count++ ? ", " : "", S::roles[i]);
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

  // Sets the observer that prints one line per action start and end; the guard
  // removes it again, since it refers to this Runner.
  struct ObserverGuard {
    S& stack;
    ~ObserverGuard() { stack.on_event({}); }
  };
  void observe(const Command& cmd, Tally& tally) {
    const std::string_view dash = fancy_out_ ? "—" : "--";
    stack_.on_event([this, &tally, force = cmd.force, dash](const Event& e) {
      try {
        if (e.outcome == Outcome::started) ++tally.actions;
        if (e.outcome == Outcome::rolled_back) ++tally.rolled_back;
        if (e.outcome != Outcome::not_implemented) {
          out_ << progress_line(e, fancy_out_) << '\n';
        } else {
          // Say why in the command line's terms: what the user can do about it.
          Event said = e;
          const bool removable = deprovisionable(S::find(e.role));
          if (e.transition == Transition::suspend && removable)
            said.message = fmt::format("not implemented {} {}", dash,
                                       force ? "deprovision follows" : "use --force to deprovision");
          else if (e.transition == Transition::suspend)
            said.message = fmt::format("not implemented {} it keeps running", dash);
          else if (e.transition == Transition::deprovision)
            said.message = fmt::format("not implemented {} left in place", dash);
          else
            said.message = "not implemented";
          out_ << progress_line(said, fancy_out_) << '\n';
        }
        out_.flush();
      } catch (...) {
        // Printing must never turn into a failed action.
      }
    });
  }

  // ---- commands -----------------------------------------------------------------

  int status(const Command& cmd) {
    try {
      const auto rows = stack_.status();
      std::span<const ComponentStatus> shown(rows);
      if (!cmd.whole_stack) shown = shown.subspan(cmd.index, 1);
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
    std::filesystem::path path;
    at_index(cmd.index, [&]<std::size_t I, class C>() {
      if constexpr (has_log_file<C>) path = stack_.template get<C>().log_file();
    });
    try {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        err_ << fmt::format("{}: {} has no log yet: {} does not exist (it has not been started since it was "
                            "provisioned, or it is deprovisioned)\n",
                            program_, describe(cmd.index), path.string());
        return exit_success;
      }
      copy_tail(path, cmd.tail, out_);
      out_.flush();
      return exit_success;
    } catch (...) {
      return report(fmt::format("cannot read the log of {}", describe(cmd.index)), std::current_exception(), cmd, {});
    }
  }

  int operate(const Command& cmd) {
    Tally tally;
    ObserverGuard guard{stack_};
    observe(cmd, tally);
    const bool up = cmd.verb == Verb::up;
    if (!cmd.whole_stack) {
      std::size_t n = 0;
      const auto role = S::roles[cmd.index];
      // Name the other components this command will act on, before it does.
      if (up) {
        auto needs = Plan::closure_of(cmd.index);
        needs[cmd.index] = false;
        for (std::size_t i = 0; i < size; ++i) needs[i] = needs[i] && state_at(i) != State::running;
        const std::string list = listed(needs, n);
        if (n) note(fmt::format("{} needs {}: {} first", role, list, n == 1 ? "it comes up" : "they come up"));
      } else {
        auto dependents = Plan::dependents_of(cmd.index);
        for (std::size_t i = 0; i < size; ++i) {
          if (!dependents[i]) continue;
          const auto now = state_at(i); // those with something to stop (or, forced, to remove)
          dependents[i] = !now || (cmd.force ? *now != State::deprovisioned : *now == State::running);
        }
        const std::string list = listed(dependents, n);
        if (n) note(fmt::format("{} {} on {}: {} first", list, n == 1 ? "depends" : "depend", role,
                                n == 1 ? "it goes down" : "they go down"));
      }
    }
    const auto t0 = Clock::now();
    try {
      if (cmd.whole_stack && up) stack_.up(UpOptions{.rollback = cmd.rollback, .parallel = cmd.parallel});
      else if (cmd.whole_stack) stack_.down(DownOptions{.force = cmd.force, .parallel = cmd.parallel});
      else if (up) stack_.up(S::roles[cmd.index], UpOptions{.rollback = cmd.rollback, .parallel = cmd.parallel});
      else stack_.down(S::roles[cmd.index], DownOptions{.force = cmd.force, .parallel = cmd.parallel});
    } catch (...) {
      const std::string what = fmt::format("{} {}{}", cmd.whole_stack ? "stack" : S::roles[cmd.index],
                                           up ? "up" : "down", cmd.force ? " --force" : "");
      return report(what + " failed", std::current_exception(), cmd, tally);
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
    return exit_success;
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

  void print_chain(const std::exception& e, int depth) {
    const std::string indent(static_cast<std::size_t>(2 + 2 * depth), ' ');
    std::string text = e.what();
    for (std::size_t at = 0; (at = text.find('\n', at)) != std::string::npos; at += 1 + indent.size())
      text.insert(at + 1, indent); // keep a multi-line message (a log tail) inside its level
    err_ << indent << (depth ? "caused by: " : "") << text << '\n';
    // A nested_exception made outside a catch holds no cause; rethrow_if_nested
    // would call std::terminate on it, so look before rethrowing.
    const auto* nested = dynamic_cast<const std::nested_exception*>(&e);
    if (nested == nullptr || !nested->nested_ptr() || depth >= 16) return;
    try {
      std::rethrow_exception(nested->nested_ptr());
    } catch (const std::exception& inner) {
      print_chain(inner, depth + 1);
    } catch (...) {
      err_ << indent << "  caused by: unknown exception (not derived from std::exception)\n";
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

  S& stack_;
  std::ostream& out_;
  std::ostream& err_;
  const Options& options_;
  std::string_view program_;
  bool fancy_out_;
  bool fancy_err_;
};

template <class... Cs>
int run_words(Stack<Cs...>& stack, std::span<const std::string_view> args, std::ostream& out, std::ostream& err,
              const Options& options, std::string_view program) noexcept {
  try {
    Runner<Cs...> runner(stack, out, err, options, program.empty() ? std::string_view("stack") : program);
    try {
      return runner.run(args);
    } catch (...) {
      stack.on_event({});
      return runner.crashed();
    }
  } catch (...) {
    return exit_failure;
  }
}

} // namespace detail

/// Runs one command line against `stack`: the words after the program name
/// (`{"stack", "down", "--force"}`), writing progress and results to `out`,
/// errors to `err`. Returns 0 done, 1 an action failed, 2 usage error; never
/// throws. While it runs it is the stack's observer; it leaves none set.
template <class... Cs>
int run(Stack<Cs...>& stack, std::span<const std::string_view> args, std::ostream& out, std::ostream& err,
        const Options& options = {}) noexcept {
  return detail::run_words(stack, args, out, err, options, options.program);
}

/// `main`'s arguments, written to `out` and `err` (for tests and embedding).
template <class... Cs>
int run(Stack<Cs...>& stack, int argc, char** argv, std::ostream& out, std::ostream& err,
        const Options& options = {}) noexcept {
  try {
    std::vector<std::string_view> words;
    std::string_view program = options.program;
    if (argv != nullptr && argc > 0) {
      if (program.empty() && argv[0] != nullptr) program = detail::base_name(argv[0]);
      for (int i = 1; i < argc && argv[i] != nullptr; ++i) words.emplace_back(argv[i]);
    }
    return detail::run_words(stack, words, out, err, options, program);
  } catch (...) {
    return exit_failure;
  }
}

/// ZenML's command line for `stack`, in one call from `main`:
/// `return stackup::cli::run(stack, argc, argv);` Grammar: `stack up`,
/// `stack down [--force]`, `stack status`, `<role> up|down|status|logs`, `--help`.
/// Progress goes to std::cout, errors to std::cerr.
template <class... Cs> int run(Stack<Cs...>& stack, int argc, char** argv, const Options& options = {}) noexcept {
  return run(stack, argc, argv, std::cout, std::cerr, options);
}

} // namespace stackup::cli
