#include "supervisor/proc_stats.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>

// /proc/PID/stat parsing, and a sample of this very process (no child is started).

namespace plexus::supervisor {
namespace {

// Field 14 utime 7, 15 stime 5, 20 threads 3, 24 rss 250 pages.
const std::string stat_line =
    "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 12345 "
    "1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

TEST(ProcStats, ParsesTicksThreadsAndRssAfterACommandNameWithParentheses) {
  const auto s = parse_proc_stat(stat_line);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ticks, 12u);
  EXPECT_EQ(s->threads, 3);
  EXPECT_EQ(s->rss_pages, 250u);
}

TEST(ProcStats, RefusesWhatIsNotAStatLine) {
  EXPECT_FALSE(parse_proc_stat(""));
  EXPECT_FALSE(parse_proc_stat("4242 (name) S 1 2 3"));
  EXPECT_FALSE(parse_proc_stat("no parenthesis at all"));
  EXPECT_FALSE(parse_proc_stat(
      "1 (x) S 1 1 1 0 -1 0 0 0 0 0 seven 5 0 0 20 0 3 0 1 1 250 0 0 0 0 0 0 0 0 0 0 0 0"));
}

TEST(ProcStats, SamplesThisProcess) {
  proc_stats s;
  const auto now = std::chrono::steady_clock::now();
  s.sample(::getpid(), now, now - std::chrono::seconds(1));
  EXPECT_GE(s.threads(), 1);
  EXPECT_GT(s.rss_bytes(), 0u);
  EXPECT_EQ(s.cpu_percent(), 0);  // one sample: no period to measure over yet
}

TEST(ProcStats, AProcessThatIsGoneLeavesTheLastValues) {
  proc_stats s;
  const auto now = std::chrono::steady_clock::now();
  s.sample(::getpid(), now, now);
  const auto rss = s.rss_bytes();
  s.sample(0x7ffffff0, now + std::chrono::seconds(1), now);  // no such pid
  EXPECT_EQ(s.rss_bytes(), rss);
  s.reset();
  EXPECT_EQ(s.rss_bytes(), 0u);
  EXPECT_FALSE(read_proc_stat(0x7ffffff0));
}

}  // namespace
}  // namespace plexus::supervisor
