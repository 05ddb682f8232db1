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

// U+FFFD, as UTF-8.
const std::string fffd = "\xef\xbf\xbd";

struct repair_case {
  const char* what;
  std::string in;
  std::string out;
};

TEST(LogRecord, MakeValidUtf8ReplacesEachMaximalInvalidSubpart) {
  const repair_case cases[] = {
      {"ascii", "plain text", "plain text"},
      {"2-byte char kept", "caf\xc3\xa9", "caf\xc3\xa9"},
      {"3-byte char kept", "\xe2\x82\xac 5", "\xe2\x82\xac 5"},
      {"4-byte char kept", "\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!"},
      {"highest code point kept", "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},
      {"FF FE: one each", "\xff\xfe", fffd + fffd},
      {"lone continuation",
       "a\x80"
       "b",
       "a" + fffd + "b"},
      {"overlong 2-byte (C0 AF)", "\xc0\xaf", fffd + fffd},
      {"overlong 3-byte (E0 80 AF)", "\xe0\x80\xaf", fffd + fffd + fffd},
      {"overlong 4-byte (F0 80 80 AF)", "\xf0\x80\x80\xaf", fffd + fffd + fffd + fffd},
      {"surrogate (ED A0 80)", "\xed\xa0\x80", fffd + fffd + fffd},
      {"above U+10FFFF (F4 90 80 80)", "\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},
      {"F5 lead", "\xf5\x80", fffd + fffd},
      {"truncated 3-byte at end", "x\xe2\x82", "x" + fffd},
      {"truncated 4-byte at end", "\xf0\x9f\x98", fffd},
      {"truncated 3-byte before ascii", "\xe2\x82x", fffd + "x"},
      {"truncated then valid", "\xe2\xc3\xa9", fffd + "\xc3\xa9"},
      {"empty", "", ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(make_valid_utf8(c.in), c.out) << c.what;
    EXPECT_EQ(is_valid_utf8(c.in), c.in == c.out) << c.what;
    EXPECT_TRUE(is_valid_utf8(make_valid_utf8(c.in))) << c.what;
  }
}

TEST(LogRecord, CutAtBoundaryNeverSplitsACharacter) {
  const std::string euro = "\xe2\x82\xac";  // 3 bytes
  EXPECT_EQ(cut_at_boundary("abc", 5), 3u);
  EXPECT_EQ(cut_at_boundary("abcdef", 4), 4u);
  EXPECT_EQ(cut_at_boundary("ab" + euro, 3), 2u);
  EXPECT_EQ(cut_at_boundary("ab" + euro, 4), 2u);
  EXPECT_EQ(cut_at_boundary("ab" + euro + "c", 5), 5u);
  EXPECT_EQ(cut_at_boundary("a\xf0\x9f\x98\x80", 4), 1u);
  EXPECT_EQ(cut_at_boundary("a\xc3\xa9", 2), 1u);
  // Never 0: a character longer than the limit is split after all.
  EXPECT_EQ(cut_at_boundary(euro, 2), 2u);
  // Invalid bytes are not characters: cut where the limit says.
  EXPECT_EQ(cut_at_boundary("ab\xff\xfe", 3), 3u);
  EXPECT_EQ(cut_at_boundary("ab\xe2\x82x", 4), 4u);
  // Every cut of a long line of mixed widths leaves valid pieces.
  std::string line;
  for (int i = 0; i < 300; ++i)
    line += i % 3 == 0   ? euro
            : i % 3 == 1 ? std::string("\xc3\xa9")
                         : std::string("\xf0\x9f\x98\x80");
  for (std::size_t max = 4; max < 12; ++max) {
    std::string_view rest = line;
    std::string joined;
    while (!rest.empty()) {
      const auto n = cut_at_boundary(rest, max);
      ASSERT_GT(n, 0u);
      ASSERT_LE(n, max);
      EXPECT_TRUE(is_valid_utf8(rest.substr(0, n))) << "max " << max;
      joined += rest.substr(0, n);
      rest.remove_prefix(n);
    }
    EXPECT_EQ(joined, line);
  }
}

TEST(LogRecord, RecordsAreMadeValidAndALineKeepsItsRawBytes) {
  value bad = {{"who\xff", "ann\xfe"}, {"list", {"ok", "\xc0"}}, {"n", 1}};
  EXPECT_TRUE(make_valid(bad));
  EXPECT_EQ(bad, value({{"who" + fffd, "ann" + fffd}, {"list", {"ok", fffd}}, {"n", 1}}));
  EXPECT_FALSE(make_valid(bad));

  const auto r = make_record("info", "m\xff", {{"k", "\xfe"}}, "calc", 0, 1);
  EXPECT_EQ(r["message"], "m" + fffd);
  EXPECT_EQ(r["fields"]["k"], fffd);
  EXPECT_FALSE(r.contains("raw"));
  EXPECT_NO_THROW((void)r.dump());

  const auto line = make_line_record("info", "ok\xff\xfe", {{"stream", "stdout"}}, "calc", 0, 1);
  EXPECT_EQ(line["message"], "ok" + fffd + fffd);
  ASSERT_TRUE(line["raw"].is_binary());
  EXPECT_EQ(format_raw(line).substr(24), " info  calc[0] ok\xff\xfe");
  EXPECT_EQ(format(line).substr(24), " info  calc[0] ok" + fffd + fffd);
  EXPECT_FALSE(make_line_record("info", "fine", {}, "calc", 0, 1).contains("raw"));
  // Field text that is not UTF-8 is replaced by format, not thrown.
  value odd = {{"message", "x"}, {"fields", {{"k", "\xff"}}}};
  EXPECT_NE(format(odd).find("\"k\":\"" + fffd + "\""), std::string::npos);
}

}  // namespace
}  // namespace plexus::log
