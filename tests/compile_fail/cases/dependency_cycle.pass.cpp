// Twin of dependency_cycle.fail.cpp: the scheduler no longer needs the api.
#include <stackup/stackup.hpp>

struct Api : stackup::StackComponent<Api> {
  static constexpr std::string_view role = "api";
  static constexpr std::string_view depends_on[] = {"worker"};
};
struct Worker : stackup::StackComponent<Worker> {
  static constexpr std::string_view role = "worker";
  static constexpr std::string_view depends_on[] = {"scheduler"};
};
struct Scheduler : stackup::StackComponent<Scheduler> {
  static constexpr std::string_view role = "scheduler";
};

int main() {
  stackup::Stack<Api, Worker, Scheduler> stack;
  stack.up();
}
