// stackup — Command<"role">: a component driven by shell commands, one per action
// and per query (k3d, kubectl, terraform, docker compose, ...).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
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
template <FixedString Role = ""> class Command : public StackComponent<Command<Role>>, public detail::RoleOf<Role> {
public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "command";
  /// The configuration type (designated initialisers).
  using Config = CommandConfig;

  /// A component with these commands; a negative timeout becomes zero. Runs nothing.
  explicit Command(Config config) : config_(std::move(config)) {
    config_.timeout = std::max(config_.timeout, std::chrono::milliseconds::zero());
  }

  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? this->role_name() : std::string_view(config_.name);
  }
  /// The configuration.
  [[nodiscard]] const Config& config() const noexcept { return config_; }
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
  [[nodiscard]] std::string who() const { return "command '" + std::string(name()) + "' (" + std::string(this->role_name()) + ")"; }

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

  Config config_;
};

} // namespace stackup
