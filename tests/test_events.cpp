// The event stream: exact sequences, balance, and what each event carries.
#include "support/fake.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using stackup::Outcome;
using stackup::Transition;
using fake::Fake;
using fake::Fixed;
using fake::Recorder;

namespace {
using L = std::vector<std::string>;
using S = stackup::Stack<Fake<"b", "a">, Fake<"a">, Fixed<"c">>;
} // namespace

TEST_CASE("events: the exact sequence of an up and a down") {
  S s{"events", {}, {}, {}};
  Recorder rec;
  s.on_event(rec.observer());
  s.up();
  CHECK(rec.lines == L{"provision a started", "provision a succeeded", "provision b started", "provision b succeeded",
                       "resume a started", "resume a succeeded", "resume b started", "resume b succeeded",
                       "resume c already_done"});
  for (const auto& e : rec.events) CHECK(e.stack == "events");
  CHECK(rec.events.back().message == "already running");
  rec.lines.clear();
  s.down();
  CHECK(rec.lines == L{"suspend c not_implemented", "suspend b started", "suspend b succeeded", "suspend a started",
                       "suspend a succeeded"});
  rec.lines.clear();
  s.down({.force = true});
  CHECK(rec.lines == L{"suspend c not_implemented", "deprovision c not_implemented", "deprovision b started",
                       "deprovision b succeeded", "deprovision a started", "deprovision a succeeded"});
}

TEST_CASE("events: a failed up reports failed, then rolled_back for each undo") {
  S s;
  Recorder rec;
  s.on_event(rec.observer());
  s.get<Fake<"b", "a">>().fail = Transition::resume;
  CHECK_THROWS_AS(s.up(), stackup::TransitionError);
  CHECK(rec.lines == L{"provision a started", "provision a succeeded", "provision b started", "provision b succeeded",
                       "resume a started", "resume a succeeded", "resume b started", "resume b failed",
                       "suspend a started", "suspend a rolled_back", "deprovision b started",
                       "deprovision b rolled_back", "deprovision a started", "deprovision a rolled_back"});
  const auto failed = std::find_if(rec.events.begin(), rec.events.end(),
                                   [](const auto& e) { return e.outcome == Outcome::failed; });
  REQUIRE(failed != rec.events.end());
  CHECK(failed->message == "b: resume exploded");
  CHECK(failed->component == "b");
}

TEST_CASE("events: not implemented learned at run time ends its started") {
  S s;
  Recorder rec;
  s.up();
  s.on_event(rec.observer());
  s.get<Fake<"a">>().decline = Transition::suspend;
  s.down();
  CHECK(rec.lines == L{"suspend c not_implemented", "suspend b started", "suspend b succeeded", "suspend a started",
                       "suspend a not_implemented"});
  CHECK(rec.events[4].message == "a: not configured");
}

TEST_CASE("events: every started has exactly one end, and elapsed is measured") {
  S s;
  Recorder rec;
  s.on_event(rec.observer());
  s.up();
  s.down({.force = true});
  s.up<Fake<"b", "a">>();
  s.down("a");
  int open = 0;
  for (const auto& e : rec.events) {
    if (e.outcome == Outcome::started) {
      CHECK(open == 0); // sequential mode: one action at a time
      ++open;
      CHECK(e.elapsed.count() == 0);
    } else if (e.outcome != Outcome::already_done && !(e.outcome == Outcome::not_implemented && open == 0)) {
      CHECK(open == 1);
      --open;
      CHECK(e.elapsed.count() >= 0);
    }
  }
  CHECK(open == 0);
}

TEST_CASE("events: removing the observer stops delivery") {
  S s;
  Recorder rec;
  s.on_event(rec.observer());
  s.on_event({});
  s.up();
  CHECK(rec.lines.empty());
}

TEST_CASE("events: an observer that throws changes nothing about the operation") {
  S s;
  s.on_event([](const stackup::Event&) { throw std::runtime_error("observer broke"); });
  s.get<Fake<"b", "a">>().fail = Transition::resume;
  try {
    s.up();
    FAIL("up should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "b"); // the component's error, not the observer's
    CHECK_THROWS_WITH(std::rethrow_exception(e.cause()), "b: resume exploded");
  }
  // every action done was still recorded, so the rollback undid all of it
  CHECK_FALSE(s.get<Fake<"a">>().provisioned);
  CHECK_FALSE(s.get<Fake<"b", "a">>().provisioned);
  s.get<Fake<"b", "a">>().fail.reset();
  s.up();
  CHECK(s.is_running());
}
