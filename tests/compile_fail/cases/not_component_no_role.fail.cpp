// NoRole has the two queries but no `role`, so it is not a Component.
// EXPECT-ERROR: this Stack template argument is not a Component: it needs `static constexpr std::string_view role
// EXPECT-TYPE: NoRole
#include <stackup/stackup.hpp>

struct NoRole {
  bool is_provisioned() const { return true; }
  bool is_running() const { return true; }
};

int main() {
  stackup::Stack<NoRole> stack;
  stack.up();
}
