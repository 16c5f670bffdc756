// libFuzzer target: the .env parser (Compose's rules). Whatever the bytes, it
// must not crash, and it either gives variables with valid names or throws a
// StackFileError at a line and column inside the file (never another
// exception, never an error without a place).
#include <stackup/stack_file.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string file = "/nowhere/.env";
  try {
    const auto vars = stackup::detail::stack_file::parse_dotenv(text, file);
    for (const auto& [key, value] : vars) {
      if (key.empty()) std::abort();
      for (const char c : key)
        if (!(c == '_' || c == '.' || c == '-' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
          std::abort();
      if (value.size() > text.size()) std::abort(); // escapes only ever shorten
    }
  } catch (const stackup::StackFileError& e) {
    const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    if (e.file() != file || e.line() == 0 || e.line() > lines || e.column() == 0 || e.column() > size + 1) std::abort();
    const std::string prefix = file + ":" + std::to_string(e.line()) + ":" + std::to_string(e.column()) + ": ";
    if (std::string_view(e.what()).substr(0, prefix.size()) != prefix) std::abort();
  }
  return 0;
}
