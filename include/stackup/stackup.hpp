// stackup — the only include you need.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/version.hpp>
#include <stackup/component.hpp>
#include <stackup/errors.hpp>
#include <stackup/events.hpp>
#include <stackup/stack.hpp>
#include <stackup/format.hpp>
#include <stackup/cli.hpp>
