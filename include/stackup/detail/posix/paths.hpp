// stackup — POSIX internals of the shipped components: paths stackup never takes over:
// home directories, and directories another user can write.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/files.hpp>

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixPaths : PosixFiles<> {

// ---- paths stackup never takes over ---------------------------------------------------

/// Held while walking the user database: getpwent has one cursor per process.
static std::mutex& user_database() {
  static std::mutex m;
  return m;
}

/// A home directory and whose it is.
struct Home {
  std::filesystem::path path;
  std::string owner; ///< "user 'alice'", or "$HOME"
};

/// Every home directory: $HOME, and every user's in the user database — not
/// only the caller's: stackup run as root must not take over anyone's.
static std::vector<Home> home_directories() {
  std::vector<Home> out;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') out.push_back({h, "$HOME"});
  auto add = [&](const passwd& pw) {
    if (pw.pw_dir != nullptr && *pw.pw_dir != '\0')
      out.push_back({pw.pw_dir, "user '" + std::string(pw.pw_name != nullptr ? pw.pw_name : "?") + "'"});
  };
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  {
    const std::lock_guard<std::mutex> hold(user_database());
    ::setpwent();
    while (true) {
      const int r = ::getpwent_r(&pw, buf.data(), buf.size(), &found);
      if (r == ERANGE && buf.size() < (1U << 20)) {
        buf.resize(buf.size() * 2);
        continue;
      }
      if (r != 0 || found == nullptr) break;
      add(*found);
    }
    ::endpwent();
  }
  // A directory service may not list its users: the caller's own, looked up.
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) add(*found);
  return out;
}

/// Why stackup must never create, own or remove `p` as a whole: it is empty,
/// the root directory, a home directory of any user (or $HOME) or a parent of
/// one (symlinks in parents resolved). Empty when `p` is fine.
static std::string forbidden_directory(const std::filesystem::path& p) {
  if (p.empty()) return "the path is empty";
  std::error_code ec;
  const auto real = std::filesystem::weakly_canonical(p, ec);
  const auto& path = ec ? p : real;
  if (path == path.root_path()) return "it is the root directory";
  for (const auto& home : home_directories()) {
    const auto h = std::filesystem::weakly_canonical(home.path, ec);
    if (ec || h == h.root_path()) continue; // a home of "/" is no one's in particular: "/" is refused above
    if (path == h) return "it is the home directory of " + home.owner + " (" + h.string() + ")";
    const auto rel = h.lexically_relative(path);
    if (!rel.empty() && *rel.begin() != "..")
      return "it holds the home directory " + h.string() + " of " + home.owner;
  }
  return {};
}

/// The name of user `uid` ("uid 1234" when it has none).
static std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr && found->pw_name != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(uid);
}

/// Why a directory with status `st` is another user's, which stackup does not
/// take over: empty when it belongs to this user, or to a user named in `users`
/// (the users a stack runs its components as: a data directory owned by
/// postgres is the postgres daemon's).
static std::string foreign_owner(const struct stat& st, const std::vector<std::string>& users) {
  if (st.st_uid == ::geteuid()) return {};
  const std::string owner = user_name(st.st_uid);
  for (const auto& u : users) {
    if (u == owner) return {};
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    uid_t uid = 0;
    const auto r = std::from_chars(u.data(), u.data() + u.size(), uid);
    if ((r.ec == std::errc{} && r.ptr == u.data() + u.size() && uid == st.st_uid) ||
        (::getpwnam_r(u.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
         found->pw_uid == st.st_uid))
      return {};
  }
  return "it is owned by user '" + owner + "', not by this user (" + user_name(::geteuid()) +
         "), and no component of the stack runs as that user: stackup takes over no one else's directory";
}

/// The users other than this one and root that are members of group `gid`
/// (listed in the group, or with it as their primary group).
static std::vector<std::string> group_members(gid_t gid) {
  std::vector<std::string> out;
  const std::string me = user_name(::geteuid());
  auto add = [&](const char* n) {
    if (n == nullptr || *n == '\0' || me == n || std::string_view(n) == "root") return;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.emplace_back(n);
  };
  std::vector<char> buf(16384);
  group gr{};
  group* g = nullptr;
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &g) == 0 && g != nullptr && g->gr_mem != nullptr)
    for (char** m = g->gr_mem; *m != nullptr; ++m) add(*m);
  const std::lock_guard<std::mutex> hold(user_database());
  passwd pw{};
  passwd* found = nullptr;
  ::setpwent();
  while (::getpwent_r(&pw, buf.data(), buf.size(), &found) == 0 && found != nullptr)
    if (found->pw_gid == gid) add(found->pw_name);
  ::endpwent();
  return out;
}

/// Who, besides this user and root, can rename or replace entries in the
/// directory with status `st` — and so swap what stackup checked for a symlink
/// before it acts. Empty when no one: owned by this user or root, and writable
/// by no one else (or sticky, like /tmp: then only an entry's owner can move it).
static std::string foreign_writers(const struct stat& st) {
  std::string who;
  if (st.st_uid != ::geteuid() && st.st_uid != 0) who = "user '" + user_name(st.st_uid) + "' (its owner)";
  if ((st.st_mode & S_ISVTX) != 0) return who;
  auto also = [&](const std::string& w) { who += (who.empty() ? "" : " and ") + w; };
  if ((st.st_mode & S_IWOTH) != 0) {
    also("every user (it is writable by others and not sticky)");
    return who;
  }
  if ((st.st_mode & S_IWGRP) != 0) {
    const auto members = group_members(st.st_gid);
    if (!members.empty()) {
      std::vector<char> buf(16384);
      group gr{};
      group* g = nullptr;
      std::string name = ::getgrgid_r(st.st_gid, &gr, buf.data(), buf.size(), &g) == 0 && g != nullptr
                             ? std::string(g->gr_name)
                             : "gid " + std::to_string(st.st_gid);
      std::string list;
      for (const auto& m : members) list += (list.empty() ? "" : ", ") + m;
      also("the members of group '" + name + "' (" + list + ")");
    }
  }
  return who;
}

/// Error unless the directory `dirfd` (shown as `dir`, the parent of what
/// `who` is about to `action`) can be changed by no other user: one who can
/// rename entries in it could swap the checked directory for a symlink to
/// anything between the check and the action.
static void check_parent(int dirfd, const std::filesystem::path& dir, const std::string& who, std::string_view action,
                         const std::filesystem::path& target) {
  struct stat st{};
  if (::fstat(dirfd, &st) != 0)
    throw Error("stackup: " + who + ": cannot inspect " + quoted(dir) + ": " + sys_message(errno));
  if (const std::string writers = foreign_writers(st); !writers.empty())
    throw Error("stackup: " + who + ": refusing to " + std::string(action) + " " + quoted(target) +
                ": its parent directory " + quoted(dir) + " can be changed by " + writers +
                ", who could swap it for a symlink to another directory between stackup's check and its action: "
                "use a path whose parent only you (or root) can write, or make the parent sticky (chmod +t)");
  // The directories above count too: one that another user can write lets
  // them swap the parent itself for a symlink (to another stack's directory
  // of the same name) before it is opened. Both the path as given and the
  // path its symlinks lead to are looked at.
  std::vector<std::filesystem::path> above;
  for (auto a = dir; a.has_relative_path() && a.has_parent_path();) above.push_back(a = a.parent_path());
  std::error_code ec;
  if (const auto real = std::filesystem::weakly_canonical(dir, ec); !ec)
    for (auto a = real; a.has_relative_path() && a.has_parent_path();) above.push_back(a = a.parent_path());
  for (const auto& a : above) {
    struct stat ast{};
    if (::stat(a.c_str(), &ast) != 0) continue;
    if (const std::string writers = foreign_writers(ast); !writers.empty())
      throw Error("stackup: " + who + ": refusing to " + std::string(action) + " " + quoted(target) +
                  ": the directory " + quoted(a) + " above it can be changed by " + writers +
                  ", who could move the parent directory " + quoted(dir) +
                  " away and put a symlink to another directory in its place: use a path whose every directory "
                  "only you (or root) can write, or make that directory sticky (chmod +t)");
  }
}

}; // struct PosixPaths

} // namespace stackup::detail
