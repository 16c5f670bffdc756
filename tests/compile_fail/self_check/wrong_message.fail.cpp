// Self-check: a real compile error, but the expected text is wrong.
// HARNESS-REPORTS: expected diagnostic text not found: this sentence is in no stackup diagnostic
// EXPECT-ERROR: this sentence is in no stackup diagnostic
#include <stackup/stackup.hpp>

struct Postgres : stackup::StackComponent<Postgres> {
  static constexpr std::string_view role = "database";
};
struct Mysql : stackup::StackComponent<Mysql> {
  static constexpr std::string_view role = "database";
};

int main() { stackup::Stack<Postgres, Mysql> stack; }
