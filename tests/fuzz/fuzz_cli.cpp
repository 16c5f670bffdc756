// libFuzzer target: stackup::cli::run, the command-line grammar of any stack,
// on a stack of in-memory components (so any command is safe to carry out).
// Input: the first byte chooses which actions fail and how; the rest is the
// argument list, one argument per line. Whatever the arguments, run() must
// return 0, 1 or 2 and never crash, hang or throw.
#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace {

unsigned faults = 0; // bits: which actions fail, chosen by the input's first byte

template <stackup::FixedString R, unsigned FailBit, stackup::FixedString... Deps>
struct Memory : stackup::StackComponent<Memory<R, FailBit, Deps...>> {
  static constexpr std::string_view role = R;
  static constexpr std::array<std::string_view, sizeof...(Deps)> depends_on{std::string_view(Deps)...};
  bool provisioned = false;
  bool running = false;
  [[nodiscard]] bool is_provisioned() const { return provisioned; }
  [[nodiscard]] bool is_running() const { return running; }
  void fail(unsigned action) const {
    if ((faults & (1u << (FailBit + action))) == 0) return;
    if (faults & 0x80u) throw stackup::NotImplementedError("not implemented at run time");
    if (action == 3) throw 42; // not a std::exception
    throw std::runtime_error("injected failure\nwith a second line");
  }
  void provision() { fail(0), provisioned = true; }
  void resume() { fail(1), running = true; }
  void suspend() { fail(2), running = false; }
  void deprovision() { fail(3), provisioned = running = false; }
};

// A component with a log (the `logs` verb) and no suspend (like a directory).
struct Logged : stackup::StackComponent<Logged> {
  static constexpr std::string_view role = "orchestrator";
  static inline std::filesystem::path log;
  bool provisioned = false;
  [[nodiscard]] bool is_provisioned() const { return provisioned; }
  [[nodiscard]] bool is_running() const { return provisioned; }
  void provision() { provisioned = true; }
  void deprovision() { provisioned = false; }
  [[nodiscard]] std::filesystem::path log_file() const { return log; }
};

using FuzzStack = stackup::Stack<Memory<"artifact_store", 0>, Logged,
                                 Memory<"model_deployer", 4, "artifact_store", "orchestrator">>;

// `logs --follow` and `up --attach` run until a signal or a closed output, by
// design (test_cli and the stackctl tests cover them); here they would only hang
// the fuzzer. Conservative: any short-option cluster holding an `a` counts.
bool runs_until_a_signal(const std::vector<std::string_view>& args) {
  for (const std::string_view a : args) {
    if (a == "--follow" || a.starts_with("--follow=") || a == "--attach" || a.starts_with("--attach=")) return true;
    if (a.size() >= 2 && a[0] == '-' && a[1] != '-' && a.find('a') != std::string_view::npos) return true;
  }
  return false;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Logged::log = std::filesystem::temp_directory_path() / ("stackup-fuzz-cli-" + std::to_string(::getpid()) + ".log");
  std::FILE* f = std::fopen(Logged::log.c_str(), "w");
  if (f == nullptr) std::abort();
  for (int i = 0; i < 50; ++i) std::fprintf(f, "log line %d\n", i);
  std::fclose(f);
  std::atexit([] { std::filesystem::remove(Logged::log); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  faults = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string_view> args;
  std::size_t start = 0;
  while (start <= rest.size() && !rest.empty()) {
    const std::size_t nl = rest.find('\n', start);
    args.push_back(rest.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  if (runs_until_a_signal(args)) return 0;
  FuzzStack stack;
  if (faults & 0x40u) { // start from a half-up stack
    stack.get<"artifact_store">().provisioned = stack.get<"artifact_store">().running = true;
    stack.get<Logged>().provisioned = true;
  }
  std::ostringstream out, err;
  const int code = stackup::cli::run(stack, std::span<const std::string_view>(args), out, err, {.program = "fuzz"});
  if (code < 0 || code > 2) std::abort();
  if (code == 2 && err.str().empty()) std::abort(); // a usage error always says what is wrong
  return 0;
}
