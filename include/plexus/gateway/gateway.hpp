// The HTTP gateway of `plexus run` (docs/gateway.md): serves the HTTP routes that
// services declare (rpc::service::http) by calling the declaring service through the
// router, and answers its own endpoints (/api/healthz, /api/routes, /metrics, and those
// added with add_endpoint) on the loop.
//
//   plexus::gateway::gateway g(io, router, {.listen = "127.0.0.1:8080"}, "inproc://gw");
//   if (auto ok = g.start(); !ok) fail(ok.error());   // then io.run()
//
// Each request for a route becomes one call (spread over the service's replicas like
// any call) with the request as its argument; the response is the call's result.
// Statuses the gateway gives itself: 404 (no route), 405 with Allow (a route with
// another verb), 413/414/431 (a body, URL or header over its budget), 503 with
// Retry-After (the service has no worker, or its worker died during the call), 504 (the
// route's deadline passed), 500 with {"message", "code"} (the handler failed), 502 (the
// service answered something that is not a response), 400 (unreadable HTTP).
// Connections are kept alive; pipelined requests are answered in order; every
// connection is its own chain of asynchronous operations, so a slow client or a slow
// service holds only its own connection.
// Threading: everything runs on the io_context's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>

#include "plexus/broker/router.hpp"
#include "plexus/gateway/gateway_options.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::gateway {

struct gateway_stats {
  std::uint64_t connections = 0;  // open now
  std::uint64_t requests = 0;     // requests read
  std::uint64_t responses_2xx = 0;
  std::uint64_t responses_4xx = 0;
  std::uint64_t responses_5xx = 0;
  std::uint64_t refused_connections = 0;  // closed at once: max_connections reached
};

// Appends one Prometheus sample, `name{k="v",…} value`, with the label values escaped.
void append_metric(std::string& out, std::string_view name,
                   std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                   double value);

class gateway {
 public:
  // `router` is the router whose routes are served; `router_address` an address it
  // listens on, for the gateway's own client (an inproc one costs no system call).
  gateway(boost::asio::io_context& io, broker::router& router, gateway_options opts,
          std::string router_address);
  ~gateway();
  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  // Listens (close-on-exec). Errors: invalid_argument (a bad listen address),
  // unavailable (cannot bind: the message names the address and the reason).
  result<void> start();
  // Stops accepting and closes every connection. Idempotent.
  void stop();
  // "http://127.0.0.1:8080" with the real port once started.
  std::string url() const;

  // Adds a built-in JSON endpoint answered on the loop by `f` for GET `path` (e.g.
  // /api/processes). Built-ins never wait behind a route's call.
  void add_endpoint(std::string path, std::function<value()> f);

  // A built-in stream of server-sent events for GET `path` (/api/logs). `open` runs for
  // each client with the request's query and `send`, and returns an error (answered
  // 400 with its message) or the function to run when the client goes. `send` queues
  // one event (its whole text, "data: …\n\n") and returns false once the client has
  // gone. A client that reads too slowly loses events beyond max_stream_queue_bytes
  // queued; it is told how many with an `event: dropped` (data {"count": n}) before
  // the next event it gets. A stream stays open until the client or the gateway closes.
  using event_send = std::function<bool(std::string event)>;
  using stream_open =
      std::function<result<std::function<void()>>(std::string_view query, event_send send)>;
  void add_event_stream(std::string path, stream_open open);

  // Adds lines to /metrics (Prometheus text format): `f` appends its samples, with
  // their # HELP and # TYPE lines, to `out` (append_metric writes one sample).
  void add_metrics(std::function<void(std::string& out)> f);

  gateway_stats stats() const;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace plexus::gateway
