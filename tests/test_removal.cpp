// Removal only of what was proved stackup's, through what was opened: a
// directory swapped for a symlink, a bind mount inside, a parent another user
// can write, another user's home or directory, and the parents a provision made.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/users.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Daemon = stackup::LocalDaemon<"orchestrator">;
using Dir = stackup::LocalDirectory<"artifact_store">;
using files::TempDir;
using messages::contains;
using messages::error_of;

// `n` files in `dir` (made, root's): what must survive.
void fill(const fs::path& dir, int n) {
  fs::create_directories(dir);
  for (int i = 0; i < n; ++i) std::ofstream(dir / ("file-" + std::to_string(i))) << "precious " << i;
}

int count_files(const fs::path& dir) {
  std::error_code ec;
  int n = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    n += it->is_regular_file() ? 1 : 0;
  return n;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A bind mount of `from` on `on`, unmounted (lazily) when this goes.
struct BindMount {
  fs::path on;
  bool mounted = false;
  BindMount(const fs::path& from, const fs::path& target) : on(target) {
    mounted = ::mount(from.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) == 0;
    if (!mounted) MESSAGE("skipped: cannot bind-mount here (" << std::system_category().message(errno) << ")");
  }
  void unmount() {
    if (mounted) ::umount2(on.c_str(), MNT_DETACH);
    mounted = false;
  }
  ~BindMount() { unmount(); }
  BindMount(const BindMount&) = delete;
  BindMount& operator=(const BindMount&) = delete;
};

struct Nobody {
  uid_t uid;
  gid_t gid;
};
Nobody nobody() {
  const passwd* pw = ::getpwnam("nobody");
  REQUIRE(pw != nullptr);
  return {pw->pw_uid, pw->pw_gid};
}

// A child process running as nobody that swaps `state` for a symlink to
// `victim` and back, as fast as it can, until it is killed.
pid_t swap_as_nobody(const fs::path& state, const fs::path& victim) {
  const auto who = nobody();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid != 0) return pid;
  if (::setgroups(0, nullptr) != 0 || ::setgid(who.gid) != 0 || ::setuid(who.uid) != 0) ::_exit(3);
  const std::string moved = state.string() + ".moved";
  for (long i = 0; i < 2000000; ++i) {
    if (::rename(state.c_str(), moved.c_str()) != 0) continue;
    (void)::symlink(victim.c_str(), state.c_str());
    ::sched_yield(); // let the symlink stand for a moment
    ::unlink(state.c_str());
    ::rename(moved.c_str(), state.c_str());
  }
  ::_exit(0);
}

void stop_child(pid_t pid) {
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

} // namespace

TEST_CASE("removal: another user swapping the state directory for a symlink makes root delete nothing outside it") {
  if (!users::root_or_skip()) return;
  TempDir t{"removal"};
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  const fs::path victim = t.path / "victim"; // root's, not writable by nobody
  fill(victim, 50);
  // A project directory nobody can write through its group (not sticky).
  const fs::path shared = t.path / "shared";
  fs::create_directory(shared);
  REQUIRE(::chown(shared.c_str(), 0, nobody().gid) == 0);
  const fs::path state = shared / "db";
  // A running daemon: stopping it is the window between the check and the removal.
  Daemon d{{.command = {"/bin/sleep", "60"}, .state_dir = state, .stop_timeout = std::chrono::seconds(5)}};

  // Refused while the parent is writable by another user, naming who.
  REQUIRE(::chmod(shared.c_str(), 0770) == 0);
  const std::string refused = error_of([&] { d.provision(); });
  CAPTURE(refused);
  CHECK(contains(refused, "group 'nogroup' ("));
  CHECK(contains(refused, "nobody"));
  CHECK(contains(refused, "parent directory"));
  CHECK_FALSE(fs::exists(state));

  int deleted = 0;
  int round = 0;
  for (; round < 30 && deleted == 0; ++round) {
    REQUIRE(::chmod(shared.c_str(), 0700) == 0); // provisioned and started while only root could write it
    if (!fs::exists(state)) d.provision();
    d.resume();
    REQUIRE(::chmod(shared.c_str(), 0770) == 0);
    const pid_t swapper = swap_as_nobody(state, victim);
    for (int k = 0; k < 20; ++k) (void)error_of([&] { d.deprovision(); });
    stop_child(swapper);
    // Put back what the swapper was holding, if anything.
    if (fs::is_symlink(state)) fs::remove(state);
    if (fs::exists(state.string() + ".moved")) fs::rename(state.string() + ".moved", state);
    for (const auto& e : entries(shared))
      if (fs::is_symlink(shared / e)) fs::remove(shared / e);
    deleted = 50 - count_files(victim);
  }
  CAPTURE(round);
  CHECK(deleted == 0);
  CHECK(count_files(victim) == 50);
  REQUIRE(::chmod(shared.c_str(), 0700) == 0);
  CHECK(error_of([&] { d.deprovision(); }).empty());
  CHECK(entries(shared).empty());
}

TEST_CASE("removal: a state directory swapped for a symlink during deprovision is not followed") {
  // The parent is root's alone here (allowed); the swap stands for whatever
  // replaces the directory between the check and the removal.
  if (!users::root_or_skip()) return;
  TempDir t{"removal"};
  const fs::path victim = t.path / "victim";
  fill(victim, 50);
  const fs::path state = t.path / "project" / "db";
  Daemon d{{.command = {"/bin/true"}, .state_dir = state}};
  const std::string moved = state.string() + ".moved";
  int round = 0;
  for (; round < 200 && count_files(victim) == 50; ++round) {
    std::error_code ec;
    if (!fs::exists(state)) d.provision();
    fill(state / "data", 3);
    std::atomic<bool> stop{false};
    std::thread swapper([&] {
      while (!stop) {
        if (::rename(state.c_str(), moved.c_str()) != 0) continue;
        (void)::symlink(victim.c_str(), state.c_str());
        std::this_thread::yield();
        ::unlink(state.c_str());
        ::rename(moved.c_str(), state.c_str());
      }
    });
    (void)error_of([&] { d.deprovision(); });
    stop = true;
    swapper.join();
    for (const auto& e : entries(state.parent_path()))
      if (fs::is_symlink(state.parent_path() / e)) fs::remove(state.parent_path() / e);
    if (fs::exists(moved) && !fs::exists(state)) fs::rename(moved, state);
  }
  CAPTURE(round);
  CHECK(count_files(victim) == 50);
}

TEST_CASE("removal: a bind mount inside a local_directory or a state directory stops the removal, intact") {
  if (!users::root_or_skip()) return;
  TempDir t{"removal"};
  const fs::path outside = t.path / "outside";
  fill(outside, 20);
  SUBCASE("local_directory") {
    const fs::path where = t.path / "data";
    Dir dir{{.path = where}};
    dir.provision();
    fill(where / "junk", 3);
    fs::create_directories(where / "sub" / "mnt");
    BindMount m(outside, where / "sub" / "mnt");
    if (!m.mounted) return;
    const std::string message = error_of([&] { dir.deprovision(); });
    CAPTURE(message);
    CHECK(contains(message, "mount point"));
    CHECK(contains(message, "umount " + (where / "sub" / "mnt").string()));
    CHECK(count_files(outside) == 20);
    CHECK(count_files(where / "sub" / "mnt") == 20); // still mounted, all there
    m.unmount();
    CHECK(error_of([&] { dir.deprovision(); }).empty());
    CHECK_FALSE(fs::exists(where));
    CHECK(count_files(outside) == 20);
  }
  SUBCASE("the local_directory itself is a mount point") {
    const fs::path where = t.path / "mounted";
    fs::create_directory(where);
    BindMount m(outside, where);
    if (!m.mounted) return;
    Dir dir{{.path = where}};
    CHECK(contains(error_of([&] { dir.provision(); }), "mount point"));
    CHECK(count_files(outside) == 20);
  }
  SUBCASE("state directory") {
    const fs::path state = t.path / "state";
    Daemon d{{.command = {"/bin/true"}, .state_dir = state}};
    d.provision();
    fs::create_directories(state / "cache");
    BindMount m(outside, state / "cache");
    if (!m.mounted) return;
    const std::string message = error_of([&] { d.deprovision(); });
    CAPTURE(message);
    CHECK(contains(message, "mount point"));
    CHECK(contains(message, "umount "));
    CHECK(count_files(outside) == 20);
    m.unmount();
    CHECK(fs::is_directory(state / "cache")); // nothing moved, nothing removed
    CHECK(error_of([&] { d.deprovision(); }).empty());
    CHECK(entries(t.path) == std::vector<std::string>{"outside"});
    CHECK(count_files(outside) == 20);
  }
}

TEST_CASE("removal: a path whose parent another user can write is refused, naming who; a sticky parent is fine") {
  if (!users::root_or_skip()) return;
  TempDir t{"removal"};
  const fs::path parent = t.path / "parent";
  fs::create_directory(parent);
  auto both = [&](const std::string& what) {
    CAPTURE(what);
    Dir dir{{.path = parent / "data"}};
    Daemon d{{.command = {"/bin/true"}, .state_dir = parent / "db"}};
    for (const auto& message : {error_of([&] { dir.provision(); }), error_of([&] { dir.deprovision(); }),
                                error_of([&] { d.provision(); }), error_of([&] { d.deprovision(); })}) {
      CAPTURE(message);
      CHECK(contains(message, what));
      CHECK(contains(message, "refusing"));
    }
    CHECK(entries(parent).empty());
  };
  SUBCASE("owned by another user") {
    REQUIRE(::chown(parent.c_str(), nobody().uid, 0) == 0);
    REQUIRE(::chmod(parent.c_str(), 0755) == 0);
    both("user 'nobody' (its owner)");
  }
  SUBCASE("writable by everyone, not sticky") {
    REQUIRE(::chmod(parent.c_str(), 0777) == 0);
    both("every user");
  }
  SUBCASE("writable by a group with another member") {
    REQUIRE(::chown(parent.c_str(), 0, nobody().gid) == 0);
    REQUIRE(::chmod(parent.c_str(), 0775) == 0);
    both("group 'nogroup' (");
  }
  SUBCASE("sticky and writable by everyone, like /tmp: fine") {
    REQUIRE(::chmod(parent.c_str(), 01777) == 0);
    Dir dir{{.path = parent / "data"}};
    Daemon d{{.command = {"/bin/true"}, .state_dir = parent / "db"}};
    dir.provision();
    d.provision();
    CHECK(dir.is_provisioned());
    CHECK(d.is_provisioned());
    dir.deprovision();
    d.deprovision();
    CHECK(entries(parent).empty());
  }
}

TEST_CASE("removal: no user's home directory, and no directory of another user unless the stack runs as that user") {
  if (!users::root_or_skip()) return;
  TempDir t{"removal"};
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  SUBCASE("an ordinary user's empty home directory") {
    const fs::path skel = t.path / "skel";
    fs::create_directory(skel);
    fs::create_directory(t.path / "home");
    const fs::path home = t.path / "home" / "stackup-rmtest";
    const std::string name = "stackup-rmtest";
    const std::string add = "useradd -m -k " + skel.string() + " -d " + home.string() + " " + name + " 2>&1";
    if (std::system(add.c_str()) != 0) {
      MESSAGE("skipped: cannot add a user here (useradd failed)");
      return;
    }
    struct Remove {
      std::string name;
      ~Remove() { (void)std::system(("userdel " + name + " >/dev/null 2>&1").c_str()); }
    } remove{name};
    REQUIRE(fs::is_directory(home));
    REQUIRE(entries(home).empty());
    for (const auto& users : {std::vector<std::string>{}, std::vector<std::string>{name}}) {
      Dir dir{{.path = home, .users = users}};
      const std::string message = error_of([&] { dir.provision(); });
      CAPTURE(message);
      CHECK(contains(message, "home directory of user '" + name + "'"));
      CHECK(contains(error_of([&] { dir.deprovision(); }), "home directory of user '" + name + "'"));
      CHECK(contains(error_of([&] { Dir{{.path = home.parent_path()}}.provision(); }), "holds the home directory"));
    }
    CHECK(fs::is_directory(home));
    CHECK(entries(home).empty()); // no marker written
  }
  SUBCASE("nobody's home") {
    const passwd* pw = ::getpwnam("nobody");
    REQUIRE(pw != nullptr);
    const fs::path home = pw->pw_dir;
    const bool existed = fs::exists(home);
    const std::string message = error_of([&] { Dir{{.path = home}}.provision(); });
    CAPTURE(message);
    CHECK(contains(message, "it is the home directory of user '")); // nobody's, and maybe others' too
    CHECK(contains(message, "(" + home.string() + ")"));
    CHECK(fs::exists(home) == existed);
    if (!existed) {
      std::error_code ec;
      fs::remove(home, ec);
    }
  }
  SUBCASE("another user's directory: refused, unless that user is named") {
    const fs::path where = t.path / "pgdata";
    fs::create_directory(where);
    REQUIRE(::chown(where.c_str(), nobody().uid, nobody().gid) == 0);
    const std::string message = error_of([&] { Dir{{.path = where}}.provision(); });
    CAPTURE(message);
    CHECK(contains(message, "owned by user 'nobody'"));
    CHECK(entries(where).empty());
    Dir dir{{.path = where, .users = {"nobody"}}};
    dir.provision();
    CHECK(dir.is_provisioned());
    CHECK(contains(error_of([&] { Dir{{.path = where}}.deprovision(); }), "owned by user 'nobody'"));
    CHECK(fs::exists(where));
    dir.deprovision();
    CHECK_FALSE(fs::exists(where));
  }
}

TEST_CASE("removal: parents a provision made go with the last directory in them; others stay") {
  TempDir t{"removal"};
  const fs::path project = t.path / "project";
  fs::create_directory(project);
  fill(project / "src", 2);
  SUBCASE("a daemon and a directory under one new .stackup, down in either order") {
    for (const bool daemon_first : {true, false}) {
      CAPTURE(daemon_first);
      Daemon d{{.command = {"/bin/true"}, .state_dir = project / ".stackup" / "web"}};
      Dir dir{{.path = project / ".stackup" / "artifacts" / "store"}};
      d.provision();
      dir.provision();
      CHECK(entries(project / ".stackup") == std::vector<std::string>{"artifacts", "web"});
      if (daemon_first) d.deprovision();
      dir.deprovision();
      if (!daemon_first) d.deprovision();
      CHECK(entries(project) == std::vector<std::string>{"src"});
    }
  }
  SUBCASE("threads provisioning and deprovisioning under one new parent") {
    std::vector<std::thread> racers;
    for (int i = 0; i < 4; ++i) {
      racers.emplace_back([&, i] {
        Daemon d{{.command = {"/bin/true"}, .state_dir = project / ".stackup" / ("d" + std::to_string(i))}};
        for (int k = 0; k < 20; ++k) {
          d.provision();
          d.deprovision();
        }
      });
    }
    for (auto& r : racers) r.join();
    CHECK(entries(project) == std::vector<std::string>{"src"});
  }
  SUBCASE("a parent that existed, or that holds something else, stays") {
    fs::create_directory(project / ".stackup");
    Daemon d{{.command = {"/bin/true"}, .state_dir = project / ".stackup" / "web"}};
    d.provision();
    d.deprovision();
    CHECK(entries(project / ".stackup").empty());
    Dir dir{{.path = project / "made" / "store"}};
    dir.provision();
    std::ofstream(project / "made" / "notes") << "mine";
    dir.deprovision();
    CHECK(entries(project / "made") == std::vector<std::string>{"notes"});
  }
}

TEST_CASE("removal: a parent another user marked as made by stackup stays") {
  if (!users::root_or_skip()) return;
  TempDir t{"removal"};
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  // Root's directory, which nobody could once write through its group: and so
  // set `user.` extended attributes on, such as the one marking a made parent.
  const fs::path shared = t.path / "shared";
  fs::create_directory(shared);
  REQUIRE(::chown(shared.c_str(), 0, nobody().gid) == 0);
  REQUIRE(::chmod(shared.c_str(), 0775) == 0);
  const std::string forged = users::error_without_root([&] {
    const std::string mark = "created by stackup as a parent directory; it is removed when it is empty";
    if (::setxattr(shared.c_str(), "user.stackup.parent", mark.data(), mark.size(), 0) != 0)
      throw std::system_error(errno, std::system_category(), "setxattr");
  });
  if (forged != "no error") {
    MESSAGE("skipped: another user cannot set the attribute here (" << forged << ")");
    return;
  }
  // Then only root can write it: the mark stays, and it is still not stackup's.
  REQUIRE(::chmod(shared.c_str(), 0755) == 0);
  SUBCASE("local_directory") {
    Dir dir{{.path = shared / "made" / "store"}};
    dir.provision();
    dir.deprovision();
  }
  SUBCASE("local_daemon") {
    Daemon d{{.command = {"/bin/true"}, .state_dir = shared / "made" / "db"}};
    d.provision();
    d.deprovision();
  }
  CHECK(fs::is_directory(shared)); // not made by stackup: root must not remove it
  CHECK(entries(shared).empty());  // what stackup made did go
}

TEST_CASE("removal: a directory above the parent that another user can write is refused: the parent could be swapped") {
  if (!users::root_or_skip()) return;
  TempDir t{"removal"};
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  // Another stack's data, root's and marked as stackup's: what must survive.
  const fs::path other = t.path / "other";
  fs::create_directory(other);
  Dir victim{{.path = other / "store"}};
  victim.provision();
  fill(other / "store", 20);
  const int before = count_files(other / "store"); // and the marker
  // This stack's directory, in a parent stackup made (root's, 0755) inside a
  // directory nobody can write through its group.
  const fs::path shared = t.path / "shared";
  fs::create_directory(shared);
  REQUIRE(::chown(shared.c_str(), 0, nobody().gid) == 0);
  REQUIRE(::chmod(shared.c_str(), 0700) == 0);
  Dir dir{{.path = shared / "made" / "store"}};
  dir.provision(); // while only root could write `shared`
  REQUIRE(::chmod(shared.c_str(), 0770) == 0);
  // Nobody moves the parent away and puts a symlink to the other stack's in its place.
  const std::string swapped = users::error_without_root([&] {
    if (::rename((shared / "made").c_str(), (shared / "made.moved").c_str()) != 0 ||
        ::symlink(other.c_str(), (shared / "made").c_str()) != 0)
      throw std::system_error(errno, std::system_category(), "swap");
  });
  REQUIRE(swapped == "no error");
  const std::string message = error_of([&] { dir.deprovision(); });
  CAPTURE(message);
  CHECK(count_files(other / "store") == before);
  CHECK(victim.is_provisioned());
  CHECK(contains(message, "refusing"));
  CHECK(contains(message, shared.string()));
  CHECK(contains(message, "group 'nogroup' ("));
  // The same for a state directory, and for a provision.
  Daemon d{{.command = {"/bin/true"}, .state_dir = shared / "made" / "db"}};
  CHECK(contains(error_of([&] { d.provision(); }), "group 'nogroup' ("));
  CHECK_FALSE(fs::exists(other / "db"));
  CHECK(contains(error_of([&] { d.deprovision(); }), "group 'nogroup' ("));
  // Put back, and made private again: it all goes.
  fs::remove(shared / "made");
  fs::rename(shared / "made.moved", shared / "made");
  REQUIRE(::chmod(shared.c_str(), 0700) == 0);
  dir.deprovision();
  CHECK(entries(shared).empty());
  victim.deprovision();
}
