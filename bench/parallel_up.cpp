// Parallel bring-up: wall time of `up()` on components whose provision takes a
// fixed delay, parallel against sequential and against the critical path.
//
//   bench_parallel_up [--delay-ms MS] [--iterations N] [google-benchmark flags]
//
// Counter `critical_path_s` is the lower bound (levels × delay) for bench/run's ratios.
// SPDX-License-Identifier: MIT
#include "components.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using Clock = std::chrono::steady_clock;

// Each iteration starts from nothing provisioned; only `up` is timed.
template <class S> void bring_up(benchmark::State& state, bool parallel, std::size_t levels) {
  S s;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    s.up(stackup::UpOptions{.rollback = true, .parallel = parallel});
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!s.is_running()) state.SkipWithError("stack is not running after up()");
    s.down({.force = true});
  }
  state.counters["critical_path_s"] =
      std::chrono::duration<double>(bench::provision_delay).count() * static_cast<double>(levels);
}

void register_all(long iterations) {
  auto reg = [&](const char* name, auto fn) {
    benchmark::RegisterBenchmark(name, fn)->UseManualTime()->Iterations(iterations)->Unit(benchmark::kMillisecond);
  };
  using Flat = bench::SleeperStack<16, 16>;    // 16 independent components
  using Layered = bench::SleeperStack<16, 4>;  // 4 levels of 4, each needing the whole level before
  reg("parallel_up/flat16/parallel", [](benchmark::State& st) { bring_up<Flat>(st, true, 1); });
  reg("parallel_up/flat16/sequential", [](benchmark::State& st) { bring_up<Flat>(st, false, 1); });
  reg("parallel_up/chain4x4/parallel", [](benchmark::State& st) { bring_up<Layered>(st, true, 4); });
  reg("parallel_up/chain4x4/sequential", [](benchmark::State& st) { bring_up<Layered>(st, false, 4); });
}

} // namespace

int main(int argc, char** argv) {
  long iterations = 3;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if ((a == "--delay-ms" || a == "--iterations") && i + 1 < argc) {
      const long v = std::atol(argv[++i]);
      if (v <= 0) return std::fprintf(stderr, "bench_parallel_up: %s needs a positive number\n", a.data()), 2;
      if (a == "--delay-ms") bench::provision_delay = std::chrono::milliseconds(v);
      else iterations = v;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  register_all(iterations);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
