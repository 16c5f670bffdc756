// stackup — POSIX internals of the shipped components: spawning: running as another user,
// the child side, the waiter that stays a daemon's parent, shell commands.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/sockets.hpp>

extern "C" char** environ; // NOLINT: the process environment, inherited by spawned commands

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixSpawn : PosixSockets<> {

// ---- running as another user -------------------------------------------------------

/// The user a spawned process runs as, resolved in the parent: between fork and
/// exec the child may only make async-signal-safe calls, and looking up a user
/// or its groups reads files and allocates.
struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;              ///< the primary group
  std::vector<gid_t> groups{}; ///< the supplementary groups (the primary one included), as initgroups sets them
  std::string home{};
  std::string shell{}; ///< the login shell (the password database's; /bin/sh when it names none)
};

/// The PATH a process run as another user gets unless its `env` sets one: the
/// standard one `su -` gives an ordinary user, nothing of the caller's.
static constexpr std::string_view standard_path = "/usr/local/bin:/usr/bin:/bin";

/// The name of the user this process runs as (its effective uid), or "uid N"
/// when the password database has none.
static std::string current_user_name() {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(::geteuid());
}

/// What spawn needs to run `who`'s processes as `user` (the components'
/// `.user`): empty when `user` is empty or names the current user, which
/// changes nothing. Error naming the user when there is no such user; Error
/// naming `who` and the fix when it is another user and this process is not
/// root, the only one allowed to switch.
static std::optional<RunAs> run_as(const std::string& user, std::string_view who) {
  if (user.empty()) return std::nullopt;
  const std::string where = "stackup: " + std::string(who) + ": ";
  if (user.find('\0') != std::string::npos)
    throw Error(where + "user '" + user + "' holds a NUL byte: give a user name");
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int e = 0;
  while ((e = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1U << 20))
    buf.resize(buf.size() * 2);
  // ENOENT, ESRCH, EBADF and EPERM are how some systems say "no such user".
  if (found == nullptr && e != 0 && e != ENOENT && e != ESRCH && e != EBADF && e != EPERM)
    throw Error(where + "cannot look up user '" + user + "': " + sys_message(e));
  if (found == nullptr)
    throw Error(where + "there is no user '" + user + "' on this system (see `getent passwd " + user +
                "`): create it, or fix or remove `user`");
  if (pw.pw_uid == ::geteuid()) return std::nullopt;
  if (::geteuid() != 0)
    throw Error(where + "running as user '" + user + "' needs root, and this process runs as '" +
                current_user_name() + "': run stackup as root, or remove `user` to run it as '" +
                current_user_name() + "'");
  RunAs as{user, pw.pw_uid, pw.pw_gid, {}, pw.pw_dir != nullptr ? pw.pw_dir : "",
           pw.pw_shell != nullptr && *pw.pw_shell != '\0' ? pw.pw_shell : "/bin/sh"};
  int count = 32;
  for (int attempt = 0; attempt < 8; ++attempt) {
    as.groups.resize(static_cast<std::size_t>(count));
    int n = count;
    if (::getgrouplist(user.c_str(), as.gid, as.groups.data(), &n) >= 0) {
      as.groups.resize(static_cast<std::size_t>(n));
      return as;
    }
    count = std::max(n, count * 2); // too small: n is the size it needs
  }
  throw Error(where + "cannot list the groups of user '" + user + "'");
}

/// What to run, and with which standard streams.
struct SpawnOptions {
  std::vector<std::string> argv;                        ///< argv[0] is looked up in PATH if it has no '/'
  const std::map<std::string, std::string>* env = nullptr; ///< variables added to the inherited environment
  std::filesystem::path working_dir;                    ///< empty: inherit
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;     ///< each must be above 2 (see above_stdio)
  /// Run as this user (see run_as): groups, gid, uid set before the working
  /// directory is entered, and a clean environment as `su -` and systemd give:
  /// `env`, then HOME, USER, LOGNAME and SHELL of that user and PATH
  /// standard_path where `env` does not set them; nothing inherited from this
  /// process. Null: as this process, with its environment plus `env`.
  const RunAs* user = nullptr;
};

/// What a started child needs between fork and exec, prepared before the fork:
/// it may then make only async-signal-safe calls (no allocation, no locks), as
/// the host may have threads.
struct ChildPlan {
  std::vector<std::string> env_strings{}, args{}, candidates{};
  std::vector<char*> envp{}, argv{};
  const char* cwd = nullptr;
  const RunAs* user = nullptr;
  int in = -1, out = -1, err = -1; ///< the child's standard streams
  int report = -1;                 ///< where a failure is reported (closed at exec)
  int go = -1;                     ///< one byte here lets the child exec; end of file makes it exit
};

/// Builds the environment, argv and PATH candidates of `o` (see SpawnOptions).
static void plan_child(const SpawnOptions& o, ChildPlan& p) {
  if (o.argv.empty() || o.argv.front().empty()) throw Error("stackup: cannot start an empty command");
  const auto configured = [&](std::string_view key) { return o.env != nullptr && o.env->count(std::string(key)) != 0; };
  std::string path_var(standard_path);
  if (o.user == nullptr) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string_view kv(*e);
      if (!configured(kv.substr(0, kv.find('=')))) p.env_strings.emplace_back(kv);
    }
    if (const char* path = std::getenv("PATH")) path_var = path;
  } else {
    // Another user gets nothing of this process's environment (root's PATH,
    // credentials of its tools): what a login as that user would have, and `env`.
    const std::string path(standard_path);
    const std::pair<const char*, const std::string*> vars[] = {{"HOME", &o.user->home},
                                                               {"USER", &o.user->name},
                                                               {"LOGNAME", &o.user->name},
                                                               {"SHELL", &o.user->shell},
                                                               {"PATH", &path}};
    for (const auto& [key, value] : vars)
      if (!configured(key)) p.env_strings.push_back(std::string(key) + "=" + *value);
  }
  if (o.env != nullptr) {
    for (const auto& [key, value] : *o.env) {
      if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos)
        throw Error("stackup: invalid environment variable name '" + key + "': it must be non-empty, without '='");
      p.env_strings.push_back(key + "=" + value);
      if (key == "PATH") path_var = value;
    }
  }
  for (auto& s : p.env_strings) p.envp.push_back(s.data());
  p.envp.push_back(nullptr);
  p.args = o.argv;
  for (auto& s : p.args) p.argv.push_back(s.data());
  p.argv.push_back(nullptr);
  if (o.argv.front().find('/') != std::string::npos) {
    p.candidates.push_back(o.argv.front());
  } else {
    std::string_view rest = path_var;
    while (true) {
      const auto colon = rest.find(':');
      const std::string_view dir = rest.substr(0, colon);
      p.candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + o.argv.front());
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  p.cwd = o.working_dir.empty() ? nullptr : o.working_dir.c_str();
  p.user = o.user;
  if (o.stdin_fd <= 2 || o.stdout_fd <= 2 || o.stderr_fd <= 2)
    throw Error("stackup: spawn: the child's standard streams must be descriptors above 2 (see above_stdio)");
  p.in = o.stdin_fd;
  p.out = o.stdout_fd;
  p.err = o.stderr_fd;
}

/// What a child writes to the report pipe: a failure (stage >= 1, with its
/// errno), or, from a waiter, that it started the daemon (stage 0).
struct Report {
  int stage = 0, err = 0;
  pid_t waiter = 0, main = 0;
};

// Child side: async-signal-safe calls only.
[[noreturn]] static void child_fail(int report, int stage) noexcept {
  const Report rep{stage, errno, 0, 0};
  [[maybe_unused]] const ssize_t n = ::write(report, &rep, sizeof rep);
  ::_exit(127);
}

static void default_signals() noexcept {
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
}

// The child proper: its own session, its streams, its user and directory; then
// it waits for the go byte and executes the command.
[[noreturn]] static void run_child(const ChildPlan& p) noexcept {
  if (::setsid() < 0) child_fail(p.report, 1);
  if (::dup2(p.in, 0) < 0 || ::dup2(p.out, 1) < 0 || ::dup2(p.err, 2) < 0) child_fail(p.report, 2);
#if defined(SYS_close_range)
  // Any descriptor the host left inheritable is closed at exec, not leaked to the daemon.
  ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
  if (p.user != nullptr) {
    // Groups and gid first: once the uid is not root, they cannot be changed.
    if (::setgroups(p.user->groups.size(), p.user->groups.data()) != 0) child_fail(p.report, 5);
    if (::setgid(p.user->gid) != 0) child_fail(p.report, 6);
    if (::setuid(p.user->uid) != 0) child_fail(p.report, 7);
  }
  // As that user: a directory it cannot enter is an error here, not a surprise later.
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) child_fail(p.report, 3);
  char byte = 0;
  ssize_t got = 0;
  do got = ::read(p.go, &byte, 1);
  while (got < 0 && errno == EINTR);
  if (got != 1) ::_exit(125); // the parent did not record us: do not run
  int err = ENOENT;
  for (const auto& c : p.candidates) {
    ::execve(c.c_str(), p.argv.data(), p.envp.data());
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) break;
  }
  errno = err;
  child_fail(p.report, 4);
}

// ---- the hold: a waiter that stays a daemon's parent ---------------------------

/// The waiter's SIGTERM: passed on to the daemon's main process.
static inline volatile sig_atomic_t waiter_term = 0;
static void on_waiter_term(int) noexcept { waiter_term = 1; }

/// Appends the decimal digits of `v` at `out`; returns how many.
static std::size_t put_number(char* out, unsigned long long v) noexcept {
  char tmp[24];
  std::size_t n = 0;
  do tmp[n++] = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

/// Parses a decimal number at the start of `s` (at most `len` bytes), moving past it.
static bool take_number(const char*& s, const char* end, long long& v) noexcept {
  v = 0;
  const char* begin = s;
  while (s < end && *s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return s != begin;
}

/// Signals every live child of this process (found in /proc by its parent
/// pid: a child's pid stays ours until we reap it, so it cannot be another
/// process's) with `sig`; returns how many. Async-signal-safe: the waiter runs it.
static unsigned long long signal_children(int sig) noexcept {
  struct Entry { // linux_dirent64
    std::uint64_t ino;
    std::int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[1];
  };
  const pid_t self = ::getpid();
  const int proc = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return 0;
  unsigned long long count = 0;
  alignas(8) char buf[4096];
  while (true) {
    const long n = ::syscall(SYS_getdents64, proc, buf, sizeof buf);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const auto* e = reinterpret_cast<const Entry*>(buf + at);
      at += e->reclen;
      const char* name = e->name;
      const char* name_end = name;
      while (*name_end != '\0') ++name_end;
      long long pid = 0;
      const char* q = name;
      if (!take_number(q, name_end, pid) || q != name_end || pid <= 1) continue;
      char path[40] = "/proc/";
      std::size_t len = 6 + put_number(path + 6, static_cast<unsigned long long>(pid));
      const char tail[] = "/stat";
      for (std::size_t i = 0; i < sizeof tail; ++i) path[len + i] = tail[i];
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char st[512];
      const ssize_t got = ::read(fd, st, sizeof st);
      ::close(fd);
      if (got <= 0) continue;
      const char* close = nullptr;
      for (const char* c = st; c < st + got; ++c)
        if (*c == ')') close = c;
      // ") S 1234 ": state, then the parent pid.
      if (close == nullptr || close + 4 >= st + got) continue;
      const char state = close[2];
      const char* pp = close + 4;
      long long ppid = 0;
      if (!take_number(pp, st + got, ppid) || ppid != self) continue;
      if (state == 'Z' || state == 'X' || state == 'x') continue;
      if (::kill(static_cast<pid_t>(pid), sig) == 0) ++count;
    }
  }
  ::close(proc);
  return count;
}

/// The waiter's life once the daemon's main process is started: it reaps every
/// process that comes back to it (a child subreaper); when the main process
/// ends it writes how into `exit` in the state directory (`dir`), SIGKILLs
/// every process still held, reaps them all and exits. Never returns.
[[noreturn]] static void run_waiter(pid_t main, int dir, const char* prefix) noexcept {
  // Only the state directory stays open: a pipe of the host kept open here would
  // keep its reader waiting (`stackctl stack up | cat`).
  int limit = 65536;
#if defined(SYS_close_range)
  const bool ranged = (dir <= 3 || ::syscall(SYS_close_range, 3U, static_cast<unsigned>(dir - 1), 0U) == 0) &&
                      ::syscall(SYS_close_range, static_cast<unsigned>(dir + 1), ~0U, 0U) == 0;
  if (ranged) limit = 0;
#endif
  for (int fd = 3; fd < limit; ++fd)
    if (fd != dir) ::close(fd);
  struct sigaction sa{};
  sa.sa_handler = on_waiter_term; // no SA_RESTART: waitpid returns EINTR
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  bool main_done = false;
  while (true) {
    int status = 0;
    const pid_t p = ::waitpid(-1, &status, 0);
    if (p < 0) {
      if (errno == EINTR) {
        if (waiter_term != 0 && !main_done) ::kill(main, SIGTERM); // not reaped yet: still the main process
        waiter_term = 0;
        continue;
      }
      break; // ECHILD: nothing is held any more
    }
    if (p == main) {
      main_done = true;
      timespec now{};
      ::clock_gettime(CLOCK_REALTIME, &now);
      const unsigned long long left = signal_children(SIGKILL);
      // "<invocation id> <pid> exited|killed|dumped <n> <seconds>.<nanoseconds> <left>\n"
      char line[160];
      std::size_t len = 0;
      for (const char* c = prefix; *c != '\0' && len < 64; ++c) line[len++] = *c;
      len += put_number(line + len, static_cast<unsigned long long>(main));
      const char* how = WIFEXITED(status) ? " exited " : WCOREDUMP(status) ? " dumped " : " killed ";
      for (const char* c = how; *c != '\0'; ++c) line[len++] = *c;
      len += put_number(line + len, static_cast<unsigned long long>(WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
      line[len++] = ' ';
      len += put_number(line + len, static_cast<unsigned long long>(now.tv_sec));
      line[len++] = '.';
      char ns[16];
      const std::size_t digits = put_number(ns, static_cast<unsigned long long>(now.tv_nsec));
      for (std::size_t i = digits; i < 9; ++i) line[len++] = '0';
      for (std::size_t i = 0; i < digits; ++i) line[len++] = ns[i];
      line[len++] = ' ';
      len += put_number(line + len, left);
      line[len++] = '\n';
      ::unlinkat(dir, "exit.tmp", 0);
      const int fd = ::openat(dir, "exit.tmp", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0) {
        const bool written = ::write(fd, line, len) == static_cast<ssize_t>(len);
        ::close(fd);
        if (written) ::renameat(dir, "exit.tmp", dir, "exit");
        else ::unlinkat(dir, "exit.tmp", 0);
      }
    } else if (main_done) {
      // One that died leaves its children to us: they are signalled in turn.
      signal_children(SIGKILL);
    }
  }
  ::_exit(0);
}

/// Why a child could not be started, from its report.
static std::string start_error(const SpawnOptions& o, const ChildPlan& p, const Report& rep, bool complete) {
  const char* stages[] = {"",
                          "setsid",
                          "redirect its output",
                          "change to its working directory",
                          "execute it",
                          "set its supplementary groups",
                          "set its group id",
                          "set its user id",
                          "start its waiter (fork)",
                          "make its waiter a child subreaper",
                          "start it under its waiter (fork)"};
  std::string what = "stackup: cannot start '" + o.argv.front() + "'";
  const int stage = complete && rep.stage >= 1 && rep.stage <= 10 ? rep.stage : 4;
  what += ": " + std::string(stages[stage]) + " failed: " + sys_message(rep.err);
  const std::string as_user = o.user != nullptr ? "user '" + o.user->name + "'" : std::string();
  if (stage == 3 && o.user == nullptr) what += " (working_dir " + quoted(o.working_dir) + ")";
  if (stage == 3 && o.user != nullptr)
    what += " (working_dir " + quoted(o.working_dir) + ", as " + as_user +
            (rep.err == EACCES ? ": that user must be allowed to enter it and every directory above it)" : ")");
  if (stage == 4 && rep.err == ENOENT && p.candidates.size() > 1) what += " (not found in PATH)";
  if (stage == 4 && rep.err == EACCES && o.user != nullptr) what += " (as " + as_user + ")";
  if (stage >= 5 && stage <= 7)
    what += " (" + as_user + ", uid " + std::to_string(o.user->uid) + ", gid " + std::to_string(o.user->gid) +
            (rep.err == EPERM ? ": switching users needs root with CAP_SETUID and CAP_SETGID (a container may drop "
                                "them): grant them, or remove `user`)"
                              : ")");
  return what;
}

/// Reads one Report; returns the bytes read (0 at end of file).
static std::size_t read_report(int fd, Report& rep) noexcept {
  std::size_t got = 0;
  while (got < sizeof rep) {
    const ssize_t n = ::read(fd, reinterpret_cast<char*>(&rep) + got, sizeof rep - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

/// The pipe and socket pair a start uses (see ChildPlan::report and ::go).
struct StartChannels {
  Fd report_read, report_write, go_parent, go_child;
  StartChannels() {
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
    report_read = above_stdio(Fd(report[0]));
    report_write = above_stdio(Fd(report[1]));
    int go[2];
    // A socket, not a pipe: writing to it after the child died must not raise SIGPIPE.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0)
      throw Error("stackup: cannot create a socket pair: " + sys_message(errno));
    go_parent = above_stdio(Fd(go[0]));
    go_child = above_stdio(Fd(go[1]));
  }
  void go() {
    const char byte = 'g';
    while (::send(go_parent.get(), &byte, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
    go_parent.reset();
  }
};

/// Starts `o.argv` in a new session (so it leads its own process group and has
/// no controlling terminal), with default signal dispositions and an empty
/// signal mask, and with no descriptor of ours but the three given; as
/// `o.user` when given (its groups, gid and uid set before exec).
///
/// `gate(pid)` runs in this process after the fork and before the child may
/// exec: if this process dies during `gate`, the child exits instead of running
/// unrecorded. Throws Error (after reaping the child) when the command cannot be
/// started; what `gate` throws is rethrown after killing the child.
template <class Gate> static pid_t spawn(const SpawnOptions& o, Gate&& gate) {
  ChildPlan plan;
  plan_child(o, plan);
  // Every descriptor here is moved above 2 (a host started with closed stdio
  // gets 0-2 from pipe()), so the child's dup2 onto 0-2 clobbers none of them.
  StartChannels ch;
  plan.report = ch.report_write.get();
  plan.go = ch.go_child.get();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("stackup: cannot fork to start '" + o.argv.front() + "': " + sys_message(errno));
  if (pid == 0) {
    default_signals();
    run_child(plan);
  }
  ch.report_write.reset();
  ch.go_child.reset();
  try {
    gate(pid);
  } catch (...) {
    ::kill(pid, SIGKILL); // still ours and not yet exec'd: safe
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  ch.go();
  Report rep;
  const std::size_t got = read_report(ch.report_read.get(), rep);
  if (got == 0) return pid; // the report pipe closed on exec: started
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  throw Error(start_error(o, plan, rep, got == sizeof rep));
}

/// A daemon started under the hold: its waiter and its main process.
struct Held {
  pid_t waiter = 0, main = 0;
};

/// Starts `o.argv` like spawn, but under the hold: a waiter process (its own
/// session, a child subreaper, not a child of this process) forks and keeps
/// the daemon's main process as its child, so every process the daemon starts
/// — double forks and setsid() included — stays the waiter's descendant. The
/// waiter holds `hold_dir` (the state directory) open to write `exit` there
/// when the main process ends (see run_waiter); `exit_prefix` begins that line.
///
/// `gate(Held)` runs before the main process may exec (see spawn); if it
/// throws, the main process exits without running and the waiter with it.
/// Error when the command cannot be started (its waiter is then gone too).
template <class Gate>
static Held spawn_held(const SpawnOptions& o, int hold_dir, const std::string& exit_prefix, Gate&& gate) {
  ChildPlan plan;
  plan_child(o, plan);
  StartChannels ch;
  plan.report = ch.report_write.get();
  plan.go = ch.go_child.get();
  const char* prefix = exit_prefix.c_str();
  // Above 2, like every descriptor here: the waiter's dup2 onto 0-2 must not replace it.
  const Fd hold(::fcntl(hold_dir, F_DUPFD_CLOEXEC, 3));
  if (!hold) throw Error("stackup: cannot duplicate a file descriptor: " + sys_message(errno));
  const pid_t first = ::fork();
  if (first < 0) throw Error("stackup: cannot fork to start '" + o.argv.front() + "': " + sys_message(errno));
  if (first == 0) {
    default_signals();
    const pid_t waiter = ::fork(); // the waiter is nobody's child here: this process exits at once
    if (waiter < 0) child_fail(plan.report, 8);
    if (waiter > 0) ::_exit(0);
    if (::setsid() < 0) child_fail(plan.report, 1);
    if (::dup2(plan.in, 0) < 0 || ::dup2(plan.out, 1) < 0 || ::dup2(plan.err, 2) < 0) child_fail(plan.report, 2);
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) != 0) child_fail(plan.report, 9);
    const pid_t main = ::fork();
    if (main < 0) child_fail(plan.report, 10);
    if (main == 0) run_child(plan);
    const Report started{0, 0, ::getpid(), main};
    [[maybe_unused]] const ssize_t n = ::write(plan.report, &started, sizeof started);
    run_waiter(main, hold.get(), prefix);
  }
  ch.report_write.reset();
  ch.go_child.reset();
  while (::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {
  }
  Report rep;
  std::size_t got = read_report(ch.report_read.get(), rep);
  if (got != sizeof rep || rep.stage != 0) throw Error(start_error(o, plan, rep, got == sizeof rep));
  const Held held{rep.waiter, rep.main};
  const auto waiter = read_proc_stat(held.waiter);
  auto await_waiter = [&] {
    if (waiter) (void)await_gone(held.waiter, waiter->start_time, std::chrono::seconds(10));
  };
  try {
    gate(held);
  } catch (...) {
    ch.go_parent.reset(); // the main process exits without running, then the waiter
    // It may have failed on its own before (its working directory, its user),
    // and be gone before the gate could read it: that failure is the one to report.
    got = read_report(ch.report_read.get(), rep);
    await_waiter();
    if (got != 0) throw Error(start_error(o, plan, rep, got == sizeof rep));
    throw;
  }
  ch.go();
  got = read_report(ch.report_read.get(), rep);
  if (got == 0) return held; // the report pipe closed on exec: started
  await_waiter();
  throw Error(start_error(o, plan, rep, got == sizeof rep));
}

// ---- programs and shell commands ------------------------------------------------------

/// How run_program runs a program.
struct ProgramOptions {
  milliseconds timeout = milliseconds::max();           ///< then SIGTERM to its group, SIGKILL 2s later
  std::filesystem::path working_dir{};                   ///< empty: inherit
  const std::map<std::string, std::string>* env = nullptr; ///< added to the inherited environment (see SpawnOptions)
  const RunAs* user = nullptr;                            ///< see SpawnOptions::user
  bool capture_stdout = false; ///< keep its standard output (else /dev/null)
  std::string_view input{};    ///< written to its standard input (else /dev/null); must outlive the call
};

/// The result of run_program (and run_shell).
struct ShellResult {
  ChildExit exit;      ///< how it ended (after a kill when timed out or stopped)
  bool timed_out = false;
  bool stopped = false; ///< killed because the operation was asked to stop (stackup::stop_requested())
  std::string stderr_tail; ///< the last few KiB of its standard error
  std::string out{};       ///< its standard output, when captured (at most 64 MiB: more is an error)
  [[nodiscard]] bool ok() const noexcept { return !timed_out && !stopped && exit.code == CLD_EXITED && exit.status == 0; }
};

/// Runs `argv` (argv[0] looked up in PATH) in its own session, its standard
/// error captured (the last few KiB), its standard output captured or
/// /dev/null, its standard input fed from `o.input` or /dev/null. Past
/// `o.timeout`, or once the operation is asked to stop, its whole process group
/// gets SIGTERM, then SIGKILL two seconds later. Returns when it exits, even if a
/// process it started in the background still holds its output. Error when it
/// cannot be started (naming argv[0]) or writes more than 64 MiB.
static ShellResult run_program(const std::vector<std::string>& argv, const ProgramOptions& o) {
  constexpr std::size_t keep = 8192, out_limit = std::size_t{64} << 20;
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw Error("stackup: cannot open /dev/null: " + sys_message(errno));
  null = above_stdio(std::move(null));
  const auto make_pipe = [](Fd& read_end, Fd& write_end) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw Error("stackup: cannot create a pipe: " + sys_message(errno));
    read_end = above_stdio(Fd(p[0]));
    write_end = above_stdio(Fd(p[1]));
  };
  Fd err_read, err_write, out_read, out_write, in_read, in_write;
  make_pipe(err_read, err_write);
  if (o.capture_stdout) make_pipe(out_read, out_write);
  if (!o.input.empty()) make_pipe(in_read, in_write);

  SpawnOptions so;
  so.argv = argv;
  so.env = o.env;
  so.working_dir = o.working_dir;
  so.stdin_fd = in_read ? in_read.get() : null.get();
  so.stdout_fd = out_write ? out_write.get() : null.get();
  so.stderr_fd = err_write.get();
  so.user = o.user;
  const pid_t pid = spawn(so, [](pid_t) {});
  err_write.reset();
  out_write.reset();
  in_read.reset();
  for (Fd* f : {&err_read, &out_read, &in_write})
    if (*f) ::fcntl(f->get(), F_SETFL, O_NONBLOCK);

  ShellResult result;
  std::size_t fed = 0;
  bool too_much = false;
  // Moves what can move without blocking: input in, output and error out.
  auto pump = [&] {
    char buf[16384];
    if (err_read) {
      for (;;) {
        const ssize_t n = ::read(err_read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) err_read.reset();
        if (n <= 0) break;
        result.stderr_tail.append(buf, static_cast<std::size_t>(n));
        if (result.stderr_tail.size() > 2 * keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
      }
    }
    if (out_read) {
      for (;;) {
        const ssize_t n = ::read(out_read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) out_read.reset();
        if (n <= 0) break;
        if (result.out.size() + static_cast<std::size_t>(n) > out_limit) {
          too_much = true;
          out_read.reset();
          break;
        }
        result.out.append(buf, static_cast<std::size_t>(n));
      }
    }
    while (in_write && fed < o.input.size()) {
      const ssize_t n = ::write(in_write.get(), o.input.data() + fed, o.input.size() - fed);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) { // EPIPE: it does not read its input
        in_write.reset();
        break;
      }
      fed += static_cast<std::size_t>(n);
    }
    if (in_write && fed == o.input.size()) in_write.reset(); // end of file
  };
  auto deadline = deadline_after(o.timeout);
  Backoff backoff;
  std::optional<ChildExit> ended;
  pump();
  while (!(ended = peek_exit(pid))) {
    if (Clock::now() >= deadline || too_much) break;
    if (stop_requested()) {
      result.stopped = true;
      break;
    }
    const auto wait = std::chrono::duration_cast<milliseconds>(backoff.next(deadline));
    pollfd pfd[3];
    nfds_t n = 0;
    if (err_read) pfd[n++] = {err_read.get(), POLLIN, 0};
    if (out_read) pfd[n++] = {out_read.get(), POLLIN, 0};
    if (in_write) pfd[n++] = {in_write.get(), POLLOUT, 0};
    if (n > 0) {
      ::poll(pfd, n, static_cast<int>(std::max<milliseconds::rep>(wait.count(), 1)));
      pump();
      // Its output closed: it is exiting. Look again within a millisecond, not
      // after the pause the poll grew to (up to 10 ms per command).
      if (!err_read && !out_read) backoff = Backoff{};
    } else {
      std::this_thread::sleep_for(wait);
    }
  }
  if (!ended) {
    result.timed_out = !result.stopped && !too_much;
    ::kill(-pid, SIGTERM);
    deadline = deadline_after(std::chrono::seconds(2));
    Backoff grace;
    while (!(ended = peek_exit(pid)) && Clock::now() < deadline) grace.sleep(deadline);
    // Not reaped yet, so its group number cannot have been reused.
    ::kill(-pid, SIGKILL);
  }
  siginfo_t si{};
  int r = 0;
  while ((r = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED)) != 0 && errno == EINTR) {
  }
  result.exit = r == 0 ? ChildExit{si.si_code, si.si_status} : ended.value_or(ChildExit{unknown_exit, 0});
  in_write.reset();
  pump(); // what is left in the pipes (a background process may hold them: no waiting)
  if (result.stderr_tail.size() > keep) result.stderr_tail.erase(0, result.stderr_tail.size() - keep);
  if (too_much)
    throw Error("stackup: `" + argv.front() + "` wrote more than 64 MiB to its standard output; stopped");
  return result;
}

/// Runs `command` with /bin/sh -c (see run_program: stdout /dev/null, stderr
/// captured), as `user` when given (see run_as).
static ShellResult run_shell(const std::string& command, milliseconds timeout,
                             const std::filesystem::path& working_dir, const std::map<std::string, std::string>& env,
                             const RunAs* user = nullptr) {
  return run_program({"/bin/sh", "-c", command},
                     {.timeout = timeout, .working_dir = working_dir, .env = &env, .user = user});
}

}; // struct PosixSpawn

} // namespace stackup::detail
