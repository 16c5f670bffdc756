// stackup — AnyComponent: any component, chosen at run time (value semantics).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/engine.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace stackup {

namespace detail {
template <class C> std::vector<std::string> dependencies_of() {
  std::vector<std::string> deps;
  deps.reserve(dependency_count<C>());
  for (std::size_t k = 0; k < dependency_count<C>(); ++k) deps.emplace_back(dependency<C>(k));
  return deps;
}
template <class T, class Self> concept other_than = !std::is_same_v<std::remove_cvref_t<T>, Self>;
template <class C> std::vector<std::string> owned_paths_of(const void* object) {
  std::vector<std::string> paths;
  for (auto&& p : static_cast<const C*>(object)->owned_paths()) paths.emplace_back(std::string_view(p));
  return paths;
}
} // namespace detail

/// Any component, chosen at run time: the element of a DynamicStack. Movable,
/// not copyable. Calls reach the wrapped object through a table built once per
/// wrapped type; what the type lacks (an action, `name()`, `detail()`) is known
/// from its type, as for Stack<Cs...>. A moved-from AnyComponent is empty.
class AnyComponent {
public:
  /// Wraps a Component: role and `depends_on` from its type.
  template <class C>
    requires detail::other_than<C, AnyComponent> && Component<std::remove_cvref_t<C>>
  AnyComponent(C&& component) // NOLINT(google-explicit-constructor): a component is an AnyComponent
      : AnyComponent(std::string(std::remove_cvref_t<C>::role), std::forward<C>(component),
                     detail::dependencies_of<std::remove_cvref_t<C>>()) {}

  /// Wraps any type with const `is_provisioned()` and `is_running()` (and any of
  /// the four actions) under a role and dependencies given at run time. A type
  /// with `void assign_role(std::string_view)` (the shipped components without a
  /// role argument) is told its role.
  template <class C>
    requires detail::other_than<C, AnyComponent> && detail::has_queries<std::remove_cvref_t<C>>
  AnyComponent(std::string role, C&& component, std::vector<std::string> depends_on = {})
      : object_(new std::remove_cvref_t<C>(std::forward<C>(component))),
        ops_(&detail::ops_of<std::remove_cvref_t<C>>), role_(std::move(role)), depends_on_(std::move(depends_on)) {
    if constexpr (detail::has_owned_paths<std::remove_cvref_t<C>>) owned_ = &detail::owned_paths_of<std::remove_cvref_t<C>>;
    if constexpr (requires(std::remove_cvref_t<C>& c) { c.assign_role(std::string_view()); })
      static_cast<std::remove_cvref_t<C>*>(object_)->assign_role(role_);
  }

  AnyComponent(AnyComponent&& other) noexcept
      : object_(std::exchange(other.object_, nullptr)), ops_(std::exchange(other.ops_, nullptr)),
        role_(std::exchange(other.role_, {})), depends_on_(std::exchange(other.depends_on_, {})),
        owned_(std::exchange(other.owned_, nullptr)) {}
  AnyComponent& operator=(AnyComponent&& other) noexcept {
    if (this != &other) {
      reset();
      object_ = std::exchange(other.object_, nullptr);
      ops_ = std::exchange(other.ops_, nullptr);
      role_ = std::exchange(other.role_, {});
      depends_on_ = std::exchange(other.depends_on_, {});
      owned_ = std::exchange(other.owned_, nullptr);
    }
    return *this;
  }
  AnyComponent(const AnyComponent&) = delete;
  AnyComponent& operator=(const AnyComponent&) = delete;
  ~AnyComponent() { reset(); }

  /// False for a moved-from AnyComponent (which a DynamicStack refuses).
  [[nodiscard]] bool has_value() const noexcept { return object_ != nullptr; }
  /// The role.
  [[nodiscard]] const std::string& role() const noexcept { return role_; }
  /// The roles this component needs, in the order given.
  [[nodiscard]] const std::vector<std::string>& depends_on() const noexcept { return depends_on_; }
  /// The display name: the wrapped `name()`, else the role.
  [[nodiscard]] std::string_view name() const { return ops().name ? ops_->name(object_) : std::string_view(role_); }
  /// The wrapped type's `flavor` (e.g. "local_daemon"), or "custom".
  [[nodiscard]] std::string_view flavor() const { return ops().flavor; }
  /// What the wrapped `detail()` offers (pid, port, path), or empty.
  [[nodiscard]] std::string detail() const { return ops().detail ? ops_->detail(object_) : std::string(); }
  /// The file `<role> logs` prints (the wrapped `log_file()`), or empty when it keeps none.
  [[nodiscard]] std::string log_file() const { return ops().log_file ? ops_->log_file(object_) : std::string(); }
  /// The wrapped `log_command(request)`: the program whose output is its log as
  /// its engine keeps it; empty without one.
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const {
    return ops().log_command ? ops_->log_command(object_, request) : std::vector<std::string>{};
  }
  /// The wrapped `exit_fd()` (a new descriptor: close it), or -1 without one.
  [[nodiscard]] int exit_fd() const { return ops().exit_fd ? ops_->exit_fd(object_) : -1; }
  /// The wrapped `exit_status()`, or empty without one.
  [[nodiscard]] std::optional<Exit> exit_status() const {
    return ops().exit_status ? ops_->exit_status(object_) : std::nullopt;
  }
  /// The wrapped `supervision()`, or the defaults (`Restart::no`) without one.
  [[nodiscard]] SupervisionConfig supervision() const {
    return ops().supervision ? ops_->supervision(object_) : SupervisionConfig{};
  }
  /// The wrapped `kill()`: stop at once, without grace (it may run while a
  /// suspend of the same component is in progress on another thread). False,
  /// doing nothing, when the type has no kill().
  bool kill() const {
    if (!ops().kill) return false;
    ops_->kill(object_);
    return true;
  }
  /// The paths the wrapped `owned_paths()` lists (absolute, lexically normal), or
  /// none when the type owns no files.
  [[nodiscard]] std::vector<std::string> owned_paths() const {
    (void)ops(); // an empty AnyComponent says so
    return owned_ ? owned_(object_) : std::vector<std::string>{};
  }
  /// running if is_running(), else suspended if is_provisioned(), else deprovisioned.
  [[nodiscard]] State state() const {
    if (is_running()) return State::running;
    return is_provisioned() ? State::suspended : State::deprovisioned;
  }
  /// The wrapped `is_provisioned()`.
  [[nodiscard]] bool is_provisioned() const { return ops().call(object_, detail::Call::is_provisioned); }
  /// The wrapped `is_running()`.
  [[nodiscard]] bool is_running() const { return ops().call(object_, detail::Call::is_running); }
  /// Whether the wrapped type has that action (it may still refuse at run time
  /// by throwing NotImplementedError).
  [[nodiscard]] bool has(Transition t) const { return (ops().actions & detail::action_bit(t)) != 0; }
  /// The wrapped `is_current()` (settings unchanged since it was provisioned), or true without one.
  [[nodiscard]] bool is_current() const { return ops().call(object_, detail::Call::is_current); }
  /// Whether the wrapped type has `update()` (without it, up recreates an outdated component).
  [[nodiscard]] bool has_update() const { return (ops().actions & detail::updates) != 0; }

  /// The wrapped action; NotImplementedError when the type lacks it.
  void provision() { act(Transition::provision); }
  void resume() { act(Transition::resume); }
  void suspend() { act(Transition::suspend); }
  void deprovision() { act(Transition::deprovision); }
  /// The wrapped `update()`; NotImplementedError when the type lacks it.
  void update() {
    if (!has_update())
      throw NotImplementedError(detail::cat({"stackup: ", role_, " '", name(), "' does not implement update()"}));
    ops_->call(object_, detail::Call::update);
  }

  /// The wrapped object if it is a T, else nullptr (as std::function::target).
  template <class T> [[nodiscard]] T* target() noexcept {
    return ops_ && ops_->type == &detail::type_tag<T> ? static_cast<T*>(object_) : nullptr;
  }
  template <class T> [[nodiscard]] const T* target() const noexcept {
    return ops_ && ops_->type == &detail::type_tag<T> ? static_cast<const T*>(object_) : nullptr;
  }

private:
  friend class DynamicStack;

  [[nodiscard]] const detail::Ops& ops() const {
    if (!ops_) [[unlikely]]
      throw Error("stackup: this AnyComponent is empty (it was moved from): assign a component to it first");
    return *ops_;
  }
  void act(Transition t) {
    if (!has(t)) detail::not_implemented(role_, name(), t, {});
    ops_->call(object_, static_cast<detail::Call>(t));
  }
  void reset() noexcept {
    if (object_) ops_->destroy(object_);
    object_ = nullptr;
    ops_ = nullptr;
    owned_ = nullptr;
  }

  void* object_ = nullptr;
  const detail::Ops* ops_ = nullptr;
  std::string role_;
  std::vector<std::string> depends_on_;
  std::vector<std::string> (*owned_)(const void*) = nullptr; // the type's owned_paths(), if it has them
};

/// What `DynamicStack::get()` returns (as ComponentRef, or ConstComponentRef
/// from a const stack): a handle to one of the stack's components, through which
/// its queries, its actions (not through a ConstComponentRef) and `target<T>()`
/// work. It refers to the component the stack holds, so it cannot replace or
/// empty it: it cannot be assigned (neither an AnyComponent nor another handle)
/// nor moved from, and it gives no AnyComponent& out. A copy is a second handle
/// to the same component; a ComponentRef converts to a ConstComponentRef, as
/// `T*` to `const T*`. Valid while the stack lives and is not moved.
template <class Any> class BasicComponentRef {
  static constexpr bool read_only = std::is_const_v<Any>;

public:
  BasicComponentRef(const BasicComponentRef&) noexcept = default;
  template <class Other>
    requires(read_only && std::is_same_v<Other, std::remove_const_t<Any>>)
  BasicComponentRef(const BasicComponentRef<Other>& r) noexcept : c_(r.c_) {} // NOLINT(google-explicit-constructor)
  BasicComponentRef(BasicComponentRef&&) = delete;
  BasicComponentRef& operator=(const BasicComponentRef&) = delete;
  BasicComponentRef& operator=(BasicComponentRef&&) = delete;
  ~BasicComponentRef() = default;

  /// As AnyComponent: the role, dependencies, display name, flavor, detail, log file and command,
  /// exit descriptor, exit status, supervision config, owned paths, state.
  [[nodiscard]] const std::string& role() const noexcept { return c_->role(); }
  [[nodiscard]] const std::vector<std::string>& depends_on() const noexcept { return c_->depends_on(); }
  [[nodiscard]] std::string_view name() const { return c_->name(); }
  [[nodiscard]] std::string_view flavor() const { return c_->flavor(); }
  [[nodiscard]] std::string detail() const { return c_->detail(); }
  [[nodiscard]] std::string log_file() const { return c_->log_file(); }
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const { return c_->log_command(request); }
  [[nodiscard]] int exit_fd() const { return c_->exit_fd(); }
  [[nodiscard]] std::optional<Exit> exit_status() const { return c_->exit_status(); }
  [[nodiscard]] SupervisionConfig supervision() const { return c_->supervision(); }
  [[nodiscard]] std::vector<std::string> owned_paths() const { return c_->owned_paths(); }
  [[nodiscard]] State state() const { return c_->state(); }
  /// The wrapped queries.
  [[nodiscard]] bool is_provisioned() const { return c_->is_provisioned(); }
  [[nodiscard]] bool is_running() const { return c_->is_running(); }
  /// Whether the wrapped type has that action.
  [[nodiscard]] bool has(Transition t) const { return c_->has(t); }
  /// The wrapped `is_current()` (true without one); whether it has `update()`.
  [[nodiscard]] bool is_current() const { return c_->is_current(); }
  [[nodiscard]] bool has_update() const { return c_->has_update(); }
  /// The wrapped actions (NotImplementedError when the type lacks one), run on
  /// this component alone, as AnyComponent's. Not through a ConstComponentRef.
  void provision() const requires(!read_only) { c_->provision(); }
  void resume() const requires(!read_only) { c_->resume(); }
  void suspend() const requires(!read_only) { c_->suspend(); }
  void deprovision() const requires(!read_only) { c_->deprovision(); }
  void update() const requires(!read_only) { c_->update(); }
  /// The wrapped `kill()` (false without one), as AnyComponent's. Not through a ConstComponentRef.
  bool kill() const requires(!read_only) { return c_->kill(); }
  /// The wrapped object if it is a T (a const T through a ConstComponentRef), else nullptr.
  template <class T> [[nodiscard]] auto* target() const noexcept { return c_->template target<T>(); }

private:
  friend class DynamicStack;
  template <class> friend class BasicComponentRef;
  explicit BasicComponentRef(Any& c) noexcept : c_(&c) {}
  Any* c_;
};

/// A handle to a DynamicStack's component: see BasicComponentRef.
using ComponentRef = BasicComponentRef<AnyComponent>;
/// A handle to a const DynamicStack's component: queries and a const `target<T>()`, no actions.
using ConstComponentRef = BasicComponentRef<const AnyComponent>;

} // namespace stackup
