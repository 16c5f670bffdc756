// test_daemon: a small real daemon for the LocalDaemon tests.
//
//   test_daemon --port N [--ready-after MS] [--ignore-term] [--term-delay MS]
//               [--exit-now MESSAGE] [--unhealthy] [--spawn-child] [--tag TEXT]
//
// Listens on 127.0.0.1:N and answers `GET /health` with 200 (503 with
// --unhealthy), anything else with 404. --ready-after delays the listening
// socket; --ignore-term logs and ignores SIGTERM; --term-delay takes MS to exit
// after SIGTERM, saying so when it starts and when it exits; --exit-now prints MESSAGE on
// stderr and exits with status 3; --spawn-child forks a child that stays in the
// daemon's process group; --tag is ignored (tests use it to find their processes).
// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

namespace {

extern "C" void on_term(int) {
  static const char msg[] = "test_daemon: got SIGTERM, ignoring it\n";
  [[maybe_unused]] const ssize_t n = ::write(2, msg, sizeof msg - 1);
}

timespec term_delay{0, 0};

extern "C" void on_term_slowly(int) {
  static const char got[] = "test_daemon: got SIGTERM, exiting after a delay\n";
  static const char done[] = "test_daemon: exiting after SIGTERM\n";
  [[maybe_unused]] ssize_t n = ::write(1, got, sizeof got - 1);
  ::nanosleep(&term_delay, nullptr);
  n = ::write(1, done, sizeof done - 1);
  ::_exit(0);
}

int usage(const char* why) {
  std::fprintf(stderr, "test_daemon: %s\nusage: test_daemon --port N [--ready-after MS] [--ignore-term] "
                       "[--term-delay MS] [--exit-now MESSAGE] [--unhealthy] [--spawn-child] [--tag TEXT]\n", why);
  return 2;
}

void answer(int client, bool healthy) {
  timeval tv{2, 0}; // a silent client must not block the daemon for long
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string request;
  char buf[1024];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
    const ssize_t n = ::recv(client, buf, sizeof buf, 0);
    if (n <= 0) return; // a TCP probe connects and closes: nothing to answer
    request.append(buf, static_cast<std::size_t>(n));
  }
  const bool health = request.rfind("GET /health ", 0) == 0;
  const std::string body = health ? (healthy ? "ok\n" : "unhealthy\n") : "not found\n";
  const char* status = health ? (healthy ? "200 OK" : "503 Service Unavailable") : "404 Not Found";
  const std::string response = std::string("HTTP/1.0 ") + status + "\r\nContent-Type: text/plain\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  [[maybe_unused]] const ssize_t n = ::send(client, response.data(), response.size(), MSG_NOSIGNAL);
}

} // namespace

int main(int argc, char** argv) {
  long port = -1, ready_after = 0, slow_term = -1;
  bool ignore_term = false, unhealthy = false, spawn_child = false;
  const char* exit_now = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--port" && has_value) port = std::strtol(argv[++i], nullptr, 10);
    else if (a == "--ready-after" && has_value) ready_after = std::strtol(argv[++i], nullptr, 10);
    else if (a == "--term-delay" && has_value) slow_term = std::strtol(argv[++i], nullptr, 10);
    else if (a == "--exit-now" && has_value) exit_now = argv[++i];
    else if (a == "--tag" && has_value) ++i;
    else if (a == "--ignore-term") ignore_term = true;
    else if (a == "--unhealthy") unhealthy = true;
    else if (a == "--spawn-child") spawn_child = true;
    else return usage(("unknown argument '" + std::string(a) + "'").c_str());
  }
  if (exit_now != nullptr) {
    std::fprintf(stderr, "%s\n", exit_now);
    return 3;
  }
  if (port <= 0 || port > 65535) return usage("--port N is required (1-65535)");
  std::printf("test_daemon: pid %d starting on port %ld\n", static_cast<int>(::getpid()), port);
  std::fflush(stdout);

  if (ignore_term) {
    struct sigaction sa{};
    sa.sa_handler = on_term;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
  }
  if (slow_term >= 0) {
    term_delay = {slow_term / 1000, (slow_term % 1000) * 1000000};
    struct sigaction sa{};
    sa.sa_handler = on_term_slowly;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
  }
  if (spawn_child) {
    const pid_t child = ::fork();
    if (child == 0) {
      for (;;) ::pause();
    }
    std::printf("test_daemon: child %d\n", static_cast<int>(child));
    std::fflush(stdout);
  }
  if (ready_after > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ready_after));

  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(server, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(server, 16) != 0) {
    std::fprintf(stderr, "test_daemon: cannot listen on 127.0.0.1:%ld: %s\n", port, std::strerror(errno));
    return 4;
  }
  std::printf("test_daemon: listening on 127.0.0.1:%ld\n", port);
  std::fflush(stdout);
  for (;;) {
    const int client = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    answer(client, !unhealthy);
    ::close(client);
  }
}
