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
#include "supervise.hpp"

// ---- begin stackup/cli.hpp ----
// stackup — cli::run: ZenML's command line (`stack up`, `stack down --force`,
// `orchestrator up`, `orchestrator logs`, ...) for any Stack, in one call.
// SPDX-License-Identifier: MIT
//
// This header holds every public name of the command line: the types a host
// program fills in (Options, VerbSpec, VerbOption), what a verb's handler gets
// (Invocation), the exit statuses, and the run functions. The machinery lives in
// detail/cli/ (grammar, completion, terminal, logs, merge, runner), included below,
// after the public types it works on. Each of those that uses the types starts
// by including this header, so it compiles alone too; its own include guard
// comes after that #include, so whichever file a translation unit meets first,
// the public types come first and each part once. (This header also includes
// every stackup header the parts use, before them: the single header keeps a
// part's text but not its #include lines.)


#include <cstddef>
#include <functional>
#include <iostream>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup::cli {

/// When to decorate output with colour and symbols.
enum class Color {
  automatic, ///< only when the stream is a terminal (std::cout / std::cerr) and NO_COLOR is unset
  always,    ///< always (ANSI colours, Unicode symbols)
  never,     ///< plain ASCII
};

/// Where a verb applies: to the whole stack (`stack up`), to one component
/// (`<role> logs`), or to both.
enum class Scope { stack, role, both };

/// One option of a verb, as the command line spells it: `--name`, `-letter`,
/// and for an option with a value `--name VALUE`, `--name=VALUE`, `-letter VALUE`
/// or `-letterVALUE`. Short flags cluster (`-fp`).
struct VerbOption {
  /// The long name without its dashes: "force" for `--force`.
  std::string_view name;
  /// The short form ('f' for `-f`); 0: none.
  char letter = 0;
  /// The value's name in the usage ("N" for `--tail N`); empty: a flag, which takes no value.
  std::string_view value{};
  /// One line for `--help`.
  std::string_view help{};
  /// For a value: what a missing one must be, for the error ("a number of lines"),
  /// and an example of one ("20"). Empty: "a value" and the value's name.
  std::string_view needs{};
  std::string_view example{};
  /// For a value: the problem with it, said in full ("option '--tail' needs a whole
  /// number ..."), or nothing when it is fine. Empty: any value will do.
  std::function<std::optional<std::string>(std::string_view value)> check{};
  /// Where it applies, for a verb of Scope::both: `stack <verb>`, `<role> <verb>`
  /// or both (the default). Elsewhere it is an unknown option, and the usage and
  /// the completion leave it out.
  Scope scope = Scope::both;
};

/// A command line as parsed against the table, and where to write: what a
/// verb's handler (VerbSpec::run) gets.
struct Invocation {
  /// The program's name, for messages ("stackctl").
  std::string_view program;
  /// The verb ("up", "config").
  std::string_view verb;
  /// `stack <verb>`: true; `<role> <verb>`: false.
  bool whole_stack = true;
  /// The role, when !whole_stack.
  std::string_view role{};
  /// The role's position among the stack's roles (their order in the stack), when !whole_stack.
  std::size_t index = 0;
  /// The options given, by long name, in order; the value is empty for a flag.
  std::vector<std::pair<std::string_view, std::string_view>> options{};
  /// Where progress and results go, and where errors go.
  std::ostream& out;
  std::ostream& err;
  /// Whether `out` and `err` get colour and symbols (Options::color resolved).
  bool color_out = false;
  bool color_err = false;
  /// Options::lock_file: the file a handler that acts on the stack locks (a StackLock).
  std::string_view lock_file{};

  /// Whether the option `name` (long name) was given.
  [[nodiscard]] bool has(std::string_view name) const noexcept {
    for (const auto& o : options)
      if (o.first == name) return true;
    return false;
  }
  /// The value of the option `name` given last, or nothing.
  [[nodiscard]] std::optional<std::string_view> value(std::string_view name) const noexcept {
    std::optional<std::string_view> found;
    for (const auto& o : options)
      if (o.first == name) found = o.second;
    return found;
  }
};

/// One verb of the command line: the library's own (up, down, status, logs) and
/// a host program's (Options::verbs) are entries of the same kind, and parsing,
/// the usage, `--help`, the bash completion and dispatch all follow from them.
struct VerbSpec {
  /// The word after the target: "up", "config".
  std::string_view name;
  /// `stack <verb>`, `<role> <verb>` or both.
  Scope scope = Scope::stack;
  /// Its options (`--help` is every verb's).
  std::vector<VerbOption> options{};
  /// One line for the usage: what it does (to the stack, for Scope::both).
  std::string_view help{};
  /// For Scope::both: what `<role> <verb>` does; empty: `help`.
  std::string_view role_help{};
  /// Runs it, returning the exit status (exit_success, exit_failure, exit_usage, ...).
  std::function<int(const Invocation&)> run{};
  /// Optional: the problem with a parsed command line that only this verb can see
  /// (e.g. a component that keeps no log), said as a usage error (exit 2);
  /// nothing when it may run. For a role's verb it also says which roles suit it.
  std::function<std::optional<std::string>(const Invocation&)> check{};
  /// Parsed and run, but not in the usage, `--help` or the completion: a query for scripts.
  bool hidden = false;
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
  /// What `--version` prints after the program's name; empty: stackup's version.
  std::string_view version{};
  /// The host's own options before the command (which it parses itself, e.g.
  /// `-f FILE`), as data: the bash completion completes them and passes them on
  /// when it asks for the roles, and an unknown option names them.
  std::span<const VerbOption> host_options{};
  /// The host's own verbs, after the library's (see VerbSpec); they must outlive `run`.
  std::span<const VerbSpec> verbs{};
  /// The directory of the stack's detached supervisor (DESIGN §10): its pid file
  /// and record (stackup::supervise's `state_dir`). With it, `stack down` stops
  /// that supervisor first; every `down` marks what it stops down there (under
  /// the stack's lock, before acting) so that no supervisor restarts it, and an
  /// `up` clears the marks of what it brings up; `stack down --force` removes the
  /// directory; `status` shows the supervisor's restarts, state and exits, and
  /// the table ends with `supervisor: pid N` or `supervisor: none`. Empty (the
  /// default): no supervision state.
  std::string_view supervision_dir{};
};

/// Exit status: the command did what was asked (also when there was nothing to do).
inline constexpr int exit_success = 0;
/// Exit status: an action failed (the error, its causes and the rollback are printed).
inline constexpr int exit_failure = 1;
/// Exit status: the command line is wrong (unknown role, verb or option, ...).
inline constexpr int exit_usage = 2;

} // namespace stackup::cli

// The machinery, in the order each part needs the others.

// ---- begin stackup/detail/cli/grammar.hpp ----
// stackup — the command line's grammar (internal, part of <stackup/cli.hpp>): the
// verbs as data (the library's and the host's), the global options, and what
// follows from them without a stack: parsing, the usage, --help, --version and
// usage errors.
// SPDX-License-Identifier: MIT

#ifndef STACKUP_DETAIL_CLI_GRAMMAR_HPP
#define STACKUP_DETAIL_CLI_GRAMMAR_HPP


#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace stackup::cli::detail {

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
  bool no_prefix = false;  // stack logs: without `role | `
  bool timestamps = false; // stack logs: the time each line was read, before it
  bool attach = false;        // stack up: then stay, showing the output, supervising
  bool abort_on_exit = false; // stack up --attach: the first exit takes the stack down
  std::optional<std::size_t> tail;
};

// The library's version, "0.2.0": what --version prints unless the host says otherwise.
inline std::string library_version() {
  return fmt::format("{}.{}.{}", STACKUP_VERSION_MAJOR, STACKUP_VERSION_MINOR, STACKUP_VERSION_PATCH);
}

// `--tail`'s value: a whole number of lines.
inline std::optional<std::string> whole_lines(std::string_view value) {
  std::size_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec == std::errc::result_out_of_range && end == value.data() + value.size())
    return fmt::format("option '--tail' got '{}' lines: too large (at most {})", value, std::size_t(-1));
  if (value.empty() || ec != std::errc{} || end != value.data() + value.size())
    return fmt::format("option '--tail' needs a whole number of lines (0 or more), not '{}'", value);
  return std::nullopt;
}

// The words a command line may start with, before the target: every program's.
inline const std::vector<VerbOption>& global_options() {
  static const std::vector<VerbOption> globals{
      {.name = "help", .letter = 'h', .help = "show this help"},
      {.name = "version", .help = "print the program's name and version"},
      {.name = "completion", .value = "SHELL", .help = "print the completion script for SHELL (bash): verbs, options, roles",
       .needs = "a shell", .example = "bash",
       .check = [](std::string_view shell) -> std::optional<std::string> {
         if (shell == "bash") return std::nullopt;
         return fmt::format("option '--completion' knows only 'bash', not '{}'", shell);
       }},
  };
  return globals;
}

// What the library's own verbs do, bound to a Runner; empty in a table that only
// describes them (the usage, the completion).
struct Builtins {
  std::function<int(const Invocation&)> up, down, status, logs, roles;
  std::function<std::optional<std::string>(const Invocation&)> up_check, logs_check;
};

// The library's verbs, in the order the usage lists them. A new one is an entry
// here and its handler in Builtins (bound in Runner::builtins).
inline std::vector<VerbSpec> builtin_verbs(const Builtins& b) {
  const VerbOption parallel{.name = "parallel", .letter = 'p', .help = "act on independent components at the same time"};
  // How merged output looks: `stack logs` (and what `stack up --attach` shows).
  const VerbOption no_prefix{.name = "no-prefix", .help = "each line without 'role | ' before it", .scope = Scope::stack};
  const VerbOption timestamps{.name = "timestamps",
                              .help = "each line after the time it was read (UTC, RFC 3339, milliseconds)",
                              .scope = Scope::stack};
  return {
      {.name = "up",
       .scope = Scope::both,
       .options = {parallel,
                   {.name = "no-rollback", .help = "when an action fails, leave what was done in place"},
                   {.name = "attach",
                    .letter = 'a',
                    .help = "then stay: every component's output, restarts by policy; Ctrl-C takes the stack down",
                    .scope = Scope::stack},
                   no_prefix,
                   timestamps,
                   {.name = "abort-on-exit",
                    .help = "with --attach: the first component to exit takes the stack down; its exit status is ours",
                    .scope = Scope::stack}},
       .help = "provision and start every component",
       .role_help = "bring one component up, its dependencies first",
       .run = b.up,
       .check = b.up_check},
      {.name = "down",
       .scope = Scope::both,
       .options = {{.name = "force", .letter = 'f', .help = "also deprovision (remove what the components created)"},
                   parallel},
       .help = "stop every component; with --force also deprovision",
       .role_help = "bring one component down, its dependents first",
       .run = b.down},
      {.name = "status",
       .scope = Scope::both,
       .options = {{.name = "json", .help = "a JSON array (role, name, flavor, state, detail)"}},
       .help = "show every component's state (changes nothing)",
       .role_help = "show one component's state",
       .run = b.status},
      {.name = "logs",
       .scope = Scope::both,
       .options = {{.name = "tail",
                    .letter = 'n',
                    .value = "N",
                    .help = "print only the last N lines (of each log)",
                    .needs = "a number of lines",
                    .example = "20",
                    .check = whole_lines},
                   {.name = "follow", .help = "keep printing what is appended, until Ctrl-C"},
                   no_prefix, timestamps},
       .help = "print every component's log, merged, each line after its role",
       .role_help = "print the component's log, where it keeps one",
       .run = b.logs,
       .check = b.logs_check},
      // For completion scripts: the roles, one a line.
      {.name = "roles", .scope = Scope::stack, .help = "print the roles, one a line", .run = b.roles, .hidden = true},
  };
}

// `--help` anywhere wins, so `<anything> --help` always shows the help.
inline bool wants_help(std::span<const std::string_view> args) {
  return std::ranges::any_of(args, [](std::string_view a) { return a == "--help" || a == "-h"; }) ||
         (!args.empty() && args[0] == "help");
}

inline std::string padded(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

inline bool applies(const VerbSpec& v, bool whole_stack) {
  return v.scope == Scope::both || (v.scope == Scope::stack) == whole_stack;
}

// Whether option `o` is one of `stack <verb>`'s (whole_stack) or of `<role> <verb>`'s.
inline bool applies(const VerbOption& o, bool whole_stack) {
  return o.scope == Scope::both || (o.scope == Scope::stack) == whole_stack;
}

// The options of `v` for the stack or for a role.
inline std::vector<VerbOption> options_of(const VerbSpec& v, bool whole_stack) {
  std::vector<VerbOption> s;
  for (const auto& o : v.options)
    if (applies(o, whole_stack)) s.push_back(o);
  return s;
}

// "--tail N (-n N)", as the valid options are listed in errors.
inline std::string spelled(const VerbOption& o) {
  const std::string value = o.value.empty() ? std::string() : fmt::format(" {}", o.value);
  std::string s = fmt::format("--{}{}", o.name, value);
  if (o.letter != 0) s += fmt::format(" (-{}{})", o.letter, value);
  return s;
}

inline std::string spelled(std::span<const VerbOption> options) {
  std::string s;
  for (const auto& o : options) s += fmt::format("{}{}", s.empty() ? "" : ", ", spelled(o));
  return s;
}

// The verbs (the library's, then the host's) and everything that follows from
// them without a stack: parsing a verb's options, the usage, the options part
// of --help, --version, the completion script, and usage errors.
class Grammar {
public:
  Grammar(std::vector<VerbSpec> verbs, const Options& options, std::string_view program)
      : verbs_(std::move(verbs)), options_(options), program_(program) {
    verbs_.insert(verbs_.end(), options.verbs.begin(), options.verbs.end());
  }

  [[nodiscard]] const std::vector<VerbSpec>& verbs() const noexcept { return verbs_; }

  // The verb `name` for the stack or for a role (hidden ones included), or null.
  [[nodiscard]] const VerbSpec* find(std::string_view name, bool whole_stack) const noexcept {
    for (const auto& v : verbs_)
      if (v.name == name && applies(v, whole_stack)) return &v;
    return nullptr;
  }

  // "up, down, status": the verbs shown for the stack or for a role.
  [[nodiscard]] std::string names(bool whole_stack) const {
    std::string s;
    for (const auto& v : verbs_)
      if (!v.hidden && applies(v, whole_stack)) s += fmt::format("{}{}", s.empty() ? "" : ", ", v.name);
    return s;
  }

  // Reads `words` (what follows `<target> <verb>`) into `inv.options`; returns the problem, if any.
  [[nodiscard]] std::optional<std::string> parse_options(const VerbSpec& v, std::span<const std::string_view> words,
                                                         std::string_view where, Invocation& inv) const {
    const std::vector<VerbOption> valid = options_of(v, inv.whole_stack);
    const auto by_name = [&valid](std::string_view name) -> const VerbOption* {
      for (const auto& o : valid)
        if (o.name == name) return &o;
      return nullptr;
    };
    const auto by_letter = [&valid](char letter) -> const VerbOption* {
      for (const auto& o : valid)
        if (o.letter != 0 && o.letter == letter) return &o;
      return nullptr;
    };
    const auto unknown = [&](std::string_view as_given) {
      if (valid.empty()) return fmt::format("unknown option '{}' for '{}': it takes no options", as_given, where);
      return fmt::format("unknown option '{}' for '{}'; valid options: {}", as_given, where, spelled(valid));
    };
    const auto take = [&inv](const VerbOption& o, std::string_view value) -> std::optional<std::string> {
      if (o.check)
        if (auto problem = o.check(value)) return problem;
      inv.options.emplace_back(o.name, value);
      return std::nullopt;
    };
    for (std::size_t i = 0; i < words.size(); ++i) {
      const std::string_view a = words[i];
      std::optional<std::string> problem;
      if (a.size() > 2 && a.starts_with("--")) { // --name, --name=value, --name value
        const std::size_t eq = a.find('=');
        const VerbOption* o = by_name(a.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2));
        if (o == nullptr) return unknown(a);
        if (eq != std::string_view::npos && o->value.empty())
          return fmt::format("option '--{}' takes no value, not '{}'", o->name, a.substr(eq + 1));
        if (eq != std::string_view::npos) problem = take(*o, a.substr(eq + 1));
        else if (o->value.empty()) problem = take(*o, {});
        else if (i + 1 == words.size()) return missing(*o, a);
        else problem = take(*o, words[++i]);
      } else if (a.size() >= 2 && a[0] == '-' && a[1] != '-') { // short options, clustered: -fp, -n5, -n 5
        for (std::size_t j = 1; j < a.size() && !problem; ++j) {
          const VerbOption* o = by_letter(a[j]);
          if (o == nullptr) return unknown(fmt::format("-{}", a[j]));
          if (o->value.empty()) {
            problem = take(*o, {});
            continue;
          }
          if (j + 1 < a.size()) problem = take(*o, a.substr(j + 1));
          else if (i + 1 == words.size()) return missing(*o, fmt::format("-{}", a[j]));
          else problem = take(*o, words[++i]);
          break;
        }
      } else if (!a.empty() && a[0] == '-') {
        return unknown(a); // "-", "--"
      } else {
        return fmt::format("unexpected argument '{}' after '{}'", a, where);
      }
      if (problem) return problem;
    }
    return std::nullopt;
  }

  [[nodiscard]] std::string synopsis() const {
    std::vector<std::pair<std::string, std::string_view>> rows;
    for (const bool whole_stack : {true, false})
      for (const auto& v : verbs_) {
        if (v.hidden || !applies(v, whole_stack)) continue;
        std::string left = fmt::format("{} {}", whole_stack ? "stack" : "<role>", v.name);
        for (const auto& o : options_of(v, whole_stack)) {
          if (o.value.empty() && o.letter != 0) left += fmt::format(" [-{}]", o.letter); // flags by their letter
          else if (o.value.empty()) left += fmt::format(" [--{}]", o.name);
          else left += fmt::format(" [--{} {}]", o.name, o.value);
        }
        rows.emplace_back(std::move(left), !whole_stack && !v.role_help.empty() ? v.role_help : v.help);
      }
    rows.emplace_back("--help", "show the roles and options");
    // A command with many options has its line to itself, its help under the others'.
    constexpr std::size_t widest = 40;
    std::size_t width = 0;
    for (const auto& r : rows)
      if (r.first.size() <= widest) width = std::max(width, r.first.size());
    std::string s = fmt::format("usage: {}{}{} <stack|role> <command> [options]\n\n", program_,
                                options_.host_synopsis.empty() ? "" : " ", options_.host_synopsis);
    for (const auto& r : rows) {
      if (r.first.size() > widest) s += fmt::format("  {}\n  {}{}\n", r.first, padded({}, width + 3), r.second);
      else s += fmt::format("  {}{}\n", padded(r.first, width + 3), r.second);
    }
    return s;
  }

  // The options part of --help: every verb's, in the order of the usage (each once,
  // saying which verbs take it), then the global ones.
  [[nodiscard]] std::string options_help() const {
    constexpr std::size_t width = 15; // hosts' own lines (Options::host_help) align with it
    std::string s = "\noptions:\n";
    const auto line = [&s](const VerbOption& o, std::string_view text) {
      std::string left = o.letter != 0 ? fmt::format("-{}, --{}", o.letter, o.name) : fmt::format("--{}", o.name);
      if (!o.value.empty()) left += fmt::format(" {}", o.value);
      if (left.size() > width) s += fmt::format("  {}\n  {}  {}\n", left, padded({}, width), text);
      else s += fmt::format("  {}  {}\n", padded(std::move(left), width), text);
    };
    std::vector<std::string_view> done;
    for (const auto& v : verbs_) {
      if (v.hidden) continue;
      for (const auto& o : v.options) {
        if (std::ranges::find(done, o.name) != done.end()) continue;
        done.push_back(o.name);
        std::string which;
        for (const auto& w : verbs_)
          if (!w.hidden && std::ranges::any_of(w.options, [&o](const VerbOption& x) { return x.name == o.name; }))
            which += fmt::format("{}{}", which.empty() ? "" : "/", w.name);
        line(o, fmt::format("{}: {}", which, o.help));
      }
    }
    for (const auto& o : global_options()) line(o, o.help);
    return s;
  }

  // The whole --help, with `roles` (the stack's roles, when there is a stack) after the usage.
  [[nodiscard]] std::string help(std::string_view roles) const {
    std::string s = synopsis();
    s += roles;
    s += options_help();
    if (!options_.host_help.empty()) {
      s += options_.host_help;
      if (s.back() != '\n') s += '\n';
    }
    s += "\nexit status: 0 done (also when there was nothing to do), 1 an action failed, 2 usage error\n";
    return s;
  }

  int usage_error(std::ostream& err, bool fancy, std::string_view problem) const {
    const std::string label = fancy ? stackup::detail::styled("error", fmt::fg(fmt::terminal_color::red) | fmt::emphasis::bold)
                                    : std::string("error");
    err << label << ": " << problem << "\n\n" << synopsis() << "\nrun '" << program_ << " --help' for the roles and options\n";
    return exit_usage;
  }

  // A command line that starts with an option: `--version`, `--completion bash`, or
  // an unknown one. Nothing for any other (a target first, or no words).
  [[nodiscard]] std::optional<int> global(std::span<const std::string_view> args, std::ostream& out, std::ostream& err,
                                          bool fancy_err) const {
    if (args.empty() || args[0].empty() || args[0][0] != '-') return std::nullopt;
    const std::string_view a = args[0];
    std::size_t used = 1;
    std::optional<std::string> problem;
    std::string_view shell;
    if (a == "--completion" || a.starts_with("--completion=")) {
      const VerbOption& o = global_options()[2];
      if (a.size() > 12) shell = a.substr(13);
      else if (args.size() < 2) problem = missing(o, a);
      else shell = args[used++];
      if (!problem) problem = o.check(shell);
    } else if (a != "--version") {
      std::vector<VerbOption> valid(options_.host_options.begin(), options_.host_options.end());
      valid.insert(valid.end(), global_options().begin(), global_options().end());
      problem = fmt::format("unknown option '{}'; valid options before the command: {}", a, spelled(valid));
    }
    if (!problem && args.size() > used)
      problem = fmt::format("unexpected argument '{}' after '{}'", args[used], args.subspan(0, used).back());
    if (problem) return usage_error(err, fancy_err, *problem);
    if (a == "--version")
      out << program_ << ' ' << (options_.version.empty() ? library_version() : std::string(options_.version)) << '\n';
    else out << bash_completion();
    out.flush();
    return out ? exit_success : exit_failure;
  }

  // A bash completion script for the program: its verbs and their options, the
  // global options (the host's too), and the roles of the stack in use, which it
  // asks the program for (`PROGRAM [host options] stack roles`).
  [[nodiscard]] std::string bash_completion() const;

private:
  [[nodiscard]] static std::string missing(const VerbOption& o, std::string_view as_given) {
    return fmt::format("option '{}' needs {}, e.g. '{} {}'", as_given, o.needs.empty() ? "a value" : o.needs, as_given,
                       o.example.empty() ? o.value : o.example);
  }

  std::vector<VerbSpec> verbs_;
  const Options& options_;
  std::string_view program_;
};

} // namespace stackup::cli::detail

#endif // STACKUP_DETAIL_CLI_GRAMMAR_HPP
// ---- end stackup/detail/cli/grammar.hpp ----

// ---- begin stackup/detail/cli/completion.hpp ----
// stackup — the bash completion script (internal, part of <stackup/cli.hpp>):
// Grammar::bash_completion, written from the same verb table as the usage.
// SPDX-License-Identifier: MIT

#ifndef STACKUP_DETAIL_CLI_COMPLETION_HPP
#define STACKUP_DETAIL_CLI_COMPLETION_HPP


#include <fmt/format.h>

#include <cctype>
#include <string>
#include <string_view>

namespace stackup::cli::detail {

// A shell word in single quotes.
inline std::string shell_quoted(std::string_view s) {
  std::string q = "'";
  for (const char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

inline std::string Grammar::bash_completion() const {
  std::string function = "_";
  for (const char c : program_) function += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  std::string globals, valued_globals;
  const auto add_global = [&](const VerbOption& o) {
    for (const std::string& w : {fmt::format("--{}", o.name), o.letter ? fmt::format("-{}", o.letter) : std::string()}) {
      if (w.empty()) continue;
      globals += fmt::format("{}{}", globals.empty() ? "" : " ", w);
      if (!o.value.empty()) valued_globals += fmt::format("{}{}", valued_globals.empty() ? "" : "|", w);
    }
  };
  for (const auto& o : options_.host_options) add_global(o);
  for (const auto& o : global_options()) add_global(o);
  std::string host_valued; // the host's options that take a value (a file: complete file names)
  for (const auto& o : options_.host_options)
    if (!o.value.empty())
      for (const std::string& w : {fmt::format("--{}", o.name), o.letter ? fmt::format("-{}", o.letter) : std::string()})
        if (!w.empty()) host_valued += fmt::format("{}{}", host_valued.empty() ? "" : "|", w);

  // Per verb and scope: its options, and those that take a value.
  std::string options_case, valued_case;
  for (const bool whole_stack : {true, false})
    for (const auto& v : verbs_) {
      if (v.hidden || !applies(v, whole_stack)) continue;
      std::string words = "-h --help", valued;
      for (const auto& o : options_of(v, whole_stack)) {
        words += fmt::format(" --{}", o.name);
        if (o.letter) words += fmt::format(" -{}", o.letter);
        if (!o.value.empty()) {
          valued += fmt::format("{}--{}", valued.empty() ? "" : " ", o.name);
          if (o.letter) valued += fmt::format(" -{}", o.letter);
        }
      }
      const std::string key = fmt::format("{} {}", whole_stack ? "stack" : "role", v.name);
      options_case += fmt::format("      {}) words={} ;;\n", shell_quoted(key), shell_quoted(words));
      if (!valued.empty()) valued_case += fmt::format("      {}) valued={} ;;\n", shell_quoted(key), shell_quoted(valued));
    }

  std::string s;
  s += fmt::format("# bash completion for {0}: verbs, options and the roles of the stack in use.\n"
                   "# Generated by '{0} --completion bash' (stackup {1}); install it as\n"
                   "# share/bash-completion/completions/{0}, or source it from ~/.bashrc.\n",
                   program_, library_version());
  s += fmt::format("{}() {{\n", function);
  s += "  local cur=${COMP_WORDS[COMP_CWORD]} prev= i=1 w target= verb= words= valued=\n"
       "  local -a host=()\n"
       "  (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
       "  # '--opt=x' reaches here as '--opt' '=' 'x' (COMP_WORDBREAKS): complete the value after '='.\n"
       "  if [[ $cur == = ]]; then prev=${COMP_WORDS[COMP_CWORD-1]}; cur=; fi\n"
       "  if [[ $prev == = ]] && (( COMP_CWORD > 1 )); then prev=${COMP_WORDS[COMP_CWORD-2]}; fi\n"
       "  # The options before the target, kept to ask for the roles of the same stack.\n"
       "  while (( i < COMP_CWORD )); do\n"
       "    w=${COMP_WORDS[i]}\n"
       "    [[ $w == -* ]] || break\n";
  if (!valued_globals.empty())
    s += fmt::format("    case $w in\n"
                     "      {})\n"
                     "        if [[ ${{COMP_WORDS[i+1]}} == = ]]; then host+=(\"$w=${{COMP_WORDS[i+2]}}\"); i=$((i+3))\n"
                     "        else host+=(\"$w\" \"${{COMP_WORDS[i+1]}}\"); i=$((i+2)); fi\n"
                     "        continue ;;\n"
                     "    esac\n",
                     valued_globals);
  s += "    host+=(\"$w\"); i=$((i+1))\n"
       "  done\n";
  s += "  if (( i >= COMP_CWORD )); then\n"
       "    case $prev in\n";
  if (!host_valued.empty())
    s += fmt::format("      {})\n"
                     "        compopt -o filenames 2>/dev/null\n"
                     "        COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n",
                     host_valued);
  s += "      --completion) COMPREPLY=($(compgen -W bash -- \"$cur\")); return ;;\n"
       "    esac\n";
  s += fmt::format("    if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W {} -- \"$cur\")); return; fi\n",
                   shell_quoted(globals));
  s += "    local roles\n"
       "    roles=$(\"${COMP_WORDS[0]}\" \"${host[@]}\" stack roles 2>/dev/null </dev/null)\n"
       "    local IFS=$'\\n'\n"
       "    COMPREPLY=($(compgen -W \"stack\"$'\\n'\"$roles\" -- \"$cur\"))\n"
       "    return\n"
       "  fi\n";
  s += "  target=${COMP_WORDS[i]}; i=$((i+1))\n"
       "  local scope=role\n"
       "  [[ $target == stack ]] && scope=stack\n"
       "  if (( i >= COMP_CWORD )); then\n"
       "    case $scope in\n";
  for (const bool whole_stack : {true, false}) {
    std::string names;
    for (const auto& v : verbs_)
      if (!v.hidden && applies(v, whole_stack)) names += fmt::format("{}{}", names.empty() ? "" : " ", v.name);
    s += fmt::format("      {}) words={} ;;\n", whole_stack ? "stack" : "role", shell_quoted(names));
  }
  s += "    esac\n"
       "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
       "    return\n"
       "  fi\n"
       "  verb=${COMP_WORDS[i]}\n"
       "  case \"$scope $verb\" in\n";
  s += valued_case;
  s += "  esac\n"
       "  # After an option that takes a value (--tail N): nothing to offer.\n"
       "  for w in $valued; do [[ $prev == \"$w\" ]] && { COMPREPLY=(); return; }; done\n"
       "  case \"$scope $verb\" in\n";
  s += options_case;
  s += "      *) return ;;\n"
       "  esac\n"
       "  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$words\" -- \"$cur\")); fi\n"
       "}\n";
  s += fmt::format("complete -F {} {}\n", function, program_);
  return s;
}

} // namespace stackup::cli::detail

#endif // STACKUP_DETAIL_CLI_COMPLETION_HPP
// ---- end stackup/detail/cli/completion.hpp ----

// ---- begin stackup/detail/cli/terminal.hpp ----
// stackup — the command line and its terminal (internal, part of <stackup/cli.hpp>):
// colour or not, the program's name, durations, and the signals an operation
// must survive (Ctrl-C and SIGTERM ask it to stop; a closed pipe fails a write).
// SPDX-License-Identifier: MIT

#ifndef STACKUP_DETAIL_CLI_TERMINAL_HPP
#define STACKUP_DETAIL_CLI_TERMINAL_HPP


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
// ---- end stackup/detail/cli/terminal.hpp ----

// ---- begin stackup/detail/cli/logs.hpp ----
// stackup — a component's log on the command line (internal, part of
// <stackup/cli.hpp>): its last lines, and what is appended to it (`logs --follow`).
// SPDX-License-Identifier: MIT


#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stackup::cli::detail {

/// Writes the last `n` lines of `path` (all of it when `n` is empty) to `out`,
/// reading backwards from the end so a large log costs only what is printed.
/// Returns the offset it read up to.
inline std::uintmax_t copy_tail(const std::filesystem::path& path, std::optional<std::size_t> n, std::ostream& out) {
  // Only a regular file, not through a symlink: a FIFO in its place would block
  // forever. Checked on the descriptor opened, then read through that same
  // file (its /proc/self/fd link), so a swap after the check changes nothing.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct ::stat st {};
  if (fd < 0 && errno != ELOOP) throw Error("cannot open " + path.string() + ": " + std::strerror(errno));
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    throw Error("cannot show " + path.string() + ": it is not a regular file (a symlink, a FIFO or a device?): remove it");
  }
  std::ifstream in("/proc/self/fd/" + std::to_string(fd), std::ios::binary);
  ::close(fd);
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

} // namespace stackup::cli::detail
// ---- end stackup/detail/cli/logs.hpp ----

// ---- begin stackup/detail/cli/merge.hpp ----
// stackup — the logs of a stack's components merged (internal, part of
// <stackup/cli.hpp>): `stack logs` and what `stack up --attach` shows. Each whole
// line of each log, prefixed `role | `, as it is written.
// SPDX-License-Identifier: MIT

#ifndef STACKUP_DETAIL_CLI_MERGE_HPP
#define STACKUP_DETAIL_CLI_MERGE_HPP


#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace stackup::cli::detail {

/// A line that has waited this long for its newline is shown as it is (ended with
/// '\n'), and what follows it as the next line: a program that never writes a
/// newline must not make the reader hold its whole output.
inline constexpr std::size_t longest_pending_line = std::size_t{1} << 20;

/// Splits what is read from a log, in chunks cut anywhere, into whole lines. What
/// follows the last newline waits for the next chunk; it is given out unfinished
/// only by flush() (at the end, or when the log is truncated or replaced) or once
/// it is longer than `longest` bytes.
class LineSplitter {
public:
  explicit LineSplitter(std::size_t longest = longest_pending_line) : longest_(longest) {}

  /// Calls `line(text)` (text without its '\n') for each line `data` completes.
  template <class F> void feed(std::string_view data, F&& line) {
    while (!data.empty()) {
      const std::size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        pending_.append(data);
        if (pending_.size() > longest_) flush(line);
        return;
      }
      if (pending_.empty()) {
        line(data.substr(0, nl));
      } else {
        pending_.append(data.substr(0, nl));
        flush(line);
      }
      data.remove_prefix(nl + 1);
    }
  }

  /// Gives out the unfinished line, if any.
  template <class F> void flush(F&& line) {
    if (pending_.empty()) return;
    line(std::string_view(pending_));
    pending_.clear();
  }

  [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }

private:
  std::string pending_;
  std::size_t longest_;
};

/// The colour of a role's prefix: one of six, by a hash of its name (FNV-1a, the
/// same on every run and machine).
inline fmt::terminal_color role_color(std::string_view role) noexcept {
  static constexpr std::array<fmt::terminal_color, 6> palette{
      fmt::terminal_color::cyan,         fmt::terminal_color::yellow, fmt::terminal_color::green,
      fmt::terminal_color::magenta,      fmt::terminal_color::blue,   fmt::terminal_color::bright_cyan};
  std::uint32_t h = 2166136261u;
  for (const char c : role) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return palette[h % palette.size()];
}

/// RFC 3339 in UTC with milliseconds: `2026-12-07T19:48:51.123Z`.
inline std::string rfc3339_ms(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ((ms % 1000) + 1000) % 1000);
}

/// How merged lines look.
struct MergeLook {
  bool prefix = true;     ///< `role | ` before each line (--no-prefix: false)
  bool timestamps = false; ///< the time it was read before that (--timestamps)
  bool color = false;     ///< the prefix in its role's colour
};

/// A log that could not be opened: why, and whether it is only not there (yet).
struct LogProblem {
  std::string text;
  bool missing = false;
};

/// One log of the merge: whose, and where it is: a file, or the output of a
/// program an engine gives (a container's `podman logs`, see log_command()).
struct MergeSource {
  std::string role;
  std::filesystem::path path; ///< the log file; empty when `command` gives the log
  /// The program whose output is the log, for a request (it may throw Error:
  /// not provisioned, not ours); empty for a log file.
  std::function<std::vector<std::string>(const LogRequest&)> command{};
};

/// A program whose standard output and error are a component's log, read
/// through one pipe. It runs in a session of its own (a Ctrl-C at the terminal
/// is ours to act on) and is ended with its group when dropped.
class LogProgram {
  using px = ::stackup::detail::posix;

public:
  LogProgram() = default;
  LogProgram(const LogProgram&) = delete;
  LogProgram& operator=(const LogProgram&) = delete;
  LogProgram(LogProgram&& o) noexcept : pid_(std::exchange(o.pid_, -1)), out_(std::move(o.out_)), argv0_(std::move(o.argv0_)) {}
  LogProgram& operator=(LogProgram&&) = delete;
  ~LogProgram() { end(); }

  /// Starts `argv`; Error when it cannot be started.
  void start(const std::vector<std::string>& argv) {
    end();
    px::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    int p[2];
    if (!null || ::pipe2(p, O_CLOEXEC) != 0) throw Error("cannot create a pipe: " + px::sys_message(errno));
    px::Fd read_end = px::above_stdio(px::Fd(p[0]));
    const px::Fd write_end = px::above_stdio(px::Fd(p[1]));
    null = px::above_stdio(std::move(null));
    px::SpawnOptions o;
    o.argv = argv;
    o.stdin_fd = null.get();
    o.stdout_fd = write_end.get();
    o.stderr_fd = write_end.get();
    pid_ = px::spawn(o, [](pid_t) {});
    ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    out_ = std::move(read_end);
    argv0_ = argv.front();
  }
  /// Whether it was started and its output is not at its end yet.
  [[nodiscard]] bool open() const noexcept { return static_cast<bool>(out_); }
  [[nodiscard]] int fd() const noexcept { return out_ ? out_.get() : -1; }

  /// Reads what it wrote, without blocking unless `wait`, into `data(text)`, at
  /// most `rounds` chunks (`wait`: until its output ends). Returns whether it
  /// stopped with more to read; at the end of its output, reaps it and says in
  /// `failure` how it ended when not with status 0.
  template <class F> bool read(std::vector<char>& buf, F&& data, std::string& failure, bool wait = false, int rounds = 64) {
    for (int r = 0; out_ && (wait || r < rounds); ++r) {
      const ssize_t got = ::read(out_.get(), buf.data(), buf.size());
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EAGAIN) {
        if (!wait) return false;
        pollfd p{out_.get(), POLLIN, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      if (got <= 0) { // its end: what it was asked for is all out
        out_.reset();
        failure = finish();
        return false;
      }
      data(std::string_view(buf.data(), static_cast<std::size_t>(got)));
    }
    return static_cast<bool>(out_);
  }

  /// Ends it and its group (SIGTERM, SIGKILL a second later) and reaps it.
  void end() noexcept {
    out_.reset();
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    for (int i = 0; i < 100 && !px::peek_exit(pid_); ++i) ::usleep(10000);
    ::kill(-pid_, SIGKILL); // not reaped yet: its group number is still its own
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

private:
  // Reaps it (its output ended, so it is ending); how it ended when not well.
  std::string finish() {
    if (pid_ <= 0) return {};
    int status = 0;
    pid_t r = 0;
    while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (r < 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) return {};
    return WIFEXITED(status) ? fmt::format("`{}` exited with status {}", argv0_, WEXITSTATUS(status))
                             : fmt::format("`{}` was killed by {}", argv0_, px::signal_name(WTERMSIG(status)));
  }
  pid_t pid_ = -1;
  px::Fd out_;
  std::string argv0_;
};

/// The logs of several components, merged line by line. Each log is opened
/// without following a symlink and without blocking, checked (a regular file)
/// through the descriptor opened, and only ever read through that descriptor
/// (pread), from the offset reached; a log that appears later, or is replaced
/// (its path names another file) or truncated (shorter than the offset), is read
/// anew from its start, after what the old one held. Only whole lines are given
/// out (see LineSplitter): no line is cut, lost or given twice.
class MergedLogs {
  struct Log {
    std::string role, prefix;
    std::filesystem::path path;
    // A log that is a program's output: the program, when it runs again (a
    // follow goes on after it ends: the component restarted, or not up yet),
    // and from when (it ended then, so what came after is what is missing).
    std::function<std::vector<std::string>(const LogRequest&)> command;
    LogProgram program;
    std::chrono::steady_clock::time_point next_run{};
    std::chrono::system_clock::time_point since{};
    std::chrono::milliseconds pause{0};
    int fd = -1;
    std::uint64_t offset = 0;
    ::dev_t dev = 0;
    ::ino_t ino = 0;
    LineSplitter lines;
    int file_watch = -1, dir_watch = -1;
    std::string problem; // the last one said, so it is said once
  };

  static std::chrono::system_clock::time_point now() { return std::chrono::system_clock::now(); }

  // What a line of log `l` becomes in `out`.
  auto emit_to(const Log& l, std::string& out) {
    return [this, &l, &out](std::string_view text) {
      if (look_.timestamps) {
        if (stamp_text_.empty()) stamp_text_ = rfc3339_ms(stamp_) + ' ';
        out += stamp_text_;
      }
      out += l.prefix;
      out += text;
      out += '\n';
    };
  }

public:
  /// How much one read takes.
  static constexpr std::size_t chunk = std::size_t{64} << 10;

  MergedLogs(std::vector<MergeSource> sources, MergeLook look) : look_(look) {
    for (auto& s : sources) {
      Log log;
      log.role = std::move(s.role);
      log.path = std::move(s.path);
      log.command = std::move(s.command);
      if (look_.prefix) {
        const std::string p = log.role + " |";
        log.prefix = (look_.color ? stackup::detail::styled(p, fmt::fg(role_color(log.role))) : p) + ' ';
      }
      logs_.push_back(std::move(log));
    }
  }
  ~MergedLogs() {
    for (auto& l : logs_) close_log(l);
    if (inotify_ >= 0) ::close(inotify_);
  }
  MergedLogs(const MergedLogs&) = delete;
  MergedLogs& operator=(const MergedLogs&) = delete;

  /// Opens each log and appends to `out` what it holds now: all of it, or its
  /// last `tail` lines (a last line without its newline counts as one). Following
  /// (`follow`), an unfinished last line waits for its newline, and `tail` 0
  /// starts at that line, so it is not cut; otherwise it is ended with '\n'. A
  /// log that cannot be opened is said in `problems` (one line each) and, when
  /// following, looked for again later.
  void start(std::optional<std::size_t> tail, bool follow, std::string& out, std::vector<LogProblem>& problems) {
    stamp_ = now();
    stamp_text_.clear();
    for (auto& l : logs_) {
      if (l.command) {
        l.since = stamp_;
        run(l, {.tail = tail, .follow = follow}, &problems);
        if (!follow) {
          std::string failure;
          buf_.resize(chunk);
          l.program.read(buf_, [&](std::string_view d) { l.lines.feed(d, emit_to(l, out)); }, failure, true);
          if (!failure.empty()) problems.push_back({l.role + ": " + failure, false});
          l.lines.flush(emit_to(l, out));
        }
        continue;
      }
      const int fd = open_checked(l, &problems);
      if (fd < 0) continue;
      adopt(l, fd);
      struct ::stat st {};
      const auto size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
      if (tail) {
        l.offset = tail_start(fd, size, *tail, follow);
        if (*tail == 0 && !follow) l.offset = size;
      }
      read_appended(l, out, size);
      if (!follow) l.lines.flush(emit_to(l, out));
    }
  }

  /// Follows the logs until `stop` is requested or `write` fails (returns false):
  /// each wake's whole lines go out in one `write`. It wakes when a log is
  /// written to, created or replaced (inotify), when `stop` is requested, and
  /// every 250 ms in any case (a directory made later, a file system inotify
  /// does not see). Before it returns it reads what was appended last and gives
  /// out the unfinished lines, each ended with '\n'. Returns whether every write worked.
  bool follow(const std::stop_token& stop, const std::function<bool(std::string_view)>& write) {
    inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const struct Closer {
      int fd;
      ~Closer() {
        if (fd >= 0) ::close(fd);
      }
    } wake_closer{wake};
    const std::stop_callback on_stop(stop, [wake] {
      const std::uint64_t one = 1;
      if (wake >= 0) [[maybe_unused]] const auto n = ::write(wake, &one, sizeof one);
    });
    for (auto& l : logs_) watch(l);
    std::string out;
    bool more = false; // a log had more than one pass reads: look again at once
    auto last_look = std::chrono::steady_clock::now();
    std::vector<pollfd> fds;
    while (!stop.stop_requested()) {
      fds.assign({{inotify_, POLLIN, 0}, {wake, POLLIN, 0}});
      for (const auto& l : logs_)
        if (l.program.open()) fds.push_back({l.program.fd(), POLLIN, 0});
      const int n = ::poll(fds.data(), fds.size(), more ? 0 : 250);
      // The fallback, also while the logs keep it busy: every path looked at again.
      bool recheck = std::chrono::steady_clock::now() - last_look >= std::chrono::milliseconds(250);
      if (n > 0 && (fds[0].revents & POLLIN) != 0) recheck |= drain_inotify();
      if (recheck) last_look = std::chrono::steady_clock::now();
      out.clear();
      more = pass(out, recheck);
      if (!out.empty() && !write(out)) return false;
    }
    out.clear();
    for (auto& l : logs_) l.next_run = std::chrono::steady_clock::time_point::max(); // no program runs again
    pass(out, true);
    for (auto& l : logs_) {
      l.lines.flush(emit_to(l, out));
      l.program.end();
    }
    return out.empty() || write(out);
  }

  /// Where the last `n` lines of the file `fd` (of `size` bytes) start, a last
  /// line without its newline counting as one. `n` 0 while following: where
  /// that unfinished line starts (the end when there is none).
  static std::uint64_t tail_start(int fd, std::uint64_t size, std::size_t n, bool follow) {
    if (n == 0 && !follow) return size;
    const std::size_t wanted = n == 0 ? 1 : n;
    std::vector<char> buf(chunk);
    std::uint64_t pos = size;
    std::size_t newlines = 0;
    bool ends_with_newline = false;
    bool first = true;
    while (pos > 0) {
      const std::uint64_t len = std::min<std::uint64_t>(pos, chunk);
      pos -= len;
      const ssize_t got = ::pread(fd, buf.data(), len, static_cast<off_t>(pos));
      if (got != static_cast<ssize_t>(len)) return pos + len; // shrunk under us: from where it was read
      for (std::uint64_t i = len; i-- > 0;) {
        if (buf[i] != '\n') continue;
        if (first && pos + i == size - 1) { // a final newline ends the last line
          ends_with_newline = true;
          continue;
        }
        if (n == 0 && ends_with_newline) return size; // nothing unfinished
        if (++newlines == wanted) return pos + i + 1;
      }
      first = false;
    }
    if (n == 0 && ends_with_newline) return size;
    return 0;
  }

private:
  // Starts the program of log `l` for `request`; what stops it is a problem
  // (said once), and it is tried again later when following.
  void run(Log& l, const LogRequest& request, std::vector<LogProblem>* problems) {
    std::string problem;
    try {
      l.program.start(l.command(request));
      l.problem.clear();
    } catch (...) {
      problem = l.role + ": " + stackup::detail::current_message();
    }
    l.next_run = std::chrono::steady_clock::now() + next_pause(l, false);
    if (problem.empty()) return;
    if (problems != nullptr && problem != l.problem) problems->push_back({problem, false});
    l.problem = std::move(problem);
  }
  // How long before the program of `l` runs again: a second after a run that
  // gave lines, else twice as long as last time, up to 8 s (a stopped container's
  // `logs --follow` ends at once: it is not run in a tight loop).
  static std::chrono::milliseconds next_pause(Log& l, bool gave_lines) {
    using std::chrono::milliseconds;
    l.pause = gave_lines || l.pause == milliseconds(0) ? milliseconds(1000) : std::min(l.pause * 2, milliseconds(8000));
    return l.pause;
  }
  // Reads the output of the program of `l`; when it has ended (and is due),
  // runs it again for what was written since. Whether it has more to read.
  bool read_program(Log& l, std::string& out, bool recheck) {
    if (l.program.open()) {
      std::string failure;
      bool gave = false;
      buf_.resize(chunk);
      const bool more = l.program.read(buf_, [&](std::string_view d) {
        gave = true;
        l.lines.feed(d, emit_to(l, out));
      }, failure);
      if (l.program.open()) return more;
      l.lines.flush(emit_to(l, out)); // its end ends its last line
      l.since = now();
      l.next_run = std::chrono::steady_clock::now() + next_pause(l, gave);
      return false;
    }
    if (recheck && std::chrono::steady_clock::now() >= l.next_run)
      run(l, {.tail = std::nullopt, .follow = true, .since = l.since}, nullptr);
    return false;
  }

  // O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO in the log's place is not
  // read (nor waited on); what is read is the file checked here.
  int open_checked(Log& l, std::vector<LogProblem>* problems) {
    const int fd = ::open(l.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct ::stat st {};
    std::string problem;
    const bool missing = fd < 0 && errno == ENOENT;
    if (missing)
      problem = fmt::format("{} has no log yet: {} does not exist (it has not been started since it was provisioned, "
                            "or it is deprovisioned)", l.role, l.path.string());
    else if (fd < 0 && errno != ELOOP)
      problem = fmt::format("{}: cannot open {}: {}", l.role, l.path.string(), std::strerror(errno));
    else if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
      problem = fmt::format("{}: cannot show {}: it is not a regular file (a symlink, a FIFO or a device?): remove it",
                            l.role, l.path.string());
    if (problem.empty()) return fd;
    if (fd >= 0) ::close(fd);
    if (problems != nullptr && problem != l.problem) problems->push_back({problem, missing});
    l.problem = std::move(problem);
    return -1;
  }

  void adopt(Log& l, int fd) {
    struct ::stat st {};
    ::fstat(fd, &st);
    close_log(l);
    l.fd = fd;
    l.dev = st.st_dev;
    l.ino = st.st_ino;
    l.offset = 0;
    l.problem.clear();
  }

  static void close_log(Log& l) {
    if (l.fd >= 0) ::close(l.fd);
    l.fd = -1;
  }

  // Wake-ups only: what is read is decided by the descriptors, not the watches.
  void watch(Log& l) {
    if (inotify_ < 0) return;
    if (l.dir_watch < 0 && l.path.has_parent_path()) {
      l.dir_watch = ::inotify_add_watch(inotify_, l.path.parent_path().c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
      if (l.dir_watch >= 0) dir_watches_.push_back(l.dir_watch);
    }
    if (l.fd >= 0) l.file_watch = ::inotify_add_watch(inotify_, l.path.c_str(), IN_MODIFY | IN_DONT_FOLLOW);
  }

  // Reads the pending inotify events; whether one was about a directory (a log
  // that may have appeared or been replaced).
  bool drain_inotify() {
    alignas(inotify_event) char buf[8192];
    bool dir_event = false;
    for (;;) {
      const ssize_t got = ::read(inotify_, buf, sizeof buf);
      if (got <= 0) break;
      for (ssize_t at = 0; at < got;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
        if ((e->mask & IN_Q_OVERFLOW) != 0 || std::ranges::find(dir_watches_, e->wd) != dir_watches_.end())
          dir_event = true;
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
    return dir_event;
  }

  // Appends what log `l` holds past its offset, in whole lines, reading at most
  // up to `limit` (and a few chunks at a time, so one busy log cannot starve the
  // others). Whether it stopped with more to read.
  bool read_appended(Log& l, std::string& out, std::optional<std::uint64_t> limit = std::nullopt) {
    if (l.fd < 0) return false;
    struct ::stat st {};
    if (::fstat(l.fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) < l.offset) { // truncated
      l.lines.flush(emit_to(l, out));
      l.offset = 0;
    }
    buf_.resize(chunk);
    for (int round = 0; limit || round < 64; ++round) {
      std::size_t want = chunk;
      if (limit) {
        if (l.offset >= *limit) return false;
        want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, *limit - l.offset));
      }
      const ssize_t got = ::pread(l.fd, buf_.data(), want, static_cast<off_t>(l.offset));
      if (got <= 0) return false;
      l.offset += static_cast<std::uint64_t>(got);
      l.lines.feed(std::string_view(buf_.data(), static_cast<std::size_t>(got)), emit_to(l, out));
    }
    return !limit;
  }

  // One look at every log, in the stack's order; `recheck`: also whether its
  // path now names another file (or names one at last). Whether a log has more.
  bool pass(std::string& out, bool recheck) {
    stamp_ = now();
    stamp_text_.clear();
    bool more = false;
    for (auto& l : logs_) {
      if (l.command) {
        more |= read_program(l, out, recheck);
        continue;
      }
      more |= read_appended(l, out);
      if (!recheck && l.fd >= 0) continue;
      if (l.dir_watch < 0) watch(l);
      const int fd = open_checked(l, nullptr);
      if (fd < 0) continue;
      struct ::stat st {};
      if (l.fd >= 0 && ::fstat(fd, &st) == 0 && st.st_dev == l.dev && st.st_ino == l.ino) {
        ::close(fd); // still the same file (held open, so its inode number is not another's)
        continue;
      }
      // Replaced, or there at last: what the old one held is out; the new one from its start.
      while (read_appended(l, out)) {
      }
      l.lines.flush(emit_to(l, out));
      adopt(l, fd);
      watch(l);
      more |= read_appended(l, out);
    }
    return more;
  }

  MergeLook look_;
  std::vector<Log> logs_;
  int inotify_ = -1;
  std::vector<int> dir_watches_;
  std::vector<char> buf_;
  std::chrono::system_clock::time_point stamp_{};
  std::string stamp_text_;
};

/// Writes `data` to the descriptor `fd` in full (one write unless the kernel
/// takes less); false when it cannot.
inline bool write_fully(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

} // namespace stackup::cli::detail

#endif // STACKUP_DETAIL_CLI_MERGE_HPP
// ---- end stackup/detail/cli/merge.hpp ----

// ---- begin stackup/detail/cli/runner.hpp ----
// stackup — the command line's runner (internal, part of <stackup/cli.hpp>): one
// command against a stack, read through its StackView and acted on through a
// Front (the kind of stack erased), so it is compiled once whatever the stack.
// SPDX-License-Identifier: MIT

#ifndef STACKUP_DETAIL_CLI_RUNNER_HPP
#define STACKUP_DETAIL_CLI_RUNNER_HPP


// ---- begin stackup/detail/cli/supervisor.hpp ----
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
// ---- end stackup/detail/cli/supervisor.hpp ----

#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
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

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace stackup::cli::detail {

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
  SuperviseResult (*supervise)(void*, SuperviseOptions);
};
template <class S> void up_of(void* s, const UpOptions& o) { static_cast<S*>(s)->up(o); }
template <class S> void down_of(void* s, const DownOptions& o) { static_cast<S*>(s)->down(o); }
template <class S> void up_one_of(void* s, std::string_view role, const UpOptions& o) { static_cast<S*>(s)->up(role, o); }
template <class S> void down_one_of(void* s, std::string_view role, const DownOptions& o) {
  static_cast<S*>(s)->down(role, o);
}
template <class S> Observer on_event_of(void* s, Observer o) { return static_cast<S*>(s)->on_event(std::move(o)); }
template <class S> SuperviseResult supervise_of(void* s, SuperviseOptions o) {
  return stackup::supervise(*static_cast<S*>(s), std::move(o));
}
template <class S> Front front_of(S& s) noexcept {
  return {&s, &up_of<S>, &down_of<S>, &up_one_of<S>, &down_one_of<S>, &on_event_of<S>, &supervise_of<S>};
}

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
    const Grammar grammar(builtin_verbs(builtins()), options_, program_);
    if (wants_help(args)) {
      out_ << help(grammar);
      return exit_success;
    }
    if (auto code = grammar.global(args, out_, err_, fancy_err_)) return *code;
    Invocation inv{.program = program_, .verb = {}, .out = out_, .err = err_, .color_out = fancy_out_,
                   .color_err = fancy_err_, .lock_file = options_.lock_file};
    const VerbSpec* verb = nullptr;
    if (auto problem = parse(args, grammar, inv, verb)) return usage_error(grammar, *problem);
    if (verb->check)
      if (auto problem = verb->check(inv)) return usage_error(grammar, *problem);
    if (!verb->run) return usage_error(grammar, fmt::format("'{} {}' has no handler: the program defines it without one", args[0], inv.verb));
    try {
      return verb->run(inv);
    } catch (...) { // a host's handler (the library's report their own failures)
      err_ << label("error", fmt::terminal_color::red) << ": " << fmt::format("{} {} failed: ", args[0], inv.verb)
           << stackup::detail::current_message() << '\n';
      return exit_failure;
    }
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
  // A log file of its own, or a log its engine keeps (log_command()).
  [[nodiscard]] bool keeps_log(std::size_t k) const {
    const std::string_view r = stack_.roles()[k];
    return stack_.has_log_command(r) || !stack_.log_file(r).empty();
  }
  [[nodiscard]] std::string logging_roles() const {
    std::string s;
    for (std::size_t i = 0; i < size; ++i)
      if (keeps_log(i)) s += fmt::format("{}{}", s.empty() ? "" : ", ", stack_.roles()[i]);
    return s.empty() ? "none" : s;
  }

  // The library's verbs bound to this Runner: each builds the Command its
  // member function takes from what the table parsed.
  Builtins builtins() {
    const auto command = [](const Invocation& inv, Verb verb) {
      Command cmd;
      cmd.whole_stack = inv.whole_stack;
      cmd.index = inv.index;
      cmd.verb = verb;
      cmd.force = inv.has("force");
      cmd.parallel = inv.has("parallel");
      cmd.rollback = !inv.has("no-rollback");
      cmd.json = inv.has("json");
      cmd.follow = inv.has("follow");
      cmd.no_prefix = inv.has("no-prefix");
      cmd.timestamps = inv.has("timestamps");
      cmd.attach = inv.has("attach");
      cmd.abort_on_exit = inv.has("abort-on-exit");
      if (const auto tail = inv.value("tail")) {
        std::size_t n = 0;
        std::from_chars(tail->data(), tail->data() + tail->size(), n); // checked while parsing
        cmd.tail = n;
      }
      return cmd;
    };
    return {
        .up = [this, command](const Invocation& inv) {
          const Command cmd = command(inv, Verb::up);
          return cmd.attach ? attached(cmd) : operate(cmd);
        },
        .down = [this, command](const Invocation& inv) { return operate(command(inv, Verb::down)); },
        .status = [this, command](const Invocation& inv) { return status(command(inv, Verb::status)); },
        .logs = [this, command](const Invocation& inv) { return logs(command(inv, Verb::logs)); },
        .roles = [this](const Invocation& inv) {
          for (std::size_t i = 0; i < size; ++i) inv.out << role_at(i) << '\n';
          inv.out.flush();
          return inv.out ? exit_success : exit_failure;
        },
        .up_check = [](const Invocation& inv) -> std::optional<std::string> {
          if (inv.has("attach")) return std::nullopt;
          for (const std::string_view o : {"no-prefix", "timestamps", "abort-on-exit"})
            if (inv.has(o)) return fmt::format("option '--{}' is for 'stack up --attach': add --attach (-a)", o);
          return std::nullopt;
        },
        .logs_check = [this](const Invocation& inv) -> std::optional<std::string> {
          if (inv.whole_stack) {
            if (logging_roles() != "none") return std::nullopt;
            return fmt::format("no component of stack '{}' keeps a log ('{} stack status' shows them)", stack_.name(),
                               program_);
          }
          if (keeps_log(inv.index)) return std::nullopt;
          return fmt::format("{} ({}) keeps no log; components with a log: {}", describe(inv.index), flavor(inv.index),
                             logging_roles());
        },
    };
  }

  [[nodiscard]] std::string_view role_at(std::size_t k) const { return stack_.roles()[k]; }

  // Reads `<target> <verb> [options]` into `inv` and `verb`; returns the problem, if any.
  std::optional<std::string> parse(std::span<const std::string_view> args, const Grammar& grammar, Invocation& inv,
                                   const VerbSpec*& verb) const {
    if (args.empty()) return "missing command";
    const std::string_view target = args[0];
    if (target == "stack") {
      inv.whole_stack = true;
    } else {
      inv.whole_stack = false;
      inv.index = stack_.find(target);
      if (inv.index == size)
        return fmt::format("unknown component role '{}'; valid roles: {} (or 'stack' for all of them)", target,
                           roles_list());
      inv.role = target;
    }
    if (args.size() < 2)
      return fmt::format("missing command after '{}'; expected one of: {}", target, grammar.names(inv.whole_stack));
    inv.verb = args[1];
    verb = grammar.find(inv.verb, inv.whole_stack);
    if (verb == nullptr) {
      const VerbSpec* other = grammar.find(inv.verb, !inv.whole_stack);
      if (other != nullptr && !other->hidden && inv.whole_stack)
        return fmt::format("'stack {0}' is not a command: '{0}' is for one component at a time; try '<role> {0}' with "
                           "one of: {1}", inv.verb, suited_roles(*other, inv));
      if (other != nullptr && !other->hidden)
        return fmt::format("'{0} {1}' is not a command: '{1}' is for the whole stack; try 'stack {1}'", target, inv.verb);
      return fmt::format("unknown command '{}' for '{}'; expected one of: {}", inv.verb, target,
                         grammar.names(inv.whole_stack));
    }
    return grammar.parse_options(*verb, args.subspan(2), fmt::format("{} {}", target, inv.verb), inv);
  }

  // The roles `verb` (a role's verb) may act on: those its check lets through.
  [[nodiscard]] std::string suited_roles(const VerbSpec& verb, const Invocation& like) const {
    if (!verb.check) return roles_list();
    std::string s;
    for (std::size_t i = 0; i < size; ++i) {
      Invocation one{.program = like.program, .verb = verb.name, .whole_stack = false, .role = role_at(i), .index = i,
                     .out = like.out, .err = like.err};
      if (!verb.check(one)) s += fmt::format("{}{}", s.empty() ? "" : ", ", role_at(i));
    }
    return s.empty() ? "none" : s;
  }

  [[nodiscard]] std::string help(const Grammar& grammar) const {
    std::string s = fmt::format("\nroles of stack '{}':\n", stack_.name());
    std::size_t width = 0;
    for (auto r : stack_.roles()) width = std::max(width, r.size());
    std::size_t fwidth = 0;
    for (std::size_t i = 0; i < size; ++i) fwidth = std::max(fwidth, flavor(i).size());
    for (std::size_t i = 0; i < size; ++i) {
      std::string line = fmt::format("  {}  {}", padded(std::string(stack_.roles()[i]), width),
                                     padded(std::string(flavor(i)), fwidth));
      std::string deps;
      for (const std::string_view d : stack_.dependencies(stack_.roles()[i]))
        deps += fmt::format("{}{}", deps.empty() ? "" : ", ", d);
      if (!deps.empty()) line += fmt::format("  needs {}", deps);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      s += line + '\n';
    }
    return grammar.help(s);
  }

  int usage_error(const Grammar& grammar, const std::string& problem) {
    return grammar.usage_error(err_, fancy_err_, problem);
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
    return fancy_err_ ? stackup::detail::styled(text, fmt::fg(color) | fmt::emphasis::bold) : std::string(text);
  }
  void note(std::string_view text) {
    if (fancy_out_) out_ << fmt::format("{} {}\n", stackup::detail::styled("•", fmt::fg(fmt::terminal_color::cyan)), text);
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
        const std::lock_guard lock(out_mutex_);
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

  // ---- supervision state (Options::supervision_dir) --------------------------------

  [[nodiscard]] std::filesystem::path supervision_dir() const { return options_.supervision_dir; }

  // The running supervisor's view merged into `rows` (restarts, its state, the
  // last exit it saw); the supervisor, or nullopt when none runs (then rows
  // stay the components' own: restarts 0, supervision none).
  std::optional<::stackup::detail::posix::ProcessId> supervision_into(std::vector<ComponentStatus>& rows) {
    if (options_.supervision_dir.empty()) return std::nullopt;
    const auto supervisor = stackup::detail::supervisor::running(supervision_dir());
    if (!supervisor) return std::nullopt;
    const auto record = stackup::detail::supervision::read_record(supervision_dir());
    if (!record) return supervisor;
    for (ComponentStatus& r : rows)
      for (const auto& row : *record)
        if (row.role == r.role) {
          r.restarts = row.restarts;
          r.supervision = row.state;
          if (row.exit && !r.exit) r.exit = row.exit;
        }
    return supervisor;
  }

  // Marks what a down is about to stop down, and clears the marks of what an up
  // brought up, so that a running supervisor never restarts what a down stopped.
  // Only where the directory exists: a supervisor creates it, and its own up
  // clears every mark when it starts. Called holding the stack's lock.
  void mark_supervision(const Command& cmd, bool up) {
    namespace sv = ::stackup::detail::supervision;
    if (options_.supervision_dir.empty()) return;
    const std::filesystem::path dir = supervision_dir();
    const auto fd = sv::open_state_dir(dir, false);
    if (!fd) return;
    if (!up) {
      if (cmd.whole_stack) sv::mark_down(dir, sv::whole_stack);
      else
        for (const std::string_view r : stack_.plan_down(role(cmd.index))) sv::mark_down(dir, r);
      return;
    }
    if (cmd.whole_stack) {
      sv::clear_down(dir, sv::whole_stack);
      for (const std::string_view r : stack_.roles()) sv::clear_down(dir, r);
      return;
    }
    const auto plan = stack_.plan_up(role(cmd.index));
    const auto in_plan = [&](std::string_view r) { return std::find(plan.begin(), plan.end(), r) != plan.end(); };
    // The whole stack was marked down: what this up leaves down stays marked, one by one.
    if (sv::marked_down(fd.get(), sv::whole_stack)) {
      for (const std::string_view r : stack_.roles())
        if (!in_plan(r)) sv::mark_down(dir, r);
      sv::clear_down(dir, sv::whole_stack);
    }
    for (const std::string_view r : plan) sv::clear_down(dir, r);
  }

  // `stack down --force`: the supervision directory goes with the stack (the
  // supervisor was stopped first), removed through its descriptor.
  void remove_supervision() {
    using px = ::stackup::detail::posix;
    if (options_.supervision_dir.empty()) return;
    const std::filesystem::path dir = supervision_dir();
    const px::Fd fd = ::stackup::detail::supervision::open_state_dir(dir, false);
    if (!fd) return;
    if (const px::Removal r = px::remove_contents(fd.get()))
      throw Error(fmt::format("cannot remove the supervision state: {}", px::removal_error(dir, r)));
    // By path, on purpose: rmdir removes only an empty directory and never
    // follows a symlink (ENOTDIR), so a swap in between can at worst remove an
    // empty directory, losing nothing; one another process filled stays.
    ::rmdir(dir.c_str());
  }

  int status(const Command& cmd) {
    StackLock lock;
    if (auto code = take_lock(lock, LockMode::shared, cmd, nullptr)) return *code;
    try {
      // One query round for the whole command: the rows and what supervision
      // adds to them (exits) come from one engine call per engine and stack.
      const stackup::detail::WalkRound round;
      std::vector<ComponentStatus> rows = stack_.status();
      const auto supervisor = supervision_into(rows);
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
        if (!options_.supervision_dir.empty())
          out_ << (supervisor ? fmt::format("supervisor: pid {}\n", supervisor->pid) : std::string("supervisor: none\n"));
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
    if (cmd.whole_stack) return merged_logs(cmd, merge_sources(), !cmd.no_prefix);
    // A log its engine keeps: the engine's reader, as `stack logs` runs it, for this one.
    if (stack_.has_log_command(role(cmd.index))) return merged_logs(cmd, {merge_source(cmd.index)}, false);
    try {
      // Following ends with Ctrl-C or SIGTERM: the way it is meant to end, so exit 0.
      // Handled from before the first line is out, so that one sent after it is.
      std::optional<Interrupts> interrupts;
      if (cmd.follow) interrupts.emplace(fmt::format("\n{}: interrupted again: stopped at once\n", program_));
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
        follow(path, end, out_, interrupts->token());
        if (!out_) throw Error("cannot write the log: the output is closed (what read it, a pipe or a terminal, has gone)");
      }
      return exit_success;
    } catch (...) {
      return report(fmt::format("cannot read the log of {}", describe(cmd.index)), std::current_exception(), cmd, {});
    }
  }

  // The log of component k: its engine's reader (log_command()), else its file.
  [[nodiscard]] MergeSource merge_source(std::size_t k) const {
    const std::string_view r = role(k);
    if (!stack_.has_log_command(r)) return {std::string(r), stack_.log_file(r)};
    return {std::string(r), {}, [view = stack_, r](const LogRequest& request) { return view.log_command(r, request); }};
  }
  // The logs of the components that keep one, in the stack's order.
  [[nodiscard]] std::vector<MergeSource> merge_sources() const {
    std::vector<MergeSource> sources;
    for (std::size_t i = 0; i < size; ++i)
      if (keeps_log(i)) sources.push_back(merge_source(i));
    return sources;
  }

  // Writes merged output in one piece: to standard output itself when `out_` is
  // std::cout (after what the stream holds), so lines written at once arrive at once.
  bool write_out(std::string_view data) {
    if (&out_ == &std::cout) {
      out_.flush();
      std::fflush(stdout);
      return write_fully(STDOUT_FILENO, data);
    }
    out_.write(data.data(), static_cast<std::streamsize>(data.size()));
    out_.flush();
    return static_cast<bool>(out_);
  }

  // `stack logs`: every log, merged line by line (see MergedLogs); and `<role>
  // logs` of a log its engine keeps (one source, no prefix).
  int merged_logs(const Command& cmd, std::vector<MergeSource> sources, bool prefix) {
    try {
      // Following ends with Ctrl-C or SIGTERM: the way it is meant to end, so exit 0.
      // Handled from before the first line is out, so that one sent after it is.
      std::optional<Interrupts> interrupts;
      if (cmd.follow) interrupts.emplace(fmt::format("\n{}: interrupted again: stopped at once\n", program_));
      MergedLogs logs(std::move(sources), {.prefix = prefix, .timestamps = cmd.timestamps, .color = fancy_out_});
      std::string text;
      std::vector<LogProblem> problems;
      logs.start(cmd.tail, cmd.follow, text, problems);
      bool failed = false;
      for (const auto& p : problems) {
        err_ << fmt::format("{}: {}{}\n", program_, p.text, cmd.follow ? "; waiting for it" : "");
        failed |= !p.missing && !cmd.follow;
      }
      err_.flush();
      bool written = text.empty() || write_out(text);
      if (written && cmd.follow)
        written = logs.follow(interrupts->token(), [this](std::string_view data) { return write_out(data); });
      if (!written) throw Error("cannot write the logs: the output is closed (what read it, a pipe or a terminal, has gone)");
      return failed ? exit_failure : exit_success;
    } catch (...) {
      const std::string what = cmd.whole_stack ? fmt::format("the logs of stack '{}'", stack_.name())
                                               : fmt::format("the log of {}", describe(cmd.index));
      return report("cannot read " + what, std::current_exception(), cmd, {});
    }
  }

  // `outer`: the operation runs under the caller's Ctrl-C handling, stopped by
  // that token only (an attached `up` taking the stack down after a Ctrl-C).
  int operate(const Command& cmd, const std::stop_token* outer = nullptr) {
    const bool up = cmd.verb == Verb::up;
    // A closed output must not stop the operation half-way: its writes fail
    // instead, and the exit status says so once it is done.
    const PipeGuard pipe_guard;
    // Ctrl-C (or SIGTERM) stops the operation as a failure would: up rolls back,
    // down finishes the component in flight; a second one ends the process at once.
    std::optional<Interrupts> interrupts;
    if (outer == nullptr)
      interrupts.emplace(fmt::format(
          "\n{}: interrupted again: stopped at once; the stack may be partly {}: '{} stack down --force' cleans it up\n",
          program_, up ? "up" : "down", program_));
    const std::stop_token stop = outer != nullptr ? *outer : interrupts->token();
    // `stack down` stops the stack's supervisor before anything else, so that it
    // restarts nothing this down stops (DESIGN §10); it leaves the stack as it is.
    if (cmd.whole_stack && !up && !options_.supervision_dir.empty()) {
      try {
        if (const auto p = stackup::detail::supervisor::stop(supervision_dir(), std::chrono::seconds(10)))
          note(fmt::format("stopped the stack's supervisor (pid {})", p->pid));
      } catch (...) {
        return report(fmt::format("{}: cannot stop the stack's supervisor", command_name(cmd)), std::current_exception(),
                      cmd, {});
      }
    }
    // One transition of the stack at a time: the states below are read holding it.
    StackLock lock;
    if (auto code = take_lock(lock, LockMode::exclusive, cmd, &stop)) return *code;
    if (!up) {
      try {
        mark_supervision(cmd, false);
      } catch (...) {
        return report(fmt::format("{}: cannot mark it down for the stack's supervisor", command_name(cmd)),
                      std::current_exception(), cmd, {});
      }
    }
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
      if (up) mark_supervision(cmd, true);
      else if (cmd.whole_stack && cmd.force) remove_supervision();
    } catch (...) {
      const std::string what = command_name(cmd);
      const int sig = outer == nullptr || stop.stop_requested() ? Interrupts::signal() : 0;
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
    if (fancy_out_) out_ << fmt::format("{}\n", stackup::detail::styled(summary, fmt::emphasis::bold));
    else out_ << summary << '\n';
    return output_failed(exit_success);
  }

  // `stack up --attach`: the ordinary `stack up` (its lock released when it
  // returns), then in the foreground: the merged output of every log from its
  // current end, on a thread of its own, while this thread supervises the stack
  // (stackup::supervise), its events printed between the lines. Ctrl-C or
  // SIGTERM: supervision stops, the output is read to its end, and the stack
  // goes down (exit 0 when it went down cleanly, else 1); a second one ends the
  // process at once (130). With --abort-on-exit the first component to exit
  // takes the stack down the same way, and its exit status becomes ours.
  int attached(const Command& cmd) {
    const PipeGuard pipe_guard;
    // One handling of Ctrl-C from the start of up to the end of down, so that
    // none goes unhandled between them: the first stops what runs (up rolls
    // back, or the stack goes down), a second kills what is left without grace
    // (each component that can: kill()) and ends the process at once.
    const Interrupts interrupts(
        fmt::format("\n{0}: interrupted again: what was left was killed, without waiting; '{0} stack status' shows "
                    "what is still there, '{0} stack down' takes it down\n",
                    program_),
        [this] {
          const auto roles = stack_.roles();
          for (std::size_t i = roles.size(); i-- > 0;) (void)stack_.kill(roles[i]); // dependents first
        });
    const std::stop_token stop = interrupts.token();
    if (const int code = operate(cmd, &stop); code != exit_success) return code;
    // Wakes the supervisor, and this thread, at the first Ctrl-C.
    const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const struct Closer {
      int fd;
      ~Closer() {
        if (fd >= 0) ::close(fd);
      }
    } wake_closer{wake};
    const std::stop_callback on_interrupt(interrupts.token(), [wake] {
      const std::uint64_t one = 1;
      if (wake >= 0) [[maybe_unused]] const auto n = ::write(wake, &one, sizeof one);
    });

    MergedLogs logs(merge_sources(), {.prefix = !cmd.no_prefix, .timestamps = cmd.timestamps, .color = fancy_out_});
    {
      std::string none; // from the current end: no history
      std::vector<LogProblem> problems;
      logs.start(std::size_t{0}, true, none, problems);
    }
    std::jthread follower([this, &logs](const std::stop_token& done) {
      logs.follow(done, [this](std::string_view data) {
        const std::lock_guard lock(out_mutex_);
        return write_out(data);
      });
    });
    // One supervisor per stack: this one takes over from a detached one, and
    // shares its state directory, so that a down from another process wins here too.
    std::filesystem::path state_dir;
    if (!options_.supervision_dir.empty()) {
      try {
        if (const auto p = stackup::detail::supervisor::stop(supervision_dir(), std::chrono::seconds(10)))
          note(fmt::format("the stack's supervisor (pid {}) stopped: this one supervises it now", p->pid));
        state_dir = supervision_dir();
      } catch (...) {
        return report(fmt::format("{}: cannot stop the stack's supervisor", command_name(cmd)), std::current_exception(),
                      cmd, {});
      }
    }
    Tally tally;
    const ObserverGuard guard{front_, front_.on_event(front_.stack, observer(tally))}; // a restart's actions
    SuperviseOptions options{.stop = &stop,
                             .on_event = [this](const SupervisionEvent& e) {
                               try {
                                 const std::lock_guard lock(out_mutex_);
                                 out_ << supervision_line(e, fancy_out_) << '\n';
                                 out_.flush();
                               } catch (...) {
                                 // Printing must never stop the supervisor.
                               }
                             },
                             .wake_fd = wake,
                             .on_exit = cmd.abort_on_exit ? OnExit::abort : OnExit::policy,
                             .state_dir = state_dir,
                             .lock_file = std::filesystem::path(options_.lock_file)};
    bool failed = false;
    std::optional<std::pair<std::string, Exit>> ended; // --abort-on-exit: who exited, and how
    try {
      SuperviseResult result = front_.supervise(front_.stack, std::move(options));
      if (result.exit) ended.emplace(result.role, *result.exit);
    } catch (...) {
      failed = true;
      const std::lock_guard lock(out_mutex_);
      err_ << label("error", fmt::terminal_color::red) << ": supervision of stack '" << stack_.name()
           << "' stopped: " << stackup::detail::current_message()
           << "\nnothing is restarted any more; the output still follows; Ctrl-C takes the stack down\n";
      err_.flush();
    }
    // Nothing (left) to supervise: still attached until Ctrl-C.
    if (!ended)
      while (!stop.stop_requested()) {
        pollfd p{wake, POLLIN, 0};
        if (::poll(&p, 1, wake >= 0 ? -1 : 100) < 0 && errno != EINTR) break;
      }
    follower.request_stop();
    follower.join(); // what the logs hold up to now is out
    if (ended) {
      const std::lock_guard lock(out_mutex_);
      note(fmt::format("{} exited ({}): the stack goes down (--abort-on-exit)", ended->first, how(ended->second)));
    }
    // The stack goes down as `stack down` would, under this Ctrl-C handling: a
    // second Ctrl-C ends the process at once.
    Command down = cmd;
    down.verb = Verb::down;
    down.attach = false;
    const std::stop_token never;
    const int code = operate(down, &never);
    if (code != exit_success) return code;
    if (ended) {
      const Exit& e = ended->second;
      return e.code ? *e.code : e.signal ? 128 + *e.signal : exit_failure;
    }
    return failed ? exit_failure : exit_success;
  }

  // How a component stopped, in a few words.
  static std::string how(const Exit& e) {
    if (e.code) return fmt::format("exit status {}", *e.code);
    if (e.signal) return fmt::format("killed by signal {}", *e.signal);
    if (!e.liveness.empty()) return fmt::format("liveness: {}", e.liveness);
    return e.error.empty() ? std::string("stopped") : e.error;
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
  std::mutex out_mutex_; // attached: the output's lines come from two threads
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

} // namespace stackup::cli::detail

#endif // STACKUP_DETAIL_CLI_RUNNER_HPP
// ---- end stackup/detail/cli/runner.hpp ----

namespace stackup::cli {


/// For a host that may have no stack to hand (stackctl without a stack file):
/// runs a command line that needs none — `--help` (without the roles),
/// `--version`, `--completion bash`, or an unknown option before the command (a
/// usage error) — and returns its exit status; nothing for any other command
/// line, which needs the stack (then call `run`). Never throws.
inline std::optional<int> run_without_stack(std::span<const std::string_view> args, std::ostream& out,
                                            std::ostream& err, const Options& options = {}) noexcept {
  try {
    const detail::Grammar grammar(detail::builtin_verbs({}), options,
                                  options.program.empty() ? std::string_view("stack") : options.program);
    if (detail::wants_help(args)) {
      out << grammar.help({});
      return exit_success;
    }
    return grammar.global(args, out, err, detail::decorate(err, options.color));
  } catch (...) {
    return exit_failure;
  }
}

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
// ---- end stackup/cli.hpp ----
#endif // C++20
