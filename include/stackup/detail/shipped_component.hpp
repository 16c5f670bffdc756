// stackup — what the shipped components (LocalDaemon, LocalDirectory, Command)
// have in common, written once: the configuration with its display name, the
// role, how messages name the component, how an owned path is kept, and the
// stack-file keys they share. Not part of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/detail/posix.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/restart.hpp>

#include <chrono>
#include <concepts>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace stackup::detail {

/// The base of a shipped component `Derived` (which declares `flavor`): the
/// contract's defaults (StackComponent), the role (a template argument, or
/// given at run time), and its configuration `Config`, whose `name` is the
/// display name.
template <class Derived, FixedString Role, class Config>
class ShippedComponent : public StackComponent<Derived>, public RoleOf<Role> {
public:
  /// The configured name, or the role when none was given.
  [[nodiscard]] std::string_view name() const noexcept {
    return config_.name.empty() ? this->role_name() : std::string_view(config_.name);
  }
  /// The configuration (paths as the constructor made them: see each component).
  [[nodiscard]] const Config& config() const noexcept { return config_; }

protected:
  explicit ShippedComponent(Config config) : config_(std::move(config)) {}

  // How messages name the component: "local_daemon 'redis' (cache)".
  [[nodiscard]] std::string who() const {
    return std::string(Derived::flavor) + " '" + std::string(name()) + "' (" + std::string(this->role_name()) + ")";
  }

  Config config_;
};

/// A directory's path lexically normal and without a trailing '/'
/// ("a/./b/" -> "a/b"; "/" stays "/"), so that two spellings of one directory
/// compare equal.
inline std::filesystem::path normal_directory(const std::filesystem::path& p) {
  std::filesystem::path out = p.lexically_normal();
  if (out.has_relative_path() && !out.has_filename()) out = out.parent_path();
  return out;
}

/// A directory a component owns, as owned_paths() gives it (see
/// docs/components.md): absolute, and normal_directory.
inline std::filesystem::path owned_directory(const std::filesystem::path& p) {
  return normal_directory(std::filesystem::absolute(p));
}

/// `user` of a stack file's table (the components that run as a user),
/// checked now by the components' own rule (run_as): a user that does not
/// exist, or another user without root, is an error at the key before
/// anything starts. `Table`: StackFileTable's interface.
template <class Table> std::string user_from_table(const Table& t) {
  auto user = t.optional_string("user").value_or("");
  try {
    (void)posix::run_as(user, "component '" + std::string(t.role()) + "'");
  } catch (const Error& e) {
    t.fail("user", unprefixed(e.what()));
  }
  return user;
}

/// A table with the accessors supervision_from_table needs besides the
/// older ones (StackFileTable has them; a table type written against the
/// interface before them reads no supervision keys).
template <class Table> concept supervision_table = requires(const Table& t, std::string_view k) {
  { t.kind(k) } -> std::convertible_to<std::string_view>;
  { t.optional_integer(k) } -> std::convertible_to<std::optional<long long>>;
};

/// "an integer", "a table": a kind() for messages.
inline std::string with_article(std::string_view kind) {
  const bool vowel = !kind.empty() && std::string_view("aeiou").find(kind.front()) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(kind);
}

/// `restart`, `liveness` and `on_dependency_restart` of a stack file's
/// component table (DESIGN §10), checked strictly: every error is at its key
/// and names what is valid. `cannot_restart`: when not empty, why the
/// component cannot be restarted and the fix; a policy other than "no" is then
/// an error at `restart`. `Table`: StackFileTable's interface.
template <class Table>
SupervisionConfig supervision_from_table(const Table& t, std::string_view cannot_restart = {}) {
  SupervisionConfig out;
  if constexpr (supervision_table<Table>) {
    using std::chrono::milliseconds;
    const std::string of = "component '" + std::string(t.role()) + "'";
    const auto quoted = [](const std::string& v) { return "\"" + v + "\""; };
    // A duration above zero, or `fallback`.
    const auto positive = [&](const auto& table, std::string_view key, const std::string& where, milliseconds fallback) {
      const auto d = table.duration(key);
      if (!d) return fallback;
      if (d->count() <= 0)
        table.fail(key, "'" + std::string(key) + "' of " + where + " must be a duration above zero, such as \"100ms\"");
      return *d;
    };
    // A whole number from `least` up (and not absurdly large), or empty.
    const auto count = [&](const auto& table, std::string_view key, const std::string& where, long long least,
                           std::string_view meaning) -> std::optional<unsigned> {
      const auto n = table.optional_integer(key);
      if (!n) return std::nullopt;
      if (*n < least || *n > 1'000'000'000)
        table.fail(key, "'" + std::string(key) + "' of " + where + " is " + std::to_string(*n) + ": give " +
                            std::string(meaning));
      return static_cast<unsigned>(*n);
    };

    // restart = "on-failure", or the whole policy as a table.
    const std::string restart_of = "'restart' of " + of;
    const auto policy = [&](const auto& table, std::string_view key, const std::string& where, const std::string& v) {
      if (v == "no") return Restart::no;
      if (v == "on-failure") return Restart::on_failure;
      if (v == "always") return Restart::always;
      table.fail(key, where + " must be \"no\", \"on-failure\" or \"always\", not " + quoted(v));
    };
    const std::string_view kind = t.kind("restart");
    if (kind == "string") {
      out.restart.policy = policy(t, "restart", restart_of, *t.optional_string("restart"));
    } else if (kind == "table") {
      const auto r = *t.table("restart");
      const auto word = r.optional_string("policy");
      if (!word)
        r.fail(restart_of + " lacks the required key 'policy' (\"no\", \"on-failure\" or \"always\"), e.g. "
                            "restart = { policy = \"on-failure\", backoff = \"1s\" }");
      RestartPolicy& p = out.restart;
      p.policy = policy(r, "policy", "'policy' of " + restart_of, *word);
      p.backoff = positive(r, "backoff", restart_of, p.backoff);
      const bool own_max = r.duration("max_backoff").has_value();
      p.max_backoff = positive(r, "max_backoff", restart_of, p.max_backoff);
      if (p.max_backoff < p.backoff) {
        const std::string least = posix::format_duration(p.backoff);
        if (own_max)
          r.fail("max_backoff", "'max_backoff' of " + restart_of + " (" + posix::format_duration(p.max_backoff) +
                                    ") is below its 'backoff' (" + least + "): the delay grows from 'backoff' up to "
                                    "'max_backoff'; make max_backoff at least " + least);
        r.fail("backoff", "'backoff' of " + restart_of + " (" + least + ") is above the default 'max_backoff' (" +
                              posix::format_duration(p.max_backoff) + "): set max_backoff too, at least " + least);
      }
      p.reset_after = positive(r, "reset_after", restart_of, p.reset_after);
      p.max = count(r, "max", restart_of, 0, "a number of restarts from 0 (0: no limit)");
      p.within = positive(r, "within", restart_of, p.within);
    } else if (!kind.empty()) {
      t.fail("restart", restart_of + " must be \"no\", \"on-failure\" or \"always\", or a table such as { policy = "
                                     "\"on-failure\", backoff = \"100ms\", max = 5 }, not " + with_article(kind));
    }
    if (out.restart.policy != Restart::no && !cannot_restart.empty())
      t.fail("restart", restart_of + " is " + quoted(std::string(to_string(out.restart.policy))) + ", but " +
                            std::string(cannot_restart));

    // liveness = { tcp = PORT } | { http = PORT, path = "/health" } | { exec = "command" }, with period, timeout, failures.
    if (const auto l = t.table("liveness")) {
      const std::string live_of = "'liveness' of " + of;
      Liveness& p = out.liveness;
      const auto tcp = l->port("tcp");
      const auto http = l->port("http");
      const auto path = l->optional_string("path");
      const auto exec = l->optional_string("exec");
      const char* first = tcp ? "tcp" : http ? "http" : exec ? "exec" : nullptr;
      const char* second = tcp && http ? "http" : (tcp || http) && exec ? "exec" : nullptr;
      if (!first)
        l->fail(live_of + " needs one probe: write liveness = { tcp = PORT }, { http = PORT, path = \"/health\" } or "
                          "{ exec = \"shell command\" }");
      if (second)
        l->fail(second, live_of + " has both " + first + " and " + second + ": choose one probe");
      if (path && !http)
        l->fail("path", "'path' goes with http, not " + std::string(first) +
                            ": write liveness = { http = PORT, path = \"/health\" }");
      if (tcp) {
        p.kind = Liveness::Kind::tcp;
        p.port = *tcp;
      } else if (http) {
        p.kind = Liveness::Kind::http;
        p.port = *http;
        p.path = path.value_or("/");
        if (p.path.empty() || p.path.front() != '/' ||
            p.path.find_first_of(std::string_view(" \r\n\t\0", 5)) != std::string::npos)
          l->fail("path", "'path' of " + live_of + " is " + quoted(p.path) +
                              ": it must start with '/' and hold no spaces or line breaks");
      } else {
        p.kind = Liveness::Kind::exec;
        p.exec = *exec;
        if (p.exec.empty()) l->fail("exec", "'exec' of " + live_of + " is empty: give a shell command that exits 0 while it is alive");
      }
      p.period = positive(*l, "period", live_of, p.period);
      p.timeout = positive(*l, "timeout", live_of, p.timeout);
      p.failures = count(*l, "failures", live_of, 1, "a number of failures in a row from 1").value_or(p.failures);
    }

    if (const auto r = t.optional_string("on_dependency_restart")) {
      if (*r == "restart") out.on_dependency_restart = OnDependencyRestart::restart;
      else if (*r != "ignore")
        t.fail("on_dependency_restart",
               "'on_dependency_restart' of " + of + " must be \"ignore\" or \"restart\", not " + quoted(*r));
    }
  }
  return out;
}

/// For a flavour that cannot honour supervision (local_directory): any of
/// `restart`, `liveness`, `on_dependency_restart` is an error at its key
/// saying why and to remove it. A table type without refuse() checks nothing.
template <class Table> void refuse_supervision(const Table& t, std::string_view flavor, std::string_view why) {
  if constexpr (requires { t.refuse(std::string_view{}, std::string_view{}); }) {
    for (const std::string_view key : {std::string_view("restart"), std::string_view("liveness"),
                                       std::string_view("on_dependency_restart")})
      t.refuse(key, std::string(flavor) + " cannot honour '" + std::string(key) + "': " + std::string(why) +
                        "; remove the key");
  }
}

} // namespace stackup::detail
