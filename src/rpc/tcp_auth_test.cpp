#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <chrono>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "plexus/broker/router.hpp"
#include "plexus/rpc/client.hpp"
#include "support/fabric.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

// Calls through a router on tcp://127.0.0.1:0 whose peers must authenticate with a
// shared secret (transport/auth.hpp): the right secret works, a wrong one or none is
// refused with permission_denied and counted in the router's auth_failures.

namespace plexus::rpc {
namespace {

using namespace std::chrono_literals;
using test::run_until;

constexpr const char* router_secret = "the router's secret, 32 bytes ok";

class TcpAuthRouter : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("PLEXUS_SECRET");
    ::unsetenv("PLEXUS_SECRET_FILE");
    broker::router_options o{.listen = {"tcp://127.0.0.1:0"}};
    o.transport.secret = router_secret;
    router_.emplace(io_, std::move(o));
    ASSERT_TRUE(router_->start());
    address_ = router_->addresses().at(0);
  }

  client_options with(std::string secret) const {
    client_options o{.router = address_, .name = "auth-test", .reconnect = {.enabled = false}};
    o.transport.secret = std::move(secret);
    return o;
  }

  result<value> ping(client& c) {
    if (auto ok = c.connect(); !ok) return std::move(ok).error();
    return test::call_and_wait(io_, c, "plexus", "ping", value::array(), 5s);
  }

  boost::asio::io_context io_;
  std::optional<broker::router> router_;
  std::string address_;
};

TEST_F(TcpAuthRouter, TheRightSecretGetsAnAnswer) {
  client c(io_, with(router_secret));
  auto r = ping(c);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, value("pong"));
  EXPECT_EQ(router_->stats().auth_failures, 0u);
}

TEST_F(TcpAuthRouter, AWrongSecretIsPermissionDeniedAndCounted) {
  client c(io_, with("a wrong secret but long enough"));
  auto r = ping(c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::permission_denied) << r.error().message;
  ASSERT_TRUE(run_until(io_, [&] { return router_->stats().auth_failures == 1; }));
  EXPECT_EQ(router_->stats().forwarded, 0u);
}

TEST_F(TcpAuthRouter, NoSecretIsPermissionDeniedSayingHowToGiveOne) {
  client c(io_, with(""));
  auto r = ping(c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::permission_denied) << r.error().message;
  EXPECT_NE(r.error().message.find("PLEXUS_SECRET"), std::string::npos) << r.error().message;
  ASSERT_TRUE(run_until(io_, [&] { return router_->stats().auth_failures == 1; }));
}

TEST_F(TcpAuthRouter, AClientSecretShorterThan16BytesIsRefusedAtConnect) {
  client c(io_, with("short"));
  auto ok = c.connect();
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().code, errc::invalid_argument);
  EXPECT_NE(ok.error().message.find("too short"), std::string::npos) << ok.error().message;
}

TEST_F(TcpAuthRouter, TheClientTakesItsSecretFromTheEnvironment) {
  ::setenv("PLEXUS_SECRET", router_secret, 1);
  client c(io_, with(""));
  auto r = ping(c);
  ::unsetenv("PLEXUS_SECRET");
  ASSERT_TRUE(r) << r.error().message;
}

TEST(TcpAuthRouterStart, BeyondLoopbackWithoutASecretTheRouterDoesNotStart) {
  ::unsetenv("PLEXUS_SECRET");
  ::unsetenv("PLEXUS_SECRET_FILE");
  boost::asio::io_context io;
  broker::router r(io, {.listen = {"tcp://0.0.0.0:0"}});
  auto ok = r.start();
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().code, errc::permission_denied);
  EXPECT_NE(ok.error().message.find("tcp://0.0.0.0:0"), std::string::npos) << ok.error().message;
  broker::router z(io, {.listen = {"zmq-frontend+tcp://0.0.0.0:*"}});
  auto zok = z.start();
  ASSERT_FALSE(zok);
  EXPECT_EQ(zok.error().code, errc::permission_denied) << zok.error().message;
}

TEST(TcpAuthRouterStart, ASecretFileReadableByOthersStopsTheRouter) {
  test::temp_dir dir;
  const auto path = dir.path() + "/secret";
  {
    std::FILE* f = std::fopen(path.c_str(), "we");
    std::fputs(router_secret, f);
    std::fclose(f);
  }
  ::chmod(path.c_str(), 0644);
  boost::asio::io_context io;
  broker::router_options o{.listen = {"tcp://127.0.0.1:0"}};
  o.secret_file = path;
  broker::router r(io, o);
  auto ok = r.start();
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().code, errc::permission_denied);
  EXPECT_NE(ok.error().message.find("chmod 600"), std::string::npos) << ok.error().message;
  ::chmod(path.c_str(), 0600);
  broker::router again(io, o);
  EXPECT_TRUE(again.start());
}

// A tcp peer that connects and says nothing is sent the challenge and nothing else,
// then closed at hello_timeout_ms like any silent peer.
TEST(TcpAuthRouterSilence, ASilentTcpPeerIsClosedAtTheHelloTimeout) {
  boost::asio::io_context io;
  broker::router_options o{.listen = {"tcp://127.0.0.1:0"}, .hello_timeout_ms = 200};
  o.transport.secret = router_secret;
  broker::router r(io, o);
  ASSERT_TRUE(r.start());
  const auto address = r.addresses().at(0);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port =
      htons(static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  std::size_t seen = 0;
  bool eof = false;
  ASSERT_TRUE(run_until(io, [&] {
    char buf[256];
    for (;;) {
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        seen += static_cast<std::size_t>(n);
        continue;
      }
      eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      break;
    }
    return eof;
  }));
  ::close(fd);
  EXPECT_EQ(seen, 40u);  // the challenge (docs/protocol.md §1)
  EXPECT_EQ(r.stats().hello_timeouts, 1u);
  EXPECT_TRUE(run_until(io, [&] { return r.stats().peers == 0; }));
}

}  // namespace
}  // namespace plexus::rpc
