// stackup — the transition engine (internal): ZenML's rules (DESIGN §3, §4) —
// steps, rollback, exhaustive down, per-component operations, events, errors —
// written once for every kind of stack. Stack<Cs...> and DynamicStack only say
// where their components are (a Table); the rules of one step are templates over
// how the step reaches its component (the component itself: calls the compiler
// can inline; an Indirect: through the component type's Ops, with events).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/plan.hpp>
#include <stackup/detail/round_hook.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/options.hpp>
#include <stackup/stack_view.hpp>

#include <cstddef>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <stackup/detail/macro_scope.hpp>

namespace stackup::detail {

using Clock = std::chrono::steady_clock;

enum class Did : unsigned char { done, not_implemented };
/// One component's part of an operation.
enum class Phase : unsigned char { provision, resume, up_one, suspend, deprovision, force };
inline constexpr std::size_t phase_count = 6;
/// What a failed up undoes: the whole stack (every resume, then every provision)
/// or one component and its dependencies (one component at a time).
enum class Undo : unsigned char { stack, per_component };

// Bits of a component's byte in Run::marks.
inline constexpr unsigned char did_provision = 1; // this operation provisioned it
inline constexpr unsigned char did_resume = 2;    // this operation resumed it
inline constexpr unsigned char in_scope = 4;      // a per-component operation acts on it

// ---- what an action may be asked of a type -------------------------------------------

template <class T> concept has_provision = requires(T& c) { c.provision(); };
template <class T> concept has_resume = requires(T& c) { c.resume(); };
template <class T> concept has_suspend = requires(T& c) { c.suspend(); };
template <class T> concept has_deprovision = requires(T& c) { c.deprovision(); };
/// Drift (DESIGN §11): `bool is_current() const` says whether what is provisioned
/// matches the component's settings (default: it does); `void update()` brings a
/// provisioned component up to date in place (without it, up recreates it).
template <class T> concept has_is_current = requires(const T& c) {
  { c.is_current() } -> boolean_testable;
};
template <class T> concept has_update = requires(T& c) { c.update(); };
/// The two queries: all a type needs to be wrapped with a role given at run time.
template <class T> concept has_queries = std::is_class_v<T> && has_is_provisioned<T> && has_is_running<T>;

// The transition is a template argument wherever a component type is known, so
// that each instantiation holds only its own action (cheaper to compile, at -O0
// too, than a run-time choice the optimiser must prune).
template <class T, Transition X> inline constexpr bool has_action =
    X == Transition::provision ? has_provision<T>
    : X == Transition::resume  ? has_resume<T>
    : X == Transition::suspend ? has_suspend<T>
                               : has_deprovision<T>;
/// The bit of transition t in Ops::actions.
inline constexpr unsigned char action_bit(Transition t) noexcept { return static_cast<unsigned char>(1u << static_cast<int>(t)); }
/// Ops::actions bits beyond the four actions: the type has is_current(), update().
inline constexpr unsigned char tells_current = 16, updates = 32;
template <class C> inline constexpr unsigned char actions_of =
    (has_provision<C> ? action_bit(Transition::provision) : 0) | (has_resume<C> ? action_bit(Transition::resume) : 0) |
    (has_suspend<C> ? action_bit(Transition::suspend) : 0) | (has_deprovision<C> ? action_bit(Transition::deprovision) : 0) |
    (has_is_current<C> ? tells_current : 0) | (has_update<C> ? updates : 0);

// ---- one operation's bookkeeping ----------------------------------------------------------

/// A lock, given by the parallel scheduler (the core does not include <mutex>).
class Lock {
public:
  virtual void lock() = 0;
  virtual void unlock() = 0;

protected:
  ~Lock() = default;
};
struct Locked {
  Lock* held;
  explicit Locked(Lock* l) : held(l) {
    if (held) held->lock();
  }
  ~Locked() {
    if (held) held->unlock();
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;
};

/// What went wrong in one operation; allocated at its first failure only.
struct Failed {
  std::exception_ptr cause; // first failure
  std::size_t cause_index = 0;
  Transition cause_transition = Transition::provision;
  std::vector<TransitionError::Failure> failures;
};
/// Owns an operation's Failed (a std::unique_ptr would cost every includer <memory>).
class FailedRecord {
public:
  constexpr FailedRecord(std::nullptr_t = nullptr) noexcept {} // NOLINT: implicit, as a null pointer
  FailedRecord(const FailedRecord&) = delete;
  FailedRecord& operator=(const FailedRecord&) = delete;
  ~FailedRecord() { delete p_; }
  void create() { p_ = new Failed(); }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  Failed* operator->() const noexcept { return p_; }
  Failed& operator*() const noexcept { return *p_; }

private:
  Failed* p_ = nullptr;
};

/// Bookkeeping of one operation; lives on the caller's stack and allocates only
/// on failure, so an operation that succeeds only sets and tests a few bytes
/// besides what its components do.
struct Run {
  std::span<const std::string_view> roles;
  std::span<unsigned char> marks; // one byte per component (did_provision, did_resume, in_scope)
  Lock* guard = nullptr;          // set while steps run on several threads
  FailedRecord failed;            // null while nothing failed
  const StopTokenRef* stop = nullptr; // the options' token, or null: nothing to check
  bool refresh = false;               // an up: a provisioned component that is not current is brought up to date

  /// Call inside a catch: records the exception being handled.
  STACKUP_COLD void fail(std::size_t k, Transition t, bool rollback = false) {
    Locked hold(guard);
    if (!failed) failed.create();
    failed->failures.push_back({std::string(roles[k]), t, cat({rollback ? "rollback: " : "", current_message()}), rollback});
    if (!failed->cause) {
      failed->cause = std::current_exception();
      failed->cause_index = k;
      failed->cause_transition = t;
    }
  }
};

// ---- component types, reached at run time ----------------------------------------------

/// A query or action of a component, as Ops::call does it.
enum class Call : unsigned char { provision, resume, suspend, deprovision, is_provisioned, is_running, is_current, update };
/// What the engine needs of one component type, built once per type.
struct Ops {
  bool (*call)(void*, Call);                             // a query's answer; an action returns true
  unsigned char actions;                                 // action_bit of each action the type has
  bool (*quiet[phase_count])(void*, Run&, std::size_t);  // a step without events
  std::string_view (*name)(const void*);                 // null: the role
  std::string (*detail)(const void*);                    // null: none
  std::string (*log_file)(const void*);                  // null: keeps no log
  void (*destroy)(void*);
  std::string_view flavor;
  const void* type;                                      // &type_tag<C>
  int (*exit_fd)(const void*);                           // null: cannot tell (polled)
  std::optional<Exit> (*exit_status)(const void*);       // null: not known
  SupervisionConfig (*supervision)(const void*);         // null: the defaults
  bool (*is_stopped)(const void*);                       // null: when not running
  void (*kill)(const void*);                             // null: it has no kill()
  std::vector<std::string> (*log_command)(const void*, const LogRequest&); // null: no engine keeps its log
};
template <class T> inline constexpr char type_tag = 0;

/// A component of a stack: where it is, what its type can do, its listing index.
struct Slot {
  void* object;
  const Ops* ops;
  std::size_t index;
};

/// A stack as the engine sees it: its components in listing order, their roles,
/// the plan, the observer and one byte of scratch per component.
struct Events;
struct Table {
  std::string_view stack;
  std::span<const Slot> slots;   // listing order
  std::span<const Slot> ordered; // action order, for the quiet walk of a DynamicStack; empty: every walk is walk()
  std::span<const std::string_view> roles;
  std::span<const std::size_t> order, first, dep; // action order; dependencies of i: dep[first[i] .. first[i+1])
  Events* events;
  std::span<unsigned char> marks;

  [[nodiscard]] std::size_t size() const noexcept { return slots.size(); }
  [[nodiscard]] std::string_view name(std::size_t k) const {
    return slots[k].ops->name ? slots[k].ops->name(slots[k].object) : roles[k];
  }
  [[nodiscard]] bool is_provisioned(std::size_t k) const { return slots[k].ops->call(slots[k].object, Call::is_provisioned); }
  [[nodiscard]] bool is_running(std::size_t k) const { return slots[k].ops->call(slots[k].object, Call::is_running); }
  [[nodiscard]] State state(std::size_t k) const {
    if (is_running(k)) return State::running;
    if (is_provisioned(k)) return State::suspended;
    return State::deprovisioned;
  }
  [[nodiscard]] bool has(std::size_t k, Transition t) const {
    return (slots[k].ops->actions & action_bit(t)) != 0;
  }
  /// False only for a provisioned component whose is_current() says so.
  [[nodiscard]] bool is_current(std::size_t k, State s) const {
    return s == State::deprovisioned || !(slots[k].ops->actions & tells_current) ||
           slots[k].ops->call(slots[k].object, Call::is_current);
  }
  [[nodiscard]] ComponentStatus status(std::size_t k) const {
    const Ops& o = *slots[k].ops;
    const State s = state(k);
    return {roles[k], name(k), s, o.flavor, o.detail ? o.detail(slots[k].object) : std::string(),
            o.exit_status ? o.exit_status(slots[k].object) : std::nullopt, 0, SupervisionState::none, is_current(k, s)};
  }
  /// Index of `role`, or size() (linear: for messages and the command line).
  [[nodiscard]] std::size_t find(std::string_view role) const noexcept {
    std::size_t i = 0;
    while (i < roles.size() && roles[i] != role) ++i;
    return i;
  }
};

// ---- events ---------------------------------------------------------------------------

/// A stack's observer, and what keeps calls to it safe.
struct Events;
/// The stacks whose observers this thread is running, innermost first (an
/// observer may act on another stack, whose observer runs inside it).
struct Reporting {
  const Events* events;
  const Reporting* outer;
  [[nodiscard]] bool on(const Events* e) const noexcept {
    for (const Reporting* r = this; r; r = r->outer)
      if (r->events == e) return true;
    return false;
  }
};
inline thread_local const Reporting* reporting = nullptr;

struct Events {
  Observer observer;
  Lock* guard = nullptr; // set while a phase runs in parallel: events are serialised
  bool replaced = false; // the observer called on_event(): `pending` takes over when it returns
  Observer pending;

  /// on_event(): returns the observer it replaces. The observer's own
  /// replacement waits for it to return (the running function must not be
  /// destroyed under its feet): it gets a copy of itself back.
  Observer set(Observer o) {
    if (reporting && reporting->on(this)) { // called by its observer: this thread holds the guard already
      Observer previous = replaced ? std::move(pending) : observer;
      pending = std::move(o);
      replaced = true;
      return previous;
    }
    Locked hold(guard);
    Observer previous = std::move(observer);
    observer = std::move(o);
    return previous;
  }
};

/// An operation started from inside the stack's own observer is refused: the
/// stack is in the middle of another one.
[[noreturn]] STACKUP_COLD inline void refuse_reentry(std::string_view stack) {
  throw Error(cat({"stackup: an observer of stack '", stack,
                   "' started an operation on that stack while being told of an event; an observer must not act on "
                   "the stack it watches: act after the operation returns"}));
}
inline void check_not_reporting(const Table& t) {
  if (reporting && reporting->on(t.events)) [[unlikely]] refuse_reentry(t.stack);
}

/// Calls the observer, if any, one event at a time. Its exception is dropped: an
/// observer watches, it must not steer (skip bookkeeping or replace an error).
STACKUP_COLD inline void emit(const Table& t, std::size_t k, Transition x, Outcome o, std::chrono::nanoseconds elapsed,
                              std::string_view message) {
  Events& ev = *t.events;
  Locked hold(ev.guard);
  if (!ev.observer) return;
  const Reporting frame{&ev, reporting};
  reporting = &frame;
  try {
    ev.observer(Event{t.stack, t.roles[k], t.name(k), x, o, elapsed, std::string(message)});
  } catch (...) {
  }
  reporting = frame.outer;
  if (ev.replaced) {
    ev.observer = std::move(ev.pending);
    ev.pending = nullptr;
    ev.replaced = false;
  }
}

// ---- reaching one component ---------------------------------------------------------------

// A step acts on the component itself (the quiet paths: its calls are inlined) or
// on an Indirect, which reaches it through its type's Ops. The rules below are
// one function per phase, and the only helper templated on the component is
// perform<X> (one per action): a compiler's cost at -O2 grows with the number of
// functions it builds per component type, even those it then inlines.

/// A component reached through its Ops, with its events.
struct Indirect {
  const Table& t;
  std::size_t k;
  [[nodiscard]] bool is_provisioned() const { return t.is_provisioned(k); }
  [[nodiscard]] bool is_running() const { return t.is_running(k); }
  [[nodiscard]] bool has(Transition x) const { return t.has(k, x); }
  [[nodiscard]] bool is_current() const { return !(t.slots[k].ops->actions & tells_current) || t.slots[k].ops->call(t.slots[k].object, Call::is_current); }
  [[nodiscard]] bool has_update() const { return (t.slots[k].ops->actions & updates) != 0; }
  /// Action x (with `update`: the component's update(), reported as x), its
  /// start and success events saying `why` it is done.
  [[gnu::noinline]] Did act(Transition x, bool undo, std::string_view advice, std::string_view why = {},
                            bool update = false) { // one copy for every step of the walk
    bool (*const call)(void*, Call) = t.slots[k].ops->call;
    void* const object = t.slots[k].object;
    const Call what = update ? Call::update : static_cast<Call>(x);
    // Without an observer (tested under the lock in parallel mode), no events.
    if (!t.events->guard && !t.events->observer) {
      try {
        call(object, what);
      } catch (const NotImplementedError&) {
        return Did::not_implemented;
      }
      return Did::done;
    }
    emit(t, k, x, Outcome::started, {}, why);
    const auto t0 = Clock::now();
    try {
      call(object, what);
    } catch (const NotImplementedError& e) { // the component's own reason, then the advice
      emit(t, k, x, Outcome::not_implemented, Clock::now() - t0,
           advice.empty() ? std::string(e.what()) : cat({e.what(), "; ", advice}));
      return Did::not_implemented;
    } catch (...) {
      emit(t, k, x, Outcome::failed, Clock::now() - t0, current_message());
      throw;
    }
    emit(t, k, x, undo ? Outcome::rolled_back : Outcome::succeeded, Clock::now() - t0, why);
    return Did::done;
  }
  void note(Transition x, Outcome o, std::string_view message) const {
    if (t.events->guard || t.events->observer) [[unlikely]] emit(t, k, x, o, {}, message);
  }
  /// The not_implemented event of an action its type lacks, with what follows from it.
  void absent(Transition x, std::string_view advice) const {
    if (t.events->guard || t.events->observer) [[unlikely]]
      emit(t, k, x, Outcome::not_implemented, {}, advice.empty() ? std::string("not implemented") : cat({"not implemented; ", advice}));
  }
};

template <class C> concept stand_in = std::is_same_v<C, Indirect>;

// Optional members that supervision (DESIGN §10) reads, where a component has them:
// - `int exit_fd() const`: a new descriptor (the caller closes it) that becomes
//   readable when the component stops running on its own (LocalDaemon: a pidfd
//   of its waiter); -1 when it cannot tell (then it is polled).
// - `std::optional<Exit> exit_status() const`: how it last stopped running on
//   its own since its last start; empty while running and after a down.
// - `SupervisionConfig supervision() const`: its restart policy, liveness probe
//   and on_dependency_restart (the defaults without the member).
template <class T> concept has_exit_fd = requires(const T& c) {
  { c.exit_fd() } -> std::convertible_to<int>;
};
template <class T> concept has_exit_status = requires(const T& c) {
  { c.exit_status() } -> std::convertible_to<std::optional<Exit>>;
};
template <class T> concept has_supervision = requires(const T& c) {
  { c.supervision() } -> std::convertible_to<SupervisionConfig>;
};

/// A component not running by is_running() may still hold something a suspend
/// stops or clears (a LocalDaemon alive but not ready, or ended on its own with
/// its end on record): it says so with an optional `bool is_stopped() const`,
/// false then. A down suspends it all the same: no process escapes a down, and
/// what a down stopped never reads as an exit (so no supervisor restarts it).
template <class T> concept has_is_stopped = requires(const T& c) {
  { c.is_stopped() } -> std::convertible_to<bool>;
};
/// `void kill() const`: stop at once, without grace — what suspend would stop is
/// killed now. It may be called from another thread while a suspend of the same
/// component runs (a supervisor's or a command line's second Ctrl-C); the engine
/// never calls it itself, it only carries it (AnyComponent, StackView).
template <class T> concept has_kill = requires(const T& c) { c.kill(); };
/// `std::vector<std::string> log_command(const LogRequest&) const`: the program
/// (argv) whose standard output and error are the component's log as its engine
/// keeps it (a container's `podman logs`); the CLI runs it for `logs`. For a
/// component whose log is no file of its own (no `log_file()`).
template <class T> concept has_log_command = requires(const T& c, const LogRequest& r) {
  { c.log_command(r) } -> std::convertible_to<std::vector<std::string>>;
};
template <class C> bool is_stopped(const C& c) {
  if constexpr (stand_in<C>) {
    const Slot& s = c.t.slots[c.k];
    return !s.ops->is_stopped || s.ops->is_stopped(s.object);
  } else if constexpr (has_is_stopped<C>) {
    return static_cast<bool>(c.is_stopped());
  } else {
    return true;
  }
}

/// Events of a step: only an Indirect with an observer has any.
inline void note(const void* /*component*/, Transition, Outcome, std::string_view) noexcept {}
inline void note(const Indirect* c, Transition x, Outcome o, std::string_view message) { c->note(x, o, message); }

/// How an error message names a component: its `name()`, if it has one (null: its role).
using NameOf = std::string_view (*)(const void*);

// ---- errors of one step -----------------------------------------------------------------

[[noreturn]] STACKUP_COLD inline void not_implemented(std::string_view role, std::string_view name, Transition t,
                                                      std::string_view advice) {
  throw NotImplementedError(cat({"stackup: ", role, " '", name, "' does not implement ", to_string(t), "()",
                                 advice.empty() ? "" : "; ", advice}));
}
/// The ProvisioningError of a resume asked of a component with nothing provisioned.
[[noreturn]] STACKUP_COLD inline void not_provisioned(std::string_view role, std::string_view name) {
  throw ProvisioningError(cat({"stackup: cannot resume ", role, " '", name,
                               "': nothing is provisioned; provision it first (provision() or up())"}));
}
// The errors of component k (at `c`), found out of line so that the inlined
// steps keep nothing in memory for them; one body for every component type. The
// first three parameters are those of a DynamicStack's quiet step, in its order.
[[noreturn]] STACKUP_COLD inline void not_provisioned(const void* c, const Run& r, std::size_t k, NameOf name) {
  not_provisioned(r.roles[k], name ? name(c) : r.roles[k]);
}
[[noreturn]] STACKUP_COLD inline void lacks(const void* c, const Run& r, std::size_t k, NameOf name, Transition t,
                                            std::string_view advice) {
  not_implemented(r.roles[k], name ? name(c) : r.roles[k], t, advice);
}

// ---- the rules of one step (DESIGN §3), written once ------------------------------------

/// What a step does when an action it needs is missing: skip it (a dependent, or
/// the whole stack) or report an error (the target of a per-component down).
enum class Missing : unsigned char { skip, error };
/// Whether a resume step reports a component that is already running (not when
/// it follows the provision of a per-component up).
enum class Running : unsigned char { report, quiet };
/// Where a failure of a provision or resume step is caught: in the step, or by
/// the walk that called it (DynamicStack's quiet walk: one handler per walk keeps
/// its steps smaller and faster).
enum class Catch : unsigned char { in_step, by_walk };


/// Does action X of `c` when it has it: Did::done, or Did::not_implemented when it
/// lacks X or throws NotImplementedError, reported as an event whose message ends
/// with `advice`: what follows for the component, what the user can do. These
/// messages are the one place that says it (the command line prints them as they come).
template <Transition X, class C>
STACKUP_ALWAYS_INLINE Did perform(C& c, std::string_view advice, bool undo = false, std::string_view why = {}) {
  if constexpr (stand_in<C>) {
    if (c.has(X)) return c.act(X, undo, advice, why);
    c.absent(X, advice);
    return Did::not_implemented;
  } else if constexpr (has_action<C, X>) {
    try {
      if constexpr (X == Transition::provision) c.provision();
      else if constexpr (X == Transition::resume) c.resume();
      else if constexpr (X == Transition::suspend) c.suspend();
      else c.deprovision();
    } catch (const NotImplementedError&) {
      return Did::not_implemented;
    }
    return Did::done;
  } else {
    return Did::not_implemented;
  }
}
template <class C> std::string_view name_ptr_of(const void* o) { return detail::name_of(*static_cast<const C*>(o)); }
template <class C> constexpr auto name_entry() {
  if constexpr (has_name<C>) return &name_ptr_of<C>;
  else return static_cast<std::string_view (*)(const void*)>(nullptr);
}
/// How error messages name a C.
template <class C> inline constexpr NameOf name_of_type = name_entry<C>();
template <> inline constexpr NameOf name_of_type<Indirect> = [](const void* c) {
  return static_cast<const Indirect*>(c)->t.name(static_cast<const Indirect*>(c)->k);
};

// ---- drift (DESIGN §11) -------------------------------------------------------------------

/// What the events of bringing a component up to date say.
inline constexpr std::string_view settings_changed = "settings changed";
inline constexpr std::string_view settings_changed_update = "settings changed: update";

template <class C> bool is_current(const C& c) {
  if constexpr (stand_in<C>) return c.is_current();
  else if constexpr (has_is_current<C>) return static_cast<bool>(c.is_current());
  else return true;
}
/// The component's update(): Did::not_implemented when it has none or throws NotImplementedError.
template <class C> Did update(C& c) {
  if constexpr (stand_in<C>) {
    return c.has_update() ? c.act(Transition::provision, false, "recreating it instead", settings_changed_update, true)
                          : Did::not_implemented;
  } else if constexpr (has_update<C>) {
    try {
      c.update();
    } catch (const NotImplementedError&) {
      return Did::not_implemented;
    }
    return Did::done;
  } else {
    return Did::not_implemented;
  }
}
/// Brings provisioned component k, which is not current, up to date for an up:
/// its update(), else suspend (when running), deprovision and provision; the
/// resume that follows is the up's own. It sets no mark: a rollback treats it
/// as a component the up found provisioned (its old settings are gone: it is
/// left provisioned, with the new ones) and undoes only the up's resume of it.
/// A failure is recorded under the action that failed; returns false then.
template <class C> STACKUP_COLD bool refresh(C& c, std::size_t k, Run& r) {
  Transition at = Transition::provision;
  try {
    if (detail::update(c) == Did::done) return true;
    at = Transition::suspend;
    if (c.is_running()) detail::perform<Transition::suspend>(c, "deprovision follows", false, settings_changed);
    at = Transition::deprovision;
    if (detail::perform<Transition::deprovision>(c, "it cannot be recreated", false, settings_changed) != Did::done)
      detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::deprovision,
                    "it is outdated (settings changed) and can be brought up to date only by update() or by recreating it");
    at = Transition::provision;
    if (detail::perform<Transition::provision>(c, {}, false, settings_changed) != Did::done)
      detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::provision,
                    "it was deprovisioned to be recreated (settings changed) and cannot provision itself");
    return true;
  } catch (...) {
    r.fail(k, at);
    return false;
  }
}

/// Component k's part of phase P, reaching it through `c` (the component or a
/// stand-in); `marks` is the operation's record (a local of the caller: no reload
/// after the component's own stores). Never throws: failures go to `r`. Returns
/// false when the phase must stop (a failure of up). With Catch::by_walk, a
/// provision or resume step leaves its failure to the caller.
template <Phase P, Catch Where = Catch::in_step, class C, class K>
STACKUP_ALWAYS_INLINE bool step(C& c, K k, Run& r, unsigned char* marks, Missing missing = Missing::skip,
                                Running running = Running::report) {
  // Calls that take the component are qualified: its namespace (argument-dependent
  // lookup) must not change what the engine calls. Its address is taken with
  // __builtin_addressof (std::addressof without <memory>): it may overload operator&.
  if constexpr (P == Phase::provision) {
    try {
      // The action on the straight path, as compilers lay out the hand-written
      // `if (!c.is_provisioned()) c.provision();`.
      if (!c.is_provisioned()) [[likely]] {
        if (detail::perform<Transition::provision>(c, {}) != Did::done)
          detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::provision, "it is not provisioned and cannot provision itself");
        marks[k] |= did_provision;
      } else {
        if constexpr (stand_in<C> || has_is_current<C>)
          if (r.refresh && !detail::is_current(c)) [[unlikely]] return detail::refresh(c, k, r);
      }
      return true;
    } catch (...) {
      if constexpr (Where == Catch::by_walk) throw;
      r.fail(k, Transition::provision);
      return false;
    }
  } else if constexpr (P == Phase::resume) {
    try {
      if (!c.is_running()) [[likely]] {
        if (!c.is_provisioned()) detail::not_provisioned(__builtin_addressof(c), r, k, name_of_type<C>);
        if (detail::perform<Transition::resume>(c, {}) != Did::done)
          detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::resume, "it is provisioned but not running and cannot start itself");
        marks[k] |= did_resume;
      } else if (running == Running::report) {
        detail::note(__builtin_addressof(c), Transition::resume, Outcome::already_done, "already running");
      }
      return true;
    } catch (...) {
      if constexpr (Where == Catch::by_walk) throw;
      r.fail(k, Transition::resume);
      return false;
    }
  } else if constexpr (P == Phase::up_one) {
    try {
      if (c.is_running() && detail::is_current(c)) {
        detail::note(__builtin_addressof(c), Transition::resume, Outcome::already_done, "already running");
        return true;
      }
    } catch (...) {
      r.fail(k, Transition::resume);
      return false;
    }
    return detail::step<Phase::provision>(c, k, r, marks) && detail::step<Phase::resume>(c, k, r, marks, missing, Running::quiet);
  } else if constexpr (P == Phase::suspend) {
    try {
      bool deprovisions = has_deprovision<C>;
      if constexpr (stand_in<C>) deprovisions = c.has(Transition::deprovision);
      if (!c.is_running() && detail::is_stopped(c)) {
        detail::note(__builtin_addressof(c), Transition::suspend, Outcome::already_done, "not running");
      } else if (detail::perform<Transition::suspend>(c, deprovisions ? "use force (--force) to deprovision" : "it keeps running") != Did::done &&
                 missing == Missing::error) {
        detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::suspend,
                      deprovisions ? "use down with force (--force) to deprovision it instead"
                                   : "it has no deprovision() either: it cannot be brought down");
      }
    } catch (...) {
      r.fail(k, Transition::suspend);
    }
    return true;
  } else if constexpr (P == Phase::deprovision) {
    try {
      if (!c.is_provisioned()) detail::note(__builtin_addressof(c), Transition::deprovision, Outcome::already_done, "not provisioned");
      else detail::perform<Transition::deprovision>(c, "left in place");
    } catch (...) {
      r.fail(k, Transition::deprovision);
    }
    return true;
  } else { // force: stop it if it runs and can, then deprovision it; a failed suspend still gets its deprovision attempt
    bool was_running = false;
    try {
      was_running = c.is_running();
      if (was_running) [[likely]] { // as for provision: the action on the straight path
        bool deprovisions = has_deprovision<C>;
        if constexpr (stand_in<C>) deprovisions = c.has(Transition::deprovision);
        detail::perform<Transition::suspend>(c, deprovisions ? "deprovision follows" : "it keeps running");
      }
    } catch (...) {
      r.fail(k, Transition::suspend);
    }
    try {
      if (c.is_provisioned()) [[likely]] { // the deprovision on the straight path, as for provision
        if (detail::perform<Transition::deprovision>(c, "left in place") != Did::done && missing == Missing::error)
          detail::lacks(__builtin_addressof(c), r, k, name_of_type<C>, Transition::deprovision, "it cannot be removed");
      } else if (!was_running) {
        detail::note(__builtin_addressof(c), Transition::deprovision, Outcome::already_done, "already deprovisioned");
      }
    } catch (...) {
      r.fail(k, Transition::deprovision);
    }
    return true;
  }
}
/// step<P> for a phase known at run time (the engine's own walks).
inline bool step(Phase p, Indirect& c, Run& r) {
  unsigned char* const marks = r.marks.data();
  switch (p) {
  case Phase::provision: return step<Phase::provision>(c, c.k, r, marks);
  case Phase::resume: return step<Phase::resume>(c, c.k, r, marks);
  case Phase::up_one: return step<Phase::up_one>(c, c.k, r, marks);
  case Phase::suspend: return step<Phase::suspend>(c, c.k, r, marks);
  case Phase::deprovision: return step<Phase::deprovision>(c, c.k, r, marks);
  case Phase::force: return step<Phase::force>(c, c.k, r, marks);
  }
  return true;
}

// Undoes what an up did to one component (rollback): resumed → suspend, provisioned → deprovision.
template <Transition Done> void undo_step(Indirect& c, Run& r) {
  constexpr bool resumed = Done == Transition::resume;
  constexpr Transition x = resumed ? Transition::suspend : Transition::deprovision;
  try {
    if (perform<x>(c, resumed ? "left running" : "left in place", true) == Did::done) return;
    lacks(__builtin_addressof(c), r, c.k, name_of_type<Indirect>, x, resumed ? "it was left running" : "it was left provisioned");
  } catch (...) {
    r.fail(c.k, x, true);
  }
}

inline constexpr bool reversed(Phase p) noexcept {
  return p == Phase::suspend || p == Phase::deprovision || p == Phase::force;
}
/// The transition a phase's failure is reported under before it acts.
inline constexpr Transition first_transition(Phase p) noexcept {
  switch (p) {
  case Phase::provision: case Phase::up_one: return Transition::provision;
  case Phase::resume: return Transition::resume;
  case Phase::suspend: case Phase::force: return Transition::suspend;
  case Phase::deprovision: return Transition::deprovision;
  }
  return Transition::provision;
}

/// While an up's forward phase runs on this thread, its components' own waits
/// see the stop request (stackup::stop_requested()); undo and down actions do not.
class StopScope {
public:
  StopScope(const Run& r, Phase p) : saved_(current_stop) {
    if (p == Phase::provision || p == Phase::resume || p == Phase::up_one) current_stop = r.stop;
  }
  ~StopScope() { current_stop = saved_; }
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;

private:
  const StopTokenRef* saved_;
};

/// Records that the phase stopped before component k because a stop was
/// requested; `left` names what was left as it was. Returns false (stop the phase).
STACKUP_COLD inline bool interrupted(Run& r, std::size_t k, Phase p, const std::string& left) noexcept {
  try {
    throw InterruptedError(cat({"stopped before acting on it: a stop was requested; left as they were: ", left}));
  } catch (...) {
    r.fail(k, first_transition(p));
  }
  return false;
}

// ---- Ops of a type ---------------------------------------------------------------------

/// The quiet step of a DynamicStack's component of type C, inlined for that type.
template <class C, Phase P> bool quiet_step(void* object, Run& r, std::size_t k) {
  return detail::step<P, Catch::by_walk>(*static_cast<C*>(object), k, r, r.marks.data());
}
template <class T> concept has_log_file = requires(const T& c) {
  { c.log_file().string() } -> std::convertible_to<std::string>;
};
// The entries of ops_of<C>: plain function templates (a lambda costs the
// compiler two functions, its call operator and its conversion).
// One function per type for its queries and actions: a compiler's cost is per
// function as much as per line.
template <class C> bool call_of(void* o, Call what) {
  C& c = *static_cast<C*>(o);
  switch (what) {
  case Call::is_provisioned: return static_cast<bool>(std::as_const(c).is_provisioned());
  case Call::is_running: return static_cast<bool>(std::as_const(c).is_running());
  case Call::is_current:
    if constexpr (has_is_current<C>) return static_cast<bool>(std::as_const(c).is_current());
    break;
  case Call::update: if constexpr (has_update<C>) c.update(); break;
  case Call::provision: if constexpr (has_provision<C>) c.provision(); break;
  case Call::resume: if constexpr (has_resume<C>) c.resume(); break;
  case Call::suspend: if constexpr (has_suspend<C>) c.suspend(); break;
  case Call::deprovision: if constexpr (has_deprovision<C>) c.deprovision(); break;
  }
  return true;
}
template <class C> std::string detail_of(const void* o) { return std::string(static_cast<const C*>(o)->detail()); }
template <class C> std::string log_file_of(const void* o) { return std::string(static_cast<const C*>(o)->log_file().string()); }
template <class C> void destroy_of(void* o) { delete static_cast<C*>(o); }
template <class C> int exit_fd_of(const void* o) { return static_cast<int>(static_cast<const C*>(o)->exit_fd()); }
template <class C> std::optional<Exit> exit_status_of(const void* o) { return static_cast<const C*>(o)->exit_status(); }
template <class C> SupervisionConfig supervision_of(const void* o) { return static_cast<const C*>(o)->supervision(); }
template <class C> bool is_stopped_of(const void* o) { return static_cast<bool>(static_cast<const C*>(o)->is_stopped()); }
template <class C> void kill_of(const void* o) { static_cast<const C*>(o)->kill(); }
template <class C> std::vector<std::string> log_command_of(const void* o, const LogRequest& r) {
  return static_cast<const C*>(o)->log_command(r);
}
template <class C, bool Dynamic, Phase P> constexpr bool (*quiet_entry())(void*, Run&, std::size_t) {
  if constexpr (Dynamic) return &quiet_step<C, P>;
  else return nullptr;
}
template <class C, bool Dynamic> constexpr void (*destroy_entry())(void*) {
  if constexpr (Dynamic) return &destroy_of<C>;
  else return nullptr;
}
template <class C> constexpr auto detail_entry() {
  if constexpr (has_detail<C>) return &detail_of<C>;
  else return static_cast<std::string (*)(const void*)>(nullptr);
}
template <class C> constexpr auto log_file_entry() {
  if constexpr (has_log_file<C>) return &log_file_of<C>;
  else return static_cast<std::string (*)(const void*)>(nullptr);
}
template <class C> constexpr auto exit_fd_entry() {
  if constexpr (has_exit_fd<C>) return &exit_fd_of<C>;
  else return static_cast<int (*)(const void*)>(nullptr);
}
template <class C> constexpr auto exit_status_entry() {
  if constexpr (has_exit_status<C>) return &exit_status_of<C>;
  else return static_cast<std::optional<Exit> (*)(const void*)>(nullptr);
}
template <class C> constexpr auto is_stopped_entry() {
  if constexpr (has_is_stopped<C>) return &is_stopped_of<C>;
  else return static_cast<bool (*)(const void*)>(nullptr);
}
template <class C> constexpr auto kill_entry() {
  if constexpr (has_kill<C>) return &kill_of<C>;
  else return static_cast<void (*)(const void*)>(nullptr);
}
template <class C> constexpr auto log_command_entry() {
  if constexpr (has_log_command<C>) return &log_command_of<C>;
  else return static_cast<std::vector<std::string> (*)(const void*, const LogRequest&)>(nullptr);
}
template <class C> constexpr auto supervision_entry() {
  if constexpr (has_supervision<C>) return &supervision_of<C>;
  else return static_cast<SupervisionConfig (*)(const void*)>(nullptr);
}

/// The Ops of type C. For a DynamicStack (an AnyComponent), with C's own quiet
/// steps and destroy; for Stack<Cs...> without them (they are most of the code
/// compiled per type): its up and down inline their own steps, and its other
/// operations take the engine's walk().
template <class C, bool Dynamic = true>
inline constexpr Ops ops_of{
    &call_of<C>,
    actions_of<C>,
    {quiet_entry<C, Dynamic, Phase::provision>(), quiet_entry<C, Dynamic, Phase::resume>(),
     quiet_entry<C, Dynamic, Phase::up_one>(), quiet_entry<C, Dynamic, Phase::suspend>(),
     quiet_entry<C, Dynamic, Phase::deprovision>(), quiet_entry<C, Dynamic, Phase::force>()},
    name_entry<C>(),
    detail_entry<C>(),
    log_file_entry<C>(),
    destroy_entry<C, Dynamic>(),
    flavor_of<C>(),
    &type_tag<C>,
    exit_fd_entry<C>(),
    exit_status_entry<C>(),
    supervision_entry<C>(),
    is_stopped_entry<C>(),
    kill_entry<C>(),
    log_command_entry<C>(),
};

// ---- phases ---------------------------------------------------------------------------

/// Runs `run_dag` for a phase in parallel; set by <stackup/parallel.hpp>.
inline bool (*parallel_phase)(const Table&, Run&, Phase, unsigned char scope, std::size_t max_threads) = nullptr;

[[noreturn]] STACKUP_COLD inline void no_scheduler() {
  throw Error("stackup: parallel mode (.parallel = true) needs the scheduler: #include <stackup/parallel.hpp> "
              "(the umbrella header <stackup/stackup.hpp> includes it)");
}

template <class It> STACKUP_ALWAYS_INLINE bool quiet_walk(It first, It last, Run& r, Phase p) {
  const auto q = static_cast<int>(p);
  try {
    for (; first != last; ++first)
      if (!first->ops->quiet[q](first->object, r, first->index)) return false;
  } catch (...) { // only provision and resume throw (Catch::by_walk)
    r.fail(first->index, p == Phase::provision ? Transition::provision : Transition::resume);
    return false;
  }
  return true;
}

/// run_phase off the quiet path: with an observer, a scope or a stop token, and for
/// Stack<Cs...> (no quiet steps of its own) every phase that is not inlined.
[[gnu::noinline]] inline bool walk(const Table& t, Run& r, Phase p, unsigned char scope) {
  const std::size_t n = t.size();
  const bool reverse = reversed(p);
  const StopScope stop_scope(r, p);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = t.order[reverse ? n - 1 - i : i];
    if (scope != 0 && !(r.marks[k] & scope)) continue;
    if (r.stop && r.stop->stop_requested()) [[unlikely]] {
      std::string left;
      for (std::size_t j = i; j < n; ++j) {
        const std::size_t x = t.order[reverse ? n - 1 - j : j];
        if (scope == 0 || (r.marks[x] & scope)) left.append(left.empty() ? "" : ", ").append(t.roles[x]);
      }
      return interrupted(r, k, p, left);
    }
    Indirect a{t, k};
    if (!step(p, a, r)) return false;
  }
  return true;
}

/// Runs the phase's step for every component in scope (scope 0: all), in
/// (reverse) action order, stopping at the first step that returns false. On the
/// quiet path the observer is tested once per phase: one set by a component's
/// own action takes effect from the next phase.
inline bool run_phase(const Table& t, Run& r, Phase p, unsigned char scope, bool parallel, std::size_t max_threads) {
  if (parallel) {
    if (!parallel_phase) no_scheduler();
    return parallel_phase(t, r, p, scope, max_threads);
  }
  if (!t.ordered.empty() && !t.events->observer && scope == 0 && !r.stop) // the quiet path: one indirect call per step
    return reversed(p) ? quiet_walk(t.ordered.rbegin(), t.ordered.rend(), r, p)
                       : quiet_walk(t.ordered.begin(), t.ordered.end(), r, p);
  return walk(t, r, p, scope);
}

// ---- failures -----------------------------------------------------------------------------

/// Throws the TransitionError of a failed operation, nesting its first failure.
[[noreturn]] STACKUP_COLD inline void raise(const Table& t, Run& run, std::string_view operation, bool rolled_back = false) {
  Failed& f = *run.failed;
  const std::string_view role = t.roles[f.cause_index];
  std::string m = cat({"stackup: stack '", t.stack, "' ", operation, " failed: "});
  m.append(role).append(" '").append(t.name(f.cause_index)).append("' failed to ").append(to_string(f.cause_transition));
  m.append(": ").append(f.failures.front().message);
  for (std::size_t i = 1; i < f.failures.size(); ++i) {
    const auto& x = f.failures[i];
    m.append(i == 1 ? "; also: " : "; ").append(x.role).append(" ").append(to_string(x.transition)).append(": ").append(x.message);
  }
  if (rolled_back) {
    bool complete = true;
    for (const auto& x : f.failures) complete = complete && !x.rollback;
    m += complete ? " (rolled back)" : " (rollback incomplete)";
  }
  try {
    std::rethrow_exception(f.cause);
  } catch (...) {
    throw TransitionError(std::string(role), f.cause_transition, m, std::move(f.failures));
  }
}

/// Undoes what this up did, in reverse, then throws. For a whole-stack up every
/// resume is undone before any provision; for up of one component, one component
/// at a time.
[[noreturn]] STACKUP_COLD inline void fail_up(const Table& t, Run& r, const UpOptions& options, Undo undo) {
  if (options.rollback) {
    const bool per_component = undo == Undo::per_component;
    for (std::size_t pass = per_component ? 1 : 2; pass-- > 0;)
      for (std::size_t n = t.size(); n-- > 0;) {
        const std::size_t k = t.order[n];
        Indirect a{t, k};
        if ((r.marks[k] & did_resume) && (per_component || pass == 1)) undo_step<Transition::resume>(a, r);
        if ((r.marks[k] & did_provision) && (per_component || pass == 0)) undo_step<Transition::provision>(a, r);
      }
  }
  raise(t, r, "up", options.rollback);
}

// ---- operations -----------------------------------------------------------------------------

/// What an operation keeps per component: nothing (a whole-stack down) or what
/// it did and which components it acts on (up, per-component operations).
enum class Record : unsigned char { nothing, marks };

inline Run start(const Table& t, Record record, const StopTokenRef* stop = nullptr, bool refresh = false) {
  check_not_reporting(t);
  if (record == Record::marks)
    for (auto& m : t.marks) m = 0;
  return Run{t.roles, t.marks, nullptr, nullptr, stop && stop->stop_possible() ? stop : nullptr, refresh};
}

/// `zenml stack up`: provision() then resume(), all-or-nothing unless `.rollback = false`.
inline void up(const Table& t, const UpOptions& o) {
  Run r = start(t, Record::marks, &o.stop, true);
  const WalkRound round;
  if (run_phase(t, r, Phase::provision, 0, o.parallel, o.max_threads) &&
      run_phase(t, r, Phase::resume, 0, o.parallel, o.max_threads))
    return;
  fail_up(t, r, o, Undo::stack);
}

/// `zenml stack down [--force]`: every component tried, one TransitionError listing all failures.
inline void down(const Table& t, const DownOptions& o) {
  Run r = start(t, Record::nothing, &o.stop);
  const WalkRound round;
  run_phase(t, r, o.force ? Phase::force : Phase::suspend, 0, o.parallel, o.max_threads);
  if (r.failed) [[unlikely]] raise(t, r, "down");
}

/// `zenml <role> up`: k's dependencies first, then k.
inline void up_one(const Table& t, std::size_t k, const UpOptions& o) {
  Run r = start(t, Record::marks, &o.stop, true);
  mark_closure(k, t.order, t.first, t.dep, t.marks.data(), in_scope);
  if (!run_phase(t, r, Phase::up_one, in_scope, o.parallel, o.max_threads)) fail_up(t, r, o, Undo::per_component);
}

/// `zenml <role> down [--force]`: k's dependents first, then k; a missing action of k is an error.
/// With Dependents::keep, k alone: nothing is marked, so no dependent is visited.
inline void down_one(const Table& t, std::size_t k, const DownOptions& o) {
  Run r = start(t, Record::marks, &o.stop);
  if (o.dependents == Dependents::stop) {
    mark_dependents(k, t.order, t.first, t.dep, t.marks.data(), in_scope);
    run_phase(t, r, o.force ? Phase::force : Phase::suspend, in_scope, o.parallel, o.max_threads);
  }
  if (r.stop && r.stop->stop_requested()) [[unlikely]] { // k itself is left as it was too
    interrupted(r, k, o.force ? Phase::force : Phase::suspend, std::string(t.roles[k]));
    raise(t, r, "down");
  }
  Indirect a{t, k};
  if (o.force) step<Phase::force>(a, k, r, r.marks.data(), Missing::error);
  else step<Phase::suspend>(a, k, r, r.marks.data(), Missing::error);
  if (r.failed) [[unlikely]] raise(t, r, "down");
}

/// ZenML's provision() / resume(): NotImplementedError and ProvisioningError as
/// themselves, a component's own exception wrapped in TransitionError; no rollback.
inline void primitive(const Table& t, Phase p) {
  Run r = start(t, Record::marks);
  const WalkRound round;
  if (run_phase(t, r, p, 0, false, 0)) return;
  try {
    std::rethrow_exception(r.failed->cause);
  } catch (const NotImplementedError&) {
    throw;
  } catch (const ProvisioningError&) {
    throw;
  } catch (...) {
    raise(t, r, to_string(r.failed->cause_transition));
  }
}

/// ZenML's suspend() / deprovision(): every component tried, then one TransitionError.
inline void exhaustive(const Table& t, Phase p) {
  Run r = start(t, Record::nothing);
  const WalkRound round;
  run_phase(t, r, p, 0, false, 0);
  if (r.failed) raise(t, r, p == Phase::suspend ? "suspend" : "deprovision");
}

/// UnknownComponentError listing the valid roles.
[[nodiscard]] inline UnknownComponentError unknown_role(std::string_view stack, std::span<const std::string_view> roles,
                                                        std::string_view role) {
  std::string m = cat({"stackup: stack '", stack, "' has no component with role '", role, "'; valid roles: "});
  for (std::size_t i = 0; i < roles.size(); ++i) m.append(i ? ", " : "").append(roles[i]);
  return UnknownComponentError(m);
}

} // namespace stackup::detail

namespace stackup {

// ---- StackView (declared in <stackup/stack_view.hpp>): the Table, read ---------------------

inline std::string_view StackView::name() const noexcept { return t_->stack; }
inline std::size_t StackView::size() const noexcept { return t_->size(); }
inline RoleRange StackView::roles() const noexcept { return {t_->roles.data(), nullptr, t_->roles.size()}; }
inline RoleRange StackView::order() const noexcept { return {t_->roles.data(), t_->order.data(), t_->order.size()}; }
inline std::size_t StackView::find(std::string_view role) const noexcept { return t_->find(role); }
inline std::size_t StackView::at(std::string_view role) const {
  const std::size_t k = t_->find(role);
  if (k == t_->size()) throw detail::unknown_role(t_->stack, t_->roles, role);
  return k;
}
inline RoleRange StackView::dependencies(std::string_view role) const {
  const std::size_t k = at(role);
  return {t_->roles.data(), t_->dep.data() + t_->first[k], t_->first[k + 1] - t_->first[k]};
}
inline RoleRange StackView::dependents(std::string_view role) const {
  const std::size_t k = at(role), n = t_->size();
  std::size_t* on = new std::size_t[n == 0 ? 1 : n];
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t e = t_->first[i]; e < t_->first[i + 1]; ++e)
      if (t_->dep[e] == k) {
        on[count++] = i;
        break;
      }
  return {t_->roles.data(), on, count, on};
}
inline std::vector<ComponentStatus> StackView::status() const {
  const detail::WalkRound round;
  std::vector<ComponentStatus> rows(t_->size());
  for (std::size_t k = 0; k < rows.size(); ++k) rows[k] = t_->status(k);
  return rows;
}
inline ComponentStatus StackView::status(std::string_view role) const { return t_->status(at(role)); }
inline State StackView::state(std::string_view role) const { return t_->state(at(role)); }
inline RoleRange StackView::plan_up() const noexcept { return order(); }
// The plans mark what the engine's up_one and down_one mark (detail/plan.hpp),
// on marks of their own: a view never writes the stack's scratch. One block:
// the marks, then the roles visited.
inline RoleRange StackView::plan_up(std::string_view role) const {
  const std::size_t k = at(role), n = t_->size();
  std::size_t* block = new std::size_t[2 * n]();
  detail::mark_closure(k, t_->order, t_->first, t_->dep, block, std::size_t{1});
  std::size_t count = 0;
  for (const std::size_t i : t_->order)
    if (block[i]) block[n + count++] = i;
  return {t_->roles.data(), block + n, count, block};
}
inline RoleRange StackView::plan_down() const {
  const std::size_t n = t_->size();
  std::size_t* visits = new std::size_t[n == 0 ? 1 : n];
  for (std::size_t i = 0; i < n; ++i) visits[i] = t_->order[n - 1 - i];
  return {t_->roles.data(), visits, n, visits};
}
inline RoleRange StackView::plan_down(std::string_view role) const {
  const std::size_t k = at(role), n = t_->size();
  std::size_t* block = new std::size_t[2 * n]();
  detail::mark_dependents(k, t_->order, t_->first, t_->dep, block, std::size_t{1});
  block[k] = 1; // down_one acts on k after its dependents
  std::size_t count = 0;
  for (std::size_t x = n; x-- > 0;)
    if (block[t_->order[x]]) block[n + count++] = t_->order[x];
  return {t_->roles.data(), block + n, count, block};
}
inline std::string_view StackView::component_name(std::string_view role) const { return t_->name(at(role)); }
inline std::string_view StackView::flavor(std::string_view role) const { return t_->slots[at(role)].ops->flavor; }
inline std::string StackView::log_file(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->log_file ? s.ops->log_file(s.object) : std::string();
}
inline std::vector<std::string> StackView::log_command(std::string_view role, const LogRequest& request) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->log_command ? s.ops->log_command(s.object, request) : std::vector<std::string>{};
}
inline bool StackView::has_log_command(std::string_view role) const {
  return t_->slots[at(role)].ops->log_command != nullptr;
}
inline int StackView::exit_fd(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->exit_fd ? s.ops->exit_fd(s.object) : -1;
}
inline std::optional<Exit> StackView::exit_status(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->exit_status ? s.ops->exit_status(s.object) : std::nullopt;
}
inline bool StackView::is_current(std::string_view role) const {
  const std::size_t k = at(role);
  return t_->is_current(k, (t_->slots[k].ops->actions & detail::tells_current) ? t_->state(k) : State::running);
}
inline bool StackView::kill(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  if (!s.ops->kill) return false;
  s.ops->kill(s.object);
  return true;
}
inline bool StackView::reports_exits(std::string_view role) const { return t_->slots[at(role)].ops->exit_status != nullptr; }
inline SupervisionConfig StackView::supervision(std::string_view role) const {
  const detail::Slot& s = t_->slots[at(role)];
  return s.ops->supervision ? s.ops->supervision(s.object) : SupervisionConfig{};
}

} // namespace stackup

#include <stackup/detail/macro_unscope.hpp>
