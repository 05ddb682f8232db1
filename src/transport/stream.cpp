// The native stream transport: Unix-domain (ipc) and TCP sockets carrying
// length-prefixed frames. One read drains everything the kernel holds; frames sent
// during one turn of the loop leave in one write.

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <type_traits>

#include "plexus/os/private_dir.hpp"
#include "plexus/transport/address.hpp"
#include "plexus/transport/auth.hpp"
#include "transport/auth_handshake.hpp"
#include "transport/cloexec.hpp"
#include "transport/connection_impl.hpp"

namespace plexus::transport::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

constexpr std::size_t initial_read_buffer = 64 * 1024;

// Leaves the bytes of a grown vector as they are (no zeroing): a read buffer is written
// by the kernel before it is read, and zeroing 64 KiB per connection showed as a tenth
// of the loop's time while a hundred workers connected. Only the pages reads touch are
// ever faulted in.
template <class T>
struct uninitialized_allocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = uninitialized_allocator<U>;
  };
  uninitialized_allocator() = default;
  template <class U>
  uninitialized_allocator(const uninitialized_allocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

plexus::error io_error(std::string_view what, const error_code& ec) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe)
    return {errc::unavailable, "peer closed the connection"};
  return {errc::unavailable, std::string(what) + ": " + ec.message()};
}

// Which end of a connection this is: the one that accepted it, or connected.
enum class stream_role { server, client };

template <class Protocol>
class stream_connection final : public connection_base, public batch_member {
 public:
  using socket_type = typename Protocol::socket;
  static constexpr bool is_tcp = std::is_same_v<Protocol, asio::ip::tcp>;

  stream_connection(socket_type socket, const options& opts, std::string description,
                    stream_role role)
      : connection_base(socket.get_executor(), std::move(description)),
        socket_(std::move(socket)),
        opts_(opts),
        role_(role) {
    if constexpr (is_tcp) {
      if (!opts_.secret.empty()) {
        hs_ = std::make_unique<handshake>(socket_.get_executor(), auth::derive_key(opts_.secret));
        hs_->step =
            role == stream_role::server ? hs_step::await_response : hs_step::await_challenge;
      } else {
        // A client without a secret recognises a router that asks for one.
        expect_plain_ = role == stream_role::client;
      }
    }
    opts_.secret.clear();  // the key is all a connection keeps
    // Our own writes are attempted directly and must never block the loop.
    error_code ignored;
    socket_.non_blocking(true, ignored);
    if constexpr (std::is_same_v<Protocol, asio::local::stream_protocol>) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
          len == sizeof cred)
        credentials_ = peer_credentials{cred.uid, cred.gid, cred.pid};
    }
  }

  void start(connection::frame_handler on_frame, connection::close_handler on_close) override {
    keep_handlers(std::move(on_frame), std::move(on_close));
    read_buffer_.resize(initial_read_buffer);
    if (closed_) {
      post_closed(plexus::error(errc::unavailable, "connection is closed"));
      return;
    }
    if (hs_) start_handshake();
    read_more();
  }

  result<void> send(wire::frame_kind kind, std::string_view name,
                    std::span<const std::uint8_t> payload) override {
    if (closed_) return plexus::error(errc::unavailable, "connection is closed");
    if (auto ok = check_frame(opts_, name, payload.size()); !ok) return ok;
    if (auto ok = check_queue(wire::frame_fixed_bytes + name.size() + payload.size()); !ok)
      return ok;
    append_frame(pending_, kind, name, payload);
    schedule_flush();
    return {};
  }

  result<void> send_with_deadline(std::string_view name, std::span<const std::uint8_t> payload,
                                  std::uint32_t deadline_ms) override {
    if (closed_) return plexus::error(errc::unavailable, "connection is closed");
    const auto carried = wire::deadline_bytes + payload.size();
    if (auto ok = check_frame(opts_, name, carried); !ok) return ok;
    if (auto ok = check_queue(wire::frame_fixed_bytes + name.size() + carried); !ok) return ok;
    append_deadline_frame(pending_, name, payload, deadline_ms);
    schedule_flush();
    return {};
  }

  // The payload is not copied: pending_ gets the header and name, pending_shared_ a
  // reference that the gather write sends after them.
  result<void> send_shared(wire::frame_kind kind, std::string_view name,
                           shared_bytes payload) override {
    if (closed_) return plexus::error(errc::unavailable, "connection is closed");
    if (auto ok = check_frame(opts_, name, payload->size()); !ok) return ok;
    if (auto ok = check_queue(wire::frame_fixed_bytes + name.size() + payload->size()); !ok)
      return ok;
    append_frame_head(pending_, kind, name, payload->size());
    pending_shared_bytes_ += payload->size();
    pending_shared_.push_back({pending_.size(), std::move(payload)});
    schedule_flush();
    return {};
  }

  void close() override {
    if (closed_) return;
    // Best effort: hand what is queued to the kernel if it takes it without blocking.
    if (!writing_ && !pending_.empty() && writes_open()) {
      error_code ec;
      socket_.non_blocking(true, ec);
      if (!ec) asio::write(socket_, gather_pending(), ec);
    }
    shutdown_socket();
    end(plexus::error(errc::unavailable, "connection closed locally"));
  }

  std::size_t queued_bytes() const noexcept override {
    return pending_.size() + pending_shared_bytes_ + (writing_ ? writing_left_ : 0);
  }

  std::optional<peer_credentials> credentials() const override { return credentials_; }

 private:
  // A payload queued by reference: written after pending_[0, at).
  struct shared_segment {
    std::size_t at;
    shared_bytes bytes;
  };

  result<void> check_queue(std::size_t frame_size) const {
    if (queued_bytes() + frame_size <= opts_.max_queued_bytes) return {};
    return plexus::error(errc::resource_exhausted,
                         "send queue full: max_queued_bytes (" +
                             std::to_string(opts_.max_queued_bytes) + ") reached",
                         {{"limit", "max_queued_bytes"}});
  }

  // pending_ with the shared payloads spliced in, as one buffer sequence (in gather_).
  const std::vector<asio::const_buffer>& gather_pending() {
    gather_.clear();
    std::size_t from = 0;
    for (const auto& seg : pending_shared_) {
      if (seg.at > from) gather_.emplace_back(pending_.data() + from, seg.at - from);
      if (!seg.bytes->empty()) gather_.emplace_back(seg.bytes->data(), seg.bytes->size());
      from = seg.at;
    }
    if (pending_.size() > from)
      gather_.emplace_back(pending_.data() + from, pending_.size() - from);
    return gather_;
  }

  void schedule_flush() {
    if (writing_) return;  // the write in flight flushes pending_ when it completes
    if (defer_to_batch(self_as<stream_connection>())) return;
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(socket_.get_executor(), [self = self_as<stream_connection>()] {
      self->flush_posted_ = false;
      self->flush();
    });
  }

  void flush_batched() override { flush(); }

  // Writes pending_ directly if the socket takes it all; otherwise hands the rest to
  // an async_write and collects later frames in pending_ meanwhile.
  void flush() {
    if (writing_ || pending_.empty() || closed_ || !writes_open()) return;
    if (!pending_shared_.empty()) {
      flush_gathered();
      return;
    }
    error_code ec;
    std::size_t n = socket_.write_some(asio::buffer(pending_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      n = 0;
    } else if (ec) {
      fail(io_error("write failed", ec));
      return;
    }
    if (n == pending_.size()) {
      pending_.clear();
      return;
    }
    writing_buffer_.assign(pending_.begin() + static_cast<std::ptrdiff_t>(n), pending_.end());
    pending_.clear();
    writing_left_ = writing_buffer_.size();
    writing_ = true;
    asio::async_write(socket_, asio::buffer(writing_buffer_),
                      [self = self_as<stream_connection>()](const error_code& ec, std::size_t) {
                        self->write_done(ec);
                      });
  }

  // flush() for a queue holding shared payloads: one gather write; what the socket does
  // not take goes on as an async_write that keeps the payloads referenced until done.
  void flush_gathered() {
    error_code ec;
    std::size_t n = socket_.write_some(gather_pending(), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      n = 0;
    } else if (ec) {
      fail(io_error("write failed", ec));
      return;
    }
    const auto total = pending_.size() + pending_shared_bytes_;
    if (n < total) {
      // Drop the n bytes written from the front of the buffer sequence.
      std::size_t skip = n, first = 0;
      while (skip >= gather_[first].size())
        skip -= gather_[first++].size();
      writing_gather_.assign(gather_.begin() + static_cast<std::ptrdiff_t>(first), gather_.end());
      writing_gather_.front() += skip;
      writing_buffer_.swap(pending_);
      writing_shared_.swap(pending_shared_);
      writing_left_ = total - n;
      writing_ = true;
      asio::async_write(socket_, writing_gather_,
                        [self = self_as<stream_connection>()](const error_code& ec, std::size_t) {
                          self->write_done(ec);
                        });
    }
    pending_.clear();
    pending_shared_.clear();
    pending_shared_bytes_ = 0;
  }

  void write_done(const error_code& ec) {
    writing_ = false;
    writing_left_ = 0;
    writing_buffer_.clear();
    writing_shared_.clear();
    writing_gather_.clear();
    if (ec) {
      fail(io_error("write failed", ec));
      return;
    }
    flush();
  }

  void read_more() {
    if (closed_) return;
    if (read_end_ == read_buffer_.size()) grow_read_buffer();
    socket_.async_read_some(
        asio::buffer(read_buffer_.data() + read_end_, read_buffer_.size() - read_end_),
        [self = self_as<stream_connection>()](const error_code& ec, std::size_t n) {
          if (ec) {
            auto e = io_error("read failed", ec);
            // Not an authentication failure: nothing was proved wrong.
            if (self->authenticating()) e.message += " during the authentication handshake";
            self->fail(std::move(e));
            return;
          }
          self->read_end_ += n;
          if (self->authenticating()) self->read_handshake();
          if (self->closed_) return;
          if (!self->authenticating()) self->deliver_frames();
          self->read_more();
        });
  }

  // Hands every complete frame in the buffer to the frame handler, then compacts.
  void deliver_frames() {
    if (expect_plain_ && read_end_ >= auth::magic.size()) {
      expect_plain_ = false;
      if (auth::has_magic({read_buffer_.data(), read_end_})) {
        fail(plexus::error(errc::permission_denied,
                           "authentication failed with " + description() +
                               ": it requires a shared secret and we have none; " +
                               std::string(secret_hint()),
                           {{"address", description()}}));
        return;
      }
    }
    batch_scope batch;
    std::size_t pos = 0;
    while (!closed_ && read_end_ - pos >= wire::frame_prefix_bytes) {
      const std::size_t body = wire::read_frame_length(read_buffer_.data() + pos);
      if (body > opts_.max_frame_bytes) {
        fail(plexus::error(errc::resource_exhausted,
                           "peer sent a frame of " + std::to_string(body) +
                               " bytes, above max_frame_bytes (" +
                               std::to_string(opts_.max_frame_bytes) + ")",
                           {{"limit", "max_frame_bytes"}}));
        return;
      }
      const std::size_t whole = wire::frame_prefix_bytes + body;
      if (read_end_ - pos < whole) break;  // read_more() grows the buffer as bytes come
      auto frame =
          wire::parse_frame_body({read_buffer_.data() + pos + wire::frame_prefix_bytes, body});
      if (!frame) {
        fail(plexus::error(errc::invalid_argument, "peer sent a malformed frame header"));
        return;
      }
      pos += whole;
      deliver(*frame);
    }
    if (closed_) return;
    if (pos > 0) {
      std::memmove(read_buffer_.data(), read_buffer_.data() + pos, read_end_ - pos);
      read_end_ -= pos;
    }
    // Give back memory taken by a one-off large frame once it has been consumed.
    if (read_end_ == 0 && read_buffer_.size() > 4 * initial_read_buffer) {
      read_buffer_.resize(initial_read_buffer);
      read_buffer_.shrink_to_fit();
    }
  }

  // The buffer is full and holds the start of one incomplete frame (deliver_frames()
  // consumed every whole one): double it, but never beyond the largest frame allowed.
  // A frame's announced size is never allocated before its bytes arrive, so a peer
  // that announces a large frame and stalls holds at most twice what it sent.
  void grow_read_buffer() {
    const std::size_t most =
        wire::frame_prefix_bytes + std::min<std::size_t>(opts_.max_frame_bytes, UINT32_MAX);
    read_buffer_.resize(std::max(read_buffer_.size(), std::min(read_buffer_.size() * 2, most)));
  }

  void fail(plexus::error e) {
    if (closed_) return;
    shutdown_socket();
    end(std::move(e));
  }

  void shutdown_socket() {
    if (hs_) hs_->timer.cancel();
    error_code ignored;
    socket_.shutdown(socket_type::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // ---- the tcp authentication handshake (transport/auth_handshake.hpp) --------------
  enum class hs_step { await_challenge, await_verdict, await_response, accepted };
  struct handshake {
    handshake(const asio::any_io_executor& ex, const auth::key& k) : timer(ex), key(k) {}
    ~handshake() { sodium_wipe(key); }
    asio::steady_timer timer;
    auth::key key;
    auth::nonce server_nonce{};
    auth::nonce client_nonce{};
    hs_step step = hs_step::await_challenge;
    bool writing = false;  // a handshake message is being written from `out`
    std::array<std::uint8_t, auth::response_bytes> out{};
  };

  static void sodium_wipe(auth::key& k) {
    volatile std::uint8_t* p = k.data();
    for (std::size_t i = 0; i < k.size(); ++i)
      p[i] = 0;
  }

  bool authenticating() const noexcept { return hs_ && hs_->step != hs_step::accepted; }
  // Frames leave only once both ends are authenticated and the last handshake message
  // is out.
  bool writes_open() const noexcept {
    return !hs_ || (hs_->step == hs_step::accepted && !hs_->writing);
  }

  void start_handshake() {
    hs_->timer.expires_after(opts_.handshake_timeout);
    hs_->timer.async_wait([self = self_as<stream_connection>()](const error_code& ec) {
      if (ec || !self->authenticating()) return;
      const auto ms = std::to_string(self->opts_.handshake_timeout.count());
      self->auth_failed(self->hs_->step == hs_step::await_challenge
                            ? "no authentication challenge within " + ms +
                                  " ms (handshake_timeout): does it have a secret?"
                            : "the handshake did not finish within " + ms +
                                  " ms (handshake_timeout)");
    });
    if (role_ == stream_role::server) {
      hs_->server_nonce = auth::random_nonce();
      auth::write_header(hs_->out.data(), auth::type::challenge);
      std::memcpy(hs_->out.data() + auth::header_bytes, hs_->server_nonce.data(),
                  auth::nonce_bytes);
      write_handshake(auth::challenge_bytes);
    }
  }

  void write_handshake(std::size_t n) {
    hs_->writing = true;
    asio::async_write(socket_, asio::buffer(hs_->out.data(), n),
                      [self = self_as<stream_connection>()](const error_code& ec, std::size_t) {
                        self->hs_->writing = false;
                        if (self->closed_) return;
                        if (ec) {
                          if (self->authenticating())
                            self->auth_failed("cannot write the handshake: " + ec.message());
                          else
                            self->fail(io_error("write failed", ec));
                          return;
                        }
                        self->flush();  // frames queued meanwhile leave now, if accepted
                      });
  }

  // Consumes the handshake messages at the front of the read buffer.
  void read_handshake() {
    const std::span<const std::uint8_t> in(read_buffer_.data(), read_end_);
    switch (hs_->step) {
      case hs_step::await_response: {
        if (in.size() >= auth::header_bytes && !auth::has_header(in, auth::type::response)) {
          refuse("the peer did not answer the challenge (a client without the secret?)");
          return;
        }
        if (in.size() < auth::response_bytes) return;
        std::memcpy(hs_->client_nonce.data(), in.data() + auth::header_bytes, auth::nonce_bytes);
        const auto expected = auth::client_mac(hs_->key, hs_->server_nonce, hs_->client_nonce);
        if (!auth::same_mac(expected,
                            in.subspan(auth::header_bytes + auth::nonce_bytes, auth::mac_bytes))) {
          refuse("the peer's proof is wrong (a different secret)");
          return;
        }
        consume(auth::response_bytes);
        accepted();
        auth::write_header(hs_->out.data(), auth::type::accepted);
        const auto proof = auth::server_mac(hs_->key, hs_->server_nonce, hs_->client_nonce);
        std::memcpy(hs_->out.data() + auth::header_bytes, proof.data(), proof.size());
        write_handshake(auth::verdict_bytes);
        return;
      }
      case hs_step::await_challenge: {
        if (in.size() >= auth::header_bytes && !auth::has_header(in, auth::type::challenge)) {
          auth_failed("it sent no authentication challenge: does it have a secret?");
          return;
        }
        if (in.size() < auth::challenge_bytes) return;
        std::memcpy(hs_->server_nonce.data(), in.data() + auth::header_bytes, auth::nonce_bytes);
        consume(auth::challenge_bytes);
        hs_->client_nonce = auth::random_nonce();
        const auto proof = auth::client_mac(hs_->key, hs_->server_nonce, hs_->client_nonce);
        auth::write_header(hs_->out.data(), auth::type::response);
        std::memcpy(hs_->out.data() + auth::header_bytes, hs_->client_nonce.data(),
                    auth::nonce_bytes);
        std::memcpy(hs_->out.data() + auth::header_bytes + auth::nonce_bytes, proof.data(),
                    proof.size());
        hs_->step = hs_step::await_verdict;
        write_handshake(auth::response_bytes);
        if (read_end_ > 0) read_handshake();  // the verdict cannot be here yet; stay safe
        return;
      }
      case hs_step::await_verdict: {
        if (in.size() >= auth::header_bytes && auth::has_header(in, auth::type::refused)) {
          auth_failed("it refused our proof: the secrets differ");
          return;
        }
        if (in.size() >= auth::header_bytes && !auth::has_header(in, auth::type::accepted)) {
          auth_failed("it sent a malformed handshake message");
          return;
        }
        if (in.size() < auth::verdict_bytes) return;
        const auto expected = auth::server_mac(hs_->key, hs_->server_nonce, hs_->client_nonce);
        if (!auth::same_mac(expected, in.subspan(auth::header_bytes, auth::mac_bytes))) {
          auth_failed("its proof is wrong: it does not know our secret");
          return;
        }
        consume(auth::verdict_bytes);
        accepted();
        flush();  // what the owner queued meanwhile (hello, calls)
        return;
      }
      case hs_step::accepted:
        return;
    }
  }

  void consume(std::size_t n) {
    std::memmove(read_buffer_.data(), read_buffer_.data() + n, read_end_ - n);
    read_end_ -= n;
  }

  void accepted() {
    hs_->step = hs_step::accepted;
    hs_->timer.cancel();
  }

  // Server: tells the client it is refused (if the socket takes it at once) and closes.
  void refuse(std::string_view why) {
    if (!hs_->writing) {
      std::array<std::uint8_t, auth::verdict_bytes> no{};
      auth::write_header(no.data(), auth::type::refused);
      error_code ignored;
      socket_.write_some(asio::buffer(no), ignored);
    }
    auth_failed(why);
  }

  void auth_failed(std::string_view why) {
    if (role_ == stream_role::client)
      fail(plexus::error(errc::permission_denied,
                         "authentication failed with " + description() + ": " + std::string(why),
                         {{"address", description()}}));
    else
      fail(plexus::error(errc::permission_denied,
                         "authentication failed on " + description() + ": " + std::string(why),
                         {{"address", description()}}));
  }

  socket_type socket_;
  options opts_;
  stream_role role_;
  std::unique_ptr<handshake> hs_;  // tcp with a secret only
  bool expect_plain_ = false;      // a tcp client without a secret: see deliver_frames()
  std::vector<std::uint8_t, uninitialized_allocator<std::uint8_t>> read_buffer_;
  std::size_t read_end_ = 0;
  std::vector<std::uint8_t> pending_;           // frames queued since the last write began
  std::vector<shared_segment> pending_shared_;  // payloads queued by reference, by offset
  std::size_t pending_shared_bytes_ = 0;
  std::vector<asio::const_buffer> gather_;      // scratch for gather_pending()
  std::vector<std::uint8_t> writing_buffer_;    // the write in flight
  std::vector<shared_segment> writing_shared_;  // …and the payloads it references
  std::vector<asio::const_buffer> writing_gather_;
  std::size_t writing_left_ = 0;  // bytes of the write in flight not yet written
  bool writing_ = false;
  bool flush_posted_ = false;
  std::optional<peer_credentials> credentials_;  // ipc only: SO_PEERCRED at creation
};

// The socket file a listener made. It is removed when the listener closes, and only
// while it is still that same socket: nothing else at the path is ever unlinked.
struct socket_file {
  std::string path;  // empty: none (tcp, or already removed)
  dev_t dev = 0;
  ino_t ino = 0;

  // The socket now at `p`, just bound by us; none if it cannot be seen.
  static socket_file at(std::string p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return {};
    return {std::move(p), st.st_dev, st.st_ino};
  }

  void remove() {
    if (path.empty()) return;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev &&
        st.st_ino == ino)
      ::unlink(path.c_str());
    path.clear();
  }
};

template <class Protocol>
class stream_listener final : public listener_impl,
                              public std::enable_shared_from_this<stream_listener<Protocol>> {
 public:
  stream_listener(typename Protocol::acceptor acceptor, const options& opts, std::string address,
                  socket_file file)
      : acceptor_(std::move(acceptor)),
        backoff_timer_(acceptor_.get_executor()),
        opts_(opts),
        address_(std::move(address)),
        file_(std::move(file)) {}

  ~stream_listener() override { file_.remove(); }

  void start(listener::accept_handler on_accept) override {
    on_accept_ = std::move(on_accept);
    accept_next();
  }

  void close() override {
    error_code ignored;
    acceptor_.close(ignored);
    backoff_timer_.cancel();
    on_accept_ = nullptr;
    file_.remove();
  }

  std::string address() const override { return address_; }

 private:
  // Out of descriptors, the listener waits this long before it accepts again, doubling
  // up to the most: the pending peers stay queued in the kernel meanwhile, and the loop
  // does not spin on a listening socket that stays readable.
  static constexpr std::chrono::milliseconds first_backoff{100};
  static constexpr std::chrono::milliseconds most_backoff{1000};

  void accept_next() {
    acceptor_.async_accept(
        [self = this->shared_from_this()](const error_code& ec, typename Protocol::socket s) {
          if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
          if (ec && !concerns_one_peer(ec)) {
            // Out of descriptors (EMFILE, ENFILE) or memory: accepting again at once
            // would fail again at once. Wait, then retry.
            self->back_off(ec);
            return;
          }
          if (!ec) {
            self->recovered();
            set_cloexec(s);
            if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
              error_code ignored;
              s.set_option(asio::ip::tcp::no_delay(true), ignored);
            }
            auto impl = std::make_shared<stream_connection<Protocol>>(
                std::move(s), self->opts_, self->address_, stream_role::server);
            if (self->on_accept_) self->on_accept_(connection(std::move(impl)));
          }
          self->accept_next();
        });
  }

  // The accept errors that end one pending connection, not the next one: accept(2)
  // says to retry these at once.
  static bool concerns_one_peer(const error_code& ec) {
    if (ec.category() != boost::system::system_category()) return false;
    switch (ec.value()) {
      case ECONNABORTED:
      case EINTR:
      case EAGAIN:
      case EPERM:
      case EPROTO:
      case ENOPROTOOPT:
      case ENETDOWN:
      case ENETUNREACH:
      case EHOSTDOWN:
      case EHOSTUNREACH:
      case ENONET:
      case EOPNOTSUPP:
        return true;
      default:
        return false;
    }
  }

  // One episode of failing accepts: said once on stderr, then retried after a growing
  // pause; the next accepted peer ends it (recovered()).
  void back_off(const error_code& ec) {
    if (backoff_ == std::chrono::milliseconds::zero()) {
      backoff_ = first_backoff;
      std::fprintf(stderr,
                   "plexus: cannot accept on %s: %s; trying again in %lld ms, then up to every "
                   "%lld ms until it succeeds\n",
                   address_.c_str(), ec.message().c_str(),
                   static_cast<long long>(first_backoff.count()),
                   static_cast<long long>(most_backoff.count()));
    } else {
      backoff_ = std::min(backoff_ * 2, most_backoff);
    }
    backoff_timer_.expires_after(backoff_);
    backoff_timer_.async_wait([self = this->shared_from_this()](const error_code& ec) {
      if (ec || !self->acceptor_.is_open()) return;
      self->accept_next();
    });
  }

  void recovered() {
    if (backoff_ == std::chrono::milliseconds::zero()) return;
    backoff_ = std::chrono::milliseconds::zero();
    std::fprintf(stderr, "plexus: accepting on %s again\n", address_.c_str());
  }

  typename Protocol::acceptor acceptor_;
  asio::steady_timer backoff_timer_;
  std::chrono::milliseconds backoff_{0};  // zero: not backing off
  options opts_;
  std::string address_;
  socket_file file_;
  listener::accept_handler on_accept_;
};

plexus::error os_error(const address& addr, std::string_view what, const error_code& ec) {
  const bool refused =
      ec == asio::error::connection_refused || ec == asio::error::not_found || ec.value() == ENOENT;
  return {refused ? errc::unavailable : errc::internal,
          std::string(what) + " " + addr.to_string() + ": " +
              (refused ? std::string("nothing is listening there") : ec.message()),
          {{"address", addr.to_string()}}};
}

}  // namespace

result<void> prepare_socket_path(asio::io_context& io, const address& addr) {
  const auto fail = [&](const std::string& why) {
    return plexus::error(errc::unavailable, "cannot listen on " + addr.to_string() + ": " + why,
                         {{"address", addr.to_string()}});
  };
  if (const std::filesystem::path path(addr.path); path.has_parent_path()) {
    if (auto why = os::ensure_socket_dir(path.parent_path().string())) return fail(*why);
  }
  // Only a socket nobody listens on (its process died) is removed.
  struct stat st {};
  if (::lstat(addr.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail("cannot check " + addr.path + ": " + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    const char* what = S_ISLNK(st.st_mode)   ? "a symbolic link"
                       : S_ISDIR(st.st_mode) ? "a directory"
                       : S_ISREG(st.st_mode) ? "a regular file"
                                             : "not a socket";
    return fail(addr.path + " exists and is " + what + "; refusing to replace it");
  }
  error_code ec;
  asio::local::stream_protocol::socket probe(io);
  open_cloexec(probe, asio::local::stream_protocol(), ec);
  if (!ec) probe.connect(asio::local::stream_protocol::endpoint(addr.path), ec);
  if (!ec)
    return plexus::error(errc::unavailable,
                         "address in use: something is already listening at " + addr.to_string(),
                         {{"address", addr.to_string()}});
  if (ec != asio::error::connection_refused)
    return fail("cannot tell whether the socket " + addr.path + " is in use: " + ec.message());
  if (::unlink(addr.path.c_str()) != 0 && errno != ENOENT)
    return fail("cannot remove the stale socket " + addr.path + ": " + std::strerror(errno));
  return {};
}

namespace {

result<asio::ip::tcp::endpoint> tcp_endpoint(asio::io_context& io, const address& addr,
                                             bool for_bind) {
  error_code ec;
  std::string host = addr.host;
  if (host == "*") host = for_bind ? "0.0.0.0" : "127.0.0.1";
  auto ip = asio::ip::make_address(host, ec);
  if (!ec) return asio::ip::tcp::endpoint(ip, addr.port);
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(host, std::to_string(addr.port), ec);
  if (ec || results.empty())
    return plexus::error(errc::invalid_argument, "cannot resolve host '" + host + "'",
                         {{"address", addr.to_string()}});
  return results.begin()->endpoint();
}

}  // namespace

namespace {

// A Unix-socket connect that never waits: on a non-blocking socket it succeeds or fails
// at once, a full listen backlog included (EAGAIN; Asio's connect() would poll for it).
result<connection> connect_ipc(asio::io_context& io, const address& addr, const options& opts) {
  error_code ec;
  asio::local::stream_protocol::socket s(io);
  open_cloexec(s, asio::local::stream_protocol(), ec);
  if (!ec) s.non_blocking(true, ec);
  if (!ec) {
    const asio::local::stream_protocol::endpoint ep(addr.path);
    if (::connect(s.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) != 0)
      ec.assign(errno, boost::system::system_category());
  }
  if (ec == asio::error::would_block)
    return plexus::error(errc::unavailable,
                         "cannot connect to " + addr.to_string() +
                             ": its listen backlog is full (the listener is not accepting)",
                         {{"address", addr.to_string()}});
  if (ec) return os_error(addr, "cannot connect to", ec);
  return connection(std::make_shared<stream_connection<asio::local::stream_protocol>>(
      std::move(s), opts, addr.to_string(), stream_role::client));
}

plexus::error connect_timed_out(const address& addr, const options& opts) {
  return {errc::unavailable,
          "cannot connect to " + addr.to_string() + ": no answer within " +
              std::to_string(opts.connect_timeout.count()) + " ms (connect_timeout)",
          {{"address", addr.to_string()}}};
}

connection tcp_client(asio::ip::tcp::socket s, const address& addr, const options& opts) {
  error_code ignored;
  s.set_option(asio::ip::tcp::no_delay(true), ignored);
  return connection(std::make_shared<stream_connection<asio::ip::tcp>>(
      std::move(s), opts, addr.to_string(), stream_role::client));
}

// One async tcp connect: the host resolved (on Asio's resolver thread) unless it is a
// literal address, then each of its endpoints tried in turn, all within
// opts.connect_timeout.
class tcp_connect_op : public std::enable_shared_from_this<tcp_connect_op> {
 public:
  tcp_connect_op(asio::io_context& io, const address& addr, const options& opts,
                 connect_handler done)
      : resolver_(io), socket_(io), timer_(io), addr_(addr), opts_(opts), done_(std::move(done)) {}

  void start() {
    timer_.expires_after(opts_.connect_timeout);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->finished_) return;
      self->timed_out_ = true;
      self->resolver_.cancel();
      error_code ignored;
      self->socket_.close(ignored);  // the pending connect completes with operation_aborted
    });
    std::string host = addr_.host == "*" ? "127.0.0.1" : addr_.host;
    error_code ec;
    if (const auto ip = asio::ip::make_address(host, ec); !ec) {
      endpoints_.emplace_back(ip, addr_.port);
      return try_next();
    }
    resolver_.async_resolve(
        host, std::to_string(addr_.port),
        [self = shared_from_this(), host](const error_code& ec,
                                          const asio::ip::tcp::resolver::results_type& results) {
          if (self->finished_) return;
          if (self->timed_out_) return self->finish(connect_timed_out(self->addr_, self->opts_));
          if (ec || results.empty())
            return self->finish(plexus::error(errc::invalid_argument,
                                              "cannot resolve host '" + host + "'",
                                              {{"address", self->addr_.to_string()}}));
          for (const auto& r : results)
            self->endpoints_.push_back(r.endpoint());
          self->try_next();
        });
  }

 private:
  void try_next() {
    if (timed_out_) return finish(connect_timed_out(addr_, opts_));
    if (next_ == endpoints_.size()) return finish(os_error(addr_, "cannot connect to", last_));
    const auto ep = endpoints_[next_++];
    error_code ec;
    socket_.close(ec);
    open_cloexec(socket_, ep.protocol(), ec);  // Asio's own open would not be close-on-exec
    if (ec) {
      last_ = ec;
      return try_next();
    }
    socket_.async_connect(ep, [self = shared_from_this()](const error_code& ec) {
      if (self->finished_) return;
      if (!ec) return self->finish(tcp_client(std::move(self->socket_), self->addr_, self->opts_));
      self->last_ = ec;
      self->try_next();
    });
  }

  void finish(result<connection> c) {
    finished_ = true;
    timer_.cancel();
    opts_.secret.clear();
    auto done = std::move(done_);
    done(std::move(c));
  }

  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  address addr_;
  options opts_;
  connect_handler done_;
  std::vector<asio::ip::tcp::endpoint> endpoints_;
  std::size_t next_ = 0;
  error_code last_ = asio::error::host_not_found;
  bool timed_out_ = false;
  bool finished_ = false;
};

// A blocking connect bounded by opts.connect_timeout: non-blocking connect(2), then
// poll(2) for the answer.
void connect_bounded(asio::ip::tcp::socket& s, const asio::ip::tcp::endpoint& ep,
                     std::chrono::milliseconds timeout, error_code& ec) {
  s.non_blocking(true, ec);
  if (ec) return;
  if (::connect(s.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) == 0) return;
  if (errno != EINPROGRESS) {
    ec.assign(errno, boost::system::system_category());
    return;
  }
  pollfd p{s.native_handle(), POLLOUT, 0};
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ec.assign(errno, boost::system::system_category());
    return;
  }
  if (n == 0) {
    ec = asio::error::timed_out;
    return;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) ec.assign(err, boost::system::system_category());
}

}  // namespace

result<connection> connect_stream(asio::io_context& io, const address& addr, const options& opts) {
  if (addr.scheme == scheme::ipc) return connect_ipc(io, addr, opts);
  auto ep = tcp_endpoint(io, addr, false);
  if (!ep) return std::move(ep).error();
  error_code ec;
  asio::ip::tcp::socket s(io);
  open_cloexec(s, ep->protocol(), ec);
  if (!ec) connect_bounded(s, *ep, opts.connect_timeout, ec);
  if (ec == asio::error::timed_out) return connect_timed_out(addr, opts);
  if (ec) return os_error(addr, "cannot connect to", ec);
  return tcp_client(std::move(s), addr, opts);
}

void connect_stream_async(asio::io_context& io, const address& addr, const options& opts,
                          connect_handler done) {
  if (addr.scheme == scheme::ipc) {
    asio::post(io, [c = connect_ipc(io, addr, opts), done = std::move(done)]() mutable {
      done(std::move(c));
    });
    return;
  }
  std::make_shared<tcp_connect_op>(io, addr, opts, std::move(done))->start();
}

result<listener> listen_stream(asio::io_context& io, const address& addr, const options& opts) {
  error_code ec;
  if (addr.scheme == scheme::ipc) {
    if (auto ok = prepare_socket_path(io, addr); !ok) return std::move(ok).error();
    asio::local::stream_protocol::acceptor acceptor(io);
    open_cloexec(acceptor, asio::local::stream_protocol(), ec);
    if (!ec) acceptor.bind(asio::local::stream_protocol::endpoint(addr.path), ec);
    auto file = ec ? socket_file{} : socket_file::at(addr.path);
    // Owner only, before listen(): until then a connect is refused anyway, so no
    // other user gets in between bind and chmod.
    if (!ec && ::chmod(addr.path.c_str(), 0600) != 0)
      ec = error_code(errno, boost::system::system_category());
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      file.remove();
      return os_error(addr, "cannot listen on", ec);
    }
    return listener(std::make_shared<stream_listener<asio::local::stream_protocol>>(
        std::move(acceptor), opts, addr.to_string(), std::move(file)));
  }
  auto ep = tcp_endpoint(io, addr, true);
  if (!ep) return std::move(ep).error();
  if (opts.secret.empty() && !is_loopback_host(ep->address().to_string()))
    return plexus::error(errc::permission_denied,
                         "refusing to listen on " + addr.to_string() +
                             " without authentication: a tcp address other than loopback "
                             "(127.0.0.1, ::1) needs a shared secret; " +
                             std::string(secret_hint()),
                         {{"address", addr.to_string()}});
  asio::ip::tcp::acceptor acceptor(io);
  open_cloexec(acceptor, ep->protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(*ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return os_error(addr, "cannot listen on", ec);
  address bound = addr;
  bound.port = acceptor.local_endpoint(ec).port();
  if (bound.host == "*") bound.host = "127.0.0.1";
  return listener(std::make_shared<stream_listener<asio::ip::tcp>>(
      std::move(acceptor), opts, bound.to_string(), socket_file{}));
}

}  // namespace plexus::transport::detail
