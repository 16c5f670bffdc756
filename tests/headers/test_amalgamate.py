#!/usr/bin/env python3
"""Unit tests of tools/amalgamate.py on small header trees made for each test."""

import pathlib
import subprocess
import sys
import tempfile
import textwrap
import unittest

TOOLS = pathlib.Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))
sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
import amalgamate  # noqa: E402

VERSION = """\
#pragma once
#define STACKUP_VERSION_MAJOR 3
#define STACKUP_VERSION_MINOR 14
#define STACKUP_VERSION_PATCH 15
"""


class Tree:
    """A throw-away include/ directory."""

    def __init__(self, files: dict[str, str]):
        self._tmp = tempfile.TemporaryDirectory()
        self.include = pathlib.Path(self._tmp.name) / "include"
        for name, text in {"stackup/version.hpp": VERSION, **files}.items():
            path = self.include / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._tmp.cleanup()


def body(text: str) -> list[str]:
    """The generated lines after the banner, without blank lines and markers."""
    lines = text.splitlines()
    start = lines.index("#pragma once") + 1
    return [l for l in lines[start:] if l.strip() and not l.startswith("// ---- ")]


class Amalgamate(unittest.TestCase):
    def test_a_header_without_guard_is_inlined_at_every_include(self):
        with Tree({
            "stackup/stackup.hpp": """\
                #pragma once
                #include <stackup/version.hpp>
                #include <stackup/a.hpp>
                #include <stackup/b.hpp>
                """,
            "stackup/a.hpp": """\
                #pragma once
                #include <stackup/detail/scope.hpp>
                int a;
                #include <stackup/detail/unscope.hpp>
                """,
            "stackup/b.hpp": """\
                #pragma once
                #include <stackup/detail/scope.hpp>
                int b;
                #include <stackup/detail/unscope.hpp>
                """,
            "stackup/detail/scope.hpp": "#define M 1\n",
            "stackup/detail/unscope.hpp": "#undef M\n",
        }) as t:
            lines = [l for l in body(amalgamate.amalgamate(t.include)) if not l.startswith("#define STACKUP_VERSION")]
            self.assertEqual(lines, ["#define M 1", "int a;", "#undef M", "#define M 1", "int b;", "#undef M"])

    def test_inlines_each_header_once_after_what_it_includes(self):
        with Tree({
            "stackup/stackup.hpp": """\
                #pragma once
                #include <stackup/version.hpp>
                #include <stackup/b.hpp>
                #include <stackup/a.hpp>
                """,
            "stackup/a.hpp": """\
                #pragma once
                #include <stackup/version.hpp>
                int a();
                """,
            "stackup/b.hpp": """\
                #pragma once
                #include "stackup/a.hpp"
                #include <vector>
                #include <fmt/format.h>
                int b();
                """,
        }) as t:
            out = body(amalgamate.amalgamate(t.include))
        self.assertEqual(out, [
            "#define STACKUP_VERSION_MAJOR 3",
            "#define STACKUP_VERSION_MINOR 14",
            "#define STACKUP_VERSION_PATCH 15",
            "int a();",
            "#include <vector>",
            "#include <fmt/format.h>",
            "int b();",
        ])

    def test_banner_names_version_licence_and_command(self):
        with Tree({"stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n"}) as t:
            text = amalgamate.amalgamate(t.include)
        banner = text[:text.index("#pragma once")]
        self.assertIn("Version 3.14.15", banner)
        self.assertIn("SPDX-License-Identifier: MIT", banner)
        self.assertIn("generated — do not edit, run tools/amalgamate.py", banner)
        self.assertEqual(text.count("#pragma once"), 1)

    def test_classic_include_guard_is_dropped(self):
        with Tree({
            "stackup/stackup.hpp": """\
                // umbrella
                #ifndef STACKUP_HPP
                #define STACKUP_HPP
                #include <stackup/version.hpp>
                int u();
                #endif // STACKUP_HPP
                """,
        }) as t:
            out = body(amalgamate.amalgamate(t.include))
        self.assertNotIn("#ifndef STACKUP_HPP", out)
        self.assertNotIn("#define STACKUP_HPP", out)
        self.assertFalse(any(l.startswith("#endif") for l in out))
        self.assertIn("int u();", out)

    def test_output_is_deterministic(self):
        files = {"stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n#include <map>\n"}
        with Tree(files) as t:
            self.assertEqual(amalgamate.amalgamate(t.include), amalgamate.amalgamate(t.include))

    def test_public_header_missing_from_the_umbrella_is_an_error(self):
        with Tree({
            "stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n",
            "stackup/components/daemon.hpp": "#pragma once\n",
            "stackup/detail/internal.hpp": "#pragma once\n",  # internal: need not be reachable
        }) as t:
            with self.assertRaises(amalgamate.AmalgamationError) as e:
                amalgamate.amalgamate(t.include)
        self.assertIn("#include <stackup/components/daemon.hpp>", str(e.exception))
        self.assertNotIn("detail/internal.hpp", str(e.exception))

    def test_opt_in_header_need_not_be_reachable_and_is_left_out(self):
        with Tree({
            "stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n",
            "stackup/extra.hpp": "#pragma once\nint extra_marker;\n",
        }) as t:
            text = amalgamate.amalgamate(t.include, {"stackup/extra.hpp": "it needs a library"})
            # Without the exclusion the same tree is an error: the test can fail.
            with self.assertRaises(amalgamate.AmalgamationError):
                amalgamate.amalgamate(t.include, {})
        self.assertNotIn("extra_marker", text)

    def test_opt_in_header_included_by_the_umbrella_is_an_error(self):
        with Tree({
            "stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n#include <stackup/extra.hpp>\n",
            "stackup/extra.hpp": "#pragma once\n",
        }) as t:
            with self.assertRaises(amalgamate.AmalgamationError) as e:
                amalgamate.amalgamate(t.include, {"stackup/extra.hpp": "it needs a library"})
        self.assertIn("<stackup/extra.hpp>, which is opt-in (it needs a library)", str(e.exception))

    def test_stack_file_header_is_opt_in(self):
        self.assertIn("stackup/stack_file.hpp", amalgamate.OPT_IN)

    def test_cli_and_supervise_headers_are_opt_in_with_single_header_files_of_their_own(self):
        files = amalgamate.amalgamate_all()
        self.assertEqual(sorted(files), ["stackup/cli.hpp", "stackup/stackup.hpp", "stackup/supervise.hpp"])
        self.assertNotIn("// ---- begin stackup/supervise.hpp ----", files["stackup/stackup.hpp"])
        self.assertNotIn("// ---- begin stackup/cli.hpp ----", files["stackup/stackup.hpp"])
        cli = body(files["stackup/cli.hpp"])
        self.assertEqual(cli[0], '#include "stackup.hpp"')
        self.assertIn("namespace stackup::cli {", cli)
        self.assertFalse([l for l in cli if amalgamate.OWN_INCLUDE.match(l)], "no <stackup/...> include is left")
        # cli.hpp uses the supervisor (stack up --attach): its single-header file, beside it, once
        self.assertEqual(cli.count('#include "supervise.hpp"'), 1)
        self.assertNotIn("// ---- begin stackup/supervise.hpp ----", files["stackup/cli.hpp"])

    def test_separate_file_is_the_single_header_then_the_headers_own_text(self):
        with Tree({
            "stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n#include <stackup/a.hpp>\n",
            "stackup/a.hpp": "#pragma once\nint a();\n",
            "stackup/extra.hpp": "#pragma once\n#include <stackup/a.hpp>\n#include <vector>\nint extra();\n",
        }) as t:
            _, done = amalgamate.amalgamate_umbrella(t.include, {"stackup/extra.hpp": "on purpose"})
            out = body(amalgamate.amalgamate_separate(t.include, "stackup/extra.hpp", done))
        self.assertEqual(out, ['#include "stackup.hpp"', "// Below C++20 the single header has issued its #error: skip the rest.",
                               "#if defined(__cplusplus) && __cplusplus >= 202002L", "#include <vector>", "int extra();",
                               "#endif // C++20"])

    def test_separate_file_needing_a_header_the_umbrella_lacks_is_an_error(self):
        with Tree({
            "stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n",
            "stackup/a.hpp": "#pragma once\nint a();\n",
            "stackup/extra.hpp": "#pragma once\n#include <stackup/a.hpp>\n",
        }) as t:
            _, done = amalgamate.amalgamate_umbrella(t.include, {"stackup/extra.hpp": "on purpose", "stackup/a.hpp": "x"})
            with self.assertRaises(amalgamate.AmalgamationError) as e:
                amalgamate.amalgamate_separate(t.include, "stackup/extra.hpp", done)
        self.assertIn("include/stackup/extra.hpp includes <stackup/a.hpp>, which the single header does not hold",
                      str(e.exception))

    def test_missing_header_names_who_includes_it(self):
        with Tree({"stackup/stackup.hpp": "#pragma once\n#include <stackup/version.hpp>\n#include <stackup/nope.hpp>\n"}) as t:
            with self.assertRaises(amalgamate.AmalgamationError) as e:
                amalgamate.amalgamate(t.include)
        self.assertIn("include/stackup/nope.hpp does not exist (included from include/stackup/stackup.hpp)",
                      str(e.exception))

    def test_header_first_inlined_inside_an_if_and_needed_outside_is_an_error(self):
        with Tree({
            "stackup/stackup.hpp": """\
                #pragma once
                #include <stackup/version.hpp>
                #if defined(EXTRA)
                #include <stackup/posix.hpp>
                #endif
                #include <stackup/late.hpp>
                """,
            "stackup/posix.hpp": "#pragma once\nint p();\n",
            "stackup/late.hpp": "#pragma once\n#include <stackup/posix.hpp>\n",
        }) as t:
            with self.assertRaises(amalgamate.AmalgamationError) as e:
                amalgamate.amalgamate(t.include)
        self.assertIn("stackup/posix.hpp is first included inside a conditional block", str(e.exception))

    def test_header_included_again_inside_the_same_branch_is_fine(self):
        with Tree({
            "stackup/stackup.hpp": """\
                #pragma once
                #include <stackup/version.hpp>
                #if __cplusplus >= 202002L
                #include <stackup/posix.hpp>
                #include <stackup/late.hpp>
                #else
                #endif
                """,
            "stackup/posix.hpp": "#pragma once\nint p();\n",
            "stackup/late.hpp": "#pragma once\n#include <stackup/posix.hpp>\nint late();\n",
        }) as t:
            out = body(amalgamate.amalgamate(t.include))
        self.assertEqual(out.count("int p();"), 1)
        self.assertLess(out.index("int p();"), out.index("int late();"))


class CheckMode(unittest.TestCase):
    """--check on the real tree: up to date passes, a stale copy fails with the fix."""

    def run_check(self, path: pathlib.Path):
        return subprocess.run([sys.executable, str(TOOLS / "amalgamate.py"), "--check", "--output", str(path)],
                              capture_output=True, text=True)

    def test_fresh_copy_passes_and_stale_copy_fails(self):
        with tempfile.TemporaryDirectory() as d:
            path = pathlib.Path(d) / "stackup.hpp"
            cli = pathlib.Path(d) / "cli.hpp"
            for name, text in amalgamate.amalgamate_all().items():
                (pathlib.Path(d) / pathlib.PurePosixPath(name).name).write_text(text, encoding="utf-8", newline="\n")
            self.assertEqual(self.run_check(path).returncode, 0)

            # cli.hpp is checked too.
            fresh_cli = cli.read_text(encoding="utf-8")
            cli.write_text(fresh_cli + "\n", encoding="utf-8", newline="\n")
            stale = self.run_check(path)
            self.assertEqual(stale.returncode, 1)
            self.assertIn("cli.hpp is stale", stale.stderr)
            cli.unlink()
            self.assertIn("cli.hpp is missing", self.run_check(path).stderr)
            cli.write_text(fresh_cli, encoding="utf-8", newline="\n")

            path.write_text(path.read_text(encoding="utf-8").replace("#pragma once", "#pragma  once", 1),
                            encoding="utf-8", newline="\n")
            stale = self.run_check(path)
            self.assertEqual(stale.returncode, 1)
            self.assertIn("is stale", stale.stderr)
            self.assertIn("Fix: run `python3 tools/amalgamate.py`", stale.stderr)

            path.unlink()
            missing = self.run_check(path)
            self.assertEqual(missing.returncode, 1)
            self.assertIn("is missing", missing.stderr)


if __name__ == "__main__":
    unittest.main()
