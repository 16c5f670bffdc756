// stackup — POSIX internals of the shipped components: private state directories with
// flock locks, directories shared with other processes, removal that stays below a
// held directory, and the parents stackup creates.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/paths.hpp>

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixDirectories : PosixPaths<> {

// ---- private state directories ----------------------------------------------------

/// Opens `dir` as a private state directory: a real directory (not a symlink),
/// owned by this user and writable by no one else. Empty when it does not exist;
/// Error, naming the path, the reason and the fix, otherwise.
static Fd open_private_dir(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    const int e = errno;
    if (e == ENOENT) return {};
    struct stat st{};
    if (::lstat(dir.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode))
        throw Error("stackup: state directory " + quoted(dir) +
                    " is a symlink; stackup keeps pid files and locks only in a real directory (a link could be "
                    "redirected): remove the link or configure the real path");
      if (!S_ISDIR(st.st_mode))
        throw Error("stackup: state directory " + quoted(dir) +
                    " exists but is not a directory: remove it or configure another state_dir");
    }
    throw Error("stackup: cannot open state directory " + quoted(dir) + ": " + sys_message(e));
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0)
    throw Error("stackup: cannot stat state directory " + quoted(dir) + ": " + sys_message(errno));
  if (st.st_uid != ::geteuid())
    throw Error("stackup: state directory " + quoted(dir) + " is owned by uid " + std::to_string(st.st_uid) +
                ", not by this user (uid " + std::to_string(::geteuid()) +
                "); another user could forge its pid file: use a directory of your own");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    const auto r = std::to_chars(mode, mode + sizeof mode, st.st_mode & 07777, 8);
    throw Error("stackup: state directory " + quoted(dir) + " is writable by group or others (mode 0" +
                std::string(mode, r.ptr) + "); another user could forge its pid file: run `chmod 700 " +
                dir.string() + "` or configure another state_dir");
  }
  return fd;
}

/// A private state directory, opened and exclusively locked (flock on `lock`
/// inside it). The lock is released when this is destroyed. Empty when the
/// directory does not exist and was not to be created.
struct LockedDir {
  Fd dir;
  Fd lock;
  explicit operator bool() const noexcept { return static_cast<bool>(dir); }
};

/// Opens and locks the private state directory `dir` (creating it with mode 0700
/// when `create`). Blocks while another process or thread holds the lock, then
/// checks the directory was not removed or replaced meanwhile (retrying if so).
static LockedDir lock_private_dir(const std::filesystem::path& dir, bool create) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (create) {
      // Missing parents are made (and marked, to go again with the last
      // directory in them); the directory is made in the parent held, whose
      // shared lock keeps a removal of empty parents from taking it meanwhile.
      const Fd parent = make_parents(dir, LOCK_SH, "state directory " + quoted(dir));
      if (::mkdirat(parent.get(), dir.filename().c_str(), 0700) != 0 && errno != EEXIST)
        throw Error("stackup: cannot create state directory " + quoted(dir) + ": " + sys_message(errno));
    }
    LockedDir l;
    l.dir = open_private_dir(dir);
    if (!l.dir) {
      if (create) continue;
      return {};
    }
    if (create) {
      struct stat st{};
      // mkdir's mode is filtered by the umask; the state directory is exactly 0700.
      if (::fstat(l.dir.get(), &st) == 0 && (st.st_mode & 07777) != 0700 && ::fchmod(l.dir.get(), 0700) != 0)
        throw Error("stackup: cannot set mode 0700 on state directory " + quoted(dir) + ": " + sys_message(errno));
    }
    l.lock = Fd(::openat(l.dir.get(), "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
    if (!l.lock) {
      if (errno == ENOENT) continue; // the directory was removed under us
      throw Error("stackup: cannot open lock file " + quoted(dir / "lock") + ": " + sys_message(errno));
    }
    while (::flock(l.lock.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw Error("stackup: cannot lock " + quoted(dir / "lock") + ": " + sys_message(errno));
    }
    // While we waited, the holder may have removed the directory (deprovision):
    // the lock we hold must be the one at the path now.
    struct stat held{}, linked{}, opened{}, at_path{};
    if (::fstat(l.lock.get(), &held) == 0 && ::fstatat(l.dir.get(), "lock", &linked, AT_SYMLINK_NOFOLLOW) == 0 &&
        ::fstat(l.dir.get(), &opened) == 0 && ::lstat(dir.c_str(), &at_path) == 0 && held.st_ino == linked.st_ino &&
        held.st_dev == linked.st_dev && opened.st_ino == at_path.st_ino && opened.st_dev == at_path.st_dev)
      return l;
  }
  throw Error("stackup: cannot lock state directory " + quoted(dir) +
              ": it keeps being removed or replaced by another process");
}

// ---- directories shared with other processes -------------------------------------

/// Opens the directory `dir` and takes an exclusive flock on it, blocking while
/// another process or thread holds it. The lock lasts as long as the returned
/// descriptor and leaves no file behind. Symlinks in `dir` are followed (it is
/// the parent of what is acted on, not that). If `dir` was replaced while this
/// waited, the directory now at the path is locked instead. Empty when `dir`
/// does not exist; Error when it cannot be opened or locked.
static Fd lock_directory(const std::filesystem::path& dir) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) return {};
      throw Error("stackup: cannot open directory " + quoted(dir) + " to lock it: " + sys_message(errno));
    }
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw Error("stackup: cannot lock directory " + quoted(dir) + ": " + sys_message(errno));
    }
    struct stat held{}, at_path{};
    if (::fstat(fd.get(), &held) == 0 && ::stat(dir.c_str(), &at_path) == 0 && held.st_ino == at_path.st_ino &&
        held.st_dev == at_path.st_dev)
      return fd;
  }
  throw Error("stackup: cannot lock directory " + quoted(dir) + ": it keeps being replaced by another process");
}

/// The names in directory `dirfd` (without "." and ".."), appended to `names`.
/// 0, or the errno of the failure.
static int list_directory(int dirfd, std::vector<std::string>& names) {
  // A descriptor of its own: readdir moves the offset of the one it reads.
  const int own = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) return errno;
  DIR* d = ::fdopendir(own);
  if (d == nullptr) {
    const int e = errno;
    ::close(own);
    return e;
  }
  errno = 0;
  while (const dirent* entry = ::readdir(d)) {
    const std::string_view n = entry->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  const int e = errno;
  ::closedir(d);
  return e;
}

/// Why a removal through descriptors stopped: the errno, and the entry where,
/// relative to the directory it started from (empty: that directory itself).
struct Removal {
  int error = 0;
  std::string where{};
  explicit operator bool() const noexcept { return error != 0; }
};

/// Whether the open directory `child`, an entry of `parent`, is the root of
/// another mount (a bind mount of the same file system too).
static bool is_mount_point(int parent, int child) noexcept {
#if defined(STATX_BASIC_STATS)
  constexpr unsigned int mnt_id = 0x1000U;                // STATX_MNT_ID (Linux 5.8)
  constexpr unsigned long long mount_root = 0x2000ULL;    // STATX_ATTR_MOUNT_ROOT (Linux 5.8)
  struct statx c{}, p{};
  if (::statx(child, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | mnt_id, &c) == 0) {
    if ((c.stx_attributes_mask & mount_root) != 0) return (c.stx_attributes & mount_root) != 0;
    if ((c.stx_mask & mnt_id) != 0 &&
        ::statx(parent, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | mnt_id, &p) == 0 &&
        (p.stx_mask & mnt_id) != 0)
      return c.stx_mnt_id != p.stx_mnt_id;
  }
#endif
  struct stat c_st{}, p_st{}; // older kernels: another file system at least
  return ::fstat(child, &c_st) == 0 && ::fstat(parent, &p_st) == 0 && c_st.st_dev != p_st.st_dev;
}

/// Opens the directory `name` in `dirfd`, never through a symlink (ELOOP or
/// ENOTDIR) and never onto another mount (EXDEV): openat2 with
/// RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH where the kernel has
/// it, else openat(O_NOFOLLOW) and a look at the mount. Empty, errno set, when not.
static Fd open_below(int dirfd, const char* name) {
  constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
#if defined(SYS_openat2)
  struct {
    std::uint64_t flags, mode, resolve;
  } how{static_cast<std::uint64_t>(flags), 0, 0x01U | 0x04U | 0x08U}; // NO_XDEV, NO_SYMLINKS, BENEATH
  const long r = ::syscall(SYS_openat2, dirfd, name, &how, sizeof how);
  if (r >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL && errno != EPERM)) {
    Fd fd(static_cast<int>(r));
    if (fd && is_mount_point(dirfd, fd.get())) { // belt and braces
      errno = EXDEV;
      return {};
    }
    return fd;
  }
#endif
  Fd fd(::openat(dirfd, name, flags));
  if (fd && is_mount_point(dirfd, fd.get())) {
    errno = EXDEV;
    return {};
  }
  return fd;
}

/// The first mount point (a directory or a file another file system, or a bind
/// mount, is mounted on) inside directory `dirfd`, searched through
/// descriptors without following symlinks: looked for before a removal
/// starts, so that one is refused with nothing removed or moved. {EXDEV, its
/// path relative to `dirfd`}, or nothing found.
static Removal find_mount(int dirfd) {
  std::vector<std::string> names;
  if (const int e = list_directory(dirfd, names)) return {e, {}};
  for (const auto& n : names) {
#if defined(STATX_BASIC_STATS)
    constexpr unsigned long long mount_root = 0x2000ULL; // STATX_ATTR_MOUNT_ROOT
    struct statx sx{};
    if (::statx(dirfd, n.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &sx) == 0 &&
        (sx.stx_attributes_mask & mount_root) != 0 && (sx.stx_attributes & mount_root) != 0)
      return {EXDEV, n};
#endif
    struct stat st{};
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    const Fd sub = open_below(dirfd, n.c_str());
    if (!sub) {
      if (errno == EXDEV) return {EXDEV, n};
      continue; // gone meanwhile: the removal itself looks again
    }
    if (Removal r = find_mount(sub.get()); r.error == EXDEV) return {EXDEV, n + "/" + r.where};
  }
  return {};
}

/// Removes everything inside directory `dirfd` but the entries named in
/// `keep`, depth first, through descriptors only: each directory is opened
/// below the one held (open_below), never through a symlink (a link is removed,
/// not what it points to), never onto another mount (a mount point stops the
/// removal, EXDEV, with everything on that mount intact) and never back up.
/// On failure, the errno and the entry; what is left stays as it is.
static Removal remove_contents(int dirfd, std::initializer_list<std::string_view> keep = {}) {
  std::vector<std::string> names;
  if (const int e = list_directory(dirfd, names)) return {e, {}};
  for (const auto& n : names) {
    if (std::find(keep.begin(), keep.end(), n) != keep.end()) continue;
    if (::unlinkat(dirfd, n.c_str(), 0) == 0 || errno == ENOENT) continue;
    const int unlink_error = errno;
    if (unlink_error != EISDIR && unlink_error != EPERM) return {unlink_error, n}; // Linux says EISDIR, POSIX EPERM
    Fd sub = open_below(dirfd, n.c_str());
    if (!sub) return {errno == ENOTDIR || errno == ELOOP ? unlink_error : errno, n};
    if (Removal r = remove_contents(sub.get())) return {r.error, n + "/" + r.where};
    if (::unlinkat(dirfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return {errno, n};
  }
  return {};
}

/// Removes the directory `name` in `parent`, open as `dir` (the caller opened it
/// with open_below and proved it its own): its contents, then the files named
/// in `proofs` in that order (what proves it stackup's goes last, so that a
/// removal cut short leaves something still provably stackup's), then the
/// directory. `restore(dir)` puts the proofs back when the directory could
/// not go after all. Up to `attempts` rounds: a process may add a file just
/// before the directory goes.
template <class Restore>
static Removal remove_directory_at(int parent, const std::string& name, int dir,
                                   std::initializer_list<std::string_view> proofs, Restore&& restore,
                                   int attempts = 3) {
  int e = 0;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (Removal r = remove_contents(dir, proofs)) return r;
    for (const auto proof : proofs)
      if (::unlinkat(dir, std::string(proof).c_str(), 0) != 0 && errno != ENOENT) return {errno, std::string(proof)};
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return {};
    e = errno;
    restore(dir);
    if (e != ENOTEMPTY && e != EEXIST) break;
  }
  return {e, {}};
}

/// The message for a removal of `dir` that stopped at `r`.
static std::string removal_error(const std::filesystem::path& dir, const Removal& r) {
  const auto at = r.where.empty() ? dir : dir / r.where;
  if (r.error == EXDEV)
    return quoted(at) + " is a mount point; stackup never removes anything on another mount: unmount it (umount " +
           at.string() + "), then remove again";
  if (r.error == EBUSY) return quoted(at) + " is in use as a mount point: unmount it (umount " + at.string() + ")";
  return "cannot remove " + quoted(at) + ": " + sys_message(r.error);
}

// ---- parents stackup creates ------------------------------------------------------

/// The extended attribute stackup sets on each parent directory it creates
/// for a component's directory: such a directory goes again once it is empty,
/// so `down` leaves the place as `up` found it. An attribute, not a file: a
/// directory another program empties last is empty, not left holding a
/// marker. Root uses `trusted.`, which only a privileged process can set:
/// anyone who can write a directory can set its `user.` attributes, and a
/// mark another user set must not make root remove a directory it never made.
static constexpr const char* parent_attribute = "user.stackup.parent";
static constexpr const char* trusted_parent_attribute = "trusted.stackup.parent";
static const char* parent_attribute_here() noexcept {
  return ::geteuid() == 0 ? trusted_parent_attribute : parent_attribute;
}

/// Marks the directory `fd` as a parent stackup created; false when the file
/// system keeps no such extended attributes (the directory then stays, as before).
static bool mark_parent(int fd, std::string_view content) noexcept {
  return ::fsetxattr(fd, parent_attribute_here(), content.data(), content.size(), 0) == 0;
}

/// Whether the directory `fd` carries mark_parent's attribute, beginning with marker_prefix.
static bool is_made_parent(int fd) noexcept {
  char buf[512];
  const ssize_t n = ::fgetxattr(fd, parent_attribute_here(), buf, sizeof buf);
  return n >= static_cast<ssize_t>(marker_prefix.size()) && std::string_view(buf, marker_prefix.size()) == marker_prefix;
}

/// Takes a flock on `fd` (LOCK_SH or LOCK_EX); false when the directory was
/// removed meanwhile (no links left).
static bool lock_linked(int fd, int how) {
  while (::flock(fd, how) != 0) {
    if (errno != EINTR) return false;
  }
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_nlink > 0) return true;
  ::flock(fd, LOCK_UN);
  return false;
}

/// Opens the parent of `dir` and locks it (flock `how`), creating the parents
/// that do not exist one level at a time: mkdirat relative to the directory
/// held, never through a symlink, each new one marked (mark_parent).
/// Symlinks in the existing part of the path are followed. A directory that a
/// concurrent removal of empty parents took meanwhile is made again.
static Fd make_parents(const std::filesystem::path& dir, int how, const std::string& who) {
  const auto parent = dir.parent_path();
  for (int attempt = 0; attempt < 64; ++attempt) {
    // The deepest ancestor that exists, and the names below it.
    std::vector<std::string> missing;
    auto at = parent;
    Fd fd;
    while (true) {
      fd = Fd(::open(at.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (fd) break;
      if (errno != ENOENT || !at.has_relative_path())
        throw Error("stackup: " + who + ": cannot open " + quoted(at) + ": " + sys_message(errno));
      missing.push_back(at.filename().string());
      at = at.parent_path();
    }
    bool again = false;
    while (!missing.empty() && !again) {
      const std::string name = std::move(missing.back());
      missing.pop_back();
      if (!lock_linked(fd.get(), LOCK_SH)) {
        again = true;
        break;
      }
      const bool made = ::mkdirat(fd.get(), name.c_str(), 0777) == 0;
      if (!made && errno != EEXIST) {
        const int e = errno;
        throw Error("stackup: " + who + ": cannot create " + quoted(at / name) + ": " + sys_message(e));
      }
      Fd sub(::openat(fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) {
        const int e = errno;
        if (e == ENOENT) {
          again = true;
          break;
        }
        throw Error("stackup: " + who + ": cannot open " + quoted(at / name) + ": " +
                    (e == ELOOP || e == ENOTDIR ? std::string("it is not a directory (a symlink?)") : sys_message(e)));
      }
      if (made) {
        struct stat st{};
        if (::fstat(sub.get(), &st) == 0 && st.st_uid == ::geteuid())
          (void)mark_parent(sub.get(), std::string(marker_prefix) + " as a parent directory of " + dir.string() +
                                           "; it is removed when it is empty");
      }
      ::flock(fd.get(), LOCK_UN);
      fd = std::move(sub);
      at /= name;
    }
    if (again) continue;
    if (lock_linked(fd.get(), how)) return fd;
  }
  throw Error("stackup: " + who + ": cannot create the parents of " + quoted(dir) +
              ": they keep being removed by another process");
}

/// Removes the parents of `dir` that stackup created (marked by mark_parent,
/// this user's, writable by no other user, and empty), deepest first, each
/// by unlinkat(AT_REMOVEDIR) relative to the directory above it, under an
/// exclusive flock so that the last of several components removing their
/// directories from it takes it. Stops quietly at the first that stays.
static void remove_made_parents(const std::filesystem::path& dir) {
  for (auto p = dir.parent_path(); p.has_relative_path(); p = p.parent_path()) {
    const Fd above(::open(p.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!above) return;
    const std::string name = p.filename().string();
    const Fd here(::openat(above.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!here || !lock_linked(here.get(), LOCK_EX)) return;
    struct stat st{};
    std::vector<std::string> names;
    if (::fstat(here.get(), &st) != 0 || st.st_uid != ::geteuid() || list_directory(here.get(), names) != 0 ||
        !names.empty() || !is_made_parent(here.get()) || is_mount_point(above.get(), here.get()))
      return;
    // Anyone who can write a directory can set its `user.` attributes: a mark
    // on a directory others can write may be theirs, not stackup's.
    if (!foreign_writers(st).empty()) return;
    // Only an empty directory goes: anything that arrived meanwhile keeps it.
    if (::unlinkat(above.get(), name.c_str(), AT_REMOVEDIR) != 0) return;
  }
}

/// How rename_entry moves `a` to `b` (the flags of renameat2, from <linux/fs.h>).
enum class Rename : unsigned {
  only_if_free = 1U << 0, ///< RENAME_NOREPLACE: fails (EEXIST) when `b` exists
  exchange = 1U << 1,     ///< RENAME_EXCHANGE: `a` and `b` swap places
};

/// Renames the entry `a` of directory `dirfd` to `b` in one atomic step
/// (renameat2). False, with errno set, when it cannot, also when the kernel or
/// the file system cannot do it that way (EINVAL, ENOSYS).
static bool rename_entry(int dirfd, const char* a, const char* b, Rename how) noexcept {
#if defined(SYS_renameat2)
  return ::syscall(SYS_renameat2, dirfd, a, dirfd, b, static_cast<unsigned>(how)) == 0;
#else
  errno = ENOSYS;
  return false;
#endif
}

}; // struct PosixDirectories

} // namespace stackup::detail
