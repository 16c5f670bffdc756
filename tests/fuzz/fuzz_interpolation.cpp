// libFuzzer target: ${VAR} interpolation (defaults nested in defaults, $$,
// unset variables). Whatever the bytes, it must not crash or recurse without
// bound; it either gives a value a process can take (no NUL byte, valid UTF-8)
// or throws a StackFileError at the value's place. Text without a '$' comes
// back unchanged.
#include <stackup/stack_file.hpp>

#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("STACKUP_FUZZ_PORT", "6390", 1);
  ::setenv("STACKUP_FUZZ_EMPTY", "", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace sf = stackup::detail::stack_file;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  sf::Context ctx;
  ctx.file = "/nowhere/t.toml";
  ctx.directory = "/nowhere";
  ctx.dotenv = {{"A", "a"}, {"B", "${A}"}, {"LATIN1", "caf\xE9"}, {"NUL", std::string("x\0y", 3)}};
  try {
    const std::string out = ctx.expand(text, sf::Place{3, 7}, "'v'");
    if (out.find('\0') != std::string::npos || sf::Context::invalid_utf8(out)) std::abort();
    if (text.find('$') == std::string_view::npos && out != text) std::abort();
  } catch (const stackup::StackFileError& e) {
    if (e.file() != ctx.file || e.line() != 3 || e.column() != 7) std::abort();
  }
  return 0;
}
