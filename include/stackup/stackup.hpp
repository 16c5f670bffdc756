// stackup — the only include you need for stacks, components and their output.
// Opt-in beside it: <stackup/cli.hpp> (the command-line runner, cli::run) and
// <stackup/stack_file.hpp> (stack files; needs toml++).
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>
// Below C++20, version.hpp has just issued its #error; skip the rest so that it is
// the only diagnostic rather than the first of hundreds. Add new headers inside.
#if defined(__cplusplus) && __cplusplus >= 202002L
#include <stackup/component.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/options.hpp>
#include <stackup/stack.hpp>
#include <stackup/any_component.hpp>
#include <stackup/dynamic_stack.hpp>
#include <stackup/parallel.hpp>
#include <stackup/format.hpp>
#include <stackup/stack_lock.hpp>
// The shipped components need Linux (/proc); elsewhere define STACKUP_NO_COMPONENTS.
#if !defined(STACKUP_NO_COMPONENTS)
#include <stackup/components/local_daemon.hpp>
#include <stackup/components/local_directory.hpp>
#include <stackup/components/command.hpp>
#include <stackup/components/container.hpp>
#include <stackup/components/kubernetes.hpp>
#endif
#endif // C++20: add new headers above this line
