#include "rpc/router_link.hpp"

#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "plexus/wire/control.hpp"
#include "support/full_listener.hpp"
#include "support/wait.hpp"

// The router link against a fake router: an inproc listener whose one accepted
// connection records what the link sends and sends what the test wants.

namespace plexus::rpc::detail {
namespace {

namespace asio = boost::asio;
using plexus::test::run_until;

const reconnect_options fail_fast{.enabled = false};

std::string next_address() {
  static int counter = 0;
  return "inproc://router-link-test-" + std::to_string(::getpid()) + "-" +
         std::to_string(++counter);
}

struct fake_router {
  explicit fake_router(asio::io_context& io, std::string at = next_address())
      : address(std::move(at)) {
    listener = std::move(*transport::listen(io, address));
    listener.start([this](transport::connection c) {
      peer = std::move(c);
      peer.start(
          [this](const wire::frame_view& f) {
            if (f.kind == wire::frame_kind::control)
              control.push_back(*wire::decode_value(f.payload));
            else
              data_names.emplace_back(f.name);
          },
          [this](const plexus::error&) { peer_closed = true; });
    });
  }
  void send_control(const value& map) {
    std::vector<std::uint8_t> bytes;
    wire::encode_value(bytes, map);
    ASSERT_TRUE(peer.send(wire::frame_kind::control, "", bytes));
  }

  std::string address;
  transport::listener listener;
  transport::connection peer;
  std::vector<value> control;  // decoded, in arrival order
  std::vector<std::string> data_names;
  bool peer_closed = false;
};

// Runs what is ready now, so that a callback that should not run has had its chance.
void settle(asio::io_context& io) {
  for (int i = 0; i < 4; ++i) {
    io.restart();
    io.poll();
  }
}

TEST(RouterLink, SaysHelloWithItsNameAndPidThenRunsTheRegistrationHook) {
  asio::io_context io;
  fake_router router(io);
  router_link link(io, router.address, {}, {}, "calc");
  link.on_registration([&] { (void)link.send_control({{"op", "register"}}); });
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  EXPECT_TRUE(link.is_open());
  ASSERT_TRUE(run_until(io, [&] { return router.control.size() == 2; }));
  EXPECT_EQ(router.control[0],
            (value{{"op", "hello"}, {"name", "calc"}, {"pid", static_cast<int>(::getpid())}}));
  EXPECT_EQ(router.control[1], (value{{"op", "register"}}));
}

TEST(RouterLink, SaysHelloAsClientWhenUnnamed) {
  asio::io_context io;
  fake_router router(io);
  router_link link(io, router.address, {}, {}, "");
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  ASSERT_TRUE(run_until(io, [&] { return router.control.size() == 1; }));
  EXPECT_EQ(control::text_field(router.control[0], "name"), "client");
}

TEST(RouterLink, HandsControlFramesToTheHandlerOfTheirOpAndDataFramesToTheOwner) {
  asio::io_context io;
  fake_router router(io);
  router_link link(io, router.address, {}, {}, "calc");
  std::vector<std::int64_t> dropped;
  link.on_control(control::dropped,
                  [&](const value& v) { dropped.push_back(control::int_field(v, "count")); });
  std::vector<std::string> data;
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [&](const wire::frame_view& f) { data.emplace_back(f.name); }));
  ASSERT_TRUE(run_until(io, [&] { return router.peer.is_open(); }));
  router.send_control({{"op", control::welcome}, {"peer", 7}});  // no handler: ignored
  router.send_control(value::array({1, 2}));                     // not a map: ignored
  router.send_control({{"op", control::dropped}, {"count", 12}, {"total", 40}});
  ASSERT_TRUE(router.peer.send(wire::frame_kind::data, "abcd", std::vector<std::uint8_t>{0x80}));
  ASSERT_TRUE(run_until(io, [&] { return !dropped.empty() && !data.empty(); }));
  EXPECT_EQ(dropped, std::vector<std::int64_t>{12});
  EXPECT_EQ(data, std::vector<std::string>{"abcd"});

  ASSERT_TRUE(link.publish("tick.a", value::array({1})));
  ASSERT_TRUE(link.notify("calc", "reset", value::array()));
  ASSERT_TRUE(run_until(io, [&] { return router.data_names.size() == 2; }));
  EXPECT_EQ(router.data_names, (std::vector<std::string>{"*", "calc"}));
}

TEST(RouterLink, ReportsTheLossOnceWhenTheRouterClosesItAndFailsFastWithoutReconnection) {
  asio::io_context io;
  fake_router router(io);
  router_link link(io, router.address, {}, fail_fast, "calc");
  std::vector<plexus::error> lost;
  link.on_lost([&](const plexus::error& e) { lost.push_back(e); });
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  ASSERT_TRUE(run_until(io, [&] { return router.peer.is_open(); }));
  EXPECT_TRUE(lost.empty());
  router.peer.close();
  ASSERT_TRUE(run_until(io, [&] { return !lost.empty(); }));
  settle(io);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].code, errc::unavailable);
  EXPECT_FALSE(link.is_open());
  EXPECT_EQ(link.publish("tick", value::array()).error().message,
            "not connected to the router at " + router.address);
}

TEST(RouterLink, ReportsNoLossAfterItsOwnClose) {
  asio::io_context io;
  fake_router router(io);
  router_link link(io, router.address, {}, {}, "calc");
  int lost = 0;
  link.on_lost([&](const plexus::error&) { ++lost; });
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  ASSERT_TRUE(run_until(io, [&] { return router.peer.is_open(); }));
  link.close();
  link.close();
  ASSERT_TRUE(run_until(io, [&] { return router.peer_closed; }));
  settle(io);
  EXPECT_EQ(lost, 0);
  EXPECT_FALSE(link.is_open());
}

TEST(RouterLink, RunsNoCallbackOnceItsOwnerIsGone) {
  asio::io_context io;
  fake_router router(io);
  router_link link(io, router.address, {}, {}, "calc");
  int calls = 0;
  link.on_control(control::dropped, [&](const value&) { ++calls; });
  link.on_lost([&](const plexus::error&) { ++calls; });
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [&](const wire::frame_view&) { ++calls; }));
  ASSERT_TRUE(run_until(io, [&] { return router.peer.is_open(); }));
  owner.reset();
  router.send_control({{"op", control::dropped}, {"count", 1}});
  ASSERT_TRUE(router.peer.send(wire::frame_kind::data, "abcd", std::vector<std::uint8_t>{0x80}));
  router.peer.close();
  ASSERT_TRUE(run_until(io, [&] { return !link.is_open(); }));
  settle(io);
  EXPECT_EQ(calls, 0);
}

TEST(RouterLink, NamesTheRouterInEverySendWithoutAConnectionAndFailsFastWithoutReconnection) {
  asio::io_context io;
  const auto address = next_address();
  router_link link(io, address, {}, fail_fast, "calc");
  const std::string expected = "not connected to the router at " + address;
  EXPECT_FALSE(link.is_open());
  EXPECT_EQ(link.not_connected().code, errc::unavailable);
  EXPECT_EQ(link.not_connected().message, expected);
  EXPECT_EQ(link.check_open().error().message, expected);
  EXPECT_EQ(link.notify("calc", "reset", value::array()).error().message, expected);
  EXPECT_EQ(link.publish("tick", value::array()).error().message, expected);
  EXPECT_EQ(link.log("info", "hello", value::object()).error().message, expected);
  EXPECT_EQ(link.log("loud", "hello", value::object()).error().code, errc::invalid_argument);
  auto owner = std::make_shared<int>(0);
  auto r = link.open(owner, [](const wire::frame_view&) {});  // nothing listens there
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::unavailable);
}

TEST(RouterLink, WaitsForARouterThatIsNotListeningYetThenSaysHelloAndRegisters) {
  asio::io_context io;
  const auto address = next_address();
  router_link link(io, address, {}, {}, "calc");
  int registrations = 0;
  link.on_registration([&] { ++registrations; });
  std::vector<link_event> events;
  link.on_event([&](link_event e, const plexus::error&) { events.push_back(e); });
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));  // nothing listens yet
  EXPECT_FALSE(link.is_open());
  EXPECT_TRUE(link.is_reconnecting());
  EXPECT_EQ(link.attempts(), 1u);
  EXPECT_EQ(link.check_open().error().code, errc::unavailable);
  ASSERT_TRUE(run_until(io, [&] { return link.attempts() >= 3; }));  // it keeps trying
  EXPECT_EQ(registrations, 0);
  EXPECT_TRUE(events.empty());

  fake_router router(io, address);
  ASSERT_TRUE(run_until(io, [&] { return !router.control.empty() && !events.empty(); }));
  EXPECT_TRUE(link.is_open());
  EXPECT_FALSE(link.is_reconnecting());
  EXPECT_EQ(control::text_field(router.control[0], "op"), "hello");
  EXPECT_EQ(registrations, 1);
  EXPECT_EQ(events, std::vector<link_event>{link_event::connected});
}

TEST(RouterLink, SpacesItsAttemptsWithAGrowingWait) {
  asio::io_context io;
  router_link link(
      io, next_address(), {},
      {.first_delay = std::chrono::milliseconds(10), .max_delay = std::chrono::milliseconds(40)},
      "calc");
  auto owner = std::make_shared<int>(0);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  ASSERT_TRUE(run_until(io, [&] { return link.attempts() >= 6; }));
  // Waits of at least half of 10, 20, 40, 40 and 40 ms: not a busy loop, and capped.
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(75));
}

TEST(RouterLink, ReconnectsToARestartedRouterSaysHelloAndRegistersAgainAndReports) {
  asio::io_context io;
  const auto address = next_address();
  auto router = std::make_unique<fake_router>(io, address);
  router_link link(io, address, {}, {}, "calc");
  int registrations = 0;
  link.on_registration([&] { ++registrations; });
  std::vector<link_event> events;
  std::vector<plexus::error> why;
  link.on_event([&](link_event e, const plexus::error& w) {
    events.push_back(e);
    why.push_back(w);
  });
  int lost = 0;
  link.on_lost([&](const plexus::error&) { ++lost; });
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  ASSERT_TRUE(run_until(io, [&] { return !router->control.empty() && events.size() == 1; }));

  router.reset();  // the router dies: its listener and our connection with it
  ASSERT_TRUE(run_until(io, [&] { return events.size() == 2; }));
  EXPECT_EQ(lost, 1);
  EXPECT_EQ(why[1].code, errc::unavailable);
  EXPECT_FALSE(link.is_open());
  EXPECT_TRUE(link.is_reconnecting());
  const auto before = link.attempts();
  ASSERT_TRUE(run_until(io, [&] { return link.attempts() >= before + 2; }));  // still trying

  router = std::make_unique<fake_router>(io, address);  // back at the same address
  ASSERT_TRUE(run_until(io, [&] { return !router->control.empty() && events.size() == 3; }));
  EXPECT_EQ(control::text_field(router->control[0], "op"), "hello");
  EXPECT_EQ(registrations, 2);
  EXPECT_EQ(events, (std::vector<link_event>{link_event::connected, link_event::lost,
                                             link_event::reconnected}));
  EXPECT_TRUE(link.is_open());
  EXPECT_TRUE(link.publish("tick", value::array()));
}

TEST(RouterLink, CloseWhileWaitingForTheRouterEndsTheWaitingAndLeavesTheLoopNoWork) {
  asio::io_context io;
  router_link link(io, next_address(), {}, {}, "calc");
  auto owner = std::make_shared<int>(0);
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  ASSERT_TRUE(run_until(io, [&] { return link.attempts() >= 2; }));
  link.close();
  EXPECT_FALSE(link.is_reconnecting());
  const auto attempts = link.attempts();
  io.restart();
  io.run_for(std::chrono::seconds(5));  // returns at once when nothing is left to wait for
  EXPECT_TRUE(io.stopped());
  EXPECT_EQ(link.attempts(), attempts);
}

TEST(RouterLink, WaitingForATcpRouterThatNeverAnswersLeavesTheLoopFree) {
  test::full_tcp_listener silent;  // every SYN dropped: a connect(2) would wait for minutes
  ASSERT_TRUE(silent.ok());
  asio::io_context io;
  router_link link(
      io, silent.address(), {.connect_timeout = std::chrono::seconds(1)},
      {.first_delay = std::chrono::milliseconds(1), .max_delay = std::chrono::milliseconds(1)},
      "calc");
  auto owner = std::make_shared<int>(0);
  // The first attempt is open()'s own, on this thread: it gives up at connect_timeout.
  ASSERT_TRUE(link.open(owner, [](const wire::frame_view&) {}));
  EXPECT_TRUE(link.is_reconnecting());
  ASSERT_TRUE(run_until(io, [&] { return link.attempts() == 2; }));

  // The second is pending on the loop for a second; meanwhile a 10 ms timer keeps
  // firing. (A connect(2) in the retry would hold the loop for the whole second.)
  int ticks = 0;
  asio::steady_timer tick(io);
  std::function<void()> arm = [&] {
    tick.expires_after(std::chrono::milliseconds(10));
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      ++ticks;
      arm();
    });
  };
  arm();
  ASSERT_TRUE(run_until(
      io, [&] { return ticks >= 10 || link.attempts() > 2; }, std::chrono::seconds(10)));
  EXPECT_GE(ticks, 10);
  EXPECT_EQ(link.attempts(), 2u) << "the loop was held until the attempt ended";
  tick.cancel();
  link.close();
  settle(io);
}

}  // namespace
}  // namespace plexus::rpc::detail
