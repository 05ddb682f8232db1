// Waiting in tests: on events, each with a deadline — never a fixed sleep.
//
//   ASSERT_TRUE(plexus::test::run_until(io, [&] { return done; }));   // drives the loop
//   plexus::test::settle(io);                                         // runs what is ready
//   EXPECT_TRUE(plexus::test::gone(pid));                             // the process ended
#pragma once

#include <poll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>

namespace plexus::test {

// How long a wait lasts at most unless the test says otherwise. It costs nothing when
// the event comes; it is long because it bounds only a failing (or very slow) run.
inline constexpr std::chrono::milliseconds wait_limit{10000};

// Runs `io` one handler at a time until `done()` holds; false if `limit` passed first.
// `done()` is checked after every handler and at least every `slice`, so it may also
// look at what happens outside the loop (a ZeroMQ socket, another thread's flag).
template <class Pred>
bool run_until(boost::asio::io_context& io, Pred done, std::chrono::milliseconds limit = wait_limit,
               std::chrono::milliseconds slice = std::chrono::milliseconds(5)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return false;
    io.restart();
    io.run_one_for(std::min<std::chrono::steady_clock::duration>(end - now, slice));
  }
  return true;
}

// Runs the handlers that are ready now, and those they make ready, without waiting:
// after an awaited event, to check that nothing more comes of it.
inline void settle(boost::asio::io_context& io) {
  for (int i = 0; i < 4; ++i) {
    io.restart();
    io.poll();
  }
}

// Checks `done()` about every millisecond until it holds; false if `limit` passed
// first. For what another thread makes true (a loop_thread's loop), where run_until
// cannot drive the loop itself.
template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = wait_limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    ::poll(nullptr, 0, 1);
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
