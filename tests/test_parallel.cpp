// Parallel transitions: order constraints, bounded threads, rollback, exhaustive
// down and a serialised, balanced event stream; observers that act on the stack
// they watch. Both kinds of stack (tests/support/kinds.hpp). Also run under
// ThreadSanitizer.
#include "support/fake.hpp"
#include "support/kinds.hpp"
#include "support/watchdog.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using stackup::Transition;
using kinds::get;

namespace {
using Clock = std::chrono::steady_clock;

// Shared record of when each action ran, and how many ran at once.
struct Timeline {
  std::mutex m;
  std::map<std::string, std::pair<Clock::time_point, Clock::time_point>> spans; // "provision a" -> [start, end]
  std::atomic<int> now{0}, peak{0}, calls{0};
  void run(std::string key, std::chrono::milliseconds d, bool fail) {
    ++calls;
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
template <class K> auto make(Timeline& tl) {
  auto s = kinds::make<K, A, B, C, D, E, F>();
  get<A>(s).tl = get<B>(s).tl = get<C>(s).tl = &tl;
  get<D>(s).tl = get<E>(s).tl = get<F>(s).tl = &tl;
  return s;
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

TEST_CASE_TEMPLATE("parallel: a dependent never starts before its dependencies end", K, kinds::Typed, kinds::Dynamic) {
  Timeline tl;
  auto s = make<K>(tl);
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

TEST_CASE_TEMPLATE("parallel: max_threads bounds the concurrency", K, kinds::Typed, kinds::Dynamic) {
  Timeline tl;
  auto s = kinds::make<K, Slow<"p">, Slow<"q">, Slow<"r">, Slow<"s">>();
  get<Slow<"p">>(s).tl = get<Slow<"q">>(s).tl = get<Slow<"r">>(s).tl = get<Slow<"s">>(s).tl = &tl;
  s.up({.parallel = true, .max_threads = 1});
  CHECK(tl.peak == 1);
  s.down({.force = true, .parallel = true, .max_threads = 2});
  CHECK(tl.peak == 2);
  s.up({.parallel = true});
  CHECK(tl.peak == 4);
}

TEST_CASE_TEMPLATE("parallel: a failure stops new work, lets running actions finish, and rolls back in reverse", K,
                   kinds::Typed, kinds::Dynamic) {
  for (Transition t : {Transition::provision, Transition::resume}) {
    CAPTURE(t);
    Timeline tl;
    auto s = make<K>(tl);
    get<D>(s).fail = t;
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

TEST_CASE_TEMPLATE("parallel: down tries every component and reports every failure", K, kinds::Typed, kinds::Dynamic) {
  Timeline tl;
  auto s = make<K>(tl);
  s.up({.parallel = true});
  get<C>(s).fail = Transition::suspend;
  get<A>(s).fail = Transition::deprovision;
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

TEST_CASE_TEMPLATE("parallel: per-component up and down take the same options", K, kinds::Typed, kinds::Dynamic) {
  Timeline tl;
  auto s = make<K>(tl);
  kinds::up<E>(s, {.parallel = true});
  CHECK(get<E>(s).is_running());
  CHECK_FALSE(get<F>(s).is_provisioned());
  CHECK(tl.before("resume c", "resume e"));
  kinds::up<F>(s);
  s.down("a", {.force = true, .parallel = true});
  CHECK(tl.before("deprovision f", "suspend e"));
  CHECK(tl.before("deprovision c", "suspend a"));
  CHECK_FALSE(get<A>(s).is_provisioned());
  CHECK(get<B>(s).is_running());
}

// ---- observers that act on the stack they watch, in parallel mode (issue 13, item 6) --

namespace {
bool refusal(const std::string& m) {
  return m.rfind("stackup: an observer of stack 'default' started an operation on that stack", 0) == 0;
}
} // namespace

TEST_CASE_TEMPLATE("parallel: an operation started from inside the observer is refused, never deadlocks", K,
                   kinds::Typed, kinds::Dynamic) {
  Timeline tl;
  auto s = make<K>(tl);
  // The observer is called one event at a time, so these need no lock of their own.
  std::vector<std::string> refusals;
  std::size_t events = 0, accepted = 0;
  s.on_event([&](const stackup::Event&) {
    ++events;
    for (int which = 0; which < 6; ++which) {
      try {
        switch (which) {
        case 0: s.up({.parallel = true}); break;
        case 1: s.up(); break;
        case 2: s.down({.force = true, .parallel = true}); break;
        case 3: s.down(); break;
        case 4: s.up("a", {.parallel = true}); break;
        case 5: s.down("f", {.force = true, .parallel = true}); break;
        }
        ++accepted;
      } catch (const stackup::TransitionError& e) {
        refusals.push_back(std::string("TransitionError: ") + e.what());
      } catch (const stackup::Error& e) {
        refusals.push_back(e.what());
      }
    }
  });
  {
    watchdog::Watchdog guard("parallel up with a re-entrant observer");
    s.up({.parallel = true});
  }
  CHECK(s.is_running());
  CHECK(events == 24);
  {
    watchdog::Watchdog guard("parallel down with a re-entrant observer");
    s.down({.force = true, .parallel = true});
  }
  CHECK_FALSE(s.is_provisioned());
  CHECK(events == 48);
  CHECK(accepted == 0);
  CHECK(refusals.size() == 6 * events);
  for (const auto& m : refusals) {
    INFO(m);
    CHECK(refusal(m));
  }
  // Exactly the actions of one up and one down ran: the refused calls did nothing.
  CHECK(tl.calls == 24);
  for (const char* role : {"a", "b", "c", "d", "e", "f"})
    for (const char* action : {"provision", "resume", "suspend", "deprovision"})
      CHECK(tl.has(std::string(action) + " " + role));
}

TEST_CASE_TEMPLATE("parallel: an observer that removes or replaces itself inside its callback: no deadlock, no UB", K,
                   kinds::Typed, kinds::Dynamic) {
  Timeline tl;
  auto s = make<K>(tl);
  std::vector<std::string> first;
  const std::string tag(256, 'p'); // lives in the closure being replaced
  s.on_event([&s, &first, tag](const stackup::Event& e) {
    s.on_event({});
    first.push_back(std::string(e.role) + " " + tag.substr(0, 2));
  });
  {
    watchdog::Watchdog guard("parallel up with an observer that removes itself");
    s.up({.parallel = true});
  }
  CHECK(s.is_running());
  REQUIRE(first.size() == 1); // removed once its callback returned
  CHECK((first[0] == "a pp" || first[0] == "b pp"));

  // A hand-over: the first observer gets one event, its successor every later one.
  Balanced second;
  std::size_t handed = 0;
  s.on_event([&](const stackup::Event&) {
    ++handed;
    s.on_event(second.observer());
  });
  {
    watchdog::Watchdog guard("parallel down with an observer that hands over");
    s.down({.force = true, .parallel = true});
  }
  CHECK_FALSE(s.is_provisioned());
  CHECK(handed == 1);
  CHECK(second.lines.size() == 23); // 24 events: suspend and deprovision of six, started and ended
  CHECK_FALSE(second.overlapped);
}

TEST_CASE_TEMPLATE("parallel: a call that comes back through another stack's observer is refused too", K,
                   kinds::Typed, kinds::Dynamic) {
  Timeline tx, ty;
  auto x = make<K>(tx);
  auto y = make<K>(ty);
  std::vector<std::string> refusals;
  std::size_t accepted = 0, y_ups = 0;
  y.on_event([&](const stackup::Event&) {
    try {
      x.down({.force = true, .parallel = true});
      ++accepted;
    } catch (const stackup::TransitionError& e) {
      refusals.push_back(std::string("TransitionError: ") + e.what());
    } catch (const stackup::Error& e) {
      refusals.push_back(e.what());
    }
  });
  x.on_event([&](const stackup::Event& e) {
    if (e.role == "a" && e.transition == Transition::provision && e.outcome == stackup::Outcome::succeeded) {
      ++y_ups;
      y.up({.parallel = true});
    }
  });
  {
    watchdog::Watchdog guard("parallel up whose observer acts on a second stack that acts back");
    x.up({.parallel = true});
  }
  CHECK(y_ups == 1);
  CHECK(x.is_running());
  CHECK(y.is_running());
  CHECK(tx.calls == 12); // x's own up, nothing more
  CHECK(accepted == 0);
  CHECK(refusals.size() == 24); // one per event of y's up
  for (const auto& m : refusals) {
    INFO(m);
    CHECK(m.rfind("stackup: an observer of stack 'default' started an operation on that stack", 0) == 0);
  }
}
