// stackup — one owner per path: the check both kinds of stack run when they are
// built, on what their components list with `owned_paths()`.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackup::detail {

/// One path a component owns: the path, and the component's listing index.
struct OwnedPath {
  std::string_view path;
  std::size_t owner;
};

inline std::string_view without_trailing_slash(std::string_view p) noexcept {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  return p;
}

/// `inner` is `outer` or lies inside it, compared lexically (absolute, normal paths).
inline bool path_within(std::string_view inner, std::string_view outer) noexcept {
  inner = without_trailing_slash(inner);
  outer = without_trailing_slash(outer);
  if (!inner.starts_with(outer)) return false;
  return inner.size() == outer.size() || outer == "/" || inner[outer.size()] == '/';
}

/// Path order with '/' before every other byte: a path's descendants then follow
/// it without a gap ("/a/b", "/a/b/c", "/a/b-c").
inline bool path_before(std::string_view a, std::string_view b) noexcept {
  const auto key = [](char c) { return c == '/' ? 0 : static_cast<unsigned char>(c) + 1; };
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [&](char x, char y) { return key(x) < key(y); });
}

/// Two components whose paths overlap, in listing order (`first` < `second`):
/// the paths are views of the ones given, without a trailing slash.
struct OwnedClash {
  bool found = false;
  std::size_t first = 0, second = 0;
  std::string_view first_path, second_path;
};

/// The clash that keeps these components from sharing a stack (found is false if
/// none): two components own the same path, or one owns a path inside another's.
/// O(P²) for P paths (one or two per component).
inline OwnedClash owned_path_clash(std::vector<OwnedPath> paths) {
  if (paths.size() < 2) return {};
  for (auto& p : paths) p.path = without_trailing_slash(p.path);
  // Insertion sort: a stack owns a few paths, and <algorithm> would cost every
  // file that includes <stackup/stack.hpp> more than the sort ever takes.
  const auto before = [](const OwnedPath& a, const OwnedPath& b) {
    if (a.path == b.path) return a.owner < b.owner;
    return path_before(a.path, b.path);
  };
  for (std::size_t i = 1; i < paths.size(); ++i)
    for (std::size_t j = i; j > 0 && before(paths[j], paths[j - 1]); --j) std::swap(paths[j], paths[j - 1]);
  // A sweep in that order keeping the chain of paths that hold the current one:
  // each held by the one before it, so all of one owner until a clash is found.
  std::vector<OwnedPath> chain;
  for (const OwnedPath& p : paths) {
    while (!chain.empty() && !path_within(p.path, chain.back().path)) chain.pop_back();
    if (chain.empty() || chain.back().owner == p.owner) {
      chain.push_back(p);
      continue;
    }
    OwnedPath a = chain.back(), b = p;
    // Named in listing order: the second is the one to move.
    if (b.owner < a.owner) std::swap(a, b);
    return {true, a.owner, b.owner, a.path, b.path};
  }
  return {};
}

} // namespace stackup::detail
