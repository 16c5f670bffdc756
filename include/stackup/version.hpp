// stackup — bring a stack of infrastructure components up and down.
// SPDX-License-Identifier: MIT
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "stackup requires C++20: compile with -std=c++20 (or link the CMake target stackup::stackup, which sets cxx_std_20)."
#endif

#define STACKUP_VERSION_MAJOR 0
#define STACKUP_VERSION_MINOR 2
#define STACKUP_VERSION_PATCH 0
// Major * 10000 + minor * 100 + patch, for `#if STACKUP_VERSION >= ...`.
#define STACKUP_VERSION (STACKUP_VERSION_MAJOR * 10000 + STACKUP_VERSION_MINOR * 100 + STACKUP_VERSION_PATCH)
