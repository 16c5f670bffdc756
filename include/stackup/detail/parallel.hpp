// stackup — the scheduler of parallel transitions (internal).
// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

namespace stackup::detail {

/// Runs `step(i)` for every component i with `mask[i]`, each as soon as its
/// prerequisites among the masked ones have finished: its dependencies, or with
/// `reverse` its dependents. `first`/`dep` are the dependency lists (Plan::Result).
/// `step` must not throw; it returns false to stop scheduling new steps (steps in
/// flight still finish). Threads: one per ready component, at most `max_threads`
/// (0: no limit), the calling thread included. Returns when every started step ended.
template <class Step>
void run_dag(std::span<const bool> mask, std::span<const std::size_t> first, std::span<const std::size_t> dep,
             bool reverse, std::size_t max_threads, Step&& step) {
  const std::size_t n = mask.size();
  std::vector<std::size_t> waiting(n, 0);
  std::vector<std::vector<std::size_t>> next(n); // who waits for i
  std::size_t pending = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!mask[i]) continue;
    ++pending;
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) {
      const std::size_t d = dep[e];
      if (!mask[d]) continue;
      const std::size_t before = reverse ? i : d, after = reverse ? d : i;
      next[before].push_back(after);
      ++waiting[after];
    }
  }
  std::vector<std::size_t> ready;
  for (std::size_t i = n; i-- > 0;) // reversed, so that pop_back takes the lowest index first
    if (mask[i] && waiting[i] == 0) ready.push_back(i);

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
  for (auto& t : threads) t.join();
}

} // namespace stackup::detail
