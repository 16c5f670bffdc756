// stackup — the dependency plan of a stack (internal): checks and action order,
// one algorithm for compile time (Stack<Cs...>) and run time (DynamicStack).
// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

namespace stackup::detail {

/// Why a stack cannot exist.
enum class PlanError : unsigned char { none, empty_role, duplicate, missing, cycle };

/// The first problem of a stack, in listing order: `empty_role` a; `duplicate`
/// components a < b; `missing` entry b of a's depends_on; `cycle` a lies on one.
struct PlanProblem {
  PlanError error = PlanError::none;
  std::size_t a = 0, b = 0;
};

/// Working memory of compute_plan, given by the caller (arrays at compile time,
/// vectors at run time): n = components, e = dependency entries.
struct PlanScratch {
  std::span<std::size_t> sorted;      // n: indices sorted by role
  std::span<std::size_t> waiting;     // n: unplaced dependencies; after a cycle, > 0 exactly for unplaced ones
  std::span<std::size_t> next_first;  // n + 1: dependents of i: next[next_first[i] .. next_first[i+1])
  std::span<std::size_t> next;        // e
  std::span<std::size_t> heap;        // n: ready components, lowest index first
};

// Binary heaps of indices, written here because <algorithm> (with C++20's ranges
// algorithms) would cost every includer of the core more than the rest of the plan.
// `before(x, y)`: x sinks below y (a max-heap for `<`).
template <class Before> constexpr void sift_down(std::span<std::size_t> h, std::size_t i, std::size_t n, Before before) {
  for (std::size_t c = 2 * i + 1; c < n; i = c, c = 2 * i + 1) {
    if (c + 1 < n && before(h[c], h[c + 1])) ++c;
    if (!before(h[i], h[c])) return;
    std::swap(h[i], h[c]);
  }
}
template <class Before> constexpr void sift_up(std::span<std::size_t> h, std::size_t i, Before before) {
  for (std::size_t parent = (i - 1) / 2; i > 0 && before(h[parent], h[i]); i = parent, parent = (i - 1) / 2)
    std::swap(h[i], h[parent]);
}
/// Sorts by a strict total order (heap sort: O(N log N), usable in constant expressions).
template <class Less> constexpr void heap_sort(std::span<std::size_t> v, Less less) {
  const std::size_t n = v.size();
  for (std::size_t i = n / 2; i-- > 0;) sift_down(v, i, n, less);
  for (std::size_t end = n; end-- > 1;) {
    std::swap(v[0], v[end]);
    sift_down(v, 0, end, less);
  }
}

/// After compute_plan found a cycle: the next component on it after `at`.
constexpr std::size_t cycle_next(std::size_t at, std::span<const std::size_t> first, std::span<const std::size_t> dep,
                                 const PlanScratch& s) {
  for (std::size_t e = first[at]; e < first[at + 1]; ++e)
    if (s.waiting[dep[e]] != 0) return dep[e];
  return at; // not reached: an unplaced component has an unplaced dependency
}

/// Checks a stack and computes its action order: topological by `depends_on`,
/// ties by listing order (the lowest index whose dependencies are placed goes
/// next). `first`/`names`: the dependency names of i are names[first[i] ..
/// first[i+1]). Writes `dep` (names resolved to indices) and `order`.
/// O(N log N + E log N) comparisons of roles; usable in constant expressions.
constexpr PlanProblem compute_plan(std::span<const std::string_view> roles, std::span<const std::size_t> first,
                                   std::span<const std::string_view> names, std::span<std::size_t> dep,
                                   std::span<std::size_t> order, PlanScratch s) {
  const std::size_t n = roles.size();
  for (std::size_t i = 0; i < n; ++i)
    if (roles[i].empty()) return {PlanError::empty_role, i, 0};

  for (std::size_t i = 0; i < n; ++i) s.sorted[i] = i;
  heap_sort(s.sorted, [&](std::size_t x, std::size_t y) { return roles[x] != roles[y] ? roles[x] < roles[y] : x < y; });
  // Equal roles are adjacent, lowest index first: report the pair whose first index is lowest.
  PlanProblem dup{PlanError::none, n, n};
  for (std::size_t j = 0; j + 1 < n; ++j)
    if (roles[s.sorted[j]] == roles[s.sorted[j + 1]] && (j == 0 || roles[s.sorted[j - 1]] != roles[s.sorted[j]]) &&
        s.sorted[j] < dup.a)
      dup = {PlanError::duplicate, s.sorted[j], s.sorted[j + 1]};
  if (dup.error != PlanError::none) return dup;

  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) {
      std::size_t lo = 0, hi = n; // binary search: the first role not below names[e]
      while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (roles[s.sorted[mid]] < names[e]) lo = mid + 1;
        else hi = mid;
      }
      if (lo == n || roles[s.sorted[lo]] != names[e]) return {PlanError::missing, i, e - first[i]};
      dep[e] = s.sorted[lo];
    }

  // Kahn's algorithm with a min-heap of ready indices.
  for (std::size_t i = 0; i <= n; ++i) s.next_first[i] = 0;
  for (std::size_t i = 0; i < n; ++i) {
    s.waiting[i] = first[i + 1] - first[i];
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) ++s.next_first[dep[e] + 1];
  }
  for (std::size_t i = 0; i < n; ++i) s.next_first[i + 1] += s.next_first[i];
  for (std::size_t i = 0; i < n; ++i) s.heap[i] = s.next_first[i]; // fill positions
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t e = first[i]; e < first[i + 1]; ++e) s.next[s.heap[dep[e]]++] = i;
  std::size_t ready = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (s.waiting[i] == 0) s.heap[ready++] = i; // ascending: already a min-heap
  const auto later = [](std::size_t x, std::size_t y) { return x > y; }; // a min-heap: lowest index on top
  std::size_t placed = 0;
  while (ready > 0) {
    const std::size_t i = s.heap[0];
    s.heap[0] = s.heap[--ready];
    sift_down(s.heap, 0, ready, later);
    order[placed++] = i;
    for (std::size_t x = s.next_first[i]; x < s.next_first[i + 1]; ++x)
      if (--s.waiting[s.next[x]] == 0) {
        s.heap[ready] = s.next[x];
        sift_up(s.heap, ready++, later);
      }
  }
  if (placed == n) return {};
  // Every unplaced component waits for an unplaced one: n steps along unplaced
  // dependencies from the first of them end on a cycle.
  std::size_t at = 0;
  while (s.waiting[at] == 0) ++at;
  for (std::size_t step = 0; step < n; ++step) at = cycle_next(at, first, dep, s);
  return {PlanError::cycle, at, 0};
}

// The marking rules of up_one and down_one, which StackView's plans also follow
// (on marks of their own, of any unsigned type); `marks` has one per component.

/// Marks (bit `bit` of `marks`) component k and everything it needs, transitively.
template <class Mark>
void mark_closure(std::size_t k, std::span<const std::size_t> order, std::span<const std::size_t> first,
                  std::span<const std::size_t> dep, Mark* marks, Mark bit) {
  marks[k] |= bit;
  for (std::size_t n = order.size(); n-- > 0;) {
    const std::size_t i = order[n];
    if (marks[i] & bit)
      for (std::size_t e = first[i]; e < first[i + 1]; ++e) marks[dep[e]] |= bit;
  }
}

/// Marks (bit `bit` of `marks`) every component that needs k, transitively (k excluded).
template <class Mark>
void mark_dependents(std::size_t k, std::span<const std::size_t> order, std::span<const std::size_t> first,
                     std::span<const std::size_t> dep, Mark* marks, Mark bit) {
  for (const std::size_t i : order)
    for (std::size_t e = first[i]; e < first[i + 1]; ++e)
      if (dep[e] == k || (marks[dep[e]] & bit)) {
        marks[i] |= bit;
        break;
      }
}

} // namespace stackup::detail
