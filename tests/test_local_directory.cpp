// LocalDirectory on the real file system: create, remove, and every refusal.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/processes.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Dir = stackup::LocalDirectory<"artifact_store">;

static_assert(stackup::Provisionable<Dir> && stackup::Deprovisionable<Dir>);
static_assert(!stackup::Resumable<Dir> && !stackup::Suspendable<Dir>, "no resume/suspend: the stack skips them");
static_assert(std::is_move_constructible_v<Dir>);

using files::TempDir;
using messages::contains;
using messages::error_of;

void touch(const fs::path& p) { std::ofstream(p) << "data\n"; }

// A directory worth removing: `files` files in a few subdirectories.
void fill(const fs::path& dir, int files) {
  for (int i = 0; i < files; ++i) {
    const fs::path sub = dir / ("run-" + std::to_string(i % 8));
    fs::create_directories(sub);
    touch(sub / ("artifact-" + std::to_string(i)));
  }
}

// Everything in `dir`, recursively, as sorted relative paths.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    out.push_back(it->path().lexically_relative(dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// While alive, this thread runs without its effective capabilities, so that
// file permissions hold for root too: the only portable way, as root or not, to
// make a removal fail half-way at a chosen place. (Capabilities set by the raw
// system call are per thread.)
class WithoutPrivileges {
public:
  WithoutPrivileges() {
    REQUIRE(::syscall(SYS_capget, &header_, saved_) == 0);
    __user_cap_data_struct none[2] = {saved_[0], saved_[1]};
    none[0].effective = none[1].effective = 0;
    REQUIRE(::syscall(SYS_capset, &header_, none) == 0);
  }
  ~WithoutPrivileges() { ::syscall(SYS_capset, &header_, saved_); }
  WithoutPrivileges(const WithoutPrivileges&) = delete;
  WithoutPrivileges& operator=(const WithoutPrivileges&) = delete;

private:
  __user_cap_header_struct header_{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct saved_[2]{};
};

// Whether a process waits in flock() for a lock on the file with inode `ino`
// (a "->" line of /proc/locks).
bool flock_waiter_on(ino_t ino) {
  std::ifstream locks("/proc/locks");
  const std::string needle = ":" + std::to_string(ino) + " ";
  for (std::string line; std::getline(locks, line);)
    if (contains(line, "->") && contains(line, "FLOCK") && contains(line, needle)) return true;
  return false;
}

} // namespace

TEST_CASE("local_directory: up creates it with parents and a marker, down --force removes it") {
  TempDir t{"directory"};
  const fs::path where = t.path / "a" / "b" / "artifacts";
  stackup::Stack s{"local", Dir{{.name = "artifacts", .path = where}}};
  auto& dir = s.get<"artifact_store">();
  CHECK(dir.name() == "artifacts");
  CHECK(dir.path() == where);
  CHECK_FALSE(dir.is_provisioned());
  CHECK_FALSE(dir.is_running());

  s.up();
  CHECK(fs::is_directory(where));
  CHECK(fs::is_regular_file(where / Dir::marker));
  CHECK(dir.is_provisioned());
  CHECK(dir.is_running());
  const auto status = s.status();
  CHECK(status[0].flavor == "local_directory");
  CHECK(status[0].detail == where.string());
  CHECK(status[0].state == stackup::State::running);

  touch(where / "model.bin");
  fs::create_directory(where / "nested");
  touch(where / "nested" / "weights");
  s.down(); // no suspend: the directory stays
  CHECK(fs::exists(where / "model.bin"));
  s.up(); // already there: nothing happens
  CHECK(fs::exists(where / "model.bin"));

  s.down({.force = true});
  CHECK_FALSE(fs::exists(where));
  CHECK_FALSE(fs::exists(t.path / "a")); // the parents it made went with it: as up found it
  CHECK(fs::is_directory(t.path));
  s.down({.force = true}); // nothing left to do
}

TEST_CASE("local_directory: a relative path is made absolute at construction") {
  TempDir t{"directory"};
  const auto old = fs::current_path();
  fs::current_path(t.path);
  Dir d{{.path = "rel/store/"}};
  fs::current_path(old);
  CHECK(d.path() == t.path / "rel" / "store");
  CHECK(d.name() == "artifact_store");
  d.provision();
  CHECK(fs::is_directory(t.path / "rel" / "store"));
  d.deprovision();
  CHECK_FALSE(fs::exists(t.path / "rel" / "store"));
}

TEST_CASE("local_directory: an empty existing directory is adopted, a full one without marker is refused") {
  TempDir t{"directory"};
  const fs::path empty = t.path / "empty";
  fs::create_directory(empty);
  Dir adopt{{.path = empty}};
  CHECK_FALSE(adopt.is_provisioned());
  adopt.provision();
  CHECK(adopt.is_provisioned());

  const fs::path full = t.path / "full";
  fs::create_directory(full);
  touch(full / "precious");
  Dir foreign{{.path = full}};
  const std::string message = error_of([&] { foreign.provision(); });
  CHECK(contains(message, full.string()));
  CHECK(contains(message, "not empty and has no stackup marker"));
  CHECK_FALSE(fs::exists(full / Dir::marker));
}

TEST_CASE("local_directory: deprovision refuses a directory without the marker") {
  TempDir t{"directory"};
  const fs::path where = t.path / "users-data";
  fs::create_directory(where);
  touch(where / "precious");
  Dir d{{.path = where}};
  const std::string message = error_of([&] { d.deprovision(); });
  CHECK(contains(message, where.string()));
  CHECK(contains(message, "no stackup marker"));
  CHECK(fs::exists(where / "precious"));

  // The stack does not even try: without the marker it is not provisioned.
  stackup::Stack s{"local", Dir{{.path = where}}};
  s.down({.force = true});
  CHECK(fs::exists(where / "precious"));
}

TEST_CASE("local_directory: a symlink is never created through nor removed") {
  TempDir t{"directory"};
  const fs::path target = t.path / "target";
  Dir real{{.path = target}};
  real.provision();
  touch(target / "precious");
  const fs::path link = t.path / "link";
  fs::create_directory_symlink(target, link);

  Dir via_link{{.path = link}};
  CHECK_FALSE(via_link.is_provisioned()); // never looked at through the link
  const std::string removing = error_of([&] { via_link.deprovision(); });
  CHECK(contains(removing, link.string()));
  CHECK(contains(removing, "symlink"));
  CHECK(contains(error_of([&] { via_link.provision(); }), "symlink"));
  CHECK(fs::is_symlink(link));
  CHECK(fs::exists(target / "precious"));

  const fs::path file = t.path / "file";
  touch(file);
  Dir on_file{{.path = file}};
  CHECK(contains(error_of([&] { on_file.provision(); }), "not a directory"));
  CHECK(fs::is_regular_file(file));
}

TEST_CASE("local_directory: never /, an empty path, the home directory or a parent of it") {
  CHECK(contains(error_of([] { Dir{{.path = "/"}}.deprovision(); }), "root directory"));
  CHECK(contains(error_of([] { Dir{{.path = "/tmp/.."}}.deprovision(); }), "root directory"));
  CHECK(contains(error_of([] { Dir{{.path = ""}}.deprovision(); }), "path is empty"));
  CHECK(contains(error_of([] { Dir{{.path = ""}}.provision(); }), "path is empty"));

  TempDir t{"directory"};
  const fs::path home = t.path / "home" / "someone";
  fs::create_directories(home);
  const char* old = std::getenv("HOME");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("HOME", home.c_str(), 1);
  Dir at_home{{.path = home}};
  // Even with a marker planted in it.
  std::ofstream(home / Dir::marker) << "forged\n";
  const std::string message = error_of([&] { at_home.deprovision(); });
  Dir above_home{{.path = t.path / "home"}};
  const std::string above = error_of([&] { above_home.deprovision(); });
  if (old != nullptr) ::setenv("HOME", saved.c_str(), 1);
  else ::unsetenv("HOME");
  CHECK(contains(message, "home directory"));
  CHECK(contains(above, "holds the home directory"));
  CHECK(fs::is_directory(home));
}

TEST_CASE("local_directory: processes provisioning the same directory at the same moment all succeed") {
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    TempDir t{"directory"};
    const fs::path where = t.path / "shared" / "store";
    processes::race(4, [&](int, const auto& go) {
      Dir d{{.path = where}};
      go();
      d.provision();
      return d.is_provisioned() ? 0 : 2;
    });
    CHECK(Dir{{.path = where}}.is_provisioned());
  }
}

TEST_CASE("local_directory: a removal that fails half-way leaves it provisioned; deprovisioning again finishes") {
  TempDir t{"directory"};
  const fs::path parent = t.path / "parent";
  const fs::path where = parent / "artifacts";
  stackup::Stack s{"local", Dir{{.name = "artifacts", .path = where}}};
  auto& dir = s.get<"artifact_store">();
  s.up();
  fill(where, 20);

  SUBCASE("the directory itself cannot go (its parent is read-only): it keeps its marker") {
    fs::permissions(parent, fs::perms::owner_read | fs::perms::owner_exec);
    std::string message;
    {
      WithoutPrivileges unprivileged;
      message = error_of([&] { dir.deprovision(); });
    }
    fs::permissions(parent, fs::perms::owner_all);
    CHECK(contains(message, "cannot remove '" + where.string() + "'"));
    CHECK(contains(message, "still provisioned"));
    CHECK(fs::is_regular_file(where / Dir::marker));
  }
  SUBCASE("something in it cannot go (a read-only subdirectory): what is left keeps the marker") {
    fs::permissions(where / "run-3", fs::perms::owner_read | fs::perms::owner_exec);
    std::string message;
    {
      WithoutPrivileges unprivileged;
      message = error_of([&] { dir.deprovision(); });
    }
    CHECK(contains(message, "cannot remove '" + where.string()));
    CHECK(contains(message, "Permission denied"));
    CHECK(contains(message, "still provisioned"));
    // Wherever what is left now is (moved aside or not), it carries the marker.
    for (const auto& entry : fs::directory_iterator(parent)) {
      CAPTURE(entry.path());
      CHECK(fs::is_regular_file(entry.path() / Dir::marker));
      if (fs::exists(entry.path() / "run-3")) fs::permissions(entry.path() / "run-3", fs::perms::owner_all);
    }
  }
  // Still provisioned: status says so, up does not refuse it, and down --force finishes the job.
  CHECK(dir.is_provisioned());
  CHECK(s.status()[0].state == stackup::State::running);
  s.up();
  s.down({.force = true});
  CHECK_FALSE(fs::exists(where));
  CHECK(tree(parent).empty()); // nothing moved aside is left, and the lock left no file
}

TEST_CASE("local_directory: what a killed deprovision or provision left beside the directory is removed by the next down --force") {
  TempDir t{"directory"};
  const fs::path parent = t.path / "parent";
  const fs::path where = parent / "artifacts";
  stackup::Stack s{"local", Dir{{.name = "artifacts", .path = where}}};
  s.up(); // the empty marked directory a deprovision swaps in first
  // The contents it had swapped out, marked, half-removed when it was killed.
  const fs::path aside = parent / "artifacts.removing-4194000";
  Dir{{.path = aside}}.provision();
  fill(aside, 30);
  // Look-alikes that are not stackup's (no marker, not a directory, a symlink,
  // another name) and a marked directory elsewhere: all stay as they are.
  const fs::path elsewhere = t.path / "elsewhere";
  Dir{{.path = elsewhere}}.provision();
  touch(elsewhere / "precious");
  fs::create_directory(parent / "artifacts.removing-77");
  touch(parent / "artifacts.removing-77" / "precious");
  touch(parent / "artifacts.removing-78");
  fs::create_directory_symlink(elsewhere, parent / "artifacts.removing-79");
  Dir{{.path = parent / "artifacts.removing-7x"}}.provision();
  Dir{{.path = parent / "other.removing-80"}}.provision();
  const auto elsewhere_before = tree(elsewhere);
  // A provision killed before it marked the directory it makes beside the path:
  // empty, unmarked, removed (an empty directory holds nothing to lose).
  fs::create_directory(parent / "artifacts.removing-81");

  CHECK(s.get<"artifact_store">().is_provisioned());
  s.down({.force = true});
  CHECK_FALSE(fs::exists(where));
  CHECK_FALSE(fs::exists(aside));
  CHECK_FALSE(fs::exists(parent / "artifacts.removing-81"));
  CHECK(tree(parent) == std::vector<std::string>{"artifacts.removing-77", "artifacts.removing-77/precious",
                                                 "artifacts.removing-78", "artifacts.removing-79",
                                                 "artifacts.removing-7x", "artifacts.removing-7x/.stackup-directory",
                                                 "other.removing-80", "other.removing-80/.stackup-directory"});
  CHECK(tree(elsewhere) == elsewhere_before);
}

TEST_CASE("local_directory: a writer adding files during deprovision leaves it removed or still provisioned") {
  TempDir t{"directory"};
  const fs::path where = t.path / "artifacts";
  Dir dir{{.path = where}};
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    dir.provision();
    fill(where, 100);
    std::atomic<bool> stop{false}, started{false};
    std::thread writer([&] {
      for (int i = 0; !stop; ++i) {
        std::ofstream(where / ("new-" + std::to_string(i))) << "x"; // by path: fails once the directory is gone
        started = true;
      }
    });
    while (!started) std::this_thread::yield();
    const std::string message = error_of([&] { dir.deprovision(); });
    stop = true;
    writer.join();
    CAPTURE(message);
    CHECK((message.empty() || contains(message, "still provisioned")));
    CHECK((!fs::exists(where) || dir.is_provisioned()));
    CHECK(error_of([&] { dir.deprovision(); }).empty());
    CHECK(tree(t.path).empty());
  }
}

TEST_CASE("local_directory: processes and threads racing provision and deprovision all succeed") {
  SUBCASE("processes") {
    for (int round = 0; round < 6; ++round) {
      CAPTURE(round);
      TempDir t{"directory"};
      const fs::path where = t.path / "shared" / "store";
      Dir{{.path = where}}.provision();
      fill(where, 100);
      processes::race(6, [&](int i, const auto& go) {
        Dir d{{.path = where}};
        go();
        if (i % 3 == 0) d.provision();
        else d.deprovision();
        return 0;
      });
      // As the last one to run left it: provisioned, or gone with nothing beside it.
      const auto left = tree(t.path / "shared");
      CAPTURE(left.size());
      CHECK((left.empty() || (Dir{{.path = where}}.is_provisioned() &&
                              std::all_of(left.begin(), left.end(), [](const std::string& e) {
                                return e.rfind("store", 0) == 0 && !contains(e, ".removing-");
                              }))));
    }
  }
  SUBCASE("threads") {
    TempDir t{"directory"};
    const fs::path where = t.path / "store";
    std::atomic<int> failures{0};
    std::vector<std::thread> racers;
    for (int i = 0; i < 4; ++i) {
      racers.emplace_back([&, i] {
        Dir d{{.path = where}};
        for (int k = 0; k < 25; ++k) {
          try {
            if ((i + k) % 2 == 0) {
              d.provision();
              std::ofstream(where / ("file-" + std::to_string(i) + "-" + std::to_string(k))) << "x";
            } else {
              d.deprovision();
            }
          } catch (const stackup::Error&) {
            ++failures;
          }
        }
      });
    }
    for (auto& r : racers) r.join();
    CHECK(failures == 0);
    Dir d{{.path = where}};
    CHECK((!fs::exists(where) || d.is_provisioned()));
    d.deprovision();
    CHECK(tree(t.path).empty());
  }
}

// A process writing into the path while the directory is being created must not
// find it there without the marker: its file would make the directory look like
// someone else's, and every later provision and deprovision would refuse it.
TEST_CASE("local_directory: a directory being created never shows at its path without the marker") {
  TempDir t{"directory"};
  // Where the file system cannot rename without replacing (RENAME_NOREPLACE), a
  // new directory is made in place, as it was before; nothing to check there.
  fs::create_directory(t.path / "probe");
  if (::syscall(SYS_renameat2, AT_FDCWD, (t.path / "probe").c_str(), AT_FDCWD, (t.path / "probed").c_str(), 1U) != 0 &&
      (errno == EINVAL || errno == ENOSYS)) {
    MESSAGE("skipped: this file system cannot rename with RENAME_NOREPLACE");
    return;
  }
  fs::remove(t.path / "probed");
  const fs::path where = t.path / "store";
  const std::string marker = (where / ".stackup-directory").string();
  std::atomic<unsigned> phase{0}; // odd while a provision runs (and nothing else acts)
  std::atomic<bool> stop{false};
  std::atomic<int> unmarked{0};
  std::thread watcher([&] {
    struct stat st{};
    while (!stop) {
      const unsigned before = phase;
      if ((before & 1U) == 0) continue;
      const bool exists = ::lstat(where.c_str(), &st) == 0;
      const bool marked = ::lstat(marker.c_str(), &st) == 0;
      if (exists && !marked && phase == before) ++unmarked;
    }
  });
  Dir d{{.path = where}};
  for (int round = 0; round < 300; ++round) {
    ++phase;
    d.provision();
    ++phase;
    d.deprovision();
  }
  stop = true;
  watcher.join();
  CHECK(unmarked == 0);
  CHECK(tree(t.path).empty());
}

TEST_CASE("local_directory: a deprovision waiting for the lock acts on the directory at the path when it gets it") {
  TempDir t{"directory"};
  const fs::path parent = t.path / "parent";
  const fs::path where = parent / "artifacts";
  Dir{{.path = where}}.provision();
  touch(where / "first");
  // Hold the lock of the parent, as a concurrent action would.
  const int held = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(held >= 0);
  REQUIRE(::flock(held, LOCK_EX) == 0);
  struct stat st{};
  REQUIRE(::fstat(held, &st) == 0);
  std::atomic<bool> done{false};
  std::string message;
  std::thread remover([&] {
    message = error_of([&] { Dir{{.path = where}}.deprovision(); });
    done = true;
  });
  while (!done && !flock_waiter_on(st.st_ino)) std::this_thread::yield();
  // While it waits, the parent is moved away and another one takes its place.
  fs::rename(parent, t.path / "moved");
  Dir{{.path = where}}.provision();
  touch(where / "second");
  ::close(held); // releases the lock
  remover.join();
  CHECK(message.empty());
  CHECK_FALSE(fs::exists(where)); // the directory at the path when it acted
  CHECK(fs::exists(t.path / "moved" / "artifacts" / "first")); // not the one that was moved away
}
