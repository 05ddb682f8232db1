// The transport interface: a `connection` moves whole frames (wire/frame.hpp) between
// two processes; a `listener` accepts connections. The router and the RPC layer see
// only these two types; each transport (ipc = Unix stream sockets, tcp, inproc)
// implements them, and one conformance suite runs against each.
//
//   boost::asio::io_context io;
//   auto c = plexus::transport::connect(io, "ipc:///tmp/plexus.sock").value();
//   c.start([](const plexus::wire::frame_view& f) { /* use f */ }, [](const plexus::error&) {});
//   (void)c.send(plexus::wire::frame_kind::data, "calc", payload);
//
// Threading: a connection belongs to the io_context it was made on. Every member
// function must be called on that context's thread, and every handler runs there.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/wire/error.hpp"
#include "plexus/wire/frame.hpp"

namespace boost::asio {
class io_context;
}

namespace plexus::transport {

// An immutable payload that several connections may queue at once without a copy
// each (publish/subscribe fan-out): each holds a reference until its bytes are written.
using shared_bytes = std::shared_ptr<const std::vector<std::uint8_t>>;

// Named limits of one connection. Hitting one produces an error naming it.
struct options {
  // Largest frame body accepted or sent ("max_frame_bytes"). A peer that announces a
  // larger frame is disconnected: the stream cannot be resynchronised.
  std::size_t max_frame_bytes = (64u << 20) + 512;
  // Bytes queued for writing beyond which send() refuses ("max_queued_bytes").
  std::size_t max_queued_bytes = 256u << 20;
  // The shared secret of tcp authentication (transport/auth.hpp), or empty for none.
  // With one, every native tcp connection runs the challenge-response handshake before
  // its first frame, and ZeroMQ tcp endpoints are CURVE servers. Never printed.
  std::string secret;
  // How long the handshake may take before the connection is closed (each side).
  std::chrono::milliseconds handshake_timeout{5000};
  // How long a tcp connect may take (a host that drops SYNs would otherwise hold it
  // for minutes); past it the attempt fails unavailable. ipc connects never wait.
  std::chrono::milliseconds connect_timeout{5000};
};

// Who is at the other end of a connection, as the kernel vouches for it.
struct peer_credentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int32_t pid = 0;  // the process that connected (or accepted), at that time
};

namespace detail {
class connection_impl;
class listener_impl;
}  // namespace detail

// One end of a frame stream. Move-only; the destructor closes it and guarantees that
// no handler runs afterwards. close() is idempotent.
class connection {
 public:
  // Called for each received frame. The view is valid only during the call.
  using frame_handler = std::function<void(const wire::frame_view&)>;
  // Called exactly once when the connection ends for any reason other than the
  // destructor: peer closed (errc::unavailable), a protocol error (invalid_argument,
  // resource_exhausted) or close(). Runs from the event loop, never inside send()
  // or close().
  using close_handler = std::function<void(const plexus::error&)>;

  connection() = default;
  explicit connection(std::shared_ptr<detail::connection_impl> impl);
  connection(connection&&) noexcept;
  connection& operator=(connection&&) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  // Starts delivering frames. Call once.
  void start(frame_handler on_frame, close_handler on_close);

  // Queues one frame. Never blocks: frames queued during one turn of the loop leave
  // in one gather write. Errors: unavailable (closed), invalid_argument (name longer
  // than 255 bytes), resource_exhausted (max_frame_bytes or max_queued_bytes).
  result<void> send(wire::frame_kind kind, std::string_view name,
                    std::span<const std::uint8_t> payload);
  // Queues a data frame that carries the sender's remaining time for the request in
  // `payload` (a kind 2 frame, docs/protocol.md §1). Transports without the field
  // (ZeroMQ) send a plain data frame. Errors: those of send().
  result<void> send_with_deadline(std::string_view name, std::span<const std::uint8_t> payload,
                                  std::uint32_t deadline_ms);
  // As send(), but the stream transports queue a reference to `payload` instead of a
  // copy of it (the others copy). `payload` must not be null and is never modified.
  result<void> send_shared(wire::frame_kind kind, std::string_view name, shared_bytes payload);

  // Ends the connection. Frames already queued are still written if the socket
  // accepts them without blocking; the close handler runs later from the loop.
  void close();

  bool is_open() const noexcept;
  explicit operator bool() const noexcept { return impl_ != nullptr; }
  // Bytes accepted by send() and not yet written.
  std::size_t queued_bytes() const noexcept;
  // For logs: "ipc:/path", "tcp:127.0.0.1:5555", "inproc:name".
  std::string description() const;
  // The peer's credentials: for ipc (Unix sockets) SO_PEERCRED, read when the
  // connection was made; for inproc this process's own. nullopt for tcp and ZeroMQ
  // peers, and for an empty handle: they prove nothing about who is there.
  //
  //   auto who = c.credentials();
  //   if (!who || who->uid != ::geteuid()) return error(errc::permission_denied, ...);
  std::optional<peer_credentials> credentials() const;

 private:
  std::shared_ptr<detail::connection_impl> impl_;
};

// Accepts connections on one address. Move-only; closing stops accepting and, for
// ipc, removes the socket file it created.
class listener {
 public:
  using accept_handler = std::function<void(connection)>;

  listener() = default;
  explicit listener(std::shared_ptr<detail::listener_impl> impl);
  listener(listener&&) noexcept;
  listener& operator=(listener&&) noexcept;
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
  ~listener();

  void start(accept_handler on_accept);
  void close();
  // The bound address, with a port chosen by the kernel filled in (tcp://...:0).
  std::string address() const;

 private:
  std::shared_ptr<detail::listener_impl> impl_;
};

// Addresses: "ipc:///abs/path" (also "unix:///abs/path"), "tcp://host:port"
// (host may be [::1]; port 0 picks one), "inproc://name" (same process only).
// Errors: invalid_argument (bad address), unavailable (nothing listening, refused, a
// full listen backlog, or no tcp connection within opts.connect_timeout), and the OS
// error text otherwise.
// The calling thread waits for a tcp connect (at most connect_timeout) and for name
// resolution; an ipc connect never waits. From the event loop use async_connect.
result<connection> connect(boost::asio::io_context& io, std::string_view address,
                           const options& opts = {});

// As connect(), without ever waiting on the calling thread: a host name is resolved
// on Asio's resolver thread and a tcp connect completes on the loop (or fails when
// opts.connect_timeout passes). `done` runs on io's thread, never inside this call.
//
//   transport::async_connect(io, "tcp://10.0.0.7:7000", opts, [](auto c) { ... });
using connect_handler = std::function<void(result<connection>)>;
void async_connect(boost::asio::io_context& io, std::string_view address, const options& opts,
                   connect_handler done);
result<listener> listen(boost::asio::io_context& io, std::string_view address,
                        const options& opts = {});

}  // namespace plexus::transport
