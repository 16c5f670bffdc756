// libFuzzer target: stack files (parse_stack: TOML, the schema, interpolation,
// depends_on). Whatever the bytes, parsing must not crash, and it either gives
// a stack or throws a StackFileError at a place in the file (never another
// exception, never an error without a line).
#include <stackup/stack_file.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
std::string origin; // a file in an empty directory of our own: no .env beside it
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/stackup-fuzz-XXXXXX";
  if (::mkdtemp(dir) == nullptr) std::abort();
  origin = std::string(dir) + "/fuzz.toml";
  ::setenv("STACKUP_FUZZ_PORT", "6390", 1);
  ::setenv("STACKUP_FUZZ_WORD", "x", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const stackup::DynamicStack s = stackup::parse_stack(text, origin);
    if (s.roles().size() != s.size() || s.order().size() != s.size()) std::abort();
  } catch (const stackup::StackFileError& e) {
    const std::string what = e.what();
    if (e.file() != origin || e.line() == 0 || e.column() == 0) std::abort();
    const std::string prefix = origin + ":" + std::to_string(e.line()) + ":" + std::to_string(e.column()) + ": ";
    if (what.compare(0, prefix.size(), prefix) != 0 || what.size() == prefix.size()) std::abort();
  }
  return 0;
}
