// No observer, no heap: repeated up()/down({.force = true}) allocate nothing, on
// either kind of stack.
#include "support/fake.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

namespace {
std::atomic<long> allocations{0};
}

// GCC 12 at -O1 and above sees malloc/free inside the replaced operators and warns
// of a new/delete mismatch that is not one: these replacements are the pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// Counts every allocation of this test binary.
void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too (std::stable_sort's buffer uses them): every new of this
// binary must pair with the delete above.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

TEST_CASE("allocations: up and down allocate nothing without an observer") {
  using namespace fake;
  stackup::Stack<Fake<"a">, Fake<"b", "a">, Fake<"c", "b">, Fixed<"d">, OneWay<"e">> s;
  s.up(); // warm-up
  s.down({.force = true});
  const long before = allocations.load();
  for (int i = 0; i < 100; ++i) {
    s.up();
    s.up<Fake<"c", "b">>();
    s.down();
    s.up("b");
    s.down({.force = true});
  }
  CHECK(allocations.load() - before == 0);
  // sanity: the counter does see allocations
  void* p = ::operator new(sizeof(int)); // a call, not a new-expression, which an optimiser may elide
  CHECK(allocations.load() - before == 1);
  ::operator delete(p);
}

namespace {
// A component with a role given at run time (no static role, no base class).
struct Toggle {
  bool provisioned = false, running = false;
  bool is_provisioned() const { return provisioned; }
  bool is_running() const { return running; }
  void provision() { provisioned = true; }
  void resume() { running = true; }
  void suspend() { running = false; }
  void deprovision() { provisioned = running = false; }
};
} // namespace

TEST_CASE("allocations: a DynamicStack's up and down allocate nothing without an observer") {
  using namespace fake;
  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back(Fake<"a">{});
  parts.emplace_back(Fake<"b", "a">{});
  parts.emplace_back(Fake<"c", "b">{});
  parts.emplace_back(Fixed<"d">{});
  parts.emplace_back(OneWay<"e">{});
  parts.emplace_back("f", Toggle{}, std::vector<std::string>{"c", "e"});
  stackup::DynamicStack s{"dynamic", std::move(parts)}; // building it allocates; using it must not
  s.up(); // warm-up
  s.up("c");
  s.down();
  s.down("b");
  s.down({.force = true});
  const long before = allocations.load();
  for (int i = 0; i < 100; ++i) {
    s.up();
    s.up("c");
    s.down();
    s.up("b");
    s.down("b");
    s.up("f");
    s.down({.force = true});
  }
  CHECK(allocations.load() - before == 0);
  CHECK(s.get("f").target<Toggle>()->provisioned == false);
  // sanity: the counter does see allocations
  void* p = ::operator new(sizeof(int)); // a call, not a new-expression, which an optimiser may elide
  CHECK(allocations.load() - before == 1);
  ::operator delete(p);
}
