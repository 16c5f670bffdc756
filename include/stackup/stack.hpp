// stackup — Stack<Components...>: ZenML's stack up / stack down over a compile-time
// dependency order, dispatched by folds (no virtual calls, no heap on the way).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/parallel.hpp>
#include <stackup/detail/plan.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// Forces inlining of the few functions on the transition path, so a stack's
// operations compile to the checks and calls a person would write; GCC and Clang
// otherwise stop inlining the per-component folds of larger stacks.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_ALWAYS_INLINE [[gnu::always_inline]] inline
#elif defined(_MSC_VER)
#define STACKUP_ALWAYS_INLINE [[msvc::forceinline]] inline
#else
#define STACKUP_ALWAYS_INLINE inline
#endif
// Marks what runs only when something fails, so it stays out of the inlined path.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_COLD [[gnu::cold, gnu::noinline]]
#else
#define STACKUP_COLD
#endif

namespace stackup {

/// Options of `up`. Members in this order, for designated initialisers.
struct UpOptions {
  bool rollback = true;  ///< on failure, undo what this call did, in reverse
  bool parallel = false; ///< run each action as soon as its dependencies are done, on several threads
  std::size_t max_threads = 0; ///< with `parallel`: at most this many threads (0: one per ready component)
};
/// Options of `down`. Members in this order, for designated initialisers.
struct DownOptions {
  bool force = false;    ///< also deprovision (zenml stack down --force)
  bool parallel = false; ///< run each action as soon as its dependents are done, on several threads
  std::size_t max_threads = 0; ///< with `parallel`: at most this many threads (0: one per ready component)
};

namespace detail {
template <class T> constexpr bool checked_component() {
  if constexpr (Component<T>) return true;
  else return not_a_component<T>::value;
}
template <bool AllComponents, class... Cs> constexpr bool checked_stack() {
  if constexpr (AllComponents) return check_plan<Cs...>();
  else return false;
}
template <class T> constexpr std::string_view role_of() {
  if constexpr (has_role<T>) return std::string_view(T::role);
  else return {};
}
template <bool WellFormed, class... Cs> constexpr std::array<std::size_t, sizeof...(Cs)> order_of() {
  if constexpr (WellFormed) return Plan<Cs...>::result.order;
  else return {};
}
template <class T, class... Cs> constexpr std::size_t type_index() {
  constexpr std::array<bool, sizeof...(Cs)> same{std::is_same_v<T, Cs>...};
  for (std::size_t i = 0; i < same.size(); ++i)
    if (same[i]) return i;
  return sizeof...(Cs);
}
inline void append(std::string& s, std::initializer_list<std::string_view> parts) {
  for (auto p : parts) s.append(p);
}
} // namespace detail

/// A stack of components with unique roles. Actions run in dependency order
/// (`depends_on`, ties broken by listing order); suspend and deprovision in reverse.
template <class... Cs> class Stack {
  static_assert((detail::checked_component<Cs>() && ... && true));
  static constexpr bool well_formed = (Component<Cs> && ... && true);
  static_assert(detail::checked_stack<well_formed, Cs...>() || !well_formed);
  using Plan = std::conditional_t<well_formed, detail::Plan<Cs...>, detail::Plan<>>;

public:
  /// Number of components.
  static constexpr std::size_t size = sizeof...(Cs);
  /// Roles in template-argument order.
  static constexpr std::array<std::string_view, size> roles{detail::role_of<Cs>()...};
  /// Indices of the components in action order (provision/resume order).
  static constexpr std::array<std::size_t, size> order = detail::order_of<well_formed, Cs...>();

  /// A stack named "default" of default-constructed components.
  Stack() : name_("default") {}
  /// A named stack of the given components: `Stack s{"local", Orchestrator{}, ArtifactStore{}}`.
  explicit Stack(std::string_view name, Cs... components)
      : name_(name), components_(std::move(components)...) {}

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }

  /// The component of type T.
  template <class T> [[nodiscard]] T& get() noexcept { return std::get<index_of<T>()>(components_); }
  template <class T> [[nodiscard]] const T& get() const noexcept { return std::get<index_of<T>()>(components_); }
  /// The component with role R: `stack.get<"orchestrator">()`.
  template <FixedString R> [[nodiscard]] auto& get() noexcept { return std::get<index_of<R>()>(components_); }
  template <FixedString R> [[nodiscard]] const auto& get() const noexcept { return std::get<index_of<R>()>(components_); }

  /// Index (template-argument position) of a role, or `size` when absent.
  [[nodiscard]] static constexpr std::size_t find(std::string_view role) noexcept {
    for (std::size_t i = 0; i < size; ++i)
      if (roles[i] == role) return i;
    return size;
  }

  /// Set the observer (replaces any previous one; an empty function removes it).
  /// It is called for every event, one at a time. An exception thrown by the
  /// observer is ignored: it never interrupts an action or replaces its error.
  void on_event(Observer observer) { observer_ = std::move(observer); }

  // ---- ZenML's Stack primitives -------------------------------------------------

  /// Provision every component that is not provisioned, in dependency order.
  /// Throws NotImplementedError / ProvisioningError as themselves, a component's
  /// own exception wrapped in TransitionError. No rollback.
  void provision() { primitive<Phase::provision>(); }
  /// Resume every component that is not running, in dependency order. Errors as provision().
  void resume() { primitive<Phase::resume>(); }
  /// Suspend every running component, in reverse order; tries every component,
  /// then throws one TransitionError listing every failure.
  void suspend() { exhaustive<Phase::suspend>(); }
  /// Deprovision every provisioned component, in reverse order; tries every component.
  void deprovision() { exhaustive<Phase::deprovision>(); }

  // ---- Operations ---------------------------------------------------------------

  /// `zenml stack up`: provision() then resume(). All-or-nothing unless
  /// `.rollback = false`. Throws TransitionError.
  void up(UpOptions options = {}) {
    Run r;
    r.did = {};
    if (run_phase<Phase::provision, All>(r, options.parallel, options.max_threads) &&
        run_phase<Phase::resume, All>(r, options.parallel, options.max_threads))
      return;
    fail_up(r, options, false);
  }

  /// `zenml stack down [--force]`: suspend every component; with `.force`, also
  /// deprovision. Tries every component, then throws one TransitionError listing all failures.
  void down(DownOptions options = {}) {
    Run r;
    if (options.force) run_phase<Phase::force, All>(r, options.parallel, options.max_threads);
    else run_phase<Phase::suspend, All>(r, options.parallel, options.max_threads);
    if (r.failed) [[unlikely]] raise(r, "down");
  }

  /// `zenml <C> up`: C's dependencies first, then C. Same guarantees as up().
  template <class C> void up(UpOptions options = {}) { up_at<index_of<C>()>(options); }
  /// `zenml <C> down [--force]`: C's dependents first, then C. Same guarantees as down().
  template <class C> void down(DownOptions options = {}) { down_at<index_of<C>()>(options); }
  /// up<C>() by role string; UnknownComponentError when the stack has no such role.
  void up(std::string_view role, UpOptions options = {}) {
    by_role(role, [&]<std::size_t K>() { up_at<K>(options); });
  }
  /// down<C>() by role string; UnknownComponentError when the stack has no such role.
  void down(std::string_view role, DownOptions options = {}) {
    by_role(role, [&]<std::size_t K>() { down_at<K>(options); });
  }

  // ---- Queries ------------------------------------------------------------------

  /// Every component is provisioned.
  [[nodiscard]] bool is_provisioned() const {
    return std::apply([](const auto&... c) { return (static_cast<bool>(c.is_provisioned()) && ... && true); }, components_);
  }
  /// Every component is running.
  [[nodiscard]] bool is_running() const {
    return std::apply([](const auto&... c) { return (static_cast<bool>(c.is_running()) && ... && true); }, components_);
  }
  /// One row per component, in template-argument order. Changes nothing.
  [[nodiscard]] std::array<ComponentStatus, size> status() const {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<ComponentStatus, size>{status_at<I>()...};
    }(std::make_index_sequence<size>{});
  }
  /// UnknownComponentError listing the valid roles, for a role string not in the stack.
  [[nodiscard]] UnknownComponentError unknown_role(std::string_view role) const {
    std::string m = "stackup: stack '" + name_ + "' has no component with role '" + std::string(role) + "'; valid roles: ";
    for (std::size_t i = 0; i < size; ++i) detail::append(m, {i ? ", " : "", roles[i]});
    return UnknownComponentError(m);
  }

private:
  template <class T> static constexpr std::size_t index_of() {
    constexpr std::size_t i = detail::type_index<T, Cs...>();
    static_assert(i < size, "stackup: this type is not a component of the Stack: add it to the Stack's template arguments");
    return i < size ? i : 0; // after the assertion, no second error from std::get
  }
  template <FixedString R> static constexpr std::size_t index_of() {
    constexpr std::size_t i = find(R.view());
    if constexpr (i >= size) static_assert(detail::unknown_role<detail::spelled<R>, Cs...>::value);
    return i < size ? i : 0; // after the assertion, no second error from std::get
  }

  using Clock = std::chrono::steady_clock;
  enum class Did : unsigned char { done, not_implemented };

  // What went wrong in one operation; allocated at its first failure only.
  struct Failed {
    std::exception_ptr cause; // first failure
    std::size_t cause_index = 0;
    Transition cause_transition = Transition::provision;
    std::vector<TransitionError::Failure> failures;
  };
  // Bookkeeping of one operation; lives on the caller's stack, allocates only on
  // failure. Kept small so that an operation that succeeds only sets and tests a
  // few words besides what its components do.
  struct Run {
    // What this call did, per component (bit 1: provisioned, bit 2: resumed), for
    // rollback; set to zero by up (down never reads it). One byte per component:
    // parallel steps write different bytes, no lock.
    std::array<unsigned char, size> did;
    std::mutex* guard = nullptr;         // set while steps run on several threads
    std::unique_ptr<Failed> failed;      // null while nothing failed

    std::unique_lock<std::mutex> lock() { return guard ? std::unique_lock(*guard) : std::unique_lock<std::mutex>(); }
    STACKUP_ALWAYS_INLINE void record(std::size_t k, Transition t) {
      did[k] |= t == Transition::provision ? 1 : 2;
    }
    // Call inside a catch: records the exception being handled.
    STACKUP_COLD void fail(std::size_t k, Transition t, std::string_view prefix = {}) {
      auto held = lock();
      if (!failed) failed = std::make_unique<Failed>();
      failed->failures.push_back(
          {std::string(roles[k]), t, std::string(prefix) + detail::current_message(), !prefix.empty()});
      if (!failed->cause) {
        failed->cause = std::current_exception();
        failed->cause_index = k;
        failed->cause_transition = t;
      }
    }
  };

  template <class F> static void each_in_order(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<order[I]>(), ...);
    }(std::make_index_sequence<size>{});
  }
  template <class F> static void each_in_reverse(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<order[size - 1 - I]>(), ...);
    }(std::make_index_sequence<size>{});
  }
  template <class F> void by_role(std::string_view role, F&& f) {
    const bool found = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return ((roles[I] == role && (f.template operator()<I>(), true)) || ... || false);
    }(std::make_index_sequence<size>{});
    if (!found) throw unknown_role(role);
  }

  template <std::size_t K> auto& at() noexcept { return std::get<K>(components_); }
  template <std::size_t K> const auto& at() const noexcept { return std::get<K>(components_); }
  [[nodiscard]] std::string_view name_at(std::size_t k) const {
    std::string_view n;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == k ? (n = detail::name_of(std::get<I>(components_)), 0) : 0), ...);
    }(std::make_index_sequence<size>{});
    return n;
  }
  template <std::size_t I> [[nodiscard]] ComponentStatus status_at() const {
    using C = std::tuple_element_t<I, std::tuple<Cs...>>;
    const auto& c = std::get<I>(components_);
    ComponentStatus s{roles[I], detail::name_of(c), state_of(c), detail::flavor_of<C>(), {}};
    if constexpr (detail::has_detail<C>) s.detail = c.detail();
    return s;
  }

  // ---- events -------------------------------------------------------------------

  template <std::size_t K> void emit(Transition t, Outcome o, std::chrono::nanoseconds elapsed, std::string_view message) {
    // An observer watches; it must not steer. Its exception is dropped so that it can
    // neither skip an action's bookkeeping nor replace a component's error.
    try {
      Event e{name_, roles[K], detail::name_of(at<K>()), t, o, elapsed, std::string(message)};
      if (!guard_) return observer_(e);
      std::lock_guard serialise(*guard_);
      observer_(e);
    } catch (...) {
    }
  }
  // A stand-alone event (already_done, not_implemented known at compile time).
  // `Quiet`: the caller has seen that there is no observer, so nothing is tested here.
  template <std::size_t K, bool Quiet = false>
  STACKUP_ALWAYS_INLINE void note(Transition t, Outcome o, std::string_view message) {
    if constexpr (!Quiet)
      if (observer_) [[unlikely]] emit<K>(t, o, {}, message);
  }

  template <Transition T, class C> static void invoke(C& c) {
    if constexpr (T == Transition::provision) c.provision();
    else if constexpr (T == Transition::resume) c.resume();
    else if constexpr (T == Transition::suspend) c.suspend();
    else c.deprovision();
  }

  // Runs one action with its started/end events. A NotImplementedError from the
  // component is "not implemented learned at run time", not a failure.
  // `Quiet`: as for note().
  template <std::size_t K, Transition T, bool Quiet = false> STACKUP_ALWAYS_INLINE Did act(bool undo = false) {
    if constexpr (!Quiet)
      if (observer_) [[unlikely]] return act_observed<K, T>(undo);
    try {
      invoke<T>(at<K>());
    } catch (const NotImplementedError&) {
      return Did::not_implemented;
    }
    return Did::done;
  }
  // act() with its events, out of line so that act() itself stays small.
  template <std::size_t K, Transition T> STACKUP_COLD Did act_observed(bool undo) {
    auto& c = at<K>();
    emit<K>(T, Outcome::started, {}, {});
    const auto t0 = Clock::now();
    try {
      invoke<T>(c);
    } catch (const NotImplementedError& e) {
      emit<K>(T, Outcome::not_implemented, Clock::now() - t0, e.what());
      return Did::not_implemented;
    } catch (...) {
      emit<K>(T, Outcome::failed, Clock::now() - t0, detail::current_message());
      throw;
    }
    emit<K>(T, undo ? Outcome::rolled_back : Outcome::succeeded, Clock::now() - t0, {});
    return Did::done;
  }

  template <std::size_t K> [[nodiscard]] std::string describe() const {
    return std::string(roles[K]) + " '" + std::string(detail::name_of(at<K>())) + "'";
  }
  template <std::size_t K> [[noreturn]] STACKUP_COLD void not_provisioned() {
    throw ProvisioningError("stackup: cannot resume " + describe<K>() +
                            ": nothing is provisioned; provision it first (provision() or up())");
  }
  template <std::size_t K> [[noreturn]] STACKUP_COLD void not_implemented(Transition t, std::string_view advice) {
    std::string m = "stackup: " + describe<K>() + " does not implement " + std::string(to_string(t)) + "()";
    if (!advice.empty()) detail::append(m, {"; ", advice});
    throw NotImplementedError(m);
  }

  // ---- steps: one component, one phase --------------------------------------------

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void provision_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    // The action on the straight path, as compilers lay out the hand-written
    // `if (!c.is_provisioned()) c.provision();`; without the hint GCC moves it
    // behind a jump and back (two instructions per action).
    if (!at<K>().is_provisioned()) [[likely]] {
      if constexpr (Provisionable<C>) {
        if (act<K, Transition::provision, Quiet>() == Did::done) return r.record(K, Transition::provision);
      } else {
        note<K, Quiet>(Transition::provision, Outcome::not_implemented, "provision not implemented");
      }
      not_implemented<K>(Transition::provision, "it is not provisioned and cannot provision itself");
    }
  }

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void resume_step(Run& r, bool announce_running) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    if (!at<K>().is_running()) [[likely]] {
      if (!at<K>().is_provisioned()) not_provisioned<K>();
      if constexpr (Resumable<C>) {
        if (act<K, Transition::resume, Quiet>() == Did::done) return r.record(K, Transition::resume);
      } else {
        note<K, Quiet>(Transition::resume, Outcome::not_implemented, "resume not implemented");
      }
      not_implemented<K>(Transition::resume, "it is provisioned but not running and cannot start itself");
    } else if (announce_running) {
      note<K, Quiet>(Transition::resume, Outcome::already_done, "already running");
    }
  }

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void suspend_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_running()) return note<K, Quiet>(Transition::suspend, Outcome::already_done, "not running");
      if constexpr (Suspendable<C>) act<K, Transition::suspend, Quiet>();
      else note<K, Quiet>(Transition::suspend, Outcome::not_implemented, "suspend not implemented; use force to deprovision");
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
  }

  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void deprovision_step(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_provisioned()) return note<K, Quiet>(Transition::deprovision, Outcome::already_done, "not provisioned");
      if constexpr (Deprovisionable<C>) act<K, Transition::deprovision, Quiet>();
      else note<K, Quiet>(Transition::deprovision, Outcome::not_implemented, "deprovision not implemented");
    } catch (...) {
      r.fail(K, Transition::deprovision);
    }
  }

  // Force down of one component. As a dependent or part of the stack (`target` false),
  // missing actions are skipped; as the target of down<C>, a missing deprovision is an error.
  template <std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE void force_step(Run& r, bool target) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    bool running = false;
    try {
      running = at<K>().is_running();
      if (running) {
        if constexpr (Suspendable<C>) act<K, Transition::suspend, Quiet>();
        else note<K, Quiet>(Transition::suspend, Outcome::not_implemented,
                     Deprovisionable<C> ? "suspend not implemented; deprovision stops it" : "suspend not implemented");
      }
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
    try {
      if (!at<K>().is_provisioned()) {
        if (!running) note<K, Quiet>(Transition::deprovision, Outcome::already_done, "already deprovisioned");
        return;
      }
      if constexpr (Deprovisionable<C>) {
        if (act<K, Transition::deprovision, Quiet>() == Did::done || !target) return;
      } else {
        note<K, Quiet>(Transition::deprovision, Outcome::not_implemented, "deprovision not implemented");
        if (!target) return;
      }
      not_implemented<K>(Transition::deprovision, "it cannot be removed");
    } catch (...) {
      r.fail(K, Transition::deprovision);
    }
  }

  // The target of a non-force down<C>: a missing suspend is an error that suggests force.
  template <std::size_t K> void suspend_target(Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    try {
      if (!at<K>().is_running()) return note<K>(Transition::suspend, Outcome::already_done, "not running");
      if constexpr (Suspendable<C>) {
        if (act<K, Transition::suspend>() == Did::done) return;
      } else {
        note<K>(Transition::suspend, Outcome::not_implemented, "suspend not implemented");
      }
      not_implemented<K>(Transition::suspend, "use down with force (--force) to deprovision it instead");
    } catch (...) {
      r.fail(K, Transition::suspend);
    }
  }

  // ---- per-component operations ---------------------------------------------------

  template <std::size_t K> void up_at(UpOptions options) {
    Run r;
    r.did = {};
    if (!run_phase<Phase::up_one, Needs<K>>(r, options.parallel, options.max_threads)) fail_up(r, options, true);
  }

  template <std::size_t K> void down_at(DownOptions options) {
    Run r;
    if (options.force) run_phase<Phase::force, Dependents<K>>(r, options.parallel, options.max_threads);
    else run_phase<Phase::suspend, Dependents<K>>(r, options.parallel, options.max_threads);
    if (options.force) force_step<K>(r, true);
    else suspend_target<K>(r);
    if (r.failed) [[unlikely]] raise(r, "down");
  }

  // ---- phases: one step per component, in order or in parallel --------------------

  enum class Phase { provision, resume, up_one, suspend, deprovision, force };
  struct All {
    static constexpr auto value = [] {
      std::array<bool, size> a{};
      a.fill(true);
      return a;
    }();
  };
  template <std::size_t K> struct Needs {
    static constexpr auto value = Plan::closure_of(K);
  };
  template <std::size_t K> struct Dependents {
    static constexpr auto value = Plan::dependents_of(K);
  };

  // One component's part of a phase. Never throws: failures go to `r`.
  // Returns false when the phase must stop (a failure of up).
  template <Phase P, std::size_t K, bool Quiet = false> STACKUP_ALWAYS_INLINE bool step(Run& r) {
    if constexpr (P == Phase::provision || P == Phase::resume) {
      try {
        if constexpr (P == Phase::provision) provision_step<K, Quiet>(r);
        else resume_step<K, Quiet>(r, true);
        return true;
      } catch (...) {
        r.fail(K, P == Phase::provision ? Transition::provision : Transition::resume);
        return false;
      }
    } else if constexpr (P == Phase::up_one) {
      Transition t = Transition::resume;
      try {
        if (at<K>().is_running()) {
          note<K, Quiet>(Transition::resume, Outcome::already_done, "already running");
          return true;
        }
        t = Transition::provision;
        provision_step<K, Quiet>(r);
        t = Transition::resume;
        resume_step<K, Quiet>(r, false);
        return true;
      } catch (...) {
        r.fail(K, t);
        return false;
      }
    } else if constexpr (P == Phase::suspend) {
      suspend_step<K, Quiet>(r);
      return true;
    } else if constexpr (P == Phase::deprovision) {
      deprovision_step<K, Quiet>(r);
      return true;
    } else {
      force_step<K, Quiet>(r, false);
      return true;
    }
  }

  // Runs the phase's step for every component in Mask. Without an observer and
  // threads, a fold in (reverse) dependency order whose steps test nothing but the
  // components' state: the observer is tested once per phase, not once per action
  // (an observer set by a component's own action takes effect from the next phase).
  // With an observer, or in parallel, the steps that test it, one call each.
  template <Phase P, class Mask> STACKUP_ALWAYS_INLINE bool run_phase(Run& r, bool parallel, std::size_t max_threads) {
    constexpr bool reverse = P == Phase::suspend || P == Phase::deprovision || P == Phase::force;
    if (parallel || observer_) [[unlikely]] return run_observed<P, Mask>(r, reverse, parallel, max_threads);
    return run_quiet<P, Mask, reverse>(r, std::make_index_sequence<size>{});
  }
  // The steps in (reverse) order, stopping at the first that returns false.
  template <Phase P, class Mask, bool Reverse, std::size_t... I>
  STACKUP_ALWAYS_INLINE bool run_quiet(Run& r, std::index_sequence<I...>) {
    return ((!Mask::value[order[Reverse ? size - 1 - I : I]] || step<P, order[Reverse ? size - 1 - I : I], true>(r)) && ...);
  }
  // step<P, K> of every component, by index: out-of-line steps for the observed
  // and parallel paths (one instantiation each, not one inlined fold per path).
  template <Phase P>
  static constexpr auto step_table = []<std::size_t... I>(std::index_sequence<I...>) {
    return std::array<bool (Stack::*)(Run&), size>{&Stack::step<P, I>...};
  }(std::make_index_sequence<size>{});

  template <Phase P, class Mask> STACKUP_COLD bool run_observed(Run& r, bool reverse, bool parallel, std::size_t max_threads) {
    if (parallel) return run_parallel<P, Mask>(r, reverse, max_threads);
    for (std::size_t n = 0; n < size; ++n) {
      const std::size_t k = order[reverse ? size - 1 - n : n];
      if (Mask::value[k] && !(this->*step_table<P>[k])(r)) return false;
    }
    return true;
  }

  template <Phase P, class Mask> bool run_parallel(Run& r, bool reverse, std::size_t max_threads) {
    std::mutex guard;
    r.guard = &guard;
    guard_ = &guard;
    struct Reset {
      Stack& s;
      Run& r;
      ~Reset() { s.guard_ = nullptr, r.guard = nullptr; }
    } reset{*this, r};
    const auto& plan = Plan::result;
    detail::run_dag(Mask::value, plan.first, plan.dep, reverse, max_threads,
                    [&](std::size_t i) { return (this->*step_table<P>[i])(r); });
    return !r.failed;
  }

  // ---- failure handling -----------------------------------------------------------

  template <Phase P> void primitive() {
    Run r;
    r.did = {};
    if (run_phase<P, All>(r, false, 0)) return;
    try {
      std::rethrow_exception(r.failed->cause);
    } catch (const NotImplementedError&) {
      throw;
    } catch (const ProvisioningError&) {
      throw;
    } catch (...) {
      raise(r, to_string(r.failed->cause_transition));
    }
  }
  template <Phase P> void exhaustive() {
    Run r;
    run_phase<P, All>(r, false, 0);
    if (r.failed) raise(r, P == Phase::suspend ? "suspend" : "deprovision");
  }

  // Undo what this call did, in reverse, then throw.
  // The undo runs in reverse dependency order: for a whole-stack up, every resume
  // is undone before any provision; for up<C> (`per_component`), one component at a time.
  [[noreturn]] STACKUP_COLD void fail_up(Run& r, UpOptions options, bool per_component) {
    if (options.rollback) {
      for (std::size_t pass = per_component ? 1 : 2; pass-- > 0;)
        for (std::size_t n = size; n-- > 0;) {
          const std::size_t k = order[n];
          if ((r.did[k] & 2) && (per_component || pass == 1)) undo(k, Transition::resume, r);
          if ((r.did[k] & 1) && (per_component || pass == 0)) undo(k, Transition::provision, r);
        }
    }
    raise(r, "up", options.rollback);
  }

  void undo(std::size_t k, Transition t, Run& r) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == k ? (undo_at<I>(t, r), 0) : 0), ...);
    }(std::make_index_sequence<size>{});
  }
  template <std::size_t K> void undo_at(Transition done, Run& r) {
    using C = std::tuple_element_t<K, std::tuple<Cs...>>;
    const bool resumed = done == Transition::resume;
    const Transition t = resumed ? Transition::suspend : Transition::deprovision;
    try {
      Did did = Did::not_implemented;
      if (resumed) {
        if constexpr (Suspendable<C>) did = act<K, Transition::suspend>(true);
      } else {
        if constexpr (Deprovisionable<C>) did = act<K, Transition::deprovision>(true);
      }
      if (did == Did::not_implemented) {
        if (!(resumed ? Suspendable<C> : Deprovisionable<C>)) note<K>(t, Outcome::not_implemented, "cannot undo");
        not_implemented<K>(t, resumed ? "it was left running" : "it was left provisioned");
      }
    } catch (...) {
      r.fail(K, t, "rollback: ");
    }
  }

  // Throws the TransitionError of a failed operation, nesting its first failure.
  [[noreturn]] STACKUP_COLD void raise(Run& run, std::string_view operation, bool rolled_back = false) {
    Failed& r = *run.failed;
    std::string m = "stackup: stack '" + name_ + "' " + std::string(operation) + " failed: ";
    const std::string_view role = roles[r.cause_index];
    detail::append(m, {role, " '", name_at(r.cause_index), "' failed to ", to_string(r.cause_transition), ": ",
                       r.failures.front().message});
    for (std::size_t i = 1; i < r.failures.size(); ++i) {
      const auto& f = r.failures[i];
      detail::append(m, {i == 1 ? "; also: " : "; ", f.role, " ", to_string(f.transition), ": ", f.message});
    }
    if (rolled_back) {
      const bool complete = std::none_of(r.failures.begin(), r.failures.end(), [](const auto& f) { return f.rollback; });
      m += complete ? " (rolled back)" : " (rollback incomplete)";
    }
    try {
      std::rethrow_exception(r.cause);
    } catch (...) {
      throw TransitionError(std::string(role), r.cause_transition, m, std::move(r.failures));
    }
  }

  std::string name_;
  std::tuple<Cs...> components_;
  Observer observer_;
  std::mutex* guard_ = nullptr; // serialises events while a phase runs in parallel
};

template <class... Cs> Stack(std::string_view, Cs...) -> Stack<Cs...>;

} // namespace stackup
