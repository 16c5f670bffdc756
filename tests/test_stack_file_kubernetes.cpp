// The stack-file flavour `kubernetes`: its keys, strictly, with file:line:column
// errors; the stack's name as the objects' stack label.
#include <stackup/stack_file.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/podman.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The message of the StackFileError that parsing `text` throws ("" when none).
std::string file_error(std::string_view text, const fs::path& dir) {
  try {
    (void)stackup::load_stack(stackup::StackFileSource{(dir / "stackup.toml").string(), dir, std::string(text), {}, {}});
  } catch (const stackup::StackFileError& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("stack file: flavor = \"kubernetes\" reads its keys, against the file's directory") {
  files::TempDir d("kube");
  const auto s = stackup::load_stack(stackup::StackFileSource{(d.path / "stackup.toml").string(), d.path, R"(
name = "ml"
[components.orchestrator]
flavor = "kubernetes"
manifests = ["k8s/", "extra.yaml"]
context = "k3d-dev"
namespace = "kubeflow"
ready_timeout = "2m"
restart = "on-failure"
)", {}, {}});
  const auto* k = s.get("orchestrator").target<stackup::Kubernetes<>>();
  REQUIRE(k != nullptr);
  const auto& c = k->config();
  CHECK(c.manifests == std::vector<fs::path>{d.path / "k8s", d.path / "extra.yaml"});
  CHECK(c.engine == stackup::KubernetesEngine::kubectl);
  CHECK(c.context == "k3d-dev");
  CHECK(c.namespace_ == "kubeflow");
  CHECK(c.ready_timeout == 2min);
  CHECK(c.stack == "ml");
  CHECK(c.working_dir == d.path);
  CHECK(k->state_dir() == d.path / ".stackup/orchestrator");
  CHECK(k->selector() == "stackup.io/stack=ml,stackup.io/role=orchestrator");
  CHECK(k->supervision().restart.policy == stackup::Restart::on_failure);
  CHECK(s.get("orchestrator").flavor() == "kubernetes");

  const auto p = stackup::load_stack(stackup::StackFileSource{(d.path / "stackup.toml").string(), d.path, R"(
[components.local]
flavor = "kubernetes"
manifests = ["k8s"]
engine = "podman"
)", {}, {}});
  const auto* l = p.get("local").target<stackup::Kubernetes<>>();
  REQUIRE(l != nullptr);
  CHECK(l->config().engine == stackup::KubernetesEngine::podman);
  CHECK(l->config().stack == d.path.filename().string()); // the default stack name: the directory's
}

TEST_CASE("stack file: kubernetes errors are at file:line:column and name the fix") {
  files::TempDir d("kube");
  const std::string f = (d.path / "stackup.toml").string();
  const auto head = std::string("[components.k]\nflavor = \"kubernetes\"\n");
  CHECK(file_error(head, d.path) ==
        f + ":1:1: component 'k' (kubernetes) lacks the required key 'manifests' (YAML files or directories, e.g. "
            "manifests = [\"k8s/\"])");
  CHECK(file_error(head + "manifests = []\n", d.path) ==
        f + ":3:13: 'manifests' of component 'k' (kubernetes) is empty: give the YAML files or directories to apply");
  CHECK(file_error(head + "manifests = \"k8s\"\n", d.path) ==
        f + ":3:13: 'manifests' of component 'k' (kubernetes) must be an array of strings, not a string");
  CHECK(file_error(head + "manifests = [\"k8s\"]\nengine = \"docker\"\n", d.path) ==
        f + ":4:10: 'engine' of component 'k' (kubernetes) must be \"kubectl\" (a cluster) or \"podman\" (this "
            "machine, podman kube play), not \"docker\"");
  CHECK(file_error(head + "manifests = [\"k8s\"]\nengine = \"podman\"\ncontext = \"dev\"\n", d.path) ==
        f + ":5:11: 'context' of component 'k' (kubernetes) is for engine = \"kubectl\": podman runs the manifests "
            "on this machine; remove 'context' or set engine = \"kubectl\"");
  CHECK(file_error(head + "manifests = [\"k8s\"]\nready_timeout = \"soon\"\n", d.path) ==
        f + ":4:17: 'ready_timeout' of component 'k' (kubernetes) is \"soon\", not a duration: a whole number "
            "followed by ms, s, m or h, such as \"250ms\", \"10s\", \"2m\"");
  const std::string unknown = file_error(head + "manifests = [\"k8s\"]\nimage = \"nginx\"\n", d.path);
  CHECK(unknown.starts_with(f + ":4:1: unknown key 'image' in component 'k' (kubernetes); valid keys: flavor, "
                                "depends_on, name, manifests, engine, context, namespace, ready_timeout, "
                                "working_dir, state_dir"));
  CHECK(file_error("name = \"my stack\"\n" + head + "manifests = [\"k8s\"]\n", d.path).starts_with(
      f + ":2:1: component 'k' (kubernetes): the stack's name 'my stack' cannot be a Kubernetes label value"));
  CHECK(file_error("[components.web_]\nflavor = \"kubernetes\"\nmanifests = [\"k8s\"]\n", d.path).starts_with(
      f + ":1:1: component 'web_' (kubernetes): the role 'web_' cannot be a Kubernetes label value"));
}

TEST_CASE("stack file: a kubernetes component with engine = \"podman\" goes up and down with its stack, for real") {
  podman::use_test_settings();
  files::TempDir d("kube");
  const std::string name = "stackup-kfile-" + std::to_string(::getpid());
  struct Cleanup {
    std::string pod;
    ~Cleanup() { podman::sh("podman pod rm --force --ignore " + pod + " >/dev/null 2>&1"); }
  } cleanup{name + "-pod-0"};
  const std::uint16_t port = ports::free_port();
  fs::create_directories(d.path / "k8s");
  files::spit(d.path / "k8s/web.yaml", R"({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ")" + name + R"("},
 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
  "template": {"metadata": {"labels": {"app": "web"}},
   "spec": {"containers": [{"name": "httpd", "image": ")" + std::string(podman::test_image()) + R"(",
     "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
     "ports": [{"containerPort": 8080, "hostPort": )" + std::to_string(port) + R"(, "hostIP": "127.0.0.1"}]}]}}}}
)");
  auto s = stackup::load_stack(stackup::StackFileSource{(d.path / "stackup.toml").string(), d.path, R"(
name = "kfile"
[components.web]
flavor = "kubernetes"
manifests = ["k8s"]
engine = "podman"
ready_timeout = "1m"
)", {}, {}});
  s.up();
  auto st = s.status();
  REQUIRE(st.size() == 1);
  CHECK(st[0].state == stackup::State::running);
  CHECK(st[0].flavor == "kubernetes");
  CHECK(processes::eventually([&] { return podman::sh("wget -q -O /dev/null http://127.0.0.1:" + std::to_string(port) + "/ 2>/dev/null || "
                                                      "curl -sf -o /dev/null http://127.0.0.1:" + std::to_string(port) + "/") == 0; },
                              std::chrono::seconds(20)));
  s.down();
  CHECK(s.status()[0].state == stackup::State::suspended);
  s.down({.force = true});
  CHECK(s.status()[0].state == stackup::State::deprovisioned);
  CHECK(podman::sh("podman pod exists " + name + "-pod-0") != 0);
}
