#include "plexus/rpc/service.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "plexus/broker/router.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/transport/connection.hpp"
#include "plexus/wire/message.hpp"
#include "support/bytes.hpp"
#include "support/fabric.hpp"
#include "support/loop.hpp"

// Services with a router and a client in one process, on one io_context the test
// drives itself.

namespace plexus::rpc {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::bytes, test::contains, test::gate, test::run_until, test::settle, test::start_call;

// A user type converted by its own to_json/from_json.
struct point {
  int x = 0;
  int y = 0;
  bool operator==(const point&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(point, x, y)

class Service : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(router_.start());
    ASSERT_TRUE(client_.connect());
  }

  service_options options(std::string name = "svc") const { return f_.service(std::move(name)); }

  testing::AssertionResult start_ready(service& s) { return test::start_ready(io_, s); }

  // Whether `r` is an error with `code` and exactly `message`, naming `method` in its context.
  static testing::AssertionResult is_error(const result<value>& r, errc code,
                                           std::string_view message, std::string_view method) {
    if (r) return testing::AssertionFailure() << "answered " << r->dump();
    const auto& e = r.error();
    if (e.code != code || e.message != message || e.context.value("method", "") != method)
      return testing::AssertionFailure()
             << to_string(e.code) << " \"" << e.message << "\" " << e.context.dump();
    return testing::AssertionSuccess();
  }

  // Calls svc.method, checks it is not answered before the loop runs, runs the loop
  // until it is.
  result<value> call(std::string_view method, value params, duration deadline = {}) {
    return test::call_and_wait(io_, client_, "svc", method, std::move(params), deadline);
  }

  test::fabric f_;
  asio::io_context& io_ = f_.io;
  const std::string& address_ = f_.address;
  broker::router& router_ = f_.router;
  client client_{io_, f_.client()};
};

TEST_F(Service, ArityErrorNamesTheSignature) {
  service s(io_, options());
  s.route("add", [](int a, int b) { return a + b; });
  ASSERT_TRUE(start_ready(s));

  auto few = call("add", value::array({1}));
  ASSERT_FALSE(few);
  EXPECT_EQ(few.error().code, errc::invalid_argument);
  EXPECT_TRUE(contains(few.error().message, "expects 2 arguments (integer, integer)"))
      << few.error().message;
  EXPECT_TRUE(contains(few.error().message, "got 1")) << few.error().message;
  EXPECT_EQ(few.error().context.value("signature", ""), "(integer, integer) -> integer");
  EXPECT_EQ(few.error().context.value("method", ""), "add");

  auto many = call("add", value::array({1, 2, 3}));
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().code, errc::invalid_argument);
  EXPECT_TRUE(contains(many.error().message, "got 3")) << many.error().message;

  auto right = call("add", value::array({1, 2}));
  ASSERT_TRUE(right) << right.error().message;
  EXPECT_EQ(*right, 3);
}

TEST_F(Service, WrongArgumentTypeNamesTheArgument) {
  service s(io_, options());
  s.route("add", [](int a, int b) { return a + b; });
  ASSERT_TRUE(start_ready(s));

  auto r = call("add", value::array({1, "2"}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_TRUE(contains(r.error().message, "argument 2")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "expected integer, got string")) << r.error().message;
  EXPECT_EQ(r.error().context.value("expected", ""), "integer");
  EXPECT_EQ(r.error().context.value("got", ""), "string");
}

TEST_F(Service, FractionalNumberIsRefusedForAnIntegerParameter) {
  service s(io_, options());
  s.route("add", [](int a, int b) { return a + b; });
  ASSERT_TRUE(start_ready(s));

  auto r = call("add", value::array({1, 2.5}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_TRUE(contains(r.error().message, "argument 2")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "got number")) << r.error().message;
}

TEST_F(Service, OutOfRangeIntegerIsRefused) {
  service s(io_, options());
  s.route("add", [](int a, int b) { return a + b; });
  s.route("byte", [](std::uint8_t b) { return static_cast<int>(b); });
  s.route("count", [](unsigned n) { return n; });
  ASSERT_TRUE(start_ready(s));

  const std::vector<std::pair<std::string, value>> cases = {{"add", std::int64_t{1} << 40},
                                                            {"add", -(std::int64_t{1} << 40)},
                                                            {"byte", 256},
                                                            {"count", -1}};
  for (const auto& [method, arg] : cases) {
    auto params = method == "add" ? value::array({1, arg}) : value::array({arg});
    auto r = call(method, params);
    ASSERT_FALSE(r) << method << " accepted " << arg.dump();
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message, "out of range")) << r.error().message;
  }
  auto edge = call("byte", value::array({255}));
  ASSERT_TRUE(edge) << edge.error().message;
  EXPECT_EQ(*edge, 255);
}

TEST_F(Service, ThrownStdExceptionBecomesAnInternalErrorWithItsMessage) {
  service s(io_, options());
  s.route("boom", []() -> int { throw std::runtime_error("disk on fire"); });
  ASSERT_TRUE(start_ready(s));

  EXPECT_TRUE(is_error(call("boom", value::array()), errc::internal, "disk on fire", "boom"));
}

TEST_F(Service, ThrownRemoteErrorKeepsItsCodeAndContext) {
  service s(io_, options());
  s.route("lookup", [](std::string user) -> int {
    throw remote_error(errc::not_found, "no user " + user, {{"user", user}});
  });
  ASSERT_TRUE(start_ready(s));

  auto r = call("lookup", value::array({"bob"}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::not_found);
  EXPECT_EQ(r.error().message, "no user bob");
  EXPECT_EQ(r.error().context.value("user", ""), "bob");
  EXPECT_EQ(r.error().context.value("method", ""), "lookup");
  EXPECT_EQ(r.error().context.value("code", ""), "not_found");
}

TEST_F(Service, UnknownMethodIsNotFoundListingTheMethods) {
  service s(io_, options());
  s.route("add", [](int a, int b) { return a + b; });
  s.route("neg", [](int a) { return -a; });
  ASSERT_TRUE(start_ready(s));

  auto r = call("mul", value::array({2, 3}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::not_found);
  EXPECT_TRUE(contains(r.error().message, "mul")) << r.error().message;
  EXPECT_EQ(r.error().context.value("method", ""), "mul");
  ASSERT_TRUE(r.error().context.contains("methods")) << r.error().context.dump();
  std::set<std::string> methods;
  for (const auto& m : r.error().context["methods"])
    methods.insert(m.get<std::string>());
  EXPECT_EQ(methods, (std::set<std::string>{"add", "neg"}));
}

TEST_F(Service, CoroutineHandlerAnswersAfterSuspending) {
  service s(io_, options());
  s.route("twice", [](int x) -> asio::awaitable<int> {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    co_return x * 2;
  });
  s.route("nothing", []() -> asio::awaitable<void> { co_return; });
  ASSERT_TRUE(start_ready(s));

  auto r = call("twice", value::array({21}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, 42);
  auto v = call("nothing", value::array());
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_TRUE(v->is_null());
  EXPECT_EQ(s.in_flight(), 0u);

  auto bad = call("twice", value::array({"x"}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
}

TEST_F(Service, CoroutineHandlerThatThrowsBecomesAnErrorResponse) {
  service s(io_, options());
  s.route("fail", []() -> asio::awaitable<int> {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    throw remote_error(errc::resource_exhausted, "quota gone");
  });
  ASSERT_TRUE(start_ready(s));
  EXPECT_TRUE(
      is_error(call("fail", value::array()), errc::resource_exhausted, "quota gone", "fail"));
  EXPECT_EQ(s.in_flight(), 0u);
}

TEST_F(Service, BlockingHandlerRunsOnThePoolWhileTheLoopKeepsAnswering) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<std::thread::id> pool_thread{};
  service s(io_, options());
  s.route("block",
          [released, &pool_thread](int x) {
            pool_thread = std::this_thread::get_id();
            (void)released.wait_for(5s);  // held until the test has seen the plain call answered
            return x * 10;
          },
          {.blocking = true});
  s.route("plain", [](int x) { return x + 1; });
  ASSERT_TRUE(start_ready(s));

  auto blocked = start_call(client_, "svc", "block", value::array({4}));
  auto plain = start_call(client_, "svc", "plain", value::array({1}));
  ASSERT_TRUE(run_until(io_, [&] { return plain.done(); }));
  ASSERT_TRUE(plain.get()) << plain.get().error().message;
  EXPECT_EQ(*plain.get(), 2);
  EXPECT_FALSE(blocked.done());
  EXPECT_EQ(s.in_flight(), 1u);

  release.set_value();
  ASSERT_TRUE(run_until(io_, [&] { return blocked.done(); }));
  ASSERT_TRUE(blocked.get()) << blocked.get().error().message;
  EXPECT_EQ(*blocked.get(), 40);
  EXPECT_NE(pool_thread.load(), std::thread::id{});
  EXPECT_NE(pool_thread.load(), std::this_thread::get_id());  // this thread runs the loop
}

TEST_F(Service, BlockingHandlerThatThrowsBecomesAnErrorResponse) {
  service s(io_, options());
  s.route("explode", []() -> int { throw std::logic_error("bad state"); }, {.blocking = true});
  ASSERT_TRUE(start_ready(s));
  auto r = call("explode", value::array());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::internal);
  EXPECT_EQ(r.error().message, "bad state");
}

TEST_F(Service, BlockingHandlerPastItsDeadlineIsDeadlineExceeded) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> finished{false};
  service s(io_, options());
  s.route("stuck",
          [released, &finished]() {
            (void)released.wait_for(5s);
            finished = true;
            return 1;
          },
          {.blocking = true, .deadline = 50ms});
  ASSERT_TRUE(start_ready(s));

  auto p = start_call(client_, "svc", "stuck", value::array(), 10s);
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded) << p.get().error().message;
  EXPECT_FALSE(finished.load());
  EXPECT_EQ(s.in_flight(), 0u);
  release.set_value();
  ASSERT_TRUE(run_until(io_, [&] { return finished.load(); }));
  settle(io_);  // the late result comes back to the loop and is dropped
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded);
}

TEST_F(Service, CoroutineHandlerPastItsDeadlineIsDeadlineExceeded) {
  auto g = std::make_shared<gate>(io_);
  bool finished = false;
  service s(io_, options());
  s.route("sleepy",
          [g, &finished]() -> asio::awaitable<int> {
            co_await g->wait();
            finished = true;
            co_return 1;
          },
          {.deadline = 50ms});
  ASSERT_TRUE(start_ready(s));

  auto p = start_call(client_, "svc", "sleepy", value::array(), 10s);
  ASSERT_TRUE(run_until(io_, [&] { return p.done(); }));
  ASSERT_FALSE(p.get());
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded) << p.get().error().message;
  EXPECT_EQ(p.get().error().context.value("method", ""), "sleepy");
  EXPECT_EQ(p.get().error().context.value("deadline_ms", 0), 50);
  EXPECT_EQ(s.in_flight(), 0u);
  EXPECT_EQ(s.expired(), 1u);

  // The coroutine was cancelled at the deadline: what it awaited ended, and opening the
  // gate now finds nobody waiting.
  g->open();
  settle(io_);
  EXPECT_FALSE(finished);
  EXPECT_EQ(p.get().error().code, errc::deadline_exceeded);
  EXPECT_EQ(s.in_flight(), 0u);
}

TEST_F(Service, NotificationsReachTheHandlerAndProduceNoResponse) {
  std::vector<int> seen;
  service s(io_, options());
  s.route("note", [&seen](int x) { seen.push_back(x); });
  s.route("echo", [](int x) { return x; });
  ASSERT_TRUE(start_ready(s));

  // A raw caller sees every frame the router sends it.
  std::vector<bytes> data_frames;
  auto raw = transport::connect(io_, address_);
  ASSERT_TRUE(raw) << raw.error().message;
  raw->start(
      [&](const wire::frame_view& f) {
        if (f.kind == wire::frame_kind::data)
          data_frames.emplace_back(f.payload.begin(), f.payload.end());
      },
      [](const plexus::error&) {});
  bytes note, req;
  wire::encode(note, wire::notification{"note", value::array({5})});
  wire::encode(req, wire::request{77, "echo", value::array({6})});
  ASSERT_TRUE(raw->send(wire::frame_kind::data, "svc", note));
  ASSERT_TRUE(raw->send(wire::frame_kind::data, "svc", req));

  // The service answers in order, so a response to the notification would arrive first.
  ASSERT_TRUE(run_until(io_, [&] { return !data_frames.empty(); }));
  settle(io_);
  EXPECT_EQ(seen, std::vector<int>{5});
  ASSERT_EQ(data_frames.size(), 1u);
  auto m = wire::decode(data_frames[0]);
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_TRUE(std::holds_alternative<wire::response>(*m));
  EXPECT_EQ(std::get<wire::response>(*m).msgid, 77u);
  EXPECT_EQ(std::get<wire::response>(*m).result, 6);
  EXPECT_EQ(router_.stats().forwarded, 3u);  // notification, request, response

  // Through the client, too.
  ASSERT_TRUE(client_.notify("svc", "note", value::array({7})));
  EXPECT_EQ(seen.size(), 1u);
  ASSERT_TRUE(run_until(io_, [&] { return seen.size() == 2; }));
  EXPECT_EQ(seen[1], 7);
}

TEST_F(Service, UserTypesRoundTripAsArgumentAndResult) {
  service s(io_, options());
  s.route("flip", [](point p) { return point{p.y, p.x}; });
  s.route("sum", [](std::vector<point> ps) {
    point total;
    for (const auto& p : ps)
      total = {total.x + p.x, total.y + p.y};
    return total;
  });
  ASSERT_TRUE(start_ready(s));

  auto r = call("flip", value::array({point{1, 2}}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, (value{{"x", 2}, {"y", 1}}));
  auto back = convert_result<point>(*r, "flip");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, (point{2, 1}));

  auto typed = client_.call<point>("svc", "sum", std::vector<point>{{1, 2}, {10, 20}});
  ASSERT_TRUE(typed) << typed.error().message;
  EXPECT_EQ(*typed, (point{11, 22}));

  auto bad = call("flip", value::array({value{{"x", "one"}, {"y", 2}}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  EXPECT_TRUE(contains(bad.error().message, "argument 1")) << bad.error().message;
}

int multiply(int a, int b) {
  return a * b;
}

TEST_F(Service, OptionalContainerAndFunctionPointerHandlersConvert) {
  service s(io_, options());
  s.route("mul", &multiply);
  s.route("greet", [](const std::string& name, std::optional<int> times) {
    std::string out;
    for (int i = 0; i < times.value_or(1); ++i)
      out += "hi " + name + ";";
    return out;
  });
  s.route("total", [](const std::vector<double>& xs) {
    double t = 0;
    for (double x : xs)
      t += x;
    return t;
  });
  ASSERT_TRUE(start_ready(s));

  auto mul = call("mul", value::array({6, 7}));
  ASSERT_TRUE(mul) << mul.error().message;
  EXPECT_EQ(*mul, 42);
  auto once = call("greet", value::array({"ann", nullptr}));
  ASSERT_TRUE(once) << once.error().message;
  EXPECT_EQ(*once, "hi ann;");
  auto twice = call("greet", value::array({"bo", 2}));
  ASSERT_TRUE(twice) << twice.error().message;
  EXPECT_EQ(*twice, "hi bo;hi bo;");
  auto total = call("total", value::array({value::array({1, 2.5, 3})}));
  ASSERT_TRUE(total) << total.error().message;
  EXPECT_EQ(*total, 6.5);
  auto bad = call("total", value::array({value::array({1, "x"})}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  EXPECT_TRUE(contains(bad.error().message, "argument 1")) << bad.error().message;
  EXPECT_TRUE(contains(bad.error().message, "[1]")) << bad.error().message;
}

TEST_F(Service, ResultAboveMaxFrameBytesBecomesAResourceExhaustedError) {
  auto opts = options();
  opts.transport.max_frame_bytes = 1024;
  service s(io_, opts);
  s.route("big", [] { return std::string(5000, 'x'); });
  s.route("small", [] { return std::string(10, 'x'); });
  ASSERT_TRUE(start_ready(s));

  auto big = call("big", value::array());
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, errc::resource_exhausted);
  EXPECT_TRUE(contains(big.error().message, "max_frame_bytes")) << big.error().message;
  auto small = call("small", value::array());
  ASSERT_TRUE(small) << small.error().message;
  EXPECT_EQ(*small, std::string(10, 'x'));
}

TEST_F(Service, VoidAndRawHandlersAnswer) {
  int pokes = 0;
  service s(io_, options());
  s.route("poke", [&pokes] { ++pokes; });
  s.route_raw("sum", "(integer...) -> integer", [](const value& params) -> result<value> {
    std::int64_t total = 0;
    for (const auto& p : params) {
      if (!p.is_number_integer()) return plexus::error(errc::invalid_argument, "integers only");
      total += p.get<std::int64_t>();
    }
    return value(total);
  });
  ASSERT_TRUE(start_ready(s));

  auto poke = call("poke", value::array());
  ASSERT_TRUE(poke) << poke.error().message;
  EXPECT_TRUE(poke->is_null());
  EXPECT_EQ(pokes, 1);
  auto sum = call("sum", value::array({1, 2, 3, 4}));
  ASSERT_TRUE(sum) << sum.error().message;
  EXPECT_EQ(*sum, 10);
  auto refused = call("sum", value::array({1, "two"}));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::invalid_argument);
  EXPECT_EQ(refused.error().message, "integers only");
}

TEST_F(Service, MutableHandlerKeepsItsStateAcrossCalls) {
  service s(io_, options());
  s.route("next", [n = 0]() mutable { return ++n; });
  s.route("next_blocking", [n = 0]() mutable { return ++n; }, {.blocking = true});
  ASSERT_TRUE(start_ready(s));
  for (int i = 1; i <= 3; ++i) {
    auto r = call("next", value::array());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, i);
    // Sequential blocking calls see one shared handler object, not a copy per call.
    auto b = call("next_blocking", value::array());
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(*b, i);
  }
}

TEST_F(Service, StopLetsCallsInFlightFinishAndRefusesNewOnes) {
  auto g = std::make_shared<gate>(io_);
  service s(io_, options());
  s.route("slow", [g]() -> asio::awaitable<int> {
    co_await g->wait();
    co_return 7;
  });
  s.route("fast", [] { return 1; });
  ASSERT_TRUE(start_ready(s));

  auto slow = start_call(client_, "svc", "slow", value::array(), 10s);
  ASSERT_TRUE(run_until(io_, [&] { return s.in_flight() == 1; }));
  bool drained = false;
  s.stop([&] { drained = true; });
  EXPECT_FALSE(drained);  // a call is still in flight

  auto late = call("fast", value::array());
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, errc::unavailable);
  EXPECT_TRUE(contains(late.error().message, "no route") ||
              contains(late.error().message, "draining"))
      << late.error().message;
  EXPECT_FALSE(slow.done());
  EXPECT_FALSE(drained);

  g->open();
  ASSERT_TRUE(run_until(io_, [&] { return slow.done() && drained; }));
  ASSERT_TRUE(slow.get()) << slow.get().error().message;
  EXPECT_EQ(*slow.get(), 7);
  EXPECT_EQ(s.in_flight(), 0u);
  ASSERT_TRUE(run_until(io_, [&] { return router_.stats().peers == 1; }));  // just the client
}

TEST_F(Service, StopWithNothingInFlightFinishesAndLaterStopsStillRunTheirCallback) {
  service s(io_, options());
  s.route("fast", [] { return 1; });
  ASSERT_TRUE(start_ready(s));

  int first = 0, second = 0;
  s.stop([&] { ++first; });
  ASSERT_TRUE(run_until(io_, [&] { return first == 1; }));
  s.stop([&] { ++second; });  // idempotent, and its callback is not lost
  ASSERT_TRUE(run_until(io_, [&] { return second == 1; }));
  settle(io_);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
}

TEST_F(Service, RouterLossRunsTheDisconnectHandlerWithoutReconnection) {
  auto opts = options();
  opts.reconnect.enabled = false;
  service s(io_, opts);
  s.route("fast", [] { return 1; });
  std::optional<plexus::error> lost;
  s.on_disconnect([&](const plexus::error& e) { lost = e; });
  ASSERT_TRUE(start_ready(s));

  router_.stop();
  EXPECT_FALSE(lost);
  ASSERT_TRUE(run_until(io_, [&] { return lost.has_value(); }));
  EXPECT_EQ(lost->code, errc::unavailable);
}

TEST_F(Service, StartRefusesAMissingNameOrRouterWithoutReconnection) {
  service nameless(io_, options(""));
  auto r = nameless.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);

  service orphan(
      io_,
      {.router = "inproc://nobody-listens-here", .name = "svc", .reconnect = {.enabled = false}});
  auto o = orphan.start();
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error().code, errc::unavailable);
}

}  // namespace
}  // namespace plexus::rpc

namespace plexus::rpc {
namespace {

TEST_F(Service, LogRecordsArePublishedUnderLogAndTheProcessName) {
  std::vector<value> records;
  std::vector<std::string> topics;
  ASSERT_TRUE(client_.subscribe("log.", [&](std::string_view topic, const value& params) {
    topics.emplace_back(topic);
    records.push_back(params.at(0));
  }));
  // In-process taps see the same records (plexus run's log book is one).
  std::vector<std::string> tapped;
  router_.tap("log.", [&](std::string_view topic, const value&) { tapped.emplace_back(topic); });
  service s(io_, options());
  s.route("nop", [] {});
  ASSERT_TRUE(start_ready(s));
  ASSERT_TRUE(client_.call_value("plexus", "ping", value::array(), 2s));  // subscribed by now
  ASSERT_TRUE(s.log("warn", "disk almost full", {{"free_mib", 12}}));
  ASSERT_TRUE(client_.log("info", "from a client"));
  ASSERT_TRUE(run_until(io_, [&] { return records.size() >= 2; }));
  const auto& r = records[0];
  EXPECT_EQ(r["level"], "warn");
  EXPECT_EQ(r["message"], "disk almost full");
  EXPECT_EQ(r["process"], "svc");
  EXPECT_EQ(r["pid"], static_cast<std::int64_t>(::getpid()));
  EXPECT_EQ(r["fields"], (value{{"free_mib", 12}}));
  EXPECT_TRUE(r["time"].is_number_float());
  EXPECT_EQ(records[1]["message"], "from a client");
  EXPECT_EQ(topics, (std::vector<std::string>{"log.svc", "log.test-client"}));
  EXPECT_EQ(tapped, topics);

  auto bad = s.log("loud", "x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("trace, debug, info, warn, error, critical"),
            std::string::npos);
}

TEST_F(Service, RouterMethodsAddedInProcessAnswerThroughPlexus) {
  router_.add_method("double", [](const value& params) -> result<value> {
    if (params.size() != 1 || !params[0].is_number_integer())
      throw remote_error(errc::invalid_argument, "double expects (integer)");
    return value(params[0].get<int>() * 2);
  });
  auto r = client_.call_value("plexus", "double", value::array({21}), 2s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, 42);
  auto bad = client_.call_value("plexus", "double", value::array({"x"}), 2s);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
}

// ---- reconnection (issue 10) -----------------------------------------------------------

TEST(ServiceReconnect, AServiceStartedBeforeTheRouterRegistersWhenItComesAndAnswers) {
  boost::asio::io_context io;
  const auto address = test::next_inproc();
  service s(io, {.router = address, .name = "calc"});
  s.route("add", [](int a, int b) { return a + b; });
  std::vector<link_event> events;
  s.on_link_event([&](link_event e, const plexus::error&) { events.push_back(e); });
  bool ready = false;
  ASSERT_TRUE(s.start([&] { ready = true; }));  // its first attempt found nothing listening
  EXPECT_FALSE(s.connected());
  settle(io);
  EXPECT_FALSE(ready);

  broker::router router(io, {.listen = {address}});
  ASSERT_TRUE(router.start());
  ASSERT_TRUE(run_until(io, [&] { return ready; }));
  EXPECT_TRUE(s.connected());
  EXPECT_EQ(events, std::vector<link_event>{link_event::connected});
  client c(io, {.router = address});
  ASSERT_TRUE(c.connect());
  auto r = test::call_and_wait(io, c, "calc", "add", value::array({1, 2}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, 3);
  s.stop();
  c.close();
}

TEST(ServiceReconnect, AServiceRegistersAgainWithARestartedRouterAndReportsIt) {
  boost::asio::io_context io;
  const auto address = test::next_inproc();
  auto router = std::make_unique<broker::router>(io, broker::router_options{.listen = {address}});
  ASSERT_TRUE(router->start());
  service s(io, {.router = address, .name = "calc"});
  s.route("add", [](int a, int b) { return a + b; });
  std::vector<link_event> events;
  s.on_link_event([&](link_event e, const plexus::error&) { events.push_back(e); });
  bool disconnected = false;
  s.on_disconnect([&](const plexus::error&) { disconnected = true; });
  int ready = 0;
  ASSERT_TRUE(s.start([&] { ++ready; }));
  ASSERT_TRUE(run_until(io, [&] { return ready == 1 && events.size() == 1; }));

  router.reset();  // the router dies
  ASSERT_TRUE(run_until(io, [&] { return events.size() == 2; }));
  EXPECT_FALSE(s.connected());
  router = std::make_unique<broker::router>(io, broker::router_options{.listen = {address}});
  ASSERT_TRUE(router->start());
  ASSERT_TRUE(run_until(io, [&] { return events.size() == 3; }));
  EXPECT_EQ(events, (std::vector<link_event>{link_event::connected, link_event::lost,
                                             link_event::reconnected}));
  EXPECT_TRUE(s.connected());

  // The client reaches the new router directly; the service's registration reached it
  // on the service's own connection before any call of ours needed it, or the call says
  // "no route" and the next one is answered.
  client c(io, {.router = address});
  ASSERT_TRUE(c.connect());
  std::optional<result<value>> r;
  const auto end = std::chrono::steady_clock::now() + test::wait_limit;
  do {
    r = test::call_and_wait(io, c, "calc", "add", value::array({2, 2}));
  } while (!*r && std::chrono::steady_clock::now() < end);
  ASSERT_TRUE(*r) << r->error().message;
  EXPECT_EQ(**r, 4);
  EXPECT_EQ(ready, 1);  // on_ready runs once, not per connection
  EXPECT_FALSE(disconnected);
  s.stop();
  c.close();
}

TEST(ServiceReconnect, StopWhileWaitingForTheRouterFinishesAtOnceAndLeavesTheLoopNoWork) {
  boost::asio::io_context io;
  service s(io, {.router = test::next_inproc(), .name = "calc"});
  s.route("add", [](int a, int b) { return a + b; });
  ASSERT_TRUE(s.start());
  ASSERT_FALSE(s.connected());
  bool stopped = false;
  s.stop([&] { stopped = true; });
  ASSERT_TRUE(run_until(io, [&] { return stopped; }));
  io.restart();
  io.run_for(std::chrono::seconds(5));  // returns at once: no retry timer is left
  EXPECT_TRUE(io.stopped());
}

// The service converts a call's own params by moving out of them, and builds the
// text naming a value only when the conversion fails.
TEST(Convert, MovesOutOfItsOwnParamsAndCopiesConstOnes) {
  const std::string long_text(200, 'a');  // beyond any small-string buffer
  value params = value::array({long_text, value::array({long_text, long_text})});
  const value copy = params;

  int named = 0;
  auto what = [&] {
    ++named;
    return std::string("argument");
  };
  auto kept = detail::convert_value_from<std::string>(copy[0], what);
  ASSERT_TRUE(kept);
  EXPECT_EQ(*kept, long_text);
  EXPECT_EQ(copy[0], long_text);  // const: copied

  auto s = detail::convert_value_from<std::string>(params[0], what);
  auto v = detail::convert_value_from<std::vector<std::string>>(params[1], what);
  ASSERT_TRUE(s && v);
  EXPECT_EQ(*s, long_text);
  EXPECT_EQ(*v, (std::vector<std::string>{long_text, long_text}));
  EXPECT_TRUE(params[0].get_ref<const std::string&>().empty());  // moved out
  EXPECT_TRUE(params[1][0].get_ref<const std::string&>().empty());
  EXPECT_EQ(named, 0);  // no error, no text

  value bad = value::array({1, "two"});
  auto r = detail::convert_value_from<std::vector<int>>(bad, what);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "argument[1]: expected integer, got string");
  EXPECT_EQ(named, 1);
}

}  // namespace
}  // namespace plexus::rpc
