// closed_stdio: runs LocalDaemon and Command actions in a process that was
// started with file descriptors 0, 1 and 2 closed, so the descriptors stackup
// opens land on 0, 1 and 2.
//
//   closed_stdio RESULT_FILE STATE_DIR PORT DAEMON_COMMAND...
//
// Starts DAEMON_COMMAND as a LocalDaemon (tcp probe on PORT, state in
// STATE_DIR) and stops it again, leaving the state directory (and its
// daemon.log) for the caller; tries to start a program that does not exist; runs
// Command actions whose exit status and stderr must come back. Writes "ok", or
// what went wrong, to RESULT_FILE (there is no stdout or stderr to write to).
// Exit status 0 on success, 1 otherwise.
// SPDX-License-Identifier: MIT
#include <stackup/stackup.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// What went wrong, or "" when everything did what it should.
std::string check(const std::string& state_dir, std::uint16_t port, const std::vector<std::string>& command) {
  for (int fd = 0; fd <= 2; ++fd)
    if (::fcntl(fd, F_GETFD) != -1) return "descriptor " + std::to_string(fd) + " is open: start me with 0-2 closed";

  stackup::LocalDaemon<"orchestrator"> daemon{
      {.command = command, .state_dir = state_dir, .ready = stackup::ready::tcp(port)}};
  daemon.provision();
  daemon.resume();
  if (!daemon.is_running()) return "the daemon is not running after resume";
  daemon.suspend();
  if (daemon.is_running() || daemon.pid()) return "the daemon still runs after suspend";

  // A start failure is reported through an internal pipe.
  stackup::LocalDaemon<"orchestrator"> missing{
      {.command = {state_dir + "/no-such-program"}, .state_dir = state_dir + "-missing"}};
  missing.provision();
  const std::string why = error_of([&] { missing.resume(); });
  if (!contains(why, "execute it failed: No such file or directory"))
    return "a missing program gave '" + why + "', not the exec failure";
  missing.deprovision();

  stackup::Command<"experiment_tracker"> cmd{
      {.provision = "echo from-stderr >&2; exit 3", .is_provisioned = "exit 0", .is_running = "exit 1"}};
  if (!cmd.is_provisioned() || cmd.is_running()) return "a Command query gave the wrong answer";
  const std::string failed = error_of([&] { cmd.provision(); });
  if (!contains(failed, "exit status 3") || !contains(failed, "from-stderr"))
    return "a failing Command action gave '" + failed + "'";
  // A start failure of a Command is reported through an internal pipe too.
  stackup::Command<"experiment_tracker"> nowhere{{.provision = "exit 0", .working_dir = state_dir + "/no-such-dir"}};
  const std::string unstarted = error_of([&] { nowhere.provision(); });
  if (!contains(unstarted, "change to its working directory failed: No such file or directory"))
    return "a Command in a missing working_dir gave '" + unstarted + "', not the chdir failure";
  return "";
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  std::string result;
  try {
    result = check(argv[2], static_cast<std::uint16_t>(std::atoi(argv[3])), std::vector<std::string>(argv + 4, argv + argc));
  } catch (const std::exception& e) {
    result = std::string("unexpected error: ") + e.what();
  }
  std::ofstream(argv[1]) << (result.empty() ? "ok" : result) << '\n';
  return result.empty() ? 0 : 1;
}
