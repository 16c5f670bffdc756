// Self-check: a twin that does not compile must be reported.
// HARNESS-REPORTS: failed to compile, but this twin must compile
#include <stackup/stackup.hpp>

int main() { stackup::Stack<int> stack; }
