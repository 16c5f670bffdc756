// Self-check: the right #error, but a wrong number of errors is expected.
// HARNESS-REPORTS: expected exactly 2 error(s), the compiler reported 1
// STD: c++17
// EXPECT-ERROR: stackup requires C++20
// EXPECT-ERROR-COUNT: 2
#include <stackup/stackup.hpp>

int main() {}
