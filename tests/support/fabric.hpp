// A router with clients and services in one process, on one io_context the test drives
// itself (support/wait.hpp): what the router, client and service tests share.
//
//   plexus::test::fabric f;                         // a router on a fresh inproc address
//   ASSERT_TRUE(f.router.start());
//   rpc::service calc(f.io, f.service("calc"));
//   calc.route("add", [](int a, int b) { return a + b; });
//   ASSERT_TRUE(plexus::test::start_ready(f.io, calc));
//   rpc::client c(f.io, f.client());
//   ASSERT_TRUE(c.connect());
//   auto r = plexus::test::call_and_wait(f.io, c, "calc", "add", value::array({2, 3}));
#pragma once

#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "plexus/broker/router.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/rpc/service.hpp"
#include "support/wait.hpp"

namespace plexus::test {

// A fresh inproc address, unique in this process.
inline std::string next_inproc() {
  static int counter = 0;
  return "inproc://test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The eventual outcome of one async_call; safe to drop before the call completes.
struct pending {
  std::shared_ptr<std::optional<result<value>>> out =
      std::make_shared<std::optional<result<value>>>();
  bool done() const { return out->has_value(); }
  result<value>& get() { return **out; }
};

inline pending start_call(rpc::client& c, std::string_view service, std::string_view method,
                          value params, rpc::duration deadline = {}) {
  pending p;
  c.async_call(
      service, method, std::move(params),
      [out = p.out](result<value> r) { out->emplace(std::move(r)); }, deadline);
  return p;
}

// Starts a call, checks it is not answered before the loop runs, and runs the loop
// until it is.
inline result<value> call_and_wait(boost::asio::io_context& io, rpc::client& c,
                                   std::string_view service, std::string_view method, value params,
                                   rpc::duration deadline = {}) {
  auto p = start_call(c, service, method, std::move(params), deadline);
  EXPECT_FALSE(p.done()) << "answered before the loop ran";
  if (!run_until(io, [&] { return p.done(); }))
    return plexus::error(errc::internal, "test: no answer in time");
  return std::move(p.get());
}

// Starts `s` and runs the loop until the router has registered it.
inline testing::AssertionResult start_ready(boost::asio::io_context& io, rpc::service& s) {
  auto ready = std::make_shared<bool>(false);
  if (auto ok = s.start([ready] { *ready = true; }); !ok)
    return testing::AssertionFailure() << "start: " << ok.error().message;
  if (!run_until(io, [&] { return *ready; }))
    return testing::AssertionFailure() << "service " << s.name() << " was never registered";
  return testing::AssertionSuccess();
}

// A router on one loop, not yet started. Declare it first: what runs on its loop must
// die before it.
struct fabric {
  explicit fabric(std::string addr = next_inproc())
      : address(std::move(addr)), router(io, {.listen = {address}}) {}
  fabric(std::string addr, broker::router_options opts)
      : address(std::move(addr)), router(io, with_listen(std::move(opts), address)) {}
  static broker::router_options with_listen(broker::router_options o, const std::string& a) {
    o.listen = {a};
    return o;
  }

  rpc::service_options service(std::string name) const {
    return {.router = address, .name = std::move(name)};
  }
  rpc::client_options client() const { return {.router = address, .name = "test-client"}; }

  boost::asio::io_context io;
  std::string address;
  broker::router router;
};

}  // namespace plexus::test
