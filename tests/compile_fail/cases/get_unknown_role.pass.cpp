// Twin of get_unknown_role.fail.cpp: the role is spelt as the stack has it.
#include <stackup/stackup.hpp>

struct Api : stackup::StackComponent<Api> {
  static constexpr std::string_view role = "api";
};

int main() {
  stackup::Stack<Api> stack;
  return stack.get<"api">().is_running() ? 0 : 1;
}
