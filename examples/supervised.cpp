// Keeping a stack running with stackup::supervise: a worker that crashes every
// 300 ms is restarted by its policy ("on-failure", back-off from 50 ms, at most 3
// restarts a minute), then given up on; the loop returns once nothing is left to
// restart, and the stack goes down.
//
//   supervised [STATE_DIR]     (default: a directory under /tmp)
// SPDX-License-Identifier: MIT
#include <stackup/stackup.hpp>
#include <stackup/supervise.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const std::filesystem::path dir =
      argc > 1 ? std::filesystem::path(argv[1])
               : std::filesystem::temp_directory_path() / ("stackup-supervised-" + std::to_string(::getpid()));

  std::vector<stackup::AnyComponent> parts;
  parts.emplace_back("worker", stackup::LocalDaemon<>{{
                                   .command = {"/bin/sh", "-c", "echo working; sleep 0.3; exit 3"},
                                   .state_dir = dir / "worker",
                                   .restart = {.policy = stackup::Restart::on_failure,
                                               .backoff = 50ms,
                                               .max = 3,
                                               .within = 1min},
                               }});
  stackup::DynamicStack stack{"supervised", std::move(parts)};
  stack.on_event(stackup::console_observer());
  try {
    stack.up();
    // No stop token: it returns when every supervised component is failed or down.
    stackup::supervise(stack, {.on_event = [](const stackup::SupervisionEvent& e) {
                                 std::printf("%s\n", stackup::supervision_line(e, false).c_str());
                               }});
    std::fputs(stackup::status_table(stack.status()).c_str(), stdout);
    stack.down({.force = true});
  } catch (const stackup::Error& e) {
    std::fprintf(stderr, "supervised: %s\n", e.what());
    stack.down({.force = true});
    return 1;
  }
  std::filesystem::remove(dir);
  return 0;
}
