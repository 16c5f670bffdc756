// stackup — POSIX internals of the shipped components: loopback readiness probes.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/spawn.hpp>

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixProbes : PosixSpawn<> {

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

}; // struct PosixProbes

} // namespace stackup::detail
