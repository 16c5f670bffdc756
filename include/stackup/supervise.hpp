// stackup — keeping a stack running (DESIGN §10): stackup::supervise watches
// every component with a restart policy or a liveness probe and restarts what
// stops running on its own, by its policy. Not part of the umbrella header.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/options.hpp>
#include <stackup/restart.hpp>
#include <stackup/stack_lock.hpp>
#include <stackup/stack_view.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/detail/supervision_record.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stackup {

/// What supervise() does when a component exits.
enum class OnExit : unsigned char {
  policy, ///< what the component's restart policy says (the default)
  abort,  ///< return at once with that exit (stackctl's `--abort-on-exit`)
};

/// Options of supervise(). Members in this order, for designated initialisers.
struct SuperviseOptions {
  /// Run until a stop is requested on this token (`.stop = &token`; it must
  /// outlive the call). Null: until every supervised component is failed or down.
  /// A stop requested during a restart is seen once the restart is over.
  StopTokenRef stop = nullptr;
  /// Per role, a policy that replaces the component's own (`supervision().restart`).
  std::map<std::string, RestartPolicy, std::less<>> policies{};
  /// How often a component that cannot tell of its exit (no `exit_fd()`) is
  /// asked `is_running()`, and a down or failed one whether it was brought up again.
  std::chrono::milliseconds poll = std::chrono::seconds(2);
  /// Called for every exit, restart, give-up and liveness failure, from the
  /// calling thread. The actions of a restart go to the stack's own observer.
  std::function<void(const SupervisionEvent&)> on_event{};
  /// A descriptor whose readability wakes the loop to see `stop` at once (e.g.
  /// an eventfd written by a signal handler); -1: a stop is seen within 100 ms.
  int wake_fd = -1;
  OnExit on_exit = OnExit::policy;
  /// Where the loop records what it sees (one file, `supervision`) and reads
  /// the marks of `down`s from other processes (`down/<role>`, `down/.stack`),
  /// so that a down always wins. Empty: nothing is recorded or read.
  std::filesystem::path state_dir{};
  /// The stack file that commands on the stack lock (cli::Options::lock_file):
  /// each restart, and each stop after a liveness failure, is done holding it
  /// exclusively, so that a `down` from another process (which marks what it
  /// stops while holding it) comes wholly before or wholly after — never in the
  /// middle, where it would find nothing to stop and leave the restart running.
  /// Opened once, when the loop starts. Empty: no lock.
  std::filesystem::path lock_file{};
};

/// How supervise() returned.
struct SuperviseResult {
  /// Returned because a stop was requested (or nothing is left to supervise).
  bool stopped = true;
  /// With OnExit::abort: the role that exited, and how.
  std::string role{};
  std::optional<Exit> exit{};
};

namespace detail::supervision {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The two operations of the stack the loop acts through, without its type.
struct StackOps {
  void* stack;
  void (*up)(void*, std::string_view, const UpOptions&);
  void (*down)(void*, std::string_view, const DownOptions&);
};

/// Where the loop stands with one role.
enum class Watch : unsigned char {
  watching,    ///< running: its exit descriptor is polled, or it is asked every `poll`
  backing_off, ///< exited: restarted at `restart_at` (once its dependencies run)
  failed,      ///< too many restarts within `within`: left alone until it runs again
  down,        ///< not running and not the loop's to restart (a down, policy `no`): until it runs again
  held,        ///< suspended by the loop while a dependency restarts: resumed after it
};

/// One watched role.
struct Watched {
  std::string_view role, component;
  std::string_view held_by{}; // Watch::held: the dependency whose restart it waits for
  RestartPolicy policy{};
  Liveness liveness{};
  OnDependencyRestart on_dependency_restart = OnDependencyRestart::ignore;
  Watch watch = Watch::down;
  posix::Fd fd{};        // readable when it stops running (its exit_fd); empty: polled
  bool can_tell = false; // it has exit_status(): not running with none to report means a down
  bool own_exit = false; // `last` is the loop's own finding (liveness, a failed restart), not the component's
  unsigned attempt = 0;  // back-off exponent
  unsigned restarts = 0; // since it last came up by someone else's hand
  std::vector<SteadyClock::time_point> stamps{}; // restarts within the policy's `within`
  SteadyClock::time_point running_since{}, check_at{}, restart_at{}, probe_at{};
  unsigned liveness_failures = 0;
  std::optional<Exit> last{};
};

/// The loop of stackup::supervise: single-threaded, no signal handler, no child
/// of its own but the exec liveness probes (each reaped by run_shell).
class Loop {
public:
  Loop(StackView view, StackOps ops, SuperviseOptions& options) : v_(view), ops_(ops), o_(options) {
    o_.poll = std::max(o_.poll, milliseconds(1)); // a period of zero would spin
  }

  SuperviseResult run() {
    for (const auto& [role, policy] : o_.policies) {
      if (v_.contains(role)) continue;
      try {
        (void)v_.component_name(role); // its message names the roles the stack holds
      } catch (const UnknownComponentError& e) {
        throw UnknownComponentError(std::string("stackup::supervise: SuperviseOptions::policies: ") + e.what());
      }
    }
    if (!o_.state_dir.empty()) state_ = open_state_dir(o_.state_dir, true);
    if (!o_.lock_file.empty()) lock_.emplace(o_.lock_file, LockMode::exclusive);
    const auto now = SteadyClock::now();
    for (const std::string_view role : v_.roles()) {
      const SupervisionConfig c = v_.supervision(role);
      Watched w;
      w.role = role;
      w.component = v_.component_name(role);
      const auto own = o_.policies.find(role);
      w.policy = own != o_.policies.end() ? own->second : c.restart;
      w.liveness = c.liveness;
      w.on_dependency_restart = c.on_dependency_restart;
      w.can_tell = v_.reports_exits(role);
      if (o_.on_exit != OnExit::abort && w.policy.policy == Restart::no && w.liveness.kind == Liveness::Kind::none)
        continue;
      w.check_at = now;
      roles_.push_back(std::move(w));
    }
    // What runs now is watched; what ended on its own goes to its policy; the
    // rest is left as a down left it, until it runs again.
    for (Watched& w : roles_) {
      std::optional<Exit> e;
      if (running(w)) come_up(w);
      else if (!marked(w) && (e = v_.exit_status(w.role))) exited(w, std::move(*e), false);
      else if (!marked(w) && ending(w)) continue;
      // Its waiter ended between the two looks: its end is on record now.
      else if (!marked(w) && (e = v_.exit_status(w.role))) exited(w, std::move(*e), false);
      else went_down(w);
      if (done_) return finish();
    }
    dirty_ = true;
    while (!done_) {
      if (o_.stop.stop_requested()) return finish();
      if (!o_.stop && !anything_to_do()) return finish();
      write_if_dirty();
      wait();
      if (o_.stop.stop_requested()) return finish();
      due();
    }
    return finish();
  }

private:
  // ---- queries -------------------------------------------------------------------------

  bool running(const Watched& w) {
    try {
      return v_.state(w.role) == State::running;
    } catch (const std::exception&) {
      return false; // a query that fails cannot vouch for it
    }
  }
  bool marked(const Watched& w) const { return state_ && marked_down(state_.get(), w.role); }
  [[nodiscard]] bool anything_to_do() const {
    for (const Watched& w : roles_)
      if (w.watch == Watch::watching || w.watch == Watch::backing_off || w.watch == Watch::held) return true;
    return false;
  }
  Watched* find(std::string_view role) {
    for (Watched& w : roles_)
      if (w.role == role) return &w;
    return nullptr;
  }

  // ---- events and the record -----------------------------------------------------------

  void emit(const Watched& w, SupervisionEvent::Kind kind, std::optional<Exit> exit = {}, milliseconds delay = {},
            unsigned restarts = 0, std::string message = {}) {
    dirty_ = true;
    if (!o_.on_event) return;
    o_.on_event(SupervisionEvent{v_.name(), w.role, w.component, kind, std::move(exit), delay, restarts,
                                 std::move(message)});
  }
  static SupervisionState shown(Watch w, bool live) {
    if (!live) return SupervisionState::none;
    switch (w) {
    case Watch::watching: return SupervisionState::watching;
    case Watch::backing_off:
    case Watch::held: return SupervisionState::backing_off;
    case Watch::failed: return SupervisionState::failed;
    case Watch::down: return SupervisionState::none;
    }
    return SupervisionState::none;
  }
  void write(bool live) {
    if (!state_) return;
    std::vector<Row> rows;
    rows.reserve(roles_.size());
    for (const Watched& w : roles_)
      rows.push_back(Row{std::string(w.role), shown(w.watch, live), live ? w.restarts : 0U, w.last});
    write_record(state_.get(), rows, o_.state_dir);
    dirty_ = false;
  }
  void write_if_dirty() {
    if (!dirty_) return;
    try {
      write(true);
    } catch (const Error&) {
      // The record is advisory (a full disk, say): supervision goes on, the write is tried again.
    }
  }
  // Returning: the record says no supervisor watches any more (exits stay);
  // every descriptor opened here is closed by its owner.
  SuperviseResult finish() {
    try {
      write(false);
    } catch (const Error&) {
      // The record is advisory; a full disk must not hide why the loop returned.
    }
    for (Watched& w : roles_) w.fd.reset();
    state_.reset();
    return done_ ? *done_ : SuperviseResult{};
  }

  // ---- the wait ------------------------------------------------------------------------

  [[nodiscard]] std::optional<SteadyClock::time_point> deadline(const Watched& w) const {
    switch (w.watch) {
    case Watch::watching: {
      std::optional<SteadyClock::time_point> d;
      if (!w.fd) d = w.check_at;
      if (w.liveness.kind != Liveness::Kind::none && (!d || w.probe_at < *d)) d = w.probe_at;
      return d;
    }
    case Watch::backing_off: return w.restart_at;
    case Watch::failed:
    case Watch::down: return w.check_at;
    case Watch::held: return std::nullopt;
    }
    return std::nullopt;
  }

  void wait() {
    std::vector<pollfd> fds;
    std::vector<Watched*> owners;
    for (Watched& w : roles_) {
      if (w.watch != Watch::watching || !w.fd) continue;
      fds.push_back(pollfd{w.fd.get(), POLLIN, 0});
      owners.push_back(&w);
    }
    const bool wake = o_.wake_fd >= 0 && !wake_ignored_;
    if (wake) fds.push_back(pollfd{o_.wake_fd, POLLIN, 0});
    std::optional<SteadyClock::time_point> next;
    for (const Watched& w : roles_) {
      const auto d = deadline(w);
      if (d && (!next || *d < *next)) next = d;
    }
    int timeout = -1;
    if (next) {
      const auto left = std::chrono::ceil<milliseconds>(*next - SteadyClock::now()).count();
      timeout = static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
    }
    // A stop with nothing to wake the loop for it is seen within 100 ms.
    if (o_.stop && !wake && (timeout < 0 || timeout > 100)) timeout = 100;
    const int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout);
    if (n <= 0) return; // timed out, or EINTR: the deadlines are looked at next
    if (wake && fds.back().revents != 0 && !o_.stop.stop_requested()) {
      // Readable with no stop requested: not ours to read, so not polled again
      // (the 100 ms look at the stop token takes over).
      wake_ignored_ = true;
    }
    for (std::size_t i = 0; i < owners.size() && !done_; ++i) {
      if (fds[i].revents == 0) continue;
      Watched& w = *owners[i];
      if (w.watch != Watch::watching || !w.fd) continue; // handled meanwhile (a cascade)
      w.fd.reset();
      stopped_running(w);
    }
  }

  // What is due: polls, liveness probes, restarts, and roles that may run again.
  void due() {
    for (std::size_t i = 0; i < roles_.size() && !done_; ++i) {
      if (o_.stop.stop_requested()) return;
      Watched& w = roles_[i];
      const auto now = SteadyClock::now();
      switch (w.watch) {
      case Watch::watching:
        if (!w.fd && now >= w.check_at) {
          w.check_at = now + o_.poll;
          if (!running(w)) {
            stopped_running(w);
            break;
          }
        }
        if (w.liveness.kind != Liveness::Kind::none && now >= w.probe_at) probe(w);
        break;
      case Watch::backing_off:
        if (now >= w.restart_at) restart(w);
        break;
      case Watch::failed:
      case Watch::down:
        if (now >= w.check_at) {
          w.check_at = now + o_.poll;
          // Running again, by someone's up (and no down mark says otherwise): watched afresh.
          if (!marked(w) && running(w)) {
            w.attempt = 0;
            w.restarts = 0;
            w.stamps.clear();
            w.last.reset();
            come_up(w);
          }
        }
        break;
      case Watch::held: break;
      }
    }
  }

  // ---- transitions ---------------------------------------------------------------------

  // It runs (started, restarted, or found running): watch it. Its exit
  // descriptor first, THEN whether it runs: an end between the two is seen.
  void come_up(Watched& w) {
    const auto now = SteadyClock::now();
    w.watch = Watch::watching;
    w.running_since = now;
    w.check_at = now + o_.poll;
    w.probe_at = now + w.liveness.period;
    w.liveness_failures = 0;
    dirty_ = true;
    w.fd = posix::Fd(v_.exit_fd(w.role));
    // Ended already: with a descriptor, its end is on record once it turns
    // readable (its waiter writes it first); without one, handled now.
    if (!running(w) && !w.fd) stopped_running(w);
  }

  // Not running, no end on record, yet its exit descriptor opens: it is ending
  // (killed a moment ago, its waiter still at work). Watched: its end comes.
  bool ending(Watched& w) {
    const int fd = v_.exit_fd(w.role);
    if (fd < 0) return false;
    w.fd = posix::Fd(fd);
    w.can_tell = true;
    w.watch = Watch::watching;
    w.running_since = w.check_at = SteadyClock::now();
    w.probe_at = SteadyClock::time_point::max();
    dirty_ = true;
    return true;
  }

  // Its exit descriptor turned readable, or a poll found it not running.
  void stopped_running(Watched& w) {
    if (running(w)) { // readable while it runs (its waiter was killed): watch it again
      come_up(w);
      return;
    }
    if (marked(w)) return went_down(w);
    std::optional<Exit> e = v_.exit_status(w.role);
    if (!e) {
      // A component that tells of its exits and has none to tell was brought down.
      if (w.can_tell) return went_down(w);
      e = Exit{.error = "it stopped running (it cannot tell how)", .at = std::chrono::system_clock::now()};
    }
    exited(w, std::move(*e), false);
  }

  void went_down(Watched& w) {
    w.fd.reset();
    w.watch = Watch::down;
    w.check_at = SteadyClock::now() + o_.poll;
    dirty_ = true;
    release(w);
  }

  // It will not be restarted: what waits for it (held) is left as it is, suspended.
  void release(const Watched& w) {
    for (Watched& x : roles_)
      if (x.watch == Watch::held && x.held_by == w.role) {
        x.watch = Watch::down;
        x.check_at = SteadyClock::now() + o_.poll;
      }
  }

  // It ended (how: `e`): the event, then its policy.
  void exited(Watched& w, Exit e, bool own) {
    w.fd.reset();
    w.last = e;
    w.own_exit = own;
    emit(w, SupervisionEvent::Kind::exited, e, {}, w.restarts);
    if (o_.on_exit == OnExit::abort) {
      done_ = SuperviseResult{false, std::string(w.role), std::move(e)};
      return;
    }
    const Restart p = w.policy.policy;
    if (p == Restart::no || (p == Restart::on_failure && !e.failed())) return went_down(w);
    const auto now = SteadyClock::now();
    if (now - w.running_since >= w.policy.reset_after) w.attempt = 0; // a stable run: back-off from the start
    std::erase_if(w.stamps, [&](SteadyClock::time_point t) { return now - t >= w.policy.within; });
    const unsigned max = max_restarts(w.policy);
    if (max != 0 && w.stamps.size() >= max) {
      w.watch = Watch::failed;
      w.check_at = now + o_.poll;
      release(w);
      emit(w, SupervisionEvent::Kind::failed, e, {}, static_cast<unsigned>(w.stamps.size()),
           std::to_string(w.stamps.size()) + " restarts in " + posix::format_duration(w.policy.within));
      return;
    }
    milliseconds delay = std::max(w.policy.backoff, milliseconds::zero());
    for (unsigned i = 0; i < w.attempt && i < 64 && delay < w.policy.max_backoff; ++i) delay *= 2;
    delay = std::min(delay, std::max(w.policy.max_backoff, milliseconds::zero()));
    ++w.attempt;
    w.stamps.push_back(now);
    w.watch = Watch::backing_off;
    w.restart_at = now + delay;
    emit(w, SupervisionEvent::Kind::restarting, e, delay, w.restarts + 1);
  }

  // The stack's lock for one restart or stop (SuperviseOptions::lock_file):
  // released when it goes. Holds nothing when a stop came while waiting for it.
  class Locked {
  public:
    explicit Locked(Loop& l) : lock_(l.lock_ ? &*l.lock_ : nullptr) {
      if (lock_ == nullptr) return;
      try {
        lock_->lock(l.o_.stop);
      } catch (const InterruptedError&) {
        lock_ = nullptr;
        stopped_ = true;
      }
    }
    ~Locked() {
      if (lock_ != nullptr) lock_->unlock();
    }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;
    [[nodiscard]] bool stopped() const noexcept { return stopped_; }

  private:
    StackLock* lock_;
    bool stopped_ = false;
  };

  // Its back-off is over: start it again, if a down has not won meanwhile and
  // its dependencies run — all looked at and done under the stack's lock. A
  // restart is one step: a stop requested meanwhile is seen once it is over
  // (within the components' own timeouts), so that a supervisor told to stop
  // never leaves half a restart behind — a component it had stopped, its exit
  // no longer on record, that no later supervisor would bring back.
  void restart(Watched& w) {
    const Locked locked(*this);
    if (!locked.stopped()) restart_locked(w);
  }
  void restart_locked(Watched& w) {
    const auto now = SteadyClock::now();
    if (marked(w)) return went_down(w);
    if (running(w)) { // someone brought it up meanwhile
      come_up(w);
      return;
    }
    // Its end was its own; a down since then leaves no exit behind.
    if (!w.own_exit && w.can_tell && !v_.exit_status(w.role)) return went_down(w);
    for (const std::string_view d : v_.dependencies(w.role)) {
      bool runs = false;
      try {
        runs = v_.state(d) == State::running;
      } catch (const std::exception&) {
      }
      if (!runs) {
        w.restart_at = now + o_.poll; // waits for its dependencies; looked at again every `poll`
        return;
      }
    }
    // Dependents that restart with it: suspended first (dependents before
    // what they depend on), resumed after it (in up order).
    std::vector<Watched*> held;
    for (const std::string_view d : cascade(w.role)) {
      Watched* x = find(d);
      if (x != nullptr && (x->watch == Watch::watching || (x->watch == Watch::held && x->held_by == w.role)))
        held.push_back(x);
    }
    for (auto it = held.rbegin(); it != held.rend(); ++it) {
      Watched& x = **it;
      if (x.watch == Watch::held) continue; // since an earlier try
      x.fd.reset();
      x.watch = Watch::held;
      x.held_by = w.role;
      dirty_ = true;
      try {
        ops_.down(ops_.stack, x.role, DownOptions{.dependents = Dependents::keep});
      } catch (const TransitionError&) {
        // Still running, perhaps: resumed (a no-op then) with the others.
      }
    }
    ++w.restarts;
    dirty_ = true;
    try {
      ops_.up(ops_.stack, w.role, UpOptions{});
    } catch (const TransitionError& e) {
      // A restart that fails is an exit of its own, through the same policy (and back-off).
      exited(w, Exit{.error = e.what(), .at = std::chrono::system_clock::now()}, true);
      return;
    }
    come_up(w);
    for (Watched* x : held) {
      if (done_) return;
      if (x->watch != Watch::held || x->held_by != w.role) continue;
      try {
        ops_.up(ops_.stack, x->role, UpOptions{});
      } catch (const TransitionError& e) {
        exited(*x, Exit{.error = e.what(), .at = std::chrono::system_clock::now()}, true);
        continue;
      }
      come_up(*x);
    }
  }

  // The watched dependents of `role` that restart with it (on_dependency_restart
  // = restart), transitively, in up order.
  std::vector<std::string_view> cascade(std::string_view role) {
    std::vector<std::string_view> with{role};
    for (std::size_t i = 0; i < with.size(); ++i)
      for (const std::string_view d : v_.dependents(with[i])) {
        const Watched* x = find(d);
        const bool restarts = x != nullptr ? x->on_dependency_restart == OnDependencyRestart::restart
                                           : v_.supervision(d).on_dependency_restart == OnDependencyRestart::restart;
        if (restarts && std::find(with.begin(), with.end(), d) == with.end()) with.push_back(d);
      }
    std::vector<std::string_view> out;
    for (const std::string_view r : v_.order())
      if (r != role && std::find(with.begin(), with.end(), r) != with.end()) out.push_back(r);
    return out;
  }

  // ---- liveness ------------------------------------------------------------------------

  // What a failed probe saw; empty when it passed.
  [[nodiscard]] std::string check(const Liveness& l) const {
    const std::string within = " within " + posix::format_duration(l.timeout);
    const std::string at = "127.0.0.1:" + std::to_string(l.port);
    switch (l.kind) {
    case Liveness::Kind::none: return {};
    case Liveness::Kind::tcp: return posix::tcp_probe(l.port, l.timeout) ? std::string() : "tcp " + at + ": no connection" + within;
    case Liveness::Kind::http:
      return posix::http_probe(l.port, l.path, l.timeout) ? std::string()
                                                           : "http " + at + l.path + ": no 2xx answer" + within;
    case Liveness::Kind::exec: {
      static const std::map<std::string, std::string> no_env;
      const auto r = posix::run_shell(l.exec, l.timeout, {}, no_env);
      if (r.timed_out) return "exec '" + l.exec + "': no answer" + within;
      if (r.exit.code == CLD_EXITED && r.exit.status == 0) return {};
      if (r.exit.code == CLD_EXITED) return "exec '" + l.exec + "': exit status " + std::to_string(r.exit.status);
      if (r.exit.code == CLD_KILLED || r.exit.code == CLD_DUMPED)
        return "exec '" + l.exec + "': killed by signal " + std::to_string(r.exit.status);
      return "exec '" + l.exec + "': ended, how is not known";
    }
    }
    return {};
  }

  void probe(Watched& w) {
    std::string seen;
    try {
      seen = check(w.liveness);
    } catch (const Error& e) {
      seen = e.what();
    }
    w.probe_at = SteadyClock::now() + w.liveness.period;
    if (seen.empty()) {
      w.liveness_failures = 0;
      return;
    }
    ++w.liveness_failures;
    emit(w, SupervisionEvent::Kind::unhealthy, {}, {}, w.liveness_failures, seen);
    if (w.liveness_failures < std::max(w.liveness.failures, 1U) || done_) return;
    // Unhealthy for good: it is stopped (every process it started), then its
    // policy decides — unless a down from another process came first.
    const Locked locked(*this);
    if (locked.stopped()) return;
    if (marked(w)) return went_down(w);
    w.fd.reset();
    w.liveness_failures = 0;
    try {
      ops_.down(ops_.stack, w.role, DownOptions{.dependents = Dependents::keep});
    } catch (const TransitionError&) {
      // Left running: its restart (a resume of a running component) changes nothing then.
    }
    exited(w, Exit{.liveness = seen, .at = std::chrono::system_clock::now()}, true);
  }

  StackView v_;
  StackOps ops_;
  SuperviseOptions& o_;
  std::vector<Watched> roles_;
  posix::Fd state_;
  std::optional<StackLock> lock_;
  bool dirty_ = false;
  bool wake_ignored_ = false;
  std::optional<SuperviseResult> done_;
};

} // namespace detail::supervision

/// Keeps `stack` (a Stack<Cs...> or a DynamicStack) running by DESIGN §10
/// until `options.stop` is requested (without a stop token: until every
/// supervised component is failed or down); never brings anything down itself
/// when it returns. Single-threaded: it creates no thread and installs no signal
/// handler; it acts only through `stack.view()`, `up(role)` and `down(role,
/// {.dependents = Dependents::keep})`. Every descriptor it opens is closed when
/// it returns. UnknownComponentError for a role in `options.policies` that the
/// stack lacks; Error for a `state_dir` that is not a private directory.
///
/// Watched: every component whose policy is not `Restart::no` or that has a
/// liveness probe (with OnExit::abort: every component). One not running when
/// supervise() starts is left alone until it runs again (as after a down).
template <class S> SuperviseResult supervise(S& stack, SuperviseOptions options = {}) {
  const detail::supervision::StackOps ops{
      &stack,
      [](void* s, std::string_view role, const UpOptions& o) { static_cast<S*>(s)->up(role, o); },
      [](void* s, std::string_view role, const DownOptions& o) { static_cast<S*>(s)->down(role, o); },
  };
  return detail::supervision::Loop(stack.view(), ops, options).run();
}

} // namespace stackup
