// stackup — LocalDirectory<"role">: a directory that provision creates and
// deprovision removes, but only if stackup created it (an ownership marker).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/errors.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace stackup {

/// Configuration of a LocalDirectory; use designated initialisers.
struct LocalDirectoryConfig {
  std::string name{};           ///< display name; empty: the role
  std::filesystem::path path{}; ///< the directory (made absolute at construction)
};

/// A directory (an artifact store, a data folder). `provision` creates it
/// (parents too) and writes stackup's ownership marker `.stackup-directory` in
/// it; `deprovision` removes it, refusing a directory without the marker (one
/// stackup did not create), a symlink, `/`, the user's home or one of its
/// parents. Provisioned = the directory exists with the marker; running =
/// provisioned (there is no resume or suspend).
///
/// ```cpp
/// stackup::LocalDirectory<"artifact_store"> artifacts{{.name = "artifacts", .path = ".stackup/artifacts"}};
/// ```
template <FixedString Role> class LocalDirectory : public StackComponent<LocalDirectory<Role>> {
public:
  /// The component's role, from the template argument.
  static constexpr std::string_view role = Role;
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "local_directory";
  /// The configuration type (designated initialisers).
  using Config = LocalDirectoryConfig;
  /// The ownership marker's file name, inside the directory.
  static constexpr const char* marker = ".stackup-directory";

  /// A directory with this configuration; a relative path is made absolute now.
  explicit LocalDirectory(Config config) : config_(std::move(config)) {
    if (!config_.path.empty()) {
      config_.path = std::filesystem::absolute(config_.path).lexically_normal();
      if (!config_.path.has_filename() && config_.path.has_relative_path())
        config_.path = config_.path.parent_path();
    }
  }

  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? role : std::string_view(config_.name);
  }
  /// The directory (absolute).
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return config_.path; }
  /// For status tables: the path.
  [[nodiscard]] std::string detail() const { return config_.path.string(); }

  /// The directory exists (not through a symlink) and carries the marker.
  [[nodiscard]] bool is_provisioned() const {
    if (config_.path.empty()) return false;
    struct stat st{};
    if (::lstat(config_.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    return ::lstat((config_.path / marker).c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }
  /// Same as is_provisioned(): a directory is running when it exists.
  [[nodiscard]] bool is_running() const { return is_provisioned(); }

  /// Creates the directory (parents too) and writes the marker. An existing
  /// empty directory is adopted; Error (naming the path) for a symlink, a file,
  /// or a non-empty directory without the marker.
  void provision() {
    namespace px = detail::posix;
    check_path("create");
    struct stat st{};
    if (::lstat(config_.path.c_str(), &st) != 0) {
      std::error_code ec;
      std::filesystem::create_directories(config_.path, ec); // no error if another process just made it
      if (ec) throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": " + ec.message());
    }
    px::Fd dir(::open(config_.path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) {
      const int e = errno;
      if (::lstat(config_.path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
        refuse("create", "it is a symlink; stackup never works through a symlink: configure the real path");
      if (e == ENOTDIR) refuse("create", "it exists and is not a directory: remove it or choose another path");
      throw Error("stackup: " + who() + ": cannot open " + px::quoted(config_.path) + ": " + px::sys_message(e));
    }
    if (is_provisioned()) return;
    // Anything but the marker (which a concurrent provision may have just
    // written) means the directory is someone else's.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(config_.path, ec)) {
      if (entry.path().filename() != marker)
        refuse("take over", "it exists, is not empty and has no stackup marker (stackup did not create it): "
                            "choose another path, or empty it yourself");
    }
    // O_EXCL: never open something planted in the marker's place (a FIFO, a link).
    px::Fd m(::openat(dir.get(), marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!m && errno == EEXIST && is_provisioned()) return; // a concurrent provision won the race
    if (!m || !px::write_all(m.get(), "created by stackup for " + std::string(role) +
                                          "; deprovision removes this directory and everything in it\n"))
      throw Error("stackup: " + who() + ": cannot write the marker " + px::quoted(config_.path / marker) + ": " +
                  px::sys_message(errno));
  }

  /// Removes the directory and everything in it. Nothing to do if it does not
  /// exist. Error (naming the path, removing nothing) when it lacks the marker,
  /// is a symlink, or is `/`, empty, the home directory or a parent of it.
  void deprovision() {
    check_path("remove");
    struct stat st{};
    if (::lstat(config_.path.c_str(), &st) != 0) {
      if (errno == ENOENT) return;
      throw Error("stackup: " + who() + ": cannot inspect " + detail::posix::quoted(config_.path) + ": " +
                  detail::posix::sys_message(errno));
    }
    if (S_ISLNK(st.st_mode)) refuse("remove", "it is a symlink; stackup never removes through a symlink");
    if (!S_ISDIR(st.st_mode)) refuse("remove", "it is not a directory");
    if (!is_provisioned())
      refuse("remove", std::string("it has no stackup marker (") + marker +
                           "), so stackup did not create it: remove it yourself if you mean to");
    std::error_code ec;
    std::filesystem::remove_all(config_.path, ec); // does not follow symlinks inside
    if (ec) throw Error("stackup: " + who() + ": cannot remove " + detail::posix::quoted(config_.path) + ": " + ec.message());
  }

private:
  [[nodiscard]] std::string who() const {
    return "local_directory '" + std::string(name()) + "' (" + std::string(role) + ")";
  }
  [[noreturn]] void refuse(std::string_view action, std::string_view why) const {
    throw Error("stackup: " + who() + ": refusing to " + std::string(action) + " " +
                detail::posix::quoted(config_.path) + ": " + std::string(why));
  }

  // Paths stackup never creates or removes: empty, "/", a home directory or a
  // parent of one.
  void check_path(std::string_view action) const {
    if (const std::string why = detail::posix::forbidden_directory(config_.path); !why.empty()) {
      refuse(action, config_.path.empty() ? why + ": set .path" : why);
    }
  }

  Config config_;
};

} // namespace stackup
