// Tests of `user` (running a component as another user): what they share.
#pragma once

#include <doctest/doctest.h>

#include <exception>
#include <string>
#include <vector>

#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace users {

// Running as another user needs root: without it, a test says so and stops.
inline bool root_or_skip() {
  if (::geteuid() == 0) return true;
  MESSAGE("skipped: running as another user needs root, and this test runs as uid " << ::geteuid());
  return false;
}

// The name of the user this process runs as, read independently of the library.
inline std::string my_user_name() {
  const passwd* pw = ::getpwuid(::geteuid());
  REQUIRE(pw != nullptr);
  return pw->pw_name;
}

// A user other than root that a test runs a component as, read independently of the library.
struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

// The users a test of `user` tries: nobody (which every machine has), and
// postgres (which has a supplementary group) where this machine has it.
inline std::vector<Account> other_users() {
  REQUIRE(::getpwnam("nobody") != nullptr);
  std::vector<Account> out;
  for (const std::string name : {"nobody", "postgres"}) {
    const passwd* pw = ::getpwnam(name.c_str());
    if (pw == nullptr) {
      MESSAGE("no user " << name << " on this machine: not tried");
      continue;
    }
    out.push_back({name, pw->pw_uid, pw->pw_gid, pw->pw_dir});
  }
  return out;
}

// The user error_without_root runs `f` as: this one, or nobody when this is root.
inline std::string unprivileged_user_name() { return ::geteuid() == 0 ? "nobody" : my_user_name(); }

// What `f` throws (its what(), or "no error") in a process that is not root:
// this one when it is not, else a child that becomes nobody first.
template <class F> std::string error_without_root(F&& f) {
  const auto attempt = [&]() -> std::string {
    try {
      f();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "no error";
  };
  if (::geteuid() != 0) return attempt();
  const passwd* nobody = ::getpwnam("nobody");
  REQUIRE(nobody != nullptr);
  const uid_t uid = nobody->pw_uid;
  const gid_t gid = nobody->pw_gid;
  int p[2];
  REQUIRE(::pipe(p) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(p[0]);
    const bool became = ::setgroups(0, nullptr) == 0 && ::setgid(gid) == 0 && ::setuid(uid) == 0;
    const std::string what = became ? attempt() : "cannot become nobody";
    [[maybe_unused]] const auto n = ::write(p[1], what.data(), what.size());
    ::_exit(0);
  }
  ::close(p[1]);
  std::string message;
  char buf[1024];
  ssize_t n = 0;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  ::waitpid(pid, nullptr, 0);
  return message;
}

} // namespace users
