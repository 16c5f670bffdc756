// stackup — POSIX internals of the shipped components: log tails for error messages.
// One part of `detail::posix`, assembled in <stackup/detail/posix.hpp>. Not part
// of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/probes.hpp>

namespace stackup::detail {

// Compiled only where an action calls it; see <stackup/detail/posix.hpp>.
template <class = void> struct PosixLogs : PosixProbes<> {

// ---- logs -----------------------------------------------------------------------------

/// The last `max_lines` lines of `name` in `dirfd` from byte `from` on (at most
/// the last 4 KiB), each indented, for error messages. Empty if there are none.
static std::string log_tail(int dirfd, const char* name, off_t from, std::size_t max_lines = 15) {
  Fd fd = open_own_file(dirfd, name, O_RDONLY);
  if (!fd) return {};
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || st.st_size <= from) return {};
  const off_t start = std::max<off_t>(from, st.st_size - 4096);
  std::string text(static_cast<std::size_t>(st.st_size - start), '\0');
  const ssize_t n = ::pread(fd.get(), text.data(), text.size(), start);
  if (n <= 0) return {};
  text.resize(static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  if (start > from && !lines.empty()) lines.erase(lines.begin()); // cut mid-line
  std::string out;
  for (std::size_t i = lines.size() > max_lines ? lines.size() - max_lines : 0; i < lines.size(); ++i) {
    out += "\n    ";
    out += lines[i];
  }
  return out;
}

/// The last lines of a captured text, indented like log_tail.
static std::string text_tail(std::string_view text, std::size_t max_lines = 15) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::size_t begin = text.size();
  for (std::size_t lines = 0; begin > 0; --begin) {
    if (text[begin - 1] == '\n' && ++lines == max_lines) break;
  }
  std::string out;
  std::string_view rest = text.substr(begin);
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    out += "\n    ";
    out += rest.substr(0, nl);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

}; // struct PosixLogs

} // namespace stackup::detail
