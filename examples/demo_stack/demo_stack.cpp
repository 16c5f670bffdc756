// demo_stack: a real local stack driven by ZenML's command line.
//
//   demo_stack [--state-dir DIR] stack up | stack down [--force] | stack status
//   demo_stack [--state-dir DIR] <role> up | down [--force] | status | logs [--tail N]
//
// The stack, all on loopback, with its state under ./.stackup-demo (or
// --state-dir DIR, or $DEMO_STACK_STATE_DIR):
//   artifact_store      LocalDirectory  <state>/artifacts
//   orchestrator        LocalDaemon     demo_server on 127.0.0.1:18731, ready when GET /health answers
//   model_deployer      LocalDaemon     demo_server on 127.0.0.1:18732, serving the artifacts;
//                                       depends on artifact_store and orchestrator
//   experiment_tracker  Command         files made and removed by shell commands
// Ports: $DEMO_STACK_PORT_BASE and the next one (default 18731). Every run is a
// new process that finds the stack's state on disk.
#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr std::string_view usage_hint = "run 'demo_stack --help' for the commands";

// A model deployer is a daemon that needs the artifacts and the orchestrator:
// the role's daemon type, plus its dependencies.
struct ModelDeployer : stackup::LocalDaemon<"model_deployer"> {
  using LocalDaemon::LocalDaemon;
  static constexpr std::string_view depends_on[] = {stackup::roles::artifact_store, stackup::roles::orchestrator};
};

// The demo_server built next to this program (or $DEMO_STACK_SERVER).
fs::path server_program(const char* argv0) {
  if (const char* s = std::getenv("DEMO_STACK_SERVER"); s != nullptr && *s != '\0') return fs::absolute(s);
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec); // Linux; elsewhere fall back to argv[0]
  if (ec) self = fs::absolute(argv0 != nullptr ? argv0 : "demo_stack");
  return self.parent_path() / "demo_server";
}

struct Settings {
  fs::path state;
  unsigned port_base = 18731;
  std::vector<std::string_view> words; // the command, for cli::run
};

// Parses demo_stack's own options (before the command) and environment.
// Returns an error message, or empty when `s` is complete.
std::string settings(int argc, char** argv, Settings& s) {
  const char* env_state = std::getenv("DEMO_STACK_STATE_DIR");
  std::string state = env_state != nullptr && *env_state != '\0' ? env_state : ".stackup-demo";
  int i = 1;
  for (; i < argc && argv[i] != nullptr; ++i) {
    const std::string_view a = argv[i];
    if (a == "--state-dir") {
      if (i + 1 >= argc || argv[i + 1] == nullptr || *argv[i + 1] == '\0')
        return "option '--state-dir' needs a directory, e.g. '--state-dir /tmp/demo'";
      state = argv[++i];
    } else if (a.starts_with("--state-dir=")) {
      state = a.substr(12);
      if (state.empty()) return "option '--state-dir' needs a directory, e.g. '--state-dir=/tmp/demo'";
    } else {
      break;
    }
  }
  for (; i < argc && argv[i] != nullptr; ++i) s.words.emplace_back(argv[i]);
  std::error_code ec;
  s.state = fs::absolute(state, ec);
  if (ec) return "cannot use state directory '" + state + "': " + ec.message();

  if (const char* base = std::getenv("DEMO_STACK_PORT_BASE"); base != nullptr && *base != '\0') {
    const std::string_view v = base;
    unsigned p = 0;
    const auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), p);
    if (err != std::errc{} || end != v.data() + v.size() || p < 1024 || p > 65534)
      return "DEMO_STACK_PORT_BASE must be a port from 1024 to 65534 (the demo uses it and the next one), not '" +
             std::string(v) + "'";
    s.port_base = p;
  }
  return {};
}

} // namespace

// demo_stack's own option, parsed above, described for cli::run's messages and completion.
const stackup::cli::VerbOption state_dir_option[] = {
    {.name = "state-dir", .value = "DIR", .help = "where the demo keeps its state"}};

int main(int argc, char** argv) {
  Settings s;
  if (const std::string problem = settings(argc, argv, s); !problem.empty()) {
    std::cerr << "error: " << problem << "\n" << usage_hint << '\n';
    return stackup::cli::exit_usage;
  }
  const fs::path server = server_program(argc > 0 ? argv[0] : nullptr);
  const auto daemon = [&](std::string_view name, unsigned port, std::vector<std::string> extra) {
    std::vector<std::string> command{server.string(), "--name", std::string(name), "--port", std::to_string(port)};
    command.insert(command.end(), extra.begin(), extra.end());
    return command;
  };
  const fs::path artifacts = s.state / "artifacts";
  const fs::path tracker = s.state / "experiment_tracker";

  try {
    stackup::Stack stack{
        "local",
        stackup::LocalDirectory<"artifact_store">{{.name = "artifacts", .path = artifacts}},
        stackup::LocalDaemon<"orchestrator">{{
            .name = "scheduler",
            .command = daemon("scheduler", s.port_base, {}),
            .state_dir = s.state / "orchestrator",
            .ready = stackup::ready::http(static_cast<unsigned short>(s.port_base), "/health"),
            .start_timeout = std::chrono::seconds(10),
            .stop_timeout = std::chrono::seconds(5),
        }},
        ModelDeployer{{
            .name = "deployer",
            .command = daemon("deployer", s.port_base + 1, {"--files", artifacts.string()}),
            .state_dir = s.state / "model_deployer",
            .ready = stackup::ready::http(static_cast<unsigned short>(s.port_base + 1), "/health"),
            .start_timeout = std::chrono::seconds(10),
            .stop_timeout = std::chrono::seconds(5),
        }},
        // A tracker whose "server" is a file: the shape of a stack driving an
        // outside tool (k3d, terraform, docker compose) through its CLI.
        stackup::Command<"experiment_tracker">{{
            .name = "tracker",
            .provision = R"(mkdir -p "$TRACKER_DIR" && echo 'runs: 0' > "$TRACKER_DIR/runs.db")",
            .deprovision = R"(rm -rf "$TRACKER_DIR")",
            .resume = R"(date > "$TRACKER_DIR/tracker.running")",
            .suspend = R"(rm -f "$TRACKER_DIR/tracker.running")",
            .is_provisioned = R"(test -f "$TRACKER_DIR/runs.db")",
            .is_running = R"(test -f "$TRACKER_DIR/tracker.running")",
            .env = {{"TRACKER_DIR", tracker.string()}},
        }},
    };
    return stackup::cli::run(stack, std::span<const std::string_view>(s.words), std::cout, std::cerr,
                             {.program = "demo_stack",
                              .host_synopsis = "[--state-dir DIR]",
                              .host_help = "  --state-dir DIR  where the demo keeps its state, given before the command\n"
                                           "                   (default: $DEMO_STACK_STATE_DIR, else ./.stackup-demo)\n"
                                           "environment: DEMO_STACK_PORT_BASE (default 18731) is the orchestrator's port;\n"
                                           "             the model deployer uses the next one\n",
                              .host_options = state_dir_option});
  } catch (const std::exception& e) {
    std::cerr << "error: cannot set up the demo stack: " << e.what() << '\n';
    return stackup::cli::exit_failure;
  }
}
