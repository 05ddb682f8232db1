// Connecting without waiting: an ipc connect to a listener whose backlog is full fails
// at once instead of blocking, a tcp connect to a host that never answers gives up at
// connect_timeout, and async_connect leaves the loop free meanwhile.
// (support/full_listener.hpp makes the listeners that never answer.)
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>

#include "plexus/transport/connection.hpp"
#include "support/full_listener.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

namespace plexus::transport {
namespace {

using namespace std::chrono_literals;
using test::run_until;

TEST(Connect, AnIpcListenerWithAFullBacklogIsUnavailableAtOnceNotWaitedFor) {
  test::temp_dir dir;
  const auto path = dir.path() + "/busy.sock";
  test::full_ipc_listener busy(path);
  ASSERT_TRUE(busy.ok());
  boost::asio::io_context io;
  // A blocking connect(2) here would sleep until the listener accepts: never.
  auto c = connect(io, "ipc://" + path);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, errc::unavailable);
  EXPECT_NE(c.error().message.find("backlog is full"), std::string::npos) << c.error().message;
}

TEST(Connect, ATcpConnectThatIsNeverAnsweredGivesUpAtConnectTimeout) {
  test::full_tcp_listener silent;
  ASSERT_TRUE(silent.ok());
  boost::asio::io_context io;
  const auto started = std::chrono::steady_clock::now();
  auto c = connect(io, silent.address(), {.connect_timeout = 200ms});
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, errc::unavailable);
  EXPECT_NE(c.error().message.find("connect_timeout"), std::string::npos) << c.error().message;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 20s) << "the first SYN retries alone take 1 s, 3 s, 7 s...";
}

TEST(AsyncConnect, ATcpConnectInProgressLeavesTheLoopFreeAndEndsAtConnectTimeout) {
  test::full_tcp_listener silent;
  ASSERT_TRUE(silent.ok());
  boost::asio::io_context io;
  std::optional<result<connection>> got;
  async_connect(io, silent.address(), {.connect_timeout = 300ms},
                [&](result<connection> c) { got.emplace(std::move(c)); });
  EXPECT_FALSE(got) << "the handler ran inside the call";
  // While the connect is pending the loop runs other work.
  bool other_work = false;
  boost::asio::post(io, [&] { other_work = true; });
  ASSERT_TRUE(run_until(
      io, [&] { return other_work; }, 5s));
  EXPECT_FALSE(got) << "the connect ended before its timeout";
  ASSERT_TRUE(run_until(
      io, [&] { return got.has_value(); }, 10s));
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error().code, errc::unavailable);
  EXPECT_NE(got->error().message.find("connect_timeout"), std::string::npos)
      << got->error().message;
}

TEST(AsyncConnect, ConnectsToAListenerAndReportsAnEmptyAddressAsRefused) {
  test::temp_dir dir;
  boost::asio::io_context io;
  auto l = listen(io, "ipc://" + dir.path() + "/ok.sock");
  ASSERT_TRUE(l);
  l->start([](connection) {});
  auto t = listen(io, "tcp://127.0.0.1:0");
  ASSERT_TRUE(t);
  t->start([](connection) {});

  std::optional<result<connection>> ipc, tcp, nobody, bad;
  async_connect(io, "ipc://" + dir.path() + "/ok.sock", {},
                [&](result<connection> c) { ipc.emplace(std::move(c)); });
  async_connect(io, t->address(), {}, [&](result<connection> c) { tcp.emplace(std::move(c)); });
  async_connect(io, "ipc://" + dir.path() + "/nobody.sock", {},
                [&](result<connection> c) { nobody.emplace(std::move(c)); });
  async_connect(io, "bogus://x", {}, [&](result<connection> c) { bad.emplace(std::move(c)); });
  EXPECT_FALSE(ipc || tcp || nobody || bad) << "a handler ran inside the call";
  ASSERT_TRUE(run_until(
      io, [&] { return ipc && tcp && nobody && bad; }, 5s));
  EXPECT_TRUE(*ipc) << ipc->error().message;
  EXPECT_TRUE(*tcp) << tcp->error().message;
  ASSERT_FALSE(*nobody);
  EXPECT_EQ(nobody->error().code, errc::unavailable);
  ASSERT_FALSE(*bad);
  EXPECT_EQ(bad->error().code, errc::invalid_argument);
}

TEST(AsyncConnect, SeveralAddressesAreTriedInTurnUntilOneConnects) {
  test::temp_dir dir;
  boost::asio::io_context io;
  auto l = listen(io, "ipc://" + dir.path() + "/second.sock");
  ASSERT_TRUE(l);
  l->start([](connection) {});
  std::optional<result<connection>> got;
  async_connect(io, "ipc://" + dir.path() + "/first.sock,ipc://" + dir.path() + "/second.sock", {},
                [&](result<connection> c) { got.emplace(std::move(c)); });
  ASSERT_TRUE(run_until(
      io, [&] { return got.has_value(); }, 5s));
  ASSERT_TRUE(*got) << got->error().message;
  EXPECT_NE(got->value().description().find("second.sock"), std::string::npos);
}

}  // namespace
}  // namespace plexus::transport
