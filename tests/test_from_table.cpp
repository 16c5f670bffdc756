// Each shipped component's stack-file schema lives beside it (its static
// from_table), written against StackFileTable's interface only: here it reads a
// table that is no StackFileTable, with no toml++ in this file at all.
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The component headers bring no toml++: a program without it can include them.
#if defined(TOMLPLUSPLUS_H) || defined(TOML_LIB_MAJOR)
#error "a component header pulled in toml++"
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// What a table's fail() throws here: the key (empty for the table) and the message.
struct Failure {
  std::string key, message;
};

// A table with StackFileTable's interface, from plain maps: the keys present,
// and every key asked for, in order (what StackFileTable lists as valid).
// Without `Full`, the interface before kind(), optional_integer() and
// refuse(): what a table type written then still compiles with.
template <bool Full> struct BasicFakeTable {
  std::string role_ = "cache", what_ = "component 'cache' (local_daemon)";
  fs::path directory_ = "/srv/app";
  std::map<std::string, std::string, std::less<>> strings_;
  std::map<std::string, std::vector<std::string>, std::less<>> arrays_;
  std::map<std::string, long long, std::less<>> numbers_;
  std::map<std::string, bool, std::less<>> bools_;
  std::map<std::string, std::map<std::string, std::string>, std::less<>> maps_;
  std::map<std::string, std::shared_ptr<BasicFakeTable>, std::less<>> tables_;
  std::shared_ptr<std::vector<std::string>> asked_ = std::make_shared<std::vector<std::string>>();

  void ask(std::string_view key) const { asked_->emplace_back(key); }
  template <class M> auto get(const M& m, std::string_view key) const -> std::optional<typename M::mapped_type> {
    ask(key);
    const auto it = m.find(key);
    return it == m.end() ? std::nullopt : std::optional(it->second);
  }

  [[nodiscard]] const std::string& role() const noexcept { return role_; }
  [[nodiscard]] const std::string& what() const noexcept { return what_; }
  [[nodiscard]] const fs::path& directory() const noexcept { return directory_; }
  [[nodiscard]] bool contains(std::string_view key) const {
    return strings_.count(key) || arrays_.count(key) || numbers_.count(key) || bools_.count(key) ||
           maps_.count(key) || tables_.count(key);
  }
  [[nodiscard]] std::optional<std::string> optional_string(std::string_view key) const { return get(strings_, key); }
  [[nodiscard]] std::vector<std::string> strings(std::string_view key) const { return get(arrays_, key).value_or(std::vector<std::string>{}); }
  [[nodiscard]] std::map<std::string, std::string> string_map(std::string_view key) const {
    return get(maps_, key).value_or(std::map<std::string, std::string>{});
  }
  [[nodiscard]] std::optional<bool> optional_bool(std::string_view key) const { return get(bools_, key); }
  [[nodiscard]] std::optional<std::uint16_t> port(std::string_view key) const {
    const auto n = get(numbers_, key);
    return n ? std::optional(static_cast<std::uint16_t>(*n)) : std::nullopt;
  }
  [[nodiscard]] std::optional<std::chrono::milliseconds> duration(std::string_view key) const {
    const auto n = get(numbers_, key);
    return n ? std::optional(std::chrono::milliseconds(*n)) : std::nullopt;
  }
  [[nodiscard]] std::optional<fs::path> path(std::string_view key) const {
    const auto s = get(strings_, key);
    return s ? std::optional((directory_ / *s).lexically_normal()) : std::nullopt;
  }
  [[nodiscard]] fs::path path_or(std::string_view key, fs::path fallback) const {
    return path(key).value_or(std::move(fallback));
  }
  [[nodiscard]] std::optional<long long> optional_integer(std::string_view key) const requires Full {
    return get(numbers_, key);
  }
  [[nodiscard]] std::string_view kind(std::string_view key) const requires Full {
    ask(key);
    if (strings_.count(key)) return "string";
    if (numbers_.count(key)) return "integer";
    if (bools_.count(key)) return "boolean";
    if (arrays_.count(key)) return "array";
    if (tables_.count(key) || maps_.count(key)) return "table";
    return {};
  }
  void refuse(std::string_view key, std::string_view message) const requires Full {
    if (contains(key)) fail(key, message);
  }
  [[nodiscard]] std::optional<BasicFakeTable> table(std::string_view key) const {
    const auto t = get(tables_, key);
    if (!t) return std::nullopt;
    BasicFakeTable nested = **t;
    nested.role_ = role_;
    nested.what_ = "'" + std::string(key) + "' of " + what_;
    nested.asked_ = asked_;
    return nested;
  }
  [[noreturn]] void fail(std::string_view key, std::string_view message) const {
    throw Failure{std::string(key), std::string(message)};
  }
  [[noreturn]] void fail(std::string_view message) const { throw Failure{{}, std::string(message)}; }
};

using FakeTable = BasicFakeTable<true>;
using OldTable = BasicFakeTable<false>;

template <class F> Failure failure_of(F&& f) {
  try {
    f();
  } catch (const Failure& e) {
    return e;
  }
  FAIL("no failure");
  return {};
}

} // namespace

TEST_CASE("from_table: LocalDaemon's schema reads any table with StackFileTable's interface") {
  FakeTable t;
  t.arrays_["command"] = {"redis-server", "--port", "6390"};
  t.strings_["name"] = "redis";
  t.numbers_["stop_timeout"] = 2000;
  t.maps_["env"] = {{"K", "v"}};
  auto ready = std::make_shared<FakeTable>();
  ready->numbers_["tcp"] = 6390;
  ready->bools_["any_listener"] = true;
  t.tables_["ready"] = ready;

  const auto d = stackup::LocalDaemon<>::from_table(t);
  CHECK(d.config().name == "redis");
  CHECK(d.config().command == std::vector<std::string>{"redis-server", "--port", "6390"});
  CHECK(d.config().ready == stackup::ready::tcp(6390).with_any_listener());
  CHECK(d.config().stop_timeout == 2s);
  CHECK(d.config().start_timeout == stackup::LocalDaemonConfig{}.start_timeout);
  CHECK(d.config().env == std::map<std::string, std::string>{{"K", "v"}});
  CHECK(d.config().working_dir == "/srv/app");
  CHECK(d.state_dir() == "/srv/app/.stackup/cache"); // the default: .stackup/<role> beside the file
  CHECK(d.config().user.empty());
  // The keys it takes, in the order a stack file's error lists them.
  CHECK(*t.asked_ == std::vector<std::string>{"name", "command", "ready", "tcp", "http", "path", "any_listener",
                                              "start_timeout", "stop_timeout", "start_grace", "env", "working_dir",
                                              "state_dir", "user", "restart", "liveness", "on_dependency_restart"});

  t.strings_["state_dir"] = "state/cache/";
  t.strings_["working_dir"] = "run";
  const auto e = stackup::LocalDaemon<>::from_table(t);
  CHECK(e.state_dir() == "/srv/app/state/cache");
  CHECK(e.config().working_dir == "/srv/app/run");

  // Its errors, worded as a stack file gives them, at the key to change.
  FakeTable none;
  auto f = failure_of([&] { (void)stackup::LocalDaemon<>::from_table(none); });
  CHECK(f.key.empty());
  CHECK(f.message == "component 'cache' (local_daemon) lacks the required key 'command' (the daemon's argv, e.g. "
                     "command = [\"redis-server\", \"--port\", \"6390\"])");
  none.arrays_["command"] = {};
  f = failure_of([&] { (void)stackup::LocalDaemon<>::from_table(none); });
  CHECK(f.key == "command");
  CHECK(f.message == "'command' of component 'cache' is empty: give the daemon's argv");
  none.arrays_["command"] = {"srv"};
  none.strings_["user"] = "stackup-no-such-user";
  f = failure_of([&] { (void)stackup::LocalDaemon<>::from_table(none); });
  CHECK(f.key == "user");
  CHECK(f.message.find("stackup-no-such-user") != std::string::npos);
}

TEST_CASE("from_table: ready::Probe's schema") {
  FakeTable r;
  r.numbers_["http"] = 8080;
  r.strings_["path"] = "/health";
  CHECK(stackup::ready::Probe::from_table(r) == stackup::ready::http(8080, "/health"));
  r.numbers_["tcp"] = 8081;
  auto f = failure_of([&] { (void)stackup::ready::Probe::from_table(r); });
  CHECK(f.key == "http");
  CHECK(f.message == "'ready' of component 'cache' has both tcp and http: choose one");
  r.numbers_.erase("http");
  f = failure_of([&] { (void)stackup::ready::Probe::from_table(r); });
  CHECK(f.key == "path");
  r = FakeTable{};
  f = failure_of([&] { (void)stackup::ready::Probe::from_table(r); });
  CHECK(f.message == "'ready' of component 'cache' needs tcp or http: write ready = { tcp = PORT } or ready = { http = "
                     "PORT, path = \"/health\" }");
}

TEST_CASE("from_table: LocalDirectory's and Command's schemas") {
  FakeTable t;
  t.role_ = "artifacts";
  t.what_ = "component 'artifacts' (local_directory)";
  auto f = failure_of([&] { (void)stackup::LocalDirectory<>::from_table(t); });
  CHECK(f.message == "component 'artifacts' (local_directory) lacks the required key 'path' (the directory)");
  t.strings_["path"] = "data/artifacts";
  t.strings_["name"] = "store";
  const auto d = stackup::LocalDirectory<>::from_table(t);
  CHECK(d.path() == "/srv/app/data/artifacts");
  CHECK(d.config().name == "store");

  FakeTable c;
  c.strings_["resume"] = "start";
  c.strings_["is_running"] = "check";
  c.numbers_["timeout"] = 60'000;
  const auto cmd = stackup::Command<>::from_table(c);
  CHECK(cmd.config().resume == "start");
  CHECK(cmd.config().is_running == "check");
  CHECK(cmd.config().provision.empty());
  CHECK(cmd.config().timeout == 1min);
  CHECK(cmd.config().working_dir == "/srv/app");
  CHECK(*c.asked_ == std::vector<std::string>{"name", "provision", "deprovision", "resume", "suspend", "is_provisioned",
                                              "is_running", "timeout", "working_dir", "env", "user", "restart",
                                              "liveness", "on_dependency_restart"});
}

TEST_CASE("from_table: restart, liveness and on_dependency_restart, through one reader for both flavours") {
  FakeTable t;
  t.arrays_["command"] = {"srv"};
  auto restart = std::make_shared<FakeTable>();
  restart->strings_["policy"] = "always";
  restart->numbers_["backoff"] = 200;
  restart->numbers_["max"] = 0;
  t.tables_["restart"] = restart;
  auto live = std::make_shared<FakeTable>();
  live->numbers_["http"] = 8090;
  live->strings_["path"] = "/health";
  live->numbers_["failures"] = 2;
  t.tables_["liveness"] = live;
  t.strings_["on_dependency_restart"] = "restart";
  const auto d = stackup::LocalDaemon<>::from_table(t);
  CHECK(d.config().restart.policy == stackup::Restart::always);
  CHECK(d.config().restart.backoff == 200ms);
  CHECK(d.config().restart.max == 0U);
  CHECK(stackup::max_restarts(d.config().restart) == 0U);
  CHECK(d.config().liveness.kind == stackup::Liveness::Kind::http);
  CHECK(d.config().liveness.port == 8090);
  CHECK(d.config().liveness.path == "/health");
  CHECK(d.config().liveness.failures == 2U);
  CHECK(d.supervision().on_dependency_restart == stackup::OnDependencyRestart::restart);
  CHECK(d.supervision().restart.backoff == 200ms);
  // The keys of the nested tables, in the order a stack file's error lists them.
  CHECK(std::vector<std::string>(t.asked_->end() - 19, t.asked_->end()) ==
        std::vector<std::string>{"user", "restart", "restart", "policy", "backoff", "max_backoff", "max_backoff",
                                 "reset_after", "max", "within", "liveness", "tcp", "http", "path", "exec", "period",
                                 "timeout", "failures", "on_dependency_restart"});

  FakeTable c;
  c.strings_["resume"] = "start";
  c.strings_["restart"] = "on-failure";
  auto exec = std::make_shared<FakeTable>();
  exec->strings_["exec"] = "check";
  c.tables_["liveness"] = exec;
  const auto cmd = stackup::Command<>::from_table(c);
  CHECK(cmd.supervision().restart.policy == stackup::Restart::on_failure);
  CHECK(cmd.config().liveness.kind == stackup::Liveness::Kind::exec);
  CHECK(cmd.config().liveness.exec == "check");
  c.strings_.erase("resume");
  auto f = failure_of([&] { (void)stackup::Command<>::from_table(c); });
  CHECK(f.key == "restart");
  CHECK(f.message.find("no 'resume' command") != std::string::npos);

  FakeTable dir;
  dir.strings_["path"] = "data";
  dir.strings_["restart"] = "always";
  f = failure_of([&] { (void)stackup::LocalDirectory<>::from_table(dir); });
  CHECK(f.key == "restart");
  CHECK(f.message == "local_directory cannot honour 'restart': it never stops on its own; remove the key");
}

TEST_CASE("from_table: a table type without kind() and optional_integer() still reads every other key") {
  OldTable t;
  t.arrays_["command"] = {"srv"};
  t.strings_["restart"] = "always"; // not read: the table cannot say what it holds
  const auto d = stackup::LocalDaemon<>::from_table(t);
  CHECK(d.config().restart.policy == stackup::Restart::no);
  CHECK(*t.asked_ == std::vector<std::string>{"name", "command", "ready", "start_timeout", "stop_timeout",
                                              "start_grace", "env", "working_dir", "state_dir", "user"});
  OldTable dir;
  dir.strings_["path"] = "data";
  CHECK(stackup::LocalDirectory<>::from_table(dir).path() == "/srv/app/data");
}
