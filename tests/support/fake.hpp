// A stateful in-memory component for the core tests: records every call, and can be
// told to fail (or to report "not implemented" at run time) on a given action.
#pragma once

#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fake {

using Log = std::vector<std::string>;

template <stackup::FixedString R, stackup::FixedString... Deps>
struct Fake : stackup::StackComponent<Fake<R, Deps...>> {
  static constexpr std::string_view role = R;
  static constexpr std::array<std::string_view, sizeof...(Deps)> depends_on{std::string_view(Deps)...};

  bool provisioned = false;
  bool running = false;
  Log* log = nullptr;                          // where calls are recorded, if set
  std::optional<stackup::Transition> fail;     // throw std::runtime_error on this action
  std::optional<stackup::Transition> decline;  // throw NotImplementedError on this action

  bool is_provisioned() const { return provisioned; }
  bool is_running() const { return running; }
  void provision() { act(stackup::Transition::provision), provisioned = true; }
  void resume() { act(stackup::Transition::resume), running = true; }
  void suspend() { act(stackup::Transition::suspend), running = false; }
  void deprovision() { act(stackup::Transition::deprovision), running = false, provisioned = false; }

private:
  void act(stackup::Transition t) {
    if (log) log->push_back(std::string(stackup::to_string(t)) + " " + std::string(role));
    if (fail == t) throw std::runtime_error(std::string(role) + ": " + std::string(stackup::to_string(t)) + " exploded");
    if (decline == t) throw stackup::NotImplementedError(std::string(role) + ": not configured");
  }
};

/// Always provisioned, always running, no actions: ZenML's default component.
template <stackup::FixedString R> struct Fixed : stackup::StackComponent<Fixed<R>> {
  static constexpr std::string_view role = R;
};

/// Provisionable and resumable, but cannot suspend or deprovision.
template <stackup::FixedString R> struct OneWay : stackup::StackComponent<OneWay<R>> {
  static constexpr std::string_view role = R;
  bool provisioned = false, running = false;
  bool is_provisioned() const { return provisioned; }
  bool is_running() const { return running; }
  void provision() { provisioned = true; }
  void resume() { running = true; }
};

/// Collects events as compact strings: "resume a started", "resume a succeeded", ...
struct Recorder {
  std::vector<std::string> lines;
  std::vector<stackup::Event> events;
  stackup::Observer observer() {
    return [this](const stackup::Event& e) {
      lines.push_back(std::string(stackup::to_string(e.transition)) + " " + std::string(e.role) + " " +
                      std::string(stackup::to_string(e.outcome)));
      events.push_back(e);
    };
  }
};

} // namespace fake

namespace doctest {
template <> struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    std::string s = "{";
    for (const auto& x : v) s += (s.size() > 1 ? ", \"" : "\"") + x + "\"";
    return (s + "}").c_str();
  }
};
} // namespace doctest
