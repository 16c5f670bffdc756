// stackup — a container engine driven through its own command-line client
// (podman or docker): which one to use, running it, reading its Go-template
// output, and turning its failures into errors that name the thing and the
// fix. Used by Container and by the kubernetes flavour's podman engine. Not
// part of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix.hpp>
#include <stackup/detail/query_round.hpp>
#include <stackup/errors.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup::detail::container {

/// The engines stackup drives, by the word a configuration uses for them.
inline constexpr std::string_view engine_words = "\"podman\" or \"docker\"";

/// How to install an engine, for messages.
inline constexpr std::string_view install_hint =
    "install one (Debian/Ubuntu: apt-get install podman; Docker: https://docs.docker.com/engine/install/)";

/// The engine to run: its word ("podman" or "docker") and the program found
/// for it on PATH, once, when it was chosen (run() starts that file, not a
/// second lookup of the name).
struct Engine {
  std::string word;
  std::string program;
  [[nodiscard]] bool is_podman() const noexcept { return word == "podman"; }
};

/// The executable file `name` in a PATH directory, or empty.
inline std::string find_on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (dir.empty()) dir = ".";
    const std::string file = dir + "/" + std::string(name);
    struct ::stat st {};
    if (::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(file.c_str(), X_OK) == 0) return file;
    if (colon == std::string_view::npos) return {};
    rest.remove_prefix(colon + 1);
  }
}

/// Whether `word` names an engine.
inline bool valid_engine(std::string_view word) noexcept { return word == "podman" || word == "docker"; }

/// The engine for `configured` ("podman", "docker", or empty: then
/// $STACKUP_CONTAINER_ENGINE, else podman when it is on PATH, else docker).
/// Error naming `who`, the engine(s) looked for and how to install one.
inline Engine find_engine(std::string_view configured, std::string_view who) {
  const std::string where = "stackup: " + std::string(who) + ": ";
  std::string word(configured);
  std::string from = "engine";
  if (word.empty()) {
    if (const char* env = std::getenv("STACKUP_CONTAINER_ENGINE"); env != nullptr && *env != '\0') {
      word = env;
      from = "$STACKUP_CONTAINER_ENGINE";
    }
  }
  if (!word.empty()) {
    if (!valid_engine(word))
      throw Error(where + from + " is \"" + word + "\": give " + std::string(engine_words));
    std::string program = find_on_path(word);
    if (program.empty())
      throw Error(where + "the container engine " + word + " (" + from + ") is not on PATH: " +
                  std::string(install_hint) + ", or choose the other engine");
    return {word, std::move(program)};
  }
  for (const char* w : {"podman", "docker"})
    if (std::string program = find_on_path(w); !program.empty()) return {w, std::move(program)};
  throw Error(where + "no container engine found: neither podman nor docker is on PATH; " + std::string(install_hint) +
              ", or set engine (or $STACKUP_CONTAINER_ENGINE) to the one you have");
}

/// The last non-empty line of an engine's standard error, without its
/// "Error: " prefix: what it says went wrong.
inline std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  const auto nl = text.rfind('\n');
  std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  for (std::string_view prefix : {"Error: ", "Error response from daemon: ", "error: "})
    if (line.starts_with(prefix)) line.remove_prefix(prefix.size());
  return std::string(line);
}

/// What an engine's failure means, from its standard error.
enum class Failure : unsigned char { other, no_daemon, image_missing, port_taken, name_taken, no_such_container };

inline Failure classify(std::string_view err) {
  const auto has = [&](std::string_view s) { return err.find(s) != std::string_view::npos; };
  if (has("Cannot connect to the Docker daemon") || has("Is the docker daemon running") ||
      has("permission denied while trying to connect to the Docker daemon") ||
      has("unable to connect to Podman socket") || has("Cannot connect to Podman"))
    return Failure::no_daemon;
  if (has("address already in use") || has("port is already allocated")) return Failure::port_taken;
  if (has("is already in use") || has("already in use by")) return Failure::name_taken;
  if (has("no such container") || has("No such container")) return Failure::no_such_container;
  if (has("image not known") || has("No such image") || has("manifest unknown") || has("not found") ||
      has("pinging container registry") || has("no such host") || has("connection refused") ||
      has("requested access to the resource is denied") || has("pull access denied"))
    return Failure::image_missing;
  return Failure::other;
}

/// The result of one engine call.
using Result = posix::ShellResult;

/// Runs `engine` with `args`; its standard output captured, `input` fed to
/// it. `timeout`: then it is killed. Error when it cannot be started.
inline Result run(const Engine& engine, const std::vector<std::string>& args,
                  std::chrono::milliseconds timeout = std::chrono::minutes(2), std::string_view input = {}) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 1);
  argv.push_back(engine.program);
  argv.insert(argv.end(), args.begin(), args.end());
  return posix::run_program(argv, {.timeout = timeout, .capture_stdout = true, .input = input});
}

/// `podman stop x` as a message shows it (arguments with spaces quoted).
inline std::string shown(const Engine& engine, const std::vector<std::string>& args) {
  std::string out = engine.word;
  for (const auto& a : args)
    out += " " + (a.find_first_of(" \t'\"") == std::string::npos && !a.empty() ? a : "'" + a + "'");
  return out;
}

/// Why a call failed, for messages: the engine's own last line, or how it
/// ended; and, when the engine cannot be reached at all, what to do.
inline std::string why(const Engine& engine, const Result& r) {
  if (r.timed_out) return "it did not finish in time";
  if (r.stopped) return "it was stopped (a stop was requested)";
  std::string line = last_line(r.stderr_tail);
  if (line.empty()) line = "it exited with status " + std::to_string(r.exit.status);
  if (classify(r.stderr_tail) == Failure::no_daemon)
    line += " — the " + engine.word + " daemon is not reachable: start it (e.g. `systemctl start " + engine.word +
            "`), check that this user may use it, or use the other engine (engine = \"" +
            (engine.is_podman() ? "docker" : "podman") + "\")";
  return line;
}

/// `text` cut at `sep`: every field kept, empty ones too (an empty text is one
/// empty field).
inline std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  while (true) {
    const auto at = text.find(sep);
    out.emplace_back(text.substr(0, at));
    if (at == std::string_view::npos) return out;
    text.remove_prefix(at + 1);
  }
}

/// The lines of an engine's output, without empty ones.
inline std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  for (auto& l : split(text, '\n')) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (!l.empty()) out.push_back(std::move(l));
  }
  return out;
}

/// The value of label `key` in a `{{.Labels}}` rendering, as podman
/// (`map[k1:v1 k2:v2]`) or docker (`k1=v1,k2=v2`) prints it; empty when it
/// is absent. Exact for values without spaces or commas (stackup's own
/// labels); the keys it looks for are its own.
inline std::string label_value(std::string_view labels, std::string_view key) {
  const bool podman_map = labels.starts_with("map[");
  if (podman_map) {
    labels.remove_prefix(4);
    if (labels.ends_with("]")) labels.remove_suffix(1);
  }
  const char sep = podman_map ? ' ' : ',';
  const char eq = podman_map ? ':' : '=';
  std::size_t at = 0;
  while (at <= labels.size()) {
    const auto end = labels.find(sep, at);
    const std::string_view field = labels.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (field.size() > key.size() && field.starts_with(key) && field[key.size()] == eq)
      return std::string(field.substr(key.size() + 1));
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return {};
}

/// One container as `ps -a` lists it.
struct Listed {
  std::string id, name, status, labels;
  /// "Up 3 seconds (healthy)": running, not paused. Both engines' status text.
  [[nodiscard]] bool up() const {
    return status.starts_with("Up ") && status.find("(Paused)") == std::string::npos &&
           status.find("(paused)") == std::string::npos;
  }
  /// Its healthcheck's verdict: "healthy", "unhealthy", "starting", or empty without one.
  [[nodiscard]] std::string health() const {
    if (status.find("(healthy)") != std::string::npos) return "healthy";
    if (status.find("(unhealthy)") != std::string::npos) return "unhealthy";
    if (status.find("starting)") != std::string::npos) return "starting";
    return {};
  }
  [[nodiscard]] std::string label(std::string_view key) const { return label_value(labels, key); }
};

/// The `ps` format both engines accept (podman's `.State` is a sentence and
/// docker has no `index .Labels`, so status and labels are read as text).
inline constexpr std::string_view ps_format = "{{.ID}}\t{{.Names}}\t{{.Status}}\t{{.Labels}}";

/// Every container (running or not) with label `key`=`value`. Error when the
/// engine fails.
inline std::vector<Listed> list(const Engine& engine, std::string_view key, std::string_view value, std::string_view who) {
  const std::vector<std::string> args{"ps", "-a", "--no-trunc", "--filter", "label=" + std::string(key) + "=" + std::string(value),
                                      "--format", std::string(ps_format)};
  const Result r = run(engine, args, std::chrono::seconds(60));
  if (!r.ok()) throw Error("stackup: " + std::string(who) + ": `" + shown(engine, args) + "` failed: " + why(engine, r));
  std::vector<Listed> out;
  for (const auto& l : lines(r.out)) {
    auto f = split(l, '\t');
    if (f.size() < 4) continue;
    out.push_back({f[0], f[1], f[2], f[3]});
  }
  return out;
}

/// Answers of `list` kept for one query round (detail::QueryRound): within
/// it, every component of one (engine, label value) asks the engine once.
/// A component that changes what the engine would answer forgets the entry.
class ListCache {
public:
  static std::vector<Listed> get(const Engine& engine, std::string_view key, std::string_view value, std::string_view who) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return list(engine, key, value, who);
    const std::string k = cache_key(engine, key, value);
    {
      const std::lock_guard<std::mutex> lock(mutex());
      const auto it = entries().find(k);
      if (it != entries().end() && it->second.first == round) return it->second.second;
    }
    auto rows = list(engine, key, value, who);
    const std::lock_guard<std::mutex> lock(mutex());
    entries()[k] = {round, rows};
    return rows;
  }
  static void forget(const Engine& engine, std::string_view key, std::string_view value) {
    const std::lock_guard<std::mutex> lock(mutex());
    entries().erase(cache_key(engine, key, value));
  }
  /// A component's action changed container `id` as it knows: `change` gets
  /// its row in this round's answer (null when there is none) and returns
  /// whether the row is to go (removed). Saves asking the engine again for
  /// what the action itself did.
  template <class F> static void note(const Engine& engine, std::string_view key, std::string_view value,
                                      const std::string& id, F change) {
    const std::uint64_t round = current_query_round();
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = entries().find(cache_key(engine, key, value));
    if (it == entries().end()) return;
    if (it->second.first != round || round == 0) {
      entries().erase(it);
      return;
    }
    auto& rows = it->second.second;
    for (auto r = rows.begin(); r != rows.end(); ++r)
      if (r->id == id) {
        if (change(&*r)) rows.erase(r);
        return;
      }
  }

private:
  static std::string cache_key(const Engine& engine, std::string_view key, std::string_view value) {
    return engine.program + '\0' + std::string(key) + '\0' + std::string(value);
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::pair<std::uint64_t, std::vector<Listed>>>& entries() {
    static std::map<std::string, std::pair<std::uint64_t, std::vector<Listed>>> e;
    return e;
  }
};

/// One volume as `volume ls` lists it.
struct ListedVolume {
  std::string name, labels;
  [[nodiscard]] std::string label(std::string_view key) const { return label_value(labels, key); }
};

/// Every volume with label `key`=`value`, checked here too (podman joins
/// label filters with "or"). Error when the engine fails.
inline std::vector<ListedVolume> list_volumes(const Engine& engine, std::string_view key, std::string_view value,
                                              std::string_view who) {
  const std::vector<std::string> args{"volume", "ls", "--filter", "label=" + std::string(key) + "=" + std::string(value),
                                      "--format", "{{.Name}}\t{{.Labels}}"};
  const Result r = run(engine, args, std::chrono::seconds(60));
  if (!r.ok()) throw Error("stackup: " + std::string(who) + ": `" + shown(engine, args) + "` failed: " + why(engine, r));
  std::vector<ListedVolume> out;
  for (const auto& l : lines(r.out)) {
    const auto tab = l.find('\t');
    if (tab == std::string::npos) continue;
    ListedVolume v{l.substr(0, tab), l.substr(tab + 1)};
    if (v.label(key) == value) out.push_back(std::move(v));
  }
  return out;
}

/// Answers of `list_volumes` kept for one query round, as ListCache: the
/// components of one stack taken down together list its volumes once.
class VolumeCache {
public:
  static std::vector<ListedVolume> get(const Engine& engine, std::string_view key, std::string_view value,
                                       std::string_view who) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return list_volumes(engine, key, value, who);
    const std::string k = engine.program + '\0' + std::string(key) + '\0' + std::string(value);
    {
      const std::lock_guard<std::mutex> lock(mutex());
      const auto it = entries().find(k);
      if (it != entries().end() && it->second.first == round) return it->second.second;
    }
    auto rows = list_volumes(engine, key, value, who);
    const std::lock_guard<std::mutex> lock(mutex());
    entries()[k] = {round, rows};
    return rows;
  }
  /// A volume was created: the next get asks the engine.
  static void forget(const Engine& engine, std::string_view key, std::string_view value) {
    const std::lock_guard<std::mutex> lock(mutex());
    entries().erase(engine.program + '\0' + std::string(key) + '\0' + std::string(value));
  }
  /// Volume `name` was removed: this round's answer goes on without it.
  static void erase(const Engine& engine, std::string_view key, std::string_view value, std::string_view name) {
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = entries().find(engine.program + '\0' + std::string(key) + '\0' + std::string(value));
    if (it == entries().end()) return;
    if (it->second.first != current_query_round() || current_query_round() == 0) {
      entries().erase(it);
      return;
    }
    std::erase_if(it->second.second, [&](const ListedVolume& v) { return v.name == name; });
  }

private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::pair<std::uint64_t, std::vector<ListedVolume>>>& entries() {
    static std::map<std::string, std::pair<std::uint64_t, std::vector<ListedVolume>>> e;
    return e;
  }
};

/// Whether `name` can be part of a container's name (`[A-Za-z0-9_.-]`,
/// as both engines require), so that the name and the labels read back exactly.
inline bool name_safe(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (const char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

/// FNV-1a, 64 bits: a short, stable digest for a label value (not a defence
/// against an adversary: it only tells whether something changed).
struct Hash {
  std::uint64_t h = 14695981039346656037ULL;
  void add(std::string_view s) {
    for (const char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
    // A separator, so that ("ab", "c") and ("a", "bc") differ.
    h ^= 0xff;
    h *= 1099511628211ULL;
  }
  [[nodiscard]] std::string hex() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 0; i < 16; ++i) out[static_cast<std::size_t>(15 - i)] = digits[(h >> (4 * i)) & 0xf];
    return out;
  }
};

/// A 64-bit FNV-1a hash in 16 hex digits: the settings' fingerprint in a label.
inline std::string fingerprint(std::string_view text) {
  Hash h;
  h.add(text);
  return h.hex();
}

/// A published port as `ports` takes it: `[IP:][HOST:]CONTAINER[/tcp|udp|sctp]`.
struct PortSpec {
  std::string ip{};
  std::uint16_t host = 0; ///< 0: the engine picks one
  std::uint16_t container = 0;
  std::string protocol = "tcp";
};

/// Parses a port spec; empty optional and `why` set when it is not one.
inline std::optional<PortSpec> parse_port(std::string_view spec, std::string& why) {
  const auto number = [](std::string_view s, std::uint16_t& out) {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (const char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v < 1 || v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
  };
  PortSpec p;
  std::string_view s = spec;
  if (const auto slash = s.rfind('/'); slash != std::string_view::npos) {
    p.protocol = std::string(s.substr(slash + 1));
    s = s.substr(0, slash);
    if (p.protocol != "tcp" && p.protocol != "udp" && p.protocol != "sctp") {
      why = "the protocol after '/' must be tcp, udp or sctp";
      return std::nullopt;
    }
  }
  const auto last = s.rfind(':');
  if (last == std::string_view::npos) {
    if (!number(s, p.container)) {
      why = "the container port must be a number from 1 to 65535";
      return std::nullopt;
    }
    return p;
  }
  if (!number(s.substr(last + 1), p.container)) {
    why = "the container port (after the last ':') must be a number from 1 to 65535";
    return std::nullopt;
  }
  std::string_view front = s.substr(0, last);
  const auto colon = front.rfind(':');
  const std::string_view host = colon == std::string_view::npos ? front : front.substr(colon + 1);
  if (colon != std::string_view::npos) {
    p.ip = std::string(front.substr(0, colon));
    if (p.ip.empty() || p.ip.find_first_of(" \t") != std::string::npos) {
      why = "the address before the host port is empty or holds a space";
      return std::nullopt;
    }
  }
  if (!(host.empty() && colon != std::string_view::npos) && !number(host, p.host)) {
    why = "the host port must be a number from 1 to 65535 (port ranges are not supported)";
    return std::nullopt;
  }
  return p;
}

} // namespace stackup::detail::container
