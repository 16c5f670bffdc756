// stackup — the command line's grammar (internal, part of <stackup/cli.hpp>): the
// verbs as data (the library's and the host's), the global options, and what
// follows from them without a stack: parsing, the usage, --help, --version and
// usage errors.
// SPDX-License-Identifier: MIT
#include <stackup/cli.hpp> // the public types it works on (cli.hpp includes this file after them)

#ifndef STACKUP_DETAIL_CLI_GRAMMAR_HPP
#define STACKUP_DETAIL_CLI_GRAMMAR_HPP

#include <stackup/version.hpp>

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
