// examples/web: the demo's HTTP module. Declares routes that `plexus run`'s gateway
// serves (docs/gateway.md):
//
//   GET  /api/counter/{id}   {"id": "a", "count": 3}
//   POST /api/counter/{id}   adds 1 (or ?by=N) and answers the same
//   GET  /api/hello          a line of text naming this process
//
//   plexus run                                  # the demo runs web with the others
//   curl -X POST http://127.0.0.1:8080/api/counter/a
//
// Counters live in this process: a restart starts them again from 0. With more than
// one replica each keeps its own (the gateway spreads requests like calls).

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <charconv>
#include <iostream>
#include <map>

#include "plexus/rpc/service.hpp"

namespace asio = boost::asio;
using plexus::value;
using plexus::rpc::http_request;
using plexus::rpc::http_response;

int main(int argc, char** argv) {
  CLI::App app{"web — the demo's HTTP routes, served through plexus run's gateway"};
  plexus::rpc::service_options opts;
  opts.name = "web";
  app.add_option("--router", opts.router, "router address")->capture_default_str();
  app.add_option("--name", opts.name, "service name")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  asio::io_context io(1);
  plexus::rpc::service web(io, opts);
  // At most this many counters: a client naming new ones without end must not grow
  // the process without end.
  constexpr std::size_t max_counters = 10000;
  std::map<std::string, std::int64_t, std::less<>> counters;
  auto counter = [&](const http_request& r) {
    const auto id = r.param("id");
    auto it = counters.find(id);
    return value{{"id", id}, {"count", it == counters.end() ? 0 : it->second}};
  };
  web.http("GET", "/api/counter/{id}",
           [&](const http_request& r) { return http_response::json(counter(r)); });
  web.http("POST", "/api/counter/{id}", [&](const http_request& r) {
    std::int64_t by = 1;
    if (const auto text = r.query_param("by"); !text.empty()) {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), by);
      if (ec != std::errc() || end != text.data() + text.size())
        return http_response::json(
            {{"message", "by must be an integer"}, {"code", "invalid_argument"}}, 400);
    }
    const auto id = std::string(r.param("id"));
    if (!counters.contains(id) && counters.size() >= max_counters)
      return http_response::json(
          {{"message", "too many counters (" + std::to_string(max_counters) + ")"},
           {"code", "resource_exhausted"}},
          409);
    counters[id] += by;
    return http_response::json(counter(r));
  });
  web.http("GET", "/api/hello", [](const http_request&) {
    return http_response::text("hello from web, pid " + std::to_string(::getpid()) + "\n");
  });

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) web.stop([&] { io.stop(); });
  });
  int rc = 0;
  web.on_disconnect([&](const plexus::error& e) {
    std::cerr << "web: " << e.message << "\n";
    rc = 3;
    io.stop();
  });
  if (auto ok = web.start([] { std::cout << "web ready" << std::endl; }); !ok) {
    std::cerr << "web: " << ok.error().message << "\n";
    return 3;
  }
  io.run();
  return rc;
}
