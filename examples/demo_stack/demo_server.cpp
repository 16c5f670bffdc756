// demo_server: the small HTTP server that the demo_stack demo runs as its
// orchestrator and model deployer daemons. Loopback only.
//
//   demo_server --name NAME --port PORT [--files DIR]
//
// GET /health answers 200 "ok"; GET / answers the server's name and pid;
// GET /files (with --files) lists DIR, e.g. the artifact store the model
// deployer serves from. SIGTERM or SIGINT ends it cleanly. It writes one line
// when it listens and one when it stops (health checks are not logged, so the
// log stays readable however often the stack polls).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

volatile sig_atomic_t stop_signal = 0;
extern "C" void on_signal(int sig) { stop_signal = sig; }

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "demo_server: %s\n", message.c_str());
  std::exit(2);
}

struct Config {
  std::string name = "demo";
  unsigned short port = 0;
  std::filesystem::path files;
};

Config parse(int argc, char** argv) {
  Config c;
  bool have_port = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) die("option " + std::string(a) + " needs a value (usage: demo_server --name NAME --port PORT [--files DIR])");
    const std::string_view v = argv[++i];
    if (a == "--name") {
      c.name = v;
    } else if (a == "--port") {
      unsigned long p = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
      if (ec != std::errc{} || end != v.data() + v.size() || p == 0 || p > 65535)
        die("--port needs a port number from 1 to 65535, not '" + std::string(v) + "'");
      c.port = static_cast<unsigned short>(p);
      have_port = true;
    } else if (a == "--files") {
      c.files = v;
    } else {
      die("unknown option '" + std::string(a) + "' (usage: demo_server --name NAME --port PORT [--files DIR])");
    }
  }
  if (!have_port) die("--port PORT is required");
  return c;
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; // the client went away; nothing to do about it
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string response(int status, std::string_view reason, std::string_view body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

// Reads the request head (up to a blank line or 8 KiB), answers, closes.
void serve(int fd, const Config& c) {
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) break; // a silent client does not hold the server
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    head.append(buf, static_cast<std::size_t>(n));
  }
  const auto line_end = head.find("\r\n");
  const std::string line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return send_all(fd, response(400, "Bad Request", "bad request\n"));
  const std::string method = line.substr(0, sp1), path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET") return send_all(fd, response(405, "Method Not Allowed", "only GET\n"));
  if (path == "/health") return send_all(fd, response(200, "OK", "ok\n"));
  std::printf("%s: GET %s\n", c.name.c_str(), path.c_str());
  std::fflush(stdout);
  if (path == "/") return send_all(fd, response(200, "OK", c.name + " (pid " + std::to_string(::getpid()) + ")\n"));
  if (path == "/files" && !c.files.empty()) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(c.files, ec)) names.push_back(e.path().filename().string());
    if (ec) return send_all(fd, response(503, "Service Unavailable", "cannot read " + c.files.string() + ": " + ec.message() + "\n"));
    std::sort(names.begin(), names.end());
    std::string body;
    for (const auto& n : names) body += n + "\n";
    return send_all(fd, response(200, "OK", body));
  }
  send_all(fd, response(404, "Not Found", "not found\n"));
}

} // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  // The signals stay blocked except inside ppoll(), which unblocks them
  // atomically: a SIGTERM can never slip in between the check and the wait.
  sigset_t blocked, waiting;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  ::sigprocmask(SIG_BLOCK, &blocked, &waiting);
  sigdelset(&waiting, SIGTERM);
  sigdelset(&waiting, SIGINT);

  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server < 0) die(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(c.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(server, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    die("cannot listen on 127.0.0.1:" + std::to_string(c.port) + ": " + std::strerror(errno) +
        " (another program uses this port? choose other ports with DEMO_STACK_PORT_BASE)");
  if (::listen(server, 64) != 0) die(std::string("listen: ") + std::strerror(errno));
  std::printf("%s: listening on http://127.0.0.1:%u\n", c.name.c_str(), static_cast<unsigned>(c.port));
  std::fflush(stdout);

  while (stop_signal == 0) {
    pollfd p{server, POLLIN, 0};
    const int ready = ::ppoll(&p, 1, nullptr, &waiting);
    if (ready < 0) {
      if (errno == EINTR) continue;
      die(std::string("poll: ") + std::strerror(errno));
    }
    const int client = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    serve(client, c);
    ::close(client);
  }
  ::close(server);
  std::printf("%s: stopping (%s)\n", c.name.c_str(), stop_signal == SIGTERM ? "SIGTERM" : "SIGINT");
  std::fflush(stdout);
  return 0;
}
