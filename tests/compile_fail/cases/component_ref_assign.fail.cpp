// A ComponentRef cannot be assigned (rebinding it would read as replacing the component).
// EXPECT-ERROR: deleted
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
  stackup::ComponentRef h = s.get("a");
  h = s.get("b");
  return h.is_running() ? 0 : 1;
}
