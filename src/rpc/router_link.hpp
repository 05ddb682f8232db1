// The link of one client or service to the router (internal to rpc). client::impl and
// service::impl each hold one as a member; it is their only door to the router.
//
// It owns the transport::connection, connects, says hello {name, pid}, runs its owner's
// registration hook, sends control frames, hands each incoming control frame to the handler
// registered for its op and each data frame to the owner, and reports that the connection was lost.
// It also sends data frames, notifications, publications and log records.
//
//   router_link link(io, "ipc:///tmp/plexus.sock", {}, {}, "calc");
//   link.on_control(control::registered, [this](const value&) { ready(); });
//   if (auto ok = link.open(weak_from_this(), [this](const wire::frame_view& f) { on_data(f); }))
//   ...
//
// Reconnection (reconnect_options, issue 10): when enabled, open() succeeds although
// nothing listens yet, and a lost connection is not final: the link waits (a timer,
// capped exponential backoff with jitter), connects again, says hello, runs the
// registration hook again and reports connected / lost / reconnected to on_event.
// open() makes the first attempt on the calling thread (transport::connect: an ipc
// connect never waits, a tcp one at most connect_timeout); every later attempt runs on
// the loop without blocking it (transport::async_connect).
// Between a loss (or a failed first attempt) and the next connection, is_reconnecting()
// holds; close() ends the waiting too.
//
// Threading: every member runs on the io_context's thread, and every callback runs
// there, from the event loop, never inside a member call other than open() (which
// runs the registration hook). No callback runs once the owner passed to open() is
// gone, so callbacks may capture the owner's `this`.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "plexus/rpc/reconnect.hpp"

#include "plexus/transport/connection.hpp"
#include "plexus/wire/error.hpp"
#include "plexus/wire/frame.hpp"
#include "plexus/wire/message.hpp"

namespace plexus::rpc::detail {

class router_link {
 public:
  using control_handler = std::function<void(const value& map)>;
  using loss_handler = std::function<void(const plexus::error&)>;

  // `router`: the address to connect to, named by not_connected(). `name`: the owner's
  // name, said in hello ("client" when empty) and the fallback process name of log().
  router_link(boost::asio::io_context& io, std::string router, transport::options opts,
              reconnect_options reconnect, std::string name);
  router_link(const router_link&) = delete;
  router_link& operator=(const router_link&) = delete;

  // ---- set up before open() -------------------------------------------------------
  // A control frame whose "op" is `op` goes to `h` with the decoded map; control
  // frames of other ops, and those that are not CBOR maps, are ignored. One handler
  // per op (a second replaces the first).
  void on_control(std::string op, control_handler h);
  // The registration hook: runs right after hello on every new connection, before any
  // frame of it is read. The owner sends there what the router must know about it.
  void on_registration(std::function<void()> h);
  // Runs once per connection when it ends other than through close(): the router went
  // away (unavailable) or broke the protocol. Runs from the event loop, never inside a
  // member call, before on_event's `lost` and before a reconnection is scheduled (the
  // owner may close() there to stop reconnecting).
  void on_lost(loss_handler h);
  // The program's callback (reconnect.hpp): connected, lost, reconnected.
  void on_event(link_handler h);
  // Says "deadlines": true in hello: requests may arrive with the caller's remaining
  // time (frame_view::deadline_ms). Services set it; the owner must honour it.
  void accept_deadlines() { accept_deadlines_ = true; }

  // Connects, starts reading, says hello and runs the registration hook. `owner` (the
  // object holding this link) guards every callback. `on_data(const wire::frame_view&)`
  // receives every data frame; the view is valid only during the call. It is inlined
  // into the connection's frame handler, so a data frame costs one indirect call.
  // With reconnection enabled, nothing listening (unavailable) is not an error: the
  // link keeps trying (is_reconnecting()). Errors: those of transport::connect
  // (invalid_argument; unavailable only without reconnection).
  template <class OnData>
  result<void> open(std::weak_ptr<const void> owner, OnData on_data) {
    return open_with(
        owner, [owner, this, on_data = std::move(on_data)](const wire::frame_view& f) mutable {
          const auto alive = owner.lock();
          if (!alive) return;
          if (f.kind == wire::frame_kind::control)
            dispatch_control(f.payload);
          else
            on_data(f);
        });
  }

  // Ends the connection and any waiting for the router; on_lost does not run for it,
  // and no reconnection follows. Idempotent.
  void close();
  bool is_open() const noexcept { return conn_.is_open(); }
  // Waiting for the router: after a failed first attempt or a loss, until a connection
  // is up or close().
  // (Also from the moment the connection closed until its loss is reported.)
  bool is_reconnecting() const noexcept {
    return reconnect_.enabled && opened_ && !closed_ && !conn_.is_open();
  }
  bool reconnects() const noexcept { return reconnect_.enabled; }
  // Connection attempts made since open(), the first included.
  std::uint64_t attempts() const noexcept { return attempts_; }
  // unavailable, "not connected to the router at <router>": the one error for a send
  // attempted without a connection.
  plexus::error not_connected() const;
  // {} when open, else not_connected().
  result<void> check_open() const;

  // Queues one data frame named `name` (a service, a caller id, wire::publish_name).
  // Errors: those of connection::send.
  result<void> send_data(std::string_view name, std::span<const std::uint8_t> payload) {
    return conn_.send(wire::frame_kind::data, name, payload);
  }
  // Queues a request that carries the caller's remaining time (a kind 2 frame): the
  // router fails the call when it runs out, and tells the worker. Errors: send's.
  result<void> send_request(std::string_view name, std::span<const std::uint8_t> payload,
                            std::uint32_t deadline_ms) {
    return conn_.send_with_deadline(name, payload, deadline_ms);
  }
  // Encodes `map` and queues it as a control frame. Errors: those of connection::send.
  result<void> send_control(const value& map);
  // A notification `method(params)` to `service`. Errors: not_connected(), send's.
  result<void> notify(std::string_view service, std::string_view method, value params);
  // A publication under `topic`: a notification to wire::publish_name.
  result<void> publish(std::string_view topic, value params);
  // A log record (rpc/supervision.hpp) published under "log.<process>", the process
  // being $PLEXUS_PROCESS, else the name. Errors: invalid_argument (unknown level),
  // publish's. Never blocks: a full queue refuses the record.
  result<void> log(std::string_view level, std::string_view message, value fields);

  // The limits for decoding a received payload.
  wire::limits decode_limits() const noexcept { return {opts_.max_frame_bytes, 64}; }
  // Bytes accepted by send and not yet written.
  std::size_t queued_bytes() const noexcept { return conn_.queued_bytes(); }

 private:
  result<void> open_with(std::weak_ptr<const void> owner,
                         transport::connection::frame_handler on_frame);
  // The first attempt: connect on the calling thread, then adopt().
  result<void> attempt();
  // A new connection: start reading, hello, registration hook, event posted.
  void adopt(transport::connection c);
  // A later attempt, from the retry timer: connects without blocking the loop.
  void attempt_async();
  void schedule_attempt();
  void post_event(link_event e);
  void dispatch_control(std::span<const std::uint8_t> payload);
  void lost(std::uint64_t generation, const plexus::error& e);

  boost::asio::io_context& io_;
  std::string router_;
  transport::options opts_;
  reconnect_options reconnect_;
  std::string name_;
  transport::connection conn_;
  // true from close() until the next open(): the loss was asked for, not reported.
  bool closed_ = false;
  bool accept_deadlines_ = false;
  bool reconnecting_ = false;  // a retry is scheduled
  bool opened_ = false;        // open() succeeded (or is waiting for the router)
  bool ever_connected_ = false;
  std::uint64_t generation_ = 0;  // of conn_: a late report of an older one is ignored
  std::uint64_t attempts_ = 0;
  std::uint64_t attempt_serial_ = 0;  // an async attempt that outlived close()/open() is ignored
  std::chrono::milliseconds backoff_{0};  // the last wait's cap; zero: none yet
  std::chrono::steady_clock::time_point connected_at_{};
  boost::asio::steady_timer retry_timer_;
  std::weak_ptr<const void> owner_;
  transport::connection::frame_handler on_frame_;  // kept for every reconnection
  std::vector<std::pair<std::string, control_handler>> control_handlers_;
  std::function<void()> on_registration_;
  loss_handler on_lost_;
  link_handler on_event_;
  std::vector<std::uint8_t> scratch_;  // notifications and control frames
};

}  // namespace plexus::rpc::detail
