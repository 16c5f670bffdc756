#include <stackup/stackup.hpp>
#include <doctest/doctest.h>
struct A : stackup::StackComponent<A> { static constexpr std::string_view role = "a"; };
TEST_CASE("smoke") { stackup::Stack<A> s; s.up(); CHECK(s.is_running()); }
