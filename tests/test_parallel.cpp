// Parallel transitions: order constraints, bounded threads, rollback, exhaustive
// down and a serialised, balanced event stream. Also run under ThreadSanitizer.
#include "support/fake.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using stackup::Transition;

namespace {
using Clock = std::chrono::steady_clock;

// Shared record of when each action ran, and how many ran at once.
struct Timeline {
  std::mutex m;
  std::map<std::string, std::pair<Clock::time_point, Clock::time_point>> spans; // "provision a" -> [start, end]
  std::atomic<int> now{0}, peak{0};
  void run(std::string key, std::chrono::milliseconds d, bool fail) {
    const int in = ++now;
    for (int p = peak.load(); in > p && !peak.compare_exchange_weak(p, in);) {}
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(d);
    const auto t1 = Clock::now();
    --now;
    {
      std::lock_guard l(m);
      spans[key] = {t0, t1};
    }
    if (fail) throw std::runtime_error(key + " failed");
  }
  bool before(const std::string& a, const std::string& b) {
    std::lock_guard l(m);
    REQUIRE(spans.count(a) == 1);
    REQUIRE(spans.count(b) == 1);
    return spans[a].second <= spans[b].first;
  }
  bool has(const std::string& key) {
    std::lock_guard l(m);
    return spans.count(key) == 1;
  }
};

template <stackup::FixedString R, stackup::FixedString... Deps> struct Slow : stackup::StackComponent<Slow<R, Deps...>> {
  static constexpr std::string_view role = R;
  static constexpr std::array<std::string_view, sizeof...(Deps)> depends_on{std::string_view(Deps)...};
  Timeline* tl = nullptr;
  std::optional<Transition> fail;
  std::atomic<bool> provisioned{false}, running{false};
  Slow() = default;
  Slow(Slow&& o) noexcept : tl(o.tl), fail(o.fail), provisioned(o.provisioned.load()), running(o.running.load()) {}
  bool is_provisioned() const { return provisioned; }
  bool is_running() const { return running; }
  void provision() { act(Transition::provision), provisioned = true; }
  void resume() { act(Transition::resume), running = true; }
  void suspend() { act(Transition::suspend), running = false; }
  void deprovision() { act(Transition::deprovision), provisioned = false, running = false; }
  void act(Transition t) { tl->run(std::string(stackup::to_string(t)) + " " + std::string(role), 20ms, fail == t); }
};

// Two roots, a diamond, and a tail: a, b -> c, d (both on a) -> e (on c, d) -> f
using A = Slow<"a">;
using B = Slow<"b">;
using C = Slow<"c", "a", "b">;
using D = Slow<"d", "a">;
using E = Slow<"e", "c", "d">;
using F = Slow<"f", "e">;
using S = stackup::Stack<A, B, C, D, E, F>;

void wire(S& s, Timeline& tl) {
  s.get<A>().tl = s.get<B>().tl = s.get<C>().tl = &tl;
  s.get<D>().tl = s.get<E>().tl = s.get<F>().tl = &tl;
}
const std::pair<const char*, const char*> edges[] = {{"a", "c"}, {"b", "c"}, {"a", "d"}, {"c", "e"}, {"d", "e"}, {"e", "f"}};

// Checks the observer is never entered twice at once, and every started gets one end.
struct Balanced {
  std::mutex m;
  std::atomic<int> inside{0};
  bool overlapped = false;
  bool unbalanced = false;
  std::map<std::string, int> open;
  std::vector<std::string> lines;
  stackup::Observer observer() {
    return [this](const stackup::Event& e) {
      if (++inside != 1) overlapped = true;
      const std::string key = std::string(stackup::to_string(e.transition)) + " " + std::string(e.role);
      if (e.outcome == stackup::Outcome::started) ++open[key];
      else if (e.outcome != stackup::Outcome::already_done &&
               !(e.outcome == stackup::Outcome::not_implemented && open[key] == 0)) {
        if (open[key] != 1) unbalanced = true; // an end without its started, or a second end
        --open[key];
      }
      lines.push_back(key + " " + std::string(stackup::to_string(e.outcome)));
      std::this_thread::sleep_for(1ms); // widen the window for overlaps
      --inside;
    };
  }
  bool balanced() const {
    return !unbalanced && std::all_of(open.begin(), open.end(), [](const auto& kv) { return kv.second == 0; });
  }
};
} // namespace

TEST_CASE("parallel: a dependent never starts before its dependencies end") {
  Timeline tl;
  S s;
  wire(s, tl);
  Balanced events;
  s.on_event(events.observer());
  s.up({.parallel = true});
  CHECK(s.is_running());
  for (auto [from, to] : edges) {
    CHECK(tl.before(std::string("provision ") + from, std::string("provision ") + to));
    CHECK(tl.before(std::string("resume ") + from, std::string("resume ") + to));
  }
  CHECK(tl.peak >= 2); // a and b (then c and d) ran at the same time
  s.down({.force = true, .parallel = true});
  CHECK_FALSE(s.is_provisioned());
  for (auto [from, to] : edges) {
    CHECK(tl.before(std::string("suspend ") + to, std::string("suspend ") + from));
    CHECK(tl.before(std::string("deprovision ") + to, std::string("suspend ") + from));
  }
  CHECK_FALSE(events.overlapped);
  CHECK(events.balanced());
  CHECK(std::count_if(events.lines.begin(), events.lines.end(),
                      [](const auto& l) { return l.ends_with("succeeded"); }) == 24);
}

TEST_CASE("parallel: max_threads bounds the concurrency") {
  Timeline tl;
  stackup::Stack<Slow<"p">, Slow<"q">, Slow<"r">, Slow<"s">> s;
  s.get<Slow<"p">>().tl = s.get<Slow<"q">>().tl = s.get<Slow<"r">>().tl = s.get<Slow<"s">>().tl = &tl;
  s.up({.parallel = true, .max_threads = 1});
  CHECK(tl.peak == 1);
  s.down({.force = true, .parallel = true, .max_threads = 2});
  CHECK(tl.peak == 2);
  s.up({.parallel = true});
  CHECK(tl.peak == 4);
}

TEST_CASE("parallel: a failure stops new work, lets running actions finish, and rolls back in reverse") {
  for (Transition t : {Transition::provision, Transition::resume}) {
    CAPTURE(t);
    Timeline tl;
    S s;
    wire(s, tl);
    s.get<D>().fail = t;
    Balanced events;
    s.on_event(events.observer());
    try {
      s.up({.parallel = true});
      FAIL("up should have thrown");
    } catch (const stackup::TransitionError& e) {
      CHECK(e.role() == "d");
      CHECK(e.transition() == t);
      CHECK_THROWS_WITH(std::rethrow_exception(e.cause()), doctest::Contains(" d failed"));
      CHECK(e.failures().size() == 1);
    }
    // nothing is left as this call made it
    for (const auto& row : s.status()) CHECK(row.state == stackup::State::deprovisioned);
    CHECK_FALSE(tl.has(std::string(stackup::to_string(t)) + " e")); // never started after d failed
    // undone in reverse dependency order: c before a (d only had something to undo if its resume failed)
    CHECK(tl.before("deprovision c", "deprovision a"));
    if (t == Transition::resume) CHECK(tl.before("deprovision d", "deprovision a"));
    CHECK_FALSE(events.overlapped);
    CHECK(events.balanced());
  }
}

TEST_CASE("parallel: down tries every component and reports every failure") {
  Timeline tl;
  S s;
  wire(s, tl);
  s.up({.parallel = true});
  s.get<C>().fail = Transition::suspend;
  s.get<A>().fail = Transition::deprovision;
  try {
    s.down({.force = true, .parallel = true});
    FAIL("down should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.failures().size() == 2);
    std::vector<std::string> roles;
    for (const auto& f : e.failures()) roles.push_back(f.role);
    std::sort(roles.begin(), roles.end());
    CHECK(roles == std::vector<std::string>{"a", "c"});
  }
  CHECK(tl.has("deprovision c")); // c's suspend failed, its deprovision still ran
  for (const auto& row : s.status()) {
    if (row.role != "a") CHECK(row.state == stackup::State::deprovisioned);
  }
}

TEST_CASE("parallel: per-component up and down take the same options") {
  Timeline tl;
  S s;
  wire(s, tl);
  s.up<E>({.parallel = true});
  CHECK(s.get<E>().is_running());
  CHECK_FALSE(s.get<F>().is_provisioned());
  CHECK(tl.before("resume c", "resume e"));
  s.up<F>();
  s.down("a", {.force = true, .parallel = true});
  CHECK(tl.before("deprovision f", "suspend e"));
  CHECK(tl.before("deprovision c", "suspend a"));
  CHECK_FALSE(s.get<A>().is_provisioned());
  CHECK(s.get<B>().is_running());
}
