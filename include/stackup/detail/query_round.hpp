// stackup — a query round: while a stack operation walks its components (a
// status, an up, a down), components driven by one engine (containers, cluster
// objects) may answer their queries from one engine call for the whole stack
// instead of one call each. Outside a round every query asks afresh, so a
// supervisor polling one component never reads a stale answer. Not public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/round_hook.hpp>

#include <atomic>
#include <cstdint>

namespace stackup::detail {

struct QueryRounds {
  static inline std::atomic<std::uint64_t> number{0}; // the latest round opened
  static inline std::atomic<unsigned> open{0};        // rounds open now (operations may nest)
};

/// Opens a round for its lifetime. The engine opens one per walk of a stack;
/// a component that changes what the engine would answer (it creates, starts,
/// stops or removes something) forgets its cached answer itself.
class QueryRound {
public:
  QueryRound() noexcept {
    QueryRounds::number.fetch_add(1, std::memory_order_relaxed);
    QueryRounds::open.fetch_add(1, std::memory_order_relaxed);
  }
  ~QueryRound() { QueryRounds::open.fetch_sub(1, std::memory_order_relaxed); }
  QueryRound(const QueryRound&) = delete;
  QueryRound& operator=(const QueryRound&) = delete;
};

/// The round a cached answer may belong to, or 0 when none is open (then
/// nothing may be answered from a cache).
inline std::uint64_t current_query_round() noexcept {
  return QueryRounds::open.load(std::memory_order_relaxed) == 0 ? 0
                                                                : QueryRounds::number.load(std::memory_order_relaxed);
}

// The engine opens its rounds through RoundHooks (detail/round_hook.hpp), set
// here, in any program that compiles a component reading current_query_round().
inline void open_query_round() noexcept {
  QueryRounds::number.fetch_add(1, std::memory_order_relaxed);
  QueryRounds::open.fetch_add(1, std::memory_order_relaxed);
}
inline void close_query_round() noexcept { QueryRounds::open.fetch_sub(1, std::memory_order_relaxed); }
inline const bool query_rounds_hooked = (RoundHooks::open = &open_query_round, RoundHooks::close = &close_query_round, true);

} // namespace stackup::detail
