#include "app/echo_writer.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>

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
    return read_while([&] { return got.find(want) == std::string::npos; }, limit);
  }
  // Reads what is there while `more()` says so (deadline `limit`).
  template <class More>
  bool read_while(More more, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    while (more()) {
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
  // The reader wakes up: every accepted line arrives whole, and the reports add up to
  // the drops. A report is written each time the buffer drains with drops unreported,
  // which can be before the caller's last lines were accepted (they fit once the writer
  // had taken the buffer), so a report may stand between lines.
  std::size_t lines = 0, reported = 0, other = 0;
  auto tally = [&] {
    lines = reported = other = 0;
    std::size_t start = 0;
    for (auto nl = p.got.find('\n'); nl != std::string::npos; nl = p.got.find('\n', start)) {
      const std::string_view l(p.got.data() + start, nl - start);
      start = nl + 1;
      const std::string_view tail = " lines not echoed: terminal too slow";
      if (l == line)
        ++lines;
      else if (l.starts_with("[plexus] ") && l.ends_with(tail))
        reported += std::stoul(std::string(l.substr(9, l.size() - 9 - tail.size())));
      else
        ++other;
    }
    return lines < accepted || reported < echo.dropped();
  };
  ASSERT_TRUE(p.read_while(tally, 10s)) << lines << " of " << accepted << " lines, " << reported
                                        << " of " << echo.dropped() << " drops reported";
  EXPECT_EQ(lines, accepted);
  EXPECT_EQ(reported, echo.dropped());
  EXPECT_EQ(other, 0u);
}

}  // namespace
}  // namespace plexus::app
