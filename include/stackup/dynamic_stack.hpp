// stackup — DynamicStack: a stack assembled at run time (from a file, a plugin, a
// command line), with the same operations, semantics, events and errors as
// Stack<Cs...>: both are fronts over one engine (detail/engine.hpp).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/any_component.hpp>
#include <stackup/component.hpp>
#include <stackup/detail/engine.hpp>
#include <stackup/detail/owned_paths.hpp>
#include <stackup/detail/plan.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/options.hpp>
#include <stackup/stack_view.hpp>

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup {

/// A stack of AnyComponents with unique roles, checked when it is built
/// (StackDefinitionError). Actions run in dependency order (ties by listing
/// order); suspend and deprovision in reverse. Movable, not copyable.
class DynamicStack {
public:
  /// A stack named "default".
  explicit DynamicStack(std::vector<AnyComponent> components) : DynamicStack("default", std::move(components)) {}
  /// A named stack of the given components; StackDefinitionError if it cannot exist.
  DynamicStack(std::string name, std::vector<AnyComponent> components)
      : name_(std::move(name)), parts_(std::move(components)) {
    plan();
    table_ = make_table();
  }
  DynamicStack(DynamicStack&& other) noexcept
      : name_(std::move(other.name_)), parts_(std::move(other.parts_)), roles_(std::move(other.roles_)),
        slots_(std::move(other.slots_)), ordered_(std::move(other.ordered_)), order_(std::move(other.order_)),
        first_(std::move(other.first_)), dep_(std::move(other.dep_)), sorted_(std::move(other.sorted_)),
        marks_(std::move(other.marks_)), events_(std::move(other.events_)), table_(make_table()) {
    other.table_ = other.make_table(); // empty: a moved-from stack acts on nothing
  }
  DynamicStack& operator=(DynamicStack&& other) noexcept {
    if (this != &other) {
      name_ = std::move(other.name_);
      parts_ = std::move(other.parts_);
      roles_ = std::move(other.roles_);
      slots_ = std::move(other.slots_);
      ordered_ = std::move(other.ordered_);
      order_ = std::move(other.order_);
      first_ = std::move(other.first_);
      dep_ = std::move(other.dep_);
      sorted_ = std::move(other.sorted_);
      marks_ = std::move(other.marks_);
      events_ = std::move(other.events_);
      table_ = make_table();
      other.table_ = other.make_table();
    }
    return *this;
  }
  DynamicStack(const DynamicStack&) = delete;
  DynamicStack& operator=(const DynamicStack&) = delete;
  ~DynamicStack() = default;

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }
  /// Number of components.
  [[nodiscard]] std::size_t size() const noexcept { return parts_.size(); }
  /// Roles in the order given.
  [[nodiscard]] std::span<const std::string_view> roles() const noexcept { return roles_; }
  /// Indices of the components in action order (provision/resume order).
  [[nodiscard]] std::span<const std::size_t> order() const noexcept { return order_; }
  /// Index (position in the order given) of a role, or size() when absent. O(log N).
  [[nodiscard]] std::size_t find(std::string_view role) const noexcept {
    const auto at = std::lower_bound(sorted_.begin(), sorted_.end(), role,
                                     [&](std::size_t i, std::string_view r) { return roles_[i] < r; });
    return at != sorted_.end() && roles_[*at] == role ? *at : size();
  }
  /// A handle to the component with that role (its queries, its actions,
  /// `target<T>()`), which cannot replace or empty it; UnknownComponentError when
  /// the stack lacks it.
  [[nodiscard]] ComponentRef get(std::string_view role) { return ComponentRef(parts_[checked(role)]); }
  [[nodiscard]] ConstComponentRef get(std::string_view role) const { return ConstComponentRef(parts_[checked(role)]); }

  /// The stack's public, read-only face (roles, order, dependencies, plans,
  /// status, flavours, log files); valid while the stack lives, until it is moved from.
  [[nodiscard]] StackView view() const noexcept { return StackView(table_); }

  /// Set the observer (replaces any previous one; an empty function removes it)
  /// and return the one it replaces, so that a tool can put it back. As for
  /// Stack<Cs...>: called one event at a time, its exceptions ignored; called by
  /// the observer itself, the replacement takes effect when it returns.
  Observer on_event(Observer observer) { return events_.set(std::move(observer)); }

  // ---- ZenML's Stack primitives (as Stack<Cs...>) ----------------------------------

  /// Provision every component that is not provisioned, in dependency order.
  void provision() { detail::primitive(table(), detail::Phase::provision); }
  /// Resume every component that is not running, in dependency order.
  void resume() { detail::primitive(table(), detail::Phase::resume); }
  /// Suspend every running component, in reverse order; tries every component.
  void suspend() { detail::exhaustive(table(), detail::Phase::suspend); }
  /// Deprovision every provisioned component, in reverse order; tries every component.
  void deprovision() { detail::exhaustive(table(), detail::Phase::deprovision); }

  // ---- Operations (as Stack<Cs...>) ---------------------------------------------------

  /// `zenml stack up`: provision() then resume(); all-or-nothing unless `.rollback = false`.
  void up(UpOptions options = {}) { detail::up(table(), options); }
  /// `zenml stack down [--force]`: tries every component, then one TransitionError.
  void down(DownOptions options = {}) { detail::down(table(), options); }
  /// `zenml <role> up`: its dependencies first; UnknownComponentError for a role it lacks.
  void up(std::string_view role, UpOptions options = {}) { detail::up_one(table(), checked(role), options); }
  /// `zenml <role> down [--force]`: its dependents first (with `.dependents = Dependents::keep`,
  /// the role alone); UnknownComponentError for a role it lacks.
  void down(std::string_view role, DownOptions options = {}) { detail::down_one(table(), checked(role), options); }

  // ---- Queries ----------------------------------------------------------------------

  /// Every component is provisioned.
  [[nodiscard]] bool is_provisioned() const {
    const detail::WalkRound round;
    return std::all_of(parts_.begin(), parts_.end(), [](const AnyComponent& c) { return c.is_provisioned(); });
  }
  /// Every component is running.
  [[nodiscard]] bool is_running() const {
    const detail::WalkRound round;
    return std::all_of(parts_.begin(), parts_.end(), [](const AnyComponent& c) { return c.is_running(); });
  }
  /// One row per component, in the order given. Changes nothing.
  [[nodiscard]] std::vector<ComponentStatus> status() const {
    const detail::WalkRound round;
    const detail::Table& t = table();
    std::vector<ComponentStatus> rows;
    rows.reserve(size());
    for (std::size_t k = 0; k < size(); ++k) rows.push_back(t.status(k));
    return rows;
  }
  /// UnknownComponentError listing the valid roles, for a role string not in the stack.
  [[nodiscard]] UnknownComponentError unknown_role(std::string_view role) const {
    return detail::unknown_role(name_, roles_, role);
  }

private:
  [[nodiscard]] const detail::Table& table() const noexcept { return table_; }
  // The engine's view of this stack: spans of the members, rebuilt when it moves.
  [[nodiscard]] detail::Table make_table() const {
    return {name_, slots_, ordered_, roles_, order_, first_, dep_, &events_, marks_};
  }
  [[nodiscard]] std::size_t checked(std::string_view role) const {
    const std::size_t k = find(role);
    if (k == size()) throw unknown_role(role);
    return k;
  }

  [[noreturn]] void refuse(StackDefinitionError::Kind kind, std::vector<std::string> roles,
                            std::vector<std::size_t> components, std::vector<std::string> paths = {},
                            std::string_view held = {}) const {
    throw StackDefinitionError(name_, kind, std::move(roles), std::move(components), std::move(paths), held);
  }
  [[nodiscard]] std::string listed_roles() const {
    constexpr std::size_t shown = 20;
    std::string s;
    for (std::size_t i = 0; i < roles_.size() && i < shown; ++i) s.append(i ? ", " : "").append(roles_[i]);
    if (roles_.size() > shown) s += ", ... (" + std::to_string(roles_.size() - shown) + " more)";
    return s;
  }

  // Checks the stack and computes its plan: O(N log N + E log N).
  void plan() {
    const std::size_t n = parts_.size();
    std::size_t edges = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!parts_[i].has_value()) refuse(StackDefinitionError::Kind::empty_component, {}, {i});
      edges += parts_[i].depends_on_.size();
    }
    roles_.reserve(n);
    slots_.reserve(n);
    first_.reserve(n + 1);
    std::vector<std::string_view> names;
    names.reserve(edges);
    for (auto& c : parts_) {
      roles_.emplace_back(c.role_);
      slots_.push_back({c.object_, c.ops_, slots_.size()});
      first_.push_back(names.size());
      for (const auto& d : c.depends_on_) names.emplace_back(d);
    }
    first_.push_back(names.size());
    dep_.resize(edges);
    order_.resize(n);
    marks_.resize(n);
    sorted_.resize(n);
    std::vector<std::size_t> waiting(n), next_first(n + 1), next(edges), heap(n);
    const detail::PlanScratch scratch{sorted_, waiting, next_first, next, heap};
    const detail::PlanProblem p = detail::compute_plan(roles_, first_, names, dep_, order_, scratch);
    using Kind = StackDefinitionError::Kind;
    switch (p.error) {
    case detail::PlanError::none: {
      ordered_.reserve(n);
      for (const std::size_t k : order_) ordered_.push_back(slots_[k]);
      // One owner per path, when two or more components own paths; the strings
      // live until the check is done.
      if (std::count_if(parts_.begin(), parts_.end(), [](const AnyComponent& c) { return c.owned_ != nullptr; }) < 2)
        return;
      std::vector<std::vector<std::string>> owned(n);
      std::vector<detail::OwnedPath> paths;
      for (std::size_t k = 0; k < n; ++k) {
        if (!parts_[k].owned_) continue;
        owned[k] = parts_[k].owned_paths();
        for (const auto& path : owned[k]) paths.push_back({path, k});
      }
      if (const detail::OwnedClash c = detail::owned_path_clash(std::move(paths)); c.found)
        refuse(Kind::overlapping_paths, {std::string(roles_[c.first]), std::string(roles_[c.second])},
               {c.first, c.second}, {std::string(c.first_path), std::string(c.second_path)});
      return;
    }
    case detail::PlanError::empty_role:
      refuse(Kind::empty_role, {std::string()}, {p.a});
    case detail::PlanError::duplicate:
      refuse(Kind::duplicate_role, {std::string(roles_[p.a]), std::string(roles_[p.b])}, {p.a, p.b});
    case detail::PlanError::missing:
      refuse(Kind::unknown_dependency, {std::string(roles_[p.a]), std::string(names[first_[p.a] + p.b])}, {p.a}, {},
             listed_roles());
    case detail::PlanError::cycle: {
      // The path from the cycle's first component in listing order, back to it.
      std::size_t start = p.a;
      for (std::size_t at = detail::cycle_next(p.a, first_, dep_, scratch); at != p.a;
           at = detail::cycle_next(at, first_, dep_, scratch))
        start = std::min(start, at);
      std::vector<std::string> path;
      std::vector<std::size_t> on;
      std::size_t at = start;
      do {
        path.emplace_back(roles_[at]);
        on.push_back(at);
        at = detail::cycle_next(at, first_, dep_, scratch);
      } while (at != start);
      refuse(Kind::cycle, std::move(path), std::move(on));
    }
    }
  }

  std::string name_;
  std::vector<AnyComponent> parts_;
  std::vector<std::string_view> roles_; // views of parts_[i].role_, which do not move
  std::vector<detail::Slot> slots_, ordered_; // listing order, action order
  std::vector<std::size_t> order_, first_, dep_, sorted_;
  mutable std::vector<unsigned char> marks_; // the engine's scratch, one byte per component
  mutable detail::Events events_;
  detail::Table table_{make_table()};
};

} // namespace stackup
