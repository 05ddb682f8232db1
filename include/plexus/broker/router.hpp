// The router: carries requests, responses and notifications between the processes
// connected to it, forwarding payloads without decoding them.
//
//   boost::asio::io_context io;
//   plexus::broker::router r(io, {.listen = {"ipc:///tmp/plexus.sock"}});
//   if (auto ok = r.start(); !ok) fail(ok.error());  io.run();
//
// Endpoints: router_options::listen lists every address to bind; the scheme of each
// picks the transport and the role (transport/endpoint.hpp): peers connect to a
// listener, publications come in through an inlet and go out through an outlet.
//
// Semantics (docs/protocol.md): workers register service names with a control frame;
// a request addressed to a service goes to the registered worker with the fewest
// unanswered requests. A request for an unknown service is answered at once with an
// `unavailable` error. When a worker's connection ends, its registrations vanish and
// every request forwarded to it and still unanswered is answered with `unavailable`.
// Peers are checked: a response is forwarded only from the worker the request went to,
// once (any other is dropped and counted as `unsolicited`); a request whose msgid is
// already in flight from the same caller is refused with `invalid_argument` (counted
// as `duplicate_msgid`) and the first one still gets its answer.
// The service name "plexus" is the router's own: methods ping, services, describe,
// subscriptions, stats, routes.
// HTTP routes: a registration may carry the service's HTTP routes; the router keeps
// them in one table (http_routes.hpp) and refuses the registration of a route another
// live service declared, naming both declarations.
//
// Publish/subscribe: a notification sent to the reserved name "*" is a publication
// whose topic is its method; it goes to every peer subscribed (control op
// "subscribe") to a prefix of the topic, to the outlets (zmq-sub+… endpoints), and
// nowhere else. A subscriber whose connection has more than subscriber_queue_bytes
// queued loses publications instead of slowing anyone down; the losses are counted
// (plexus.subscriptions, stats) and reported to the subscriber with a "dropped"
// control frame when delivery resumes.
//
// Budgets (router_options): at most max_connections peers; a native connection that
// has not said hello within hello_timeout_ms is closed; one peer may hold at most
// max_subscriptions_per_peer prefixes and max_in_flight_per_peer unanswered requests,
// beyond which it is refused with resource_exhausted naming the limit. Each is counted
// in stats.
// Threading: everything runs on the io_context's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/broker/http_routes.hpp"
#include "plexus/broker/router_options.hpp"
#include "plexus/transport/connection.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::broker {

struct router_stats {
  std::uint64_t peers = 0;                // connected now
  std::uint64_t forwarded = 0;            // data frames forwarded
  std::uint64_t no_route = 0;             // requests answered "no route"
  std::uint64_t failed_by_peer_loss = 0;  // requests failed because their worker left
  std::uint64_t malformed = 0;            // frames dropped as unreadable
  std::uint64_t unsolicited = 0;          // responses dropped: not in flight to that peer
  std::uint64_t duplicate_msgid = 0;      // requests refused: their msgid was in flight
  std::uint64_t denied = 0;               // calls refused with permission_denied
  std::uint64_t in_flight = 0;            // forwarded requests awaiting a response
  std::uint64_t published = 0;            // publications received
  std::uint64_t delivered = 0;            // publications handed to native subscribers
  std::uint64_t dropped = 0;              // publications a slow subscriber lost
  std::uint64_t refused_connections = 0;  // closed at once: max_connections reached
  std::uint64_t hello_timeouts = 0;       // closed for saying no hello in hello_timeout_ms
  std::uint64_t over_budget = 0;          // requests and subscriptions refused by a per-peer cap
  std::uint64_t expired = 0;              // requests failed by the router at their deadline
  std::uint64_t auth_failures = 0;        // tcp peers closed: their authentication failed
};

class router {
 public:
  router(boost::asio::io_context& io, router_options opts);
  ~router();
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  // Binds every address of router_options::listen. Errors name the address that failed.
  result<void> start();
  // Stops accepting and closes every peer. Idempotent.
  void stop();
  // The bound addresses (tcp port 0 replaced by the real port).
  std::vector<std::string> addresses() const;
  router_stats stats() const;

  // ---- in-process extensions (the supervisor of `plexus run` uses them) -------------
  // Who may call a method added with add_method.
  enum class method_access {
    anyone,     // every peer (plexus.ps, plexus.logs)
    same_user,  // a peer whose credentials (transport::connection::credentials) show
                // this process's effective uid: ipc peers of this user and inproc ones.
                // tcp and ZeroMQ peers carry none and are refused until authentication
                // exists. Others get permission_denied, counted as `denied`.
  };
  // Adds a method to the router's own service "plexus" (ping, services, … are built
  // in and cannot be replaced). The handler runs on the loop and answers at once.
  //
  //   r.add_method("stop", [&](const value&) -> result<value> { return stop(); },
  //                router::method_access::same_user);
  using method_handler = std::function<result<value>(const value& params)>;
  void add_method(std::string name, method_handler h, method_access access = method_access::anyone);
  // Publishes `params` under `topic` as if a peer had published it.
  void publish(std::string_view topic, value params);
  // Calls `h` on the loop with every publication whose topic starts with `prefix`,
  // decoded (publications that do not decode are skipped).
  using tap_handler = std::function<void(std::string_view topic, const value& params)>;
  void tap(std::string prefix, tap_handler h);
  // Adds the counter `name` to plexus.stats, read by `read` (on the loop) at each call;
  // a name the router already counts is left alone.
  //   r.add_stat("echo_dropped", [&] { return echo.dropped(); });
  void add_stat(std::string name, std::function<std::uint64_t()> read);

  // ---- HTTP routes (http_routes.hpp; the gateway of `plexus run` reads them) ---------
  // The route answering (verb, path), a wrong verb (with the verbs that are declared)
  // or none.
  http_match match_http(std::string_view verb, std::string_view path) const;
  // Every declared route, sorted by pattern then verb (plexus.routes adds replicas).
  std::vector<http_route> http_routes() const;
  // How many workers `service` has now (0: none, or no such service).
  std::size_t workers(std::string_view service) const;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace plexus::broker
