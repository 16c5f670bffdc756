#!/usr/bin/env python3
"""Generate single_include/stackup/stackup.hpp (and cli.hpp) from include/.

Starting from the umbrella header include/stackup/stackup.hpp, every
`#include <stackup/...>` is replaced by the text of that header, the first time
it is met (so each header appears once, after the headers it includes: dependency
order). System and fmt includes are left as they are. The `#pragma once` (or
classic include guard) of each inlined header is dropped; the result has one
`#pragma once` of its own. A header with neither (such as detail/macro_scope.hpp,
meant to be textually repeated) is inlined at every include, as the preprocessor
would; so are the parts of cli.hpp under detail/cli/, whose guard comes after
their `#include <stackup/cli.hpp>` (the guard stays in their text). The output depends only on the headers' contents, so running the script
twice gives the same bytes.

The command-line runner, <stackup/cli.hpp>, is not in the umbrella (a program
that wants it includes it); its single-header form is a second file,
single_include/stackup/cli.hpp: `#include "stackup.hpp"` (the single header
beside it), then cli.hpp's own text. Every stackup header cli.hpp includes must
already be in the single header.

Usage:
  python3 tools/amalgamate.py            write single_include/stackup/{stackup,cli}.hpp
  python3 tools/amalgamate.py --check    exit 1 if a checked-in file is stale
  python3 tools/amalgamate.py --output FILE [--check]   use FILE (and cli.hpp beside it) instead

Every public header under include/stackup/ (detail/ excepted) must be reachable
from the umbrella; otherwise the script stops and says which #include to add.
The exception is OPT_IN: headers that need a dependency of their own (stack_file.hpp
needs toml++), which the umbrella and the single header must NOT include; the
script stops if one of them is reached.
"""

from __future__ import annotations

import argparse
import difflib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
INCLUDE_DIR = ROOT / "include"
UMBRELLA = "stackup/stackup.hpp"
DEFAULT_OUTPUT = ROOT / "single_include" / "stackup" / "stackup.hpp"
REGENERATE = "python3 tools/amalgamate.py"
# Public headers a user includes on purpose, because they bring a dependency the
# core does not have. They stay out of the umbrella and of the single header.
OPT_IN = {
    "stackup/stack_file.hpp": "it needs toml++ (the CMake target stackup::stack_file)",
    "stackup/cli.hpp": "the command-line runner, included by the programs that want it",
    "stackup/supervise.hpp": "the supervisor loop, included by the programs that keep a stack running",
}
# Opt-in headers that need nothing beyond the core: each gets a single-header file
# of its own beside the single header, which includes it.
SEPARATE = ["stackup/cli.hpp", "stackup/supervise.hpp"]

# `#include <stackup/x.hpp>` or `#include "stackup/x.hpp"`, possibly indented or
# with spaces after the `#`; anything after the closing delimiter is a comment.
OWN_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](stackup/[^>"]+)[>"]')
PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\b")
CONDITIONAL = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b")
VERSION_MACRO = re.compile(r"^\s*#\s*define\s+STACKUP_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)\s*$")


class AmalgamationError(Exception):
    """A problem in include/ that the developer must fix; the message says how."""


def read_header(include_dir: pathlib.Path, name: str, included_from: str | None) -> str:
    path = include_dir / name
    if not path.is_file():
        where = f" (included from include/{included_from})" if included_from else ""
        raise AmalgamationError(f"include/{name} does not exist{where}")
    return path.read_text(encoding="utf-8")


def has_include_guard(lines: list[str]) -> bool:
    return strip_include_guard(lines) != lines


def strip_include_guard(lines: list[str]) -> list[str]:
    """Drop `#pragma once`, or a classic `#ifndef G / #define G ... #endif` guard."""
    if any(PRAGMA_ONCE.match(line) for line in lines):
        return [line for line in lines if not PRAGMA_ONCE.match(line)]
    code = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("//")]
    if len(code) >= 3:
        first = re.match(r"^\s*#\s*ifndef\s+(\w+)\s*$", lines[code[0]])
        second = re.match(r"^\s*#\s*define\s+(\w+)\s*$", lines[code[1]])
        last = re.match(r"^\s*#\s*endif\b", lines[code[-1]])
        if first and second and last and first.group(1) == second.group(1):
            drop = {code[0], code[1], code[-1]}
            return [line for i, line in enumerate(lines) if i not in drop]
    return lines


def read_version(include_dir: pathlib.Path) -> str:
    parts: dict[str, str] = {}
    for line in read_header(include_dir, "stackup/version.hpp", None).splitlines():
        m = VERSION_MACRO.match(line)
        if m:
            parts[m.group(1)] = m.group(2)
    missing = [p for p in ("MAJOR", "MINOR", "PATCH") if p not in parts]
    if missing:
        raise AmalgamationError(
            "include/stackup/version.hpp lacks "
            + ", ".join(f"#define STACKUP_VERSION_{p} <number>" for p in missing))
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}"


def public_headers(include_dir: pathlib.Path) -> list[str]:
    """Every header a user may include: include/stackup/**/*.hpp except detail/."""
    found = []
    for path in sorted((include_dir / "stackup").rglob("*.hpp")):
        name = path.relative_to(include_dir).as_posix()
        if "/detail/" not in name:
            found.append(name)
    return found


def banner(version: str) -> list[str]:
    return [
        "// stackup — bring a stack of infrastructure components up and down.",
        f"// Version {version}. https://github.com/stackup-cpp/stackup",
        "// SPDX-License-Identifier: MIT (the MIT licence)",
        "//",
        "// Single-header distribution: generated — do not edit, run tools/amalgamate.py",
        "// (`" + REGENERATE + "` from the source tree) after changing include/.",
        "#pragma once",
    ]


def amalgamate(include_dir: pathlib.Path = INCLUDE_DIR, opt_in: dict[str, str] | None = None) -> str:
    """The single header's text, generated from the headers under include_dir."""
    return amalgamate_umbrella(include_dir, opt_in)[0]


def amalgamate_umbrella(include_dir: pathlib.Path, opt_in: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """The single header's text and the headers it holds."""
    opt_in = OPT_IN if opt_in is None else opt_in
    version = read_version(include_dir)
    out: list[str] = banner(version)
    done: set[str] = set()
    active: list[str] = []  # include stack, to report cycles
    # Open #if blocks, each branch with its own id: a header inlined inside a
    # branch exists only there, so a later include must be inside it too.
    branches: list[int] = []
    inlined_in: dict[str, tuple[tuple[int, ...], str]] = {}
    counter = iter(range(1, 1 << 30))

    def inline(name: str, included_from: str | None) -> None:
        if name in opt_in:
            raise AmalgamationError(
                f"include/{included_from} includes <{name}>, which is opt-in ({opt_in[name]}): "
                f"the umbrella and the single header must not include it; remove that #include")
        raw = read_header(include_dir, name, included_from).splitlines()
        if not has_include_guard(raw):  # repeated on purpose: inline its text again
            out.extend(line.rstrip() for line in raw if not OWN_INCLUDE.match(line))
            return
        if name in done:
            first_branches, first_from = inlined_in[name]
            if tuple(branches[:len(first_branches)]) != first_branches:
                raise AmalgamationError(
                    f"include/{name} is first included inside a conditional block (from include/{first_from}) "
                    f"and again outside it (from include/{included_from}): the single header would lose it "
                    f"there. Include it unconditionally first, e.g. from include/{UMBRELLA} before the #if")
            return
        if name in active:
            chain = " -> ".join(active + [name])
            raise AmalgamationError(f"include cycle among stackup headers: {chain}")
        active.append(name)
        inlined_in[name] = (tuple(branches), included_from or name)
        depth = len(branches)
        lines = strip_include_guard(raw)
        out.append("")
        out.append(f"// ---- begin {name} ----")
        for line in lines:
            m = OWN_INCLUDE.match(line)
            if m:
                inline(m.group(1), name)
                continue
            c = CONDITIONAL.match(line)
            if c:
                kind = c.group(1)
                if kind.startswith("if"):
                    branches.append(next(counter))
                elif len(branches) <= depth:
                    raise AmalgamationError(f"include/{name}: #{kind} without a matching #if")
                elif kind == "endif":
                    branches.pop()
                else:  # elif / else: a new branch of the same block
                    branches[-1] = next(counter)
            out.append(line.rstrip())
        if len(branches) != depth:
            raise AmalgamationError(f"include/{name}: an #if is not closed by #endif")
        out.append(f"// ---- end {name} ----")
        active.pop()
        done.add(name)

    inline(UMBRELLA, None)

    unreachable = [h for h in public_headers(include_dir) if h not in done and h not in opt_in]
    if unreachable:
        adds = "\n".join(f"  #include <{h}>" for h in unreachable)
        raise AmalgamationError(
            f"public header(s) not reachable from include/{UMBRELLA}, so the single header "
            f"would lack them:\n{adds}\nadd these lines to include/{UMBRELLA}, then run {REGENERATE}")
    return "\n".join(out) + "\n", done


def own_closure(include_dir: pathlib.Path, name: str) -> set[str]:
    """Every stackup header `name` includes, directly or through others."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        header = todo.pop()
        for line in read_header(include_dir, header, None).splitlines():
            m = OWN_INCLUDE.match(line)
            if m and m.group(1) not in seen:
                seen.add(m.group(1))
                todo.append(m.group(1))
    return seen


def amalgamate_separate(include_dir: pathlib.Path, name: str, in_umbrella: set[str]) -> str:
    """The single-header file of the opt-in header `name`: the single header, then
    its own text, with the detail headers of its own (detail/cli/ for cli.hpp)
    inlined where it includes them."""
    out = banner(read_version(include_dir))
    out += [f'#include "{pathlib.PurePosixPath(UMBRELLA).name}"',
            "// Below C++20 the single header has issued its #error: skip the rest.",
            "#if defined(__cplusplus) && __cplusplus >= 202002L"]
    done = set(in_umbrella) | {name}
    # Another opt-in header this one includes, even through its detail headers,
    # comes first, as its own single-header file: what that file holds is then
    # not inlined here a second time.
    mine = own_closure(include_dir, name)
    for other in SEPARATE:
        if other != name and other in mine:
            out.append(f'#include "{pathlib.PurePosixPath(other).name}"')
            done |= own_closure(include_dir, other) | {other}

    def inline(header: str, included_from: str | None) -> None:
        raw = read_header(include_dir, header, included_from).splitlines()
        out.extend(["", f"// ---- begin {header} ----"])
        for line in strip_include_guard(raw):
            m = OWN_INCLUDE.match(line)
            if not m:
                out.append(line.rstrip())
                continue
            target = m.group(1)
            if target in done:
                continue
            if target in SEPARATE:  # another opt-in header: its own single-header file, beside this one
                out.append(f'#include "{pathlib.PurePosixPath(target).name}"')
                done.add(target)
                continue
            if "/detail/" not in target:
                raise AmalgamationError(
                    f"include/{header} includes <{target}>, which the single header does not hold, so "
                    f"single_include/{name} would lack it: include it from include/{UMBRELLA} "
                    f"(or drop it from include/{header})")
            done.add(target)
            inline(target, header)
        out.append(f"// ---- end {header} ----")

    inline(name, None)
    out.append("#endif // C++20")
    return "\n".join(out) + "\n"


def amalgamate_all(include_dir: pathlib.Path = INCLUDE_DIR) -> dict[str, str]:
    """Every single-header file, by its path under single_include/."""
    text, done = amalgamate_umbrella(include_dir)
    files = {UMBRELLA: text}
    for name in SEPARATE:
        files[name] = amalgamate_separate(include_dir, name, done)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when the output file differs from what would be generated")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT,
                        help="file to write or check (default: single_include/stackup/stackup.hpp); "
                             "cli.hpp goes beside it")
    args = parser.parse_args()

    try:
        files = amalgamate_all()
    except AmalgamationError as e:
        print(f"amalgamate.py: error: {e}", file=sys.stderr)
        return 2

    umbrella = args.output.resolve()
    status = 0
    for name, text in files.items():
        output = umbrella if name == UMBRELLA else umbrella.parent / pathlib.PurePosixPath(name).name
        status = max(status, write_or_check(output, text, args.check))
    return status


def write_or_check(output: pathlib.Path, text: str, check: bool) -> int:
    try:
        shown = output.relative_to(ROOT).as_posix()
    except ValueError:
        shown = str(output)

    if check:
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current == text:
            print(f"{shown} is up to date")
            return 0
        why = "is missing" if current is None else "is stale: it differs from what include/ generates"
        print(f"error: {shown} {why}.\n"
              f"Fix: run `{REGENERATE}` in the source tree and commit {shown}.", file=sys.stderr)
        if current is not None:
            diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(),
                                             f"{shown} (checked in)", f"{shown} (generated)", lineterm="", n=1))
            shown_diff = diff[:40]
            print("\n".join(shown_diff), file=sys.stderr)
            if len(diff) > len(shown_diff):
                print(f"... ({len(diff) - len(shown_diff)} more diff lines)", file=sys.stderr)
        return 1

    output.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n": the same bytes on every platform.
    with open(output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
