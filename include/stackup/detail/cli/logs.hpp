// stackup — a component's log on the command line (internal, part of
// <stackup/cli.hpp>): its last lines, and what is appended to it (`logs --follow`).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/errors.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stackup::cli::detail {

/// Writes the last `n` lines of `path` (all of it when `n` is empty) to `out`,
/// reading backwards from the end so a large log costs only what is printed.
/// Returns the offset it read up to.
inline std::uintmax_t copy_tail(const std::filesystem::path& path, std::optional<std::size_t> n, std::ostream& out) {
  // Only a regular file, not through a symlink: a FIFO in its place would block
  // forever. Checked on the descriptor opened, then read through that same
  // file (its /proc/self/fd link), so a swap after the check changes nothing.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct ::stat st {};
  if (fd < 0 && errno != ELOOP) throw Error("cannot open " + path.string() + ": " + std::strerror(errno));
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    throw Error("cannot show " + path.string() + ": it is not a regular file (a symlink, a FIFO or a device?): remove it");
  }
  std::ifstream in("/proc/self/fd/" + std::to_string(fd), std::ios::binary);
  ::close(fd);
  if (!in) throw Error("cannot open " + path.string());
  char buf[1 << 16];
  std::uintmax_t end = 0;
  if (!n) {
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      out.write(buf, in.gcount());
      end += static_cast<std::uintmax_t>(in.gcount());
    }
    return end;
  }
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (*n == 0) return static_cast<std::uintmax_t>(size);
  std::streamoff start = 0, pos = size;
  std::size_t newlines = 0;
  bool found = false;
  while (pos > 0 && !found) {
    const std::streamoff chunk = std::min<std::streamoff>(pos, static_cast<std::streamoff>(sizeof buf));
    pos -= chunk;
    in.seekg(pos);
    in.read(buf, chunk);
    for (std::streamoff i = chunk; i-- > 0;) {
      if (buf[i] != '\n' || pos + i == size - 1) continue; // a final newline ends the last line
      if (++newlines == *n) {
        start = pos + i + 1;
        found = true;
        break;
      }
    }
  }
  in.clear();
  in.seekg(start);
  end = static_cast<std::uintmax_t>(start);
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.write(buf, in.gcount());
    end += static_cast<std::uintmax_t>(in.gcount());
  }
  return end;
}

/// Writes what is appended to `path` after `offset` to `out` until `stop` is
/// requested or `out` fails, as `tail -F` does: a log that does not exist yet is
/// waited for, and one that is replaced or truncated (the component provisioned
/// anew) is read again from its start. The log being read is held open, so a new
/// one cannot take its inode number and pass for it.
inline void follow(const std::filesystem::path& path, std::uintmax_t offset, std::ostream& out,
                   const std::stop_token& stop) {
  // O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO put in the log's place is not read.
  const auto open_log = [&path]() -> int {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct ::stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
      ::close(fd);
      return -1;
    }
    return fd;
  };
  struct Held {
    int fd = -1;
    ~Held() {
      if (fd >= 0) ::close(fd);
    }
  } log;
  log.fd = open_log(); // the file the caller read up to `offset`
  if (log.fd < 0) offset = 0;
  char buf[1 << 16];
  while (!stop.stop_requested() && out) {
    if (log.fd >= 0) {
      struct ::stat st {};
      if (::fstat(log.fd, &st) == 0 && static_cast<std::uintmax_t>(st.st_size) < offset) offset = 0; // truncated
      ssize_t got = 0;
      while ((got = ::pread(log.fd, buf, sizeof buf, static_cast<off_t>(offset))) > 0 && out) {
        out.write(buf, got);
        offset += static_cast<std::uintmax_t>(got);
      }
      out.flush();
    }
    // Replaced (or created): once what the old one held is written, the new one from its start.
    const int now = open_log();
    struct ::stat a {}, b {};
    if (now >= 0 && (log.fd < 0 || ::fstat(now, &a) != 0 || ::fstat(log.fd, &b) != 0 || a.st_ino != b.st_ino ||
                     a.st_dev != b.st_dev)) {
      if (log.fd >= 0) ::close(log.fd);
      log.fd = now;
      offset = 0;
      continue;
    }
    if (now >= 0) ::close(now);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

} // namespace stackup::cli::detail
