// stackup — StackView: a stack's public, read-only face (DESIGN §12). Both kinds
// of stack give one (`stack.view()`); whatever is built on a stack (the command
// line, stack files, a host's dashboard) reads the stack through it instead of
// reaching inside. Its members are defined beside the engine, which every kind
// of stack includes; this header stays light.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/events.hpp>
#include <stackup/restart.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup {

namespace detail {
struct Table;
} // namespace detail

/// A range of roles (`std::string_view`), as a StackView hands them out: sized,
/// random access, valid while the stack lives. It either reads the stack's own
/// arrays (roles, order, dependencies: nothing is copied) or holds the positions
/// it was computed from (dependents, plans: one allocation).
class RoleRange {
public:
  /// Random access, by its operations (C++20's iterator concepts).
  class iterator {
  public:
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    std::string_view operator*() const { return (*range_)[i_]; }
    std::string_view operator[](difference_type n) const { return (*range_)[i_ + static_cast<std::size_t>(n)]; }
    iterator& operator++() { return ++i_, *this; }
    iterator operator++(int) { return {range_, i_++}; }
    iterator& operator--() { return --i_, *this; }
    iterator operator--(int) { return {range_, i_--}; }
    iterator& operator+=(difference_type n) { return i_ += static_cast<std::size_t>(n), *this; }
    iterator& operator-=(difference_type n) { return i_ -= static_cast<std::size_t>(n), *this; }
    friend iterator operator+(iterator a, difference_type n) { return a += n; }
    friend iterator operator+(difference_type n, iterator a) { return a += n; }
    friend iterator operator-(iterator a, difference_type n) { return a -= n; }
    friend difference_type operator-(const iterator& a, const iterator& b) {
      return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.i_ == b.i_; }
    friend bool operator<(const iterator& a, const iterator& b) { return a.i_ < b.i_; }
    friend bool operator>(const iterator& a, const iterator& b) { return a.i_ > b.i_; }
    friend bool operator<=(const iterator& a, const iterator& b) { return a.i_ <= b.i_; }
    friend bool operator>=(const iterator& a, const iterator& b) { return a.i_ >= b.i_; }

  private:
    friend class RoleRange;
    iterator(const RoleRange* r, std::size_t i) : range_(r), i_(i) {}
    const RoleRange* range_ = nullptr;
    std::size_t i_ = 0;
  };

  RoleRange() = default;
  RoleRange(const RoleRange& other) : roles_(other.roles_), index_(other.index_), size_(other.size_) {
    if (other.own_) index_ = own_ = copy(other.index_, size_);
  }
  RoleRange(RoleRange&& other) noexcept
      : roles_(other.roles_), index_(other.index_), size_(other.size_), own_(other.own_) {
    other.own_ = nullptr;
    other.index_ = nullptr;
    other.size_ = 0;
  }
  RoleRange& operator=(RoleRange other) noexcept {
    std::swap(roles_, other.roles_);
    std::swap(index_, other.index_);
    std::swap(size_, other.size_);
    std::swap(own_, other.own_);
    return *this;
  }
  ~RoleRange() { delete[] own_; }

  [[nodiscard]] iterator begin() const noexcept { return {this, 0}; }
  [[nodiscard]] iterator end() const noexcept { return {this, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// The i-th role (i < size()).
  [[nodiscard]] std::string_view operator[](std::size_t i) const noexcept { return roles_[index_ ? index_[i] : i]; }
  [[nodiscard]] std::string_view front() const noexcept { return (*this)[0]; }
  [[nodiscard]] std::string_view back() const noexcept { return (*this)[size_ - 1]; }

private:
  friend class StackView;
  // roles[index[i]] (index null: roles[i]); `own`, when given, is the block
  // (allocated with new[]) that index points into, which the range now owns.
  RoleRange(const std::string_view* roles, const std::size_t* index, std::size_t size,
            std::size_t* own = nullptr) noexcept
      : roles_(roles), index_(index), size_(size), own_(own) {}
  static std::size_t* copy(const std::size_t* from, std::size_t n) {
    auto* to = new std::size_t[n == 0 ? 1 : n];
    for (std::size_t i = 0; i < n; ++i) to[i] = from[i];
    return to;
  }

  // A block of its own rather than a std::vector: this header is in every
  // stack's includes, and each instantiation it makes costs every includer.
  const std::string_view* roles_ = nullptr;
  const std::size_t* index_ = nullptr;
  std::size_t size_ = 0;
  std::size_t* own_ = nullptr;
};

/// A stack's public, read-only face: `stack.view()` on Stack<Cs...> and
/// DynamicStack. Cheap to copy (one pointer); valid while the stack lives (and,
/// for a DynamicStack, until it is moved from). Every range is a RoleRange of
/// `std::string_view` roles. A role the stack does not hold throws
/// UnknownComponentError naming the valid roles.
class StackView {
public:
  /// Built by the stacks' `view()`.
  explicit StackView(const detail::Table& table) noexcept : t_(&table) {}

  /// The stack's name.
  [[nodiscard]] std::string_view name() const noexcept;
  /// Number of components.
  [[nodiscard]] std::size_t size() const noexcept;
  /// The roles in declaration order (template arguments, or the order given).
  [[nodiscard]] RoleRange roles() const noexcept;
  /// The roles in the order `up` acts on them; `down` acts in the reverse.
  [[nodiscard]] RoleRange order() const noexcept;
  /// Position of `role` in roles(), or size() when the stack does not hold it.
  [[nodiscard]] std::size_t find(std::string_view role) const noexcept;
  /// The stack holds a component with that role.
  [[nodiscard]] bool contains(std::string_view role) const noexcept { return find(role) != size(); }

  /// What `role` depends on directly, in its declaration order (`depends_on`).
  [[nodiscard]] RoleRange dependencies(std::string_view role) const;
  /// What depends on `role` directly, in declaration order.
  [[nodiscard]] RoleRange dependents(std::string_view role) const;

  /// One row per component, in declaration order; as `stack.status()`. Changes nothing.
  [[nodiscard]] std::vector<ComponentStatus> status() const;
  /// The row of one component, as in status().
  [[nodiscard]] ComponentStatus status(std::string_view role) const;
  /// One component's state (its two queries; no `detail()`).
  [[nodiscard]] State state(std::string_view role) const;

  /// What `up()` visits, in the order it acts: every role (as order()).
  [[nodiscard]] RoleRange plan_up() const noexcept;
  /// What `up(role)` visits, in the order it acts: its dependencies (transitively), then it.
  [[nodiscard]] RoleRange plan_up(std::string_view role) const;
  /// What `down()` visits, in the order it acts: every role, order() reversed.
  [[nodiscard]] RoleRange plan_down() const;
  /// What `down(role)` visits, in the order it acts: its dependents (transitively), then it.
  /// This is the `Dependents::stop` plan; with `Dependents::keep`, down(role) visits the role alone.
  [[nodiscard]] RoleRange plan_down(std::string_view role) const;

  /// The component's name (`name()`, else its role).
  [[nodiscard]] std::string_view component_name(std::string_view role) const;
  /// The component's flavour (`flavor`, e.g. "local_daemon"; "custom" when it declares none).
  [[nodiscard]] std::string_view flavor(std::string_view role) const;
  /// The file the component writes its log to (`log_file()`); empty when it keeps none.
  [[nodiscard]] std::string log_file(std::string_view role) const;
  /// The program (argv) whose output is the component's log as its engine keeps
  /// it (its `log_command()`: a container's `podman logs`), for `request`; empty
  /// when it has none. A component has a log file, a log command, or neither.
  [[nodiscard]] std::vector<std::string> log_command(std::string_view role, const LogRequest& request) const;
  /// Whether the component has `log_command()` (asking for the command itself may ask its engine).
  [[nodiscard]] bool has_log_command(std::string_view role) const;

  /// A new descriptor (close it) that becomes readable when the component stops
  /// running on its own (its `exit_fd()`: a LocalDaemon's is a pidfd); -1 when
  /// it cannot tell, or is not running: then poll `state(role)`.
  [[nodiscard]] int exit_fd(std::string_view role) const;
  /// How the component last stopped running on its own since its last start
  /// (its `exit_status()`); empty when it has not, or cannot tell.
  [[nodiscard]] std::optional<Exit> exit_status(std::string_view role) const;
  /// Whether the component has `exit_status()`: then, not running with no exit
  /// to report, it was brought down (a supervisor does not restart it).
  [[nodiscard]] bool reports_exits(std::string_view role) const;
  /// False when the component is provisioned and its `is_current()` says its
  /// settings changed since (the next up updates or recreates it); true without
  /// that member and when nothing is provisioned. As `status(role).current`.
  [[nodiscard]] bool is_current(std::string_view role) const;
  /// Stops the component at once, without grace (its optional `void kill()
  /// const`): what a suspend would stop is killed now. Safe to call from another
  /// thread while a suspend of the same component is in progress (a down that
  /// waits out its stop timeout). False, doing nothing, when it has no kill().
  bool kill(std::string_view role) const;
  /// Its restart policy, liveness probe and on_dependency_restart (its
  /// `supervision()`; the defaults, `Restart::no`, without one).
  [[nodiscard]] SupervisionConfig supervision(std::string_view role) const;

private:
  [[nodiscard]] std::size_t at(std::string_view role) const; // its position, else UnknownComponentError
  const detail::Table* t_;
};

} // namespace stackup
