// The client: calls methods of services through the router. Every call ends with a
// result or an error by its deadline (default 5 s): deadline_exceeded, unavailable
// when there is no route or the worker died, or the service's own error.
//
// The router may start after the client and may restart (reconnect.hpp): while the
// client waits for it, new calls wait too (until the router is back, or their deadline:
// deadline_exceeded naming the router), and calls in flight when the connection is lost
// fail with unavailable at once. Subscriptions are renewed on every new connection.
// `.reconnect = {.enabled = false}` keeps the fail-fast behaviour.
//
//   boost::asio::io_context io;
//   plexus::rpc::client c(io, {.router = "ipc:///tmp/plexus.sock"});
//   if (c.connect()) if (auto r = c.call<int>("calc", "add", 1, 2)) std::cout << *r;
//
// Four ways to call: call<R>() (blocking; drives the io_context on the calling thread
// until the answer arrives), async_call() with a callback, call_future() (usable from
// any thread while another thread runs the io_context) and co_call() for C++20
// coroutines on the io_context. All other members run on the io_context's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "plexus/rpc/convert.hpp"
#include "plexus/rpc/reconnect.hpp"
#include "plexus/transport/address.hpp"
#include "plexus/transport/connection.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::rpc {

using duration = std::chrono::steady_clock::duration;

struct client_options {
  std::string router = transport::default_router_address();
  std::string name;  // shown by the router in plexus.services and logs
  std::chrono::milliseconds default_deadline{5000};
  transport::options transport;
  reconnect_options reconnect;
};

class client {
 public:
  using completion = std::function<void(result<value>)>;

  client(boost::asio::io_context& io, client_options opts = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Connects to the router. With reconnection (the default), nothing listening is not
  // an error: the client keeps trying in the background (connected() is false until
  // then). Errors: invalid_argument (bad address); unavailable (nothing listening)
  // only with `.reconnect = {.enabled = false}`.
  result<void> connect();
  // A connection to the router is up now.
  bool connected() const noexcept;
  // Fails every call in flight or waiting with unavailable, disconnects and stops
  // waiting for the router. Idempotent.
  void close();
  // The program's callback: connected, lost, reconnected (reconnect.hpp). Runs on the
  // io_context's thread; set it before connect() to see the first `connected`.
  void on_link_event(link_handler h);

  // Starts a call; `done` runs exactly once on the io_context's thread.
  // `params` must be an array. A zero deadline means the client's default. While the
  // client waits for the router the call waits with it (bounded by its deadline and
  // by transport.max_queued_bytes of waiting requests); without a connection and
  // without reconnection it fails with unavailable.
  void async_call(std::string_view service, std::string_view method, value params, completion done,
                  duration deadline = {});

  std::future<result<value>> call_future(std::string_view service, std::string_view method,
                                         value params, duration deadline = {});

  boost::asio::awaitable<result<value>> co_call(std::string service, std::string method,
                                                value params, duration deadline = {});

  // Blocking call with raw params. Must not be used from inside a handler running on
  // the same io_context, nor while another thread runs it (use call_future there).
  result<value> call_value(std::string_view service, std::string_view method, value params,
                           duration deadline = {});

  // Blocking typed call: arguments converted with to_json, the result with from_json.
  template <class R = value, class... Args>
  result<R> call(std::string_view service, std::string_view method, Args&&... args) {
    value params = value::array();
    (params.push_back(value(std::forward<Args>(args))), ...);
    auto r = call_value(service, method, std::move(params));
    if (!r) return std::move(r).error();
    return convert_result<R>(std::move(*r), method);
  }

  // Sends a notification: no answer, no error from the service. Errors only for a
  // local problem (not connected, limits).
  result<void> notify(std::string_view service, std::string_view method, value params);

  // ---- publish/subscribe (docs/protocol.md §6) ----------------------------------------
  // A publication is a notification whose method is its topic; it reaches every
  // subscriber of a prefix of the topic, best effort (a slow subscriber loses some,
  // counted). Errors only for a local problem.
  result<void> publish(std::string_view topic, value params);
  // A structured log record published under "log.<process>" (see service::log);
  // the process name is $PLEXUS_PROCESS, else the client's name.
  result<void> log(std::string_view level, std::string_view message,
                   value fields = value::object());

  using publication_handler = std::function<void(std::string_view topic, const value& params)>;
  // Receives the publications whose topic starts with `prefix` ("" for all) on the
  // io_context's thread. One handler per prefix (a second replaces the first); a
  // publication matching several prefixes reaches each of their handlers. While the
  // client waits for the router the subscription is kept and sent on connection.
  result<void> subscribe(std::string prefix, publication_handler on_publication);
  result<void> unsubscribe(std::string_view prefix);
  // Publications the router dropped for this client because it read too slowly, as
  // the router has reported them so far.
  std::uint64_t dropped_publications() const noexcept;

  // Calls in flight now, those waiting for the router included.
  std::size_t in_flight() const noexcept;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace plexus::rpc
