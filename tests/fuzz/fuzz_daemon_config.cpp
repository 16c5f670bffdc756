// libFuzzer target: the LocalDaemon config parser (`<state_dir>/config`, read by
// LocalDaemon::from_state_dir in a process that knows only the state directory).
// Whatever the bytes, parsing must not crash; a rejection must say why; an
// accepted config must be written back and read again to the same config.
#include <stackup/stackup.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
bool same(const stackup::LocalDaemonConfig& a, const stackup::LocalDaemonConfig& b) {
  return a.name == b.name && a.command == b.command && a.state_dir == b.state_dir && a.ready == b.ready &&
         a.start_timeout == b.start_timeout && a.stop_timeout == b.stop_timeout && a.env == b.env &&
         a.working_dir == b.working_dir;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  stackup::LocalDaemonConfig config;
  std::string role, why;
  if (!stackup::detail::parse_daemon_config(text, config, role, why)) {
    if (why.empty()) std::abort(); // a rejection always says why
    return 0;
  }
  using Kind = stackup::ready::Probe::Kind;
  if (config.ready.kind != Kind::none && config.ready.port == 0) std::abort(); // a probe of port 0 is never accepted
  if (config.ready.kind == Kind::http && (config.ready.path.empty() || config.ready.path.front() != '/')) std::abort();
  const std::string written = stackup::detail::format_daemon_config(role, config);
  stackup::LocalDaemonConfig again;
  std::string role_again, why_again;
  if (!stackup::detail::parse_daemon_config(written, again, role_again, why_again)) std::abort();
  if (role_again != role || !same(again, config)) std::abort();
  return 0;
}
