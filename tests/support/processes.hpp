// The processes a test starts, seen independently of the library (through
// /proc): whether one is alive, which ones carry a tag in their command line,
// a scratch directory that kills those tagged with its path, and processes
// released to race at the same moment.
#pragma once

#include "files.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace processes {

// Fields 3 (state), 5 (process group), 6 (session) and 22 (start time) of /proc/<pid>/stat.
struct Stat {
  char state = '?';
  long pgrp = 0;
  long session = 0;
  unsigned long long start = 0;
};
inline std::optional<Stat> stat_of(pid_t pid) {
  const auto text = files::slurp("/proc/" + std::to_string(pid) + "/stat");
  // Empty when the process ended between the open and the read.
  const auto paren = text ? text->rfind(')') : std::string::npos;
  if (paren == std::string::npos || paren + 2 >= text->size()) return std::nullopt;
  std::istringstream in(text->substr(paren + 2));
  Stat s;
  std::string skip;
  in >> s.state >> skip >> s.pgrp >> s.session;
  for (int field = 7; field < 22; ++field) in >> skip;
  in >> s.start;
  return s;
}

// Alive and not a zombie (a zombie holds no port and runs nothing).
inline bool alive(pid_t pid) {
  const auto s = stat_of(pid);
  return s && s->state != 'Z' && s->state != 'X';
}

// Live processes whose command line contains `tag`, in increasing pid order.
inline std::vector<pid_t> tagged(const std::string& tag) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc{}) continue;
    const auto cmdline = files::slurp(entry.path() / "cmdline");
    if (cmdline && cmdline->find(tag) != std::string::npos && pid != ::getpid() && alive(pid)) out.push_back(pid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A TempDir whose path tags the processes a test starts (in their command
// line): on destruction they are killed, and this process's ended children
// reaped, before the directory is removed; so no process outlives a test, even
// a failing one.
struct Scratch : files::TempDir {
  using TempDir::TempDir;
  ~Scratch() {
    using namespace std::chrono_literals;
    for (int round = 0; round < 200; ++round) {
      const auto pids = tagged(path.string());
      if (pids.empty()) break;
      for (pid_t p : pids) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, WNOHANG);
      }
      std::this_thread::sleep_for(5ms);
    }
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Polls `done` for up to `limit` (a ceiling for a slow machine, not a timing assertion).
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Runs `child(i, go)` for i = 0 .. n-1, each in a forked process, and releases
// them all at the same moment: a child prepares what it needs, calls go()
// (which blocks on a pipe until the parent closes it), acts, and returns its
// exit status; one that throws exits 1. Then waits for each one and checks
// that it exited 0.
template <class F> void race(int n, F&& child) {
  int barrier[2];
  REQUIRE(::pipe(barrier) == 0);
  std::vector<pid_t> racers;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(barrier[1]);
      const auto go = [&barrier] {
        char c = 0;
        [[maybe_unused]] const ssize_t got = ::read(barrier[0], &c, 1); // returns when the parent closes it
      };
      int code = 1;
      try {
        code = child(i, go);
      } catch (...) {
      }
      ::_exit(code);
    }
    racers.push_back(pid);
  }
  ::close(barrier[0]);
  ::close(barrier[1]); // go
  for (pid_t r : racers) {
    int status = 0;
    REQUIRE(::waitpid(r, &status, 0) == r);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}

} // namespace processes
