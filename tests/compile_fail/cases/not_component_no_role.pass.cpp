// Twin of not_component_no_role.fail.cpp: with a role it is a Component,
// even without deriving from StackComponent.
#include <stackup/stackup.hpp>

struct NoRole {
  static constexpr std::string_view role = "scratch";
  bool is_provisioned() const { return true; }
  bool is_running() const { return true; }
};
static_assert(stackup::Component<NoRole>);

int main() {
  stackup::Stack<NoRole> stack;
  stack.up();
}
