// libFuzzer target: the pid file parser (LocalDaemon's `<state_dir>/pid`).
// Whatever the bytes, parsing must not crash; an accepted record must name a
// pid that is safe to signal (never 0, 1, negative or above pid_max) and must
// survive a round trip through the writer.
#include <stackup/stackup.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using px = stackup::detail::posix;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  px::PidRecord rec;
  std::string why;
  if (!px::parse_pid_record(text, rec, why)) {
    if (why.empty()) std::abort(); // a rejection always says why
    return 0;
  }
  if (rec.pid <= 1 || rec.pid > px::max_pid()) std::abort(); // would signal a group, init or nothing
  px::PidRecord again;
  std::string why_again;
  if (!px::parse_pid_record(px::format_pid_record(rec), again, why_again)) std::abort();
  if (again.pid != rec.pid || again.start_time != rec.start_time || again.invocation_id != rec.invocation_id) std::abort();
  return 0;
}
