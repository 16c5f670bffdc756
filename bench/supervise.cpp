// Detection latency of stackup::supervise: from a supervised LocalDaemon's death
// to the loop's `exited` event. The daemon is killed from the stack's observer as
// soon as each (re)start succeeds, so the loop runs undisturbed on one thread.
// Baseline, in the same run: a parent's waitpid() seeing its own child's SIGKILL.
//
//   bench_supervise [--kills N] [google-benchmark flags]
//
// Reports the medians as counters detection_ms and waitpid_ms.
// SPDX-License-Identifier: MIT
#include <stackup/stackup.hpp>
#include <stackup/supervise.hpp>

#include <benchmark/benchmark.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int kills = 21;

double median_ms(std::vector<Clock::duration> v) {
  std::sort(v.begin(), v.end());
  return std::chrono::duration<double, std::milli>(v[v.size() / 2]).count();
}

pid_t daemon_pid(const fs::path& state_dir) {
  std::ifstream in(state_dir / "pid");
  long pid = 0;
  in >> pid;
  if (pid <= 0) throw std::runtime_error("no pid in " + (state_dir / "pid").string());
  return static_cast<pid_t>(pid);
}

void detection(benchmark::State& state) {
  const fs::path dir = fs::temp_directory_path() / ("stackup-bench-supervise-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<Clock::duration> detect, wait;
  for (auto _ : state) {
    std::vector<stackup::AnyComponent> parts;
    parts.emplace_back("worker", stackup::LocalDaemon<>{{.command = {"sleep", "100000"}, .state_dir = dir / "worker",
                                                          .start_grace = 1ms}});
    stackup::DynamicStack stack{"bench", std::move(parts)};
    stack.up();
    // Stopped by the last kill's event, or after a minute whatever happens: a
    // benchmark that hangs would hold up everything after it.
    struct Token {
      std::stop_token stop;
      Clock::time_point deadline = Clock::now() + std::chrono::minutes(1);
      [[nodiscard]] bool stop_requested() const { return stop.stop_requested() || Clock::now() > deadline; }
      [[nodiscard]] bool stop_possible() const { return true; }
    };
    std::stop_source stop;
    const Token token{stop.get_token()};
    Clock::time_point killed{};
    const auto kill_it = [&] {
      killed = Clock::now();
      ::kill(daemon_pid(dir / "worker"), SIGKILL);
    };
    stack.on_event([&](const stackup::Event& e) {
      if (e.transition == stackup::Transition::resume && e.outcome == stackup::Outcome::succeeded) kill_it();
    });
    kill_it();
    stackup::supervise(stack, {.stop = &token,
                               .policies = {{"worker", {.policy = stackup::Restart::always, .backoff = 1ms, .max_backoff = 1ms}}},
                               .on_event = [&](const stackup::SupervisionEvent& e) {
                                 if (e.kind != stackup::SupervisionEvent::Kind::exited) return;
                                 detect.push_back(Clock::now() - killed);
                                 if (detect.size() == static_cast<std::size_t>(kills)) stop.request_stop();
                               }});
    stack.on_event(nullptr);
    stack.down({.force = true});
    if (detect.size() < static_cast<std::size_t>(kills)) {
      state.SkipWithError("the supervisor did not see every exit within a minute");
      break;
    }
    for (int i = 0; i < kills; ++i) {
      const pid_t child = ::fork();
      if (child == 0) {
        ::pause();
        ::_exit(0);
      }
      const auto t0 = Clock::now();
      ::kill(child, SIGKILL);
      int status = 0;
      ::waitpid(child, &status, 0);
      wait.push_back(Clock::now() - t0);
    }
  }
  fs::remove_all(dir);
  state.counters["detection_ms"] = median_ms(detect);
  state.counters["waitpid_ms"] = median_ms(wait);
}

} // namespace

int main(int argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("--kills=")) kills = std::max(1, std::atoi(argv[i] + 8));
    else argv[kept++] = argv[i];
  }
  argc = kept;
  benchmark::RegisterBenchmark("supervise/detection", detection)->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
