// DownOptions::dependents: down(role) with Dependents::keep acts on that role
// alone and leaves its dependents as they are (the supervisor's restart step).
// Both kinds of stack (tests/support/kinds.hpp).
#include "support/fake.hpp"
#include "support/kinds.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using stackup::Dependents;
using stackup::Transition;
using fake::Fake;
using fake::Recorder;
using kinds::get;

namespace {
using L = std::vector<std::string>;
using A = Fake<"a">;
using B = Fake<"b", "a">; // b needs a
using C = Fake<"c", "b">; // c needs b
using D = Fake<"d", "a">; // d needs a too
template <class K> auto make() { return kinds::make<K, A, B, C, D>("local"); }
} // namespace

static_assert(stackup::DownOptions{}.dependents == Dependents::stop, "the default is today's behaviour");

TEST_CASE_TEMPLATE("keep: down(dependency, keep) stops it alone; its dependents keep running", K, kinds::Typed,
                   kinds::Dynamic) {
  auto s = make<K>();
  L log;
  get<A>(s).log = get<B>(s).log = get<C>(s).log = get<D>(s).log = &log;
  s.up();
  log.clear();
  s.down("a", {.dependents = Dependents::keep});
  CHECK(log == L{"suspend a"});
  CHECK_FALSE(get<A>(s).running);
  CHECK(get<A>(s).provisioned);
  CHECK(get<B>(s).running);
  CHECK(get<C>(s).running);
  CHECK(get<D>(s).running);
  // The compile-time form of Stack, and DynamicStack by role, do the same.
  log.clear();
  kinds::down<B>(s, {.dependents = Dependents::keep});
  CHECK(log == L{"suspend b"});
  CHECK(get<C>(s).running);
  // And up(role) brings it back without touching what runs.
  log.clear();
  s.up("a");
  CHECK(log == L{"resume a"});
}

TEST_CASE_TEMPLATE("keep: the default (Dependents::stop) still stops the dependents first", K, kinds::Typed,
                   kinds::Dynamic) {
  auto s = make<K>();
  L log;
  get<A>(s).log = get<B>(s).log = get<C>(s).log = get<D>(s).log = &log;
  s.up();
  log.clear();
  s.down("b");
  CHECK(log == L{"suspend c", "suspend b"});
  log.clear();
  s.down("a", {.dependents = Dependents::stop});
  CHECK(log == L{"suspend d", "suspend a"});
}

TEST_CASE_TEMPLATE("keep: the events name only that role", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  s.up();
  Recorder rec;
  s.on_event(rec.observer());
  s.down("a", {.dependents = Dependents::keep});
  CHECK(rec.lines == L{"suspend a started", "suspend a succeeded"});
}

TEST_CASE_TEMPLATE("keep: force with keep deprovisions that role alone", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  L log;
  get<A>(s).log = get<B>(s).log = get<C>(s).log = get<D>(s).log = &log;
  s.up();
  log.clear();
  s.down("a", {.force = true, .dependents = Dependents::keep});
  CHECK(log == L{"suspend a", "deprovision a"});
  CHECK_FALSE(get<A>(s).provisioned);
  CHECK(get<B>(s).running);
  CHECK(get<B>(s).provisioned);
  CHECK(get<D>(s).running);
}

TEST_CASE_TEMPLATE("keep: parallel with keep acts on that role alone", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  s.up();
  Recorder rec;
  s.on_event(rec.observer());
  s.down("a", {.parallel = true, .max_threads = 2, .dependents = Dependents::keep});
  CHECK(rec.lines == L{"suspend a started", "suspend a succeeded"});
  CHECK_FALSE(get<A>(s).running);
  CHECK(get<B>(s).running);
  CHECK(get<C>(s).running);
  CHECK(get<D>(s).running);
}

TEST_CASE_TEMPLATE("keep: whole-stack down ignores it", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  s.up();
  s.down({.dependents = Dependents::keep});
  CHECK_FALSE(get<A>(s).running);
  CHECK_FALSE(get<B>(s).running);
  CHECK_FALSE(get<C>(s).running);
  CHECK_FALSE(get<D>(s).running);
}

TEST_CASE_TEMPLATE("keep: errors and a stop token work as without it", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  s.up();
  SUBCASE("a failing action of the role is a TransitionError; the dependents stay running") {
    get<A>(s).fail = Transition::suspend;
    CHECK_THROWS_AS(s.down("a", {.dependents = Dependents::keep}), stackup::TransitionError);
    CHECK(get<B>(s).running);
    CHECK(get<D>(s).running);
  }
  SUBCASE("a role that cannot suspend is an error, as the target of down(role) is") {
    get<A>(s).decline = Transition::suspend;
    CHECK_THROWS_AS(s.down("a", {.dependents = Dependents::keep}), stackup::TransitionError);
    CHECK(get<B>(s).running);
  }
  SUBCASE("a stop requested before: the role is left as it was") {
    struct Stopped {
      bool stop_requested() const { return true; }
      bool stop_possible() const { return true; }
    } token;
    CHECK_THROWS_AS(s.down("a", {.stop = &token, .dependents = Dependents::keep}), stackup::TransitionError);
    CHECK(get<A>(s).running);
    CHECK(get<B>(s).running);
  }
}
