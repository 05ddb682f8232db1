#include "plexus/os/unique_fd.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <type_traits>
#include <utility>

namespace plexus::os {
namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

int open_null() {
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  return fd;
}

static_assert(!std::is_copy_constructible_v<unique_fd>);
static_assert(std::is_nothrow_move_constructible_v<unique_fd>);
static_assert(std::is_nothrow_destructible_v<unique_fd>);

TEST(UniqueFd, ClosesItsDescriptorWhenDestroyed) {
  int raw;
  {
    unique_fd fd(open_null());
    raw = fd.get();
    EXPECT_TRUE(fd);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, EmptyOwnsNothing) {
  unique_fd none;
  EXPECT_FALSE(none);
  EXPECT_EQ(none.get(), -1);
  unique_fd negative(-5);
  EXPECT_EQ(negative.get(), -1);
}

TEST(UniqueFd, AMoveHandsTheDescriptorOver) {
  unique_fd a(open_null());
  const int raw = a.get();
  unique_fd b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): the contract says empty
  EXPECT_EQ(b.get(), raw);
  unique_fd c(open_null());
  const int other = c.get();
  c = std::move(b);  // closes what c held
  EXPECT_EQ(c.get(), raw);
  EXPECT_FALSE(is_open(other));
  EXPECT_TRUE(is_open(raw));
}

TEST(UniqueFd, ReleaseGivesTheDescriptorAwayUnclosed) {
  unique_fd fd(open_null());
  const int raw = fd.release();
  EXPECT_FALSE(fd);
  fd.close();
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

TEST(UniqueFd, ResetClosesTheOldOneAndCloseIsIdempotent) {
  unique_fd fd(open_null());
  const int first = fd.get();
  fd.reset(open_null());
  EXPECT_FALSE(is_open(first));
  EXPECT_TRUE(fd);
  const int second = fd.get();
  fd.close();
  EXPECT_FALSE(fd);
  EXPECT_FALSE(is_open(second));
  fd.close();                      // a second close touches nothing
  const int reused = open_null();  // may reuse the number; must stay open
  fd.close();
  EXPECT_TRUE(is_open(reused));
  ::close(reused);
}

}  // namespace
}  // namespace plexus::os
