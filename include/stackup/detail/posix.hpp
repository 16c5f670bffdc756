// stackup — POSIX internals of the shipped components, assembled from their parts
// in detail/posix/: files, paths, directories, processes, sockets, spawn, probes,
// logs (each part builds on the ones before it). Not part of the public API.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/detail/posix/logs.hpp>

namespace stackup::detail {

// A class template used as a namespace (`detail::posix::...`): its functions are
// compiled only in a file that calls them (a component's action), not in every
// file that includes a component header (the umbrella: 0.15 s less with g++).
// Each part is a class template of its own, deriving from the part before it
// (files <- paths <- directories <- processes <- sockets <- spawn <- probes <-
// logs), so a part names what the earlier ones define unqualified, and
// `posix::name` finds any of them.
template <class = void> struct Posix : PosixLogs<> {};

using posix = Posix<>;

} // namespace stackup::detail
