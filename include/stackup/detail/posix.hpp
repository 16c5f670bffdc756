// stackup — POSIX internals of the shipped components: file descriptors, private
// state directories with flock locks, process spawning, pid records carrying the
// process start time, process-group stop with escalation, loopback readiness
// probes and log tails. Not part of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/errors.hpp>
#include <stackup/options.hpp>

#if !defined(__linux__)
#error "stackup: the shipped components (LocalDaemon, LocalDirectory, Command) need Linux: they read process start times from /proc/<pid>/stat to never signal a reused pid. On other systems define STACKUP_NO_COMPONENTS before including <stackup/stackup.hpp> to use the core alone, and write your own components."
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <ctime>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern "C" char** environ; // NOLINT: the process environment, inherited by spawned commands

namespace stackup::detail {

// A class template used as a namespace (`detail::posix::...`): its functions are
// compiled only in a file that calls them (a component's action), not in every
// file that includes a component header (the umbrella: 0.15 s less with g++).
template <class = void> struct Posix {

using milliseconds = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

/// The text of an errno value (thread-safe, unlike strerror).
static std::string sys_message(int e) { return std::system_category().message(e); }

/// `'path'`, for messages.
static std::string quoted(const std::filesystem::path& p) {
  // Built by appending: `"'" + p.string()` trips GCC 12's false -Wrestrict at -O3.
  std::string s(1, '\'');
  s += p.native();
  s += '\'';
  return s;
}

/// The deadline `timeout` from now. Saturates: a timeout too large for the
/// clock (milliseconds::max()) means "wait", where `Clock::now() + timeout`
/// would overflow (undefined behaviour) into a deadline in the past. Zero or
/// negative means now: no wait at all.
static Clock::time_point deadline_after(milliseconds timeout) noexcept {
  const auto now = Clock::now();
  if (timeout <= milliseconds::zero()) return now;
  if (timeout >= std::chrono::duration_cast<milliseconds>(Clock::time_point::max() - now))
    return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

/// "250ms", "10s", "1.5s": a duration for messages.
static std::string format_duration(milliseconds d) {
  const auto ms = d.count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms / 1000) + "." + std::to_string((ms % 1000) / 100) + "s";
}

/// An owned file descriptor, closed on destruction. Movable, not copyable.
class Fd {
public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
};

/// Back-off for polling: 1 ms, doubling, capped at 10 ms — quick to notice
/// readiness, cheap while waiting.
class Backoff {
public:
  /// The next pause, never past `deadline`.
  [[nodiscard]] Clock::duration next(Clock::time_point deadline) {
    const auto d = std::min<Clock::duration>(step_, std::max<Clock::duration>(deadline - Clock::now(), {}));
    step_ = std::min<Clock::duration>(step_ * 2, milliseconds(10));
    return d;
  }
  /// Sleeps for the next pause.
  void sleep(Clock::time_point deadline) { std::this_thread::sleep_for(next(deadline)); }

private:
  Clock::duration step_ = milliseconds(1);
};

// ---- files ----------------------------------------------------------------------

/// Writes all of `data`; false (errno set) on failure.
static bool write_all(int fd, std::string_view data) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// Opens `name` in `dirfd` as one of stackup's own files: never through a
/// symlink (errno ELOOP) and only a regular file (errno EINVAL otherwise): a
/// FIFO or a device put in its place would block open() or read() forever.
/// Empty, with errno set, on failure.
static Fd open_own_file(int dirfd, const char* name, int flags, mode_t mode = 0) {
  Fd fd(::openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode));
  if (!fd) {
    if (errno == ENXIO) errno = EINVAL; // a FIFO opened for writing with no reader
    return fd;
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    fd.reset();
    errno = EINVAL;
    return fd;
  }
  // Blocking again: the log becomes a daemon's stdout and stderr.
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

/// Why open_own_file failed, for messages.
static std::string own_file_error(int e) {
  return e == EINVAL ? "it is not a regular file (a FIFO, a device or a directory?): remove it" : sys_message(e);
}

/// Reads at most `limit` bytes of `name` in directory `dirfd` without following
/// a symlink. Empty optional when the file does not exist; Error otherwise.
static std::optional<std::string> read_file_at(int dirfd, const char* name, std::size_t limit,
                                               const std::filesystem::path& shown_as) {
  Fd fd = open_own_file(dirfd, name, O_RDONLY);
  if (!fd) {
    const int e = errno;
    if (e == ENOENT) return std::nullopt;
    if (e == ELOOP)
      throw Error("stackup: " + quoted(shown_as) + " is a symlink; stackup never reads its state through a symlink: "
                  "remove the link");
    throw Error("stackup: cannot open " + quoted(shown_as) + ": " + own_file_error(e));
  }
  std::string out;
  char buf[4096];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("stackup: cannot read " + quoted(shown_as) + ": " + sys_message(errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// Replaces `name` in `dirfd` atomically (write a temporary file, then rename),
/// so a reader sees the old content or the new, never a part.
static void write_file_atomic(int dirfd, const std::string& name, std::string_view content,
                              const std::filesystem::path& shown_as) {
  const std::string tmp = name + ".tmp";
  ::unlinkat(dirfd, tmp.c_str(), 0);
  Fd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw Error("stackup: cannot create " + quoted(shown_as) + ".tmp: " + sys_message(errno));
  if (!write_all(fd.get(), content)) {
    const int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    throw Error("stackup: cannot write " + quoted(shown_as) + ".tmp: " + sys_message(e));
  }
  fd.reset();
  if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    const int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    throw Error("stackup: cannot replace " + quoted(shown_as) + ": " + sys_message(e));
  }
}

/// `fd` itself when it is 3 or above, else a close-on-exec duplicate that is, so
/// a child can dup2 it onto 0, 1 or 2 without clobbering another.
static Fd above_stdio(Fd fd) {
  if (!fd || fd.get() > 2) return fd;
  Fd dup(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!dup) throw Error(std::string("stackup: cannot duplicate a file descriptor: ") + sys_message(errno));
  return dup;
}

// ---- ownership markers -----------------------------------------------------------------

/// How every ownership marker stackup writes begins: what tells a marker from a
/// file that merely has its name.
static constexpr std::string_view marker_prefix = "created by stackup";

/// Whether `name` in `dirfd` is a regular file (not a symlink) whose content
/// begins with `prefix`. False when it is not, or cannot be read.
static bool begins_with(int dirfd, const char* name, std::string_view prefix) {
  const Fd fd = open_own_file(dirfd, name, O_RDONLY);
  if (!fd) return false;
  std::string head(prefix.size(), '\0');
  std::size_t got = 0;
  while (got < head.size()) {
    const ssize_t n = ::read(fd.get(), head.data() + got, head.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got == head.size() && head == prefix;
}

/// Whether `name` in `dirfd` is a stackup ownership marker: a regular file
/// whose content begins with marker_prefix.
static bool has_marker(int dirfd, const char* name) { return begins_with(dirfd, name, marker_prefix); }

/// Creates the ownership marker `name` in `dirfd` with `content` (which begins
/// with marker_prefix), never replacing an existing file: the content is
/// written to `<name>.tmp` (O_CREAT | O_EXCL) and hard-linked to `name`, so a
/// reader sees no marker or the whole one. False when `name` already exists;
/// Error when it cannot be created.
static bool create_marker(int dirfd, const char* name, std::string_view content, const std::filesystem::path& shown_as) {
  const std::string tmp = std::string(name) + ".tmp";
  ::unlinkat(dirfd, tmp.c_str(), 0); // left by a create that was interrupted
  Fd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd || !write_all(fd.get(), content)) {
    const int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    throw Error("stackup: cannot write the ownership marker " + quoted(shown_as) + ": " + sys_message(e));
  }
  fd.reset();
  const int linked = ::linkat(dirfd, tmp.c_str(), dirfd, name, 0);
  const int e = errno;
  ::unlinkat(dirfd, tmp.c_str(), 0);
  if (linked == 0) return true;
  if (e == EEXIST) return false;
  throw Error("stackup: cannot create the ownership marker " + quoted(shown_as) + ": " + sys_message(e));
}

// ---- paths stackup never takes over ---------------------------------------------------

/// Held while walking the user database: getpwent has one cursor per process.
static std::mutex& user_database() {
  static std::mutex m;
  return m;
}

/// A home directory and whose it is.
struct Home {
  std::filesystem::path path;
  std::string owner; ///< "user 'alice'", or "$HOME"
};

/// Every home directory: $HOME, and every user's in the user database — not
/// only the caller's: stackup run as root must not take over anyone's.
static std::vector<Home> home_directories() {
  std::vector<Home> out;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') out.push_back({h, "$HOME"});
  auto add = [&](const passwd& pw) {
    if (pw.pw_dir != nullptr && *pw.pw_dir != '\0')
      out.push_back({pw.pw_dir, "user '" + std::string(pw.pw_name != nullptr ? pw.pw_name : "?") + "'"});
  };
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  {
    const std::lock_guard<std::mutex> hold(user_database());
    ::setpwent();
    while (true) {
      const int r = ::getpwent_r(&pw, buf.data(), buf.size(), &found);
      if (r == ERANGE && buf.size() < (1U << 20)) {
        buf.resize(buf.size() * 2);
        continue;
      }
      if (r != 0 || found == nullptr) break;
      add(*found);
    }
    ::endpwent();
  }
  // A directory service may not list its users: the caller's own, looked up.
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) add(*found);
  return out;
}

/// Why stackup must never create, own or remove `p` as a whole: it is empty,
/// the root directory, a home directory of any user (or $HOME) or a parent of
/// one (symlinks in parents resolved). Empty when `p` is fine.
static std::string forbidden_directory(const std::filesystem::path& p) {
  if (p.empty()) return "the path is empty";
  std::error_code ec;
  const auto real = std::filesystem::weakly_canonical(p, ec);
  const auto& path = ec ? p : real;
  if (path == path.root_path()) return "it is the root directory";
  for (const auto& home : home_directories()) {
    const auto h = std::filesystem::weakly_canonical(home.path, ec);
    if (ec || h == h.root_path()) continue; // a home of "/" is no one's in particular: "/" is refused above
    if (path == h) return "it is the home directory of " + home.owner + " (" + h.string() + ")";
    const auto rel = h.lexically_relative(path);
    if (!rel.empty() && *rel.begin() != "..")
      return "it holds the home directory " + h.string() + " of " + home.owner;
  }
  return {};
}

/// The name of user `uid` ("uid 1234" when it has none).
static std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr && found->pw_name != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(uid);
}

/// Why a directory with status `st` is another user's, which stackup does not
/// take over: empty when it belongs to this user, or to a user named in `users`
/// (the users a stack runs its components as: a data directory owned by
/// postgres is the postgres daemon's).
static std::string foreign_owner(const struct stat& st, const std::vector<std::string>& users) {
  if (st.st_uid == ::geteuid()) return {};
  const std::string owner = user_name(st.st_uid);
  for (const auto& u : users) {
    if (u == owner) return {};
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    uid_t uid = 0;
    const auto r = std::from_chars(u.data(), u.data() + u.size(), uid);
    if ((r.ec == std::errc{} && r.ptr == u.data() + u.size() && uid == st.st_uid) ||
        (::getpwnam_r(u.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
         found->pw_uid == st.st_uid))
      return {};
  }
  return "it is owned by user '" + owner + "', not by this user (" + user_name(::geteuid()) +
         "), and no component of the stack runs as that user: stackup takes over no one else's directory";
}

/// The users other than this one and root that are members of group `gid`
/// (listed in the group, or with it as their primary group).
static std::vector<std::string> group_members(gid_t gid) {
  std::vector<std::string> out;
  const std::string me = user_name(::geteuid());
  auto add = [&](const char* n) {
    if (n == nullptr || *n == '\0' || me == n || std::string_view(n) == "root") return;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.emplace_back(n);
  };
  std::vector<char> buf(16384);
  group gr{};
  group* g = nullptr;
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &g) == 0 && g != nullptr && g->gr_mem != nullptr)
    for (char** m = g->gr_mem; *m != nullptr; ++m) add(*m);
  const std::lock_guard<std::mutex> hold(user_database());
  passwd pw{};
  passwd* found = nullptr;
  ::setpwent();
  while (::getpwent_r(&pw, buf.data(), buf.size(), &found) == 0 && found != nullptr)
    if (found->pw_gid == gid) add(found->pw_name);
  ::endpwent();
  return out;
}

/// Who, besides this user and root, can rename or replace entries in the
/// directory with status `st` — and so swap what stackup checked for a symlink
/// before it acts. Empty when no one: owned by this user or root, and writable
/// by no one else (or sticky, like /tmp: then only an entry's owner can move it).
static std::string foreign_writers(const struct stat& st) {
  std::string who;
  if (st.st_uid != ::geteuid() && st.st_uid != 0) who = "user '" + user_name(st.st_uid) + "' (its owner)";
  if ((st.st_mode & S_ISVTX) != 0) return who;
  auto also = [&](const std::string& w) { who += (who.empty() ? "" : " and ") + w; };
  if ((st.st_mode & S_IWOTH) != 0) {
    also("every user (it is writable by others and not sticky)");
    return who;
  }
  if ((st.st_mode & S_IWGRP) != 0) {
    const auto members = group_members(st.st_gid);
    if (!members.empty()) {
      std::vector<char> buf(16384);
      group gr{};
      group* g = nullptr;
      std::string name = ::getgrgid_r(st.st_gid, &gr, buf.data(), buf.size(), &g) == 0 && g != nullptr
                             ? std::string(g->gr_name)
                             : "gid " + std::to_string(st.st_gid);
      std::string list;
      for (const auto& m : members) list += (list.empty() ? "" : ", ") + m;
      also("the members of group '" + name + "' (" + list + ")");
    }
  }
  return who;
}

/// Error unless the directory `dirfd` (shown as `dir`, the parent of what
/// `who` is about to `action`) can be changed by no other user: one who can
/// rename entries in it could swap the checked directory for a symlink to
/// anything between the check and the action.
static void check_parent(int dirfd, const std::filesystem::path& dir, const std::string& who, std::string_view action,
                         const std::filesystem::path& target) {
  struct stat st{};
  if (::fstat(dirfd, &st) != 0)
    throw Error("stackup: " + who + ": cannot inspect " + quoted(dir) + ": " + sys_message(errno));
  if (const std::string writers = foreign_writers(st); !writers.empty())
    throw Error("stackup: " + who + ": refusing to " + std::string(action) + " " + quoted(target) +
                ": its parent directory " + quoted(dir) + " can be changed by " + writers +
                ", who could swap it for a symlink to another directory between stackup's check and its action: "
                "use a path whose parent only you (or root) can write, or make the parent sticky (chmod +t)");
  // The directories above count too: one that another user can write lets
  // them swap the parent itself for a symlink (to another stack's directory
  // of the same name) before it is opened. Both the path as given and the
  // path its symlinks lead to are looked at.
  std::vector<std::filesystem::path> above;
  for (auto a = dir; a.has_relative_path() && a.has_parent_path();) above.push_back(a = a.parent_path());
  std::error_code ec;
  if (const auto real = std::filesystem::weakly_canonical(dir, ec); !ec)
    for (auto a = real; a.has_relative_path() && a.has_parent_path();) above.push_back(a = a.parent_path());
  for (const auto& a : above) {
    struct stat ast{};
    if (::stat(a.c_str(), &ast) != 0) continue;
    if (const std::string writers = foreign_writers(ast); !writers.empty())
      throw Error("stackup: " + who + ": refusing to " + std::string(action) + " " + quoted(target) +
                  ": the directory " + quoted(a) + " above it can be changed by " + writers +
                  ", who could move the parent directory " + quoted(dir) +
                  " away and put a symlink to another directory in its place: use a path whose every directory "
                  "only you (or root) can write, or make that directory sticky (chmod +t)");
  }
}

// ---- private state directories ----------------------------------------------------

/// Opens `dir` as a private state directory: a real directory (not a symlink),
/// owned by this user and writable by no one else. Empty when it does not exist;
/// Error, naming the path, the reason and the fix, otherwise.
static Fd open_private_dir(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    const int e = errno;
    if (e == ENOENT) return {};
    struct stat st{};
    if (::lstat(dir.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode))
        throw Error("stackup: state directory " + quoted(dir) +
                    " is a symlink; stackup keeps pid files and locks only in a real directory (a link could be "
                    "redirected): remove the link or configure the real path");
      if (!S_ISDIR(st.st_mode))
        throw Error("stackup: state directory " + quoted(dir) +
                    " exists but is not a directory: remove it or configure another state_dir");
    }
    throw Error("stackup: cannot open state directory " + quoted(dir) + ": " + sys_message(e));
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0)
    throw Error("stackup: cannot stat state directory " + quoted(dir) + ": " + sys_message(errno));
  if (st.st_uid != ::geteuid())
    throw Error("stackup: state directory " + quoted(dir) + " is owned by uid " + std::to_string(st.st_uid) +
                ", not by this user (uid " + std::to_string(::geteuid()) +
                "); another user could forge its pid file: use a directory of your own");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    const auto r = std::to_chars(mode, mode + sizeof mode, st.st_mode & 07777, 8);
    throw Error("stackup: state directory " + quoted(dir) + " is writable by group or others (mode 0" +
                std::string(mode, r.ptr) + "); another user could forge its pid file: run `chmod 700 " +
                dir.string() + "` or configure another state_dir");
  }
  return fd;
}

/// A private state directory, opened and exclusively locked (flock on `lock`
/// inside it). The lock is released when this is destroyed. Empty when the
/// directory does not exist and was not to be created.
struct LockedDir {
  Fd dir;
  Fd lock;
  explicit operator bool() const noexcept { return static_cast<bool>(dir); }
};

/// Opens and locks the private state directory `dir` (creating it with mode 0700
/// when `create`). Blocks while another process or thread holds the lock, then
/// checks the directory was not removed or replaced meanwhile (retrying if so).
static LockedDir lock_private_dir(const std::filesystem::path& dir, bool create) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (create) {
      // Missing parents are made (and marked, to go again with the last
      // directory in them); the directory is made in the parent held, whose
      // shared lock keeps a removal of empty parents from taking it meanwhile.
      const Fd parent = make_parents(dir, LOCK_SH, "state directory " + quoted(dir));
      if (::mkdirat(parent.get(), dir.filename().c_str(), 0700) != 0 && errno != EEXIST)
        throw Error("stackup: cannot create state directory " + quoted(dir) + ": " + sys_message(errno));
    }
    LockedDir l;
    l.dir = open_private_dir(dir);
    if (!l.dir) {
      if (create) continue;
      return {};
    }
    if (create) {
      struct stat st{};
      // mkdir's mode is filtered by the umask; the state directory is exactly 0700.
      if (::fstat(l.dir.get(), &st) == 0 && (st.st_mode & 07777) != 0700 && ::fchmod(l.dir.get(), 0700) != 0)
        throw Error("stackup: cannot set mode 0700 on state directory " + quoted(dir) + ": " + sys_message(errno));
    }
    l.lock = Fd(::openat(l.dir.get(), "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
    if (!l.lock) {
      if (errno == ENOENT) continue; // the directory was removed under us
      throw Error("stackup: cannot open lock file " + quoted(dir / "lock") + ": " + sys_message(errno));
    }
    while (::flock(l.lock.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw Error("stackup: cannot lock " + quoted(dir / "lock") + ": " + sys_message(errno));
    }
    // While we waited, the holder may have removed the directory (deprovision):
    // the lock we hold must be the one at the path now.
    struct stat held{}, linked{}, opened{}, at_path{};
    if (::fstat(l.lock.get(), &held) == 0 && ::fstatat(l.dir.get(), "lock", &linked, AT_SYMLINK_NOFOLLOW) == 0 &&
        ::fstat(l.dir.get(), &opened) == 0 && ::lstat(dir.c_str(), &at_path) == 0 && held.st_ino == linked.st_ino &&
        held.st_dev == linked.st_dev && opened.st_ino == at_path.st_ino && opened.st_dev == at_path.st_dev)
      return l;
  }
  throw Error("stackup: cannot lock state directory " + quoted(dir) +
              ": it keeps being removed or replaced by another process");
}

// ---- directories shared with other processes -------------------------------------

/// Opens the directory `dir` and takes an exclusive flock on it, blocking while
/// another process or thread holds it. The lock lasts as long as the returned
/// descriptor and leaves no file behind. Symlinks in `dir` are followed (it is
/// the parent of what is acted on, not that). If `dir` was replaced while this
/// waited, the directory now at the path is locked instead. Empty when `dir`
/// does not exist; Error when it cannot be opened or locked.
static Fd lock_directory(const std::filesystem::path& dir) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) return {};
      throw Error("stackup: cannot open directory " + quoted(dir) + " to lock it: " + sys_message(errno));
    }
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw Error("stackup: cannot lock directory " + quoted(dir) + ": " + sys_message(errno));
    }
    struct stat held{}, at_path{};
    if (::fstat(fd.get(), &held) == 0 && ::stat(dir.c_str(), &at_path) == 0 && held.st_ino == at_path.st_ino &&
        held.st_dev == at_path.st_dev)
      return fd;
  }
  throw Error("stackup: cannot lock directory " + quoted(dir) + ": it keeps being replaced by another process");
}

/// The names in directory `dirfd` (without "." and ".."), appended to `names`.
/// 0, or the errno of the failure.
static int list_directory(int dirfd, std::vector<std::string>& names) {
  // A descriptor of its own: readdir moves the offset of the one it reads.
  const int own = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) return errno;
  DIR* d = ::fdopendir(own);
  if (d == nullptr) {
    const int e = errno;
    ::close(own);
    return e;
  }
  errno = 0;
  while (const dirent* entry = ::readdir(d)) {
    const std::string_view n = entry->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  const int e = errno;
  ::closedir(d);
  return e;
}

/// Why a removal through descriptors stopped: the errno, and the entry where,
/// relative to the directory it started from (empty: that directory itself).
struct Removal {
  int error = 0;
  std::string where{};
  explicit operator bool() const noexcept { return error != 0; }
};

/// Whether the open directory `child`, an entry of `parent`, is the root of
/// another mount (a bind mount of the same file system too).
static bool is_mount_point(int parent, int child) noexcept {
#if defined(STATX_BASIC_STATS)
  constexpr unsigned int mnt_id = 0x1000U;                // STATX_MNT_ID (Linux 5.8)
  constexpr unsigned long long mount_root = 0x2000ULL;    // STATX_ATTR_MOUNT_ROOT (Linux 5.8)
  struct statx c{}, p{};
  if (::statx(child, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | mnt_id, &c) == 0) {
    if ((c.stx_attributes_mask & mount_root) != 0) return (c.stx_attributes & mount_root) != 0;
    if ((c.stx_mask & mnt_id) != 0 &&
        ::statx(parent, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | mnt_id, &p) == 0 &&
        (p.stx_mask & mnt_id) != 0)
      return c.stx_mnt_id != p.stx_mnt_id;
  }
#endif
  struct stat c_st{}, p_st{}; // older kernels: another file system at least
  return ::fstat(child, &c_st) == 0 && ::fstat(parent, &p_st) == 0 && c_st.st_dev != p_st.st_dev;
}

/// Opens the directory `name` in `dirfd`, never through a symlink (ELOOP or
/// ENOTDIR) and never onto another mount (EXDEV): openat2 with
/// RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH where the kernel has
/// it, else openat(O_NOFOLLOW) and a look at the mount. Empty, errno set, when not.
static Fd open_below(int dirfd, const char* name) {
  constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
#if defined(SYS_openat2)
  struct {
    std::uint64_t flags, mode, resolve;
  } how{static_cast<std::uint64_t>(flags), 0, 0x01U | 0x04U | 0x08U}; // NO_XDEV, NO_SYMLINKS, BENEATH
  const long r = ::syscall(SYS_openat2, dirfd, name, &how, sizeof how);
  if (r >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL && errno != EPERM)) {
    Fd fd(static_cast<int>(r));
    if (fd && is_mount_point(dirfd, fd.get())) { // belt and braces
      errno = EXDEV;
      return {};
    }
    return fd;
  }
#endif
  Fd fd(::openat(dirfd, name, flags));
  if (fd && is_mount_point(dirfd, fd.get())) {
    errno = EXDEV;
    return {};
  }
  return fd;
}

/// The first mount point (a directory or a file another file system, or a bind
/// mount, is mounted on) inside directory `dirfd`, searched through
/// descriptors without following symlinks: looked for before a removal
/// starts, so that one is refused with nothing removed or moved. {EXDEV, its
/// path relative to `dirfd`}, or nothing found.
static Removal find_mount(int dirfd) {
  std::vector<std::string> names;
  if (const int e = list_directory(dirfd, names)) return {e, {}};
  for (const auto& n : names) {
#if defined(STATX_BASIC_STATS)
    constexpr unsigned long long mount_root = 0x2000ULL; // STATX_ATTR_MOUNT_ROOT
    struct statx sx{};
    if (::statx(dirfd, n.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &sx) == 0 &&
        (sx.stx_attributes_mask & mount_root) != 0 && (sx.stx_attributes & mount_root) != 0)
      return {EXDEV, n};
#endif
    struct stat st{};
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    const Fd sub = open_below(dirfd, n.c_str());
    if (!sub) {
      if (errno == EXDEV) return {EXDEV, n};
      continue; // gone meanwhile: the removal itself looks again
    }
    if (Removal r = find_mount(sub.get()); r.error == EXDEV) return {EXDEV, n + "/" + r.where};
  }
  return {};
}

/// Removes everything inside directory `dirfd` but the entries named in
/// `keep`, depth first, through descriptors only: each directory is opened
/// below the one held (open_below), never through a symlink (a link is removed,
/// not what it points to), never onto another mount (a mount point stops the
/// removal, EXDEV, with everything on that mount intact) and never back up.
/// On failure, the errno and the entry; what is left stays as it is.
static Removal remove_contents(int dirfd, std::initializer_list<std::string_view> keep = {}) {
  std::vector<std::string> names;
  if (const int e = list_directory(dirfd, names)) return {e, {}};
  for (const auto& n : names) {
    if (std::find(keep.begin(), keep.end(), n) != keep.end()) continue;
    if (::unlinkat(dirfd, n.c_str(), 0) == 0 || errno == ENOENT) continue;
    const int unlink_error = errno;
    if (unlink_error != EISDIR && unlink_error != EPERM) return {unlink_error, n}; // Linux says EISDIR, POSIX EPERM
    Fd sub = open_below(dirfd, n.c_str());
    if (!sub) return {errno == ENOTDIR || errno == ELOOP ? unlink_error : errno, n};
    if (Removal r = remove_contents(sub.get())) return {r.error, n + "/" + r.where};
    if (::unlinkat(dirfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return {errno, n};
  }
  return {};
}

/// Removes the directory `name` in `parent`, open as `dir` (the caller opened it
/// with open_below and proved it its own): its contents, then the files named
/// in `proofs` in that order (what proves it stackup's goes last, so that a
/// removal cut short leaves something still provably stackup's), then the
/// directory. `restore(dir)` puts the proofs back when the directory could
/// not go after all. Up to `attempts` rounds: a process may add a file just
/// before the directory goes.
template <class Restore>
static Removal remove_directory_at(int parent, const std::string& name, int dir,
                                   std::initializer_list<std::string_view> proofs, Restore&& restore,
                                   int attempts = 3) {
  int e = 0;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (Removal r = remove_contents(dir, proofs)) return r;
    for (const auto proof : proofs)
      if (::unlinkat(dir, std::string(proof).c_str(), 0) != 0 && errno != ENOENT) return {errno, std::string(proof)};
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return {};
    e = errno;
    restore(dir);
    if (e != ENOTEMPTY && e != EEXIST) break;
  }
  return {e, {}};
}

/// The message for a removal of `dir` that stopped at `r`.
static std::string removal_error(const std::filesystem::path& dir, const Removal& r) {
  const auto at = r.where.empty() ? dir : dir / r.where;
  if (r.error == EXDEV)
    return quoted(at) + " is a mount point; stackup never removes anything on another mount: unmount it (umount " +
           at.string() + "), then remove again";
  if (r.error == EBUSY) return quoted(at) + " is in use as a mount point: unmount it (umount " + at.string() + ")";
  return "cannot remove " + quoted(at) + ": " + sys_message(r.error);
}

// ---- parents stackup creates ------------------------------------------------------

/// The extended attribute stackup sets on each parent directory it creates
/// for a component's directory: such a directory goes again once it is empty,
/// so `down` leaves the place as `up` found it. An attribute, not a file: a
/// directory another program empties last is empty, not left holding a
/// marker. Root uses `trusted.`, which only a privileged process can set:
/// anyone who can write a directory can set its `user.` attributes, and a
/// mark another user set must not make root remove a directory it never made.
static constexpr const char* parent_attribute = "user.stackup.parent";
static constexpr const char* trusted_parent_attribute = "trusted.stackup.parent";
static const char* parent_attribute_here() noexcept {
  return ::geteuid() == 0 ? trusted_parent_attribute : parent_attribute;
}

/// Marks the directory `fd` as a parent stackup created; false when the file
/// system keeps no such extended attributes (the directory then stays, as before).
static bool mark_parent(int fd, std::string_view content) noexcept {
  return ::fsetxattr(fd, parent_attribute_here(), content.data(), content.size(), 0) == 0;
}

/// Whether the directory `fd` carries mark_parent's attribute, beginning with marker_prefix.
static bool is_made_parent(int fd) noexcept {
  char buf[512];
  const ssize_t n = ::fgetxattr(fd, parent_attribute_here(), buf, sizeof buf);
  return n >= static_cast<ssize_t>(marker_prefix.size()) && std::string_view(buf, marker_prefix.size()) == marker_prefix;
}

/// Takes a flock on `fd` (LOCK_SH or LOCK_EX); false when the directory was
/// removed meanwhile (no links left).
static bool lock_linked(int fd, int how) {
  while (::flock(fd, how) != 0) {
    if (errno != EINTR) return false;
  }
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_nlink > 0) return true;
  ::flock(fd, LOCK_UN);
  return false;
}

/// Opens the parent of `dir` and locks it (flock `how`), creating the parents
/// that do not exist one level at a time: mkdirat relative to the directory
/// held, never through a symlink, each new one marked (mark_parent).
/// Symlinks in the existing part of the path are followed. A directory that a
/// concurrent removal of empty parents took meanwhile is made again.
static Fd make_parents(const std::filesystem::path& dir, int how, const std::string& who) {
  const auto parent = dir.parent_path();
  for (int attempt = 0; attempt < 64; ++attempt) {
    // The deepest ancestor that exists, and the names below it.
    std::vector<std::string> missing;
    auto at = parent;
    Fd fd;
    while (true) {
      fd = Fd(::open(at.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (fd) break;
      if (errno != ENOENT || !at.has_relative_path())
        throw Error("stackup: " + who + ": cannot open " + quoted(at) + ": " + sys_message(errno));
      missing.push_back(at.filename().string());
      at = at.parent_path();
    }
    bool again = false;
    while (!missing.empty() && !again) {
      const std::string name = std::move(missing.back());
      missing.pop_back();
      if (!lock_linked(fd.get(), LOCK_SH)) {
        again = true;
        break;
      }
      const bool made = ::mkdirat(fd.get(), name.c_str(), 0777) == 0;
      if (!made && errno != EEXIST) {
        const int e = errno;
        throw Error("stackup: " + who + ": cannot create " + quoted(at / name) + ": " + sys_message(e));
      }
      Fd sub(::openat(fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) {
        const int e = errno;
        if (e == ENOENT) {
          again = true;
          break;
        }
        throw Error("stackup: " + who + ": cannot open " + quoted(at / name) + ": " +
                    (e == ELOOP || e == ENOTDIR ? std::string("it is not a directory (a symlink?)") : sys_message(e)));
      }
      if (made) {
        struct stat st{};
        if (::fstat(sub.get(), &st) == 0 && st.st_uid == ::geteuid())
          (void)mark_parent(sub.get(), std::string(marker_prefix) + " as a parent directory of " + dir.string() +
                                           "; it is removed when it is empty");
      }
      ::flock(fd.get(), LOCK_UN);
      fd = std::move(sub);
      at /= name;
    }
    if (again) continue;
    if (lock_linked(fd.get(), how)) return fd;
  }
  throw Error("stackup: " + who + ": cannot create the parents of " + quoted(dir) +
              ": they keep being removed by another process");
}

/// Removes the parents of `dir` that stackup created (marked by mark_parent,
/// this user's, writable by no other user, and empty), deepest first, each
/// by unlinkat(AT_REMOVEDIR) relative to the directory above it, under an
/// exclusive flock so that the last of several components removing their
/// directories from it takes it. Stops quietly at the first that stays.
static void remove_made_parents(const std::filesystem::path& dir) {
  for (auto p = dir.parent_path(); p.has_relative_path(); p = p.parent_path()) {
    const Fd above(::open(p.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!above) return;
    const std::string name = p.filename().string();
    const Fd here(::openat(above.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!here || !lock_linked(here.get(), LOCK_EX)) return;
    struct stat st{};
    std::vector<std::string> names;
    if (::fstat(here.get(), &st) != 0 || st.st_uid != ::geteuid() || list_directory(here.get(), names) != 0 ||
        !names.empty() || !is_made_parent(here.get()) || is_mount_point(above.get(), here.get()))
      return;
    // Anyone who can write a directory can set its `user.` attributes: a mark
    // on a directory others can write may be theirs, not stackup's.
    if (!foreign_writers(st).empty()) return;
    // Only an empty directory goes: anything that arrived meanwhile keeps it.
    if (::unlinkat(above.get(), name.c_str(), AT_REMOVEDIR) != 0) return;
  }
}

/// How rename_entry moves `a` to `b` (the flags of renameat2, from <linux/fs.h>).
enum class Rename : unsigned {
  only_if_free = 1U << 0, ///< RENAME_NOREPLACE: fails (EEXIST) when `b` exists
  exchange = 1U << 1,     ///< RENAME_EXCHANGE: `a` and `b` swap places
};

/// Renames the entry `a` of directory `dirfd` to `b` in one atomic step
/// (renameat2). False, with errno set, when it cannot, also when the kernel or
/// the file system cannot do it that way (EINVAL, ENOSYS).
static bool rename_entry(int dirfd, const char* a, const char* b, Rename how) noexcept {
#if defined(SYS_renameat2)
  return ::syscall(SYS_renameat2, dirfd, a, dirfd, b, static_cast<unsigned>(how)) == 0;
#else
  errno = ENOSYS;
  return false;
#endif
}

// ---- processes ----------------------------------------------------------------------

/// What stackup needs from /proc/<pid>/stat.
struct ProcStat {
  char state = '?';                 ///< field 3: R, S, D, Z (zombie), ...
  pid_t ppid = 0;                   ///< field 4: parent
  pid_t pgrp = 0;                   ///< field 5: process group
  pid_t session = 0;                ///< field 6: session
  unsigned long long start_time = 0; ///< field 22: start time in clock ticks since boot
};

/// Parses the content of /proc/<pid>/stat. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last ')'.
static std::optional<ProcStat> parse_proc_stat(std::string_view s) {
  const auto close = s.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  s.remove_prefix(close + 1);
  ProcStat out;
  // Fields after ')' start at field 3.
  for (int field = 3; field <= 22; ++field) {
    if (s.empty() || s.front() != ' ') return std::nullopt;
    s.remove_prefix(1);
    const auto end = std::min(s.find(' '), s.size());
    const std::string_view tok = s.substr(0, end);
    if (tok.empty()) return std::nullopt;
    if (field == 3) {
      out.state = tok.front();
    } else if (field == 4) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.ppid).ec != std::errc{}) return std::nullopt;
    } else if (field == 5) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.pgrp).ec != std::errc{}) return std::nullopt;
    } else if (field == 6) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.session).ec != std::errc{}) return std::nullopt;
    } else if (field == 22) {
      if (std::from_chars(tok.data(), tok.data() + tok.size(), out.start_time).ec != std::errc{}) return std::nullopt;
    }
    s.remove_prefix(end);
  }
  return out;
}

/// /proc/<pid>/stat of a process, or empty when there is no such process.
static std::optional<ProcStat> read_proc_stat(pid_t pid) {
  const std::string file = "/proc/" + std::to_string(pid) + "/stat";
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  char buf[1024];
  std::size_t len = 0;
  while (len < sizeof buf) {
    const ssize_t n = ::read(fd.get(), buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  return parse_proc_stat(std::string_view(buf, len));
}

/// A zombie has exited; only its parent's wait is missing.
static bool is_live_state(char state) noexcept { return state != 'Z' && state != 'X' && state != 'x'; }

/// The largest pid the system hands out (/proc/sys/kernel/pid_max).
static pid_t max_pid() {
  Fd fd(::open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC));
  char buf[32];
  long value = 0;
  if (fd) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) std::from_chars(buf, buf + n, value);
  }
  return value > 1 ? static_cast<pid_t>(value) : pid_t{4194304}; // Linux's PID_MAX_LIMIT on 64-bit
}

/// A pid file's content: the pid and the start time of that process, which
/// together identify it even after the pid number is reused, and the invocation
/// id of that start (see invocation_variable).
struct PidRecord {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  std::string invocation_id{}; ///< 32 hexadecimal digits; empty in pid files of stackup 0.1.0
  /// The waiter that holds the daemon (see spawn_held) and its start time;
  /// 0 in pid files written before the hold (stackup 0.2 and earlier).
  pid_t waiter = 0;
  unsigned long long waiter_start = 0;
};

/// The environment variable LocalDaemon sets to the invocation id of a start.
/// Every process the daemon starts inherits it: once the daemon's own process
/// has exited, it is what proves that a process it left behind is its.
static constexpr std::string_view invocation_variable = "STACKUP_INVOCATION_ID";

/// Whether `s` is an invocation id: 32 lowercase hexadecimal digits.
static bool is_invocation_id(std::string_view s) noexcept {
  return s.size() == 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// A new random invocation id; empty if the system gives no random bytes.
static std::string new_invocation_id() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};
    got += static_cast<std::size_t>(n);
  }
  std::string id;
  for (const unsigned char b : bytes) {
    id += "0123456789abcdef"[b >> 4];
    id += "0123456789abcdef"[b & 15];
  }
  return id;
}

/// "<pid> <start time> <invocation id> <waiter pid> <waiter start time>\n";
/// without a waiter "<pid> <start time> <invocation id>\n" (stackup 0.2), and
/// without an id "<pid> <start time>\n" (0.1.0).
static std::string format_pid_record(const PidRecord& r) {
  std::string out = std::to_string(r.pid) + " " + std::to_string(r.start_time);
  if (r.waiter != 0)
    out += " " + (r.invocation_id.empty() ? std::string(32, '0') : r.invocation_id) + " " + std::to_string(r.waiter) +
           " " + std::to_string(r.waiter_start);
  else if (!r.invocation_id.empty())
    out += " " + r.invocation_id;
  return out + "\n";
}

/// Parses a pid file strictly. On failure returns false and says why in `why`;
/// a pid of 0, 1, a negative or an out-of-range value is never accepted (they
/// would make kill() hit a process group, init or everything).
static bool parse_pid_record(std::string_view text, PidRecord& out, std::string& why) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) {
    why = "is empty";
    return false;
  }
  auto shown = [&] {
    std::string s;
    for (char c : text.substr(0, 40)) s += (c >= 0x20 && c < 0x7f) ? c : '?';
    return "'" + s + (text.size() > 40 ? "...'" : "'");
  };
  const auto space = text.find(' ');
  const std::string_view pid_text = text.substr(0, space);
  std::string_view start_text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  std::optional<std::string_view> id_text; // 0.1.0 wrote none
  std::optional<std::string_view> waiter_text, waiter_start_text; // 0.2 wrote none
  if (const auto second = start_text.find(' '); second != std::string_view::npos) {
    id_text = start_text.substr(second + 1);
    start_text = start_text.substr(0, second);
    if (const auto third = id_text->find(' '); third != std::string_view::npos) {
      waiter_text = id_text->substr(third + 1);
      id_text = id_text->substr(0, third);
      const auto fourth = waiter_text->find(' ');
      waiter_start_text = fourth == std::string_view::npos ? std::string_view{} : waiter_text->substr(fourth + 1);
      waiter_text = waiter_text->substr(0, fourth);
    }
  }
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!pid_text.empty() && pid_text.front() == '-' && digits(pid_text.substr(1))) {
    why = "holds a negative pid (" + shown() + ")";
    return false;
  }
  if (!digits(pid_text) || !digits(start_text) || (id_text && !is_invocation_id(*id_text)) ||
      (waiter_text && (!digits(*waiter_text) || !digits(*waiter_start_text) || waiter_text->size() > 12))) {
    why = "holds " + shown() + ", not '<pid> <start time> <invocation id>'";
    return false;
  }
  long long pid = 0;
  const pid_t limit = max_pid();
  if (pid_text.size() > 12 || std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid).ec != std::errc{} ||
      pid > limit) {
    why = "holds pid " + std::string(pid_text.substr(0, 24)) + ", above the system's maximum (" +
          std::to_string(limit) + ")";
    return false;
  }
  if (pid <= 1) {
    why = "holds pid " + std::to_string(pid) + ", which is never a daemon's (0 is a process group, 1 is init)";
    return false;
  }
  if (std::from_chars(start_text.data(), start_text.data() + start_text.size(), out.start_time).ec != std::errc{}) {
    why = "holds an out-of-range start time (" + shown() + ")";
    return false;
  }
  out.pid = static_cast<pid_t>(pid);
  out.invocation_id = id_text.value_or(std::string_view{});
  out.waiter = 0;
  out.waiter_start = 0;
  if (waiter_text) {
    long long waiter = 0;
    std::from_chars(waiter_text->data(), waiter_text->data() + waiter_text->size(), waiter);
    if (waiter <= 1 || waiter > limit) {
      why = "holds waiter pid " + std::string(*waiter_text) + ", which is never a daemon's waiter";
      return false;
    }
    if (std::from_chars(waiter_start_text->data(), waiter_start_text->data() + waiter_start_text->size(),
                        out.waiter_start).ec != std::errc{}) {
      why = "holds an out-of-range start time (" + shown() + ")";
      return false;
    }
    out.waiter = static_cast<pid_t>(waiter);
  }
  return true;
}

/// Whether the process a record names is still that process.
enum class Identity {
  ours,   ///< alive, same start time
  gone,   ///< no such process, or it has exited (zombie)
  reused, ///< the pid now belongs to another process: never signal it
};

/// Checks a record against /proc; reaps the process when it is a zombie child
/// of this process, so a long-lived host does not collect zombies.
static Identity identify(const PidRecord& r, bool reap_zombie = true) {
  const auto st = read_proc_stat(r.pid);
  if (!st) return Identity::gone;
  if (st->start_time != r.start_time) return Identity::reused;
  if (is_live_state(st->state)) return Identity::ours;
  if (reap_zombie) {
    while (::waitpid(r.pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
    }
  }
  return Identity::gone;
}

/// How a child process ended (waitid's si_code and si_status).
struct ChildExit {
  int code = 0;
  int status = 0;
};

/// ChildExit::code when the status is unknown: the child was reaped elsewhere
/// (e.g. the host sets SIGCHLD to SIG_IGN) or is not a child of this process.
static constexpr int unknown_exit = -1;

/// The end of `pid` if it is a child of this process and has ended, without
/// reaping it (its pid number stays reserved, so its group can still be
/// signalled safely). `ChildExit{unknown_exit}` when `pid` is not (or no longer)
/// a child of this process; empty while it runs.
static std::optional<ChildExit> peek_exit(pid_t pid) {
  siginfo_t si{};
  for (;;) {
    if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0) break;
    if (errno != EINTR) return ChildExit{unknown_exit, 0}; // ECHILD
  }
  if (si.si_pid == 0) return std::nullopt;
  return ChildExit{si.si_code, si.si_status};
}

/// Reaps `pid` if it is a child that has ended.
static void reap(pid_t pid) noexcept {
  while (::waitpid(pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
  }
}

/// "SIGTERM", or "signal 42".
static std::string signal_name(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
#endif
  return "signal " + std::to_string(sig);
}

/// "exit status 3", "killed by SIGKILL".
static std::string describe_exit(ChildExit e) {
  switch (e.code) {
  case CLD_EXITED: return "exit status " + std::to_string(e.status);
  case CLD_KILLED: return "killed by " + signal_name(e.status);
  case CLD_DUMPED: return "killed by " + signal_name(e.status) + " (core dumped)";
  case unknown_exit: return "an unknown exit status (reaped elsewhere: is SIGCHLD ignored?)";
  default: return "an unknown end (code " + std::to_string(e.code) + ")";
  }
}

/// Whether the environment `pid` started with holds `entry` ("NAME=value") as
/// a whole entry. False when it cannot be read (gone, or another user's).
static bool environment_has(pid_t pid, std::string_view entry) {
  const std::string file = "/proc/" + std::to_string(pid) + "/environ";
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  std::string env;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    env.append(buf, static_cast<std::size_t>(n));
  }
  std::string_view rest = env;
  while (!rest.empty()) {
    const auto end = rest.find('\0');
    if (rest.substr(0, end) == entry) return true;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return false;
}

/// A process as stackup identifies it: its pid and its start time.
struct ProcessId {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

/// What is left alive of the daemon a record names.
struct Remains {
  bool leader = false;             ///< the recorded process itself is alive
  std::vector<pid_t> groups{};     ///< the process groups of its session that hold a live process
  std::vector<ProcessId> members{}; ///< the live processes of its session, when it is provably the daemon's
  [[nodiscard]] bool empty() const noexcept { return !leader && groups.empty(); }
};

/// What is left alive of the daemon `r` records: its process, and every process
/// in its session (spawn made it a session leader, so the session id is the
/// recorded pid), which includes what a command that puts its server in the
/// background leaves behind. The session counts only while it is provably the
/// daemon's: while the recorded process exists with the recorded start time
/// (alive, or a zombie not yet reaped) its pid cannot be reused; once it is
/// reaped, Linux still does not reuse the pid while the session has a process,
/// but may after the session ended, for another session. So then the session
/// counts only if one of its processes carries the record's invocation id, or
/// is one of the `earlier` members (same pid and start time): a process never
/// rejoins a session, so the session it is still in is the one proven then.
/// That keeps a stop going while the proof can no longer be read: an exiting
/// process has no environment in /proc (its memory is released before it
/// becomes a zombie, while it still holds its files and ports), and a member
/// may have been started without the id.
static Remains remains_of(const PidRecord& r, const Remains* earlier = nullptr) {
  Remains out;
  const auto leader = read_proc_stat(r.pid);
  if (leader && leader->start_time != r.start_time) return out; // the pid is another process's now
  out.leader = leader && is_live_state(leader->state);
  if (leader && leader->session != r.pid) return out; // leads no session: stackup did not start it
  if (!leader && r.invocation_id.empty()) return out; // reaped, and nothing could prove the session is its
  const std::string mark = std::string(invocation_variable) + "=" + r.invocation_id;
  bool proven = leader.has_value();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view n = entry->d_name;
    if (std::from_chars(n.data(), n.data() + n.size(), pid).ec != std::errc{}) continue;
    const auto st = read_proc_stat(pid);
    if (!st || st->session != r.pid || !is_live_state(st->state)) continue;
    const ProcessId member{pid, st->start_time};
    proven = proven ||
             (earlier != nullptr &&
              std::find(earlier->members.begin(), earlier->members.end(), member) != earlier->members.end()) ||
             environment_has(pid, mark);
    out.members.push_back(member);
    if (std::find(out.groups.begin(), out.groups.end(), st->pgrp) == out.groups.end()) out.groups.push_back(st->pgrp);
  }
  ::closedir(proc);
  if (!proven) {
    out.groups.clear();
    out.members.clear();
  }
  return out;
}

/// Sends `sig` to each process group of what remains of a daemon, or to its
/// process alone when it leads no session (a record stackup did not write).
static void signal_remains(const PidRecord& r, const Remains& left, int sig, std::string_view who) {
  auto send = [&](pid_t target) {
    if (::kill(target, sig) != 0 && errno != ESRCH)
      throw Error("stackup: cannot send " + signal_name(sig) + " to " + std::string(who) + " (pid " +
                  std::to_string(r.pid) + "): " + sys_message(errno));
  };
  if (left.groups.empty() && left.leader) send(r.pid);
  for (const pid_t group : left.groups) {
    if (group > 1) send(-group); // never -1 (every process) or -0 (our own group)
  }
}

/// How stop_process ended.
enum class Stopped {
  not_running, ///< nothing to stop (gone, or the pid belongs to another process now)
  terminated,  ///< exited after SIGTERM
  killed,      ///< needed SIGKILL after the timeout
  remains,     ///< the main process had exited; what it left running was killed
};

/// Stops the daemon a record names and what it left in its session (see
/// remains_of): SIGTERM, wait up to `timeout` for all of it to exit, then
/// SIGKILL. Signals nothing that is not provably the daemon's: a pid whose start
/// time differs is another process's. Error if something survives SIGKILL.
static Stopped stop_process(const PidRecord& r, milliseconds timeout, std::string_view who) {
  if (const auto first = read_proc_stat(r.pid); first && first->start_time != r.start_time)
    return Stopped::not_running;
  Remains left = remains_of(r);
  auto gone = [&] {
    // Cheap while the recorded process lives; the session is looked at once it is gone.
    if (identify(r, false) == Identity::ours) return false;
    left = remains_of(r, &left);
    return left.empty();
  };
  auto finish = [&](Stopped how) {
    reap(r.pid);
    return how;
  };
  if (left.empty()) return finish(Stopped::not_running);
  signal_remains(r, left, SIGTERM, who);
  auto deadline = deadline_after(timeout);
  Backoff backoff;
  while (true) {
    if (gone()) return finish(Stopped::terminated);
    if (Clock::now() >= deadline) break;
    backoff.sleep(deadline);
  }
  left = remains_of(r, &left);
  signal_remains(r, left, SIGKILL, who);
  deadline = deadline_after(std::chrono::seconds(10));
  Backoff again;
  while (true) {
    if (gone()) return finish(Stopped::killed);
    if (Clock::now() >= deadline) break;
    again.sleep(deadline);
  }
  throw Error("stackup: " + std::string(who) + " (pid " + std::to_string(r.pid) +
              ") survived SIGKILL for 10s (stuck in the kernel?); its pid file is kept: check it with `ps -o "
              "pid,stat,cmd -s " + std::to_string(r.pid) + "`");
}

// ---- the hold: finding and stopping what a waiter holds -------------------------

/// Every live process, with its parent and start time, read from /proc.
struct ProcessEntry {
  ProcessId id;
  pid_t ppid = 0;
};
static std::vector<ProcessEntry> live_processes() {
  std::vector<ProcessEntry> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    const std::string_view n = entry->d_name;
    const auto r = std::from_chars(n.data(), n.data() + n.size(), pid);
    if (r.ec != std::errc{} || r.ptr != n.data() + n.size()) continue;
    const auto st = read_proc_stat(pid);
    if (st && is_live_state(st->state)) out.push_back({{pid, st->start_time}, st->ppid});
  }
  ::closedir(proc);
  return out;
}

/// The live processes the waiter `waiter` holds: its descendants, by their
/// parent pids. Empty when the waiter is not alive with its recorded start time.
static std::vector<ProcessId> held_processes(const ProcessId& waiter) {
  std::vector<ProcessId> out;
  if (!alive_as(waiter.pid, waiter.start_time)) return out;
  const auto all = live_processes();
  std::vector<pid_t> parents{waiter.pid};
  for (std::size_t i = 0; i < parents.size(); ++i) {
    for (const auto& e : all) {
      if (e.ppid != parents[i] || e.id.pid == waiter.pid) continue;
      if (std::find(parents.begin(), parents.end(), e.id.pid) != parents.end()) continue;
      parents.push_back(e.id.pid);
      out.push_back(e.id);
    }
  }
  return out;
}

/// The live processes whose environment carries invocation id `id`: what
/// proves a process is a daemon's once its waiter is gone.
static std::vector<ProcessId> processes_with_id(std::string_view id) {
  std::vector<ProcessId> out;
  if (!is_invocation_id(id)) return out;
  const std::string mark = std::string(invocation_variable) + "=" + std::string(id);
  for (const auto& e : live_processes())
    if (e.id.pid != ::getpid() && environment_has(e.id.pid, mark)) out.push_back(e.id);
  return out;
}

/// The live processes of the daemon `r` records (a record with a waiter): the
/// waiter's descendants while it lives; once it is gone (killed), the main
/// process if alive and the processes carrying the record's invocation id.
static std::vector<ProcessId> daemon_processes(const PidRecord& r) {
  const ProcessId main{r.pid, r.start_time}, waiter{r.waiter, r.waiter_start};
  auto out = alive_as(waiter.pid, waiter.start_time) ? held_processes(waiter) : processes_with_id(r.invocation_id);
  if (alive_as(main.pid, main.start_time) && std::find(out.begin(), out.end(), main) == out.end()) out.push_back(main);
  return out;
}

/// Sends `sig` to the process `p` names, only if it is still that process: a
/// pidfd is opened first and the start time checked after, so the pid cannot
/// be reused in between (a plain kill() after the check where pidfds are missing).
static bool signal_process(const ProcessId& p, int sig) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
  const Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0U)));
  if (fd) {
    const auto st = read_proc_stat(p.pid);
    if (!st || st->start_time != p.start_time) return false;
    return ::syscall(SYS_pidfd_send_signal, fd.get(), sig, nullptr, 0U) == 0;
  }
  if (errno == ESRCH) return false;
#endif
  const auto st = read_proc_stat(p.pid);
  if (!st || st->start_time != p.start_time) return false;
  return ::kill(p.pid, sig) == 0;
}

/// Stops a daemon started under the hold, as systemd's KillMode=mixed does:
/// SIGTERM to the main process; once it has exited, or `timeout` has passed,
/// SIGKILL to every process still held; then waits until the waiter is gone
/// (it reaps them all, records the exit and exits). A waiter that is itself
/// gone (killed) leaves its processes to init: those carrying the record's
/// invocation id are stopped the same way. Error if something survives SIGKILL.
static Stopped stop_held(const PidRecord& r, milliseconds timeout, std::string_view who) {
  const ProcessId main{r.pid, r.start_time}, waiter{r.waiter, r.waiter_start};
  const bool held = alive_as(waiter.pid, waiter.start_time);
  auto remaining = [&] { return daemon_processes(r); };
  auto everything_gone = [&] { return remaining().empty() && (!held || !alive_as(waiter.pid, waiter.start_time)); };
  if (everything_gone()) {
    if (held) (void)await_gone(waiter.pid, waiter.start_time, std::chrono::seconds(10));
    return Stopped::not_running;
  }
  Stopped how = Stopped::not_running;
  if (alive_as(main.pid, main.start_time)) {
    signal_process(main, SIGTERM);
    how = Stopped::terminated;
    const auto deadline = deadline_after(timeout);
    Backoff backoff;
    while (alive_as(main.pid, main.start_time) && Clock::now() < deadline) backoff.sleep(deadline);
    if (alive_as(main.pid, main.start_time)) how = Stopped::killed;
  }
  // Once the main process is gone the waiter kills the rest itself; this does it
  // too, for what a killed waiter left behind and in case the waiter is stopped.
  const auto deadline = deadline_after(std::chrono::seconds(10));
  Backoff backoff;
  while (true) {
    const auto left = remaining();
    for (const auto& p : left)
      if (signal_process(p, SIGKILL) && how == Stopped::not_running) how = Stopped::remains;
    if (left.empty() && (!held || !alive_as(waiter.pid, waiter.start_time))) return how;
    if (Clock::now() >= deadline) break;
    backoff.sleep(deadline);
  }
  throw Error("stackup: " + std::string(who) + " (pid " + std::to_string(r.pid) + ", waiter " +
              std::to_string(r.waiter) +
              ") still has processes 10s after SIGKILL (stuck in the kernel?); its pid file is kept: check them with "
              "`ps -o pid,ppid,stat,cmd --ppid " + std::to_string(r.waiter) + "`");
}

/// How a daemon's main process ended, as its waiter recorded it in `exit`.
struct ExitRecord {
  std::string invocation_id;
  pid_t pid = 0;
  ChildExit exit{};            ///< CLD_EXITED, CLD_KILLED or CLD_DUMPED, with the status or signal
  long long seconds = 0;       ///< when (the Unix epoch), seconds and nanoseconds
  long nanoseconds = 0;
  unsigned long long left = 0; ///< processes still held then, which the waiter killed
};

/// Parses an `exit` file ("<id> <pid> exited|killed|dumped <n> <s>.<ns> <left>\n").
static std::optional<ExitRecord> parse_exit_record(std::string_view text) {
  if (text.empty() || text.back() != '\n') return std::nullopt;
  text.remove_suffix(1);
  std::vector<std::string_view> f;
  while (!text.empty()) {
    const auto sp = text.find(' ');
    f.push_back(text.substr(0, sp));
    if (sp == std::string_view::npos) break;
    text.remove_prefix(sp + 1);
  }
  if (f.size() != 6 || !is_invocation_id(f[0])) return std::nullopt;
  ExitRecord r;
  r.invocation_id = f[0];
  auto number = [](std::string_view s, auto& out) {
    const auto res = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && res.ec == std::errc{} && res.ptr == s.data() + s.size();
  };
  if (f[2] == "exited") r.exit.code = CLD_EXITED;
  else if (f[2] == "killed") r.exit.code = CLD_KILLED;
  else if (f[2] == "dumped") r.exit.code = CLD_DUMPED;
  else return std::nullopt;
  const auto dot = f[4].find('.');
  if (!number(f[1], r.pid) || !number(f[3], r.exit.status) || dot == std::string_view::npos ||
      !number(f[4].substr(0, dot), r.seconds) || !number(f[4].substr(dot + 1), r.nanoseconds) || !number(f[5], r.left))
    return std::nullopt;
  return r;
}

// ---- listening sockets ------------------------------------------------------------

/// The inodes of the TCP sockets listening on `port` at an address a
/// connection to 127.0.0.1 reaches (any address, or loopback), from
/// /proc/net/tcp and /proc/net/tcp6 of the calling thread's network namespace.
static std::vector<unsigned long long> listening_inodes(std::uint16_t port) {
  std::vector<unsigned long long> out;
  for (const char* file : {"tcp", "tcp6"}) {
    // thread-self: the probe connects from this thread's namespace (/proc/net is the main thread's).
    Fd fd(::open(("/proc/thread-self/net/" + std::string(file)).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fd = Fd(::open(("/proc/net/" + std::string(file)).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;
    std::string text;
    char buf[8192];
    while (true) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    std::string_view rest = text;
    bool header = true;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (std::exchange(header, false)) continue;
      std::vector<std::string_view> f;
      while (!line.empty()) {
        const auto b = line.find_first_not_of(' ');
        if (b == std::string_view::npos) break;
        line.remove_prefix(b);
        const auto e = line.find(' ');
        f.push_back(line.substr(0, e));
        line.remove_prefix(e == std::string_view::npos ? line.size() : e);
      }
      if (f.size() < 10 || f[3] != "0A") continue; // 0A: LISTEN
      const auto colon = f[1].find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view address = f[1].substr(0, colon);
      unsigned local_port = 0;
      if (std::from_chars(f[1].data() + colon + 1, f[1].data() + f[1].size(), local_port, 16).ec != std::errc{} ||
          local_port != port)
        continue;
      // In /proc the address is in network order, each 32-bit word printed as a
      // host (little-endian) number: 127.0.0.1 is 0100007F, ::1 ends 01000000,
      // ::ffff:127.0.0.1 is 0000000000000000FFFF00000100007F.
      const bool any = address.find_first_not_of('0') == std::string_view::npos;
      const bool loopback4 = address.size() == 8 && address.substr(6) == "7F";
      const bool loopback6 = address == "00000000000000000000000001000000";
      const bool mapped = address.size() == 32 && address.substr(0, 24) == "0000000000000000FFFF0000" &&
                          address.substr(30) == "7F";
      if (!any && !loopback4 && !loopback6 && !mapped) continue;
      unsigned long long inode = 0;
      if (std::from_chars(f[9].data(), f[9].data() + f[9].size(), inode).ec == std::errc{} && inode != 0)
        out.push_back(inode);
    }
  }
  return out;
}

/// Whether process `pid` holds one of the sockets `inodes` (its /proc/<pid>/fd).
static bool holds_socket(pid_t pid, const std::vector<unsigned long long>& inodes) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  char target[64];
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const ssize_t n = ::readlinkat(::dirfd(d), e->d_name, target, sizeof target - 1);
    if (n <= 8) continue;
    const std::string_view t(target, static_cast<std::size_t>(n));
    if (!t.starts_with("socket:[") || t.back() != ']') continue;
    unsigned long long inode = 0;
    if (std::from_chars(t.data() + 8, t.data() + t.size() - 1, inode).ec != std::errc{}) continue;
    if (std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

/// Who listens on `port` (see listening_inodes), for messages: "pid 123
/// (nginx)", several joined by ", "; "a process this user cannot see" when the
/// socket's holder cannot be read (another user's, another namespace's).
/// Empty when nothing listens.
static std::string listener_holders(std::uint16_t port) {
  const auto inodes = listening_inodes(port);
  if (inodes.empty()) return {};
  std::string out;
  for (const auto& e : live_processes()) {
    if (!holds_socket(e.id.pid, inodes)) continue;
    std::string comm = read_file_text("/proc/" + std::to_string(e.id.pid) + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    out += (out.empty() ? "" : ", ") + ("pid " + std::to_string(e.id.pid)) + (comm.empty() ? "" : " (" + comm + ")");
  }
  return out.empty() ? std::string("a process this user cannot see") : out;
}

/// The first `limit` bytes of a /proc file (empty when unreadable).
static std::string read_file_text(const std::string& file, std::size_t limit = 256) {
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  std::string out;
  if (!fd) return out;
  char buf[256];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// ---- running as another user -------------------------------------------------------

/// The user a spawned process runs as, resolved in the parent: between fork and
/// exec the child may only make async-signal-safe calls, and looking up a user
/// or its groups reads files and allocates.
struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;              ///< the primary group
  std::vector<gid_t> groups{}; ///< the supplementary groups (the primary one included), as initgroups sets them
  std::string home{};
  std::string shell{}; ///< the login shell (the password database's; /bin/sh when it names none)
};

/// The PATH a process run as another user gets unless its `env` sets one: the
/// standard one `su -` gives an ordinary user, nothing of the caller's.
static constexpr std::string_view standard_path = "/usr/local/bin:/usr/bin:/bin";

/// The name of the user this process runs as (its effective uid), or "uid N"
/// when the password database has none.
static std::string current_user_name() {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(::geteuid());
}

/// What spawn needs to run `who`'s processes as `user` (the components'
/// `.user`): empty when `user` is empty or names the current user, which
/// changes nothing. Error naming the user when there is no such user; Error
/// naming `who` and the fix when it is another user and this process is not
/// root, the only one allowed to switch.
static std::optional<RunAs> run_as(const std::string& user, std::string_view who) {
  if (user.empty()) return std::nullopt;
  const std::string where = "stackup: " + std::string(who) + ": ";
  if (user.find('\0') != std::string::npos)
    throw Error(where + "user '" + user + "' holds a NUL byte: give a user name");
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int e = 0;
  while ((e = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1U << 20))
    buf.resize(buf.size() * 2);
  // ENOENT, ESRCH, EBADF and EPERM are how some systems say "no such user".
  if (found == nullptr && e != 0 && e != ENOENT && e != ESRCH && e != EBADF && e != EPERM)
    throw Error(where + "cannot look up user '" + user + "': " + sys_message(e));
  if (found == nullptr)
    throw Error(where + "there is no user '" + user + "' on this system (see `getent passwd " + user +
                "`): create it, or fix or remove `user`");
  if (pw.pw_uid == ::geteuid()) return std::nullopt;
  if (::geteuid() != 0)
    throw Error(where + "running as user '" + user + "' needs root, and this process runs as '" +
                current_user_name() + "': run stackup as root, or remove `user` to run it as '" +
                current_user_name() + "'");
  RunAs as{user, pw.pw_uid, pw.pw_gid, {}, pw.pw_dir != nullptr ? pw.pw_dir : "",
           pw.pw_shell != nullptr && *pw.pw_shell != '\0' ? pw.pw_shell : "/bin/sh"};
  int count = 32;
  for (int attempt = 0; attempt < 8; ++attempt) {
    as.groups.resize(static_cast<std::size_t>(count));
    int n = count;
    if (::getgrouplist(user.c_str(), as.gid, as.groups.data(), &n) >= 0) {
      as.groups.resize(static_cast<std::size_t>(n));
      return as;
    }
    count = std::max(n, count * 2); // too small: n is the size it needs
  }
  throw Error(where + "cannot list the groups of user '" + user + "'");
}

/// What to run, and with which standard streams.
struct SpawnOptions {
  std::vector<std::string> argv;                        ///< argv[0] is looked up in PATH if it has no '/'
  const std::map<std::string, std::string>* env = nullptr; ///< variables added to the inherited environment
  std::filesystem::path working_dir;                    ///< empty: inherit
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;     ///< each must be above 2 (see above_stdio)
  /// Run as this user (see run_as): groups, gid, uid set before the working
  /// directory is entered, and a clean environment as `su -` and systemd give:
  /// `env`, then HOME, USER, LOGNAME and SHELL of that user and PATH
  /// standard_path where `env` does not set them; nothing inherited from this
  /// process. Null: as this process, with its environment plus `env`.
  const RunAs* user = nullptr;
};

/// What a started child needs between fork and exec, prepared before the fork:
/// it may then make only async-signal-safe calls (no allocation, no locks), as
/// the host may have threads.
struct ChildPlan {
  std::vector<std::string> env_strings{}, args{}, candidates{};
  std::vector<char*> envp{}, argv{};
  const char* cwd = nullptr;
  const RunAs* user = nullptr;
  int in = -1, out = -1, err = -1; ///< the child's standard streams
  int report = -1;                 ///< where a failure is reported (closed at exec)
  int go = -1;                     ///< one byte here lets the child exec; end of file makes it exit
};

/// Builds the environment, argv and PATH candidates of `o` (see SpawnOptions).
static void plan_child(const SpawnOptions& o, ChildPlan& p) {
  if (o.argv.empty() || o.argv.front().empty()) throw Error("stackup: cannot start an empty command");
  const auto configured = [&](std::string_view key) { return o.env != nullptr && o.env->count(std::string(key)) != 0; };
  std::string path_var(standard_path);
  if (o.user == nullptr) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string_view kv(*e);
      if (!configured(kv.substr(0, kv.find('=')))) p.env_strings.emplace_back(kv);
    }
    if (const char* path = std::getenv("PATH")) path_var = path;
  } else {
    // Another user gets nothing of this process's environment (root's PATH,
    // credentials of its tools): what a login as that user would have, and `env`.
    const std::string path(standard_path);
    const std::pair<const char*, const std::string*> vars[] = {{"HOME", &o.user->home},
                                                               {"USER", &o.user->name},
                                                               {"LOGNAME", &o.user->name},
                                                               {"SHELL", &o.user->shell},
                                                               {"PATH", &path}};
    for (const auto& [key, value] : vars)
      if (!configured(key)) p.env_strings.push_back(std::string(key) + "=" + *value);
  }
  if (o.env != nullptr) {
    for (const auto& [key, value] : *o.env) {
      if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos)
        throw Error("stackup: invalid environment variable name '" + key + "': it must be non-empty, without '='");
      p.env_strings.push_back(key + "=" + value);
      if (key == "PATH") path_var = value;
    }
  }
  for (auto& s : p.env_strings) p.envp.push_back(s.data());
  p.envp.push_back(nullptr);
  p.args = o.argv;
  for (auto& s : p.args) p.argv.push_back(s.data());
  p.argv.push_back(nullptr);
  if (o.argv.front().find('/') != std::string::npos) {
    p.candidates.push_back(o.argv.front());
  } else {
    std::string_view rest = path_var;
    while (true) {
      const auto colon = rest.find(':');
      const std::string_view dir = rest.substr(0, colon);
      p.candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + o.argv.front());
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  p.cwd = o.working_dir.empty() ? nullptr : o.working_dir.c_str();
  p.user = o.user;
  if (o.stdin_fd <= 2 || o.stdout_fd <= 2 || o.stderr_fd <= 2)
    throw Error("stackup: spawn: the child's standard streams must be descriptors above 2 (see above_stdio)");
  p.in = o.stdin_fd;
  p.out = o.stdout_fd;
  p.err = o.stderr_fd;
}

/// What a child writes to the report pipe: a failure (stage >= 1, with its
/// errno), or, from a waiter, that it started the daemon (stage 0).
struct Report {
  int stage = 0, err = 0;
  pid_t waiter = 0, main = 0;
};

// Child side: async-signal-safe calls only.
[[noreturn]] static void child_fail(int report, int stage) noexcept {
  const Report rep{stage, errno, 0, 0};
  [[maybe_unused]] const ssize_t n = ::write(report, &rep, sizeof rep);
  ::_exit(127);
}

static void default_signals() noexcept {
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
}

// The child proper: its own session, its streams, its user and directory; then
// it waits for the go byte and executes the command.
[[noreturn]] static void run_child(const ChildPlan& p) noexcept {
  if (::setsid() < 0) child_fail(p.report, 1);
  if (::dup2(p.in, 0) < 0 || ::dup2(p.out, 1) < 0 || ::dup2(p.err, 2) < 0) child_fail(p.report, 2);
#if defined(SYS_close_range)
  // Any descriptor the host left inheritable is closed at exec, not leaked to the daemon.
  ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
  if (p.user != nullptr) {
    // Groups and gid first: once the uid is not root, they cannot be changed.
    if (::setgroups(p.user->groups.size(), p.user->groups.data()) != 0) child_fail(p.report, 5);
    if (::setgid(p.user->gid) != 0) child_fail(p.report, 6);
    if (::setuid(p.user->uid) != 0) child_fail(p.report, 7);
  }
  // As that user: a directory it cannot enter is an error here, not a surprise later.
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) child_fail(p.report, 3);
  char byte = 0;
  ssize_t got = 0;
  do got = ::read(p.go, &byte, 1);
  while (got < 0 && errno == EINTR);
  if (got != 1) ::_exit(125); // the parent did not record us: do not run
  int err = ENOENT;
  for (const auto& c : p.candidates) {
    ::execve(c.c_str(), p.argv.data(), p.envp.data());
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) break;
  }
  errno = err;
  child_fail(p.report, 4);
}

// ---- the hold: a waiter that stays a daemon's parent ---------------------------

/// The waiter's SIGTERM: passed on to the daemon's main process.
static inline volatile sig_atomic_t waiter_term = 0;
static void on_waiter_term(int) noexcept { waiter_term = 1; }

/// Appends the decimal digits of `v` at `out`; returns how many.
static std::size_t put_number(char* out, unsigned long long v) noexcept {
  char tmp[24];
  std::size_t n = 0;
  do tmp[n++] = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

/// Parses a decimal number at the start of `s` (at most `len` bytes), moving past it.
static bool take_number(const char*& s, const char* end, long long& v) noexcept {
  v = 0;
  const char* begin = s;
  while (s < end && *s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return s != begin;
}

/// Signals every live child of this process (found in /proc by its parent
/// pid: a child's pid stays ours until we reap it, so it cannot be another
/// process's) with `sig`; returns how many. Async-signal-safe: the waiter runs it.
static unsigned long long signal_children(int sig) noexcept {
  struct Entry { // linux_dirent64
    std::uint64_t ino;
    std::int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[1];
  };
  const pid_t self = ::getpid();
  const int proc = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return 0;
  unsigned long long count = 0;
  alignas(8) char buf[4096];
  while (true) {
    const long n = ::syscall(SYS_getdents64, proc, buf, sizeof buf);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const auto* e = reinterpret_cast<const Entry*>(buf + at);
      at += e->reclen;
      const char* name = e->name;
      const char* name_end = name;
      while (*name_end != '\0') ++name_end;
      long long pid = 0;
      const char* q = name;
      if (!take_number(q, name_end, pid) || q != name_end || pid <= 1) continue;
      char path[40] = "/proc/";
      std::size_t len = 6 + put_number(path + 6, static_cast<unsigned long long>(pid));
      const char tail[] = "/stat";
      for (std::size_t i = 0; i < sizeof tail; ++i) path[len + i] = tail[i];
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char st[512];
      const ssize_t got = ::read(fd, st, sizeof st);
      ::close(fd);
      if (got <= 0) continue;
      const char* close = nullptr;
      for (const char* c = st; c < st + got; ++c)
        if (*c == ')') close = c;
      // ") S 1234 ": state, then the parent pid.
      if (close == nullptr || close + 4 >= st + got) continue;
      const char state = close[2];
      const char* pp = close + 4;
      long long ppid = 0;
      if (!take_number(pp, st + got, ppid) || ppid != self) continue;
      if (state == 'Z' || state == 'X' || state == 'x') continue;
      if (::kill(static_cast<pid_t>(pid), sig) == 0) ++count;
    }
  }
  ::close(proc);
  return count;
}

/// The waiter's life once the daemon's main process is started: it reaps every
/// process that comes back to it (a child subreaper); when the main process
/// ends it writes how into `exit` in the state directory (`dir`), SIGKILLs
/// every process still held, reaps them all and exits. Never returns.
[[noreturn]] static void run_waiter(pid_t main, int dir, const char* prefix) noexcept {
  // Only the state directory stays open: a pipe of the host kept open here would
  // keep its reader waiting (`stackctl stack up | cat`).
  int limit = 65536;
#if defined(SYS_close_range)
  const bool ranged = (dir <= 3 || ::syscall(SYS_close_range, 3U, static_cast<unsigned>(dir - 1), 0U) == 0) &&
                      ::syscall(SYS_close_range, static_cast<unsigned>(dir + 1), ~0U, 0U) == 0;
  if (ranged) limit = 0;
#endif
  for (int fd = 3; fd < limit; ++fd)
    if (fd != dir) ::close(fd);
  struct sigaction sa{};
  sa.sa_handler = on_waiter_term; // no SA_RESTART: waitpid returns EINTR
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  bool main_done = false;
  while (true) {
    int status = 0;
    const pid_t p = ::waitpid(-1, &status, 0);
    if (p < 0) {
      if (errno == EINTR) {
        if (waiter_term != 0 && !main_done) ::kill(main, SIGTERM); // not reaped yet: still the main process
        waiter_term = 0;
        continue;
      }
      break; // ECHILD: nothing is held any more
    }
    if (p == main) {
      main_done = true;
      timespec now{};
      ::clock_gettime(CLOCK_REALTIME, &now);
      const unsigned long long left = signal_children(SIGKILL);
      // "<invocation id> <pid> exited|killed|dumped <n> <seconds>.<nanoseconds> <left>\n"
      char line[160];
      std::size_t len = 0;
      for (const char* c = prefix; *c != '\0' && len < 64; ++c) line[len++] = *c;
      len += put_number(line + len, static_cast<unsigned long long>(main));
      const char* how = WIFEXITED(status) ? " exited " : WCOREDUMP(status) ? " dumped " : " killed ";
      for (const char* c = how; *c != '\0'; ++c) line[len++] = *c;
      len += put_number(line + len, static_cast<unsigned long long>(WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
      line[len++] = ' ';
      len += put_number(line + len, static_cast<unsigned long long>(now.tv_sec));
      line[len++] = '.';
      char ns[16];
      const std::size_t digits = put_number(ns, static_cast<unsigned long long>(now.tv_nsec));
      for (std::size_t i = digits; i < 9; ++i) line[len++] = '0';
      for (std::size_t i = 0; i < digits; ++i) line[len++] = ns[i];
      line[len++] = ' ';
      len += put_number(line + len, left);
      line[len++] = '\n';
      ::unlinkat(dir, "exit.tmp", 0);
      const int fd = ::openat(dir, "exit.tmp", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0) {
        const bool written = ::write(fd, line, len) == static_cast<ssize_t>(len);
        ::close(fd);
        if (written) ::renameat(dir, "exit.tmp", dir, "exit");
        else ::unlinkat(dir, "exit.tmp", 0);
      }
    } else if (main_done) {
      // One that died leaves its children to us: they are signalled in turn.
      signal_children(SIGKILL);
    }
  }
  ::_exit(0);
}

/// Why a child could not be started, from its report.
static std::string start_error(const SpawnOptions& o, const ChildPlan& p, const Report& rep, bool complete) {
  const char* stages[] = {"",
                          "setsid",
                          "redirect its output",
                          "change to its working directory",
                          "execute it",
                          "set its supplementary groups",
                          "set its group id",
                          "set its user id",
                          "start its waiter (fork)",
                          "make its waiter a child subreaper",
                          "start it under its waiter (fork)"};
  std::string what = "stackup: cannot start '" + o.argv.front() + "'";
  const int stage = complete && rep.stage >= 1 && rep.stage <= 10 ? rep.stage : 4;
  what += ": " + std::string(stages[stage]) + " failed: " + sys_message(rep.err);
  const std::string as_user = o.user != nullptr ? "user '" + o.user->name + "'" : std::string();
  if (stage == 3 && o.user == nullptr) what += " (working_dir " + quoted(o.working_dir) + ")";
  if (stage == 3 && o.user != nullptr)
    what += " (working_dir " + quoted(o.working_dir) + ", as " + as_user +
            (rep.err == EACCES ? ": that user must be allowed to enter it and every directory above it)" : ")");
  if (stage == 4 && rep.err == ENOENT && p.candidates.size() > 1) what += " (not found in PATH)";
  if (stage == 4 && rep.err == EACCES && o.user != nullptr) what += " (as " + as_user + ")";
  if (stage >= 5 && stage <= 7)
    what += " (" + as_user + ", uid " + std::to_string(o.user->uid) + ", gid " + std::to_string(o.user->gid) +
            (rep.err == EPERM ? ": switching users needs root with CAP_SETUID and CAP_SETGID (a container may drop "
                                "them): grant them, or remove `user`)"
                              : ")");
  return what;
}

/// Reads one Report; returns the bytes read (0 at end of file).
static std::size_t read_report(int fd, Report& rep) noexcept {
  std::size_t got = 0;
  while (got < sizeof rep) {
    const ssize_t n = ::read(fd, reinterpret_cast<char*>(&rep) + got, sizeof rep - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

/// The pipe and socket pair a start uses (see ChildPlan::report and ::go).
struct StartChannels {
  Fd report_read, report_write, go_parent, go_child;
  StartChannels() {
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
    report_read = above_stdio(Fd(report[0]));
    report_write = above_stdio(Fd(report[1]));
    int go[2];
    // A socket, not a pipe: writing to it after the child died must not raise SIGPIPE.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0)
      throw Error("stackup: cannot create a socket pair: " + sys_message(errno));
    go_parent = above_stdio(Fd(go[0]));
    go_child = above_stdio(Fd(go[1]));
  }
  void go() {
    const char byte = 'g';
    while (::send(go_parent.get(), &byte, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
    go_parent.reset();
  }
};

/// Starts `o.argv` in a new session (so it leads its own process group and has
/// no controlling terminal), with default signal dispositions and an empty
/// signal mask, and with no descriptor of ours but the three given; as
/// `o.user` when given (its groups, gid and uid set before exec).
///
/// `gate(pid)` runs in this process after the fork and before the child may
/// exec: if this process dies during `gate`, the child exits instead of running
/// unrecorded. Throws Error (after reaping the child) when the command cannot be
/// started; what `gate` throws is rethrown after killing the child.
template <class Gate> static pid_t spawn(const SpawnOptions& o, Gate&& gate) {
  ChildPlan plan;
  plan_child(o, plan);
  // Every descriptor here is moved above 2 (a host started with closed stdio
  // gets 0-2 from pipe()), so the child's dup2 onto 0-2 clobbers none of them.
  StartChannels ch;
  plan.report = ch.report_write.get();
  plan.go = ch.go_child.get();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("stackup: cannot fork to start '" + o.argv.front() + "': " + sys_message(errno));
  if (pid == 0) {
    default_signals();
    run_child(plan);
  }
  ch.report_write.reset();
  ch.go_child.reset();
  try {
    gate(pid);
  } catch (...) {
    ::kill(pid, SIGKILL); // still ours and not yet exec'd: safe
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  ch.go();
  Report rep;
  const std::size_t got = read_report(ch.report_read.get(), rep);
  if (got == 0) return pid; // the report pipe closed on exec: started
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  throw Error(start_error(o, plan, rep, got == sizeof rep));
}

/// A daemon started under the hold: its waiter and its main process.
struct Held {
  pid_t waiter = 0, main = 0;
};

/// Whether the process `pid` that started at `start` is alive (not a zombie).
static bool alive_as(pid_t pid, unsigned long long start) {
  const auto st = read_proc_stat(pid);
  return st && st->start_time == start && is_live_state(st->state);
}

/// Waits (up to `timeout`) until the process `pid` that started at `start` is
/// gone; reaps it should it be a child of this process. Whether it is gone.
static bool await_gone(pid_t pid, unsigned long long start, milliseconds timeout) {
  const auto deadline = deadline_after(timeout);
  Backoff backoff;
  while (true) {
    reap(pid);
    if (!alive_as(pid, start)) return true;
    if (Clock::now() >= deadline) return false;
    backoff.sleep(deadline);
  }
}

/// Starts `o.argv` like spawn, but under the hold: a waiter process (its own
/// session, a child subreaper, not a child of this process) forks and keeps
/// the daemon's main process as its child, so every process the daemon starts
/// — double forks and setsid() included — stays the waiter's descendant. The
/// waiter holds `hold_dir` (the state directory) open to write `exit` there
/// when the main process ends (see run_waiter); `exit_prefix` begins that line.
///
/// `gate(Held)` runs before the main process may exec (see spawn); if it
/// throws, the main process exits without running and the waiter with it.
/// Error when the command cannot be started (its waiter is then gone too).
template <class Gate>
static Held spawn_held(const SpawnOptions& o, int hold_dir, const std::string& exit_prefix, Gate&& gate) {
  ChildPlan plan;
  plan_child(o, plan);
  StartChannels ch;
  plan.report = ch.report_write.get();
  plan.go = ch.go_child.get();
  const char* prefix = exit_prefix.c_str();
  // Above 2, like every descriptor here: the waiter's dup2 onto 0-2 must not replace it.
  const Fd hold(::fcntl(hold_dir, F_DUPFD_CLOEXEC, 3));
  if (!hold) throw Error("stackup: cannot duplicate a file descriptor: " + sys_message(errno));
  const pid_t first = ::fork();
  if (first < 0) throw Error("stackup: cannot fork to start '" + o.argv.front() + "': " + sys_message(errno));
  if (first == 0) {
    default_signals();
    const pid_t waiter = ::fork(); // the waiter is nobody's child here: this process exits at once
    if (waiter < 0) child_fail(plan.report, 8);
    if (waiter > 0) ::_exit(0);
    if (::setsid() < 0) child_fail(plan.report, 1);
    if (::dup2(plan.in, 0) < 0 || ::dup2(plan.out, 1) < 0 || ::dup2(plan.err, 2) < 0) child_fail(plan.report, 2);
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) != 0) child_fail(plan.report, 9);
    const pid_t main = ::fork();
    if (main < 0) child_fail(plan.report, 10);
    if (main == 0) run_child(plan);
    const Report started{0, 0, ::getpid(), main};
    [[maybe_unused]] const ssize_t n = ::write(plan.report, &started, sizeof started);
    run_waiter(main, hold.get(), prefix);
  }
  ch.report_write.reset();
  ch.go_child.reset();
  while (::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {
  }
  Report rep;
  std::size_t got = read_report(ch.report_read.get(), rep);
  if (got != sizeof rep || rep.stage != 0) throw Error(start_error(o, plan, rep, got == sizeof rep));
  const Held held{rep.waiter, rep.main};
  const auto waiter = read_proc_stat(held.waiter);
  auto await_waiter = [&] {
    if (waiter) (void)await_gone(held.waiter, waiter->start_time, std::chrono::seconds(10));
  };
  try {
    gate(held);
  } catch (...) {
    ch.go_parent.reset(); // the main process exits without running, then the waiter
    // It may have failed on its own before (its working directory, its user),
    // and be gone before the gate could read it: that failure is the one to report.
    got = read_report(ch.report_read.get(), rep);
    await_waiter();
    if (got != 0) throw Error(start_error(o, plan, rep, got == sizeof rep));
    throw;
  }
  ch.go();
  got = read_report(ch.report_read.get(), rep);
  if (got == 0) return held; // the report pipe closed on exec: started
  await_waiter();
  throw Error(start_error(o, plan, rep, got == sizeof rep));
}

// ---- shell commands -------------------------------------------------------------------

/// The result of run_shell.
struct ShellResult {
  ChildExit exit;      ///< how the shell ended (after a kill when timed out or stopped)
  bool timed_out = false;
  bool stopped = false; ///< killed because the operation was asked to stop (stackup::stop_requested())
  std::string stderr_tail; ///< the last few KiB of its standard error
};

/// Runs `command` with /bin/sh -c in its own session (stdin and stdout /dev/null,
/// stderr captured), as `user` when given (see run_as). Past `timeout`, its
/// whole process group gets SIGTERM, then SIGKILL two seconds later. Returns when the shell exits, even if a process it
/// started in the background still holds its stderr.
static ShellResult run_shell(const std::string& command, milliseconds timeout,
                             const std::filesystem::path& working_dir, const std::map<std::string, std::string>& env,
                             const RunAs* user = nullptr) {
  constexpr std::size_t keep = 8192;
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw Error("stackup: cannot open /dev/null: " + sys_message(errno));
  null = above_stdio(std::move(null));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
  Fd err_read(p[0]), err_write(p[1]);
  err_read = above_stdio(std::move(err_read));
  err_write = above_stdio(std::move(err_write));
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);

  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", command};
  o.env = &env;
  o.working_dir = working_dir;
  o.stdin_fd = null.get();
  o.stdout_fd = null.get();
  o.stderr_fd = err_write.get();
  o.user = user;
  const pid_t pid = spawn(o, [](pid_t) {});
  err_write.reset();

  ShellResult result;
  bool open = true;
  auto drain = [&] {
    char buf[4096];
    while (open) {
      const ssize_t n = ::read(err_read.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n == 0) open = false;
        break;
      }
      result.stderr_tail.append(buf, static_cast<std::size_t>(n));
      if (result.stderr_tail.size() > 2 * keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
    }
  };
  auto deadline = deadline_after(timeout);
  Backoff backoff;
  std::optional<ChildExit> ended;
  while (!(ended = peek_exit(pid))) {
    if (Clock::now() >= deadline) break;
    if (stop_requested()) {
      result.stopped = true;
      break;
    }
    const auto wait = std::chrono::duration_cast<milliseconds>(backoff.next(deadline));
    if (open) {
      pollfd pfd{err_read.get(), POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>(std::max<milliseconds::rep>(wait.count(), 1)));
      drain();
      // stderr closed: the shell is exiting. Look again within a millisecond, not
      // after the pause the poll grew to (up to 10 ms per command).
      if (!open) backoff = Backoff{};
    } else {
      std::this_thread::sleep_for(wait);
    }
  }
  if (!ended) {
    result.timed_out = !result.stopped;
    ::kill(-pid, SIGTERM);
    deadline = deadline_after(std::chrono::seconds(2));
    Backoff grace;
    while (!(ended = peek_exit(pid)) && Clock::now() < deadline) grace.sleep(deadline);
    // The shell is not reaped yet, so its group number cannot have been reused.
    ::kill(-pid, SIGKILL);
  }
  siginfo_t si{};
  int r = 0;
  while ((r = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED)) != 0 && errno == EINTR) {
  }
  result.exit = r == 0 ? ChildExit{si.si_code, si.si_status} : ended.value_or(ChildExit{unknown_exit, 0});
  drain();
  if (result.stderr_tail.size() > keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
  return result;
}

// ---- readiness probes -----------------------------------------------------------------

/// Whether TCP socket `fd` is connected to itself. A connect() from an unbound
/// socket to a port nothing listens on can pick that very port as its source
/// port (when it lies in the ephemeral range), and the socket then connects to
/// itself (TCP simultaneous open): a connection with no server behind it.
static bool connected_to_itself(int fd) noexcept {
  sockaddr_in self{}, peer{};
  socklen_t self_len = sizeof self, peer_len = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &self_len) != 0 ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
    return false;
  return self.sin_port == peer.sin_port && self.sin_addr.s_addr == peer.sin_addr.s_addr;
}

/// Closes a socket with a reset instead of the closing handshake: it leaves no
/// TIME_WAIT behind, so its port is free again at once.
static void close_with_reset(Fd& fd) noexcept {
  const linger reset{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  fd.reset();
}

/// A TCP socket connected to a server on 127.0.0.1:port, or empty (refused, not
/// within `timeout`, or connected to itself). A socket connected to itself holds
/// the port the daemon is about to listen on: it is reset at once, leaving
/// nothing on the port.
static Fd connect_loopback(std::uint16_t port, milliseconds timeout) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return {};
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::clamp<milliseconds::rep>(timeout.count(), 1, INT_MAX))) != 1) return {};
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return {};
  }
  if (connected_to_itself(fd.get())) close_with_reset(fd);
  return fd;
}

/// Something accepts connections on 127.0.0.1:port.
static bool tcp_probe(std::uint16_t port, milliseconds timeout) {
  return static_cast<bool>(connect_loopback(port, timeout));
}

/// `GET path` on 127.0.0.1:port answers 2xx within `timeout`.
static bool http_probe(std::uint16_t port, std::string_view path, milliseconds timeout) {
  const auto deadline = deadline_after(timeout);
  Fd fd = connect_loopback(port, timeout);
  if (!fd) return false;
  auto left = [&] {
    return static_cast<int>(std::clamp<long long>(
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count(), 1, INT_MAX));
  };
  const std::string request = "GET " + std::string(path) + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) +
                              "\r\nUser-Agent: stackup\r\nConnection: close\r\n\r\n";
  std::string_view out = request;
  while (!out.empty()) {
    const ssize_t n = ::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (Clock::now() >= deadline || ::poll(&pfd, 1, left()) != 1) return false;
  }
  std::string in;
  char buf[256];
  while (in.find('\n') == std::string::npos && in.size() < 512) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    pollfd pfd{fd.get(), POLLIN, 0};
    if (Clock::now() >= deadline || ::poll(&pfd, 1, left()) != 1) return false;
  }
  // "HTTP/1.x 2xx ..."
  const auto space = in.find(' ');
  return in.compare(0, 5, "HTTP/") == 0 && space != std::string::npos && space + 4 <= in.size() &&
         in[space + 1] == '2';
}

// ---- logs -----------------------------------------------------------------------------

/// The last `max_lines` lines of `name` in `dirfd` from byte `from` on (at most
/// the last 4 KiB), each indented, for error messages. Empty if there are none.
static std::string log_tail(int dirfd, const char* name, off_t from, std::size_t max_lines = 15) {
  Fd fd = open_own_file(dirfd, name, O_RDONLY);
  if (!fd) return {};
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || st.st_size <= from) return {};
  const off_t start = std::max<off_t>(from, st.st_size - 4096);
  std::string text(static_cast<std::size_t>(st.st_size - start), '\0');
  const ssize_t n = ::pread(fd.get(), text.data(), text.size(), start);
  if (n <= 0) return {};
  text.resize(static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  if (start > from && !lines.empty()) lines.erase(lines.begin()); // cut mid-line
  std::string out;
  for (std::size_t i = lines.size() > max_lines ? lines.size() - max_lines : 0; i < lines.size(); ++i) {
    out += "\n    ";
    out += lines[i];
  }
  return out;
}

/// The last lines of a captured text, indented like log_tail.
static std::string text_tail(std::string_view text, std::size_t max_lines = 15) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::size_t begin = text.size();
  for (std::size_t lines = 0; begin > 0; --begin) {
    if (text[begin - 1] == '\n' && ++lines == max_lines) break;
  }
  std::string out;
  std::string_view rest = text.substr(begin);
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    out += "\n    ";
    out += rest.substr(0, nl);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

}; // struct Posix

using posix = Posix<>;

} // namespace stackup::detail
