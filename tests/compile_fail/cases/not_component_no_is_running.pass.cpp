// Twin of not_component_no_is_running.fail.cpp: the defaults come from the CRTP base.
#include <stackup/stackup.hpp>

struct NoRunningQuery : stackup::StackComponent<NoRunningQuery> {
  static constexpr std::string_view role = "scratch";
  bool is_provisioned() const { return true; }
};

int main() {
  stackup::Stack<NoRunningQuery> stack;
  stack.up();
}
