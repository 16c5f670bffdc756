// Api depends on "message_queue", which no component of the stack provides.
// EXPECT-ERROR: a component's depends_on names a role that this Stack does not hold
// EXPECT-ERROR: add a component with that role to the Stack, or remove it from depends_on
// EXPECT-ROLE: api
// EXPECT-ROLE: message_queue
// EXPECT-TYPE: Api
#include <stackup/stackup.hpp>

struct Api : stackup::StackComponent<Api> {
  static constexpr std::string_view role = "api";
  static constexpr std::string_view depends_on[] = {"message_queue"};
};
struct Cache : stackup::StackComponent<Cache> {
  static constexpr std::string_view role = "cache";
};

int main() {
  stackup::Stack<Api, Cache> stack;
  stack.up();
}
