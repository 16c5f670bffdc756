// stackup benchmarks — generated component types shared by the benchmark programs.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/stackup.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <string_view>
#include <thread>
#include <utility>

namespace bench {

/// "c000", "c001", ...: a distinct role per index, as a constant the stack can use.
template <std::size_t I> struct RoleName {
  static constexpr char value[] = {'c', char('0' + I / 100 % 10), char('0' + I / 10 % 10), char('0' + I % 10), '\0'};
};

/// The smallest stateful component: two flags and the four actions. Every
/// instantiation is its own type, as the components of a real stack are.
template <std::size_t I> struct Trivial : stackup::StackComponent<Trivial<I>> {
  static constexpr std::string_view role{RoleName<I>::value};
  bool provisioned = false;
  bool running = false;
  [[nodiscard]] bool is_provisioned() const { return provisioned; }
  [[nodiscard]] bool is_running() const { return running; }
  void provision() { provisioned = true; }
  void deprovision() { provisioned = false; }
  void resume() { running = true; }
  void suspend() { running = false; }
};

/// `Stack<Trivial<0>, ..., Trivial<N-1>>`.
template <std::size_t... I> stackup::Stack<Trivial<I>...> trivial_stack(std::index_sequence<I...>);
template <std::size_t N> using TrivialStack = decltype(trivial_stack(std::make_index_sequence<N>{}));

/// How long a Sleeper's provision takes (set once by main, before any stack runs).
inline std::chrono::microseconds provision_delay{std::chrono::milliseconds(50)};

template <std::size_t First, std::size_t... K>
constexpr std::array<std::string_view, sizeof...(K)> roles_from(std::index_sequence<K...>) {
  return {std::string_view(RoleName<First + K>::value)...};
}

/// A component whose provision sleeps `provision_delay`. Components come in
/// levels of `PerLevel`; each depends on every component of the level before,
/// so the critical path is (number of levels) × delay.
template <std::size_t I, std::size_t PerLevel> struct Sleeper : stackup::StackComponent<Sleeper<I, PerLevel>> {
  static constexpr std::string_view role{RoleName<I>::value};
  static constexpr auto depends_on =
      roles_from<(I >= PerLevel ? I / PerLevel * PerLevel - PerLevel : 0)>(std::make_index_sequence<(I >= PerLevel ? PerLevel : 0)>{});
  bool provisioned = false;
  bool running = false;
  [[nodiscard]] bool is_provisioned() const { return provisioned; }
  [[nodiscard]] bool is_running() const { return running; }
  void provision() {
    std::this_thread::sleep_for(provision_delay);
    provisioned = true;
  }
  void deprovision() { provisioned = false; }
  void resume() { running = true; }
  void suspend() { running = false; }
};

template <std::size_t PerLevel, std::size_t... I> stackup::Stack<Sleeper<I, PerLevel>...> sleeper_stack(std::index_sequence<I...>);
/// N sleepers in levels of PerLevel (PerLevel == N: all independent).
template <std::size_t N, std::size_t PerLevel>
using SleeperStack = decltype(sleeper_stack<PerLevel>(std::make_index_sequence<N>{}));

} // namespace bench
