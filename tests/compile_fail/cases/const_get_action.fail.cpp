// get() on a const DynamicStack gives a ConstComponentRef: queries only, no actions.
// EXPECT-ERROR: read_only
// EXPECT-ERROR: provision
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
  c.get("a").provision();
  return c.is_running() ? 0 : 1;
}
