// stackup — fmt formatters, the status table and the console observer.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/component.hpp>
#include <stackup/events.hpp>

#include <fmt/color.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
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
/// `role 'name': state`, plus ` (detail)` when the component offers one.
template <> struct fmt::formatter<stackup::ComponentStatus> : stackup::detail::NameFormatter {
  auto format(const stackup::ComponentStatus& s, fmt::format_context& ctx) const {
    std::string text = fmt::format("{} '{}': {}", s.role, s.name, s.state);
    if (!s.detail.empty()) text += fmt::format(" ({})", s.detail);
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
  case Outcome::started: what = fmt::format("{} ...", participle(e.transition)); break;
  case Outcome::succeeded:
    what = fmt::format("{}  {:.2f}s", past_tense(e.transition), seconds);
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

/// One line for a supervisor's event, e.g. `↻ cache 'redis' exited (exit status
/// 3); restarting in 100ms (1st)`. `fancy` selects colour and symbols.
inline std::string supervision_line(const SupervisionEvent& e, bool fancy) {
  std::string what;
  switch (e.kind) {
  case SupervisionEvent::Kind::exited: what = "exited"; break;
  case SupervisionEvent::Kind::restarting: what = fmt::format("restarting in {}ms", e.delay.count()); break;
  case SupervisionEvent::Kind::failed: what = "failed"; break;
  case SupervisionEvent::Kind::unhealthy: what = "unhealthy"; break;
  }
  if (!e.message.empty()) what += ": " + e.message;
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
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}  {}", r.role, w_role, r.name, w_name, r.flavor, w_flavor, state,
                       r.detail);
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
/// `role`, `name`, `flavor`, `state` and `detail` (strings), and a final newline.
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
    out += '}';
  }
  out += rows.empty() ? "]\n" : "\n]\n";
  return out;
}

} // namespace stackup
