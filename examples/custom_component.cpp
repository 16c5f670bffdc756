// Defining states of custom components: one component with its own state (kept on
// disk, so another process sees the truth), one with ZenML's defaults, a stack of
// them going up, showing status, going down, and down with force.
#include <stackup/stackup.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

// A local cache: provisioned = its directory exists; running = its "served" marker exists.
struct LocalCache : stackup::StackComponent<LocalCache> {
  static constexpr std::string_view role = stackup::roles::artifact_store;
  static constexpr std::string_view flavor = "local_cache";
  fs::path root;

  std::string_view name() const { return "cache"; }
  std::string detail() const { return root.string(); }

  bool is_provisioned() const { return fs::is_directory(root); }
  bool is_running() const { return fs::exists(root / "served"); }

  void provision() { fs::create_directories(root); }
  void deprovision() { fs::remove_all(root); }
  void resume() { std::ofstream(root / "served") << "yes\n"; }
  void suspend() { fs::remove(root / "served"); }
};

// Always provisioned and always running: nothing to do, ZenML's default.
struct Orchestrator : stackup::StackComponent<Orchestrator> {
  static constexpr std::string_view role = stackup::roles::orchestrator;
  static constexpr std::string_view depends_on[] = {stackup::roles::artifact_store};
};

int main() {
  const char* dir = std::getenv("CUSTOM_COMPONENT_DIR");
  const fs::path root = fs::path(dir ? dir : fs::temp_directory_path().string()) / "stackup-example-cache";

  stackup::Stack stack{"example", Orchestrator{}, LocalCache{{}, root}};
  stack.on_event(stackup::console_observer());
  auto show = [&] { fmt::print("{}\n", stackup::status_table(stack.status(), stackup::use_color(stdout))); };

  fmt::print("$ stack up\n");
  stack.up();
  show();
  fmt::print("$ stack up   (again: nothing to do)\n");
  stack.up();
  fmt::print("$ stack down\n");
  stack.down();
  show();
  fmt::print("$ stack down --force\n");
  stack.down({.force = true});
  show();
  return stack.get<LocalCache>().is_provisioned() ? 1 : 0;
}
