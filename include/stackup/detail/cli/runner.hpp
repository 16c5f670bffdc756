// stackup — the command line's runner (internal, part of <stackup/cli.hpp>): one
// command against a stack, read through its StackView and acted on through a
// Front (the kind of stack erased), so it is compiled once whatever the stack.
// SPDX-License-Identifier: MIT
#include <stackup/cli.hpp> // the public types it works on (cli.hpp includes this file after them)

#ifndef STACKUP_DETAIL_CLI_RUNNER_HPP
#define STACKUP_DETAIL_CLI_RUNNER_HPP

#include <stackup/component.hpp>
#include <stackup/detail/cli/completion.hpp>
#include <stackup/detail/cli/grammar.hpp>
#include <stackup/detail/cli/logs.hpp>
#include <stackup/detail/cli/merge.hpp>
#include <stackup/detail/cli/supervisor.hpp>
#include <stackup/detail/cli/terminal.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/format.hpp>
#include <stackup/options.hpp>
#include <stackup/stack_lock.hpp>
#include <stackup/stack_view.hpp>
#include <stackup/detail/round_hook.hpp>
#include <stackup/supervise.hpp>

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
