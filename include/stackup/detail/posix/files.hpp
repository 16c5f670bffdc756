// stackup — POSIX internals of the shipped components: file descriptors (Fd), polling
// back-off, reading and writing files relative to a held directory, ownership markers.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
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

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixFiles {

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
  /// The descriptor, now the caller's to close.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

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

}; // struct PosixFiles

} // namespace stackup::detail
