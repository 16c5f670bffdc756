// stackup — POSIX internals of the shipped components: the TCP sockets listening on a
// port, and which processes hold them.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/processes.hpp>

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixSockets : PosixProcesses<> {

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

}; // struct PosixSockets

} // namespace stackup::detail
