// No observer, no heap: repeated up()/down({.force = true}) allocate nothing.
#include "support/fake.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

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
  auto* p = new int(1);
  CHECK(allocations.load() - before == 1);
  delete p;
}
