// The program every consumer test builds: a two-component stack whose state is
// real files under a fresh temporary directory, brought up and down again.
// Exit status 0 when every step did what it should.
#include <stackup/stackup.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

namespace fs = std::filesystem;

#if defined(STACKUP_EXPECTED_VERSION_MAJOR)
// Set by a consumer from the version CMake reported: header and package agree.
static_assert(STACKUP_VERSION_MAJOR == STACKUP_EXPECTED_VERSION_MAJOR &&
              STACKUP_VERSION_MINOR == STACKUP_EXPECTED_VERSION_MINOR &&
              STACKUP_VERSION_PATCH == STACKUP_EXPECTED_VERSION_PATCH,
              "the STACKUP_VERSION_* macros differ from the version find_package reported");
#endif

namespace {

fs::path g_root; // the temporary directory holding both components' state

// A directory: provisioned while it exists.
struct Workspace : stackup::StackComponent<Workspace> {
  static constexpr std::string_view role = stackup::roles::artifact_store;
  fs::path dir() const { return g_root / "artifacts"; }
  bool is_provisioned() const { return fs::is_directory(dir()); }
  bool is_running() const { return is_provisioned(); }
  void provision() { fs::create_directory(dir()); }
  void deprovision() { fs::remove_all(dir()); }
};

// A service whose "running" flag is a file in its own directory.
struct Service : stackup::StackComponent<Service> {
  static constexpr std::string_view role = stackup::roles::orchestrator;
  static constexpr std::string_view depends_on[] = {stackup::roles::artifact_store};
  fs::path dir() const { return g_root / "service"; }
  bool is_provisioned() const { return fs::is_directory(dir()); }
  bool is_running() const { return fs::exists(dir() / "running"); }
  void provision() { fs::create_directory(dir()); }
  void resume() { std::ofstream(dir() / "running") << "up\n"; }
  void suspend() { fs::remove(dir() / "running"); }
  void deprovision() { fs::remove_all(dir()); }
};

int failures = 0;
void expect(bool ok, std::string_view what) {
  if (!ok) {
    std::fprintf(stderr, "consumer: FAILED: %.*s\n", static_cast<int>(what.size()), what.data());
    ++failures;
  }
}

// Removes the temporary directory however the program ends.
struct TempRoot {
  TempRoot() {
    g_root = fs::temp_directory_path() / fmt::format("stackup-consumer-{}", ::getpid());
    fs::remove_all(g_root);
    fs::create_directories(g_root);
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(g_root, ec);
  }
  TempRoot(const TempRoot&) = delete;
  TempRoot& operator=(const TempRoot&) = delete;
};

} // namespace

int main() try {
  TempRoot root;
  stackup::Stack stack{"consumer", Service{}, Workspace{}};

  expect(!stack.is_provisioned(), "a fresh stack is not provisioned");
  stack.up();
  expect(stack.is_running(), "after up() every component runs");
  expect(fs::exists(g_root / "service" / "running"), "up() started the service");
  fmt::print("{}", stackup::status_table(stack.status()));

  stack.down();
  expect(!stack.get<Service>().is_running(), "down() stopped the service");
  expect(stack.get<Service>().is_provisioned(), "down() kept the service's resources");

  stack.down({.force = true});
  expect(!fs::exists(g_root / "service") && !fs::exists(g_root / "artifacts"),
         "down({.force = true}) removed every component's resources");
  fmt::print("stackup {}.{}.{}: stack '{}' up and down: {}\n", STACKUP_VERSION_MAJOR, STACKUP_VERSION_MINOR,
             STACKUP_VERSION_PATCH, stack.name(), failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "consumer: unexpected exception: %s\n", e.what());
  return 1;
}
