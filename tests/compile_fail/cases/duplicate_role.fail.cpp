// Two components claim the role "database": a stack holds one component per role.
// EXPECT-ERROR: two components of this Stack have the same role
// EXPECT-ERROR: remove one of them or give it another `role`
// EXPECT-ROLE: database
// EXPECT-TYPE: Postgres
// EXPECT-TYPE: Mysql
#include <stackup/stackup.hpp>

struct Postgres : stackup::StackComponent<Postgres> {
  static constexpr std::string_view role = "database";
};
struct Mysql : stackup::StackComponent<Mysql> {
  static constexpr std::string_view role = "database";
};

int main() {
  stackup::Stack<Postgres, Mysql> stack;
  stack.up();
}
