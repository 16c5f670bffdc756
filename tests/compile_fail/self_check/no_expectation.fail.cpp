// Self-check: a failing case that states no expected text is refused,
// since it would pass whatever the compiler reported.
// HARNESS-REPORTS: needs at least one `// EXPECT-ERROR: <text>` line
#include <stackup/stackup.hpp>

int main() { stackup::Stack<int> stack; }
