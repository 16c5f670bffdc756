// Every row of DESIGN §3: what each stack operation does to each component.
#include "support/fake.hpp"

#include <doctest/doctest.h>

using stackup::Transition;
using fake::Fake;
using fake::Fixed;
using fake::Log;
using fake::OneWay;

namespace {
// store <- tracker <- orchestrator ; deployer -> orchestrator, store
using Store = Fake<"artifact_store">;
using Tracker = Fake<"experiment_tracker", "artifact_store">;
using Orch = Fake<"orchestrator", "experiment_tracker">;
using Deployer = Fake<"model_deployer", "orchestrator", "artifact_store">;
using S = stackup::Stack<Deployer, Orch, Tracker, Store>;

struct Manual : stackup::StackComponent<Manual> {
  static constexpr std::string_view role = "manual";
  bool is_provisioned() const { return false; }
};
struct Stuck : stackup::StackComponent<Stuck> {
  static constexpr std::string_view role = "stuck";
  bool is_running() const { return false; }
};
struct SelfStarting : stackup::StackComponent<SelfStarting> {
  static constexpr std::string_view role = "self";
  bool on = false;
  int resumes = 0;
  bool is_provisioned() const { return on; }
  bool is_running() const { return on; }
  void provision() { on = true; }
  void resume() { ++resumes; }
};

S make(Log& log) {
  S s;
  s.get<Store>().log = &log;
  s.get<Tracker>().log = &log;
  s.get<Orch>().log = &log;
  s.get<Deployer>().log = &log;
  return s;
}
} // namespace

TEST_CASE("semantics: action order is topological, ties by listing order") {
  CHECK(S::order == std::array<std::size_t, 4>{3, 2, 1, 0});
  using T = stackup::Stack<Fake<"b", "a">, Fake<"c">, Fake<"a">>;
  CHECK(T::order == std::array<std::size_t, 3>{1, 2, 0});
}

TEST_CASE("semantics: up provisions everything in order, then resumes in order") {
  Log log;
  S s = make(log);
  s.up();
  CHECK(log == Log{"provision artifact_store", "provision experiment_tracker", "provision orchestrator",
                   "provision model_deployer", "resume artifact_store", "resume experiment_tracker",
                   "resume orchestrator", "resume model_deployer"});
  CHECK(s.is_running());
  CHECK(s.is_provisioned());
}

TEST_CASE("semantics: up and down are idempotent") {
  Log log;
  S s = make(log);
  s.up();
  log.clear();
  s.up();
  CHECK(log.empty());
  s.down();
  CHECK(log == Log{"suspend model_deployer", "suspend orchestrator", "suspend experiment_tracker",
                   "suspend artifact_store"});
  log.clear();
  s.down();
  CHECK(log.empty());
  CHECK(s.is_provisioned());
  CHECK_FALSE(s.is_running());
}

TEST_CASE("semantics: down --force stops then deprovisions each component, in reverse") {
  Log log;
  S s = make(log);
  s.up();
  s.get<Orch>().running = false; // already stopped: only deprovisioned
  log.clear();
  s.down({.force = true});
  CHECK(log == Log{"suspend model_deployer", "deprovision model_deployer", "deprovision orchestrator",
                   "suspend experiment_tracker", "deprovision experiment_tracker", "suspend artifact_store",
                   "deprovision artifact_store"});
  CHECK_FALSE(s.is_provisioned());
  log.clear();
  s.down({.force = true});
  CHECK(log.empty());
}

TEST_CASE("semantics: provision() skips provisioned components and needs Provisionable") {
  Log log;
  S s = make(log);
  s.get<Tracker>().provisioned = true;
  s.provision();
  CHECK(log == Log{"provision artifact_store", "provision orchestrator", "provision model_deployer"});
  CHECK_FALSE(s.is_running());

  stackup::Stack<Manual> m;
  CHECK_THROWS_WITH_AS(m.provision(), doctest::Contains("manual 'manual' does not implement provision()"),
                       stackup::NotImplementedError);
}

TEST_CASE("semantics: resume() starts provisioned components, ProvisioningError otherwise") {
  Log log;
  S s = make(log);
  CHECK_THROWS_WITH_AS(s.resume(), doctest::Contains("cannot resume artifact_store 'artifact_store'"),
                       stackup::ProvisioningError);
  CHECK(log.empty());
  s.provision();
  log.clear();
  s.get<Tracker>().running = true;
  s.resume();
  CHECK(log == Log{"resume artifact_store", "resume orchestrator", "resume model_deployer"});

  stackup::Stack<OneWay<"x">, Fixed<"y">> o;
  o.get<OneWay<"x">>().provisioned = true;
  o.resume();
  CHECK(o.is_running());

  stackup::Stack<Stuck> st;
  CHECK_THROWS_AS(st.resume(), stackup::NotImplementedError);
}

TEST_CASE("semantics: suspend() and deprovision() skip what a component cannot do, and go on") {
  Log log;
  stackup::Stack<Fixed<"always">, OneWay<"oneway">, Fake<"fake">> s;
  s.get<Fake<"fake">>().log = &log;
  s.up();
  CHECK(s.is_running());
  s.suspend();
  CHECK(log == Log{"provision fake", "resume fake", "suspend fake"});
  CHECK(s.get<OneWay<"oneway">>().running); // not Suspendable: left as it is
  s.deprovision();
  CHECK(log.back() == "deprovision fake");
  CHECK(s.get<OneWay<"oneway">>().provisioned);
}

TEST_CASE("semantics: the primitives throw a component's own exception as TransitionError") {
  Log log;
  S s = make(log);
  s.get<Orch>().fail = Transition::provision;
  try {
    s.provision();
    FAIL("provision() should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "orchestrator");
    CHECK(e.transition() == Transition::provision);
    CHECK(std::string(e.what()).find("orchestrator: provision exploded") != std::string::npos);
    CHECK_THROWS_WITH_AS(std::rethrow_exception(e.cause()), "orchestrator: provision exploded", std::runtime_error);
  }
  // no rollback for primitives: what was done stays done
  CHECK(s.get<Tracker>().provisioned);
}

TEST_CASE("semantics: up<C>() brings C's dependencies first, then C") {
  Log log;
  S s = make(log);
  s.up<Orch>();
  CHECK(log == Log{"provision artifact_store", "resume artifact_store", "provision experiment_tracker",
                   "resume experiment_tracker", "provision orchestrator", "resume orchestrator"});
  CHECK_FALSE(s.get<Deployer>().provisioned);
  log.clear();
  s.up<Orch>(); // already running: nothing
  CHECK(log.empty());
  s.get<Orch>().running = false; // suspended: resume only
  s.up("orchestrator");
  CHECK(log == Log{"resume orchestrator"});
}

TEST_CASE("semantics: up<C>() on a component whose provision also starts it does not resume it") {
  stackup::Stack<SelfStarting> s;
  s.up<SelfStarting>();
  CHECK(s.get<SelfStarting>().resumes == 0);
  s.get<SelfStarting>().on = false;
  s.up();
  CHECK(s.get<SelfStarting>().resumes == 0);
}

TEST_CASE("semantics: down<C>() stops C's running dependents first, then C") {
  Log log;
  S s = make(log);
  s.up();
  log.clear();
  s.down<Tracker>();
  CHECK(log == Log{"suspend model_deployer", "suspend orchestrator", "suspend experiment_tracker"});
  CHECK(s.get<Store>().running);
  log.clear();
  s.down("experiment_tracker"); // nothing running there any more
  CHECK(log.empty());
}

TEST_CASE("semantics: down<C>() of a component that cannot suspend suggests force") {
  stackup::Stack<Fake<"user", "fixed">, Fixed<"fixed">> s;
  s.up();
  try {
    s.down("fixed");
    FAIL("down should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "fixed");
    CHECK(e.transition() == Transition::suspend);
    CHECK(std::string(e.what()).find("force") != std::string::npos);
    CHECK_THROWS_AS(std::rethrow_exception(e.cause()), stackup::NotImplementedError);
  }
  // the dependent was still stopped first
  CHECK_FALSE(s.get<Fake<"user", "fixed">>().running);
}

TEST_CASE("semantics: down<C>({.force}) takes dependents down with force, then removes C") {
  Log log;
  S s = make(log);
  s.up();
  log.clear();
  s.down<Orch>({.force = true});
  CHECK(log == Log{"suspend model_deployer", "deprovision model_deployer", "suspend orchestrator",
                   "deprovision orchestrator"});
  CHECK(s.get<Tracker>().running);
  log.clear();
  s.down<Orch>({.force = true});
  CHECK(log.empty());

  stackup::Stack<Fixed<"fixed">> f;
  CHECK_THROWS_AS(f.down("fixed", {.force = true}), stackup::TransitionError);
}

TEST_CASE("semantics: run-time NotImplementedError is treated like an absent member") {
  Log log;
  S s = make(log);
  s.up();
  s.get<Orch>().decline = Transition::suspend;
  log.clear();
  s.down(); // skipped, no failure
  CHECK(s.get<Orch>().running);
  CHECK_FALSE(s.get<Store>().running);
  CHECK_THROWS_AS(s.down<Orch>(), stackup::TransitionError); // but as the target, it is an error

  S t = make(log);
  t.get<Store>().decline = Transition::provision;
  CHECK_THROWS_AS(t.provision(), stackup::NotImplementedError);
}

TEST_CASE("semantics: unknown role strings name the valid roles") {
  Log log;
  S s = make(log);
  CHECK_THROWS_WITH_AS(s.up("orchestrater"),
                       doctest::Contains("no component with role 'orchestrater'; valid roles: model_deployer, "
                                         "orchestrator, experiment_tracker, artifact_store"),
                       stackup::UnknownComponentError);
  CHECK_THROWS_AS(s.down("", {.force = true}), stackup::UnknownComponentError);
  CHECK(log.empty());
}

TEST_CASE("semantics: status lists components in template-argument order") {
  Log log;
  S s = make(log);
  s.get<Orch>().provisioned = true;
  s.get<Store>().provisioned = s.get<Store>().running = true;
  const auto st = s.status();
  REQUIRE(st.size() == 4);
  CHECK(st[0].role == "model_deployer");
  CHECK(st[0].state == stackup::State::deprovisioned);
  CHECK(st[1].state == stackup::State::suspended);
  CHECK(st[3].state == stackup::State::running);
  CHECK(st[3].flavor == "custom");
}

TEST_CASE("semantics: construction, names and access") {
  stackup::Stack s{"local", Fake<"a">{}, Fixed<"b">{}};
  static_assert(std::is_same_v<decltype(s), stackup::Stack<Fake<"a">, Fixed<"b">>>);
  CHECK(s.name() == "local");
  CHECK(stackup::Stack<Fixed<"b">>{}.name() == "default");
  s.get<"a">().provisioned = true;
  CHECK(s.get<Fake<"a">>().provisioned);
  CHECK(&s.get<"b">() == &s.get<Fixed<"b">>());
  const auto& cs = s;
  CHECK(cs.get<"a">().provisioned);
}
