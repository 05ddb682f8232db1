#include "plexus/broker/router.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "plexus/rpc/client.hpp"
#include "plexus/rpc/service.hpp"
#include "plexus/transport/connection.hpp"
#include "plexus/wire/control.hpp"
#include "plexus/wire/message.hpp"
#include "support/bytes.hpp"
#include "support/fabric.hpp"
#include "support/loop.hpp"
#include "support/temp_dir.hpp"

// The router with real clients and services in one process, on one io_context the
// test drives itself.

namespace plexus::broker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::bytes, test::call_and_wait, test::fabric, test::gate, test::next_inproc, test::pending,
    test::run_until, test::settle, test::start_call, test::start_ready;

struct received {
  wire::frame_kind kind;
  std::string name;
  bytes payload;
  std::optional<std::uint32_t> deadline_ms;
};

// A peer speaking raw frames to the router, for what the rpc layer would never send.
class raw_peer {
 public:
  raw_peer() = default;
  raw_peer(const raw_peer&) = delete;
  raw_peer& operator=(const raw_peer&) = delete;

  testing::AssertionResult open(asio::io_context& io, const std::string& address) {
    auto c = transport::connect(io, address);
    if (!c) return testing::AssertionFailure() << c.error().message;
    conn = std::move(*c);
    conn.start(
        [this](const wire::frame_view& f) {
          frames.push_back({f.kind, std::string(f.name), bytes(f.payload.begin(), f.payload.end()),
                            f.deadline_ms});
        },
        [this](const plexus::error&) { closed = true; });
    return testing::AssertionSuccess();
  }

  result<void> send_control(const value& v) {
    bytes b;
    wire::encode_value(b, v);
    return conn.send(wire::frame_kind::control, "", b);
  }

  std::vector<value> controls() const {
    std::vector<value> out;
    for (const auto& f : frames) {
      if (f.kind != wire::frame_kind::control) continue;
      auto v = wire::decode_value(f.payload);
      out.push_back(v ? *v : value("undecodable"));
    }
    return out;
  }

  std::vector<received> frames;
  bool closed = false;
  transport::connection conn;
};

const value* find_by_name(const value& list, std::string_view name) {
  for (const auto& item : list)
    if (item.is_object() && item.value("name", "") == name) return &item;
  return nullptr;
}

TEST(Router, CallReachesARegisteredServiceAndReturnsItsValue) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service calc(f.io, f.service("calc"));
  calc.route("add", [](int a, int b) { return a + b; });
  ASSERT_TRUE(start_ready(f.io, calc));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto p = start_call(c, "calc", "add", value::array({2, 3}));
  EXPECT_FALSE(p.done());
  EXPECT_EQ(c.in_flight(), 1u);
  ASSERT_TRUE(run_until(f.io, [&] { return p.done(); }));
  ASSERT_TRUE(p.get()) << p.get().error().message;
  EXPECT_EQ(*p.get(), 5);
  EXPECT_EQ(c.in_flight(), 0u);
  const auto s = f.router.stats();
  EXPECT_EQ(s.forwarded, 2u);  // the request and its response
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.peers, 2u);
}

TEST(Router, CallOverIpcReachesTheService) {
  test::temp_dir tmp;
  const std::string& dir = tmp.path();
  {
    fabric f("ipc://" + dir + "/router.sock");
    ASSERT_TRUE(f.router.start());
    EXPECT_EQ(f.router.addresses(), std::vector<std::string>{f.address});
    rpc::service calc(f.io, f.service("calc"));
    calc.route("add", [](int a, int b) { return a + b; });
    ASSERT_TRUE(start_ready(f.io, calc));
    rpc::client c(f.io, f.client());
    ASSERT_TRUE(c.connect());

    auto r = call_and_wait(f.io, c, "calc", "add", value::array({20, 22}));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, 42);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/router.sock"));  // the router cleaned up
}

TEST(Router, UnknownServiceIsAnsweredAtOnceWithNoRoute) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto p = start_call(c, "nosuch", "anything", value::array(), 10s);
  EXPECT_FALSE(p.done());
  // Far sooner than the 10 s deadline: the router answers, the deadline does not.
  ASSERT_TRUE(run_until(
      f.io, [&] { return p.done(); }, 2000ms));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::unavailable);
  EXPECT_NE(p.get().error().message.find("no route to nosuch"), std::string::npos)
      << p.get().error().message;
  EXPECT_EQ(p.get().error().context.value("service", ""), "nosuch");
  EXPECT_EQ(f.router.stats().no_route, 1u);
  EXPECT_EQ(c.in_flight(), 0u);
}

TEST(Router, TwoWorkersUnderOneNameShareConcurrentCallsEvenly) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service a(f.io, f.service("svc")), b(f.io, f.service("svc"));
  a.route("who", [] { return std::string("a"); });
  b.route("who", [] { return std::string("b"); });
  ASSERT_TRUE(start_ready(f.io, a));
  ASSERT_TRUE(start_ready(f.io, b));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  // All ten reach the router before any answer: fewest-unanswered alternates them.
  std::vector<pending> calls;
  for (int i = 0; i < 10; ++i)
    calls.push_back(start_call(c, "svc", "who", value::array()));
  ASSERT_TRUE(run_until(f.io, [&] {
    return std::all_of(calls.begin(), calls.end(), [](const pending& p) { return p.done(); });
  }));
  int by_a = 0, by_b = 0;
  for (auto& p : calls) {
    ASSERT_TRUE(p.get()) << p.get().error().message;
    if (*p.get() == "a") ++by_a;
    if (*p.get() == "b") ++by_b;
  }
  EXPECT_EQ(by_a, 5);
  EXPECT_EQ(by_b, 5);
}

TEST(Router, WorkerHoldingASlowCallIsPassedOverForTheNextCalls) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  auto g = std::make_shared<gate>(f.io);
  std::string holder;  // the worker that took the slow call
  rpc::service a(f.io, f.service("svc")), b(f.io, f.service("svc"));
  for (auto [s, tag] : {std::pair{&a, std::string("a")}, std::pair{&b, std::string("b")}}) {
    s->route("slow", [g, tag, &holder]() -> asio::awaitable<std::string> {
      holder = tag;
      co_await g->wait();
      co_return tag;
    });
    s->route("who", [tag] { return tag; });
  }
  ASSERT_TRUE(start_ready(f.io, a));
  ASSERT_TRUE(start_ready(f.io, b));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto slow = start_call(c, "svc", "slow", value::array(), 10s);
  ASSERT_TRUE(run_until(f.io, [&] { return !holder.empty(); }));
  const std::string other = holder == "a" ? "b" : "a";
  for (int i = 0; i < 4; ++i) {
    auto r = call_and_wait(f.io, c, "svc", "who", value::array());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, other) << "call " << i << " went to the busy worker " << holder;
  }
  EXPECT_FALSE(slow.done());
  g->open();
  ASSERT_TRUE(run_until(f.io, [&] { return slow.done(); }));
  ASSERT_TRUE(slow.get()) << slow.get().error().message;
  EXPECT_EQ(*slow.get(), holder);
}

TEST(Router, WorkerThatDisconnectsFailsItsUnansweredCallsAtOnce) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  auto g = std::make_shared<gate>(f.io);
  int entered = 0;
  auto worker = std::make_unique<rpc::service>(f.io, f.service("fragile"));
  worker->route("hang", [g, &entered](int x) -> asio::awaitable<int> {
    auto keep = g;  // the frame keeps the gate; the service may be gone when it resumes
    ++entered;
    co_await keep->wait();
    co_return x;
  });
  ASSERT_TRUE(start_ready(f.io, *worker));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto p1 = start_call(c, "fragile", "hang", value::array({1}), 10s);
  auto p2 = start_call(c, "fragile", "hang", value::array({2}), 10s);
  ASSERT_TRUE(run_until(f.io, [&] { return entered == 2; }));
  EXPECT_EQ(f.router.stats().in_flight, 2u);

  worker.reset();  // its connection closes with two calls unanswered
  EXPECT_FALSE(p1.done());
  EXPECT_FALSE(p2.done());
  ASSERT_TRUE(run_until(
      f.io, [&] { return p1.done() && p2.done(); }, 2000ms));
  for (auto* p : {&p1, &p2}) {
    ASSERT_FALSE(p->get());
    EXPECT_EQ(p->get().error().code, errc::unavailable);
    EXPECT_NE(p->get().error().message.find("went away"), std::string::npos)
        << p->get().error().message;
  }
  const auto s = f.router.stats();
  EXPECT_EQ(s.failed_by_peer_loss, 2u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.peers, 1u);

  // Its registration went with it.
  auto again = call_and_wait(f.io, c, "fragile", "hang", value::array({3}));
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("no route"), std::string::npos) << again.error().message;

  g->open();  // let the orphaned handler frames finish
  settle(f.io);
}

TEST(Router, WorkerThatClosesItsRawConnectionFailsItsUnansweredCalls) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer worker;
  ASSERT_TRUE(worker.open(f.io, f.address));
  ASSERT_TRUE(worker.send_control({{"op", "register"}, {"service", "raw"}}));
  ASSERT_TRUE(run_until(f.io, [&] { return !worker.controls().empty(); }));
  EXPECT_EQ(worker.controls()[0].value("op", ""), "registered");
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto p = start_call(c, "raw", "m", value::array(), 10s);
  ASSERT_TRUE(run_until(f.io, [&] {
    return std::any_of(worker.frames.begin(), worker.frames.end(),
                       [](const received& r) { return r.kind == wire::frame_kind::data; });
  }));
  worker.conn.close();
  ASSERT_TRUE(run_until(
      f.io, [&] { return p.done(); }, 2000ms));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::unavailable);
}

TEST(Router, PlexusPingAnswersPong) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());
  auto r = call_and_wait(f.io, c, "plexus", "ping", value::array());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "pong");
}

TEST(Router, PlexusServicesListsNamesAndWorkers) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service calc1(f.io, f.service("calc")), calc2(f.io, f.service("calc")),
      echo(f.io, f.service("echo"));
  calc1.route("add", [](int a, int b) { return a + b; });
  calc2.route("add", [](int a, int b) { return a + b; });
  echo.route("echo", [](std::string s) { return s; });
  ASSERT_TRUE(start_ready(f.io, calc1));
  ASSERT_TRUE(start_ready(f.io, calc2));
  ASSERT_TRUE(start_ready(f.io, echo));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto r = call_and_wait(f.io, c, "plexus", "services", value::array());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->is_array()) << r->dump();
  ASSERT_EQ(r->size(), 2u) << r->dump();
  EXPECT_EQ((*r)[0]["name"], "calc");  // sorted by name
  EXPECT_EQ((*r)[0]["workers"], 2);
  EXPECT_EQ((*r)[0]["pids"], value::array({::getpid(), ::getpid()}));
  EXPECT_EQ((*r)[1]["name"], "echo");
  EXPECT_EQ((*r)[1]["workers"], 1);
}

TEST(Router, PlexusDescribeReturnsMethodsWithSignatures) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service calc(f.io, f.service("calc"));
  calc.route("add", [](int a, int b) { return a + b; });
  calc.route("slow_sqrt", [](double x) { return x; }, {.blocking = true});
  ASSERT_TRUE(start_ready(f.io, calc));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto r = call_and_wait(f.io, c, "plexus", "describe", value::array({"calc"}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["name"], "calc");
  EXPECT_EQ((*r)["workers"], 1);
  ASSERT_TRUE((*r)["methods"].is_array()) << r->dump();
  EXPECT_EQ((*r)["methods"].size(), 2u);
  const value* add = find_by_name((*r)["methods"], "add");
  ASSERT_NE(add, nullptr) << r->dump();
  EXPECT_EQ((*add)["signature"], "(integer, integer) -> integer");
  EXPECT_EQ((*add)["blocking"], false);
  const value* sqrt = find_by_name((*r)["methods"], "slow_sqrt");
  ASSERT_NE(sqrt, nullptr) << r->dump();
  EXPECT_EQ((*sqrt)["signature"], "(number) -> number");
  EXPECT_EQ((*sqrt)["blocking"], true);
}

TEST(Router, PlexusDescribeOfAnUnknownServiceIsNotFound) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto r = call_and_wait(f.io, c, "plexus", "describe", value::array({"nosuch"}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::not_found);
  EXPECT_NE(r.error().message.find("nosuch"), std::string::npos) << r.error().message;

  auto bad = call_and_wait(f.io, c, "plexus", "describe", value::array());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);

  auto unknown = call_and_wait(f.io, c, "plexus", "frobnicate", value::array());
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, errc::not_found);
  EXPECT_EQ(unknown.error().context.value("method", ""), "frobnicate");
  EXPECT_EQ(unknown.error().context.value("service", ""), "plexus");
  EXPECT_EQ(unknown.error().message, "the router has no method frobnicate");
}

TEST(Router, AddedMethodsJoinTheBuiltInsWhichCannotBeReplaced) {
  fabric f;
  f.router.add_method("ping", [](const value&) -> result<value> { return value("replaced"); });
  f.router.add_method("echo", [](const value& params) -> result<value> { return params; });
  f.router.add_method("refuse", [](const value&) -> result<value> {
    return plexus::error(errc::unavailable, "not now");
  });
  ASSERT_TRUE(f.router.start());
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto ping = call_and_wait(f.io, c, "plexus", "ping", value::array());
  ASSERT_TRUE(ping) << ping.error().message;
  EXPECT_EQ(*ping, "pong");
  auto echo = call_and_wait(f.io, c, "plexus", "echo", value::array({1, "a"}));
  ASSERT_TRUE(echo) << echo.error().message;
  EXPECT_EQ(*echo, value::array({1, "a"}));
  auto refused = call_and_wait(f.io, c, "plexus", "refuse", value::array());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::unavailable);
  EXPECT_EQ(refused.error().message, "not now");
}

TEST(Router, GarbageDataFramesLeaveTheRouterServingOthers) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service calc(f.io, f.service("calc"));
  calc.route("add", [](int a, int b) { return a + b; });
  ASSERT_TRUE(start_ready(f.io, calc));
  raw_peer junk;
  ASSERT_TRUE(junk.open(f.io, f.address));

  std::mt19937 rng(7);
  bytes garbage(200);
  for (auto& b : garbage)
    b = static_cast<std::uint8_t>(rng());
  garbage[0] = 0xff;  // a CBOR break code: never the start of a message
  ASSERT_TRUE(junk.conn.send(wire::frame_kind::data, "calc", garbage));
  ASSERT_TRUE(junk.conn.send(wire::frame_kind::data, "plexus", garbage));
  ASSERT_TRUE(junk.conn.send(wire::frame_kind::data, "calc", bytes{}));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().malformed == 3; }));

  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());
  auto r = call_and_wait(f.io, c, "calc", "add", value::array({1, 2}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, 3);
  EXPECT_FALSE(junk.closed);
  EXPECT_TRUE(junk.conn.is_open());
  EXPECT_EQ(calc.in_flight(), 0u);
  EXPECT_EQ(f.router.stats().malformed, 3u);
}

TEST(Router, GarbageControlFrameIsAnsweredWithAControlError) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer junk;
  ASSERT_TRUE(junk.open(f.io, f.address));
  ASSERT_TRUE(junk.conn.send(wire::frame_kind::control, "", bytes{0xff, 0x01, 0x02}));
  ASSERT_TRUE(junk.send_control({{"op", "dance"}}));
  ASSERT_TRUE(run_until(f.io, [&] { return junk.controls().size() == 2; }));
  const auto replies = junk.controls();
  EXPECT_EQ(replies[0].value("op", ""), "error");
  EXPECT_EQ(replies[0].value("code", ""), "invalid_argument");
  EXPECT_EQ(replies[1].value("op", ""), "error");
  EXPECT_EQ(replies[1].value("about", ""), "dance");
  EXPECT_EQ(replies[1].value("code", ""), "unimplemented");
  EXPECT_FALSE(junk.closed);
}

TEST(Router, RegisteringTheReservedOrAnEmptyNameIsRefused) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer peer;
  ASSERT_TRUE(peer.open(f.io, f.address));
  for (const auto& name : {std::string("plexus"), std::string(), std::string(256, 'n')})
    ASSERT_TRUE(peer.send_control({{"op", "register"}, {"service", name}}));
  ASSERT_TRUE(run_until(f.io, [&] { return peer.controls().size() == 3; }));
  for (const auto& reply : peer.controls()) {
    EXPECT_EQ(reply.value("op", ""), "error") << reply.dump();
    EXPECT_EQ(reply.value("about", ""), "register") << reply.dump();
    EXPECT_EQ(reply.value("code", ""), "invalid_argument") << reply.dump();
    EXPECT_NE(reply.value("message", "").find("reserved"), std::string::npos) << reply.dump();
  }

  // Nothing was registered and the router still answers as "plexus" itself.
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());
  auto services = call_and_wait(f.io, c, "plexus", "services", value::array());
  ASSERT_TRUE(services) << services.error().message;
  EXPECT_EQ(*services, value::array());
  auto ping = call_and_wait(f.io, c, "plexus", "ping", value::array());
  ASSERT_TRUE(ping) << ping.error().message;
  EXPECT_EQ(*ping, "pong");
}

TEST(Router, CallersWithTheSameMsgidGetTheirOwnAnswers) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service echo(f.io, f.service("echo"));
  echo.route("echo", [](std::string s) { return s; });
  ASSERT_TRUE(start_ready(f.io, echo));
  // Two fresh clients number their first call alike.
  rpc::client c1(f.io, f.client()), c2(f.io, f.client());
  ASSERT_TRUE(c1.connect());
  ASSERT_TRUE(c2.connect());
  auto p1 = start_call(c1, "echo", "echo", value::array({"one"}));
  auto p2 = start_call(c2, "echo", "echo", value::array({"two"}));
  ASSERT_TRUE(run_until(f.io, [&] { return p1.done() && p2.done(); }));
  ASSERT_TRUE(p1.get());
  ASSERT_TRUE(p2.get());
  EXPECT_EQ(*p1.get(), "one");
  EXPECT_EQ(*p2.get(), "two");
}

// ---- peers are checked --------------------------------------------------------------

// The data frames a raw peer has received, decoded.
std::vector<std::pair<std::string, wire::message>> data_messages(const raw_peer& p) {
  std::vector<std::pair<std::string, wire::message>> out;
  for (const auto& f : p.frames) {
    if (f.kind != wire::frame_kind::data) continue;
    auto m = wire::decode(f.payload);
    if (m) out.emplace_back(f.name, std::move(*m));
  }
  return out;
}

result<void> send_message(raw_peer& from, std::string_view to, const wire::message& m) {
  bytes b;
  wire::encode(b, m);
  return from.conn.send(wire::frame_kind::data, to, b);
}

// A raw peer registered under `service`, its registration confirmed.
testing::AssertionResult open_worker(fabric& f, raw_peer& w, const std::string& service) {
  if (auto ok = w.open(f.io, f.address); !ok) return ok;
  if (!w.send_control({{"op", "register"}, {"service", service}}))
    return testing::AssertionFailure() << "cannot send register";
  if (!run_until(f.io, [&] { return !w.controls().empty(); }))
    return testing::AssertionFailure() << "no answer to register";
  if (w.controls()[0].value("op", "") != "registered")
    return testing::AssertionFailure() << w.controls()[0].dump();
  return testing::AssertionSuccess();
}

TEST(Router, AResponseFromAPeerThatWasNotAskedIsDroppedAndCounted) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer worker, forger;
  ASSERT_TRUE(open_worker(f, worker, "raw"));
  ASSERT_TRUE(forger.open(f.io, f.address));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto p = start_call(c, "raw", "m", value::array(), 10s);
  ASSERT_TRUE(run_until(f.io, [&] { return data_messages(worker).size() == 1; }));
  const auto [caller, m] = data_messages(worker)[0];
  const auto msgid = std::get<wire::request>(m).msgid;

  // Someone else answers for the worker, naming the caller and its msgid exactly.
  ASSERT_TRUE(send_message(forger, caller, wire::response{msgid, std::nullopt, "forged"}));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().unsolicited == 1; }));
  settle(f.io);
  EXPECT_FALSE(p.done()) << "the forged answer reached the caller";
  EXPECT_EQ(f.router.stats().in_flight, 1u);

  // The worker's own answer still goes through, once.
  ASSERT_TRUE(send_message(worker, caller, wire::response{msgid, std::nullopt, "real"}));
  ASSERT_TRUE(run_until(f.io, [&] { return p.done(); }));
  ASSERT_TRUE(p.get()) << p.get().error().message;
  EXPECT_EQ(*p.get(), "real");
  ASSERT_TRUE(send_message(worker, caller, wire::response{msgid, std::nullopt, "again"}));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().unsolicited == 2; }));
  EXPECT_EQ(f.router.stats().in_flight, 0u);

  auto stats = call_and_wait(f.io, c, "plexus", "stats", value::array());
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ((*stats)["unsolicited"], 2);
  EXPECT_FALSE(forger.closed);
}

TEST(Router, ForgedResponsesCannotSkewAWorkersLoad) {
  // Worker y holds one call for good; worker x answers each call it gets, after a
  // forger has answered it first. Were the forgeries taken for x's answers, x would
  // look busier with every call and y would get the next ones.
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer a, b, forger;
  ASSERT_TRUE(open_worker(f, a, "raw"));
  ASSERT_TRUE(open_worker(f, b, "raw"));
  ASSERT_TRUE(forger.open(f.io, f.address));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto held = start_call(c, "raw", "hold", value::array(), 10s);
  ASSERT_TRUE(
      run_until(f.io, [&] { return data_messages(a).size() + data_messages(b).size() == 1; }));
  raw_peer& y = data_messages(a).empty() ? b : a;
  raw_peer& x = &y == &a ? b : a;
  for (int i = 0; i < 4; ++i) {
    auto p = start_call(c, "raw", "m", value::array(), 10s);
    ASSERT_TRUE(run_until(f.io, [&] {
      return data_messages(x).size() + data_messages(y).size() == static_cast<std::size_t>(i + 2);
    }));
    ASSERT_EQ(data_messages(y).size(), 1u) << "call " << i << " went to the busy worker";
    const auto [caller, m] = data_messages(x).back();
    const auto msgid = std::get<wire::request>(m).msgid;
    ASSERT_TRUE(send_message(forger, caller, wire::response{msgid, std::nullopt, "forged"}));
    ASSERT_TRUE(send_message(x, caller, wire::response{msgid, std::nullopt, "real"}));
    ASSERT_TRUE(run_until(f.io, [&] { return p.done(); }));
    ASSERT_TRUE(p.get()) << p.get().error().message;
    EXPECT_EQ(*p.get(), "real");
  }
  EXPECT_EQ(f.router.stats().unsolicited, 4u);
  EXPECT_EQ(f.router.stats().in_flight, 1u);  // the held call
  EXPECT_FALSE(held.done());
}

// ---- deadlines travel ----------------------------------------------------------------

result<void> send_request_with_deadline(raw_peer& from, std::string_view service,
                                        std::uint32_t msgid, std::uint32_t deadline_ms) {
  bytes b;
  wire::encode(b, wire::request{msgid, "m", value::array()});
  return from.conn.send_with_deadline(service, b, deadline_ms);
}

std::optional<wire::response> response_to(const raw_peer& p, std::uint32_t msgid) {
  for (const auto& [name, m] : data_messages(p))
    if (const auto* r = std::get_if<wire::response>(&m); r && r->msgid == msgid) return *r;
  return std::nullopt;
}

TEST(Router, ACallThatOutlivesItsDeadlineIsFailedByTheRouterWhichForgetsIt) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer worker, caller;
  ASSERT_TRUE(open_worker(f, worker, "raw"));  // says no hello: no deadlines for it
  ASSERT_TRUE(caller.open(f.io, f.address));

  const auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(send_request_with_deadline(caller, "raw", 7, 100));
  ASSERT_TRUE(run_until(f.io, [&] { return data_messages(worker).size() == 1; }));
  EXPECT_FALSE(worker.frames.back().deadline_ms) << "a worker that did not ask got kind 2";
  EXPECT_EQ(f.router.stats().in_flight, 1u);

  ASSERT_TRUE(run_until(
      f.io, [&] { return response_to(caller, 7).has_value(); }, 5s));
  const auto waited = std::chrono::steady_clock::now() - sent;
  EXPECT_GE(waited, 100ms);
  const auto r = *response_to(caller, 7);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, errc::deadline_exceeded) << r.error->message;
  EXPECT_NE(r.error->message.find("deadline of 100 ms"), std::string::npos) << r.error->message;
  EXPECT_EQ(f.router.stats().expired, 1u);
  EXPECT_EQ(f.router.stats().in_flight, 0u) << "the entry outlived the deadline";

  // The worker's late answer goes nowhere.
  const auto [to, m] = data_messages(worker)[0];
  ASSERT_TRUE(send_message(worker, to, wire::response{7, std::nullopt, "late"}));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().unsolicited == 1; }));
  EXPECT_EQ(data_messages(caller).size(), 1u);
}

TEST(Router, AWorkerThatSaysItTakesDeadlinesGetsTheCallersRemainingTime) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer worker, caller;
  ASSERT_TRUE(worker.open(f.io, f.address));
  ASSERT_TRUE(worker.send_control({{"op", "hello"}, {"name", "w"}, {"deadlines", true}}));
  ASSERT_TRUE(worker.send_control({{"op", "register"}, {"service", "raw"}}));
  ASSERT_TRUE(run_until(f.io, [&] {
    for (const auto& c : worker.controls())
      if (c.value("op", "") == "registered") return true;
    return false;
  }));
  ASSERT_TRUE(caller.open(f.io, f.address));
  ASSERT_TRUE(send_request_with_deadline(caller, "raw", 1, 2500));
  ASSERT_TRUE(run_until(f.io, [&] { return data_messages(worker).size() == 1; }));
  const auto& got = worker.frames.back();
  ASSERT_TRUE(got.deadline_ms);
  EXPECT_EQ(*got.deadline_ms, 2500u);
  // The welcome says the router reads deadlines.
  bool welcomed = false;
  for (const auto& c : worker.controls())
    if (c.value("op", "") == "welcome") welcomed = c.value("deadlines", false);
  EXPECT_TRUE(welcomed);
}

TEST(Router, ACallWithNoTimeLeftIsAnsweredAtOnceAndNeverForwarded) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer worker, caller;
  ASSERT_TRUE(open_worker(f, worker, "raw"));
  ASSERT_TRUE(caller.open(f.io, f.address));
  ASSERT_TRUE(send_request_with_deadline(caller, "raw", 3, 0));
  ASSERT_TRUE(run_until(f.io, [&] { return response_to(caller, 3).has_value(); }));
  EXPECT_EQ(response_to(caller, 3)->error->code, errc::deadline_exceeded);
  settle(f.io);
  EXPECT_TRUE(data_messages(worker).empty());
  EXPECT_EQ(f.router.stats().expired, 1u);
}

TEST(Router, ACoroutineHandlerIsCancelledWhenItsCallersDeadlinePasses) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service svc(f.io, f.service("slow"));
  bool cancelled = false;
  svc.route("m", [&]() -> asio::awaitable<int> {
    asio::steady_timer t(co_await asio::this_coro::executor, 30s);
    try {
      co_await t.async_wait(asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
      cancelled = e.code() == asio::error::operation_aborted;
      throw;
    }
    co_return 1;
  });
  ASSERT_TRUE(start_ready(f.io, svc));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto p = start_call(c, "slow", "m", value::array(), 150ms);
  ASSERT_TRUE(run_until(
      f.io, [&] { return p.done() && cancelled; }, 5s));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded);
  EXPECT_EQ(svc.expired(), 1u);
  EXPECT_EQ(svc.in_flight(), 0u);
  ASSERT_TRUE(run_until(
      f.io, [&] { return f.router.stats().in_flight == 0; }, 5s));
  settle(f.io);
  EXPECT_EQ(f.router.stats().unsolicited, 0u) << "the service answered a call it had dropped";
}

TEST(Router, ABlockingHandlersResultIsDroppedWhenItsCallersDeadlinePasses) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::service svc(f.io, f.service("slow"));
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> finished{false};
  svc.route("m",
            [released, &finished]() {
              (void)released.wait_for(10s);
              finished = true;
              return 1;
            },
            {.blocking = true});  // its own deadline: the service's 30 s
  ASSERT_TRUE(start_ready(f.io, svc));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto p = start_call(c, "slow", "m", value::array(), 150ms);
  ASSERT_TRUE(run_until(
      f.io, [&] { return p.done() && svc.expired() == 1; }, 5s));
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded);
  EXPECT_EQ(svc.in_flight(), 0u);
  EXPECT_FALSE(finished.load());
  release.set_value();
  ASSERT_TRUE(run_until(
      f.io, [&] { return finished.load(); }, 5s));
  ASSERT_TRUE(run_until(
      f.io, [&] { return f.router.stats().in_flight == 0; }, 5s));
  settle(f.io);  // the late result reaches the service's loop and goes no further
  EXPECT_EQ(f.router.stats().unsolicited, 0u) << "the service answered a call it had dropped";
  EXPECT_EQ(f.router.stats().expired, 1u);
}

TEST(Router, ADuplicateMsgidIsRefusedAndTheFirstCallStillCompletes) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer worker, caller;
  ASSERT_TRUE(open_worker(f, worker, "raw"));
  ASSERT_TRUE(caller.open(f.io, f.address));

  ASSERT_TRUE(send_message(caller, "raw", wire::request{7, "first", value::array()}));
  ASSERT_TRUE(send_message(caller, "raw", wire::request{7, "second", value::array()}));
  ASSERT_TRUE(run_until(f.io, [&] { return data_messages(caller).size() == 1; }));
  const auto first_reply = data_messages(caller);
  const auto& refusal = std::get<wire::response>(first_reply[0].second);
  EXPECT_EQ(refusal.msgid, 7u);
  ASSERT_TRUE(refusal.error);
  EXPECT_EQ(refusal.error->code, errc::invalid_argument);
  EXPECT_NE(refusal.error->message.find("msgid 7 is already in flight"), std::string::npos)
      << refusal.error->message;
  settle(f.io);
  const auto got = data_messages(worker);
  ASSERT_EQ(got.size(), 1u) << "the duplicate was forwarded";
  EXPECT_EQ(std::get<wire::request>(got[0].second).method, "first");
  EXPECT_EQ(f.router.stats().duplicate_msgid, 1u);
  EXPECT_EQ(f.router.stats().in_flight, 1u);

  ASSERT_TRUE(send_message(worker, got[0].first, wire::response{7, std::nullopt, "one"}));
  ASSERT_TRUE(run_until(f.io, [&] { return data_messages(caller).size() == 2; }));
  const auto replies = data_messages(caller);
  const auto& answer = std::get<wire::response>(replies[1].second);
  EXPECT_EQ(answer.msgid, 7u);
  EXPECT_FALSE(answer.error);
  EXPECT_EQ(answer.result, "one");
  EXPECT_EQ(f.router.stats().in_flight, 0u);
  EXPECT_EQ(f.router.stats().unsolicited, 0u);

  // Once answered, the msgid may be used again.
  ASSERT_TRUE(send_message(caller, "raw", wire::request{7, "third", value::array()}));
  ASSERT_TRUE(run_until(f.io, [&] { return data_messages(worker).size() == 2; }));
  EXPECT_EQ(std::get<wire::request>(data_messages(worker)[1].second).method, "third");
}

// ---- control methods for this user only ---------------------------------------------

// A router whose "plexus" service has a same_user method "stop" (counting its calls)
// and an open one "look".
struct guarded_router {
  explicit guarded_router(std::string address) : f(std::move(address)) {
    f.router.add_method(
        "stop",
        [this](const value&) -> result<value> {
          ++stops;
          return value("stopping");
        },
        router::method_access::same_user);
    f.router.add_method("look", [](const value&) -> result<value> { return value("seen"); });
  }
  fabric f;
  int stops = 0;
};

void expect_denied(const result<value>& r, const std::string& why) {
  ASSERT_FALSE(r) << "allowed: " << r->dump();
  EXPECT_EQ(r.error().code, errc::permission_denied) << r.error().message;
  EXPECT_EQ(to_string(r.error().code), "permission_denied");
  EXPECT_NE(r.error().message.find("plexus.stop is allowed only to the user running the router"),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().context.value("method", ""), "stop");
  EXPECT_EQ(r.error().context.value("service", ""), "plexus");
}

TEST(Router, SameUserMethodsAreCalledByThisUsersPeersInprocAndIpc) {
  test::temp_dir tmp;
  for (const auto& address : {next_inproc(), "ipc://" + tmp.path() + "/router.sock"}) {
    guarded_router g(address);
    ASSERT_TRUE(g.f.router.start());
    rpc::client c(g.f.io, g.f.client());
    ASSERT_TRUE(c.connect());
    auto r = call_and_wait(g.f.io, c, "plexus", "stop", value::array());
    ASSERT_TRUE(r) << address << ": " << r.error().message;
    EXPECT_EQ(*r, "stopping");
    EXPECT_EQ(g.stops, 1) << address;
    EXPECT_EQ(g.f.router.stats().denied, 0u);
  }
}

TEST(Router, SameUserMethodsAreDeniedToPeersWithoutCredentials) {
  guarded_router g("tcp://127.0.0.1:0");
  ASSERT_TRUE(g.f.router.start());
  rpc::client c(g.f.io, {.router = g.f.router.addresses()[0], .name = "over-tcp"});
  ASSERT_TRUE(c.connect());
  expect_denied(call_and_wait(g.f.io, c, "plexus", "stop", value::array()), "no credentials");
  EXPECT_EQ(g.stops, 0);
  EXPECT_EQ(g.f.router.stats().denied, 1u);
  // What only reads is for everyone.
  auto look = call_and_wait(g.f.io, c, "plexus", "look", value::array());
  ASSERT_TRUE(look) << look.error().message;
  EXPECT_EQ(*look, "seen");
}

TEST(Router, SameUserMethodsAreDeniedToAnotherUserOverIpc) {
  if (::geteuid() != 0) GTEST_SKIP() << "connecting as another user needs root";
  constexpr uid_t nobody = 65534;
  test::temp_dir tmp;
  const auto path = tmp.path() + "/router.sock";
  guarded_router g("ipc://" + path);
  ASSERT_TRUE(g.f.router.start());
  // Let the other user reach the socket (the router made it owner-only).
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);

  // The request plexus.stop(), msgid 1, as raw frame bytes.
  bytes request;
  wire::encode(request, wire::request{1, "stop", value::array()});
  bytes frame(wire::max_frame_header);
  frame.resize(wire::write_frame_header(frame.data(), wire::frame_kind::data, 6, request.size()));
  frame.insert(frame.end(), {'p', 'l', 'e', 'x', 'u', 's'});
  frame.insert(frame.end(), request.begin(), request.end());

  // A child becomes uid 65534, connects, sends it and copies the answer to a pipe.
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(out[0]);
    if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) ::_exit(2);
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size());
    if (::connect(s, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) ::_exit(3);
    if (::write(s, frame.data(), frame.size()) != static_cast<ssize_t>(frame.size())) ::_exit(4);
    char buf[4096];
    const auto n = ::read(s, buf, sizeof buf);  // the answer is one small frame
    if (n <= 0 || ::write(out[1], buf, static_cast<std::size_t>(n)) != n) ::_exit(5);
    ::_exit(0);
  }
  ::close(out[1]);
  pollfd ready{out[0], POLLIN, 0};
  ASSERT_TRUE(run_until(g.f.io, [&] { return ::poll(&ready, 1, 0) == 1; }));
  std::uint8_t buf[4096];
  const auto n = ::read(out[0], buf, sizeof buf);
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  ASSERT_GT(n, static_cast<ssize_t>(wire::frame_prefix_bytes));
  auto body = wire::parse_frame_body(
      {buf + wire::frame_prefix_bytes, static_cast<std::size_t>(n) - wire::frame_prefix_bytes});
  ASSERT_TRUE(body);
  auto m = wire::decode(body->payload);
  ASSERT_TRUE(m) << m.error().message;
  const auto& r = std::get<wire::response>(*m);
  ASSERT_TRUE(r.error);
  expect_denied(*r.error, "this peer is uid 65534");
  EXPECT_EQ(g.stops, 0);
  EXPECT_EQ(g.f.router.stats().denied, 1u);
}

// What the process adds to plexus.stats (plexus run: echo_dropped) is read at each
// call; a name the router counts itself is not replaced.
TEST(Router, AddedStatsAppearInPlexusStats) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  std::uint64_t dropped = 0;
  f.router.add_stat("echo_dropped", [&] { return dropped; });
  f.router.add_stat("forwarded", [] { return std::uint64_t{12345}; });
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());
  auto first = call_and_wait(f.io, c, "plexus", "stats", value::array());
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ((*first)["echo_dropped"], 0);
  EXPECT_NE((*first)["forwarded"], 12345);
  dropped = 7;
  auto second = call_and_wait(f.io, c, "plexus", "stats", value::array());
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ((*second)["echo_dropped"], 7);
}

TEST(Router, StatsCountNoRouteAndFailedByPeerLoss) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  auto g = std::make_shared<gate>(f.io);
  auto worker = std::make_unique<rpc::service>(f.io, f.service("w"));
  worker->route("hang", [g]() -> asio::awaitable<int> {
    auto keep = g;
    co_await keep->wait();
    co_return 0;
  });
  ASSERT_TRUE(start_ready(f.io, *worker));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(f.router.stats().no_route, 0u);
  EXPECT_EQ(f.router.stats().failed_by_peer_loss, 0u);

  std::vector<pending> calls;
  for (int i = 0; i < 2; ++i)
    calls.push_back(start_call(c, "nowhere", "m", value::array()));
  for (int i = 0; i < 3; ++i)
    calls.push_back(start_call(c, "w", "hang", value::array(), 10s));
  ASSERT_TRUE(run_until(f.io, [&] { return worker->in_flight() == 3; }));
  EXPECT_EQ(f.router.stats().no_route, 2u);
  EXPECT_EQ(f.router.stats().in_flight, 3u);
  EXPECT_EQ(f.router.stats().failed_by_peer_loss, 0u);

  worker.reset();
  ASSERT_TRUE(run_until(f.io, [&] {
    return std::all_of(calls.begin(), calls.end(), [](const pending& p) { return p.done(); });
  }));
  const auto s = f.router.stats();
  EXPECT_EQ(s.no_route, 2u);
  EXPECT_EQ(s.failed_by_peer_loss, 3u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.peers, 1u);
  g->open();
  settle(f.io);
}

TEST(Router, StartFailsNamingTheAddress) {
  asio::io_context io;
  router none(io, {});
  auto empty = none.start();
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, errc::invalid_argument);

  router bad(io, {.listen = {"bogus://x"}});
  auto r = bad.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("bogus://x"), std::string::npos) << r.error().message;

  const auto address = next_inproc();
  router first(io, {.listen = {address}}), second(io, {.listen = {address}});
  ASSERT_TRUE(first.start());
  auto taken = second.start();
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, errc::unavailable);
  EXPECT_NE(taken.error().message.find(address), std::string::npos) << taken.error().message;
}

TEST(Router, StopClosesEveryPeer) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());
  auto r = call_and_wait(f.io, c, "plexus", "ping", value::array());
  ASSERT_TRUE(r);
  EXPECT_EQ(f.router.stats().peers, 1u);
  f.router.stop();
  f.router.stop();  // idempotent
  EXPECT_EQ(f.router.stats().peers, 0u);
  EXPECT_TRUE(f.router.addresses().empty());
  ASSERT_TRUE(run_until(f.io, [&] { return !c.connected(); }));
  auto after = transport::connect(f.io, f.address);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, errc::unavailable);
}

namespace pubsub {

// What a subscriber received: topic and params of each publication, in order.
struct inbox {
  std::vector<std::pair<std::string, value>> items;
  rpc::client::publication_handler handler() {
    return [this](std::string_view t, const value& p) { items.emplace_back(std::string(t), p); };
  }
};

// The router has everything a client sent before a call it answers.
testing::AssertionResult synced(asio::io_context& io, rpc::client& c) {
  auto r = call_and_wait(io, c, "plexus", "ping", value::array());
  if (!r) return testing::AssertionFailure() << r.error().message;
  return testing::AssertionSuccess();
}

TEST(RouterPubSub, PublicationReachesEachSubscriberOfAPrefixOnce) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::client a(f.io, f.client()), b(f.io, f.client()), pub(f.io, f.client());
  ASSERT_TRUE(a.connect());
  ASSERT_TRUE(b.connect());
  ASSERT_TRUE(pub.connect());
  inbox in_a, in_a2, in_b;
  ASSERT_TRUE(a.subscribe("tick", in_a.handler()));
  ASSERT_TRUE(a.subscribe("ti", in_a2.handler()));
  ASSERT_TRUE(b.subscribe("other", in_b.handler()));
  ASSERT_TRUE(synced(f.io, a));
  ASSERT_TRUE(synced(f.io, b));

  ASSERT_TRUE(pub.publish("tick", value::array({1, "x"})));
  ASSERT_TRUE(pub.publish("time", value::array({2})));
  ASSERT_TRUE(pub.publish("nobody", value::array({3})));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().published == 3; }));
  ASSERT_TRUE(run_until(f.io, [&] { return in_a2.items.size() == 2; }));
  ASSERT_TRUE(synced(f.io, a));
  ASSERT_EQ(in_a.items.size(), 1u);
  EXPECT_EQ(in_a.items[0].first, "tick");
  EXPECT_EQ(in_a.items[0].second, value::array({1, "x"}));
  EXPECT_EQ(in_a2.items[1].first, "time");
  EXPECT_TRUE(in_b.items.empty());
  // Sent once to `a` although two of its prefixes matched "tick".
  EXPECT_EQ(f.router.stats().delivered, 2u);
  EXPECT_EQ(f.router.stats().dropped, 0u);
}

TEST(RouterPubSub, EmptyPrefixReceivesEverythingAndUnsubscribeStops) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::client sub(f.io, f.client()), pub(f.io, f.client());
  ASSERT_TRUE(sub.connect());
  ASSERT_TRUE(pub.connect());
  inbox all;
  ASSERT_TRUE(sub.subscribe("", all.handler()));
  ASSERT_TRUE(synced(f.io, sub));
  ASSERT_TRUE(pub.publish("a", value::array()));
  ASSERT_TRUE(pub.publish("b.c", value::array({nullptr})));
  ASSERT_TRUE(run_until(f.io, [&] { return all.items.size() == 2; }));

  auto listed = call_and_wait(f.io, pub, "plexus", "subscriptions", value::array());
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0]["prefixes"], value::array({""}));
  EXPECT_EQ((*listed)[0]["delivered"], 2);

  ASSERT_TRUE(sub.unsubscribe(""));
  ASSERT_TRUE(synced(f.io, sub));
  ASSERT_TRUE(pub.publish("a", value::array()));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().published == 3; }));
  ASSERT_TRUE(synced(f.io, sub));
  EXPECT_EQ(all.items.size(), 2u);
  auto none = call_and_wait(f.io, pub, "plexus", "subscriptions", value::array());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(RouterPubSub, SubscriptionEndsWithItsConnection) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  rpc::client pub(f.io, f.client());
  ASSERT_TRUE(pub.connect());
  {
    rpc::client sub(f.io, f.client());
    ASSERT_TRUE(sub.connect());
    ASSERT_TRUE(sub.subscribe("x", [](std::string_view, const value&) {}));
    ASSERT_TRUE(synced(f.io, sub));
  }
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().peers == 1; }));
  auto none = call_and_wait(f.io, pub, "plexus", "subscriptions", value::array());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(pub.publish("x", value::array()));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().published == 1; }));
  EXPECT_EQ(f.router.stats().delivered, 0u);
}

TEST(RouterPubSub, SubscribeWithoutATextPrefixIsRefused) {
  fabric f;
  ASSERT_TRUE(f.router.start());
  raw_peer p;
  ASSERT_TRUE(p.open(f.io, f.address));
  ASSERT_TRUE(p.send_control({{"op", "subscribe"}, {"prefix", 7}}));
  ASSERT_TRUE(run_until(f.io, [&] { return !p.controls().empty(); }));
  const auto reply = p.controls()[0];
  EXPECT_EQ(reply.value("op", ""), "error");
  EXPECT_EQ(reply.value("code", ""), "invalid_argument");
}

// A subscriber that stops reading: raw frames over a Unix socket the test reads only
// when it chooses.
class stalled_subscriber {
 public:
  explicit stalled_subscriber(asio::io_context& io) : sock_(io) {}

  testing::AssertionResult open(const std::string& path, const std::string& prefix) {
    boost::system::error_code ec;
    sock_.connect(asio::local::stream_protocol::endpoint(path), ec);
    if (ec) return testing::AssertionFailure() << ec.message();
    sock_.set_option(asio::socket_base::receive_buffer_size(4096), ec);
    bytes payload;
    wire::encode_value(payload, value{{"op", "subscribe"}, {"prefix", prefix}});
    bytes frame;
    const auto body = static_cast<std::uint32_t>(2 + payload.size());
    for (int i = 0; i < 4; ++i)
      frame.push_back(static_cast<std::uint8_t>(body >> (8 * i)));
    frame.push_back(1);  // control
    frame.push_back(0);  // no name
    frame.insert(frame.end(), payload.begin(), payload.end());
    asio::write(sock_, asio::buffer(frame), ec);
    if (ec) return testing::AssertionFailure() << ec.message();
    return testing::AssertionSuccess();
  }

  // Reads whatever has arrived, without blocking, and splits it into frames.
  void read_available() {
    boost::system::error_code ec;
    sock_.non_blocking(true, ec);
    std::uint8_t buf[65536];
    for (;;) {
      const auto n = sock_.read_some(asio::buffer(buf), ec);
      if (ec) break;
      pending_.insert(pending_.end(), buf, buf + n);
    }
    for (;;) {
      if (pending_.size() < 4) return;
      const std::uint32_t body = pending_[0] | (pending_[1] << 8) | (pending_[2] << 16) |
                                 (static_cast<std::uint32_t>(pending_[3]) << 24);
      if (pending_.size() < 4 + body) return;
      const auto kind = pending_[4];
      const auto name_len = pending_[5];
      bytes payload(pending_.begin() + 6 + name_len, pending_.begin() + 4 + body);
      if (kind == 1) {
        auto v = wire::decode_value(payload);
        controls.push_back(v ? *v : value("undecodable"));
      } else {
        ++publications;
      }
      pending_.erase(pending_.begin(), pending_.begin() + 4 + body);
    }
  }

  std::vector<value> controls;
  std::size_t publications = 0;

 private:
  asio::local::stream_protocol::socket sock_;
  bytes pending_;
};

TEST(RouterPubSub, SlowSubscriberLosesPublicationsCountedAndToldWithoutSlowingOthers) {
  test::temp_dir tmp;
  const std::string path = tmp.path() + "/router.sock";
  {
    fabric f("ipc://" + path, {.subscriber_queue_bytes = 64 * 1024});
    ASSERT_TRUE(f.router.start());
    rpc::client fast(f.io, f.client()), pub(f.io, f.client());
    ASSERT_TRUE(fast.connect());
    ASSERT_TRUE(pub.connect());
    inbox got;
    ASSERT_TRUE(fast.subscribe("bulk", got.handler()));
    ASSERT_TRUE(synced(f.io, fast));
    stalled_subscriber slow(f.io);
    ASSERT_TRUE(slow.open(path, "bulk"));
    ASSERT_TRUE(run_until(f.io, [&] {
      auto r = call_and_wait(f.io, pub, "plexus", "subscriptions", value::array());
      return r && r->size() == 2;
    }));

    // 8 MiB of publications: far beyond the slow reader's socket buffers and its
    // 64 KiB allowance at the router.
    constexpr int count = 512;
    const value chunk = value::array({value::binary(std::vector<std::uint8_t>(16 * 1024, 7))});
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(pub.publish("bulk", chunk));
      if (i % 32 == 31) {
        ASSERT_TRUE(synced(f.io, pub));  // keep the publisher's queue short
      }
    }
    ASSERT_TRUE(run_until(
        f.io, [&] { return got.items.size() == count; }, 10000ms));
    const auto st = f.router.stats();
    EXPECT_EQ(st.published, static_cast<std::uint64_t>(count));
    EXPECT_GT(st.dropped, 0u);
    EXPECT_EQ(st.delivered + st.dropped, 2u * count);

    // The slow reader catches up; the next publication it gets is preceded by the
    // report of what it lost.
    ASSERT_TRUE(run_until(
        f.io,
        [&] {
          slow.read_available();
          return slow.publications + st.dropped == static_cast<std::uint64_t>(count);
        },
        10000ms));
    ASSERT_TRUE(pub.publish("bulk", value::array({1})));
    ASSERT_TRUE(run_until(f.io, [&] {
      slow.read_available();
      return slow.publications == count - st.dropped + 1;
    }));
    ASSERT_EQ(slow.controls.size(), 2u);  // "subscribed", then "dropped"
    EXPECT_EQ(slow.controls[0].value("op", ""), "subscribed");
    EXPECT_EQ(slow.controls[1].value("op", ""), "dropped");
    EXPECT_EQ(slow.controls[1].value("count", 0u), st.dropped);
    EXPECT_EQ(slow.controls[1].value("total", 0u), st.dropped);
    auto listed = call_and_wait(f.io, pub, "plexus", "subscriptions", value::array());
    ASSERT_TRUE(listed);
    std::uint64_t dropped = 0;
    for (const auto& s : *listed)
      dropped += s["dropped"].get<std::uint64_t>();
    EXPECT_EQ(dropped, st.dropped);
  }
}

TEST(RouterPubSub, ClientCountsTheDropsTheRouterReports) {
  // With no allowance at all, a publication arriving while the previous one is still
  // queued to the subscriber is dropped; the client learns of it with the next one.
  test::temp_dir tmp;
  const std::string& dir = tmp.path();
  // Over a stream socket, so that sends queue until the loop writes them.
  fabric f("ipc://" + dir + "/router.sock", {.subscriber_queue_bytes = 0});
  ASSERT_TRUE(f.router.start());
  rpc::client sub(f.io, f.client()), pub(f.io, f.client());
  ASSERT_TRUE(sub.connect());
  ASSERT_TRUE(pub.connect());
  inbox got;
  ASSERT_TRUE(sub.subscribe("t", got.handler()));
  ASSERT_TRUE(synced(f.io, sub));
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(pub.publish("t", value::array({i})));  // back to back, one loop turn
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().published == 50; }));
  ASSERT_TRUE(synced(f.io, sub));
  const auto dropped = f.router.stats().dropped;
  ASSERT_GT(dropped, 0u);
  EXPECT_EQ(got.items.size() + dropped, 50u);
  ASSERT_TRUE(pub.publish("t", value::array({"last"})));
  ASSERT_TRUE(run_until(f.io, [&] { return got.items.size() + dropped == 51; }));
  EXPECT_EQ(sub.dropped_publications(), dropped);
}

}  // namespace pubsub

namespace budgets {

// The control error a raw peer was sent about `about`, or null.
std::optional<value> control_error(const raw_peer& p, std::string_view about) {
  for (const auto& v : p.controls())
    if (v.value("op", "") == "error" && v.value("about", "") == about) return v;
  return std::nullopt;
}

TEST(RouterBudgets, ConnectionBeyondMaxConnectionsIsToldWhyAndClosed) {
  fabric f(next_inproc(), {.max_connections = 2});
  ASSERT_TRUE(f.router.start());
  raw_peer a, b, c;
  ASSERT_TRUE(a.open(f.io, f.address));
  ASSERT_TRUE(b.open(f.io, f.address));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().peers == 2; }));
  ASSERT_TRUE(c.open(f.io, f.address));
  ASSERT_TRUE(run_until(f.io, [&] { return c.closed; }));
  const auto why = control_error(c, "hello");
  ASSERT_TRUE(why);
  EXPECT_EQ(why->value("code", ""), "resource_exhausted");
  EXPECT_NE(why->value("message", "").find("max_connections (2)"), std::string::npos)
      << why->dump();
  EXPECT_EQ(f.router.stats().refused_connections, 1u);
  EXPECT_EQ(f.router.stats().peers, 2u);
  EXPECT_FALSE(a.closed);
  EXPECT_FALSE(b.closed);
  // A place freed is a place taken.
  a.conn.close();
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().peers == 1; }));
  raw_peer d;
  ASSERT_TRUE(d.open(f.io, f.address));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().peers == 2; }));
  EXPECT_FALSE(d.closed);
  EXPECT_EQ(f.router.stats().refused_connections, 1u);
}

TEST(RouterBudgets, ConnectionThatSaysNoHelloInTimeIsClosedAndCounted) {
  fabric f(next_inproc(), {.hello_timeout_ms = 30});
  ASSERT_TRUE(f.router.start());
  raw_peer polite, silent;
  ASSERT_TRUE(polite.open(f.io, f.address));
  ASSERT_TRUE(polite.send_control({{"op", "hello"}, {"name", "polite"}, {"pid", 1}}));
  ASSERT_TRUE(run_until(f.io, [&] { return !polite.controls().empty(); }));
  ASSERT_TRUE(silent.open(f.io, f.address));
  ASSERT_TRUE(run_until(f.io, [&] { return f.router.stats().peers == 2; }));
  EXPECT_FALSE(silent.closed);
  EXPECT_EQ(f.router.stats().hello_timeouts, 0u);
  // polite connected first: its wait, had it not been cancelled, would have ended first.
  ASSERT_TRUE(run_until(f.io, [&] { return silent.closed; }));
  settle(f.io);
  const auto why = control_error(silent, "hello");
  ASSERT_TRUE(why);
  EXPECT_EQ(why->value("code", ""), "deadline_exceeded");
  EXPECT_NE(why->value("message", "").find("hello_timeout_ms"), std::string::npos);
  EXPECT_EQ(f.router.stats().hello_timeouts, 1u);
  EXPECT_EQ(f.router.stats().peers, 1u);
  EXPECT_FALSE(polite.closed);
}

TEST(RouterBudgets, SubscriptionsBeyondThePerPeerCapAreRefused) {
  fabric f(next_inproc(), {.max_subscriptions_per_peer = 2});
  ASSERT_TRUE(f.router.start());
  raw_peer p;
  ASSERT_TRUE(p.open(f.io, f.address));
  for (const char* prefix : {"a", "b", "a", "c"})
    ASSERT_TRUE(p.send_control({{"op", "subscribe"}, {"prefix", prefix}}));
  ASSERT_TRUE(run_until(f.io, [&] { return p.controls().size() == 4; }));
  const auto replies = p.controls();
  EXPECT_EQ(replies[0].value("op", ""), "subscribed");
  EXPECT_EQ(replies[1].value("op", ""), "subscribed");
  EXPECT_EQ(replies[2].value("op", ""), "subscribed");  // "a" again takes no new place
  EXPECT_EQ(replies[3].value("op", ""), "error");
  EXPECT_EQ(replies[3].value("code", ""), "resource_exhausted");
  EXPECT_NE(replies[3].value("message", "").find("max_subscriptions_per_peer (2)"),
            std::string::npos)
      << replies[3].dump();
  EXPECT_EQ(f.router.stats().over_budget, 1u);
  EXPECT_FALSE(p.closed);
  // Unsubscribing frees a place.
  ASSERT_TRUE(p.send_control({{"op", "unsubscribe"}, {"prefix", "b"}}));
  ASSERT_TRUE(p.send_control({{"op", "subscribe"}, {"prefix", "c"}}));
  ASSERT_TRUE(run_until(f.io, [&] { return p.controls().size() == 6; }));
  EXPECT_EQ(p.controls()[5].value("op", ""), "subscribed");
}

TEST(RouterBudgets, RequestsBeyondThePerPeerInFlightCapAreAnsweredResourceExhausted) {
  fabric f(next_inproc(), {.max_in_flight_per_peer = 2});
  ASSERT_TRUE(f.router.start());
  raw_peer worker;  // registers and never answers
  ASSERT_TRUE(worker.open(f.io, f.address));
  ASSERT_TRUE(worker.send_control({{"op", "register"}, {"service", "slow"}}));
  ASSERT_TRUE(run_until(f.io, [&] { return !worker.controls().empty(); }));
  rpc::client c(f.io, f.client());
  ASSERT_TRUE(c.connect());

  auto first = start_call(c, "slow", "x", value::array());
  auto second = start_call(c, "slow", "x", value::array());
  auto third = start_call(c, "slow", "x", value::array());
  ASSERT_TRUE(run_until(f.io, [&] { return third.done(); }));
  ASSERT_FALSE(third.get());
  EXPECT_EQ(third.get().error().code, errc::resource_exhausted);
  EXPECT_NE(third.get().error().message.find("max_in_flight_per_peer (2)"), std::string::npos)
      << third.get().error().message;
  EXPECT_FALSE(first.done());
  EXPECT_FALSE(second.done());
  EXPECT_EQ(f.router.stats().over_budget, 1u);
  EXPECT_EQ(f.router.stats().in_flight, 2u);

  // Answered (here: failed by the worker's loss), they give their places back.
  worker.conn.close();
  ASSERT_TRUE(run_until(f.io, [&] { return first.done() && second.done(); }));
  EXPECT_EQ(first.get().error().code, errc::unavailable);
  raw_peer next;
  ASSERT_TRUE(next.open(f.io, f.address));
  ASSERT_TRUE(next.send_control({{"op", "register"}, {"service", "slow"}}));
  ASSERT_TRUE(run_until(f.io, [&] { return !next.controls().empty(); }));
  auto again = start_call(c, "slow", "x", value::array());
  auto again2 = start_call(c, "slow", "x", value::array());
  ASSERT_TRUE(run_until(f.io, [&] { return next.frames.size() == 3; }));  // registered + 2
  EXPECT_FALSE(again.done());
  EXPECT_FALSE(again2.done());
  EXPECT_EQ(f.router.stats().over_budget, 1u);
}

}  // namespace budgets

}  // namespace
}  // namespace plexus::broker
