// Twin of dynamic_get_move.fail.cpp: a handle to the component, not the component itself.
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
  stackup::ComponentRef taken = s.get("a");
  return taken.is_running() ? 0 : 1;
}
