// stackup — compile-time checks and action order of a Stack (internal).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>

#include <array>
#include <cstddef>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace stackup::detail {

template <class...> inline constexpr bool always_false = false;

/// A string_view as a template argument, so diagnostics show the role.
template <std::size_t N> constexpr FixedString<N> fixed(std::string_view s) {
  FixedString<N> f;
  for (std::size_t i = 0; i + 1 < N && i < s.size(); ++i) f.data[i] = s[i];
  return f;
}

/// A role spelt as a pack of characters. Reporting templates take the role in
/// this form because clang prints a FixedString argument as numbers
/// ({{97, 112, 105, 0}}), while both compilers print role_name<'a', 'p', 'i'>.
template <char... Chars> struct role_name {};
template <FixedString S, std::size_t... I> role_name<S.data[I]...> spell(std::index_sequence<I...>);
template <FixedString S> using spelled = decltype(spell<S>(std::make_index_sequence<S.size()>{}));

// Reporting templates: instantiated only on a broken stack, so the compiler's
// "in instantiation of ..." line shows the role and the component types.
template <class Role, class First, class Second> struct duplicate_role {
  static_assert(always_false<First, Second>,
                "stackup: two components of this Stack have the same role (first template argument); "
                "a stack holds one component per role: remove one of them or give it another `role`");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <class Role, class MissingDependency, class ComponentType> struct missing_dependency {
  static_assert(always_false<ComponentType>,
                "stackup: a component's depends_on names a role that this Stack does not hold "
                "(second template argument): add a component with that role to the Stack, or remove it from depends_on");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <class Role, class ComponentType> struct dependency_cycle {
  static_assert(always_false<ComponentType>,
                "stackup: dependency cycle: this component's depends_on leads back to itself; "
                "remove one depends_on entry on the cycle");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};
template <class T> struct not_a_component {
  // The class-type rule first: clang reports only the first failed assertion here.
  static_assert(std::is_class_v<T>, "stackup: this Stack template argument is not a Component: it must be a class type");
  static_assert(!std::is_class_v<T> || has_role<T>, "stackup: this Stack template argument is not a Component: it needs "
                             "`static constexpr std::string_view role = \"...\";`");
  static_assert(!std::is_class_v<T> || has_is_provisioned<T>, "stackup: this Stack template argument is not a Component: it needs "
                                       "`bool is_provisioned() const` (derive from stackup::StackComponent<T> for the default)");
  static_assert(!std::is_class_v<T> || has_is_running<T>, "stackup: this Stack template argument is not a Component: it needs "
                                   "`bool is_running() const` (derive from stackup::StackComponent<T> for the default)");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

template <class Role, class... StackComponents> struct unknown_role {
  static_assert(always_false<Role>,
                "stackup: the Stack has no component with this role: check the spelling or add the component");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

enum class PlanError { none, duplicate, missing, cycle };

/// Dependency graph and action order of `Cs...`, computed by constant evaluation.
template <class... Cs> struct Plan {
  static constexpr std::size_t size = sizeof...(Cs);
  static constexpr std::array<std::string_view, size> roles{std::string_view(Cs::role)...};
  static constexpr std::array<std::size_t, size> dep_counts{dependency_count<Cs>()...};
  static constexpr std::size_t edges = (dependency_count<Cs>() + ... + 0);

  struct Result {
    std::array<std::size_t, size> order{};        // topological, ties by listing order
    std::array<std::size_t, size + 1> first{};    // dependencies of i: dep[first[i] .. first[i+1])
    std::array<std::size_t, edges + 1> dep{};     // dependency indices
    PlanError error = PlanError::none;
    std::size_t a = 0, b = 0;                     // offending component(s) / depends_on entry
  };

  static constexpr Result compute() {
    Result r{};
    std::array<std::string_view, edges + 1> names{};
    {
      std::size_t e = 0, i = 0;
      ((r.first[i] = e, [&] { for (std::size_t k = 0; k < dependency_count<Cs>(); ++k) names[e++] = dependency<Cs>(k); }(), ++i), ...);
      r.first[size] = e;
    }
    for (std::size_t i = 0; i < size; ++i)
      for (std::size_t j = i + 1; j < size; ++j)
        if (roles[i] == roles[j]) { r.error = PlanError::duplicate; r.a = i; r.b = j; return r; }
    for (std::size_t i = 0; i < size; ++i)
      for (std::size_t e = r.first[i]; e < r.first[i + 1]; ++e) {
        std::size_t j = 0;
        while (j < size && roles[j] != names[e]) ++j;
        if (j == size) { r.error = PlanError::missing; r.a = i; r.b = e - r.first[i]; return r; }
        r.dep[e] = j;
      }
    std::array<bool, size + 1> placed{};
    for (std::size_t n = 0; n < size; ++n) {
      std::size_t pick = size;
      for (std::size_t i = 0; i < size && pick == size; ++i) {
        if (placed[i]) continue;
        bool ready = true;
        for (std::size_t e = r.first[i]; e < r.first[i + 1] && ready; ++e) ready = placed[r.dep[e]];
        if (ready) pick = i;
      }
      if (pick == size) { // every unplaced component waits: walk unplaced dependencies until one repeats
        std::size_t at = 0;
        while (placed[at]) ++at;
        for (std::size_t step = 0; step < size; ++step)
          for (std::size_t e = r.first[at]; e < r.first[at + 1]; ++e)
            if (!placed[r.dep[e]]) { at = r.dep[e]; break; }
        r.error = PlanError::cycle; r.a = at;
        return r;
      }
      placed[pick] = true;
      r.order[n] = pick;
    }
    return r;
  }

  static constexpr Result result = compute();

  /// Components that `K` needs, transitively, plus K itself.
  static constexpr std::array<bool, size> closure_of(std::size_t k) {
    std::array<bool, size> need{};
    need[k] = true;
    for (std::size_t n = size; n-- > 0;) {
      const std::size_t i = result.order[n];
      if (need[i])
        for (std::size_t e = result.first[i]; e < result.first[i + 1]; ++e) need[result.dep[e]] = true;
    }
    return need;
  }
  /// Components that need `K`, transitively (K excluded).
  static constexpr std::array<bool, size> dependents_of(std::size_t k) {
    std::array<bool, size> hit{};
    for (std::size_t n = 0; n < size; ++n) {
      const std::size_t i = result.order[n];
      for (std::size_t e = result.first[i]; e < result.first[i + 1]; ++e)
        if (result.dep[e] == k || hit[result.dep[e]]) { hit[i] = true; break; }
    }
    return hit;
  }
};

template <std::size_t I, class... Ts> using nth = std::tuple_element_t<I, std::tuple<Ts...>>;

/// True when the stack is well-formed; otherwise instantiates the reporting
/// template that names the rule, the fix, the role and the types.
template <class... Cs> constexpr bool check_plan() {
  using P = Plan<Cs...>;
  constexpr auto& r = P::result;
  if constexpr (r.error == PlanError::duplicate) {
    using A = nth<r.a, Cs...>;
    return duplicate_role<spelled<fixed<std::string_view(A::role).size() + 1>(A::role)>, A, nth<r.b, Cs...>>::value;
  } else if constexpr (r.error == PlanError::missing) {
    using A = nth<r.a, Cs...>;
    constexpr std::string_view missing = dependency<A>(r.b);
    return missing_dependency<spelled<fixed<std::string_view(A::role).size() + 1>(A::role)>,
                              spelled<fixed<missing.size() + 1>(missing)>, A>::value;
  } else if constexpr (r.error == PlanError::cycle) {
    using A = nth<r.a, Cs...>;
    return dependency_cycle<spelled<fixed<std::string_view(A::role).size() + 1>(A::role)>, A>::value;
  } else {
    return true;
  }
}

} // namespace stackup::detail
