#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "plexus/os/unique_fd.hpp"
#include "plexus/transport/connection.hpp"
#include "support/memory.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

// The stream listener when the process runs out of descriptors: it backs off instead
// of retrying at once, says so once, and accepts the waiting peers once descriptors
// are free again.

namespace plexus::transport {
namespace {

using namespace std::chrono_literals;
using test::run_until;

int highest_open_fd() {
  int high = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return 1024;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') high = std::max(high, std::atoi(e->d_name));
  ::closedir(d);
  return high;
}

// Lowers this process's soft descriptor limit for the test, and puts it back.
class low_fd_limit {
 public:
  explicit low_fd_limit(rlim_t soft) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit low = saved_;
    low.rlim_cur = std::min(soft, saved_.rlim_max);
    ok_ = ::setrlimit(RLIMIT_NOFILE, &low) == 0;
  }
  ~low_fd_limit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

os::unique_fd connect_raw(const std::string& path) {
  os::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return {};
  return fd;
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

TEST(StreamListener, OutOfDescriptorsItBacksOffThenAcceptsTheWaitingPeers) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's runtime opens files of its own (/proc/self/maps, symbolizer) and
  // dies when the descriptor table is full: this test runs in the normal build only.
  GTEST_SKIP() << "needs a full descriptor table, which the ASan runtime cannot live with";
#endif
  test::temp_dir dir;
  const auto path = dir.path() + "/s.sock";
  boost::asio::io_context io(1);
  auto l = listen(io, "ipc://" + path);
  ASSERT_TRUE(l) << l.error().message;
  std::vector<connection> accepted;
  l->start([&](connection c) { accepted.push_back(std::move(c)); });

  testing::internal::CaptureStderr();  // (it needs a descriptor: before the table fills)
  std::vector<os::unique_fd> peers;
  for (int i = 0; i < 3; ++i) {
    peers.push_back(connect_raw(path));  // queued in the backlog, not yet accepted
    ASSERT_TRUE(peers.back());
  }
  std::size_t handlers = 0;
  {
    low_fd_limit limit(static_cast<rlim_t>(highest_open_fd() + 32));
    ASSERT_TRUE(limit.ok());
    std::vector<os::unique_fd> filler;
    for (;;) {
      os::unique_fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      if (!fd) break;
      filler.push_back(std::move(fd));
    }
    ASSERT_EQ(errno, EMFILE);
    ASSERT_FALSE(filler.empty());

    // A listener that retried at once would run thousands of handlers in this window;
    // one that backs off (100 ms, 200 ms, …) runs a few.
    const auto window_start = std::chrono::steady_clock::now();
    handlers = io.run_for(400ms);
    EXPECT_GE(std::chrono::steady_clock::now() - window_start, 400ms);
    EXPECT_TRUE(accepted.empty());
    EXPECT_LT(handlers, 20u) << "the accept loop spins";

    filler.clear();  // descriptors free again: the waiting peers are accepted
    EXPECT_TRUE(run_until(
        io, [&] { return accepted.size() == peers.size(); }, 5000ms))
        << accepted.size() << " of " << peers.size() << " accepted";
  }
  const auto said = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(said, "cannot accept on ipc://" + path), 1u) << said;
  EXPECT_NE(said.find("Too many open files"), std::string::npos) << said;
  EXPECT_EQ(count(said, "accepting on ipc://" + path + " again"), 1u) << said;
}

// A stream listener on a fresh ipc path, with its loop.
class StreamConnection : public testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(l) << l.error().message; }

  test::temp_dir dir;
  std::string path = dir.path() + "/s.sock";
  boost::asio::io_context io{1};
  result<listener> l = listen(io, "ipc://" + path);
};

TEST_F(StreamConnection, AnnouncedFrameSizeIsNotAllocatedBeforeItsBytesArrive) {
  connection accepted;
  std::size_t frames = 0;
  bool closed = false;
  l->start([&](connection c) {
    accepted = std::move(c);
    accepted.start([&](const wire::frame_view&) { ++frames; },
                   [&](const plexus::error&) { closed = true; });
  });
  auto peer = connect_raw(path);
  ASSERT_TRUE(peer);
  const auto before = test::resident_bytes(::getpid());
  // One small whole frame, then the header of a 64 MiB one, in one write: the reader
  // sees the announcement in the same pass that delivers the small frame.
  const std::uint8_t bytes[] = {2, 0, 0, 0, 0, 0,  // empty data frame
                                0, 0, 0, 4,        // body of 64 MiB
                                0, 0};             // kind, name length
  ASSERT_EQ(::write(peer.get(), bytes, sizeof bytes), static_cast<ssize_t>(sizeof bytes));
  ASSERT_TRUE(run_until(io, [&] { return frames == 1; }));
  const auto grown = test::resident_bytes(::getpid()) - before;
  EXPECT_LT(grown, 8u << 20) << "the reader took " << grown << " bytes for 8 that arrived";
  EXPECT_FALSE(closed);
}

TEST_F(StreamConnection, SharedPayloadIsQueuedByReferenceAndArrivesWhole) {
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> got;
  connection accepted;
  l->start([&](connection c) {
    accepted = std::move(c);
    accepted.start(
        [&](const wire::frame_view& f) {
          got.emplace_back(std::string(f.name),
                           std::vector<std::uint8_t>(f.payload.begin(), f.payload.end()));
        },
        [](const plexus::error&) {});
  });
  auto c = connect(io, "ipc://" + path);
  ASSERT_TRUE(c) << c.error().message;
  c->start([](const wire::frame_view&) {}, [](const plexus::error&) {});

  // Larger than a socket buffer: the write goes on asynchronously, in pieces.
  std::vector<std::uint8_t> big(8u << 20);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>(i * 7 + i / 251);
  const auto payload = std::make_shared<const std::vector<std::uint8_t>>(big);
  const std::vector<std::uint8_t> small{1, 2, 3};
  ASSERT_TRUE(c->send_shared(wire::frame_kind::data, "one", payload));
  ASSERT_TRUE(c->send(wire::frame_kind::data, "mid", small));
  ASSERT_TRUE(c->send_shared(wire::frame_kind::data, "two", payload));
  EXPECT_EQ(payload.use_count(), 3);  // queued twice, copied never
  EXPECT_EQ(c->queued_bytes(), 3 * wire::frame_fixed_bytes + 9 + 2 * big.size() + small.size());

  ASSERT_TRUE(run_until(
      io, [&] { return got.size() == 3; }, 10000ms));
  EXPECT_EQ(got[0].first, "one");
  EXPECT_TRUE(got[0].second == big);
  EXPECT_EQ(got[1].first, "mid");
  EXPECT_EQ(got[1].second, small);
  EXPECT_EQ(got[2].first, "two");
  EXPECT_TRUE(got[2].second == big);
  ASSERT_TRUE(run_until(io, [&] { return payload.use_count() == 1; }));
  EXPECT_EQ(c->queued_bytes(), 0u);
}

}  // namespace
}  // namespace plexus::transport
