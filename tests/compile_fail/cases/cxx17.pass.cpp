// Twin of cxx17.fail.cpp: the same consumer on C++20.
#include <stackup/stackup.hpp>

int main() {}
