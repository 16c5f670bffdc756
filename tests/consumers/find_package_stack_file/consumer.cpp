// A stack file parsed and run by an installed stackup: a directory comes and goes.
#include <stackup/stack_file.hpp>
#include <stackup/stackup.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

int main() {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("stackup-consumer-" + std::to_string(::getpid()));
  fs::create_directories(root);
  const std::string origin = (root / "stackup.toml").string();
  auto stack = stackup::parse_stack("name = \"consumer\"\n"
                                    "[components.store]\n"
                                    "flavor = \"local_directory\"\n"
                                    "path = \"${CONSUMER_DIR:-data}\"\n",
                                    origin);
  stack.up();
  const bool made = fs::is_directory(root / "data");
  stack.down({.force = true});
  const bool removed = !fs::exists(root / "data");
  fs::remove_all(root);
  std::cout << "stack file consumer: " << stackup::to_string(stack.status()[0].state) << (made && removed ? " ok" : " WRONG") << '\n';
  return made && removed ? EXIT_SUCCESS : EXIT_FAILURE;
}
