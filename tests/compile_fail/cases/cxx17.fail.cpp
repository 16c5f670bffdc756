// A consumer on C++17 gets one clear #error naming C++20, and nothing else.
// STD: c++17
// EXPECT-ERROR: stackup requires C++20: compile with -std=c++20
// EXPECT-ERROR-COUNT: 1
#include <stackup/stackup.hpp>

int main() {}
