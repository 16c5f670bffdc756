// One test body, both kinds of stack: `stackup::Stack<Cs...>` and a
// `stackup::DynamicStack` of the same component types wrapped in AnyComponent, in
// the same listing order. A suite that runs each case against both proves that the
// two fronts share their semantics instead of assuming it:
//
//   TEST_CASE_TEMPLATE("semantics: ...", K, kinds::Typed, kinds::Dynamic) {
//     auto s = kinds::make<K, A, B>();          // or kinds::make_from<K>("name", A{...}, B{...})
//     kinds::get<A>(s).log = &log;              // s.get<A>() / s.get(A::role).target<A>()
//     s.up(); s.down("a", {.force = true});     // the stack-level API is spelled the same
//     kinds::up<A>(s);                          // s.up<A>() / s.up(A::role)
//     CHECK(kinds::order(s) == ...);            // S::order / s.order()
//   }
//
// The case names end in <Stack> or <DynamicStack>.
#pragma once

#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace kinds {

/// stackup::Stack<Cs...>: the components fixed when compiling.
struct Typed {};
/// stackup::DynamicStack: the same components, as AnyComponents, chosen at run time.
struct Dynamic {};

template <class K> inline constexpr bool is_dynamic = std::is_same_v<K, Dynamic>;

/// The stack type of kind K over the component types Cs (in listing order).
template <class K, class... Cs>
using StackOf = std::conditional_t<is_dynamic<K>, stackup::DynamicStack, stackup::Stack<Cs...>>;

/// A stack of kind K named `name`, holding the given components in that order.
template <class K, class... Cs> StackOf<K, Cs...> make_from(std::string_view name, Cs... components) {
  if constexpr (is_dynamic<K>) {
    std::vector<stackup::AnyComponent> parts;
    parts.reserve(sizeof...(Cs));
    (parts.emplace_back(std::move(components)), ...);
    return stackup::DynamicStack(std::string(name), std::move(parts));
  } else {
    return stackup::Stack<Cs...>(name, std::move(components)...);
  }
}

/// A stack of kind K of value-initialised components (as `Stack<Cs...> s;`).
template <class K, class... Cs> StackOf<K, Cs...> make(std::string_view name = "default") {
  return make_from<K>(name, Cs{}...);
}

// ---- the component of type C ----------------------------------------------------

template <class C, class... Cs> C& get(stackup::Stack<Cs...>& s) { return s.template get<C>(); }
template <class C, class... Cs> const C& get(const stackup::Stack<Cs...>& s) { return s.template get<C>(); }
template <class C> C& get(stackup::DynamicStack& s) {
  C* c = s.get(C::role).template target<C>();
  if (c == nullptr) throw std::logic_error("test: the component with role '" + std::string(C::role) + "' is not a C");
  return *c;
}
template <class C> const C& get(const stackup::DynamicStack& s) {
  const C* c = s.get(C::role).template target<C>();
  if (c == nullptr) throw std::logic_error("test: the component with role '" + std::string(C::role) + "' is not a C");
  return *c;
}

// ---- per-component operations by type ----------------------------------------------
// Stack<Cs...> takes the type (compile-time form); DynamicStack the type's role.

template <class C, class... Cs> void up(stackup::Stack<Cs...>& s, stackup::UpOptions o = {}) { s.template up<C>(o); }
template <class C> void up(stackup::DynamicStack& s, stackup::UpOptions o = {}) { s.up(C::role, o); }
template <class C, class... Cs> void down(stackup::Stack<Cs...>& s, stackup::DownOptions o = {}) {
  s.template down<C>(o);
}
template <class C> void down(stackup::DynamicStack& s, stackup::DownOptions o = {}) { s.down(C::role, o); }

// ---- what Stack<Cs...> has as static data and DynamicStack as functions ----------------

template <class... Cs> std::vector<std::size_t> order(const stackup::Stack<Cs...>&) {
  return {stackup::Stack<Cs...>::order.begin(), stackup::Stack<Cs...>::order.end()};
}
inline std::vector<std::size_t> order(const stackup::DynamicStack& s) { return {s.order().begin(), s.order().end()}; }

template <class... Cs> std::vector<std::string_view> roles(const stackup::Stack<Cs...>&) {
  return {stackup::Stack<Cs...>::roles.begin(), stackup::Stack<Cs...>::roles.end()};
}
inline std::vector<std::string_view> roles(const stackup::DynamicStack& s) {
  return {s.roles().begin(), s.roles().end()};
}

template <class... Cs> std::size_t size(const stackup::Stack<Cs...>&) { return stackup::Stack<Cs...>::size; }
inline std::size_t size(const stackup::DynamicStack& s) { return s.size(); }

} // namespace kinds

TYPE_TO_STRING_AS("Stack", kinds::Typed);
TYPE_TO_STRING_AS("DynamicStack", kinds::Dynamic);
