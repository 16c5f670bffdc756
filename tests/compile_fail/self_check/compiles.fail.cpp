// Self-check: a "failing" case that compiles must be reported.
// HARNESS-REPORTS: compiled, but it was expected to fail
// EXPECT-ERROR: two components of this Stack have the same role
#include <stackup/stackup.hpp>

struct Postgres : stackup::StackComponent<Postgres> {
  static constexpr std::string_view role = "database";
};

int main() { stackup::Stack<Postgres> stack; }
