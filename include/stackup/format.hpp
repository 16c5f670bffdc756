// stackup — fmt formatters, the status table and the console observer.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/events.hpp>

#include <fmt/color.h>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <unistd.h>

namespace stackup::detail {
/// Formats a name (a State, an Outcome...) as fmt formats a string, format spec
/// included (`{:>9}`, `{:<{}}`, `{:.3}`). It does not inherit from
/// fmt::formatter<std::string_view>: run at run time for a type of ours, that
/// formatter's parse draws GCC 12's -Wstringop-overflow at -O3 inside fmt's
/// header (a false positive in fmt 8 and 9, where no pragma of ours reaches).
/// The spec is checked by fmt at compile time as before; at run time it is
/// kept as text and handed to fmt's own formatting of a string.
class NameFormatter {
public:
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    if (std::is_constant_evaluated()) return fmt::formatter<std::string_view>().parse(ctx); // fmt's own checks
    auto it = ctx.begin();
    const auto end = ctx.end();
    while (it != end && *it != '}') {
      if (*it != '{') {
        ++it;
        continue;
      }
      // A dynamic width or precision: `{}`, `{2}` or `{name}`; claim its argument
      // as fmt would, so the arguments after it keep their numbers.
      const auto open = ++it;
      while (it != end && *it != '}') ++it;
      if (it == end || refs_ == 2) throw fmt::format_error("invalid format specifier");
      Ref& r = ref_[refs_++];
      r.text = std::string_view(open, static_cast<std::size_t>(it - open));
      if (r.text.empty()) r.id = ctx.next_arg_id();
      else if (r.text.find_first_not_of("0123456789") == std::string_view::npos) {
        r.id = 0;
        for (const char c : r.text) r.id = r.id * 10 + (c - '0');
        ctx.check_arg_id(r.id);
      } else ctx.check_arg_id(fmt::string_view(r.text.data(), r.text.size()));
      ++it;
    }
    spec_ = std::string_view(ctx.begin(), static_cast<std::size_t>(it - ctx.begin()));
    return it;
  }

  auto format(std::string_view text, fmt::format_context& ctx) const -> decltype(ctx.out()) {
    if (spec_.empty()) {
      auto out = ctx.out();
      for (const char c : text) *out++ = c;
      return out;
    }
    // The spec again, its dynamic values written in: "{:<{}}" becomes "{:<12}".
    std::string spec = "{:";
    std::string_view rest = spec_;
    for (std::size_t i = 0; i < refs_; ++i) {
      const std::size_t at = rest.find('{');
      spec.append(rest.substr(0, at));
      spec += std::to_string(value(ctx, ref_[i]));
      rest.remove_prefix(rest.find('}', at) + 1);
    }
    spec.append(rest);
    spec += '}';
    return fmt::vformat_to(ctx.out(), spec, fmt::make_format_args(text));
  }

private:
  struct Ref {
    std::string_view text; // between the braces
    int id = -1;           // the argument's number; -1: by name
  };
  static unsigned long long value(fmt::format_context& ctx, const Ref& r) {
    const auto arg = r.id >= 0 ? ctx.arg(r.id) : ctx.arg(fmt::string_view(r.text.data(), r.text.size()));
    const auto number = [](auto v) -> unsigned long long {
      using T = decltype(v);
      if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>) {
        if constexpr (std::is_signed_v<T>)
          if (v < 0) throw fmt::format_error("negative width");
        return static_cast<unsigned long long>(v);
      } else {
        throw fmt::format_error("width is not integer");
      }
    };
#if FMT_VERSION >= 110000
    return arg.visit(number);
#else
    return fmt::visit_format_arg(number, arg);
#endif
  }

  std::string_view spec_;
  Ref ref_[2];
  std::size_t refs_ = 0;
};
} // namespace stackup::detail

template <> struct fmt::formatter<stackup::State> : stackup::detail::NameFormatter {
  auto format(stackup::State v, fmt::format_context& ctx) const { return NameFormatter::format(stackup::to_string(v), ctx); }
};
template <> struct fmt::formatter<stackup::Transition> : stackup::detail::NameFormatter {
  auto format(stackup::Transition v, fmt::format_context& ctx) const {
    return NameFormatter::format(stackup::to_string(v), ctx);
  }
};
template <> struct fmt::formatter<stackup::Outcome> : stackup::detail::NameFormatter {
  auto format(stackup::Outcome v, fmt::format_context& ctx) const {
    return NameFormatter::format(stackup::to_string(v), ctx);
  }
};
/// `role 'name': state`, plus ` (detail)` when the component offers one, and
/// `outdated` first in the parentheses when its settings changed (`current` false).
template <> struct fmt::formatter<stackup::ComponentStatus> : stackup::detail::NameFormatter {
  auto format(const stackup::ComponentStatus& s, fmt::format_context& ctx) const {
    std::string text = fmt::format("{} '{}': {}", s.role, s.name, s.state);
    if (!s.current) text += s.detail.empty() ? std::string(" (outdated)") : fmt::format(" (outdated; {})", s.detail);
    else if (!s.detail.empty()) text += fmt::format(" ({})", s.detail);
    return NameFormatter::format(text, ctx);
  }
};

namespace stackup {

/// Whether to decorate output written to `stream`: a terminal, and NO_COLOR unset.
inline bool use_color(std::FILE* stream) {
  const char* no_color = std::getenv("NO_COLOR");
  return (no_color == nullptr || *no_color == '\0') && ::isatty(::fileno(stream)) == 1;
}

namespace detail {
/// `text` in `style`: the bytes fmt::styled(text, style) gives. fmt::styled runs
/// fmt::formatter<std::string_view>'s parse at run time, which draws GCC 12's
/// -Wstringop-overflow at -O3 inside fmt's header (see NameFormatter).
inline std::string styled(std::string_view text, const fmt::text_style& style) {
  return fmt::format(style, "{}", text);
}
} // namespace detail

/// Past tense of a transition, for progress lines ("resumed").
constexpr std::string_view past_tense(Transition t) noexcept {
  switch (t) {
  case Transition::provision: return "provisioned";
  case Transition::resume: return "resumed";
  case Transition::suspend: return "suspended";
  case Transition::deprovision: return "deprovisioned";
  }
  return "?";
}
/// Present participle of a transition ("resuming").
constexpr std::string_view participle(Transition t) noexcept {
  switch (t) {
  case Transition::provision: return "provisioning";
  case Transition::resume: return "resuming";
  case Transition::suspend: return "suspending";
  case Transition::deprovision: return "deprovisioning";
  }
  return "?";
}

/// One progress line for an event, e.g. `✔ orchestrator 'web' resumed  0.21s`.
/// `fancy` selects colour and symbols; otherwise plain ASCII.
inline std::string progress_line(const Event& e, bool fancy) {
  struct Look {
    std::string_view symbol, ascii;
    fmt::text_style style;
  };
  const auto seconds = std::chrono::duration<double>(e.elapsed).count();
  std::string what;
  Look look{"•", "-", fmt::fg(fmt::terminal_color::cyan)};
  switch (e.outcome) {
  // A start or success says why when the engine gave a reason ("settings changed").
  case Outcome::started:
    what = e.message.empty() ? fmt::format("{} ...", participle(e.transition))
                             : fmt::format("{} ({}) ...", participle(e.transition), e.message);
    break;
  case Outcome::succeeded:
    what = e.message.empty() ? fmt::format("{}  {:.2f}s", past_tense(e.transition), seconds)
                             : fmt::format("{} ({})  {:.2f}s", past_tense(e.transition), e.message, seconds);
    look = {"✔", "+", fmt::fg(fmt::terminal_color::green)};
    break;
  case Outcome::rolled_back:
    what = fmt::format("{} (rollback)  {:.2f}s", past_tense(e.transition), seconds);
    look = {"↺", "~", fmt::fg(fmt::terminal_color::yellow)};
    break;
  case Outcome::failed:
    what = fmt::format("{} failed  {:.2f}s: {}", e.transition, seconds, e.message);
    look = {"✘", "x", fmt::fg(fmt::terminal_color::red) | fmt::emphasis::bold};
    break;
  case Outcome::not_implemented:
    what = fmt::format("{} skipped: {}", e.transition, e.message);
    look = {"○", "o", fmt::fg(fmt::terminal_color::yellow)};
    break;
  case Outcome::already_done:
    what = e.message.empty() ? fmt::format("{}: nothing to do", e.transition) : e.message;
    look = {"✔", "=", fmt::fg(fmt::terminal_color::bright_black)};
    break;
  }
  if (!fancy) return fmt::format("{} {} '{}' {}", look.ascii, e.role, e.component, what);
  return fmt::format("{} {} '{}' {}", detail::styled(look.symbol, look.style), detail::styled(e.role, fmt::emphasis::bold),
                     e.component, what);
}

namespace detail {
/// A signal's name ("SIGKILL"), or "signal N" for one not in the table
/// (strsignal is neither thread-safe nor the name).
inline std::string signal_name(int signal) {
  static constexpr std::pair<int, std::string_view> names[] = {
      {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},     {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},
      {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},     {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
      {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},   {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
      {SIGCHLD, "SIGCHLD"}, {SIGCONT, "SIGCONT"},   {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
      {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},     {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGVTALRM, "SIGVTALRM"},
      {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"}, {SIGSYS, "SIGSYS"},
  };
  for (const auto& [number, name] : names)
    if (number == signal) return std::string(name);
  return fmt::format("signal {}", signal);
}
/// "1st", "2nd", "3rd", "4th", "11th", "21st".
inline std::string ordinal(unsigned n) {
  const unsigned tens = n % 100, ones = n % 10;
  const char* suffix = (tens >= 11 && tens <= 13) ? "th" : ones == 1 ? "st" : ones == 2 ? "nd" : ones == 3 ? "rd" : "th";
  return fmt::format("{}{}", n, suffix);
}
/// A duration as a stack file writes one: "400ms", "2s", "1m", "1500ms".
inline std::string duration_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 60000 == 0) return fmt::format("{}m", ms / 60000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}
/// HH:MM:SS in local time, for the status table.
inline std::string local_time_of_day(std::chrono::system_clock::time_point at) {
  const std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  if (::localtime_r(&t, &tm) == nullptr) return "?";
  return fmt::format("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
}
/// RFC 3339 in UTC with milliseconds ("2026-12-07T12:00:01.123Z"), for JSON.
inline std::string utc_timestamp(std::chrono::system_clock::time_point at) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const auto millis = ((ms % 1000) + 1000) % 1000; // before 1970 too
  const std::time_t t = static_cast<std::time_t>((ms - millis) / 1000);
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return "?";
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}
/// How it ended, without when: "exited 3", "killed by SIGKILL", "unhealthy
/// (<what the probe saw>)", "restart failed (<why>)".
inline std::string exit_phrase(const Exit& e) {
  if (e.code) return fmt::format("exited {}", *e.code);
  if (e.signal) return "killed by " + signal_name(*e.signal);
  if (!e.liveness.empty()) return fmt::format("unhealthy ({})", e.liveness);
  if (!e.error.empty()) return fmt::format("restart failed ({})", e.error);
  return "exited";
}
/// What the status table's DETAIL says of supervision before the component's
/// own detail; empty for a row without an exit, restarts or supervision
/// (such a row looks as it did before supervision).
inline std::string supervision_phrase(const ComponentStatus& r) {
  std::string out;
  const auto add = [&out](std::string_view part) {
    if (!out.empty()) out += ", ";
    out += part;
  };
  if (r.supervision == SupervisionState::failed) {
    out = "failed";
    if (r.exit) out += ": " + exit_phrase(*r.exit);
    out += fmt::format("{}{} restart{}", r.exit ? ", " : ": ", r.restarts, r.restarts == 1 ? "" : "s");
    return out;
  }
  if (r.exit) add(fmt::format("{} at {}", exit_phrase(*r.exit), local_time_of_day(r.exit->at)));
  if (r.supervision == SupervisionState::backing_off) add(fmt::format("restarting ({})", ordinal(r.restarts + 1)));
  else if (r.restarts > 0) add(fmt::format("restarts {}", r.restarts));
  return out;
}
} // namespace detail

/// One line for a supervisor's event; `fancy` selects colour and symbols
/// (plain ASCII otherwise: `~` for an exit or restart, `x` for a give-up or a
/// liveness failure):
/// - exited: `↻ cache 'redis' exited (exit status 3)`, `(killed by SIGKILL)`, `(unhealthy: ...)`
/// - restarting: `↻ cache 'redis' restarting in 100ms (1st)`
/// - failed: `✘ cache 'redis' failed: 5 restarts within 1m, last exited 3`; the
///   event's `message` says why it gave up ("5 restarts within 1m"), else
///   `<restarts> restarts`
/// - unhealthy: `✘ app 'app' unhealthy (1st failure): http 127.0.0.1:8090/health: 503`
///   (`restarts`: failures in a row; `message`: what the probe saw)
inline std::string supervision_line(const SupervisionEvent& e, bool fancy) {
  std::string what;
  switch (e.kind) {
  case SupervisionEvent::Kind::exited:
    what = "exited";
    if (e.exit) {
      if (e.exit->code) what += fmt::format(" (exit status {})", *e.exit->code);
      else if (e.exit->signal) what += " (killed by " + detail::signal_name(*e.exit->signal) + ")";
      else if (!e.exit->liveness.empty()) what += fmt::format(" (unhealthy: {})", e.exit->liveness);
      else if (!e.exit->error.empty()) what += fmt::format(" (restart failed: {})", e.exit->error);
    }
    if (!e.message.empty()) what += ": " + e.message;
    break;
  case SupervisionEvent::Kind::restarting:
    what = fmt::format("restarting in {} ({})", detail::duration_text(e.delay), detail::ordinal(e.restarts));
    if (!e.message.empty()) what += ": " + e.message;
    break;
  case SupervisionEvent::Kind::failed:
    what = "failed: ";
    what += e.message.empty() ? fmt::format("{} restart{}", e.restarts, e.restarts == 1 ? "" : "s") : e.message;
    if (e.exit) what += ", last " + detail::exit_phrase(*e.exit);
    break;
  case SupervisionEvent::Kind::unhealthy:
    what = "unhealthy";
    if (e.restarts > 0) what += fmt::format(" ({} failure)", detail::ordinal(e.restarts));
    if (!e.message.empty()) what += ": " + e.message;
    break;
  }
  const bool bad = e.kind == SupervisionEvent::Kind::failed || e.kind == SupervisionEvent::Kind::unhealthy;
  if (!fancy) return fmt::format("{} {} '{}' {}", bad ? "x" : "~", e.role, e.component, what);
  return fmt::format("{} {} '{}' {}",
                     detail::styled(bad ? "✘" : "↻", fmt::fg(bad ? fmt::terminal_color::red : fmt::terminal_color::yellow)),
                     detail::styled(e.role, fmt::emphasis::bold), e.component, what);
}

/// A ready-made observer printing ZenML-like progress lines to `stream`
/// (colour and symbols only on a terminal, NO_COLOR honoured):
/// `stack.on_event(stackup::console_observer());`
inline Observer console_observer(std::FILE* stream = stdout) {
  const bool fancy = use_color(stream);
  return [stream, fancy](const Event& e) {
    fmt::print(stream, "{}\n", progress_line(e, fancy));
    std::fflush(stream);
  };
}

/// Renders `status()` as an aligned table: ROLE, NAME, FLAVOR, STATE, DETAIL.
/// DETAIL is the component's detail, after `outdated` (its settings changed
/// since it was provisioned: the next up updates or recreates it) and what
/// supervision says of the row, parts joined by "; ": `exited 3 at 12:00:01; pid 7`, `killed by
/// SIGKILL at 12:00:01, restarting (3rd)`, `failed: exited 3, 5 restarts`,
/// `restarts 2; pid 9` (times local, HH:MM:SS).
inline std::string status_table(std::span<const ComponentStatus> rows, bool fancy = false) {
  std::size_t w_role = 4, w_name = 4, w_flavor = 6;
  for (const auto& r : rows) {
    w_role = std::max(w_role, r.role.size());
    w_name = std::max(w_name, r.name.size());
    w_flavor = std::max(w_flavor, r.flavor.size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:<13}  {}\n", "ROLE", w_role, "NAME", w_name, "FLAVOR",
                                w_flavor, "STATE", "DETAIL");
  for (const auto& r : rows) {
    std::string state = fmt::format("{:<13}", r.state);
    if (fancy) {
      const auto color = r.state == State::running     ? fmt::terminal_color::green
                         : r.state == State::suspended ? fmt::terminal_color::yellow
                                                       : fmt::terminal_color::bright_black;
      state = detail::styled(state, fmt::fg(color));
    }
    std::string detail = r.current ? "" : "outdated";
    for (const std::string& part : {detail::supervision_phrase(r), r.detail})
      if (!part.empty()) detail.append(detail.empty() ? "" : "; ").append(part);
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}  {}", r.role, w_role, r.name, w_name, r.flavor, w_flavor, state,
                       detail);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

namespace detail {
// Length of the well-formed UTF-8 sequence at the start of `s`, or 0.
inline std::size_t utf8_length(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b = byte(0);
  const std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || n > s.size()) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((byte(i) & 0xc0) != 0x80) return 0;
  const unsigned second = byte(n > 1 ? 1 : 0);
  if ((b == 0xc0 || b == 0xc1) || (b == 0xe0 && second < 0xa0) || (b == 0xed && second > 0x9f) ||
      (b == 0xf0 && second < 0x90) || b > 0xf4 || (b == 0xf4 && second > 0x8f))
    return 0; // overlong, surrogate or beyond U+10FFFF
  return n;
}

// A JSON string literal: quotes, backslashes and control characters escaped,
// bytes that are not UTF-8 (a path may hold any) replaced by U+FFFD.
inline void json_string(std::string& out, std::string_view text) {
  out += '"';
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const std::size_t n = utf8_length(text.substr(i));
      if (n == 0) {
        out += "\\ufffd";
        continue;
      }
      out += text.substr(i, n);
      i += n - 1;
      continue;
    }
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      else out += c;
    }
  }
  out += '"';
}
} // namespace detail

/// Renders `status()` as a JSON array, one object per component with the keys
/// `role`, `name`, `flavor`, `state` and `detail` (strings), `restarts` (a
/// number), `exit` (null, or one of `{"code": 3, "at": T}`, `{"signal":
/// "SIGKILL", "at": T}`, `{"liveness": "...", "at": T}`, `{"error": "...", "at":
/// T}`, T in RFC 3339 UTC with milliseconds) and `supervision` ("none",
/// "watching", "backing-off", "failed") and `current` (false: outdated, its
/// settings changed since it was provisioned), and a final newline.
inline std::string status_json(std::span<const ComponentStatus> rows) {
  std::string out = "[";
  for (const auto& r : rows) {
    out += out.size() == 1 ? "\n  {" : ",\n  {";
    const std::pair<std::string_view, std::string_view> fields[] = {
        {"role", r.role}, {"name", r.name}, {"flavor", r.flavor}, {"state", to_string(r.state)}, {"detail", r.detail}};
    for (const auto& [key, value] : fields) {
      if (key != "role") out += ", ";
      detail::json_string(out, key);
      out += ": ";
      detail::json_string(out, value);
    }
    out += fmt::format(", \"restarts\": {}, \"exit\": ", r.restarts);
    if (!r.exit) out += "null";
    else {
      const Exit& e = *r.exit;
      if (e.code) out += fmt::format("{{\"code\": {}", *e.code);
      else if (e.signal) {
        out += "{\"signal\": ";
        detail::json_string(out, detail::signal_name(*e.signal));
      } else {
        out += e.liveness.empty() && !e.error.empty() ? "{\"error\": " : "{\"liveness\": ";
        detail::json_string(out, e.liveness.empty() ? e.error : e.liveness);
      }
      out += ", \"at\": ";
      detail::json_string(out, detail::utc_timestamp(e.at));
      out += '}';
    }
    out += ", \"supervision\": ";
    detail::json_string(out, to_string(r.supervision));
    out += r.current ? ", \"current\": true}" : ", \"current\": false}";
  }
  out += rows.empty() ? "]\n" : "\n]\n";
  return out;
}

} // namespace stackup
