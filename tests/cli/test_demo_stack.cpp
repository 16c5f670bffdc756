// The built demo_stack demo, each command a separate process: golden transcripts
// (timings, pids, ports and paths masked), bad input, state found on disk by
// later processes, a daemon killed behind the stack's back, Ctrl-C and SIGTERM
// during up and down, and no daemon left.
//
// Regenerate the golden files after reviewing a change of output:
//   DEMO_STACK_UPDATE_GOLDEN=1 ./demo_stack_tests
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;
  std::string out, err; // with `merge`, everything is in `out`
  bool signaled = false; // killed by a signal (code: 128 + the signal), not exited
};

// Runs argv as a child process with extra environment variables, in `cwd`,
// and collects its output. A child that hangs is killed after two minutes so
// the suite fails instead of hanging (a guard, not an assertion on time).
Result spawn(const std::vector<std::string>& argv, const std::vector<std::pair<std::string, std::string>>& env,
             const fs::path& cwd, bool merge = false) {
  int out_pipe[2], err_pipe[2];
  REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(merge ? out_pipe[1] : err_pipe[1], 2);
    // Only what the test gives: nothing from the caller's environment may move
    // the state or the ports of a test (or colour its output).
    for (const char* name : {"DEMO_STACK_STATE_DIR", "DEMO_STACK_PORT_BASE", "DEMO_STACK_SERVER", "DEMO_STACK", "NO_COLOR"})
      ::unsetenv(name);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  Result r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (open_fds > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      FAIL_CHECK("child did not finish: " << argv[0]);
      break;
    }
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Two consecutive free loopback ports (the demo uses base and base + 1).
unsigned free_port_pair() {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int a = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(a, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(a);
      continue;
    }
    const unsigned base = ntohs(addr.sin_port);
    bool ok = base >= 1024 && base < 65534;
    if (ok) {
      const int b = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      addr.sin_port = htons(static_cast<unsigned short>(base + 1));
      ok = ::bind(b, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      ::close(b);
    }
    ::close(a);
    if (ok) return base;
  }
  FAIL("no two consecutive free loopback ports");
  return 0;
}

// A socket bound (not listening) to 127.0.0.1:port: a daemon cannot bind the
// port, and a readiness probe is refused at once instead of waiting on us.
int occupy(unsigned port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<unsigned short>(port));
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return s;
}

// GET `path` from 127.0.0.1:port; nothing when no server answers.
std::optional<std::string> http_get(unsigned port, const std::string& path) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<unsigned short>(port));
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(s);
    return std::nullopt;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(s, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(s);
    return std::nullopt;
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(s, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<std::size_t>(n));
  ::close(s);
  return response;
}

// The pid a demo daemon reports on GET / ("scheduler (pid 123)"), or 0.
pid_t daemon_pid(unsigned port) {
  const auto r = http_get(port, "/");
  if (!r) return 0;
  std::smatch m;
  if (!std::regex_search(*r, m, std::regex(R"(\(pid (\d+)\))"))) return 0;
  return static_cast<pid_t>(std::stol(m[1]));
}

// Alive = exists and is not a zombie.
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() && line[close_paren + 2] != 'Z';
}

// Every live demo_server process listening (by its command line) on one of `ports`.
std::vector<pid_t> demo_daemons(const std::set<unsigned>& ports) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const std::string cmdline = read_file(e.path() / "cmdline");
    std::vector<std::string> args;
    std::string cur;
    for (char c : cmdline) {
      if (c == '\0') args.push_back(std::exchange(cur, {}));
      else cur += c;
    }
    if (args.empty() || fs::path(args[0]).filename() != "demo_server") continue;
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--port" && ports.count(static_cast<unsigned>(std::atoi(args[i + 1].c_str()))) != 0) {
        const auto pid = static_cast<pid_t>(std::stol(name));
        if (alive(pid)) found.push_back(pid);
      }
  }
  return found;
}

// Waits (bounded) until `pid` is gone; a process killed with SIGKILL is
// reaped by its parent shortly after.
void wait_gone(pid_t pid) {
  for (int i = 0; i < 1000 && alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

std::set<unsigned> all_ports_used; // by this test run, for the final check

// One isolated demo: its own state directory and ports. Its destructor brings
// the stack down and kills (by pid) any demo daemon of its ports still alive,
// so no test leaves a process behind even when it fails.
struct Sandbox {
  fs::path dir;
  fs::path state;
  unsigned port = 0;

  Sandbox() {
    std::string tmpl = (fs::temp_directory_path() / "demo_stack-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    state = dir / "state";
    port = free_port_pair();
    all_ports_used.insert({port, port + 1});
  }
  ~Sandbox() {
    try {
      ctl({"stack", "down", "--force"});
    } catch (...) {
    }
    const auto left = demo_daemons({port, port + 1});
    if (!left.empty()) FAIL_CHECK(left.size() << " demo daemon(s) outlived 'stack down --force'; killing them");
    for (pid_t pid : left) ::kill(pid, SIGKILL);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  [[nodiscard]] std::vector<std::pair<std::string, std::string>> env() const {
    return {{"DEMO_STACK_STATE_DIR", state.string()}, {"DEMO_STACK_PORT_BASE", std::to_string(port)}};
  }
  Result ctl(const std::vector<std::string>& words, bool merge = false) const {
    std::vector<std::string> argv{DEMO_STACK_PATH};
    argv.insert(argv.end(), words.begin(), words.end());
    return spawn(argv, env(), dir, merge);
  }
  [[nodiscard]] std::vector<pid_t> daemons() const { return demo_daemons({port, port + 1}); }
  [[nodiscard]] bool state_empty() const { return !fs::exists(state) || fs::is_empty(state); }

  // Hides what changes from run to run: paths, ports, pids, timings.
  [[nodiscard]] std::string mask(std::string s) const {
    auto replace_all = [&](const std::string& from, const std::string& to) {
      for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
    };
    replace_all(state.string(), "<state>");
    replace_all(dir.string(), "<dir>");
    replace_all(DEMO_SERVER_PATH, "<demo_server>");
    s = std::regex_replace(s, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)"), "<time>");
    s = std::regex_replace(s, std::regex(R"(\bpid[ =:]?\d+)"), "pid <pid>");
    s = std::regex_replace(s, std::regex(R"(\b\d+\.\d+s\b)"), "#.##s");
    s = std::regex_replace(s, std::regex("\\b" + std::to_string(port + 1) + "\\b"), "<port+1>");
    s = std::regex_replace(s, std::regex("\\b" + std::to_string(port) + "\\b"), "<port>");
    return s;
  }

  // Runs each command (stdout and stderr merged, as a terminal shows them) and
  // returns the masked transcript with each command's exit status.
  std::string transcript(const std::vector<std::vector<std::string>>& commands) const {
    std::string t;
    for (const auto& words : commands) {
      t += "$ demo_stack";
      for (const auto& w : words) t += " " + (w.empty() ? std::string("''") : w);
      t += "\n";
      const Result r = ctl(words, true);
      t += r.out;
      t += "[exit " + std::to_string(r.code) + "]\n\n";
    }
    return mask(t);
  }
};

void check_golden(const std::string& name, const std::string& actual) {
  const fs::path file = fs::path(DEMO_STACK_GOLDEN_DIR) / (name + ".txt");
  if (const char* update = std::getenv("DEMO_STACK_UPDATE_GOLDEN"); update != nullptr && *update == '1') {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << actual;
    MESSAGE("updated " << file.string());
    return;
  }
  INFO("golden file " << file.string() << " (after reviewing the change, DEMO_STACK_UPDATE_GOLDEN=1 regenerates it)");
  REQUIRE(fs::exists(file));
  CHECK(read_file(file) == actual);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

} // namespace

TEST_CASE("tour: the README's scripted tour, golden, ends with nothing running and an empty state directory") {
  Sandbox box;
  auto env = box.env();
  env.emplace_back("DEMO_STACK", DEMO_STACK_PATH);
  const Result r = spawn({"/bin/bash", DEMO_STACK_TOUR_PATH}, env, box.dir, true);
  CHECK(r.code == 0);
  check_golden("tour", box.mask(r.out));
  CHECK(box.daemons().empty());
  CHECK(box.state_empty());
}

TEST_CASE("golden: component commands, logs, idempotent up and down") {
  Sandbox box;
  const std::string t = box.transcript({
      {"stack", "status"},
      {"stack", "down"},
      {"model_deployer", "up"},
      {"model_deployer", "up"},
      {"experiment_tracker", "status"},
      {"orchestrator", "logs"},
      {"model_deployer", "logs", "--tail", "1"},
      {"artifact_store", "down"},
      {"experiment_tracker", "up"},
      {"stack", "up"},
      {"stack", "down"},
      {"stack", "down"},
      {"stack", "status"},
      {"orchestrator", "logs"},
      {"orchestrator", "down", "--force"},
      {"orchestrator", "logs"},
      {"stack", "down", "-f"},
      {"stack", "down", "--force"},
      {"stack", "status"},
  });
  check_golden("commands", t);
  CHECK(box.daemons().empty());
  CHECK(box.state_empty());
}

TEST_CASE("golden: bad input exits 2 with a helpful message and changes nothing") {
  Sandbox box;
  const std::string t = box.transcript({
      {},
      {"stack"},
      {"orchestrator"},
      {"registry", "up"},
      {"stack", "sideways"},
      {"orchestrator", "restart"},
      {"stack", "up", "--bogus"},
      {"stack", "down", "-x"},
      {"stack", "status", "--force"},
      {"stack", "up", "extra"},
      {"orchestrator", "down", "--force", "now"},
      {"orchestrator", "logs", "--tail", "ten"},
      {"orchestrator", "logs", "--tail"},
      {"experiment_tracker", "logs"},
      {"stack", "logs"},
      {"--bogus"},
      {"--state-dir"},
      {""},
      {"--help"},
  });
  check_golden("usage", t);
  CHECK(!fs::exists(box.state));

  const Result bad_port = spawn({DEMO_STACK_PATH, "stack", "up"}, {{"DEMO_STACK_PORT_BASE", "eighty"}}, box.dir);
  CHECK(bad_port.code == 2);
  CHECK(contains(bad_port.err, "DEMO_STACK_PORT_BASE must be a port from 1024 to 65534"));
  CHECK(!fs::exists(box.dir / ".stackup-demo"));
}

TEST_CASE("odd command lines: never a crash, a signal or a change") {
  Sandbox box;
  const std::vector<std::vector<std::string>> odd{
      {std::string(100000, 'x')},
      {"stack", std::string(100000, '-')},
      {"\xff\xfe\x01", "up"},
      {"stack", "down", "-fffz"},
      {"stack", "down", "--force=yes"},
      {"--"},
      {"-"},
      {"orchestrator", "logs", "--tail", "18446744073709551616"},
      {"--state-dir=", "stack", "up"},
      {"--state-dir", "", "stack", "up"},
  };
  for (const auto& words : odd) {
    CAPTURE(words.front().substr(0, 40));
    const Result r = box.ctl(words);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.starts_with("error: "));
  }
  CHECK(!fs::exists(box.state));
  CHECK(box.daemons().empty());
}

TEST_CASE("state across processes: up in one, status and down in others; repeated up and down") {
  Sandbox box;
  Result r = box.ctl({"stack", "up"});
  REQUIRE(r.code == 0);
  const pid_t orchestrator = daemon_pid(box.port), deployer = daemon_pid(box.port + 1);
  REQUIRE(orchestrator > 0);
  REQUIRE(deployer > 0);
  CHECK(alive(orchestrator));
  CHECK(http_get(box.port, "/health")->find("200 OK") != std::string::npos);
  CHECK(box.daemons().size() == 2);
  CHECK(fs::is_directory(box.state / "artifacts"));

  r = box.ctl({"stack", "status"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "stack 'local': 4 of 4 running, 4 provisioned"));
  CHECK(contains(r.out, std::to_string(orchestrator)));

  r = box.ctl({"stack", "up"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "stack 'local' is already running: nothing to do"));
  CHECK(daemon_pid(box.port) == orchestrator);

  // The deployer serves the artifact store it depends on.
  std::ofstream(box.state / "artifacts" / "model.bin") << "weights";
  CHECK(contains(http_get(box.port + 1, "/files").value_or(""), "model.bin"));

  r = box.ctl({"stack", "down"});
  CHECK(r.code == 0);
  wait_gone(orchestrator);
  wait_gone(deployer);
  CHECK(!alive(orchestrator));
  CHECK(!alive(deployer));
  CHECK(!http_get(box.port, "/health"));
  CHECK(!http_get(box.port + 1, "/health"));
  CHECK(box.daemons().empty());
  CHECK(fs::exists(box.state / "artifacts" / "model.bin")); // down keeps what was provisioned

  r = box.ctl({"stack", "down"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "stack 'local': nothing to stop"));

  r = box.ctl({"stack", "up", "--parallel"});
  CHECK(r.code == 0);
  const pid_t again = daemon_pid(box.port);
  CHECK(again > 0);
  CHECK(again != orchestrator);
  CHECK(box.daemons().size() == 2);

  r = box.ctl({"stack", "down", "--force", "-p"});
  CHECK(r.code == 0);
  wait_gone(again);
  CHECK(box.daemons().empty());
  CHECK(box.state_empty());
}

TEST_CASE("a daemon killed behind the stack's back: status shows it not running, stack up restarts it") {
  Sandbox box;
  REQUIRE(box.ctl({"stack", "up"}).code == 0);
  const pid_t orchestrator = daemon_pid(box.port), deployer = daemon_pid(box.port + 1);
  REQUIRE(orchestrator > 0);
  REQUIRE(::kill(orchestrator, SIGKILL) == 0);
  wait_gone(orchestrator);
  REQUIRE(!alive(orchestrator));

  Result r = box.ctl({"stack", "status"});
  CHECK(r.code == 0);
  CHECK(std::regex_search(r.out, std::regex(R"(\norchestrator +scheduler +local_daemon +suspended)")));
  CHECK(contains(r.out, "3 of 4 running"));

  r = box.ctl({"stack", "up"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "orchestrator 'scheduler' resumed"));
  CHECK(contains(r.out, "model_deployer 'deployer' already running"));
  const pid_t restarted = daemon_pid(box.port);
  CHECK(restarted > 0);
  CHECK(restarted != orchestrator);
  CHECK(daemon_pid(box.port + 1) == deployer);
  CHECK(box.daemons().size() == 2);
}

TEST_CASE("--state-dir DIR and --state-dir=DIR before the command; the environment variable otherwise") {
  Sandbox box;
  const fs::path other = box.dir / "elsewhere";
  Result r = box.ctl({"--state-dir", other.string(), "artifact_store", "up"});
  CHECK(r.code == 0);
  CHECK(fs::is_directory(other / "artifacts"));
  CHECK(!fs::exists(box.state / "artifacts"));
  r = box.ctl({"--state-dir=" + other.string(), "artifact_store", "status"});
  CHECK(r.code == 0);
  CHECK(std::regex_search(r.out, std::regex(R"(artifact_store +artifacts +\S+ +running)")));

  // Relative to the current directory, default ./.stackup-demo.
  r = spawn({DEMO_STACK_PATH, "artifact_store", "up"}, {}, box.dir);
  CHECK(r.code == 0);
  CHECK(fs::is_directory(box.dir / ".stackup-demo" / "artifacts"));
  CHECK(spawn({DEMO_STACK_PATH, "artifact_store", "down", "--force"}, {}, box.dir).code == 0);
  CHECK(spawn({DEMO_STACK_PATH, "--state-dir", other.string(), "stack", "down", "--force"}, {}, box.dir).code == 0);
  // The state directories went with what they held: as up found the place.
  CHECK_FALSE(fs::exists(other));
  CHECK_FALSE(fs::exists(box.dir / ".stackup-demo"));
}

TEST_CASE("a daemon that cannot start: exit 1, the error and its cause, rolled back, nothing left") {
  Sandbox box;
  const int busy = occupy(box.port + 1); // the model deployer's port
  const Result r = box.ctl({"stack", "up"});
  ::close(busy);
  CHECK(r.code == 1);
  CHECK(contains(r.err, "error: stack up failed\n"));
  CHECK(contains(r.err, "model_deployer"));
  CHECK(contains(r.err, "cannot listen on 127.0.0.1:" + std::to_string(box.port + 1))); // from the daemon's log
  CHECK(contains(r.err, "rollback: undid the "));
  CHECK(contains(r.out, "orchestrator 'scheduler' suspended (rollback)"));
  CHECK(box.daemons().empty());
  CHECK(box.state_empty());
}

// ---- Ctrl-C and SIGTERM: the demo stops, rolls back, reports and exits 128 + signal ----

namespace {

// A stand-in for demo_server (DEMO_STACK_SERVER): a shell script that plays each
// daemon (by its --name) as asked:
//   real         the demo server itself
//   never_ready  says so, then never listens (SIGTERM ends it)
//   slow_stop    the demo server in the background, and a SIGTERM that is
//                logged and ignored (stackup kills it after stop_timeout, 5 s)
// Its command line names the sandbox, so Sweep finds what it leaves.
fs::path server_script(const Sandbox& box, const std::string& scheduler, const std::string& deployer) {
  const fs::path script = box.dir / "server.sh";
  std::ofstream out(script, std::ios::binary | std::ios::trunc);
  out << "#!/bin/sh\n"
         "case \"$2\" in\n"
         "  scheduler) mode=" << scheduler << " ;;\n"
         "  *) mode=" << deployer << " ;;\n"
         "esac\n"
         "case \"$mode\" in\n"
         "real)\n"
         "  exec '" DEMO_SERVER_PATH "' \"$@\" ;;\n"
         "never_ready)\n"
         "  echo \"never_ready: pid $$, not listening\"\n"
         "  while :; do sleep 1; done ;;\n"
         "slow_stop)\n"
         "  trap 'echo \"slow_stop: got SIGTERM, ignoring it\"' TERM\n"
         "  '" DEMO_SERVER_PATH "' \"$@\" &\n"
         "  echo \"slow_stop: pid $$\"\n"
         "  while :; do sleep 1 & wait $!; done ;;\n"
         "esac\n";
  out.close();
  REQUIRE(out.good());
  fs::permissions(script, fs::perms::owner_all);
  return script;
}

// Kills, on the way out, every process whose command line names `dir` (what a
// failing test may leave: the scripts above and their servers).
struct Sweep {
  fs::path dir;
  ~Sweep() {
    for (int round = 0; round < 100; ++round) {
      std::vector<pid_t> found;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
        const auto pid = static_cast<pid_t>(std::stol(name));
        if (pid != ::getpid() && contains(read_file(e.path() / "cmdline"), dir.string()) && alive(pid))
          found.push_back(pid);
      }
      if (found.empty()) return;
      if (round == 0) FAIL_CHECK(found.size() << " process(es) of the test's scripts left running; killing them");
      for (pid_t pid : found) ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
};

// Polls `done` every 2 ms; false after two minutes (a ceiling for a loaded
// machine, not a timing assertion).
template <class F> bool eventually(F done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// The pid a script wrote after `marker` ("never_ready: pid 123, ...") in a log, or 0.
pid_t logged_pid(const fs::path& log, const std::string& marker) {
  const std::string text = read_file(log);
  const auto at = text.find(marker);
  return at == std::string::npos ? 0 : static_cast<pid_t>(std::atol(text.c_str() + at + marker.size()));
}

// One demo_stack in the background of the test, its output going to files, so
// that the test can signal it while it runs.
class Background {
public:
  Background(const Sandbox& box, const std::vector<std::string>& words,
             const std::vector<std::pair<std::string, std::string>>& env)
      : out_(box.dir / "background.out"), err_(box.dir / "background.err") {
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      const int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      const int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (out < 0 || err < 0) ::_exit(126);
      ::dup2(out, 1);
      ::dup2(err, 2);
      for (const char* name : {"DEMO_STACK_STATE_DIR", "DEMO_STACK_PORT_BASE", "DEMO_STACK_SERVER", "DEMO_STACK", "NO_COLOR"})
        ::unsetenv(name);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      if (::chdir(box.dir.c_str()) != 0) ::_exit(126);
      std::vector<std::string> argv{DEMO_STACK_PATH};
      argv.insert(argv.end(), words.begin(), words.end());
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0) { // a test that failed before waiting for it
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  void signal(int sig) const { REQUIRE(::kill(pid_, sig) == 0); }
  // Not ended yet (looked at without reaping it).
  [[nodiscard]] bool running() const {
    siginfo_t si{};
    return pid_ > 0 && ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
  }

  // Waits for it to end (killed after two minutes: a guard, not an assertion on time).
  Result finish() {
    Result r;
    int status = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        FAIL_CHECK("demo_stack did not finish");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.signaled = WIFSIGNALED(status);
    r.out = read_file(out_);
    r.err = read_file(err_);
    return r;
  }

private:
  fs::path out_, err_;
  pid_t pid_ = -1;
};

std::vector<std::pair<std::string, std::string>> with_server(const Sandbox& box, const fs::path& script) {
  auto env = box.env();
  env.emplace_back("DEMO_STACK_SERVER", script.string());
  return env;
}

} // namespace

TEST_CASE("SIGINT or SIGTERM during stack up: the daemon being started is stopped, the rollback undoes the command, "
          "exit 130 or 143") {
  for (const int sig : {SIGINT, SIGTERM}) {
    CAPTURE(sig);
    Sandbox box;
    Sweep sweep{box.dir};
    const fs::path script = server_script(box, "real", "never_ready");
    const fs::path deployer_log = box.state / "model_deployer" / "daemon.log";
    Background ctl(box, {"stack", "up"}, with_server(box, script));
    // The deployer is being started: its process runs and demo_stack waits for it to be ready.
    REQUIRE(eventually([&] { return logged_pid(deployer_log, "never_ready: pid ") > 0 || !ctl.running(); }));
    const pid_t deployer = logged_pid(deployer_log, "never_ready: pid ");
    REQUIRE(deployer > 0);
    const pid_t orchestrator = daemon_pid(box.port);
    CHECK(orchestrator > 0);
    ctl.signal(sig);
    const Result r = ctl.finish();
    INFO(r.out);
    INFO(r.err);
    CHECK_FALSE(r.signaled); // it handled the signal and exited
    CHECK(r.code == 128 + sig);
    CHECK(contains(r.err, sig == SIGINT ? "error: stack up interrupted (SIGINT)\n" : "error: stack up interrupted (SIGTERM)\n"));
    CHECK(contains(r.err, "local_daemon 'deployer' (model_deployer) was stopped before it was ready: a stop was requested"));
    CHECK(contains(r.err, "rollback: undid the "));
    CHECK(contains(r.err, "the stack is as it was before"));
    CHECK(contains(r.out, "orchestrator 'scheduler' suspended (rollback)"));
    CHECK(contains(r.out, "model_deployer 'deployer' deprovisioned (rollback)"));
    CHECK_FALSE(contains(r.out, "experiment_tracker 'tracker' resum")); // nothing started after the signal
    // Neither the daemon being started nor the one started before it is left.
    wait_gone(deployer);
    CHECK_FALSE(alive(deployer));
    if (orchestrator > 0) CHECK_FALSE(alive(orchestrator));
    CHECK(box.daemons().empty());
    CHECK(box.state_empty());
  }
}

TEST_CASE("a second SIGINT during a slow rollback ends demo_stack at once; stack down --force cleans up") {
  Sandbox box;
  Sweep sweep{box.dir};
  const fs::path script = server_script(box, "slow_stop", "never_ready");
  const fs::path orchestrator_log = box.state / "orchestrator" / "daemon.log";
  const fs::path deployer_log = box.state / "model_deployer" / "daemon.log";
  Background ctl(box, {"stack", "up"}, with_server(box, script));
  REQUIRE(eventually([&] { return logged_pid(deployer_log, "never_ready: pid ") > 0 || !ctl.running(); }));
  const pid_t scheduler = logged_pid(orchestrator_log, "slow_stop: pid ");
  REQUIRE(scheduler > 0);
  ctl.signal(SIGINT);
  // The rollback is stopping the orchestrator, which ignores SIGTERM: demo_stack
  // would wait 5 s before killing it. The second Ctrl-C does not wait.
  REQUIRE(eventually([&] { return contains(read_file(orchestrator_log), "slow_stop: got SIGTERM") || !ctl.running(); }));
  REQUIRE(ctl.running());
  ctl.signal(SIGINT);
  const Result r = ctl.finish();
  INFO(r.out);
  INFO(r.err);
  CHECK_FALSE(r.signaled);
  CHECK(r.code == 130);
  CHECK(contains(r.err, "demo_stack: interrupted again: stopped at once; the stack may be partly up: "
                        "'demo_stack stack down --force' cleans it up\n"));
  CHECK_FALSE(contains(r.err, "rollback: undid")); // it did not finish the rollback
  CHECK(alive(scheduler));                         // ... so the orchestrator is still there

  const Result down = box.ctl({"stack", "down", "--force"});
  INFO(down.out);
  INFO(down.err);
  CHECK(down.code == 0);
  wait_gone(scheduler);
  CHECK_FALSE(alive(scheduler));
  CHECK(box.daemons().empty());
  CHECK(box.state_empty());
}

TEST_CASE("SIGINT during stack down: the component in flight finishes, the rest is left as it was and named, exit 130") {
  Sandbox box;
  Sweep sweep{box.dir};
  const fs::path script = server_script(box, "real", "slow_stop");
  const auto env = with_server(box, script);
  const Result up = spawn({DEMO_STACK_PATH, "stack", "up"}, env, box.dir);
  INFO(up.out);
  INFO(up.err);
  REQUIRE(up.code == 0);
  const pid_t orchestrator = daemon_pid(box.port);
  REQUIRE(orchestrator > 0);
  const fs::path deployer_log = box.state / "model_deployer" / "daemon.log";
  const pid_t deployer = logged_pid(deployer_log, "slow_stop: pid ");
  REQUIRE(deployer > 0);

  Background ctl(box, {"stack", "down"}, env);
  // The deployer is being stopped (it ignores SIGTERM; demo_stack kills it after 5 s).
  REQUIRE(eventually([&] { return contains(read_file(deployer_log), "slow_stop: got SIGTERM") || !ctl.running(); }));
  REQUIRE(ctl.running());
  ctl.signal(SIGINT);
  const Result r = ctl.finish();
  INFO(r.out);
  INFO(r.err);
  CHECK_FALSE(r.signaled);
  CHECK(r.code == 130);
  CHECK(contains(r.err, "error: stack down interrupted (SIGINT)\n"));
  CHECK(contains(r.err, "left as they were: orchestrator, artifact_store"));
  CHECK(contains(r.out, "experiment_tracker 'tracker' suspended"));
  CHECK(contains(r.out, "model_deployer 'deployer' suspended")); // the one in flight finished
  CHECK_FALSE(contains(r.out, "orchestrator 'scheduler' suspend"));
  CHECK_FALSE(alive(deployer));
  CHECK(daemon_pid(box.port) == orchestrator); // left running
  const Result status = box.ctl({"stack", "status"});
  CHECK(contains(status.out, "stack 'local': 2 of 4 running, 4 provisioned"));

  const Result down = box.ctl({"stack", "down", "--force"});
  CHECK(down.code == 0);
  wait_gone(orchestrator);
  CHECK(box.daemons().empty());
  CHECK(box.state_empty());
}

TEST_CASE("after the test run, no demo daemon of this run is left running") {
  CHECK(demo_daemons(all_ports_used).empty());
}
