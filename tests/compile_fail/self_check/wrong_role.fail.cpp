// Self-check: the right message, but the diagnostic names another role.
// HARNESS-REPORTS: role not readable in the diagnostic: neither "cache"
// EXPECT-ERROR: two components of this Stack have the same role
// EXPECT-ROLE: cache
#include <stackup/stackup.hpp>

struct Postgres : stackup::StackComponent<Postgres> {
  static constexpr std::string_view role = "database";
};
struct Mysql : stackup::StackComponent<Mysql> {
  static constexpr std::string_view role = "database";
};

int main() { stackup::Stack<Postgres, Mysql> stack; }
