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
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "plexus/os/unique_fd.hpp"
#include "plexus/transport/connection.hpp"
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

}  // namespace
}  // namespace plexus::transport
