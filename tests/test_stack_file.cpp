// Stack files: the schema of DESIGN §8, every error at its line and column,
// interpolation, path resolution, custom flavours, nothing created on disk.
#include <stackup/stack_file.hpp>

#include <doctest/doctest.h>

#include "support/users.hpp"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Daemon = stackup::LocalDaemon<>;
using Directory = stackup::LocalDirectory<>;
using Cmd = stackup::Command<>;

// A fresh directory, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "stackup-sf-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = fs::path(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

void write(const fs::path& file, std::string_view text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// Every path under a directory: what must not change when a file is only parsed.
std::set<std::string> tree(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(fs::relative(e.path(), dir).string());
  return out;
}

// Sets a variable for one test case.
struct Env {
  std::string name;
  Env(std::string n, const char* value) : name(std::move(n)) {
    if (value) ::setenv(name.c_str(), value, 1);
    else ::unsetenv(name.c_str());
  }
  ~Env() { ::unsetenv(name.c_str()); }
};

// Runs in another directory for one test case.
struct InDirectory {
  fs::path before = fs::current_path();
  explicit InDirectory(const fs::path& p) { fs::current_path(p); }
  ~InDirectory() { fs::current_path(before); }
};

// The StackFileError that parsing `text` (named t.toml) throws.
stackup::StackFileError error_of(std::string_view text, const stackup::Flavors& flavors = stackup::Flavors::builtin()) {
  try {
    (void)stackup::parse_stack(text, "t.toml", flavors);
  } catch (const stackup::StackFileError& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL("not a StackFileError: " << e.what());
  }
  FAIL("no error for:\n" << text);
  return {"", ""};
}

#define CHECK_ERROR(text, line_, column_, message)                                                                     \
  do {                                                                                                                 \
    const auto e_ = error_of(text);                                                                                    \
    CHECK(std::string(e_.what()) == std::string("t.toml:") + #line_ ":" #column_ ": " + (message));                     \
    CHECK(e_.file() == "t.toml");                                                                                      \
    CHECK(e_.line() == line_);                                                                                         \
    CHECK(e_.column() == column_);                                                                                     \
  } while (false)

constexpr std::string_view daemon_keys =
    "flavor, depends_on, name, command, ready, start_timeout, stop_timeout, start_grace, env, working_dir, state_dir, "
    "user, restart, liveness, on_dependency_restart";

} // namespace

TEST_CASE("a stack file with every key of every flavour") {
  TempDir tmp;
  const fs::path dir = tmp.path / "dev";
  write(dir / "stackup.toml", R"(version = 1
name = "dev-stack"

[components.artifact_store]
flavor = "local_directory"
name = "artifacts"
path = "data/artifacts"

[components.cache]
flavor = "local_daemon"
name = "redis"
command = ["redis-server", "--port", "6390"]
ready = { tcp = 6390 }
start_timeout = "10s"
stop_timeout = "250ms"
env = { KEY = "value", OTHER = "x y" }
working_dir = "work"
state_dir = "state/cache"
user = ""
depends_on = ["artifact_store"]

[components.web]
flavor = "local_daemon"
command = ["python3", "-m", "http.server"]
ready = { http = 8080, path = "/health" }
state_dir = "/var/tmp/stackup-web"

[components.database]
flavor = "command"
name = "pg"
provision = "initdb -D data/pg"
resume = "pg_ctl -D data/pg -w start"
suspend = "pg_ctl -D data/pg -w stop"
deprovision = "rm -rf data/pg"
is_provisioned = "test -f data/pg/PG_VERSION"
is_running = "pg_ctl -D data/pg status"
timeout = "2m"
working_dir = "/tmp"
env = { PGPORT = "5433" }
depends_on = ["cache", "artifact_store"]
)");
  const auto before = tree(tmp.path);
  stackup::DynamicStack s = stackup::load_stack(dir / "stackup.toml");
  CHECK(tree(tmp.path) == before);

  CHECK(s.name() == "dev-stack");
  REQUIRE(s.size() == 4);
  CHECK(std::vector<std::string_view>(s.roles().begin(), s.roles().end()) ==
        std::vector<std::string_view>{"artifact_store", "cache", "web", "database"});

  const auto* store = s.get("artifact_store").target<Directory>();
  REQUIRE(store);
  CHECK(store->name() == "artifacts");
  CHECK(store->path() == dir / "data/artifacts");
  CHECK(s.get("artifact_store").flavor() == "local_directory");

  const auto* cache = s.get("cache").target<Daemon>();
  REQUIRE(cache);
  const auto& c = cache->config();
  CHECK(cache->name() == "redis");
  CHECK(c.command == std::vector<std::string>{"redis-server", "--port", "6390"});
  CHECK(c.ready == stackup::ready::tcp(6390));
  CHECK(c.start_timeout == 10s);
  CHECK(c.stop_timeout == 250ms);
  CHECK(c.env == std::map<std::string, std::string>{{"KEY", "value"}, {"OTHER", "x y"}});
  CHECK(c.working_dir == dir / "work");
  CHECK(c.state_dir == dir / "state/cache");
  CHECK(s.get("cache").depends_on() == std::vector<std::string>{"artifact_store"});

  const auto* web = s.get("web").target<Daemon>();
  REQUIRE(web);
  CHECK(web->name() == "web"); // default: the role
  CHECK(web->config().ready == stackup::ready::http(8080, "/health"));
  CHECK(web->config().state_dir == "/var/tmp/stackup-web");
  CHECK(web->config().working_dir == dir); // default: the file's directory
  CHECK(web->config().start_timeout == 30s);
  CHECK(web->config().stop_timeout == 10s);

  const auto* db = s.get("database").target<Cmd>();
  REQUIRE(db);
  const auto& d = db->config();
  CHECK(db->name() == "pg");
  CHECK(d.provision == "initdb -D data/pg");
  CHECK(d.resume == "pg_ctl -D data/pg -w start");
  CHECK(d.suspend == "pg_ctl -D data/pg -w stop");
  CHECK(d.deprovision == "rm -rf data/pg");
  CHECK(d.is_provisioned == "test -f data/pg/PG_VERSION");
  CHECK(d.is_running == "pg_ctl -D data/pg status");
  CHECK(d.timeout == 2min);
  CHECK(d.working_dir == "/tmp");
  CHECK(d.env == std::map<std::string, std::string>{{"PGPORT", "5433"}});
  CHECK(s.get("database").depends_on() == std::vector<std::string>{"cache", "artifact_store"});
}

TEST_CASE("defaults: the stack's name, state_dir, working_dir, ready, timeouts, a command's directory") {
  TempDir tmp;
  const fs::path dir = tmp.path / "myproject";
  write(dir / "stackup.toml", R"(
[components.cache]
flavor = "local_daemon"
command = ["redis-server"]

[components.job]
flavor = "command"
)");
  const auto s = stackup::load_stack(dir / "stackup.toml");
  CHECK(s.name() == "myproject");
  const auto& c = s.get("cache").target<Daemon>()->config();
  CHECK(c.state_dir == dir / ".stackup/cache");
  CHECK(c.working_dir == dir);
  CHECK(c.ready == stackup::ready::none());
  CHECK(c.env.empty());
  CHECK(c.name.empty());
  CHECK(s.get("cache").depends_on().empty());
  const auto& j = s.get("job").target<Cmd>()->config();
  CHECK(j.working_dir == dir); // commands run in the file's directory
  CHECK(j.timeout == 5min);
  CHECK(j.provision.empty());
  CHECK(s.get("job").has(stackup::Transition::resume)); // the type has it; an empty command throws NotImplementedError
}

TEST_CASE("an empty file is an empty stack; components keep the file's order") {
  CHECK(stackup::parse_stack("", "t.toml").size() == 0);
  const auto s = stackup::parse_stack(R"(
[components.zeta]
flavor = "command"
depends_on = ["mid"]
[components.alpha]
flavor = "command"
[components.mid]
flavor = "command"
)", "t.toml");
  CHECK(std::vector<std::string_view>(s.roles().begin(), s.roles().end()) ==
        std::vector<std::string_view>{"zeta", "alpha", "mid"});
  // Action order: dependencies first, ties by the file's order.
  CHECK(std::vector<std::size_t>(s.order().begin(), s.order().end()) == std::vector<std::size_t>{1, 2, 0});
  const auto inline_tables = stackup::parse_stack(R"(components = { b = { flavor = "command" }, a = { flavor = "command" } })", "t.toml");
  CHECK(std::vector<std::string_view>(inline_tables.roles().begin(), inline_tables.roles().end()) ==
        std::vector<std::string_view>{"b", "a"});
}

TEST_CASE("version and name") {
  CHECK(stackup::parse_stack("version = 1\nname = \"x\"\n", "t.toml").name() == "x");
  CHECK_ERROR("version = 2\n", 1, 11, "unsupported version 2: this stackup reads stack files of version 1");
  CHECK_ERROR("version = \"1\"\n", 1, 11, "'version' must be the integer 1, not a string");
  CHECK_ERROR("name = 3\n", 1, 8, "'name' (the stack's name) must be a string, not an integer");
  CHECK_ERROR("name = \"\"\n", 1, 8,
              "'name' is empty: give the stack a name, or leave it out (default: the directory's name)");
}

TEST_CASE("errors at their line and column, saying what is valid") {
  SUBCASE("TOML syntax") {
    const auto e = error_of("[components.a]\nflavor = \n");
    CHECK(e.line() == 2);
    CHECK(std::string(e.what()).starts_with("t.toml:2:"));
    CHECK(std::string(e.what()).find("not valid TOML: ") != std::string::npos);
  }
  SUBCASE("unknown top-level key") {
    CHECK_ERROR("name = \"x\"\ncomponent = 1\n", 2, 1, "unknown top-level key 'component'; valid keys: version, name, components");
  }
  SUBCASE("components is not a table") {
    CHECK_ERROR("components = []\n", 1, 14, "'components' must be a table of components ([components.<role>]), not an array");
  }
  SUBCASE("a component is not a table") {
    CHECK_ERROR("[components]\ncache = \"redis\"\n", 2, 9,
                "component 'cache' must be a table ([components.cache] or { flavor = ... }), not a string");
  }
  SUBCASE("unknown key, with the valid ones") {
    CHECK_ERROR("[components.cache]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\nstat_dir = \"x\"\n", 4, 1,
                "unknown key 'stat_dir' in component 'cache' (local_daemon); valid keys: " + std::string(daemon_keys));
    CHECK_ERROR("[components.d]\nflavor = \"local_directory\"\npath = \"x\"\nname = \"n\"\nmode = 1\n", 5, 1,
                "unknown key 'mode' in component 'd' (local_directory); valid keys: flavor, depends_on, name, path");
    CHECK_ERROR("[components.j]\nflavor = \"command\"\nstart = \"x\"\n", 3, 1,
                "unknown key 'start' in component 'j' (command); valid keys: flavor, depends_on, name, provision, "
                "deprovision, resume, suspend, is_provisioned, is_running, timeout, working_dir, env, user, restart, liveness, "
                "on_dependency_restart");
  }
  SUBCASE("unknown key in ready") {
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\nready = { tcp = 1, host = \"h\" }\n", 4, 20,
                "unknown key 'host' in 'ready' of component 'c' (local_daemon); valid keys: tcp, http, path, any_listener");
  }
  SUBCASE("no flavor, unknown flavor, flavor not a string") {
    CHECK_ERROR("[components.cache]\nname = \"x\"\n", 1, 1,
                "component 'cache' has no flavor: add flavor = one of local_daemon, local_directory, command, container, kubernetes");
    CHECK_ERROR("[components.cache]\nflavor = \"redis\"\n", 2, 10,
                "unknown flavor 'redis' for component 'cache'; valid flavors: local_daemon, local_directory, command, container, kubernetes");
    CHECK_ERROR("[components.cache]\nflavor = 1\n", 2, 10,
                "'flavor' of component 'cache' must be a string (one of local_daemon, local_directory, command, container, kubernetes), not an integer");
  }
  SUBCASE("wrong types") {
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = \"redis-server\"\n", 3, 11,
                "'command' of component 'c' (local_daemon) must be an array of strings, not a string");
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"redis-server\", 6390]\n", 3, 28,
                "'command' of component 'c' (local_daemon) must hold only strings, not an integer");
    CHECK_ERROR("[components.c]\nflavor = \"command\"\nprovision = [\"x\"]\n", 3, 13,
                "'provision' of component 'c' (command) must be a string, not an array");
    CHECK_ERROR("[components.c]\nflavor = \"command\"\nenv = { A = 1 }\n", 3, 13,
                "'env.A' of component 'c' (command) must be a string, not an integer");
    CHECK_ERROR("[components.c]\nflavor = \"command\"\nenv = [\"A=1\"]\n", 3, 7,
                "'env' of component 'c' (command) must be a table of strings, such as { KEY = \"value\" }, not an array");
    CHECK_ERROR("[components.c]\nflavor = \"command\"\ndepends_on = \"a\"\n", 3, 14,
                "'depends_on' of component 'c' (command) must be an array of strings, not a string");
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\nready = \"tcp\"\n", 4, 9,
                "'ready' of component 'c' (local_daemon) must be a table, not a string");
    CHECK_ERROR("[components.d]\nflavor = \"local_directory\"\npath = 1\n", 3, 8,
                "'path' of component 'd' (local_directory) must be a path (a string), not an integer");
  }
  SUBCASE("bad durations say the syntax") {
    const std::string syntax = "a duration: a whole number followed by ms, s, m or h, such as \"250ms\", \"10s\", \"2m\"";
    CHECK_ERROR("[components.c]\nflavor = \"command\"\ntimeout = \"10\"\n", 3, 11,
                "'timeout' of component 'c' (command) is \"10\", not " + syntax);
    CHECK_ERROR("[components.c]\nflavor = \"command\"\ntimeout = \"1.5s\"\n", 3, 11,
                "'timeout' of component 'c' (command) is \"1.5s\", not " + syntax);
    CHECK_ERROR("[components.c]\nflavor = \"command\"\ntimeout = \"-1s\"\n", 3, 11,
                "'timeout' of component 'c' (command) is \"-1s\", not " + syntax);
    CHECK_ERROR("[components.c]\nflavor = \"command\"\ntimeout = \"99999999999999h\"\n", 3, 11,
                "'timeout' of component 'c' (command) is \"99999999999999h\", not " + syntax);
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\nstart_timeout = 10\n", 4, 17,
                "'start_timeout' of component 'c' (local_daemon) must be " + syntax + ", not an integer");
  }
  SUBCASE("ports") {
    const std::string head = "[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\n";
    CHECK_ERROR(head + "ready = { tcp = 0 }\n", 4, 17, "'tcp' of 'ready' of component 'c' (local_daemon) is 0: a port is between 1 and 65535");
    CHECK_ERROR(head + "ready = { http = 65536 }\n", 4, 18,
                "'http' of 'ready' of component 'c' (local_daemon) is 65536: a port is between 1 and 65535");
    CHECK_ERROR(head + "ready = { tcp = \"6390\" }\n", 4, 17,
                "'tcp' of 'ready' of component 'c' (local_daemon) must be a port number (1-65535), or a string holding "
                "just one ${VAR} that gives one, not a string");
    CHECK_ERROR(head + "ready = { tcp = 1.5 }\n", 4, 17,
                "'tcp' of 'ready' of component 'c' (local_daemon) must be a port number (1-65535), or a string holding "
                "just one ${VAR} that gives one, not a floating-point number");
  }
  SUBCASE("ready") {
    const std::string head = "[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\n";
    CHECK_ERROR(head + "ready = {}\n", 4, 9,
                "'ready' of component 'c' needs tcp or http: write ready = { tcp = PORT } or ready = { http = PORT, path = \"/health\" }");
    CHECK_ERROR(head + "ready = { tcp = 1, http = 2 }\n", 4, 27, "'ready' of component 'c' has both tcp and http: choose one");
    CHECK_ERROR(head + "ready = { tcp = 1, path = \"/x\" }\n", 4, 27,
                "'path' goes with http, not tcp: write ready = { http = PORT, path = \"/health\" }");
    CHECK_ERROR(head + "ready = { http = 1, path = \"health\" }\n", 4, 28,
                "ready::http: path 'health' must start with '/' and hold no spaces or line breaks");
  }
  SUBCASE("missing required keys") {
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\n", 1, 1,
                "component 'c' (local_daemon) lacks the required key 'command' (the daemon's argv, e.g. command = "
                "[\"redis-server\", \"--port\", \"6390\"])");
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = []\n", 3, 11,
                "'command' of component 'c' is empty: give the daemon's argv");
    CHECK_ERROR("[components.d]\nflavor = \"local_directory\"\n", 1, 1,
                "component 'd' (local_directory) lacks the required key 'path' (the directory)");
    CHECK_ERROR("[components.d]\nflavor = \"local_directory\"\npath = \"\"\n", 3, 8,
                "'path' of component 'd' (local_directory) is empty: give a path (relative paths are against the file's directory)");
  }
  SUBCASE("an empty role") {
    CHECK_ERROR("[components.\"\"]\nflavor = \"command\"\n", 1, 13,
                "a component's role cannot be empty: name it [components.<role>]");
  }
  SUBCASE("user: a string naming a user that exists") {
    CHECK_ERROR("[components.c]\nflavor = \"command\"\nuser = 5\n", 3, 8,
                "'user' of component 'c' (command) must be a string, not an integer");
    CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nuser = \"stackup-no-such-user\"\n", 4, 8,
                "component 'c': there is no user 'stackup-no-such-user' on this system (see `getent passwd "
                "stackup-no-such-user`): create it, or fix or remove `user`");
    CHECK_ERROR("[components.db]\nflavor = \"command\"\nuser = \"stackup-no-such-user\"\n", 3, 8,
                "component 'db': there is no user 'stackup-no-such-user' on this system (see `getent passwd "
                "stackup-no-such-user`): create it, or fix or remove `user`");
  }
}


TEST_CASE("user: empty or the current user is accepted and reaches the config") {
  const std::string me = users::my_user_name();
  for (const std::string& user : {std::string(), me}) {
    CAPTURE(user);
    const auto s = stackup::parse_stack("[components.c]\nflavor = \"command\"\nuser = \"" + user +
                                            "\"\n[components.d]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nuser = \"" +
                                            user + "\"\n",
                                        "t.toml");
    REQUIRE(s.get("c").target<Cmd>());
    CHECK(s.get("c").target<Cmd>()->config().user == user);
    REQUIRE(s.get("d").target<Daemon>());
    CHECK(s.get("d").target<Daemon>()->config().user == user);
  }
}

TEST_CASE("user: another user, as root, reaches both flavours' config; ${VAR} is expanded in it") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: running as another user needs root, and this test runs as uid " << ::geteuid());
    return;
  }
  REQUIRE(::getpwnam("nobody") != nullptr);
  Env env("STACKUP_TEST_USER", "nobody");
  const auto s = stackup::parse_stack("[components.c]\nflavor = \"command\"\nuser = \"${STACKUP_TEST_USER}\"\n"
                                      "[components.d]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nuser = \"nobody\"\n",
                                      "t.toml");
  REQUIRE(s.get("c").target<Cmd>());
  CHECK(s.get("c").target<Cmd>()->config().user == "nobody");
  REQUIRE(s.get("d").target<Daemon>());
  CHECK(s.get("d").target<Daemon>()->config().user == "nobody");
}

TEST_CASE("user: another user without root is an error at the key naming the component and the fix") {
  // "root" is another user for anyone but root; as root, the parse runs in a
  // child that has become nobody first.
  const std::string text = "[components.db]\nflavor = \"command\"\nuser = \"root\"\n";
  const std::string message = users::error_without_root([&] { (void)stackup::parse_stack(text, "t.toml"); });
  const std::string me = users::unprivileged_user_name();
  CHECK(message == "t.toml:3:8: component 'db': running as user 'root' needs root, and this process runs as '" + me +
                       "': run stackup as root, or remove `user` to run it as '" + me + "'");
}

TEST_CASE("definition errors are StackFileErrors at the depends_on entry") {
  CHECK_ERROR("[components.a]\nflavor = \"command\"\n[components.b]\nflavor = \"command\"\ndepends_on = [\"a\", \"c\"]\n", 5, 20,
              "stack '" + fs::current_path().filename().string() + "' cannot exist: 'b' depends on 'c', which the stack does not hold (roles: a, b): add a "
              "component with that role or remove it from depends_on");
  CHECK_ERROR("name = \"s\"\n[components.a]\nflavor = \"command\"\ndepends_on = [\"b\"]\n[components.b]\nflavor = \"command\"\n"
              "depends_on = [\"a\"]\n",
              4, 15, "stack 's' cannot exist: dependency cycle: a -> b -> a; remove one depends_on entry on the cycle");
  CHECK_ERROR("name = \"s\"\n[components.a]\nflavor = \"command\"\ndepends_on = [\"a\"]\n", 4, 15,
              "stack 's' cannot exist: dependency cycle: a -> a; remove one depends_on entry on the cycle");
  const auto e = error_of("[components.a]\nflavor = \"command\"\ndepends_on = [\"x\"]\n");
  CHECK(dynamic_cast<const stackup::StackDefinitionError*>(&e) != nullptr);
}

TEST_CASE("one owner per path: overlapping state directories or a directory holding another's state are errors at "
          "the second component's key") {
  const std::string here = fs::current_path().lexically_normal().string();
  const std::string fix = ": one would remove or take over the other's files (a pid file, data); give each component a "
                          "directory of its own, not inside another's";
  CHECK_ERROR("name = \"s\"\n[components.db]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nstate_dir = \"state\"\n"
              "[components.web]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nstate_dir = \"./state/\"\n",
              9, 13, "stack 's' cannot exist: 'db' owns " + here + "/state and 'web' owns " + here + "/state too" + fix);
  // The daemon's default state directory (.stackup/web beside the file) inside a directory component.
  CHECK_ERROR("name = \"s\"\n[components.web]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\n"
              "[components.files]\nflavor = \"local_directory\"\npath = \".\"\n",
              7, 8, "stack 's' cannot exist: 'web' owns " + here + "/.stackup/web and 'files' owns " + here +
                        ", which holds it" + fix);
  // The second has no key of its own (a default state directory): the first one's.
  CHECK_ERROR("name = \"s\"\n[components.files]\nflavor = \"local_directory\"\npath = \".stackup\"\n"
              "[components.web]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\n",
              4, 8, "stack 's' cannot exist: 'files' owns " + here + "/.stackup and 'web' owns " + here +
                        "/.stackup/web, inside it" + fix);
  // Side by side is fine.
  CHECK_NOTHROW((void)stackup::parse_stack("[components.files]\nflavor = \"local_directory\"\npath = \"data\"\n"
                                           "[components.web]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\n",
                                           "t.toml"));
}

TEST_CASE("interpolation: ${VAR}, ${VAR:-default}, $$, $NAME, numbers, errors") {
  const Env set("STACKUP_SF_SET", "6391");
  const Env empty("STACKUP_SF_EMPTY", "");
  const Env unset("STACKUP_SF_UNSET", nullptr);
  const auto s = stackup::parse_stack(R"(
name = "${STACKUP_SF_UNSET:-fallback}"
[components.c]
flavor = "local_daemon"
command = ["redis-server", "--port", "${STACKUP_SF_SET}", "a$${HOME}b", "$HOME", "$$", "${STACKUP_SF_EMPTY}|${STACKUP_SF_EMPTY:-d}", "$"]
ready = { tcp = "${STACKUP_SF_SET}" }
start_timeout = "${STACKUP_SF_UNSET:-3s}"
env = { PORT = "${STACKUP_SF_SET}" }
[components.d]
flavor = "local_daemon"
command = ["x"]
ready = { http = "${STACKUP_SF_UNSET:-8081}", path = "/${STACKUP_SF_SET}" }
)", "t.toml");
  CHECK(s.name() == "fallback");
  const auto& c = s.get("c").target<Daemon>()->config();
  CHECK(c.command == std::vector<std::string>{"redis-server", "--port", "6391", "a${HOME}b", "$HOME", "$", "|d", "$"});
  CHECK(c.ready == stackup::ready::tcp(6391));
  CHECK(c.start_timeout == 3s);
  CHECK(c.env.at("PORT") == "6391");
  CHECK(s.get("d").target<Daemon>()->config().ready == stackup::ready::http(8081, "/6391"));

  CHECK_ERROR("[components.c]\nflavor = \"command\"\nresume = \"run ${STACKUP_SF_UNSET}\"\n", 3, 10,
              "variable 'STACKUP_SF_UNSET' is not set (neither in the environment nor in " +
                  (fs::current_path() / ".env").string() + "): set it, or give a default with ${STACKUP_SF_UNSET:-default}");
  CHECK_ERROR("[components.c]\nflavor = \"command\"\nresume = \"run ${STACKUP_SF_SET\"\n", 3, 10,
              "unclosed '${' in \"run ${STACKUP_SF_SET\": write ${NAME} or ${NAME:-default}, or $$ for a literal $");
  CHECK_ERROR("[components.c]\nflavor = \"command\"\nresume = \"${1X}\"\n", 3, 10,
              "'${1X}' is not a variable: write ${NAME} or ${NAME:-default} (NAME: letters, digits, _; a default may hold ${...} itself), or $$ for a literal $");
  CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\nready = { tcp = \"${STACKUP_SF_UNSET:-x1}\" }\n", 4, 17,
              "'tcp' of 'ready' of component 'c' (local_daemon) is \"x1\" once expanded, not a port number (1-65535)");
  CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\nready = { tcp = \"${STACKUP_SF_UNSET:-99999}\" }\n", 4, 17,
              "'tcp' of 'ready' of component 'c' (local_daemon) is 99999: a port is between 1 and 65535");
  CHECK_ERROR("[components.c]\nflavor = \"local_daemon\"\ncommand = [\"r\", \"${STACKUP_SF_UNSET}\"]\n", 3, 17,
              "variable 'STACKUP_SF_UNSET' is not set (neither in the environment nor in " +
                  (fs::current_path() / ".env").string() + "): set it, or give a default with ${STACKUP_SF_UNSET:-default}");
  CHECK_ERROR("[components.x]\nflavor = \"${STACKUP_SF_UNSET}\"\n", 2, 10,
              "variable 'STACKUP_SF_UNSET' is not set (neither in the environment nor in " +
                  (fs::current_path() / ".env").string() + "): set it, or give a default with ${STACKUP_SF_UNSET:-default}");
}

TEST_CASE(".env beside the file feeds interpolation; the environment wins") {
  TempDir tmp;
  const Env wins("STACKUP_SF_BOTH", "from-environment");
  const Env only("STACKUP_SF_DOTENV_ONLY", nullptr);
  write(tmp.path / ".env", "# a comment\n\nSTACKUP_SF_DOTENV_ONLY=from-dotenv\nSTACKUP_SF_BOTH = from-dotenv\n"
                           "export STACKUP_SF_QUOTED=\"a b\"\n");
  write(tmp.path / "stackup.toml", R"([components.c]
flavor = "command"
resume = "${STACKUP_SF_DOTENV_ONLY} ${STACKUP_SF_BOTH} ${STACKUP_SF_QUOTED}"
)");
  const Env quoted("STACKUP_SF_QUOTED", nullptr);
  const auto s = stackup::load_stack(tmp.path / "stackup.toml");
  CHECK(s.get("c").target<Cmd>()->config().resume == "from-dotenv from-environment a b");

  write(tmp.path / ".env", "OK=1\nnot a line\n");
  try {
    (void)stackup::load_stack(tmp.path / "stackup.toml");
    FAIL("no error");
  } catch (const stackup::StackFileError& e) {
    CHECK(std::string(e.what()) == (tmp.path / ".env").string() + ":2:1: expected KEY=value (or a # comment), not \"not a line\"");
  }
}

TEST_CASE("relative paths resolve against the file's directory, from any current directory") {
  TempDir tmp;
  write(tmp.path / "proj/stackup.toml", R"([components.d]
flavor = "local_directory"
path = "data/../artifacts"
[components.c]
flavor = "local_daemon"
command = ["x"]
working_dir = "."
[components.j]
flavor = "command"
working_dir = "scripts"
)");
  fs::create_directories(tmp.path / "elsewhere");
  const auto check = [&](const stackup::DynamicStack& s) {
    CHECK(s.get("d").target<Directory>()->path() == tmp.path / "proj/artifacts");
    CHECK(s.get("c").target<Daemon>()->config().working_dir == tmp.path / "proj");
    CHECK(s.get("c").target<Daemon>()->config().state_dir == tmp.path / "proj/.stackup/c");
    CHECK(s.get("j").target<Cmd>()->config().working_dir == tmp.path / "proj/scripts");
    CHECK(s.name() == "proj");
  };
  {
    const InDirectory in(tmp.path / "elsewhere");
    check(stackup::load_stack("../proj/stackup.toml"));
    check(stackup::load_stack(tmp.path / "proj/stackup.toml"));
  }
  {
    const InDirectory in(tmp.path);
    check(stackup::load_stack("proj/stackup.toml"));
    // parse_stack: the origin's directory when it exists, else the current directory.
    std::ifstream f(tmp.path / "proj/stackup.toml");
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    check(stackup::parse_stack(text, "proj/stackup.toml"));
    const auto here = stackup::parse_stack(text, "no-such-dir/inline.toml");
    CHECK(here.get("d").target<Directory>()->path() == tmp.path / "artifacts");
    CHECK(here.name() == tmp.path.filename().string());
  }
}

TEST_CASE("a file that cannot be read: FILE: ...") {
  TempDir tmp;
  try {
    (void)stackup::load_stack(tmp.path / "missing.toml");
    FAIL("no error");
  } catch (const stackup::StackFileError& e) {
    CHECK(std::string(e.what()) == (tmp.path / "missing.toml").string() + ": cannot read: No such file or directory");
    CHECK(e.line() == 0);
    CHECK(e.column() == 0);
  }
  try {
    (void)stackup::load_stack(tmp.path);
    FAIL("no error");
  } catch (const stackup::StackFileError& e) {
    CHECK(std::string(e.what()) == tmp.path.string() + ": cannot read: it is a directory; name the stack file inside it");
  }
}

TEST_CASE("nothing is created on disk from a file with an error (or without one)") {
  TempDir tmp;
  const std::string good = R"([components.d]
flavor = "local_directory"
path = "data/artifacts"
[components.c]
flavor = "local_daemon"
command = ["sleep", "100"]
state_dir = "state/c"
)";
  write(tmp.path / "stackup.toml", good + "[components.j]\nflavor = \"command\"\nprovision = \"touch made\"\nbad = 1\n");
  const auto before = tree(tmp.path);
  CHECK_THROWS_AS((void)stackup::load_stack(tmp.path / "stackup.toml"), stackup::StackFileError);
  CHECK(tree(tmp.path) == before);
  write(tmp.path / "stackup.toml", good + "[components.j]\nflavor = \"command\"\ndepends_on = [\"zz\"]\n");
  CHECK_THROWS_AS((void)stackup::load_stack(tmp.path / "stackup.toml"), stackup::StackFileError);
  CHECK(tree(tmp.path) == before);
  write(tmp.path / "stackup.toml", good);
  const auto s = stackup::load_stack(tmp.path / "stackup.toml");
  CHECK(tree(tmp.path) == before);
  CHECK_FALSE(s.get("d").is_provisioned());
}

namespace {
// A host's own component type.
struct Cluster {
  std::string name_;
  std::uint16_t port = 0;
  std::chrono::milliseconds wait{};
  std::vector<std::string> nodes;
  fs::path kubeconfig;
  std::string region;
  bool is_provisioned() const { return false; }
  bool is_running() const { return false; }
  void provision() {}
  std::string_view name() const { return name_; }
};
} // namespace

TEST_CASE("Flavors::add: a custom flavour reads its table through StackFileTable") {
  auto flavors = stackup::Flavors::builtin();
  flavors.add("my_cluster", [](stackup::StackFileTable& t) {
    Cluster c;
    c.name_ = t.string("cluster");
    c.port = t.port("api_port").value_or(6443);
    c.wait = t.duration("wait").value_or(1s);
    c.nodes = t.strings("nodes");
    c.kubeconfig = t.path("kubeconfig").value_or(t.directory() / "kubeconfig");
    if (const auto cloud = t.table("cloud")) c.region = cloud->string("region");
    if (c.nodes.size() > 3) t.fail("nodes", "at most 3 nodes");
    return c;
  });
  CHECK(flavors.names() == std::vector<std::string>{"local_daemon", "local_directory", "command", "container", "kubernetes", "my_cluster"});
  CHECK(flavors.contains("my_cluster"));
  CHECK_FALSE(flavors.contains("k3d"));

  TempDir tmp;
  write(tmp.path / "stackup.toml", R"([components.orchestrator]
flavor = "my_cluster"
cluster = "demo"
api_port = 7443
wait = "2m"
nodes = ["a", "b"]
kubeconfig = "kube/config"
cloud = { region = "eu" }
[components.cache]
flavor = "command"
depends_on = ["orchestrator"]
)");
  const auto s = stackup::load_stack(tmp.path / "stackup.toml", flavors);
  const auto* c = s.get("orchestrator").target<Cluster>();
  REQUIRE(c);
  CHECK(c->name_ == "demo");
  CHECK(c->port == 7443);
  CHECK(c->wait == 2min);
  CHECK(c->nodes == std::vector<std::string>{"a", "b"});
  CHECK(c->kubeconfig == tmp.path / "kube/config");
  CHECK(c->region == "eu");
  CHECK(s.get("orchestrator").name() == "demo");
  CHECK(s.get("orchestrator").flavor() == "custom");

  // stack_config: the values as the factories read them, in action order; it reads back as the same stack.
  const std::string body = "name = \"" + tmp.path.filename().string() + "\"\n"
                           "\n[components.orchestrator]\nflavor = \"my_cluster\"\ncluster = \"demo\"\napi_port = 7443\n"
                           "wait = \"2m\"\nnodes = [\"a\", \"b\"]\nkubeconfig = \"" + (tmp.path / "kube/config").string() +
                           "\"\ncloud = { region = \"eu\" }\n"
                           "\n[components.cache]\nflavor = \"command\"\ndepends_on = [\"orchestrator\"]\nworking_dir = \"" +
                           tmp.path.string() + "\"\n";
  const auto header = [](const fs::path& file) {
    return "# " + file.string() + " as it will run: variables expanded, paths resolved,\n"
           "# components in the order 'stack up' acts on them ('stack down': the reverse).\n";
  };
  const std::string config = stackup::stack_config(tmp.path / "stackup.toml", flavors);
  CHECK(config == header(tmp.path / "stackup.toml") + body);
  write(tmp.path / "again.toml", config);
  CHECK(stackup::stack_config(tmp.path / "again.toml", flavors) == header(tmp.path / "again.toml") + body);
  CHECK_THROWS_AS((void)stackup::stack_config(tmp.path / "missing.toml", flavors), stackup::StackFileError);

  const auto error = [&](std::string_view text) { return std::string(error_of(text, flavors).what()); };
  CHECK(error("[components.o]\nflavor = \"my_cluster\"\n") ==
        "t.toml:1:1: component 'o' (my_cluster) lacks the required key 'cluster' (a string); valid keys: flavor, depends_on, cluster");
  CHECK(error("[components.o]\nflavor = \"my_cluster\"\ncluster = \"x\"\nnodes = [\"a\",\"b\",\"c\",\"d\"]\n") ==
        "t.toml:4:9: at most 3 nodes");
  CHECK(error("[components.o]\nflavor = \"my_cluster\"\ncluster = \"x\"\ncloud = { region = \"eu\", zone = \"b\" }\n") ==
        "t.toml:4:26: unknown key 'zone' in 'cloud' of component 'o' (my_cluster); valid keys: region");
  CHECK(error("[components.o]\nflavor = \"my_cluster\"\ncluster = \"x\"\nextra = 1\n") ==
        "t.toml:4:1: unknown key 'extra' in component 'o' (my_cluster); valid keys: flavor, depends_on, cluster, "
        "api_port, wait, nodes, kubeconfig, cloud");
  CHECK(error("[components.o]\nflavor = \"k3d\"\n") ==
        "t.toml:2:10: unknown flavor 'k3d' for component 'o'; valid flavors: local_daemon, local_directory, command, container, kubernetes, my_cluster");

  // A factory's own exception becomes a StackFileError at the component.
  flavors.add("command", [](stackup::StackFileTable&) -> Cluster { throw stackup::Error("stackup: no commands here"); });
  CHECK(flavors.names().size() == 6); // replaced, not added
  CHECK(error("\n[components.j]\nflavor = \"command\"\n") == "t.toml:2:1: component 'j' (command): no commands here");
  CHECK_THROWS_AS(flavors.add("", [](stackup::StackFileTable&) { return Cluster{}; }), stackup::Error);
}

namespace {
// A host's component that declares its schema beside it, as the shipped ones do.
struct Bucket {
  std::string name_;
  fs::path root;
  bool is_provisioned() const { return false; }
  bool is_running() const { return false; }
  std::string_view name() const { return name_; }
  template <class Table> static Bucket from_table(const Table& t) {
    Bucket b;
    b.name_ = t.optional_string("bucket").value_or("");
    if (b.name_.empty()) t.fail(t.what() + " lacks the required key 'bucket' (its name)");
    b.root = t.path_or("root", t.directory() / "buckets" / b.name_);
    return b;
  }
};
} // namespace

TEST_CASE("Flavors::add<C>: a component's own from_table, under its own name or another") {
  // builtin() is the shipped components' from_table, listed.
  stackup::Flavors listed;
  listed.add<Daemon>("local_daemon").add<Directory>("local_directory").add<Cmd>("command").add<stackup::Container<>>("container").add<stackup::Kubernetes<>>("kubernetes");
  CHECK(listed.names() == stackup::Flavors::builtin().names());
  TempDir tmp;
  write(tmp.path / "stackup.toml", R"([components.store]
flavor = "local_directory"
path = "data/"
[components.cache]
flavor = "local_daemon"
command = ["redis-server"]
ready = { tcp = 6390 }
depends_on = ["store"]
[components.db]
flavor = "command"
resume = "start"
user = ""
)");
  CHECK(stackup::stack_config(tmp.path / "stackup.toml", listed) == stackup::stack_config(tmp.path / "stackup.toml"));

  // LocalDaemon's schema under another name: the same daemon, errors naming the flavour the file names.
  auto flavors = stackup::Flavors::builtin();
  flavors.add<Daemon>("daemon");
  flavors.add<Bucket>("bucket");
  // A flavour reusing a schema and adding a rule of its own.
  flavors.add("redis", [](stackup::StackFileTable& t) {
    auto d = Daemon::from_table(t);
    if (d.config().command.front() != "redis-server") t.fail("command", t.what() + " runs redis-server");
    return d;
  });
  CHECK(flavors.names() ==
        std::vector<std::string>{"local_daemon", "local_directory", "command", "container", "kubernetes", "daemon", "bucket", "redis"});
  write(tmp.path / "other.toml", R"([components.cache]
flavor = "daemon"
command = ["redis-server"]
[components.media]
flavor = "bucket"
bucket = "media"
[components.queue]
flavor = "redis"
command = ["redis-server", "--port", "6391"]
)");
  const auto s = stackup::load_stack(tmp.path / "other.toml", flavors);
  const auto* d = s.get("cache").target<Daemon>();
  REQUIRE(d);
  CHECK(d->config().command == std::vector<std::string>{"redis-server"});
  CHECK(d->state_dir() == tmp.path / ".stackup" / "cache");
  CHECK(s.get("cache").flavor() == "local_daemon");
  const auto* b = s.get("media").target<Bucket>();
  REQUIRE(b);
  CHECK(b->root == tmp.path / "buckets" / "media");
  REQUIRE(s.get("queue").target<Daemon>());
  // path_or: stack config shows the default it gave.
  const std::string config = stackup::stack_config(tmp.path / "other.toml", flavors);
  CHECK(config.find("[components.media]\nflavor = \"bucket\"\nbucket = \"media\"\nroot = \"" +
                    (tmp.path / "buckets" / "media").string() + "\"\n") != std::string::npos);
  CHECK(config.find("[components.cache]\nflavor = \"daemon\"\ncommand = [\"redis-server\"]\n") != std::string::npos);

  const auto error = [&](std::string_view text) { return std::string(error_of(text, flavors).what()); };
  CHECK(error("[components.web]\nflavor = \"daemon\"\n") ==
        "t.toml:1:1: component 'web' (daemon) lacks the required key 'command' (the daemon's argv, e.g. command = "
        "[\"redis-server\", \"--port\", \"6390\"])");
  CHECK(error("[components.web]\nflavor = \"daemon\"\ncommand = [\"srv\"]\nready = { tcp = 1, http = 2 }\n") ==
        "t.toml:4:27: 'ready' of component 'web' has both tcp and http: choose one");
  CHECK(error("[components.web]\nflavor = \"daemon\"\ncommand = [\"srv\"]\nport = 1\n") ==
        "t.toml:4:1: unknown key 'port' in component 'web' (daemon); valid keys: " + std::string(daemon_keys));
  CHECK(error("[components.m]\nflavor = \"bucket\"\n") ==
        "t.toml:1:1: component 'm' (bucket) lacks the required key 'bucket' (its name)");
  CHECK(error("[components.m]\nflavor = \"bucket\"\nbucket = \"b\"\nroot = \"\"\n") ==
        "t.toml:4:8: 'root' of component 'm' (bucket) is empty: give a path (relative paths are against the file's directory)");
  CHECK(error("[components.q]\nflavor = \"redis\"\ncommand = [\"valkey\"]\n") ==
        "t.toml:3:11: component 'q' (redis) runs redis-server");
}

TEST_CASE("stack_config: roles and env names that need quotes, and values with $, quotes and control characters, "
          "read back as the same stack") {
  TempDir tmp;
  const Env port("STACKUP_SF_PORT", "7011");
  write(tmp.path / "stackup.toml", R"([components."a$$b"]
flavor = "command"
resume = "echo \"q\" \\ $$ $$$$ $${HOME} ${STACKUP_SF_UNSET:-d$f} \u0001\u007f \u00e9"
env = { "K$${Z}" = "v$$", "a b.c" = "", "é" = "x" }

[components."web.1"]
flavor = "local_daemon"
command = ["run", "", "${STACKUP_SF_PORT}"]
ready = { http = "${STACKUP_SF_PORT}", path = "/h\"$${x}" }
env = {}
depends_on = ["a$$$$b"]
)");
  const auto first = stackup::load_stack(tmp.path / "stackup.toml");
  const std::string config = stackup::stack_config(tmp.path / "stackup.toml");
  write(tmp.path / "again" / "stack.toml", config);
  const auto again = stackup::load_stack(tmp.path / "again" / "stack.toml");
  const auto body = [](const std::string& s) { return s.substr(s.find("\nname = ")); };
  CHECK(body(stackup::stack_config(tmp.path / "again" / "stack.toml")) == body(config));

  REQUIRE(again.size() == 2);
  const auto* c0 = first.get("a$$b").target<Cmd>();
  const auto* c1 = again.get("a$$b").target<Cmd>();
  REQUIRE(c0);
  REQUIRE(c1);
  CHECK(c0->config().resume == "echo \"q\" \\ $ $$ ${HOME} d$f \x01\x7f \xc3\xa9");
  CHECK(c1->config().resume == c0->config().resume);
  CHECK(c0->config().env == std::map<std::string, std::string>{{"K$${Z}", "v$"}, {"a b.c", ""}, {"\xc3\xa9", "x"}});
  CHECK(c1->config().env == c0->config().env);
  const auto* d0 = first.get("web.1").target<Daemon>();
  const auto* d1 = again.get("web.1").target<Daemon>();
  REQUIRE(d0);
  REQUIRE(d1);
  CHECK(d1->config().command == d0->config().command);
  CHECK(d1->config().ready == stackup::ready::http(7011, "/h\"${x}"));
  CHECK(d1->config().ready == d0->config().ready);
  CHECK(d1->config().state_dir == d0->config().state_dir);
  CHECK(d1->config().env.empty());
  CHECK(d1->config().working_dir == d0->config().working_dir);
}

TEST_CASE("stack_config: a nested table a flavour reads twice is shown once, with every key it read") {
  auto flavors = stackup::Flavors::builtin();
  flavors.add("twice", [](stackup::StackFileTable& t) {
    Cluster c;
    c.region = t.table("cloud")->string("region");
    c.name_ = t.table("cloud")->optional_string("zone").value_or("");
    return c;
  });
  TempDir tmp;
  write(tmp.path / "stackup.toml", "[components.o]\nflavor = \"twice\"\ncloud = { region = \"eu\", zone = \"b\" }\n");
  const std::string config = stackup::stack_config(tmp.path / "stackup.toml", flavors);
  const std::string line = "cloud = { region = \"eu\", zone = \"b\" }\n";
  const auto at = config.find(line);
  CHECK(at != std::string::npos);
  CHECK(config.find("cloud", at + line.size()) == std::string::npos);
  write(tmp.path / "again.toml", config);
  CHECK(stackup::load_stack(tmp.path / "again.toml", flavors).get("o").target<Cluster>()->name_ == "b");
}

TEST_CASE("local_daemon: any_listener in ready and start_grace reach the config, and stack config reads back") {
  TempDir tmp;
  write(tmp.path / "stackup.toml", R"([components.web]
flavor = "local_daemon"
command = ["srv"]
ready = { tcp = 7012, any_listener = true }
start_grace = "2s"

[components.api]
flavor = "local_daemon"
command = ["srv"]
ready = { http = 7013, path = "/h", any_listener = false }
)");
  const auto first = stackup::load_stack(tmp.path / "stackup.toml");
  const auto* web = first.get("web").target<Daemon>();
  const auto* api = first.get("api").target<Daemon>();
  REQUIRE(web);
  REQUIRE(api);
  CHECK(web->config().ready == stackup::ready::tcp(7012).with_any_listener());
  CHECK(web->config().start_grace == 2s);
  CHECK(api->config().ready == stackup::ready::http(7013, "/h"));
  CHECK(api->config().start_grace == 500ms); // the default
  const std::string config = stackup::stack_config(tmp.path / "stackup.toml");
  CHECK(config.find("ready = { tcp = 7012, any_listener = true }") != std::string::npos);
  CHECK(config.find("start_grace = \"2s\"") != std::string::npos);
  write(tmp.path / "again.toml", config);
  const auto again = stackup::load_stack(tmp.path / "again.toml");
  CHECK(again.get("web").target<Daemon>()->config().ready == web->config().ready);
  CHECK(again.get("web").target<Daemon>()->config().start_grace == 2s);
  CHECK(again.get("api").target<Daemon>()->config().ready == api->config().ready);

  // Strict as every key: a wrong type in ready is an error at its place, and
  // any_listener alone is no probe.
  CHECK_ERROR("[components.web]\nflavor = \"local_daemon\"\ncommand = [\"srv\"]\n"
              "ready = { tcp = 7012, any_listener = \"yes\" }\n",
              4, 38, "'any_listener' of 'ready' of component 'web' (local_daemon) must be true or false, not a string");
  CHECK(std::string(error_of("[components.web]\nflavor = \"local_daemon\"\ncommand = [\"srv\"]\n"
                             "ready = { any_listener = true }\n").what()).find("needs tcp or http") != std::string::npos);
}

// ---- Round 3: what is read, from where, and what a file may hold ----

namespace {

// The StackFileError that reading `file` with `trust` throws, or "no error".
std::string read_error(const fs::path& file, stackup::Trust trust) {
  try {
    (void)stackup::read_stack_file(file, trust);
  } catch (const stackup::StackFileError& e) {
    return e.what();
  }
  return "no error";
}

constexpr std::string_view small_stack = "[components.d]\nflavor = \"local_directory\"\npath = \"data\"\n";

// A directory that only its owner can write, holding a stack file (0644).
struct Project {
  TempDir tmp;
  fs::path dir = tmp.path / "proj";
  fs::path file = dir / "stackup.toml";
  Project() {
    write(file, small_stack);
    fs::permissions(dir, fs::perms(0755));
    fs::permissions(file, fs::perms(0644));
  }
};

} // namespace

TEST_CASE("interpolation: a default may hold ${...}, expanded by the same rule; never a wrong value") {
  const Env a("STACKUP_SF_A", nullptr);
  const Env b("STACKUP_SF_B", nullptr);
  const auto path_of = [](std::string_view value) {
    const auto s = stackup::parse_stack("[components.d]\nflavor = \"local_directory\"\npath = \"" + std::string(value) + "\"\n",
                                        "/nowhere/t.toml");
    return s.get("d").target<Directory>()->path().filename().string();
  };
  CHECK(path_of("${STACKUP_SF_A:-${STACKUP_SF_B:-6379}}") == "6379");
  CHECK(path_of("${STACKUP_SF_A:-x${STACKUP_SF_B:-y}z}") == "xyz");
  CHECK(path_of("${STACKUP_SF_A:-$${STACKUP_SF_B}}") == "${STACKUP_SF_B}"); // $$ stays a literal $ in a default
  // A literal "$${" pairs with its own '}' (as Compose counts), so what follows it stays in the default.
  CHECK(path_of("${STACKUP_SF_A:-$${STACKUP_SF_B}x}") == "${STACKUP_SF_B}x");
  CHECK(path_of("${STACKUP_SF_A:-$$$${STACKUP_SF_B}x}y") == "$${STACKUP_SF_B}xy");
  CHECK(std::string(error_of("[components.d]\nflavor = \"local_directory\"\npath = \"${STACKUP_SF_A:-$${B}\"\n").what())
            .find("t.toml:3:8: unclosed '${'") == 0);
  CHECK_ERROR("[components.d]\nflavor = \"local_directory\"\npath = \"${STACKUP_SF_A:-${STACKUP_SF_B}}\"\n", 3, 8,
              "variable 'STACKUP_SF_B' is not set (neither in the environment nor in " + (fs::current_path() / ".env").string() +
                  "): set it, or give a default with ${STACKUP_SF_B:-default}");
  {
    const Env set("STACKUP_SF_A", "6390");
    CHECK(path_of("${STACKUP_SF_A:-${STACKUP_SF_B:-6379}}") == "6390");
    CHECK(path_of("${STACKUP_SF_A:-${STACKUP_SF_B}}") == "6390"); // a default not used is not expanded
    const auto s = stackup::parse_stack(
        "[components.c]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nready = { tcp = \"${STACKUP_SF_A:-${STACKUP_SF_B:-1}}\" }\n",
        "/nowhere/t.toml");
    CHECK(s.get("c").target<Daemon>()->config().ready == stackup::ready::tcp(6390));
  }
  std::string deep = "x";
  for (int k = 0; k < 20; ++k) deep = "${STACKUP_SF_A:-" + deep + "}";
  CHECK(std::string(error_of("[components.d]\nflavor = \"local_directory\"\npath = \"" + deep + "\"\n").what())
            .find("t.toml:3:8: '${...:-${...}}' nests deeper than 16 defaults") == 0);
}

TEST_CASE("file errors at their place: env keys, an empty program, NUL bytes, roles the command line cannot reach") {
  const std::string daemon = "[components.c]\nflavor = \"local_daemon\"\n";
  CHECK_ERROR(daemon + "command = [\"x\"]\nenv = { \"\" = \"v\" }\n", 4, 9,
              "'env' of component 'c' (local_daemon) has the key \"\": an environment variable's name is not empty and holds "
              "no '=' or NUL byte; rename it");
  CHECK_ERROR(daemon + "command = [\"x\"]\nenv = { \"A=B\" = \"v\" }\n", 4, 9,
              "'env' of component 'c' (local_daemon) has the key \"A=B\": an environment variable's name is not empty and holds "
              "no '=' or NUL byte; rename it");
  CHECK_ERROR("[components.c]\nflavor = \"command\"\nenv = { \"A\\u0000\" = \"v\" }\n", 3, 9,
              "'env' of component 'c' (command) has the key \"A\\u0000\": an environment variable's name is not empty and "
              "holds no '=' or NUL byte; rename it");
  CHECK_ERROR(daemon + "command = [\"\", \"--port\"]\n", 3, 11,
              "'command' of component 'c' starts with an empty program name: give the program first");
  CHECK_ERROR(daemon + "command = [\"x\", \"a\\u0000b\"]\n", 3, 17,
              "'command' of component 'c' (local_daemon) holds a NUL byte once expanded: no argument, path or environment "
              "value can; remove it");
  CHECK_ERROR("[components.d]\nflavor = \"local_directory\"\npath = \"a\\u0000b\"\n", 3, 8,
              "'path' of component 'd' (local_directory) holds a NUL byte once expanded: no argument, path or environment "
              "value can; remove it");
  CHECK_ERROR("[components.c]\nflavor = \"command\"\nenv = { A = \"\\u0000\" }\n", 3, 13,
              "'env.A' of component 'c' (command) holds a NUL byte once expanded: no argument, path or environment value "
              "can; remove it");
  CHECK_ERROR("[components.stack]\nflavor = \"command\"\n", 1, 13,
              "a component cannot be named 'stack': the command line takes 'stack' as its own word (stackctl stack ...); "
              "rename the component");
  CHECK_ERROR("[components.help]\nflavor = \"command\"\n", 1, 13,
              "a component cannot be named 'help': the command line takes 'help' as its own word (stackctl help ...); "
              "rename the component");
  CHECK_ERROR("[components.-x]\nflavor = \"command\"\n", 1, 13,
              "component '-x': a role cannot start with '-', which the command line reads as an option; rename it");
  CHECK_ERROR("[components.\"a\\nb\"]\nflavor = \"command\"\n", 1, 13,
              "component \"a\\nb\": a role cannot hold control characters (a NUL byte, a line break, ...); rename it");
}

TEST_CASE("nesting is bounded before toml++ reads the file: 50 000 dotted parts or 100 000 brackets are an error") {
  std::string dotted = "a";
  for (int k = 0; k < 50'000; ++k) dotted += ".a";
  const std::string message = "nests deeper than 128 levels (each part of a dotted key and each array or inline table is "
                              "one): a stack file never needs that; flatten it";
  CHECK_ERROR(dotted + " = 1\n", 1, 256, message);
  CHECK_ERROR("[" + dotted + "]\n", 1, 257, message);
  CHECK_ERROR("x = " + std::string(100'000, '[') + "\n", 1, 133, message);
  std::string tables = "x = ";
  for (int k = 0; k < 1000; ++k) tables += "{ a = ";
  CHECK_ERROR(tables + "\n", 1, 773, message); // the 129th '{'
  // Under [components.c] (2 levels), env (1) and its table (1): the 125th dot goes past 128.
  CHECK_ERROR("[components.c]\nflavor = \"command\"\nenv = { " + dotted + " = \"1\" }\n", 3, 258, message);
  // A key under a header nests below the header: 100 + 100 parts are 200 levels, not two of 100.
  std::string hundred = "a";
  for (int k = 1; k < 100; ++k) hundred += ".a";
  CHECK_ERROR("[" + hundred + "]\n" + hundred + " = 1\n", 2, 56, message); // the 28th dot: part 129
  CHECK_ERROR("[[" + hundred + "]]\nx = 1\n[" + hundred + ".b]\n" + hundred + " = 1\n", 4, 54, message);
  // Brackets and dots inside strings and comments are not nesting.
  const auto s = stackup::parse_stack("name = \"" + std::string(5000, '[') + "." + std::string(5000, '{') + "\" # [[[[....\n"
                                          "[components.c]\nflavor = 'command'\nresume = '''" + dotted + "'''\n",
                                      "/nowhere/t.toml");
  CHECK(s.get("c").target<Cmd>()->config().resume == dotted);
  // 128 levels are fine as far as the bound goes (the schema then says what is wrong).
  std::string ok = "a";
  for (int k = 1; k < 128; ++k) ok += ".a";
  CHECK(std::string(error_of(ok + " = 1\n").what()) == "t.toml:1:1: unknown top-level key 'a'; valid keys: version, name, components");
}

TEST_CASE(".env follows Compose's rules: comments, quotes, escapes, export, a byte-order mark") {
  TempDir tmp;
  write(tmp.path / ".env",
        "\xEF\xBB\xBF"
        "FIRST=1\n"
        "export\tTAB=tab\n"
        "QUOTED=\"a\" # a comment\n"
        "SINGLE='b'# a comment\n"
        "UNQUOTED=c # a comment\n"
        "HASH=d#not-a-comment\n"
        "EMPTY=\n"
        "ESCAPES=\"l1\\nl2\\t\\\"q\\\"\\\\\"\n"
        "LITERAL='it\\'s ${NOT} \\n'\n"
        "MULTI=\"one\n"
        "two\"\n"
        "  SPACED  =  value with spaces  \n"
        "CRLF=e\r\n");
  write(tmp.path / "stackup.toml", R"([components.c]
flavor = "command"
env = { FIRST = "${FIRST}", TAB = "${TAB}", QUOTED = "${QUOTED}", SINGLE = "${SINGLE}", UNQUOTED = "${UNQUOTED}", HASH = "${HASH}", EMPTY = "${EMPTY}", ESCAPES = "${ESCAPES}", LITERAL = "${LITERAL}", MULTI = "${MULTI}", SPACED = "${SPACED}", CRLF = "${CRLF}" }
)");
  std::vector<Env> unset;
  for (const char* n : {"FIRST", "TAB", "QUOTED", "SINGLE", "UNQUOTED", "HASH", "EMPTY", "ESCAPES", "LITERAL", "MULTI", "SPACED", "CRLF"})
    unset.emplace_back(n, nullptr);
  const auto s = stackup::load_stack(tmp.path / "stackup.toml");
  const auto& env = s.get("c").target<Cmd>()->config().env;
  CHECK(env.at("FIRST") == "1");
  CHECK(env.at("TAB") == "tab");
  CHECK(env.at("QUOTED") == "a");
  CHECK(env.at("SINGLE") == "b");
  CHECK(env.at("UNQUOTED") == "c");
  CHECK(env.at("HASH") == "d#not-a-comment");
  CHECK(env.at("EMPTY") == "");
  CHECK(env.at("ESCAPES") == "l1\nl2\t\"q\"\\");
  CHECK(env.at("LITERAL") == "it's ${NOT} \\n");
  CHECK(env.at("MULTI") == "one\ntwo");
  CHECK(env.at("SPACED") == "value with spaces");
  CHECK(env.at("CRLF") == "e");

  const auto dotenv_error = [&](std::string_view text) {
    write(tmp.path / ".env", text);
    try {
      (void)stackup::load_stack(tmp.path / "stackup.toml");
    } catch (const stackup::StackFileError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string env_file = (tmp.path / ".env").string();
  CHECK(dotenv_error("A=1\nB=\"x\" junk\n") ==
        env_file + ":2:7: unexpected text after the closing quote of 'B': only a # comment may follow it");
  CHECK(dotenv_error("A=\"never closed\n") == env_file + ":1:3: the value of 'A' opens a \" quote that never closes");
  CHECK(dotenv_error("A=pa$word\n") ==
        env_file + ":1:3: the value of 'A' holds '$w', which Compose would expand and stackup does not expand in .env: "
                   "write the value itself, or single-quote it to keep the '$' as it is");
  CHECK(dotenv_error("A=\"${B}\"\n").find(":1:3: the value of 'A' holds '${'") != std::string::npos);
  CHECK(dotenv_error("A=cost$$\n").find(":1:3: the value of 'A' holds '$$'") != std::string::npos); // Compose: "cost$"
  const auto literal = stackup::detail::stack_file::parse_dotenv("A='cost$$ $B'\nB=a$\n", "x");
  CHECK(literal.at("A") == "cost$$ $B"); // single quotes: literal
  CHECK(literal.at("B") == "a$");        // a '$' that nothing follows is a '$' for Compose too
  CHECK(dotenv_error("X=1\nA=\"one\ntwo $b\"\n").find(":2:3: the value of 'A' holds '$b'") != std::string::npos); // where it opens
  CHECK(dotenv_error("A B=1\n") == env_file + ":1:1: \"A B\" is not a variable name: use letters, digits, '_', '.' and '-'");
  // Where a reader would see a comment that Compose does not, an error rather than another value.
  CHECK(dotenv_error("A=1\nB= # later\n") ==
        env_file + ":2:4: the value of 'B' starts with '#' after a blank: Compose takes \"# later\" as the value, not as a "
                   "comment; leave the value out (B=) for an empty one, or quote it");
  CHECK(dotenv_error("B=x\t# c\n") ==
        env_file + ":1:5: the value of 'B' has a '#' after a tab: Compose keeps it in the value (only a space before '#' "
                   "starts a comment); put a space before the '#', or quote the value");
}

TEST_CASE("expansion keeps the size cap: a value past 1 MiB, or all values past 16 MiB, once expanded is an error") {
  TempDir tmp;
  const Env unset("STACKUP_SF_BIG", nullptr);
  write(tmp.path / ".env", "STACKUP_SF_BIG=" + std::string(600 * 1024, 'x') + "\n");
  const auto load_error = [&](const std::string& text) {
    write(tmp.path / "stackup.toml", text);
    try {
      (void)stackup::load_stack(tmp.path / "stackup.toml");
    } catch (const stackup::StackFileError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string file = (tmp.path / "stackup.toml").string();
  // 12 KB of "${A}" once held 3 GB (std::bad_alloc, or the machine's memory).
  CHECK(load_error("name = \"${STACKUP_SF_BIG}${STACKUP_SF_BIG}\"\n") ==
        file + ":1:8: 'name' is longer than 1 MiB once expanded: a stack file never needs that; make the variables it "
               "uses smaller");
  std::string many = "[components.c]\nflavor = \"command\"\nenv = { ";
  for (int k = 0; k < 30; ++k) many += (k ? ", " : "") + std::string("V") + std::to_string(k) + " = \"${STACKUP_SF_BIG}\"";
  const std::string error = load_error(many + " }\n");
  CHECK(error.find(file + ":3:") == 0);
  CHECK(error.find("of component 'c' (command) takes the values the file expands to past 16 MiB in all: a stack file "
                   "never needs that; make the variables it uses smaller") != std::string::npos);
  CHECK(load_error("name = \"${STACKUP_SF_BIG}\"\n") == "no error"); // one large value is fine
}

TEST_CASE(".env: backslashes as Compose reads them, in single and double quotes") {
  const auto vars = stackup::detail::stack_file::parse_dotenv(
      "S='C:\\\\' # it's a comment, and 'quoted'\n" // 'C:\\' ends at the third quote, as in Compose
      "T='a\\b\\'c'\n"                               // \b stays, \' is a quote
      "D=\"\\a\\b\\f\\v\\c\"\n"                          // Go's escapes; \c is none
      "P=\"cost\\$ \\$HOME\"\n"                          // \$ is a literal '$', never expanded
      "O=\"\\0101\\0377\\08\\012\\0400\"\n",                // \0ooo: a byte value as U+00oo; the rest as written
      "x");
  CHECK(vars.at("S") == "C:\\\\");
  CHECK(vars.at("T") == "a\\b'c");
  CHECK(vars.at("D") == "\a\b\f\v\\c");
  CHECK(vars.at("P") == "cost$ $HOME");
  CHECK(vars.at("O") == "A\xC3\xBF\\08\\012\\0400");
}

TEST_CASE("a value that is not UTF-8 once expanded is an error at its key, so stack config always reads back") {
  TempDir tmp;
  const Env unset("STACKUP_SF_LATIN1", nullptr);
  write(tmp.path / ".env", "STACKUP_SF_LATIN1=caf\xE9\n");
  write(tmp.path / "stackup.toml", "[components.c]\nflavor = \"command\"\nresume = \"echo ${STACKUP_SF_LATIN1}\"\n");
  const std::string expected = (tmp.path / "stackup.toml").string() +
                               ":3:10: 'resume' of component 'c' (command) holds bytes that are not UTF-8 once expanded "
                               "(at byte 9 of the value): a stack file and the values it expands to are UTF-8; fix the "
                               "variable it takes";
  for (const bool config : {false, true}) {
    try {
      if (config) (void)stackup::stack_config(tmp.path / "stackup.toml");
      else (void)stackup::load_stack(tmp.path / "stackup.toml");
      FAIL("no error");
    } catch (const stackup::StackFileError& e) {
      CHECK(std::string(e.what()) == expected);
    }
  }
  write(tmp.path / ".env", "STACKUP_SF_LATIN1=caf\xC3\xA9\n"); // UTF-8: fine, and reads back
  const std::string config = stackup::stack_config(tmp.path / "stackup.toml");
  CHECK(stackup::parse_stack(config, (tmp.path / "again.toml").string()).get("c").target<Cmd>()->config().resume ==
        "echo caf\xC3\xA9");
}

TEST_CASE("read_stack_file: a found file, its .env and its directory must be yours or root's and writable by nobody else") {
  Project p;
  CHECK(read_error(p.file, stackup::Trust::found) == "no error");
  const auto source = stackup::read_stack_file(p.file, stackup::Trust::found);
  CHECK(source.text == small_stack);
  CHECK(source.directory == p.dir);
  CHECK_FALSE(source.dotenv);
  CHECK(stackup::load_stack(source).get("d").target<Directory>()->path() == p.dir / "data");
  const std::string refused = p.file.string() + ": refusing it (found by the search, not named): ";

  SUBCASE("group-writable or others-writable file") {
    fs::permissions(p.file, fs::perms(0664));
    CHECK(read_error(p.file, stackup::Trust::found) ==
          refused + "its group can write it (mode 0664), so they can replace what runs: chmod go-w '" + p.file.string() +
              "', or name it with -f");
    fs::permissions(p.file, fs::perms(0646));
    CHECK(read_error(p.file, stackup::Trust::found).find("others can write it (mode 0646)") != std::string::npos);
    CHECK(read_error(p.file, stackup::Trust::named) == "no error");
  }
  SUBCASE("group-writable directory, unless sticky") {
    fs::permissions(p.dir, fs::perms(0775));
    CHECK(read_error(p.file, stackup::Trust::found) ==
          refused + "its directory " + p.dir.string() + ": its group can write it (mode 0775), so they can replace what runs: "
                    "chmod go-w '" + p.dir.string() + "', or name the file with -f");
    fs::permissions(p.dir, fs::perms(01777));
    CHECK(read_error(p.file, stackup::Trust::found) == "no error");
  }
  SUBCASE("the .env beside it") {
    write(p.dir / ".env", "A=1\n");
    fs::permissions(p.dir / ".env", fs::perms(0664));
    CHECK(read_error(p.file, stackup::Trust::found) ==
          (p.dir / ".env").string() + ": refusing it (beside a stack file found by the search, not named): its group can "
                                      "write it (mode 0664), so they can replace what runs: chmod go-w '" +
              (p.dir / ".env").string() + "'"); // not "name it with -f": -f reads a .env as it is
    fs::permissions(p.dir / ".env", fs::perms(0644));
    CHECK(stackup::read_stack_file(p.file, stackup::Trust::found).dotenv == "A=1\n");
    fs::remove(p.dir / ".env");
    fs::create_symlink("/etc/hostname", p.dir / ".env");
    CHECK(read_error(p.file, stackup::Trust::found) ==
          (p.dir / ".env").string() + ": refusing it (beside a stack file found by the search, not named): it is a symlink, "
                                      "and beside a found stack file the search reads a regular .env only (another user may "
                                      "control where it points): put the variables it should set in a regular file of that name");
  }
  SUBCASE("a symlink is refused when found, followed when named") {
    fs::rename(p.file, p.dir / "real.toml");
    fs::create_symlink("real.toml", p.file);
    CHECK(read_error(p.file, stackup::Trust::found) ==
          refused + "it is a symlink, and the search takes regular files only (another user may control where it points): "
                    "name the file it points to with -f");
    CHECK(read_error(p.file, stackup::Trust::named) == "no error");
  }
  SUBCASE("a FIFO is refused when found, without waiting for a writer; a FIFO .env always") {
    fs::remove(p.file);
    REQUIRE(::mkfifo(p.file.c_str(), 0644) == 0);
    CHECK(read_error(p.file, stackup::Trust::found) ==
          p.file.string() + ": cannot read: it is a FIFO (named pipe), not a regular file: name a pipe with -f");
    fs::remove(p.file);
    write(p.file, small_stack);
    fs::permissions(p.file, fs::perms(0644));
    REQUIRE(::mkfifo((p.dir / ".env").c_str(), 0644) == 0);
    for (const auto trust : {stackup::Trust::found, stackup::Trust::named})
      CHECK(read_error(p.file, trust) == (p.dir / ".env").string() + ": cannot read: it is a FIFO (named pipe), not a regular file");
  }
  SUBCASE("size cap: a file over 1 MiB, and /dev/zero, are errors, not a growing read") {
    write(p.file, std::string(stackup::stack_file_size_limit + 1, '#'));
    CHECK(read_error(p.file, stackup::Trust::found) ==
          p.file.string() + ": cannot read: it holds more than 1 MiB, the most a stack file or its .env may hold");
    CHECK(read_error("/dev/zero", stackup::Trust::named) ==
          "/dev/zero: cannot read: it holds more than 1 MiB, the most a stack file or its .env may hold");
    CHECK(read_error("/dev/zero", stackup::Trust::found).find("/dev/zero: cannot read: it is a character device") == 0);
  }
  SUBCASE("another user's file, or directory (as root)") {
    if (!users::root_or_skip()) return;
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    REQUIRE(::chown(p.file.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    CHECK(read_error(p.file, stackup::Trust::found) ==
          refused + "it belongs to another user, uid " + std::to_string(nobody->pw_uid) +
              " (nobody): if you trust it, name it with -f");
    CHECK(read_error(p.file, stackup::Trust::named) == "no error");
    REQUIRE(::chown(p.file.c_str(), 0, 0) == 0);
    write(p.dir / ".env", "A=1\n");
    fs::permissions(p.dir / ".env", fs::perms(0644));
    REQUIRE(::chown((p.dir / ".env").c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    CHECK(read_error(p.file, stackup::Trust::found) ==
          (p.dir / ".env").string() + ": refusing it (beside a stack file found by the search, not named): it belongs to "
                                      "another user, uid " + std::to_string(nobody->pw_uid) +
              " (nobody), who decides the values it feeds the stack file: read it, then chown it to yourself (or root) if "
              "you trust it, or remove it");
    fs::remove(p.dir / ".env");
    REQUIRE(::chown(p.dir.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    CHECK(read_error(p.file, stackup::Trust::found).find("its directory " + p.dir.string() + ": it belongs to another user") !=
          std::string::npos);
  }
}

TEST_CASE("a definition error from a stack file keeps its kind and roles, placed at the entry to change") {
  using Kind = stackup::StackDefinitionError::Kind;
  using Strings = std::vector<std::string>;
  using Indices = std::vector<std::size_t>;
  {
    const auto e = error_of("name = \"s\"\n[components.a]\nflavor = \"command\"\n[components.b]\nflavor = \"command\"\n"
                            "depends_on = [\"a\", \"c\"]\n");
    CHECK(e.kind() == Kind::unknown_dependency);
    CHECK(e.stack() == "s");
    CHECK(e.roles() == Strings{"b", "c"});
    CHECK(e.components() == Indices{1});
    CHECK(e.line() == 6);
    CHECK(e.column() == 20);
  }
  {
    // The entry of the cycle's first component that points along the cycle, not
    // one that points off it; a role that merely contains the other is not it.
    const auto e = error_of("name = \"s\"\n[components.c]\nflavor = \"command\"\n[components.a]\nflavor = \"command\"\n"
                            "depends_on = [\"c\", \"bb\", \"b\"]\n[components.bb]\nflavor = \"command\"\n"
                            "[components.b]\nflavor = \"command\"\ndepends_on = [\"a\"]\n");
    CHECK(e.kind() == Kind::cycle);
    CHECK(e.roles() == Strings{"a", "b"});
    CHECK(e.line() == 6);
    CHECK(e.column() == 26);
    CHECK(std::string(e.what()) ==
          "t.toml:6:26: stack 's' cannot exist: dependency cycle: a -> b -> a; remove one depends_on entry on the cycle");
  }
  {
    // A role that reads like part of the message is still placed right.
    const auto e = error_of("name = \"s\"\n[components.\"x -> y\"]\nflavor = \"command\"\ndepends_on = [\"b\"]\n"
                            "[components.b]\nflavor = \"command\"\ndepends_on = [\"x -> y\"]\n");
    CHECK(e.kind() == Kind::cycle);
    CHECK(e.roles() == Strings{"x -> y", "b"});
    CHECK(e.line() == 4);
    CHECK(e.column() == 15);
  }
  {
    const std::string here = fs::current_path().lexically_normal().string();
    const auto e = error_of("name = \"s\"\n[components.db]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nstate_dir = \"state\"\n"
                            "[components.web]\nflavor = \"local_daemon\"\ncommand = [\"x\"]\nstate_dir = \"./state/\"\n");
    CHECK(e.kind() == Kind::overlapping_paths);
    CHECK(e.roles() == Strings{"db", "web"});
    CHECK(e.paths() == Strings{here + "/state", here + "/state"});
    CHECK(e.line() == 9);
    CHECK(e.column() == 13);
  }
  // An error about the file itself has no definition data.
  const auto syntax = error_of("name = \n");
  CHECK(syntax.kind() == Kind::other);
  CHECK(syntax.roles().empty());
}

// ---- supervision keys (DESIGN §10): restart, liveness, on_dependency_restart ----

TEST_CASE("supervision: restart, liveness and on_dependency_restart fill the config structs, and stack config reads back") {
  TempDir tmp;
  Env port("STACKUP_TEST_LIVE_PORT", "7021");
  Env fails("STACKUP_TEST_LIVE_FAILURES", "6");
  write(tmp.path / "stackup.toml", R"([components.cache]
flavor = "local_daemon"
command = ["srv"]
restart = "on-failure"
liveness = { tcp = "${STACKUP_TEST_LIVE_PORT}", failures = "${STACKUP_TEST_LIVE_FAILURES}" }

[components.web]
flavor = "local_daemon"
command = ["srv"]
restart = { policy = "always", backoff = "250ms", max_backoff = "1m", reset_after = "20s", max = 7, within = "2m" }
liveness = { http = 7022, path = "/health", period = "2s", timeout = "500ms", failures = 4 }
on_dependency_restart = "restart"
depends_on = ["cache"]

[components.db]
flavor = "command"
resume = "start-db"
restart = { policy = "on-failure" }
liveness = { exec = "check-db --quick" }
on_dependency_restart = "ignore"

[components.plain]
flavor = "command"
restart = "no"
)");
  const auto first = stackup::load_stack(tmp.path / "stackup.toml");
  const auto* cache = first.get("cache").target<Daemon>();
  const auto* web = first.get("web").target<Daemon>();
  const auto* db = first.get("db").target<Cmd>();
  const auto* plain = first.get("plain").target<Cmd>();
  REQUIRE(cache);
  REQUIRE(web);
  REQUIRE(db);
  REQUIRE(plain);

  CHECK(cache->config().restart.policy == stackup::Restart::on_failure);
  CHECK(cache->config().restart.backoff == 100ms); // the defaults
  CHECK(cache->config().restart.max_backoff == 30s);
  CHECK_FALSE(cache->config().restart.max.has_value());
  CHECK(cache->config().liveness.kind == stackup::Liveness::Kind::tcp);
  CHECK(cache->config().liveness.port == 7021);
  CHECK(cache->config().liveness.period == 5s);
  CHECK(cache->config().liveness.failures == 6); // a number may be one ${VAR}
  CHECK(cache->config().on_dependency_restart == stackup::OnDependencyRestart::ignore);

  const auto w = web->supervision();
  CHECK(w.restart.policy == stackup::Restart::always);
  CHECK(w.restart.backoff == 250ms);
  CHECK(w.restart.max_backoff == 1min);
  CHECK(w.restart.reset_after == 20s);
  CHECK(w.restart.max == 7U);
  CHECK(w.restart.within == 2min);
  CHECK(w.liveness.kind == stackup::Liveness::Kind::http);
  CHECK(w.liveness.port == 7022);
  CHECK(w.liveness.path == "/health");
  CHECK(w.liveness.period == 2s);
  CHECK(w.liveness.timeout == 500ms);
  CHECK(w.liveness.failures == 4U);
  CHECK(w.on_dependency_restart == stackup::OnDependencyRestart::restart);

  CHECK(db->config().restart.policy == stackup::Restart::on_failure);
  CHECK(db->config().liveness.kind == stackup::Liveness::Kind::exec);
  CHECK(db->config().liveness.exec == "check-db --quick");
  CHECK(db->supervision().on_dependency_restart == stackup::OnDependencyRestart::ignore);
  CHECK(plain->supervision().restart.policy == stackup::Restart::no);
  CHECK(first.view().supervision("web").restart.max == 7U); // what a supervisor reads

  const std::string config = stackup::stack_config(tmp.path / "stackup.toml");
  CHECK(config.find("restart = \"on-failure\"\nliveness = { tcp = 7021, failures = 6 }\n") != std::string::npos);
  CHECK(config.find("restart = { policy = \"always\", backoff = \"250ms\", max_backoff = \"1m\", reset_after = \"20s\", "
                    "max = 7, within = \"2m\" }\n") != std::string::npos);
  CHECK(config.find("liveness = { http = 7022, path = \"/health\", period = \"2s\", timeout = \"500ms\", failures = 4 }\n"
                    "on_dependency_restart = \"restart\"\n") != std::string::npos);
  CHECK(config.find("liveness = { exec = \"check-db --quick\" }\n") != std::string::npos);
  write(tmp.path / "again.toml", config);
  const auto again = stackup::load_stack(tmp.path / "again.toml");
  const auto a = again.get("web").target<Daemon>()->supervision();
  CHECK(a.restart.max == 7U);
  CHECK(a.liveness.path == "/health");
  CHECK(a.on_dependency_restart == stackup::OnDependencyRestart::restart);
  CHECK(again.get("cache").target<Daemon>()->config().liveness.port == 7021);
}

TEST_CASE("supervision: every bad value is an error at its place, naming what is valid") {
  const std::string daemon = "[components.cache]\nflavor = \"local_daemon\"\ncommand = [\"r\"]\n";
  SUBCASE("restart") {
    CHECK_ERROR(daemon + "restart = \"sometimes\"\n", 4, 11,
                "'restart' of component 'cache' must be \"no\", \"on-failure\" or \"always\", not \"sometimes\"");
    CHECK_ERROR(daemon + "restart = { policy = \"sometimes\" }\n", 4, 22,
                "'policy' of 'restart' of component 'cache' must be \"no\", \"on-failure\" or \"always\", not "
                "\"sometimes\"");
    CHECK_ERROR(daemon + "restart = true\n", 4, 11,
                "'restart' of component 'cache' must be \"no\", \"on-failure\" or \"always\", or a table such as { "
                "policy = \"on-failure\", backoff = \"100ms\", max = 5 }, not a boolean");
    CHECK_ERROR(daemon + "restart = { backoff = \"1s\" }\n", 4, 11,
                "'restart' of component 'cache' lacks the required key 'policy' (\"no\", \"on-failure\" or \"always\"), "
                "e.g. restart = { policy = \"on-failure\", backoff = \"1s\" }");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", backoff = \"0ms\" }\n", 4, 42,
                "'backoff' of 'restart' of component 'cache' must be a duration above zero, such as \"100ms\"");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", within = \"0s\" }\n", 4, 41,
                "'within' of 'restart' of component 'cache' must be a duration above zero, such as \"100ms\"");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", reset_after = \"-1s\" }\n", 4, 46,
                "'reset_after' of 'restart' of component 'cache' (local_daemon) is \"-1s\", not a duration: a whole "
                "number followed by ms, s, m or h, such as \"250ms\", \"10s\", \"2m\"");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", backoff = \"5s\", max_backoff = \"1s\" }\n", 4, 62,
                "'max_backoff' of 'restart' of component 'cache' (1s) is below its 'backoff' (5s): the delay grows "
                "from 'backoff' up to 'max_backoff'; make max_backoff at least 5s");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", backoff = \"1m\" }\n", 4, 42,
                "'backoff' of 'restart' of component 'cache' (60s) is above the default 'max_backoff' (30s): set "
                "max_backoff too, at least 60s");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", max = -1 }\n", 4, 38,
                "'max' of 'restart' of component 'cache' is -1: give a number of restarts from 0 (0: no limit)");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", max = \"5\" }\n", 4, 38,
                "'max' of 'restart' of component 'cache' (local_daemon) must be a whole number, or a string holding "
                "just one ${VAR} that gives one, not a string");
    CHECK_ERROR(daemon + "restart = { policy = \"always\", tries = 3 }\n", 4, 32,
                "unknown key 'tries' in 'restart' of component 'cache' (local_daemon); valid keys: policy, backoff, "
                "max_backoff, reset_after, max, within");
  }
  SUBCASE("liveness") {
    CHECK_ERROR(daemon + "liveness = { tcp = 1, exec = \"true\" }\n", 4, 30,
                "'liveness' of component 'cache' has both tcp and exec: choose one probe");
    CHECK_ERROR(daemon + "liveness = { tcp = 1, http = 2 }\n", 4, 30,
                "'liveness' of component 'cache' has both tcp and http: choose one probe");
    CHECK_ERROR(daemon + "liveness = { period = \"1s\" }\n", 4, 12,
                "'liveness' of component 'cache' needs one probe: write liveness = { tcp = PORT }, { http = PORT, path "
                "= \"/health\" } or { exec = \"shell command\" }");
    CHECK_ERROR(daemon + "liveness = { tcp = 70000 }\n", 4, 20,
                "'tcp' of 'liveness' of component 'cache' (local_daemon) is 70000: a port is between 1 and 65535");
    CHECK_ERROR(daemon + "liveness = { http = 0 }\n", 4, 21,
                "'http' of 'liveness' of component 'cache' (local_daemon) is 0: a port is between 1 and 65535");
    CHECK_ERROR(daemon + "liveness = { tcp = 1, path = \"/h\" }\n", 4, 30,
                "'path' goes with http, not tcp: write liveness = { http = PORT, path = \"/health\" }");
    CHECK_ERROR(daemon + "liveness = { http = 1, path = \"health\" }\n", 4, 31,
                "'path' of 'liveness' of component 'cache' is \"health\": it must start with '/' and hold no spaces or "
                "line breaks");
    CHECK_ERROR(daemon + "liveness = { exec = \"\" }\n", 4, 21,
                "'exec' of 'liveness' of component 'cache' is empty: give a shell command that exits 0 while it is "
                "alive");
    CHECK_ERROR(daemon + "liveness = { tcp = 1, period = \"0s\" }\n", 4, 32,
                "'period' of 'liveness' of component 'cache' must be a duration above zero, such as \"100ms\"");
    CHECK_ERROR(daemon + "liveness = { tcp = 1, failures = 0 }\n", 4, 34,
                "'failures' of 'liveness' of component 'cache' is 0: give a number of failures in a row from 1");
    CHECK_ERROR(daemon + "liveness = { tcp = 1, host = \"h\" }\n", 4, 23,
                "unknown key 'host' in 'liveness' of component 'cache' (local_daemon); valid keys: tcp, http, path, "
                "exec, period, timeout, failures");
    CHECK_ERROR(daemon + "liveness = \"tcp\"\n", 4, 12,
                "'liveness' of component 'cache' (local_daemon) must be a table, not a string");
  }
  SUBCASE("on_dependency_restart") {
    CHECK_ERROR(daemon + "on_dependency_restart = \"stop\"\n", 4, 25,
                "'on_dependency_restart' of component 'cache' must be \"ignore\" or \"restart\", not \"stop\"");
  }
  SUBCASE("a command without resume has nothing to restart with") {
    CHECK_ERROR("[components.db]\nflavor = \"command\"\nis_running = \"true\"\nrestart = \"always\"\n", 4, 11,
                "'restart' of component 'db' is \"always\", but the component has no 'resume' command, so there is "
                "nothing to restart it with: add resume = \"...\" (the command that starts it), or remove 'restart'");
    CHECK_ERROR("[components.db]\nflavor = \"command\"\nrestart = { policy = \"on-failure\" }\n", 3, 11,
                "'restart' of component 'db' is \"on-failure\", but the component has no 'resume' command, so there "
                "is nothing to restart it with: add resume = \"...\" (the command that starts it), or remove 'restart'");
  }
  SUBCASE("local_directory cannot honour any of them") {
    const std::string dir = "[components.d]\nflavor = \"local_directory\"\npath = \"x\"\n";
    CHECK_ERROR(dir + "restart = \"always\"\n", 4, 11,
                "local_directory cannot honour 'restart': it never stops on its own; remove the key");
    CHECK_ERROR(dir + "liveness = { tcp = 1 }\n", 4, 12,
                "local_directory cannot honour 'liveness': it never stops on its own; remove the key");
    CHECK_ERROR(dir + "on_dependency_restart = \"restart\"\n", 4, 25,
                "local_directory cannot honour 'on_dependency_restart': it never stops on its own; remove the key");
    // Not listed as valid keys of a local_directory.
    CHECK_ERROR(dir + "mode = 1\n", 4, 1,
                "unknown key 'mode' in component 'd' (local_directory); valid keys: flavor, depends_on, name, path");
  }
}

TEST_CASE("StackFileTable: kind(), optional_integer() and refuse() for a host's own flavour") {
  struct Seen {
    std::vector<std::string> kinds;
    std::optional<long long> count;
  };
  static Seen seen;
  auto flavors = stackup::Flavors::builtin();
  flavors.add("probe", [](stackup::StackFileTable& t) {
    seen = {};
    for (const char* key : {"s", "i", "f", "b", "a", "t", "d", "absent"}) seen.kinds.emplace_back(t.kind(key));
    seen.count = t.optional_integer("i");
    (void)t.table("t");
    (void)t.optional_string("s");
    (void)t.optional_bool("b");
    (void)t.strings("a");
    t.refuse("gone", "'gone' is not for a probe: remove it");
    Cluster c;
    return c;
  });
  const std::string head = "[components.p]\nflavor = \"probe\"\n";
  (void)stackup::parse_stack(head + "s = \"x\"\ni = -42\nf = 1.5\nb = true\na = []\nt = {}\nd = 1979-05-27\n",
                             "t.toml", flavors);
  CHECK(seen.kinds == std::vector<std::string>{"string", "integer", "float", "boolean", "array", "table", "date", ""});
  CHECK(seen.count == -42);
  auto e = [&](const std::string& text) {
    try {
      (void)stackup::parse_stack(head + text, "t.toml", flavors);
    } catch (const stackup::StackFileError& x) {
      return std::string(x.what());
    }
    return std::string("no error");
  };
  CHECK(e("i = 1.5\nf = 1.0\nd = 1979-05-27\n") ==
        "t.toml:3:5: 'i' of component 'p' (probe) must be a whole number, or a string holding just one ${VAR} that "
        "gives one, not a floating-point number");
  CHECK(e("gone = 1\n") == "t.toml:3:8: 'gone' is not for a probe: remove it");
  // A refused key is not listed as a valid one.
  CHECK(e("f = 1.0\nd = 1979-05-27\nmore = 1\n") ==
        "t.toml:5:1: unknown key 'more' in component 'p' (probe); valid keys: flavor, depends_on, s, i, f, b, a, t, d, "
        "absent");
}
