// Readiness probes against a port nothing listens on. A connect() from an
// unbound socket to an unused loopback port inside the ephemeral range can pick
// that very port as its source port and connect the socket to itself (TCP
// simultaneous open): the probe must not take that for a server, and must not
// leave the port held. In a network namespace whose ephemeral range is that one
// port, this happens on every try instead of once in thousands.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/messages.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using px = stackup::detail::posix;
using namespace std::chrono_literals;
using messages::contains;
using messages::error_of;
using ports::bindable;
using ports::loopback;
using processes::Scratch;
using processes::tagged;

// Any port works in a namespace of its own; an even one, as in the reported case.
constexpr std::uint16_t lone_port = 40000;

// The calling thread in a network namespace of its own, loopback up, whose
// ephemeral port range is the single port `port`. Back in the original
// namespace on destruction. Needs CAP_SYS_ADMIN: without it, ready() is false.
class LonePortNetwork {
public:
  explicit LonePortNetwork(std::uint16_t port) {
    original_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original_ < 0 || ::unshare(CLONE_NEWNET) != 0) {
      why_ = std::string("cannot enter a network namespace of its own: ") + std::strerror(errno);
      return;
    }
    entered_ = true;
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = s >= 0 && ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    up = up && ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    if (s >= 0) ::close(s);
    std::ofstream("/proc/sys/net/ipv4/ip_local_port_range") << port << ' ' << port << '\n';
    std::ifstream check("/proc/sys/net/ipv4/ip_local_port_range");
    unsigned low = 0, high = 0;
    check >> low >> high;
    if (!up || low != port || high != port) why_ = "cannot bring up its loopback or set its port range";
  }
  ~LonePortNetwork() {
    if (entered_ && ::setns(original_, CLONE_NEWNET) != 0) {
      // The rest of the suite must not run in this namespace.
      std::fprintf(stderr, "test_readiness: cannot return to the original network namespace: %s\n",
                   std::strerror(errno));
      std::abort();
    }
    if (original_ >= 0) ::close(original_);
  }
  LonePortNetwork(const LonePortNetwork&) = delete;
  LonePortNetwork& operator=(const LonePortNetwork&) = delete;

  [[nodiscard]] bool ready() const { return why_.empty(); }
  [[nodiscard]] const std::string& why() const { return why_; }

private:
  int original_ = -1;
  bool entered_ = false;
  std::string why_;
};

// Whether a plain connect() from an unbound socket to the unused `port` lands
// on itself here; the socket is closed with a reset, leaving nothing behind.
bool kernel_connects_to_itself(std::uint16_t port) {
  const px::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const auto addr = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return false;
  sockaddr_in self{};
  socklen_t len = sizeof self;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&self), &len);
  const linger reset{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  return ntohs(self.sin_port) == port;
}

} // namespace

TEST_CASE("readiness: a socket connected to itself is recognised, and a reset frees its port at once") {
  // Bound to the port it then connects to: a self-connection, made on purpose.
  std::uint16_t port = 0;
  px::Fd self(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  {
    auto addr = loopback(0);
    REQUIRE(::bind(self.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(self.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
    REQUIRE(::connect(self.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  }
  CHECK(px::connected_to_itself(self.get()));
  CHECK_FALSE(bindable(port));

  // A connection to a real listener is not.
  const px::Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto addr = loopback(0);
  REQUIRE(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener.get(), 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const px::Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(::connect(client.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  CHECK_FALSE(px::connected_to_itself(client.get()));

  px::close_with_reset(self);
  CHECK_FALSE(self);
  CHECK(bindable(port)); // a plain close would leave a TIME_WAIT holding it for a minute
}

TEST_CASE("readiness: a probe of a port nothing listens on is not ready, even when it connects to itself") {
  for (const bool http : {false, true}) {
    CAPTURE(http);
    LonePortNetwork net(lone_port);
    if (!net.ready()) {
      MESSAGE("skipped: ", net.why());
      return;
    }
    if (!kernel_connects_to_itself(lone_port)) {
      MESSAGE("skipped: this kernel does not connect a socket to itself");
      return;
    }
    REQUIRE(bindable(lone_port));
    for (int attempt = 0; attempt < 3; ++attempt) {
      CAPTURE(attempt);
      const bool ready = http ? px::http_probe(lone_port, "/health", 1s) : px::tcp_probe(lone_port, 1s);
      CHECK_FALSE(ready);
      CHECK(bindable(lone_port)); // the probe left nothing holding the port
    }
  }
}

TEST_CASE("readiness: a daemon that never listens on its ready port times out, and the port stays free") {
  for (const bool http : {false, true}) {
    CAPTURE(http);
    LonePortNetwork net(lone_port);
    if (!net.ready()) {
      MESSAGE("skipped: ", net.why());
      return;
    }
    Scratch tmp{"ready"};
    stackup::LocalDaemon<"orchestrator"> d{
        {.command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(lone_port), "--ready-after", "600000", "--tag",
                     tmp.path.string()},
         .state_dir = tmp.path / "state",
         .ready = http ? stackup::ready::http(lone_port, "/health") : stackup::ready::tcp(lone_port),
         .start_timeout = 300ms,
         .stop_timeout = 5s}};
    d.provision();
    const std::string message = error_of([&] { d.resume(); });
    CHECK(contains(message, "was not ready within 300ms"));
    CHECK_FALSE(d.is_running());
    CHECK(tagged(tmp.path.string()).empty()); // it was stopped
    CHECK(bindable(lone_port));               // and the real server could listen now
    d.deprovision();
  }
}
