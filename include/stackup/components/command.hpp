// stackup — Command<"role">: a component driven by shell commands, one per action
// and per query (k3d, kubectl, terraform, docker compose, ...).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/detail/shipped_component.hpp>
#include <stackup/errors.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace stackup {

/// Configuration of a Command; use designated initialisers, in this order.
/// Every command runs with `/bin/sh -c`. An empty action is "not implemented";
/// an empty `is_provisioned` counts as true, an empty `is_running` as
/// `is_provisioned()`.
struct CommandConfig {
  std::string name{};           ///< display name; empty: the role
  std::string provision{};      ///< creates the resources
  std::string deprovision{};    ///< destroys them
  std::string resume{};         ///< starts them
  std::string suspend{};        ///< stops them, keeping them
  std::string is_provisioned{}; ///< query: exit status 0 = provisioned
  std::string is_running{};     ///< query: exit status 0 = running
  /// Per command; then its process group is killed. milliseconds::max() waits
  /// for ever; zero (or negative, which counts as zero) gives no time at all.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  std::filesystem::path working_dir{};      ///< empty: the caller's current directory
  std::map<std::string, std::string> env{}; ///< variables added to (or replacing) the inherited environment
  /// Run every command as this user (its uid, gid and groups; HOME, USER and
  /// LOGNAME are its own unless `env` sets them). Empty or the current user:
  /// as this process. Another user needs root; the user must be able to enter
  /// `working_dir`.
  std::string user{};
  /// Whether a supervisor (stackup::supervise) runs `resume` again when the
  /// `is_running` query turns false without a down (it polls: a Command
  /// cannot tell of its exit), after what back-off, and when it gives up
  /// (DESIGN §10). A policy needs a `resume` command.
  RestartPolicy restart{};
  /// A probe a supervisor runs every `period` once the component is running;
  /// `failures` failures in a row count as an exit. Default: none.
  Liveness liveness{};
  /// Whether a supervisor suspends the component while one of its
  /// dependencies restarts, and resumes it once that one is ready again.
  /// Default: ignore.
  OnDependencyRestart on_dependency_restart{};
};

/// A component whose actions and queries are shell commands: the way a stack
/// drives engines beyond one machine instead of reimplementing them.
///
/// - Query: exit status 0 = true, any other = false; but a query that the shell
///   cannot run (status 126/127), that is killed, or that times out is an Error.
/// - Action: exit status 0 = done; otherwise TransitionError with the exit
///   status and the tail of its stderr. An empty action throws
///   NotImplementedError, which the stack treats as an absent action.
/// - Each command runs in its own session, stdin and stdout on /dev/null,
///   stderr captured; past `timeout` its whole process group is killed.
/// - With `user`, each command runs as that user (see CommandConfig::user);
///   that another user needs root is an Error naming the component.
///   A command that leaves a process running in the background should redirect
///   that process's output (`server > log 2>&1 &`).
///
/// ```cpp
/// stackup::Command<"orchestrator"> k3d{{
///     .name = "k3d-demo",
///     .provision = "k3d cluster create demo",
///     .deprovision = "k3d cluster delete demo",
///     .resume = "k3d cluster start demo",
///     .suspend = "k3d cluster stop demo",
///     .is_provisioned = "k3d cluster get demo",
///     .is_running = "k3d cluster list demo --no-headers | grep -q ' 1/1 '",
/// }};
/// ```
template <FixedString Role = "">
class Command : public detail::ShippedComponent<Command<Role>, Role, CommandConfig> {
  using Base = detail::ShippedComponent<Command<Role>, Role, CommandConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "command";
  /// The configuration type (designated initialisers).
  using Config = CommandConfig;

  /// A component with these commands; a negative timeout becomes zero. Runs nothing.
  explicit Command(Config config) : Base(std::move(config)) {
    config_.timeout = std::max(config_.timeout, std::chrono::milliseconds::zero());
  }

  /// The component a stack file's table describes (`flavor = "command"`, see
  /// docs/stack-files.md): `name`, the six commands, `timeout`, `working_dir`
  /// (default: the file's directory), `env`, `user`, and `restart`,
  /// `liveness` and `on_dependency_restart` (a policy needs `resume`). `Table` is
  /// stackup::StackFileTable (<stackup/stack_file.hpp>), or a type with its interface.
  template <class Table> [[nodiscard]] static Command from_table(const Table& t) {
    Config c;
    c.name = t.optional_string("name").value_or("");
    c.provision = t.optional_string("provision").value_or("");
    c.deprovision = t.optional_string("deprovision").value_or("");
    c.resume = t.optional_string("resume").value_or("");
    c.suspend = t.optional_string("suspend").value_or("");
    c.is_provisioned = t.optional_string("is_provisioned").value_or("");
    c.is_running = t.optional_string("is_running").value_or("");
    c.timeout = t.duration("timeout").value_or(c.timeout);
    c.working_dir = t.path_or("working_dir", t.directory());
    c.env = t.string_map("env");
    c.user = detail::user_from_table(t);
    const auto supervision = detail::supervision_from_table(
        t, c.resume.empty() ? "the component has no 'resume' command, so there is nothing to restart it with: add "
                              "resume = \"...\" (the command that starts it), or remove 'restart'"
                            : "");
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    return Command(std::move(c));
  }

  // name() (the configured name, or the role) and config() come from Base.

  /// What a supervisor reads: the config's `restart`, `liveness` and
  /// `on_dependency_restart`. (No exit_fd() or exit_status(): a Command
  /// cannot tell when or how what it started ends; a supervisor polls
  /// is_running().)
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

  /// For status tables: the query that decides the state.
  [[nodiscard]] std::string detail() const {
    const std::string& q = config_.is_running.empty() ? config_.is_provisioned : config_.is_running;
    if (q.empty()) return {};
    return "query: " + (q.size() > 60 ? q.substr(0, 57) + "..." : q);
  }

  /// Runs the `is_provisioned` query (true when it is empty).
  [[nodiscard]] bool is_provisioned() const {
    return config_.is_provisioned.empty() || query(config_.is_provisioned, "is_provisioned");
  }
  /// Runs the `is_running` query (is_provisioned() when it is empty).
  [[nodiscard]] bool is_running() const {
    return config_.is_running.empty() ? is_provisioned() : query(config_.is_running, "is_running");
  }

  /// Runs the `provision` command.
  void provision() { act(config_.provision, Transition::provision); }
  /// Runs the `deprovision` command.
  void deprovision() { act(config_.deprovision, Transition::deprovision); }
  /// Runs the `resume` command.
  void resume() { act(config_.resume, Transition::resume); }
  /// Runs the `suspend` command.
  void suspend() { act(config_.suspend, Transition::suspend); }

private:
  using Base::config_;
  using Base::who;

  [[nodiscard]] detail::posix::ShellResult run(const std::string& command) const {
    using px = detail::posix;
    const auto as = px::run_as(config_.user, who());
    try {
      return px::run_shell(command, config_.timeout, config_.working_dir, config_.env, as ? &*as : nullptr);
    } catch (const Error& e) {
      // "cannot start '/bin/sh': ...": say whose command it was, and which.
      throw Error("stackup: " + who() + ": `" + command + "`: " + std::string(detail::unprefixed(e.what())));
    }
  }

  static std::string stderr_part(const detail::posix::ShellResult& r) {
    const std::string tail = detail::posix::text_tail(r.stderr_tail);
    return tail.empty() ? std::string(" (no stderr output)") : "; stderr:" + tail;
  }

  [[nodiscard]] bool query(const std::string& command, std::string_view which) const {
    using px = detail::posix;
    const auto r = run(command);
    const std::string where = "stackup: " + who() + ": " + std::string(which) + " query `" + command + "` ";
    if (r.stopped)
      throw InterruptedError(where + "was stopped with its process group: a stop was requested" + stderr_part(r));
    if (r.timed_out)
      throw Error(where + "did not finish within " + px::format_duration(config_.timeout) +
                  " and was killed with its process group" + stderr_part(r));
    if (r.exit.code != CLD_EXITED)
      throw Error(where + "ended with " + px::describe_exit(r.exit) + ", neither yes nor no" + stderr_part(r));
    if (r.exit.status == 126 || r.exit.status == 127)
      throw Error(where + "could not be run by the shell (exit status " + std::to_string(r.exit.status) +
                  "): check the command and PATH" + stderr_part(r));
    return r.exit.status == 0;
  }

  void act(const std::string& command, Transition t) {
    using px = detail::posix;
    if (command.empty())
      throw NotImplementedError("stackup: " + who() + " has no " + std::string(to_string(t)) + " command");
    const auto r = run(command);
    const std::string where = "stackup: " + who() + ": " + std::string(to_string(t)) + " `" + command + "` ";
    if (r.stopped)
      throw InterruptedError(where + "was stopped with its process group: a stop was requested" + stderr_part(r));
    if (r.timed_out)
      throw_transition_error(std::string(this->role_name()), t,
                            where + "did not finish within " + px::format_duration(config_.timeout) +
                                " and was killed with its process group" + stderr_part(r));
    if (r.exit.code != CLD_EXITED || r.exit.status != 0)
      throw_transition_error(std::string(this->role_name()), t, where + "failed with " + px::describe_exit(r.exit) + stderr_part(r));
  }
};

} // namespace stackup
