// Stack files and removal: `down --force` and a rolled-back `up` leave the
// project directory as they found it, and a local_directory may take over the
// directory of a user the stack runs a component as.
#include <stackup/stack_file.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/users.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace {

namespace fs = std::filesystem;
using files::TempDir;
using messages::contains;
using messages::error_of;

// Every path under `dir`, sorted.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    out.push_back(it->path().lexically_relative(dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace

TEST_CASE("stack file: down --force, and an up that rolls back, leave the directory exactly as they found it") {
  TempDir t{"sf-removal"};
  const fs::path file = t.path / "stackup.toml";
  std::ofstream(file) << R"(
[components.web]
flavor = "local_daemon"
command = ["sleep", "60"]

[components.store]
flavor = "local_directory"
path = "data/artifacts"

[components.cache]
flavor = "local_directory"
path = ".stackup/cache"
)";
  const auto before = tree(t.path);
  for (const bool parallel : {false, true}) {
    CAPTURE(parallel);
    auto stack = stackup::load_stack(file);
    stack.up({.parallel = parallel});
    CHECK(fs::is_directory(t.path / ".stackup" / "web"));
    CHECK(fs::is_directory(t.path / "data" / "artifacts"));
    stack.down({.force = true, .parallel = parallel});
    CHECK(tree(t.path) == before);
  }
  SUBCASE("a failing up rolls back to nothing") {
    std::ofstream(file, std::ios::app) << R"(
[components.broken]
flavor = "command"
is_running = "false"
resume = "exit 1"
depends_on = ["web", "store", "cache"]
)";
    const auto with_broken = tree(t.path);
    auto stack = stackup::load_stack(file);
    CHECK_FALSE(error_of([&] { stack.up(); }).empty());
    CHECK(tree(t.path) == with_broken);
  }
}

TEST_CASE("stack file: a local_directory may take over a directory of a user the stack runs a component as") {
  if (!users::root_or_skip()) return;
  TempDir t{"sf-removal"};
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  const passwd* pw = ::getpwnam("nobody");
  REQUIRE(pw != nullptr);
  const fs::path data = t.path / "pgdata";
  fs::create_directory(data);
  REQUIRE(::chown(data.c_str(), pw->pw_uid, pw->pw_gid) == 0);
  const fs::path file = t.path / "stackup.toml";
  const std::string directory = R"(
[components.data]
flavor = "local_directory"
path = "pgdata"
)";
  std::ofstream(file) << directory;
  {
    auto stack = stackup::load_stack(file);
    const std::string message = error_of([&] { stack.up(); });
    CAPTURE(message);
    CHECK(contains(message, "owned by user 'nobody'"));
  }
  std::ofstream(file) << directory << R"(
[components.db]
flavor = "command"
user = "nobody"
provision = "true"
)";
  auto stack = stackup::load_stack(file);
  stack.up();
  CHECK(fs::is_regular_file(data / stackup::LocalDirectory<>::marker));
  stack.down({.force = true});
  CHECK_FALSE(fs::exists(data));
}
