// Kubernetes<"role">: the kubectl engine against a recorded stand-in for kubectl
// (tests/support/kubectl: no cluster can run here) whose answers follow
// kubectl's output formats, checking the exact command lines; the podman engine
// for real (podman kube play of a Deployment serving HTTP); and a real cluster
// when STACKUP_TEST_KUBE_CONTEXT names one.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/podman.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using K8s = stackup::Kubernetes<"web">;

static_assert(stackup::Provisionable<K8s> && stackup::Resumable<K8s> && stackup::Suspendable<K8s> &&
              stackup::Deprovisionable<K8s>);
static_assert(std::is_move_constructible_v<K8s>);
static_assert(stackup::detail::has_log_command<K8s>); // `<role> logs` reads what its engine keeps

using files::slurp;
using files::spit;
using files::TempDir;
using messages::contains;
using messages::error_of;

// Sets an environment variable for its lifetime (restoring what it was).
struct Env {
  std::string name;
  std::optional<std::string> old;
  Env(std::string n, const std::string& value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~Env() {
    if (old) ::setenv(name.c_str(), old->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
};

// The stand-in kubectl first on PATH, its pretend cluster and its call log in
// a directory of their own.
struct StandIn {
  TempDir dir{"kube"};
  fs::path bin = dir.path / "bin", log = dir.path / "calls", state = dir.path / "cluster.json";
  std::optional<Env> path, log_var, state_var;
  StandIn() {
    fs::create_directories(bin);
    fs::create_symlink(fs::path(STACKUP_TEST_SOURCE_DIR) / "tests/support/kubectl", bin / "kubectl");
    path.emplace("PATH", bin.string() + ":" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"));
    log_var.emplace("KUBECTL_STANDIN_LOG", log.string());
    state_var.emplace("KUBECTL_STANDIN_STATE", state.string());
    cluster(R"({"contexts": ["dev"], "reachable": true, "objects": {}})");
  }
  void cluster(std::string_view json) const { spit(state, json); }
  // Each call's arguments.
  [[nodiscard]] std::vector<std::vector<std::string>> calls() const {
    std::vector<std::vector<std::string>> out;
    const std::string text = slurp(log).value_or("");
    std::size_t start = 0;
    while (start < text.size()) {
      const auto end = text.find('\n', start);
      std::vector<std::string> argv;
      std::string arg;
      for (std::size_t i = start; i < end; ++i) {
        if (text[i] == '\x1f') {
          argv.push_back(arg);
          arg.clear();
        } else {
          arg += text[i];
        }
      }
      argv.push_back(arg);
      out.push_back(argv);
      start = end + 1;
    }
    return out;
  }
  // The standard input of call n (from 1).
  [[nodiscard]] std::string input(std::size_t n) const {
    return slurp(log.string() + "." + std::to_string(n)).value_or("");
  }
  void forget_calls() const {
    const auto n = calls().size();
    fs::remove(log);
    for (std::size_t i = 1; i <= n; ++i) fs::remove(log.string() + "." + std::to_string(i));
  }
  [[nodiscard]] std::string cluster_json() const { return slurp(state).value_or(""); }
};

// A Deployment (2 replicas) and a ConfigMap, in JSON (which is YAML).
constexpr std::string_view deployment = R"({"apiVersion": "apps/v1", "kind": "Deployment",
 "metadata": {"name": "web"},
 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
  "template": {"metadata": {"labels": {"app": "web"}},
   "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
---
{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"}, "data": {"a": "b"}}
)";

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

bool called(const StandIn& k, std::string_view part) {
  for (const auto& c : k.calls())
    if (contains(joined(c), part)) return true;
  return false;
}

K8s kubectl_component(const fs::path& dir, std::string context = "dev", std::string ns = "ml") {
  return K8s{{.manifests = {"k8s"}, .context = std::move(context), .namespace_ = std::move(ns),
              .ready_timeout = 20s, .working_dir = dir, .stack = "shop"}};
}

} // namespace

TEST_CASE("kubernetes/kubectl: provision labels every object, then server-side applies it with our field manager") {
  StandIn k;
  const fs::path dir = k.dir.path / "project";
  fs::create_directories(dir / "k8s");
  spit(dir / "k8s/app.yaml", deployment);
  K8s web = kubectl_component(dir);
  CHECK_FALSE(web.is_provisioned());
  k.forget_calls();

  web.provision();
  const auto calls = k.calls();
  REQUIRE(calls.size() == 3);
  const std::string file = (dir / "k8s/app.yaml").string();
  CHECK(calls[0] == std::vector<std::string>{"label", "--local", "--overwrite", "-f", file, "stackup.io/stack=shop",
                                             "stackup.io/role=web", "stackup.io/config=" + web.config_hash(), "-o",
                                             "json"});
  // Ownership first: who holds objects of these names now.
  CHECK(joined(calls[1]).starts_with("--context dev -n ml get -f - --ignore-not-found -o jsonpath="));
  CHECK(std::vector<std::string>(calls[2].begin(), calls[2].begin() + 9) ==
        std::vector<std::string>{"--context", "dev", "-n", "ml", "apply", "--server-side", "--field-manager=stackup",
                                 "-f", "-"});
  CHECK_FALSE(called(k, "--force-conflicts"));
  // What was applied carries the labels.
  const std::string applied = k.input(3);
  CHECK(contains(applied, R"("stackup.io/stack": "shop")"));
  CHECK(contains(applied, R"("stackup.io/role": "web")"));
  CHECK(contains(applied, R"("kind": "ConfigMap")"));
  CHECK(k.input(2) == applied);

  CHECK(web.is_provisioned());
  CHECK(web.is_running()); // the stand-in's Deployment is ready at once
  CHECK(web.is_current());
  CHECK(contains(joined(k.calls().back()), "get deployment,configmap -l stackup.io/stack=shop,stackup.io/role=web -o jsonpath="));
}

TEST_CASE("kubernetes/kubectl: suspend records the replicas and scales to 0; resume scales back and waits for the rollout") {
  StandIn k;
  const fs::path dir = k.dir.path / "project";
  fs::create_directories(dir / "k8s");
  spit(dir / "k8s/app.yaml", deployment);
  K8s web = kubectl_component(dir);
  web.provision();
  REQUIRE(web.is_running());
  k.forget_calls();

  web.suspend();
  CHECK(called(k, "--context dev -n ml annotate deployment/web stackup.io/replicas=2 --overwrite"));
  CHECK(called(k, "--context dev -n ml scale deployment/web --replicas=0"));
  CHECK_FALSE(called(k, "configmap/web-config"));
  CHECK_FALSE(web.is_running());
  CHECK(web.is_provisioned());
  web.suspend(); // twice: the recorded replicas stay 2
  CHECK(contains(k.cluster_json(), R"("stackup.io/replicas": "2")"));

  k.forget_calls();
  web.resume();
  CHECK(called(k, "--context dev -n ml scale deployment/web --replicas=2"));
  CHECK(called(k, "--context dev -n ml rollout status deployment/web --timeout="));
  CHECK(web.is_running());

  k.forget_calls();
  web.deprovision();
  CHECK(called(k, "--context dev -n ml delete deployment,configmap -l stackup.io/stack=shop,stackup.io/role=web "
                  "--ignore-not-found --wait=true"));
  CHECK_FALSE(web.is_provisioned());
  CHECK_FALSE(contains(k.cluster_json(), "web-config"));
}

TEST_CASE("kubernetes/kubectl: manifests without a Deployment or StatefulSet run whenever they are provisioned") {
  StandIn k;
  const fs::path dir = k.dir.path / "project";
  fs::create_directories(dir / "k8s");
  spit(dir / "k8s/config.json",
       R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only"}, "data": {"a": "b"}})");
  K8s web = kubectl_component(dir, "", "");
  CHECK_FALSE(web.is_running());
  web.provision();
  CHECK(web.is_running());
  // Neither context nor namespace given: kubectl's own are used.
  for (const auto& c : k.calls()) CHECK_FALSE(contains(joined(c), "--context"));
}

TEST_CASE("kubernetes/kubectl: edited manifests or settings make it outdated; update() applies again, deleting nothing") {
  StandIn k;
  const fs::path dir = k.dir.path / "project";
  fs::create_directories(dir / "k8s");
  spit(dir / "k8s/app.yaml", deployment);
  K8s web = kubectl_component(dir);
  web.provision();
  CHECK(web.is_current());
  const std::string before = web.config_hash();

  std::string edited(deployment);
  edited.replace(edited.find("nginx"), 5, "nginx:2");
  spit(dir / "k8s/app.yaml", edited);
  CHECK(web.config_hash() != before);
  CHECK_FALSE(web.is_current());
  CHECK(contains(web.detail(), "outdated"));
  // Another namespace is another setting.
  CHECK(kubectl_component(dir, "dev", "other").config_hash() != web.config_hash());

  k.forget_calls();
  web.update();
  CHECK(called(k, "apply --server-side --field-manager=stackup -f -"));
  CHECK_FALSE(called(k, "delete"));
  CHECK(web.is_current());
  CHECK(contains(k.cluster_json(), "nginx:2"));
}

TEST_CASE("kubernetes/kubectl: an object of these names without our labels is never changed") {
  StandIn k;
  k.cluster(R"({"contexts": ["dev"], "reachable": true, "objects": {"Deployment/web": {"apiVersion": "apps/v1",
    "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1}}}})");
  const fs::path dir = k.dir.path / "project";
  fs::create_directories(dir / "k8s");
  spit(dir / "k8s/app.yaml", deployment);
  K8s web = kubectl_component(dir);
  const std::string e = error_of([&] { web.provision(); });
  CHECK(contains(e, "Deployment/web exists in the cluster of context 'dev' without stackup's labels for stack 'shop' and role 'web'"));
  CHECK(contains(e, "kubectl delete deployment web"));
  CHECK_FALSE(called(k, "apply"));
  CHECK(contains(k.cluster_json(), R"("replicas": 1)"));
}

TEST_CASE("kubernetes/kubectl: errors name the thing and the fix") {
  StandIn k;
  const fs::path dir = k.dir.path / "project";
  fs::create_directories(dir / "k8s");
  spit(dir / "k8s/app.yaml", deployment);

  SUBCASE("kubectl not installed") {
    Env path("PATH", (k.dir.path / "empty").string());
    const std::string e = error_of([&] { kubectl_component(dir).provision(); });
    CHECK(contains(e, "kubectl is not installed (not found in PATH): install it"));
    CHECK(contains(e, "engine = \"podman\""));
  }
  SUBCASE("an unknown context") {
    const std::string e = error_of([&] { kubectl_component(dir, "k3d-gone").provision(); });
    CHECK(contains(e, "kubectl has no context 'k3d-gone' (see `kubectl config get-contexts`)"));
    CHECK(contains(error_of([&] { (void)kubectl_component(dir, "k3d-gone").is_provisioned(); }), "no context 'k3d-gone'"));
  }
  SUBCASE("an unreachable cluster") {
    k.cluster(R"({"contexts": ["dev"], "reachable": false, "objects": {}})");
    const std::string e = error_of([&] { kubectl_component(dir).provision(); });
    CHECK(contains(e, "the cluster of context 'dev' cannot be reached: start it, or fix 'context'"));
    CHECK(contains(e, "connection refused"));
  }
  SUBCASE("a server-side apply conflict names the object, and nothing forces it") {
    k.cluster(R"({"contexts": ["dev"], "reachable": true, "objects": {}, "conflicts": ["Deployment/web"]})");
    const std::string e = error_of([&] { kubectl_component(dir).provision(); });
    CHECK(contains(e, "server-side apply conflict on Deployment/web"));
    CHECK(contains(e, "stackup never forces"));
    CHECK_FALSE(called(k, "--force-conflicts"));
  }
  SUBCASE("ready_timeout passed: which Deployment, and why from its status") {
    k.cluster(R"({"contexts": ["dev"], "reachable": true, "objects": {}, "stuck": ["Deployment/web"]})");
    K8s web = kubectl_component(dir);
    web.provision();
    CHECK_FALSE(web.is_running());
    const std::string e = error_of([&] { web.resume(); });
    CHECK(contains(e, "deployment/web is not ready within ready_timeout (20s)"));
    CHECK(contains(e, "0 of 2 replicas ready"));
    CHECK(contains(e, "Progressing=False ProgressDeadlineExceeded"));
  }
  SUBCASE("an invalid manifest: kubectl's message, with the file") {
    spit(dir / "k8s/bad.yaml", "kind: [\n");
    const std::string e = error_of([&] { kubectl_component(dir).provision(); });
    CHECK(contains(e, "a manifest is invalid"));
    CHECK(contains(e, (dir / "k8s/bad.yaml").string()));
    CHECK_FALSE(called(k, "apply"));
  }
  SUBCASE("a missing manifest") {
    K8s web{{.manifests = {"nowhere.yaml"}, .working_dir = dir}};
    CHECK(contains(error_of([&] { web.provision(); }), "manifest '" + (dir / "nowhere.yaml").string() + "' does not exist"));
  }
  SUBCASE("no manifests, a stack name that cannot be a label") {
    CHECK(contains(error_of([&] { K8s{{.working_dir = dir}}; }), "no manifests"));
    CHECK(contains(error_of([&] { K8s{{.manifests = {"k8s"}, .working_dir = dir, .stack = "my stack"}}; }),
                   "cannot be a Kubernetes label value"));
  }
}

TEST_CASE("kubernetes: without a template argument, like LocalDaemon; supervision keys") {
  TempDir d("kube");
  stackup::Kubernetes<> any{{.manifests = {"k8s"}, .working_dir = d.path,
                             .restart = {.policy = stackup::Restart::always}}};
  CHECK(any.supervision().restart.policy == stackup::Restart::always);
  CHECK(stackup::Kubernetes<>::flavor == "kubernetes");
  CHECK(any.config().manifests.front() == d.path / "k8s");
  CHECK(any.config().stack == d.path.filename().string());
  stackup::AnyComponent wrapped("orchestrator", std::move(any));
  CHECK(wrapped.role() == "orchestrator");
}

// ---- podman engine, for real ----------------------------------------------------------

namespace {

// GET / on 127.0.0.1:port; the body, or nullopt when nothing answers.
std::optional<std::string> http_get(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  const sockaddr_in a = ports::loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string req = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (out.empty()) return std::nullopt;
  return out;
}

// A unique name per test run, and the pods of that name removed at the end even
// when the test fails.
struct PodNames {
  std::string name;
  explicit PodNames(std::string_view what)
      : name("stackup-" + std::string(what) + "-" + std::to_string(::getpid())) {}
  ~PodNames() { podman::sh("podman pod rm --force --ignore " + name + "-pod-0 " + name + " >/dev/null 2>&1"); }
};

std::string served_by_httpd(const std::string& name, std::uint16_t port) {
  return R"({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ")" + name + R"("},
 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": ")" + name + R"("}},
  "template": {"metadata": {"labels": {"app": ")" + name + R"("}},
   "spec": {"containers": [{"name": "httpd", "image": ")" + std::string(podman::test_image()) + R"(",
     "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
     "ports": [{"containerPort": 8080, "hostPort": )" + std::to_string(port) + R"(, "hostIP": "127.0.0.1"}]}]}}}}
)";
}

} // namespace

TEST_CASE("kubernetes/podman: kube play creates the pods, resume serves HTTP, suspend stops, deprovision takes them down") {
  podman::use_test_settings();
  TempDir d("kube");
  PodNames pod("kweb");
  const std::uint16_t port = ports::free_port();
  fs::create_directories(d.path / "k8s");
  spit(d.path / "k8s/web.yaml", served_by_httpd(pod.name, port));
  K8s web{{.manifests = {"k8s"}, .engine = stackup::KubernetesEngine::podman, .ready_timeout = 60s,
           .working_dir = d.path}};
  CHECK_FALSE(web.is_provisioned());

  web.provision();
  CHECK(web.is_provisioned());
  CHECK_FALSE(web.is_running());
  CHECK_FALSE(http_get(port));
  const std::string record = slurp(d.path / ".stackup/web/applied").value_or("");
  CHECK(record.starts_with("podman " + web.config_hash() + "\n"));
  CHECK(contains(record, " " + pod.name + "-pod-0\n"));

  web.resume();
  CHECK(web.is_running());
  std::optional<std::string> body;
  CHECK(processes::eventually([&] { return (body = http_get(port)).has_value(); }, 20s));
  CHECK(contains(body.value_or(""), "stackup test image"));

  web.suspend();
  CHECK_FALSE(web.is_running());
  CHECK(web.is_provisioned());
  CHECK_FALSE(http_get(port));

  web.resume(); // again, from stopped
  CHECK(web.is_running());

  web.deprovision();
  CHECK_FALSE(web.is_provisioned());
  CHECK(podman::sh("podman pod exists " + pod.name + "-pod-0") != 0);
  CHECK_FALSE(fs::exists(d.path / ".stackup/web/applied"));
}

TEST_CASE("kubernetes/podman: a pod it did not create is never touched; edited manifests are played again") {
  podman::use_test_settings();
  TempDir d("kube");
  PodNames pod("kown");
  const std::uint16_t port = ports::free_port();
  fs::create_directories(d.path / "k8s");
  spit(d.path / "k8s/web.yaml", served_by_httpd(pod.name, port));

  SUBCASE("someone else's pod of that name") {
    REQUIRE(podman::sh("podman pod create --name " + pod.name + "-pod-0 >/dev/null") == 0);
    K8s web{{.manifests = {"k8s"}, .engine = stackup::KubernetesEngine::podman, .working_dir = d.path}};
    CHECK_FALSE(web.is_provisioned()); // not on its record
    const std::string e = error_of([&] { web.provision(); });
    CHECK(contains(e, "is not this component's"));
    web.deprovision(); // nothing on record: nothing removed
    CHECK(podman::sh("podman pod exists " + pod.name + "-pod-0") == 0);
  }
  SUBCASE("drift") {
    K8s web{{.manifests = {"k8s"}, .engine = stackup::KubernetesEngine::podman, .ready_timeout = 60s,
             .working_dir = d.path}};
    web.provision();
    web.resume();
    CHECK(web.is_current());
    const std::uint16_t other = ports::free_port();
    spit(d.path / "k8s/web.yaml", served_by_httpd(pod.name, other));
    CHECK_FALSE(web.is_current());
    web.update();
    CHECK(web.is_current());
    CHECK(web.is_running());
    CHECK(processes::eventually([&] { return http_get(other).has_value(); }, 20s));
    web.deprovision();
    CHECK_FALSE(web.is_provisioned());
  }
}

// ---- a real cluster, when one is named -------------------------------------------------

TEST_CASE("kubernetes/kubectl: a real cluster (STACKUP_TEST_KUBE_CONTEXT)") {
  const char* context = std::getenv("STACKUP_TEST_KUBE_CONTEXT");
  if (context == nullptr || *context == '\0') {
    MESSAGE("skipped: set STACKUP_TEST_KUBE_CONTEXT to a kubectl context of a cluster this test may use "
            "(it creates and deletes a Deployment in namespace default)");
    return;
  }
  TempDir d("kube");
  fs::create_directories(d.path / "k8s");
  const std::string name = "stackup-test-" + std::to_string(::getpid());
  spit(d.path / "k8s/app.yaml",
       R"({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ")" + name + R"("},
 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": ")" + name + R"("}},
  "template": {"metadata": {"labels": {"app": ")" + name + R"("}},
   "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]}}}})");
  K8s web{{.manifests = {"k8s"}, .context = context, .ready_timeout = 3min, .working_dir = d.path, .stack = "stackup-test"}};
  struct Down {
    K8s& w;
    ~Down() {
      try {
        w.deprovision();
      } catch (...) {
      }
    }
  } down{web};
  web.provision();
  web.resume();
  CHECK(web.is_running());
  CHECK(web.is_current());
  web.suspend();
  CHECK_FALSE(web.is_running());
  web.resume();
  CHECK(web.is_running());
  web.deprovision();
  CHECK_FALSE(web.is_provisioned());
}

// ---- logs ---------------------------------------------------------------------------------

TEST_CASE("kubernetes/kubectl: log_command is kubectl logs of every container of its labelled pods, prefixed") {
  StandIn k;
  k.cluster(R"({"contexts": ["dev"], "reachable": true, "objects": {},
    "logs": {"Deployment/web": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]}})");
  const fs::path dir = k.dir.path / "project";
  fs::create_directories(dir / "k8s");
  spit(dir / "k8s/app.yaml", deployment);
  K8s web = kubectl_component(dir);
  web.provision();
  k.forget_calls();

  const auto all = web.log_command({});
  CHECK(all == std::vector<std::string>{"kubectl", "--context", "dev", "-n", "ml", "logs", "-l",
                                        "stackup.io/stack=shop,stackup.io/role=web", "--all-containers", "--prefix",
                                        "--tail=-1", "--max-log-requests=64"});
  CHECK(k.calls().empty()); // the command line needs no call
  const auto r = stackup::detail::posix::run_program(all, {.capture_stdout = true});
  REQUIRE(r.ok());
  // Both replicas, all eleven lines each (kubectl's own default with a selector is 10).
  CHECK(contains(r.out, "[pod/web-0/web] one\n"));
  CHECK(contains(r.out, "[pod/web-1/web] eleven\n"));

  const auto since = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)) + 5ms;
  const auto some = web.log_command({.tail = 2, .follow = true, .since = since});
  CHECK(std::vector<std::string>(some.begin() + 10, some.end()) ==
        std::vector<std::string>{"--tail=2", "--follow", "--since-time=2027-01-15T08:00:00.005000000Z",
                                 "--max-log-requests=64"});
  const auto tail = stackup::detail::posix::run_program(some, {.capture_stdout = true});
  REQUIRE(tail.ok());
  CHECK(tail.out == "[pod/web-0/web] ten\n[pod/web-0/web] eleven\n[pod/web-1/web] ten\n[pod/web-1/web] eleven\n");
}

TEST_CASE("kubernetes/podman: log_command is podman logs of the containers of its pods on record, for real") {
  podman::use_test_settings();
  TempDir d("kube");
  PodNames pod("klog");
  PodNames other("klogx");
  fs::create_directories(d.path / "k8s");
  spit(d.path / "k8s/pod.yaml", R"({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ")" + pod.name + R"("},
 "spec": {"restartPolicy": "Never", "containers": [{"name": "talk", "image": ")" + std::string(podman::test_image()) + R"(",
   "command": ["/bin/sh", "-c", "echo first line; echo second line; echo third line; sleep 600"]}]}})");
  K8s web{{.manifests = {"k8s"}, .engine = stackup::KubernetesEngine::podman, .ready_timeout = 60s,
           .working_dir = d.path}};
  CHECK(web.log_command({}).empty()); // nothing on record
  // A pod of another name, not on record: never part of the log.
  REQUIRE(podman::sh("podman pod create --name " + other.name + " >/dev/null && podman create --pod " + other.name +
                     " " + podman::test_image() + " echo not-mine >/dev/null && podman pod start " + other.name +
                     " >/dev/null") == 0);
  web.provision();
  web.resume();

  const auto argv = web.log_command({});
  REQUIRE(argv.size() == 4);
  CHECK(std::vector<std::string>(argv.begin() + 1, argv.begin() + 3) == std::vector<std::string>{"logs", "--names"});
  std::string out;
  CHECK(processes::eventually([&] {
    const auto r = stackup::detail::posix::run_program(argv, {.capture_stdout = true});
    out = r.out;
    return r.ok() && contains(out, "third line");
  }, 20s));
  CHECK(out == "first line\nsecond line\nthird line\n");
  CHECK_FALSE(contains(out, "not-mine"));

  const auto last = web.log_command({.tail = 1});
  CHECK(std::vector<std::string>(last.begin() + 3, last.end() - 1) == std::vector<std::string>{"--tail", "1"});
  CHECK(stackup::detail::posix::run_program(last, {.capture_stdout = true}).out == "third line\n");
  web.deprovision();
  CHECK(web.log_command({}).empty());
}

// ---- status batching ----------------------------------------------------------------------

namespace {
std::size_t count_calls(const StandIn& k, std::string_view verb) {
  std::size_t n = 0;
  for (const auto& c : k.calls())
    if (std::find(c.begin(), c.end(), std::string(verb)) != c.end()) ++n;
  return n;
}
} // namespace

TEST_CASE("kubernetes/kubectl: within a query round, the stack's kubernetes components share one kubectl get") {
  StandIn k;
  const fs::path dir = k.dir.path / "project";
  for (const std::string role : {"a", "b", "c"}) {
    fs::create_directories(dir / role);
    std::string m(deployment);
    for (std::size_t at = m.find("web"); at != std::string::npos; at = m.find("web", at + 1)) m.replace(at, 3, role);
    spit(dir / role / "app.yaml", m);
  }
  // Another kind in one of them: the shared call covers it too.
  spit(dir / "c/secret.json", R"({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c-secret"}})");
  const auto make = [&](const std::string& role) {
    stackup::Kubernetes<> c{{.manifests = {role}, .context = "dev", .namespace_ = "ml", .ready_timeout = 20s,
                             .working_dir = dir, .stack = "shop"}};
    return stackup::AnyComponent(role, std::move(c));
  };
  std::vector<stackup::AnyComponent> all;
  for (const std::string role : {"a", "b", "c"}) all.push_back(make(role));
  for (auto& c : all) c.provision();
  // A component of another namespace asks for itself.
  stackup::Kubernetes<"d"> other{{.manifests = {"a"}, .context = "dev", .namespace_ = "other", .working_dir = dir, .stack = "shop"}};

  k.forget_calls();
  for (int round = 0; round < 2; ++round) {
    {
      stackup::detail::QueryRound r;
      for (auto& c : all) {
        CHECK(c.is_provisioned());
        CHECK(c.is_running());
      }
      CHECK_FALSE(other.is_provisioned());
    }
    // Round 1 learns the kinds of all three (at most one more call per kind
    // set it had not seen); from then on one call per round.
    if (round == 1) CHECK(count_calls(k, "get") == 2);
    k.forget_calls();
  }
  // Each answers for its own objects only.
  {
    stackup::detail::QueryRound r;
    all[0].suspend();
    CHECK_FALSE(all[0].is_running());
    CHECK(all[1].is_running());
  }
  // Outside a round every query asks afresh.
  k.forget_calls();
  for (auto& c : all) CHECK(c.is_provisioned());
  CHECK(count_calls(k, "get") == 3);
}

TEST_CASE("kubernetes/podman: within a query round, its components share one podman pod listing") {
  podman::use_test_settings();
  TempDir d("kube");
  TempDir bin("kube-bin");
  const fs::path log = bin.path / "calls";
  const std::string real = stackup::detail::container::find_on_path("podman");
  REQUIRE_FALSE(real.empty());
  spit(bin.path / "podman", "#!/bin/sh\necho \"$*\" >> '" + log.string() + "'\nexec " + real + " \"$@\"\n");
  fs::permissions(bin.path / "podman", fs::perms::owner_all);
  Env path("PATH", bin.path.string() + ":" + std::getenv("PATH"));
  PodNames a("kba"), b("kbb");
  for (const auto* p : {&a, &b}) {
    fs::create_directories(d.path / p->name);
    spit(d.path / p->name / "pod.yaml", R"({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ")" + p->name +
                                            R"("}, "spec": {"containers": [{"name": "s", "image": ")" +
                                            podman::test_image() + R"(", "command": ["/bin/sleep", "600"]}]}})");
  }
  stackup::Kubernetes<"a"> ka{{.manifests = {a.name}, .engine = stackup::KubernetesEngine::podman, .working_dir = d.path}};
  stackup::Kubernetes<"b"> kb{{.manifests = {b.name}, .engine = stackup::KubernetesEngine::podman, .working_dir = d.path}};
  ka.provision();
  kb.provision();
  const auto listings = [&] {
    const auto text = slurp(log).value_or("");
    std::size_t n = 0;
    for (std::size_t at = text.find("pod ps"); at != std::string::npos; at = text.find("pod ps", at + 1)) ++n;
    return n;
  };
  fs::remove(log);
  {
    stackup::detail::QueryRound r;
    CHECK(ka.is_provisioned());
    CHECK(kb.is_provisioned());
    CHECK_FALSE(ka.is_running());
    CHECK_FALSE(kb.is_running());
  }
  CHECK(listings() == 1);
  fs::remove(log);
  CHECK(ka.is_provisioned());
  CHECK(kb.is_provisioned());
  CHECK(listings() == 2);
  // An action forgets the round's answer: the next query sees what it did.
  {
    stackup::detail::QueryRound r;
    CHECK_FALSE(ka.is_running());
    ka.resume();
    CHECK(ka.is_running());
    CHECK_FALSE(kb.is_running());
  }
  ka.deprovision();
  kb.deprovision();
}
