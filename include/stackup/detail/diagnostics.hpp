// stackup — compile-time diagnostics of Stack<Cs...> (internal): reporting
// templates whose names and arguments carry the rule, the role and the types.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>

#include <cstddef>
#include <string_view>
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

template <class Role, class... StackComponents> struct no_such_role {
  static_assert(always_false<Role>,
                "stackup: the Stack has no component with this role: check the spelling or add the component");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

template <class Role, class ComponentType> struct empty_role {
  static_assert(always_false<ComponentType>,
                "stackup: a component of this Stack has an empty role: give it `static constexpr std::string_view role = \"...\";`");
  static constexpr bool value = true; // the static_assert above has already failed: report once
};

} // namespace stackup::detail
