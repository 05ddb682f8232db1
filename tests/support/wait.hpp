// Waiting in tests: on events, each with a deadline — never a fixed sleep.
//
//   ASSERT_TRUE(plexus::test::run_until(io, [&] { return done; }));   // drives the loop
//   EXPECT_TRUE(plexus::test::gone(pid));                             // the process ended
#pragma once

#include <poll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>

namespace plexus::test {

// Runs `io` one handler at a time until `done()` holds; false if `limit` passed first.
template <class Pred>
bool run_until(boost::asio::io_context& io, Pred done,
               std::chrono::milliseconds limit = std::chrono::seconds(5),
               std::chrono::milliseconds slice = std::chrono::milliseconds(20)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    io.restart();
    io.run_one_for(slice);
  }
  return true;
}

// Waits until `pid` has terminated: a pidfd becomes readable when its process exits (a
// zombie counts as exited), whoever its parent is.
inline bool gone(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;  // already gone and reaped
  pollfd p{fd, POLLIN, 0};
  const int n = ::poll(&p, 1, static_cast<int>(limit.count()));
  ::close(fd);
  return n == 1;
}

}  // namespace plexus::test
