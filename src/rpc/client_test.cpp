#include "plexus/rpc/client.hpp"

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "plexus/broker/router.hpp"
#include "plexus/rpc/service.hpp"
#include "plexus/transport/connection.hpp"
#include "plexus/wire/message.hpp"
#include "support/bytes.hpp"
#include "support/fabric.hpp"
#include "support/loop.hpp"
#include "support/temp_dir.hpp"

// The client against a router and a service in one process, on one io_context the
// test drives itself (or, for call_future, runs on a thread of its own).

namespace plexus::rpc {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::bytes, test::contains, test::loop_thread, test::run_until, test::settle,
    test::start_call;

class Client : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(router_.start());
    svc_.route("add", [](int a, int b) { return a + b; });
    svc_.route("echo", [](std::int64_t i) { return i; });
    svc_.route("hang", [g = gate_]() -> asio::awaitable<int> {
      auto keep = g;
      co_await keep->wait();
      co_return 1;
    });
    svc_.route("note", [this](int x) { notes_.push_back(x); });
    ASSERT_TRUE(test::start_ready(io_, svc_));
    ASSERT_TRUE(client_.connect());
  }

  void TearDown() override {
    gate_->open();  // let any waiting handler finish before the loop goes away
    settle(io_);
  }

  test::fabric f_;
  asio::io_context& io_ = f_.io;
  const std::string& address_ = f_.address;
  broker::router& router_ = f_.router;
  std::shared_ptr<test::gate> gate_ = std::make_shared<test::gate>(io_);
  std::vector<int> notes_;
  service svc_{io_, f_.service("svc")};
  client client_{io_, f_.client()};
};

TEST_F(Client, CallPastItsDeadlineIsDeadlineExceeded) {
  const auto started = std::chrono::steady_clock::now();
  auto p = start_call(client_, "svc", "hang", value::array(), 100ms);
  EXPECT_FALSE(p.done());
  EXPECT_EQ(client_.in_flight(), 1u);

  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded) << p.get().error().message;
  EXPECT_EQ(p.get().error().context.value("deadline_ms", 0), 100);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 100ms);  // never early
  EXPECT_EQ(client_.in_flight(), 0u);

  // The deadline travelled with the request: the service stopped the handler then and
  // sent nothing back, and the router forgot the call.
  ASSERT_TRUE(run_until(io_, [&] { return svc_.expired() == 1 && router_.stats().expired == 1; }));
  EXPECT_EQ(svc_.in_flight(), 0u);
  gate_->open();
  settle(io_);
  EXPECT_EQ(router_.stats().forwarded, 1u) << "the service answered after the deadline";
  EXPECT_EQ(router_.stats().in_flight, 0u);
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded);
  EXPECT_EQ(client_.in_flight(), 0u);
  EXPECT_TRUE(client_.connected());
}

TEST_F(Client, CallFutureWorksFromAnotherThreadWhileTheLoopRunsOnAThread) {
  std::future<result<value>> sum, missing;
  {
    loop_thread loop(io_);
    EXPECT_NE(loop.id(), std::this_thread::get_id());
    sum = client_.call_future("svc", "add", value::array({2, 3}));
    missing = client_.call_future("nosuch", "m", value::array());
    ASSERT_EQ(sum.wait_for(5s), std::future_status::ready);
    ASSERT_EQ(missing.wait_for(5s), std::future_status::ready);
  }
  auto s = sum.get();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(*s, 5);
  auto m = missing.get();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, errc::unavailable);
}

TEST_F(Client, CoCallWorksInsideCoSpawn) {
  std::optional<result<value>> sum, missing, late;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        // Arguments built outside the co_await expressions: GCC rejects an
        // initializer_list temporary there ("array used as initializer").
        value pair = value::array();
        pair.push_back(20);
        pair.push_back(22);
        sum = co_await client_.co_call("svc", "add", std::move(pair));
        missing = co_await client_.co_call("nosuch", "m", value::array());
        late = co_await client_.co_call("svc", "hang", value::array(), 50ms);
      },
      asio::detached);
  EXPECT_FALSE(sum.has_value());

  ASSERT_TRUE(run_until(io_, [&] { return late.has_value(); }));
  ASSERT_TRUE(*sum) << sum->error().message;
  EXPECT_EQ(**sum, 42);
  ASSERT_FALSE(*missing);
  EXPECT_EQ(missing->error().code, errc::unavailable);
  ASSERT_FALSE(*late);
  EXPECT_EQ(late->error().code, errc::deadline_exceeded);
}

TEST_F(Client, TenThousandCallsInFlightAllCompleteWithTheirOwnValues) {
  constexpr int n = 10000;
  struct tally {
    int correct = 0, wrong = 0, failed = 0;
    int total() const { return correct + wrong + failed; }
  };
  auto t = std::make_shared<tally>();
  for (int i = 0; i < n; ++i) {
    client_.async_call(
        "svc", "echo", value::array({i}),
        [t, i](result<value> r) {
          if (!r)
            ++t->failed;
          else if (*r == i)
            ++t->correct;
          else
            ++t->wrong;
        },
        20s);
  }
  EXPECT_EQ(client_.in_flight(), static_cast<std::size_t>(n));
  EXPECT_EQ(t->total(), 0);

  ASSERT_TRUE(run_until(
      io_, [&] { return t->total() == n; }, 20000ms))
      << t->total();
  EXPECT_EQ(t->correct, n);
  EXPECT_EQ(t->wrong, 0);
  EXPECT_EQ(t->failed, 0);
  EXPECT_EQ(client_.in_flight(), 0u);
  EXPECT_EQ(router_.stats().forwarded, 2u * n);
  EXPECT_EQ(router_.stats().in_flight, 0u);
}

// A worker speaking raw frames sees the msgids themselves, and answers out of order.
TEST_F(Client, TenThousandCallsUseDistinctMsgidsAndMatchAnswersGivenInReverse) {
  constexpr int n = 10000;
  struct held {
    std::string caller;
    std::uint32_t msgid;
    value arg;
  };
  std::vector<held> requests;
  bool registered = false;
  auto raw = transport::connect(io_, address_);
  ASSERT_TRUE(raw) << raw.error().message;
  raw->start(
      [&](const wire::frame_view& f) {
        if (f.kind == wire::frame_kind::control) {
          auto v = wire::decode_value(f.payload);
          if (v && v->value("op", "") == "registered") registered = true;
          return;
        }
        auto m = wire::decode(f.payload);
        if (!m || !std::holds_alternative<wire::request>(*m)) return;
        auto& req = std::get<wire::request>(*m);
        requests.push_back({std::string(f.name), req.msgid, req.params.at(0)});
      },
      [](const plexus::error&) {});
  bytes reg;
  wire::encode_value(reg, value{{"op", "register"}, {"service", "raw"}});
  ASSERT_TRUE(raw->send(wire::frame_kind::control, "", reg));
  ASSERT_TRUE(run_until(io_, [&] { return registered; }));

  auto t = std::make_shared<std::pair<int, int>>(0, 0);  // correct, other
  for (int i = 0; i < n; ++i) {
    client_.async_call(
        "raw", "echo", value::array({i}),
        [t, i](result<value> r) { ++(r && *r == i ? t->first : t->second); }, 20s);
  }
  ASSERT_TRUE(run_until(
      io_, [&] { return requests.size() == static_cast<std::size_t>(n); }, 20000ms))
      << requests.size();
  std::unordered_set<std::uint32_t> ids;
  for (const auto& r : requests)
    ids.insert(r.msgid);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(n));

  for (auto it = requests.rbegin(); it != requests.rend(); ++it) {
    bytes out;
    wire::encode(out, wire::response{it->msgid, std::nullopt, it->arg});
    ASSERT_TRUE(raw->send(wire::frame_kind::data, it->caller, out));
  }
  ASSERT_TRUE(run_until(
      io_, [&] { return t->first + t->second == n; }, 20000ms));
  EXPECT_EQ(t->first, n);
  EXPECT_EQ(t->second, 0);
}

TEST_F(Client, CallingWhenNotConnectedIsUnavailable) {
  client idle(io_, {.router = address_});
  EXPECT_FALSE(idle.connected());
  auto p = start_call(idle, "svc", "add", value::array({1, 2}));
  EXPECT_FALSE(p.done());  // completions always run from the loop
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::unavailable);
  EXPECT_TRUE(contains(p.get().error().message, "not connected")) << p.get().error().message;

  auto n = idle.notify("svc", "note", value::array({1}));
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, errc::unavailable);
}

TEST_F(Client, ConnectingToAMissingIpcPathIsUnavailableWithoutReconnection) {
  test::temp_dir tmp;
  const std::string& dir = tmp.path();
  {
    client lost(io_, {.router = "ipc://" + dir + "/missing.sock", .reconnect = {.enabled = false}});
    auto r = lost.connect();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::unavailable);
    EXPECT_TRUE(contains(r.error().message, "missing.sock")) << r.error().message;
    EXPECT_FALSE(lost.connected());
  }
}

TEST_F(Client, NotifyReturnsOkAndReachesTheService) {
  auto ok = client_.notify("svc", "note", value::array({7}));
  EXPECT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(notes_.empty());
  ASSERT_TRUE(run_until(io_, [&] { return !notes_.empty(); }));
  EXPECT_EQ(notes_, std::vector<int>{7});
  EXPECT_EQ(client_.in_flight(), 0u);

  // Nobody answers a notification, not even to say there is no such service.
  EXPECT_TRUE(client_.notify("nosuch", "note", value::array()));
}

TEST_F(Client, ParamsThatAreNotAnArrayAreInvalidArgument) {
  auto p = start_call(client_, "svc", "add", value{{"a", 1}});
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::invalid_argument);
  auto n = client_.notify("svc", "note", 5);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, errc::invalid_argument);
}

TEST_F(Client, CloseFailsCallsInFlightWithUnavailable) {
  auto p = start_call(client_, "svc", "hang", value::array(), 10s);
  ASSERT_TRUE(run_until(io_, [&] { return svc_.in_flight() == 1; }));
  EXPECT_FALSE(p.done());
  client_.close();
  client_.close();  // idempotent
  ASSERT_TRUE(p.done());
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::unavailable);
  EXPECT_FALSE(client_.connected());
  EXPECT_EQ(client_.in_flight(), 0u);
}

TEST_F(Client, RouterLossFailsCallsInFlightWithUnavailableAndIsFinalWithoutReconnection) {
  client once(io_, {.router = address_, .reconnect = {.enabled = false}});
  ASSERT_TRUE(once.connect());
  auto p = start_call(once, "svc", "hang", value::array(), 10s);
  ASSERT_TRUE(run_until(io_, [&] { return svc_.in_flight() == 1; }));
  router_.stop();
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  EXPECT_EQ(p.get().error().code, errc::unavailable);
  // No waiting for the router: a new call fails at once.
  auto later = start_call(once, "plexus", "ping", value::array(), 10s);
  settle(io_);
  ASSERT_TRUE(later.done());
  EXPECT_EQ(later.get().error().code, errc::unavailable);
  EXPECT_TRUE(contains(later.get().error().message, "not connected"))
      << later.get().error().message;
  EXPECT_FALSE(once.connected());
}

TEST_F(Client, RouterLossFailsCallsInFlightWithUnavailable) {
  auto p = start_call(client_, "svc", "hang", value::array(), 10s);
  ASSERT_TRUE(run_until(io_, [&] { return svc_.in_flight() == 1; }));
  router_.stop();
  EXPECT_FALSE(p.done());
  ASSERT_TRUE(run_until(
      io_, [&] { return p.done(); }, 2000ms));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::unavailable);
  EXPECT_TRUE(contains(p.get().error().message, "router")) << p.get().error().message;
  EXPECT_FALSE(client_.connected());
}

TEST_F(Client, BlockingTypedCallConvertsArgumentsAndResult) {
  auto sum = client_.call<int>("svc", "add", 2, 3);
  ASSERT_TRUE(sum) << sum.error().message;
  EXPECT_EQ(*sum, 5);

  auto wrong = client_.call<std::string>("svc", "add", 2, 3);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, errc::invalid_argument);
  EXPECT_TRUE(contains(wrong.error().message, "result of add")) << wrong.error().message;
}

// ---- reconnection (issue 10) -----------------------------------------------------------
// The router is stopped, and a new one started at the same address, as a restarted
// `plexus router` would be.

class ClientReconnect : public Client {
 protected:
  void SetUp() override {
    Client::SetUp();
    settle(io_);  // the first `connected` events have run: the tests see what follows
  }

  // A new router at the address of the stopped one.
  broker::router& restart_router() {
    router_.stop();
    next_.emplace(io_, broker::router_options{.listen = {address_}});
    EXPECT_TRUE(next_->start());
    return *next_;
  }
  // Runs the loop until a call of svc.add succeeds (each attempt waits for its answer;
  // "no route" until the service has registered again with the new router).
  bool until_add_succeeds() {
    const auto end = std::chrono::steady_clock::now() + test::wait_limit;
    while (std::chrono::steady_clock::now() < end) {
      auto r = test::call_and_wait(io_, client_, "svc", "add", value::array({2, 3}), 2s);
      if (r && *r == 5) return true;
    }
    return false;
  }

  std::optional<broker::router> next_;
};

TEST_F(ClientReconnect, ACallInFlightFailsUnavailableAtOnceWhenTheRouterDies) {
  std::vector<link_event> events;
  client_.on_link_event([&](link_event e, const plexus::error&) { events.push_back(e); });
  auto p = start_call(client_, "svc", "hang", value::array(), 30s);
  ASSERT_TRUE(run_until(io_, [&] { return svc_.in_flight() == 1; }));
  const auto died = std::chrono::steady_clock::now();
  router_.stop();
  EXPECT_FALSE(p.done());
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  EXPECT_LT(std::chrono::steady_clock::now() - died, 2s);  // not at its 30 s deadline
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::unavailable);
  EXPECT_TRUE(contains(p.get().error().message, "connection to the router lost"))
      << p.get().error().message;
  EXPECT_EQ(client_.in_flight(), 0u);
  EXPECT_FALSE(client_.connected());
  ASSERT_TRUE(run_until(io_, [&] { return !events.empty(); }));
  EXPECT_EQ(events, std::vector<link_event>{link_event::lost});
}

TEST_F(ClientReconnect, ACallMadeWhileTheRouterIsAwayWaitsAndSucceedsWhenItComesBack) {
  std::vector<link_event> events;
  client_.on_link_event([&](link_event e, const plexus::error&) { events.push_back(e); });
  router_.stop();
  ASSERT_TRUE(run_until(io_, [&] { return !events.empty(); }));  // lost
  auto p = start_call(client_, "plexus", "ping", value::array(), 10s);
  settle(io_);
  EXPECT_FALSE(p.done());  // waiting for the router, not failed
  EXPECT_EQ(client_.in_flight(), 1u);

  restart_router();
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  ASSERT_TRUE(p.get()) << p.get().error().message;
  EXPECT_TRUE(client_.connected());
  EXPECT_EQ(events, (std::vector<link_event>{link_event::lost, link_event::reconnected}));
  // The service registered again too: calls to it succeed.
  EXPECT_TRUE(until_add_succeeds());
}

TEST_F(ClientReconnect, ACallMadeWhileTheRouterIsAwayFailsAtItsDeadlineIfItDoesNotComeBack) {
  router_.stop();
  ASSERT_TRUE(run_until(io_, [&] { return !client_.connected(); }));
  const auto start = std::chrono::steady_clock::now();
  auto p = start_call(client_, "plexus", "ping", value::array(), 300ms);
  settle(io_);
  EXPECT_FALSE(p.done());
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded);
  EXPECT_TRUE(contains(p.get().error().message, "not connected to the router at " + address_))
      << p.get().error().message;
  EXPECT_EQ(client_.in_flight(), 0u);
}

TEST_F(ClientReconnect, AClientStartedBeforeTheRouterWaitsForIt) {
  const auto address = test::next_inproc();
  client early(io_, {.router = address});
  std::vector<link_event> events;
  early.on_link_event([&](link_event e, const plexus::error&) { events.push_back(e); });
  ASSERT_TRUE(early.connect());  // nothing listens there yet
  EXPECT_FALSE(early.connected());
  auto p = start_call(early, "plexus", "ping", value::array(), 10s);
  settle(io_);
  EXPECT_FALSE(p.done());

  broker::router late(io_, {.listen = {address}});
  ASSERT_TRUE(late.start());
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  ASSERT_TRUE(p.get()) << p.get().error().message;
  EXPECT_EQ(events, std::vector<link_event>{link_event::connected});
  early.close();
}

TEST_F(ClientReconnect, SubscriptionsAreRenewedWithARestartedRouter) {
  std::vector<std::int64_t> ticks;
  ASSERT_TRUE(client_.subscribe("tick", [&](std::string_view, const value& v) {
    ticks.push_back(v[0].get<std::int64_t>());
  }));
  std::vector<link_event> events;
  client_.on_link_event([&](link_event e, const plexus::error&) { events.push_back(e); });
  auto& router = restart_router();
  ASSERT_TRUE(run_until(io_, [&] { return events.size() == 2; }));  // lost, reconnected
  // The subscribe frame went before any publication of ours: one round trip orders them.
  ASSERT_TRUE(test::call_and_wait(io_, client_, "plexus", "ping", value::array()));
  router.publish("tick", value::array({7}));
  ASSERT_TRUE(run_until(io_, [&] { return !ticks.empty(); }));
  EXPECT_EQ(ticks, std::vector<std::int64_t>{7});
}

TEST_F(ClientReconnect, CloseWhileWaitingForTheRouterFailsWaitingCallsAndStopsTrying) {
  router_.stop();
  ASSERT_TRUE(run_until(io_, [&] { return !client_.connected(); }));
  auto p = start_call(client_, "plexus", "ping", value::array(), 10s);
  settle(io_);
  EXPECT_FALSE(p.done());
  client_.close();
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.get().error().code, errc::unavailable);
  auto later = start_call(client_, "plexus", "ping", value::array(), 10s);
  settle(io_);
  ASSERT_TRUE(later.done());  // closed: no more waiting
  EXPECT_EQ(later.get().error().code, errc::unavailable);
  svc_.stop();
  gate_->open();
  io_.restart();
  io_.run_for(5s);  // returns as soon as nothing is left to wait for: no retry timer
  EXPECT_TRUE(io_.stopped());
}

}  // namespace
}  // namespace plexus::rpc
