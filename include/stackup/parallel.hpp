// stackup — the scheduler of parallel transitions (`.parallel = true`), kept out
// of the core headers so that a stack that does not use it does not pay for
// <thread> and <mutex>. The umbrella header <stackup/stackup.hpp> includes it.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/engine.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace stackup::detail {

/// Runs `step(i)` for every component i in scope (`scope` 0: all; else those
/// whose mark has a `scope` bit), each as soon as its prerequisites in scope have
/// finished: its dependencies, or with `reverse` its dependents. `step` must not
/// throw; it returns false to stop scheduling new steps (steps in flight still
/// finish). Threads: one per ready component, at most `max_threads` (0: no
/// limit), the calling thread included. Returns when every started step ended.
template <class Step>
void run_dag(const Table& t, std::span<const unsigned char> marks, unsigned char scope, bool reverse,
             std::size_t max_threads, Step&& step) {
  const std::size_t n = t.size();
  auto in = [&](std::size_t i) { return scope == 0 || (marks[i] & scope) != 0; };
  std::vector<std::size_t> waiting(n, 0);
  std::vector<std::vector<std::size_t>> next(n); // who waits for i
  std::size_t pending = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!in(i)) continue;
    ++pending;
    for (std::size_t e = t.first[i]; e < t.first[i + 1]; ++e) {
      const std::size_t d = t.dep[e];
      if (!in(d)) continue;
      const std::size_t before = reverse ? i : d, after = reverse ? d : i;
      next[before].push_back(after);
      ++waiting[after];
    }
  }
  std::vector<std::size_t> ready;
  for (std::size_t i = n; i-- > 0;) // reversed, so that pop_back takes the lowest index first
    if (in(i) && waiting[i] == 0) ready.push_back(i);

  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::size_t idle = 0;
  const std::size_t limit = max_threads == 0 ? n : max_threads;
  std::vector<std::jthread> threads; // declared last: joined before the state above dies
  threads.reserve(limit);

  auto work = [&](auto& self) -> void {
    std::unique_lock lock(m);
    for (;;) {
      ++idle;
      cv.wait(lock, [&] { return stop || pending == 0 || !ready.empty(); });
      --idle;
      if (stop || pending == 0) return;
      const std::size_t i = ready.back();
      ready.pop_back();
      // Everything else that is ready gets a worker now: idle ones are woken, the
      // rest started here, so a busy machine costs one scheduling delay, not one per thread.
      for (std::size_t more = ready.size(), woken = 0; more > 0; --more) {
        if (woken < idle) ++woken, cv.notify_one();
        else if (threads.size() + 1 < limit) {
          try {
            threads.emplace_back([&self] { self(self); });
          } catch (const std::system_error&) {
            break; // no more threads to be had: the running ones carry on
          }
        } else break;
      }
      lock.unlock();
      const bool ok = step(i);
      lock.lock();
      --pending;
      if (!ok) stop = true;
      else
        for (std::size_t j : next[i])
          if (--waiting[j] == 0) ready.push_back(j);
      std::sort(ready.begin(), ready.end(), std::greater<>());
      cv.notify_all();
    }
  };
  work(work);
  // Once the caller's thread saw the end (stop, or nothing pending), no worker
  // starts a thread any more; wait for the steps still in flight.
  for (auto& th : threads) th.join();
}

/// A std::mutex as the engine's Lock.
class MutexLock final : public Lock {
public:
  void lock() override { m_.lock(); }
  void unlock() override { m_.unlock(); }

private:
  std::mutex m_;
};

/// One phase in parallel: failures and events are serialised by one lock.
inline bool run_parallel_phase(const Table& t, Run& r, Phase p, unsigned char scope, std::size_t max_threads) {
  MutexLock guard;
  r.guard = &guard;
  t.events->guard = &guard;
  struct Reset {
    const Table& t;
    Run& r;
    ~Reset() { t.events->guard = nullptr, r.guard = nullptr; }
  } reset{t, r};
  // Workers carry the caller's observers in progress, so that an operation they
  // start from inside one is refused there too (the frames outlive run_dag).
  const Reporting* const caller = reporting;
  run_dag(t, r.marks, scope, reversed(p), max_threads, [&](std::size_t k) {
    if (r.stop && r.stop->stop_requested()) [[unlikely]]
      return interrupted(r, k, p, "this one and those not started yet");
    const StopScope stop_scope(r, p); // on this worker's thread
    const Reporting* const own = std::exchange(reporting, caller);
    Indirect a{t, k};
    const bool ok = step(p, a, r);
    reporting = own;
    return ok;
  });
  return !r.failed;
}

// Registers the scheduler with the engine when this header is part of the program.
inline const bool parallel_registered = (parallel_phase = &run_parallel_phase, true);

} // namespace stackup::detail
