#!/usr/bin/env python3
"""Writes one translation unit with N generated components, for the compile-time
benchmark: a stackup::Stack of them, or the same checks and calls written out by hand.

  gen_stack.py N {flat|chain} {stackup|hand|header} > tu.cpp

flat: no dependencies; chain: component i depends on component i-1.
stackup: Stack<C0..CN-1> from <stackup/stack.hpp>, with up() and down({.force = true}) instantiated.
hand: the same components and the same checks and calls, no library; it includes
  what such code includes anyway (<string>, <vector>, <functional>, <stdexcept>, <exception>).
header: stackup's umbrella header and nothing else (its fixed cost).
"""
import sys

# What the hand-written twin includes: the headers such code includes anyway.
HAND_HEADERS = ("string", "vector", "functional", "stdexcept", "exception")


def component(i, shape):
    deps = f'  static constexpr std::string_view depends_on[] = {{"c{i - 1}"}};\n' if shape == "chain" and i > 0 else ""
    return (f"struct C{i} {{\n"
            f'  static constexpr std::string_view role = "c{i}";\n{deps}'
            "  bool provisioned = false, running = false;\n"
            "  bool is_provisioned() const { return provisioned; }\n"
            "  bool is_running() const { return running; }\n"
            "  void provision() { provisioned = true; }\n"
            "  void deprovision() { provisioned = false; }\n"
            "  void resume() { running = true; }\n"
            "  void suspend() { running = false; }\n"
            "};\n")


def generate(n, shape, variant):
    if variant == "header":
        return "#include <stackup/stackup.hpp>\n"
    out = []
    if variant == "stackup":
        out.append("#include <stackup/stack.hpp>\n#include <string_view>\n")
    else:
        out.append("".join(f"#include <{h}>\n" for h in HAND_HEADERS) + "#include <string_view>\n")
    out += [component(i, shape) for i in range(n)]
    if variant == "stackup":
        out.append("using GeneratedStack = stackup::Stack<" + ", ".join(f"C{i}" for i in range(n)) + ">;\n")
        out.append("void bring_up(GeneratedStack& s) { s.up(); }\n")
        out.append("void tear_down(GeneratedStack& s) { s.down({.force = true}); }\n")
        return "".join(out)
    # Hand-written: listing order is already a dependency order for both shapes.
    out.append("struct GeneratedStack {\n" + "".join(f"  C{i} c{i};\n" for i in range(n)))
    out.append("  void up() {\n")
    out += [f"    if (!c{i}.is_provisioned()) c{i}.provision();\n" for i in range(n)]
    out += [f"    if (!c{i}.is_running()) {{\n"
            f'      if (!c{i}.is_provisioned()) throw std::runtime_error("c{i} is not provisioned");\n'
            f"      c{i}.resume();\n    }}\n" for i in range(n)]
    out.append("  }\n  void down() {\n")
    out += [f"    if (c{i}.is_running()) c{i}.suspend();\n"
            f"    if (c{i}.is_provisioned()) c{i}.deprovision();\n" for i in reversed(range(n))]
    out.append("  }\n};\n")
    out.append("void bring_up(GeneratedStack& s) { s.up(); }\n")
    out.append("void tear_down(GeneratedStack& s) { s.down(); }\n")
    return "".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in ("flat", "chain") or sys.argv[3] not in ("stackup", "hand", "header"):
        sys.exit(__doc__)
    sys.stdout.write(generate(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
