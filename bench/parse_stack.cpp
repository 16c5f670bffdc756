// Parsing a stack file of N components into a DynamicStack (`parse_stack`), against
// parsing the same text with toml++ alone (what any TOML-reading tool pays).
//
// The generated file mixes the three shipped flavours in turn — local_directory,
// local_daemon (command, tcp probe, durations, env), command (six shell commands, a
// timeout) — with ${VAR:-default} values and dependencies on earlier components
// (the previous one, and every seventh on one halfway back). Each iteration times
// both, in CPU time of the thread, reported as counters (ms per iteration):
// `toml_ms` and `parse_ms`. Destroying the results is not timed.
//
//   bench_parse_stack [--sizes N,N,...] [google-benchmark flags]
//       (default sizes: 1000)
// SPDX-License-Identifier: MIT
#include <stackup/stack_file.hpp>

#include <benchmark/benchmark.h>

#include "common.hpp"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

/// "c00042": the role of component 42.
std::string role(std::size_t i) {
  std::string s(6, '0');
  s[0] = 'c';
  for (std::size_t k = 5; k > 0 && i > 0; --k, i /= 10) s[k] = static_cast<char>('0' + i % 10);
  return s;
}

/// The text of a stack file with n components.
std::string stack_text(std::size_t n) {
  std::string t = "version = 1\nname = \"bench\"\n";
  for (std::size_t i = 0; i < n; ++i) {
    const std::string r = role(i);
    t += "\n[components." + r + "]\n";
    switch (i % 3) {
    case 0:
      t += "flavor = \"local_directory\"\npath = \"${BENCH_DATA:-data}/" + r + "\"\n";
      break;
    case 1:
      t += "flavor = \"local_daemon\"\nname = \"daemon-" + r + "\"\n"
           "command = [\"server\", \"--port\", \"" + std::to_string(20000 + i) + "\", \"--dir\", \"data/" + r + "\"]\n"
           "ready = { tcp = " + std::to_string(20000 + i) + " }\nstart_timeout = \"10s\"\nstop_timeout = \"500ms\"\n"
           "env = { MODE = \"${BENCH_MODE:-dev}\", ID = \"" + r + "\" }\n";
      break;
    default:
      t += "flavor = \"command\"\n"
           "provision = \"mkdir -p data/" + r + "\"\nresume = \"touch data/" + r + "/on\"\n"
           "suspend = \"rm -f data/" + r + "/on\"\ndeprovision = \"rm -rf data/" + r + "\"\n"
           "is_provisioned = \"test -d data/" + r + "\"\nis_running = \"test -f data/" + r + "/on\"\n"
           "timeout = \"2m\"\n";
      break;
    }
    if (i > 0) {
      t += "depends_on = [\"" + role(i - 1) + "\"";
      if (i % 7 == 0) t += ", \"" + role(i / 2) + "\"";
      t += "]\n";
    }
  }
  return t;
}

// parse_stack reads a .env beside its origin: give it a directory of its own, empty.
std::string origin_dir;

void parse(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string text = stack_text(n);
  const std::string origin = origin_dir + "/stackup.toml";
  double toml_ms = 0, parse_ms = 0;
  for (auto _ : state) {
    const double t0 = bench::thread_cpu_ms();
    toml::table table = toml::parse(text, origin);
    benchmark::DoNotOptimize(&table);
    const double t1 = bench::thread_cpu_ms();
    stackup::DynamicStack stack = stackup::parse_stack(text, origin);
    benchmark::DoNotOptimize(&stack);
    const double t2 = bench::thread_cpu_ms();
    toml_ms += t1 - t0;
    parse_ms += t2 - t1;
    if (stack.size() != n) {
      state.SkipWithError("the stack parsed is not the one written");
      break;
    }
  }
  state.counters["toml_ms"] = benchmark::Counter(toml_ms, benchmark::Counter::kAvgIterations);
  state.counters["parse_ms"] = benchmark::Counter(parse_ms, benchmark::Counter::kAvgIterations);
  state.counters["bytes"] = static_cast<double>(text.size());
}

} // namespace

int main(int argc, char** argv) {
  std::vector<long> sizes{1000};
  if (!bench::take_sizes(argc, argv, sizes, "bench_parse_stack")) return 2;
  std::string dir_template = "/tmp/stackup-bench-parse-XXXXXX";
  if (::mkdtemp(dir_template.data()) == nullptr) return std::perror("bench_parse_stack: mkdtemp"), 1;
  origin_dir = dir_template;
  for (const long n : sizes) benchmark::RegisterBenchmark("parse_stack", parse)->Arg(n)->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  int status = benchmark::ReportUnrecognizedArguments(argc, argv) ? 2 : 0;
  if (status == 0) benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  ::rmdir(origin_dir.c_str());
  return status;
}
