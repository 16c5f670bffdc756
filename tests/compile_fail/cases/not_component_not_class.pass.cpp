// Twin of not_component_not_class.fail.cpp: the int is wrapped in a component.
#include <stackup/stackup.hpp>

struct Counter : stackup::StackComponent<Counter> {
  static constexpr std::string_view role = "counter";
  int value = 0;
};

int main() {
  stackup::Stack<Counter> stack;
  stack.up();
}
