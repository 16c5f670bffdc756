// stackup — what the shipped components (LocalDaemon, LocalDirectory, Command)
// have in common, written once: the configuration with its display name, the
// role, how messages name the component, how an owned path is kept, and the
// stack-file keys they share. Not part of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/errors.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

namespace stackup::detail {

/// The base of a shipped component `Derived` (which declares `flavor`): the
/// contract's defaults (StackComponent), the role (a template argument, or
/// given at run time), and its configuration `Config`, whose `name` is the
/// display name.
template <class Derived, FixedString Role, class Config>
class ShippedComponent : public StackComponent<Derived>, public RoleOf<Role> {
public:
  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? this->role_name() : std::string_view(config_.name);
  }
  /// The configuration (paths as the constructor made them: see each component).
  [[nodiscard]] const Config& config() const noexcept { return config_; }

protected:
  explicit ShippedComponent(Config config) : config_(std::move(config)) {}

  // How messages name the component: "local_daemon 'redis' (cache)".
  [[nodiscard]] std::string who() const {
    return std::string(Derived::flavor) + " '" + std::string(name()) + "' (" + std::string(this->role_name()) + ")";
  }

  Config config_;
};

/// A directory's path lexically normal and without a trailing '/'
/// ("a/./b/" -> "a/b"; "/" stays "/"), so that two spellings of one directory
/// compare equal.
inline std::filesystem::path normal_directory(const std::filesystem::path& p) {
  std::filesystem::path out = p.lexically_normal();
  if (out.has_relative_path() && !out.has_filename()) out = out.parent_path();
  return out;
}

/// A directory a component owns, as owned_paths() gives it (see
/// docs/components.md): absolute, and normal_directory.
inline std::filesystem::path owned_directory(const std::filesystem::path& p) {
  return normal_directory(std::filesystem::absolute(p));
}

/// `user` of a stack file's table (the components that run as a user),
/// checked now by the components' own rule (run_as): a user that does not
/// exist, or another user without root, is an error at the key before
/// anything starts. `Table`: StackFileTable's interface.
template <class Table> std::string user_from_table(const Table& t) {
  auto user = t.optional_string("user").value_or("");
  try {
    (void)posix::run_as(user, "component '" + std::string(t.role()) + "'");
  } catch (const Error& e) {
    t.fail("user", unprefixed(e.what()));
  }
  return user;
}

} // namespace stackup::detail
