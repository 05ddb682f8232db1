// Integration tests: a real router process, real calc processes, and clients in this
// process or the plexus command, over a unique ipc path per test.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <random>
#include <set>

#include "plexus/rpc/client.hpp"
#include "support/process.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using plexus::test::bin;
using plexus::test::child;
using plexus::test::run_until;
using clock_type = std::chrono::steady_clock;

class Fabric : public ::testing::Test {
 protected:
  void SetUp() override {
    router_ = std::make_unique<child>(
        std::vector<std::string>{bin("plexus"), "router", "--listen", address_});
    ASSERT_TRUE(router_->wait_for_output("listening", 5s)) << router_->output();
  }

  std::unique_ptr<child> start_calc(const std::string& name = "calc") {
    auto c = std::make_unique<child>(
        std::vector<std::string>{bin("calc"), "--router", address_, "--name", name});
    EXPECT_TRUE(c->wait_for_output(name + " ready", 5s)) << c->output();
    return c;
  }

  std::pair<int, std::string> cli(std::vector<std::string> args) {
    args.insert(args.begin(), bin("plexus"));
    args.push_back("--router");
    args.push_back(address_);
    return plexus::test::run(args);
  }

  plexus::test::temp_dir dir_;
  std::string address_ = "ipc://" + dir_.path() + "/router.sock";
  std::unique_ptr<child> router_;
  // A client of the router, in this process; connected by the tests that use it.
  boost::asio::io_context io_;
  plexus::rpc::client client_{io_, {.router = address_}};
};

TEST_F(Fabric, CliAddsTwoNumbers) {
  auto calc = start_calc();
  auto [rc, out] = cli({"call", "calc", "add", "1", "2"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "3\n");
}

TEST_F(Fabric, CliDivisionByZeroExitsOneWithClearMessage) {
  auto calc = start_calc();
  auto [rc, out] = cli({"call", "calc", "div", "1", "0"});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("division by zero"), std::string::npos) << out;
}

TEST_F(Fabric, CliUnknownServiceExitsThreeNamingTheRouteQuickly) {
  const auto start = clock_type::now();
  auto [rc, out] = cli({"call", "nosuch", "x"});
  const auto took = clock_type::now() - start;
  EXPECT_EQ(rc, 3);
  EXPECT_NE(out.find("no route to nosuch"), std::string::npos) << out;
  EXPECT_LT(took, 1s);
}

TEST_F(Fabric, CliWrongArityExitsOneNamingTheSignature) {
  auto calc = start_calc();
  auto [rc, out] = cli({"call", "calc", "div", "1"});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("(number, number)"), std::string::npos) << out;
}

TEST_F(Fabric, CliWithoutRouterExitsThree) {
  auto [rc, out] = plexus::test::run({bin("plexus"), "call", "calc", "add", "1", "2", "--router",
                                      "ipc://" + dir_.path() + "/none"});
  EXPECT_EQ(rc, 3);
  EXPECT_NE(out.find("nothing is listening"), std::string::npos) << out;
}

TEST_F(Fabric, CliUsageErrorExitsTwo) {
  auto [rc, out] = plexus::test::run({bin("plexus"), "call"});
  EXPECT_EQ(rc, 2) << out;
}

TEST_F(Fabric, CliListsServicesWithTheirWorkers) {
  auto a = start_calc();
  auto b = start_calc();
  auto [rc, out] = cli({"services", "--json"});
  ASSERT_EQ(rc, 0) << out;
  auto v = plexus::value::parse(out);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0]["name"], "calc");
  EXPECT_EQ(v[0]["workers"], 2);
}

TEST_F(Fabric, UnknownServiceFailsLongBeforeTheDeadline) {
  auto& c = client_;
  ASSERT_TRUE(c.connect());
  const auto start = clock_type::now();
  auto r = c.call_value("nosuch", "x", plexus::value::array(), 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, plexus::errc::unavailable);
  EXPECT_EQ(r.error().context.value("service", ""), "nosuch");
  EXPECT_LT(clock_type::now() - start, 1s);
}

TEST_F(Fabric, KilledServiceFailsItsCallersLongBeforeTheDeadline) {
  auto calc = start_calc();
  auto& c = client_;
  ASSERT_TRUE(c.connect());
  constexpr int n = 20;
  std::vector<std::optional<plexus::result<plexus::value>>> naps(n);
  for (int i = 0; i < n; ++i)
    c.async_call(
        "calc", "nap", plexus::value::array({30}),
        [&naps, i](plexus::result<plexus::value> r) { naps[i].emplace(std::move(r)); }, 5s);
  // An answered echo proves the service has read every nap before it (one ordered stream).
  std::optional<plexus::result<plexus::value>> echo;
  c.async_call("calc", "echo", plexus::value::array({1}),
               [&](plexus::result<plexus::value> r) { echo.emplace(std::move(r)); });
  ASSERT_TRUE(run_until(
      io_, [&] { return echo.has_value(); }, 5s));
  ASSERT_TRUE(*echo);
  for (const auto& r : naps)
    EXPECT_FALSE(r.has_value());

  const auto killed = clock_type::now();
  calc->kill(SIGKILL);
  ASSERT_TRUE(run_until(
      io_,
      [&] { return std::all_of(naps.begin(), naps.end(), [](auto& r) { return r.has_value(); }); },
      5s));
  EXPECT_LT(clock_type::now() - killed, 1s);
  for (const auto& r : naps) {
    ASSERT_FALSE(*r);
    EXPECT_EQ(r->error().code, plexus::errc::unavailable) << r->error().message;
  }
  // Its registration vanished with it.
  auto after = c.call_value("calc", "echo", plexus::value::array({1}), 5s);
  ASSERT_FALSE(after);
  EXPECT_NE(after.error().message.find("no route to calc"), std::string::npos);
}

TEST_F(Fabric, TenThousandConcurrentCallsAreAllAnswered) {
  auto calc = start_calc();
  auto& c = client_;
  ASSERT_TRUE(c.connect());
  constexpr int n = 10000;
  int answered = 0, correct = 0;
  for (int i = 0; i < n; ++i)
    c.async_call(
        "calc", "echo", plexus::value::array({i}),
        [&, i](plexus::result<plexus::value> r) {
          ++answered;
          if (r && *r == i) ++correct;
        },
        30s);
  EXPECT_EQ(c.in_flight(), static_cast<std::size_t>(n));
  ASSERT_TRUE(run_until(
      io_, [&] { return answered == n; }, 30s));
  EXPECT_EQ(correct, n);
}

TEST_F(Fabric, CallsAreSpreadOverReplicas) {
  auto a = start_calc();
  auto b = start_calc();
  auto& c = client_;
  ASSERT_TRUE(c.connect());
  std::set<int> pids;
  for (int i = 0; i < 10; ++i) {
    auto r = c.call<int>("calc", "pid");
    ASSERT_TRUE(r) << r.error().message;
    pids.insert(*r);
  }
  EXPECT_EQ(pids, (std::set<int>{a->pid(), b->pid()}));
}

// Raw frames from a misbehaving peer.
int connect_raw(const std::string& address) {
  const auto path = address.substr(std::string("ipc://").size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(Fabric, GarbageAndOversizedFramesLeaveTheRouterServingOthers) {
  auto calc = start_calc();
  std::mt19937 rng(42);
  // 1: well-framed garbage payloads addressed to calc and to nobody.
  int garbage = connect_raw(address_);
  ASSERT_GE(garbage, 0);
  for (int i = 0; i < 200; ++i) {
    std::vector<std::uint8_t> frame(6 + 4 + 50);
    const std::uint32_t body = static_cast<std::uint32_t>(frame.size() - 4);
    std::memcpy(frame.data(), &body, 4);
    frame[4] = 0;
    frame[5] = 4;
    std::memcpy(frame.data() + 6, i % 2 ? "calc" : "nope", 4);
    for (std::size_t k = 10; k < frame.size(); ++k)
      frame[k] = static_cast<std::uint8_t>(rng());
    ASSERT_EQ(::write(garbage, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  }
  // 2: a frame header announcing 1 GiB, far above max_frame_bytes.
  int oversized = connect_raw(address_);
  ASSERT_GE(oversized, 0);
  const std::uint8_t huge[6] = {0, 0, 0, 0x40, 0, 0};
  ASSERT_EQ(::write(oversized, huge, sizeof huge), 6);
  // The router drops that peer: its end reads EOF.
  char buf[16];
  EXPECT_EQ(::read(oversized, buf, sizeof buf), 0);
  ::close(oversized);

  auto& c = client_;
  ASSERT_TRUE(c.connect());
  for (int i = 0; i < 50; ++i) {
    auto r = c.call<int>("calc", "add", i, 1);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, i + 1);
  }
  ::close(garbage);
}

}  // namespace
