// Twin of missing_dependency.fail.cpp: the stack now holds the message queue.
#include <stackup/stackup.hpp>

struct Api : stackup::StackComponent<Api> {
  static constexpr std::string_view role = "api";
  static constexpr std::string_view depends_on[] = {"message_queue"};
};
struct Cache : stackup::StackComponent<Cache> {
  static constexpr std::string_view role = "cache";
};
struct Queue : stackup::StackComponent<Queue> {
  static constexpr std::string_view role = "message_queue";
};

int main() {
  stackup::Stack<Api, Cache, Queue> stack;
  stack.up();
}
