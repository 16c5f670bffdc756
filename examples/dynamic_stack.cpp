// A stack chosen at run time: which components it holds, their roles and their
// dependencies come from the command line (as they could from a file or a plugin).
//
//   dynamic_stack [--with-cache] [ROOT]      (ROOT: where the directories go)
//
// It brings the stack up, prints its status, brings it down with --force, and
// shows the error a stack that cannot exist gets.
// SPDX-License-Identifier: MIT
#include <stackup/stackup.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

// Any type with the two queries can be wrapped with a role given at run time:
// no `role`, no base class. This one keeps its state in memory (a real one would
// ask the world: a pid file, a cluster...).
struct Tracker {
  bool provisioned = false;
  bool running = false;
  bool is_provisioned() const { return provisioned; }
  bool is_running() const { return running; }
  void provision() { provisioned = true; }
  void resume() { running = true; }
  void suspend() { running = false; }
  void deprovision() { provisioned = false; }
  static constexpr std::string_view flavor = "in_memory";
};

// A typed Component works in a DynamicStack too: role and depends_on from its type.
struct Orchestrator : stackup::StackComponent<Orchestrator> {
  static constexpr std::string_view role = stackup::roles::orchestrator;
  static constexpr std::string_view depends_on[] = {stackup::roles::artifact_store};
};

} // namespace

int main(int argc, char** argv) {
  bool with_cache = false;
  std::filesystem::path root = std::filesystem::temp_directory_path() / "stackup-dynamic-example";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--with-cache") with_cache = true;
    else root = arg;
  }

  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back(Orchestrator{});
  // A shipped component without a role argument takes the role it is given here.
  parts.emplace_back(std::string(stackup::roles::artifact_store),
                     stackup::LocalDirectory{{.name = "artifacts", .path = root / "artifacts"}});
  parts.emplace_back(std::string(stackup::roles::experiment_tracker), Tracker{},
                     std::vector<std::string>{std::string(stackup::roles::artifact_store)});
  if (with_cache)
    parts.emplace_back("cache", stackup::LocalDirectory{{.name = "cache", .path = root / "cache"}},
                       std::vector<std::string>{std::string(stackup::roles::orchestrator)});

  stackup::DynamicStack stack{"dynamic", std::move(parts)};
  // What a tool sees of a stack: its view (the same for Stack<Cs...>).
  const stackup::StackView view = stack.view();
  for (const std::string_view role : view.order()) {
    fmt::print("{} ({})", role, view.flavor(role));
    for (const std::string_view needed : view.dependencies(role)) fmt::print(", needs {}", needed);
    fmt::print("\n");
  }
  stack.on_event(stackup::console_observer());
  stack.up();
  fmt::print("{}", stackup::status_table(stack.status()));
  stack.down({.force = true});

  // A stack that cannot exist is refused when it is built, with the rule and the fix.
  try {
    std::vector<stackup::AnyComponent> broken;
    broken.emplace_back("a", Tracker{}, std::vector<std::string>{"b"});
    broken.emplace_back("b", Tracker{}, std::vector<std::string>{"a"});
    stackup::DynamicStack cannot{"broken", std::move(broken)};
  } catch (const stackup::StackDefinitionError& e) {
    fmt::print("{}\n", e.what());
  }
  return EXIT_SUCCESS;
}
