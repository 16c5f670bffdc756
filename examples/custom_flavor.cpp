// A flavour of its own: a component type that declares its stack-file schema
// beside it (a static from_table), registered with one line, and used by a
// stack file next to a shipped flavour.
//
//   custom_flavor [DIR]      (DIR: where the stack file and its files go)
//
// It writes the stack file, prints it as it will run, brings the stack up,
// prints its status, brings it down with --force, and shows the error a table
// without a required key gets.
// SPDX-License-Identifier: MIT
#include <stackup/stack_file.hpp> // needs toml++: link the CMake target stackup::stack_file
#include <stackup/stackup.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>

namespace {

namespace fs = std::filesystem;

struct NoteConfig {
  std::string text{};
  fs::path path{};
};

// A file holding a line of text: provision writes it, deprovision removes it.
class Note {
public:
  static constexpr std::string_view flavor = "note"; // shown by status()

  explicit Note(NoteConfig config) : config_(std::move(config)) {}

  // The stack-file schema, beside the component. `Table` is
  // stackup::StackFileTable: no toml++ type here, so this header-to-be needs
  // no toml++ (only the program that loads stack files does).
  template <class Table> static Note from_table(const Table& t) {
    NoteConfig c;
    c.text = t.string("text");                                       // required
    c.path = t.path_or("path", t.directory() / (t.role() + ".txt")); // default: <role>.txt beside the file
    if (c.text.find('\n') != std::string::npos) t.fail("text", t.what() + " holds one line: remove the line break");
    return Note(std::move(c));
  }

  [[nodiscard]] bool is_provisioned() const { return fs::is_regular_file(config_.path); }
  [[nodiscard]] bool is_running() const { return is_provisioned(); }
  void provision() { std::ofstream(config_.path) << config_.text << '\n'; }
  void deprovision() { fs::remove(config_.path); }
  [[nodiscard]] std::string detail() const { return config_.path.string(); }

private:
  NoteConfig config_;
};

} // namespace

int main(int argc, char** argv) {
  const fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "stackup-flavor-example";
  fs::create_directories(dir);
  std::ofstream(dir / "stackup.toml") << R"(name = "notes"

[components.store]
flavor = "local_directory"
path = "store"

[components.readme]
flavor = "note"
text = "kept by stackup"
depends_on = ["store"]
)";

  auto flavors = stackup::Flavors::builtin(); // local_daemon, local_directory, command, kubernetes
  flavors.add<Note>("note");                  // the one line a new flavour needs

  try {
    fmt::print("{}", stackup::stack_config(dir / "stackup.toml", flavors));
    stackup::DynamicStack stack = stackup::load_stack(dir / "stackup.toml", flavors);
    stack.on_event(stackup::console_observer());
    stack.up();
    fmt::print("{}", stackup::status_table(stack.status()));
    stack.down({.force = true});

    // Strict as the shipped flavours: a missing key is an error at its table.
    (void)stackup::parse_stack("[components.todo]\nflavor = \"note\"\n", (dir / "broken.toml").string(), flavors);
  } catch (const stackup::StackFileError& e) {
    fmt::print("{}\n", e.what());
  }
  return EXIT_SUCCESS;
}
