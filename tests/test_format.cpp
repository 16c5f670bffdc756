// fmt formatters, the status table and progress lines.
#include "support/fake.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

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
  CHECK(stackup::progress_line(e, false) == "- orchestrator 'web' resuming ...");
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
        "\"detail\": \"pid 7, port 6390\"},\n"
        "  {\"role\": \"odd\", \"name\": \"q\\\"b\\\\n\\nt\\tc\\u0001\", \"flavor\": \"custom\", \"state\": "
        "\"suspended\", \"detail\": \"caf\xc3\xa9 \\ufffd\\ufffd\"}\n"
        "]\n");
  CHECK(stackup::status_json({}) == "[]\n");
}
