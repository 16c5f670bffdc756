// NoProvisionedQuery has a role and is_running() but no is_provisioned().
// EXPECT-ERROR: this Stack template argument is not a Component: it needs `bool is_provisioned() const`
// EXPECT-ERROR: derive from stackup::StackComponent<T> for the default
// EXPECT-TYPE: NoProvisionedQuery
#include <stackup/stackup.hpp>

struct NoProvisionedQuery {
  static constexpr std::string_view role = "scratch";
  bool is_running() const { return true; }
};

int main() {
  stackup::Stack<NoProvisionedQuery> stack;
  stack.up();
}
