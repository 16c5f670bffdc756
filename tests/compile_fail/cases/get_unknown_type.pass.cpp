// Twin of get_unknown_type.fail.cpp: the stack holds the Cache.
#include <stackup/stackup.hpp>

struct Api : stackup::StackComponent<Api> {
  static constexpr std::string_view role = "api";
};
struct Cache : stackup::StackComponent<Cache> {
  static constexpr std::string_view role = "cache";
};

int main() {
  stackup::Stack<Api, Cache> stack;
  return stack.get<Cache>().is_running() ? 0 : 1;
}
