// Twin of not_component_no_is_provisioned.fail.cpp: the query is added.
#include <stackup/stackup.hpp>

struct NoProvisionedQuery {
  static constexpr std::string_view role = "scratch";
  bool is_provisioned() const { return true; }
  bool is_running() const { return true; }
};

int main() {
  stackup::Stack<NoProvisionedQuery> stack;
  stack.up();
}
