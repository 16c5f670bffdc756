// NoRunningQuery has a role and is_provisioned() but no is_running().
// EXPECT-ERROR: this Stack template argument is not a Component: it needs `bool is_running() const`
// EXPECT-ERROR: derive from stackup::StackComponent<T> for the default
// EXPECT-TYPE: NoRunningQuery
#include <stackup/stackup.hpp>

struct NoRunningQuery {
  static constexpr std::string_view role = "scratch";
  bool is_provisioned() const { return true; }
};

int main() {
  stackup::Stack<NoRunningQuery> stack;
  stack.up();
}
