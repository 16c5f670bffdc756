// stackup — cli::run: ZenML's command line (`stack up`, `stack down --force`,
// `orchestrator up`, `orchestrator logs`, ...) for any Stack, in one call.
// SPDX-License-Identifier: MIT
#pragma once
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

#include <stackup/component.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/format.hpp>
#include <stackup/options.hpp>
#include <stackup/stack_lock.hpp>
#include <stackup/stack_view.hpp>
#include <stackup/supervise.hpp>
#include <stackup/version.hpp>

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
#include <stackup/detail/cli/grammar.hpp>
#include <stackup/detail/cli/completion.hpp>
#include <stackup/detail/cli/terminal.hpp>
#include <stackup/detail/cli/logs.hpp>
#include <stackup/detail/cli/merge.hpp>
#include <stackup/detail/cli/runner.hpp>

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
