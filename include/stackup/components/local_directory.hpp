// stackup — LocalDirectory<"role">: a directory that provision creates and
// deprovision removes, but only if stackup created it (an ownership marker).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/detail/shipped_component.hpp>
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
  /// Users whose existing directories this component may take over and remove
  /// (e.g. "postgres" for a data directory the postgres daemon owns). Any other
  /// user's directory is refused. A stack file fills it with every `user` its
  /// components run as.
  std::vector<std::string> users{};
};

/// A directory (an artifact store, a data folder). `provision` creates it
/// (parents too, each marked with the extended attribute
/// `trusted.stackup.parent` as root, `user.stackup.parent` otherwise, and
/// removed again by `deprovision` once empty) and writes stackup's ownership
/// marker `.stackup-directory` in it; `deprovision` removes it, refusing a
/// directory without the marker (one stackup did not create), a symlink, `/`,
/// any user's home directory or a parent of one, a directory owned by another
/// user (unless named in `users`), and a path whose parent another user can
/// write (who could swap it for a symlink). Removal goes through descriptors
/// only, never through a symlink, and stops at a mount point inside, leaving
/// it intact. Provisioned = the directory exists with the marker; running =
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
template <FixedString Role = "">
class LocalDirectory : public detail::ShippedComponent<LocalDirectory<Role>, Role, LocalDirectoryConfig> {
  using Base = detail::ShippedComponent<LocalDirectory<Role>, Role, LocalDirectoryConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "local_directory";
  /// The configuration type (designated initialisers).
  using Config = LocalDirectoryConfig;
  /// The ownership marker's file name, inside the directory.
  static constexpr const char* marker = ".stackup-directory";

  /// A directory with this configuration; a relative path is made absolute now.
  explicit LocalDirectory(Config config) : Base(std::move(config)) {
    if (!config_.path.empty()) config_.path = detail::owned_directory(config_.path);
  }

  /// The directory a stack file's table describes (`flavor =
  /// "local_directory"`, see docs/stack-files.md): `name` and the required
  /// `path`; `restart`, `liveness` and `on_dependency_restart` are errors at
  /// their key (a directory never stops on its own). `Table` is stackup::StackFileTable (<stackup/stack_file.hpp>), or
  /// a type with its interface.
  template <class Table> [[nodiscard]] static LocalDirectory from_table(const Table& t) {
    Config c;
    c.name = t.optional_string("name").value_or("");
    auto p = t.path("path");
    if (!p) t.fail(t.what() + " lacks the required key 'path' (the directory)");
    c.path = std::move(*p);
    detail::refuse_supervision(t, flavor, "it never stops on its own");
    return LocalDirectory(std::move(c));
  }

  // name() (the configured name, or the role) and config() come from Base.

  /// The directory (absolute).
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return config_.path; }
  /// The users whose directories this component may take over (see
  /// LocalDirectoryConfig::users); a stack file sets those its components run as.
  [[nodiscard]] const std::vector<std::string>& users() const noexcept { return config_.users; }
  /// Replaces users().
  void set_users(std::vector<std::string> users) { config_.users = std::move(users); }
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
    // The parent, made if missing and locked: the lock of every action here.
    const px::Fd parent = px::make_parents(config_.path, LOCK_EX, who());
    px::check_parent(parent.get(), config_.path.parent_path(), who(), "create", config_.path);
    const std::string leaf = config_.path.filename().string();
    if (create_marked(parent.get(), leaf)) return;
    if (::mkdirat(parent.get(), leaf.c_str(), 0777) != 0 && errno != EEXIST)
      throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": " + px::sys_message(errno));
    const px::Fd dir = open_dir(parent.get(), leaf, "create");
    if (!dir) throw Error("stackup: " + who() + ": cannot create " + px::quoted(config_.path) + ": it was removed meanwhile");
    check_owner(dir.get(), "take over");
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
    {
      const px::Fd parent = lock_parent();
      if (!parent) return; // no parent, no directory
      const int at = parent.get();
      px::check_parent(at, config_.path.parent_path(), who(), "remove", config_.path);
      const std::string leaf = config_.path.filename().string();
      remove_leftovers(at, leaf);
      // Everything below acts on what is opened here, never on the path again.
      const px::Fd dir = open_dir(at, leaf, "remove");
      if (dir) {
        if (!marked(dir.get()))
          refuse("remove", std::string("it has no stackup marker (") + marker +
                               "), so stackup did not create it: remove it yourself if you mean to");
        const struct stat st = check_owner(dir.get(), "remove");
        if (const auto mount = px::find_mount(dir.get()))
          refuse("remove", px::removal_error(config_.path, mount) + "; nothing was removed");
        // Swap in an empty marked directory; where the file system cannot swap,
        // the directory is removed in place, with the same guarantees.
        const std::string aside = beside(leaf);
        if (make_marked(at, aside, st.st_mode & 07777)) {
          if (!px::rename_entry(at, aside.c_str(), leaf.c_str(), px::Rename::exchange)) {
            (void)remove_marked(at, aside); // still the empty one
          } else if (const auto r = remove_marked(at, aside, &st)) {
            fail_removal(config_.path.parent_path() / aside, r);
          }
        }
        if (const auto r = remove_marked(at, leaf)) fail_removal(config_.path, r);
      }
    } // the parent's lock goes first: removing the parent takes it again
    px::remove_made_parents(config_.path);
  }

private:
  // The contents of `<path>` are removed as `<path>.removing-<pid>`, and a new
  // directory is made under that name before it moves into place.
  static constexpr std::string_view removing = ".removing-";
  static std::string beside(const std::string& leaf) { return leaf + std::string(removing) + std::to_string(::getpid()); }

  using Base::config_;
  using Base::who;

  [[noreturn]] void refuse(std::string_view action, std::string_view why) const {
    throw Error("stackup: " + who() + ": refusing to " + std::string(action) + " " +
                detail::posix::quoted(config_.path) + ": " + std::string(why));
  }
  [[noreturn]] void fail_removal(const std::filesystem::path& where, const detail::posix::Removal& r) const {
    throw Error("stackup: " + who() + ": " + detail::posix::removal_error(where, r) +
                "; what is left keeps stackup's marker, so " + detail::posix::quoted(config_.path) +
                " is still provisioned: remove the cause, then deprovision again (e.g. `down --force`)");
  }

  // The directory `leaf` in `parent`, opened below it (never through a
  // symlink, never onto another mount); empty when it does not exist. Error,
  // naming the reason, for anything else.
  [[nodiscard]] detail::posix::Fd open_dir(int parent, const std::string& leaf, std::string_view action) const {
    using px = detail::posix;
    px::Fd dir = px::open_below(parent, leaf.c_str());
    if (dir) return dir;
    const int e = errno;
    if (e == ENOENT) return {};
    struct stat st{};
    if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
      refuse(action, "it is a symlink; stackup never works through a symlink: configure the real path");
    if (e == ENOTDIR || e == ELOOP) refuse(action, "it exists and is not a directory: remove it or choose another path");
    if (e == EXDEV)
      refuse(action, "it is a mount point; stackup never removes anything on another mount: use a directory "
                     "inside it, or unmount it (umount " + config_.path.string() + ")");
    throw Error("stackup: " + who() + ": cannot open " + px::quoted(config_.path) + ": " + px::sys_message(e));
  }

  // The status of the open directory `dir`; Error when it is another user's
  // that `users` does not name (a home directory, someone's data).
  struct stat check_owner(int dir, std::string_view action) const {
    struct stat st{};
    if (::fstat(dir, &st) != 0)
      throw Error("stackup: " + who() + ": cannot inspect " + detail::posix::quoted(config_.path) + ": " +
                  detail::posix::sys_message(errno));
    if (const std::string why = detail::posix::foreign_owner(st, config_.users); !why.empty())
      refuse(action, why + " (a user the stack runs a component as may be named in `users`)");
    return st;
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
    (void)remove_marked(parent, fresh);
    return false;
  }

  // Removes the marked directory `name` in `parent`, opened below it and
  // checked to carry the marker (and, given `was`, to be that directory): its
  // contents, then the marker, then the directory, so that it carries the
  // proof of ownership until nothing else is left. On failure the marker is
  // still there (written again if the directory itself could not go).
  detail::posix::Removal remove_marked(int parent, const std::string& name, const struct stat* was = nullptr) const {
    using px = detail::posix;
    const px::Fd dir = px::open_below(parent, name.c_str());
    if (!dir) return errno == ENOENT ? px::Removal{} : px::Removal{errno, {}};
    struct stat st{};
    if (!marked(dir.get()) ||
        (was != nullptr && (::fstat(dir.get(), &st) != 0 || st.st_ino != was->st_ino || st.st_dev != was->st_dev)))
      return {ESTALE, {}}; // not what was checked: leave it
    return px::remove_directory_at(parent, name, dir.get(), {std::string_view(marker)},
                                   [this](int d) { (void)write_marker(d); });
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
      if (const auto r = remove_marked(parent, n)) fail_removal(config_.path.parent_path() / n, r);
    }
  }
};

} // namespace stackup
