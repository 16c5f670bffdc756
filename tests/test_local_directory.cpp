// LocalDirectory on the real file system: create, remove, and every refusal.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Dir = stackup::LocalDirectory<"artifact_store">;

static_assert(stackup::Provisionable<Dir> && stackup::Deprovisionable<Dir>);
static_assert(!stackup::Resumable<Dir> && !stackup::Suspendable<Dir>, "no resume/suspend: the stack skips them");
static_assert(std::is_move_constructible_v<Dir>);

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/stackup-directory-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const stackup::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

void touch(const fs::path& p) { std::ofstream(p) << "data\n"; }

} // namespace

TEST_CASE("local_directory: up creates it with parents and a marker, down --force removes it") {
  TempDir t;
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
  CHECK(fs::is_directory(t.path / "a" / "b")); // parents are left alone
  s.down({.force = true});                      // nothing left to do
}

TEST_CASE("local_directory: a relative path is made absolute at construction") {
  TempDir t;
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
  TempDir t;
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
  TempDir t;
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
  TempDir t;
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

  TempDir t;
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
    TempDir t;
    const fs::path where = t.path / "shared" / "store";
    int barrier[2];
    REQUIRE(::pipe(barrier) == 0);
    std::vector<pid_t> racers;
    for (int i = 0; i < 4; ++i) {
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(barrier[1]);
        int code = 1;
        try {
          Dir d{{.path = where}};
          char c = 0;
          [[maybe_unused]] const ssize_t n = ::read(barrier[0], &c, 1); // returns when the parent closes it
          d.provision();
          code = d.is_provisioned() ? 0 : 2;
        } catch (...) {
        }
        ::_exit(code);
      }
      racers.push_back(pid);
    }
    ::close(barrier[0]);
    ::close(barrier[1]); // go
    for (pid_t r : racers) {
      int status = 0;
      REQUIRE(::waitpid(r, &status, 0) == r);
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
    }
    CHECK(Dir{{.path = where}}.is_provisioned());
  }
}
