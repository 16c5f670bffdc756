// stop_host: a host program with its own SIGINT and SIGTERM handlers that runs
// one command through stackup::cli::run, then reports whether its handlers (and
// its signal mask) are back and still reached. For tests/test_stop.cpp.
//
//   stop_host DIR WORDS...
//
// The stack: one Command "job" working in DIR, whose provision writes its pid
// to DIR/job.pid and sleeps a minute, so that a test can signal this program
// while `stack up` runs. Prints "run returned N", then "host handlers restored"
// when everything is as the host set it; exits 0 then, 1 otherwise.
// SPDX-License-Identifier: MIT
#include <stackup/cli.hpp>
#include <stackup/stackup.hpp>

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

volatile sig_atomic_t host_int = 0, host_term = 0;
extern "C" void on_int(int, siginfo_t*, void*) { host_int = host_int + 1; }
extern "C" void on_term(int, siginfo_t*, void*) { host_term = host_term + 1; }

bool install(int sig, void (*handler)(int, siginfo_t*, void*)) {
  struct sigaction sa {};
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR1);
  return ::sigaction(sig, &sa, nullptr) == 0;
}

// Whether `sig` has exactly the host's disposition.
bool is_hosts(int sig, void (*handler)(int, siginfo_t*, void*), const char* name) {
  struct sigaction now {};
  if (::sigaction(sig, nullptr, &now) != 0) return false;
  bool ok = true;
  if ((now.sa_flags & SA_SIGINFO) == 0 || now.sa_sigaction != handler) {
    std::printf("%s: not the host's handler\n", name);
    ok = false;
  }
  if ((now.sa_flags & SA_RESTART) == 0) {
    std::printf("%s: SA_RESTART lost\n", name);
    ok = false;
  }
  if (sigismember(&now.sa_mask, SIGUSR1) != 1) {
    std::printf("%s: the handler's mask lost SIGUSR1\n", name);
    ok = false;
  }
  return ok;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: stop_host DIR WORDS...\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::string_view> words;
  for (int i = 2; i < argc; ++i) words.emplace_back(argv[i]);

  if (!install(SIGINT, on_int) || !install(SIGTERM, on_term)) {
    std::perror("sigaction");
    return 2;
  }
  sigset_t blocked, before, after;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR2); // the host's own mask, which must survive too
  ::sigprocmask(SIG_BLOCK, &blocked, &before);

  stackup::Stack stack{"host", stackup::Command<"job">{{
                                   .provision = "echo $$ > job.pid; exec sleep 60",
                                   .deprovision = "rm -f provisioned",
                                   .is_provisioned = "test -f provisioned",
                                   .working_dir = dir,
                               }}};
  const int code = stackup::cli::run(stack, std::span<const std::string_view>(words), std::cout, std::cout,
                                     {.program = "stop_host", .color = stackup::cli::Color::never});
  std::cout.flush();
  std::printf("run returned %d\n", code);

  bool ok = is_hosts(SIGINT, on_int, "SIGINT") && is_hosts(SIGTERM, on_term, "SIGTERM");
  ::sigprocmask(SIG_BLOCK, nullptr, &after);
  if (sigismember(&after, SIGUSR2) != 1 || sigismember(&after, SIGINT) == 1 || sigismember(&after, SIGTERM) == 1) {
    std::printf("the signal mask changed\n");
    ok = false;
  }
  if (host_int != 0 || host_term != 0) {
    std::printf("the host's handler ran during the operation\n");
    ok = false;
  }
  ::raise(SIGINT);
  ::raise(SIGTERM);
  if (host_int != 1 || host_term != 1) {
    std::printf("raise() did not reach the host's handlers\n");
    ok = false;
  }
  if (ok) std::printf("host handlers restored\n");
  return ok ? 0 : 1;
}
