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

// ---- begin stackup/cli.hpp ----
// stackup — cli::run: ZenML's command line (`stack up`, `stack down --force`,
// `orchestrator up`, `orchestrator logs`, ...) for any Stack, in one call.
// SPDX-License-Identifier: MIT
//
// This header holds every public name of the command line: the types a host
// program fills in (Options, VerbSpec, VerbOption), what a verb's handler gets
// (Invocation), the exit statuses, and the run functions. The machinery lives in
// detail/cli/ (grammar, completion, terminal, logs, runner), included below,
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
  std::function<std::optional<std::string>(const Invocation&)> logs_check;
};

// The library's verbs, in the order the usage lists them. A new one is an entry
// here and its handler in Builtins (bound in Runner::builtins).
inline std::vector<VerbSpec> builtin_verbs(const Builtins& b) {
  const VerbOption parallel{.name = "parallel", .letter = 'p', .help = "act on independent components at the same time"};
  return {
      {.name = "up",
       .scope = Scope::both,
       .options = {parallel, {.name = "no-rollback", .help = "when an action fails, leave what was done in place"}},
       .help = "provision and start every component",
       .role_help = "bring one component up, its dependencies first",
       .run = b.up},
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
       .scope = Scope::role,
       .options = {{.name = "tail",
                    .letter = 'n',
                    .value = "N",
                    .help = "print only the last N lines",
                    .needs = "a number of lines",
                    .example = "20",
                    .check = whole_lines},
                   {.name = "follow", .help = "keep printing what is appended, until Ctrl-C"}},
       .help = "print the component's log, where it keeps one",
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
    const auto by_name = [&v](std::string_view name) -> const VerbOption* {
      for (const auto& o : v.options)
        if (o.name == name) return &o;
      return nullptr;
    };
    const auto by_letter = [&v](char letter) -> const VerbOption* {
      for (const auto& o : v.options)
        if (o.letter != 0 && o.letter == letter) return &o;
      return nullptr;
    };
    const auto unknown = [&](std::string_view as_given) {
      if (v.options.empty()) return fmt::format("unknown option '{}' for '{}': it takes no options", as_given, where);
      return fmt::format("unknown option '{}' for '{}'; valid options: {}", as_given, where, spelled(v.options));
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
        for (const auto& o : v.options) {
          if (o.value.empty() && o.letter != 0) left += fmt::format(" [-{}]", o.letter); // flags by their letter
          else if (o.value.empty()) left += fmt::format(" [--{}]", o.name);
          else left += fmt::format(" [--{} {}]", o.name, o.value);
        }
        rows.emplace_back(std::move(left), !whole_stack && !v.role_help.empty() ? v.role_help : v.help);
      }
    rows.emplace_back("--help", "show the roles and options");
    std::size_t width = 0;
    for (const auto& r : rows) width = std::max(width, r.first.size());
    std::string s = fmt::format("usage: {}{}{} <stack|role> <command> [options]\n\n", program_,
                                options_.host_synopsis.empty() ? "" : " ", options_.host_synopsis);
    for (const auto& r : rows) s += fmt::format("  {}{}\n", padded(r.first, width + 3), r.second);
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
      for (const auto& o : v.options) {
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

// ---- begin stackup/detail/cli/runner.hpp ----
// stackup — the command line's runner (internal, part of <stackup/cli.hpp>): one
// command against a stack, read through its StackView and acted on through a
// Front (the kind of stack erased), so it is compiled once whatever the stack.
// SPDX-License-Identifier: MIT

#ifndef STACKUP_DETAIL_CLI_RUNNER_HPP
#define STACKUP_DETAIL_CLI_RUNNER_HPP


#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <optional>
#include <ostream>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

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
  [[nodiscard]] bool keeps_log(std::size_t k) const { return !stack_.log_file(stack_.roles()[k]).empty(); }
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
      if (const auto tail = inv.value("tail")) {
        std::size_t n = 0;
        std::from_chars(tail->data(), tail->data() + tail->size(), n); // checked while parsing
        cmd.tail = n;
      }
      return cmd;
    };
    return {
        .up = [this, command](const Invocation& inv) { return operate(command(inv, Verb::up)); },
        .down = [this, command](const Invocation& inv) { return operate(command(inv, Verb::down)); },
        .status = [this, command](const Invocation& inv) { return status(command(inv, Verb::status)); },
        .logs = [this, command](const Invocation& inv) { return logs(command(inv, Verb::logs)); },
        .roles = [this](const Invocation& inv) {
          for (std::size_t i = 0; i < size; ++i) inv.out << role_at(i) << '\n';
          inv.out.flush();
          return inv.out ? exit_success : exit_failure;
        },
        .logs_check = [this](const Invocation& inv) -> std::optional<std::string> {
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
    if (fancy_out_) out_ << fmt::format("{}\n", stackup::detail::styled(summary, fmt::emphasis::bold));
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
