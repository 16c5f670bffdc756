// Moving out of what DynamicStack::get() returns would leave the stack an empty component.
// EXPECT-ERROR: ComponentRef
// EXPECT-ERROR: AnyComponent
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
  stackup::AnyComponent taken = std::move(s.get("a"));
  return taken.is_running() ? 0 : 1;
}
