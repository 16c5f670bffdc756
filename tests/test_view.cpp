// StackView (DESIGN §12): a stack's public, read-only face, the same for both
// kinds of stack (tests/support/kinds.hpp) — roles, order, dependencies and
// dependents, the plans of up and down, status, flavours, log files — and
// on_event handing back the observer it replaces.
#include "support/kinds.hpp"

#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

namespace {

using stackup::State;
using L = std::vector<std::string_view>;

L list(const stackup::RoleRange& r) { return {r.begin(), r.end()}; }

// Where a component's state lives, so that the test sees what the stack did.
struct Power {
  bool provisioned = false, running = false;
};
template <class Self> struct Part {
  Power* p = nullptr;
  bool is_provisioned() const { return p->provisioned; }
  bool is_running() const { return p->running; }
  void provision() { p->provisioned = true; }
  void resume() { p->running = true; }
  void suspend() { p->running = false; }
  void deprovision() { p->provisioned = p->running = false; }
};

// A diamond, declared top first: web needs api and cache, which both need store.
// `log` is declared first and needs store too, so that declaration order and
// action order differ.
struct Log : Part<Log> {
  static constexpr std::string_view role = "log";
  static constexpr std::string_view depends_on[] = {"store"};
};
struct Web : Part<Web> {
  static constexpr std::string_view role = "web";
  static constexpr std::string_view depends_on[] = {"cache", "api"};
  std::string_view name() const { return "frontend"; }
};
struct Api : Part<Api> {
  static constexpr std::string_view role = "api";
  static constexpr std::string_view depends_on[] = {"store"};
  static constexpr std::string_view flavor = "test_flavor";
};
struct Cache : Part<Cache> {
  static constexpr std::string_view role = "cache";
  static constexpr std::string_view depends_on[] = {"store"};
};
struct Store : Part<Store> {
  static constexpr std::string_view role = "store";
};

struct World {
  Power log, web, api, cache, store;
};

template <class K> auto diamond(World& w) {
  return kinds::make_from<K>("diamond", Log{{&w.log}}, Web{{&w.web}}, Api{{&w.api}}, Cache{{&w.cache}},
                             Store{{&w.store}});
}

// The roles whose actions started, in order, as an observer sees them.
struct Started {
  std::vector<std::string> roles;
  stackup::Observer observer() {
    return [this](const stackup::Event& e) {
      if (e.outcome == stackup::Outcome::started &&
          (e.transition == stackup::Transition::provision || e.transition == stackup::Transition::suspend))
        roles.emplace_back(e.role);
    };
  }
  [[nodiscard]] L seen() const { return {roles.begin(), roles.end()}; }
};

} // namespace

static_assert(sizeof(stackup::StackView) == sizeof(void*), "a view is one pointer");
static_assert(std::is_trivially_copyable_v<stackup::StackView>);

TEST_CASE_TEMPLATE("view: name, roles in declaration order, order as up acts", K, kinds::Typed, kinds::Dynamic) {
  World w;
  auto s = diamond<K>(w);
  const stackup::StackView v = s.view();
  CHECK(v.name() == "diamond");
  CHECK(v.size() == 5);
  CHECK(list(v.roles()) == L{"log", "web", "api", "cache", "store"});
  CHECK(list(v.order()) == L{"store", "log", "api", "cache", "web"});
  CHECK(v.roles().size() == 5);
  CHECK(v.order()[0] == "store");
  CHECK(v.order().back() == "web");
  CHECK(v.find("api") == 2);
  CHECK(v.find("nope") == v.size());
  CHECK(v.contains("cache"));
  CHECK(!v.contains("nope"));
}

TEST_CASE_TEMPLATE("view: direct dependencies and dependents, in declaration order", K, kinds::Typed, kinds::Dynamic) {
  World w;
  auto s = diamond<K>(w);
  const auto v = s.view();
  CHECK(list(v.dependencies("web")) == L{"cache", "api"}); // as declared in depends_on
  CHECK(list(v.dependencies("api")) == L{"store"});
  CHECK(v.dependencies("store").empty());
  CHECK(list(v.dependents("store")) == L{"log", "api", "cache"}); // direct only: not web
  CHECK(list(v.dependents("api")) == L{"web"});
  CHECK(v.dependents("web").empty());
}

TEST_CASE_TEMPLATE("view: the plans are what up and down visit, in the order they act", K, kinds::Typed,
                   kinds::Dynamic) {
  World w;
  auto s = diamond<K>(w);
  const auto v = s.view();
  CHECK(list(v.plan_up()) == list(v.order()));
  CHECK(list(v.plan_down()) == L{"web", "cache", "api", "log", "store"});
  CHECK(list(v.plan_up("web")) == L{"store", "api", "cache", "web"});
  CHECK(list(v.plan_up("api")) == L{"store", "api"});
  CHECK(list(v.plan_up("store")) == L{"store"});
  CHECK(list(v.plan_down("store")) == L{"web", "cache", "api", "log", "store"});
  CHECK(list(v.plan_down("api")) == L{"web", "api"});
  CHECK(list(v.plan_down("web")) == L{"web"});

  // What the stack then does, as its events show, is what the view said.
  Started started;
  s.on_event(started.observer());
  s.up("web");
  CHECK(started.seen() == list(v.plan_up("web")));
  started.roles.clear();
  s.up();
  CHECK(started.seen() == L{"log"}); // the rest is up already
  started.roles.clear();
  s.down("api");
  CHECK(started.seen() == list(v.plan_down("api")));
  s.up();
  started.roles.clear();
  s.down();
  CHECK(started.seen() == list(v.plan_down()));
}

TEST_CASE_TEMPLATE("view: status as stack.status(), one row, one state", K, kinds::Typed, kinds::Dynamic) {
  World w;
  auto s = diamond<K>(w);
  const auto v = s.view();
  s.up("api");
  const auto rows = v.status();
  const auto direct = s.status();
  REQUIRE(rows.size() == direct.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].role == direct[i].role);
    CHECK(rows[i].name == direct[i].name);
    CHECK(rows[i].state == direct[i].state);
    CHECK(rows[i].flavor == direct[i].flavor);
  }
  CHECK(rows[2].role == "api");
  CHECK(rows[2].state == State::running);
  CHECK(v.status("web").state == State::deprovisioned);
  CHECK(v.status("web").name == "frontend");
  CHECK(v.state("store") == State::running);
  CHECK(v.state("log") == State::deprovisioned);
  CHECK(v.component_name("web") == "frontend");
  CHECK(v.component_name("api") == "api");
  CHECK(v.flavor("api") == "test_flavor");
  CHECK(v.flavor("web") == "custom");
  CHECK(v.log_file("web").empty());
}

TEST_CASE_TEMPLATE("view: a daemon's log file, and none for a directory", K, kinds::Typed, kinds::Dynamic) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("stackup-view-" + std::to_string(::getpid()));
  auto s = kinds::make_from<K>("files", stackup::LocalDaemon<"db">{{.command = {"/bin/true"}, .state_dir = dir / "db"}},
                               stackup::LocalDirectory<"data">{{.path = dir / "data"}});
  const auto v = s.view();
  CHECK(v.log_file("db") == (dir / "db" / "daemon.log").string());
  CHECK(v.log_file("data").empty());
  CHECK(v.flavor("db") == "local_daemon");
  CHECK(v.flavor("data") == "local_directory");
  CHECK(!std::filesystem::exists(dir)); // reading the view changes nothing
}

namespace {
// A component with the optional members supervision reads: an exit descriptor
// (an eventfd, a new one per call as the member promises), how it last
// stopped, and its policy.
struct Watched : Part<Watched> {
  static constexpr std::string_view role = "watched";
  int fd = -1; // the test's eventfd; exit_fd() hands out a duplicate
  std::optional<stackup::Exit> last{};
  int exit_fd() const { return ::fcntl(fd, F_DUPFD_CLOEXEC, 0); }
  std::optional<stackup::Exit> exit_status() const { return last; }
  stackup::SupervisionConfig supervision() const {
    return {.restart = {.policy = stackup::Restart::on_failure, .max = 3U},
            .liveness = {.kind = stackup::Liveness::Kind::tcp, .port = 6390},
            .on_dependency_restart = stackup::OnDependencyRestart::restart};
  }
};
} // namespace

TEST_CASE_TEMPLATE("view: exit_fd, exit_status and supervision of a component that has them; defaults without",
                   K, kinds::Typed, kinds::Dynamic) {
  Power wp, sp;
  const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(efd >= 0);
  const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'796'644'801'123));
  auto s = kinds::make_from<K>("watch", Watched{{&wp}, efd, stackup::Exit{.code = 3, .at = at}}, Store{{&sp}});
  const auto v = s.view();

  // The descriptor is the component's: readable once the component says it exited.
  const int fd = v.exit_fd("watched");
  REQUIRE(fd >= 0);
  CHECK(fd != efd);
  pollfd p{fd, POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 0);
  const std::uint64_t one = 1;
  REQUIRE(::write(efd, &one, sizeof one) == static_cast<ssize_t>(sizeof one));
  CHECK(::poll(&p, 1, 0) == 1);
  ::close(fd);

  const auto e = v.exit_status("watched");
  REQUIRE(e.has_value());
  CHECK(e->code == 3);
  CHECK(e->at == at);
  const auto c = v.supervision("watched");
  CHECK(c.restart.policy == stackup::Restart::on_failure);
  CHECK(c.restart.max == 3U);
  CHECK(c.liveness.kind == stackup::Liveness::Kind::tcp);
  CHECK(c.liveness.port == 6390);
  CHECK(c.on_dependency_restart == stackup::OnDependencyRestart::restart);

  // Status carries the exit (restarts and supervision are a supervisor's: 0, none).
  const auto row = v.status("watched");
  REQUIRE(row.exit.has_value());
  CHECK(row.exit->code == 3);
  CHECK(row.restarts == 0);
  CHECK(row.supervision == stackup::SupervisionState::none);
  CHECK(s.status()[0].exit->code == 3);

  // Without the members: -1, empty, the defaults.
  CHECK(v.exit_fd("store") == -1);
  CHECK(!v.exit_status("store").has_value());
  CHECK(!v.status("store").exit.has_value());
  const auto d = v.supervision("store");
  CHECK(d.restart.policy == stackup::Restart::no);
  CHECK(d.liveness.kind == stackup::Liveness::Kind::none);
  CHECK(d.on_dependency_restart == stackup::OnDependencyRestart::ignore);
  ::close(efd);
}

TEST_CASE("view: AnyComponent and its handles answer exit_fd, exit_status and supervision as the view does") {
  Power wp, sp;
  const int efd = ::eventfd(0, EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  stackup::DynamicStack s("any", [&] {
    std::vector<stackup::AnyComponent> parts;
    parts.emplace_back(Watched{{&wp}, efd, stackup::Exit{.signal = 9}});
    parts.emplace_back(Store{{&sp}});
    return parts;
  }());
  const int fd = s.get("watched").exit_fd();
  CHECK(fd >= 0);
  ::close(fd);
  CHECK(s.get("watched").exit_status()->signal == 9);
  CHECK(s.get("watched").supervision().restart.policy == stackup::Restart::on_failure);
  const auto& cs = s;
  CHECK(cs.get("store").exit_fd() == -1);
  CHECK(!cs.get("store").exit_status().has_value());
  CHECK(cs.get("store").supervision().restart.policy == stackup::Restart::no);
  stackup::AnyComponent lone(Store{{&sp}});
  CHECK(lone.exit_fd() == -1);
  CHECK(!lone.exit_status());
  stackup::AnyComponent w(Watched{{&wp}, efd, stackup::Exit{.code = 0}});
  CHECK(w.exit_status()->code == 0);
  CHECK(w.supervision().liveness.port == 6390);
  ::close(efd);
}

namespace {
// A component whose suspend waits (as a daemon's stop timeout) until kill() is
// called from elsewhere; shared state through a pointer (a component is moved).
struct Stopping {
  std::atomic<bool> running{true}, suspending{false}, killed{false};
  std::atomic<int> kills{0};
};
struct Killable {
  static constexpr std::string_view role = "killable";
  Stopping* s = nullptr;
  bool is_provisioned() const { return true; }
  bool is_running() const { return s->running; }
  void suspend() {
    s->suspending = true;
    // Bounded, so that a kill that never arrives fails the test instead of hanging it.
    for (int i = 0; i < 10'000 && !s->killed; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s->running = false;
  }
  void kill() const {
    ++s->kills;
    s->killed = true;
  }
};
} // namespace

TEST_CASE_TEMPLATE("view: kill(role) reaches a component's kill() while a down's suspend of it is in progress; "
                   "false without one",
                   K, kinds::Typed, kinds::Dynamic) {
  Stopping st;
  Power sp{true, true};
  auto s = kinds::make_from<K>("kill", Killable{&st}, Store{{&sp}});
  const auto v = s.view();
  std::thread down([&] { s.down(); });
  while (!st.suspending) std::this_thread::yield();
  CHECK(v.kill("killable"));
  down.join();
  CHECK(st.kills == 1);
  CHECK(!st.running);
  sp.running = true;
  CHECK(!v.kill("store")); // no kill(): nothing done
  CHECK(sp.running);
  CHECK_THROWS_AS((void)v.kill("nope"), stackup::UnknownComponentError);
}

TEST_CASE("view: AnyComponent and its handle carry kill(); false for a type without one") {
  Stopping st;
  Power sp;
  stackup::AnyComponent k(Killable{&st});
  CHECK(k.kill());
  CHECK(st.kills == 1);
  stackup::AnyComponent plain(Store{{&sp}});
  CHECK(!plain.kill());
  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back(std::move(k));
  stackup::DynamicStack s("any", std::move(parts));
  CHECK(s.get("killable").kill());
  CHECK(st.kills == 2);
  static_assert(stackup::detail::has_kill<Killable> && !stackup::detail::has_kill<Store>);
}

TEST_CASE_TEMPLATE("view: an unknown role throws UnknownComponentError naming the valid roles", K, kinds::Typed,
                   kinds::Dynamic) {
  World w;
  auto s = diamond<K>(w);
  const auto v = s.view();
  const std::string expected = s.unknown_role("nope").what(); // the stack's own message: one rule
  CHECK(expected == "stackup: stack 'diamond' has no component with role 'nope'; valid roles: log, web, api, cache, store");
  const auto check = [&](auto&& call) {
    try {
      call();
      FAIL("no UnknownComponentError");
    } catch (const stackup::UnknownComponentError& e) {
      CHECK(std::string(e.what()) == expected);
    }
  };
  check([&] { (void)v.dependencies("nope"); });
  check([&] { (void)v.dependents("nope"); });
  check([&] { (void)v.plan_up("nope"); });
  check([&] { (void)v.plan_down("nope"); });
  check([&] { (void)v.status("nope"); });
  check([&] { (void)v.state("nope"); });
  check([&] { (void)v.component_name("nope"); });
  check([&] { (void)v.flavor("nope"); });
  check([&] { (void)v.log_file("nope"); });
}

TEST_CASE_TEMPLATE("view: on_event returns the observer it replaces; putting it back restores it", K, kinds::Typed,
                   kinds::Dynamic) {
  World w;
  auto s = diamond<K>(w);
  Started host, tool;
  CHECK(!s.on_event(host.observer())); // none before
  stackup::Observer previous = s.on_event(tool.observer());
  REQUIRE(previous);
  s.up("api");
  CHECK(host.roles.empty());
  CHECK(tool.seen() == L{"store", "api"});
  const stackup::Observer replaced = s.on_event(std::move(previous));
  CHECK(replaced); // the tool's
  s.up("web");
  CHECK(host.seen() == L{"cache", "web"});
  CHECK(tool.seen() == L{"store", "api"});
  CHECK(s.on_event({})); // the host's
  s.down();
  CHECK(host.seen() == L{"cache", "web"});

  // Called by the observer itself: the replacement waits for it to return, and
  // what it gets back is itself.
  int calls = 0;
  stackup::Observer got;
  s.on_event([&](const stackup::Event&) {
    if (calls++ == 0) got = s.on_event([](const stackup::Event&) {});
  });
  s.up();
  CHECK(calls == 1);
  REQUIRE(got);
}

TEST_CASE_TEMPLATE("view: cheap to copy, valid while the stack lives, reads it as it is now", K, kinds::Typed,
                   kinds::Dynamic) {
  World w;
  auto s = diamond<K>(w);
  const stackup::StackView v = s.view();
  stackup::StackView copy = v;
  CHECK(copy.state("store") == State::deprovisioned);
  s.up("store");
  CHECK(copy.state("store") == State::running);
  const stackup::RoleRange plan = v.plan_up("web");
  stackup::RoleRange kept = plan; // a computed range copies its roles' positions
  stackup::RoleRange moved = std::move(kept);
  CHECK(list(moved) == L{"store", "api", "cache", "web"});
  CHECK(list(plan) == list(moved));
}

TEST_CASE("view: a copy of a Stack has a view of its own") {
  World w, other;
  auto s = diamond<kinds::Typed>(w);
  auto copy = s;
  copy.template get<Store>().p = &other.store;
  s.up("store");
  CHECK(s.view().state("store") == State::running);
  CHECK(copy.view().state("store") == State::deprovisioned);
  auto moved = std::move(copy);
  CHECK(moved.view().state("store") == State::deprovisioned);
  CHECK(moved.view().name() == "diamond");
  stackup::Stack<Store> named{"a rather long name, longer than a short string holds", Store{{&other.store}}};
  stackup::Stack<Store> assigned;
  assigned = named;
  CHECK(assigned.view().name() == "a rather long name, longer than a short string holds");
  CHECK(list(assigned.view().roles()) == L{"store"});
}

namespace {
// Learns only when asked that it cannot stop (as a Command without a stop command).
struct Stubborn : Part<Stubborn> {
  static constexpr std::string_view role = "stubborn";
  void suspend() { throw stackup::NotImplementedError("stubborn: no way to stop it"); }
};
} // namespace

TEST_CASE_TEMPLATE("view: cli::run puts the host's observer back, and prints the engine's advice as it comes", K,
                   kinds::Typed, kinds::Dynamic) {
  World w;
  Power p;
  auto s = kinds::make_from<K>("s", Stubborn{{&p}}, Store{{&w.store}});
  Started host;
  s.on_event(host.observer());
  const auto run = [&](std::vector<std::string_view> words) {
    std::ostringstream out, err;
    CHECK(stackup::cli::run(s, std::span<const std::string_view>(words), out, err) == 0);
    return out.str();
  };
  run({"stack", "up"});
  CHECK(host.roles.empty()); // the command line was the observer meanwhile
  const std::string out = run({"stack", "down"});
  CHECK(out.find("o stubborn 'stubborn' suspend skipped: stubborn: no way to stop it; use force (--force) to deprovision\n") !=
        std::string::npos);
  CHECK(host.roles.empty());
  s.down();
  CHECK(host.seen() == L{"stubborn"}); // the host's observer is back (the store is down already)
}
