// Stack files: `flavor = "container"` (DESIGN §11): every key, the stack's name
// in the container's, and each error at its line and column saying what is valid.
#include <stackup/stack_file.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using Ctr = stackup::Container<>;

std::string error_of(std::string_view text) {
  try {
    (void)stackup::parse_stack(text, "/tmp/t.toml");
  } catch (const stackup::StackFileError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("not a StackFileError: " << e.what());
  }
  FAIL("no error for:\n" << text);
  return {};
}

constexpr std::string_view head = "name = \"dev\"\n[components.db]\nflavor = \"container\"\n";

} // namespace

TEST_CASE("stack file: a container with every key") {
  const auto stack = stackup::parse_stack(R"(name = "dev"
[components.db]
flavor = "container"
name = "postgres"
image = "docker.io/library/postgres:16"
engine = "docker"
command = ["postgres", "-c", "fsync=off"]
env = { POSTGRES_PASSWORD = "dev" }
ports = ["127.0.0.1:5433:5432", "8080", "127.0.0.1::9000/udp"]
volumes = ["pgdata:/var/lib/postgresql/data", "./init:/docker-entrypoint-initdb.d:ro"]
working_dir = "sub"
state_dir = "state/db"
run_args = ["--cap-add", "NET_ADMIN"]
user = "999"
ready = { tcp = 5433 }
start_timeout = "1m"
stop_timeout = "10s"
restart = "on-failure"
liveness = { tcp = 5433 }
on_dependency_restart = "restart"
)", "/tmp/t.toml");
  const auto* c = stack.get("db").target<Ctr>();
  REQUIRE(c != nullptr);
  const auto& cfg = c->config();
  CHECK(cfg.stack == "dev");
  CHECK(c->container_name() == "stackup-dev-db");
  CHECK(c->name() == "postgres");
  CHECK(cfg.image == "docker.io/library/postgres:16");
  CHECK(cfg.engine == "docker");
  CHECK(cfg.command.size() == 3);
  CHECK(cfg.env.at("POSTGRES_PASSWORD") == "dev");
  CHECK(cfg.ports.size() == 3);
  CHECK(cfg.volumes.size() == 2);
  CHECK(cfg.working_dir == std::filesystem::path("/tmp/sub"));
  CHECK(c->state_dir() == std::filesystem::path("/tmp/state/db")); // against the file's directory
  CHECK(cfg.run_args.size() == 2);
  CHECK(cfg.user == "999");
  CHECK(cfg.ready.kind == stackup::ready::Probe::Kind::tcp);
  CHECK(cfg.ready.port == 5433);
  CHECK(cfg.start_timeout == 1min);
  CHECK(cfg.stop_timeout == 10s);
  CHECK(cfg.restart.policy == stackup::Restart::on_failure);
  CHECK(c->supervision().on_dependency_restart == stackup::OnDependencyRestart::restart);
  CHECK(c->flavor == "container");
}

TEST_CASE("stack file: a container's defaults: the directory's name for the stack, the file's directory") {
  const auto stack = stackup::parse_stack("[components.web]\nflavor = \"container\"\nimage = \"busybox\"\n", "/tmp/t.toml");
  const auto* c = stack.get("web").target<Ctr>();
  REQUIRE(c != nullptr);
  CHECK(c->container_name() == "stackup-tmp-web");
  CHECK(c->config().engine.empty());
  CHECK(c->config().working_dir == std::filesystem::path("/tmp"));
  CHECK(c->state_dir() == std::filesystem::path("/tmp/.stackup/web"));
  CHECK(c->config().ready.kind == stackup::ready::Probe::Kind::none);
}

TEST_CASE("stack file: container errors at their line and column") {
  CHECK(error_of(std::string(head) + "image = \"x\"\nimages = 1\n") ==
        "/tmp/t.toml:5:1: unknown key 'images' in component 'db' (container); valid keys: flavor, depends_on, name, "
        "image, engine, command, env, ports, volumes, working_dir, state_dir, run_args, user, ready, start_timeout, stop_timeout, "
        "restart, liveness, on_dependency_restart");
  CHECK(error_of(std::string(head)) ==
        "/tmp/t.toml:2:1: component 'db' (container) lacks the required key 'image' (the image to run, e.g. image = "
        "\"docker.io/library/redis:7\")");
  CHECK(error_of(std::string(head) + "image = \"\"\n") ==
        "/tmp/t.toml:4:9: 'image' of component 'db' is empty: give the image to run");
  CHECK(error_of(std::string(head) + "image = \"x\"\nengine = \"rkt\"\n") ==
        "/tmp/t.toml:5:10: 'engine' of component 'db' is \"rkt\": give \"podman\" or \"docker\" (absent: "
        "$STACKUP_CONTAINER_ENGINE, else podman, else docker)");
  CHECK(error_of(std::string(head) + "image = \"x\"\nports = [\"127.0.0.1:http:80\"]\n") ==
        "/tmp/t.toml:5:9: port \"127.0.0.1:http:80\" of component 'db' is not [IP:][HOST:]CONTAINER[/tcp|udp|sctp] (the "
        "host port must be a number from 1 to 65535 (port ranges are not supported)), e.g. \"127.0.0.1:5433:5432\"");
  CHECK(error_of(std::string(head) + "image = \"x\"\nports = [\"5432/quic\"]\n").starts_with("/tmp/t.toml:5:9: port \"5432/quic\""));
  CHECK(error_of(std::string(head) + "image = \"x\"\nvolumes = [\"data\"]\n") ==
        "/tmp/t.toml:5:11: volume \"data\" of component 'db' is not SOURCE:/path[:options], e.g. \"data:/var/lib/data\" "
        "or \"./init:/init:ro\"");
  CHECK(error_of(std::string(head) + "image = \"x\"\nready = { exec = \"true\" }\n").starts_with("/tmp/t.toml:5:"));
  CHECK(error_of("name = \"my stack\"\n[components.db]\nflavor = \"container\"\nimage = \"x\"\n")
            .find("the stack name 'my stack' cannot be part of a container name") != std::string::npos);
  CHECK(error_of("name = \"dev\"\n[components.\"d b\"]\nflavor = \"container\"\nimage = \"x\"\n")
            .find("a container's role is part of its name") != std::string::npos);
}
