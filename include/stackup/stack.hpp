// stackup — Stack<Components...>: a stack whose components are known when
// compiling. Its checks and action order are settled at compile time; its
// operations are those of the shared engine (detail/engine.hpp), with a quiet
// path for up() and down() that the compiler turns into the checks and calls a
// person would write (no virtual call, no heap).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/diagnostics.hpp>
#include <stackup/detail/engine.hpp>
#include <stackup/detail/owned_paths.hpp>
#include <stackup/detail/plan.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/options.hpp>
#include <stackup/stack_view.hpp>

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <stackup/detail/macro_scope.hpp>

namespace stackup {

namespace detail {
template <class T> constexpr bool checked_component() {
  if constexpr (Component<T>) return true;
  else return not_a_component<T>::value;
}
template <class T> constexpr std::string_view role_of() {
  if constexpr (has_role<T>) return std::string_view(T::role);
  else return {};
}
template <class T, class... Cs> constexpr std::size_t type_index() {
  constexpr bool same[]{std::is_same_v<T, Cs>..., false};
  std::size_t i = 0;
  while (i < sizeof...(Cs) && !same[i]) ++i;
  return i;
}

// Storage of the components: one base per component, reached by index without
// walking a std::tuple.
template <std::size_t I, class C> struct Holder {
  C value;
};
template <class Seq, class... Cs> struct Storage;
template <std::size_t... I, class... Cs> struct Storage<std::index_sequence<I...>, Cs...> : Holder<I, Cs>... {
  Storage() : Holder<I, Cs>{}... {}
  explicit Storage(std::in_place_t, Cs&&... cs) : Holder<I, Cs>{std::move(cs)}... {}
};
template <std::size_t K, class C> constexpr C& held(Holder<K, C>& h) noexcept { return h.value; }
template <std::size_t K, class C> constexpr const C& held(const Holder<K, C>& h) noexcept { return h.value; }
template <std::size_t K, class C> std::type_identity<C> type_at(const Holder<K, C>*);

template <class C> void collect_owned_paths(const C& c, std::vector<std::string>& into) {
  if constexpr (has_owned_paths<C>)
    for (auto&& p : c.owned_paths()) into.emplace_back(std::string_view(p));
}

/// The plan of Cs..., computed at compile time by the same algorithm as DynamicStack's.
template <std::size_t N, std::size_t E> struct CompiledPlan {
  std::array<std::size_t, N> order{};
  std::array<std::size_t, N + 1> first{};
  std::array<std::size_t, E> dep{};
  PlanProblem problem{};
};
template <class C> constexpr void add_dependencies(std::string_view* names, std::size_t& at) {
  for (std::size_t k = 0; k < dependency_count<C>(); ++k) names[at++] = dependency<C>(k);
}
template <class... Cs> constexpr auto compile_plan() {
  constexpr std::size_t n = sizeof...(Cs), e = (dependency_count<Cs>() + ... + 0);
  CompiledPlan<n, e> p;
  const std::array<std::string_view, n> roles{role_of<Cs>()...};
  std::array<std::string_view, e + 1> names{};
  std::size_t at = 0, i = 0;
  ((p.first[i++] = at, add_dependencies<Cs>(names.data(), at)), ...);
  p.first[n] = at;
  std::array<std::size_t, n> sorted{}, waiting{}, heap{};
  std::array<std::size_t, n + 1> next_first{};
  std::array<std::size_t, e> next{};
  p.problem = compute_plan(roles, p.first, std::span(names).first(e), p.dep, p.order,
                           PlanScratch{sorted, waiting, next_first, next, heap});
  return p;
}

template <class C> using role_spelled = spelled<fixed<role_of<C>().size() + 1>(role_of<C>())>;

/// True when the stack is well-formed; otherwise instantiates the reporting
/// template that names the rule, the fix, the role and the types.
template <PlanProblem P, class Types, class... Cs> constexpr bool check_plan() {
  if constexpr (P.error == PlanError::none) {
    return true;
  } else {
    using A = typename decltype(type_at<P.a>(static_cast<const Types*>(nullptr)))::type;
    if constexpr (P.error == PlanError::empty_role) {
      return empty_role<role_spelled<A>, A>::value;
    } else if constexpr (P.error == PlanError::duplicate) {
      using B = typename decltype(type_at<P.b>(static_cast<const Types*>(nullptr)))::type;
      return duplicate_role<role_spelled<A>, A, B>::value;
    } else if constexpr (P.error == PlanError::missing) {
      constexpr std::string_view missing = dependency<A>(P.b);
      return missing_dependency<role_spelled<A>, spelled<fixed<missing.size() + 1>(missing)>, A>::value;
    } else {
      return dependency_cycle<role_spelled<A>, A>::value;
    }
  }
}
template <bool WellFormed, PlanProblem P, class Types, class... Cs> constexpr bool checked_plan() {
  if constexpr (WellFormed) return check_plan<P, Types, Cs...>();
  else return true; // the not-a-component diagnostic is the only one
}
} // namespace detail

/// A stack of components with unique roles. Actions run in dependency order
/// (`depends_on`, ties broken by listing order); suspend and deprovision in reverse.
template <class... Cs> class Stack {
  static_assert((detail::checked_component<Cs>() && ... && true));
  static constexpr bool well_formed = (Component<Cs> && ... && true);
  using Storage = detail::Storage<std::index_sequence_for<Cs...>, Cs...>;
  static constexpr auto plan_ = detail::compile_plan<Cs...>();
  static_assert(detail::checked_plan<well_formed, plan_.problem, Storage, Cs...>());

public:
  /// Number of components.
  static constexpr std::size_t size = sizeof...(Cs);
  /// Roles in template-argument order.
  static constexpr std::array<std::string_view, size> roles{detail::role_of<Cs>()...};
  /// Indices of the components in action order (provision/resume order).
  static constexpr std::array<std::size_t, size> order = plan_.order;

  /// A stack named "default" of value-initialised components.
  /// StackDefinitionError when two components own overlapping paths (`owned_paths()`).
  Stack() : name_("default") { check_owned_paths(); }
  /// A named stack of the given components: `Stack s{"local", Orchestrator{}, ArtifactStore{}}`.
  /// StackDefinitionError when two components own overlapping paths (`owned_paths()`).
  explicit Stack(std::string_view name, Cs... components)
      : name_(name), storage_(std::in_place, std::move(components)...) {
    check_owned_paths();
  }

  // The view's table refers to this stack's own members: a copy or a moved-to
  // stack gets one of its own.
  Stack(const Stack& other)
    requires std::is_copy_constructible_v<Storage>
      : name_(other.name_), storage_(other.storage_), events_(other.events_) {}
  Stack(Stack&& other) noexcept(std::is_nothrow_move_constructible_v<Storage>)
      : name_(std::move(other.name_)), storage_(std::move(other.storage_)), events_(std::move(other.events_)) {}
  Stack& operator=(const Stack& other)
    requires std::is_copy_assignable_v<Storage>
  {
    name_ = other.name_;
    storage_ = other.storage_;
    events_ = other.events_;
    face_.table.stack = name_;
    return *this;
  }
  Stack& operator=(Stack&& other) noexcept(std::is_nothrow_move_assignable_v<Storage>) {
    name_ = std::move(other.name_);
    storage_ = std::move(other.storage_);
    events_ = std::move(other.events_);
    face_.table.stack = name_;
    return *this;
  }
  ~Stack() = default;

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }

  /// The component of type T.
  template <class T> [[nodiscard]] T& get() noexcept { return detail::held<index_of<T>()>(storage_); }
  template <class T> [[nodiscard]] const T& get() const noexcept { return detail::held<index_of<T>()>(storage_); }
  /// The component with role R: `stack.get<"orchestrator">()`.
  template <FixedString R> [[nodiscard]] auto& get() noexcept { return detail::held<index_of<R>()>(storage_); }
  template <FixedString R> [[nodiscard]] const auto& get() const noexcept { return detail::held<index_of<R>()>(storage_); }

  /// Index (template-argument position) of a role, or `size` when absent.
  [[nodiscard]] static constexpr std::size_t find(std::string_view role) noexcept {
    for (std::size_t i = 0; i < size; ++i)
      if (roles[i] == role) return i;
    return size;
  }

  /// The stack's public, read-only face (roles, order, dependencies, plans,
  /// status, flavours, log files); valid while the stack lives.
  [[nodiscard]] StackView view() const noexcept { return StackView(face_.table); }

  /// Set the observer (replaces any previous one; an empty function removes it)
  /// and return the one it replaces, so that a tool can put it back.
  /// It is called for every event, one at a time. An exception thrown by the
  /// observer is ignored: it never interrupts an action or replaces its error.
  /// Called by the observer itself, the replacement takes effect when it returns.
  Observer on_event(Observer observer) { return events_.set(std::move(observer)); }

  // ---- ZenML's Stack primitives -------------------------------------------------

  /// Provision every component that is not provisioned, in dependency order.
  /// Throws NotImplementedError / ProvisioningError as themselves, a component's
  /// own exception wrapped in TransitionError. No rollback.
  void provision() { detail::primitive(View(*this).table, detail::Phase::provision); }
  /// Resume every component that is not running, in dependency order. Errors as provision().
  void resume() { detail::primitive(View(*this).table, detail::Phase::resume); }
  /// Suspend every running component, in reverse order; tries every component,
  /// then throws one TransitionError listing every failure.
  void suspend() { detail::exhaustive(View(*this).table, detail::Phase::suspend); }
  /// Deprovision every provisioned component, in reverse order; tries every component.
  void deprovision() { detail::exhaustive(View(*this).table, detail::Phase::deprovision); }

  // ---- Operations ---------------------------------------------------------------

  /// `zenml stack up`: provision() then resume(). All-or-nothing unless
  /// `.rollback = false`. Throws TransitionError.
  STACKUP_ALWAYS_INLINE void up(UpOptions options = {}) {
#if STACKUP_INLINE_STEPS
    if (!options.parallel && !events_.observer && !options.stop) [[likely]] {
      const detail::WalkRound round;
      std::array<unsigned char, size> marks{};
      detail::Run r{roles, marks, nullptr, nullptr, nullptr, true}; // refresh: an up brings outdated components up to date
      if (quiet<detail::Phase::provision, false>(r, std::make_index_sequence<size>{}) &&
          quiet<detail::Phase::resume, false>(r, std::make_index_sequence<size>{}))
        return;
      rollback(r, options);
    }
#endif
    engine_up(options);
  }

  /// `zenml stack down [--force]`: suspend every component; with `.force`, also
  /// deprovision. Tries every component, then throws one TransitionError listing all failures.
  STACKUP_ALWAYS_INLINE void down(DownOptions options = {}) {
#if STACKUP_INLINE_STEPS
    if (!options.parallel && !events_.observer && !options.stop) [[likely]] {
      const detail::WalkRound round;
      detail::Run r{roles, {}, nullptr, nullptr}; // down records nothing per component
      if (options.force) quiet<detail::Phase::force, true>(r, std::make_index_sequence<size>{});
      else quiet<detail::Phase::suspend, true>(r, std::make_index_sequence<size>{});
      if (r.failed) [[unlikely]] raise(r);
      return;
    }
#endif
    engine_down(options);
  }

  /// `zenml <C> up`: C's dependencies first, then C. Same guarantees as up().
  template <class C> void up(UpOptions options = {}) { detail::up_one(View(*this).table, index_of<C>(), options); }
  /// `zenml <C> down [--force]`: C's dependents first, then C. Same guarantees as down().
  /// With `.dependents = Dependents::keep`, C alone: its dependents are left running.
  template <class C> void down(DownOptions options = {}) {
    detail::down_one(View(*this).table, index_of<C>(), options);
  }
  /// up<C>() by role string; UnknownComponentError when the stack has no such role.
  void up(std::string_view role, UpOptions options = {}) { detail::up_one(View(*this).table, checked(role), options); }
  /// down<C>() by role string; UnknownComponentError when the stack has no such role.
  void down(std::string_view role, DownOptions options = {}) {
    detail::down_one(View(*this).table, checked(role), options);
  }

  // ---- Queries ------------------------------------------------------------------

  /// Every component is provisioned.
  [[nodiscard]] bool is_provisioned() const {
    const detail::WalkRound round;
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (static_cast<bool>(detail::held<I>(storage_).is_provisioned()) && ... && true);
    }(std::make_index_sequence<size>{});
  }
  /// Every component is running.
  [[nodiscard]] bool is_running() const {
    const detail::WalkRound round;
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (static_cast<bool>(detail::held<I>(storage_).is_running()) && ... && true);
    }(std::make_index_sequence<size>{});
  }
  /// One row per component, in template-argument order. Changes nothing.
  [[nodiscard]] std::array<ComponentStatus, size> status() const {
    const detail::WalkRound round;
    const View v(const_cast<Stack&>(*this));
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<ComponentStatus, size>{v.table.status(I)...};
    }(std::make_index_sequence<size>{});
  }
  /// UnknownComponentError listing the valid roles, for a role string not in the stack.
  [[nodiscard]] UnknownComponentError unknown_role(std::string_view role) const {
    return detail::unknown_role(name_, roles, role);
  }

private:
  // One owner per path, checked only when two or more component types own paths.
  void check_owned_paths() const {
    if constexpr ((std::size_t{detail::has_owned_paths<Cs>} + ... + std::size_t{0}) >= 2) {
      std::vector<std::vector<std::string>> owned(size);
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (detail::collect_owned_paths(detail::held<I>(storage_), owned[I]), ...);
      }(std::make_index_sequence<size>{});
      std::vector<detail::OwnedPath> paths;
      for (std::size_t k = 0; k < size; ++k)
        for (const auto& path : owned[k]) paths.push_back({path, k});
      if (const detail::OwnedClash c = detail::owned_path_clash(std::move(paths)); c.found)
        throw StackDefinitionError(name_, StackDefinitionError::Kind::overlapping_paths,
                                   {std::string(roles[c.first]), std::string(roles[c.second])}, {c.first, c.second},
                                   {std::string(c.first_path), std::string(c.second_path)});
    }
  }

  template <class T> static constexpr std::size_t index_of() {
    constexpr std::size_t i = detail::type_index<T, Cs...>();
    static_assert(i < size, "stackup: this type is not a component of the Stack: add it to the Stack's template arguments");
    return i < size ? i : 0; // after the assertion, no second error
  }
  template <FixedString R> static constexpr std::size_t index_of() {
    constexpr std::size_t i = find(R.view());
    if constexpr (i >= size) static_assert(detail::no_such_role<detail::spelled<R>, Cs...>::value);
    return i < size ? i : 0; // after the assertion, no second error
  }
  [[nodiscard]] std::size_t checked(std::string_view role) const {
    const std::size_t k = find(role);
    if (k == size) throw unknown_role(role);
    return k;
  }

  // The stack as the engine sees it; built only off the quiet path.
  struct View {
    std::array<detail::Slot, size> slots;
    std::array<unsigned char, size> own_marks{};
    detail::Table table;
    explicit View(Stack& s, std::span<unsigned char> marks = {})
        : slots([&]<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<detail::Slot, size>{detail::Slot{__builtin_addressof(detail::held<I>(s.storage_)), &detail::ops_of<Cs, false>, I}...};
          }(std::make_index_sequence<size>{})),
          table{s.name_, slots, {}, roles, order, plan_.first, plan_.dep, &s.events_,
                marks.empty() ? std::span<unsigned char>(own_marks) : marks} {}
    View(const View&) = delete;
    View& operator=(const View&) = delete;
  };

  // The quiet path's failures, out of line: the View they need stays off the path.
  [[noreturn]] STACKUP_COLD void rollback(detail::Run& r, const UpOptions& options) {
    detail::fail_up(View(*this, r.marks).table, r, options, detail::Undo::stack);
  }
  [[noreturn]] STACKUP_COLD void raise(detail::Run& r) { detail::raise(View(*this).table, r, "down"); }
  // With an observer, or in parallel: the engine's own walk, also out of line.
  [[gnu::noinline]] void engine_up(const UpOptions& options) { detail::up(View(*this).table, options); }
  [[gnu::noinline]] void engine_down(const DownOptions& options) { detail::down(View(*this).table, options); }

  // The quiet path: the steps of one phase, inlined in (reverse) action order,
  // stopping at the first that returns false.
  template <detail::Phase P, bool Reverse, std::size_t... I>
  STACKUP_ALWAYS_INLINE bool quiet(detail::Run& r, std::index_sequence<I...>) {
    unsigned char* const marks = r.marks.data(); // read once: the components' stores could alias it
    return (detail::step<P>(detail::held<at(Reverse, I)>(storage_), std::integral_constant<std::size_t, at(Reverse, I)>{},
                            r, marks) &&
            ...);
  }
  // The component at position i of the action order, or of its reverse.
  static constexpr std::size_t at(bool reverse, std::size_t i) { return order[reverse ? size - 1 - i : i]; }

  // What view() reads: the engine's table of this stack, with no scratch (a view
  // never acts). Built last, from the members above.
  struct Face {
    std::array<detail::Slot, size> slots;
    detail::Table table;
    explicit Face(Stack& s)
        : slots([&]<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<detail::Slot, size>{detail::Slot{__builtin_addressof(detail::held<I>(s.storage_)), &detail::ops_of<Cs, false>, I}...};
          }(std::make_index_sequence<size>{})),
          table{s.name_, slots, {}, roles, order, plan_.first, plan_.dep, &s.events_, {}} {}
    Face(const Face&) = delete;
    Face& operator=(const Face&) = delete;
  };

  std::string name_;
  Storage storage_;
  detail::Events events_;
  Face face_{*this};
};

template <class... Cs> Stack(std::string_view, Cs...) -> Stack<Cs...>;

} // namespace stackup

#include <stackup/detail/macro_unscope.hpp>
