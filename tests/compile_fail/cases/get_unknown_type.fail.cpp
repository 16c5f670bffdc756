// get<Cache>() on a stack that has no Cache.
// EXPECT-ERROR: this type is not a component of the Stack: add it to the Stack's template arguments
// EXPECT-TYPE: Cache
#include <stackup/stackup.hpp>

struct Api : stackup::StackComponent<Api> {
  static constexpr std::string_view role = "api";
};
struct Cache : stackup::StackComponent<Cache> {
  static constexpr std::string_view role = "cache";
};

int main() {
  stackup::Stack<Api> stack;
  return stack.get<Cache>().is_running() ? 0 : 1;
}
