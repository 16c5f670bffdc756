// escaper: a process that tries to slip out of its parent's hold, as a
// daemonizing server does.
//
//   escaper stay|exit TAG
//
// Forks a child that calls setsid() and forks again (a double fork); the
// grandchild, in a session of its own and no longer a child of anything this
// program started, sleeps for ever. Then, with `stay`, this process waits for
// SIGTERM; with `exit`, it exits with status 0 once the grandchild runs, as
// `redis-server --daemonize yes` does. TAG is ignored (tests find the
// processes by it: it is in every process's command line).
// SPDX-License-Identifier: MIT
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 3 || (std::strcmp(argv[1], "stay") != 0 && std::strcmp(argv[1], "exit") != 0)) {
    std::fprintf(stderr, "usage: escaper stay|exit TAG\n");
    return 2;
  }
  int ready[2];
  if (::pipe(ready) != 0) return 1;
  const pid_t child = ::fork();
  if (child < 0) return 1;
  if (child == 0) {
    ::setsid();
    if (::fork() == 0) {
      ::close(ready[0]);
      std::printf("escaper: grandchild %d in session %d\n", static_cast<int>(::getpid()), static_cast<int>(::getsid(0)));
      std::fflush(stdout);
      ::close(ready[1]);
      for (;;) ::pause();
    }
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  while (::read(ready[0], &byte, 1) > 0) {
  }
  ::waitpid(child, nullptr, 0);
  if (std::strcmp(argv[1], "exit") == 0) return 0;
  for (;;) ::pause();
}
