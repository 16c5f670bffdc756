// libFuzzer target: the /proc/<pid>/stat parser, which decides whether a pid
// still names the process stackup started (its start time). Any user controls
// the command-name field of their own processes (spaces, parentheses, any
// byte), so the parser must hold whatever the bytes.
#include <stackup/stackup.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto st = stackup::detail::posix::parse_proc_stat(text))
    (void)stackup::detail::posix::is_live_state(st->state);
  return 0;
}
