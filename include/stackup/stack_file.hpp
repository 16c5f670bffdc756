// stackup — stack files: a DynamicStack described in TOML (DESIGN §8).
//
// Opt-in: neither <stackup/stackup.hpp> nor the single header includes this
// file, because it needs toml++ (Debian: libtomlplusplus-dev). Link the CMake
// target stackup::stack_file, which brings toml++ (Debian's compiled library).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>
// Below C++20, version.hpp has just issued its #error: that must be the only diagnostic.
#if defined(__cplusplus) && __cplusplus >= 202002L
#include <stackup/any_component.hpp>
#include <stackup/components/command.hpp>
#include <stackup/components/container.hpp>
#include <stackup/components/kubernetes.hpp>
#include <stackup/components/local_daemon.hpp>
#include <stackup/components/local_directory.hpp>
#include <stackup/dynamic_stack.hpp>
#include <stackup/errors.hpp>

#include <toml++/toml.h>

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace stackup {

/// A stack file that cannot be read, parsed, or turned into a stack. `what()`
/// starts with `FILE:LINE:COLUMN: ` for an error at a place in the file, with
/// `FILE: ` for a file that cannot be read (line() and column() are then 0).
class StackFileError : public StackDefinitionError {
public:
  /// An error at a place (1-based line and column).
  StackFileError(std::string file, std::size_t line, std::size_t column, std::string_view message)
      : StackDefinitionError(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                             std::string(message)),
        file_(std::move(file)), line_(line), column_(column) {}
  /// An error about the whole file (it cannot be read).
  StackFileError(std::string file, std::string_view message)
      : StackDefinitionError(file + ": " + std::string(message)), file_(std::move(file)) {}
  /// A stack the file describes that cannot exist, placed at the entry to change:
  /// keeps the definition error's data (kind(), roles(), components(), paths()).
  StackFileError(std::string file, std::size_t line, std::size_t column, const StackDefinitionError& definition)
      : StackDefinitionError(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                                 std::string(detail::unprefixed(definition.what())),
                             definition),
        file_(std::move(file)), line_(line), column_(column) {}

  /// The file, as it was named to load_stack (or the origin given to parse_stack).
  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  /// 1-based line, or 0 when the error is about the whole file.
  [[nodiscard]] std::size_t line() const noexcept { return line_; }
  /// 1-based column, or 0 when the error is about the whole file.
  [[nodiscard]] std::size_t column() const noexcept { return column_; }

private:
  std::string file_;
  std::size_t line_ = 0, column_ = 0;
};

/// How a stack file was chosen, which decides what is checked when it is read.
enum class Trust {
  /// Named by the caller (stackctl's -f or $STACKUP_FILE): read as it is. It may
  /// be a pipe, or `-` for standard input; symlinks are followed.
  named,
  /// Found by a search (stackctl's stackup.toml lookup): read only when it is a
  /// regular file (not a symlink) owned by the caller (effective uid) or root
  /// and not writable by group or others, in a directory owned by the caller
  /// or root that group and others cannot write unless it is sticky; the same
  /// for its `.env` (OpenSSH's StrictModes).
  found,
};

/// A stack file as read (read_stack_file): its bytes and its `.env`'s, each read
/// once from a descriptor that was checked. What load_stack and stack_config parse.
struct StackFileSource {
  std::string file;                   ///< as named; errors name it
  std::filesystem::path directory;    ///< relative paths, state directories and the default name come from it
  std::string text;                   ///< the stack file's bytes
  std::optional<std::string> dotenv;  ///< the `.env` beside it, when there is one
  std::string dotenv_file;            ///< the `.env`'s path, for errors
};

/// The most a stack file, or its `.env`, may hold: 1 MiB.
inline constexpr std::size_t stack_file_size_limit = std::size_t{1} << 20;
/// The deepest a stack file may nest: every part of a dotted key and every
/// array or inline table around a value counts one level.
inline constexpr std::size_t stack_file_depth_limit = 128;
/// The deepest `${A:-${B:-...}}` may nest.
inline constexpr std::size_t interpolation_depth_limit = 16;

namespace detail::stack_file {

struct Place {
  std::size_t line = 0, column = 0;
};
inline Place place_of(const toml::source_region& r) { return {r.begin.line, r.begin.column}; }

struct Record;

// A value as it will be used (expanded, resolved), in TOML: for `stack config`.
struct Value {
  std::string key;
  std::string toml;             // the value's TOML text, or empty for a table
  Record* table = nullptr;      // a nested table's own values
};

// One table handed out to a flavour: what it is, which keys were asked for and
// what their values came to.
struct Record {
  const toml::table* table = nullptr;
  std::string what;                // "component 'cache' (local_daemon)", "'ready' of component 'cache'"
  std::vector<std::string> asked;  // the valid keys, in the order they were asked for
  std::vector<Value> values;       // the keys present (or defaulted), in the order they were read
};

// A TOML basic string that reads back as `text` in a stack file: quotes,
// backslashes and control characters escaped, and (for a value, which is
// interpolated) "${" and "$$" doubled so that interpolation gives `text` again.
inline std::string toml_string(std::string_view text, bool interpolated = true) {
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"' || c == '\\') out += '\\';
    if (interpolated && c == '$' && i + 1 < text.size() && (text[i + 1] == '{' || text[i + 1] == '$')) out += '$';
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
    else {
      const auto u = static_cast<unsigned char>(c);
      out += "\\u00";
      out += "0123456789ABCDEF"[u >> 4];
      out += "0123456789ABCDEF"[u & 0xf];
    }
  }
  return out + '"';
}

// A key as TOML writes it: bare when it can be, else quoted. Keys (roles, env
// names) are taken as written, never interpolated: a '$' in one stays single.
inline std::string toml_key(std::string_view key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return c == '_' || c == '-' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
  return bare ? std::string(key) : toml_string(key, false);
}

// A table's values as `key = value` lines, nested tables inline.
inline std::string render(const Record& r, bool inline_table) {
  std::string out;
  for (const Value& v : r.values) {
    const std::string value = v.table ? "{ " + render(*v.table, true) + (v.table->values.empty() ? "}" : " }") : v.toml;
    if (inline_table) out += (out.empty() ? "" : ", ") + toml_key(v.key) + " = " + value;
    else out += toml_key(v.key) + " = " + value + "\n";
  }
  return out;
}

// Everything a parse shares: where the file is, the variables, the tables handed out.
struct Context {
  std::string file;
  std::filesystem::path directory;
  std::string stack_name; // the stack's name (`name`, or the directory's), known before any component is read
  std::map<std::string, std::string, std::less<>> dotenv;
  std::vector<std::unique_ptr<Record>> records;
  // Bytes all values have expanded to so far: a small file whose many ${A}
  // stand for a large A must not grow without bound (the size cap, kept).
  mutable std::size_t expanded = 0;
  static constexpr std::size_t expanded_limit = 16 * stack_file_size_limit;

  [[noreturn]] void fail(Place p, std::string_view message) const {
    throw StackFileError(file, p.line, p.column, message);
  }

  // ${VAR}, ${VAR:-default}, $$ -> $, anything else with a $ left alone. A
  // default may itself hold ${...}, expanded only when it is used. The result
  // must be something a process can be given and `stack config` can write back:
  // no NUL byte, valid UTF-8. `what` names the value in those errors.
  [[nodiscard]] std::string expand(std::string_view in, Place at, std::string_view what = {}) const {
    const std::string value = what.empty() ? std::string("this value") : std::string(what);
    std::string out = expand_at(in, at, 0, value);
    expanded += out.size();
    if (expanded > expanded_limit)
      fail(at, value + " takes the values the file expands to past " + std::to_string(expanded_limit >> 20) +
                   " MiB in all: a stack file never needs that; make the variables it uses smaller");
    if (out.find('\0') != std::string::npos)
      fail(at, value + " holds a NUL byte once expanded: no argument, path or environment value can; remove it");
    if (const auto bad = invalid_utf8(out))
      fail(at, value + " holds bytes that are not UTF-8 once expanded (at byte " + std::to_string(*bad + 1) +
                   " of the value): a stack file and the values it expands to are UTF-8; fix the variable it takes");
    return out;
  }

  // The '}' closing the "${" at in[open], past nested ${...} and $$; npos if none.
  // A literal "$${" in a default pairs with its own '}' as Compose counts it, so
  // "${A:-$${B}x}" defaults to "${B}x", not "${B" followed by "x}".
  static std::size_t closing(std::string_view in, std::size_t open) {
    std::size_t depth = 0;
    for (std::size_t i = open; i < in.size(); ++i) {
      if (in[i] == '$' && i + 1 < in.size() && (in[i + 1] == '$' || in[i + 1] == '{')) {
        if (in[i + 1] == '{' || (i + 2 < in.size() && in[i + 2] == '{')) ++depth;
        i += in[i + 1] == '$' && i + 2 < in.size() && in[i + 2] == '{' ? 2 : 1;
      } else if (in[i] == '}' && --depth == 0) {
        return i;
      }
    }
    return std::string_view::npos;
  }

  // The offset of the first byte that does not begin or continue valid UTF-8.
  static std::optional<std::size_t> invalid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
      const auto b = static_cast<unsigned char>(s[i]);
      std::size_t n = 0;
      char32_t cp = 0;
      if (b < 0x80) n = 1, cp = b;
      else if ((b & 0xE0) == 0xC0) n = 2, cp = b & 0x1Fu;
      else if ((b & 0xF0) == 0xE0) n = 3, cp = b & 0x0Fu;
      else if ((b & 0xF8) == 0xF0) n = 4, cp = b & 0x07u;
      else return i;
      if (i + n > s.size()) return i;
      for (std::size_t k = 1; k < n; ++k) {
        const auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xC0) != 0x80) return i;
        cp = (cp << 6) | (c & 0x3Fu);
      }
      const char32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
      i += n;
    }
    return std::nullopt;
  }

private:
  [[nodiscard]] std::string expand_at(std::string_view in, Place at, std::size_t depth, const std::string& value_name) const {
    if (depth > interpolation_depth_limit)
      fail(at, "'${...:-${...}}' nests deeper than " + std::to_string(interpolation_depth_limit) +
                   " defaults: simplify it");
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (in[i] != '$' || i + 1 == in.size()) {
        out += in[i];
        continue;
      }
      if (in[i + 1] == '$') {
        out += '$';
        ++i;
        continue;
      }
      if (in[i + 1] != '{') {
        out += '$';
        continue;
      }
      const std::size_t close = closing(in, i);
      if (close == std::string_view::npos)
        fail(at, "unclosed '${' in \"" + std::string(in) + "\": write ${NAME} or ${NAME:-default}, or $$ for a literal $");
      const std::string_view inside = in.substr(i + 2, close - i - 2);
      const std::size_t sep = inside.find(":-");
      const std::string_view name = inside.substr(0, sep);
      const bool valid = !name.empty() && !(name[0] >= '0' && name[0] <= '9') &&
                         std::all_of(name.begin(), name.end(), [](char c) {
                           return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                         });
      if (!valid)
        fail(at, "'${" + std::string(inside) + "}' is not a variable: write ${NAME} or ${NAME:-default} "
                 "(NAME: letters, digits, _; a default may hold ${...} itself), or $$ for a literal $");
      const std::optional<std::string> value = lookup(name);
      if (sep != std::string_view::npos) {
        if (value && !value->empty()) out += *value;
        else out += expand_at(inside.substr(sep + 2), at, depth + 1, value_name); // the default, by the same rule
      } else if (value) {
        out += *value;
      } else {
        fail(at, "variable '" + std::string(name) + "' is not set (neither in the environment nor in " +
                     (directory / ".env").string() + "): set it, or give a default with ${" + std::string(name) +
                     ":-default}");
      }
      if (out.size() > stack_file_size_limit)
        fail(at, value_name + " is longer than " + std::to_string(stack_file_size_limit >> 20) +
                     " MiB once expanded: a stack file never needs that; make the variables it uses smaller");
      i = close;
    }
    return out;
  }

public:
  [[nodiscard]] std::optional<std::string> lookup(std::string_view name) const {
    if (const char* v = std::getenv(std::string(name).c_str())) return std::string(v); // the environment wins
    if (const auto it = dotenv.find(name); it != dotenv.end()) return it->second;
    return std::nullopt;
  }
};

inline std::string type_name(const toml::node& n) {
  switch (n.type()) {
  case toml::node_type::string: return "a string";
  case toml::node_type::integer: return "an integer";
  case toml::node_type::floating_point: return "a floating-point number";
  case toml::node_type::boolean: return "a boolean";
  case toml::node_type::array: return "an array";
  case toml::node_type::table: return "a table";
  default: return "a date or time";
  }
}

// A table's entries in the file's order (toml++ keeps them sorted by key).
inline std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  entries.reserve(t.size());
  for (const auto& [k, v] : t) entries.emplace_back(&k, &v);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto pa = a.first->source().begin, pb = b.first->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return entries;
}

inline std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s.append(s.empty() ? "" : ", ").append(i);
  return s;
}


// A .env file's variables, by Compose's rules for .env files: KEY=VALUE lines
// (an optional `export ` first), blank lines and # comments ignored, a UTF-8
// byte-order mark at the start skipped. An unquoted value ends at " #" and is
// trimmed (a '#' after a tab, or first after "= ", Compose keeps: an error
// here). A single-quoted value is literal but for \' (and \\ stays two); a
// double-quoted one takes Go's \n \r \t \a \b \f \v \\ \" and \0ooo, and \$ for
// a literal '$' (other escapes stay as written).
// Both may span lines; after the closing quote only a # comment may follow.
// Compose also expands $VAR, ${VAR} and $$ in unquoted and double-quoted
// values; stackup does not, so those are errors (single-quote to keep them
// literally) rather than a value Compose would not give.
inline std::map<std::string, std::string, std::less<>> parse_dotenv(std::string_view text, const std::string& file) {
  std::map<std::string, std::string, std::less<>> vars;
  std::size_t i = 0, line = 1, line_start = 0;
  if (text.starts_with("\xEF\xBB\xBF")) i = line_start = 3;
  const auto fail = [&](std::size_t at, const std::string& message) {
    throw StackFileError(file, line, at - line_start + 1, message);
  };
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; };
  const auto next_line = [&] {
    while (i < text.size() && text[i] != '\n') ++i;
    if (i < text.size()) ++i, ++line, line_start = i;
  };
  // `at` is on line `at_line`, which starts at `at_line_start` (a quoted value may end on a later line).
  const auto expansion = [&](std::size_t at_line, std::size_t at_line_start, std::size_t at, std::string_view value,
                             const std::string& key) {
    for (std::size_t k = 0; k + 1 < value.size(); ++k)
      if (value[k] == '$') {
        const char c = value[k + 1];
        if (c == '{' || c == '$' || c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
          throw StackFileError(file, at_line, at - at_line_start + 1, "the value of " + key + " holds '$" + std::string(1, c) +
                       "', which Compose would expand and stackup does not expand in .env: write the value itself, "
                       "or single-quote it to keep the '$' as it is");
      }
  };
  while (i < text.size()) {
    while (i < text.size() && blank(text[i])) ++i;
    if (i == text.size()) break;
    if (text[i] == '\n' || text[i] == '#') {
      next_line();
      continue;
    }
    if (text.substr(i).starts_with("export") && i + 6 < text.size() && (text[i + 6] == ' ' || text[i + 6] == '\t')) {
      i += 6;
      while (i < text.size() && blank(text[i])) ++i;
    }
    const std::size_t key_at = i;
    while (i < text.size() && text[i] != '=' && text[i] != '\n') ++i;
    std::string_view key = text.substr(key_at, i - key_at);
    while (!key.empty() && blank(key.back())) key.remove_suffix(1);
    if (i == text.size() || text[i] != '=' || key.empty())
      fail(key_at, "expected KEY=value (or a # comment), not \"" + std::string(text.substr(key_at, i - key_at)) + "\"");
    const bool valid = std::all_of(key.begin(), key.end(), [](char c) {
      return c == '_' || c == '.' || c == '-' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
    if (!valid)
      fail(key_at, "\"" + std::string(key) + "\" is not a variable name: use letters, digits, '_', '.' and '-'");
    const std::string name = std::string("'").append(key).append("'");
    ++i; // '='
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::string value;
    const std::size_t value_at = i;
    if (i < text.size() && (text[i] == '"' || text[i] == '\'')) {
      const char quote = text[i++];
      const std::size_t open_line = line, open_line_start = line_start;
      bool closed = false;
      std::vector<std::size_t> escaped_dollars; // where a \$ put a literal '$' in the value
      while (i < text.size()) {
        const char c = text[i];
        if (c == quote) {
          closed = true;
          ++i;
          break;
        }
        if (c == '\\' && i + 1 < text.size()) {
          const char e = text[i + 1];
          // Single quotes: \' is a quote and \\ stays two backslashes (so "\\'" closes);
          // double quotes: Go's escapes as Compose takes them, \$ a literal '$',
          // \0ooo an octal byte value. Any other backslash stays as written.
          std::string_view plain;
          static constexpr std::string_view from = "nrt\\\"abfv$", to = "\n\r\t\\\"\a\b\f\v$";
          if (quote == '\'') {
            if (e == '\'') plain = "'";
            else if (e == '\\') plain = "\\\\";
          } else if (const std::size_t k = from.find(e); k != std::string_view::npos) {
            plain = to.substr(k, 1);
            if (e == '$') escaped_dollars.push_back(value.size());
          } else if (e == '0' && i + 4 < text.size()) {
            unsigned v = 0;
            bool octal = true;
            for (std::size_t k2 = 2; k2 < 5; ++k2) {
              octal = octal && text[i + k2] >= '0' && text[i + k2] <= '7';
              v = v * 8 + static_cast<unsigned>(text[i + k2] - '0');
            }
            if (octal && v <= 0377) { // Go writes the code point U+00oo as UTF-8
              if (v < 0x80) value += static_cast<char>(v);
              else value += static_cast<char>(0xC0 | (v >> 6)), value += static_cast<char>(0x80 | (v & 0x3F));
              i += 5;
              continue;
            }
          }
          if (!plain.empty()) {
            value += plain;
            i += 2;
            continue;
          }
        }
        if (c == '\n') ++line, line_start = i + 1;
        value += c;
        ++i;
      }
      if (!closed)
        throw StackFileError(file, open_line, value_at - open_line_start + 1,
                             "the value of " + name + " opens a " + std::string(1, quote) + " quote that never closes");
      while (i < text.size() && blank(text[i])) ++i;
      if (i < text.size() && text[i] != '\n' && text[i] != '#')
        fail(i, "unexpected text after the closing quote of " + name + ": only a # comment may follow it");
      if (quote == '"') {
        std::string unescaped = value; // what Compose would expand: a '$' from \$ is not
        for (const std::size_t at : escaped_dollars) unescaped[at] = '_';
        expansion(open_line, open_line_start, value_at, unescaped, name);
      }
      next_line();
    } else {
      const std::size_t end = text.find('\n', i);
      std::string_view raw = text.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
      // Compose: a comment starts at " #" (a space, then '#'), and a value that
      // starts with '#' after the '=' and blanks is that text. Where a reader
      // would see a comment that Compose does not, it is an error, not a value.
      if (!raw.empty() && raw[0] == '#' && value_at > 0 && (text[value_at - 1] == ' ' || text[value_at - 1] == '\t'))
        fail(value_at, "the value of " + name + " starts with '#' after a blank: Compose takes \"" +
                           std::string(raw.substr(0, raw.find('\r'))) +
                           "\" as the value, not as a comment; leave the value out (" + std::string(key) +
                           "=) for an empty one, or quote it");
      raw = raw.substr(0, raw.find(" #"));
      if (const std::size_t tab = raw.find("\t#"); tab != std::string_view::npos)
        fail(value_at + tab + 1, "the value of " + name + " has a '#' after a tab: Compose keeps it in the value (only a "
                                 "space before '#' starts a comment); put a space before the '#', or quote the value");
      while (!raw.empty() && blank(raw.back())) raw.remove_suffix(1);
      value = std::string(raw);
      expansion(line, line_start, value_at, value, name);
      next_line();
    }
    vars[std::string(key)] = std::move(value);
  }
  return vars;
}

// Bounds how deep the file nests before toml++ reads it (toml++ recurses, and a
// key of 50 000 dotted parts overflows the stack): every dotted-key part (a
// key under a [table] header starts below the header's parts) and every array
// or inline table counts one level, at most stack_file_depth_limit.
// A light scan: strings and comments skipped, keys told from values; toml++
// still judges the syntax.
inline void bound_depth(std::string_view s, const std::string& file) {
  std::size_t line = 1, line_start = 0;
  enum class Mode { key, value } mode = Mode::key;
  bool header = false;
  std::size_t level = 0, key_level = 0; // the current container's level; the current key's
  std::size_t table_level = 0;           // the parts of the last [table] header: its keys nest below it
  std::vector<std::pair<char, std::size_t>> open; // '[' or '{', and the level outside it
  const auto fail = [&](std::size_t at) {
    throw StackFileError(file, line, at - line_start + 1,
                         "nests deeper than " + std::to_string(stack_file_depth_limit) +
                             " levels (each part of a dotted key and each array or inline table is one): "
                             "a stack file never needs that; flatten it");
  };
  const auto deeper = [&](std::size_t at, std::size_t to) {
    if (to > stack_file_depth_limit) fail(at);
  };
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\n') {
      ++i, ++line, line_start = i;
      if (open.empty()) {
        if (header) table_level = key_level + 1;
        mode = Mode::key, header = false, key_level = 0, level = table_level;
      }
      continue;
    }
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') { // a string or a quoted key: skipped whole
      const bool triple = s.substr(i, 3) == std::string(3, c);
      i += triple ? 3 : 1;
      while (i < s.size()) {
        if (c == '"' && s[i] == '\\' && i + 1 < s.size()) {
          if (s[i + 1] == '\n') ++line, line_start = i + 2;
          i += 2;
          continue;
        }
        if (s[i] == '\n') {
          if (!triple) break;
          ++line, line_start = i + 1;
        }
        if (triple ? s.substr(i, 3) == std::string(3, c) : s[i] == c) {
          i += triple ? 3 : 1;
          while (triple && i < s.size() && s[i] == c) ++i; // up to two quotes may end the content
          break;
        }
        ++i;
      }
      continue;
    }
    if (mode == Mode::key) {
      if (c == '[' && open.empty() && !header) {
        header = true, level = key_level = 0; // [table] or [[array]]: its parts count as a key's, from the top
      } else if (c == '.') {
        deeper(i, ++key_level + level + 1);
      } else if (c == '=' && !header) {
        mode = Mode::value;
      } else if (c == '}' && !open.empty() && open.back().first == '{') {
        level = open.back().second, open.pop_back(), mode = Mode::value;
      }
      ++i;
      continue;
    }
    if (c == '[' || c == '{') {
      const std::size_t outside = level;
      level += key_level + 1, key_level = 0;
      deeper(i, level);
      open.emplace_back(c, outside);
      if (c == '{') mode = Mode::key;
    } else if ((c == ']' || c == '}') && !open.empty()) {
      level = open.back().second, open.pop_back(), key_level = 0;
    } else if (c == ',' && !open.empty() && open.back().first == '{') {
      mode = Mode::key, key_level = 0;
    }
    ++i;
  }
}

// The directory a stack file named `origin` stands in: its parent when that is
// a directory, else the current directory (standard input, an inline text).
inline std::filesystem::path directory_of(std::string_view origin) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir;
  const fs::path parent = fs::absolute(fs::path(origin), ec).parent_path();
  dir = !ec && !origin.empty() && fs::is_directory(parent, ec) ? parent : fs::current_path();
  return detail::normal_directory(dir);
}

inline std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

inline std::string owner_name(uid_t uid) {
  const passwd* pw = ::getpwuid(uid);
  return "uid " + std::to_string(uid) + (pw ? " (" + std::string(pw->pw_name) + ")" : std::string());
}

inline std::string mode_text(mode_t mode) {
  std::string s = "0000";
  for (int k = 0; k < 4; ++k) s[3 - static_cast<std::size_t>(k)] = static_cast<char>('0' + ((mode >> (3 * k)) & 7));
  return s;
}

// What distrust() judges: the found stack file, the .env beside it, or their directory.
enum class Judged { file, dotenv, directory };

// Why a found file (or its directory) must not be trusted, or nothing: OpenSSH's
// StrictModes. The fix it names fits what is judged: -f vouches for a stack
// file, never for a .env (which -f still reads as it is).
inline std::optional<std::string> distrust(const struct ::stat& st, const std::string& path, Judged judged) {
  const bool directory = judged == Judged::directory;
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return "it belongs to another user, " + owner_name(st.st_uid) +
           (judged == Judged::dotenv ? std::string(", who decides the values it feeds the stack file: read it, then chown it "
                                                   "to yourself (or root) if you trust it, or remove it")
                                     : ": if you trust it, name " + std::string(directory ? "the file" : "it") + " with -f");
  const bool sticky = (st.st_mode & S_ISVTX) != 0;
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(directory && sticky)) {
    const char* who = (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "its group and others"
                      : (st.st_mode & S_IWGRP)                          ? "its group"
                                                                        : "others";
    return std::string(who) + " can write it (mode " + mode_text(st.st_mode & 07777) + "), so they can replace what runs: chmod go-w '" +
           path + "'" + (directory ? ", or name the file with -f" : judged == Judged::file ? ", or name it with -f" : "");
  }
  return std::nullopt;
}

// Reads what `fd` holds, at most stack_file_size_limit bytes.
inline std::string read_capped(int fd, const std::string& file) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return out;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) { // a pipe left non-blocking by whoever made it
        pollfd p{fd, POLLIN, 0};
        (void)::poll(&p, 1, -1);
        continue;
      }
      throw StackFileError(file, "cannot read: " + std::generic_category().message(errno));
    }
    if (out.size() + static_cast<std::size_t>(n) > stack_file_size_limit)
      throw StackFileError(file, "cannot read: it holds more than " + std::to_string(stack_file_size_limit >> 20) +
                                     " MiB, the most a stack file or its .env may hold");
    out.append(buf, static_cast<std::size_t>(n));
  }
}

[[noreturn]] inline void refuse(const std::string& file, std::string_view why, bool dotenv = false) {
  throw StackFileError(file, std::string(dotenv ? "refusing it (beside a stack file found by the search, not named): "
                                                : "refusing it (found by the search, not named): ") +
                                 std::string(why));
}

inline std::string symlink_refusal(bool dotenv) {
  return dotenv ? "it is a symlink, and beside a found stack file the search reads a regular .env only (another user "
                  "may control where it points): put the variables it should set in a regular file of that name"
                : "it is a symlink, and the search takes regular files only (another user may control where it "
                  "points): name the file it points to with -f";
}

// Opens `name` in the directory `dirfd` once and reads it. A found file must be a
// regular file, not a symlink, and pass distrust(); `.env` (regular_only) too,
// whoever named the stack file. Nothing when it is absent and `optional`.
inline std::optional<std::string> read_in(int dirfd, const char* name, const std::string& path, Trust trust,
                                          bool regular_only, bool optional) {
  const bool found = trust == Trust::found;
  struct ::stat st {};
  // A first look without opening: a FIFO or a device is never opened (opening
  // one may block, or act); the descriptor's own fstat below is what counts.
  if (::fstatat(dirfd, name, &st, found ? AT_SYMLINK_NOFOLLOW : 0) != 0) {
    const int e = errno;
    if (e == ENOENT && optional) return std::nullopt;
    throw StackFileError(path, "cannot read: " + std::generic_category().message(e));
  }
  if (found && S_ISLNK(st.st_mode))
    refuse(path, symlink_refusal(regular_only), regular_only);
  if (S_ISDIR(st.st_mode) && !regular_only)
    throw StackFileError(path, "cannot read: it is a directory; name the stack file inside it");
  const bool regular = S_ISREG(st.st_mode);
  if ((found || regular_only) && !regular)
    throw StackFileError(path, "cannot read: it is " + kind_of(st.st_mode) + ", not a regular file" +
                                   (found && !regular_only ? std::string(": name a pipe with -f") : std::string()));
  int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  if (found) flags |= O_NOFOLLOW;
  if (regular) flags |= O_NONBLOCK; // swapped for a FIFO since the look above: the open must not wait
  const detail::posix::Fd fd(::openat(dirfd, name, flags));
  if (!fd) {
    const int e = errno;
    if (e == ENOENT && optional) return std::nullopt;
    if (e == ELOOP && found)
      refuse(path, symlink_refusal(regular_only), regular_only);
    throw StackFileError(path, "cannot read: " + std::generic_category().message(e));
  }
  if (::fstat(fd.get(), &st) != 0) throw StackFileError(path, "cannot read: " + std::generic_category().message(errno));
  if (S_ISDIR(st.st_mode) && !regular_only)
    throw StackFileError(path, "cannot read: it is a directory; name the stack file inside it");
  if ((found || regular_only || regular) && !S_ISREG(st.st_mode))
    throw StackFileError(path, "cannot read: it is " + kind_of(st.st_mode) + ", not a regular file");
  if (found)
    if (const auto why = distrust(st, path, regular_only ? Judged::dotenv : Judged::file)) refuse(path, *why, regular_only);
  return read_capped(fd.get(), path);
}

} // namespace detail::stack_file

/// Reads a stack file and the `.env` beside it for load_stack/stack_config:
/// each opened once, checked through its descriptor (see Trust), and read up to
/// stack_file_size_limit bytes. With Trust::named, `-` is standard input (its
/// directory: the current one) and a pipe is read as a file. `.env` is always a
/// regular file; one that is absent is no error. StackFileError (`FILE: ...`)
/// for a file that cannot be read or is refused, saying why and what to do.
inline StackFileSource read_stack_file(const std::filesystem::path& file, Trust trust = Trust::named) {
  namespace sf = detail::stack_file;
  StackFileSource source;
  source.file = file.string();
  if (source.file.empty()) throw StackFileError(source.file, "cannot read: the file name is empty");
  const bool stdin_named = trust == Trust::named && source.file == "-";
  if (stdin_named) source.file = "<stdin>";
  source.directory = stdin_named ? sf::directory_of("") : sf::directory_of(source.file);
  // The directory the file is in, held: the file and .env are opened inside it.
  const std::filesystem::path parent = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const detail::posix::Fd dir(::open(stdin_named ? "." : parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir)
    throw StackFileError(source.file, "cannot read: its directory " + (stdin_named ? std::string(".") : parent.string()) +
                                          ": " + std::generic_category().message(errno));
  if (trust == Trust::found) {
    struct ::stat st {};
    if (::fstat(dir.get(), &st) != 0) throw StackFileError(source.file, "cannot read: " + std::generic_category().message(errno));
    if (const auto why = sf::distrust(st, parent.string(), sf::Judged::directory))
      sf::refuse(source.file, "its directory " + parent.string() + ": " + *why);
  }
  if (stdin_named) {
    source.text = sf::read_capped(STDIN_FILENO, source.file);
  } else {
    const std::string name = file.filename().string();
    if (name.empty() || name == "." || name == "..")
      throw StackFileError(source.file, "cannot read: it is a directory; name the stack file inside it");
    source.text = *sf::read_in(dir.get(), name.c_str(), source.file, trust, false, false);
  }
  source.dotenv_file = (stdin_named ? source.directory / ".env" : parent / ".env").string();
  source.dotenv = sf::read_in(dir.get(), ".env", source.dotenv_file, trust, true, true);
  return source;
}

class Flavors;
namespace detail::stack_file {
// parse_stack, and with `config` also the stack as it will run (stack_config).
DynamicStack parse(const StackFileSource& source, const Flavors& flavors, std::string* config);
} // namespace detail::stack_file

/// One table of a stack file, as a flavour's factory reads it: strict typed
/// accessors that expand `${VAR}` in every string, resolve paths against the
/// file's directory, and throw StackFileError at the offending place, saying
/// what is valid. Every key a factory asks for is a valid key; once the factory
/// returns, any other key in the table (or in a table it got from `table()`) is
/// an error that lists the valid ones. Valid only during the factory's call.
class StackFileTable {
public:
  /// The component's role (the table's key under [components]).
  [[nodiscard]] const std::string& role() const noexcept { return role_; }
  /// The directory relative paths resolve against (the stack file's).
  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return ctx_->directory; }
  /// The stack's name (the file's `name`, or its directory's name), for
  /// components that name what they create after it (containers).
  [[nodiscard]] const std::string& stack_name() const noexcept { return ctx_->stack_name; }
  /// How errors name this table: `component 'cache' (local_daemon)` (the
  /// flavour as the file names it), or `'ready' of component 'cache'
  /// (local_daemon)` for a table from table(). For a factory's own messages:
  /// `t.fail(t.what() + " lacks the required key 'command' (...)")`.
  [[nodiscard]] const std::string& what() const noexcept { return record_->what; }
  /// The key is present.
  [[nodiscard]] bool contains(std::string_view key) const {
    ask(key);
    return node(key) != nullptr;
  }

  /// A required string.
  [[nodiscard]] std::string string(std::string_view key) const {
    if (auto s = optional_string(key)) return std::move(*s);
    missing(key, "a string");
  }
  /// An optional string.
  [[nodiscard]] std::optional<std::string> optional_string(std::string_view key) const {
    const toml::node* n = checked(key, toml::node_type::string, "a string");
    if (!n) return std::nullopt;
    std::string value = ctx_->expand(n->ref<std::string>(), place(*n), described(key));
    note(key, detail::stack_file::toml_string(value));
    return value;
  }
  /// An optional boolean (`true` or `false`).
  [[nodiscard]] std::optional<bool> optional_bool(std::string_view key) const {
    const toml::node* n = checked(key, toml::node_type::boolean, "true or false");
    if (!n) return std::nullopt;
    const bool value = n->ref<bool>();
    note(key, value ? "true" : "false");
    return value;
  }
  /// An optional array of strings (empty when absent).
  [[nodiscard]] std::vector<std::string> strings(std::string_view key) const {
    std::vector<std::string> out;
    const toml::node* n = checked(key, toml::node_type::array, "an array of strings");
    if (!n) return out;
    for (const toml::node& e : *n->as_array()) {
      if (!e.is_string())
        fail_at(place(e), "'" + std::string(key) + "' of " + record_->what + " must hold only strings, not " +
                              detail::stack_file::type_name(e));
      out.push_back(ctx_->expand(e.ref<std::string>(), place(e), described(key)));
    }
    std::string text = "[";
    for (const auto& e : out) text += (text.size() > 1 ? ", " : "") + detail::stack_file::toml_string(e);
    note(key, text + "]");
    return out;
  }
  /// An optional table of strings, in key order: environment variables (`env`),
  /// so a key is never empty and holds no '=' or NUL byte.
  [[nodiscard]] std::map<std::string, std::string> string_map(std::string_view key) const {
    std::map<std::string, std::string> out;
    const toml::node* n = checked(key, toml::node_type::table, "a table of strings, such as { KEY = \"value\" }");
    if (!n) return out;
    for (const auto& [k, v] : *n->as_table()) {
      const std::string entry = std::string("'").append(key).append(".").append(k.str()).append("' of ").append(record_->what);
      if (k.str().empty() || k.str().find('=') != std::string_view::npos || k.str().find('\0') != std::string_view::npos)
        fail_at(detail::stack_file::place_of(k.source()),
                "'" + std::string(key) + "' of " + record_->what + " has the key " + detail::stack_file::toml_string(k.str(), false) +
                    ": an environment variable's name is not empty and holds no '=' or NUL byte; rename it");
      if (!v.is_string()) fail_at(place(v), entry + " must be a string, not " + detail::stack_file::type_name(v));
      out.emplace(std::string(k.str()), ctx_->expand(v.ref<std::string>(), place(v), entry));
    }
    std::string text;
    for (const auto& [k, v] : out)
      text += (text.empty() ? "{ " : ", ") + detail::stack_file::toml_key(k) + " = " + detail::stack_file::toml_string(v);
    note(key, text.empty() ? "{}" : text + " }");
    return out;
  }
  /// An optional duration: a string such as "250ms", "10s", "2m" or "1h".
  [[nodiscard]] std::optional<std::chrono::milliseconds> duration(std::string_view key) const {
    static constexpr std::string_view syntax =
        "a duration: a whole number followed by ms, s, m or h, such as \"250ms\", \"10s\", \"2m\"";
    const toml::node* n = checked(key, toml::node_type::string, syntax);
    if (!n) return std::nullopt;
    const std::string text = ctx_->expand(n->ref<std::string>(), place(*n), described(key));
    long long value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    long long scale = 0;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    constexpr long long limit = 1'000'000'000'000LL; // about 31 years in ms: no overflow below
    if (ec != std::errc{} || end == text.data() || text[0] == '-' || scale == 0 || value > limit / scale)
      fail_at(place(*n), "'" + std::string(key) + "' of " + record_->what + " is \"" + text + "\", not " +
                             std::string(syntax));
    note(key, detail::stack_file::toml_string(text));
    return std::chrono::milliseconds(value * scale);
  }
  /// An optional TCP port (1-65535): an integer, or a string that is one `${...}`
  /// standing for the number.
  [[nodiscard]] std::optional<std::uint16_t> port(std::string_view key) const {
    ask(key);
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    const std::string what = "'" + std::string(key) + "' of " + record_->what;
    long long value = 0;
    if (n->is_integer()) {
      value = n->ref<std::int64_t>();
    } else if (n->is_string() && is_one_variable(n->ref<std::string>())) {
      const std::string text = ctx_->expand(n->ref<std::string>(), place(*n), described(key));
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
        fail_at(place(*n), what + " is \"" + text + "\" once expanded, not a port number (1-65535)");
    } else {
      fail_at(place(*n), what + " must be a port number (1-65535), or a string holding just one ${VAR} "
                                "that gives one, not " + detail::stack_file::type_name(*n));
    }
    if (value < 1 || value > 65535)
      fail_at(place(*n), what + " is " + std::to_string(value) + ": a port is between 1 and 65535");
    note(key, std::to_string(value));
    return static_cast<std::uint16_t>(value);
  }
  /// An optional integer: a TOML integer, or a string that is one `${...}`
  /// standing for one. The caller checks its range (with fail(key, ...)).
  [[nodiscard]] std::optional<long long> optional_integer(std::string_view key) const {
    ask(key);
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    long long value = 0;
    if (n->is_integer()) {
      value = n->ref<std::int64_t>();
    } else if (n->is_string() && is_one_variable(n->ref<std::string>())) {
      const std::string text = ctx_->expand(n->ref<std::string>(), place(*n), described(key));
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
        fail_at(place(*n), described(key) + " is \"" + text + "\" once expanded, not a whole number");
    } else {
      fail_at(place(*n), described(key) + " must be a whole number, or a string holding just one ${VAR} that gives "
                                          "one, not " + detail::stack_file::type_name(*n));
    }
    note(key, std::to_string(value));
    return value;
  }
  /// What the key holds: "string", "integer", "float", "boolean", "array",
  /// "table" or "date"; empty when it is absent. For a key that takes more
  /// than one type (`restart = "always"` or a table): read it then with the
  /// accessor for its type.
  [[nodiscard]] std::string_view kind(std::string_view key) const {
    ask(key);
    const toml::node* n = node(key);
    if (!n) return {};
    switch (n->type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::array: return "array";
    case toml::node_type::table: return "table";
    default: return "date";
    }
  }
  /// For a key this flavour cannot honour: StackFileError at its value with
  /// `message` when it is present. Absent, nothing; either way the key is not
  /// listed as a valid one.
  void refuse(std::string_view key, std::string_view message) const {
    if (const toml::node* n = node(key)) fail_at(place(*n), message);
  }
  /// An optional path, resolved against the file's directory (absolute, normalised).
  [[nodiscard]] std::optional<std::filesystem::path> path(std::string_view key) const {
    const toml::node* n = checked(key, toml::node_type::string, "a path (a string)");
    if (!n) return std::nullopt;
    const std::string text = ctx_->expand(n->ref<std::string>(), place(*n), described(key));
    if (text.empty())
      fail_at(place(*n), "'" + std::string(key) + "' of " + record_->what +
                             " is empty: give a path (relative paths are against the file's directory)");
    std::filesystem::path resolved = detail::normal_directory(ctx_->directory / text); // "dir/" -> "dir"
    note(key, detail::stack_file::toml_string(resolved.string()));
    return resolved;
  }
  /// A path as path() reads it, or `fallback` when the key is absent. Unlike
  /// `path(key).value_or(fallback)`, `stack config` then shows the key with
  /// the fallback, so the stack as it will run names every path it uses (a
  /// default state directory, a working directory). Give an absolute fallback
  /// (such as one under directory()): it is used as it is.
  [[nodiscard]] std::filesystem::path path_or(std::string_view key, std::filesystem::path fallback) const {
    if (auto p = path(key)) return std::move(*p);
    note(key, detail::stack_file::toml_string(fallback.string()));
    return fallback;
  }
  /// An optional nested table (such as `ready`), read with the same rules.
  [[nodiscard]] std::optional<StackFileTable> table(std::string_view key) const {
    const toml::node* n = checked(key, toml::node_type::table, "a table");
    if (!n) return std::nullopt;
    for (const auto& v : record_->values) // asked again: the same record, so `stack config` shows it once
      if (v.key == key && v.table) return StackFileTable(*ctx_, *v.table, role_);
    StackFileTable nested(*ctx_, *n->as_table(), role_, "'" + std::string(key) + "' of " + record_->what);
    record_->values.push_back({std::string(key), {}, nested.record_});
    return nested;
  }

  /// StackFileError at the key's value (or at the table when the key is absent).
  [[noreturn]] void fail(std::string_view key, std::string_view message) const {
    const toml::node* n = node(key);
    fail_at(n ? place(*n) : place(*record_->table), message);
  }
  /// StackFileError at the table.
  [[noreturn]] void fail(std::string_view message) const { fail_at(place(*record_->table), message); }

  /// StackFileError for the first key (in file order) that nobody asked for,
  /// listing the valid keys. Called by the loader once the factory returns.
  void finish() const {
    for (const auto& [k, v] : detail::stack_file::in_file_order(*record_->table)) {
      if (std::find(record_->asked.begin(), record_->asked.end(), k->str()) == record_->asked.end())
        fail_at(detail::stack_file::place_of(k->source()),
                "unknown key '" + std::string(k->str()) + "' in " + record_->what + "; valid keys: " +
                    detail::stack_file::joined(record_->asked));
    }
  }

private:
  friend DynamicStack detail::stack_file::parse(const StackFileSource&, const Flavors&, std::string*);

  StackFileTable(detail::stack_file::Context& ctx, const toml::table& t, std::string role, std::string what)
      : ctx_(&ctx), role_(std::move(role)) {
    ctx.records.push_back(std::make_unique<detail::stack_file::Record>(
        detail::stack_file::Record{&t, std::move(what), {}, {}}));
    record_ = ctx.records.back().get();
  }

  StackFileTable(detail::stack_file::Context& ctx, detail::stack_file::Record& record, std::string role)
      : ctx_(&ctx), record_(&record), role_(std::move(role)) {}

  static detail::stack_file::Place place(const toml::node& n) { return detail::stack_file::place_of(n.source()); }
  [[noreturn]] void fail_at(detail::stack_file::Place p, std::string_view message) const { ctx_->fail(p, message); }

  // What `key` came to, for `stack config` (a key read twice keeps its first reading).
  void note(std::string_view key, std::string toml) const {
    for (const auto& v : record_->values)
      if (v.key == key) return;
    record_->values.push_back({std::string(key), std::move(toml), nullptr});
  }
  static bool is_one_variable(std::string_view s) {
    return s.size() > 3 && s.starts_with("${") && detail::stack_file::Context::closing(s, 0) == s.size() - 1;
  }
  [[nodiscard]] std::string described(std::string_view key) const {
    return "'" + std::string(key) + "' of " + record_->what;
  }
  void ask(std::string_view key) const {
    if (std::find(record_->asked.begin(), record_->asked.end(), key) == record_->asked.end())
      record_->asked.emplace_back(key);
  }
  [[nodiscard]] const toml::node* node(std::string_view key) const { return record_->table->get(key); }
  [[nodiscard]] const toml::node* checked(std::string_view key, toml::node_type type, std::string_view expected) const {
    ask(key);
    const toml::node* n = node(key);
    if (n && n->type() != type)
      fail_at(place(*n), "'" + std::string(key) + "' of " + record_->what + " must be " + std::string(expected) +
                             ", not " + detail::stack_file::type_name(*n));
    return n;
  }
  [[noreturn]] void missing(std::string_view key, std::string_view expected) const {
    fail_at(place(*record_->table), record_->what + " lacks the required key '" + std::string(key) + "' (" +
                                        std::string(expected) + "); valid keys: " +
                                        detail::stack_file::joined(record_->asked));
  }

  detail::stack_file::Context* ctx_;
  detail::stack_file::Record* record_ = nullptr;
  std::string role_;
};

/// The flavours a stack file may name: `flavor = "..."` picks the factory that
/// turns the component's table into a component.
class Flavors {
public:
  /// local_daemon, local_directory, command and container: the shipped components, each
  /// read by the from_table beside it (LocalDaemon<>::from_table, ...).
  [[nodiscard]] static Flavors builtin();

  /// Adds (or replaces) a flavour. `factory(StackFileTable&)` reads the table
  /// and returns a component: any type AnyComponent wraps under a run-time role
  /// (const is_provisioned()/is_running(), any of the four actions). It must
  /// not start or create anything: a stack file with an error creates nothing.
  template <class F> Flavors& add(std::string name, F factory) {
    using C = std::remove_cvref_t<std::invoke_result_t<F&, StackFileTable&>>;
    static_assert(detail::has_queries<C> && !std::is_same_v<C, AnyComponent>,
                  "a flavour's factory must return a component (a type with const is_provisioned() and "
                  "is_running()), not an AnyComponent: the stack file gives it its role and depends_on");
    if (name.empty()) throw Error("stackup: Flavors::add: a flavour needs a name");
    Make make = [f = std::move(factory)](StackFileTable& t, std::vector<std::string> deps) mutable {
      return AnyComponent(t.role(), f(t), std::move(deps));
    };
    for (auto& [n, m] : entries_)
      if (n == name) {
        m = std::move(make);
        return *this;
      }
    entries_.emplace_back(std::move(name), std::move(make));
    return *this;
  }

  /// Adds (or replaces) the flavour `name` whose factory is `C::from_table`:
  /// the schema a component type declares beside it, as the shipped ones do
  /// (`add<LocalDaemon<>>("local_daemon")`). `C::from_table(table)` reads a
  /// StackFileTable and returns a component, with the rules of a factory;
  /// written as a template over the table type (`template <class Table>
  /// static C from_table(const Table&)`), C's header needs no toml++.
  template <class C> Flavors& add(std::string name) {
    static_assert(requires(StackFileTable& t) { C::from_table(t); },
                  "Flavors::add<C>(name): C needs a static from_table(const StackFileTable&) (a template over the "
                  "table type, beside the component) returning the component; or pass a factory: add(name, factory)");
    return add(std::move(name), [](StackFileTable& t) { return C::from_table(t); });
  }

  /// The flavour names, in the order they were added.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.first);
    return out;
  }
  /// Whether a flavour of that name exists.
  [[nodiscard]] bool contains(std::string_view name) const {
    return std::any_of(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == name; });
  }

private:
  friend DynamicStack detail::stack_file::parse(const StackFileSource&, const Flavors&, std::string*);
  using Make = std::function<AnyComponent(StackFileTable&, std::vector<std::string>)>;
  [[nodiscard]] const Make* find(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.first == name) return &e.second;
    return nullptr;
  }
  std::vector<std::pair<std::string, Make>> entries_;
};

// The shipped components, each with its stack-file schema beside it (its from_table).
inline Flavors Flavors::builtin() {
  Flavors f;
  f.add<LocalDaemon<>>("local_daemon");
  f.add<LocalDirectory<>>("local_directory");
  f.add<Command<>>("command");
  f.add<Container<>>("container");
  f.add<Kubernetes<>>("kubernetes");
  return f;
}

inline DynamicStack detail::stack_file::parse(const StackFileSource& source, const Flavors& flavors, std::string* config) {
  namespace sf = detail::stack_file;
  const std::string_view text = source.text, origin = source.file;
  sf::Context ctx;
  ctx.file = std::string(origin);
  ctx.directory = source.directory;
  // .env beside the file (Compose's rules); the environment wins over it.
  if (source.dotenv) ctx.dotenv = sf::parse_dotenv(*source.dotenv, source.dotenv_file);
  sf::bound_depth(text, ctx.file);

  toml::table root;
#if TOML_EXCEPTIONS
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    ctx.fail(sf::place_of(e.source()), "not valid TOML: " + std::string(e.description()));
  }
#else
  toml::parse_result parsed = toml::parse(text, origin);
  if (!parsed) ctx.fail(sf::place_of(parsed.error().source()), "not valid TOML: " + std::string(parsed.error().description()));
  root = std::move(parsed).table();
#endif

  const sf::Place top{1, 1};
  std::string name = ctx.directory.filename().string();
  if (name.empty()) name = "default";
  const toml::table* components = nullptr;
  for (const auto& [k, v] : sf::in_file_order(root)) {
    const std::string_view key = k->str();
    const sf::Place at = sf::place_of(v->source());
    if (key == "version") {
      if (!v->is_integer()) ctx.fail(at, "'version' must be the integer 1, not " + sf::type_name(*v));
      if (v->ref<std::int64_t>() != 1)
        ctx.fail(at, "unsupported version " + std::to_string(v->ref<std::int64_t>()) +
                         ": this stackup reads stack files of version 1");
    } else if (key == "name") {
      if (!v->is_string()) ctx.fail(at, "'name' (the stack's name) must be a string, not " + sf::type_name(*v));
      name = ctx.expand(v->ref<std::string>(), at, "'name'");
      if (name.empty()) ctx.fail(at, "'name' is empty: give the stack a name, or leave it out (default: the directory's name)");
    } else if (key == "components") {
      if (!v->is_table())
        ctx.fail(at, "'components' must be a table of components ([components.<role>]), not " + sf::type_name(*v));
      components = v->as_table();
    } else {
      ctx.fail(sf::place_of(k->source()), "unknown top-level key '" + std::string(key) +
                                              "'; valid keys: version, name, components");
    }
  }

  ctx.stack_name = name;
  std::vector<AnyComponent> parts;
  struct Entry {
    std::string role;
    const toml::array* depends_on;
    const sf::Record* record;
  };
  std::vector<Entry> entries;
  if (components) {
    const std::string flavor_list = sf::joined(flavors.names());
    for (const auto& [k, v] : sf::in_file_order(*components)) {
      std::string role(k->str());
      const sf::Place at = sf::place_of(k->source());
      if (role.empty()) ctx.fail(at, "a component's role cannot be empty: name it [components.<role>]");
      // Roles are what the command line addresses: one it cannot reach is an error here.
      if (role == "stack" || role == "help")
        ctx.fail(at, "a component cannot be named '" + role + "': the command line takes '" + role +
                         "' as its own word (stackctl " + role + " ...); rename the component");
      if (role.front() == '-')
        ctx.fail(at, "component '" + role + "': a role cannot start with '-', which the command line reads as an option; rename it");
      if (std::any_of(role.begin(), role.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
        ctx.fail(at, "component " + sf::toml_string(role, false) +
                         ": a role cannot hold control characters (a NUL byte, a line break, ...); rename it");
      if (!v->is_table())
        ctx.fail(sf::place_of(v->source()), "component '" + role + "' must be a table ([components." + role +
                                                "] or { flavor = ... }), not " + sf::type_name(*v));
      const toml::table& t = *v->as_table();
      const toml::node* flavor_node = t.get("flavor");
      if (!flavor_node)
        ctx.fail(sf::place_of(t.source()), "component '" + role + "' has no flavor: add flavor = one of " + flavor_list);
      if (!flavor_node->is_string())
        ctx.fail(sf::place_of(flavor_node->source()), "'flavor' of component '" + role + "' must be a string (one of " +
                                                          flavor_list + "), not " + sf::type_name(*flavor_node));
      const std::string flavor = ctx.expand(flavor_node->ref<std::string>(), sf::place_of(flavor_node->source()));
      const Flavors::Make* make = flavors.find(flavor);
      if (!make)
        ctx.fail(sf::place_of(flavor_node->source()),
                 "unknown flavor '" + flavor + "' for component '" + role + "'; valid flavors: " + flavor_list);

      StackFileTable table(ctx, t, role, "component '" + role + "' (" + flavor + ")");
      table.ask("flavor");
      table.note("flavor", sf::toml_string(flavor));
      const std::vector<std::string> deps = table.strings("depends_on");
      const toml::node* deps_node = t.get("depends_on");
      entries.push_back({role, deps_node ? deps_node->as_array() : nullptr, table.record_});

      const std::size_t first_record = ctx.records.size() - 1;
      try {
        parts.push_back((*make)(table, deps));
      } catch (const StackFileError&) {
        throw;
      } catch (const std::exception& e) {
        table.fail("component '" + role + "' (" + flavor + "): " + std::string(detail::unprefixed(e.what())));
      }
      for (std::size_t r = first_record; r < ctx.records.size(); ++r) {
        StackFileTable(ctx, *ctx.records[r], role).finish();
      }
    }
  }

  // Definition errors, at the offending depends_on entry.
  const auto entry_place = [&](std::string_view role, std::string_view dependency) -> sf::Place {
    for (const auto& e : entries)
      if (e.role == role && e.depends_on)
        for (const toml::node& d : *e.depends_on)
          if (d.is_string() && ctx.expand(d.ref<std::string>(), sf::place_of(d.source())) == dependency)
            return sf::place_of(d.source());
    return top;
  };
  // A local_directory may take over a directory of a user the stack runs a
  // component as (a data directory owned by postgres), and no other user's.
  std::vector<std::string> users;
  for (const auto& part : parts) {
    std::string user;
    if (const auto* d = part.target<LocalDaemon<>>()) user = d->config().user;
    if (const auto* c = part.target<Command<>>()) user = c->config().user;
    if (!user.empty() && std::find(users.begin(), users.end(), user) == users.end()) users.push_back(user);
  }
  for (auto& part : parts)
    if (auto* d = part.target<LocalDirectory<>>()) d->set_users(users);
  try {
    DynamicStack stack(name, std::move(parts));
    if (config) {
      std::string shown = ctx.file; // in a comment: a line break in the path must not end it
      std::replace_if(shown.begin(), shown.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }, '?');
      *config = "# " + shown + " as it will run: variables expanded, paths resolved,\n"
                "# components in the order 'stack up' acts on them ('stack down': the reverse).\n"
                "name = " + sf::toml_string(name) + "\n";
      const StackView view = stack.view();
      for (const std::string_view role : view.order()) {
        const std::size_t k = view.find(role); // entries are in the stack's declaration order
        *config += "\n[components." + sf::toml_key(entries[k].role) + "]\n" + sf::render(*entries[k].record, false);
      }
    }
    return stack;
  } catch (const StackDefinitionError& e) {
    // At the depends_on entry to remove, or at the state_dir (or path) to change.
    using Kind = StackDefinitionError::Kind;
    const std::vector<std::string>& roles = e.roles();
    sf::Place at = top;
    if ((e.kind() == Kind::unknown_dependency || e.kind() == Kind::cycle) && !roles.empty()) {
      // unknown_dependency: {role, dependency}; a cycle: each depends on the next, the last on the first.
      at = entry_place(roles[0], roles[1 % roles.size()]);
    } else if (e.kind() == Kind::overlapping_paths && roles.size() == 2) {
      // At the second owner's state_dir or path (else the first's, else the second's table).
      const auto key_place = [&](std::string_view role) -> std::optional<sf::Place> {
        const toml::table* t = components ? components->get_as<toml::table>(role) : nullptr;
        if (!t) return std::nullopt;
        for (const std::string_view key : {"state_dir", "path"})
          if (const toml::node* n = t->get(key)) return sf::place_of(n->source());
        return std::nullopt;
      };
      if (auto p = key_place(roles[1])) at = *p;
      else if (auto q = key_place(roles[0])) at = *q;
      else if (const toml::table* t = components ? components->get_as<toml::table>(roles[1]) : nullptr)
        at = sf::place_of(t->source());
    }
    throw StackFileError(ctx.file, at.line, at.column, e);
  }
}

/// Parses a stack file's text. `origin` names it in errors and is taken as the
/// file's path: relative paths, the default state directories, the `.env` file
/// and the default stack name come from its directory when that directory
/// exists, else from the current directory. Creates and starts nothing.
/// StackFileError for any error.
inline DynamicStack parse_stack(std::string_view text, std::string_view origin,
                                const Flavors& flavors = Flavors::builtin()) {
  StackFileSource source;
  source.file = std::string(origin);
  source.directory = detail::stack_file::directory_of(origin);
  source.text = std::string(text);
  source.dotenv_file = (source.directory / ".env").string();
  if (const detail::posix::Fd dir(::open(source.directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)); dir)
    source.dotenv = detail::stack_file::read_in(dir.get(), ".env", source.dotenv_file, Trust::named, true, true);
  return detail::stack_file::parse(source, flavors, nullptr);
}

/// Parses a stack file as read_stack_file read it (see parse_stack).
inline DynamicStack load_stack(const StackFileSource& source, const Flavors& flavors = Flavors::builtin()) {
  return detail::stack_file::parse(source, flavors, nullptr);
}

/// Reads (read_stack_file, Trust::named) and parses a stack file (see
/// parse_stack): relative paths are against its directory, whatever the
/// current directory. StackFileError for a file that cannot be read (`FILE:
/// ...`) and for any error in it (`FILE:LINE:COLUMN: ...`).
inline DynamicStack load_stack(const std::filesystem::path& file, const Flavors& flavors = Flavors::builtin()) {
  return load_stack(read_stack_file(file, Trust::named), flavors);
}

/// The stack `file` describes, as it will run, written as a stack file:
/// variables expanded, relative paths resolved (the shipped flavours' default
/// directories included), components in action order. Parsing it gives the same
/// components, settings and action order (listed in action order, not the
/// file's). What `stackctl stack config` prints; creates and starts nothing.
/// StackFileError as for load_stack.
inline std::string stack_config(const StackFileSource& source, const Flavors& flavors = Flavors::builtin()) {
  std::string config;
  detail::stack_file::parse(source, flavors, &config);
  return config;
}
/// stack_config of the file read_stack_file(file, Trust::named) reads.
inline std::string stack_config(const std::filesystem::path& file, const Flavors& flavors = Flavors::builtin()) {
  return stack_config(read_stack_file(file, Trust::named), flavors);
}

} // namespace stackup
#endif // C++20
