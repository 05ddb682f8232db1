#include "plexus/gateway/gateway.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>

#include "support/fabric.hpp"
#include "support/http.hpp"
#include "support/loop.hpp"

namespace plexus::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using rpc::http_request;
using rpc::http_response;
using test::http_client;

class Gateway : public testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(f_.router.start()); }
  // Starts the gateway on port 0 with `o`, over the fabric's inproc address.
  void start(gateway_options o = {}) {
    o.listen = "127.0.0.1:0";
    gw_.emplace(f_.io, f_.router, o, f_.address);
    auto ok = gw_->start();
    ASSERT_TRUE(ok) << ok.error().message;
    const auto url = gw_->url();
    port_ = static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
  }
  // Runs the loop on a thread while `f` talks HTTP from this one.
  template <class F>
  void with_loop(F f) {
    test::loop_thread loop(f_.io);
    f();
  }
  // Runs `f` on the loop (while with_loop runs it) and waits for it.
  template <class F>
  void on_loop(F f) {
    std::promise<void> done;
    asio::post(f_.io, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  test::fabric f_;
  std::optional<gateway> gw_;
  std::uint16_t port_ = 0;
};

TEST_F(Gateway, ARouteGetsVerbPathParamsQueryHeadersAndBodyAndItsResponseComesBack) {
  rpc::service svc(f_.io, f_.service("things"));
  svc.http("POST", "/api/things/{id}/{name}", [](const http_request& r) {
    http_response out = http_response::json({{"verb", r.verb},
                                             {"path", r.path},
                                             {"id", r.param("id")},
                                             {"name", r.param("name")},
                                             {"q", r.query_param("q")},
                                             {"query", r.query},
                                             {"custom", r.header("x-custom")},
                                             {"hop", r.header("x-hop")},
                                             {"body", r.body}},
                                            201);
    out.header("x-answer", "42").header("connection", "close").header("x-bad", "a\r\nb: c");
    return out;
  });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  with_loop([&] {
    http_client c(port_);
    auto r = c.request(http::verb::post, "/api/things/7/a%20b?q=x+y&z=1", "payload",
                       {{"X-Custom", "yes"}, {"Connection", "keep-alive, X-Hop"}, {"X-Hop", "1"}});
    EXPECT_EQ(r.result_int(), 201);
    EXPECT_EQ(r["x-answer"], "42");
    EXPECT_EQ(r["x-bad"], "");    // a field that would split the response is dropped
    EXPECT_TRUE(r.keep_alive());  // the module's "connection: close" is hop-by-hop
    EXPECT_EQ(r[http::field::content_type], "application/json");
    auto v = test::json_of(r);
    EXPECT_EQ(v["verb"], "POST");
    EXPECT_EQ(v["path"], "/api/things/7/a%20b");
    EXPECT_EQ(v["id"], "7");
    EXPECT_EQ(v["name"], "a b");
    EXPECT_EQ(v["q"], "x y");
    EXPECT_EQ(v["query"], "q=x+y&z=1");
    EXPECT_EQ(v["custom"], "yes");
    EXPECT_EQ(v["hop"], "");  // named by Connection: ends at the gateway
    EXPECT_EQ(v["body"], "payload");
    // The same connection serves the next request.
    r = c.request(http::verb::post, "/api/things/8/b", "");
    EXPECT_EQ(test::json_of(r)["id"], "8");
  });
}

TEST_F(Gateway, UnknownRouteIs404AndAnotherVerbIs405WithAllow) {
  rpc::service svc(f_.io, f_.service("things"));
  svc.http("GET", "/api/x", [](http_request) { return http_response::text("x"); });
  svc.http("PUT", "/api/x", [](http_request) { return http_response::text("x"); });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  with_loop([&] {
    http_client c(port_);
    auto r = c.request(http::verb::get, "/api/nothing");
    EXPECT_EQ(r.result_int(), 404);
    EXPECT_EQ(test::json_of(r)["code"], "not_found");
    r = c.request(http::verb::delete_, "/api/x");
    EXPECT_EQ(r.result_int(), 405);
    EXPECT_EQ(r[http::field::allow], "GET, PUT");
    r = c.request(http::verb::get, "/api/x");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "x");
    EXPECT_EQ(r[http::field::content_type], "text/plain; charset=utf-8");
  });
}

TEST_F(Gateway, BodyUrlAndHeaderBudgetsAre413And414And431) {
  rpc::service svc(f_.io, f_.service("things"));
  int calls = 0;
  svc.http("POST", "/api/x", [&](http_request) {
    ++calls;
    return http_response::text("x");
  });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start({.max_body_bytes = 1000, .max_url_bytes = 200, .max_header_bytes = 1000});
  with_loop([&] {
    {
      http_client c(port_);
      auto r = c.request(http::verb::post, "/api/x", std::string(1001, 'b'));
      EXPECT_EQ(r.result_int(), 413);
      EXPECT_EQ(test::json_of(r)["code"], "resource_exhausted");
      EXPECT_FALSE(r.keep_alive());
      EXPECT_TRUE(c.closed_by_peer());
    }
    {
      http_client c(port_);  // no content-length: chunked, over the budget as it arrives
      c.send_raw("POST /api/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" +
                 std::string(1001, 'b') + "\r\n0\r\n\r\n");
      EXPECT_EQ(c.read().result_int(), 413);
    }
    {
      http_client c(port_);
      auto r = c.request(http::verb::post, "/api/x?" + std::string(300, 'q'), "");
      EXPECT_EQ(r.result_int(), 414);
    }
    {
      http_client c(port_);
      auto r = c.request(http::verb::post, "/api/x", "", {{"X-Big", std::string(1100, 'h')}});
      EXPECT_EQ(r.result_int(), 431);
    }
    {
      http_client c(port_);  // over header + url together: Beast's own limit
      auto r = c.request(http::verb::post, "/api/x", "", {{"X-Big", std::string(5000, 'h')}});
      EXPECT_EQ(r.result_int(), 431);
    }
    {
      http_client c(port_);
      auto r = c.request(http::verb::post, "/api/x", std::string(1000, 'b'));
      EXPECT_EQ(r.result_int(), 200);
    }
  });
  EXPECT_EQ(calls, 1);  // only the request within every budget reached the module
}

TEST_F(Gateway, UnreadableHttpIs400AndTheConnectionEnds) {
  start();
  with_loop([&] {
    http_client c(port_);
    c.send_raw("GET /api/healthz HTTP/1.1\r\nHost h\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 400);
    EXPECT_TRUE(c.closed_by_peer());
  });
}

TEST_F(Gateway, AHandlerErrorIs500WithItsMessageAndCode) {
  rpc::service svc(f_.io, f_.service("things"));
  svc.http("GET", "/api/fail", [](http_request) -> http_response {
    throw remote_error(errc::invalid_argument, "no such thing");
  });
  svc.http("GET", "/api/garbage", [](http_request) {
    return http_response{.status = 200, .headers = {}, .body = "fine"};
  });
  svc.route_raw("http GET /api/notaresponse", "",
                [](value&&) -> result<value> { return value(5); });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  with_loop([&] {
    http_client c(port_);
    auto r = c.request(http::verb::get, "/api/fail");
    EXPECT_EQ(r.result_int(), 500);
    auto v = test::json_of(r);
    EXPECT_EQ(v["code"], "invalid_argument");
    EXPECT_EQ(v["message"], "no such thing");
    EXPECT_EQ(c.request(http::verb::get, "/api/garbage").body(), "fine");
  });
}

TEST_F(Gateway, ARouteAnsweringLaterThanItsDeadlineIs504AndBuiltInsDoNotWaitForIt) {
  rpc::service svc(f_.io, f_.service("slow"));
  auto g = std::make_shared<test::gate>(f_.io);
  svc.http("GET", "/api/slow",
           [g](http_request) -> asio::awaitable<http_response> {
             co_await g->wait();
             co_return http_response::text("late");
           },
           {.deadline = std::chrono::milliseconds(300)});
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  with_loop([&] {
    http_client slow(port_);
    slow.send_raw("GET /api/slow HTTP/1.1\r\nHost: h\r\n\r\n");
    // Meanwhile another connection is answered at once.
    http_client quick(port_);
    EXPECT_EQ(quick.request(http::verb::get, "/api/healthz").result_int(), 200);
    auto r = slow.read();
    EXPECT_EQ(r.result_int(), 504);
    EXPECT_EQ(test::json_of(r)["code"], "deadline_exceeded");
  });
}

TEST_F(Gateway, ASlowClientDoesNotDelayAnother) {
  rpc::service svc(f_.io, f_.service("things"));
  svc.http("GET", "/api/x", [](http_request) { return http_response::text("x"); });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  with_loop([&] {
    http_client stuck(port_);
    stuck.send_raw("GET /api/x HTTP/1.1\r\nHost: h\r\nX-Half: ");  // and nothing more
    http_client other(port_);
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(other.request(http::verb::get, "/api/x").body(), "x");
  });
}

TEST_F(Gateway, PipelinedRequestsAreAnsweredInOrder) {
  rpc::service svc(f_.io, f_.service("things"));
  svc.http("GET", "/api/echo/{n}",
           [](const http_request& r) { return http_response::text(std::string(r.param("n"))); });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  with_loop([&] {
    http_client c(port_);
    std::string batch;
    for (int i = 0; i < 5; ++i)
      batch += "GET /api/echo/" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n";
    c.send_raw(batch);
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(c.read().body(), std::to_string(i));
  });
}

TEST_F(Gateway, AServiceThatIsGoneIs503WithRetryAfterAndItsDeathMidCallToo) {
  auto svc = std::make_unique<rpc::service>(f_.io, f_.service("things"));
  auto g = std::make_shared<test::gate>(f_.io);
  svc->http("GET", "/api/hang", [g](http_request) -> asio::awaitable<http_response> {
    co_await g->wait();
    co_return http_response::text("never");
  });
  ASSERT_TRUE(test::start_ready(f_.io, *svc));
  start();
  with_loop([&] {
    http_client c(port_);
    c.send_raw("GET /api/hang HTTP/1.1\r\nHost: h\r\n\r\n");
    // The call is in the service when its connection ends (a process dying).
    ASSERT_TRUE(test::eventually([&] {
      bool busy = false;
      on_loop([&] { busy = svc->in_flight() == 1; });
      return busy;
    }));
    const auto t0 = std::chrono::steady_clock::now();
    on_loop([&] { svc.reset(); });
    auto r = c.read();
    EXPECT_EQ(r.result_int(), 503);
    EXPECT_EQ(r[http::field::retry_after], "1");
    EXPECT_EQ(test::json_of(r)["code"], "unavailable");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    // The route stays known while nobody serves it.
    r = c.request(http::verb::get, "/api/hang");
    EXPECT_EQ(r.result_int(), 503);
    EXPECT_EQ(r[http::field::retry_after], "1");
  });
}

TEST_F(Gateway, ADuplicateRouteEndsTheSecondServiceWithBothDeclarations) {
  rpc::service first(f_.io, f_.service("first"));
  const int first_line = __LINE__ + 1;
  first.http("GET", "/api/x/{id}", [](http_request) { return http_response::text("1"); });
  ASSERT_TRUE(test::start_ready(f_.io, first));
  rpc::service second(f_.io, f_.service("second"));
  const int second_line = __LINE__ + 1;
  second.http("GET", "/api/x/{other}", [](http_request) { return http_response::text("2"); });
  std::optional<plexus::error> ended;
  second.on_disconnect([&](const plexus::error& e) { ended = e; });
  ASSERT_TRUE(second.start());
  ASSERT_TRUE(test::run_until(f_.io, [&] { return ended.has_value(); }));
  const auto& m = ended->message;
  EXPECT_NE(m.find("gateway_test.cpp:" + std::to_string(first_line)), std::string::npos) << m;
  EXPECT_NE(m.find("gateway_test.cpp:" + std::to_string(second_line)), std::string::npos) << m;
  EXPECT_NE(m.find("duplicate route"), std::string::npos) << m;
  EXPECT_EQ(f_.router.workers("second"), 0u);
  EXPECT_EQ(f_.router.match_http("GET", "/api/x/1").route.service, "first");
}

TEST_F(Gateway, BuiltInsAnswerHealthzRoutesAndAddedEndpoints) {
  rpc::service svc(f_.io, f_.service("things"));
  svc.http("GET", "/api/x", [](http_request) { return http_response::text("x"); });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  gw_->add_endpoint("/api/processes", [] { return value::array({"p"}); });
  with_loop([&] {
    http_client c(port_);
    auto r = c.request(http::verb::get, "/api/healthz");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(test::json_of(r)["status"], "ok");
    auto routes = test::json_of(c.request(http::verb::get, "/api/routes"));
    ASSERT_EQ(routes.size(), 1u);
    EXPECT_EQ(routes[0]["pattern"], "/api/x");
    EXPECT_EQ(routes[0]["service"], "things");
    EXPECT_EQ(routes[0]["replicas"], 1);
    EXPECT_NE(routes[0]["where"].get<std::string>().find("gateway_test.cpp:"), std::string::npos);
    EXPECT_EQ(test::json_of(c.request(http::verb::get, "/api/processes")), value::array({"p"}));
    r = c.request(http::verb::post, "/api/healthz");
    EXPECT_EQ(r.result_int(), 405);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD");
    r = c.request(http::verb::head, "/api/healthz");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "");
    EXPECT_GT(std::stoi(std::string(r[http::field::content_length])), 0);
  });
  const auto s = gw_->stats();
  EXPECT_EQ(s.requests, 5u);
  EXPECT_EQ(s.responses_2xx, 4u);
  EXPECT_EQ(s.responses_4xx, 1u);
}

TEST_F(Gateway, ABadListenAddressOrABusyPortIsAClearError) {
  gateway bad(f_.io, f_.router, {.listen = "localhost"}, f_.address);
  auto r = bad.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  gateway first(f_.io, f_.router, {.listen = "127.0.0.1:0"}, f_.address);
  ASSERT_TRUE(first.start());
  const auto url = first.url();
  gateway second(f_.io, f_.router, {.listen = url.substr(std::string("http://").size())},
                 f_.address);
  r = second.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_NE(r.error().message.find("in use"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace plexus::gateway

namespace plexus::gateway {
namespace {

TEST_F(Gateway, MetricsCountRequestsByRouteAndStatusWithLatencyHistograms) {
  rpc::service svc(f_.io, f_.service("things"));
  svc.http("GET", "/api/x/{id}", [](http_request) { return http_response::text("x"); });
  ASSERT_TRUE(test::start_ready(f_.io, svc));
  start();
  gw_->add_metrics([](std::string& out) { append_metric(out, "extra_metric", {}, 7); });
  std::string text;
  with_loop([&] {
    test::http_client c(port_);
    EXPECT_EQ(c.request(http::verb::get, "/api/x/1").result_int(), 200);
    EXPECT_EQ(c.request(http::verb::get, "/api/x/2").result_int(), 200);
    EXPECT_EQ(c.request(http::verb::get, "/nowhere").result_int(), 404);
    EXPECT_EQ(c.request(http::verb::post, "/api/x/1").result_int(), 405);
    auto r = c.request(http::verb::get, "/metrics");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
    text = r.body();
  });
  for (const char* line : {
           "plexus_http_requests_total{route=\"GET /api/x/{id}\",status=\"200\"} 2\n",
           "plexus_http_requests_total{route=\"(no route)\",status=\"404\"} 1\n",
           "plexus_http_requests_total{route=\"(wrong verb)\",status=\"405\"} 1\n",
           "plexus_http_request_duration_seconds_bucket{route=\"GET /api/x/{id}\",le=\"+Inf\"} 2\n",
           "plexus_http_request_duration_seconds_count{route=\"GET /api/x/{id}\"} 2\n",
           "# TYPE plexus_http_request_duration_seconds histogram\n",
           "plexus_http_connections 1\n",
           "extra_metric 7\n",
       })
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

TEST(AppendMetric, EscapesLabelValues) {
  std::string out;
  append_metric(out, "m", {{"a", "x\"y\\z\nw"}, {"b", ""}}, 1.5);
  EXPECT_EQ(out, "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 1.5\n");
}

}  // namespace
}  // namespace plexus::gateway

namespace plexus::gateway {
namespace {

TEST_F(Gateway, AnEventStreamSendsItsBacklogThenLiveEventsAndEndsWhenTheClientGoes) {
  start();
  gateway::event_send live;
  int closed = 0;
  gw_->add_event_stream(
      "/api/logs",
      [&](std::string_view query, gateway::event_send send) -> result<std::function<void()>> {
        if (query == "bad") return plexus::error(errc::invalid_argument, "bad query");
        EXPECT_TRUE(send("data: backlog\n\n"));
        live = std::move(send);
        return std::function<void()>([&] { ++closed; });
      });
  with_loop([&] {
    {
      test::http_client c(port_);
      auto r = c.request(http::verb::get, "/api/logs?bad");
      EXPECT_EQ(r.result_int(), 400);
      EXPECT_EQ(test::json_of(r)["message"], "bad query");
    }
    test::http_client c(port_);
    c.send_raw("GET /api/logs?process=x HTTP/1.1\r\nHost: h\r\n\r\n");
    auto got = c.read_until("backlog");
    EXPECT_NE(got.find("HTTP/1.1 200 OK"), std::string::npos) << got;
    EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos) << got;
    EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
    bool sent = false;
    on_loop([&] { sent = live("data: live 1\n\n"); });
    EXPECT_TRUE(sent);
    got = c.read_until("live 1");
    EXPECT_NE(got.find("data: live 1\n\n"), std::string::npos) << got;
  });  // the client's socket is closed here, then the loop stops
  // The client left: the next send says so, and the closer has run (once).
  ASSERT_TRUE(test::run_until(f_.io, [&] { return closed == 1 || !live("data: x\n\n"); }));
  ASSERT_TRUE(test::run_until(f_.io, [&] { return closed == 1; }));
  EXPECT_FALSE(live("data: after\n\n"));
  gw_.reset();
  EXPECT_EQ(closed, 1);
}

}  // namespace
}  // namespace plexus::gateway
