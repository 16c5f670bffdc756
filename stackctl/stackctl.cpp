// stackctl: runs the stack a stack file describes, with ZenML's commands.
//
//   stackctl [-f FILE] stack up [-p] [--no-rollback] | down [--force] [-p] | status [--json] | config | supervise
//   stackctl [-f FILE] stack logs [--tail N] [--follow] [--no-prefix] [--timestamps]
//   stackctl [-f FILE] <role> up | down [--force] | status [--json] | logs [--tail N] [--follow]
//   stackctl --version | --completion bash
//
// The file: -f FILE (before the command; `-` is standard input), else
// $STACKUP_FILE (trusted as -f is), else stackup.toml in the current directory
// or the nearest parent. A file found by that search decides which commands run
// as whoever runs stackctl, so it is read only when it, its .env and its
// directory pass OpenSSH's StrictModes rule (stackup::Trust::found); each is
// opened once and checked through its descriptor. Exit status: 0 done, 1 an
// action failed, 2 usage or stack-file error.
#include <stackup/cli.hpp>
#include <stackup/parallel.hpp>
#include <stackup/stack_file.hpp>

#include "supervisor.hpp"

#include <cstdlib>
#include <exception>
#include <functional>
#include <filesystem>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace {

namespace fs = std::filesystem;
constexpr std::string_view program = "stackctl";

struct StackFile {
  fs::path path;
  std::string how; // how it was chosen, for --help and errors
  bool searched = false;
};

// -f, else $STACKUP_FILE, else stackup.toml here or in the nearest parent.
std::optional<StackFile> locate(const std::optional<std::string>& named) {
  if (named) return StackFile{*named, "named with -f", false};
  if (const char* env = std::getenv("STACKUP_FILE"); env && *env) return StackFile{env, "from $STACKUP_FILE", false};
  std::error_code ec;
  const fs::path start = fs::current_path(ec);
  if (ec) return std::nullopt;
  for (fs::path dir = start;; dir = dir.parent_path()) {
    // Anything of that name ends the search, a symlink or a FIFO included:
    // reading it says what is wrong, rather than a parent's stack being used instead.
    if (fs::exists(fs::symlink_status(dir / "stackup.toml", ec)))
      return StackFile{dir / "stackup.toml", dir == start ? "found in the current directory" : "found in a parent directory",
                       true};
    if (dir == dir.root_path() || dir.parent_path() == dir) return std::nullopt;
  }
}

std::string help_lines(const std::optional<StackFile>& file) {
  std::string s = "\nstack file:\n";
  s += file ? fmt::format("  {} ({})\n", file->path.string(), file->how)
            : "  none: no stackup.toml in the current directory or any parent, and $STACKUP_FILE is unset\n";
  s += "  -f FILE          before the command: the stack file to use, '-' for standard input\n"
       "                   (default: $STACKUP_FILE, else stackup.toml in the current directory or\n"
       "                   the nearest parent, used only when you or root own it and its directory\n"
       "                   and nobody else can write them)\n";
  return s;
}

int fail(std::string_view message) {
  std::cerr << program << ": " << message << '\n';
  return stackup::cli::exit_usage;
}

// stackctl's option before the command, as data for the completion and messages
// (parsed below: the stack file is needed before cli::run).
const stackup::cli::VerbOption file_option{.name = "file", .letter = 'f', .value = "FILE",
                                           .help = "the stack file to use, '-' for standard input"};

int run(std::span<const std::string_view> words) {
  // Options before the command: only the file.
  std::optional<std::string> named;
  std::string_view option; // as the user spelled it, for messages
  std::size_t i = 0;
  for (; i < words.size(); ++i) {
    const std::string_view w = words[i];
    if (w == "-f" || w == "--file") {
      if (i + 1 == words.size()) return fail(fmt::format("option '{}' needs the stack file, e.g. '{} stackup.toml'", w, w));
      option = w;
      named = std::string(words[++i]);
    } else if (w.starts_with("--file=")) {
      option = "--file=";
      named = std::string(w.substr(7));
    } else {
      break;
    }
  }
  if (named && named->empty())
    return fail(fmt::format("option '{}' got an empty file name: name the stack file, e.g. '--file=stackup.toml'", option));
  const std::span<const std::string_view> command = words.subspan(i);
  const bool help = std::ranges::any_of(command, [](std::string_view w) { return w == "--help" || w == "-h"; }) ||
                    (!command.empty() && command[0] == "help");

  // stackctl's own verbs, beside the library's: the file as it will run, and
  // the stack's supervisor in the foreground.
  std::optional<stackup::StackFileSource> source; // set once the file is read
  stackup::DynamicStack* loaded = nullptr;        // set once the stack is loaded
  fs::path supervision_dir;                       // <the file's directory>/.stackup/stack
  fs::path lock_path;                             // the stack file's lock (empty: none)
  std::function<int()> bring_up;                  // `stack up`, as the command line runs it
  const std::vector<stackup::cli::VerbSpec> verbs{
      {.name = "config",
       .scope = stackup::cli::Scope::stack,
       .help = "print the stack as it will run (variables expanded); starts nothing",
       .run = [&source](const stackup::cli::Invocation& inv) {
         inv.out << stackup::stack_config(*source);
         inv.out.flush();
         return inv.out ? stackup::cli::exit_success : stackup::cli::exit_failure;
       }},
      {.name = "supervise",
       .scope = stackup::cli::Scope::stack,
       .help = "bring the stack up and keep it running by its restart policies, in the foreground",
       .run = [&](const stackup::cli::Invocation& inv) {
         return stackctl::supervise(*loaded, supervision_dir, lock_path, bring_up, inv.out, inv.err);
       }},
  };
  const std::optional<StackFile> file = locate(named);
  const std::string extra = help_lines(file);
  const stackup::cli::Options options{.program = program,
                                      .host_synopsis = "[-f FILE]",
                                      .host_help = extra,
                                      .host_options = std::span(&file_option, 1),
                                      .verbs = verbs};
  // What needs no stack (--version, --completion bash, an unknown option) needs no file either.
  if (!help)
    if (auto code = stackup::cli::run_without_stack(command, std::cout, std::cerr, options)) return *code;
  // The help without the stack's roles: when there is no file, or one that cannot
  // be used (then it says why): --help must not fail for the file it names.
  const auto general_help = [&](std::string_view problem) {
    const std::string_view just_help[] = {"--help"};
    const int code = *stackup::cli::run_without_stack(just_help, std::cout, std::cerr, options);
    if (!problem.empty()) std::cout << fmt::format("\nthat stack file cannot be used, so its roles are not listed:\n  {}\n", problem);
    else std::cout << "\nwith a stack file, --help lists its roles\n";
    return code;
  };
  if (!file) {
    if (help) return general_help("");
    return fail("no stack file: no stackup.toml in the current directory or any parent; "
                "name one with -f FILE or $STACKUP_FILE");
  }
  try {
    // Opened once, checked through the descriptor, and those bytes parsed.
    source = stackup::read_stack_file(file->path, file->searched ? stackup::Trust::found : stackup::Trust::named);
    stackup::DynamicStack stack = stackup::load_stack(*source);
    // One transition of the stack at a time: cli::run locks the stack file (the
    // file a symlink names; nothing for standard input or a pipe).
    stackup::cli::Options locked = options;
    std::error_code ec;
    const std::string lock_file = file->path != "-" && fs::is_regular_file(file->path, ec)
                                      ? fs::canonical(file->path, ec).string() : std::string();
    locked.lock_file = lock_file;
    lock_path = lock_file;
    // The supervisor's state beside the components' (`.stackup/<role>`): a
    // stack file refuses the role `stack`, so no component's can be this one.
    supervision_dir = source->directory / ".stackup" / "stack";
    const std::string supervision = supervision_dir.string();
    locked.supervision_dir = supervision;
    loaded = &stack;
    bring_up = [&] {
      const std::string_view up[] = {"stack", "up"};
      return stackup::cli::run(stack, up, std::cout, std::cerr, locked);
    };
    const int code = stackup::cli::run(stack, command, std::cout, std::cerr, locked);
    // `.stackup` held the supervisor's state too when the components removed
    // theirs: it goes with the stack when nothing else is left in it.
    if (code == stackup::cli::exit_success && stackctl::forced_down(command))
      // By path, on purpose: rmdir removes only an empty directory and never
      // follows a symlink, so a swap can at worst remove an empty one.
      ::rmdir((source->directory / ".stackup").c_str());
    if (code != stackup::cli::exit_success || !stackctl::detached_up(command) || !stackctl::wants_supervisor(stack.view()))
      return code;
    // A stack with a restart policy keeps one supervisor while it is up.
    if (lock_file.empty()) {
      std::cout << "* no supervisor started: the stack file was not read from a file it can read again; run "
                   "'stackctl -f FILE stack supervise' to keep the stack running by its restart policies\n";
      return code;
    }
    if (const auto pid = stackctl::start_detached(lock_file, supervision_dir, std::cerr)) {
      std::cout << fmt::format("supervisor: pid {}\n", *pid);
      return code;
    }
    return stackup::cli::exit_failure;
  } catch (const stackup::StackFileError& e) {
    if (help) return general_help(e.what());
    return fail(e.what());
  }
}

} // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string_view> words;
    for (int i = 1; i < argc && argv[i] != nullptr; ++i) words.emplace_back(argv[i]);
    return run(words);
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << '\n';
    return stackup::cli::exit_failure;
  }
}
