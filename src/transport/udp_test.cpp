#include "plexus/transport/udp.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <optional>

#include "plexus/broker/router.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/wire/message.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

// The UDP datagram node on its own and through the router, on loopback only.

namespace plexus::transport {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::run_until;

TEST(UdpAddress, ParsesHostPortAndOptions) {
  auto a = parse_udp_address("udp://239.1.2.3:9000?interface=127.0.0.1&ttl=0");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "239.1.2.3");
  EXPECT_EQ(a->port, 9000);
  EXPECT_EQ(a->interface_address, "127.0.0.1");
  EXPECT_EQ(a->ttl, 0);
  auto v6 = parse_udp_address("udp://[::1]:7");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->ttl, 1);
}

TEST(UdpAddress, BadAddressesAreInvalidArgumentNamingTheInput) {
  for (const char* bad :
       {"tcp://127.0.0.1:1", "udp://127.0.0.1", "udp://:9", "udp://h:70000", "udp://h:x",
        "udp://[::1:9", "udp://h:9?ttl=300", "udp://h:9?colour=red", "udp://h:9?interface=eth0"}) {
    auto a = parse_udp_address(bad);
    ASSERT_FALSE(a) << bad;
    EXPECT_EQ(a.error().code, errc::invalid_argument) << bad;
    EXPECT_NE(a.error().message.find(bad), std::string::npos) << a.error().message;
  }
}

TEST(UdpSender, OversizeMessageIsRefusedNotTruncated) {
  asio::io_context io;
  auto in = bind_udp(io, "udp://127.0.0.1:0");
  ASSERT_TRUE(in) << in.error().message;
  int received = 0;
  (*in)->start([&](std::span<const std::uint8_t>) { ++received; });
  auto tx = udp_sender::open(io, (*in)->address());
  ASSERT_TRUE(tx) << tx.error().message;
  const value big = value::array({value::binary(std::vector<std::uint8_t>(70000, 1))});
  auto r = tx->notify("big", big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::resource_exhausted);
  EXPECT_NE(r.error().message.find("max_datagram_bytes"), std::string::npos) << r.error().message;
  // The largest message that fits is sent whole.
  std::vector<std::uint8_t> exact;
  wire::encode(exact, wire::notification{
                          "m", value::array({value::binary(std::vector<std::uint8_t>(65490, 2))})});
  ASSERT_LE(exact.size(), max_datagram_bytes);
  std::size_t size = 0;
  (*in)->start([&](std::span<const std::uint8_t> d) {
    ++received;
    size = d.size();
  });
  ASSERT_TRUE(tx->send(exact));
  ASSERT_TRUE(run_until(io, [&] { return received == 1; }));
  EXPECT_EQ(size, exact.size());
}

class UdpThroughRouter : public ::testing::Test {
 protected:
  void start(const std::string& udp) {
    router_.emplace(io_, broker::router_options{.listen = {native_, udp}});
    auto ok = router_->start();
    ASSERT_TRUE(ok) << ok.error().message;
    udp_address_ = router_->addresses().back();
    client_.emplace(io_, rpc::client_options{.router = native_});
    ASSERT_TRUE(client_->connect());
    ASSERT_TRUE(client_->subscribe(
        "", [this](std::string_view t, const value& p) { got_.emplace_back(std::string(t), p); }));
    auto synced = client_->call_value("plexus", "ping", value::array(), 2s);
    ASSERT_TRUE(synced);
  }
  void TearDown() override {
    client_.reset();
    router_.reset();
  }

  asio::io_context io_;
  test::temp_dir dir_;
  std::string native_ = "ipc://" + dir_.path() + "/native.sock";
  std::string udp_address_;
  std::optional<broker::router> router_;
  std::optional<rpc::client> client_;
  std::vector<std::pair<std::string, value>> got_;
};

TEST_F(UdpThroughRouter, UnicastDatagramIsPublishedUnderItsMethod) {
  start("udp://127.0.0.1:0");
  ASSERT_NE(udp_address_.find("udp://127.0.0.1:"), std::string::npos) << udp_address_;
  auto tx = udp_sender::open(io_, udp_address_);
  ASSERT_TRUE(tx) << tx.error().message;
  // Best effort: loopback does not lose datagrams in practice, but the test only
  // needs one to arrive.
  ASSERT_TRUE(run_until(io_, [&] {
    EXPECT_TRUE(tx->notify("sensor.temp", value::array({21.5, "hall"})));
    return !got_.empty();
  }));
  EXPECT_EQ(got_[0].first, "sensor.temp");
  EXPECT_EQ(got_[0].second, value::array({21.5, "hall"}));
}

TEST_F(UdpThroughRouter, GarbageDatagramIsCountedAndIgnored) {
  start("udp://127.0.0.1:0");
  auto tx = udp_sender::open(io_, udp_address_);
  ASSERT_TRUE(tx);
  const std::uint8_t junk[] = {0xff, 0x00, 0x13};
  ASSERT_TRUE(tx->send(junk));
  std::vector<std::uint8_t> request;
  wire::encode(request, wire::request{1, "m", value::array()});  // not a notification
  ASSERT_TRUE(tx->send(request));
  ASSERT_TRUE(run_until(io_, [&] { return router_->stats().malformed >= 2; }));
  ASSERT_TRUE(tx->notify("after", value::array()));
  ASSERT_TRUE(run_until(io_, [&] { return !got_.empty(); }));
  EXPECT_EQ(got_[0].first, "after");
}

TEST_F(UdpThroughRouter, MulticastOnLoopbackIsPublished) {
  // A group joined on the loopback interface: the datagrams never leave the host.
  start("udp://239.255.71.23:0?interface=127.0.0.1");
  const auto port = udp_address_.substr(udp_address_.rfind(':') + 1);
  auto tx = udp_sender::open(io_, "udp://239.255.71.23:" + port + "?interface=127.0.0.1&ttl=0");
  ASSERT_TRUE(tx) << tx.error().message;
  ASSERT_TRUE(run_until(io_, [&] {
    EXPECT_TRUE(tx->notify("mc", value::array({1})));
    return !got_.empty();
  }));
  EXPECT_EQ(got_[0].first, "mc");
}

TEST(UdpBind, BusyPortIsUnavailable) {
  asio::io_context io;
  auto first = bind_udp(io, "udp://127.0.0.1:0");
  ASSERT_TRUE(first);
  auto second = bind_udp(io, (*first)->address());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::unavailable);
  EXPECT_NE(second.error().message.find((*first)->address()), std::string::npos);
}

}  // namespace
}  // namespace plexus::transport
