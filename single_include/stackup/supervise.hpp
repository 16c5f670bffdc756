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

// ---- begin stackup/supervise.hpp ----
// stackup — keeping a stack running (DESIGN §10): stackup::supervise watches
// every component with a restart policy or a liveness probe and restarts what
// stops running on its own, by its policy. Not part of the umbrella header.
// SPDX-License-Identifier: MIT


// ---- begin stackup/detail/supervision_record.hpp ----
// stackup — what a supervisor (stackup::supervise) leaves on disk for other
// processes, in its state directory (SuperviseOptions::state_dir):
//
// - `supervision`: where supervision stands for each role it watches, replaced
//   atomically on each change. A versioned text format, closed by `end` so that a
//   file cut short is detected:
//
//       stackup supervision 1
//       cache watching 2 code 1733572801123 3
//       app backing-off 1 liveness 1733572801123 http 127.0.0.1:8090/health: no 2xx answer within 1s
//       worker failed 5 signal 1733572801123 9
//       db none 0 -
//       end
//
//   One line per role: `<role> <state> <restarts> <exit>`, where <exit> is `-`
//   (none), `code <at> <status>`, `signal <at> <number>`, `liveness <at> <text>`
//   or `error <at> <text>`; <at> is milliseconds since the Unix epoch; <role> and
//   <text> are escaped (`\\`, `\s` for a space in a role, `\n`, `\r`).
// - `down/<role>` and `down/.stack`: marks left by a `down` from any process
//   (the role, or the whole stack), so that the supervisor never restarts what a
//   `down` stopped ("a down always wins"). An `up` clears them.
//
// Every file is reached through the state directory's descriptor, opened once
// without following a symlink and checked to be this user's and writable by no
// one else. Not part of the public API.
// SPDX-License-Identifier: MIT


#include <charconv>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace stackup::detail::supervision {

/// One role's row of the record.
struct Row {
  std::string role;
  SupervisionState state = SupervisionState::none;
  unsigned restarts = 0;     ///< restarts by the supervisor since the role's last up
  std::optional<Exit> exit{}; ///< how it last stopped running on its own, if it did
};

/// The same exit: every member equal.
inline bool same_exit(const std::optional<Exit>& a, const std::optional<Exit>& b) noexcept {
  if (!a || !b) return !a && !b;
  return a->code == b->code && a->signal == b->signal && a->liveness == b->liveness && a->error == b->error &&
         a->at == b->at;
}
/// The same row: every member equal.
inline bool same_row(const Row& a, const Row& b) noexcept {
  return a.role == b.role && a.state == b.state && a.restarts == b.restarts && same_exit(a.exit, b.exit);
}

/// The record's first line; a later format gets another number.
inline constexpr std::string_view record_header = "stackup supervision 1";
/// The record's file name in the state directory.
inline constexpr const char* record_file = "supervision";
/// The down marks' directory in the state directory.
inline constexpr const char* down_directory = "down";
/// The `role` of mark_down / clear_down / marked_down that stands for the whole stack.
inline constexpr std::string_view whole_stack = ".stack";

/// `\\`, `\n`, `\r` (and `\s` for a space when `space`) escaped: one field of a line.
inline std::string escape(std::string_view v, bool space) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == ' ' && space) out += "\\s";
    else out += c;
  }
  return out;
}
/// The inverse of escape; false for an escape it never writes, or a raw space when `space`.
inline bool unescape(std::string_view v, bool space, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == ' ' && space) return false;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == v.size()) return false;
    if (v[i] == '\\') out += '\\';
    else if (v[i] == 'n') out += '\n';
    else if (v[i] == 'r') out += '\r';
    else if (v[i] == 's' && space) out += ' ';
    else return false;
  }
  return true;
}

// The latest time a record holds (year 2255): milliseconds that convert to any
// system_clock duration without overflow.
inline constexpr long long max_at_ms = 9'000'000'000'000LL;

inline long long at_ms(std::chrono::system_clock::time_point t) noexcept {
  const long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return ms < 0 ? 0 : ms > max_at_ms ? max_at_ms : ms;
}

/// The record's text for `rows`.
inline std::string format_record(std::span<const Row> rows) {
  std::string out(record_header);
  out += '\n';
  for (const Row& r : rows) {
    out += escape(r.role, true);
    out += ' ';
    out += to_string(r.state);
    out += ' ';
    out += std::to_string(r.restarts);
    out += ' ';
    if (!r.exit) {
      out += "-\n";
      continue;
    }
    const Exit& e = *r.exit;
    const std::string at = std::to_string(at_ms(e.at));
    if (e.code) out += "code " + at + " " + std::to_string(*e.code);
    else if (e.signal) out += "signal " + at + " " + std::to_string(*e.signal);
    else if (!e.liveness.empty()) out += "liveness " + at + " " + escape(e.liveness, false);
    else out += "error " + at + " " + escape(e.error, false);
    out += '\n';
  }
  out += "end\n";
  return out;
}

/// Parses a record written by format_record: its rows, or nullopt for anything
/// else (another header, a line cut short, an unknown state or exit kind, a
/// number out of range, a role twice, text after `end`). Never throws but
/// std::bad_alloc.
inline std::optional<std::vector<Row>> parse_record(std::string_view text) {
  auto next_line = [&](std::string_view& line) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return false;
    line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    return true;
  };
  // The next space-separated field of `l` (the rest when `last`).
  auto field = [](std::string_view& l, std::string_view& out, bool last = false) {
    if (last) {
      out = l;
      l = {};
      return true;
    }
    const auto sp = l.find(' ');
    if (sp == std::string_view::npos) {
      out = l;
      l = {};
    } else {
      out = l.substr(0, sp);
      l.remove_prefix(sp + 1);
      if (l.empty()) return false; // a trailing space before nothing
    }
    return !out.empty();
  };
  auto number = [](std::string_view s, auto& out) {
    if (s.empty() || s[0] == '+' || (s.size() > 1 && s[0] == '0') || (s.size() > 1 && s[0] == '-' && s[1] == '0'))
      return false;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc{} && r.ptr == s.data() + s.size();
  };
  std::string_view line;
  if (!next_line(line) || line != record_header) return std::nullopt;
  std::vector<Row> rows;
  for (;;) {
    if (!next_line(line)) return std::nullopt; // cut short: no `end`
    if (line == "end") break;
    Row row;
    std::string_view role, state, restarts, kind;
    if (!field(line, role) || !field(line, state) || !field(line, restarts) || !field(line, kind)) return std::nullopt;
    if (!unescape(role, true, row.role) || row.role.empty()) return std::nullopt;
    for (const Row& r : rows)
      if (r.role == row.role) return std::nullopt;
    if (state == "none") row.state = SupervisionState::none;
    else if (state == "watching") row.state = SupervisionState::watching;
    else if (state == "backing-off") row.state = SupervisionState::backing_off;
    else if (state == "failed") row.state = SupervisionState::failed;
    else return std::nullopt;
    if (!number(restarts, row.restarts) || restarts[0] == '-') return std::nullopt;
    if (kind == "-") {
      if (!line.empty()) return std::nullopt;
      rows.push_back(std::move(row));
      continue;
    }
    // `<at> <value>`; the text kinds' value is the rest of the line: it may hold spaces, or be empty.
    const bool text_kind = kind == "liveness" || kind == "error";
    const auto sp = line.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    const std::string_view at = line.substr(0, sp), value = line.substr(sp + 1);
    long long ms = 0;
    if (!number(at, ms) || ms < 0 || ms > max_at_ms) return std::nullopt;
    if (!text_kind && (value.empty() || value.find(' ') != std::string_view::npos)) return std::nullopt;
    Exit e;
    e.at = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::milliseconds(ms)));
    if (kind == "code" || kind == "signal") {
      int v = 0;
      if (!number(value, v)) return std::nullopt;
      if (kind == "code") e.code = v;
      else if (v <= 0) return std::nullopt;
      else e.signal = v;
    } else if (kind == "liveness") {
      if (!unescape(value, false, e.liveness) || e.liveness.empty()) return std::nullopt;
    } else if (kind == "error") {
      if (!unescape(value, false, e.error)) return std::nullopt;
    } else {
      return std::nullopt;
    }
    row.exit = std::move(e);
    rows.push_back(std::move(row));
  }
  if (!text.empty()) return std::nullopt; // text after `end`
  return rows;
}

/// Opens the state directory `dir` (creating it, and any missing parent, with
/// mode 0700 when `create`): a real directory, this user's, writable by no one
/// else. Empty when it does not exist and `create` is false; Error naming it,
/// the reason and the fix, otherwise.
inline posix::Fd open_state_dir(const std::filesystem::path& dir, bool create) {
  if (dir.empty()) throw Error("stackup: the supervision state directory is empty: give a directory");
  posix::Fd fd = posix::open_private_dir(dir);
  if (fd || !create) return fd;
  // Parents as mkdir -p makes them (mode 0700); the directory itself is checked when opened.
  std::filesystem::path at;
  for (const auto& part : dir) {
    at /= part;
    if (::mkdir(at.c_str(), 0700) != 0 && errno != EEXIST)
      throw Error("stackup: cannot create the supervision state directory " + posix::quoted(at) + ": " +
                  posix::sys_message(errno) + ": create it, or give another state_dir");
  }
  fd = posix::open_private_dir(dir);
  if (!fd) throw Error("stackup: the supervision state directory " + posix::quoted(dir) + " vanished as it was made");
  return fd;
}

/// Replaces the record in the state directory open as `dirfd` (written to a
/// temporary file, then renamed: a reader sees the old record or the new).
inline void write_record(int dirfd, std::span<const Row> rows, const std::filesystem::path& dir) {
  posix::write_file_atomic(dirfd, record_file, format_record(rows), dir / record_file);
}

/// The record in the state directory `dir`: nullopt when there is none, or it
/// is not a record (garbage, cut short, a symlink, not a regular file). Error
/// when the directory is not a private one (see open_state_dir).
inline std::optional<std::vector<Row>> read_record(const std::filesystem::path& dir) {
  const posix::Fd fd = open_state_dir(dir, false);
  if (!fd) return std::nullopt;
  try {
    const auto text = posix::read_file_at(fd.get(), record_file, 1 << 20, dir / record_file);
    if (!text) return std::nullopt;
    return parse_record(*text);
  } catch (const Error&) {
    return std::nullopt;
  }
}

/// The file name of `role`'s down mark: bytes outside [A-Za-z0-9_-] as %XX, so
/// that no role names a path ('/', "..") or the whole-stack mark; whole_stack as is.
inline std::string mark_name(std::string_view role) {
  if (role == whole_stack) return std::string(whole_stack);
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : role) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || c == '_' || c == '-') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

/// The `down` directory inside the state directory `dirfd` (made with mode 0700
/// when `create`), checked as the state directory is; empty when it does not exist.
inline posix::Fd open_down_dir(int dirfd, bool create, const std::filesystem::path& dir) {
  const std::filesystem::path shown = dir / down_directory;
  if (create && ::mkdirat(dirfd, down_directory, 0700) != 0 && errno != EEXIST)
    throw Error("stackup: cannot create " + posix::quoted(shown) + ": " + posix::sys_message(errno));
  posix::Fd fd(::openat(dirfd, down_directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return fd;
    throw Error("stackup: cannot open " + posix::quoted(shown) + ": " + posix::sys_message(errno) +
                (errno == ELOOP || errno == ENOTDIR ? ": it must be a directory (not a symlink): remove it" : ""));
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    throw Error("stackup: " + posix::quoted(shown) +
                " is not this user's or is writable by others; another user could forge a down: remove it");
  return fd;
}

/// Marks `role` (whole_stack: the whole stack) as brought down, in the state
/// directory `dir` (created if missing): a supervisor leaves it down until it
/// runs again and the mark is cleared.
inline void mark_down(const std::filesystem::path& dir, std::string_view role) {
  const posix::Fd state = open_state_dir(dir, true);
  const posix::Fd down = open_down_dir(state.get(), true, dir);
  const std::string name = mark_name(role);
  posix::Fd f(::openat(down.get(), name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
                       0600));
  if (!f || !posix::write_all(f.get(), std::string(posix::marker_prefix) + ": down\n"))
    throw Error("stackup: cannot write the down mark " + posix::quoted(dir / down_directory / name) + ": " +
                posix::sys_message(errno));
}

/// Removes `role`'s down mark (whole_stack: the whole stack's mark) in the
/// state directory `dir`, if there is one.
inline void clear_down(const std::filesystem::path& dir, std::string_view role) {
  const posix::Fd state = open_state_dir(dir, false);
  if (!state) return;
  const posix::Fd down = open_down_dir(state.get(), false, dir);
  if (!down) return;
  const std::string name = mark_name(role);
  if (::unlinkat(down.get(), name.c_str(), 0) != 0 && errno != ENOENT)
    throw Error("stackup: cannot remove the down mark " + posix::quoted(dir / down_directory / name) + ": " +
                posix::sys_message(errno));
}

/// Whether `role` or the whole stack is marked down in the state directory open
/// as `dirfd` (a regular file, not a symlink, in a `down` directory that is not one).
inline bool marked_down(int dirfd, std::string_view role) {
  const posix::Fd down(::openat(dirfd, down_directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!down) return false;
  auto marked = [&](const std::string& name) {
    struct stat st{};
    return ::fstatat(down.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  };
  return marked(std::string(whole_stack)) || marked(mark_name(role));
}

} // namespace stackup::detail::supervision
// ---- end stackup/detail/supervision_record.hpp ----

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stackup {

/// What supervise() does when a component exits.
enum class OnExit : unsigned char {
  policy, ///< what the component's restart policy says (the default)
  abort,  ///< return at once with that exit (stackctl's `--abort-on-exit`)
};

/// Options of supervise(). Members in this order, for designated initialisers.
struct SuperviseOptions {
  /// Run until a stop is requested on this token (`.stop = &token`; it must
  /// outlive the call). Null: until every supervised component is failed or down.
  /// A stop requested during a restart is seen once the restart is over.
  StopTokenRef stop = nullptr;
  /// Per role, a policy that replaces the component's own (`supervision().restart`).
  std::map<std::string, RestartPolicy, std::less<>> policies{};
  /// How often a component that cannot tell of its exit (no `exit_fd()`) is
  /// asked `is_running()`, and a down or failed one whether it was brought up again.
  std::chrono::milliseconds poll = std::chrono::seconds(2);
  /// Called for every exit, restart, give-up and liveness failure, from the
  /// calling thread. The actions of a restart go to the stack's own observer.
  std::function<void(const SupervisionEvent&)> on_event{};
  /// A descriptor whose readability wakes the loop to see `stop` at once (e.g.
  /// an eventfd written by a signal handler); -1: a stop is seen within 100 ms.
  int wake_fd = -1;
  OnExit on_exit = OnExit::policy;
  /// Where the loop records what it sees (one file, `supervision`) and reads
  /// the marks of `down`s from other processes (`down/<role>`, `down/.stack`),
  /// so that a down always wins. Empty: nothing is recorded or read.
  std::filesystem::path state_dir{};
  /// The stack file that commands on the stack lock (cli::Options::lock_file):
  /// each restart, and each stop after a liveness failure, is done holding it
  /// exclusively, so that a `down` from another process (which marks what it
  /// stops while holding it) comes wholly before or wholly after — never in the
  /// middle, where it would find nothing to stop and leave the restart running.
  /// Opened once, when the loop starts. Empty: no lock.
  std::filesystem::path lock_file{};
};

/// How supervise() returned.
struct SuperviseResult {
  /// Returned because a stop was requested (or nothing is left to supervise).
  bool stopped = true;
  /// With OnExit::abort: the role that exited, and how.
  std::string role{};
  std::optional<Exit> exit{};
};

namespace detail::supervision {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The two operations of the stack the loop acts through, without its type.
struct StackOps {
  void* stack;
  void (*up)(void*, std::string_view, const UpOptions&);
  void (*down)(void*, std::string_view, const DownOptions&);
};

/// Where the loop stands with one role.
enum class Watch : unsigned char {
  watching,    ///< running: its exit descriptor is polled, or it is asked every `poll`
  backing_off, ///< exited: restarted at `restart_at` (once its dependencies run)
  failed,      ///< too many restarts within `within`: left alone until it runs again
  down,        ///< not running and not the loop's to restart (a down, policy `no`): until it runs again
  held,        ///< suspended by the loop while a dependency restarts: resumed after it
};

/// One watched role.
struct Watched {
  std::string_view role, component;
  std::string_view held_by{}; // Watch::held: the dependency whose restart it waits for
  RestartPolicy policy{};
  Liveness liveness{};
  OnDependencyRestart on_dependency_restart = OnDependencyRestart::ignore;
  Watch watch = Watch::down;
  posix::Fd fd{};        // readable when it stops running (its exit_fd); empty: polled
  bool can_tell = false; // it has exit_status(): not running with none to report means a down
  bool own_exit = false; // `last` is the loop's own finding (liveness, a failed restart), not the component's
  unsigned attempt = 0;  // back-off exponent
  unsigned restarts = 0; // since it last came up by someone else's hand
  std::vector<SteadyClock::time_point> stamps{}; // restarts within the policy's `within`
  SteadyClock::time_point running_since{}, check_at{}, restart_at{}, probe_at{};
  unsigned liveness_failures = 0;
  std::optional<Exit> last{};
};

/// The loop of stackup::supervise: single-threaded, no signal handler, no child
/// of its own but the exec liveness probes (each reaped by run_shell).
class Loop {
public:
  Loop(StackView view, StackOps ops, SuperviseOptions& options) : v_(view), ops_(ops), o_(options) {
    o_.poll = std::max(o_.poll, milliseconds(1)); // a period of zero would spin
  }

  SuperviseResult run() {
    for (const auto& [role, policy] : o_.policies) {
      if (v_.contains(role)) continue;
      try {
        (void)v_.component_name(role); // its message names the roles the stack holds
      } catch (const UnknownComponentError& e) {
        throw UnknownComponentError(std::string("stackup::supervise: SuperviseOptions::policies: ") + e.what());
      }
    }
    if (!o_.state_dir.empty()) state_ = open_state_dir(o_.state_dir, true);
    if (!o_.lock_file.empty()) lock_.emplace(o_.lock_file, LockMode::exclusive);
    const auto now = SteadyClock::now();
    for (const std::string_view role : v_.roles()) {
      const SupervisionConfig c = v_.supervision(role);
      Watched w;
      w.role = role;
      w.component = v_.component_name(role);
      const auto own = o_.policies.find(role);
      w.policy = own != o_.policies.end() ? own->second : c.restart;
      w.liveness = c.liveness;
      w.on_dependency_restart = c.on_dependency_restart;
      w.can_tell = v_.reports_exits(role);
      if (o_.on_exit != OnExit::abort && w.policy.policy == Restart::no && w.liveness.kind == Liveness::Kind::none)
        continue;
      w.check_at = now;
      roles_.push_back(std::move(w));
    }
    // What runs now is watched; what ended on its own goes to its policy; the
    // rest is left as a down left it, until it runs again.
    for (Watched& w : roles_) {
      std::optional<Exit> e;
      if (running(w)) come_up(w);
      else if (!marked(w) && (e = v_.exit_status(w.role))) exited(w, std::move(*e), false);
      else if (!marked(w) && ending(w)) continue;
      // Its waiter ended between the two looks: its end is on record now.
      else if (!marked(w) && (e = v_.exit_status(w.role))) exited(w, std::move(*e), false);
      else went_down(w);
      if (done_) return finish();
    }
    dirty_ = true;
    while (!done_) {
      if (o_.stop.stop_requested()) return finish();
      if (!o_.stop && !anything_to_do()) return finish();
      write_if_dirty();
      wait();
      if (o_.stop.stop_requested()) return finish();
      due();
    }
    return finish();
  }

private:
  // ---- queries -------------------------------------------------------------------------

  bool running(const Watched& w) {
    try {
      return v_.state(w.role) == State::running;
    } catch (const std::exception&) {
      return false; // a query that fails cannot vouch for it
    }
  }
  bool marked(const Watched& w) const { return state_ && marked_down(state_.get(), w.role); }
  [[nodiscard]] bool anything_to_do() const {
    for (const Watched& w : roles_)
      if (w.watch == Watch::watching || w.watch == Watch::backing_off || w.watch == Watch::held) return true;
    return false;
  }
  Watched* find(std::string_view role) {
    for (Watched& w : roles_)
      if (w.role == role) return &w;
    return nullptr;
  }

  // ---- events and the record -----------------------------------------------------------

  void emit(const Watched& w, SupervisionEvent::Kind kind, std::optional<Exit> exit = {}, milliseconds delay = {},
            unsigned restarts = 0, std::string message = {}) {
    dirty_ = true;
    if (!o_.on_event) return;
    o_.on_event(SupervisionEvent{v_.name(), w.role, w.component, kind, std::move(exit), delay, restarts,
                                 std::move(message)});
  }
  static SupervisionState shown(Watch w, bool live) {
    if (!live) return SupervisionState::none;
    switch (w) {
    case Watch::watching: return SupervisionState::watching;
    case Watch::backing_off:
    case Watch::held: return SupervisionState::backing_off;
    case Watch::failed: return SupervisionState::failed;
    case Watch::down: return SupervisionState::none;
    }
    return SupervisionState::none;
  }
  void write(bool live) {
    if (!state_) return;
    std::vector<Row> rows;
    rows.reserve(roles_.size());
    for (const Watched& w : roles_)
      rows.push_back(Row{std::string(w.role), shown(w.watch, live), live ? w.restarts : 0U, w.last});
    write_record(state_.get(), rows, o_.state_dir);
    dirty_ = false;
  }
  void write_if_dirty() {
    if (!dirty_) return;
    try {
      write(true);
    } catch (const Error&) {
      // The record is advisory (a full disk, say): supervision goes on, the write is tried again.
    }
  }
  // Returning: the record says no supervisor watches any more (exits stay);
  // every descriptor opened here is closed by its owner.
  SuperviseResult finish() {
    try {
      write(false);
    } catch (const Error&) {
      // The record is advisory; a full disk must not hide why the loop returned.
    }
    for (Watched& w : roles_) w.fd.reset();
    state_.reset();
    return done_ ? *done_ : SuperviseResult{};
  }

  // ---- the wait ------------------------------------------------------------------------

  [[nodiscard]] std::optional<SteadyClock::time_point> deadline(const Watched& w) const {
    switch (w.watch) {
    case Watch::watching: {
      std::optional<SteadyClock::time_point> d;
      if (!w.fd) d = w.check_at;
      if (w.liveness.kind != Liveness::Kind::none && (!d || w.probe_at < *d)) d = w.probe_at;
      return d;
    }
    case Watch::backing_off: return w.restart_at;
    case Watch::failed:
    case Watch::down: return w.check_at;
    case Watch::held: return std::nullopt;
    }
    return std::nullopt;
  }

  void wait() {
    std::vector<pollfd> fds;
    std::vector<Watched*> owners;
    for (Watched& w : roles_) {
      if (w.watch != Watch::watching || !w.fd) continue;
      fds.push_back(pollfd{w.fd.get(), POLLIN, 0});
      owners.push_back(&w);
    }
    const bool wake = o_.wake_fd >= 0 && !wake_ignored_;
    if (wake) fds.push_back(pollfd{o_.wake_fd, POLLIN, 0});
    std::optional<SteadyClock::time_point> next;
    for (const Watched& w : roles_) {
      const auto d = deadline(w);
      if (d && (!next || *d < *next)) next = d;
    }
    int timeout = -1;
    if (next) {
      const auto left = std::chrono::ceil<milliseconds>(*next - SteadyClock::now()).count();
      timeout = static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
    }
    // A stop with nothing to wake the loop for it is seen within 100 ms.
    if (o_.stop && !wake && (timeout < 0 || timeout > 100)) timeout = 100;
    const int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout);
    if (n <= 0) return; // timed out, or EINTR: the deadlines are looked at next
    if (wake && fds.back().revents != 0 && !o_.stop.stop_requested()) {
      // Readable with no stop requested: not ours to read, so not polled again
      // (the 100 ms look at the stop token takes over).
      wake_ignored_ = true;
    }
    for (std::size_t i = 0; i < owners.size() && !done_; ++i) {
      if (fds[i].revents == 0) continue;
      Watched& w = *owners[i];
      if (w.watch != Watch::watching || !w.fd) continue; // handled meanwhile (a cascade)
      w.fd.reset();
      stopped_running(w);
    }
  }

  // What is due: polls, liveness probes, restarts, and roles that may run again.
  void due() {
    for (std::size_t i = 0; i < roles_.size() && !done_; ++i) {
      if (o_.stop.stop_requested()) return;
      Watched& w = roles_[i];
      const auto now = SteadyClock::now();
      switch (w.watch) {
      case Watch::watching:
        if (!w.fd && now >= w.check_at) {
          w.check_at = now + o_.poll;
          if (!running(w)) {
            stopped_running(w);
            break;
          }
        }
        if (w.liveness.kind != Liveness::Kind::none && now >= w.probe_at) probe(w);
        break;
      case Watch::backing_off:
        if (now >= w.restart_at) restart(w);
        break;
      case Watch::failed:
      case Watch::down:
        if (now >= w.check_at) {
          w.check_at = now + o_.poll;
          // Running again, by someone's up (and no down mark says otherwise): watched afresh.
          if (!marked(w) && running(w)) {
            w.attempt = 0;
            w.restarts = 0;
            w.stamps.clear();
            w.last.reset();
            come_up(w);
          }
        }
        break;
      case Watch::held: break;
      }
    }
  }

  // ---- transitions ---------------------------------------------------------------------

  // It runs (started, restarted, or found running): watch it. Its exit
  // descriptor first, THEN whether it runs: an end between the two is seen.
  void come_up(Watched& w) {
    const auto now = SteadyClock::now();
    w.watch = Watch::watching;
    w.running_since = now;
    w.check_at = now + o_.poll;
    w.probe_at = now + w.liveness.period;
    w.liveness_failures = 0;
    dirty_ = true;
    w.fd = posix::Fd(v_.exit_fd(w.role));
    // Ended already: with a descriptor, its end is on record once it turns
    // readable (its waiter writes it first); without one, handled now.
    if (!running(w) && !w.fd) stopped_running(w);
  }

  // Not running, no end on record, yet its exit descriptor opens: it is ending
  // (killed a moment ago, its waiter still at work). Watched: its end comes.
  bool ending(Watched& w) {
    const int fd = v_.exit_fd(w.role);
    if (fd < 0) return false;
    w.fd = posix::Fd(fd);
    w.can_tell = true;
    w.watch = Watch::watching;
    w.running_since = w.check_at = SteadyClock::now();
    w.probe_at = SteadyClock::time_point::max();
    dirty_ = true;
    return true;
  }

  // Its exit descriptor turned readable, or a poll found it not running.
  void stopped_running(Watched& w) {
    if (running(w)) { // readable while it runs (its waiter was killed): watch it again
      come_up(w);
      return;
    }
    if (marked(w)) return went_down(w);
    std::optional<Exit> e = v_.exit_status(w.role);
    if (!e) {
      // A component that tells of its exits and has none to tell was brought down.
      if (w.can_tell) return went_down(w);
      e = Exit{.error = "it stopped running (it cannot tell how)", .at = std::chrono::system_clock::now()};
    }
    exited(w, std::move(*e), false);
  }

  void went_down(Watched& w) {
    w.fd.reset();
    w.watch = Watch::down;
    w.check_at = SteadyClock::now() + o_.poll;
    dirty_ = true;
    release(w);
  }

  // It will not be restarted: what waits for it (held) is left as it is, suspended.
  void release(const Watched& w) {
    for (Watched& x : roles_)
      if (x.watch == Watch::held && x.held_by == w.role) {
        x.watch = Watch::down;
        x.check_at = SteadyClock::now() + o_.poll;
      }
  }

  // It ended (how: `e`): the event, then its policy.
  void exited(Watched& w, Exit e, bool own) {
    w.fd.reset();
    w.last = e;
    w.own_exit = own;
    emit(w, SupervisionEvent::Kind::exited, e, {}, w.restarts);
    if (o_.on_exit == OnExit::abort) {
      done_ = SuperviseResult{false, std::string(w.role), std::move(e)};
      return;
    }
    const Restart p = w.policy.policy;
    if (p == Restart::no || (p == Restart::on_failure && !e.failed())) return went_down(w);
    const auto now = SteadyClock::now();
    if (now - w.running_since >= w.policy.reset_after) w.attempt = 0; // a stable run: back-off from the start
    std::erase_if(w.stamps, [&](SteadyClock::time_point t) { return now - t >= w.policy.within; });
    const unsigned max = max_restarts(w.policy);
    if (max != 0 && w.stamps.size() >= max) {
      w.watch = Watch::failed;
      w.check_at = now + o_.poll;
      release(w);
      emit(w, SupervisionEvent::Kind::failed, e, {}, static_cast<unsigned>(w.stamps.size()),
           std::to_string(w.stamps.size()) + " restarts in " + posix::format_duration(w.policy.within));
      return;
    }
    milliseconds delay = std::max(w.policy.backoff, milliseconds::zero());
    for (unsigned i = 0; i < w.attempt && i < 64 && delay < w.policy.max_backoff; ++i) delay *= 2;
    delay = std::min(delay, std::max(w.policy.max_backoff, milliseconds::zero()));
    ++w.attempt;
    w.stamps.push_back(now);
    w.watch = Watch::backing_off;
    w.restart_at = now + delay;
    emit(w, SupervisionEvent::Kind::restarting, e, delay, w.restarts + 1);
  }

  // The stack's lock for one restart or stop (SuperviseOptions::lock_file):
  // released when it goes. Holds nothing when a stop came while waiting for it.
  class Locked {
  public:
    explicit Locked(Loop& l) : lock_(l.lock_ ? &*l.lock_ : nullptr) {
      if (lock_ == nullptr) return;
      try {
        lock_->lock(l.o_.stop);
      } catch (const InterruptedError&) {
        lock_ = nullptr;
        stopped_ = true;
      }
    }
    ~Locked() {
      if (lock_ != nullptr) lock_->unlock();
    }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;
    [[nodiscard]] bool stopped() const noexcept { return stopped_; }

  private:
    StackLock* lock_;
    bool stopped_ = false;
  };

  // Its back-off is over: start it again, if a down has not won meanwhile and
  // its dependencies run — all looked at and done under the stack's lock. A
  // restart is one step: a stop requested meanwhile is seen once it is over
  // (within the components' own timeouts), so that a supervisor told to stop
  // never leaves half a restart behind — a component it had stopped, its exit
  // no longer on record, that no later supervisor would bring back.
  void restart(Watched& w) {
    const Locked locked(*this);
    if (!locked.stopped()) restart_locked(w);
  }
  void restart_locked(Watched& w) {
    const auto now = SteadyClock::now();
    if (marked(w)) return went_down(w);
    if (running(w)) { // someone brought it up meanwhile
      come_up(w);
      return;
    }
    // Its end was its own; a down since then leaves no exit behind.
    if (!w.own_exit && w.can_tell && !v_.exit_status(w.role)) return went_down(w);
    for (const std::string_view d : v_.dependencies(w.role)) {
      bool runs = false;
      try {
        runs = v_.state(d) == State::running;
      } catch (const std::exception&) {
      }
      if (!runs) {
        w.restart_at = now + o_.poll; // waits for its dependencies; looked at again every `poll`
        return;
      }
    }
    // Dependents that restart with it: suspended first (dependents before
    // what they depend on), resumed after it (in up order).
    std::vector<Watched*> held;
    for (const std::string_view d : cascade(w.role)) {
      Watched* x = find(d);
      if (x != nullptr && (x->watch == Watch::watching || (x->watch == Watch::held && x->held_by == w.role)))
        held.push_back(x);
    }
    for (auto it = held.rbegin(); it != held.rend(); ++it) {
      Watched& x = **it;
      if (x.watch == Watch::held) continue; // since an earlier try
      x.fd.reset();
      x.watch = Watch::held;
      x.held_by = w.role;
      dirty_ = true;
      try {
        ops_.down(ops_.stack, x.role, DownOptions{.dependents = Dependents::keep});
      } catch (const TransitionError&) {
        // Still running, perhaps: resumed (a no-op then) with the others.
      }
    }
    ++w.restarts;
    dirty_ = true;
    try {
      ops_.up(ops_.stack, w.role, UpOptions{});
    } catch (const TransitionError& e) {
      // A restart that fails is an exit of its own, through the same policy (and back-off).
      exited(w, Exit{.error = e.what(), .at = std::chrono::system_clock::now()}, true);
      return;
    }
    come_up(w);
    for (Watched* x : held) {
      if (done_) return;
      if (x->watch != Watch::held || x->held_by != w.role) continue;
      try {
        ops_.up(ops_.stack, x->role, UpOptions{});
      } catch (const TransitionError& e) {
        exited(*x, Exit{.error = e.what(), .at = std::chrono::system_clock::now()}, true);
        continue;
      }
      come_up(*x);
    }
  }

  // The watched dependents of `role` that restart with it (on_dependency_restart
  // = restart), transitively, in up order.
  std::vector<std::string_view> cascade(std::string_view role) {
    std::vector<std::string_view> with{role};
    for (std::size_t i = 0; i < with.size(); ++i)
      for (const std::string_view d : v_.dependents(with[i])) {
        const Watched* x = find(d);
        const bool restarts = x != nullptr ? x->on_dependency_restart == OnDependencyRestart::restart
                                           : v_.supervision(d).on_dependency_restart == OnDependencyRestart::restart;
        if (restarts && std::find(with.begin(), with.end(), d) == with.end()) with.push_back(d);
      }
    std::vector<std::string_view> out;
    for (const std::string_view r : v_.order())
      if (r != role && std::find(with.begin(), with.end(), r) != with.end()) out.push_back(r);
    return out;
  }

  // ---- liveness ------------------------------------------------------------------------

  // What a failed probe saw; empty when it passed.
  [[nodiscard]] std::string check(const Liveness& l) const {
    const std::string within = " within " + posix::format_duration(l.timeout);
    const std::string at = "127.0.0.1:" + std::to_string(l.port);
    switch (l.kind) {
    case Liveness::Kind::none: return {};
    case Liveness::Kind::tcp: return posix::tcp_probe(l.port, l.timeout) ? std::string() : "tcp " + at + ": no connection" + within;
    case Liveness::Kind::http:
      return posix::http_probe(l.port, l.path, l.timeout) ? std::string()
                                                           : "http " + at + l.path + ": no 2xx answer" + within;
    case Liveness::Kind::exec: {
      static const std::map<std::string, std::string> no_env;
      const auto r = posix::run_shell(l.exec, l.timeout, {}, no_env);
      if (r.timed_out) return "exec '" + l.exec + "': no answer" + within;
      if (r.exit.code == CLD_EXITED && r.exit.status == 0) return {};
      if (r.exit.code == CLD_EXITED) return "exec '" + l.exec + "': exit status " + std::to_string(r.exit.status);
      if (r.exit.code == CLD_KILLED || r.exit.code == CLD_DUMPED)
        return "exec '" + l.exec + "': killed by signal " + std::to_string(r.exit.status);
      return "exec '" + l.exec + "': ended, how is not known";
    }
    }
    return {};
  }

  void probe(Watched& w) {
    std::string seen;
    try {
      seen = check(w.liveness);
    } catch (const Error& e) {
      seen = e.what();
    }
    w.probe_at = SteadyClock::now() + w.liveness.period;
    if (seen.empty()) {
      w.liveness_failures = 0;
      return;
    }
    ++w.liveness_failures;
    emit(w, SupervisionEvent::Kind::unhealthy, {}, {}, w.liveness_failures, seen);
    if (w.liveness_failures < std::max(w.liveness.failures, 1U) || done_) return;
    // Unhealthy for good: it is stopped (every process it started), then its
    // policy decides — unless a down from another process came first.
    const Locked locked(*this);
    if (locked.stopped()) return;
    if (marked(w)) return went_down(w);
    w.fd.reset();
    w.liveness_failures = 0;
    try {
      ops_.down(ops_.stack, w.role, DownOptions{.dependents = Dependents::keep});
    } catch (const TransitionError&) {
      // Left running: its restart (a resume of a running component) changes nothing then.
    }
    exited(w, Exit{.liveness = seen, .at = std::chrono::system_clock::now()}, true);
  }

  StackView v_;
  StackOps ops_;
  SuperviseOptions& o_;
  std::vector<Watched> roles_;
  posix::Fd state_;
  std::optional<StackLock> lock_;
  bool dirty_ = false;
  bool wake_ignored_ = false;
  std::optional<SuperviseResult> done_;
};

} // namespace detail::supervision

/// Keeps `stack` (a Stack<Cs...> or a DynamicStack) running by DESIGN §10
/// until `options.stop` is requested (without a stop token: until every
/// supervised component is failed or down); never brings anything down itself
/// when it returns. Single-threaded: it creates no thread and installs no signal
/// handler; it acts only through `stack.view()`, `up(role)` and `down(role,
/// {.dependents = Dependents::keep})`. Every descriptor it opens is closed when
/// it returns. UnknownComponentError for a role in `options.policies` that the
/// stack lacks; Error for a `state_dir` that is not a private directory.
///
/// Watched: every component whose policy is not `Restart::no` or that has a
/// liveness probe (with OnExit::abort: every component). One not running when
/// supervise() starts is left alone until it runs again (as after a down).
template <class S> SuperviseResult supervise(S& stack, SuperviseOptions options = {}) {
  const detail::supervision::StackOps ops{
      &stack,
      [](void* s, std::string_view role, const UpOptions& o) { static_cast<S*>(s)->up(role, o); },
      [](void* s, std::string_view role, const DownOptions& o) { static_cast<S*>(s)->down(role, o); },
  };
  return detail::supervision::Loop(stack.view(), ops, options).run();
}

} // namespace stackup
// ---- end stackup/supervise.hpp ----
#endif // C++20
