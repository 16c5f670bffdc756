// get<"cache">() on a stack whose only role is "api".
// EXPECT-ERROR: the Stack has no component with this role: check the spelling or add the component
// EXPECT-ROLE: cache
#include <stackup/stackup.hpp>

struct Api : stackup::StackComponent<Api> {
  static constexpr std::string_view role = "api";
};

int main() {
  stackup::Stack<Api> stack;
  return stack.get<"cache">().is_running() ? 0 : 1;
}
