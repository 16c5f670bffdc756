// Compiled, never run: every public header, its main templates instantiated, in
// a consumer's build at -O2 and -O3 with -Wall -Wextra -Werror (see
// CMakeLists.txt here). A warning stackup's own code triggers — in its headers
// or, through them, in fmt's — fails the consumer.warnings tests.
#include <stackup/stackup.hpp>
#include <stackup/cli.hpp>
#if defined(STACKUP_WARNINGS_STACK_FILE)
#include <stackup/stack_file.hpp>
#endif

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

// A component of the consumer's own, beside the shipped ones.
struct Tracker : stackup::StackComponent<Tracker> {
  static constexpr std::string_view role = stackup::roles::experiment_tracker;
  static constexpr std::string_view depends_on[] = {stackup::roles::artifact_store};
  bool running = false;
  bool is_provisioned() const { return true; }
  bool is_running() const { return running; }
  void resume() { running = true; }
  void suspend() { running = false; }
};

std::string report(std::span<const stackup::ComponentStatus> rows) {
  std::string out = stackup::status_table(rows) + stackup::status_table(rows, true) + stackup::status_json(rows);
  for (const auto& row : rows) out += fmt::format("{:>40}|{:<12}|{}\n", row, row.state, row);
  return out;
}

} // namespace

int consume(int argc, char** argv) {
  const std::filesystem::path root = std::filesystem::temp_directory_path() / "stackup-warnings";
  stackup::LocalDirectory<"artifact_store"> artifacts{{.name = "artifacts", .path = root / "artifacts"}};
  stackup::LocalDaemon<"orchestrator"> daemon{{.name = "web",
                                               .command = {"sleep", "60"},
                                               .state_dir = root / "web",
                                               .ready = stackup::ready::tcp(8080)}};
  stackup::Command<"secrets_manager"> command{{.name = "vault", .provision = "true", .is_provisioned = "true"}};
  stackup::Stack stack{"typed", Tracker{}, std::move(artifacts), std::move(daemon), std::move(command)};
  stack.on_event(stackup::console_observer(stderr));
  stack.up();
  stack.up({.parallel = true, .max_threads = 2});
  stack.down({.force = true});
  std::string out = report(stack.status());

  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back(Tracker{});
  parts.emplace_back(std::string(stackup::roles::artifact_store),
                     stackup::LocalDirectory{{.name = "dir", .path = root / "dir"}});
  stackup::Container<"model_deployer"> container{{.stack = "dynamic", .image = "busybox", .ports = {"8080:80"}}};
  if (!container.is_current() || container.exit_status()) container.kill();
  parts.emplace_back(std::move(container));
  stackup::DynamicStack dynamic{"dynamic", std::move(parts)};
  dynamic.up({.parallel = true});
  dynamic.down();
  out += report(dynamic.status());
  stackup::StackLock lock(root / "lock", stackup::LockMode::exclusive);

  std::ostringstream cout, cerr;
  int code = stackup::cli::run(stack, argc, argv, cout, cerr);
  code += stackup::cli::run(dynamic, argc, argv, cout, cerr, {.program = "warnings", .color = stackup::cli::Color::always});
#if defined(STACKUP_WARNINGS_STACK_FILE)
  stackup::DynamicStack loaded = stackup::load_stack(root / "stackup.toml");
  code += stackup::cli::run(loaded, argc, argv, cout, cerr);
#endif
  fmt::print("{}{}{}", out, cout.str(), cerr.str());
  return code;
}
