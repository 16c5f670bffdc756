// What the tests check of an error: its message, and a part of it.
#pragma once

#include <stackup/stackup.hpp>

#include <string>
#include <string_view>

namespace messages {

// The message of the stackup::Error that `f` throws; "" when it throws nothing.
// (Any other exception goes on to the test, which fails with it.)
template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const stackup::Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

} // namespace messages
