// Drift (DESIGN §11): a component that says it is not current (`is_current()`,
// its settings changed since it was provisioned) is brought up to date by `up`
// — its `update()` if it has one, else suspend (if running), deprovision,
// provision — then resumed as usual; status shows it `outdated` until then.
// Both kinds of stack (tests/support/kinds.hpp), sequential and parallel, with
// and without an observer (the quiet paths and the engine's walk).
#include "support/kinds.hpp"

#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
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
