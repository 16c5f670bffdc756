// stackup — the logs of a stack's components merged (internal, part of
// <stackup/cli.hpp>): `stack logs` and what `stack up --attach` shows. Each whole
// line of each log, prefixed `role | `, as it is written.
// SPDX-License-Identifier: MIT
#include <stackup/cli.hpp> // the public types it works on (cli.hpp includes this file after them)

#ifndef STACKUP_DETAIL_CLI_MERGE_HPP
#define STACKUP_DETAIL_CLI_MERGE_HPP

#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/format.hpp>
#include <stackup/detail/posix.hpp>

#include <fmt/color.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace stackup::cli::detail {

/// A line that has waited this long for its newline is shown as it is (ended with
/// '\n'), and what follows it as the next line: a program that never writes a
/// newline must not make the reader hold its whole output.
inline constexpr std::size_t longest_pending_line = std::size_t{1} << 20;

/// Splits what is read from a log, in chunks cut anywhere, into whole lines. What
/// follows the last newline waits for the next chunk; it is given out unfinished
/// only by flush() (at the end, or when the log is truncated or replaced) or once
/// it is longer than `longest` bytes.
class LineSplitter {
public:
  explicit LineSplitter(std::size_t longest = longest_pending_line) : longest_(longest) {}

  /// Calls `line(text)` (text without its '\n') for each line `data` completes.
  template <class F> void feed(std::string_view data, F&& line) {
    while (!data.empty()) {
      const std::size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        pending_.append(data);
        if (pending_.size() > longest_) flush(line);
        return;
      }
      if (pending_.empty()) {
        line(data.substr(0, nl));
      } else {
        pending_.append(data.substr(0, nl));
        flush(line);
      }
      data.remove_prefix(nl + 1);
    }
  }

  /// Gives out the unfinished line, if any.
  template <class F> void flush(F&& line) {
    if (pending_.empty()) return;
    line(std::string_view(pending_));
    pending_.clear();
  }

  [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }

private:
  std::string pending_;
  std::size_t longest_;
};

/// The colour of a role's prefix: one of six, by a hash of its name (FNV-1a, the
/// same on every run and machine).
inline fmt::terminal_color role_color(std::string_view role) noexcept {
  static constexpr std::array<fmt::terminal_color, 6> palette{
      fmt::terminal_color::cyan,         fmt::terminal_color::yellow, fmt::terminal_color::green,
      fmt::terminal_color::magenta,      fmt::terminal_color::blue,   fmt::terminal_color::bright_cyan};
  std::uint32_t h = 2166136261u;
  for (const char c : role) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return palette[h % palette.size()];
}

/// RFC 3339 in UTC with milliseconds: `2026-12-07T19:48:51.123Z`.
inline std::string rfc3339_ms(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ((ms % 1000) + 1000) % 1000);
}

/// How merged lines look.
struct MergeLook {
  bool prefix = true;     ///< `role | ` before each line (--no-prefix: false)
  bool timestamps = false; ///< the time it was read before that (--timestamps)
  bool color = false;     ///< the prefix in its role's colour
};

/// A log that could not be opened: why, and whether it is only not there (yet).
struct LogProblem {
  std::string text;
  bool missing = false;
};

/// One log of the merge: whose, and where it is: a file, or the output of a
/// program an engine gives (a container's `podman logs`, see log_command()).
struct MergeSource {
  std::string role;
  std::filesystem::path path; ///< the log file; empty when `command` gives the log
  /// The program whose output is the log, for a request (it may throw Error:
  /// not provisioned, not ours); empty for a log file.
  std::function<std::vector<std::string>(const LogRequest&)> command{};
};

/// A program whose standard output and error are a component's log, read
/// through one pipe. It runs in a session of its own (a Ctrl-C at the terminal
/// is ours to act on) and is ended with its group when dropped.
class LogProgram {
  using px = ::stackup::detail::posix;

public:
  LogProgram() = default;
  LogProgram(const LogProgram&) = delete;
  LogProgram& operator=(const LogProgram&) = delete;
  LogProgram(LogProgram&& o) noexcept : pid_(std::exchange(o.pid_, -1)), out_(std::move(o.out_)), argv0_(std::move(o.argv0_)) {}
  LogProgram& operator=(LogProgram&&) = delete;
  ~LogProgram() { end(); }

  /// Starts `argv`; Error when it cannot be started.
  void start(const std::vector<std::string>& argv) {
    end();
    px::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    int p[2];
    if (!null || ::pipe2(p, O_CLOEXEC) != 0) throw Error("cannot create a pipe: " + px::sys_message(errno));
    px::Fd read_end = px::above_stdio(px::Fd(p[0]));
    const px::Fd write_end = px::above_stdio(px::Fd(p[1]));
    null = px::above_stdio(std::move(null));
    px::SpawnOptions o;
    o.argv = argv;
    o.stdin_fd = null.get();
    o.stdout_fd = write_end.get();
    o.stderr_fd = write_end.get();
    pid_ = px::spawn(o, [](pid_t) {});
    ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    out_ = std::move(read_end);
    argv0_ = argv.front();
  }
  /// Whether it was started and its output is not at its end yet.
  [[nodiscard]] bool open() const noexcept { return static_cast<bool>(out_); }
  [[nodiscard]] int fd() const noexcept { return out_ ? out_.get() : -1; }

  /// Reads what it wrote, without blocking unless `wait`, into `data(text)`, at
  /// most `rounds` chunks (`wait`: until its output ends). Returns whether it
  /// stopped with more to read; at the end of its output, reaps it and says in
  /// `failure` how it ended when not with status 0.
  template <class F> bool read(std::vector<char>& buf, F&& data, std::string& failure, bool wait = false, int rounds = 64) {
    for (int r = 0; out_ && (wait || r < rounds); ++r) {
      const ssize_t got = ::read(out_.get(), buf.data(), buf.size());
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EAGAIN) {
        if (!wait) return false;
        pollfd p{out_.get(), POLLIN, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      if (got <= 0) { // its end: what it was asked for is all out
        out_.reset();
        failure = finish();
        return false;
      }
      data(std::string_view(buf.data(), static_cast<std::size_t>(got)));
    }
    return static_cast<bool>(out_);
  }

  /// Ends it and its group (SIGTERM, SIGKILL a second later) and reaps it.
  void end() noexcept {
    out_.reset();
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    for (int i = 0; i < 100 && !px::peek_exit(pid_); ++i) ::usleep(10000);
    ::kill(-pid_, SIGKILL); // not reaped yet: its group number is still its own
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

private:
  // Reaps it (its output ended, so it is ending); how it ended when not well.
  std::string finish() {
    if (pid_ <= 0) return {};
    int status = 0;
    pid_t r = 0;
    while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (r < 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) return {};
    return WIFEXITED(status) ? fmt::format("`{}` exited with status {}", argv0_, WEXITSTATUS(status))
                             : fmt::format("`{}` was killed by {}", argv0_, px::signal_name(WTERMSIG(status)));
  }
  pid_t pid_ = -1;
  px::Fd out_;
  std::string argv0_;
};

/// The logs of several components, merged line by line. Each log is opened
/// without following a symlink and without blocking, checked (a regular file)
/// through the descriptor opened, and only ever read through that descriptor
/// (pread), from the offset reached; a log that appears later, or is replaced
/// (its path names another file) or truncated (shorter than the offset), is read
/// anew from its start, after what the old one held. Only whole lines are given
/// out (see LineSplitter): no line is cut, lost or given twice.
class MergedLogs {
  struct Log {
    std::string role, prefix;
    std::filesystem::path path;
    // A log that is a program's output: the program, when it runs again (a
    // follow goes on after it ends: the component restarted, or not up yet),
    // and from when (it ended then, so what came after is what is missing).
    std::function<std::vector<std::string>(const LogRequest&)> command;
    LogProgram program;
    std::chrono::steady_clock::time_point next_run{};
    std::chrono::system_clock::time_point since{};
    std::chrono::milliseconds pause{0};
    int fd = -1;
    std::uint64_t offset = 0;
    ::dev_t dev = 0;
    ::ino_t ino = 0;
    LineSplitter lines;
    int file_watch = -1, dir_watch = -1;
    std::string problem; // the last one said, so it is said once
  };

  static std::chrono::system_clock::time_point now() { return std::chrono::system_clock::now(); }

  // What a line of log `l` becomes in `out`.
  auto emit_to(const Log& l, std::string& out) {
    return [this, &l, &out](std::string_view text) {
      if (look_.timestamps) {
        if (stamp_text_.empty()) stamp_text_ = rfc3339_ms(stamp_) + ' ';
        out += stamp_text_;
      }
      out += l.prefix;
      out += text;
      out += '\n';
    };
  }

public:
  /// How much one read takes.
  static constexpr std::size_t chunk = std::size_t{64} << 10;

  MergedLogs(std::vector<MergeSource> sources, MergeLook look) : look_(look) {
    for (auto& s : sources) {
      Log log;
      log.role = std::move(s.role);
      log.path = std::move(s.path);
      log.command = std::move(s.command);
      if (look_.prefix) {
        const std::string p = log.role + " |";
        log.prefix = (look_.color ? stackup::detail::styled(p, fmt::fg(role_color(log.role))) : p) + ' ';
      }
      logs_.push_back(std::move(log));
    }
  }
  ~MergedLogs() {
    for (auto& l : logs_) close_log(l);
    if (inotify_ >= 0) ::close(inotify_);
  }
  MergedLogs(const MergedLogs&) = delete;
  MergedLogs& operator=(const MergedLogs&) = delete;

  /// Opens each log and appends to `out` what it holds now: all of it, or its
  /// last `tail` lines (a last line without its newline counts as one). Following
  /// (`follow`), an unfinished last line waits for its newline, and `tail` 0
  /// starts at that line, so it is not cut; otherwise it is ended with '\n'. A
  /// log that cannot be opened is said in `problems` (one line each) and, when
  /// following, looked for again later.
  void start(std::optional<std::size_t> tail, bool follow, std::string& out, std::vector<LogProblem>& problems) {
    stamp_ = now();
    stamp_text_.clear();
    for (auto& l : logs_) {
      if (l.command) {
        l.since = stamp_;
        run(l, {.tail = tail, .follow = follow}, &problems);
        if (!follow) {
          std::string failure;
          buf_.resize(chunk);
          l.program.read(buf_, [&](std::string_view d) { l.lines.feed(d, emit_to(l, out)); }, failure, true);
          if (!failure.empty()) problems.push_back({l.role + ": " + failure, false});
          l.lines.flush(emit_to(l, out));
        }
        continue;
      }
      const int fd = open_checked(l, &problems);
      if (fd < 0) continue;
      adopt(l, fd);
      struct ::stat st {};
      const auto size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
      if (tail) {
        l.offset = tail_start(fd, size, *tail, follow);
        if (*tail == 0 && !follow) l.offset = size;
      }
      read_appended(l, out, size);
      if (!follow) l.lines.flush(emit_to(l, out));
    }
  }

  /// Follows the logs until `stop` is requested or `write` fails (returns false):
  /// each wake's whole lines go out in one `write`. It wakes when a log is
  /// written to, created or replaced (inotify), when `stop` is requested, and
  /// every 250 ms in any case (a directory made later, a file system inotify
  /// does not see). Before it returns it reads what was appended last and gives
  /// out the unfinished lines, each ended with '\n'. Returns whether every write worked.
  bool follow(const std::stop_token& stop, const std::function<bool(std::string_view)>& write) {
    inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const struct Closer {
      int fd;
      ~Closer() {
        if (fd >= 0) ::close(fd);
      }
    } wake_closer{wake};
    const std::stop_callback on_stop(stop, [wake] {
      const std::uint64_t one = 1;
      if (wake >= 0) [[maybe_unused]] const auto n = ::write(wake, &one, sizeof one);
    });
    for (auto& l : logs_) watch(l);
    std::string out;
    bool more = false; // a log had more than one pass reads: look again at once
    auto last_look = std::chrono::steady_clock::now();
    std::vector<pollfd> fds;
    while (!stop.stop_requested()) {
      fds.assign({{inotify_, POLLIN, 0}, {wake, POLLIN, 0}});
      for (const auto& l : logs_)
        if (l.program.open()) fds.push_back({l.program.fd(), POLLIN, 0});
      const int n = ::poll(fds.data(), fds.size(), more ? 0 : 250);
      // The fallback, also while the logs keep it busy: every path looked at again.
      bool recheck = std::chrono::steady_clock::now() - last_look >= std::chrono::milliseconds(250);
      if (n > 0 && (fds[0].revents & POLLIN) != 0) recheck |= drain_inotify();
      if (recheck) last_look = std::chrono::steady_clock::now();
      out.clear();
      more = pass(out, recheck);
      if (!out.empty() && !write(out)) return false;
    }
    out.clear();
    for (auto& l : logs_) l.next_run = std::chrono::steady_clock::time_point::max(); // no program runs again
    pass(out, true);
    for (auto& l : logs_) {
      l.lines.flush(emit_to(l, out));
      l.program.end();
    }
    return out.empty() || write(out);
  }

  /// Where the last `n` lines of the file `fd` (of `size` bytes) start, a last
  /// line without its newline counting as one. `n` 0 while following: where
  /// that unfinished line starts (the end when there is none).
  static std::uint64_t tail_start(int fd, std::uint64_t size, std::size_t n, bool follow) {
    if (n == 0 && !follow) return size;
    const std::size_t wanted = n == 0 ? 1 : n;
    std::vector<char> buf(chunk);
    std::uint64_t pos = size;
    std::size_t newlines = 0;
    bool ends_with_newline = false;
    bool first = true;
    while (pos > 0) {
      const std::uint64_t len = std::min<std::uint64_t>(pos, chunk);
      pos -= len;
      const ssize_t got = ::pread(fd, buf.data(), len, static_cast<off_t>(pos));
      if (got != static_cast<ssize_t>(len)) return pos + len; // shrunk under us: from where it was read
      for (std::uint64_t i = len; i-- > 0;) {
        if (buf[i] != '\n') continue;
        if (first && pos + i == size - 1) { // a final newline ends the last line
          ends_with_newline = true;
          continue;
        }
        if (n == 0 && ends_with_newline) return size; // nothing unfinished
        if (++newlines == wanted) return pos + i + 1;
      }
      first = false;
    }
    if (n == 0 && ends_with_newline) return size;
    return 0;
  }

private:
  // Starts the program of log `l` for `request`; what stops it is a problem
  // (said once), and it is tried again later when following.
  void run(Log& l, const LogRequest& request, std::vector<LogProblem>* problems) {
    std::string problem;
    try {
      l.program.start(l.command(request));
      l.problem.clear();
    } catch (...) {
      problem = l.role + ": " + stackup::detail::current_message();
    }
    l.next_run = std::chrono::steady_clock::now() + next_pause(l, false);
    if (problem.empty()) return;
    if (problems != nullptr && problem != l.problem) problems->push_back({problem, false});
    l.problem = std::move(problem);
  }
  // How long before the program of `l` runs again: a second after a run that
  // gave lines, else twice as long as last time, up to 8 s (a stopped container's
  // `logs --follow` ends at once: it is not run in a tight loop).
  static std::chrono::milliseconds next_pause(Log& l, bool gave_lines) {
    using std::chrono::milliseconds;
    l.pause = gave_lines || l.pause == milliseconds(0) ? milliseconds(1000) : std::min(l.pause * 2, milliseconds(8000));
    return l.pause;
  }
  // Reads the output of the program of `l`; when it has ended (and is due),
  // runs it again for what was written since. Whether it has more to read.
  bool read_program(Log& l, std::string& out, bool recheck) {
    if (l.program.open()) {
      std::string failure;
      bool gave = false;
      buf_.resize(chunk);
      const bool more = l.program.read(buf_, [&](std::string_view d) {
        gave = true;
        l.lines.feed(d, emit_to(l, out));
      }, failure);
      if (l.program.open()) return more;
      l.lines.flush(emit_to(l, out)); // its end ends its last line
      l.since = now();
      l.next_run = std::chrono::steady_clock::now() + next_pause(l, gave);
      return false;
    }
    if (recheck && std::chrono::steady_clock::now() >= l.next_run)
      run(l, {.tail = std::nullopt, .follow = true, .since = l.since}, nullptr);
    return false;
  }

  // O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO in the log's place is not
  // read (nor waited on); what is read is the file checked here.
  int open_checked(Log& l, std::vector<LogProblem>* problems) {
    const int fd = ::open(l.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct ::stat st {};
    std::string problem;
    const bool missing = fd < 0 && errno == ENOENT;
    if (missing)
      problem = fmt::format("{} has no log yet: {} does not exist (it has not been started since it was provisioned, "
                            "or it is deprovisioned)", l.role, l.path.string());
    else if (fd < 0 && errno != ELOOP)
      problem = fmt::format("{}: cannot open {}: {}", l.role, l.path.string(), std::strerror(errno));
    else if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
      problem = fmt::format("{}: cannot show {}: it is not a regular file (a symlink, a FIFO or a device?): remove it",
                            l.role, l.path.string());
    if (problem.empty()) return fd;
    if (fd >= 0) ::close(fd);
    if (problems != nullptr && problem != l.problem) problems->push_back({problem, missing});
    l.problem = std::move(problem);
    return -1;
  }

  void adopt(Log& l, int fd) {
    struct ::stat st {};
    ::fstat(fd, &st);
    close_log(l);
    l.fd = fd;
    l.dev = st.st_dev;
    l.ino = st.st_ino;
    l.offset = 0;
    l.problem.clear();
  }

  static void close_log(Log& l) {
    if (l.fd >= 0) ::close(l.fd);
    l.fd = -1;
  }

  // Wake-ups only: what is read is decided by the descriptors, not the watches.
  void watch(Log& l) {
    if (inotify_ < 0) return;
    if (l.dir_watch < 0 && l.path.has_parent_path()) {
      l.dir_watch = ::inotify_add_watch(inotify_, l.path.parent_path().c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
      if (l.dir_watch >= 0) dir_watches_.push_back(l.dir_watch);
    }
    if (l.fd >= 0) l.file_watch = ::inotify_add_watch(inotify_, l.path.c_str(), IN_MODIFY | IN_DONT_FOLLOW);
  }

  // Reads the pending inotify events; whether one was about a directory (a log
  // that may have appeared or been replaced).
  bool drain_inotify() {
    alignas(inotify_event) char buf[8192];
    bool dir_event = false;
    for (;;) {
      const ssize_t got = ::read(inotify_, buf, sizeof buf);
      if (got <= 0) break;
      for (ssize_t at = 0; at < got;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
        if ((e->mask & IN_Q_OVERFLOW) != 0 || std::ranges::find(dir_watches_, e->wd) != dir_watches_.end())
          dir_event = true;
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
    return dir_event;
  }

  // Appends what log `l` holds past its offset, in whole lines, reading at most
  // up to `limit` (and a few chunks at a time, so one busy log cannot starve the
  // others). Whether it stopped with more to read.
  bool read_appended(Log& l, std::string& out, std::optional<std::uint64_t> limit = std::nullopt) {
    if (l.fd < 0) return false;
    struct ::stat st {};
    if (::fstat(l.fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) < l.offset) { // truncated
      l.lines.flush(emit_to(l, out));
      l.offset = 0;
    }
    buf_.resize(chunk);
    for (int round = 0; limit || round < 64; ++round) {
      std::size_t want = chunk;
      if (limit) {
        if (l.offset >= *limit) return false;
        want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, *limit - l.offset));
      }
      const ssize_t got = ::pread(l.fd, buf_.data(), want, static_cast<off_t>(l.offset));
      if (got <= 0) return false;
      l.offset += static_cast<std::uint64_t>(got);
      l.lines.feed(std::string_view(buf_.data(), static_cast<std::size_t>(got)), emit_to(l, out));
    }
    return !limit;
  }

  // One look at every log, in the stack's order; `recheck`: also whether its
  // path now names another file (or names one at last). Whether a log has more.
  bool pass(std::string& out, bool recheck) {
    stamp_ = now();
    stamp_text_.clear();
    bool more = false;
    for (auto& l : logs_) {
      if (l.command) {
        more |= read_program(l, out, recheck);
        continue;
      }
      more |= read_appended(l, out);
      if (!recheck && l.fd >= 0) continue;
      if (l.dir_watch < 0) watch(l);
      const int fd = open_checked(l, nullptr);
      if (fd < 0) continue;
      struct ::stat st {};
      if (l.fd >= 0 && ::fstat(fd, &st) == 0 && st.st_dev == l.dev && st.st_ino == l.ino) {
        ::close(fd); // still the same file (held open, so its inode number is not another's)
        continue;
      }
      // Replaced, or there at last: what the old one held is out; the new one from its start.
      while (read_appended(l, out)) {
      }
      l.lines.flush(emit_to(l, out));
      adopt(l, fd);
      watch(l);
      more |= read_appended(l, out);
    }
    return more;
  }

  MergeLook look_;
  std::vector<Log> logs_;
  int inotify_ = -1;
  std::vector<int> dir_watches_;
  std::vector<char> buf_;
  std::chrono::system_clock::time_point stamp_{};
  std::string stamp_text_;
};

/// Writes `data` to the descriptor `fd` in full (one write unless the kernel
/// takes less); false when it cannot.
inline bool write_fully(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

} // namespace stackup::cli::detail

#endif // STACKUP_DETAIL_CLI_MERGE_HPP
