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
#pragma once

#include <stackup/detail/posix.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>

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
