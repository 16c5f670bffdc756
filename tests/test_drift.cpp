// Drift (DESIGN §11): a component that says it is not current (`is_current()`,
// its settings changed since it was provisioned) is brought up to date by `up`
// — its `update()` if it has one, else suspend (if running), deprovision,
// provision — then resumed as usual; status shows it `outdated` until then.
// Both kinds of stack (tests/support/kinds.hpp), sequential and parallel, with
// and without an observer (the quiet paths and the engine's walk).
#include "support/kinds.hpp"

#include <stackup/stackup.hpp> // and with it detail::current_query_round() (the container component asks in rounds)

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using L = std::vector<std::string>;

// Where the components' state lives (they are moved into the stack).
struct World {
  L log;
  std::string fail; // "role:action" that throws
};
struct Power {
  bool provisioned = false, running = false, current = true;
};

// Every action logs "role:action" and throws when World::fail names it.
template <class Self> struct Plain {
  World* w = nullptr;
  Power* p = nullptr;
  [[nodiscard]] bool is_provisioned() const { return p->provisioned; }
  [[nodiscard]] bool is_running() const { return p->running; }
  void act(std::string_view what) {
    const std::string entry = std::string(Self::role) + ":" + std::string(what);
    w->log.push_back(entry);
    if (w->fail == entry) throw std::runtime_error(entry + " failed");
  }
  void provision() {
    act("provision");
    p->provisioned = true;
    p->current = true; // provisioned with the settings of now
  }
  void resume() {
    act("resume");
    p->running = true;
  }
  void suspend() {
    act("suspend");
    p->running = false;
  }
  void deprovision() {
    act("deprovision");
    p->provisioned = p->running = false;
  }
};
template <class Self> struct Drifting : Plain<Self> {
  [[nodiscard]] bool is_current() const { return this->p->current; }
};

// db: recreated when outdated; app (needs db): updated in place; web (needs
// app): no drift members at all, so always current.
struct Db : Drifting<Db> {
  static constexpr std::string_view role = "db";
};
struct App : Drifting<App> {
  static constexpr std::string_view role = "app";
  static constexpr std::string_view depends_on[] = {"db"};
  void update() {
    act("update");
    p->current = true;
  }
};
struct Web : Plain<Web> {
  static constexpr std::string_view role = "web";
  static constexpr std::string_view depends_on[] = {"app"};
};

struct Fixture {
  World w;
  Power db{true, true, true}, app{true, true, true}, web{true, true, true};
};

template <class K> auto make(Fixture& f) {
  return kinds::make_from<K>("drift", Db{{{&f.w, &f.db}}}, App{{{&f.w, &f.app}}}, Web{{&f.w, &f.web}});
}

// How an up is run: quiet, with an observer, in parallel.
enum class Mode { quiet, observed, parallel };
struct Seen {
  std::vector<stackup::Event> events;
};
template <class S> void watch(S& s, Mode m, Seen& seen) {
  if (m != Mode::quiet) s.on_event([&seen](const stackup::Event& e) { seen.events.push_back(e); });
}
stackup::UpOptions options(Mode m) { return {.parallel = m == Mode::parallel}; }

} // namespace

TEST_CASE_TEMPLATE("drift: up recreates an outdated component without update(): suspend, deprovision, provision, "
                   "resume; nothing else is touched",
                   K, kinds::Typed, kinds::Dynamic) {
  for (const Mode m : {Mode::quiet, Mode::observed, Mode::parallel}) {
    CAPTURE(static_cast<int>(m));
    Fixture f;
    auto s = make<K>(f);
    Seen seen;
    watch(s, m, seen);
    f.db.current = false;
    s.up(options(m));
    CHECK(f.w.log == L{"db:suspend", "db:deprovision", "db:provision", "db:resume"});
    CHECK(f.db.running);
    CHECK(f.db.current);
    CHECK(f.app.running); // its dependents: untouched, as up leaves what runs
    CHECK(f.web.running);
    if (m != Mode::quiet) {
      // Each step of the recreate says why, on its start and on its end.
      std::vector<std::string> why;
      for (const auto& e : seen.events)
        if (e.role == "db" && e.outcome != stackup::Outcome::already_done)
          why.push_back(std::string(to_string(e.transition)) + " " + std::string(to_string(e.outcome)) + ": " + e.message);
      CHECK(why == std::vector<std::string>{"suspend started: settings changed", "suspend succeeded: settings changed",
                                            "deprovision started: settings changed",
                                            "deprovision succeeded: settings changed",
                                            "provision started: settings changed",
                                            "provision succeeded: settings changed", "resume started: ",
                                            "resume succeeded: "});
    }
    // Current again: a second up does nothing.
    f.w.log.clear();
    s.up(options(m));
    CHECK(f.w.log.empty());
  }
}

TEST_CASE_TEMPLATE("drift: an outdated component that is suspended is deprovisioned, provisioned and resumed", K,
                   kinds::Typed, kinds::Dynamic) {
  Fixture f;
  auto s = make<K>(f);
  f.db.current = false;
  f.db.running = f.app.running = f.web.running = false;
  s.up();
  CHECK(f.w.log == L{"db:deprovision", "db:provision", "db:resume", "app:resume", "web:resume"});
}

TEST_CASE_TEMPLATE("drift: update() is preferred when the component has one; a running component keeps running", K,
                   kinds::Typed, kinds::Dynamic) {
  for (const Mode m : {Mode::quiet, Mode::observed, Mode::parallel}) {
    CAPTURE(static_cast<int>(m));
    Fixture f;
    auto s = make<K>(f);
    Seen seen;
    watch(s, m, seen);
    f.app.current = false;
    s.up(options(m));
    CHECK(f.w.log == L{"app:update"});
    CHECK(f.app.current);
    CHECK(f.app.running);
    if (m != Mode::quiet) {
      std::vector<std::string> why;
      for (const auto& e : seen.events)
        if (e.role == "app" && e.outcome != stackup::Outcome::already_done)
          why.push_back(std::string(to_string(e.transition)) + " " + std::string(to_string(e.outcome)) + ": " + e.message);
      CHECK(why == std::vector<std::string>{"provision started: settings changed: update",
                                            "provision succeeded: settings changed: update"});
    }
  }
}

TEST_CASE_TEMPLATE("drift: up(role) brings the role and its dependencies up to date, not its dependents", K,
                   kinds::Typed, kinds::Dynamic) {
  for (const Mode m : {Mode::quiet, Mode::observed, Mode::parallel}) {
    CAPTURE(static_cast<int>(m));
    Fixture f;
    auto s = make<K>(f);
    Seen seen;
    watch(s, m, seen);
    f.db.current = f.app.current = false;
    s.up("app", options(m));
    CHECK(f.w.log == L{"db:suspend", "db:deprovision", "db:provision", "db:resume", "app:update"});
    f.w.log.clear();
    f.db.current = false;
    s.up("db", options(m));
    CHECK(f.w.log == L{"db:suspend", "db:deprovision", "db:provision", "db:resume"});
    CHECK(f.app.running);
  }
}

TEST_CASE_TEMPLATE("drift: a deprovisioned component is provisioned, whatever is_current() says; provision() alone "
                   "does not recreate",
                   K, kinds::Typed, kinds::Dynamic) {
  Fixture f;
  auto s = make<K>(f);
  f.db = {false, false, false};
  f.app.current = false;
  s.provision(); // ZenML's primitive: provisions what is not provisioned, nothing more
  CHECK(f.w.log == L{"db:provision"});
  f.w.log.clear();
  f.db.current = false;
  s.up(); // db is provisioned, not running: nothing to suspend
  CHECK(f.w.log == L{"db:deprovision", "db:provision", "app:update", "db:resume"}); // every provision step, then every resume
}

TEST_CASE_TEMPLATE("drift: status says which components are outdated; view.is_current(role); the table and JSON show it",
                   K, kinds::Typed, kinds::Dynamic) {
  Fixture f;
  auto s = make<K>(f);
  const auto v = s.view();
  f.app.current = false;
  const auto rows = s.status();
  CHECK(rows[0].current);
  CHECK(!rows[1].current);
  CHECK(rows[2].current); // no is_current(): current
  CHECK(!v.is_current("app"));
  CHECK(v.is_current("db"));
  CHECK(v.is_current("web"));
  CHECK(!v.status("app").current);
  CHECK(!v.status()[1].current);
  const std::string table = stackup::status_table(v.status());
  CHECK(table.find("app   app   custom  running        outdated\n") != std::string::npos);
  CHECK(table.find("db    db    custom  running\n") != std::string::npos);
  const std::string json = stackup::status_json(v.status());
  CHECK(json.find("\"role\": \"app\", \"name\": \"app\", \"flavor\": \"custom\", \"state\": \"running\", \"detail\": "
                  "\"\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": false}") !=
        std::string::npos);
  CHECK(json.find("\"role\": \"db\", \"name\": \"db\", \"flavor\": \"custom\", \"state\": \"running\", \"detail\": "
                  "\"\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true}") !=
        std::string::npos);
  // A deprovisioned component has nothing to be out of date: current.
  f.app = {false, false, false};
  CHECK(s.status()[1].current);
  CHECK(v.is_current("app"));
  CHECK_THROWS_AS((void)v.is_current("nope"), stackup::UnknownComponentError);
}

TEST_CASE_TEMPLATE("drift: a failed recreate fails up and rolls back what up did; the component is left as the step "
                   "left it",
                   K, kinds::Typed, kinds::Dynamic) {
  for (const Mode m : {Mode::quiet, Mode::observed, Mode::parallel}) {
    CAPTURE(static_cast<int>(m));
    SUBCASE("its provision fails: it stays deprovisioned, the error names provision") {
      Fixture f;
      auto s = make<K>(f);
      Seen seen;
      watch(s, m, seen);
      f.db.current = false;
      f.w.fail = "db:provision";
      try {
        s.up(options(m));
        FAIL("up succeeded");
      } catch (const stackup::TransitionError& e) {
        CHECK(e.role() == "db");
        CHECK(e.transition() == stackup::Transition::provision);
        CHECK(std::string(e.what()).find("db:provision failed") != std::string::npos);
      }
      CHECK(f.w.log == L{"db:suspend", "db:deprovision", "db:provision"});
      CHECK(!f.db.provisioned);
    }
    SUBCASE("its suspend fails: nothing else is done to it, the error names suspend") {
      Fixture f;
      auto s = make<K>(f);
      f.db.current = false;
      f.w.fail = "db:suspend";
      try {
        s.up(options(m));
        FAIL("up succeeded");
      } catch (const stackup::TransitionError& e) {
        CHECK(e.role() == "db");
        CHECK(e.transition() == stackup::Transition::suspend);
      }
      CHECK(f.w.log == L{"db:suspend"});
      CHECK(f.db.provisioned);
      CHECK(!f.db.current);
    }
    SUBCASE("a later step fails: the recreated component stays provisioned with its new settings, its resume undone") {
      Fixture f;
      auto s = make<K>(f);
      f.db.current = false;
      f.web = {false, false, true};
      f.w.fail = "web:resume";
      CHECK_THROWS_AS(s.up(options(m)), stackup::TransitionError);
      CHECK(f.db.provisioned); // provisioned before up: rollback does not deprovision it
      CHECK(f.db.current);
      CHECK(!f.db.running); // this up resumed it: rollback suspends it
      CHECK(!f.web.provisioned);
    }
  }
}

TEST_CASE("drift: the progress line prints the reason of a start or success; fmt prints an outdated row") {
  using stackup::Outcome;
  using stackup::Transition;
  const auto at = [](Transition t, Outcome o, std::string message) {
    return stackup::progress_line(stackup::Event{"s", "db", "pg", t, o, std::chrono::milliseconds(20), std::move(message)}, false);
  };
  CHECK(at(Transition::deprovision, Outcome::started, "settings changed") == "- db 'pg' deprovisioning (settings changed) ...");
  CHECK(at(Transition::deprovision, Outcome::succeeded, "settings changed") ==
        "+ db 'pg' deprovisioned (settings changed)  0.02s");
  CHECK(at(Transition::provision, Outcome::succeeded, "settings changed: update") ==
        "+ db 'pg' provisioned (settings changed: update)  0.02s");
  CHECK(at(Transition::resume, Outcome::succeeded, "") == "+ db 'pg' resumed  0.02s"); // as before without one
  stackup::ComponentStatus row{"db", "pg", stackup::State::running, "custom", "pid 7"};
  CHECK(fmt::format("{}", row) == "db 'pg': running (pid 7)");
  row.current = false;
  CHECK(fmt::format("{}", row) == "db 'pg': running (outdated; pid 7)");
  CHECK(stackup::status_table(std::span(&row, 1)).find("running        outdated; pid 7\n") != std::string::npos);
}

namespace {
// An update() that refuses at run time (a component configured at run time):
// as if it had none.
struct Refusing : Drifting<Refusing> {
  static constexpr std::string_view role = "refusing";
  void update() {
    act("update");
    throw stackup::NotImplementedError("refusing: no update for these settings");
  }
};
} // namespace

TEST_CASE_TEMPLATE("drift: an update() that throws NotImplementedError is as none: up recreates the component", K,
                   kinds::Typed, kinds::Dynamic) {
  World w;
  Power p{true, true, false};
  auto s = kinds::make_from<K>("refuse", Refusing{{{&w, &p}}});
  s.up();
  CHECK(w.log == L{"refusing:update", "refusing:suspend", "refusing:deprovision", "refusing:provision", "refusing:resume"});
  CHECK(p.current);
}

TEST_CASE("drift: AnyComponent and its handles carry is_current() and update()") {
  Fixture f;
  f.db.current = f.app.current = false;
  stackup::AnyComponent db(Db{{{&f.w, &f.db}}});
  stackup::AnyComponent web(Web{{&f.w, &f.web}});
  CHECK(!db.is_current());
  CHECK(!db.has_update());
  CHECK_THROWS_AS(db.update(), stackup::NotImplementedError);
  CHECK(web.is_current()); // no is_current(): current
  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back(std::move(db));
  parts.emplace_back(App{{{&f.w, &f.app}}});
  stackup::DynamicStack s("any", std::move(parts));
  CHECK(s.get("app").has_update());
  CHECK(!s.get("app").is_current());
  s.get("app").update();
  CHECK(f.w.log == L{"app:update"});
  CHECK(std::as_const(s).get("app").is_current());
}

// ---- query rounds: one per walk of a whole stack, none for a query of one component ----

namespace {
// Records the round each query runs in (queries may run on several threads in parallel mode).
struct Rounds {
  std::mutex lock;
  std::vector<std::uint64_t> seen;
  bool provisioned = true, running = true;
  void note() {
    const std::lock_guard<std::mutex> hold(lock);
    seen.push_back(stackup::detail::current_query_round());
  }
  std::vector<std::uint64_t> take() {
    const std::lock_guard<std::mutex> hold(lock);
    return std::exchange(seen, {});
  }
};
template <class Self> struct Asking {
  Rounds* r = nullptr;
  [[nodiscard]] bool is_provisioned() const { return r->note(), r->provisioned; }
  [[nodiscard]] bool is_running() const { return r->note(), r->running; }
  void provision() { r->provisioned = true; }
  void resume() { r->running = true; }
  void suspend() { r->running = false; }
  void deprovision() { r->provisioned = r->running = false; }
};
struct First : Asking<First> {
  static constexpr std::string_view role = "first";
};
struct Second : Asking<Second> {
  static constexpr std::string_view role = "second";
  static constexpr std::string_view depends_on[] = {"first"};
};
// One round, open: every query of the walk saw the same non-zero round.
std::uint64_t one_round(const std::vector<std::uint64_t>& seen) {
  REQUIRE(!seen.empty());
  for (const auto r : seen) CHECK(r == seen.front());
  CHECK(seen.front() != 0);
  return seen.front();
}
} // namespace

TEST_CASE_TEMPLATE("query rounds: status, up and down of the whole stack each run in one round; a lone query in none",
                   K, kinds::Typed, kinds::Dynamic) {
  Rounds r1, r2;
  auto s = kinds::make_from<K>("rounds", First{{&r1}}, Second{{&r2}});
  const auto v = s.view();
  const auto both = [&] {
    auto a = r1.take(), b = r2.take();
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  (void)s.status();
  const std::uint64_t status_round = one_round(both());
  (void)v.status();
  CHECK(one_round(both()) != status_round); // a new round per walk
  (void)s.is_running();
  one_round(both());
  for (const bool observed : {false, true}) {
    CAPTURE(observed);
    if (observed) s.on_event([](const stackup::Event&) {});
    r1.running = r2.running = false;
    s.up();
    one_round(both());
    s.down();
    one_round(both());
    s.up({.parallel = true});
    one_round(both());
    s.down({.force = true, .parallel = true});
    one_round(both());
  }
  // A query of one component, as a supervisor polls it: never inside a round.
  (void)v.state("first");
  (void)v.status("second");
  (void)v.is_current("first");
  (void)kinds::get<First>(s).is_running();
  for (const auto r : both()) CHECK(r == 0);
  CHECK(stackup::detail::current_query_round() == 0);
}
