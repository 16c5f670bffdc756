// Construction of a DynamicStack of N components whose roles are given at run time,
// in two shapes: `independent` (no dependencies) and `chain` (component i depends on
// component i-1: one chain through the whole stack).
//
// Each iteration first builds the std::vector<AnyComponent> (what a caller pays
// anyway: role strings, dependency lists, one wrapped object each), then constructs
// the DynamicStack from it (checks, dependency plan, the engine's tables). Both are
// timed on their own, in the same iteration, in CPU time of the thread (user +
// system: a busy machine's other work is not counted), and reported as counters
// (ms per iteration): `vector_ms` and `stack_ms`. Destroying the stack is not timed.
//
//   bench_dynamic_construct [--sizes N,N,...] [google-benchmark flags]
//       (default sizes: 1000,10000)
// SPDX-License-Identifier: MIT
#include <stackup/stackup.hpp>

#include <benchmark/benchmark.h>

#include "common.hpp"

#include <time.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

/// A small component with no role of its own: the role comes with the AnyComponent.
struct Comp {
  bool provisioned = false;
  bool running = false;
  [[nodiscard]] bool is_provisioned() const { return provisioned; }
  [[nodiscard]] bool is_running() const { return running; }
  void provision() { provisioned = true; }
  void deprovision() { provisioned = false; }
  void resume() { running = true; }
  void suspend() { running = false; }
};

/// "c00042": the role of component 42 (written digit by digit, so that the
/// baseline is not inflated by a formatting library).
std::string role(std::size_t i) {
  std::string s(6, '0');
  s[0] = 'c';
  for (std::size_t k = 5; k > 0 && i > 0; --k, i /= 10) s[k] = static_cast<char>('0' + i % 10);
  return s;
}

enum class Shape { independent, chain };

/// What the caller builds: AnyComponent{"c00042", Comp{}, {"c00041"}} for a chain.
std::vector<stackup::AnyComponent> components(std::size_t n, Shape shape) {
  std::vector<stackup::AnyComponent> parts;
  parts.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (shape == Shape::chain && i > 0)
      parts.emplace_back(role(i), Comp{}, std::vector<std::string>{role(i - 1)});
    else
      parts.emplace_back(role(i), Comp{});
  }
  return parts;
}

void construct(benchmark::State& state, Shape shape) {
  const auto n = static_cast<std::size_t>(state.range(0));
  double vector_ms = 0, stack_ms = 0;
  for (auto _ : state) {
    const double t0 = bench::thread_cpu_ms();
    std::vector<stackup::AnyComponent> parts = components(n, shape);
    benchmark::DoNotOptimize(parts.data());
    const double t1 = bench::thread_cpu_ms();
    stackup::DynamicStack stack("bench", std::move(parts));
    benchmark::DoNotOptimize(&stack);
    const double t2 = bench::thread_cpu_ms();
    vector_ms += t1 - t0;
    stack_ms += t2 - t1;
    // Outside both counters: a check that the stack is the one asked for, and its destruction.
    if (stack.size() != n || (shape == Shape::chain && n > 1 && stack.order()[n - 1] != n - 1)) {
      state.SkipWithError("the stack built is not the one asked for");
      break;
    }
  }
  state.counters["vector_ms"] = benchmark::Counter(vector_ms, benchmark::Counter::kAvgIterations);
  state.counters["stack_ms"] = benchmark::Counter(stack_ms, benchmark::Counter::kAvgIterations);
}

} // namespace

int main(int argc, char** argv) {
  std::vector<long> sizes{1000, 10000};
  if (!bench::take_sizes(argc, argv, sizes, "bench_dynamic_construct")) return 2;
  for (const long n : sizes) {
    benchmark::RegisterBenchmark("construct/independent", construct, Shape::independent)->Arg(n)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("construct/chain", construct, Shape::chain)->Arg(n)->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
