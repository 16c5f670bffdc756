// stackup — what the kubernetes flavour needs besides its component: the hash
// of its manifests and settings, the files a manifest entry stands for, and the
// reading of the line-per-object answers it asks kubectl and podman for
// (jsonpath and --format templates: no YAML or JSON parser of ours). Not part of
// the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/container_engine.hpp>
#include <stackup/detail/query_round.hpp>
#include <stackup/errors.hpp>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace stackup::detail::kube {

/// The podman that runs manifests here: found as the container flavour finds
/// its engine (an error naming the component and how to install podman).
inline std::string podman_program(std::string_view who) { return container::find_engine("podman", who).program; }

/// The files a manifest entry stands for, as kubectl reads them: a file as it
/// is; a directory's *.yaml, *.yml and *.json files (not its subdirectories),
/// in name order. Error naming the entry and the fix when it is missing or
/// names no manifest.
inline std::vector<std::filesystem::path> manifest_files(const std::filesystem::path& entry, std::string_view who) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(entry, ec);
  if (ec || !fs::exists(st))
    throw Error("stackup: " + std::string(who) + ": manifest '" + entry.string() +
                "' does not exist: fix 'manifests' (relative paths are against the working directory, for a stack "
                "file its directory)");
  if (!fs::is_directory(st)) return {entry};
  std::vector<fs::path> out;
  // By path, on purpose: manifests are named by the stack file, which is read
  // only when it is trusted (StrictModes), and what is read is only ever sent
  // to the engine the same user drives; nothing is removed or written here.
  for (const auto& e : fs::directory_iterator(entry, ec)) {
    const auto ext = e.path().extension();
    if ((ext == ".yaml" || ext == ".yml" || ext == ".json") && e.is_regular_file()) out.push_back(e.path());
  }
  if (ec)
    throw Error("stackup: " + std::string(who) + ": cannot list manifest directory '" + entry.string() +
                "': " + ec.message());
  if (out.empty())
    throw Error("stackup: " + std::string(who) + ": manifest directory '" + entry.string() +
                "' holds no *.yaml, *.yml or *.json file: add the manifests, or fix 'manifests'");
  std::sort(out.begin(), out.end());
  return out;
}


/// The bytes of a manifest file. Error naming it when it cannot be read.
inline std::string read_manifest(const std::filesystem::path& file, std::string_view who) {
  // By path (see manifest_files): the bytes read are the bytes hashed and
  // applied, from one open; nothing is decided on a second look.
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("stackup: " + std::string(who) + ": cannot read manifest '" + file.string() + "'");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Cutting text into fields and lines, as for the container engines' answers.
using container::lines;
using container::split;

/// A whole number >= 0 from kubectl's answer; -1 for an empty field (absent).
inline long long number(std::string_view s) {
  if (s.empty()) return -1;
  long long v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9' || v > 1'000'000'000) return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

/// Whether `v` is a valid Kubernetes label value that is not empty: at most 63
/// characters, [A-Za-z0-9._-], starting and ending with a letter or digit.
inline bool label_value(std::string_view v) {
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (v.empty() || v.size() > 63 || !alnum(v.front()) || !alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(), [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

/// The lower-case form of an ASCII word (a kind, for `kubectl get`).
inline std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

/// One engine answer kept for one query round (detail::QueryRound), shared by
/// every component that asks the same question (the same key: kubectl, its
/// context, namespace and stack; or the podman program): within a round, a
/// stack's components ask once. `kinds`: what the answer covers (the object
/// kinds it lists). A component that changes what the engine would answer
/// forgets the entry; outside a round nothing is kept.
class RoundCache {
public:
  struct Entry {
    std::uint64_t round = 0;
    std::vector<std::string> kinds{};
    std::string text{};
  };
  /// The entry for `key` from the current round, if any.
  static std::optional<Entry> find(const std::string& key) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return std::nullopt;
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = entries().find(key);
    if (it == entries().end() || it->second.round != round) return std::nullopt;
    return it->second;
  }
  /// Keeps `text` as the answer for `key` in the current round (none open: nothing).
  static void store(const std::string& key, std::vector<std::string> kinds, std::string text) {
    const std::uint64_t round = current_query_round();
    if (round == 0) return;
    const std::lock_guard<std::mutex> lock(mutex());
    for (const auto& k : kinds) add(known()[key], k);
    entries()[key] = {round, std::move(kinds), std::move(text)};
  }
  /// Every kind asked for under `key` so far in this process: a later round
  /// asks for all of them at once, so that components with different kinds
  /// still share one call.
  static std::vector<std::string> known_kinds(const std::string& key) {
    const std::lock_guard<std::mutex> lock(mutex());
    const auto it = known().find(key);
    return it == known().end() ? std::vector<std::string>{} : it->second;
  }
  static void forget(const std::string& key) {
    const std::lock_guard<std::mutex> lock(mutex());
    entries().erase(key);
  }
  /// Adds `k` to `kinds` unless it is there.
  static void add(std::vector<std::string>& kinds, const std::string& k) {
    if (!k.empty() && std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
  }

private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, Entry>& entries() {
    static std::map<std::string, Entry> e;
    return e;
  }
  static std::map<std::string, std::vector<std::string>>& known() {
    static std::map<std::string, std::vector<std::string>> k;
    return k;
  }
};

/// `t` as RFC 3339 in UTC with nanoseconds ("2026-12-08T03:28:21.123456789Z"):
/// what `kubectl logs --since-time` and `podman logs --since` take.
inline std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  long long secs = ns / 1'000'000'000;
  long long frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  const auto tt = static_cast<::time_t>(secs);
  ::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

} // namespace stackup::detail::kube
