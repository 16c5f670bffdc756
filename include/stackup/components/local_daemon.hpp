// stackup — LocalDaemon<"role">: a local process that the stack starts and stops,
// tracked by a pid file holding the pid and the process start time, with
// readiness probes and cross-process locking.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/detail/shipped_component.hpp>
#include <stackup/errors.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace stackup {

/// Readiness probes: how LocalDaemon knows its process is ready to serve.
/// Probes only ever talk to 127.0.0.1.
namespace ready {

/// A readiness probe; build one with none(), tcp() or http().
struct Probe {
  /// What the probe checks.
  enum class Kind : unsigned char { none, tcp, http };
  Kind kind = Kind::none;
  std::uint16_t port = 0; ///< tcp and http: the loopback port
  std::string path{};     ///< http: the request path, e.g. "/health"
  /// tcp and http: also count a listener that is not one of the daemon's own
  /// processes (for a daemon that hands its port to another process, such as
  /// `docker run -p`). By default only a socket held by the daemon's processes
  /// counts, so another server already on the port never passes for the daemon.
  bool any_listener = false;

  /// This probe, counting any listener on the port (see any_listener).
  [[nodiscard]] Probe with_any_listener(bool yes = true) const {
    Probe p = *this;
    p.any_listener = yes;
    return p;
  }

  /// The probe a stack file's `ready` table describes: `{ tcp = PORT }` or
  /// `{ http = PORT, path = "/health" }`, each with an optional `any_listener`.
  /// `Table` is stackup::StackFileTable (<stackup/stack_file.hpp>), or a type
  /// with its interface.
  template <class Table> [[nodiscard]] static Probe from_table(const Table& r);

  /// "none", "tcp 127.0.0.1:8765", "http://127.0.0.1:8765/health", with
  /// " (any listener)" when any_listener is set.
  [[nodiscard]] std::string describe() const {
    const std::string any = any_listener ? " (any listener)" : "";
    switch (kind) {
    case Kind::none: return "none";
    case Kind::tcp: return "tcp 127.0.0.1:" + std::to_string(port) + any;
    case Kind::http: return "http://127.0.0.1:" + std::to_string(port) + path + any;
    }
    return "?";
  }
  friend bool operator==(const Probe&, const Probe&) = default;
};

/// No probe: the daemon is ready as soon as it is started (the default).
inline Probe none() { return {}; }

/// Ready when 127.0.0.1:`port` accepts a TCP connection.
inline Probe tcp(std::uint16_t port) {
  if (port == 0) throw Error("stackup: ready::tcp(0): give the port the daemon listens on");
  return {Probe::Kind::tcp, port, {}, false};
}

/// Ready when `GET path` on 127.0.0.1:`port` answers with a 2xx status.
inline Probe http(std::uint16_t port, std::string path = "/") {
  if (port == 0) throw Error("stackup: ready::http(0, ...): give the port the daemon listens on");
  if (path.empty() || path.front() != '/' ||
      path.find_first_of(std::string_view(" \r\n\t\0", 5)) != std::string::npos)
    throw Error("stackup: ready::http: path '" + path + "' must start with '/' and hold no spaces or line breaks");
  return {Probe::Kind::http, port, std::move(path), false};
}

template <class Table> Probe Probe::from_table(const Table& r) {
  const auto tcp = r.port("tcp");
  const auto http = r.port("http");
  const auto path = r.optional_string("path");
  const std::string role(r.role());
  if (tcp && http) r.fail("http", "'ready' of component '" + role + "' has both tcp and http: choose one");
  if (tcp && path) r.fail("path", "'path' goes with http, not tcp: write ready = { http = PORT, path = \"/health\" }");
  // Any listener on the port counts, not only the daemon's own (docker run -p).
  const bool any = r.optional_bool("any_listener").value_or(false);
  if (tcp) return ready::tcp(*tcp).with_any_listener(any);
  if (http) {
    try {
      return ready::http(*http, path.value_or("/")).with_any_listener(any);
    } catch (const Error& e) {
      r.fail("path", detail::unprefixed(e.what()));
    }
  }
  r.fail("'ready' of component '" + role +
         "' needs tcp or http: write ready = { tcp = PORT } or ready = { http = PORT, path = \"/health\" }");
}

} // namespace ready

/// Configuration of a LocalDaemon; use designated initialisers, in this order.
struct LocalDaemonConfig {
  std::string name{};                  ///< display name; empty: the role
  std::vector<std::string> command{};  ///< argv, no shell; argv[0] is looked up in PATH if it has no '/'
  std::filesystem::path state_dir{};   ///< stackup's own directory (mode 0700): marker, config, pid file, lock, daemon.log
  ready::Probe ready = ready::none(); ///< when the started process counts as ready
  /// resume: wait this long for readiness. milliseconds::max() waits for ever;
  /// zero (or negative, which counts as zero) looks once.
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
  /// suspend: SIGTERM, then SIGKILL after this. milliseconds::max() never
  /// escalates; zero (or negative, which counts as zero) sends SIGKILL at once.
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(10);
  std::map<std::string, std::string> env{}; ///< variables added to (or replacing) the inherited environment
  std::filesystem::path working_dir{};      ///< empty: the caller's current directory
  /// Run the daemon as this user (its uid, gid and groups; HOME, USER and
  /// LOGNAME are its own unless `env` sets them). Empty or the current user:
  /// as this process. Another user needs root; the user must be able to enter
  /// `working_dir`. The state directory stays stackup's: the daemon writes
  /// daemon.log through the descriptor it is started with. The daemon gets a
  /// clean environment, as `su -` and systemd give: `env`, that user's HOME,
  /// USER, LOGNAME and SHELL, and PATH=/usr/local/bin:/usr/bin:/bin (each
  /// unless `env` sets it); nothing of this process's environment.
  std::string user{};
  /// resume without a readiness probe: how long the main process must keep
  /// running for the start to count. One that exits within it (`sh -c 'exit
  /// 3'`, or a command that puts its server in the background and returns)
  /// fails resume with its exit status. Zero (or negative): no wait; an exit
  /// already seen still fails. Unused with a probe (readiness decides).
  std::chrono::milliseconds start_grace = std::chrono::milliseconds(500);
  /// Whether a supervisor (stackup::supervise) starts the daemon again when its
  /// main process ends without a down, after what back-off, and when it gives
  /// up (DESIGN §10). With a policy other than Restart::no, an exit during
  /// resume's start-up grace or readiness wait does not fail resume: the exit
  /// is recorded (exit_status()) and left to the policy.
  RestartPolicy restart{};
  /// A probe a supervisor runs every `period` once the daemon is ready;
  /// `failures` failures in a row count as an exit. Default: none.
  Liveness liveness{};
  /// Whether a supervisor suspends the daemon while one of its dependencies
  /// restarts, and resumes it once that one is ready again. Default: ignore.
  OnDependencyRestart on_dependency_restart{};
};

/// How a daemon's main process ended, as its waiter recorded it (see
/// LocalDaemon::last_exit).
struct DaemonExit {
  pid_t pid = 0;                  ///< the main process
  std::optional<int> exit_code{}; ///< its exit status, when it exited
  std::optional<int> signal{};    ///< the signal that killed it, when one did
  bool core_dumped = false;       ///< killed with a core dump
  std::chrono::system_clock::time_point when{}; ///< when its waiter saw it end
  /// How many processes the daemon had left running then: the waiter killed them.
  unsigned long long left_running = 0;
  /// Whether this is the end of the start the pid file records (false: of an earlier one).
  bool current = false;
};

namespace detail {

inline std::string escape_config_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out;
}

inline bool unescape_config_value(std::string_view v, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      out += v[i];
      continue;
    }
    if (++i == v.size()) return false;
    if (v[i] == '\\') out += '\\';
    else if (v[i] == 'n') out += '\n';
    else if (v[i] == 'r') out += '\r';
    else return false;
  }
  return true;
}

inline constexpr std::string_view daemon_config_header = "stackup local_daemon config 1";

/// The state directory's `config` file: one `key value` per line, values
/// escaped, closed by `end` so that a truncated file is detected.
inline std::string format_daemon_config(std::string_view role, const LocalDaemonConfig& c) {
  std::string out(daemon_config_header);
  out += '\n';
  auto line = [&](std::string_view key, std::string_view value) {
    out.append(key).append(" ").append(escape_config_value(value)).append("\n");
  };
  line("role", role);
  line("name", c.name);
  for (const auto& a : c.command) line("arg", a);
  switch (c.ready.kind) {
  case ready::Probe::Kind::none: line("ready", "none"); break;
  case ready::Probe::Kind::tcp: line("ready", "tcp " + std::to_string(c.ready.port)); break;
  case ready::Probe::Kind::http: line("ready", "http " + std::to_string(c.ready.port) + " " + c.ready.path); break;
  }
  // Each only when set: a config without them stays readable by earlier versions.
  if (c.ready.any_listener && c.ready.kind != ready::Probe::Kind::none) line("ready_any_listener", "1");
  if (c.start_grace != LocalDaemonConfig{}.start_grace)
    line("start_grace_ms", std::to_string(std::max<long long>(c.start_grace.count(), 0)));
  line("start_timeout_ms", std::to_string(c.start_timeout.count()));
  line("stop_timeout_ms", std::to_string(c.stop_timeout.count()));
  for (const auto& [k, v] : c.env) line("env", k + "=" + v);
  line("working_dir", c.working_dir.string());
  if (!c.user.empty()) line("user", c.user); // only when set: a config without it stays readable by earlier versions
  out += "end\n";
  return out;
}

/// Parses a `config` file written by format_daemon_config. On failure returns
/// false and says why (with the line number) in `why`. `role` receives the role
/// the file was written for.
inline bool parse_daemon_config(std::string_view text, LocalDaemonConfig& c, std::string& role, std::string& why) {
  c = LocalDaemonConfig{};
  std::size_t number = 0;
  bool ended = false, header = false, any_listener = false;
  std::string value;
  auto fail = [&](std::string reason) {
    why = "line " + std::to_string(number) + ": " + std::move(reason);
    return false;
  };
  auto to_ms = [](std::string_view s, std::chrono::milliseconds& out) {
    long long v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || v < 0) return false;
    out = std::chrono::milliseconds(v);
    return true;
  };
  auto to_port = [](std::string_view s, std::uint16_t& out) {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc{} && r.ptr == s.data() + s.size() && out != 0;
  };
  while (!text.empty()) {
    ++number;
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return fail("no line break at the end (the file was cut short)");
    const std::string_view l = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (ended) return fail("text after 'end'");
    if (!header) {
      if (l != daemon_config_header) return fail("not a stackup local_daemon config (first line '" +
                                                 std::string(l.substr(0, 60)) + "')");
      header = true;
      continue;
    }
    if (l == "end") {
      ended = true;
      continue;
    }
    const auto sp = l.find(' ');
    if (sp == std::string_view::npos) return fail("expected 'key value'");
    const std::string_view key = l.substr(0, sp);
    if (!unescape_config_value(l.substr(sp + 1), value)) return fail("bad escape in the value of '" + std::string(key) + "'");
    if (key == "role") role = value;
    else if (key == "name") c.name = value;
    else if (key == "arg") c.command.push_back(value);
    else if (key == "working_dir") c.working_dir = value;
    else if (key == "user") c.user = value;
    else if (key == "start_timeout_ms") {
      if (!to_ms(value, c.start_timeout)) return fail("start_timeout_ms is not a number of milliseconds");
    } else if (key == "start_grace_ms") {
      if (!to_ms(value, c.start_grace)) return fail("start_grace_ms is not a number of milliseconds");
    } else if (key == "ready_any_listener") {
      if (value != "1") return fail("ready_any_listener is not 1");
      any_listener = true;
    } else if (key == "stop_timeout_ms") {
      if (!to_ms(value, c.stop_timeout)) return fail("stop_timeout_ms is not a number of milliseconds");
    } else if (key == "env") {
      const auto eq = value.find('=');
      if (eq == 0 || eq == std::string::npos) return fail("env entry is not KEY=VALUE");
      c.env[value.substr(0, eq)] = value.substr(eq + 1);
    } else if (key == "ready") {
      const std::string_view v = value;
      const auto s1 = v.find(' ');
      const std::string_view kind = v.substr(0, s1);
      if (kind == "none" && s1 == std::string_view::npos) {
        c.ready = ready::none();
      } else if (kind == "tcp" && s1 != std::string_view::npos) {
        std::uint16_t port = 0;
        if (!to_port(v.substr(s1 + 1), port)) return fail("ready tcp: bad port");
        c.ready = {ready::Probe::Kind::tcp, port, {}, false};
      } else if (kind == "http" && s1 != std::string_view::npos) {
        const auto s2 = v.find(' ', s1 + 1);
        std::uint16_t port = 0;
        if (s2 == std::string_view::npos || !to_port(v.substr(s1 + 1, s2 - s1 - 1), port))
          return fail("ready http: bad port");
        const std::string_view path = v.substr(s2 + 1);
        if (path.empty() || path.front() != '/' || path.find(' ') != std::string_view::npos)
          return fail("ready http: bad path");
        c.ready = {ready::Probe::Kind::http, port, std::string(path), false};
      } else {
        return fail("ready is not 'none', 'tcp PORT' or 'http PORT PATH'");
      }
    } else {
      return fail("unknown key '" + std::string(key.substr(0, 40)) + "'");
    }
  }
  if (!header) {
    why = "the file is empty";
    return false;
  }
  if (!ended) {
    why = "no 'end' line (the file was cut short)";
    return false;
  }
  if (any_listener && c.ready.kind == ready::Probe::Kind::none) {
    why = "ready_any_listener without a tcp or http probe";
    return false;
  }
  c.ready.any_listener = any_listener;
  return true;
}

} // namespace detail

/// A local process that the stack starts and stops (ZenML's LocalDaemonService,
/// done right). Its state directory (mode 0700) holds the ownership marker
/// `.stackup-daemon`, `config`, the pid file `pid` ("<pid> <start time>
/// <invocation id> <waiter pid> <waiter start time>"), `exit` (how the main
/// process last ended), `daemon.log` and a `lock` file.
///
/// - The state directory is stackup's own: provision creates it (or takes an
///   empty one) and writes the marker. A directory without the marker — one
///   stackup did not create, such as a `.git` or `~/.ssh` that happens to hold a
///   `config` — is refused by every query and action with an Error, and is
///   never written to, signalled from or removed. (A directory made by
///   stackup 0.1.0, which wrote no marker, is recognised by its config's first
///   line and gets the marker at its next provision or resume.)
/// - Queries read the real world on every call (pid file, /proc, probe), so a
///   second process that knows only the state directory sees the truth.
/// - `resume` starts the command under the hold: a waiter process (a fork of
///   this one, in a session of its own, a child subreaper) forks it as its
///   child, the main process, in a session of its own too (stdin /dev/null,
///   output appended to daemon.log, `STACKUP_INVOCATION_ID` set to a new
///   random id). Every process the daemon starts stays the waiter's
///   descendant, even through a double fork or setsid(). The pid file records
///   the main process and the waiter (pid and start time each) and the id.
///   With a probe, resume fails at once if the port is already taken, and
///   waits (1-10 ms back-off) until the probe passes on a socket of the
///   daemon's own processes (see ready::Probe::any_listener); without one, it
///   waits start_grace and fails if the main process exited. With `user`, the
///   process runs as that user, in a clean environment (see LocalDaemonConfig::user).
/// - The main process ending is the daemon's end: the waiter records how in
///   `exit` (see last_exit), SIGKILLs every process still held and exits.
/// - `suspend` stops as systemd's KillMode=mixed does: SIGTERM to the main
///   process, then, once it has exited or after `stop_timeout`, SIGKILL to
///   every process still held, and waits until the waiter is gone. A pid whose
///   start time does not match is never signalled. A pid file of stackup 0.2
///   (no waiter) is stopped as 0.2 did: the process groups of its session,
///   while that session is provably the daemon's.
/// - Every action holds an exclusive flock on `lock`: two processes running
///   `up` at once start one daemon.
///
/// ```cpp
/// stackup::LocalDaemon<"orchestrator"> web{{
///     .name = "web",
///     .command = {"/usr/bin/python3", "-m", "http.server", "8765", "--bind", "127.0.0.1"},
///     .state_dir = ".stackup/orchestrator",
///     .ready = stackup::ready::http(8765, "/"),
/// }};
/// ```
template <FixedString Role = "">
class LocalDaemon : public detail::ShippedComponent<LocalDaemon<Role>, Role, LocalDaemonConfig> {
  using Base = detail::ShippedComponent<LocalDaemon<Role>, Role, LocalDaemonConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "local_daemon";
  /// The configuration type (designated initialisers).
  using Config = LocalDaemonConfig;
  /// The ownership marker's file name, inside the state directory: proof that
  /// stackup created the directory.
  static constexpr const char* marker = ".stackup-daemon";

  /// A daemon with this configuration; `state_dir` and `working_dir` are made
  /// absolute now, so a later change of the current directory does not move them;
  /// a negative timeout becomes zero. Error when `state_dir` is empty. Starts nothing.
  explicit LocalDaemon(Config config) : Base(std::move(config)) {
    if (config_.state_dir.empty())
      throw Error("stackup: local_daemon" + (Role.size() ? " (" + std::string(Role.view()) + ")" : std::string()) +
                  ": .state_dir is empty: give it a directory");
    config_.start_timeout = std::max(config_.start_timeout, std::chrono::milliseconds::zero());
    config_.stop_timeout = std::max(config_.stop_timeout, std::chrono::milliseconds::zero());
    config_.start_grace = std::max(config_.start_grace, std::chrono::milliseconds::zero());
    config_.state_dir = detail::owned_directory(config_.state_dir);
    if (!config_.working_dir.empty()) config_.working_dir = std::filesystem::absolute(config_.working_dir);
  }

  /// The daemon a stack file's table describes (`flavor = "local_daemon"`, see
  /// docs/stack-files.md): `name`, the required `command`, `ready` (see
  /// ready::Probe::from_table), the timeouts, `env`, `working_dir` (default:
  /// the file's directory), `state_dir` (default: `.stackup/<role>` there),
  /// `user`, and `restart`, `liveness` and `on_dependency_restart`
  /// (detail::supervision_from_table). `Table` is stackup::StackFileTable (<stackup/stack_file.hpp>), or
  /// a type with its interface.
  template <class Table> [[nodiscard]] static LocalDaemon from_table(const Table& t) {
    Config c;
    c.name = t.optional_string("name").value_or("");
    c.command = t.strings("command");
    if (!t.contains("command"))
      t.fail(t.what() + " lacks the required key 'command' "
             "(the daemon's argv, e.g. command = [\"redis-server\", \"--port\", \"6390\"])");
    const std::string role(t.role());
    if (c.command.empty()) t.fail("command", "'command' of component '" + role + "' is empty: give the daemon's argv");
    if (c.command.front().empty())
      t.fail("command", "'command' of component '" + role + "' starts with an empty program name: give the program first");
    if (const auto r = t.table("ready")) c.ready = ready::Probe::from_table(*r);
    c.start_timeout = t.duration("start_timeout").value_or(c.start_timeout);
    c.stop_timeout = t.duration("stop_timeout").value_or(c.stop_timeout);
    c.start_grace = t.duration("start_grace").value_or(c.start_grace);
    c.env = t.string_map("env");
    c.working_dir = t.path_or("working_dir", t.directory());
    c.state_dir = t.path_or("state_dir", t.directory() / ".stackup" / role);
    c.user = detail::user_from_table(t);
    const auto supervision = detail::supervision_from_table(t);
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    return LocalDaemon(std::move(c));
  }

  /// The daemon whose state directory is `state_dir`, configured from its
  /// `config` file: what another process (e.g. a status or down command) needs.
  /// Error when the directory or its config is missing, unsafe or corrupt, was
  /// written for another role, or the directory is not stackup's.
  [[nodiscard]] static LocalDaemon from_state_dir(const std::filesystem::path& state_dir) {
    LocalDaemon probe{Config{.state_dir = state_dir}};
    const auto& dir = probe.config_.state_dir;
    const auto fd = probe.open_state();
    if (!fd)
      throw Error("stackup: no state directory " + detail::posix::quoted(dir) + ": provision the daemon first (e.g. `stack up`)");
    const auto text = detail::posix::read_file_at(fd.get(), "config", 1 << 20, dir / "config");
    if (!text)
      throw Error("stackup: state directory " + detail::posix::quoted(dir) +
                  " has no config file: provision the daemon again (it writes one)");
    Config c;
    std::string file_role, why;
    if (!detail::parse_daemon_config(*text, c, file_role, why))
      throw Error("stackup: config file " + detail::posix::quoted(dir / "config") + " is corrupt (" + why +
                  "): provision the daemon again to rewrite it, or remove the file");
    c.state_dir = dir;
    LocalDaemon daemon(std::move(c));
    if constexpr (Role.size() == 0) {
      daemon.assign_role(file_role); // the role the directory was made for
    } else if (file_role != Role.view()) {
      throw Error("stackup: state directory " + detail::posix::quoted(dir) + " belongs to role '" + file_role +
                  "', not '" + std::string(Role.view()) + "': open it with LocalDaemon<\"" + file_role + "\">");
    }
    return daemon;
  }

  // name() (the configured name, or the role) and config() (state_dir
  // absolute) come from Base.
  /// The state directory (absolute).
  [[nodiscard]] const std::filesystem::path& state_dir() const noexcept { return config_.state_dir; }
  /// What this daemon owns (one owner per path, checked by the stack): its state directory.
  [[nodiscard]] std::array<std::string_view, 1> owned_paths() const noexcept { return {config_.state_dir.native()}; }
  /// The daemon's output: `<state_dir>/daemon.log`.
  [[nodiscard]] std::filesystem::path log_file() const { return config_.state_dir / "daemon.log"; }
  /// The pid file: `<state_dir>/pid`.
  [[nodiscard]] std::filesystem::path pid_file() const { return config_.state_dir / "pid"; }

  /// The daemon's pid while its process is alive (whether or not it is ready);
  /// empty otherwise. Error on an unsafe or foreign state directory or a corrupt pid file.
  [[nodiscard]] std::optional<pid_t> pid() const {
    const auto dir = open_state();
    if (!dir) return std::nullopt;
    const auto rec = read_pid(dir.get());
    if (!rec || detail::posix::identify(*rec) != detail::posix::Identity::ours) return std::nullopt;
    return rec->pid;
  }

  /// For status tables: "pid 1234, port 8765" while alive, else where the log is.
  [[nodiscard]] std::string detail() const {
    try {
      if (const auto p = pid()) {
        std::string d = "pid " + std::to_string(*p);
        if (config_.ready.kind != ready::Probe::Kind::none) d += ", port " + std::to_string(config_.ready.port);
        return d;
      }
      return is_provisioned() ? "log " + log_file().string() : "state " + config_.state_dir.string();
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  /// The state directory exists, is stackup's, and holds its config. Error
  /// when it is unsafe (a symlink, another user's, group/world-writable) or
  /// not stackup's (no marker): "no" would make `up` provision into it.
  [[nodiscard]] bool is_provisioned() const {
    const auto dir = open_state();
    struct stat st{};
    return dir && ::fstatat(dir.get(), "config", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  }

  /// The pid file parses, its main process is alive with the recorded start
  /// time (a reused pid is not ours), and the readiness probe, if any, passes
  /// against a listener of the daemon's own processes (any listener with
  /// ready::Probe::any_listener). Processes still held once the main process
  /// has exited do not count (its waiter is stopping them, and the next
  /// suspend, resume or deprovision stops what is left). Error on an unsafe or
  /// foreign state directory or a corrupt pid file.
  [[nodiscard]] bool is_running() const {
    const auto dir = open_state();
    if (!dir) return false;
    const auto rec = read_pid(dir.get());
    if (!rec || detail::posix::identify(*rec) != detail::posix::Identity::ours) return false;
    return ready_now(*rec, std::chrono::seconds(1));
  }

  /// How the daemon's main process last ended, as the waiter that held it
  /// recorded it in `<state_dir>/exit` (exit status or signal, and when);
  /// empty when no start under the hold has ended yet, or the record cannot be
  /// read. What another process (a status command, a supervisor) reads.
  [[nodiscard]] std::optional<DaemonExit> last_exit() const {
    const auto dir = open_state();
    if (!dir) return std::nullopt;
    const auto r = read_exit(dir.get());
    if (!r) return std::nullopt;
    DaemonExit out;
    out.pid = r->pid;
    if (r->exit.code == CLD_EXITED) out.exit_code = r->exit.status;
    else out.signal = r->exit.status;
    out.core_dumped = r->exit.code == CLD_DUMPED;
    out.when = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(r->seconds) + std::chrono::nanoseconds(r->nanoseconds)));
    out.left_running = r->left;
    try {
      const auto rec = read_pid(dir.get());
      out.current = rec && rec->invocation_id == r->invocation_id && rec->pid == r->pid;
    } catch (const Error&) {
      out.current = false;
    }
    return out;
  }

  /// A new descriptor (the caller closes it) that becomes readable when the
  /// daemon has ended on its own: a pidfd (close-on-exec) of the waiter the
  /// pid file records. The waiter exits only after it has written `exit` and
  /// killed and reaped every process it held, so once the descriptor is
  /// readable exit_status() tells how the daemon ended and its port is free.
  /// For a pid file of stackup 0.2 (no waiter): a pidfd of the main process.
  /// -1 when there is no pid file or it cannot be read, the waiter has exited
  /// (even if not yet reaped) or its pid is another process's now, or the
  /// system gives no pidfds.
  [[nodiscard]] int exit_fd() const {
    using px = detail::posix;
    try {
      const auto dir = open_state();
      if (!dir) return -1;
      const auto rec = read_pid(dir.get());
      if (!rec) return -1;
      const px::ProcessId target = rec->waiter != 0 ? px::ProcessId{rec->waiter, rec->waiter_start}
                                                    : px::ProcessId{rec->pid, rec->start_time};
      px::Fd fd = px::open_pidfd(target);
      // A waiter that has exited but is not yet reaped (by init) still has a
      // pidfd: it is not running, so none is given.
      if (!fd || !px::alive_as(target.pid, target.start_time)) return -1;
      return fd.release();
    } catch (const std::exception&) {
      return -1; // unsafe state directory, corrupt pid file: the queries say why
    }
  }

  /// Stops the daemon at once, without grace: SIGKILL to its main process and
  /// to every process it holds (its waiter then records the end and exits).
  /// Takes no lock, so it may run while a suspend in another thread waits out
  /// the daemon's stop_timeout (a second Ctrl-C of `stack up --attach`); that
  /// suspend then finds the daemon gone and finishes. Only processes the pid
  /// file proves to be the daemon's are signalled (pid and start time). Errors
  /// are swallowed: there is nothing better to do with them at that point.
  void kill() const noexcept {
    using px = detail::posix;
    try {
      const auto dir = open_state();
      if (!dir) return;
      const auto rec = read_pid(dir.get());
      if (!rec) return;
      (void)px::signal_process({rec->pid, rec->start_time}, SIGKILL);
      for (const auto& p : px::daemon_processes(*rec)) (void)px::signal_process(p, SIGKILL);
    } catch (...) {
      // An unsafe state directory or a corrupt pid file: the queries say why.
    }
  }

  /// Nothing of this start is left: no pid file (never started, or stopped by
  /// a suspend). False for a daemon that is not running by is_running() but
  /// still has a pid file: alive but not ready (its probe fails), or ended on
  /// its own with its end on record. A down suspends those all the same, so no
  /// process escapes a down and what a down stopped never reads as an exit.
  [[nodiscard]] bool is_stopped() const {
    const auto dir = open_state();
    if (!dir) return true;
    struct ::stat st {};
    return ::fstatat(dir.get(), "pid", &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
  }

  /// How the daemon last ended on its own, from last_exit(): its exit status
  /// (`code`) or signal, and when (`at`). Only the end of the start the pid
  /// file records: empty while it runs, after a new start, after a down (which
  /// removes the pid file), and when nothing can be read.
  [[nodiscard]] std::optional<Exit> exit_status() const {
    try {
      const auto e = last_exit();
      if (!e || !e->current) return std::nullopt;
      Exit out;
      out.code = e->exit_code;
      out.signal = e->signal;
      out.at = e->when;
      return out;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  /// What a supervisor reads: the config's `restart`, `liveness` and
  /// `on_dependency_restart`.
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

  /// Creates the state directory (mode 0700, parents as needed) with the
  /// ownership marker, and writes the config. Refuses (Error naming the path and
  /// the reason) a state directory that is a symlink, another user's, or
  /// group/world-writable; `/`, a home directory (or a parent of one); and an
  /// existing directory without the marker that is not empty: the state
  /// directory is stackup's own. Also finishes removals a killed deprovision
  /// left behind (`<state_dir>.removing-<pid>`).
  void provision() {
    using px = detail::posix;
    if (const std::string why = px::forbidden_directory(config_.state_dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing state directory " + px::quoted(config_.state_dir) + ": " + why +
                  "; give the daemon a directory of its own");
    {
      // Missing parents are made here (marked, so that deprovision removes
      // them again); one another user can write is refused.
      const px::Fd parent = px::make_parents(config_.state_dir, LOCK_SH, who());
      px::check_parent(parent.get(), config_.state_dir.parent_path(), who(), "use state directory",
                       config_.state_dir);
      remove_leftovers(parent.get());
    }
    const auto locked = lock_state(true);
    claim(locked.dir.get());
    write_config(locked.dir.get());
  }

  /// Starts the command under its waiter and waits until it is ready. Nothing
  /// to do if it already runs. TransitionError when the probe's port is
  /// already taken (naming the port and its holder; nothing is started), when
  /// the main process exits before it is ready or within start_grace (with its
  /// exit status and the last lines of its log; what it left is stopped), or
  /// when it is not ready within start_timeout (it is stopped first);
  /// ProvisioningError when there is no state directory. With a restart policy
  /// (`restart.policy` other than Restart::no) the main process exiting during
  /// that wait is not a failure: resume logs it and returns, keeping the pid
  /// file and `exit` (exit_status() says how it ended), and a supervisor
  /// restarts it by the policy. A taken port or a daemon not ready in time
  /// still fails.
  void resume() {
    using px = detail::posix;
    if (config_.command.empty())
      throw Error("stackup: " + who() + ": no command configured: set .command (argv of the daemon)");
    const auto as = px::run_as(config_.user, who()); // before anything is written: no such user, or not root
    const auto locked = lock_state(false);
    if (!locked)
      throw ProvisioningError("stackup: " + who() + ": state directory " + px::quoted(config_.state_dir) +
                              " does not exist: provision first");
    const int dir = locked.dir.get();
    claim(dir);
    write_config(dir);
    if (const auto rec = read_pid(dir)) {
      // Under the lock, so a concurrent `up` that started it is seen here.
      if (px::identify(*rec) == px::Identity::ours) return await_ready(dir, *rec, 0, false);
      // Stale: the main process is gone or the pid reused. What it left
      // running is stopped, so that this start is the only one.
      stop(dir);
    }
    if (config_.ready.kind != ready::Probe::Kind::none) {
      // Whatever answers on the port now is not this daemon: its probe would pass
      // for it while the daemon itself dies of "address already in use".
      if (const std::string holders = px::listener_holders(config_.ready.port); !holders.empty())
        throw TransitionError(std::string(this->role_name()), Transition::resume,
                              "stackup: " + who() + ": port " + std::to_string(config_.ready.port) +
                                  " is already taken by " + holders +
                                  " before the daemon started: stop that process, or give the daemon another port");
    }

    px::Fd log = px::open_own_file(dir, "daemon.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (!log) throw Error("stackup: " + who() + ": cannot open " + px::quoted(log_file()) + ": " + px::own_file_error(errno));
    log = px::above_stdio(std::move(log));
    px::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null) throw Error("stackup: cannot open /dev/null: " + px::sys_message(errno));
    null = px::above_stdio(std::move(null));
    std::string header = "--- stackup " + timestamp() + ": starting";
    for (const auto& a : config_.command) header += " " + a;
    header += "\n";
    px::write_all(log.get(), header);
    const off_t run_start = ::lseek(log.get(), 0, SEEK_END);

    px::PidRecord rec{0, 0, px::new_invocation_id()};
    if (rec.invocation_id.empty()) rec.invocation_id = std::string(32, '0'); // no random bytes: no id to prove by
    auto env = config_.env;
    if (rec.invocation_id != std::string(32, '0')) env[std::string(px::invocation_variable)] = rec.invocation_id;
    px::SpawnOptions o;
    o.argv = config_.command;
    o.env = &env;
    o.working_dir = config_.working_dir;
    o.stdin_fd = null.get();
    o.stdout_fd = log.get();
    o.stderr_fd = log.get();
    o.user = as ? &*as : nullptr;
    try {
      // The pid file is written before the main process may exec, so no daemon
      // ever runs unrecorded, even if this process dies right now. Its waiter
      // holds everything it starts and writes `exit` when it ends.
      px::spawn_held(o, dir, rec.invocation_id + " ", [&](const px::Held& held) {
        const auto main = px::read_proc_stat(held.main);
        const auto waiter = px::read_proc_stat(held.waiter);
        if (!main || !waiter)
          throw Error("stackup: cannot read /proc/" + std::to_string(main ? held.waiter : held.main) +
                      "/stat of the new process");
        rec.pid = held.main;
        rec.start_time = main->start_time;
        rec.waiter = held.waiter;
        rec.waiter_start = waiter->start_time;
        px::write_file_atomic(dir, "pid", px::format_pid_record(rec), pid_file());
      });
    } catch (const std::exception& e) {
      ::unlinkat(dir, "pid", 0);
      throw TransitionError(std::string(this->role_name()), Transition::resume,
                            "stackup: " + who() + ": " + std::string(detail::unprefixed(e.what())));
    }
    await_ready(dir, rec, run_start, true);
  }

  /// SIGTERM to the main process, up to stop_timeout for it to exit, then
  /// SIGKILL to every process still held; returns once the waiter is gone
  /// (nothing the daemon started is left) and removes the pid file. A stale
  /// pid file (process gone, or the pid now another process's) is removed
  /// without signalling anything but what its waiter still holds.
  void suspend() {
    if (const auto locked = lock_state(false)) stop(locked.dir.get());
  }

  /// Stops the daemon if it runs, then removes the state directory, the
  /// ownership marker last. Refuses (Error, removing nothing) a directory that
  /// is not stackup's. Also finishes removals a killed deprovision left behind
  /// (`<state_dir>.removing-<pid>`).
  void deprovision() {
    using px = detail::posix;
    if (const std::string why = px::forbidden_directory(config_.state_dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing to remove state directory " + px::quoted(config_.state_dir) +
                  ": " + why);
    {
      // Everything is removed relative to this descriptor of the parent,
      // never by path: a directory swapped for a symlink is not followed.
      const auto parent_dir = config_.state_dir.parent_path();
      const px::Fd parent(::open(parent_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!parent) {
        if (errno == ENOENT) return; // no parent, no state directory
        throw Error("stackup: " + who() + ": cannot open " + px::quoted(parent_dir) + ": " + px::sys_message(errno));
      }
      px::check_parent(parent.get(), parent_dir, who(), "remove state directory", config_.state_dir);
      remove_leftovers(parent.get());
      const auto locked = lock_state(false);
      if (locked) {
        const int dir = locked.dir.get();
        if (const auto mount = px::find_mount(dir))
          throw Error("stackup: " + who() + ": refusing to remove state directory " + px::quoted(config_.state_dir) +
                      ": " + px::removal_error(config_.state_dir, mount) + "; nothing was removed or stopped");
        stop(dir);
        // The directory locked must be the entry of the parent held.
        const std::string leaf = config_.state_dir.filename().string();
        struct stat held{}, entry{};
        if (::fstat(dir, &held) != 0 || ::fstatat(parent.get(), leaf.c_str(), &entry, AT_SYMLINK_NOFOLLOW) != 0 ||
            held.st_ino != entry.st_ino || held.st_dev != entry.st_dev)
          throw Error("stackup: " + who() + ": state directory " + px::quoted(config_.state_dir) +
                      " was replaced while it was being removed; nothing was removed: look at what is there now");
        if (px::is_mount_point(parent.get(), dir))
          throw Error("stackup: " + who() + ": state directory " + px::quoted(config_.state_dir) +
                      " is a mount point; stackup never removes anything on another mount: unmount it (umount " +
                      config_.state_dir.string() + "), then deprovision again");
        // Move the directory away while holding its lock: a process waiting for
        // that lock then finds no state directory at the path and gives up,
        // instead of locking a new lock file inside a directory being removed (two
        // holders at once). If this process dies before the removal ends, the next
        // provision or deprovision finishes it (remove_leftovers).
        std::string doomed = leaf + ".removing-" + std::to_string(::getpid());
        if (::renameat(parent.get(), leaf.c_str(), parent.get(), doomed.c_str()) != 0) doomed = leaf;
        if (const auto r = remove_state_tree(parent.get(), doomed, dir))
          throw Error("stackup: " + who() + ": " + px::removal_error(parent_dir / doomed, r) +
                      "; what is left keeps stackup's marker: remove the cause, then deprovision again");
      }
    } // the parent is let go: removing it takes its lock
    px::remove_made_parents(config_.state_dir);
  }

private:
  // What proves that a state directory is stackup's.
  enum class Owner : unsigned char {
    ours,      // it carries the marker
    legacy,    // made by stackup 0.1.0: no marker, but a config in stackup's format
    unclaimed, // empty, or only what an interrupted provision leaves: provision may take it
    foreign,   // anything else: never written to, signalled from or removed
  };

  static Owner owner_of(int dir) {
    using px = detail::posix;
    if (px::has_marker(dir, marker)) return Owner::ours;
    if (px::begins_with(dir, "config", std::string(detail::daemon_config_header) + "\n")) return Owner::legacy;
    const int copy = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); // readdir has its own position
    DIR* entries = copy >= 0 ? ::fdopendir(copy) : nullptr;
    if (entries == nullptr) {
      if (copy >= 0) ::close(copy);
      return Owner::foreign;
    }
    const std::string marker_tmp = std::string(marker) + ".tmp"; // create_marker's temporary file
    Owner found = Owner::unclaimed;
    while (const dirent* e = ::readdir(entries)) {
      const std::string_view n = e->d_name;
      struct stat st{};
      if (n == "." || n == "..") continue;
      // The lock file lock_private_dir creates is empty; nothing ever writes to it.
      if (n == "lock" && ::fstatat(dir, "lock", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
          st.st_size == 0)
        continue;
      if (n == marker_tmp) continue;
      // Another process may have claimed it since the marker was looked for
      // (it writes the marker first, then everything else): look again.
      found = px::has_marker(dir, marker) ? Owner::ours : Owner::foreign;
      break;
    }
    ::closedir(entries);
    return found;
  }

  // The owner of the open state directory `dir`; Error, naming the path and
  // the fix, when it is foreign.
  Owner check_owner(int dir) const {
    const Owner owner = owner_of(dir);
    if (owner == Owner::foreign)
      throw Error("stackup: " + who() + ": refusing state directory " + detail::posix::quoted(config_.state_dir) +
                  ": it has no stackup marker (" + marker +
                  ") and is not empty, so stackup did not create it and leaves it untouched: give the daemon a "
                  "directory of its own (a new or empty one)");
    return owner;
  }

  // The state directory, opened and checked (Error when unsafe or foreign);
  // empty when it does not exist.
  [[nodiscard]] detail::posix::Fd open_state() const {
    auto dir = detail::posix::open_private_dir(config_.state_dir);
    if (dir) check_owner(dir.get());
    return dir;
  }

  // The state directory, locked (created if `create`); checked to be
  // stackup's before the lock file is created in it, and again under the lock.
  // Empty when it does not exist and was not to be created.
  [[nodiscard]] detail::posix::LockedDir lock_state(bool create) const {
    (void)open_state();
    auto locked = detail::posix::lock_private_dir(config_.state_dir, create);
    if (locked) check_owner(locked.dir.get());
    return locked;
  }

  // Under the lock: makes the directory provably stackup's (writes the marker
  // into an empty directory or one made by 0.1.0). Error when it is foreign.
  void claim(int dir) const {
    if (check_owner(dir) == Owner::ours) return;
    const std::string content = std::string(detail::posix::marker_prefix) + " as the state directory of local_daemon " +
                                std::string(this->role_name()) + "; deprovision removes this directory and everything in it\n";
    if (!detail::posix::create_marker(dir, marker, content, config_.state_dir / marker) &&
        !detail::posix::has_marker(dir, marker))
      check_owner(dir); // something that is not a marker appeared in its place: foreign now
  }

  // Removes the state directory `name` in `parent`, open as `dir` (checked to
  // be that entry and stackup's), with everything in it, through descriptors
  // only: never through a symlink, never onto another mount, never above
  // `dir`. Its proofs of ownership (config, then the marker) go last: a
  // removal cut short leaves a directory that is still provably stackup's, so
  // a later remove_leftovers finishes it. A process that was waiting for the
  // lock may add one lock file meanwhile: it goes again, up to 16 times.
  static detail::posix::Removal remove_state_tree(int parent, const std::string& name, int dir) {
    return detail::posix::remove_directory_at(parent, name, dir, {std::string_view("config"), std::string_view(marker)},
                                              [](int) {}, 16);
  }

  // Finishes removals that a deprovision killed after moving the state
  // directory away left behind: `<state_dir>.removing-<pid>` entries of the
  // parent held as `parent` whose process is gone and that are, as opened,
  // this user's private directories and provably stackup's (or hold nothing).
  // Best effort: what cannot be removed now is left for the next call.
  void remove_leftovers(int parent) const {
    using px = detail::posix;
    const std::string prefix = config_.state_dir.filename().string() + ".removing-";
    std::vector<std::string> names;
    if (px::list_directory(parent, names) != 0) return;
    for (const auto& n : names) {
      if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
      pid_t pid = 0;
      const auto r = std::from_chars(n.data() + prefix.size(), n.data() + n.size(), pid);
      if (r.ec != std::errc{} || r.ptr != n.data() + n.size() || pid <= 0) continue;
      if (const auto st = px::read_proc_stat(pid); st && px::is_live_state(st->state)) continue; // may be removing it
      const px::Fd dir = px::open_below(parent, n.c_str());
      struct stat st{};
      if (!dir || ::fstat(dir.get(), &st) != 0 || st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ||
          owner_of(dir.get()) == Owner::foreign)
        continue;
      (void)remove_state_tree(parent, n, dir.get());
    }
  }

  using Base::config_;
  using Base::who;

  static std::string timestamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    return std::string(buf, std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm));
  }

  void write_config(int dir) const {
    detail::posix::write_file_atomic(dir, "config", detail::format_daemon_config(this->role_name(), config_),
                                     config_.state_dir / "config");
  }

  // The pid file's record; empty when there is none. Error when it is corrupt:
  // it names the file and what to do, and nothing has been signalled.
  [[nodiscard]] std::optional<detail::posix::PidRecord> read_pid(int dir) const {
    const auto text = detail::posix::read_file_at(dir, "pid", 256, pid_file());
    if (!text) return std::nullopt;
    detail::posix::PidRecord rec;
    std::string why;
    if (!detail::posix::parse_pid_record(*text, rec, why))
      throw Error("stackup: " + who() + ": pid file " + detail::posix::quoted(pid_file()) + " " + why +
                  "; nothing was signalled. If no process of this daemon is running (see " + log_file().string() +
                  "), delete the pid file; otherwise stop that process yourself first");
    return rec;
  }

  [[nodiscard]] bool probe(std::chrono::milliseconds timeout) const {
    switch (config_.ready.kind) {
    case ready::Probe::Kind::none: return true;
    case ready::Probe::Kind::tcp: return detail::posix::tcp_probe(config_.ready.port, timeout);
    case ready::Probe::Kind::http: return detail::posix::http_probe(config_.ready.port, config_.ready.path, timeout);
    }
    return false;
  }

  // The waiter's record of how the main process ended; empty when there is
  // none or it cannot be read (not a regular file, corrupt).
  [[nodiscard]] std::optional<detail::posix::ExitRecord> read_exit(int dir) const {
    try {
      const auto text = detail::posix::read_file_at(dir, "exit", 256, config_.state_dir / "exit");
      return text ? detail::posix::parse_exit_record(*text) : std::nullopt;
    } catch (const Error&) {
      return std::nullopt;
    }
  }

  // Whether the daemon answers its probe now, on a listener of its own
  // processes (the waiter's descendants) unless any_listener says any will do.
  [[nodiscard]] bool ready_now(const detail::posix::PidRecord& rec, std::chrono::milliseconds timeout) const {
    using px = detail::posix;
    if (config_.ready.kind == ready::Probe::Kind::none) return true;
    if (!probe(timeout)) return false;
    if (config_.ready.any_listener || rec.waiter == 0) return true; // a record from before the hold: none to ask
    const auto inodes = px::listening_inodes(config_.ready.port);
    if (inodes.empty()) return false;
    for (const auto& p : px::daemon_processes(rec))
      if (px::holds_socket(p.pid, inodes)) return true;
    return false;
  }

  // Stops what a record names: under the hold (KillMode=mixed), or, for a pid
  // file of stackup 0.2 (no waiter), by its session and invocation id.
  detail::posix::Stopped halt(const detail::posix::PidRecord& rec) const {
    using px = detail::posix;
    return rec.waiter != 0 ? px::stop_held(rec, config_.stop_timeout, who())
                           : px::stop_process(rec, config_.stop_timeout, who());
  }

  // Polls (1 ms back-off up to 10 ms) until the daemon is ready, its main
  // process ends, or start_timeout passes. Ready: the probe passes (see
  // ready_now); without a probe, the main process is still running once
  // start_grace has passed (`fresh`: this call started it; a daemon found
  // running is ready at once). `log_from`: where this run's output begins.
  void await_ready(int dir, const detail::posix::PidRecord& rec, off_t log_from, bool fresh) {
    using px = detail::posix;
    using Clock = px::Clock;
    const bool probed = config_.ready.kind != ready::Probe::Kind::none;
    const auto deadline = px::deadline_after(config_.start_timeout);
    const auto grace_end = px::deadline_after(fresh && !probed ? config_.start_grace : std::chrono::milliseconds(0));
    px::Backoff backoff;
    auto fail = [&](std::string what) {
      ::unlinkat(dir, "pid", 0);
      std::string tail = px::log_tail(dir, "daemon.log", log_from);
      what += tail.empty() ? " (" + log_file().string() + " has nothing from it)"
                           : "; last lines of " + log_file().string() + ":" + tail;
      throw_transition_error(std::string(this->role_name()), Transition::resume, "stackup: " + who() + " " + what);
    };
    const std::string when = probed ? "before it was ready" : "within its start-up grace of " +
                                                                 px::format_duration(config_.start_grace);
    while (true) {
      if (rec.waiter != 0 && px::identify(rec, false) != px::Identity::ours) {
        // Its waiter kills what it left and records how it ended; stop_held waits for that.
        const bool left = halt(rec) == px::Stopped::remains;
        const auto ended = read_exit(dir);
        const bool known = ended && ended->invocation_id == rec.invocation_id && ended->pid == rec.pid;
        std::string what = known ? "exited with " + px::describe_exit(ended->exit) + " " + when
                                 : "exited " + when;
        if (left || (known && ended->left > 0)) {
          append_log(dir, "stopped the processes it left running");
          what += "; it left processes running, which were stopped: the command must run its server in the "
                  "foreground (one that puts it in the background, like `sh -c 'server &'` or `redis-server "
                  "--daemonize yes`, is not supported)";
        }
        if (supervised()) return left_to_policy(dir, what);
        fail(what);
      }
      if (rec.waiter == 0) {
        // A daemon started by stackup 0.2, found running: no waiter holds it.
        const bool gone = px::identify(rec, false) != px::Identity::ours;
        const auto ended = px::peek_exit(rec.pid);
        const bool status = ended && ended->code != px::unknown_exit;
        if (gone || status) {
          const bool left = halt(rec) != px::Stopped::not_running;
          std::string what = status ? "exited with " + px::describe_exit(*ended) + " " + when : "exited " + when;
          if (left) append_log(dir, "stopped the processes it left in its session");
          if (supervised()) return left_to_policy(dir, what);
          fail(what);
        }
      }
      if (!probed) {
        if (Clock::now() >= grace_end) return;
      } else {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (ready_now(rec, std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(1000)))) return;
      }
      if (stop_requested()) { // Ctrl-C, or UpOptions::stop: give up the wait, leave nothing running
        halt(rec);
        append_log(dir, "stopped: the start was interrupted (a stop was requested)");
        ::unlinkat(dir, "pid", 0);
        throw InterruptedError("stackup: " + who() + " was stopped before it was ready: a stop was requested");
      }
      if (probed && Clock::now() >= deadline) {
        const auto how = halt(rec);
        append_log(dir, how == px::Stopped::killed ? "stopped with SIGKILL: not ready in time"
                                                   : "stopped with SIGTERM: not ready in time");
        fail("was not ready within " + px::format_duration(config_.start_timeout) + " (probe " +
             config_.ready.describe() + "); it was stopped");
      }
      backoff.sleep(probed ? deadline : grace_end);
    }
  }

  // Whether an exit during start-up is its restart policy's to handle (DESIGN
  // §10) rather than resume's failure.
  [[nodiscard]] bool supervised() const noexcept { return config_.restart.policy != Restart::no; }

  // An exit during start-up of a daemon with a restart policy: resume does not
  // fail. The pid file and `exit` stay, so exit_status() and status show how it
  // ended; a supervisor restarts it by its policy.
  void left_to_policy(int dir, const std::string& what) const {
    append_log(dir, what + "; resume leaves it to its restart policy (" + std::string(to_string(config_.restart.policy)) +
                        ")");
  }

  // Stops the recorded daemon (if it is still ours) and everything it holds,
  // and removes the pid file.
  void stop(int dir) {
    using px = detail::posix;
    const auto rec = read_pid(dir);
    if (!rec) return;
    const auto how = halt(*rec);
    if (how == px::Stopped::terminated) append_log(dir, "stopped with SIGTERM");
    if (how == px::Stopped::killed)
      append_log(dir, "stopped with SIGKILL: still running " + px::format_duration(config_.stop_timeout) +
                          " after SIGTERM");
    if (how == px::Stopped::remains) append_log(dir, "stopped with SIGKILL what it had left running");
    ::unlinkat(dir, "pid", 0);
  }

  void append_log(int dir, std::string_view what) const {
    const auto log = detail::posix::open_own_file(dir, "daemon.log", O_WRONLY | O_APPEND);
    if (log) detail::posix::write_all(log.get(), "--- stackup " + timestamp() + ": " + std::string(what) + "\n");
  }
};

} // namespace stackup
