// Twin of duplicate_role.fail.cpp: the second database has a role of its own.
#include <stackup/stackup.hpp>

struct Postgres : stackup::StackComponent<Postgres> {
  static constexpr std::string_view role = "database";
};
struct Mysql : stackup::StackComponent<Mysql> {
  static constexpr std::string_view role = "legacy_database";
};

int main() {
  stackup::Stack<Postgres, Mysql> stack;
  stack.up();
}
