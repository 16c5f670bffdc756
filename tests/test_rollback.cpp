// up() is all-or-nothing; down() never stops half-way (DESIGN §3). Both kinds of
// stack (tests/support/kinds.hpp).
#include "support/fake.hpp"
#include "support/kinds.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using stackup::Transition;
using fake::Fake;
using fake::Log;
using kinds::get;

namespace {
using A = Fake<"a">;
using B = Fake<"b", "a">;
using C = Fake<"c", "b">;
using D = Fake<"d", "c">;

template <class K> auto make(Log& log) {
  auto s = kinds::make<K, A, B, C, D>();
  get<A>(s).log = get<B>(s).log = get<C>(s).log = get<D>(s).log = &log;
  return s;
}
template <class S, class F> void each(S& s, F f) { f(get<A>(s)), f(get<B>(s)), f(get<C>(s)), f(get<D>(s)); }
template <class S> std::vector<stackup::State> states(const S& s) {
  std::vector<stackup::State> v;
  for (const auto& row : s.status()) v.push_back(row.state);
  return v;
}
struct Broken : stackup::StackComponent<Broken> {
  static constexpr std::string_view role = "broken";
  bool is_running() const { throw std::runtime_error("cannot tell"); }
  void suspend() {}
};
const char* const names[] = {"a", "b", "c", "d"};
} // namespace

TEST_CASE_TEMPLATE("rollback: a failure at every position of provision and resume undoes this call's actions", K,
                   kinds::Typed, kinds::Dynamic) {
  for (Transition t : {Transition::provision, Transition::resume}) {
    for (int pos = 0; pos < 4; ++pos) {
      CAPTURE(t);
      CAPTURE(pos);
      Log log;
      auto s = make<K>(log);
      // a starts suspended (provisioned before this call): rollback must not deprovision it
      get<A>(s).provisioned = !(pos == 0 && t == Transition::provision);
      each(s, [&](auto& c) { c.fail = (std::string_view(c.role) == names[pos]) ? std::optional(t) : std::nullopt; });
      const auto before = states(s);
      try {
        s.up();
        FAIL("up should have thrown");
      } catch (const stackup::TransitionError& e) {
        CHECK(e.role() == names[pos]);
        CHECK(e.transition() == t);
        CHECK(std::string(e.what()).find("exploded") != std::string::npos);
        CHECK(std::string(e.what()).find("rolled back") != std::string::npos);
        REQUIRE(e.failures().size() == 1);
        CHECK_THROWS_WITH_AS(std::rethrow_if_nested(e), doctest::Contains("exploded"), std::runtime_error);
      }
      CHECK(states(s) == before);
      // the undo actions are exactly the reverse of what this call did
      Log done, undone;
      bool rolling = false;
      for (const auto& line : log) {
        if (line.rfind("suspend", 0) == 0 || line.rfind("deprovision", 0) == 0) rolling = true;
        (rolling ? undone : done).push_back(line);
      }
      done.pop_back(); // the failed action did nothing to undo
      REQUIRE(done.size() == undone.size());
      for (std::size_t i = 0; i < done.size(); ++i) {
        const auto& d = done[done.size() - 1 - i];
        const std::string expect = (d.rfind("resume", 0) == 0 ? "suspend" : "deprovision") + d.substr(d.find(' '));
        CHECK(undone[i] == expect);
      }
    }
  }
}

TEST_CASE_TEMPLATE("rollback: .rollback = false leaves the partial state in place", K, kinds::Typed, kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  get<C>(s).fail = Transition::resume;
  CHECK_THROWS_AS(s.up({.rollback = false}), stackup::TransitionError);
  CHECK(states(s) == std::vector{stackup::State::running, stackup::State::running, stackup::State::suspended,
                                 stackup::State::suspended});
}

TEST_CASE_TEMPLATE("rollback: what the rollback cannot undo is listed, and the rest is still undone", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  get<D>(s).fail = Transition::resume;
  get<B>(s).fail = Transition::suspend; // undoing b's resume fails
  try {
    s.up();
    FAIL("up should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "d");
    REQUIRE(e.failures().size() == 2);
    CHECK(e.failures()[1].role == "b");
    CHECK(e.failures()[1].transition == Transition::suspend);
    CHECK(e.failures()[1].message.find("rollback") != std::string::npos);
    CHECK(std::string(e.what()).find("rollback incomplete") != std::string::npos);
    CHECK_THROWS_WITH(std::rethrow_exception(e.cause()), "d: resume exploded");
  }
  // b's suspend failed, yet its deprovision and everything else were still undone
  CHECK(log == Log{"provision a", "provision b", "provision c", "provision d", "resume a", "resume b", "resume c",
                   "resume d", "suspend c", "suspend b", "suspend a", "deprovision d", "deprovision c",
                   "deprovision b", "deprovision a"});
  CHECK_FALSE(s.is_provisioned());
}

TEST_CASE_TEMPLATE("rollback: up<C>() rolls back its dependencies too", K, kinds::Typed, kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  get<C>(s).fail = Transition::resume;
  CHECK_THROWS_AS(kinds::up<C>(s), stackup::TransitionError);
  CHECK_FALSE(get<A>(s).provisioned);
  CHECK_FALSE(get<B>(s).provisioned);
  CHECK_FALSE(get<C>(s).provisioned);
}

TEST_CASE_TEMPLATE("down: tries every component, then reports every failure in one TransitionError", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  s.up();
  get<C>(s).fail = Transition::suspend;
  get<A>(s).fail = Transition::suspend;
  try {
    s.down();
    FAIL("down should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "c");
    REQUIRE(e.failures().size() == 2);
    CHECK(e.failures()[0].role == "c");
    CHECK(e.failures()[1].role == "a");
    CHECK(std::string(e.what()).find("a suspend: a: suspend exploded") != std::string::npos);
  }
  CHECK_FALSE(get<D>(s).running);
  CHECK_FALSE(get<B>(s).running);
}

TEST_CASE_TEMPLATE("down: with force, a component whose suspend failed still gets its deprovision", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  s.up();
  get<B>(s).fail = Transition::suspend;
  CHECK_THROWS_AS(s.down({.force = true}), stackup::TransitionError);
  CHECK_FALSE(get<B>(s).provisioned);
  CHECK_FALSE(get<A>(s).provisioned);
  CHECK(std::find(log.begin(), log.end(), "deprovision b") != log.end());
}

TEST_CASE_TEMPLATE("down: a query that throws is a failure of that component, not the end of the down", K,
                   kinds::Typed, kinds::Dynamic) {
  auto s = kinds::make<K, Fake<"x">, Broken, Fake<"y">>();
  get<Fake<"x">>(s).running = get<Fake<"y">>(s).running = true;
  CHECK_THROWS_WITH_AS(s.down(), doctest::Contains("cannot tell"), stackup::TransitionError);
  CHECK_FALSE(get<Fake<"x">>(s).running);
  CHECK_FALSE(get<Fake<"y">>(s).running);
}
