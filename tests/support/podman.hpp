// Tests against real containers: Podman with the tests' own settings
// (tests/support/containers.conf) and a real image built here from
// busybox-static (no registry is reachable): `sh`, `httpd`, `sleep` and the other
// busybox applets, and /www/index.html. Built once per machine; a test process
// builds it if it is missing.
#pragma once

#include <doctest/doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#ifndef STACKUP_TEST_SOURCE_DIR
#define STACKUP_TEST_SOURCE_DIR "."
#endif

namespace podman {

inline constexpr const char* image = "localhost/stackup-test/busybox:1";

// Points CONTAINERS_CONF at the tests' settings unless the caller set it.
inline void use_test_settings() {
  ::setenv("CONTAINERS_CONF", STACKUP_TEST_SOURCE_DIR "/tests/support/containers.conf", 0);
}

inline int sh(const std::string& command) { return std::system(command.c_str()); }

// The test image, built if absent. REQUIREs podman and /bin/busybox.
inline const char* test_image() {
  use_test_settings();
  static const bool built = [] {
    if (sh(std::string("podman image exists ") + image) == 0) return true;
    REQUIRE_MESSAGE(std::filesystem::exists("/bin/busybox"), "busybox-static is needed: apt-get install busybox-static");
    char tmpl[] = "/tmp/stackup-image-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::filesystem::path dir = tmpl, root = dir / "root";
    std::filesystem::create_directories(root / "bin");
    std::filesystem::create_directories(root / "www");
    std::filesystem::create_directories(root / "tmp");
    std::filesystem::copy_file("/bin/busybox", root / "bin/busybox");
    for (const char* applet : {"sh", "httpd", "sleep", "cat", "echo", "ls", "true", "false", "kill", "ps", "nc", "env",
                               "mkdir", "touch", "rm", "test", "wget", "date", "id"})
      std::filesystem::create_symlink("busybox", root / "bin" / applet);
    std::ofstream(root / "www/index.html") << "stackup test image\n";
    const std::string tar = (dir / "root.tar").string();
    const int made = sh("tar -C " + root.string() + " -cf " + tar + " . && podman import --quiet --change 'CMD [\"/bin/sh\"]' " +
                        tar + " " + image + " >/dev/null");
    std::filesystem::remove_all(dir);
    REQUIRE_MESSAGE(made == 0, "cannot build the test image " << image << " with podman import");
    return true;
  }();
  (void)built;
  return image;
}

} // namespace podman
