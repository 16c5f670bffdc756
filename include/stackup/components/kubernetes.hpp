// stackup — Kubernetes<"role">: Kubernetes manifests, applied to a cluster
// with kubectl (server-side apply, our labels on every object) or run on this
// machine with `podman kube play`.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/kube.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/detail/query_round.hpp>
#include <stackup/detail/shipped_component.hpp>
#include <stackup/errors.hpp>
#include <stackup/options.hpp>
#include <stackup/restart.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace stackup {

/// Which client runs a Kubernetes component's manifests.
enum class KubernetesEngine : unsigned char {
  kubectl, ///< a cluster, through `kubectl` (its context and namespace)
  podman,  ///< this machine, through `podman kube play`
};

/// Stack-file spelling: "kubectl", "podman".
constexpr std::string_view to_string(KubernetesEngine e) noexcept {
  return e == KubernetesEngine::podman ? "podman" : "kubectl";
}

/// Configuration of a Kubernetes component; use designated initialisers, in this order.
struct KubernetesConfig {
  std::string name{}; ///< display name; empty: the role
  /// YAML (or JSON) manifest files, or directories of them (their *.yaml,
  /// *.yml and *.json files); relative paths are against `working_dir`.
  std::vector<std::filesystem::path> manifests{};
  KubernetesEngine engine = KubernetesEngine::kubectl;
  std::string context{};      ///< kubectl: the context (`--context`); empty: kubectl's current one
  std::string namespace_{};   ///< kubectl: the namespace (`-n`); empty: the context's
  /// resume: how long every Deployment/StatefulSet (kubectl) or pod (podman)
  /// has to become ready, all together.
  std::chrono::milliseconds ready_timeout = std::chrono::minutes(5);
  std::filesystem::path working_dir{}; ///< what relative manifests are against; empty: the current directory
  /// stackup's own directory (mode 0700): what it applied (kubectl), the pods
  /// it created (podman). Empty: `<working_dir>/.stackup/<role>`.
  std::filesystem::path state_dir{};
  /// The stack the objects are labelled with (`stackup.io/stack`); a stack
  /// file gives its name. Empty: the name of `working_dir`.
  std::string stack{};
  /// Whether a supervisor (stackup::supervise) resumes it when it stops
  /// running without a down (it polls), after what back-off, and when it
  /// gives up (DESIGN §10).
  RestartPolicy restart{};
  Liveness liveness{}; ///< a probe a supervisor runs while it runs; default: none
  OnDependencyRestart on_dependency_restart{};
};

/// Kubernetes manifests as a stack component (DESIGN §11).
///
/// kubectl engine (a cluster):
/// - provision: `kubectl label --local` adds `stackup.io/stack`,
///   `stackup.io/role` and `stackup.io/config` (a hash of the manifests and
///   settings) to every object, then `kubectl apply --server-side
///   --field-manager=stackup`. An object that exists without our labels is
///   never changed: an error names it. A conflict with another field manager
///   is an error naming the object (stackup never forces).
/// - resume: Deployments and StatefulSets scaled back to the replicas recorded
///   in their `stackup.io/replicas` annotation (CronJobs unsuspended), then
///   `kubectl rollout status` of each within `ready_timeout`.
/// - suspend: their replicas recorded in that annotation, then scaled to 0
///   (CronJobs: `suspend: true`).
/// - deprovision: every object with our labels deleted, waiting until gone.
/// - is_provisioned: an object with our labels exists; is_running: every such
///   Deployment/StatefulSet has `readyReplicas == replicas > 0` (none: running
///   whenever provisioned).
///
/// podman engine (this machine): provision `podman kube play --start=false`,
/// the pods it created recorded in the state directory (podman cannot label
/// them: that record is the ownership); resume starts them and waits until they
/// run; suspend stops them; deprovision `podman kube down` (or removes the pods
/// on record, when the manifests changed since).
///
/// Drift: is_current() compares the hash of the manifests' bytes and settings
/// with the one recorded at apply; update() applies again.
///
/// ```cpp
/// stackup::Kubernetes<"orchestrator"> k8s{{
///     .manifests = {"k8s/"},
///     .context = "k3d-dev",
///     .namespace_ = "ml",
///     .working_dir = "/srv/project",
///     .stack = "ml",
/// }};
/// ```
template <FixedString Role = "">
class Kubernetes : public detail::ShippedComponent<Kubernetes<Role>, Role, KubernetesConfig> {
  using Base = detail::ShippedComponent<Kubernetes<Role>, Role, KubernetesConfig>;

public:
  /// Shown by Stack::status().
  static constexpr std::string_view flavor = "kubernetes";
  /// The configuration type (designated initialisers).
  using Config = KubernetesConfig;

  /// A component with this configuration; paths are made absolute and a
  /// negative ready_timeout becomes zero. Error when there is no manifest, or
  /// `stack` is not a valid label value. Runs nothing.
  explicit Kubernetes(Config config) : Base(std::move(config)) {
    namespace fs = std::filesystem;
    config_.ready_timeout = std::max(config_.ready_timeout, std::chrono::milliseconds::zero());
    config_.working_dir = config_.working_dir.empty() ? fs::current_path() : fs::absolute(config_.working_dir);
    for (auto& m : config_.manifests) m = (config_.working_dir / m).lexically_normal();
    if (!config_.state_dir.empty()) config_.state_dir = detail::owned_directory(config_.working_dir / config_.state_dir);
    if (config_.stack.empty()) config_.stack = detail::normal_directory(config_.working_dir).filename().string();
    if (config_.stack.empty()) config_.stack = "default";
    // The role may not be known yet (Kubernetes<>): the configured name, if any.
    const std::string named = config_.name.empty() ? std::string() : " '" + config_.name + "'";
    if (config_.manifests.empty())
      throw Error("stackup: kubernetes component" + named +
                  ": no manifests: give the YAML files or directories to apply (manifests = [\"k8s/\"])");
    if (!detail::kube::label_value(config_.stack))
      throw Error("stackup: kubernetes component" + named + ": " + stack_name_error(config_.stack));
  }

  /// The component a stack file's table describes (`flavor = "kubernetes"`,
  /// see docs/stack-files.md): `name`, the required `manifests`, `engine`,
  /// `context`, `namespace`, `ready_timeout`, `working_dir` (default: the
  /// file's directory), `state_dir` (default: `.stackup/<role>` there), and
  /// `restart`, `liveness` and `on_dependency_restart`. `Table` is
  /// stackup::StackFileTable (<stackup/stack_file.hpp>), or a type with its interface.
  template <class Table> [[nodiscard]] static Kubernetes from_table(const Table& t) {
    Config c;
    const std::string role(t.role());
    c.name = t.optional_string("name").value_or("");
    const auto manifests = t.strings("manifests");
    if (!t.contains("manifests"))
      t.fail(t.what() + " lacks the required key 'manifests' (YAML files or directories, e.g. manifests = [\"k8s/\"])");
    if (manifests.empty()) t.fail("manifests", "'manifests' of " + t.what() + " is empty: give the YAML files or directories to apply");
    for (const auto& m : manifests) {
      if (m.empty()) t.fail("manifests", "'manifests' of " + t.what() + " holds an empty path: give a file or directory");
      c.manifests.push_back(detail::normal_directory(t.directory() / m));
    }
    if (const auto e = t.optional_string("engine")) {
      if (*e == "podman") c.engine = KubernetesEngine::podman;
      else if (*e != "kubectl")
        t.fail("engine", "'engine' of " + t.what() + " must be \"kubectl\" (a cluster) or \"podman\" (this machine, "
                         "podman kube play), not \"" + *e + "\"");
    }
    c.context = t.optional_string("context").value_or("");
    c.namespace_ = t.optional_string("namespace").value_or("");
    if (c.engine == KubernetesEngine::podman) {
      if (!c.context.empty())
        t.fail("context", "'context' of " + t.what() + " is for engine = \"kubectl\": podman runs the manifests on "
                          "this machine; remove 'context' or set engine = \"kubectl\"");
      if (!c.namespace_.empty())
        t.fail("namespace", "'namespace' of " + t.what() + " is for engine = \"kubectl\": podman kube play has no "
                            "namespaces; remove 'namespace' or set engine = \"kubectl\"");
    }
    c.ready_timeout = t.duration("ready_timeout").value_or(c.ready_timeout);
    c.working_dir = t.path_or("working_dir", t.directory());
    c.state_dir = t.path_or("state_dir", t.directory() / ".stackup" / role);
    if constexpr (requires { t.stack_name(); }) c.stack = t.stack_name();
    if (!c.stack.empty() && !detail::kube::label_value(c.stack)) t.fail(t.what() + ": " + stack_name_error(c.stack));
    if (!detail::kube::label_value(role))
      t.fail(t.what() + ": the role '" + role + "' cannot be a Kubernetes label value (at most 63 letters, digits, "
             "'.', '_' or '-', starting and ending with a letter or digit): rename the component");
    const auto supervision = detail::supervision_from_table(t);
    c.restart = supervision.restart;
    c.liveness = supervision.liveness;
    c.on_dependency_restart = supervision.on_dependency_restart;
    try {
      return Kubernetes(std::move(c));
    } catch (const Error& e) {
      t.fail(detail::unprefixed(e.what()));
    }
  }

  // name() (the configured name, or the role) and config() come from Base.

  /// What a supervisor reads: the config's `restart`, `liveness` and
  /// `on_dependency_restart`. (No exit_fd(): a supervisor polls is_running().)
  [[nodiscard]] SupervisionConfig supervision() const {
    return {config_.restart, config_.liveness, config_.on_dependency_restart};
  }

  /// The state directory: the configured one, else `<working_dir>/.stackup/<role>`.
  [[nodiscard]] std::filesystem::path state_dir() const {
    if (!config_.state_dir.empty()) return config_.state_dir;
    return detail::owned_directory(config_.working_dir / ".stackup" / std::string(this->role_name()));
  }

  /// The label selector of this component's objects: `stackup.io/stack=S,stackup.io/role=R`.
  [[nodiscard]] std::string selector() const {
    return "stackup.io/stack=" + config_.stack + ",stackup.io/role=" + checked_role();
  }

  /// The hash of the manifests' bytes and the settings that shape what is
  /// applied (engine, context, namespace, stack, role): 16 hex digits.
  [[nodiscard]] std::string config_hash() const {
    detail::container::Hash h;
    h.add(to_string(config_.engine));
    h.add(config_.context);
    h.add(config_.namespace_);
    h.add(config_.stack);
    h.add(this->role_name());
    for (const auto& f : files()) {
      h.add(f.string());
      h.add(detail::kube::read_manifest(f, who()));
    }
    return h.hex();
  }

  /// For status tables: `outdated` when the manifests or settings changed
  /// since they were applied, else where they run.
  [[nodiscard]] std::string detail() const {
    try {
      if (is_provisioned() && !is_current()) return "outdated: manifests or settings changed";
    } catch (const Error& e) {
      return std::string(detail::unprefixed(e.what())); // a status table still shows the others
    }
    if (config_.engine == KubernetesEngine::podman) return "podman kube play";
    std::string out = "kubectl";
    if (!config_.context.empty()) out += " context " + config_.context;
    if (!config_.namespace_.empty()) out += " namespace " + config_.namespace_;
    return out;
  }

  /// kubectl: an object with our labels exists. podman: a pod on record exists.
  [[nodiscard]] bool is_provisioned() const {
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      const auto pods = podman_pods();
      return std::any_of(rec.pods.begin(), rec.pods.end(), [&](const auto& p) { return find_pod(pods, p.id) != nullptr; });
    }
    return !objects().empty();
  }

  /// kubectl: provisioned, and every labelled Deployment/StatefulSet has
  /// readyReplicas == replicas > 0. podman: every pod on record is Running.
  [[nodiscard]] bool is_running() const {
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      if (rec.pods.empty()) return false;
      const auto pods = podman_pods();
      return std::all_of(rec.pods.begin(), rec.pods.end(), [&](const auto& p) {
        const auto* found = find_pod(pods, p.id);
        return found != nullptr && found->status == "Running";
      });
    }
    const auto objs = objects();
    if (objs.empty()) return false;
    return std::all_of(objs.begin(), objs.end(), [](const Object& o) {
      return !o.scalable() || (o.replicas > 0 && o.ready == o.replicas);
    });
  }

  /// Whether what runs was made from the manifests and settings as they are
  /// now (see config_hash()). True when nothing is provisioned.
  [[nodiscard]] bool is_current() const {
    const std::string now = config_hash();
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      return rec.pods.empty() || rec.hash == now;
    }
    const auto objs = objects();
    return std::all_of(objs.begin(), objs.end(), [&](const Object& o) { return o.config == now; });
  }

  /// Applies the manifests (see the class comment).
  void provision() {
    forget();
    if (config_.engine == KubernetesEngine::podman) return podman_play();
    kubectl_apply();
  }

  /// Applies the manifests again after they or the settings changed (kubectl:
  /// server-side apply, nothing deleted; podman: its pods on record are taken
  /// down and played again, started again if they ran).
  void update() {
    forget();
    if (config_.engine == KubernetesEngine::podman) {
      const bool was_running = is_running();
      deprovision();
      provision();
      if (was_running) resume();
      return;
    }
    kubectl_apply();
  }

  /// Scales back up (kubectl) or starts the pods (podman), then waits until
  /// ready within ready_timeout.
  void resume() {
    forget();
    if (config_.engine == KubernetesEngine::podman) return podman_start();
    kubectl_resume();
  }

  /// Scales to 0 (kubectl) or stops the pods (podman).
  void suspend() {
    forget();
    if (config_.engine == KubernetesEngine::podman) {
      const auto rec = record();
      if (rec.pods.empty()) return;
      std::vector<std::string> argv{podman(), "pod", "stop"};
      for (const auto& p : existing(rec)) argv.push_back(p.id);
      if (argv.size() > 3) checked(Call{argv}, "stop its pods");
      forget();
      return;
    }
    for (const auto& o : objects()) {
      if (o.kind == "CronJob" && o.suspend != "true")
        checked(kubectl({"patch", o.ref(), "--type=merge", "-p", R"({"spec":{"suspend":true}})"}), "suspend " + o.ref());
      if (!o.scalable() || o.replicas <= 0) continue;
      checked(kubectl({"annotate", o.ref(), "stackup.io/replicas=" + std::to_string(o.replicas), "--overwrite"}),
              "record the replicas of " + o.ref());
      checked(kubectl({"scale", o.ref(), "--replicas=0"}), "scale " + o.ref() + " to 0");
    }
    forget();
  }

  /// The program whose output is its log, as the engine keeps it (DESIGN §11).
  /// kubectl: `kubectl [--context C] [-n NS] logs -l <its selector>
  /// --all-containers --prefix --tail N|-1 [--follow] [--since-time T]
  /// --max-log-requests 64`: every container of every pod with its labels, each
  /// line prefixed with its pod and container (`--tail` is per container; -1,
  /// all of it, unless a tail is asked: kubectl's own default for a selector is 10).
  /// podman: `podman logs --names [--tail N] [--follow] [--since T]` of the
  /// containers of its pods on record (not their infra containers); empty when
  /// none exists (nothing provisioned).
  [[nodiscard]] std::vector<std::string> log_command(const LogRequest& request) const {
    if (config_.engine == KubernetesEngine::podman) {
      const auto ids = podman_containers();
      if (ids.empty()) return {};
      std::vector<std::string> argv{podman(), "logs", "--names"};
      if (request.tail) argv.insert(argv.end(), {"--tail", std::to_string(*request.tail)});
      if (request.follow) argv.emplace_back("--follow");
      if (request.since) argv.insert(argv.end(), {"--since", detail::kube::rfc3339(*request.since)});
      argv.insert(argv.end(), ids.begin(), ids.end());
      return argv;
    }
    std::vector<std::string> args{"logs", "-l", selector(), "--all-containers", "--prefix",
                                  "--tail=" + (request.tail ? std::to_string(*request.tail) : std::string("-1"))};
    if (request.follow) args.emplace_back("--follow");
    if (request.since) args.push_back("--since-time=" + detail::kube::rfc3339(*request.since));
    // kubectl refuses to follow more log streams than this at once (its default is 5).
    args.push_back("--max-log-requests=" + std::to_string(max_log_requests));
    return kubectl(std::move(args)).argv;
  }

  /// Deletes every object with our labels and waits until gone (kubectl), or
  /// takes down the pods on record (podman).
  void deprovision() {
    forget();
    if (config_.engine == KubernetesEngine::podman) return podman_down();
    const auto kinds = kinds_in_use();
    if (!kinds.empty()) {
      checked(kubectl({"delete", join(kinds, ','), "-l", selector(), "--ignore-not-found", "--wait=true"},
                      std::chrono::milliseconds::max() == config_.ready_timeout ? call_timeout : config_.ready_timeout + call_timeout),
              "delete its objects");
    }
    remove_record();
    forget();
  }

private:
  using Base::config_;
  using Base::who;
  using milliseconds = std::chrono::milliseconds;
  static constexpr milliseconds call_timeout = std::chrono::minutes(2);
  static constexpr int max_log_requests = 64;

  // Why `stack` cannot label objects, and the fix.
  static std::string stack_name_error(const std::string& stack) {
    return "the stack's name '" + stack + "' cannot be a Kubernetes label value (at most 63 letters, digits, '.', "
           "'_' or '-', starting and ending with a letter or digit): rename the stack";
  }

  // ---- running the clients -----------------------------------------------------

  struct Call {
    std::vector<std::string> argv;
    std::string input{};
    milliseconds timeout = call_timeout;
  };

  [[nodiscard]] std::string checked_role() const {
    std::string r(this->role_name());
    if (!detail::kube::label_value(r))
      throw Error("stackup: " + who() + ": role '" + r +
                  "' cannot be a Kubernetes label value (at most 63 letters, digits, '.', '_' or '-', starting and "
                  "ending with a letter or digit): rename the role");
    return r;
  }

  std::string podman() const { return detail::kube::podman_program(who()); }

  // kubectl with the context and namespace.
  [[nodiscard]] Call kubectl(std::vector<std::string> args, milliseconds timeout = call_timeout) const {
    Call c{{"kubectl"}, {}, timeout};
    if (!config_.context.empty()) c.argv.insert(c.argv.end(), {"--context", config_.context});
    if (!config_.namespace_.empty()) c.argv.insert(c.argv.end(), {"-n", config_.namespace_});
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    return c;
  }

  [[nodiscard]] std::string context_named() const {
    return config_.context.empty() ? std::string("kubectl's current context") : "context '" + config_.context + "'";
  }

  static std::string join(const std::vector<std::string>& v, char sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : std::string(1, sep)) + s;
    return out;
  }

  static std::string shown(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) {
      const bool plain = !a.empty() && a.find_first_of(" \t\n'\"{}") == std::string::npos;
      out += (out.empty() ? "" : " ") + (plain ? a : "'" + a + "'");
    }
    return out;
  }

  // Runs it; Error when the program is missing (with how to install it) or
  // cannot be started.
  [[nodiscard]] detail::posix::ShellResult run(const Call& c) const {
    using px = detail::posix;
    try {
      return px::run_program(c.argv, {.timeout = c.timeout, .working_dir = config_.working_dir, .capture_stdout = true,
                                      .input = c.input});
    } catch (const Error& e) {
      const std::string m = e.what();
      if (m.find("No such file") != std::string::npos || m.find("not found in PATH") != std::string::npos) {
        if (c.argv.front() == "kubectl")
          throw Error("stackup: " + who() + ": kubectl is not installed (not found in PATH): install it "
                      "(https://kubernetes.io/docs/tasks/tools/, or your distribution's kubectl package), or run the "
                      "manifests on this machine with engine = \"podman\"");
        throw Error("stackup: " + who() + ": " + c.argv.front() + " is not installed (not found in PATH): install "
                    "podman (your distribution's podman package), or use engine = \"kubectl\"");
      }
      throw Error("stackup: " + who() + ": " + std::string(detail::unprefixed(m)));
    }
  }

  // What kubectl's failure means, as an Error naming the thing and the fix.
  [[noreturn]] void fail(const Call& c, const detail::posix::ShellResult& r, const std::string& doing) const {
    using px = detail::posix;
    const std::string where = "stackup: " + who() + ": cannot " + doing + ": ";
    if (r.stopped) throw InterruptedError(where + "`" + shown(c.argv) + "` was stopped: a stop was requested");
    const std::string& err = r.stderr_tail;
    const std::string tail = px::text_tail(err, 8);
    if (r.timed_out)
      throw Error(where + "`" + shown(c.argv) + "` did not finish within " + px::format_duration(c.timeout) +
                  (c.argv.front() == "kubectl" ? ": is the cluster of " + context_named() + " reachable?" : std::string()) +
                  (tail.empty() ? std::string() : "; stderr:" + tail));
    if (c.argv.front() == "kubectl") {
      if (err.find("context was not found") != std::string::npos)
        throw Error(where + "kubectl has no context '" + config_.context +
                    "' (see `kubectl config get-contexts`): fix 'context', or create the cluster first");
      for (const char* unreachable : {"Unable to connect to the server", "couldn't get current server API group list",
                                      "connection refused", "no such host", "i/o timeout", "was refused"})
        if (err.find(unreachable) != std::string::npos)
          throw Error(where + "the cluster of " + context_named() + " cannot be reached: start it, or fix 'context'; "
                      "kubectl said:" + tail);
      if (err.find("Apply failed with") != std::string::npos && err.find("conflict") != std::string::npos)
        throw Error(where + "server-side apply conflict on " + conflict_object(err) +
                    ": another field manager owns fields these manifests set, and stackup never forces "
                    "(--force-conflicts); change the manifests to leave those fields alone, or remove that "
                    "manager's ownership; kubectl said:" + tail);
    }
    throw Error(where + "`" + shown(c.argv) + "` failed with " + px::describe_exit(r.exit) +
                (tail.empty() ? std::string(" (no stderr output)") : "; stderr:" + tail));
  }

  // "Deployment/web" from kubectl's conflict message (`Kind=Deployment` ...
  // `Name: "web"`), or "an object" when it names none.
  static std::string conflict_object(const std::string& err) {
    std::string kind, name;
    if (const auto k = err.find("Kind="); k != std::string::npos)
      kind = err.substr(k + 5, err.find_first_of("\"\n, ", k + 5) - (k + 5));
    if (const auto n = err.find("Name: \""); n != std::string::npos)
      name = err.substr(n + 7, err.find('"', n + 7) - (n + 7));
    if (kind.empty() || name.empty()) return "an object";
    return kind + "/" + name;
  }

  std::string checked(const Call& c, const std::string& doing) const {
    const auto r = run(c);
    if (!r.ok()) fail(c, r, doing);
    return r.out;
  }

  // ---- kubectl: what the cluster holds ------------------------------------------

  struct Object {
    std::string kind, name, config, suspend;
    long long replicas = -1, ready = -1, recorded = -1;
    [[nodiscard]] bool scalable() const { return kind == "Deployment" || kind == "StatefulSet"; }
    [[nodiscard]] std::string ref() const { return detail::kube::lower(kind) + "/" + name; }
  };

  // One line per object, `|`-separated (jsonpath, so no parser of ours).
  static constexpr const char* object_template =
      R"(jsonpath={range .items[*]}{.kind}/{.metadata.name}|{.metadata.labels.stackup\.io/config}|{.spec.replicas}|)"
      R"({.status.readyReplicas}|{.metadata.annotations.stackup\.io/replicas}|{.spec.suspend}|)"
      R"({.metadata.labels.stackup\.io/role}{"\n"}{end})";

  // What the stack's kubernetes components of one context and namespace share
  // in a query round: one `kubectl get` of the stack's objects.
  [[nodiscard]] std::string shared_key() const {
    return "kubectl\0" + config_.context + '\0' + config_.namespace_ + '\0' + config_.stack;
  }

  // The objects with our labels. Outside a query round one `kubectl get` of the
  // kinds in use with our stack's and role's labels; within one, one `kubectl
  // get` of the stack's objects (every kind its components use) answers every
  // kubernetes component of the stack, context and namespace.
  [[nodiscard]] std::vector<Object> objects() const {
    const auto kinds = kinds_in_use();
    if (kinds.empty()) return {};
    std::string text;
    if (detail::current_query_round() == 0) {
      text = checked(kubectl({"get", join(kinds, ','), "-l", selector(), "-o", object_template}), "list its objects");
    } else {
      using Cache = detail::kube::RoundCache;
      const std::string key = shared_key();
      auto entry = Cache::find(key);
      const bool covered = entry && std::all_of(kinds.begin(), kinds.end(), [&](const std::string& k) {
        return std::find(entry->kinds.begin(), entry->kinds.end(), k) != entry->kinds.end();
      });
      if (covered) {
        text = std::move(entry->text);
      } else {
        auto asked = Cache::known_kinds(key);
        if (entry)
          for (const auto& k : entry->kinds) Cache::add(asked, k);
        for (const auto& k : kinds) Cache::add(asked, k);
        text = checked(kubectl({"get", join(asked, ','), "-l", "stackup.io/stack=" + config_.stack, "-o", object_template}),
                       "list its objects");
        Cache::store(key, asked, text);
      }
    }
    const std::string mine = checked_role();
    std::vector<Object> out;
    for (const auto& line : detail::kube::lines(text)) {
      const auto f = detail::kube::split(line, '|');
      if (f.size() < 7 || f[6] != mine) continue;
      Object o;
      const auto slash = f[0].find('/');
      o.kind = f[0].substr(0, slash);
      o.name = slash == std::string::npos ? std::string() : f[0].substr(slash + 1);
      // Only the kinds it uses (the shared answer holds others' too).
      if (std::find(kinds.begin(), kinds.end(), detail::kube::lower(o.kind)) == kinds.end()) continue;
      o.config = f[1];
      o.replicas = detail::kube::number(f[2]);
      o.ready = std::max(detail::kube::number(f[3]), 0LL);
      o.recorded = detail::kube::number(f[4]);
      o.suspend = f[5];
      if (o.scalable() && o.replicas < 0) o.replicas = 1; // Kubernetes' default
      out.push_back(std::move(o));
    }
    return out;
  }

  // What it changed may be in a shared answer: every component asks afresh.
  void forget() const {
    detail::kube::RoundCache::forget(config_.engine == KubernetesEngine::podman ? pods_key() : shared_key());
  }

  // Every manifest file, in order.
  [[nodiscard]] std::vector<std::filesystem::path> files() const {
    std::vector<std::filesystem::path> out;
    for (const auto& m : config_.manifests) {
      auto f = detail::kube::manifest_files(m, who());
      out.insert(out.end(), f.begin(), f.end());
    }
    return out;
  }

  [[nodiscard]] std::vector<std::string> file_args() const {
    std::vector<std::string> out;
    for (const auto& f : files()) out.insert(out.end(), {"-f", f.string()});
    return out;
  }

  // The manifests with our labels added, as a stream of JSON objects.
  [[nodiscard]] std::string labelled(const std::string& hash) const {
    Call c{{"kubectl", "label", "--local", "--overwrite"}, {}, call_timeout};
    const auto f = file_args();
    c.argv.insert(c.argv.end(), f.begin(), f.end());
    c.argv.insert(c.argv.end(), {"stackup.io/stack=" + config_.stack, "stackup.io/role=" + checked_role(),
                                 "stackup.io/config=" + hash, "-o", "json"});
    const auto r = run(c);
    if (!r.ok()) {
      if (r.timed_out || r.stopped) fail(c, r, "read its manifests");
      throw Error("stackup: " + who() + ": a manifest is invalid (kubectl cannot read it): " +
                  detail::posix::text_tail(r.stderr_tail, 8) + " — fix the manifest");
    }
    return r.out;
  }

  // The kinds its objects may have: those it applied last (its record), and
  // those of the manifests now.
  [[nodiscard]] std::vector<std::string> kinds_in_use() const {
    auto kinds = recorded_kinds();
    if (kinds.empty()) {
      Call c{{"kubectl", "label", "--local", "--overwrite"}, {}, call_timeout};
      const auto f = file_args();
      c.argv.insert(c.argv.end(), f.begin(), f.end());
      c.argv.insert(c.argv.end(), {"stackup.io/role=" + checked_role(), "-o", R"(jsonpath={.kind}{"\n"})"});
      const auto r = run(c);
      if (!r.ok()) return kinds; // an invalid manifest was never applied
      for (auto& k : detail::kube::lines(r.out)) add_kind(kinds, detail::kube::lower(k));
    }
    return kinds;
  }

  static void add_kind(std::vector<std::string>& kinds, std::string k) {
    if (!k.empty() && std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(std::move(k));
  }

  void kubectl_apply() {
    const std::string hash = config_hash();
    const std::string objects_json = labelled(hash);
    // Ownership: an object of these names that exists without our labels is
    // someone else's. (`get -f` answers a List, or the object itself when
    // there is just one: the template reads both.)
    static constexpr const char* owner_template =
        R"(jsonpath={.kind}/{.metadata.name}|{.metadata.labels.stackup\.io/stack}|{.metadata.labels.stackup\.io/role}{"\n"})"
        R"({range .items[*]}{.kind}/{.metadata.name}|{.metadata.labels.stackup\.io/stack}|{.metadata.labels.stackup\.io/role}{"\n"}{end})";
    Call own = kubectl({"get", "-f", "-", "--ignore-not-found", "-o", owner_template});
    own.input = objects_json;
    const std::string mine = checked_role();
    for (const auto& line : detail::kube::lines(checked(own, "check who owns its objects"))) {
      const auto f = detail::kube::split(line, '|');
      if (f.size() < 3 || f[0].starts_with("List/") || f[0].back() == '/') continue;
      if (f[1] == config_.stack && f[2] == mine) continue;
      const auto slash = f[0].find('/');
      throw Error("stackup: " + who() + ": " + f[0] + " exists in the cluster of " + context_named() +
                  " without stackup's labels for stack '" + config_.stack + "' and role '" + mine + "'" +
                  (f[1].empty() && f[2].empty() ? std::string()
                                                : " (it has stack '" + f[1] + "', role '" + f[2] + "')") +
                  ": stackup never changes an object it did not create; delete it (`kubectl delete " +
                  detail::kube::lower(f[0].substr(0, slash)) + " " + f[0].substr(slash + 1) +
                  "`) if it may go, or rename it in the manifests");
    }
    Call apply = kubectl({"apply", "--server-side", "--field-manager=stackup", "-f", "-", "-o",
                          R"(jsonpath={.kind}{"\n"})"});
    apply.input = objects_json;
    const auto out = checked(apply, "apply its manifests");
    auto kinds = recorded_kinds();
    for (auto& k : detail::kube::lines(out)) add_kind(kinds, detail::kube::lower(k));
    write_record("kubectl " + hash + "\n" + join(kinds, ',') + "\n");
    forget();
  }

  void kubectl_resume() {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto objs = objects();
    std::vector<Object> waited;
    for (const auto& o : objs) {
      if (o.kind == "CronJob" && o.suspend == "true")
        checked(kubectl({"patch", o.ref(), "--type=merge", "-p", R"({"spec":{"suspend":false}})"}), "resume " + o.ref());
      if (!o.scalable()) continue;
      if (o.replicas <= 0) {
        const long long to = o.recorded > 0 ? o.recorded : 1;
        checked(kubectl({"scale", o.ref(), "--replicas=" + std::to_string(to)}),
                "scale " + o.ref() + " to " + std::to_string(to));
      }
      waited.push_back(o);
    }
    forget();
    for (const auto& o : waited) {
      const auto spent = std::chrono::duration_cast<milliseconds>(clock::now() - start);
      const milliseconds left =
          config_.ready_timeout == milliseconds::max() ? milliseconds::max() : std::max(config_.ready_timeout - spent, milliseconds(1));
      std::vector<std::string> args{"rollout", "status", o.ref()};
      if (left != milliseconds::max()) args.push_back("--timeout=" + std::to_string(left.count()) + "ms");
      const Call c = kubectl(args, left == milliseconds::max() ? left : left + std::chrono::seconds(30));
      const auto r = run(c);
      if (r.ok()) continue;
      const std::string& err = r.stderr_tail;
      if (!r.stopped && (err.find("timed out") != std::string::npos || r.timed_out))
        throw Error("stackup: " + who() + ": " + o.ref() + " is not ready within ready_timeout (" +
                    detail::posix::format_duration(config_.ready_timeout) + "): " + why_not_ready(o) +
                    "; see `kubectl describe " + o.ref() + "`, or raise ready_timeout");
      fail(c, r, "wait for " + o.ref());
    }
  }

  // What a Deployment's status says: its ready replicas and its conditions.
  [[nodiscard]] std::string why_not_ready(const Object& o) const {
    const auto r = run(kubectl({"get", o.ref(), "-o",
                                R"(jsonpath={.status.readyReplicas}|{.spec.replicas}|{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}; {end})"}));
    if (!r.ok()) return "its status cannot be read";
    const auto f = detail::kube::split(detail::kube::lines(r.out).empty() ? "" : detail::kube::lines(r.out).front(), '|');
    std::string out = std::to_string(std::max(detail::kube::number(f[0]), 0LL)) + " of " +
                      (f.size() > 1 && !f[1].empty() ? f[1] : "?") + " replicas ready";
    if (f.size() > 2 && !f[2].empty()) {
      std::string conditions = f[2];
      while (!conditions.empty() && (conditions.back() == ' ' || conditions.back() == ';')) conditions.pop_back();
      out += "; conditions: " + conditions;
    }
    return out;
  }

  // ---- the state directory's record ----------------------------------------------

  struct Pod {
    std::string id, name;
  };
  struct Record {
    std::string hash;
    std::vector<std::string> kinds; // kubectl
    std::vector<Pod> pods;          // podman
  };

  // Record file `applied`: "<engine> <hash>\n", then kubectl: "kind,kind\n";
  // podman: "<pod id> <pod name>\n" per pod it created.
  [[nodiscard]] Record record() const {
    using px = detail::posix;
    Record out;
    const auto dir = state_dir();
    const auto l = px::lock_private_dir(dir, false);
    if (!l) return out;
    const auto text = px::read_file_at(l.dir.get(), "applied", 1 << 20, dir / "applied");
    if (!text) return out;
    const auto ls = detail::kube::lines(*text);
    if (ls.empty()) return out;
    const auto head = detail::kube::split(ls[0], ' ');
    if (head.size() != 2 || head[0] != to_string(config_.engine))
      throw Error("stackup: " + who() + ": " + px::quoted(dir / "applied") + " was not written for engine '" +
                  std::string(to_string(config_.engine)) + "': take the component down with the engine it was "
                  "brought up with, or remove that file");
    out.hash = head[1];
    for (std::size_t i = 1; i < ls.size(); ++i) {
      if (config_.engine == KubernetesEngine::kubectl) {
        for (auto& k : detail::kube::split(ls[i], ',')) add_kind(out.kinds, std::move(k));
      } else {
        const auto sp = ls[i].find(' ');
        out.pods.push_back({ls[i].substr(0, sp), sp == std::string::npos ? std::string() : ls[i].substr(sp + 1)});
      }
    }
    return out;
  }

  [[nodiscard]] std::vector<std::string> recorded_kinds() const { return record().kinds; }

  void write_record(const std::string& text) const {
    using px = detail::posix;
    const auto dir = state_dir();
    if (const std::string why = px::forbidden_directory(dir); !why.empty())
      throw Error("stackup: " + who() + ": refusing state directory " + px::quoted(dir) + ": " + why +
                  "; set state_dir to a directory of its own");
    const auto l = px::lock_private_dir(dir, true);
    px::write_file_atomic(l.dir.get(), "applied", text, dir / "applied");
  }

  void remove_record() const {
    using px = detail::posix;
    const auto dir = state_dir();
    const auto l = px::lock_private_dir(dir, false);
    if (l && ::unlinkat(l.dir.get(), "applied", 0) != 0 && errno != ENOENT)
      throw Error("stackup: " + who() + ": cannot remove " + px::quoted(dir / "applied") + ": " + px::sys_message(errno));
  }

  // ---- podman -----------------------------------------------------------------------

  struct PodState {
    std::string id, name, status;
  };

  [[nodiscard]] std::string pods_key() const { return "podman pods\0" + podman(); }

  // Every pod podman has: one call, or its answer from earlier in the same
  // query round (shared by every podman-engine kubernetes component).
  [[nodiscard]] std::vector<PodState> podman_pods() const {
    using Cache = detail::kube::RoundCache;
    const std::string key = pods_key();
    std::string text;
    if (auto entry = Cache::find(key)) {
      text = std::move(entry->text);
    } else {
      text = checked(Call{{podman(), "pod", "ps", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Status}}"}},
                     "list its pods");
      Cache::store(key, {}, text);
    }
    std::vector<PodState> out;
    for (const auto& line : detail::kube::lines(text)) {
      const auto f = detail::kube::split(line, ' ');
      if (f.size() >= 3) out.push_back({f[0], f[1], f[2]});
    }
    return out;
  }

  static const PodState* find_pod(const std::vector<PodState>& pods, const std::string& id) {
    for (const auto& p : pods)
      if (p.id == id) return &p;
    return nullptr;
  }

  [[nodiscard]] std::vector<Pod> existing(const Record& rec) const {
    const auto pods = podman_pods();
    std::vector<Pod> out;
    for (const auto& p : rec.pods)
      if (find_pod(pods, p.id) != nullptr) out.push_back(p);
    return out;
  }

  // The containers of its pods on record that exist, infra containers left
  // out (they print nothing): their full IDs, from one podman call.
  [[nodiscard]] std::vector<std::string> podman_containers() const {
    const auto mine = existing(record());
    if (mine.empty()) return {};
    std::vector<std::string> argv{podman(), "ps", "-a", "--no-trunc"};
    for (const auto& p : mine) argv.insert(argv.end(), {"--filter", "pod=" + p.id});
    argv.insert(argv.end(), {"--format", "{{.ID}} {{.IsInfra}} {{.Pod}}"});
    std::vector<std::string> out;
    for (const auto& line : detail::kube::lines(checked(Call{argv}, "list the containers of its pods"))) {
      const auto f = detail::kube::split(line, ' ');
      // Only a container of a pod on record, whatever the filter matched.
      if (f.size() < 3 || f[1] != "false") continue;
      if (std::any_of(mine.begin(), mine.end(), [&](const Pod& p) { return p.id == f[2]; })) out.push_back(f[0]);
    }
    return out;
  }

  void podman_play() {
    const std::string hash = config_hash();
    Call c{{podman(), "kube", "play", "--start=false"}, {}, call_timeout};
    for (const auto& f : files()) c.argv.push_back(f.string());
    const auto r = run(c);
    // The pods it created, as podman reports them ("Pod:\n<id>\n...").
    std::vector<std::string> ids;
    bool in_pods = false;
    for (const auto& line : detail::kube::lines(r.out)) {
      if (line.back() == ':') {
        in_pods = line == "Pod:" || line == "Pods:";
        continue;
      }
      if (in_pods) ids.push_back(line);
    }
    std::string text = "podman " + hash + "\n";
    forget();
    const auto pods = podman_pods();
    for (const auto& id : ids) {
      const auto* p = find_pod(pods, id);
      text += id + " " + (p ? p->name : std::string()) + "\n";
    }
    // What it created is recorded even when it failed part way, so a rollback
    // (deprovision) can remove it.
    if (!ids.empty()) write_record(text);
    if (!r.ok()) {
      const std::string tail = detail::posix::text_tail(r.stderr_tail, 8);
      if (r.stderr_tail.find("already in use") != std::string::npos || r.stderr_tail.find("already exists") != std::string::npos)
        throw Error("stackup: " + who() + ": a pod or container of these manifests' names already exists and is not "
                    "this component's (stackup never changes what it did not create): remove it (`podman pod rm -f "
                    "NAME`) if it may go, or rename it in the manifests; podman said:" + tail);
      fail(c, r, "play its manifests (podman kube play)");
    }
    if (ids.empty())
      throw Error("stackup: " + who() + ": `" + shown(c.argv) + "` created no pod: the manifests need a Pod, "
                  "Deployment or other workload that podman kube play runs");
    forget();
  }

  void podman_start() {
    using clock = std::chrono::steady_clock;
    const auto rec = record();
    if (rec.pods.empty())
      throw Error("stackup: " + who() + ": no pods on record in " + detail::posix::quoted(state_dir() / "applied") +
                  ": provision it first (stack up)");
    const auto mine = existing(rec);
    if (mine.size() != rec.pods.size())
      throw Error("stackup: " + who() + ": a pod on record is gone (removed outside stackup): take the component "
                  "down and up again to play the manifests afresh");
    std::vector<std::string> argv{podman(), "pod", "start"};
    for (const auto& p : mine) argv.push_back(p.id);
    checked(Call{argv}, "start its pods");
    const auto deadline = clock::now() + std::min(config_.ready_timeout, milliseconds(std::chrono::hours(24 * 365)));
    while (true) {
      forget();
      const auto pods = podman_pods();
      const PodState* waiting = nullptr;
      for (const auto& p : mine) {
        const auto* s = find_pod(pods, p.id);
        if (s == nullptr || s->status != "Running") {
          waiting = s;
          if (s == nullptr || s->status == "Exited" || s->status == "Dead" || s->status == "Stopped")
            throw Error("stackup: " + who() + ": pod " + p.name + " " +
                        (s == nullptr ? std::string("is gone") : "is " + s->status) +
                        " instead of running: see `podman pod logs " + p.name + "` or `podman logs` of its containers");
          break;
        }
      }
      if (waiting == nullptr) return;
      if (clock::now() >= deadline)
        throw Error("stackup: " + who() + ": pod " + waiting->name + " is not running within ready_timeout (" +
                    detail::posix::format_duration(config_.ready_timeout) + "): its status is " + waiting->status +
                    "; see `podman pod inspect " + waiting->name + "`, or raise ready_timeout");
      if (stop_requested()) throw InterruptedError("stackup: " + who() + ": stopped while waiting for its pods: a stop was requested");
      std::this_thread::sleep_for(milliseconds(100));
    }
  }

  void podman_down() {
    const auto rec = record();
    const auto mine = existing(rec);
    if (!mine.empty()) {
      // `kube down` removes the pods the manifests name: when the manifests are
      // those it played and every pod of those names is one it created, that is
      // exactly its pods; otherwise only the pods on record are removed.
      const bool same = rec.hash == config_hash() && mine.size() == rec.pods.size();
      if (same) {
        Call c{{podman(), "kube", "down"}, {}, call_timeout};
        for (const auto& f : files()) c.argv.push_back(f.string());
        checked(c, "take down its pods (podman kube down)");
      } else {
        std::vector<std::string> argv{podman(), "pod", "rm", "--force"};
        for (const auto& p : mine) argv.push_back(p.id);
        checked(Call{argv}, "remove its pods");
      }
    }
    remove_record();
    forget();
  }

};

} // namespace stackup
