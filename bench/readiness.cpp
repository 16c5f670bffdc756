// Readiness latency: from the moment a daemon's port opens to LocalDaemon::resume()
// returning, for a daemon that opens its port DELAY ms after it starts. Baseline,
// in the same run: a bare spawn + connect() loop polling every millisecond.
//
//   bench_readiness [--delays MS,MS,...] [google-benchmark flags]
//
// Each repetition is one start; run with --benchmark_repetitions=N and read the
// median. The daemon is bench_late_listener, which records when it listened.
// SPDX-License-Identifier: MIT
#include <stackup/stackup.hpp>

#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#ifndef BENCH_LATE_LISTENER_PATH
#error "BENCH_LATE_LISTENER_PATH must name the bench_late_listener program (bench/CMakeLists.txt sets it)"
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::int64_t monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// A loopback port nobody listens on now (bind to port 0, read it back, close).
std::uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  if (!ok) throw std::system_error(errno, std::generic_category(), "bind 127.0.0.1:0");
  return ntohs(a.sin_port);
}

bool port_open(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool open = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return open;
}

// The listen time the daemon wrote; it may finish writing just after the port opened.
std::int64_t read_stamp(const fs::path& file) {
  for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
    std::ifstream in(file);
    long long ns = 0;
    if (in >> ns) return ns;
    std::this_thread::sleep_for(100us);
  }
  throw std::runtime_error("bench_readiness: " + file.string() + " was never written: did bench_late_listener start?");
}

// A fresh directory under the system temp directory, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "stackup-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

void local_daemon(benchmark::State& state) {
  const long delay_ms = state.range(0);
  for (auto _ : state) {
    TempDir dir;
    const std::uint16_t port = free_port();
    const fs::path stamp = dir.path / "listening";
    stackup::LocalDaemon<"daemon"> d{{
        .name = "late_listener",
        .command = {BENCH_LATE_LISTENER_PATH, std::to_string(port), std::to_string(delay_ms), stamp.string()},
        .state_dir = dir.path / "state",
        .ready = stackup::ready::tcp(port),
        .start_timeout = 10s,
        .stop_timeout = 5s,
    }};
    d.provision();
    try {
      d.resume();
      const std::int64_t returned = monotonic_ns();
      state.SetIterationTime(static_cast<double>(returned - read_stamp(stamp)) * 1e-9);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
    d.deprovision(); // stops the daemon and removes its state directory
  }
}

// Baseline: spawn the same daemon by hand and connect() every millisecond.
void raw_poll(benchmark::State& state) {
  const long delay_ms = state.range(0);
  for (auto _ : state) {
    TempDir dir;
    const std::uint16_t port = free_port();
    const fs::path stamp = dir.path / "listening";
    std::vector<std::string> args{BENCH_LATE_LISTENER_PATH, std::to_string(port), std::to_string(delay_ms), stamp.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      state.SkipWithError("posix_spawn of bench_late_listener failed");
      break;
    }
    while (!port_open(port)) std::this_thread::sleep_for(1ms);
    const std::int64_t ready = monotonic_ns();
    state.SetIterationTime(static_cast<double>(ready - read_stamp(stamp)) * 1e-9);
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
}

} // namespace

int main(int argc, char** argv) {
  std::vector<long> delays{20, 200};
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--delays" && i + 1 < argc) {
      delays.clear();
      for (std::string_view s = argv[++i]; !s.empty();) {
        const auto comma = s.find(',');
        delays.push_back(std::atol(std::string(s.substr(0, comma)).c_str()));
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
      }
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  for (long d : delays) {
    benchmark::RegisterBenchmark("readiness/local_daemon", local_daemon)->Arg(d)->ArgName("delay_ms")
        ->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("readiness/raw_poll_1ms", raw_poll)->Arg(d)->ArgName("delay_ms")
        ->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
