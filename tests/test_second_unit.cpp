// A second translation unit including every header and instantiating the same
// stacks as other tests: catches ODR and missing-inline mistakes at link time.
#include "support/fake.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

TEST_CASE("second unit: same types, same functions, linked twice") {
  stackup::Stack<fake::Fake<"b", "a">, fake::Fake<"a">, fake::Fixed<"c">> s;
  s.up();
  CHECK(fmt::format("{}", s.status()[0]) == "b 'b': running");
}
