// A daemon for the readiness benchmark: waits DELAY_MS, then listens on
// 127.0.0.1:PORT and records the moment it did (CLOCK_MONOTONIC, nanoseconds)
// in STAMP_FILE, then answers every connection with an HTTP 200 until SIGTERM.
//
//   bench_late_listener PORT DELAY_MS STAMP_FILE
// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "bench_late_listener: %s: %s\n", what, std::strerror(errno));
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bench_late_listener PORT DELAY_MS STAMP_FILE\n");
    return 2;
  }
  const long port = std::strtol(argv[1], nullptr, 10);
  const long delay_ms = std::strtol(argv[2], nullptr, 10);
  if (port <= 0 || port > 65535 || delay_ms < 0) {
    std::fprintf(stderr, "bench_late_listener: PORT must be 1-65535 and DELAY_MS >= 0\n");
    return 2;
  }
  const std::string stamp = argv[3];

  timespec delay{delay_ms / 1000, (delay_ms % 1000) * 1000000L};
  while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
  }

  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail("bind");
  if (listen(fd, 16) != 0) return fail("listen");
  // The port accepts connections from here on: this is the moment readiness is measured from.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);

  // Written to a temporary name and renamed, so a reader never sees half a number.
  const std::string tmp = stamp + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "%lld\n", static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec);
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), stamp.c_str()) != 0) return fail("write stamp");
  } else {
    return fail("open stamp");
  }

  static constexpr char response[] = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  for (;;) {
    const int c = accept(fd, nullptr, nullptr);
    if (c < 0) {
      if (errno == EINTR) continue;
      return fail("accept");
    }
    [[maybe_unused]] const auto sent = write(c, response, sizeof response - 1);
    close(c);
  }
}
