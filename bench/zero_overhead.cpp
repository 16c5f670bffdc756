// Zero overhead: `up()` then `down({.force = true})` on stacks of 16 and 64 trivial
// components, against the same checks and calls written by hand and against a
// classic virtual-dispatch design; and the same for a DynamicStack.
//
//   bench_zero_overhead [google-benchmark flags]       ns/op of every variant
//   bench_zero_overhead --count VARIANT N ITERATIONS   the measured loop alone, for
//       valgrind --tool=callgrind --collect-atstart=no (counts only that loop)
// SPDX-License-Identifier: MIT
#include "components.hpp"

#include <benchmark/benchmark.h>
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace {

using bench::Trivial;

// ---- hand-written: the checks and calls of DESIGN §3, in the stack's order ----------

#define BENCH_SEQ16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define BENCH_SEQ64(M) BENCH_SEQ16(M) \
  M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31) \
  M(32) M(33) M(34) M(35) M(36) M(37) M(38) M(39) M(40) M(41) M(42) M(43) M(44) M(45) M(46) M(47) \
  M(48) M(49) M(50) M(51) M(52) M(53) M(54) M(55) M(56) M(57) M(58) M(59) M(60) M(61) M(62) M(63)
#define BENCH_REV16(M) M(15) M(14) M(13) M(12) M(11) M(10) M(9) M(8) M(7) M(6) M(5) M(4) M(3) M(2) M(1) M(0)
#define BENCH_REV64(M) \
  M(63) M(62) M(61) M(60) M(59) M(58) M(57) M(56) M(55) M(54) M(53) M(52) M(51) M(50) M(49) M(48) \
  M(47) M(46) M(45) M(44) M(43) M(42) M(41) M(40) M(39) M(38) M(37) M(36) M(35) M(34) M(33) M(32) \
  M(31) M(30) M(29) M(28) M(27) M(26) M(25) M(24) M(23) M(22) M(21) M(20) M(19) M(18) M(17) M(16) \
  BENCH_REV16(M)

#define BENCH_MEMBER(i) Trivial<i> c##i;
#define BENCH_PROVISION(i) if (!c##i.is_provisioned()) c##i.provision();
#define BENCH_RESUME(i)                                                    \
  if (!c##i.is_running()) {                                                \
    if (!c##i.is_provisioned()) throw std::runtime_error("c" #i " is not provisioned"); \
    c##i.resume();                                                         \
  }
#define BENCH_FORCE_DOWN(i)                 \
  if (c##i.is_running()) c##i.suspend();    \
  if (c##i.is_provisioned()) c##i.deprovision();

struct Hand16 {
  BENCH_SEQ16(BENCH_MEMBER)
  void up() { BENCH_SEQ16(BENCH_PROVISION) BENCH_SEQ16(BENCH_RESUME) }
  void down() { BENCH_REV16(BENCH_FORCE_DOWN) }
};
struct Hand64 {
  BENCH_SEQ64(BENCH_MEMBER)
  void up() { BENCH_SEQ64(BENCH_PROVISION) BENCH_SEQ64(BENCH_RESUME) }
  void down() { BENCH_REV64(BENCH_FORCE_DOWN) }
};

// ---- classic virtual dispatch ---------------------------------------------------------

struct Base {
  virtual ~Base() = default;
  [[nodiscard]] virtual bool is_provisioned() const = 0;
  [[nodiscard]] virtual bool is_running() const = 0;
  virtual void provision() = 0;
  virtual void deprovision() = 0;
  virtual void resume() = 0;
  virtual void suspend() = 0;
};
template <class C> struct Virtual final : Base {
  C c;
  [[nodiscard]] bool is_provisioned() const override { return c.is_provisioned(); }
  [[nodiscard]] bool is_running() const override { return c.is_running(); }
  void provision() override { c.provision(); }
  void deprovision() override { c.deprovision(); }
  void resume() override { c.resume(); }
  void suspend() override { c.suspend(); }
};
template <std::size_t N> struct VirtualStack {
  std::vector<std::unique_ptr<Base>> cs;
  VirtualStack() {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (cs.push_back(std::make_unique<Virtual<Trivial<I>>>()), ...);
    }(std::make_index_sequence<N>{});
  }
  void up() {
    for (auto& c : cs)
      if (!c->is_provisioned()) c->provision();
    for (auto& c : cs)
      if (!c->is_running()) {
        if (!c->is_provisioned()) throw std::runtime_error("component is not provisioned");
        c->resume();
      }
  }
  void down() {
    for (auto it = cs.rbegin(); it != cs.rend(); ++it) {
      if ((*it)->is_running()) (*it)->suspend();
      if ((*it)->is_provisioned()) (*it)->deprovision();
    }
  }
};

// ---- stackup ----------------------------------------------------------------------------

template <std::size_t N> struct StackupStack {
  bench::TrivialStack<N> s;
  void up() { s.up(); }
  void down() { s.down({.force = true}); }
};

// A run-time stack of the same components, each wrapped in an AnyComponent.
template <std::size_t N> struct DynamicStackup {
  stackup::DynamicStack s{"bench", [] {
                            std::vector<stackup::AnyComponent> parts;
                            [&]<std::size_t... I>(std::index_sequence<I...>) {
                              (parts.emplace_back(Trivial<I>{}), ...);
                            }(std::make_index_sequence<N>{});
                            return parts;
                          }()};
  void up() { s.up(); }
  void down() { s.down({.force = true}); }
};

// One operation: up, then force down. ClobberMemory after each makes the compiler
// store every flag and reload it, as it must when the components are real.
template <class S> inline void cycle(S& s) {
  s.up();
  benchmark::ClobberMemory();
  s.down();
  benchmark::ClobberMemory();
}

template <class S> void run(benchmark::State& state) {
  S s;
  benchmark::DoNotOptimize(&s);
  for (auto _ : state) cycle(s);
}

BENCHMARK(run<Hand16>)->Name("zero_overhead/hand/16");
BENCHMARK(run<StackupStack<16>>)->Name("zero_overhead/stackup/16");
BENCHMARK(run<VirtualStack<16>>)->Name("zero_overhead/virtual/16");
BENCHMARK(run<DynamicStackup<16>>)->Name("zero_overhead/dynamic/16");
BENCHMARK(run<Hand64>)->Name("zero_overhead/hand/64");
BENCHMARK(run<StackupStack<64>>)->Name("zero_overhead/stackup/64");
BENCHMARK(run<VirtualStack<64>>)->Name("zero_overhead/virtual/64");
BENCHMARK(run<DynamicStackup<64>>)->Name("zero_overhead/dynamic/64");

// The measured loop alone, collected by callgrind only between the two toggles.
template <class S> [[gnu::noinline]] void count(long iterations) {
  S s;
  benchmark::DoNotOptimize(&s);
  cycle(s); // warm-up outside the measured region (first-touch, lazy binding)
  CALLGRIND_TOGGLE_COLLECT;
  for (long i = 0; i < iterations; ++i) cycle(s);
  CALLGRIND_TOGGLE_COLLECT;
}

int count_main(std::string_view variant, std::string_view n, long iterations) {
  const bool small = n == "16";
  if (!small && n != "64") return std::fprintf(stderr, "bench_zero_overhead: N must be 16 or 64, not %.*s\n", int(n.size()), n.data()), 2;
  if (variant == "hand") small ? count<Hand16>(iterations) : count<Hand64>(iterations);
  else if (variant == "stackup") small ? count<StackupStack<16>>(iterations) : count<StackupStack<64>>(iterations);
  else if (variant == "virtual") small ? count<VirtualStack<16>>(iterations) : count<VirtualStack<64>>(iterations);
  else if (variant == "dynamic") small ? count<DynamicStackup<16>>(iterations) : count<DynamicStackup<64>>(iterations);
  else return std::fprintf(stderr, "bench_zero_overhead: VARIANT must be hand, stackup, virtual or dynamic\n"), 2;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--count") {
    if (argc != 5) return std::fprintf(stderr, "usage: bench_zero_overhead --count hand|stackup|virtual|dynamic 16|64 ITERATIONS\n"), 2;
    return count_main(argv[2], argv[3], std::atol(argv[4]));
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
