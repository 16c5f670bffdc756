// Container against real containers (podman, tests/support/podman.hpp's image):
// create, start with readiness, stop, kill from outside, ownership, volumes,
// query batching, the errors people meet, and the docker engine (a `docker`
// backed by podman). Every test removes what it created, even when it fails
// (Cleanup), and uses a stack name of its own.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/podman.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Web = stackup::Container<"web">;
using messages::contains;
using messages::error_of;

static_assert(stackup::Provisionable<Web> && stackup::Resumable<Web> && stackup::Suspendable<Web> &&
              stackup::Deprovisionable<Web>);
// Without a template argument it takes its role at run time, as LocalDaemon{cfg}.
static_assert(std::is_same_v<decltype(stackup::Container{std::declval<stackup::ContainerConfig>()}), stackup::Container<"">>);

// A stack name no other test (or run) uses.
std::string unique_stack(std::string_view what) {
  static int n = 0;
  return "t" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "-" + std::string(what);
}

// What `command` printed (stdout), trailing line breaks removed.
std::string output_of(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Removes every container and volume labelled with the stack, on the way out.
struct Cleanup {
  std::string stack;
  explicit Cleanup(std::string s) : stack(std::move(s)) { (void)podman::test_image(); }
  ~Cleanup() {
    const std::string filter = " --filter label=io.stackup.stack=" + stack;
    podman::sh("podman ps -aq" + filter + " | xargs -r podman rm -f -t 0 >/dev/null 2>&1");
    // One at a time: podman removes none of the names when one is missing.
    for (const char* role : {"web", "api"}) podman::sh("podman rm -f -t 0 stackup-" + stack + "-" + role + " >/dev/null 2>&1");
    podman::sh("podman volume ls -q" + filter + " | xargs -r podman volume rm -f >/dev/null 2>&1");
    podman::sh("podman volume ls -q --filter name=" + stack + " | xargs -r podman volume rm -f >/dev/null 2>&1");
  }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
};

// Sets an environment variable for the test's lifetime.
struct SetEnv {
  std::string key;
  std::optional<std::string> old;
  SetEnv(std::string k, const std::string& value) : key(std::move(k)) {
    if (const char* v = std::getenv(key.c_str())) old = v;
    ::setenv(key.c_str(), value.c_str(), 1);
  }
  ~SetEnv() {
    if (old) ::setenv(key.c_str(), old->c_str(), 1);
    else ::unsetenv(key.c_str());
  }
  SetEnv(const SetEnv&) = delete;
  SetEnv& operator=(const SetEnv&) = delete;
};

// GET / on 127.0.0.1:port with a real connection: the response, or "" when
// nothing answers.
std::string http_get(std::uint16_t port, std::string_view path = "/") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  const auto addr = ports::loopback(port);
  std::string out;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET " + std::string(path) + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n = 0;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

// httpd of the test image on 127.0.0.1:port, ready when GET / answers.
stackup::ContainerConfig web_config(const std::string& stack, std::uint16_t port) {
  return {.stack = stack,
          .image = podman::test_image(),
          .engine = "podman",
          .command = {"httpd", "-f", "-p", "80", "-h", "/www"},
          .ports = {"127.0.0.1:" + std::to_string(port) + ":80"},
          .ready = stackup::ready::http(port, "/"),
          .stop_timeout = 2s};
}

std::string label_of(const std::string& container, const std::string& key) {
  return output_of("podman inspect --format '{{index .Config.Labels \"" + key + "\"}}' " + container + " 2>/dev/null");
}

// The non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto nl = text.find('\n', at);
    std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    if (!line.empty()) out.push_back(std::move(line));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  return out;
}

bool container_exists(const std::string& name) { return podman::sh("podman container exists " + name) == 0; }

} // namespace

TEST_CASE("container: provision creates it labelled, resume serves, suspend stops, deprovision removes") {
  const std::string stack = unique_stack("life");
  Cleanup cleanup(stack);
  const std::uint16_t port = ports::free_port();
  Web web(web_config(stack, port));
  const std::string name = "stackup-" + stack + "-web";
  CHECK(web.container_name() == name);
  CHECK(web.flavor == "container");
  CHECK_FALSE(web.is_provisioned());
  CHECK_FALSE(web.is_running());

  web.provision();
  CHECK(web.is_provisioned());
  CHECK_FALSE(web.is_running());
  CHECK(label_of(name, "io.stackup.stack") == stack);
  CHECK(label_of(name, "io.stackup.role") == "web");
  CHECK(label_of(name, "io.stackup.config") == web.config_hash());
  // The engine's own restart is never set: stackup's supervisor restarts.
  CHECK(output_of("podman inspect --format '{{.HostConfig.RestartPolicy.Name}}' " + name) == "");
  CHECK(web.is_current());

  web.resume();
  CHECK(web.is_running());
  CHECK(contains(http_get(port), "stackup test image"));
  CHECK(contains(web.detail(), "container "));
  CHECK(contains(web.detail(), std::to_string(port)));
  CHECK_FALSE(web.exit_status());

  web.suspend();
  CHECK(web.is_provisioned());
  CHECK_FALSE(web.is_running());
  CHECK(http_get(port).empty());
  CHECK_FALSE(web.exit_status()); // stopped by us: no exit of its own

  web.resume();
  CHECK(web.is_running());
  CHECK(contains(http_get(port), "stackup test image"));

  web.deprovision();
  CHECK_FALSE(web.is_provisioned());
  CHECK_FALSE(container_exists(name));
  web.deprovision(); // nothing left: nothing to do
}

TEST_CASE("container: a kill from outside is seen: not running, and its exit code") {
  const std::string stack = unique_stack("kill");
  Cleanup cleanup(stack);
  const std::uint16_t port = ports::free_port();
  Web web(web_config(stack, port));
  web.provision();
  web.resume();
  REQUIRE(web.is_running());
  REQUIRE(podman::sh("podman kill " + web.container_name() + " >/dev/null") == 0);
  CHECK(processes::eventually([&] { return !web.is_running(); }));
  CHECK(web.is_provisioned());
  const auto exit = web.exit_status();
  REQUIRE(exit);
  CHECK(exit->code == 137); // 128 + SIGKILL, as the engine reports it
  CHECK(exit->at.time_since_epoch().count() > 0);

  // kill() does the same from stackup; resume starts it again.
  web.resume();
  CHECK(web.is_running());
  web.kill();
  CHECK_FALSE(web.is_running());
  REQUIRE(web.exit_status());
  CHECK(web.exit_status()->code == 137);
}

TEST_CASE("container: is_current follows the settings the container was created with") {
  const std::string stack = unique_stack("current");
  Cleanup cleanup(stack);
  const std::uint16_t port = ports::free_port();
  Web web(web_config(stack, port));
  CHECK(web.is_current()); // nothing created: nothing outdated
  web.provision();
  CHECK(web.is_current());
  auto changed = web_config(stack, port);
  changed.env["MODE"] = "other";
  CHECK_FALSE(Web(changed).is_current());
  CHECK(Web(web_config(stack, port)).is_current());
}

TEST_CASE("container: one with its name but not its labels is never touched") {
  const std::string stack = unique_stack("foreign");
  Cleanup cleanup(stack);
  const std::string name = "stackup-" + stack + "-web";
  REQUIRE(podman::sh("podman create -q --name " + name + " " + podman::test_image() + " sleep 1000 >/dev/null") == 0);
  Web web(web_config(stack, ports::free_port()));
  CHECK_FALSE(web.is_provisioned());
  const std::string e = error_of([&] { web.provision(); });
  CHECK(contains(e, "a container named " + name + " exists that stackup did not create"));
  CHECK(contains(e, "podman rm " + name));
  web.deprovision();
  CHECK(contains(error_of([&] { web.resume(); }), "provision first"));
  CHECK(container_exists(name)); // left alone
}

TEST_CASE("container: named volumes it creates go with it; one it found stays; binds are against working_dir") {
  const std::string stack = unique_stack("volumes");
  Cleanup cleanup(stack);
  files::TempDir dir("container");
  fs::create_directories(dir.path / "site");
  files::spit(dir.path / "site/index.html", "from the bind mount\n");
  const std::string own = stack + "-data", found = stack + "-kept";
  REQUIRE(podman::sh("podman volume create " + found + " >/dev/null") == 0);
  const std::uint16_t port = ports::free_port();
  auto cfg = web_config(stack, port);
  cfg.command = {"httpd", "-f", "-p", "80", "-h", "/site"};
  cfg.volumes = {own + ":/data", found + ":/kept", "./site:/site:ro", "~/home:/home-dir:ro"};
  cfg.working_dir = dir.path;
  fs::create_directories(dir.path / "home");
  files::spit(dir.path / "home/f", "from home\n");
  SetEnv home("HOME", dir.path.string()); // `~` is expanded by stackup: the engines take it as a volume name
  Web web(cfg);
  web.provision();
  CHECK(output_of("podman volume inspect --format '{{index .Labels \"io.stackup.role\"}}' " + own) == "web");
  web.resume();
  CHECK(contains(http_get(port), "from the bind mount"));
  CHECK(output_of("podman exec " + web.container_name() + " cat /home-dir/f") == "from home");
  web.deprovision();
  CHECK(podman::sh("podman volume exists " + own) != 0);
  CHECK(podman::sh("podman volume exists " + found) == 0);
  podman::sh("podman volume rm -f " + found + " >/dev/null 2>&1");
}

TEST_CASE("container: deprovision removes its own volumes only, never another component's of the same stack") {
  const std::string stack = unique_stack("two");
  Cleanup cleanup(stack);
  auto web_cfg = web_config(stack, ports::free_port());
  web_cfg.volumes = {stack + "-web:/data"};
  auto api_cfg = web_config(stack, ports::free_port());
  api_cfg.volumes = {stack + "-api:/data"};
  Web web(web_cfg);
  stackup::Container<"api"> api(api_cfg);
  web.provision();
  api.provision();
  // The api container gone, its data kept (as after `podman rm` by hand).
  REQUIRE(podman::sh("podman rm " + api.container_name() + " >/dev/null") == 0);
  web.deprovision();
  CHECK(podman::sh("podman volume exists " + stack + "-web") != 0);
  CHECK(podman::sh("podman volume exists " + stack + "-api") == 0);
  api.deprovision();
  CHECK(podman::sh("podman volume exists " + stack + "-api") != 0);
}

TEST_CASE("container: readiness: an exit before it is ready fails resume with its code and output") {
  const std::string stack = unique_stack("exit");
  Cleanup cleanup(stack);
  auto cfg = web_config(stack, ports::free_port());
  cfg.command = {"sh", "-c", "echo going away; exit 3"};
  Web web(cfg);
  web.provision();
  const std::string e = error_of([&] { web.resume(); });
  CHECK(contains(e, "exited with code 3 before it was ready"));
  CHECK(contains(e, "going away"));
}

TEST_CASE("container: with a restart policy, an exit during start-up is left to the policy") {
  const std::string stack = unique_stack("policy");
  Cleanup cleanup(stack);
  auto cfg = web_config(stack, ports::free_port());
  cfg.command = {"sh", "-c", "exit 3"};
  cfg.restart.policy = stackup::Restart::on_failure;
  Web web(cfg);
  web.provision();
  web.resume(); // no error: a supervisor restarts it by its policy
  CHECK_FALSE(web.is_running());
  REQUIRE(web.exit_status());
  CHECK(web.exit_status()->code == 3);
  CHECK(web.supervision().restart.policy == stackup::Restart::on_failure);
}

TEST_CASE("container: without a probe, the image's healthcheck decides readiness") {
  const std::string stack = unique_stack("health");
  Cleanup cleanup(stack);
  stackup::ContainerConfig cfg{.stack = stack,
                               .image = podman::test_image(),
                               .engine = "podman",
                               .command = {"sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 1000"},
                               .run_args = {"--health-cmd", "test -e /tmp/ok", "--health-interval", "1s"},
                               .stop_timeout = 1s};
  Web web(cfg);
  web.provision();
  web.resume();
  CHECK(podman::sh("podman exec " + web.container_name() + " test -e /tmp/ok") == 0);
  CHECK(web.is_running());
}

TEST_CASE("container: within a query round, the containers of one stack ask the engine once") {
  const std::string stack = unique_stack("batch");
  Cleanup cleanup(stack);
  files::TempDir bin("container-bin");
  const fs::path log = bin.path / "calls";
  const std::string real = output_of("command -v podman");
  REQUIRE_FALSE(real.empty());
  files::spit(bin.path / "podman", "#!/bin/sh\necho \"$*\" >> '" + log.string() + "'\nexec " + real + " \"$@\"\n");
  fs::permissions(bin.path / "podman", fs::perms::owner_all);
  SetEnv path("PATH", bin.path.string() + ":" + std::getenv("PATH"));

  Web web(web_config(stack, ports::free_port()));
  auto api_cfg = web_config(stack, ports::free_port());
  stackup::Container<"api"> api(api_cfg);
  web.provision();
  api.provision();
  const auto ps_calls = [&] {
    const auto text = files::slurp(log).value_or("");
    std::size_t n = 0;
    for (std::size_t at = text.find("ps -a"); at != std::string::npos; at = text.find("ps -a", at + 1)) ++n;
    return n;
  };
  fs::remove(log);
  {
    stackup::detail::QueryRound round;
    CHECK(web.is_provisioned());
    CHECK(api.is_provisioned());
    CHECK_FALSE(web.is_running());
    CHECK_FALSE(api.is_running());
    CHECK(web.is_current());
  }
  CHECK(ps_calls() == 1);
  // Outside a round every query asks afresh.
  fs::remove(log);
  CHECK(web.is_provisioned());
  CHECK(api.is_provisioned());
  CHECK(ps_calls() == 2);
  // An action forgets the round's answer: the next query sees what it did.
  {
    stackup::detail::QueryRound round;
    CHECK_FALSE(web.is_running());
    web.resume();
    CHECK(web.is_running());
  }
}

TEST_CASE("container: env values reach the container exactly, and never the engine's command line") {
  const std::string stack = unique_stack("env");
  Cleanup cleanup(stack);
  files::TempDir bin("container-env");
  const fs::path log = bin.path / "calls";
  const std::string real = output_of("command -v podman");
  REQUIRE_FALSE(real.empty());
  files::spit(bin.path / "podman", "#!/bin/sh\necho \"$*\" >> '" + log.string() + "'\nexec " + real + " \"$@\"\n");
  fs::permissions(bin.path / "podman", fs::perms::owner_all);
  SetEnv path("PATH", bin.path.string() + ":" + std::getenv("PATH"));
  auto cfg = web_config(stack, ports::free_port());
  cfg.env = {{"SECRET", " s3cret value=1 "}, {"MULTI", "a\nb"}};
  Web web(cfg);
  web.provision();
  web.resume();
  CHECK(output_of("podman exec " + web.container_name() + " sh -c 'printf %s \"$SECRET\"'") == " s3cret value=1 ");
  CHECK(output_of("podman exec " + web.container_name() + " sh -c 'printf %s \"$MULTI\"'") == "a\nb");
  CHECK_FALSE(contains(files::slurp(log).value_or(""), "s3cret"));
}

TEST_CASE("container: no engine installed: an error naming both and how to install one") {
  const std::string stack = unique_stack("noengine");
  files::TempDir empty("container-empty");
  SetEnv path("PATH", empty.path.string());
  ::unsetenv("STACKUP_CONTAINER_ENGINE");
  auto cfg = web_config(stack, 8080);
  cfg.engine = "";
  Web web(cfg);
  const std::string e = error_of([&] { (void)web.is_provisioned(); });
  CHECK(contains(e, "neither podman nor docker is on PATH"));
  CHECK(contains(e, "apt-get install podman"));
  cfg.engine = "docker";
  CHECK(contains(error_of([&] { Web(cfg).provision(); }), "the container engine docker (engine) is not on PATH"));
}

TEST_CASE("container: the engine word and its default") {
  auto cfg = web_config("s", 8080);
  cfg.engine = "rkt";
  CHECK(contains(error_of([&] { Web{cfg}; }), ".engine is \"rkt\": give \"podman\" or \"docker\""));
  cfg.engine = "";
  SetEnv engine("STACKUP_CONTAINER_ENGINE", "lxc");
  CHECK(contains(error_of([&] { (void)Web(cfg).is_provisioned(); }), "$STACKUP_CONTAINER_ENGINE is \"lxc\""));
  cfg.image = "";
  CHECK(contains(error_of([&] { Web{cfg}; }), ".image is empty"));
  auto bad = web_config("s", 8080);
  bad.ports = {"127.0.0.1:http:80"};
  CHECK(contains(error_of([&] { Web{bad}; }), "port \"127.0.0.1:http:80\" is not [IP:][HOST:]CONTAINER"));
  bad = web_config("my stack", 8080);
  CHECK(contains(error_of([&] { Web{bad}; }), "cannot be part of a container name"));
}

TEST_CASE("container: docker's daemon not reachable: a fast, clear error") {
  if (!fs::exists("/usr/local/bin/docker")) return; // the real docker CLI, without a daemon here
  const std::string stack = unique_stack("nodaemon");
  files::TempDir bin("container-docker");
  fs::create_symlink("/usr/local/bin/docker", bin.path / "docker");
  SetEnv path("PATH", bin.path.string() + ":/usr/bin:/bin");
  SetEnv host("DOCKER_HOST", "unix://" + (bin.path / "no-daemon.sock").string());
  auto cfg = web_config(stack, 8080);
  cfg.engine = "docker";
  Web web(cfg);
  const std::string e = error_of([&] { web.provision(); });
  CHECK(contains(e, "Cannot connect to the Docker daemon"));
  CHECK(contains(e, "the docker daemon is not reachable"));
  CHECK(contains(error_of([&] { (void)web.is_running(); }), "the docker daemon is not reachable"));
}

TEST_CASE("container: an image that is not here and cannot be pulled names the image and the fix") {
  const std::string stack = unique_stack("noimage");
  Cleanup cleanup(stack);
  auto cfg = web_config(stack, ports::free_port());
  cfg.image = "docker.io/stackup-test/absent:1"; // no registry is reachable from the tests
  Web web(cfg);
  const std::string e = error_of([&] { web.provision(); });
  CHECK(contains(e, "image docker.io/stackup-test/absent:1 is not on this machine and cannot be pulled"));
  CHECK(contains(e, "podman build -t docker.io/stackup-test/absent:1"));
  CHECK(contains(e, "podman load -i"));
  CHECK_FALSE(web.is_provisioned());
}

TEST_CASE("container: a published port already taken fails resume naming the port") {
  const std::string stack = unique_stack("port");
  Cleanup cleanup(stack);
  const std::uint16_t port = ports::free_port();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  const auto addr = ports::loopback(port);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  Web web(web_config(stack, port));
  web.provision();
  const std::string e = error_of([&] { web.resume(); });
  ::close(fd);
  CHECK(contains(e, "port " + std::to_string(port)));
  CHECK(contains(e, "already taken"));
  CHECK_FALSE(web.is_running());
}

TEST_CASE("container: the docker engine (a docker CLI backed by podman)") {
  const std::string stack = unique_stack("docker");
  Cleanup cleanup(stack);
  files::TempDir bin("container-dockercli");
  const std::string real = output_of("command -v podman");
  REQUIRE_FALSE(real.empty());
  files::spit(bin.path / "docker", "#!/bin/sh\nexec " + real + " \"$@\"\n");
  fs::permissions(bin.path / "docker", fs::perms::owner_all);
  SetEnv path("PATH", bin.path.string() + ":" + std::getenv("PATH")); // podman's helpers need the rest
  SetEnv engine("STACKUP_CONTAINER_ENGINE", "docker");
  const std::uint16_t port = ports::free_port();
  auto cfg = web_config(stack, port);
  cfg.engine = ""; // from $STACKUP_CONTAINER_ENGINE
  Web web(cfg);
  web.provision();
  CHECK(web.is_provisioned());
  web.resume();
  CHECK(web.is_running());
  CHECK(contains(http_get(port), "stackup test image"));
  web.suspend();
  CHECK_FALSE(web.is_running());
  web.deprovision();
  CHECK_FALSE(web.is_provisioned());
}

TEST_CASE("container: log_command reads the engine's log: all of it, its tail, since a time, following it") {
  const std::string stack = unique_stack("logs");
  Cleanup cleanup(stack);
  // Three lines, then a fourth once /tmp/go exists, then it waits.
  Web web({.stack = stack,
           .image = podman::test_image(),
           .engine = "podman",
           .command = {"sh", "-c", "echo one; echo two; echo three >&2; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo four; "
                                   "exec sleep 1000"},
           .stop_timeout = 1s});
  // Not provisioned: an error naming the role and the fix.
  const std::string none = error_of([&] { (void)web.log_command({}); });
  CHECK(contains(none, "web"));
  CHECK(contains(none, "not provisioned"));
  CHECK(contains(none, "run `up` first"));

  web.provision();
  web.resume();
  const auto run = [](const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 30s) {
    REQUIRE_FALSE(argv.empty());
    return stackup::detail::posix::run_program(argv, {.timeout = timeout, .capture_stdout = true});
  };
  // The engine keeps standard output and error in one log; the command gives
  // the first on its stdout and the second on its stderr, as the container wrote them.
  const auto all_of = [&](const stackup::LogRequest& r) {
    const auto res = run(web.log_command(r));
    return res.out + "|" + res.stderr_tail;
  };
  REQUIRE(processes::eventually([&] { return all_of({}) == "one\ntwo\n|three\n"; }));
  CHECK(all_of({.tail = 1}) == "|three\n");
  CHECK(all_of({.tail = 2}) == "two\n|three\n");
  // It names the container by the id found by its labels.
  const auto argv = web.log_command({.tail = 5});
  CHECK(argv.back() == output_of("podman inspect --format '{{.Id}}' " + web.container_name()));

  std::this_thread::sleep_for(50ms); // the log's timestamps are the engine's; leave a gap before `since`
  const auto since = std::chrono::system_clock::now();
  std::this_thread::sleep_for(50ms);
  REQUIRE(podman::sh("podman exec " + web.container_name() + " touch /tmp/go") == 0);
  REQUIRE(processes::eventually([&] { return contains(all_of({}), "four"); }));
  CHECK(all_of({.since = since}) == "four\n|");
  CHECK(all_of({.tail = 1, .since = since}) == "four\n|");

  // Following: it goes on until it is stopped (here by the timeout), with what was written.
  const auto followed = run(web.log_command({.tail = 2, .follow = true}), 1500ms);
  CHECK(followed.timed_out);
  CHECK(followed.out == "four\n");
  CHECK(followed.stderr_tail == "three\n");
  web.deprovision();
  CHECK(contains(error_of([&] { (void)web.log_command({}); }), "not provisioned"));
}

TEST_CASE("container: log_command refuses a container of its name that is not stackup's") {
  const std::string stack = unique_stack("logsforeign");
  Cleanup cleanup(stack);
  Web web(web_config(stack, ports::free_port()));
  REQUIRE(podman::sh("podman run -d --name " + web.container_name() + " " + podman::test_image() +
                     " sh -c 'echo secret; exec sleep 1000' >/dev/null") == 0);
  const std::string msg = error_of([&] { (void)web.log_command({}); });
  CHECK(contains(msg, "web"));
  CHECK(contains(msg, "stackup did not create"));
  CHECK(contains(msg, web.container_name()));
  CHECK_FALSE(contains(msg, "secret"));
}

TEST_CASE("container: a stop of stackup's reads as no exit in another process; an exit of its own still does") {
  const std::string stack = unique_stack("stopped");
  Cleanup cleanup(stack);
  files::TempDir state("container-state");
  // Ends with 0 on SIGTERM (a stop), with 3 once /tmp/go exists (an exit of its own).
  const stackup::ContainerConfig cfg{
      .stack = stack,
      .image = podman::test_image(),
      .engine = "podman",
      .command = {"sh", "-c", "trap 'exit 0' TERM; while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 3"},
      .state_dir = state.path,
      .stop_timeout = 5s};
  // exit_status() as a fresh process sees it: 100 when empty, else its code.
  const auto seen_elsewhere = [&] {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 101;
      try {
        const Web other(cfg);
        const auto exit = other.exit_status();
        code = !exit ? 100 : exit->code.value_or(102);
      } catch (...) {
      }
      ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  };
  Web web(cfg);
  web.provision();
  web.resume();
  CHECK(seen_elsewhere() == 100); // running
  web.suspend();
  CHECK_FALSE(web.is_running());
  CHECK(seen_elsewhere() == 100); // stopped by stackup: no exit
  CHECK_FALSE(web.exit_status());

  // Started again, it exits on its own: that exit is seen, here and elsewhere.
  web.resume();
  REQUIRE(podman::sh("podman exec " + web.container_name() + " touch /tmp/go") == 0);
  REQUIRE(processes::eventually([&] { return !web.is_running(); }));
  CHECK(seen_elsewhere() == 3);
  REQUIRE(web.exit_status());
  CHECK(web.exit_status()->code == 3);
  // Removed, it leaves no record of its stops behind.
  web.deprovision();
  for (const auto& entry : fs::directory_iterator(state.path)) CHECK_FALSE(entry.path().filename().string().starts_with("stopped-"));
}

TEST_CASE("container: a stack's down --force asks the engine once for its containers and volumes, then one call each") {
  const std::string stack = unique_stack("down");
  Cleanup cleanup(stack);
  files::TempDir bin("container-bin");
  const fs::path log = bin.path / "calls";
  const std::string real = output_of("command -v podman");
  REQUIRE_FALSE(real.empty());
  files::spit(bin.path / "podman", "#!/bin/sh\necho \"$*\" >> '" + log.string() + "'\nexec " + real + " \"$@\"\n");
  fs::permissions(bin.path / "podman", fs::perms::owner_all);
  SetEnv path("PATH", bin.path.string() + ":" + std::getenv("PATH"));

  auto web_cfg = web_config(stack, ports::free_port());
  web_cfg.volumes = {stack + "-wdata:/data"};
  auto api_cfg = web_config(stack, ports::free_port());
  api_cfg.volumes = {stack + "-adata:/data", stack + "-found:/found"};
  // A volume it finds (no labels of stackup's) is mounted, never removed.
  REQUIRE(podman::sh("podman volume create " + stack + "-found >/dev/null") == 0);
  stackup::Stack<Web, stackup::Container<"api">> s(stack, Web(web_cfg), stackup::Container<"api">(api_cfg));
  s.up();
  REQUIRE(s.get<Web>().is_running());
  fs::remove(log);
  s.down({.force = true});
  const auto calls = lines_of(files::slurp(log).value_or(""));
  const auto count = [&](std::string_view start) {
    return std::count_if(calls.begin(), calls.end(), [&](const std::string& c) { return c.starts_with(start); });
  };
  INFO("engine calls: " << files::slurp(log).value_or(""));
  CHECK(count("ps -a") == 1);
  CHECK(count("volume ls") == 1);
  CHECK(count("stop ") == 2);            // the suspends
  CHECK(count("rm -f -t 2 ") == 2);      // the removals, one call each
  CHECK(count("volume rm ") == 2);       // their own volumes
  CHECK(calls.size() == 8);
  CHECK_FALSE(container_exists("stackup-" + stack + "-web"));
  CHECK_FALSE(container_exists("stackup-" + stack + "-api"));
  CHECK(podman::sh("podman volume exists " + stack + "-wdata") != 0);
  CHECK(podman::sh("podman volume exists " + stack + "-adata") != 0);
  CHECK(podman::sh("podman volume exists " + stack + "-found") == 0);
}
