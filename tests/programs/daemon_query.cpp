// daemon_query: a second process for the LocalDaemon tests. It knows only a
// state directory (of role "orchestrator") and reports or acts on it.
//
//   daemon_query STATE_DIR [status|down]
//
// status (the default) prints "running <pid>" or "stopped"; down suspends the
// daemon and prints "stopped". Exit status 0; 1 with the error on stderr.
// SPDX-License-Identifier: MIT
#include <stackup/stackup.hpp>

#include <cstdio>
#include <exception>
#include <string_view>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: daemon_query STATE_DIR [status|down]\n");
    return 2;
  }
  const std::string_view verb = argc == 3 ? argv[2] : "status";
  try {
    auto daemon = stackup::LocalDaemon<"orchestrator">::from_state_dir(argv[1]);
    if (verb == "down") {
      daemon.suspend();
    } else if (verb != "status") {
      std::fprintf(stderr, "daemon_query: unknown verb '%s'\n", argv[2]);
      return 2;
    }
    if (daemon.is_running()) std::printf("running %d\n", static_cast<int>(daemon.pid().value_or(0)));
    else std::printf("stopped\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
