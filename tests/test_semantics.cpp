// Every row of DESIGN §3: what each stack operation does to each component, for
// both kinds of stack (Stack<Cs...> and DynamicStack, tests/support/kinds.hpp).
#include "support/fake.hpp"
#include "support/kinds.hpp"

#include <doctest/doctest.h>

using stackup::Transition;
using fake::Fake;
using fake::Fixed;
using fake::Log;
using fake::OneWay;
using kinds::get;

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

template <class K> auto make(Log& log) {
  auto s = kinds::make<K, Deployer, Orch, Tracker, Store>();
  get<Store>(s).log = &log;
  get<Tracker>(s).log = &log;
  get<Orch>(s).log = &log;
  get<Deployer>(s).log = &log;
  return s;
}
} // namespace

TEST_CASE_TEMPLATE("semantics: action order is topological, ties by listing order", K, kinds::Typed, kinds::Dynamic) {
  static_assert(S::order == std::array<std::size_t, 4>{3, 2, 1, 0}); // settled at compile time for Stack<Cs...>
  Log log;
  CHECK(kinds::order(make<K>(log)) == std::vector<std::size_t>{3, 2, 1, 0});
  CHECK(kinds::order(kinds::make<K, Fake<"b", "a">, Fake<"c">, Fake<"a">>()) == std::vector<std::size_t>{1, 2, 0});
  CHECK(kinds::roles(make<K>(log)) ==
        std::vector<std::string_view>{"model_deployer", "orchestrator", "experiment_tracker", "artifact_store"});
}

TEST_CASE_TEMPLATE("semantics: up provisions everything in order, then resumes in order", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  s.up();
  CHECK(log == Log{"provision artifact_store", "provision experiment_tracker", "provision orchestrator",
                   "provision model_deployer", "resume artifact_store", "resume experiment_tracker",
                   "resume orchestrator", "resume model_deployer"});
  CHECK(s.is_running());
  CHECK(s.is_provisioned());
}

TEST_CASE_TEMPLATE("semantics: up and down are idempotent", K, kinds::Typed, kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
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

TEST_CASE_TEMPLATE("semantics: down --force stops then deprovisions each component, in reverse", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  s.up();
  get<Orch>(s).running = false; // already stopped: only deprovisioned
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

TEST_CASE_TEMPLATE("semantics: provision() skips provisioned components and needs Provisionable", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  get<Tracker>(s).provisioned = true;
  s.provision();
  CHECK(log == Log{"provision artifact_store", "provision orchestrator", "provision model_deployer"});
  CHECK_FALSE(s.is_running());

  auto m = kinds::make<K, Manual>();
  CHECK_THROWS_WITH_AS(m.provision(), doctest::Contains("manual 'manual' does not implement provision()"),
                       stackup::NotImplementedError);
}

TEST_CASE_TEMPLATE("semantics: resume() starts provisioned components, ProvisioningError otherwise", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  CHECK_THROWS_WITH_AS(s.resume(), doctest::Contains("cannot resume artifact_store 'artifact_store'"),
                       stackup::ProvisioningError);
  CHECK(log.empty());
  s.provision();
  log.clear();
  get<Tracker>(s).running = true;
  s.resume();
  CHECK(log == Log{"resume artifact_store", "resume orchestrator", "resume model_deployer"});

  auto o = kinds::make<K, OneWay<"x">, Fixed<"y">>();
  get<OneWay<"x">>(o).provisioned = true;
  o.resume();
  CHECK(o.is_running());

  auto st = kinds::make<K, Stuck>();
  CHECK_THROWS_AS(st.resume(), stackup::NotImplementedError);
}

TEST_CASE_TEMPLATE("semantics: suspend() and deprovision() skip what a component cannot do, and go on", K,
                   kinds::Typed, kinds::Dynamic) {
  Log log;
  auto s = kinds::make<K, Fixed<"always">, OneWay<"oneway">, Fake<"fake">>();
  get<Fake<"fake">>(s).log = &log;
  s.up();
  CHECK(s.is_running());
  s.suspend();
  CHECK(log == Log{"provision fake", "resume fake", "suspend fake"});
  CHECK(get<OneWay<"oneway">>(s).running); // not Suspendable: left as it is
  s.deprovision();
  CHECK(log.back() == "deprovision fake");
  CHECK(get<OneWay<"oneway">>(s).provisioned);
}

TEST_CASE_TEMPLATE("semantics: the primitives throw a component's own exception as TransitionError", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  get<Orch>(s).fail = Transition::provision;
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
  CHECK(get<Tracker>(s).provisioned);
}

TEST_CASE_TEMPLATE("semantics: up<C>() brings C's dependencies first, then C", K, kinds::Typed, kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  kinds::up<Orch>(s);
  CHECK(log == Log{"provision artifact_store", "resume artifact_store", "provision experiment_tracker",
                   "resume experiment_tracker", "provision orchestrator", "resume orchestrator"});
  CHECK_FALSE(get<Deployer>(s).provisioned);
  log.clear();
  kinds::up<Orch>(s); // already running: nothing
  CHECK(log.empty());
  get<Orch>(s).running = false; // suspended: resume only
  s.up("orchestrator");
  CHECK(log == Log{"resume orchestrator"});
}

TEST_CASE_TEMPLATE("semantics: up<C>() on a component whose provision also starts it does not resume it", K,
                   kinds::Typed, kinds::Dynamic) {
  auto s = kinds::make<K, SelfStarting>();
  kinds::up<SelfStarting>(s);
  CHECK(get<SelfStarting>(s).resumes == 0);
  get<SelfStarting>(s).on = false;
  s.up();
  CHECK(get<SelfStarting>(s).resumes == 0);
}

TEST_CASE_TEMPLATE("semantics: down<C>() stops C's running dependents first, then C", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  s.up();
  log.clear();
  kinds::down<Tracker>(s);
  CHECK(log == Log{"suspend model_deployer", "suspend orchestrator", "suspend experiment_tracker"});
  CHECK(get<Store>(s).running);
  log.clear();
  s.down("experiment_tracker"); // nothing running there any more
  CHECK(log.empty());
}

// Running and provisioned, with a deprovision() but no suspend().
struct RemoveOnly : stackup::StackComponent<RemoveOnly> {
  static constexpr std::string_view role = "fixed";
  bool is_provisioned() const { return true; }
  bool is_running() const { return true; }
  void deprovision() {}
};

TEST_CASE_TEMPLATE("semantics: down<C>() of a component that cannot suspend suggests force, if force can remove it",
                   K, kinds::Typed, kinds::Dynamic) {
  auto s = kinds::make<K, Fake<"user", "fixed">, RemoveOnly>();
  s.up();
  try {
    s.down("fixed");
    FAIL("down should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "fixed");
    CHECK(e.transition() == Transition::suspend);
    CHECK(std::string(e.what()).find("use down with force (--force) to deprovision it instead") != std::string::npos);
    CHECK_THROWS_AS(std::rethrow_exception(e.cause()), stackup::NotImplementedError);
  }
  // the dependent was still stopped first
  CHECK_FALSE(get<Fake<"user", "fixed">>(s).running);

  // Neither suspend() nor deprovision(): force would not help, and is not advised.
  auto fixed = kinds::make<K, Fixed<"fixed">>();
  try {
    fixed.down("fixed");
    FAIL("down should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(std::string(e.what()).find("force") == std::string::npos);
    CHECK(std::string(e.what()).find("it has no deprovision() either: it cannot be brought down") != std::string::npos);
  }
}

TEST_CASE_TEMPLATE("semantics: down<C>({.force}) takes dependents down with force, then removes C", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  s.up();
  log.clear();
  kinds::down<Orch>(s, {.force = true});
  CHECK(log == Log{"suspend model_deployer", "deprovision model_deployer", "suspend orchestrator",
                   "deprovision orchestrator"});
  CHECK(get<Tracker>(s).running);
  log.clear();
  kinds::down<Orch>(s, {.force = true});
  CHECK(log.empty());

  auto f = kinds::make<K, Fixed<"fixed">>();
  CHECK_THROWS_AS(f.down("fixed", {.force = true}), stackup::TransitionError);
}

TEST_CASE_TEMPLATE("semantics: run-time NotImplementedError is treated like an absent member", K, kinds::Typed,
                   kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  s.up();
  get<Orch>(s).decline = Transition::suspend;
  log.clear();
  s.down(); // skipped, no failure
  CHECK(get<Orch>(s).running);
  CHECK_FALSE(get<Store>(s).running);
  CHECK_THROWS_AS(kinds::down<Orch>(s), stackup::TransitionError); // but as the target, it is an error

  auto t = make<K>(log);
  get<Store>(t).decline = Transition::provision;
  CHECK_THROWS_AS(t.provision(), stackup::NotImplementedError);
}

TEST_CASE_TEMPLATE("semantics: unknown role strings name the valid roles", K, kinds::Typed, kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  CHECK_THROWS_WITH_AS(s.up("orchestrater"),
                       doctest::Contains("no component with role 'orchestrater'; valid roles: model_deployer, "
                                         "orchestrator, experiment_tracker, artifact_store"),
                       stackup::UnknownComponentError);
  CHECK_THROWS_AS(s.down("", {.force = true}), stackup::UnknownComponentError);
  CHECK(log.empty());
}

TEST_CASE_TEMPLATE("semantics: status lists components in template-argument order", K, kinds::Typed, kinds::Dynamic) {
  Log log;
  auto s = make<K>(log);
  get<Orch>(s).provisioned = true;
  get<Store>(s).provisioned = get<Store>(s).running = true;
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

TEST_CASE("semantics: construction, names and access (DynamicStack)") {
  auto s = kinds::make_from<kinds::Dynamic>("local", Fake<"a">{}, Fixed<"b">{});
  static_assert(std::is_same_v<decltype(s), stackup::DynamicStack>);
  CHECK(s.name() == "local");
  std::vector<stackup::AnyComponent> one;
  one.emplace_back(Fixed<"b">{});
  CHECK(stackup::DynamicStack{std::move(one)}.name() == "default");
  s.get("a").target<Fake<"a">>()->provisioned = true;
  CHECK(get<Fake<"a">>(s).provisioned);
  CHECK(s.get("b").target<Fixed<"b">>() != nullptr);
  CHECK(s.get("b").target<Fake<"a">>() == nullptr);
  const auto& cs = s;
  CHECK(cs.get("a").target<Fake<"a">>()->provisioned);
}

// A component whose namespace offers greedy functions named like the engine's
// helpers: the engine's calls must not find them (argument-dependent lookup). Its
// unary operator& is deleted: the engine must take its address without it.
namespace greedy {
template <class... T> void note(T&&...) { throw std::logic_error("greedy::note called"); }
template <class... T> void lacks(T&&...) { throw std::logic_error("greedy::lacks called"); }
template <class... T> void not_provisioned(T&&...) { throw std::logic_error("greedy::not_provisioned called"); }
template <auto, class... T> int perform(T&&...) { throw std::logic_error("greedy::perform called"); }
template <auto, class... T> bool step(T&&...) { throw std::logic_error("greedy::step called"); }
template <class... T> std::string_view name_of(T&&...) { throw std::logic_error("greedy::name_of called"); }
struct Flag : stackup::StackComponent<Flag> {
  static constexpr std::string_view role = "flag";
  bool provisioned = false, running = false;
  [[nodiscard]] bool is_provisioned() const { return provisioned; }
  [[nodiscard]] bool is_running() const { return running; }
  [[nodiscard]] std::string_view name() const { return "the flag"; }
  void provision() { provisioned = true; }
  void resume() { running = true; }
  void suspend() { running = false; }
  void deprovision() { provisioned = false; }
  void operator&() const = delete;
};
// Provisioned, not running, and cannot start: its up fails through lacks().
struct Stuck : stackup::StackComponent<Stuck> {
  static constexpr std::string_view role = "stuck";
  [[nodiscard]] bool is_provisioned() const { return true; }
  [[nodiscard]] bool is_running() const { return false; }
  void operator&() const = delete;
};
} // namespace greedy

TEST_CASE_TEMPLATE("semantics: a component's namespace and operator& do not change what the engine calls", K,
                   kinds::Typed, kinds::Dynamic) {
  for (const bool observed : {false, true}) {
    CAPTURE(observed);
    auto s = kinds::make<K, greedy::Flag>();
    std::vector<std::string> seen;
    if (observed) s.on_event([&](const stackup::Event& e) { seen.emplace_back(e.component); });
    s.up();
    CHECK(s.is_running());
    s.down();
    CHECK(s.is_provisioned());
    CHECK_FALSE(s.is_running());
    s.down({.force = true});
    CHECK_FALSE(s.is_provisioned());
    if (observed) CHECK(seen == std::vector<std::string>{"the flag", "the flag", "the flag", "the flag", "the flag",
                                                         "the flag", "the flag", "the flag"});
  }
  auto stuck = kinds::make<K, greedy::Stuck>();
  try {
    stuck.up();
    FAIL("up of a component that cannot start succeeded");
  } catch (const stackup::TransitionError& e) {
    CHECK(std::string_view(e.what()).find("does not implement resume()") != std::string_view::npos);
  }
}
