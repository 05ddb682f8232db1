// Internal: what each transport implements behind the connection/listener handles.
#pragma once

#include <cstddef>
#include <memory>
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
  virtual void close() = 0;
  // Drops the handlers so that none runs again; called by the handle's destructor.
  virtual void detach() = 0;
  virtual bool is_open() const noexcept = 0;
  virtual std::size_t queued_bytes() const noexcept = 0;
  virtual std::string description() const = 0;
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
// Validates a frame against the limits; the error names the limit that was hit.
result<void> check_frame(const options& opts, std::string_view name, std::size_t payload_size);

// Implemented by each transport; `addr` is already parsed.
result<connection> connect_stream(boost::asio::io_context& io, const struct address& addr,
                                  const options& opts);
result<listener> listen_stream(boost::asio::io_context& io, const struct address& addr,
                               const options& opts);
result<connection> connect_inproc(boost::asio::io_context& io, const struct address& addr,
                                  const options& opts);
result<listener> listen_inproc(boost::asio::io_context& io, const struct address& addr,
                               const options& opts);

}  // namespace plexus::transport::detail
