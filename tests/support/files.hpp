// Tests on the real file system: a scratch directory, and a file read or written
// in one call.
#pragma once

#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <ios>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

namespace files {

// A fresh directory /tmp/stackup-<prefix>-XXXXXX, removed with everything in it.
// Its own permissions are given back first: a test may have taken them away.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(std::string_view prefix) {
    std::string tmpl = "/tmp/stackup-" + std::string(prefix) + "-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// The whole content of `p`, byte for byte; nullopt when it cannot be opened.
inline std::optional<std::string> slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Replaces the content of `p` with `content` (REQUIREs that it was written).
inline void spit(const std::filesystem::path& p, std::string_view content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

} // namespace files
