// The component contract: CRTP defaults, the concepts, State, FixedString, roles.
#include "support/fake.hpp"

#include <doctest/doctest.h>

namespace {
struct Orchestrator : stackup::StackComponent<Orchestrator> {
  static constexpr std::string_view role = stackup::roles::orchestrator;
  static constexpr std::string_view depends_on[] = {"artifact_store"};
  std::string_view name() const { return "local_k3d"; }
  bool up = false, made = false;
  bool is_provisioned() const { return made; }
  bool is_running() const { return up; }
  void provision() {}
  void deprovision() {}
  void resume() {}
  void suspend() {}
};
struct ArtifactStore : stackup::StackComponent<ArtifactStore> {
  static constexpr std::string_view role = stackup::roles::artifact_store;
};
// A component that does not derive from StackComponent.
struct Plain {
  static constexpr const char* role = "plain";
  int is_provisioned() const { return 1; }
  bool is_running() const { return false; }
  void resume() {}
};
struct NoRole : stackup::StackComponent<NoRole> {};
struct NoQueries {
  static constexpr std::string_view role = "x";
};
struct MutableQuery {
  static constexpr std::string_view role = "x";
  bool is_provisioned() { return true; } // not const
  bool is_running() const { return true; }
};
} // namespace

TEST_CASE("concepts: positive and negative") {
  static_assert(stackup::Component<Orchestrator>);
  static_assert(stackup::Provisionable<Orchestrator> && stackup::Deprovisionable<Orchestrator>);
  static_assert(stackup::Resumable<Orchestrator> && stackup::Suspendable<Orchestrator>);
  static_assert(stackup::Component<ArtifactStore>);
  static_assert(!stackup::Provisionable<ArtifactStore> && !stackup::Deprovisionable<ArtifactStore>);
  static_assert(!stackup::Resumable<ArtifactStore> && !stackup::Suspendable<ArtifactStore>);
  static_assert(stackup::Component<Plain> && stackup::Resumable<Plain> && !stackup::Suspendable<Plain>);
  static_assert(!stackup::Component<NoRole>);
  static_assert(!stackup::Component<NoQueries>);
  static_assert(!stackup::Component<MutableQuery>);
  static_assert(!stackup::Component<int>);
  static_assert(!stackup::Suspendable<fake::OneWay<"x">> && stackup::Resumable<fake::OneWay<"x">>);
  CHECK(stackup::Component<Plain>);
}

TEST_CASE("concepts: StackComponent gives ZenML's defaults and stays an aggregate base") {
  ArtifactStore a{};
  CHECK(a.is_provisioned());
  CHECK(a.is_running());
  CHECK_FALSE(a.is_suspended());
  CHECK(a.name() == "artifact_store");
  CHECK(a.state() == stackup::State::running);
  Orchestrator o{{}, false, false}; // aggregate initialisation through the base
  CHECK_FALSE(o.up);
  CHECK(o.is_suspended());
  CHECK(o.name() == "local_k3d");
  CHECK(o.state() == stackup::State::deprovisioned);
  o.made = true;
  CHECK(o.state() == stackup::State::suspended);
  CHECK(stackup::state_of(Plain{}) == stackup::State::suspended);
  static_assert(std::is_aggregate_v<Orchestrator>);
  static_assert(std::is_empty_v<ArtifactStore>);
}

TEST_CASE("concepts: a stack of non-derived components works") {
  stackup::Stack<Plain, ArtifactStore, Orchestrator> s;
  CHECK(s.status()[0].name == "plain");
  CHECK(s.status()[2].name == "local_k3d");
  CHECK(s.status()[2].state == stackup::State::deprovisioned);
  static_assert(decltype(s)::size == 3);
  static_assert(decltype(s)::roles[0] == "plain");
  static_assert(decltype(s)::find("orchestrator") == 2);
  static_assert(decltype(s)::find("nope") == 3);
}

TEST_CASE("concepts: FixedString and role constants") {
  constexpr stackup::FixedString f = "orchestrator";
  static_assert(f.view() == "orchestrator" && f.size() == 12);
  static_assert(std::string_view(f) == stackup::roles::orchestrator);
  CHECK(stackup::roles::experiment_tracker == "experiment_tracker");
  CHECK(stackup::roles::image_builder == "image_builder");
  CHECK(stackup::to_string(stackup::Outcome::already_done) == "already_done");
  CHECK(stackup::to_string(stackup::Transition::deprovision) == "deprovision");
}
