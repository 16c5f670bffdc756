// DynamicStack and AnyComponent (DESIGN §7): what only a run-time stack has —
// StackDefinitionError at construction, roles and dependencies given at run time,
// type erasure, a stack of 10 000 components, cli::run over it. The semantics it
// shares with Stack<Cs...> are proven by the suites that run against both kinds
// (semantics, rollback, events, parallel, fault injection, cli).
#include "support/fake.hpp"
#include "support/kinds.hpp"

#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <unistd.h>

using stackup::AnyComponent;
using stackup::DynamicStack;
using stackup::State;
using stackup::Transition;
using fake::Fake;
using fake::Fixed;
using fake::Log;

namespace {

using Parts = std::vector<AnyComponent>;
using Strings = std::vector<std::string>;

/// No role, no base class: the two queries and the four actions. Its role comes
/// at run time, and it is told it (assign_role), which its log lines show.
struct Plain {
  bool provisioned = false, running = false;
  Log* log = nullptr;
  std::string told; // the role the AnyComponent gave it
  std::optional<Transition> fail;

  bool is_provisioned() const { return provisioned; }
  bool is_running() const { return running; }
  void provision() { act(Transition::provision), provisioned = true; }
  void resume() { act(Transition::resume), running = true; }
  void suspend() { act(Transition::suspend), running = false; }
  void deprovision() { act(Transition::deprovision), provisioned = running = false; }
  void assign_role(std::string_view role) { told = role; }

private:
  void act(Transition t) {
    if (log) log->push_back(std::string(stackup::to_string(t)) + " " + told);
    if (fail == t) throw std::runtime_error(told + ": " + std::string(stackup::to_string(t)) + " exploded");
  }
};

/// Only the two queries: no action at all, no role, no name.
struct Bare {
  bool up = false;
  bool is_provisioned() const { return true; }
  bool is_running() const { return up; }
};

/// A Component with everything the type can say about itself.
struct Described : stackup::StackComponent<Described> {
  static constexpr std::string_view role = "described";
  static constexpr std::string_view flavor = "test_flavor";
  static constexpr std::string_view depends_on[] = {"x", "y"};
  State at = State::deprovisioned;
  std::string_view name() const { return "the-name"; }
  std::string detail() const { return "pid 7"; }
  std::filesystem::path log_file() const { return "/var/log/described.log"; }
  bool is_provisioned() const { return at != State::deprovisioned; }
  bool is_running() const { return at == State::running; }
  void provision() { at = State::suspended; }
};

/// Counts live objects: the AnyComponent destroys what it wraps exactly once.
struct Counted {
  static inline int alive = 0;
  int id = 0;
  explicit Counted(int i) : id(i) { ++alive; }
  Counted(Counted&& o) noexcept : id(o.id) { ++alive; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  ~Counted() { --alive; }
  bool is_provisioned() const { return true; }
  bool is_running() const { return true; }
};

Parts parts_of(std::vector<std::pair<std::string, Strings>> spec) {
  Parts parts;
  for (auto& [role, deps] : spec) parts.emplace_back(role, Bare{}, deps);
  return parts;
}

/// The StackDefinitionError that building `parts` throws, or "" if it builds.
std::string definition_error(Parts parts, std::string name = "local") {
  try {
    DynamicStack s{std::move(name), std::move(parts)};
  } catch (const stackup::StackDefinitionError& e) {
    return e.what();
  }
  return "";
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

} // namespace

// ---- StackDefinitionError ---------------------------------------------------------------

TEST_CASE("dynamic: a duplicate role is refused, naming both positions (1-based)") {
  CHECK(definition_error(parts_of({{"store", {}}, {"cache", {}}, {"web", {}}, {"cache", {}}})) ==
        "stackup: stack 'local' cannot exist: duplicate role 'cache' (components 2 and 4); a stack holds one "
        "component per role: remove one of them or give it another role");
  // The first duplicate in listing order is the one named.
  CHECK(definition_error(parts_of({{"b", {}}, {"a", {}}, {"b", {}}, {"a", {}}, {"a", {}}})) ==
        "stackup: stack 'local' cannot exist: duplicate role 'b' (components 1 and 3); a stack holds one component "
        "per role: remove one of them or give it another role");
  // Typed and run-time components share one role space.
  Parts mixed;
  mixed.emplace_back(Fake<"cache">{});
  mixed.emplace_back("cache", Plain{});
  CHECK(contains(definition_error(std::move(mixed)), "duplicate role 'cache' (components 1 and 2)"));
}

TEST_CASE("dynamic: an empty role is refused, naming its position") {
  CHECK(definition_error(parts_of({{"store", {}}, {"", {}}})) ==
        "stackup: stack 'local' cannot exist: component 2 has an empty role: give every component a role");
}

TEST_CASE("dynamic: a dependency on a role the stack lacks is refused, listing the roles") {
  CHECK(definition_error(parts_of({{"a", {}}, {"model_deployer", {"a", "registry"}}, {"b", {}}})) ==
        "stackup: stack 'local' cannot exist: 'model_deployer' depends on 'registry', which the stack does not hold "
        "(roles: a, model_deployer, b): add a component with that role or remove it from depends_on");
  // A Component's static depends_on is checked the same way.
  Parts parts;
  parts.emplace_back(Described{});
  CHECK(contains(definition_error(std::move(parts)),
                 "'described' depends on 'x', which the stack does not hold (roles: described)"));
  // A long list is cut after 20 roles.
  std::vector<std::pair<std::string, Strings>> many;
  for (int i = 0; i < 25; ++i) many.push_back({std::string("r").append(std::to_string(i)), {}});
  many.push_back({"needy", {"absent"}});
  const std::string m = definition_error(parts_of(many));
  CHECK(contains(m, "(roles: r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17, r18, "
                    "r19, ... (6 more)): "));
}

TEST_CASE("dynamic: a dependency cycle is refused, showing the cycle's path") {
  CHECK(definition_error(parts_of({{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}})) ==
        "stackup: stack 'local' cannot exist: dependency cycle: a -> b -> c -> a; remove one depends_on entry on the "
        "cycle");
  // The path starts at the cycle's first component in listing order.
  CHECK(contains(definition_error(parts_of({{"c", {"a"}}, {"a", {"b"}}, {"b", {"c"}}})),
                 "dependency cycle: c -> a -> b -> c;"));
  // Only the cycle is shown, not what hangs off it.
  const std::string m =
      definition_error(parts_of({{"free", {}}, {"tail", {"y"}}, {"y", {"z"}}, {"z", {"w", "free"}}, {"w", {"y"}}}));
  CHECK(m == "stackup: stack 'local' cannot exist: dependency cycle: y -> z -> w -> y; remove one depends_on entry "
             "on the cycle");
}

TEST_CASE("dynamic: a dependency on itself is refused as a cycle naming it") {
  CHECK(definition_error(parts_of({{"x", {}}, {"a", {"x", "a"}}})) ==
        "stackup: stack 'local' cannot exist: dependency cycle: a -> a; remove one depends_on entry on the cycle");
}

TEST_CASE("dynamic: a moved-from AnyComponent in the vector is refused, naming its position") {
  Parts parts;
  parts.emplace_back(Fake<"a">{});
  parts.emplace_back(Fake<"b">{});
  AnyComponent taken = std::move(parts[1]);
  CHECK(taken.has_value());
  CHECK(definition_error(std::move(parts)) ==
        "stackup: stack 'local' cannot exist: component 2 is empty (a moved-from AnyComponent): put a component in "
        "it or leave it out");
}

TEST_CASE("dynamic: StackDefinitionError is a stackup::Error, and a refused stack destroys what it was given") {
  const int before = Counted::alive;
  {
    Parts parts;
    parts.emplace_back("one", Counted{1});
    parts.emplace_back("one", Counted{2});
    CHECK(Counted::alive == before + 2);
    CHECK_THROWS_AS((DynamicStack{std::move(parts)}), stackup::Error);
  }
  CHECK(Counted::alive == before);
}

// ---- UnknownComponentError -----------------------------------------------------------------

TEST_CASE("dynamic: up, down and get of a role the stack lacks list the valid roles") {
  Log log;
  auto s = kinds::make<kinds::Dynamic, Fake<"a">, Fake<"b", "a">, Fixed<"c">>("local");
  const std::string m = "stackup: stack 'local' has no component with role 'nope'; valid roles: a, b, c";
  CHECK_THROWS_WITH_AS(s.up("nope"), m.c_str(), stackup::UnknownComponentError);
  CHECK_THROWS_WITH_AS(s.up("nope", {.parallel = true}), m.c_str(), stackup::UnknownComponentError);
  CHECK_THROWS_WITH_AS(s.down("nope"), m.c_str(), stackup::UnknownComponentError);
  CHECK_THROWS_WITH_AS(s.down("nope", {.force = true}), m.c_str(), stackup::UnknownComponentError);
  CHECK_THROWS_WITH_AS((void)s.get("nope"), m.c_str(), stackup::UnknownComponentError);
  const DynamicStack& cs = s;
  CHECK_THROWS_WITH_AS((void)cs.get("nope"), m.c_str(), stackup::UnknownComponentError);
  CHECK_THROWS_AS((void)s.get(""), stackup::UnknownComponentError);
  CHECK_THROWS_AS((void)s.get("A"), stackup::UnknownComponentError); // roles are case-sensitive
  CHECK(std::string(s.unknown_role("nope").what()) == m);
  CHECK_FALSE(s.is_provisioned()); // nothing was done
}

// ---- AnyComponent -----------------------------------------------------------------------

TEST_CASE("AnyComponent: from a Component, role, depends_on, name, flavor, detail and log file come from its type") {
  AnyComponent a{Described{}};
  CHECK(a.has_value());
  CHECK(a.role() == "described");
  CHECK(a.depends_on() == Strings{"x", "y"});
  CHECK(a.name() == "the-name");
  CHECK(a.flavor() == "test_flavor");
  CHECK(a.detail() == "pid 7");
  CHECK(a.log_file() == "/var/log/described.log");
  CHECK(a.state() == State::deprovisioned);
  CHECK(a.has(Transition::provision));
  CHECK_FALSE(a.has(Transition::resume));
  CHECK_FALSE(a.has(Transition::suspend));
  CHECK_FALSE(a.has(Transition::deprovision));
  a.provision();
  CHECK(a.state() == State::suspended);
  CHECK(a.is_provisioned());
  CHECK_FALSE(a.is_running());
  a.target<Described>()->at = State::running;
  CHECK(a.state() == State::running);

  // What a type does not offer: the role as name, "custom", empty detail and log.
  AnyComponent f{Fake<"plain", "base">{}};
  CHECK(f.name() == "plain");
  CHECK(f.depends_on() == Strings{"base"});
  CHECK(f.flavor() == "custom");
  CHECK(f.detail().empty());
  CHECK(f.log_file().empty());
  for (Transition t : {Transition::provision, Transition::resume, Transition::suspend, Transition::deprovision})
    CHECK(f.has(t));
}

TEST_CASE("AnyComponent: a type with only the two queries, role and dependencies given at run time") {
  AnyComponent b{"cache", Bare{}, {"store", "tracker"}};
  CHECK(b.role() == "cache");
  CHECK(b.depends_on() == Strings{"store", "tracker"});
  CHECK(b.depends_on().size() == 2);
  CHECK(b.depends_on()[1] == "tracker");
  CHECK(b.name() == "cache");
  CHECK(b.flavor() == "custom");
  CHECK(b.detail().empty());
  CHECK(b.state() == State::suspended);
  for (Transition t : {Transition::provision, Transition::resume, Transition::suspend, Transition::deprovision})
    CHECK_FALSE(b.has(t));
  CHECK_THROWS_WITH_AS(b.resume(), "stackup: cache 'cache' does not implement resume()", stackup::NotImplementedError);
  CHECK_THROWS_AS(b.provision(), stackup::NotImplementedError);
  CHECK_THROWS_AS(b.suspend(), stackup::NotImplementedError);
  CHECK_THROWS_AS(b.deprovision(), stackup::NotImplementedError);
  b.target<Bare>()->up = true;
  CHECK(b.state() == State::running);

  AnyComponent none{"solo", Bare{}};
  CHECK(none.depends_on().empty());

  // A type with all four actions is told its run-time role.
  AnyComponent p{"worker", Plain{}};
  CHECK(p.target<Plain>()->told == "worker");
  p.provision();
  p.resume();
  CHECK(p.state() == State::running);

  // A Component given a role at run time takes that role and those dependencies.
  AnyComponent renamed{"other", Fake<"a", "z">{}, {"q"}};
  CHECK(renamed.role() == "other");
  CHECK(renamed.depends_on() == Strings{"q"});
  CHECK(renamed.target<Fake<"a", "z">>() != nullptr);
}

TEST_CASE("AnyComponent: target<T>() gives the wrapped object of the right type, nullptr otherwise") {
  AnyComponent a{Fake<"a">{}};
  Fake<"a">* p = a.target<Fake<"a">>();
  REQUIRE(p != nullptr);
  CHECK(a.target<Fake<"b">>() == nullptr);
  CHECK(a.target<Bare>() == nullptr);
  CHECK(a.target<const Fake<"a">>() == nullptr); // the exact type, as std::function::target
  a.provision();
  CHECK(p->provisioned); // the very object the calls reach
  const AnyComponent& c = a;
  CHECK(c.target<Fake<"a">>() == p);
  CHECK(c.target<Plain>() == nullptr);
}

TEST_CASE("AnyComponent: moving leaves an empty one whose calls throw stackup::Error") {
  const int before = Counted::alive;
  {
    AnyComponent a{"x", Counted{1}, {"y"}};
    CHECK(Counted::alive == before + 1);
    const void* object = a.target<Counted>();
    AnyComponent b = std::move(a);
    CHECK(Counted::alive == before + 1); // moved, not copied: the same object
    CHECK(b.target<Counted>() == object);
    CHECK(b.role() == "x");
    CHECK(b.depends_on() == Strings{"y"});
    CHECK(b.has_value());
    CHECK_FALSE(a.has_value()); // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(a.target<Counted>() == nullptr);
    const std::string empty = "stackup: this AnyComponent is empty (it was moved from): assign a component to it first";
    CHECK_THROWS_WITH_AS((void)a.is_provisioned(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS((void)a.is_running(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS((void)a.state(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS((void)a.name(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS((void)a.flavor(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS((void)a.detail(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS((void)a.has(Transition::provision), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS(a.provision(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS(a.resume(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS(a.suspend(), empty.c_str(), stackup::Error);
    CHECK_THROWS_WITH_AS(a.deprovision(), empty.c_str(), stackup::Error);

    // Move assignment destroys what the target held, and can refill an empty one.
    AnyComponent c{"z", Counted{2}};
    CHECK(Counted::alive == before + 2);
    c = std::move(b);
    CHECK(Counted::alive == before + 1);
    CHECK(c.target<Counted>()->id == 1);
    CHECK(c.role() == "x");
    a = std::move(c);
    CHECK(a.has_value());
    CHECK(a.target<Counted>()->id == 1);
    AnyComponent& same = a;
    a = std::move(same); // self-move changes nothing
    CHECK(a.has_value());
    CHECK(Counted::alive == before + 1);
  }
  CHECK(Counted::alive == before); // destroyed exactly once
}

TEST_CASE("AnyComponent: the shipped components are usable wrapped in a DynamicStack") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("stackup-test-dynamic-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(dir, ec);
  Parts parts;
  parts.emplace_back(stackup::LocalDirectory<"artifact_store">{{.name = "artifacts", .path = dir / "artifacts"}});
  parts.emplace_back(stackup::Command<"marker">{{
      .provision = "touch '" + (dir / "marker").string() + "'",
      .deprovision = "rm '" + (dir / "marker").string() + "'",
      .is_provisioned = "test -e '" + (dir / "marker").string() + "'",
  }});
  DynamicStack s{"shipped", std::move(parts)};
  CHECK(s.get("artifact_store").flavor() == "local_directory");
  CHECK(s.get("artifact_store").name() == "artifacts");
  CHECK(s.get("marker").flavor() == "command");
  CHECK(s.get("marker").has(Transition::suspend)); // the member exists; the command is empty
  s.up();
  CHECK(fs::is_directory(dir / "artifacts"));
  CHECK(fs::exists(dir / "marker"));
  const auto rows = s.status();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].state == State::running);
  CHECK(rows[0].detail == (dir / "artifacts").string());
  CHECK(rows[1].state == State::running);
  fake::Recorder rec;
  s.on_event(rec.observer());
  s.down(); // neither can suspend: one absent by type, one by an empty command
  CHECK(rec.lines == std::vector<std::string>{"suspend marker started", "suspend marker not_implemented",
                                              "suspend artifact_store not_implemented"});
  s.down({.force = true});
  CHECK_FALSE(fs::exists(dir / "artifacts"));
  CHECK_FALSE(fs::exists(dir / "marker"));
  fs::remove_all(dir, ec);
}

TEST_CASE("AnyComponent: the shipped components take a role given at run time, without a template argument") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("stackup-test-dynamic-rt-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  const std::string flag = (dir / "flag").string();
  Parts parts;
  parts.emplace_back("files", stackup::LocalDirectory{{.path = dir / "files"}});
  parts.emplace_back("flag", stackup::Command{{.provision = "touch '" + flag + "'",
                                               .deprovision = "rm '" + flag + "'",
                                               .is_provisioned = "test -e '" + flag + "'"}},
                     Strings{"files"});
  parts.emplace_back("sleeper", stackup::LocalDaemon{{.command = {"sleep", "600"}, .state_dir = dir / "state"}},
                     Strings{"flag"});
  DynamicStack s{"runtime-roles", std::move(parts)};
  struct Cleanup { // whatever happens below, no process is left running
    DynamicStack& s;
    ~Cleanup() {
      try {
        s.down({.force = true});
      } catch (...) {
      }
    }
  } cleanup{s};

  // Each was told its role: names, messages and state files use it.
  CHECK(s.get("files").name() == "files");
  CHECK(s.get("flag").name() == "flag");
  CHECK(s.get("sleeper").name() == "sleeper");
  CHECK(s.get("files").target<stackup::LocalDirectory<>>() != nullptr);
  CHECK(s.get("sleeper").flavor() == "local_daemon");
  s.up();
  CHECK(s.is_running());
  CHECK(fs::exists(dir / "files"));
  CHECK(fs::exists(flag));
  const auto rows = s.status();
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].flavor == "local_directory");
  CHECK(rows[1].flavor == "command");
  CHECK(rows[2].flavor == "local_daemon");
  CHECK(rows[2].state == State::running);
  CHECK(contains(rows[2].detail, "pid "));

  // The daemon, which needs the flag, stops first; the command has no suspend
  // command: as the target of a down, an error that suggests force.
  CHECK_THROWS_WITH_AS(s.down("flag"), doctest::Contains("force"), stackup::TransitionError);
  CHECK_FALSE(s.get("sleeper").is_running());
  CHECK(s.get("sleeper").is_provisioned());

  s.down({.force = true});
  CHECK_FALSE(s.is_provisioned());
  CHECK_FALSE(fs::exists(dir / "files"));
  CHECK_FALSE(fs::exists(flag));

  // A failure names the run-time role.
  Parts failing;
  failing.emplace_back("files", stackup::LocalDirectory{{.path = dir / "files"}});
  failing.emplace_back("flag", stackup::Command{{.provision = "exit 3", .is_provisioned = "false"}}, Strings{"files"});
  DynamicStack f{"failing", std::move(failing)};
  try {
    f.up();
    FAIL("up should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "flag");
    CHECK(contains(e.what(), "command 'flag' (flag): provision `exit 3` failed"));
  }
  CHECK_FALSE(fs::exists(dir / "files")); // rolled back
  fs::remove_all(dir, ec);
}

// ---- a stack of typed and run-time components -------------------------------------------

namespace {
// store <- tracker ; store <- cache (run-time) ; cache, tracker <- web (run-time) ; web <- deployer
using Store = Fake<"store">;
using Tracker = Fake<"tracker", "store">;
using Deployer = Fake<"deployer", "web">;

DynamicStack mixed(Log& log) {
  Parts parts;
  parts.emplace_back(Deployer{});                                    // 0
  parts.emplace_back("web", Plain{}, Strings{"cache", "tracker"});   // 1
  parts.emplace_back(Tracker{});                                     // 2
  parts.emplace_back("cache", Plain{}, Strings{"store"});            // 3
  parts.emplace_back(Store{});                                       // 4
  parts.emplace_back("idle", Bare{.up = true});                      // 5: always running, no actions
  DynamicStack s{"mixed", std::move(parts)};
  s.get("deployer").target<Deployer>()->log = &log;
  s.get("web").target<Plain>()->log = &log;
  s.get("tracker").target<Tracker>()->log = &log;
  s.get("cache").target<Plain>()->log = &log;
  s.get("store").target<Store>()->log = &log;
  return s;
}
} // namespace

TEST_CASE("dynamic: a mixed stack orders typed and run-time components by their dependencies across both") {
  Log log;
  DynamicStack s = mixed(log);
  CHECK(s.name() == "mixed");
  CHECK(s.size() == 6);
  CHECK(kinds::roles(s) == std::vector<std::string_view>{"deployer", "web", "tracker", "cache", "store", "idle"});
  // store first; then the lowest listed whose dependencies are placed: tracker (2) before cache (3); idle last.
  CHECK(kinds::order(s) == std::vector<std::size_t>{4, 2, 3, 1, 0, 5});
  CHECK(s.find("cache") == 3);
  CHECK(s.find("deployer") == 0);
  CHECK(s.find("idle") == 5);
  CHECK(s.find("nope") == s.size());
  CHECK(s.find("") == s.size());

  fake::Recorder rec;
  s.on_event(rec.observer());
  s.up();
  CHECK(log == Log{"provision store", "provision tracker", "provision cache", "provision web", "provision deployer",
                   "resume store", "resume tracker", "resume cache", "resume web", "resume deployer"});
  CHECK(s.is_running());
  // Events name run-time roles like typed ones, and their views stay valid while the stack lives.
  CHECK(rec.lines.back() == "resume idle already_done");
  CHECK(rec.events[4].role == "cache");
  CHECK(rec.events[4].component == "cache");
  CHECK(rec.events[4].stack == "mixed");

  // Down of a run-time component takes its dependents (run-time and typed) down first.
  log.clear();
  s.down("cache");
  CHECK(log == Log{"suspend deployer", "suspend web", "suspend cache"});
  CHECK(s.get("tracker").is_running());
  CHECK(s.get("store").is_running());

  // Up of a typed component brings its run-time dependencies up first.
  log.clear();
  s.up("deployer");
  CHECK(log == Log{"resume cache", "resume web", "resume deployer"});

  // A failing run-time component rolls back typed ones too.
  log.clear();
  s.down({.force = true});
  s.get("web").target<Plain>()->fail = Transition::resume;
  try {
    s.up();
    FAIL("up should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "web");
    CHECK(e.transition() == Transition::resume);
    CHECK_THROWS_WITH(std::rethrow_exception(e.cause()), "web: resume exploded");
  }
  for (const auto& row : s.status())
    if (row.role != "idle") CHECK(row.state == State::deprovisioned);

  // Every row in listing order, typed and run-time alike.
  s.get("web").target<Plain>()->fail.reset();
  s.up("web");
  const auto rows = s.status();
  static_assert(std::is_same_v<decltype(s.status()), std::vector<stackup::ComponentStatus>>);
  REQUIRE(rows.size() == 6);
  const std::vector<std::pair<std::string_view, State>> want{
      {"deployer", State::deprovisioned}, {"web", State::running},   {"tracker", State::running},
      {"cache", State::running},          {"store", State::running}, {"idle", State::running}};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    CHECK(rows[i].role == want[i].first);
    CHECK(rows[i].name == want[i].first);
    CHECK(rows[i].state == want[i].second);
    CHECK(rows[i].flavor == "custom");
  }
}

TEST_CASE("dynamic: a moved DynamicStack keeps working, and its roles and names stay valid") {
  Log log;
  DynamicStack s = mixed(log);
  DynamicStack t = std::move(s);
  t.up();
  CHECK(t.is_running());
  CHECK(kinds::roles(t) == std::vector<std::string_view>{"deployer", "web", "tracker", "cache", "store", "idle"});
  CHECK(t.status()[1].role == "web");
  CHECK(t.find("store") == 4);
  CHECK(t.name() == "mixed");
  t.down({.force = true});
  CHECK_FALSE(t.get("store").is_provisioned());
}

TEST_CASE("dynamic: an empty stack does nothing and says so") {
  DynamicStack s{"empty", {}};
  CHECK(s.size() == 0);
  CHECK(s.order().empty());
  CHECK(s.roles().empty());
  CHECK(s.status().empty());
  CHECK(s.find("x") == 0);
  s.up();
  s.up({.parallel = true});
  s.down({.force = true});
  s.down({.force = true, .parallel = true});
  CHECK(s.is_running());
  CHECK_THROWS_WITH_AS(s.up("x"), "stackup: stack 'empty' has no component with role 'x'; valid roles: ",
                       stackup::UnknownComponentError);
}

TEST_CASE("dynamic: 10 000 components with a chain through all of them construct, in dependency order") {
  constexpr std::size_t n = 10'000;
  // Listed from the top of the chain down: c0 needs c1, which needs c2, ... so
  // the action order is the listing reversed. Every tenth also needs the last one.
  Parts parts;
  parts.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Strings deps;
    if (i + 1 < n) deps.push_back("c" + std::to_string(i + 1));
    if (i % 10 == 0 && i + 1 < n) deps.push_back("c" + std::to_string(n - 1));
    parts.emplace_back("c" + std::to_string(i), Bare{.up = true}, std::move(deps));
  }
  DynamicStack s{"chain", std::move(parts)};
  REQUIRE(s.size() == n);
  const auto order = s.order();
  REQUIRE(order.size() == n);
  bool reversed = true;
  for (std::size_t i = 0; i < n; ++i) reversed = reversed && order[i] == n - 1 - i;
  CHECK(reversed);
  CHECK(s.find("c0") == 0);
  CHECK(s.find("c9999") == n - 1);
  CHECK(s.find("c10000") == n);
  CHECK(s.get("c4321").depends_on().front() == "c4322");
  s.up(); // all running already: nothing to do, but every component is visited
  s.up("c0");
  CHECK(s.is_running());

  // The same chain closed into a cycle: refused, and the path shown whole.
  Parts ring;
  ring.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    ring.emplace_back("c" + std::to_string(i), Bare{}, Strings{"c" + std::to_string((i + 1) % n)});
  const std::string m = definition_error(std::move(ring), "ring");
  CHECK(m.starts_with("stackup: stack 'ring' cannot exist: dependency cycle: c"));
  CHECK(m.ends_with("; remove one depends_on entry on the cycle"));
  CHECK(std::count(m.begin(), m.end(), '>') == static_cast<std::ptrdiff_t>(n));
}

// ---- cli::run over a DynamicStack -----------------------------------------------------------
// The whole grammar runs against both kinds in test_cli.cpp; here, a stack with
// run-time roles, as a host that reads its stack from a file would build.

namespace {
struct CliRun {
  int code;
  std::string out, err;
};
CliRun run_cli(DynamicStack& s, std::vector<std::string_view> words) {
  std::ostringstream out, err;
  const int code = stackup::cli::run(s, std::span<const std::string_view>(words), out, err, {.program = "ctl"});
  return {code, out.str(), err.str()};
}
} // namespace

TEST_CASE("dynamic: cli::run drives a stack of run-time roles: stack up, status, <role> down, exit codes") {
  Log log;
  DynamicStack s = mixed(log);
  auto r = run_cli(s, {"stack", "up"});
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(contains(r.out, "+ cache 'cache' provisioned  "));
  CHECK(contains(r.out, "= idle 'idle' already running\n"));
  CHECK(contains(r.out, "stack 'mixed' is up  "));
  CHECK(s.is_running());

  r = run_cli(s, {"stack", "status"});
  CHECK(r.code == 0);
  CHECK(r.out == "ROLE      NAME      FLAVOR  STATE          DETAIL\n"
                 "deployer  deployer  custom  running\n"
                 "web       web       custom  running\n"
                 "tracker   tracker   custom  running\n"
                 "cache     cache     custom  running\n"
                 "store     store     custom  running\n"
                 "idle      idle      custom  running\n"
                 "stack 'mixed': 6 of 6 running, 6 provisioned\n");

  log.clear();
  r = run_cli(s, {"cache", "down"});
  CHECK(r.code == 0);
  const std::string note = r.out.substr(0, r.out.find('\n'));
  CHECK(note == "* deployer, web depend on cache: they go down first"); // named in the order they go down
  CHECK(log == Log{"suspend deployer", "suspend web", "suspend cache"});

  r = run_cli(s, {"idle", "down"}); // no suspend, no deprovision: an error, and --force would not help
  CHECK(r.code == 1);
  CHECK(contains(r.err, "error: idle down failed\n"));
  CHECK(contains(r.err, "it cannot be brought down"));
  CHECK(!contains(r.err, "--force"));

  r = run_cli(s, {"cahce", "up"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "error: unknown component role 'cahce'; valid roles: deployer, web, tracker, cache, store, "
                        "idle (or 'stack' for all of them)\n"));

  s.get("store").target<Store>()->fail = Transition::suspend;
  r = run_cli(s, {"stack", "down", "--force"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "error: stack down --force failed\n"));
  CHECK(contains(r.err, "store 'store' failed to suspend: store: suspend exploded"));
  CHECK_FALSE(s.get("store").is_provisioned()); // its deprovision was still tried

  // main's argc/argv form.
  std::string prog = "/bin/ctl", stack = "stack", status = "status";
  char* argv[] = {prog.data(), stack.data(), status.data(), nullptr};
  std::ostringstream out, err;
  CHECK(stackup::cli::run(s, 3, argv, out, err) == 0);
  CHECK(contains(out.str(), "stack 'mixed': 1 of 6 running, 1 provisioned\n"));
}

TEST_CASE("dynamic: cli::run <role> logs reaches a run-time component's log file through AnyComponent") {
  namespace fs = std::filesystem;
  const fs::path file = fs::temp_directory_path() / ("stackup-test-dynamic-log-" + std::to_string(::getpid()));
  {
    std::ofstream(file) << "one\ntwo\nthree\n";
  }
  struct Logged {
    fs::path file;
    bool is_provisioned() const { return true; }
    bool is_running() const { return true; }
    fs::path log_file() const { return file; }
  };
  Parts parts;
  parts.emplace_back("server", Logged{file});
  parts.emplace_back("quiet", Bare{.up = true}, Strings{"server"});
  DynamicStack s{"logs", std::move(parts)};
  CHECK(s.get("server").log_file() == file.string());
  auto r = run_cli(s, {"server", "logs", "--tail", "2"});
  CHECK(r.code == 0);
  CHECK(r.out == "two\nthree\n");
  r = run_cli(s, {"quiet", "logs"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "quiet 'quiet' (custom) keeps no log; components with a log: server"));
  std::error_code ec;
  fs::remove(file, ec);
}

TEST_CASE("dynamic: a moved-from DynamicStack is empty: it acts on nothing") {
  Log log;
  DynamicStack s = mixed(log);
  DynamicStack t = std::move(s);
  // NOLINTBEGIN(bugprone-use-after-move): the moved-from state is what is tested
  CHECK(s.size() == 0);
  CHECK(s.status().empty());
  CHECK(s.find("store") == s.size());
  s.up();
  s.down({.force = true});
  CHECK_THROWS_AS(s.up("store"), stackup::UnknownComponentError);
  // NOLINTEND(bugprone-use-after-move)
  CHECK(log.empty()); // none of t's components was touched through s
  CHECK_FALSE(t.get("store").is_provisioned());

  DynamicStack u = mixed(log);
  u = std::move(t);
  t.up(); // NOLINT(bugprone-use-after-move)
  CHECK(log.empty());
  u.up();
  CHECK(u.is_running());
}

// ---- get(): a handle that cannot replace or empty the component ------------------------------

// Assigning to or moving from what get() returned used to free the object the
// stack's plan points to (a use-after-free at the next up() or status()).
static_assert(!std::is_assignable_v<stackup::ComponentRef, AnyComponent>);
static_assert(!std::is_assignable_v<stackup::ComponentRef, AnyComponent&&>);
static_assert(!std::is_assignable_v<stackup::ComponentRef&, const stackup::ComponentRef&>);
static_assert(!std::is_move_constructible_v<stackup::ComponentRef>);
static_assert(!std::is_constructible_v<AnyComponent, stackup::ComponentRef&&>);
static_assert(!std::is_convertible_v<stackup::ComponentRef, AnyComponent&>);
static_assert(std::is_copy_constructible_v<stackup::ComponentRef>);
static_assert(!std::is_assignable_v<stackup::ConstComponentRef&, const stackup::ConstComponentRef&>);
static_assert(!std::is_move_constructible_v<stackup::ConstComponentRef>);
static_assert(std::is_same_v<decltype(std::declval<DynamicStack&>().get("a")), stackup::ComponentRef>);
static_assert(std::is_same_v<decltype(std::declval<const DynamicStack&>().get("a")), stackup::ConstComponentRef>);
static_assert(std::is_same_v<decltype(std::declval<const DynamicStack&>().get("a").target<Plain>()), const Plain*>);

TEST_CASE("dynamic: get() hands out a handle with the component's queries, actions and target<T>()") {
  Log log;
  Parts parts;
  Plain plain;
  plain.log = &log;
  parts.emplace_back("a", plain);
  parts.emplace_back("b", plain, Strings{"a"});
  DynamicStack s{"local", std::move(parts)};
  stackup::ComponentRef a = s.get("a");
  CHECK(a.role() == "a");
  CHECK(a.name() == "a");
  CHECK(a.flavor() == "custom");
  CHECK(s.get("b").depends_on() == Strings{"a"});
  CHECK(a.state() == State::deprovisioned);
  CHECK(a.has(Transition::suspend));
  a.provision();
  a.resume();
  CHECK(a.is_running());
  CHECK(log == Log{"provision a", "resume a"});
  REQUIRE(a.target<Plain>() != nullptr);
  CHECK(a.target<Plain>()->told == "a");
  CHECK(a.target<Fake<"a">>() == nullptr);
  const stackup::ComponentRef copy = a; // a second handle to the same component
  CHECK(copy.target<Plain>() == a.target<Plain>());
  const stackup::ConstComponentRef read = a;
  CHECK(read.is_running());
  const DynamicStack& cs = s;
  CHECK(cs.get("a").target<Plain>() == a.target<Plain>());
  CHECK(cs.get("b").state() == State::deprovisioned);
  CHECK(cs.get("b").owned_paths().empty());
  // The stack still acts on the same objects the handles reach.
  s.up();
  CHECK(s.get("b").is_running());
  CHECK(s.status()[1].state == State::running);
}

// ---- one owner per path ---------------------------------------------------------------------

namespace {
/// Owns the paths it is given, as LocalDaemon (state_dir) and LocalDirectory (path) do.
struct Owner {
  std::vector<std::string> paths;
  bool is_provisioned() const { return false; }
  bool is_running() const { return false; }
  const std::vector<std::string>& owned_paths() const { return paths; }
};
template <stackup::FixedString R> struct TypedOwner : stackup::StackComponent<TypedOwner<R>> {
  static constexpr std::string_view role = R;
  TypedOwner() = default;
  explicit TypedOwner(std::string p) : path(std::move(p)) {}
  std::string path;
  std::array<std::string_view, 1> owned_paths() const { return {path}; }
};
std::string owners_problem(std::vector<std::pair<std::string, std::vector<std::string>>> owners) {
  Parts parts;
  for (auto& [role, paths] : owners) parts.emplace_back(role, Owner{paths});
  try {
    DynamicStack s{"local", std::move(parts)};
  } catch (const stackup::StackDefinitionError& e) {
    return e.what();
  }
  return {};
}
} // namespace

TEST_CASE("dynamic: two components that own the same path, or one inside the other's, cannot share a stack") {
  const std::string fix = ": one would remove or take over the other's files (a pid file, data); give each "
                          "component a directory of its own, not inside another's";
  CHECK(owners_problem({{"db", {"/srv/state"}}, {"web", {"/srv/state"}}}) ==
        "stackup: stack 'local' cannot exist: 'db' owns /srv/state and 'web' owns /srv/state too" + fix);
  CHECK(owners_problem({{"data", {"/srv/app"}}, {"web", {"/srv/app/.stackup/web"}}}) ==
        "stackup: stack 'local' cannot exist: 'data' owns /srv/app and 'web' owns /srv/app/.stackup/web, inside it" + fix);
  CHECK(owners_problem({{"web", {"/srv/app/.stackup/web"}}, {"data", {"/srv/app/"}}}) ==
        "stackup: stack 'local' cannot exist: 'web' owns /srv/app/.stackup/web and 'data' owns /srv/app, which holds it" + fix);
  CHECK(owners_problem({{"a", {"/"}}, {"b", {"/x"}}}).find("'a' owns / and 'b' owns /x, inside it") != std::string::npos);
  // A shared prefix is not an overlap; neither is a component's own pair of paths.
  CHECK(owners_problem({{"a", {"/srv/app"}}, {"b", {"/srv/app-2"}}, {"c", {"/srv/app.d"}}, {"d", {"/srv/ap"}}}).empty());
  CHECK(owners_problem({{"a", {"/srv/x", "/srv/x/log"}}, {"b", {"/srv/y"}}}).empty());
  // Hidden behind a same-owner neighbour in path order.
  CHECK(owners_problem({{"a", {"/srv/x", "/srv/x/a"}}, {"b", {"/srv/x/b"}}}).find("'a' owns /srv/x and 'b' owns /srv/x/b") !=
        std::string::npos);
  CHECK(owners_problem({{"a", {"/srv/x/a"}}, {"b", {"/srv/x-"}}, {"c", {"/srv/x"}}}).find("'a' owns /srv/x/a and 'c' owns "
                                                                                         "/srv/x, which holds it") !=
        std::string::npos);
}

TEST_CASE("dynamic and typed: the shipped components say what they own, and a clash is a StackDefinitionError") {
  const auto here = std::filesystem::current_path().lexically_normal().string();
  {
    Parts parts;
    parts.emplace_back("db", stackup::LocalDaemon{{.command = {"true"}, .state_dir = "state/x"}});
    parts.emplace_back("web", stackup::LocalDaemon{{.command = {"true"}, .state_dir = "state/./x/"}});
    CHECK_THROWS_WITH_AS((DynamicStack{"local", std::move(parts)}),
                         ("stackup: stack 'local' cannot exist: 'db' owns " + here + "/state/x and 'web' owns " + here +
                          "/state/x too: one would remove or take over the other's files (a pid file, data); give each "
                          "component a directory of its own, not inside another's")
                             .c_str(),
                         stackup::StackDefinitionError);
  }
  {
    Parts parts;
    parts.emplace_back("web", stackup::LocalDaemon{{.command = {"true"}, .state_dir = "app/.stackup/web"}});
    parts.emplace_back("files", stackup::LocalDirectory{{.path = "app"}});
    CHECK_THROWS_AS((DynamicStack{"local", std::move(parts)}), stackup::StackDefinitionError);
    Parts apart;
    apart.emplace_back("web", stackup::LocalDaemon{{.command = {"true"}, .state_dir = "app/.stackup/web"}});
    apart.emplace_back("files", stackup::LocalDirectory{{.path = "app-files"}});
    CHECK(DynamicStack{"local", std::move(apart)}.get("files").owned_paths() == Strings{here + "/app-files"});
  }
  using A = TypedOwner<"a">;
  using B = TypedOwner<"b">;
  CHECK_THROWS_WITH_AS((stackup::Stack{"typed", A{"/srv/a"}, B{"/srv/a/b"}}),
                       "stackup: stack 'typed' cannot exist: 'a' owns /srv/a and 'b' owns /srv/a/b, inside it: one would "
                       "remove or take over the other's files (a pid file, data); give each component a directory of its "
                       "own, not inside another's",
                       stackup::StackDefinitionError);
  CHECK_NOTHROW((stackup::Stack{"typed", A{"/srv/a"}, B{"/srv/b"}}));
  using D = stackup::LocalDaemon<"db">;
  using W = stackup::LocalDaemon<"web">;
  CHECK_THROWS_AS((stackup::Stack{"typed", D{{.command = {"true"}, .state_dir = "s"}}, W{{.command = {"true"}, .state_dir = "s"}}}),
                  stackup::StackDefinitionError);
}

// ---- StackDefinitionError as data -------------------------------------------------------

namespace {
/// The StackDefinitionError that building `parts` throws (Kind::other if it builds).
stackup::StackDefinitionError definition_error_of(Parts parts, std::string name = "local") {
  try {
    DynamicStack s{std::move(name), std::move(parts)};
  } catch (const stackup::StackDefinitionError& e) {
    return e;
  }
  return stackup::StackDefinitionError("built");
}
using Kind = stackup::StackDefinitionError::Kind;
using Indices = std::vector<std::size_t>;
} // namespace

TEST_CASE("dynamic: a definition error carries its kind, roles and listing indices") {
  {
    const auto e = definition_error_of(parts_of({{"store", {}}, {"cache", {}}, {"web", {}}, {"cache", {}}}));
    CHECK(e.kind() == Kind::duplicate_role);
    CHECK(e.stack() == "local");
    CHECK(e.roles() == Strings{"cache", "cache"});
    CHECK(e.components() == Indices{1, 3});
    CHECK(e.paths().empty());
  }
  {
    const auto e = definition_error_of(parts_of({{"store", {}}, {"", {}}}));
    CHECK(e.kind() == Kind::empty_role);
    CHECK(e.roles() == Strings{""});
    CHECK(e.components() == Indices{1});
  }
  {
    const auto e = definition_error_of(parts_of({{"a", {}}, {"model_deployer", {"a", "registry"}}, {"b", {}}}));
    CHECK(e.kind() == Kind::unknown_dependency);
    CHECK(e.roles() == Strings{"model_deployer", "registry"});
    CHECK(e.components() == Indices{1});
  }
  {
    // The cycle from its first component in listing order, without what hangs off it.
    const auto e = definition_error_of(
        parts_of({{"free", {}}, {"tail", {"y"}}, {"z", {"w", "free"}}, {"y", {"z"}}, {"w", {"y"}}}));
    CHECK(e.kind() == Kind::cycle);
    CHECK(e.roles() == Strings{"z", "w", "y"});
    CHECK(e.components() == Indices{2, 4, 3});
    CHECK(std::string(e.what()) == "stackup: stack 'local' cannot exist: dependency cycle: z -> w -> y -> z; remove one "
                                   "depends_on entry on the cycle");
  }
  {
    const auto e = definition_error_of(parts_of({{"x", {}}, {"a", {"x", "a"}}}));
    CHECK(e.kind() == Kind::cycle);
    CHECK(e.roles() == Strings{"a"});
    CHECK(e.components() == Indices{1});
  }
  {
    Parts parts;
    parts.emplace_back(Fake<"a">{});
    parts.emplace_back(Fake<"b">{});
    AnyComponent taken = std::move(parts[1]);
    const auto e = definition_error_of(std::move(parts));
    CHECK(e.kind() == Kind::empty_component);
    CHECK(e.roles().empty());
    CHECK(e.components() == Indices{1});
  }
  {
    // Overlapping paths, owners in listing order, paths without a trailing slash.
    Parts parts;
    parts.emplace_back("web", Owner{{"/srv/app/.stackup/web"}});
    parts.emplace_back("free", Owner{{"/srv/other"}});
    parts.emplace_back("data", Owner{{"/srv/app/"}});
    const auto e = definition_error_of(std::move(parts));
    CHECK(e.kind() == Kind::overlapping_paths);
    CHECK(e.roles() == Strings{"web", "data"});
    CHECK(e.components() == Indices{0, 2});
    CHECK(e.paths() == Strings{"/srv/app/.stackup/web", "/srv/app"});
  }
  // Built from a message alone: no data.
  const stackup::StackDefinitionError plain("stackup: something else");
  CHECK(plain.kind() == Kind::other);
  CHECK(plain.roles().empty());
  CHECK(plain.components().empty());
  CHECK(std::string(plain.what()) == "stackup: something else");
}

TEST_CASE("typed: overlapping paths carry their kind, roles and paths") {
  using A = TypedOwner<"a">;
  using B = TypedOwner<"b">;
  try {
    stackup::Stack s{"typed", A{"/srv/a/b/"}, B{"/srv/a"}};
    FAIL("the stack was built");
  } catch (const stackup::StackDefinitionError& e) {
    CHECK(e.kind() == Kind::overlapping_paths);
    CHECK(e.stack() == "typed");
    CHECK(e.roles() == Strings{"a", "b"});
    CHECK(e.components() == Indices{0, 1});
    CHECK(e.paths() == Strings{"/srv/a/b", "/srv/a"});
    CHECK(std::string(e.what()).starts_with("stackup: stack 'typed' cannot exist: 'a' owns /srv/a/b and 'b' owns /srv/a, "
                                            "which holds it: "));
  }
}
