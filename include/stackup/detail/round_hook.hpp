// stackup — how the engine opens a query round (detail/query_round.hpp) for a
// walk of a whole stack without putting <atomic> in every stack's includes:
// query_round.hpp, which the components that answer from a round include, sets
// the hooks; with no such component compiled in, a walk opens nothing. Not public API.
// SPDX-License-Identifier: MIT
#pragma once

namespace stackup::detail {

struct RoundHooks {
  static inline void (*open)() noexcept = nullptr;
  static inline void (*close)() noexcept = nullptr;
};

/// A query round for its lifetime: one per walk of a whole stack (status, up,
/// down, the primitives). A query of one component alone never opens one.
class WalkRound {
public:
  WalkRound() noexcept : close_(RoundHooks::close) {
    if (close_) RoundHooks::open();
  }
  ~WalkRound() {
    if (close_) close_();
  }
  WalkRound(const WalkRound&) = delete;
  WalkRound& operator=(const WalkRound&) = delete;

private:
  void (*close_)() noexcept; // read once: the round closed is the round opened
};

} // namespace stackup::detail
