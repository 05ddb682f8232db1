#include "plexus/log/record.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

namespace plexus::log {
namespace {

TEST(LogRecord, LevelsAreRankedLowestFirst) {
  EXPECT_EQ(level_rank("trace"), 0);
  EXPECT_EQ(level_rank("info"), 2);
  EXPECT_EQ(level_rank("critical"), 5);
  EXPECT_EQ(level_rank("loud"), -1);
  EXPECT_TRUE(check_level("warn"));
  auto bad = check_level("loud");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("trace, debug, info, warn, error, critical"),
            std::string::npos);
}

TEST(LogRecord, MadeRecordCarriesEveryFieldAndThisPid) {
  const auto r = make_record("warn", "disk low", {{"free_mb", 12}}, "calc", 1);
  EXPECT_EQ(r["level"], "warn");
  EXPECT_EQ(r["message"], "disk low");
  EXPECT_EQ(r["process"], "calc");
  EXPECT_EQ(r["replica"], 1);
  EXPECT_EQ(r["pid"], static_cast<std::int64_t>(::getpid()));
  EXPECT_EQ(r["fields"], value({{"free_mb", 12}}));
  EXPECT_TRUE(r["time"].is_number_float());
  EXPECT_EQ(make_record("info", "x", value::array({1}), "p", 0, 42)["fields"], value::object());
  EXPECT_EQ(make_record("info", "x", {}, "p", 0, 42)["pid"], 42);
  EXPECT_EQ(topic("calc"), "log.calc");
}

TEST(LogRecord, FormatsAsOneUtcLineAndLeavesOutTheCapturedStream) {
  value r = {{"time", 0.25}, {"level", "info"},    {"process", "calc"},
             {"replica", 1}, {"message", "hello"}, {"fields", {{"stream", "stdout"}}}};
  EXPECT_EQ(format(r), "1970-01-01T00:00:00.250Z info  calc[1] hello");
  r["fields"] = {{"stream", "supervisor"}, {"event", "exited"}, {"code", 3}};
  EXPECT_EQ(format(r), "1970-01-01T00:00:00.250Z info  calc[1] hello {\"code\":3}");
  r["fields"] = {{"user", "ann"}};
  EXPECT_EQ(format(r), "1970-01-01T00:00:00.250Z info  calc[1] hello {\"user\":\"ann\"}");
  EXPECT_EQ(format(value{{"message", "bare"}}), "-        bare");
}

TEST(LogRecord, MatchesByProcessAndLowestLevel) {
  const value r = {{"level", "warn"}, {"process", "calc"}};
  EXPECT_TRUE(matches(r, "", 0));
  EXPECT_TRUE(matches(r, "calc", level_rank("warn")));
  EXPECT_FALSE(matches(r, "calc", level_rank("error")));
  EXPECT_FALSE(matches(r, "ticker", 0));
}

}  // namespace
}  // namespace plexus::log
