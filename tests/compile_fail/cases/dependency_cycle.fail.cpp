// api -> worker -> scheduler -> api: no order can start any of them first.
// EXPECT-ERROR: dependency cycle: this component's depends_on leads back to itself
// EXPECT-ERROR: remove one depends_on entry on the cycle
// EXPECT-ROLE: api
// EXPECT-TYPE: Api
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
  static constexpr std::string_view depends_on[] = {"api"};
};

int main() {
  stackup::Stack<Api, Worker, Scheduler> stack;
  stack.up();
}
