// A log an engine keeps (the optional member log_command(), DESIGN §11): the
// CLI runs the program a component names for `<role> logs`, `stack logs` (merged
// with log files) and a follow, which runs it again once it ends, asking only for
// what was written since. The programs here are real shells reading a journal
// file, so what reaches the output is what a real reader wrote.
#include "support/kinds.hpp"

#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <signal.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
namespace cli = stackup::cli;
using namespace std::chrono_literals;

// What the engine component shares with the test: its journal (the log as the
// engine keeps it), the requests it was given, and how its reader behaves.
struct Engine {
  fs::path dir, journal;
  std::mutex mutex;
  std::vector<stackup::LogRequest> requests;
  bool refuse = false;  // log_command throws, as for a container not provisioned
  std::string exit_with = "0";
  fs::path reader_pid;  // a following reader writes its pid here

  Engine() {
    static int counter = 0;
    dir = fs::temp_directory_path() / ("stackup-test-logcmd-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir);
    journal = dir / "journal";
    reader_pid = dir / "reader.pid";
  }
  ~Engine() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
};

void put(const fs::path& p, std::string_view text, std::ios::openmode mode = std::ios::app) {
  std::ofstream(p, mode | std::ios::binary) << text;
}
bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// A component whose log is kept by an "engine": its reader prints the journal
// (its last N lines with a tail); following, it prints what the journal holds
// and then waits, as `podman logs --follow` does for a running container.
struct Boxed : stackup::StackComponent<Boxed> {
  static constexpr std::string_view role = "box";
  static constexpr std::string_view flavor = "engine";
  Engine* e = nullptr;
  bool is_provisioned() const { return true; }
  bool is_running() const { return true; }
  std::vector<std::string> log_command(const stackup::LogRequest& r) const {
    {
      const std::lock_guard lock(e->mutex);
      e->requests.push_back(r);
    }
    if (e->refuse) throw stackup::Error("box is not provisioned: run `stack up` first");
    const std::string j = "'" + e->journal.string() + "'";
    std::string print = r.tail ? "tail -n " + std::to_string(*r.tail) + " " + j : "cat " + j;
    if (r.since) print = "cat " + j + ".since"; // what the engine has after `since`: the test writes it
    std::string script = print + "; ";
    if (r.follow) script += "echo $$ > '" + e->reader_pid.string() + "'; exec sleep 100";
    else script += "exit " + e->exit_with;
    return {"/bin/sh", "-c", script};
  }
};

// A component with a log file of its own, beside it.
struct Filed : stackup::StackComponent<Filed> {
  static constexpr std::string_view role = "file";
  Engine* e = nullptr;
  bool is_provisioned() const { return true; }
  bool is_running() const { return true; }
  fs::path log_file() const { return e->dir / "file.log"; }
};

template <class K> struct Fixture {
  Engine engine;
  kinds::StackOf<K, Filed, Boxed> stack = kinds::make_from<K>("t", Filed{}, Boxed{});
  Fixture() {
    kinds::get<Filed>(stack).e = &engine;
    kinds::get<Boxed>(stack).e = &engine;
  }
  struct Result {
    int code;
    std::string out, err;
  };
  Result run(std::vector<std::string_view> words) {
    std::ostringstream out, err;
    const int code = cli::run(stack, std::span<const std::string_view>(words), out, err, {.program = "t"});
    return {code, out.str(), err.str()};
  }
};

bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

} // namespace

TEST_CASE_TEMPLATE("log_command: <role> logs runs the engine's reader, --tail passed on; its failure is said", K,
                   kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  CHECK(f.stack.view().has_log_command("box"));
  CHECK(!f.stack.view().has_log_command("file"));
  put(f.engine.journal, "one\ntwo\nthree\n");
  auto r = f.run({"box", "logs"});
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(r.out == "one\ntwo\nthree\n"); // no prefix: one component's log
  r = f.run({"box", "logs", "--tail", "2"});
  CHECK(r.out == "two\nthree\n");
  REQUIRE(!f.engine.requests.empty());
  CHECK(f.engine.requests.back().tail == std::optional<std::size_t>(2));
  CHECK(!f.engine.requests.back().follow);
  CHECK(!f.engine.requests.back().since);

  f.engine.exit_with = "125";
  r = f.run({"box", "logs"});
  CHECK(r.code == 1);
  CHECK(r.out == "one\ntwo\nthree\n");
  CHECK(contains(r.err, "box: `/bin/sh` exited with status 125"));

  f.engine.refuse = true;
  r = f.run({"box", "logs"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "box is not provisioned: run `stack up` first"));
}

TEST_CASE_TEMPLATE("log_command: stack logs merges the engine's log with log files, in the stack's order", K,
                   kinds::Typed, kinds::Dynamic) {
  Fixture<K> f;
  put(f.engine.journal, "b1\nb2\n");
  put(f.engine.dir / "file.log", "f1\nf2\n");
  auto r = f.run({"stack", "logs"});
  CHECK(r.code == 0);
  CHECK(r.out == "file | f1\nfile | f2\nbox | b1\nbox | b2\n");
  CHECK(f.run({"stack", "logs", "-n", "1"}).out == "file | f2\nbox | b2\n");
  // One that cannot give its log is said; the others are still shown.
  f.engine.refuse = true;
  r = f.run({"stack", "logs"});
  CHECK(r.code == 1);
  CHECK(r.out == "file | f1\nfile | f2\n");
  CHECK(contains(r.err, "t: box: box is not provisioned"));
}

TEST_CASE("log_command: a follow reads the reader as it writes, runs it again for what came since it ended, "
          "and leaves no reader behind") {
  Engine e;
  put(e.journal, "first\n");
  Boxed box;
  box.e = &e;
  stackup::cli::detail::MergedLogs logs({{"box", {}, [&](const stackup::LogRequest& r) { return box.log_command(r); }}},
                                        {.prefix = true});
  std::string out;
  std::vector<stackup::cli::detail::LogProblem> problems;
  const auto before = std::chrono::system_clock::now();
  logs.start(std::nullopt, true, out, problems);
  CHECK(problems.empty());

  std::mutex m;
  std::string seen = out;
  std::stop_source stop;
  std::thread follower([&] {
    logs.follow(stop.get_token(), [&](std::string_view d) {
      const std::lock_guard lock(m);
      seen += d;
      return true;
    });
  });
  const auto wait_for = [&](auto&& ok) {
    for (int i = 0; i < 400; ++i) {
      {
        const std::lock_guard lock(m);
        if (ok()) return true;
      }
      std::this_thread::sleep_for(25ms);
    }
    return false;
  };
  CHECK(wait_for([&] { return contains(seen, "box | first\n"); }));
  // The reader ends (the container stopped): the next run asks for what came
  // after it ended, and what it prints follows.
  pid_t first = 0;
  REQUIRE(wait_for([&] { return fs::exists(e.reader_pid) && fs::file_size(e.reader_pid) > 0; }));
  std::ifstream(e.reader_pid) >> first;
  REQUIRE(first > 0);
  put(e.journal.string() + ".since", "after restart\n");
  fs::remove(e.reader_pid);
  REQUIRE(::kill(first, SIGTERM) == 0);
  CHECK(wait_for([&] { return contains(seen, "box | after restart\n"); }));
  {
    const std::lock_guard lock(e.mutex);
    REQUIRE(e.requests.size() >= 2);
    CHECK(e.requests[0].follow);
    CHECK(!e.requests[0].since);
    CHECK(e.requests[1].follow);
    REQUIRE(e.requests[1].since);
    CHECK(*e.requests[1].since >= before);
  }
  pid_t second = 0;
  REQUIRE(wait_for([&] { return fs::exists(e.reader_pid) && fs::file_size(e.reader_pid) > 0; }));
  std::ifstream(e.reader_pid) >> second;
  CHECK(second != first);
  CHECK(alive(second));
  stop.request_stop();
  follower.join();
  CHECK(!alive(second)); // ended and reaped when the follow ends
  CHECK(seen.find("box | first\n") == seen.rfind("box | first\n")); // nothing given twice
}
