// The event stream: exact sequences, balance, and what each event carries; an
// observer that acts on the stack it watches. Both kinds of stack
// (tests/support/kinds.hpp).
#include "support/fake.hpp"
#include "support/kinds.hpp"

#include <stackup/cli.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

using stackup::Outcome;
using stackup::Transition;
using fake::Fake;
using fake::Fixed;
using fake::Recorder;
using kinds::get;

namespace {
using L = std::vector<std::string>;
using B = Fake<"b", "a">;
using A = Fake<"a">;
using C = Fixed<"c">;
template <class K> auto make(std::string_view name = "default") { return kinds::make<K, B, A, C>(name); }

struct CliResult {
  int code;
  std::string out, err;
};

const L up_lines{"provision a started", "provision a succeeded", "provision b started", "provision b succeeded",
                 "resume a started",    "resume a succeeded",    "resume b started",    "resume b succeeded",
                 "resume c already_done"};

std::string line(const stackup::Event& e) {
  return std::string(stackup::to_string(e.transition)) + " " + std::string(e.role) + " " +
         std::string(stackup::to_string(e.outcome));
}

/// Every operation a stack offers, started from inside its own observer. Each
/// must be refused with a stackup::Error (not run, so not a TransitionError);
/// `refusals` collects what each call threw.
template <class S> struct Reentry {
  S& s;
  std::vector<std::string> refusals;
  std::size_t accepted = 0; // calls that returned normally: must stay 0

  void try_all() {
    const std::vector<std::function<void()>> calls{
        [&] { s.up(); },
        [&] { s.up({.rollback = false}); },
        [&] { s.up({.parallel = true}); },
        [&] { s.down(); },
        [&] { s.down({.force = true}); },
        [&] { s.down({.force = true, .parallel = true}); },
        [&] { s.up("a"); },
        [&] { s.down("b", {.force = true}); },
        [&] { s.provision(); },
        [&] { s.resume(); },
        [&] { s.suspend(); },
        [&] { s.deprovision(); },
    };
    for (const auto& call : calls) {
      try {
        call();
        ++accepted;
      } catch (const stackup::TransitionError& e) {
        refusals.push_back(std::string("TransitionError: ") + e.what());
      } catch (const stackup::Error& e) {
        refusals.push_back(e.what());
      } catch (...) {
        refusals.push_back("not a stackup::Error");
      }
    }
  }
  static constexpr std::size_t per_event = 12;

  /// Every refusal is the engine's, naming the stack and the way out.
  void check(std::string_view stack, std::size_t events) const {
    CHECK(accepted == 0);
    CHECK(refusals.size() == per_event * events);
    for (const auto& m : refusals) {
      INFO(m);
      CHECK(m.rfind("stackup: an observer of stack '" + std::string(stack) +
                        "' started an operation on that stack while being told of an event",
                    0) == 0);
      CHECK(m.find("act after the operation returns") != std::string::npos);
    }
  }
};
} // namespace

TEST_CASE_TEMPLATE("events: the exact sequence of an up and a down", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>("events");
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

TEST_CASE_TEMPLATE("events: a failed up reports failed, then rolled_back for each undo", K, kinds::Typed,
                   kinds::Dynamic) {
  auto s = make<K>();
  Recorder rec;
  s.on_event(rec.observer());
  get<B>(s).fail = Transition::resume;
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

TEST_CASE_TEMPLATE("events: not implemented learned at run time ends its started", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  Recorder rec;
  s.up();
  s.on_event(rec.observer());
  get<A>(s).decline = Transition::suspend;
  s.down();
  CHECK(rec.lines == L{"suspend c not_implemented", "suspend b started", "suspend b succeeded", "suspend a started",
                       "suspend a not_implemented"});
  // The component's own reason, then what follows (a has a deprovision).
  CHECK(rec.events[4].message == "a: not configured; use force (--force) to deprovision");
}

TEST_CASE_TEMPLATE("events: every started has exactly one end, and elapsed is measured", K, kinds::Typed,
                   kinds::Dynamic) {
  auto s = make<K>();
  Recorder rec;
  s.on_event(rec.observer());
  s.up();
  s.down({.force = true});
  kinds::up<B>(s);
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

TEST_CASE_TEMPLATE("events: removing the observer stops delivery", K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  Recorder rec;
  s.on_event(rec.observer());
  s.on_event({});
  s.up();
  CHECK(rec.lines.empty());
}

TEST_CASE_TEMPLATE("events: an observer that throws changes nothing about the operation", K, kinds::Typed,
                   kinds::Dynamic) {
  auto s = make<K>();
  s.on_event([](const stackup::Event&) { throw std::runtime_error("observer broke"); });
  get<B>(s).fail = Transition::resume;
  try {
    s.up();
    FAIL("up should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "b"); // the component's error, not the observer's
    CHECK_THROWS_WITH(std::rethrow_exception(e.cause()), "b: resume exploded");
  }
  // every action done was still recorded, so the rollback undid all of it
  CHECK_FALSE(get<A>(s).provisioned);
  CHECK_FALSE(get<B>(s).provisioned);
  get<B>(s).fail.reset();
  s.up();
  CHECK(s.is_running());
}

// ---- observers that act on the stack they watch (issue 13, item 6) ------------------

TEST_CASE_TEMPLATE("events: an operation started from inside the observer is refused with an Error", K, kinds::Typed,
                   kinds::Dynamic) {
  fake::Log log;
  auto s = make<K>("events");
  get<A>(s).log = get<B>(s).log = &log;
  Reentry<decltype(s)> reentry{s, {}};
  L lines;
  s.on_event([&](const stackup::Event& e) {
    lines.push_back(line(e));
    reentry.try_all();
  });
  s.up();
  // The operation in progress went on as if the observer had not tried anything.
  CHECK(lines == up_lines);
  CHECK(log == fake::Log{"provision a", "provision b", "resume a", "resume b"});
  CHECK(s.is_running());
  reentry.check("events", up_lines.size());

  lines.clear();
  log.clear();
  reentry.refusals.clear();
  s.down({.force = true});
  CHECK(lines == L{"suspend c not_implemented", "deprovision c not_implemented", "suspend b started",
                   "suspend b succeeded", "deprovision b started", "deprovision b succeeded", "suspend a started",
                   "suspend a succeeded", "deprovision a started", "deprovision a succeeded"});
  CHECK(log == fake::Log{"suspend b", "deprovision b", "suspend a", "deprovision a"});
  reentry.check("events", lines.size());

  // Per-component operations and the primitives refuse too, and the observer
  // keeps its place.
  for (const auto& operation : std::vector<std::function<void()>>{
           [&] { s.up("b"); }, [&] { s.down("a", {.force = true}); }, [&] { s.provision(); },
           [&] { s.resume(); }, [&] { s.suspend(); }, [&] { s.deprovision(); }}) {
    lines.clear();
    reentry.refusals.clear();
    operation();
    CHECK_FALSE(lines.empty());
    reentry.check("events", lines.size());
  }

  // Outside the observer, the stack acts again.
  s.on_event({});
  log.clear();
  s.up();
  CHECK(log == fake::Log{"provision a", "provision b", "resume a", "resume b"});
}

TEST_CASE_TEMPLATE("events: a refused re-entry leaves the rollback of the operation in progress intact", K,
                   kinds::Typed, kinds::Dynamic) {
  auto s = make<K>();
  get<B>(s).fail = Transition::resume;
  Reentry<decltype(s)> reentry{s, {}};
  L lines;
  s.on_event([&](const stackup::Event& e) {
    lines.push_back(line(e));
    reentry.try_all();
  });
  try {
    s.up();
    FAIL("up should have thrown");
  } catch (const stackup::TransitionError& e) {
    CHECK(e.role() == "b");
    CHECK(e.failures().size() == 1);
    CHECK_THROWS_WITH(std::rethrow_exception(e.cause()), "b: resume exploded");
  }
  // Exactly what this up did was undone: the re-entries marked nothing.
  CHECK(lines == L{"provision a started", "provision a succeeded", "provision b started", "provision b succeeded",
                   "resume a started", "resume a succeeded", "resume b started", "resume b failed",
                   "suspend a started", "suspend a rolled_back", "deprovision b started",
                   "deprovision b rolled_back", "deprovision a started", "deprovision a rolled_back"});
  CHECK_FALSE(get<A>(s).provisioned);
  CHECK_FALSE(get<B>(s).provisioned);
  reentry.check("default", lines.size());
}

TEST_CASE_TEMPLATE("events: an observer that removes itself inside its callback is safe; removal follows the return",
                   K, kinds::Typed, kinds::Dynamic) {
  auto s = make<K>("events");
  L seen;
  // Captured by value, so it lives in the closure that on_event({}) replaces:
  // reading it after the call is a use-after-free unless the stack defers the
  // replacement until the callback returns.
  const std::string tag(256, 't');
  s.on_event([&s, &seen, tag](const stackup::Event& e) {
    s.on_event({});
    seen.push_back(line(e) + " " + std::to_string(tag.size()) + tag.substr(250));
  });
  s.up();
  CHECK(seen == L{"provision a started 256tttttt"});
  CHECK(s.is_running());
  s.down({.force = true});
  CHECK(seen.size() == 1); // removed for good
  CHECK_FALSE(s.is_provisioned());
}

TEST_CASE_TEMPLATE("events: an observer that hands over to another inside its callback; the last one set wins", K,
                   kinds::Typed, kinds::Dynamic) {
  auto s = make<K>("events");
  Recorder second, third;
  L first;
  const std::string tag(256, 'f');
  s.on_event([&s, &first, &second, &third, tag](const stackup::Event& e) {
    s.on_event(third.observer()); // replaced again below, before returning: never called
    s.on_event(second.observer());
    first.push_back(line(e) + " " + tag.substr(0, 3)); // this closure is still alive
    throw std::runtime_error("observer broke"); // dropped; the hand-over still happens
  });
  s.up();
  CHECK(first == L{"provision a started fff"});
  L rest(up_lines.begin() + 1, up_lines.end());
  CHECK(second.lines == rest);
  CHECK(third.lines.empty());
  CHECK(s.is_running());

  // An observer can also put itself back: it goes on receiving.
  L again;
  stackup::Observer self;
  self = [&](const stackup::Event& e) {
    again.push_back(line(e));
    s.on_event(self);
  };
  s.on_event(self);
  s.down();
  CHECK(again == L{"suspend c not_implemented", "suspend b started", "suspend b succeeded", "suspend a started",
                   "suspend a succeeded"});
  CHECK(second.lines == rest); // replaced: nothing more
}

TEST_CASE_TEMPLATE("events: cli::run puts the host's own observer back when it returns", K, kinds::Typed,
                   kinds::Dynamic) {
  auto s = make<K>("events");
  Recorder host;
  s.on_event(host.observer());
  const auto run = [&](std::vector<std::string_view> words) {
    std::ostringstream out, err;
    return CliResult{stackup::cli::run(s, std::span<const std::string_view>(words), out, err), out.str(), err.str()};
  };
  auto r = run({"stack", "up"});
  CHECK(r.code == 0);
  CHECK(r.out.find("b 'b' provisioned") != std::string::npos); // while it ran, cli::run was the observer
  CHECK(host.lines.empty());
  s.down();
  CHECK(host.lines == L{"suspend c not_implemented", "suspend b started", "suspend b succeeded", "suspend a started",
                        "suspend a succeeded"});

  // After a failed command and after a usage error too.
  host.lines.clear();
  get<A>(s).fail = Transition::resume;
  r = run({"b", "up"});
  CHECK(r.code == 1);
  CHECK(host.lines.empty());
  r = run({"nonesuch", "up"});
  CHECK(r.code == 2);
  r = run({"stack", "status"});
  CHECK(r.code == 0);
  get<A>(s).fail.reset();
  kinds::up<B>(s);
  CHECK(host.lines == L{"resume a started", "resume a succeeded", "resume b started", "resume b succeeded"});
}

TEST_CASE_TEMPLATE("events: cli::run leaves no observer behind when the host had none", K, kinds::Typed,
                   kinds::Dynamic) {
  auto s = make<K>();
  {
    std::ostringstream out, err;
    std::vector<std::string_view> words{"stack", "up"};
    CHECK(stackup::cli::run(s, std::span<const std::string_view>(words), out, err) == 0);
  } // out and err are gone: an observer still writing to them would crash below
  s.down({.force = true});
  CHECK_FALSE(s.is_provisioned());
}

TEST_CASE_TEMPLATE("events: cli::run started from inside the observer is refused (exit 1) and the observer stays", K,
                   kinds::Typed, kinds::Dynamic) {
  auto s = make<K>("events");
  L lines;
  std::vector<int> codes;
  std::string errors;
  s.on_event([&](const stackup::Event& e) {
    lines.push_back(line(e));
    std::ostringstream out, err;
    std::vector<std::string_view> words{"stack", "down", "--force"};
    codes.push_back(stackup::cli::run(s, std::span<const std::string_view>(words), out, err));
    errors += err.str();
  });
  s.up();
  CHECK(lines == up_lines);
  CHECK(codes == std::vector<int>(up_lines.size(), 1));
  CHECK(errors.find("an observer of stack 'events' started an operation on that stack") != std::string::npos);
  CHECK(s.is_running());
  lines.clear();
  codes.clear();
  s.down();
  CHECK(lines.size() == 5); // still the observer
  CHECK(codes == std::vector<int>(5, 1));
}

TEST_CASE_TEMPLATE("events: an observer may act on another stack; that stack's observer may not act back on the first",
                   K, kinds::Typed, kinds::Dynamic) {
  auto x = make<K>("x");
  auto y = make<K>("y");
  L x_lines, y_lines;
  std::vector<std::string> refusals;
  std::size_t accepted = 0;
  // y's observer tries to act on x, which is in the middle of an operation: the
  // call comes back into x through y, and must be refused like a direct one.
  y.on_event([&](const stackup::Event& e) {
    y_lines.push_back(line(e));
    try {
      x.down({.force = true});
      ++accepted;
    } catch (const stackup::TransitionError& err) {
      refusals.push_back(std::string("TransitionError: ") + err.what());
    } catch (const stackup::Error& err) {
      refusals.push_back(err.what());
    }
  });
  // x's observer brings y up when x's first component is provisioned.
  x.on_event([&](const stackup::Event& e) {
    x_lines.push_back(line(e));
    if (line(e) == "provision a succeeded") y.up();
  });
  x.up();
  CHECK(x_lines == up_lines); // x's up went on undisturbed
  CHECK(x.is_running());
  CHECK(y.is_running()); // acting on another stack is allowed
  CHECK(y_lines == up_lines);
  CHECK(accepted == 0);
  CHECK(refusals.size() == up_lines.size());
  for (const auto& m : refusals) {
    INFO(m);
    CHECK(m.rfind("stackup: an observer of stack 'x' started an operation on that stack", 0) == 0);
  }
}
