#include "plexus/os/limits.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

namespace plexus::os {
namespace {

// Puts the test process's descriptor limit back however the test ends.
struct restore_fd_limit {
  rlimit saved{};
  restore_fd_limit() { ::getrlimit(RLIMIT_NOFILE, &saved); }
  ~restore_fd_limit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

TEST(FdLimit, RaiseLiftsTheSoftLimitToTheHardOne) {
  restore_fd_limit restore;
  if (restore.saved.rlim_max <= 256) GTEST_SKIP() << "the hard limit leaves nothing to raise";
  rlimit low = restore.saved;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);

  const auto lim = raise_fd_limit();
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, restore.saved.rlim_max);
  EXPECT_EQ(lim.soft, now.rlim_cur);
  EXPECT_EQ(lim.hard, now.rlim_max);
}

TEST(FdLimit, RaiseNeverLowersTheHardLimit) {
  restore_fd_limit restore;
  raise_fd_limit();
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_max, restore.saved.rlim_max);
  EXPECT_EQ(now.rlim_cur, now.rlim_max);
}

}  // namespace
}  // namespace plexus::os
