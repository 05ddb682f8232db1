#include "plexus/transport/zmq.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <zmq.hpp>

#include "plexus/broker/router.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/rpc/service.hpp"
#include "plexus/transport/auth.hpp"
#include "plexus/wire/message.hpp"
#include "support/bytes.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

// The router's ZeroMQ endpoints against seed-style DEALER peers driven by the test on
// the loop's thread: the test alternates between running the io_context and polling
// its DEALERs, each wait bounded by a deadline.

namespace plexus::transport {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::bytes;

zmq::context_t& ctx() {
  static zmq::context_t c(1);
  return c;
}

bytes encode(const wire::message& m) {
  bytes out;
  wire::encode(out, m);
  return out;
}

class ZmqEndpoint : public ::testing::Test {
 protected:
  void SetUp() override { start({"zmq-frontend+" + front_, "zmq-backend+" + back_}); }

  // Starts the router on native_ and the ZeroMQ `endpoints` (transport/endpoint.hpp).
  void start(std::vector<std::string> endpoints) {
    endpoints.insert(endpoints.begin(), native_);
    router_.emplace(io_, broker::router_options{.listen = std::move(endpoints)});
    ASSERT_TRUE(router_->start());
  }

  zmq::socket_t dealer(const std::string& address, const std::string& identity = "") {
    zmq::socket_t s(ctx(), zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::probe_router, 1);
    if (!identity.empty()) s.set(zmq::sockopt::routing_id, identity);
    s.connect(address);
    return s;
  }

  // Runs the loop until the DEALER has a whole message, or the deadline passes.
  std::optional<std::vector<zmq::message_t>> receive(zmq::socket_t& s,
                                                     std::chrono::milliseconds limit = 3000ms) {
    std::vector<zmq::message_t> parts;
    const bool whole = run_until(
        [&] {
          zmq::message_t m;
          if (!s.recv(m, zmq::recv_flags::dontwait)) return false;
          bool more = m.more();
          parts.push_back(std::move(m));
          while (more) {
            zmq::message_t p;
            (void)s.recv(p);
            more = p.more();
            parts.push_back(std::move(p));
          }
          return true;
        },
        limit);
    if (!whole) return std::nullopt;
    return parts;
  }

  // The loop, with the DEALERs' sockets looked at every 2 ms: they are not on the loop.
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = test::wait_limit) {
    return test::run_until(io_, std::move(done), limit, 2ms);
  }

  // Connects `c` unless it is connected, then waits until the router lists `name` (a
  // backend DEALER registers by connecting).
  bool registered(rpc::client& c, const std::string& name) {
    if (!c.connected() && !c.connect()) return false;
    return run_until([&] {
      auto r = c.call_value("plexus", "services", value::array(), 1s);
      if (!r) return false;
      for (const auto& s : *r)
        if (s["name"] == name) return true;
      return false;
    });
  }

  asio::io_context io_;
  test::temp_dir dir_;
  std::string native_ = "ipc://" + dir_.path() + "/native.sock";
  std::string front_ = "ipc://" + dir_.path() + "/front.sock";
  std::string back_ = "ipc://" + dir_.path() + "/back.sock";
  std::optional<broker::router> router_;
};

TEST_F(ZmqEndpoint, SeedClientCallsANativeServiceThroughTheFrontend) {
  rpc::service svc(io_, {.router = native_, .name = "calc"});
  svc.route("add", [](int a, int b) { return a + b; });
  bool ready = false;
  ASSERT_TRUE(svc.start([&] { ready = true; }));
  ASSERT_TRUE(run_until([&] { return ready; }));

  auto client = dealer(front_);
  auto req = encode(wire::request{42, "add", {20, 22}});
  client.send(zmq::str_buffer("calc"), zmq::send_flags::sndmore);
  client.send(zmq::buffer(req));
  auto reply = receive(client);
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->size(), 2u);  // [sender_id, payload], as the seed's Client expects
  auto m = wire::decode({static_cast<const std::uint8_t*>((*reply)[1].data()), (*reply)[1].size()});
  ASSERT_TRUE(m);
  const auto& resp = std::get<wire::response>(*m);
  EXPECT_EQ(resp.msgid, 42u);
  EXPECT_FALSE(resp.error.has_value());
  EXPECT_EQ(resp.result, 42);
}

TEST_F(ZmqEndpoint, SeedClientGetsUnavailableForAnUnknownService) {
  auto client = dealer(front_);
  auto req = encode(wire::request{7, "x", value::array()});
  client.send(zmq::str_buffer("nosuch"), zmq::send_flags::sndmore);
  client.send(zmq::buffer(req));
  auto reply = receive(client);
  ASSERT_TRUE(reply);
  auto m =
      wire::decode({static_cast<const std::uint8_t*>(reply->back().data()), reply->back().size()});
  ASSERT_TRUE(m);
  const auto& resp = std::get<wire::response>(*m);
  EXPECT_EQ(resp.msgid, 7u);
  ASSERT_TRUE(resp.error.has_value());
  EXPECT_EQ(resp.error->code, errc::unavailable);
  EXPECT_EQ(resp.error->message, "no route to nosuch");
}

// A seed-style service: answers every request with its first argument.
void serve_one(zmq::socket_t& s, std::vector<zmq::message_t>& in) {
  ASSERT_EQ(in.size(), 2u);  // [sender_id, payload]
  auto m = wire::decode({static_cast<const std::uint8_t*>(in[1].data()), in[1].size()});
  ASSERT_TRUE(m);
  const auto& req = std::get<wire::request>(*m);
  auto resp = encode(wire::response{req.msgid, std::nullopt, req.params.at(0)});
  s.send(in[0], zmq::send_flags::sndmore);
  s.send(zmq::buffer(resp));
}

TEST_F(ZmqEndpoint, NativeClientCallsASeedServiceRegisteredByItsIdentity) {
  auto svc = dealer(back_, "zsvc");
  rpc::client c(io_, {.router = native_});
  ASSERT_TRUE(registered(c, "zsvc"));

  std::optional<result<value>> out;
  c.async_call("zsvc", "echo", value::array({"héllo"}),
               [&](result<value> r) { out = std::move(r); });
  auto in = receive(svc);
  ASSERT_TRUE(in);
  serve_one(svc, *in);
  ASSERT_TRUE(run_until([&] { return out.has_value(); }));
  ASSERT_TRUE(*out) << out->error().message;
  EXPECT_EQ(**out, "héllo");
}

TEST_F(ZmqEndpoint, ClosedSeedServiceFailsItsCallersAtOnce) {
  auto svc = dealer(back_, "zsvc");
  rpc::client c(io_, {.router = native_});
  ASSERT_TRUE(registered(c, "zsvc"));

  std::optional<result<value>> out;
  c.async_call(
      "zsvc", "hang", value::array({1}), [&](result<value> r) { out = std::move(r); }, 5s);
  auto in = receive(svc);  // the service has the call; it will never answer
  ASSERT_TRUE(in);
  EXPECT_FALSE(out.has_value());
  const auto closed = std::chrono::steady_clock::now();
  svc.close();
  ASSERT_TRUE(run_until([&] { return out.has_value(); }, 4s));
  EXPECT_LT(std::chrono::steady_clock::now() - closed, 1s);
  ASSERT_FALSE(*out);
  EXPECT_EQ(out->error().code, errc::unavailable);
  // Its registration is gone too.
  auto again = c.call_value("zsvc", "echo", value::array({1}), 2s);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "no route to zsvc");
}

TEST_F(ZmqEndpoint, ReconnectedIdentityServesAgain) {
  rpc::client c(io_, {.router = native_});
  ASSERT_TRUE(c.connect());
  {
    auto first = dealer(back_, "zsvc");
    ASSERT_TRUE(registered(c, "zsvc"));
  }
  auto second = dealer(back_, "zsvc");
  std::optional<result<value>> out;
  // Retry until the new connection is registered (the old one's disconnect and the
  // new one's probe may arrive in either order).
  ASSERT_TRUE(run_until([&] {
    out.reset();
    c.async_call(
        "zsvc", "echo", value::array({5}), [&](result<value> r) { out = std::move(r); }, 2s);
    auto in = receive(second, 200ms);
    if (!in) {
      run_until([&] { return out.has_value(); });
      return false;
    }
    serve_one(second, *in);
    return run_until([&] { return out.has_value(); }) && out->has_value();
  }));
  EXPECT_EQ(**out, 5);
}

TEST(ZmqListen, BadEndpointIsInvalidArgumentAndBusyAddressIsUnavailable) {
  asio::io_context io;
  auto bad = listen_zmq(io, "nonsense://x", zmq_role::frontend);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);

  auto first = listen_zmq(io, "tcp://127.0.0.1:*", zmq_role::frontend);
  ASSERT_TRUE(first) << first.error().message;
  const auto address = first->address();
  EXPECT_EQ(address.rfind("tcp://127.0.0.1:", 0), 0u) << address;
  auto second = listen_zmq(io, address, zmq_role::frontend);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::unavailable);
}

// libzmq unlinks whatever is at an ipc path before it binds: plexus checks first.
TEST(ZmqListen, IpcPathIsCheckedAsForTheNativeListener) {
  asio::io_context io;
  test::temp_dir dir;
  const auto file = dir.path() + "/file.sock";
  {
    std::FILE* f = std::fopen(file.c_str(), "we");
    ASSERT_NE(f, nullptr);
    std::fputs("precious", f);
    std::fclose(f);
  }
  auto on_file = listen_zmq(io, "ipc://" + file, zmq_role::frontend);
  ASSERT_FALSE(on_file);
  EXPECT_EQ(on_file.error().code, errc::unavailable);
  EXPECT_NE(on_file.error().message.find(file + " exists and is a regular file"), std::string::npos)
      << on_file.error().message;
  EXPECT_TRUE(std::filesystem::is_regular_file(file));
  auto on_file_sub = bind_zmq_subscribers(io, "ipc://" + file);
  ASSERT_FALSE(on_file_sub);
  EXPECT_TRUE(std::filesystem::is_regular_file(file));

  // A live one is in use, not taken over; the first keeps its socket file, owner only.
  const auto live = "ipc://" + dir.path() + "/live.sock";
  auto first = listen_zmq(io, live, zmq_role::backend);
  ASSERT_TRUE(first) << first.error().message;
  auto second = listen_zmq(io, live, zmq_role::backend);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::unavailable);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
  struct stat st {};
  ASSERT_EQ(::lstat((dir.path() + "/live.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Publish/subscribe with seed-style PUB and SUB nodes.
class ZmqPubSub : public ZmqEndpoint {
 protected:
  void SetUp() override { start({"zmq-pub+" + pubs_, "zmq-sub+" + subs_}); }
  std::string pubs_ = "ipc://" + dir_.path() + "/publishers.sock";
  std::string subs_ = "ipc://" + dir_.path() + "/subscribers.sock";
};

TEST_F(ZmqPubSub, SeedPublisherReachesNativeAndSeedSubscribers) {
  rpc::client native(io_, {.router = native_});
  ASSERT_TRUE(native.connect());
  std::vector<std::pair<std::string, value>> got;
  ASSERT_TRUE(native.subscribe(
      "temp", [&](std::string_view t, const value& p) { got.emplace_back(std::string(t), p); }));
  zmq::socket_t sub(ctx(), zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "temp");
  sub.connect(subs_);
  zmq::socket_t pub(ctx(), zmq::socket_type::pub);
  pub.set(zmq::sockopt::linger, 0);
  pub.connect(pubs_);

  // As the seed's Client over PUB sends it: [topic = method, notification].
  const auto note = encode(wire::notification{"temp.c", value::array({21.5})});
  std::optional<std::vector<zmq::message_t>> seen_by_sub;
  // PUB/SUB connections come up asynchronously: publish until both have one.
  ASSERT_TRUE(run_until(
      [&] {
        pub.send(zmq::str_buffer("temp.c"), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(note));
        if (!seen_by_sub) seen_by_sub = receive(sub, 20ms);
        return !got.empty() && seen_by_sub.has_value();
      },
      5000ms));
  EXPECT_EQ(got[0].first, "temp.c");
  EXPECT_EQ(got[0].second, value::array({21.5}));
  ASSERT_EQ(seen_by_sub->size(), 2u);  // [topic, notification], as the seed's SUB service reads
  EXPECT_EQ((*seen_by_sub)[0].to_string(), "temp.c");
  EXPECT_EQ((*seen_by_sub)[1].to_string(), std::string(note.begin(), note.end()));
}

TEST_F(ZmqPubSub, NativePublicationReachesSeedSubscriberOfItsPrefixOnly) {
  rpc::client native(io_, {.router = native_});
  ASSERT_TRUE(native.connect());
  zmq::socket_t sub(ctx(), zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "alert");
  sub.connect(subs_);
  std::optional<std::vector<zmq::message_t>> first;
  ASSERT_TRUE(run_until(
      [&] {
        EXPECT_TRUE(native.publish("alert.fire", value::array({"hall"})));
        first = receive(sub, 20ms);
        return first.has_value();
      },
      5000ms));
  // Subscribed: a topic outside the prefix is filtered out, the next one arrives.
  ASSERT_TRUE(native.publish("weather", value::array({1})));
  ASSERT_TRUE(native.publish("alert.end", value::array()));
  std::optional<std::vector<zmq::message_t>> next;
  ASSERT_TRUE(run_until([&] {
    while (auto m = receive(sub, 5ms)) {
      if ((*m)[0].to_string() != "alert.fire") {  // repeats of the probe are fine
        next = std::move(m);
        return true;
      }
    }
    return false;
  }));
  EXPECT_EQ((*next)[0].to_string(), "alert.end");
  auto m = wire::decode({static_cast<const std::uint8_t*>((*next)[1].data()), (*next)[1].size()});
  ASSERT_TRUE(m);
  EXPECT_EQ(std::get<wire::notification>(*m).method, "alert.end");
}

TEST(ZmqPubSubBind, BusyAddressIsUnavailable) {
  asio::io_context io;
  auto first = bind_zmq_subscribers(io, "tcp://127.0.0.1:*");
  ASSERT_TRUE(first) << first.error().message;
  auto second = bind_zmq_publishers(io, (*first)->address());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::unavailable);
}

// ---- CURVE: ZeroMQ tcp endpoints of a router with a secret (transport/auth.hpp) -------
namespace curve {

constexpr const char* secret = "the zeromq endpoints' secret, long enough";

class ZmqCurve : public ZmqEndpoint {
 protected:
  void SetUp() override {
    broker::router_options o{.listen = {native_, "zmq-frontend+tcp://127.0.0.1:*"}};
    o.transport.secret = secret;
    router_.emplace(io_, std::move(o));
    ASSERT_TRUE(router_->start());
    front_tcp_ = router_->addresses().at(1);
  }

  // A DEALER on the frontend that asks the router's built-in ping; true if answered
  // within `limit`.
  bool pinged(zmq::socket_t& s, std::chrono::milliseconds limit) {
    s.set(zmq::sockopt::linger, 0);
    s.connect(front_tcp_);
    auto req = encode(wire::request{1, "ping", value::array()});
    s.send(zmq::str_buffer("plexus"), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    s.send(zmq::buffer(req), zmq::send_flags::dontwait);
    auto reply = receive(s, limit);
    if (!reply) return false;
    auto m = wire::decode(
        {static_cast<const std::uint8_t*>(reply->back().data()), reply->back().size()});
    return m && std::get<wire::response>(*m).result == "pong";
  }

  std::string front_tcp_;
};

TEST_F(ZmqCurve, AClientWithTheDerivedKeysGetsAnAnswer) {
  const auto k = curve_keys(secret);
  zmq::socket_t s(ctx(), zmq::socket_type::dealer);
  s.set(zmq::sockopt::curve_serverkey, k.server_public);
  s.set(zmq::sockopt::curve_publickey, k.client_public);
  s.set(zmq::sockopt::curve_secretkey, k.client_secret);
  EXPECT_TRUE(pinged(s, 5000ms));
}

TEST_F(ZmqCurve, AClientWithOtherKeysOrNoneGetsNothing) {
  const auto k = curve_keys(secret);
  char pub[41], sec[41];
  ASSERT_EQ(zmq_curve_keypair(pub, sec), 0);
  zmq::socket_t other(ctx(), zmq::socket_type::dealer);
  other.set(zmq::sockopt::curve_serverkey, k.server_public);   // knows the server...
  other.set(zmq::sockopt::curve_publickey, std::string(pub));  // ...but not the client key
  other.set(zmq::sockopt::curve_secretkey, std::string(sec));
  EXPECT_FALSE(pinged(other, 500ms));
  zmq::socket_t plain(ctx(), zmq::socket_type::dealer);
  EXPECT_FALSE(pinged(plain, 500ms));
  EXPECT_EQ(router_->stats().forwarded, 0u);
}

TEST(ZmqTcp, BeyondLoopbackWithoutASecretIsRefused) {
  asio::io_context io;
  for (const std::string a : {"tcp://0.0.0.0:*", "tcp://*:*", "tcp://eth0:*"}) {
    auto l = listen_zmq(io, a, zmq_role::frontend);
    ASSERT_FALSE(l) << a;
    EXPECT_EQ(l.error().code, errc::permission_denied) << l.error().message;
    EXPECT_NE(l.error().message.find("PLEXUS_SECRET"), std::string::npos) << l.error().message;
    auto in = bind_zmq_publishers(io, a);
    ASSERT_FALSE(in);
    EXPECT_EQ(in.error().code, errc::permission_denied);
    auto out = bind_zmq_subscribers(io, a);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, errc::permission_denied);
  }
  EXPECT_TRUE(listen_zmq(io, "tcp://127.0.0.1:*", zmq_role::frontend));
  options o;
  o.secret = secret;
  auto any = listen_zmq(io, "tcp://0.0.0.0:*", zmq_role::backend, o);
  EXPECT_TRUE(any) << any.error().message;
}

}  // namespace curve
}  // namespace
}  // namespace plexus::transport
