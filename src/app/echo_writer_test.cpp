#include "app/echo_writer.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "plexus/os/unique_fd.hpp"

namespace plexus::app {
namespace {

using namespace std::chrono_literals;

struct pipe_pair {
  pipe_pair() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
  // Reads what is there until `want` has appeared (deadline `limit`).
  bool read_until(const std::string& want, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    while (got.find(want) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{read.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) != 1) continue;
      const auto n = ::read(read.get(), buf, sizeof buf);
      if (n <= 0) return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  os::unique_fd read, write;
  std::string got;
};

TEST(EchoWriter, WritesLinesInOrder) {
  pipe_pair p;
  echo_writer echo(p.write.get());
  EXPECT_TRUE(echo.line("one"));
  EXPECT_TRUE(echo.line("two"));
  ASSERT_TRUE(p.read_until("one\ntwo\n"));
  EXPECT_EQ(echo.dropped(), 0u);
}

// A terminal nobody reads: the writer thread waits in write(2), the caller never does;
// what does not fit in the buffer is dropped and counted, and said once it drains.
TEST(EchoWriter, AStuckReaderNeverBlocksTheCallerAndDropsAreCountedAndReported) {
  pipe_pair p;
  echo_writer echo(p.write.get(), 64u << 10, 5s);
  const std::string line(99, 'x');  // 100 bytes with its newline
  const auto before = std::chrono::steady_clock::now();
  std::size_t accepted = 0;
  for (int i = 0; i < 20000; ++i)  // 2 MB: more than the pipe and the buffer hold
    accepted += echo.line(line) ? 1 : 0;
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);
  EXPECT_GT(echo.dropped(), 0u);
  EXPECT_EQ(accepted + echo.dropped(), 20000u);
  EXPECT_LE(echo.pending(), 64u << 10);
  // The reader wakes up: everything accepted arrives, then the report.
  const std::string report =
      "[plexus] " + std::to_string(echo.dropped()) + " lines not echoed: terminal too slow\n";
  ASSERT_TRUE(p.read_until(report)) << p.got.size();
  EXPECT_EQ(p.got.size(), accepted * 100 + report.size());
}

}  // namespace
}  // namespace plexus::app
