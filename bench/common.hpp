// What the benchmark programs share: their own option `--sizes N,M,...`, and
// the thread CPU clock they time with.
#pragma once

#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// CPU milliseconds this thread has used: what a benchmark's work costs, not
// what the other processes of a busy machine cost it.
inline double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

// `--sizes N,M,...` (1 to 99999 each), taken out of argv before Google Benchmark reads the rest.
// Replaces `sizes` with the list after `--sizes` and removes the option from
// argc/argv. False (after saying why on stderr) for a size out of range.
inline bool take_sizes(int& argc, char** argv, std::vector<long>& sizes, const char* program) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      for (std::string_view s = argv[++i]; !s.empty();) {
        const auto comma = s.find(',');
        const long n = std::atol(std::string(s.substr(0, comma)).c_str());
        if (n < 1 || n > 99999) {
          std::fprintf(stderr, "%s: a size is 1 to 99999\n", program);
          return false;
        }
        sizes.push_back(n);
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
      }
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return true;
}

} // namespace bench
