// Internal: what each transport implements behind the connection/listener handles.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plexus/transport/connection.hpp"

namespace plexus::transport::detail {

class connection_impl {
 public:
  virtual ~connection_impl() = default;
  virtual void start(connection::frame_handler on_frame, connection::close_handler on_close) = 0;
  virtual result<void> send(wire::frame_kind kind, std::string_view name,
                            std::span<const std::uint8_t> payload) = 0;
  // Transports that can carry a deadline override this; the others send plain data.
  virtual result<void> send_with_deadline(std::string_view name,
                                          std::span<const std::uint8_t> payload,
                                          std::uint32_t /*deadline_ms*/) {
    return send(wire::frame_kind::data, name, payload);
  }
  // Transports that can hold a reference in their send queue override this.
  virtual result<void> send_shared(wire::frame_kind kind, std::string_view name,
                                   shared_bytes payload) {
    return send(kind, name, *payload);
  }
  virtual void close() = 0;
  // Drops the handlers so that none runs again; called by the handle's destructor.
  virtual void detach() = 0;
  virtual bool is_open() const noexcept = 0;
  virtual std::size_t queued_bytes() const noexcept = 0;
  virtual std::string description() const = 0;
  // connection::credentials(); none unless the transport knows them.
  virtual std::optional<peer_credentials> credentials() const { return std::nullopt; }
};

// The handler and close bookkeeping every connection shares: start() keeps the
// handlers, detach() silences them, the close handler runs exactly once, posted to the
// loop (never inside send() or close()). A transport derives from it, calls
// keep_handlers() from start(), deliver() for each frame (inline: no extra call or
// allocation per frame) and end() when the connection ends.
class connection_base : public connection_impl,
                        public std::enable_shared_from_this<connection_base> {
 public:
  void detach() final {
    detached_ = true;
    // Handlers may capture their owner; drop them from the loop, not from inside one.
    boost::asio::post(executor_, [self = shared_from_this()] {
      self->on_frame_ = nullptr;
      self->on_close_ = nullptr;
    });
  }
  bool is_open() const noexcept final { return !closed_; }
  std::string description() const final { return description_; }

 protected:
  connection_base(boost::asio::any_io_executor executor, std::string description)
      : executor_(std::move(executor)), description_(std::move(description)) {}

  void keep_handlers(connection::frame_handler on_frame, connection::close_handler on_close) {
    on_frame_ = std::move(on_frame);
    on_close_ = std::move(on_close);
  }
  // Hands one frame to the frame handler unless the connection is closed or detached.
  void deliver(const wire::frame_view& f) {
    if (!closed_ && !detached_ && on_frame_) on_frame_(f);
  }
  // Marks the connection closed and posts the close handler with `why`. False (and
  // nothing done) when it was already closed.
  bool end(plexus::error why) {
    if (closed_) return false;
    closed_ = true;
    post_closed(std::move(why));
    return true;
  }
  // Posts the close handler with `why`, if it has not run and nobody detached.
  void post_closed(plexus::error why) {
    boost::asio::post(executor_, [self = shared_from_this(), why = std::move(why)] {
      if (self->detached_ || !self->on_close_) return;
      auto handler = std::move(self->on_close_);
      self->on_close_ = nullptr;
      handler(why);
    });
  }
  // The derived object's shared_ptr, for its own completion handlers.
  template <class Derived>
  std::shared_ptr<Derived> self_as() {
    return std::static_pointer_cast<Derived>(shared_from_this());
  }

  bool closed_ = false;
  bool detached_ = false;

 private:
  boost::asio::any_io_executor executor_;
  std::string description_;
  connection::frame_handler on_frame_;
  connection::close_handler on_close_;
};

class listener_impl {
 public:
  virtual ~listener_impl() = default;
  virtual void start(listener::accept_handler on_accept) = 0;
  virtual void close() = 0;
  virtual std::string address() const = 0;
};

// Write batching across connections. While a read batch is being delivered on this
// thread (a batch_scope is alive), a connection that is sent to does not write at
// once: it joins the batch and is flushed when the outermost scope ends, so every
// frame a wake-up produced for one peer leaves in one write, with no extra trip
// through the event loop. Outside a batch, connections flush by a posted task.
class batch_member {
 public:
  virtual ~batch_member() = default;
  virtual void flush_batched() = 0;

 private:
  friend bool defer_to_batch(std::shared_ptr<batch_member>);
  friend class batch_scope;
  bool in_batch_ = false;
};

// Joins the current batch; false when no batch is open (the caller flushes itself).
bool defer_to_batch(std::shared_ptr<batch_member> member);

class batch_scope {
 public:
  batch_scope();
  ~batch_scope();
  batch_scope(const batch_scope&) = delete;
  batch_scope& operator=(const batch_scope&) = delete;
};

// Appends one encoded frame to `out`. The caller has checked the limits.
void append_frame(std::vector<std::uint8_t>& out, wire::frame_kind kind, std::string_view name,
                  std::span<const std::uint8_t> payload);
// Appends one encoded kind 2 frame (data with a deadline). The caller has checked the
// limits, counting the 4 deadline bytes as payload.
void append_deadline_frame(std::vector<std::uint8_t>& out, std::string_view name,
                           std::span<const std::uint8_t> payload, std::uint32_t deadline_ms);
// Appends the header and name of a frame whose `payload_size` payload bytes the caller
// writes after them from elsewhere. The caller has checked the limits.
void append_frame_head(std::vector<std::uint8_t>& out, wire::frame_kind kind, std::string_view name,
                       std::size_t payload_size);
// Validates a frame against the limits; the error names the limit that was hit.
result<void> check_frame(const options& opts, std::string_view name, std::size_t payload_size);

// Implemented by each transport; `addr` is already parsed.
result<connection> connect_stream(boost::asio::io_context& io, const struct address& addr,
                                  const options& opts);
// Runs `done` on io's thread (posted when the outcome is known at once).
void connect_stream_async(boost::asio::io_context& io, const struct address& addr,
                          const options& opts, connect_handler done);
result<listener> listen_stream(boost::asio::io_context& io, const struct address& addr,
                               const options& opts);
result<connection> connect_inproc(boost::asio::io_context& io, const struct address& addr,
                                  const options& opts);
result<listener> listen_inproc(boost::asio::io_context& io, const struct address& addr,
                               const options& opts);

// Before binding a Unix socket at addr.path (native or ZeroMQ): its directory is made
// or checked (os::ensure_socket_dir), and a stale socket file there (connect refused)
// is removed. A live socket, or a file, symbolic link or directory at the path, is an
// error naming it (unavailable) and is left alone.
result<void> prepare_socket_path(boost::asio::io_context& io, const struct address& addr);

}  // namespace plexus::transport::detail
