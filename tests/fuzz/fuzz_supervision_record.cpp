// libFuzzer target: the supervision record parser (a supervisor's
// `<state_dir>/supervision`, read by `stack status` in another process).
// Whatever the bytes, parsing must not crash; an accepted record must survive a
// round trip through the writer unchanged.
#include <stackup/stackup.hpp>
#include <stackup/detail/supervision_record.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace sv = stackup::detail::supervision;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto rows = sv::parse_record(text);
  if (!rows) return 0;
  for (const auto& r : *rows) {
    if (r.role.empty()) std::abort();
    if (r.exit && r.exit->signal && *r.exit->signal <= 0) std::abort();
  }
  const auto again = sv::parse_record(sv::format_record(*rows));
  if (!again || again->size() != rows->size()) std::abort();
  for (std::size_t i = 0; i < rows->size(); ++i)
    if (!sv::same_row((*again)[i], (*rows)[i])) std::abort();
  return 0;
}
