// Hostile files: stackup's on-disk state (pid file, config, log, lock, marker, the state
// directory itself, a LocalDirectory's path and marker) replaced by garbage,
// truncated, out-of-range values, FIFOs, directories, symlinks. Each operation
// must end with a clear stackup::Error that names the file (or a sane answer),
// never hang, never crash, signal no process and delete nothing it does not own.
//
// Every operation runs in a forked child with a generous ceiling, so a hang or a
// crash is reported as a failure of that one operation instead of stopping the
// suite. A "witness" process — an unrelated process group leader that reports
// every catchable signal it receives — shows that nothing was signalled.
#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <doctest/doctest.h>

#include "support/files.hpp"
#include "support/messages.hpp"
#include "support/ports.hpp"
#include "support/processes.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Daemon = stackup::LocalDaemon<"orchestrator">;
using Directory = stackup::LocalDirectory<"artifact_store">;

using files::slurp;
using files::spit;
using messages::contains;
using ports::free_port;
using processes::alive;
using processes::Scratch;
using processes::tagged;

// ---- the witness ------------------------------------------------------------------

int witness_fd = -1;
extern "C" void witness_saw(int sig) {
  const char byte = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(witness_fd, &byte, 1);
}

/// An unrelated process, leader of its own session and process group (so a
/// group signal would reach it), that reports every catchable signal it gets.
/// SIGKILL cannot be caught: alive() shows that one.
class Witness {
public:
  Witness() {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::setsid();
      witness_fd = p[1];
      struct sigaction sa{};
      sa.sa_handler = witness_saw;
      for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT})
        ::sigaction(sig, &sa, nullptr);
      const char ready = 'R';
      [[maybe_unused]] const ssize_t n = ::write(p[1], &ready, 1);
      for (;;) ::pause();
    }
    ::close(p[1]);
    read_ = p[0];
    char ready = 0;
    REQUIRE(::read(read_, &ready, 1) == 1); // handlers installed
    ::fcntl(read_, F_SETFL, O_NONBLOCK);
    const auto info = processes::stat_of(pid_);
    REQUIRE(info.has_value());
    start_ = info->start;
  }
  ~Witness() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    ::close(read_);
  }
  Witness(const Witness&) = delete;
  Witness& operator=(const Witness&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] unsigned long long start() const { return start_; }
  /// Every signal received so far, as "SIGTERM SIGHUP ..." (empty: none).
  [[nodiscard]] std::string signals() {
    char buf[64];
    ssize_t n = 0;
    while ((n = ::read(read_, buf, sizeof buf)) > 0)
      for (ssize_t i = 0; i < n; ++i) seen_ += "signal " + std::to_string(static_cast<int>(buf[i])) + " ";
    return seen_;
  }
  [[nodiscard]] bool untouched() { return signals().empty() && alive(pid_); }

private:
  pid_t pid_ = -1;
  int read_ = -1;
  unsigned long long start_ = 0;
  std::string seen_;
};

// ---- operations, each in a child process --------------------------------------------

/// How one operation ended.
struct Ended {
  enum Kind { value, error, other, hung, crashed } kind = crashed;
  std::string text; // the value, or the error's message, or what went wrong

  [[nodiscard]] bool clear_error_naming(const fs::path& p) const { return kind == error && contains(text, p.string()); }
};
std::string show(const Ended& e) {
  static constexpr const char* kinds[] = {"value", "stackup::Error", "other exception", "HUNG", "CRASHED"};
  return std::string(kinds[e.kind]) + ": " + e.text;
}

/// Runs `op` in a forked child and reports how it ended. A child still running
/// after `ceiling` is killed and reported as hung: the ceiling only guards the
/// suite against a hang, the test asserts no timing.
Ended guarded(const std::function<std::string()>& op, std::chrono::seconds ceiling = 20s) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(p[0]);
    std::string out;
    try {
      out = "V" + op();
    } catch (const stackup::Error& e) {
      out = std::string("E") + e.what();
    } catch (const std::exception& e) {
      out = std::string("O") + e.what();
    } catch (...) {
      out = "Oan exception that is not a std::exception";
    }
    std::string_view rest = out;
    while (!rest.empty()) {
      const ssize_t n = ::write(p[1], rest.data(), rest.size());
      if (n <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    ::_exit(0); // no doctest teardown in the child
  }
  ::close(p[1]);
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + ceiling;
  bool hung = false;
  for (;;) {
    pollfd pfd{p[0], POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      hung = true;
      break;
    }
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  if (hung) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (hung) return {Ended::hung, "still running after " + std::to_string(ceiling.count()) + "s"};
  if (WIFSIGNALED(status) || got.empty())
    return {Ended::crashed, WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status)) : "no result"};
  const char k = got.front();
  got.erase(0, 1);
  return {k == 'V' ? Ended::value : k == 'E' ? Ended::error : Ended::other, got};
}

// One test's world: a temp directory that tags its processes, a free port, a
// witness, a daemon and a directory sharing the temp directory.
struct World {
  Scratch tmp{"hostile"};
  Witness witness;
  std::uint16_t port = free_port();
  fs::path state = tmp.path / "state";
  fs::path artifacts = tmp.path / "artifacts";

  [[nodiscard]] Daemon daemon() const {
    return Daemon{{.name = "web",
                   .command = {STACKUP_TEST_DAEMON_PATH, "--port", std::to_string(port), "--tag", tmp.path.string()},
                   .state_dir = state,
                   .ready = stackup::ready::http(port, "/health"),
                   .start_timeout = 10s,
                   .stop_timeout = 5s}};
  }
  [[nodiscard]] Directory directory() const { return Directory{{.name = "artifacts", .path = artifacts}}; }
  [[nodiscard]] auto stack() const { return stackup::Stack{"hostile", directory(), daemon()}; }
  [[nodiscard]] std::vector<pid_t> processes() const { return tagged(tmp.path.string()); }
};

// A command line run against the world's stack: "exit N" and what it wrote to stderr.
std::string cli(const World& w, std::initializer_list<std::string_view> words) {
  auto s = w.stack();
  const std::vector<std::string_view> args(words);
  std::ostringstream out, err;
  const int code = stackup::cli::run(s, std::span<const std::string_view>(args), out, err);
  return "exit " + std::to_string(code) + ": " + err.str();
}

// Every file of a directory tree with its content ("<dir>" for directories,
// "-> target" for symlinks): to show that nothing was deleted or changed.
std::vector<std::pair<std::string, std::string>> tree(const fs::path& root) {
  std::vector<std::pair<std::string, std::string>> out;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(root, ec))) return out;
  auto describe = [](const fs::path& p) -> std::string {
    const auto st = fs::symlink_status(p);
    if (fs::is_symlink(st)) return "-> " + fs::read_symlink(p).string();
    if (fs::is_directory(st)) return "<dir>";
    if (fs::is_fifo(st)) return "<fifo>";
    if (fs::is_regular_file(st)) return slurp(p).value_or("<unreadable>");
    return "<special>";
  };
  out.emplace_back(".", describe(root));
  if (fs::is_directory(fs::symlink_status(root)))
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
      out.emplace_back(fs::relative(it->path(), root).string(), describe(it->path()));
  std::sort(out.begin(), out.end());
  return out;
}
// The tree minus the daemon's log, which an action may legitimately append to.
auto tree_without_log(const fs::path& root) {
  auto t = tree(root);
  std::erase_if(t, [](const auto& e) { return e.first == "daemon.log"; });
  return t;
}

} // namespace

// ---- pid files ------------------------------------------------------------------------

TEST_CASE("hostile files: corrupt pid files are clear errors; nothing signalled, started or deleted") {
  World w;
  auto d = w.daemon();
  d.provision();
  const std::string wp = std::to_string(w.witness.pid());
  const std::string ws = std::to_string(w.witness.start());
  const std::string init_start = std::to_string(processes::stat_of(1).value_or(processes::Stat{}).start);
  const std::string nul("\0\0\0\0", 4);
  std::string binary;
  for (int i = 0; i < 200; ++i) binary += static_cast<char>((i * 37 + 11) % 256);

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"a newline", "\n"},
      {"blanks", "   \n"},
      {"garbage", "hello world\n"},
      {"NUL bytes", nul},
      {"NUL inside", wp + nul + " " + ws + "\n"},
      {"binary", binary},
      {"a megabyte of digits", std::string(1 << 20, '7')},
      {"pid only", wp + "\n"},
      {"zero", "0 " + ws + "\n"},
      {"one (init)", "1 " + init_start + "\n"},
      {"negative", "-" + wp + " " + ws + "\n"},
      {"minus one", "-1 " + ws + "\n"},
      {"plus sign", "+" + wp + " " + ws + "\n"},
      {"leading blank", " " + wp + " " + ws + "\n"},
      {"two blanks", wp + "  " + ws + "\n"},
      {"a tab", wp + "\t" + ws + "\n"},
      {"carriage return", wp + " " + ws + "\r\n"},
      {"two newlines", wp + " " + ws + "\n\n"},
      {"trailing junk", wp + " " + ws + " x\n"},
      {"hexadecimal", "0x" + wp + " " + ws + "\n"},
      {"negative start time", wp + " -" + ws + "\n"},
      {"start time overflow", wp + " 18446744073709551616\n"},
      {"huge pid", "99999999999999999999 " + ws + "\n"},
      {"pid above 2^31", "2147483648 " + ws + "\n"},
      {"pid that wraps to 1 in 32 bits", "4294967297 " + ws + "\n"},
      {"pid that wraps to the witness in 32 bits", std::to_string(4294967296LL + w.witness.pid()) + " " + ws + "\n"},
      {"pid above pid_max", "4194305 " + ws + "\n"},
  };
  for (const auto& entry : cases) {
    const auto& what = entry.first;
    const auto& content = entry.second;
    CAPTURE(what);
    spit(d.pid_file(), content);
    const auto before = tree_without_log(w.state);
    const auto artifacts_before = tree(w.artifacts);

    // Queries: an error that names the pid file.
    const std::vector<std::pair<std::string, std::function<std::string()>>> queries = {
        {"is_running", [&] { return std::to_string(d.is_running()); }},
        {"pid", [&] { return std::to_string(d.pid().value_or(0)); }},
        {"suspend", [&] { return d.suspend(), std::string("done"); }},
        {"resume", [&] { return d.resume(), std::string("done"); }},
        {"deprovision", [&] { return d.deprovision(), std::string("done"); }}};
    for (const auto& query : queries) {
      const auto& name = query.first;
      const auto& op = query.second;
      const Ended e = guarded(op);
      INFO(name, " -> ", show(e));
      CHECK(e.clear_error_naming(d.pid_file()));
      CHECK(contains(e.text, "nothing was signalled"));
    }
    // detail() is for status tables: it never throws, it says what is wrong.
    const Ended detail = guarded([&] { return d.detail(); });
    INFO("detail -> ", show(detail));
    CHECK(detail.kind == Ended::value);
    CHECK(contains(detail.text, d.pid_file().string()));

    // The whole stack: up and down fail with the daemon's error; neither hangs.
    const Ended up = guarded([&] {
      auto s = w.stack();
      s.up();
      return std::string("up");
    });
    INFO("stack up -> ", show(up));
    CHECK(up.clear_error_naming(d.pid_file()));
    CHECK(tree(w.artifacts) == artifacts_before); // rolled back: as it was found
    const Ended down = guarded([&] {
      auto s = w.stack();
      s.down({.force = true});
      return std::string("down");
    });
    INFO("stack down --force -> ", show(down));
    CHECK(down.clear_error_naming(d.pid_file()));

    CHECK(tree_without_log(w.state) == before); // nothing deleted or changed, pid file included
    CHECK(w.witness.untouched());
    CHECK(alive(1));
    CHECK(w.processes().empty()); // nothing started
    // Put the artifacts back as they were for the next case (down removed them).
    if (!artifacts_before.empty() && !fs::exists(w.artifacts)) w.directory().provision();
  }
  CHECK(w.witness.signals() == "");
}

TEST_CASE("hostile files: a pid file naming a live unrelated process is stale: cleaned, never signalled") {
  World w;
  auto d = w.daemon();
  d.provision();
  // The witness's pid, with a start time that is not its own (a reused pid).
  for (const auto& start : {w.witness.start() + 1, w.witness.start() - 1, 0ULL, 18446744073709551615ULL}) {
    CAPTURE(start);
    spit(d.pid_file(), std::to_string(w.witness.pid()) + " " + std::to_string(start) + "\n");
    const Ended running = guarded([&] { return std::to_string(d.is_running()); });
    CHECK(show(running) == "value: 0");
    const Ended pid = guarded([&] { return std::to_string(d.pid().value_or(0)); });
    CHECK(show(pid) == "value: 0");
    const Ended suspend = guarded([&] { return d.suspend(), std::string("done"); });
    CHECK(show(suspend) == "value: done");
    CHECK_FALSE(fs::exists(d.pid_file())); // the stale record is gone
    CHECK(w.witness.untouched());
  }
  // With a stale record in place, the stack comes up with its own daemon and
  // goes down without touching the witness.
  spit(d.pid_file(), std::to_string(w.witness.pid()) + " " + std::to_string(w.witness.start() + 1) + "\n");
  auto s = w.stack();
  s.up();
  const pid_t ours = s.get<"orchestrator">().pid().value_or(0);
  CHECK(ours > 1);
  CHECK(ours != w.witness.pid());
  CHECK(w.processes() == std::vector<pid_t>{ours});
  s.down({.force = true});
  CHECK_FALSE(fs::exists(w.state));
  CHECK(w.processes().empty());
  CHECK(w.witness.untouched());
}

// ---- special files in place of stackup's files -------------------------------------------

TEST_CASE("hostile files: FIFOs, directories and symlinks in place of pid, config, log and lock") {
  World w;
  // A file outside the state directory holding a valid record of the witness:
  // following a symlink to it would signal the witness.
  const fs::path outside = w.tmp.path / "outside";
  const std::string record = std::to_string(w.witness.pid()) + " " + std::to_string(w.witness.start()) + "\n";

  for (const std::string file : {"pid", "config", "daemon.log", "lock", Daemon::marker}) {
    for (const std::string kind : {"fifo", "directory", "symlink", "dangling symlink", "symlink to /dev/zero"}) {
      CAPTURE(file);
      CAPTURE(kind);
      auto d = w.daemon();
      // Before each operation: a provisioned daemon with the hostile file in place.
      const auto plant = [&] {
        std::error_code ec;
        // A daemon an earlier operation started (its pid file is about to go):
        // stopped with its waiter (its parent), so neither outlives its record.
        for (const pid_t p : w.processes()) {
          const std::string stat = slurp("/proc/" + std::to_string(p) + "/stat").value_or("");
          const pid_t parent = stat.rfind(')') == std::string::npos
                                   ? 0
                                   : static_cast<pid_t>(std::atol(stat.c_str() + stat.rfind(')') + 4));
          ::kill(p, SIGKILL);
          if (parent > 1 && parent != ::getpid()) REQUIRE(processes::eventually([&] { return !processes::alive(parent); }));
        }
        REQUIRE(processes::eventually([&] { return w.processes().empty(); }));
        fs::remove_all(w.state, ec);
        fs::remove_all(w.artifacts, ec);
        spit(outside, record);
        d.provision();
        spit(w.state / "daemon.log", "a line of log\n");
        const fs::path target = w.state / file;
        fs::remove(target, ec);
        if (kind == "fifo") REQUIRE(::mkfifo(target.c_str(), 0600) == 0);
        else if (kind == "directory") fs::create_directory(target);
        else if (kind == "symlink") fs::create_symlink(outside, target);
        else if (kind == "dangling symlink") fs::create_symlink(w.tmp.path / "nowhere", target);
        else fs::create_symlink("/dev/zero", target);
      };

      const std::vector<std::pair<std::string, std::function<std::string()>>> ops = {
          {"is_provisioned", [&] { return std::to_string(d.is_provisioned()); }},
          {"is_running", [&] { return std::to_string(d.is_running()); }},
          {"pid", [&] { return std::to_string(d.pid().value_or(0)); }},
          {"detail", [&] { return d.detail(); }},
          {"from_state_dir", [&] { return std::string(Daemon::from_state_dir(w.state).name()); }},
          {"status", [&] { return std::string(stackup::to_string(w.stack().status()[1].state)); }},
          {"up", [&] { return w.stack().up(), std::string("up"); }},
          {"down", [&] { return w.stack().down(), std::string("down"); }},
          {"down --force", [&] { return w.stack().down({.force = true}), std::string("down --force"); }},
          {"cli status", [&] { return cli(w, {"stack", "status"}); }},
          {"cli logs", [&] { return cli(w, {"orchestrator", "logs"}); }},
      };
      for (const auto& entry : ops) {
        const auto& name = entry.first;
        const auto& op = entry.second;
        plant();
        const Ended e = guarded(op);
        INFO(name, " -> ", show(e));
        CHECK(e.kind != Ended::hung);
        CHECK(e.kind != Ended::crashed);
        CHECK(e.kind != Ended::other);
        if (e.kind == Ended::error) CHECK(contains(e.text, w.state.string()));
        if (name == "cli logs" && file == "daemon.log" && kind != "dangling symlink") // shown, never followed
          CHECK(contains(e.text, "exit 1"));
        CHECK(slurp(outside) == record); // never written through a link
        CHECK(w.witness.untouched());
      }
      CHECK(fs::exists(fs::symlink_status(outside)));
    }
  }
  // Whatever was started along the way (a daemon whose log was a FIFO, say) is
  // ours: the sweeper ends it. Nothing else was ever signalled.
  CHECK(w.witness.signals() == "");
}

// ---- config files ------------------------------------------------------------------------

TEST_CASE("hostile files: a config cut at every byte, or corrupt, is a clear error") {
  World w;
  auto d = w.daemon();
  d.provision();
  const fs::path config = w.state / "config";
  const std::string full = slurp(config).value_or("");
  REQUIRE(full.size() > 40);
  REQUIRE(show(guarded([&] { return std::string(Daemon::from_state_dir(w.state).name()); })) == "value: web");

  for (std::size_t n = 0; n < full.size(); ++n) {
    CAPTURE(n);
    spit(config, full.substr(0, n));
    const Ended e = guarded([&] { return std::string(Daemon::from_state_dir(w.state).name()); });
    INFO(show(e));
    CHECK(e.clear_error_naming(config));
  }
  std::string binary;
  for (int i = 0; i < 300; ++i) binary += static_cast<char>((i * 53 + 7) % 256);
  std::string other_role = full;
  other_role.replace(other_role.find("role orchestrator"), 17, "role model_deployer");
  std::string bad_port = full;
  bad_port.replace(bad_port.find("http " + std::to_string(w.port)), 5 + std::to_string(w.port).size(), "http 70000");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage", "hello\nworld\n"},
      {"binary", binary},
      {"another role", other_role},
      {"port out of range", bad_port},
      {"text after end", full + "arg /bin/sh\n"},
      {"CRLF line endings", [&] {
         std::string s;
         for (char c : full) s += c == '\n' ? std::string("\r\n") : std::string(1, c);
         return s;
       }()},
      {"2 MiB", full.substr(0, full.size() - 4) + std::string(2 << 20, 'x') + "\nend\n"},
      {"unknown key", full.substr(0, full.size() - 4) + "shell rm -rf /\nend\n"},
      {"bad escape", full.substr(0, full.size() - 4) + "arg \\x\nend\n"},
  };
  for (const auto& entry : cases) {
    const auto& what = entry.first;
    const auto& content = entry.second;
    CAPTURE(what);
    spit(config, content);
    const Ended e = guarded([&] { return std::string(Daemon::from_state_dir(w.state).name()); });
    INFO(show(e));
    CHECK(e.clear_error_naming(w.state));
  }
  // A stack that owns the daemon rewrites its config: a corrupt one does not stop it.
  spit(config, full.substr(0, full.size() / 2));
  auto s = w.stack();
  s.up();
  CHECK(slurp(config) == full);
  s.down({.force = true});
  CHECK(w.processes().empty());
  CHECK(w.witness.untouched());
}

// ---- the state directory itself ---------------------------------------------------------------

TEST_CASE("hostile files: a state directory replaced by a file or a symlink, even while the daemon runs") {
  World w;
  auto s = w.stack();
  s.up();
  auto& d = s.get<"orchestrator">();
  const pid_t daemon = d.pid().value_or(0);
  REQUIRE(daemon > 1);
  const fs::path moved = w.tmp.path / "moved-state";

  SUBCASE("a symlink to the real state directory, holding a valid pid file") {
    fs::rename(w.state, moved);
    fs::create_directory_symlink(moved, w.state);
  }
  SUBCASE("a symlink to a directory with a record of the witness") {
    fs::rename(w.state, moved);
    fs::create_directory(w.tmp.path / "decoy");
    ::chmod((w.tmp.path / "decoy").c_str(), 0700);
    spit(w.tmp.path / "decoy" / "pid",
         std::to_string(w.witness.pid()) + " " + std::to_string(w.witness.start()) + "\n");
    fs::copy_file(moved / "config", w.tmp.path / "decoy" / "config");
    fs::create_directory_symlink(w.tmp.path / "decoy", w.state);
  }
  SUBCASE("a regular file") {
    fs::rename(w.state, moved);
    spit(w.state, "not a directory\n");
  }
  const auto at_path = tree(w.state);
  const auto moved_before = tree_without_log(moved);
  const auto decoy_before = tree(w.tmp.path / "decoy");

  const std::vector<std::pair<std::string, std::function<std::string()>>> ops = {
      {"is_running", [&] { return std::to_string(d.is_running()); }},
      {"pid", [&] { return std::to_string(d.pid().value_or(0)); }},
      {"suspend", [&] { return d.suspend(), std::string("done"); }},
      {"deprovision", [&] { return d.deprovision(), std::string("done"); }},
      {"provision", [&] { return d.provision(), std::string("done"); }},
      {"resume", [&] { return d.resume(), std::string("done"); }},
      {"stack down --force", [&] { return s.down({.force = true}), std::string("done"); }},
      {"stack up", [&] { return s.up(), std::string("done"); }},
  };
  for (const auto& entry : ops) {
    const auto& name = entry.first;
    const auto& op = entry.second;
    const Ended e = guarded(op);
    INFO(name, " -> ", show(e));
    CHECK(e.clear_error_naming(w.state));
    CHECK(tree(w.state) == at_path);                                  // the link or file is left alone
    CHECK(tree_without_log(moved) == moved_before);                   // the real directory too
    CHECK(tree(w.tmp.path / "decoy") == decoy_before);                // and whatever a link points to
    CHECK(alive(daemon));                                             // not signalled through a link
    CHECK(w.witness.untouched());
  }
  // Put the real directory back: the stack finds its daemon and stops it.
  fs::remove(w.state);
  fs::rename(moved, w.state);
  CHECK(d.is_running());
  s.down({.force = true});
  CHECK_FALSE(alive(daemon));
  CHECK(w.processes().empty());
}

TEST_CASE("hostile files: a LocalDirectory replaced by a symlink or a file, or with a forged marker") {
  World w;
  auto dir = w.directory();
  const fs::path elsewhere = w.tmp.path / "elsewhere";
  fs::create_directory(elsewhere);
  spit(elsewhere / "precious", "keep me\n");

  SUBCASE("a symlink to a directory that carries a marker") {
    spit(elsewhere / Directory::marker, "created by stackup\n");
    fs::create_directory_symlink(elsewhere, w.artifacts);
  }
  SUBCASE("a regular file") { spit(w.artifacts, "a file\n"); }
  SUBCASE("a marker that is a symlink") {
    fs::create_directory(w.artifacts);
    spit(w.artifacts / "precious", "keep me too\n");
    fs::create_symlink(elsewhere / "precious", w.artifacts / Directory::marker);
  }
  SUBCASE("a marker that is a FIFO") {
    fs::create_directory(w.artifacts);
    spit(w.artifacts / "precious", "keep me too\n");
    REQUIRE(::mkfifo((w.artifacts / Directory::marker).c_str(), 0600) == 0);
  }
  SUBCASE("a marker that is a directory") {
    fs::create_directory(w.artifacts);
    fs::create_directory(w.artifacts / Directory::marker);
    spit(w.artifacts / Directory::marker / "precious", "keep me too\n");
  }
  const auto at_path = tree(w.artifacts);
  const auto elsewhere_before = tree(elsewhere);
  const std::vector<std::pair<std::string, std::function<std::string()>>> ops = {
      {"is_provisioned", [&] { return std::to_string(dir.is_provisioned()); }},
      {"deprovision", [&] { return dir.deprovision(), std::string("done"); }},
      {"provision", [&] { return dir.provision(), std::string("done"); }},
      {"stack down --force", [&] {
         auto s = w.stack();
         return s.down({.force = true}), std::string("done");
       }},
  };
  for (const auto& entry : ops) {
    const auto& name = entry.first;
    const auto& op = entry.second;
    const Ended e = guarded(op);
    INFO(name, " -> ", show(e));
    CHECK(e.kind != Ended::hung);
    CHECK(e.kind != Ended::crashed);
    CHECK(e.kind != Ended::other);
    if (name == "is_provisioned") CHECK(show(e) == "value: 0"); // not stackup's
    if (name == "provision" || name == "deprovision") CHECK(e.clear_error_naming(w.artifacts));
    CHECK(tree(w.artifacts) == at_path);
    CHECK(tree(elsewhere) == elsewhere_before);
  }
  CHECK(w.witness.untouched());
}

// ---- a directory stackup did not create -------------------------------------------------

TEST_CASE("hostile files: a state directory stackup did not create is refused by every query and action, untouched") {
  World w;
  std::string key = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
  for (int i = 0; i < 8; ++i) key += std::string(64, static_cast<char>('A' + i)) + "\n";
  key += "-----END OPENSSH PRIVATE KEY-----\n";
  // Each like a directory a user might point state_dir at by mistake: all mode
  // 0700, owned by the user, and holding a regular file named `config`.
  const auto make = [&](const std::string& kind) {
    std::error_code ec;
    fs::remove_all(w.state, ec);
    fs::create_directory(w.state);
    ::chmod(w.state.c_str(), 0700);
    if (kind == "a git directory") {
      spit(w.state / "config", "[core]\n\trepositoryformatversion = 0\n\tbare = false\n");
      spit(w.state / "HEAD", "ref: refs/heads/main\n");
      fs::create_directories(w.state / "objects" / "ab");
      spit(w.state / "objects" / "ab" / "cdef", "blob\n");
    } else if (kind == "an ssh directory") {
      spit(w.state / "config", "Host *\n  IdentityFile ~/.ssh/id_ed25519\n");
      spit(w.state / "id_ed25519", key);
      ::chmod((w.state / "id_ed25519").c_str(), 0600);
    } else if (kind == "only a config") {
      spit(w.state / "config", "user = someone\n");
    } else if (kind == "stackup's own file names") { // as 0.1.0 accepted: no marker, no stackup config
      spit(w.state / "config", "not stackup's\n");
      spit(w.state / "pid", std::to_string(w.witness.pid()) + " " + std::to_string(w.witness.start()) + "\n");
      spit(w.state / "daemon.log", "a log\n");
    } else { // a marker that is not stackup's
      spit(w.state / Daemon::marker, "not created by stackup\n");
      spit(w.state / "config", "user = someone\n");
    }
  };
  const auto mode_of = [](const fs::path& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 ? st.st_mode & 07777 : 0U;
  };
  for (const std::string kind :
       {"a git directory", "an ssh directory", "only a config", "stackup's own file names", "a forged marker"}) {
    CAPTURE(kind);
    auto d = w.daemon();
    const std::vector<std::pair<std::string, std::function<std::string()>>> ops = {
        {"is_provisioned", [&] { return std::to_string(d.is_provisioned()); }},
        {"is_running", [&] { return std::to_string(d.is_running()); }},
        {"pid", [&] { return std::to_string(d.pid().value_or(0)); }},
        {"from_state_dir", [&] { return std::string(Daemon::from_state_dir(w.state).name()); }},
        {"provision", [&] { return d.provision(), std::string("done"); }},
        {"resume", [&] { return d.resume(), std::string("done"); }},
        {"suspend", [&] { return d.suspend(), std::string("done"); }},
        {"deprovision", [&] { return d.deprovision(), std::string("done"); }},
        {"status", [&] { return std::string(stackup::to_string(w.stack().status()[1].state)); }},
        {"up", [&] { return w.stack().up(), std::string("up"); }},
        {"down", [&] { return w.stack().down(), std::string("down"); }},
        {"down --force", [&] { return w.stack().down({.force = true}), std::string("down --force"); }},
        {"cli status", [&] { return cli(w, {"stack", "status"}); }},
        {"cli up", [&] { return cli(w, {"stack", "up"}); }},
        {"cli down --force", [&] { return cli(w, {"stack", "down", "--force"}); }},
    };
    for (const auto& entry : ops) {
      const auto& name = entry.first;
      const auto& op = entry.second;
      make(kind);
      const auto before = tree(w.state);
      const Ended e = guarded(op);
      INFO(name, " -> ", show(e));
      if (name.rfind("cli", 0) == 0) {
        CHECK(contains(e.text, "exit 1"));
        CHECK(contains(e.text, w.state.string()));
      } else if (name != "status") {
        CHECK(e.clear_error_naming(w.state));
      }
      CHECK(contains(e.text, "has no stackup marker"));
      CHECK(contains(e.text, "give the daemon a directory of its own"));
      CHECK(tree(w.state) == before); // byte for byte: nothing written, nothing removed
      CHECK(mode_of(w.state) == 0700);
      CHECK(w.witness.untouched());
      CHECK(w.processes().empty());
    }
    // detail() never throws: it says what is wrong.
    make(kind);
    CHECK(contains(d.detail(), "has no stackup marker"));
  }
  CHECK(w.witness.signals() == "");
}
