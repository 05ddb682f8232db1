#include "plexus/transport/connection.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "plexus/transport/address.hpp"
#include "transport/connection_impl.hpp"

namespace plexus::transport {

// ---- connection handle ------------------------------------------------------
connection::connection(std::shared_ptr<detail::connection_impl> impl) : impl_(std::move(impl)) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&& other) noexcept {
  if (this != &other) {
    if (impl_) {
      impl_->detach();
      impl_->close();
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}
connection::~connection() {
  if (impl_) {
    impl_->detach();
    impl_->close();
  }
}

void connection::start(frame_handler on_frame, close_handler on_close) {
  if (impl_) impl_->start(std::move(on_frame), std::move(on_close));
}

result<void> connection::send(wire::frame_kind kind, std::string_view name,
                              std::span<const std::uint8_t> payload) {
  if (!impl_) return plexus::error(errc::unavailable, "connection is closed");
  return impl_->send(kind, name, payload);
}

result<void> connection::send_with_deadline(std::string_view name,
                                            std::span<const std::uint8_t> payload,
                                            std::uint32_t deadline_ms) {
  if (!impl_) return plexus::error(errc::unavailable, "connection is closed");
  return impl_->send_with_deadline(name, payload, deadline_ms);
}

result<void> connection::send_shared(wire::frame_kind kind, std::string_view name,
                                     shared_bytes payload) {
  if (!impl_) return plexus::error(errc::unavailable, "connection is closed");
  return impl_->send_shared(kind, name, std::move(payload));
}

void connection::close() {
  if (impl_) impl_->close();
}
bool connection::is_open() const noexcept {
  return impl_ && impl_->is_open();
}
std::size_t connection::queued_bytes() const noexcept {
  return impl_ ? impl_->queued_bytes() : 0;
}
std::string connection::description() const {
  return impl_ ? impl_->description() : "(none)";
}
std::optional<peer_credentials> connection::credentials() const {
  return impl_ ? impl_->credentials() : std::nullopt;
}

// ---- listener handle ----------------------------------------------------------
listener::listener(std::shared_ptr<detail::listener_impl> impl) : impl_(std::move(impl)) {}
listener::listener(listener&&) noexcept = default;
listener& listener::operator=(listener&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}
listener::~listener() {
  if (impl_) impl_->close();
}
void listener::start(accept_handler on_accept) {
  if (impl_) impl_->start(std::move(on_accept));
}
void listener::close() {
  if (impl_) impl_->close();
}
std::string listener::address() const {
  return impl_ ? impl_->address() : std::string();
}

// ---- shared helpers -------------------------------------------------------------
namespace detail {

void append_frame(std::vector<std::uint8_t>& out, wire::frame_kind kind, std::string_view name,
                  std::span<const std::uint8_t> payload) {
  const auto old = out.size();
  out.resize(old + wire::frame_fixed_bytes + name.size() + payload.size());
  auto* p = out.data() + old;
  p += wire::write_frame_header(p, kind, name.size(), payload.size());
  if (!name.empty()) std::memcpy(p, name.data(), name.size());
  p += name.size();
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
}

void append_deadline_frame(std::vector<std::uint8_t>& out, std::string_view name,
                           std::span<const std::uint8_t> payload, std::uint32_t deadline_ms) {
  const auto old = out.size();
  out.resize(old + wire::frame_fixed_bytes + name.size() + wire::deadline_bytes + payload.size());
  auto* p = out.data() + old;
  p += wire::write_deadline_frame_header(p, name.size(), payload.size());
  if (!name.empty()) std::memcpy(p, name.data(), name.size());
  p += name.size();
  wire::write_u32_le(p, deadline_ms);
  p += wire::deadline_bytes;
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
}

void append_frame_head(std::vector<std::uint8_t>& out, wire::frame_kind kind, std::string_view name,
                       std::size_t payload_size) {
  const auto old = out.size();
  out.resize(old + wire::frame_fixed_bytes + name.size());
  auto* p = out.data() + old;
  p += wire::write_frame_header(p, kind, name.size(), payload_size);
  if (!name.empty()) std::memcpy(p, name.data(), name.size());
}

namespace {
struct flush_batch {
  int depth = 0;
  std::vector<std::shared_ptr<batch_member>> dirty;
};
thread_local flush_batch current_batch;
}  // namespace

bool defer_to_batch(std::shared_ptr<batch_member> member) {
  if (current_batch.depth == 0) return false;
  if (!member->in_batch_) {
    member->in_batch_ = true;
    current_batch.dirty.push_back(std::move(member));
  }
  return true;
}

batch_scope::batch_scope() {
  ++current_batch.depth;
}

batch_scope::~batch_scope() {
  if (--current_batch.depth != 0) return;
  // Index loop: a flush may (rarely) add members to the batch while it runs.
  for (std::size_t i = 0; i < current_batch.dirty.size(); ++i) {
    auto member = std::move(current_batch.dirty[i]);
    member->in_batch_ = false;
    member->flush_batched();
  }
  current_batch.dirty.clear();
}

result<void> check_frame(const options& opts, std::string_view name, std::size_t payload_size) {
  if (name.size() > wire::max_name_bytes)
    return plexus::error(errc::invalid_argument, "frame name of " + std::to_string(name.size()) +
                                                     " bytes exceeds the 255-byte limit");
  if (2 + name.size() + payload_size > opts.max_frame_bytes)
    return plexus::error(errc::resource_exhausted,
                         "frame of " + std::to_string(2 + name.size() + payload_size) +
                             " bytes exceeds max_frame_bytes (" +
                             std::to_string(opts.max_frame_bytes) + ")",
                         {{"limit", "max_frame_bytes"}});
  return {};
}

}  // namespace detail

// ---- entry points -------------------------------------------------------------
result<connection> connect(boost::asio::io_context& io, std::string_view text,
                           const options& opts) {
  if (text.find(',') != std::string_view::npos) {
    // Several addresses of one router: the preferred first, the next if it fails.
    const auto candidates = by_preference(text);
    if (candidates.empty())
      return plexus::error(errc::invalid_argument, "bad address '" + std::string(text) + "'");
    std::string tried;
    plexus::error last;
    for (const auto& a : candidates) {
      auto c = connect(io, a, opts);
      if (c) return c;
      last = std::move(c).error();
      tried += (tried.empty() ? "" : "; ") + last.message;
    }
    return plexus::error(last.code, "cannot connect to any of " + std::string(text) + ": " + tried,
                         {{"address", std::string(text)}});
  }
  auto addr = parse_address(text);
  if (!addr) return std::move(addr).error();
  if (addr->scheme == scheme::inproc) return detail::connect_inproc(io, *addr, opts);
  return detail::connect_stream(io, *addr, opts);
}

namespace {

// One async_connect: the candidate addresses in order of preference, tried one after
// another until one connects.
struct connect_attempt : std::enable_shared_from_this<connect_attempt> {
  boost::asio::io_context& io;
  options opts;
  std::string text;
  std::vector<std::string> candidates;
  std::size_t next = 0;
  std::string tried;
  plexus::error last;
  connect_handler done;

  connect_attempt(boost::asio::io_context& io, std::string_view text, const options& opts,
                  connect_handler done)
      : io(io), opts(opts), text(text), done(std::move(done)) {
    candidates = this->text.find(',') != std::string::npos ? by_preference(this->text)
                                                           : std::vector{this->text};
  }

  void try_next() {
    if (next == candidates.size()) {
      auto why = candidates.size() > 1
                     ? plexus::error(last.code, "cannot connect to any of " + text + ": " + tried,
                                     {{"address", text}})
                 : candidates.empty()
                     ? plexus::error(errc::invalid_argument, "bad address '" + text + "'")
                     : last;
      opts.secret.clear();
      return post(std::move(why));
    }
    auto addr = parse_address(candidates[next++]);
    if (!addr) return failed(std::move(addr).error());
    if (addr->scheme == scheme::inproc) {
      auto c = detail::connect_inproc(io, *addr, opts);
      if (!c) return failed(std::move(c).error());
      return post(std::move(c));
    }
    detail::connect_stream_async(io, *addr, opts,
                                 [self = shared_from_this()](result<connection> c) {
                                   if (c) return self->finish(std::move(c));
                                   self->failed(std::move(c).error());
                                 });
  }

  void failed(plexus::error e) {
    tried += (tried.empty() ? "" : "; ") + e.message;
    last = std::move(e);
    try_next();
  }

  void finish(result<connection> c) {
    opts.secret.clear();
    done(std::move(c));
  }

  void post(result<connection> c) {
    boost::asio::post(io, [self = shared_from_this(), c = std::move(c)]() mutable {
      self->finish(std::move(c));
    });
  }
};

}  // namespace

void async_connect(boost::asio::io_context& io, std::string_view address, const options& opts,
                   connect_handler done) {
  std::make_shared<connect_attempt>(io, address, opts, std::move(done))->try_next();
}

result<listener> listen(boost::asio::io_context& io, std::string_view text, const options& opts) {
  auto addr = parse_address(text);
  if (!addr) return std::move(addr).error();
  if (addr->scheme == scheme::inproc) return detail::listen_inproc(io, *addr, opts);
  return detail::listen_stream(io, *addr, opts);
}

}  // namespace plexus::transport
