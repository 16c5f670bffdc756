// Twin of const_get_action.fail.cpp: the action through the non-const stack.
#include <stackup/stackup.hpp>

#include <utility>
#include <vector>

struct Flag {
  bool on = false;
  bool is_provisioned() const { return on; }
  bool is_running() const { return on; }
  void provision() { on = true; }
};

static stackup::DynamicStack make() {
  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back("a", Flag{});
  parts.emplace_back("b", Flag{});
  return stackup::DynamicStack(std::move(parts));
}

int main() {
  stackup::DynamicStack s = make();
  const stackup::DynamicStack& c = s;
  s.get("a").provision();
  return c.get("a").is_running() ? 0 : 1;
}
