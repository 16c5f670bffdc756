// fmt formatters, the status table and progress lines.
#include "support/fake.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("format: enums and status rows") {
  CHECK(fmt::format("{}", stackup::State::running) == "running");
  CHECK(fmt::format("{}", stackup::State::deprovisioned) == "deprovisioned");
  CHECK(fmt::format("{}", stackup::Transition::resume) == "resume");
  CHECK(fmt::format("{}", stackup::Outcome::rolled_back) == "rolled_back");
  CHECK(fmt::format("[{:>9}]", stackup::State::running) == "[  running]");
  const stackup::ComponentStatus row{"orchestrator", "web", stackup::State::suspended, "local_daemon", "pid 42"};
  CHECK(fmt::format("{}", row) == "orchestrator 'web': suspended (pid 42)");
  CHECK(fmt::format("{}", stackup::ComponentStatus{"a", "b", stackup::State::running, "custom", ""}) == "a 'b': running");
}

TEST_CASE("format: an enum takes every string format spec, dynamic ones included") {
  using stackup::State;
  CHECK(fmt::format("[{:*^11}]", State::running) == "[**running**]");
  CHECK(fmt::format("[{:<{}}|{}]", State::running, 9, 5) == "[running  |5]"); // the next argument keeps its number
  CHECK(fmt::format("[{1:>{0}}|{0}]", 9, State::running) == "[  running|9]");
  CHECK(fmt::format("[{:{}.{}}]", State::running, 5, 3) == "[run  ]");
  CHECK(fmt::format("[{s:<{w}}]", fmt::arg("s", State::running), fmt::arg("w", 8)) == "[running ]");
  CHECK(fmt::format("[{:>14}]", stackup::Outcome::not_implemented) == "[not_implemented]");
  const stackup::ComponentStatus row{"a", "b", State::running, "custom", ""};
  CHECK(fmt::format("[{:>16}]", row) == "[  a 'b': running]");
  CHECK_THROWS_AS((void)fmt::format(fmt::runtime("{:<{}}"), State::running, "x"), fmt::format_error);
  CHECK_THROWS_AS((void)fmt::format(fmt::runtime("{:<{}}"), State::running, -1), fmt::format_error);
  CHECK_THROWS_AS((void)fmt::format(fmt::runtime("{:d}"), State::running), fmt::format_error);
}

TEST_CASE("format: styled text is what fmt::styled gives") {
  const auto style = fmt::fg(fmt::terminal_color::green) | fmt::emphasis::bold;
  CHECK(stackup::detail::styled("up", style) == fmt::format("{}", fmt::styled(std::string_view("up"), style)));
  CHECK(stackup::detail::styled("•", fmt::fg(fmt::terminal_color::cyan)) ==
        fmt::format("{}", fmt::styled(std::string_view("•"), fmt::fg(fmt::terminal_color::cyan))));
}

TEST_CASE("format: status table aligns columns and has no trailing spaces") {
  stackup::Stack<fake::Fake<"artifact_store">, fake::Fixed<"alerter">> s;
  const auto table = stackup::status_table(s.status());
  CHECK(table == "ROLE            NAME            FLAVOR  STATE          DETAIL\n"
                 "artifact_store  artifact_store  custom  deprovisioned\n"
                 "alerter         alerter         custom  running\n");
}

TEST_CASE("format: progress lines, plain and fancy") {
  stackup::Event e{"default", "orchestrator", "web", stackup::Transition::resume, stackup::Outcome::succeeded, 210ms, ""};
  CHECK(stackup::progress_line(e, false) == "+ orchestrator 'web' resumed  0.21s");
  CHECK(stackup::progress_line(e, true).find("✔") != std::string::npos);
  CHECK(stackup::progress_line(e, true).find("\x1b[") != std::string::npos);
  e.outcome = stackup::Outcome::failed;
  e.message = "boom";
  CHECK(stackup::progress_line(e, false) == "x orchestrator 'web' resume failed  0.21s: boom");
  e.outcome = stackup::Outcome::already_done;
  e.message = "already running";
  CHECK(stackup::progress_line(e, false) == "= orchestrator 'web' already running");
  e.outcome = stackup::Outcome::started;
  e.message.clear(); // a start says why only when the engine gives a reason (drift: "settings changed")
  CHECK(stackup::progress_line(e, false) == "- orchestrator 'web' resuming ...");
  e.message = "settings changed";
  CHECK(stackup::progress_line(e, false) == "- orchestrator 'web' resuming (settings changed) ...");
}

TEST_CASE("format: console observer writes one line per event, plain when not a terminal") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  stackup::Stack<fake::Fake<"a">> s;
  s.on_event(stackup::console_observer(f));
  s.up();
  std::rewind(f);
  char buf[512] = {};
  const auto n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const std::string out(buf, n);
  CHECK(out.find("- a 'a' provisioning ...\n+ a 'a' provisioned  0.00s\n") == 0);
  CHECK(out.find("\x1b[") == std::string::npos);
}

TEST_CASE("status_json: one object per component, every string escaped, bytes that are not UTF-8 replaced") {
  const stackup::ComponentStatus rows[] = {
      {"cache", "redis", stackup::State::running, "local_daemon", "pid 7, port 6390"},
      {"odd", "q\"b\\n\nt\tc\x01", stackup::State::suspended, "custom", "caf\xc3\xa9 \xff\xc3"},
  };
  CHECK(stackup::status_json(rows) ==
        "[\n"
        "  {\"role\": \"cache\", \"name\": \"redis\", \"flavor\": \"local_daemon\", \"state\": \"running\", "
        "\"detail\": \"pid 7, port 6390\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true},\n"
        "  {\"role\": \"odd\", \"name\": \"q\\\"b\\\\n\\nt\\tc\\u0001\", \"flavor\": \"custom\", \"state\": "
        "\"suspended\", \"detail\": \"caf\xc3\xa9 \\ufffd\\ufffd\", \"restarts\": 0, \"exit\": null, \"supervision\": \"none\", \"current\": true}\n"
        "]\n");
  CHECK(stackup::status_json({}) == "[]\n");
}

namespace {
// 2026-12-07T12:00:01.123Z: fixed, so that no test reads a clock.
const auto noon = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'796'644'801'123));
// HH:MM:SS of `at` in local time, as strftime writes it.
std::string local_hms(std::chrono::system_clock::time_point at) {
  const std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  REQUIRE(::localtime_r(&t, &tm) != nullptr);
  char buf[16] = {};
  REQUIRE(std::strftime(buf, sizeof buf, "%H:%M:%S", &tm) == 8);
  return buf;
}
stackup::ComponentStatus row(std::string_view detail, std::optional<stackup::Exit> exit, unsigned restarts,
                             stackup::SupervisionState s) {
  return {"cache", "redis", stackup::State::running, "local_daemon", std::string(detail), std::move(exit), restarts, s};
}
} // namespace

TEST_CASE("status_json: restarts, exit (code, signal, liveness, error; RFC 3339 UTC ms) and supervision") {
  using stackup::Exit;
  using stackup::SupervisionState;
  const stackup::ComponentStatus rows[] = {
      row("pid 7", Exit{.code = 3, .at = noon}, 2, SupervisionState::watching),
      row("", Exit{.signal = 9, .at = noon}, 1, SupervisionState::backing_off),
      row("", Exit{.liveness = "http 127.0.0.1:8090/health: 503", .at = noon}, 5, SupervisionState::failed),
      row("", Exit{.error = "port \"6390\" taken", .at = noon}, 0, SupervisionState::none),
      row("", Exit{.signal = 64, .at = noon - std::chrono::milliseconds(123)}, 0, SupervisionState::none),
  };
  const std::string head =
      "{\"role\": \"cache\", \"name\": \"redis\", \"flavor\": \"local_daemon\", \"state\": \"running\", ";
  CHECK(stackup::status_json(rows) ==
        "[\n"
        "  " + head + "\"detail\": \"pid 7\", \"restarts\": 2, \"exit\": {\"code\": 3, \"at\": "
        "\"2026-12-07T12:00:01.123Z\"}, \"supervision\": \"watching\", \"current\": true},\n"
        "  " + head + "\"detail\": \"\", \"restarts\": 1, \"exit\": {\"signal\": \"SIGKILL\", \"at\": "
        "\"2026-12-07T12:00:01.123Z\"}, \"supervision\": \"backing-off\", \"current\": true},\n"
        "  " + head + "\"detail\": \"\", \"restarts\": 5, \"exit\": {\"liveness\": \"http 127.0.0.1:8090/health: 503\", "
        "\"at\": \"2026-12-07T12:00:01.123Z\"}, \"supervision\": \"failed\", \"current\": true},\n"
        "  " + head + "\"detail\": \"\", \"restarts\": 0, \"exit\": {\"error\": \"port \\\"6390\\\" taken\", "
        "\"at\": \"2026-12-07T12:00:01.123Z\"}, \"supervision\": \"none\", \"current\": true},\n"
        "  " + head + "\"detail\": \"\", \"restarts\": 0, \"exit\": {\"signal\": \"signal 64\", \"at\": "
        "\"2026-12-07T12:00:01.000Z\"}, \"supervision\": \"none\", \"current\": true}\n"
        "]\n");
}

TEST_CASE("format: status table DETAIL says what supervision saw, then the component's detail") {
  using stackup::Exit;
  using stackup::SupervisionState;
  const std::string t = local_hms(noon);
  const auto detail_of = [](const stackup::ComponentStatus& r) {
    const std::string table = stackup::status_table(std::span(&r, 1));
    const std::string line = table.substr(table.find('\n') + 1);
    const std::size_t at = line.find("running") + 13 + 2; // STATE is 13 wide, then two spaces
    return at > line.size() ? std::string() : line.substr(at, line.size() - at - 1);
  };
  CHECK(detail_of(row("pid 7", Exit{.code = 3, .at = noon}, 0, SupervisionState::none)) ==
        "exited 3 at " + t + "; pid 7");
  CHECK(detail_of(row("", Exit{.signal = 9, .at = noon}, 0, SupervisionState::watching)) == "killed by SIGKILL at " + t);
  CHECK(detail_of(row("pid 8", Exit{.liveness = "http 127.0.0.1:8090/health: 503", .at = noon}, 0,
                      SupervisionState::none)) == "unhealthy (http 127.0.0.1:8090/health: 503) at " + t + "; pid 8");
  CHECK(detail_of(row("", Exit{.error = "no such file", .at = noon}, 0, SupervisionState::none)) ==
        "restart failed (no such file) at " + t);
  CHECK(detail_of(row("", Exit{.code = 3, .at = noon}, 2, SupervisionState::backing_off)) ==
        "exited 3 at " + t + ", restarting (3rd)");
  CHECK(detail_of(row("", std::nullopt, 0, SupervisionState::backing_off)) == "restarting (1st)");
  CHECK(detail_of(row("", Exit{.code = 3, .at = noon}, 5, SupervisionState::failed)) == "failed: exited 3, 5 restarts");
  CHECK(detail_of(row("", std::nullopt, 1, SupervisionState::failed)) == "failed: 1 restart");
  CHECK(detail_of(row("pid 9", std::nullopt, 2, SupervisionState::watching)) == "restarts 2; pid 9");
  CHECK(detail_of(row("pid 9", Exit{.code = 0, .at = noon}, 11, SupervisionState::watching)) ==
        "exited 0 at " + t + ", restarts 11; pid 9");
  // Nothing to say: the row is as it was before supervision.
  CHECK(detail_of(row("pid 9", std::nullopt, 0, SupervisionState::watching)) == "pid 9");
  CHECK(stackup::status_table(std::vector{row("pid 9", std::nullopt, 0, SupervisionState::none)}) ==
        "ROLE   NAME   FLAVOR        STATE          DETAIL\n"
        "cache  redis  local_daemon  running        pid 9\n");
}

TEST_CASE("format: ordinals and signal names") {
  using stackup::detail::ordinal;
  CHECK(ordinal(1) == "1st");
  CHECK(ordinal(2) == "2nd");
  CHECK(ordinal(3) == "3rd");
  CHECK(ordinal(4) == "4th");
  CHECK(ordinal(11) == "11th");
  CHECK(ordinal(12) == "12th");
  CHECK(ordinal(13) == "13th");
  CHECK(ordinal(21) == "21st");
  CHECK(ordinal(112) == "112th");
  CHECK(stackup::detail::signal_name(SIGTERM) == "SIGTERM");
  CHECK(stackup::detail::signal_name(SIGSEGV) == "SIGSEGV");
  CHECK(stackup::detail::signal_name(0) == "signal 0");
}

TEST_CASE("format: supervision lines, plain and fancy") {
  using K = stackup::SupervisionEvent::Kind;
  stackup::SupervisionEvent e{"default", "cache", "redis", K::exited, stackup::Exit{.code = 3, .at = noon}, {}, 0, ""};
  CHECK(stackup::supervision_line(e, false) == "~ cache 'redis' exited (exit status 3)");
  CHECK(stackup::supervision_line(e, true).find("↻") != std::string::npos);
  CHECK(stackup::supervision_line(e, true).find("\x1b[") != std::string::npos);
  e.exit = stackup::Exit{.signal = 9, .at = noon};
  CHECK(stackup::supervision_line(e, false) == "~ cache 'redis' exited (killed by SIGKILL)");
  e.exit = stackup::Exit{.liveness = "tcp 127.0.0.1:6390: connection refused", .at = noon};
  CHECK(stackup::supervision_line(e, false) == "~ cache 'redis' exited (unhealthy: tcp 127.0.0.1:6390: connection refused)");
  e = {"default", "cache", "redis", K::restarting, std::nullopt, std::chrono::milliseconds(100), 1, ""};
  CHECK(stackup::supervision_line(e, false) == "~ cache 'redis' restarting in 100ms (1st)");
  e.delay = std::chrono::seconds(30);
  e.restarts = 12;
  CHECK(stackup::supervision_line(e, false) == "~ cache 'redis' restarting in 30s (12th)");
  e.delay = std::chrono::milliseconds(1500);
  e.restarts = 2;
  CHECK(stackup::supervision_line(e, false) == "~ cache 'redis' restarting in 1500ms (2nd)");
  e = {"default", "cache", "redis", K::failed, stackup::Exit{.code = 3, .at = noon}, {}, 5, "5 restarts within 1m"};
  CHECK(stackup::supervision_line(e, false) == "x cache 'redis' failed: 5 restarts within 1m, last exited 3");
  const auto fancy = stackup::supervision_line(e, true);
  CHECK(fancy.find("✘") != std::string::npos);
  CHECK(fancy.find("failed: 5 restarts within 1m, last exited 3") != std::string::npos);
  e.message.clear();
  e.exit = stackup::Exit{.signal = 15, .at = noon};
  CHECK(stackup::supervision_line(e, false) == "x cache 'redis' failed: 5 restarts, last killed by SIGTERM");
  e = {"default", "app", "app", K::unhealthy, std::nullopt, {}, 1, "http 127.0.0.1:8090/health: 503"};
  CHECK(stackup::supervision_line(e, false) == "x app 'app' unhealthy (1st failure): http 127.0.0.1:8090/health: 503");
  CHECK(stackup::supervision_line(e, true).find("unhealthy (1st failure): http 127.0.0.1:8090/health: 503") !=
        std::string::npos);
}
