// Integration: the router process holds to its input budget when many peers announce
// large frames and send nothing more, and goes on answering calls.

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "plexus/os/unique_fd.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/wire/cbor.hpp"
#include "plexus/wire/frame.hpp"
#include "support/memory.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using plexus::test::bin;
using plexus::test::child;

plexus::os::unique_fd connect_unix(const std::string& path) {
  plexus::os::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return {};
  return fd;
}

// Reads exactly `n` bytes before `deadline`; false on timeout, error or end of stream.
bool read_exactly(int fd, std::uint8_t* out, std::size_t n,
                  std::chrono::steady_clock::time_point deadline) {
  while (n > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const auto got = ::read(fd, out, n);
    if (got <= 0) return false;
    out += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

// One whole frame's kind, or -1 when none arrives in time.
int read_frame_kind(int fd, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::uint8_t prefix[plexus::wire::frame_prefix_bytes];
  if (!read_exactly(fd, prefix, sizeof prefix, deadline)) return -1;
  std::vector<std::uint8_t> body(plexus::wire::read_frame_length(prefix));
  if (body.empty() || !read_exactly(fd, body.data(), body.size(), deadline)) return -1;
  return body[0];
}

TEST(RouterBudget, TwoHundredStalledSixtyFourMebibyteFramesKeepTheRouterSmallAndServing) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's shadow memory and allocator alone put the router above the
  // figure (124 MiB resident after one stalled peer, measured): the growth itself is checked
  // under ASan by StreamConnection.AnnouncedFrameSizeIsNotAllocatedBeforeItsBytesArrive.
  GTEST_SKIP() << "resident-memory figure not meaningful under AddressSanitizer";
#endif
  plexus::test::temp_dir dir;
  const auto path = dir.path() + "/router.sock";
  child router({bin("plexus"), "router", "--listen", "ipc://" + path});
  ASSERT_TRUE(router.wait_for_output("listening", 5s)) << router.output();
  constexpr std::size_t budget = 64u << 20;

  // Each peer says hello (so that no hello timeout ends it) and, in the same write,
  // announces a 64 MiB frame of which it never sends a byte. The router reads both in
  // one pass, so its welcome means it has seen the announcement.
  std::vector<std::uint8_t> hello_then_header;
  {
    std::vector<std::uint8_t> hello;
    plexus::wire::encode_value(hello, plexus::value{{"op", "hello"}, {"name", "stalled"}});
    hello_then_header.resize(plexus::wire::frame_fixed_bytes);
    plexus::wire::write_frame_header(hello_then_header.data(), plexus::wire::frame_kind::control, 0,
                                     hello.size());
    hello_then_header.insert(hello_then_header.end(), hello.begin(), hello.end());
    const std::uint32_t announced = 64u << 20;
    for (int i = 0; i < 4; ++i)
      hello_then_header.push_back(static_cast<std::uint8_t>(announced >> (8 * i)));
  }
  std::vector<plexus::os::unique_fd> stalled;
  for (int i = 0; i < 200; ++i) {
    stalled.push_back(connect_unix(path));
    ASSERT_TRUE(stalled.back()) << "connection " << i;
    const int fd = stalled.back().get();
    ASSERT_EQ(::write(fd, hello_then_header.data(), hello_then_header.size()),
              static_cast<ssize_t>(hello_then_header.size()));
    ASSERT_EQ(read_frame_kind(fd, 5s), 1) << "no welcome for connection " << i;
    // Checked as it goes, so that a router that allocates what is announced fails
    // after a few connections instead of taking the machine's memory.
    const auto rss = plexus::test::resident_bytes(router.pid());
    ASSERT_LT(rss, budget) << "after " << (i + 1) << " stalled connections";
  }

  boost::asio::io_context io;
  plexus::rpc::client c(io, {.router = "ipc://" + path});
  ASSERT_TRUE(c.connect());
  auto stats = c.call<plexus::value>("plexus", "stats");
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ((*stats)["peers"], 201) << stats->dump();
  const auto rss = plexus::test::resident_bytes(router.pid());
  EXPECT_GT(rss, 0u);
  EXPECT_LT(rss, budget) << "router resident memory with 200 stalled 64 MiB frames";
  auto pong = c.call<std::string>("plexus", "ping");
  ASSERT_TRUE(pong) << pong.error().message;
  EXPECT_EQ(*pong, "pong");
}

}  // namespace
