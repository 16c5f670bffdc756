// stackup — Container<"role">: a container that the stack creates, starts, stops
// and removes through the engine's own command-line client (podman or docker),
// found again by its labels, with readiness probes as LocalDaemon's.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/components/local_daemon.hpp> // ready::Probe
#include <stackup/detail/container_engine.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/detail/shipped_component.hpp>
#include <stackup/errors.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace stackup {

/// Configuration of a Container; use designated initialisers, in this order.
struct ContainerConfig {
  std::string name{};  ///< display name; empty: the role
  /// The stack's name: the container is `stackup-<stack>-<role>`, labelled
  /// `io.stackup.stack=<stack>`. Required (a stack file gives its own name);
  /// letters, digits, '_', '.' and '-' only, as container names allow.
  std::string stack{};
  std::string image{}; ///< required, e.g. "docker.io/library/postgres:16"
  /// "podman" or "docker"; empty: $STACKUP_CONTAINER_ENGINE, else podman when
  /// it is on PATH, else docker.
  std::string engine{};
  std::vector<std::string> command{};       ///< replaces the image's command; empty: the image's
  std::map<std::string, std::string> env{}; ///< variables set in the container
  std::vector<std::string> ports{};         ///< published ports: "[IP:][HOST:]CONTAINER[/tcp|udp|sctp]"
  /// "NAME:/path[:opts]" (a named volume: created by provision if absent,
  /// removed by deprovision if it created it) or "./dir:/path[:opts]" /
  /// "/dir:/path" (a bind mount; a relative source is against working_dir).
  std::vector<std::string> volumes{};
  std::filesystem::path working_dir{}; ///< relative bind sources resolve here; empty: the current directory
  /// stackup's own directory (mode 0700): the record of the stops it made, so
  /// that no process reads such a stop as an exit of the container's own.
  /// Empty: `<working_dir>/.stackup/<role>`.
  std::filesystem::path state_dir{};
  std::vector<std::string> run_args{}; ///< passed to `create` as they are, before the image
  std::string user{};                  ///< the user inside the container (`--user`); empty: the image's
  /// When the started container counts as ready: a probe on 127.0.0.1 (a
  /// published port), or none: then the image's healthcheck if it has one,
  /// else running.
  ready::Probe ready = ready::none();
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30); ///< resume: wait this long for readiness
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(10);  ///< suspend: `stop -t`, then the engine kills it
  RestartPolicy restart{};                     ///< see LocalDaemonConfig::restart (the engine's --restart is never set)
  Liveness liveness{};                         ///< see LocalDaemonConfig::liveness
  OnDependencyRestart on_dependency_restart{}; ///< see LocalDaemonConfig::on_dependency_restart
};

/// A container that the stack creates, starts, stops and removes through the
/// engine's command-line client (DESIGN §11). No daemon of stackup's and no
/// client library: `podman`/`docker` is run for each action and query.
///
/// - provision: pulls the image if it is not on this machine (a line on
///   standard error says so), creates the named volumes it needs (labelled as
///   its own) and creates the container `stackup-<stack>-<role>` labelled
///   `io.stackup.stack`, `io.stackup.role` and `io.stackup.config` (a hash of
///   its settings). Never `--restart`: stackup's supervisor restarts.
/// - resume: starts it, then waits for readiness (ContainerConfig::ready).
/// - suspend: `stop` within stop_timeout. deprovision: removes the container and
///   the volumes it created.
/// - Queries find the container by its labels. Within a query round (one walk
///   of a stack) the containers of one (engine, stack) ask the engine once.
/// - Ownership: a container named `stackup-<stack>-<role>` without these labels
///   is not stackup's: it is never started, stopped or removed; provision fails
///   naming it and the fix. A volume that exists without stackup's labels is
///   mounted but never removed.
template <FixedString Role = "">
class Container : public detail::ShippedComponent<Container<Role>, Role, ContainerConfig> {
  using Base = detail::ShippedComponent<Container<Role>, Role, ContainerConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "container";
  /// The configuration type (designated initialisers).
  using Config = ContainerConfig;
  /// The labels stackup sets (and finds its containers and volumes by).
  static constexpr std::string_view stack_label = "io.stackup.stack", role_label = "io.stackup.role",
                                    config_label = "io.stackup.config";

  /// A container with this configuration; `working_dir` is made absolute now.
  /// Error when `image` or `stack` is empty, `stack` holds a character a
  /// container name cannot, `engine` is not "podman" or "docker", or a port
  /// spec is malformed. Runs nothing.
  explicit Container(Config config) : Base(std::move(config)) {
    const std::string where =
        "stackup: container" + (Role.size() ? " (" + std::string(Role.view()) + ")" : std::string()) + ": ";
    if (config_.image.empty()) throw Error(where + ".image is empty: give the image to run, e.g. \"docker.io/library/redis:7\"");
    if (config_.stack.empty())
      throw Error(where + ".stack is empty: give the stack's name (the container is stackup-<stack>-<role>)");
    if (!detail::container::name_safe(config_.stack))
      throw Error(where + "the stack name '" + config_.stack +
                  "' cannot be part of a container name: use letters, digits, '_', '.' and '-' only");
    if (!config_.engine.empty() && !detail::container::valid_engine(config_.engine))
      throw Error(where + ".engine is \"" + config_.engine + "\": give " + std::string(detail::container::engine_words) +
                  " (or leave it empty to choose one)");
    for (const auto& p : config_.ports) {
      std::string why;
      if (!detail::container::parse_port(p, why))
        throw Error(where + "port \"" + p + "\" is not [IP:][HOST:]CONTAINER[/tcp|udp|sctp]: " + why);
    }
    for (const auto& v : config_.volumes)
      if (v.find(':') == std::string::npos || v.front() == ':')
        throw Error(where + "volume \"" + v + "\" is not SOURCE:/path[:options] (a named volume or a ./directory)");
    config_.start_timeout = std::max(config_.start_timeout, std::chrono::milliseconds::zero());
    config_.stop_timeout = std::max(config_.stop_timeout, std::chrono::milliseconds::zero());
    if (!config_.working_dir.empty()) config_.working_dir = std::filesystem::absolute(config_.working_dir);
    if (!config_.state_dir.empty()) config_.state_dir = detail::owned_directory(config_.state_dir);
  }

  /// The container a stack file's table describes (`flavor = "container"`, see
  /// docs/stack-files.md); the stack is the file's. `Table` is
  /// stackup::StackFileTable (<stackup/stack_file.hpp>), or a type with its interface.
  template <class Table> [[nodiscard]] static Container from_table(const Table& t) {
    Config c;
    const std::string role(t.role());
    c.name = t.optional_string("name").value_or("");
    c.stack = t.stack_name();
    if (!t.contains("image"))
      t.fail(t.what() + " lacks the required key 'image' (the image to run, e.g. image = \"docker.io/library/redis:7\")");
    c.image = t.string("image");
    if (c.image.empty()) t.fail("image", "'image' of component '" + role + "' is empty: give the image to run");
    c.engine = t.optional_string("engine").value_or("");
    if (!c.engine.empty() && !detail::container::valid_engine(c.engine))
      t.fail("engine", "'engine' of component '" + role + "' is \"" + c.engine + "\": give " +
                           std::string(detail::container::engine_words) + " (absent: $STACKUP_CONTAINER_ENGINE, else "
                           "podman, else docker)");
    c.command = t.strings("command");
    c.env = t.string_map("env");
    c.ports = t.strings("ports");
    for (const auto& p : c.ports) {
      std::string why;
      if (!detail::container::parse_port(p, why))
        t.fail("ports", "port \"" + p + "\" of component '" + role + "' is not [IP:][HOST:]CONTAINER[/tcp|udp|sctp] (" +
                            why + "), e.g. \"127.0.0.1:5433:5432\"");
    }
    c.volumes = t.strings("volumes");
    for (const auto& v : c.volumes)
      if (v.find(':') == std::string::npos || v.front() == ':')
        t.fail("volumes", "volume \"" + v + "\" of component '" + role +
                              "' is not SOURCE:/path[:options], e.g. \"data:/var/lib/data\" or \"./init:/init:ro\"");
    c.working_dir = t.path_or("working_dir", t.directory());
    c.state_dir = t.path_or("state_dir", t.directory() / ".stackup" / role);
    c.run_args = t.strings("run_args");
    c.user = t.optional_string("user").value_or("");
    if (const auto r = t.table("ready")) c.ready = ready::Probe::from_table(*r).with_any_listener();
    c.start_timeout = t.duration("start_timeout").value_or(c.start_timeout);
    c.stop_timeout = t.duration("stop_timeout").value_or(c.stop_timeout);
    const auto supervision = detail::supervision_from_table(t);
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    if (!detail::container::name_safe(c.stack))
      t.fail("component '" + role + "': the stack name '" + c.stack +
             "' cannot be part of a container name (letters, digits, '_', '.' and '-' only): set name = \"...\" at "
             "the top of the file");
    if (!detail::container::name_safe(role))
      t.fail("component '" + role + "': a container's role is part of its name: use letters, digits, '_', '.' and '-' only");
    return Container(std::move(c));
  }

  /// The container's name: `stackup-<stack>-<role>`. Error when the role holds
  /// a character a container name cannot.
  [[nodiscard]] std::string container_name() const {
    if (!detail::container::name_safe(this->role_name()))
      throw Error("stackup: " + who() + ": the role cannot be part of a container name: use letters, digits, '_', "
                                        "'.' and '-' only");
    return "stackup-" + config_.stack + "-" + std::string(this->role_name());
  }

  /// The fingerprint of the settings the container is created with (image,
  /// command, env, ports, volumes, working_dir, run_args, user): its
  /// `io.stackup.config` label.
  [[nodiscard]] std::string config_hash() const {
    std::string text = "image\n" + config_.image + "\n";
    const auto list = [&](std::string_view key, const std::vector<std::string>& v) {
      for (const auto& s : v) text.append(key).append("\n").append(s).append("\n");
    };
    list("arg", config_.command);
    for (const auto& [k, v] : config_.env) text += "env\n" + k + "=" + v + "\n";
    list("port", config_.ports);
    list("volume", resolved_volumes());
    list("run_arg", config_.run_args);
    text += "user\n" + config_.user + "\n";
    return detail::container::fingerprint(text);
  }

  /// The state directory: the configured one, else `<working_dir>/.stackup/<role>`.
  [[nodiscard]] std::filesystem::path state_dir() const {
    if (!config_.state_dir.empty()) return config_.state_dir;
    const std::filesystem::path base = config_.working_dir.empty() ? std::filesystem::current_path() : config_.working_dir;
    return detail::owned_directory(base / ".stackup" / std::string(this->role_name()));
  }

  /// A container with this stack's and role's labels exists.
  [[nodiscard]] bool is_provisioned() const { return find(false).has_value(); }

  /// It is running (not paused), healthy where it has a healthcheck, and its
  /// readiness probe, if any, passes.
  [[nodiscard]] bool is_running() const {
    const auto row = find(false);
    if (!row || !row->up()) return false;
    const std::string health = row->health();
    if (health == "unhealthy" || health == "starting") return false;
    return probe(std::chrono::seconds(1));
  }

  /// Whether the container was created with the current settings (its
  /// `io.stackup.config` label matches config_hash()); true when there is none.
  [[nodiscard]] bool is_current() const {
    const auto row = find(false);
    return !row || row->label(config_label) == config_hash();
  }

  /// For status tables: "container 3f2a1b0c9d8e, image ..., ports ...".
  [[nodiscard]] std::string detail() const {
    try {
      const auto row = find(false);
      std::string d = row ? "container " + row->id.substr(0, 12) : "container " + container_name() + " (not created)";
      d += ", image " + config_.image;
      if (!config_.ports.empty()) {
        d += ", ports ";
        for (std::size_t i = 0; i < config_.ports.size(); ++i) d += (i ? " " : "") + config_.ports[i];
      }
      return d;
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  /// How the container last ended, when it exited on its own (not stopped by
  /// a suspend of stackup's, in this process or another: stackup records its
  /// stops in state_dir()): its exit code as the engine reports it (128+N
  /// for signal N) and when. Empty while it runs, before its first start, and
  /// when the engine cannot be asked.
  [[nodiscard]] std::optional<Exit> exit_status() const {
    try {
      if (stopped_by_us_) return std::nullopt;
      // From the stack's one listing in a round (a status asks the engine once);
      // only a container that has exited is asked how and when.
      const auto row = find(false);
      if (!row || !row->status.starts_with("Exited")) return std::nullopt;
      const auto e = engine();
      const auto r = detail::container::run(
          e, {"inspect", "--format", "{{.State.Status}}\t{{.State.ExitCode}}\t{{.State.FinishedAt}}\t{{.State.StartedAt}}", row->id});
      if (!r.ok()) return std::nullopt;
      const auto l = detail::container::lines(r.out);
      const auto f = detail::container::split(l.empty() ? "" : l.front(), '\t');
      if (f.size() < 4 || f[0] != "exited") return std::nullopt;
      Exit out;
      out.code = std::stoi(f[1]);
      out.at = parse_time(f[2]);
      if (stopped_by_stackup(row->id, parse_time(f[3]), out.at)) return std::nullopt;
      return out;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  /// What a supervisor reads: the config's `restart`, `liveness` and `on_dependency_restart`.
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

  /// Pulls the image if absent, creates the named volumes it needs and the
  /// container (not started). Nothing to do when the container exists. Error
  /// when the engine is missing or unreachable, the image can be neither
  /// found nor pulled, or a container of that name exists that is not stackup's.
  void provision() {
    const auto e = engine();
    forget(e);
    if (find_in(e, true)) return;
    const std::string name = container_name();
    ensure_image(e);
    for (const auto& v : named_volumes()) ensure_volume(e, v);
    std::vector<std::string> args{"create", "--name", name, "--label", std::string(stack_label) + "=" + config_.stack,
                                  "--label", std::string(role_label) + "=" + std::string(this->role_name()),
                                  "--label", std::string(config_label) + "=" + config_hash()};
    // Values go through standard input (--env-file /dev/stdin), not the command
    // line, which every user can read in /proc; one the file format cannot
    // hold (a line break) goes as an argument.
    std::string env_file;
    for (const auto& [k, v] : config_.env) {
      const bool fits = (k + v).find_first_of("\r\n") == std::string::npos && !k.empty() && k.front() != '#' &&
                        k.find_first_of(" \t") == std::string::npos;
      if (fits) env_file += k + "=" + v + "\n";
      else args.insert(args.end(), {"--env", k + "=" + v});
    }
    if (!env_file.empty()) args.insert(args.end(), {"--env-file", "/dev/stdin"});
    for (const auto& p : config_.ports) args.insert(args.end(), {"--publish", p});
    for (const auto& v : resolved_volumes()) args.insert(args.end(), {"--volume", v});
    if (!config_.user.empty()) args.insert(args.end(), {"--user", config_.user});
    args.insert(args.end(), config_.run_args.begin(), config_.run_args.end());
    args.push_back(config_.image);
    args.insert(args.end(), config_.command.begin(), config_.command.end());
    const auto r = detail::container::run(e, args, std::chrono::minutes(2), env_file);
    forget(e);
    if (r.ok()) return;
    if (detail::container::classify(r.stderr_tail) == detail::container::Failure::name_taken) refuse_foreign(e, name);
    fail(Transition::provision, "cannot create container " + name + ": `" + detail::container::shown(e, args) +
                                    "` failed: " + detail::container::why(e, r));
  }

  /// Starts the container and waits until it is ready (ContainerConfig::ready).
  /// Nothing to start when it runs. TransitionError when a published port is
  /// taken (naming it and its holder), it exits before it is ready (with its
  /// exit code and last log lines; with a restart policy that exit is left to
  /// the policy instead), or it is not ready within start_timeout (it is
  /// stopped); ProvisioningError when there is no container.
  void resume() {
    const auto e = engine();
    forget(e);
    const auto row = find_in(e, true);
    if (!row)
      throw ProvisioningError("stackup: " + who() + ": there is no container " + container_name() + ": provision first");
    stopped_by_us_ = false;
    if (!row->up()) {
      for (const auto& spec : config_.ports) {
        std::string why;
        const auto p = detail::container::parse_port(spec, why);
        if (!p || p->host == 0 || p->protocol != "tcp") continue;
        if (const std::string holders = detail::posix::listener_holders(p->host); !holders.empty())
          fail(Transition::resume, "cannot start: port " + std::to_string(p->host) + " (\"" + spec +
                                       "\") is already taken by " + holders +
                                       ": stop that process, or publish another host port in `ports`");
      }
      const std::vector<std::string> args{"start", row->id};
      const auto r = detail::container::run(e, args);
      forget(e);
      if (!r.ok()) {
        if (detail::container::classify(r.stderr_tail) == detail::container::Failure::port_taken)
          fail(Transition::resume, "cannot start: a published port is already taken (" +
                                       detail::container::last_line(r.stderr_tail) +
                                       "): stop what holds it, or publish another host port in `ports`");
        fail(Transition::resume, "cannot start container " + container_name() + ": `" +
                                     detail::container::shown(e, args) + "` failed: " + detail::container::why(e, r));
      }
    }
    await_ready(e, row->id);
  }

  /// Stops the container within stop_timeout (`stop -t`; the engine kills it
  /// after that). Nothing to do when it is not running or does not exist.
  void suspend() {
    const auto e = engine();
    // The round's listing will do: a container is found by its labels, then
    // named by its id, which no other container ever has. It is stopped
    // whatever the listing said of its state.
    const auto row = find_in(e, false);
    if (!row) return;
    stop(e, row->id);
  }

  /// Stops and removes the container, then the named volumes it created.
  void deprovision() {
    namespace dc = detail::container;
    const auto e = engine();
    // As suspend: the round's listing, the container named by its id.
    if (const auto row = find_in(e, false)) {
      const auto seconds = std::to_string((config_.stop_timeout.count() + 999) / 1000);
      // One call: podman's `rm -f -t N` stops it within stop_timeout as `stop`
      // does; docker's `rm -f` kills at once, so a running one is stopped first.
      std::vector<std::string> args{"rm", "-f", "-t", seconds, row->id};
      if (!e.is_podman()) {
        if (row->up()) stop(e, row->id, false);
        args = {"rm", "-f", row->id};
      }
      stopped_by_us_ = true;
      const auto r = dc::run(e, args, config_.stop_timeout + std::chrono::seconds(60));
      if (!r.ok() && dc::classify(r.stderr_tail) != dc::Failure::no_such_container) {
        forget(e);
        fail(Transition::deprovision, "cannot remove container " + container_name() + ": `" + dc::shown(e, args) +
                                          "` failed: " + dc::why(e, r));
      }
      dc::ListCache::note(e, stack_label, config_.stack, row->id, [](dc::Listed*) { return true; });
      forget_stop(row->id);
    }
    // The stack's volumes, listed once in a round; only those labelled with
    // this role too are its own.
    std::vector<dc::ListedVolume> volumes;
    try {
      volumes = dc::VolumeCache::get(e, stack_label, config_.stack, who());
    } catch (const Error& x) {
      throw_transition_error(std::string(this->role_name()), Transition::deprovision, x.what());
    }
    for (const auto& v : volumes) {
      if (v.label(role_label) != this->role_name()) continue; // another component's
      const std::vector<std::string> args{"volume", "rm", v.name};
      const auto rm = dc::run(e, args);
      if (rm.ok()) dc::VolumeCache::erase(e, stack_label, config_.stack, v.name);
      else dc::VolumeCache::forget(e, stack_label, config_.stack);
      if (!rm.ok())
        fail(Transition::deprovision, "cannot remove volume " + v.name + ": `" + dc::shown(e, args) +
                                          "` failed: " + dc::why(e, rm));
    }
  }

  /// The command whose output is the container's log as the engine keeps it:
  /// `<engine> logs [--tail N] [--follow] [--since <RFC 3339>] <id>` (what
  /// `stackctl <role> logs` runs). The container is the one found by its
  /// labels, named by its id. Error naming the role and the fix when there is
  /// none (not provisioned), or the container of its name is not stackup's.
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const {
    const auto e = engine();
    const auto row = find(false);
    if (!row) {
      const std::string name = container_name();
      // Its name may be taken by a container stackup did not create: say so
      // rather than "not provisioned", and never read that one's log.
      if (detail::container::run(e, {"container", "inspect", "--format", "{{.Id}}", name}).ok())
        throw Error("stackup: " + who() + ": a container named " + name + " exists that stackup did not create (it lacks the labels " +
                    std::string(stack_label) + "=" + config_.stack + " and " + std::string(role_label) + "=" +
                    std::string(this->role_name()) + "), so stackup does not read its log: read it with `" + e.word +
                    " logs " + name + "` if it is yours, or give the stack another name");
      throw Error("stackup: " + who() + ": not provisioned: there is no container " + name +
                  ", so no log: run `up` first");
    }
    std::vector<std::string> argv{e.program, "logs"};
    if (request.tail) argv.insert(argv.end(), {"--tail", std::to_string(*request.tail)});
    if (request.follow) argv.emplace_back("--follow");
    if (request.since) argv.insert(argv.end(), {"--since", rfc3339(*request.since)});
    argv.push_back(row->id);
    return argv;
  }

  /// Kills the container's main process (`kill`, SIGKILL), as a crash would:
  /// exit_status() then tells how it ended. Nothing to do when it is not running.
  void kill() const {
    const auto e = engine();
    forget(e);
    const auto row = find_in(e, true);
    if (!row || !row->up()) return;
    const std::vector<std::string> args{"kill", row->id};
    const auto r = detail::container::run(e, args);
    forget(e);
    if (!r.ok())
      throw Error("stackup: " + who() + ": `" + detail::container::shown(e, args) + "` failed: " + detail::container::why(e, r));
  }

private:
  using Base::config_;
  using Base::who;
  // Whether this object's suspend stopped the container (then its exit is no
  // exit of its own). Reset by resume.
  mutable bool stopped_by_us_ = false;

  [[nodiscard]] detail::container::Engine engine() const { return detail::container::find_engine(config_.engine, who()); }

  void forget(const detail::container::Engine& e) const { detail::container::ListCache::forget(e, stack_label, config_.stack); }

  [[nodiscard]] std::optional<detail::container::Listed> find(bool fresh) const { return find_in(engine(), fresh); }

  // This role's container among the stack's (asked once per query round, or
  // afresh), found by its labels.
  [[nodiscard]] std::optional<detail::container::Listed> find_in(const detail::container::Engine& e, bool fresh) const {
    const auto rows = fresh ? detail::container::list(e, stack_label, config_.stack, who())
                            : detail::container::ListCache::get(e, stack_label, config_.stack, who());
    for (const auto& row : rows)
      if (row.label(role_label) == this->role_name()) return row;
    return std::nullopt;
  }

  [[noreturn]] void fail(Transition t, const std::string& what) const {
    throw_transition_error(std::string(this->role_name()), t, "stackup: " + who() + ": " + what);
  }

  // A bind mount's source: starts with '/', '.' or '~'; anything else names a volume.
  static bool is_bind(std::string_view source) {
    return !source.empty() && (source.front() == '/' || source.front() == '.' || source.front() == '~');
  }

  [[nodiscard]] std::vector<std::string> named_volumes() const {
    std::vector<std::string> out;
    for (const auto& v : config_.volumes) {
      const std::string source = v.substr(0, v.find(':'));
      if (!is_bind(source)) out.push_back(source);
    }
    return out;
  }

  // The volumes with relative bind sources made absolute against working_dir.
  [[nodiscard]] std::vector<std::string> resolved_volumes() const {
    std::vector<std::string> out;
    for (const auto& v : config_.volumes) {
      const auto colon = v.find(':');
      const std::string source = v.substr(0, colon);
      if (source.front() == '~' && (source.size() == 1 || source[1] == '/')) { // the engines do not expand it
        const char* home = std::getenv("HOME");
        out.push_back(detail::normal_directory(std::string(home != nullptr ? home : "/") + source.substr(1)).string() +
                      v.substr(colon));
        continue;
      }
      if (source.front() != '.') {
        out.push_back(v);
        continue;
      }
      const std::filesystem::path base = config_.working_dir.empty() ? std::filesystem::current_path() : config_.working_dir;
      out.push_back(detail::normal_directory(base / source).string() + v.substr(colon));
    }
    return out;
  }

  void ensure_image(const detail::container::Engine& e) const {
    const auto r = detail::container::run(e, {"image", "inspect", "--format", "{{.Id}}", config_.image});
    if (r.ok()) return;
    if (detail::container::classify(r.stderr_tail) == detail::container::Failure::no_daemon)
      fail(Transition::provision, "cannot look up image " + config_.image + ": " + detail::container::why(e, r));
    std::fprintf(stderr, "stackup: %s: pulling image %s (not on this machine)\n", who().c_str(), config_.image.c_str());
    std::fflush(stderr);
    const std::vector<std::string> args{"pull", config_.image};
    const auto p = detail::container::run(e, args, std::chrono::minutes(30));
    if (p.ok()) return;
    fail(Transition::provision,
         "image " + config_.image + " is not on this machine and cannot be pulled (" + detail::container::why(e, p) +
             "): build it (`" + e.word + " build -t " + config_.image + " DIR`) or load it (`" + e.word +
             " load -i FILE`), or fix `image`");
  }

  void ensure_volume(const detail::container::Engine& e, const std::string& name) const {
    if (detail::container::run(e, {"volume", "inspect", "--format", "{{.Name}}", name}).ok()) return; // kept, never removed
    const std::vector<std::string> args{"volume", "create", "--label", std::string(stack_label) + "=" + config_.stack,
                                        "--label", std::string(role_label) + "=" + std::string(this->role_name()), name};
    const auto r = detail::container::run(e, args);
    detail::container::VolumeCache::forget(e, stack_label, config_.stack);
    if (!r.ok())
      fail(Transition::provision, "cannot create volume " + name + ": `" + detail::container::shown(e, args) +
                                      "` failed: " + detail::container::why(e, r));
  }

  // The name is taken: by a container that is not ours (no labels of this
  // stack and role). Error naming it and the fix.
  [[noreturn]] void refuse_foreign(const detail::container::Engine& e, const std::string& name) const {
    fail(Transition::provision,
         "a container named " + name + " exists that stackup did not create (it lacks the labels " +
             std::string(stack_label) + "=" + config_.stack + " and " + std::string(role_label) + "=" +
             std::string(this->role_name()) + "), so stackup leaves it alone: remove it if it is yours to remove (`" +
             e.word + " rm " + name + "`), or give the stack another name");
  }

  // Stops it; with `record`, a stop of stackup's (not an exit of its own),
  // written down for every process (record_stop).
  void stop(const detail::container::Engine& e, const std::string& id, bool record = true) {
    const auto seconds = (config_.stop_timeout.count() + 999) / 1000;
    const std::vector<std::string> args{"stop", "-t", std::to_string(seconds), id};
    stopped_by_us_ = true;
    const auto asked = std::chrono::system_clock::now();
    const auto r = detail::container::run(e, args, config_.stop_timeout + std::chrono::seconds(60));
    if (r.ok()) // what the round's listing would now say, without asking again
      detail::container::ListCache::note(e, stack_label, config_.stack, id, [](detail::container::Listed* row) {
        row->status = "Exited";
        return false;
      });
    else
      forget(e);
    if (!r.ok() && detail::container::classify(r.stderr_tail) != detail::container::Failure::no_such_container)
      fail(Transition::suspend, "cannot stop container " + container_name() + ": `" + detail::container::shown(e, args) +
                                    "` failed: " + detail::container::why(e, r));
    if (record && r.ok()) record_stop(id, asked);
  }

  // The record of a stop: file `stopped-<id>` in state_dir() holding when
  // stackup asked the engine to stop it (nanoseconds since the epoch, UTC).
  // A run that started before that and ended after it was stopped by stackup;
  // a later start (anyone's) makes a later run, whose end is its own. (Podman
  // 4.3 reports no StoppedByUser, and docker none a client can read.)
  void record_stop(const std::string& id, std::chrono::system_clock::time_point asked) const {
    using px = detail::posix;
    try {
      const auto dir = state_dir();
      if (const std::string why = px::forbidden_directory(dir); !why.empty())
        throw Error("refusing state directory " + px::quoted(dir) + ": " + why + "; set state_dir to a directory of its own");
      const auto l = px::lock_private_dir(dir, true);
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(asked.time_since_epoch()).count();
      px::write_file_atomic(l.dir.get(), "stopped-" + id, std::to_string(ns) + "\n", dir / ("stopped-" + id));
    } catch (const std::exception& ex) {
      // The container is stopped all the same; only a later reading of it suffers.
      std::fprintf(stderr, "stackup: %s: cannot record its stop (%s): another process may show it as an exit\n",
                   who().c_str(), ex.what());
    }
  }

  // Whether the run that started at `started` and ended at `finished` was
  // ended by a stop of stackup's (its record, see record_stop). The engine's
  // clock may be another machine's: a second's slack on the end.
  [[nodiscard]] bool stopped_by_stackup(const std::string& id, std::chrono::system_clock::time_point started,
                                        std::chrono::system_clock::time_point finished) const {
    using px = detail::posix;
    try {
      const auto dir = state_dir();
      const auto l = px::lock_private_dir(dir, false);
      if (!l) return false;
      const auto text = px::read_file_at(l.dir.get(), ("stopped-" + id).c_str(), 64, dir / ("stopped-" + id));
      if (!text) return false;
      const auto asked = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(std::stoll(*text))));
      return started <= asked && finished + std::chrono::seconds(1) >= asked;
    } catch (const std::exception&) {
      return false; // no readable record: the engine's word stands
    }
  }

  void forget_stop(const std::string& id) const {
    using px = detail::posix;
    try {
      const auto dir = state_dir();
      const auto l = px::lock_private_dir(dir, false);
      if (l) ::unlinkat(l.dir.get(), ("stopped-" + id).c_str(), 0);
    } catch (const std::exception&) {
      // A record left behind names a container that no longer exists: harmless.
    }
  }

  [[nodiscard]] bool probe(std::chrono::milliseconds timeout) const {
    switch (config_.ready.kind) {
    case ready::Probe::Kind::none: return true;
    case ready::Probe::Kind::tcp: return detail::posix::tcp_probe(config_.ready.port, timeout);
    case ready::Probe::Kind::http: return detail::posix::http_probe(config_.ready.port, config_.ready.path, timeout);
    }
    return false;
  }

  // The last lines of the container's output, for messages.
  [[nodiscard]] std::string log_tail(const detail::container::Engine& e, const std::string& id) const {
    const auto r = detail::container::run(e, {"logs", "--tail", "10", id}, std::chrono::seconds(30));
    std::string text = r.out + r.stderr_tail;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text.empty() ? " (it wrote nothing)" : "; its last lines:\n" + text;
  }

  // Polls until the container is ready: its probe passes, else its
  // healthcheck reports healthy, else it runs. Fails when it exits first or
  // start_timeout passes (it is stopped then).
  void await_ready(const detail::container::Engine& e, const std::string& id) {
    namespace dc = detail::container;
    const auto deadline = detail::posix::deadline_after(config_.start_timeout);
    auto pause = std::chrono::milliseconds(10);
    while (true) {
      const auto r = dc::run(e, {"inspect", "--format", "{{.State.Status}}\t{{.State.ExitCode}}\t{{if .Config.Healthcheck}}health{{end}}", id});
      const auto l = dc::lines(r.out);
      const auto f = dc::split(l.empty() ? "" : l.front(), '\t');
      if (!r.ok() || f.size() < 3)
        fail(Transition::resume, "cannot read the state of container " + container_name() + ": " + dc::why(e, r));
      if (f[0] != "running") {
        // With a restart policy the exit is the policy's (DESIGN §10): exit_status() tells it.
        if (config_.restart.policy != Restart::no) return;
        const std::string tail = log_tail(e, id);
        fail(Transition::resume, "container " + container_name() + " exited with code " + f[1] + " before it was ready" + tail);
      }
      bool ready = false;
      if (config_.ready.kind != ready::Probe::Kind::none) {
        ready = probe(std::chrono::milliseconds(500));
      } else if (f[2] == "health") {
        // Podman runs healthchecks from systemd timers, absent on many hosts:
        // run the check itself. Docker's daemon runs them: read its verdict.
        if (e.is_podman()) {
          ready = dc::run(e, {"healthcheck", "run", id}).ok();
        } else {
          const auto h = dc::run(e, {"inspect", "--format", "{{.State.Health.Status}}", id});
          const auto hl = dc::lines(h.out);
          ready = h.ok() && !hl.empty() && hl.front() == "healthy";
        }
      } else {
        ready = true;
      }
      if (ready) return;
      if (stop_requested()) {
        stop(e, id);
        throw InterruptedError("stackup: " + who() + " was stopped before it was ready: a stop was requested");
      }
      if (detail::posix::Clock::now() >= deadline) {
        stop(e, id, false);
        stopped_by_us_ = false;
        fail(Transition::resume, "was not ready within " + detail::posix::format_duration(config_.start_timeout) +
                                     " (" + (config_.ready.kind != ready::Probe::Kind::none
                                                 ? "probe " + config_.ready.describe()
                                                 : std::string("its image's healthcheck")) +
                                     "); it was stopped");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
  }

  // "2026-12-08T03:28:21.123456789Z": both engines' `logs --since` take it.
  static std::string rfc3339(std::chrono::system_clock::time_point t) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    auto secs = static_cast<std::time_t>(ns / 1'000'000'000);
    auto frac = ns % 1'000'000'000;
    if (frac < 0) {
      frac += 1'000'000'000;
      --secs;
    }
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(frac));
    return buf;
  }

  // "2026-12-07 23:35:02.91 +0000 UTC" (podman) or "2026-12-07T23:35:02.91Z" (docker), as UTC.
  static std::chrono::system_clock::time_point parse_time(const std::string& s) {
    std::tm tm{};
    if (s.size() < 19 || std::sscanf(s.c_str(), "%d-%d-%d%*c%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                                     &tm.tm_min, &tm.tm_sec) != 6)
      return {};
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    auto t = std::chrono::system_clock::from_time_t(::timegm(&tm));
    // The fraction of the second, to the nanosecond (both engines print one).
    if (s.size() > 20 && s[19] == '.') {
      long long ns = 0;
      int digits = 0;
      for (std::size_t i = 20; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
        if (digits < 9) ns = ns * 10 + (s[i] - '0'), ++digits;
      for (; digits < 9; ++digits) ns *= 10;
      t += std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns));
    }
    return t;
  }
};

} // namespace stackup
