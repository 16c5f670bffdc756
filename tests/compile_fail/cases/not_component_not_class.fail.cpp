// A Stack of `int`: a component must be a class type.
// EXPECT-ERROR: this Stack template argument is not a Component: it must be a class type
#include <stackup/stackup.hpp>

int main() {
  stackup::Stack<int> stack;
  stack.up();
}
