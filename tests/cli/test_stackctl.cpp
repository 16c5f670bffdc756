// The built stackctl demo, each command a separate process: golden transcripts
// (timings, pids, ports and paths masked), bad input, state found on disk by
// later processes, a daemon killed behind the stack's back, and no daemon left.
//
// Regenerate the golden files after reviewing a change of output:
//   STACKCTL_UPDATE_GOLDEN=1 ./stackctl_tests
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
    for (const char* name : {"STACKCTL_STATE_DIR", "STACKCTL_PORT_BASE", "STACKCTL_SERVER", "STACKCTL", "NO_COLOR"})
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
    std::string tmpl = (fs::temp_directory_path() / "stackctl-test-XXXXXX").string();
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
    return {{"STACKCTL_STATE_DIR", state.string()}, {"STACKCTL_PORT_BASE", std::to_string(port)}};
  }
  Result ctl(const std::vector<std::string>& words, bool merge = false) const {
    std::vector<std::string> argv{STACKCTL_PATH};
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
      t += "$ stackctl";
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
  const fs::path file = fs::path(STACKCTL_GOLDEN_DIR) / (name + ".txt");
  if (const char* update = std::getenv("STACKCTL_UPDATE_GOLDEN"); update != nullptr && *update == '1') {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << actual;
    MESSAGE("updated " << file.string());
    return;
  }
  INFO("golden file " << file.string() << " (after reviewing the change, STACKCTL_UPDATE_GOLDEN=1 regenerates it)");
  REQUIRE(fs::exists(file));
  CHECK(read_file(file) == actual);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

} // namespace

TEST_CASE("tour: the README's scripted tour, golden, ends with nothing running and an empty state directory") {
  Sandbox box;
  auto env = box.env();
  env.emplace_back("STACKCTL", STACKCTL_PATH);
  const Result r = spawn({"/bin/bash", STACKCTL_TOUR_PATH}, env, box.dir, true);
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

  const Result bad_port = spawn({STACKCTL_PATH, "stack", "up"}, {{"STACKCTL_PORT_BASE", "eighty"}}, box.dir);
  CHECK(bad_port.code == 2);
  CHECK(contains(bad_port.err, "STACKCTL_PORT_BASE must be a port from 1024 to 65534"));
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
  r = spawn({STACKCTL_PATH, "artifact_store", "up"}, {}, box.dir);
  CHECK(r.code == 0);
  CHECK(fs::is_directory(box.dir / ".stackup-demo" / "artifacts"));
  CHECK(spawn({STACKCTL_PATH, "artifact_store", "down", "--force"}, {}, box.dir).code == 0);
  CHECK(spawn({STACKCTL_PATH, "--state-dir", other.string(), "stack", "down", "--force"}, {}, box.dir).code == 0);
  CHECK(fs::is_empty(other));
  CHECK(fs::is_empty(box.dir / ".stackup-demo"));
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

TEST_CASE("after the test run, no demo daemon of this run is left running") {
  CHECK(demo_daemons(all_ports_used).empty());
}
