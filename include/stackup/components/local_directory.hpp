// stackup — LocalDirectory<"role">: a directory that provision creates and
// deprovision removes, but only if stackup created it (an ownership marker).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/errors.hpp>

#include <array>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

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
/// Processes and threads acting on the same directory take turns: each action
/// holds an exclusive flock on the parent directory, so nothing is left behind
/// once the directory is gone. Racing a deprovision, a provision succeeds and
/// the directory ends as the last of the two left it. `deprovision` swaps the
/// directory with an empty marked one in one step (its contents leave the path
/// at once, to `<path>.removing-<pid>`), then removes the contents with the
/// marker last, then the empty one: until everything is gone the path carries
/// the marker, so a removal that fails half-way or is killed leaves the
/// directory provisioned, and the next `deprovision` finishes the job. A new
/// directory is made beside the path with its marker, then moved into place
/// (where the file system can rename without replacing): a process writing
/// files into the path meanwhile never finds it unmarked.
///
/// ```cpp
/// stackup::LocalDirectory<"artifact_store"> artifacts{{.name = "artifacts", .path = ".stackup/artifacts"}};
/// ```
template <FixedString Role = ""> class LocalDirectory : public StackComponent<LocalDirectory<Role>>, public detail::RoleOf<Role> {
public:
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
    return config_.name.empty() ? this->role_name() : std::string_view(config_.name);
  }
  /// The directory (absolute).
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return config_.path; }
  /// What this component owns (one owner per path, checked by the stack): the directory.
  [[nodiscard]] std::array<std::string_view, 1> owned_paths() const noexcept { return {config_.path.native()}; }
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
    using px = detail::posix;
    check_path("create");
    std::error_code ec;
    std::filesystem::create_directories(config_.path.parent_path(), ec);
    if (ec) throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": " + ec.message());
    const px::Fd parent = lock_parent();
    if (!parent) throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) +
                             ": its parent directory was removed meanwhile");
    const std::string leaf = config_.path.filename().string();
    if (create_marked(parent.get(), leaf)) return;
    if (::mkdirat(parent.get(), leaf.c_str(), 0777) != 0 && errno != EEXIST)
      throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": " + px::sys_message(errno));
    const px::Fd dir(::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) {
      const int e = errno;
      struct stat st{};
      if (::fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        refuse("create", "it is a symlink; stackup never works through a symlink: configure the real path");
      if (e == ENOTDIR) refuse("create", "it exists and is not a directory: remove it or choose another path");
      throw Error("stackup: " + who() + ": cannot open " + px::quoted(config_.path) + ": " + px::sys_message(e));
    }
    if (marked(dir.get())) return;
    std::vector<std::string> entries;
    if (const int e = px::list_directory(dir.get(), entries))
      throw Error("stackup: " + who() + ": cannot read " + px::quoted(config_.path) + ": " + px::sys_message(e));
    if (!entries.empty())
      refuse("take over", "it exists, is not empty and has no stackup marker (stackup did not create it): "
                          "choose another path, or empty it yourself");
    if (!write_marker(dir.get()))
      throw Error("stackup: " + who() + ": cannot write the marker " + px::quoted(config_.path / marker) + ": " +
                  px::sys_message(errno));
  }

  /// Removes the directory and everything in it, and what an interrupted
  /// deprovision left beside it (`<path>.removing-<pid>` with the marker).
  /// Nothing to do if it does not exist. Error (naming the path, removing
  /// nothing) when it lacks the marker, is a symlink, or is `/`, empty, the
  /// home directory or a parent of it. Error when something in it cannot be
  /// removed: what is left keeps the marker, so the directory is still
  /// provisioned and deprovisioning again finishes the job.
  void deprovision() {
    using px = detail::posix;
    check_path("remove");
    const px::Fd parent = lock_parent();
    if (!parent) return; // no parent, no directory
    const int at = parent.get();
    const std::string leaf = config_.path.filename().string();
    remove_leftovers(at, leaf);
    struct stat st{};
    if (::fstatat(at, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return;
      throw Error("stackup: " + who() + ": cannot inspect " + px::quoted(config_.path) + ": " + px::sys_message(errno));
    }
    if (S_ISLNK(st.st_mode)) refuse("remove", "it is a symlink; stackup never removes through a symlink");
    if (!S_ISDIR(st.st_mode)) refuse("remove", "it is not a directory");
    if (!marked_at(at, leaf))
      refuse("remove", std::string("it has no stackup marker (") + marker +
                           "), so stackup did not create it: remove it yourself if you mean to");
    // Swap in an empty marked directory; where the file system cannot swap,
    // the directory is removed in place, with the same guarantees.
    const std::string aside = beside(leaf);
    if (make_marked(at, aside, st.st_mode & 07777)) {
      if (!px::rename_entry(at, aside.c_str(), leaf.c_str(), px::Rename::exchange)) {
        remove_marked(at, aside); // still the empty one
      } else if (const int e = remove_marked(at, aside)) {
        fail_removal(config_.path.parent_path() / aside, e);
      }
    }
    if (const int e = remove_marked(at, leaf)) fail_removal(config_.path, e);
  }

private:
  // The contents of `<path>` are removed as `<path>.removing-<pid>`, and a new
  // directory is made under that name before it moves into place.
  static constexpr std::string_view removing = ".removing-";
  static std::string beside(const std::string& leaf) { return leaf + std::string(removing) + std::to_string(::getpid()); }

  [[nodiscard]] std::string who() const {
    return "local_directory '" + std::string(name()) + "' (" + std::string(this->role_name()) + ")";
  }
  [[noreturn]] void refuse(std::string_view action, std::string_view why) const {
    throw Error("stackup: " + who() + ": refusing to " + std::string(action) + " " +
                detail::posix::quoted(config_.path) + ": " + std::string(why));
  }
  [[noreturn]] void fail_removal(const std::filesystem::path& where, int e) const {
    throw Error("stackup: " + who() + ": cannot remove " + detail::posix::quoted(where) + ": " +
                detail::posix::sys_message(e) + "; what is left keeps stackup's marker, so " +
                detail::posix::quoted(config_.path) +
                " is still provisioned: remove the cause, then deprovision again (e.g. `down --force`)");
  }

  // Paths stackup never creates or removes: empty, "/", a home directory or a
  // parent of one.
  void check_path(std::string_view action) const {
    if (const std::string why = detail::posix::forbidden_directory(config_.path); !why.empty()) {
      refuse(action, config_.path.empty() ? why + ": set .path" : why);
    }
  }

  // The parent directory, locked: every action on this directory, and on
  // what a deprovision moves aside next to it, runs under this lock.
  [[nodiscard]] detail::posix::Fd lock_parent() const {
    return detail::posix::lock_directory(config_.path.parent_path());
  }

  [[nodiscard]] static bool marked(int dir) {
    struct stat st{};
    return ::fstatat(dir, marker, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  }
  // `name` in `parent` is a real directory carrying the marker.
  [[nodiscard]] static bool marked_at(int parent, const std::string& name) {
    const detail::posix::Fd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    return dir && marked(dir.get());
  }

  // O_EXCL: never open something planted in the marker's place (a FIFO, a link).
  bool write_marker(int dir) const {
    const detail::posix::Fd m(::openat(dir, marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    return m && detail::posix::write_all(m.get(), "created by stackup for " + std::string(this->role_name()) +
                                                      "; deprovision removes this directory and everything in it\n");
  }

  // Creates `name` in `parent` as an empty directory with the marker; false
  // (and nothing left) when it cannot.
  bool make_marked(int parent, const std::string& name, mode_t mode) const {
    if (::mkdirat(parent, name.c_str(), mode) != 0) return false;
    const detail::posix::Fd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (dir && write_marker(dir.get())) return true;
    if (dir) ::unlinkat(dir.get(), marker, 0);
    ::unlinkat(parent, name.c_str(), AT_REMOVEDIR);
    return false;
  }

  // A new directory appears at its path with the marker already in it: made
  // beside it (under the name deprovision uses, so that what a crash leaves is
  // cleaned the same way), then moved into place. A process writing into the
  // path while it is created cannot make it look like someone else's. False,
  // leaving nothing, when the path exists or cannot be taken that way.
  bool create_marked(int parent, const std::string& leaf) const {
    struct stat st{};
    if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) return false;
    const std::string fresh = beside(leaf);
    if (!make_marked(parent, fresh, 0777)) return false;
    if (detail::posix::rename_entry(parent, fresh.c_str(), leaf.c_str(), detail::posix::Rename::only_if_free))
      return true;
    remove_marked(parent, fresh);
    return false;
  }

  // Removes the marked directory `name` in `parent`: its contents, then the
  // marker, then the directory, so that it carries the proof of ownership until
  // nothing else is left. 0, or the errno of the failure; the marker is then
  // still there (written again if the directory itself could not go).
  int remove_marked(int parent, const std::string& name) const {
    const detail::posix::Fd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) return errno == ENOENT ? 0 : errno;
    int e = 0;
    for (int attempt = 0; attempt < 3; ++attempt) { // a writer may add a file just before the directory goes
      if ((e = detail::posix::remove_contents(dir.get(), marker)) != 0) return e;
      if (::unlinkat(dir.get(), marker, 0) != 0 && errno != ENOENT) return errno;
      if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
      e = errno;
      write_marker(dir.get());
      if (e != ENOTEMPTY && e != EEXIST) break;
    }
    return e;
  }

  // What an interrupted deprovision or provision left: `<leaf>.removing-<digits>`
  // with the marker. Under the lock, no other action is using it. One of that
  // name without the marker goes only if it is empty (a provision killed before
  // its marker); anything else without the marker is not stackup's and stays.
  void remove_leftovers(int parent, const std::string& leaf) const {
    std::vector<std::string> entries;
    if (const int e = detail::posix::list_directory(parent, entries))
      throw Error("stackup: " + who() + ": cannot read " + detail::posix::quoted(config_.path.parent_path()) + ": " +
                  detail::posix::sys_message(e));
    const std::string prefix = leaf + std::string(removing);
    for (const auto& n : entries) {
      if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0 ||
          n.find_first_not_of("0123456789", prefix.size()) != std::string::npos)
        continue;
      if (!marked_at(parent, n)) {
        ::unlinkat(parent, n.c_str(), AT_REMOVEDIR); // fails, changing nothing, unless it is an empty directory
        continue;
      }
      if (const int e = remove_marked(parent, n)) fail_removal(config_.path.parent_path() / n, e);
    }
  }

  Config config_;
};

} // namespace stackup
