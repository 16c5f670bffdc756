// The error types: hierarchy, TransitionError's cause, throw_transition_error.
#include "support/fake.hpp"

#include <doctest/doctest.h>

TEST_CASE("errors: every error is a stackup::Error and a std::runtime_error") {
  static_assert(std::is_base_of_v<std::runtime_error, stackup::Error>);
  static_assert(std::is_base_of_v<stackup::Error, stackup::NotImplementedError>);
  static_assert(std::is_base_of_v<stackup::Error, stackup::ProvisioningError>);
  static_assert(std::is_base_of_v<stackup::Error, stackup::UnknownComponentError>);
  static_assert(std::is_base_of_v<stackup::Error, stackup::TransitionError>);
  static_assert(std::is_base_of_v<std::nested_exception, stackup::TransitionError>);
  CHECK(std::string(stackup::Error("x").what()) == "x");
}

TEST_CASE("errors: throw_transition_error always carries a cause") {
  try {
    stackup::throw_transition_error("orchestrator", stackup::Transition::resume, "daemon exited with status 3");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "orchestrator");
    CHECK(e.transition() == stackup::Transition::resume);
    CHECK(std::string(e.what()) == "daemon exited with status 3");
    REQUIRE(e.cause() != nullptr);
    CHECK_THROWS_WITH_AS(std::rethrow_if_nested(e), "daemon exited with status 3", stackup::Error);
  }
}

TEST_CASE("errors: a TransitionError built in a catch nests the exception being handled") {
  try {
    try {
      throw std::out_of_range("inner");
    } catch (...) {
      throw stackup::TransitionError("a", stackup::Transition::provision, "outer");
    }
  } catch (const stackup::TransitionError& e) {
    CHECK(e.failures().empty());
    CHECK_THROWS_WITH_AS(std::rethrow_exception(e.cause()), "inner", std::out_of_range);
  }
}
