// ZeroMQ ROUTER endpoints (see include/plexus/transport/zmq.hpp).
//
// Event-loop integration: libzmq exposes ZMQ_FD, a descriptor that signals *changes*
// of ZMQ_EVENTS (edge-triggered). The loop waits on it; every wake-up drains the
// socket until ZMQ_EVENTS has no POLLIN, and ZMQ_EVENTS is checked again after
// arming the wait and after every send, because a send can consume the edge.
//
// Peer loss: libzmq 4.3 (without draft APIs) does not say which identity a
// disconnect belongs to, so each received message's source fd (ZMQ_SRCFD) is
// recorded per identity, and a socket monitor's ZMQ_EVENT_DISCONNECTED (whose value
// is the fd) ends the peer that currently owns that fd.
//
// Sender names (seed compatibility): a seed router hands a client `[sender, payload]`
// where sender is the identity the client addressed, and seed programs use it as the
// address of their next message. So a frontend peer remembers, per msgid of each
// request it sends, the name it addressed, and a response to that msgid goes out with
// that name as its sender instead of the worker's peer id — a name the client can
// send to. The memory is bounded (max_addressed_calls); beyond it the peer id is sent.

#include "plexus/transport/zmq.hpp"

#include <sys/stat.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "plexus/transport/address.hpp"
#include "plexus/transport/auth.hpp"
#include "plexus/wire/control.hpp"
#include "plexus/wire/message.hpp"
#include "transport/auth_handshake.hpp"
#include "transport/connection_impl.hpp"

namespace plexus::transport {
namespace detail {
namespace {

namespace asio = boost::asio;

zmq::context_t& shared_context() {
  static zmq::context_t ctx(1);
  return ctx;
}

// Waits on a ZeroMQ socket's ZMQ_FD from the loop and calls `drain` whenever the
// socket may have messages. The descriptor is borrowed from libzmq, never closed here.
class zmq_waiter {
 public:
  zmq_waiter(asio::io_context& io, zmq::socket_t& sock)
      : sock_(sock), fd_(io, sock.get(zmq::sockopt::fd)) {}
  ~zmq_waiter() { stop(); }

  void start(std::function<void()> drain) {
    drain_ = std::move(drain);
    arm();
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ignored;
    fd_.cancel(ignored);
    fd_.release();
  }

  bool readable() const { return (sock_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0; }

  // Called after sending: a send may swallow the edge that announced new input.
  void after_send() {
    if (!stopped_ && readable()) schedule();
  }

  // Runs `drain` from the loop soon (once, however often it is asked).
  void schedule() {
    if (posted_ || stopped_) return;
    posted_ = true;
    asio::post(fd_.get_executor(), [this, alive = alive_] {
      if (!*alive) return;
      posted_ = false;
      if (!stopped_) drain_();
    });
  }

  std::shared_ptr<bool> alive() const { return alive_; }

 private:
  void arm() {
    if (stopped_ || waiting_) return;
    waiting_ = true;
    fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                   [this, alive = alive_](const boost::system::error_code& ec) {
                     if (!*alive) return;
                     waiting_ = false;
                     if (ec || stopped_) return;
                     drain_();
                     arm();
                   });
    // Input that arrived before the wait was armed raised no new edge.
    if (readable()) schedule();
  }

  zmq::socket_t& sock_;
  asio::posix::stream_descriptor fd_;
  std::function<void()> drain_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool waiting_ = false;
  bool posted_ = false;
  bool stopped_ = false;

 public:
  // Marks callbacks still queued in the loop as stale.
  void kill() { *alive_ = false; }
};

class zmq_endpoint;

// One ZeroMQ peer identity seen as a connection.
class zmq_peer final : public connection_base {
 public:
  zmq_peer(asio::io_context& io, std::weak_ptr<zmq_endpoint> endpoint, std::string identity, int fd,
           std::string description)
      : connection_base(io.get_executor(), std::move(description)),
        endpoint_(std::move(endpoint)),
        identity_(std::move(identity)),
        fd_(fd) {}

  void start(connection::frame_handler on_frame, connection::close_handler on_close) override {
    keep_handlers(std::move(on_frame), std::move(on_close));
  }
  result<void> send(wire::frame_kind kind, std::string_view name,
                    std::span<const std::uint8_t> payload) override;
  void close() override;
  std::size_t queued_bytes() const noexcept override { return 0; }

  using connection_base::deliver;
  // Ends this peer (disconnect, reconnect under the same identity, close()). The
  // close handler runs from the loop, never inside send() or close().
  void ended(plexus::error e) { end(std::move(e)); }

  const std::string& identity() const { return identity_; }
  int fd() const { return fd_; }

  // Frontend peers: the name a request addressed, remembered until its response.
  static constexpr std::size_t max_addressed_calls = 65536;
  void remember_addressed(std::uint32_t msgid, std::string_view name) {
    if (addressed_.size() < max_addressed_calls || addressed_.contains(msgid))
      addressed_[msgid] = std::string(name);
  }
  // The name the request `msgid` addressed, forgotten as it is read; empty if unknown.
  std::string take_addressed(std::uint32_t msgid) {
    auto it = addressed_.find(msgid);
    if (it == addressed_.end()) return {};
    auto name = std::move(it->second);
    addressed_.erase(it);
    return name;
  }

 private:
  std::weak_ptr<zmq_endpoint> endpoint_;
  std::string identity_;
  int fd_;
  std::unordered_map<std::uint32_t, std::string> addressed_;
};

class zmq_endpoint final : public listener_impl,
                           public batch_member,
                           public std::enable_shared_from_this<zmq_endpoint> {
 public:
  zmq_endpoint(asio::io_context& io, zmq::socket_t sock, zmq::socket_t monitor, std::string address,
               zmq_role role, const options& opts)
      : io_(io),
        sock_(std::move(sock)),
        monitor_(std::move(monitor)),
        address_(std::move(address)),
        role_(role),
        opts_(opts),
        sock_waiter_(io, sock_),
        monitor_waiter_(io, monitor_) {}

  ~zmq_endpoint() override { close(); }

  void start(listener::accept_handler on_accept) override {
    on_accept_ = std::move(on_accept);
    sock_waiter_.start([this] { drain(); });
    monitor_waiter_.start([this] { drain_monitor(); });
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    sock_waiter_.kill();
    monitor_waiter_.kill();
    sock_waiter_.stop();
    monitor_waiter_.stop();
    auto peers = std::move(peers_);
    peers_.clear();
    for (auto& [id, p] : peers)
      p->ended({errc::unavailable, "zeromq endpoint closed"});
    // Stop the monitor before closing its reader: libzmq's I/O thread sends monitor
    // events with a blocking send, and a send to a PAIR with no peer would block that
    // thread (and every socket of the context) for good.
    zmq_socket_monitor(sock_.handle(), nullptr, 0);
    sock_.set(zmq::sockopt::linger, 0);
    monitor_.close();
    sock_.close();
    on_accept_ = nullptr;
  }

  std::string address() const override { return address_; }

  result<void> send_to(zmq_peer& p, wire::frame_kind kind, std::string_view name,
                       std::span<const std::uint8_t> payload) {
    if (closed_) return plexus::error(errc::unavailable, "zeromq endpoint closed");
    if (kind == wire::frame_kind::control) return {};  // native-only
    if (auto ok = check_frame(opts_, name, payload.size()); !ok) return ok;
    std::string addressed;
    if (role_ == zmq_role::frontend) {
      if (auto h = wire::peek(payload); h && h->kind == wire::message_kind::response) {
        addressed = p.take_addressed(h->msgid);
        if (!addressed.empty()) name = addressed;
      }
    }
    try {
      const auto& id = p.identity();
      if (!sock_.send(zmq::buffer(id.data(), id.size()),
                      zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
          !sock_.send(zmq::buffer(name.data(), name.size()),
                      zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
          !sock_.send(zmq::buffer(payload.data(), payload.size()), zmq::send_flags::dontwait)) {
        sock_waiter_.after_send();
        return plexus::error(errc::resource_exhausted,
                             "zeromq send queue to " + describe(id) + " is full (ZMQ_SNDHWM)",
                             {{"limit", "ZMQ_SNDHWM"}});
      }
    } catch (const zmq::error_t& e) {
      sock_waiter_.after_send();
      if (e.num() == EHOSTUNREACH) {
        // ROUTER_MANDATORY: the identity is not connected (any more).
        end_peer(p.identity(), {errc::unavailable,
                                "zeromq peer " + describe(p.identity()) + " is not connected"});
        return plexus::error(errc::unavailable,
                             "zeromq peer " + describe(p.identity()) + " is not connected");
      }
      return plexus::error(errc::internal, std::string("zeromq send failed: ") + e.what());
    }
    // One ZMQ_EVENTS check per batch, not per message (each check is a syscall).
    if (!check_pending_) {
      check_pending_ = true;
      if (!defer_to_batch(shared_from_this())) flush_batched();
    }
    return {};
  }

  void flush_batched() override {
    check_pending_ = false;
    if (!closed_) sock_waiter_.after_send();
  }

  void forget(const std::string& identity) { peers_.erase(identity); }

 private:
  static std::string describe(std::string_view id) {
    bool printable = !id.empty();
    for (unsigned char c : id)
      printable = printable && c >= 0x20 && c < 0x7f;
    if (printable) return std::string(id);
    static const char* hex = "0123456789abcdef";
    std::string out = "0x";
    for (unsigned char c : id) {
      out += hex[c >> 4];
      out += hex[c & 15];
    }
    return out;
  }

  // Reads everything available (bounded per turn for fairness with other sockets).
  void drain() {
    batch_scope batch;
    auto alive = sock_waiter_.alive();
    for (int budget = 4096; budget > 0 && !closed_; --budget) {
      zmq::message_t id;
      try {
        if (!sock_.recv(id, zmq::recv_flags::dontwait)) return;
      } catch (const zmq::error_t&) {
        return;
      }
      parts_.clear();
      bool more = id.more();
      while (more) {
        zmq::message_t part;
        if (!sock_.recv(part, zmq::recv_flags::dontwait)) break;
        more = part.more();
        parts_.push_back(std::move(part));
      }
      on_message(id.to_string(), source_fd());
      if (!*alive) return;  // the endpoint was closed from a handler
    }
    if (!closed_) sock_waiter_.schedule();  // budget spent: continue next turn
  }

  // The descriptor the current message came in on. ROUTER synthesizes the identity
  // frame, which has no source, so it is read off the first frame from the wire.
  int source_fd() {
    if (parts_.empty()) return -1;
    try {
      return parts_[0].get(ZMQ_SRCFD);
    } catch (const zmq::error_t&) {
      return -1;
    }
  }

  void on_message(std::string identity, int fd) {
    const bool probe = parts_.size() == 1 && parts_[0].size() == 0;
    auto peer = peer_for(identity, fd, probe);
    if (!peer || probe) return;
    if (parts_.size() != 2) {
      ++malformed_;
      return;
    }
    const auto& name = parts_[0];
    const auto& payload = parts_[1];
    if (name.size() > wire::max_name_bytes) {
      ++malformed_;
      return;
    }
    if (role_ == zmq_role::frontend && name.size() > 0) {
      const std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(payload.data()),
                                                payload.size());
      if (auto h = wire::peek(bytes); h && h->kind == wire::message_kind::request)
        peer->remember_addressed(
            h->msgid, std::string_view(static_cast<const char*>(name.data()), name.size()));
    }
    peer->deliver(
        wire::frame_view{wire::frame_kind::data,
                         std::string_view(static_cast<const char*>(name.data()), name.size()),
                         std::span<const std::uint8_t>(
                             static_cast<const std::uint8_t*>(payload.data()), payload.size())});
  }

  // The peer for an identity, accepting it on first contact. A known identity seen
  // on a new fd has reconnected (ROUTER_HANDOVER): the old peer ends first, so its
  // unanswered calls fail instead of waiting for an answer that will not come.
  //
  // A probe (the empty message a seed DEALER sends on connecting) always starts a new
  // connection, even when the descriptor number is the same as the old one's.
  std::shared_ptr<zmq_peer> peer_for(const std::string& identity, int fd, bool probe) {
    auto it = peers_.find(identity);
    if (it != peers_.end() && !probe && (it->second->fd() == fd || fd < 0)) return it->second;
    // A descriptor number is reused once its connection is gone. The monitor reports
    // the old connection's loss before its descriptor is closed, so reading pending
    // reports now ends the old owner before the new peer takes the number.
    read_disconnects();
    it = peers_.find(identity);
    if (it != peers_.end()) {
      if (!probe && (it->second->fd() == fd || fd < 0)) return it->second;
      end_peer(identity, {errc::unavailable, "zeromq peer " + describe(identity) + " reconnected"});
    }
    if (!on_accept_) return nullptr;
    auto peer = std::make_shared<zmq_peer>(io_, weak_from_this(), identity, fd,
                                           "zmq:" + address_ + "#" + describe(identity));
    peers_[identity] = peer;
    if (fd >= 0) fd_owner_[fd] = identity;
    on_accept_(connection(peer));
    if (role_ == zmq_role::backend) {
      // A seed-style service announces itself only by connecting: its identity is
      // its service name. Speak for it to the router.
      announce(*peer, {{"op", control::hello}, {"name", identity}});
      announce(*peer, {{"op", control::register_service}, {"service", identity}});
    }
    return peer;
  }

  void announce(zmq_peer& p, const value& v) {
    std::vector<std::uint8_t> bytes;
    wire::encode_value(bytes, v);
    p.deliver(wire::frame_view{wire::frame_kind::control, "", bytes});
  }

  void end_peer(const std::string& identity, plexus::error why) {
    auto it = peers_.find(identity);
    if (it == peers_.end()) return;
    auto peer = it->second;
    peers_.erase(it);
    auto f = fd_owner_.find(peer->fd());
    if (f != fd_owner_.end() && f->second == identity) fd_owner_.erase(f);
    peer->ended(std::move(why));
  }

  void drain_monitor() {
    // Messages already queued from a lost peer are delivered before it ends.
    drain();
    if (!read_disconnects() && !closed_) monitor_waiter_.schedule();
  }

  // Ends the peers whose connections the monitor reported lost. Returns false when
  // its budget ran out with reports left.
  bool read_disconnects() {
    for (int budget = 1024; budget > 0; --budget) {
      if (closed_) return true;
      zmq::message_t event, endpoint;
      try {
        if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return true;
        if (event.more()) (void)monitor_.recv(endpoint, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t&) {
        return true;
      }
      if (event.size() < 6) continue;
      std::uint16_t kind;
      std::int32_t value;
      std::memcpy(&kind, event.data(), 2);
      std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
      if (kind != ZMQ_EVENT_DISCONNECTED) continue;
      auto f = fd_owner_.find(value);
      if (f == fd_owner_.end()) continue;
      const auto identity = f->second;
      end_peer(identity,
               {errc::unavailable, "zeromq peer " + describe(identity) + " disconnected"});
    }
    return false;
  }

  asio::io_context& io_;
  zmq::socket_t sock_;
  zmq::socket_t monitor_;
  std::string address_;
  zmq_role role_;
  options opts_;
  zmq_waiter sock_waiter_;
  zmq_waiter monitor_waiter_;
  listener::accept_handler on_accept_;
  std::unordered_map<std::string, std::shared_ptr<zmq_peer>> peers_;
  std::unordered_map<int, std::string> fd_owner_;
  std::vector<zmq::message_t> parts_;
  std::uint64_t malformed_ = 0;
  bool closed_ = false;
  bool check_pending_ = false;
};

result<void> zmq_peer::send(wire::frame_kind kind, std::string_view name,
                            std::span<const std::uint8_t> payload) {
  if (closed_) return plexus::error(errc::unavailable, "connection is closed");
  auto endpoint = endpoint_.lock();
  if (!endpoint) return plexus::error(errc::unavailable, "zeromq endpoint closed");
  return endpoint->send_to(*this, kind, name, payload);
}

void zmq_peer::close() {
  if (closed_) return;
  // ZeroMQ cannot drop one peer of a ROUTER: the identity is forgotten, and a later
  // message from it is accepted as a new peer.
  if (auto endpoint = endpoint_.lock()) endpoint->forget(identity_);
  ended({errc::unavailable, "connection closed locally"});
}

// Where seed-style PUB clients connect: a SUB socket subscribed to everything. Each
// message is [topic, notification]; the notification is published under its method
// (which a seed PUB client also sends as the topic frame).
class zmq_publishers_inlet final : public inlet {
 public:
  zmq_publishers_inlet(asio::io_context& io, zmq::socket_t sock, std::string address)
      : sock_(std::move(sock)), address_(std::move(address)), waiter_(io, sock_) {}
  ~zmq_publishers_inlet() override { close(); }

  void start(handler on_publication) override {
    on_publication_ = std::move(on_publication);
    waiter_.start([this] { drain(); });
  }
  void close() override {
    if (closed_) return;
    closed_ = true;
    waiter_.kill();
    waiter_.stop();
    sock_.close();
  }
  std::string address() const override { return address_; }

 private:
  void drain() {
    batch_scope batch;
    auto alive = waiter_.alive();
    for (int budget = 4096; budget > 0 && !closed_; --budget) {
      zmq::message_t topic, payload;
      try {
        if (!sock_.recv(topic, zmq::recv_flags::dontwait)) return;
        if (!topic.more()) continue;  // not [topic, payload]: skipped
        if (!sock_.recv(payload, zmq::recv_flags::dontwait)) return;
        bool more = payload.more();
        while (more) {  // extra frames: the message is skipped whole
          zmq::message_t extra;
          if (!sock_.recv(extra, zmq::recv_flags::dontwait)) return;
          more = extra.more();
          payload.rebuild();
        }
      } catch (const zmq::error_t&) {
        return;
      }
      if (payload.size() == 0) continue;
      on_publication_(std::span<const std::uint8_t>(
          static_cast<const std::uint8_t*>(payload.data()), payload.size()));
      if (!*alive) return;
    }
    if (!closed_) waiter_.schedule();
  }

  zmq::socket_t sock_;
  std::string address_;
  zmq_waiter waiter_;
  handler on_publication_;
  bool closed_ = false;
};

// Where seed-style SUB services connect: a PUB socket. ZeroMQ filters by the
// subscribers' topic prefixes and drops, per subscriber, what exceeds its SNDHWM;
// libzmq does not say how much, so dropped() counts only sends it refused.
class zmq_subscribers_outlet final : public outlet {
 public:
  zmq_subscribers_outlet(zmq::socket_t sock, std::string address)
      : sock_(std::move(sock)), address_(std::move(address)) {}
  ~zmq_subscribers_outlet() override { close(); }

  void publish(std::string_view topic, std::span<const std::uint8_t> payload) override {
    if (closed_) return;
    try {
      if (!sock_.send(zmq::buffer(topic.data(), topic.size()),
                      zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
          !sock_.send(zmq::buffer(payload.data(), payload.size()), zmq::send_flags::dontwait))
        ++dropped_;
    } catch (const zmq::error_t&) {
      ++dropped_;
    }
  }
  void close() override {
    if (closed_) return;
    closed_ = true;
    sock_.close();
  }
  std::string address() const override { return address_; }
  std::uint64_t dropped() const noexcept override { return dropped_; }

 private:
  zmq::socket_t sock_;
  std::string address_;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
};

}  // namespace
}  // namespace detail

namespace {

plexus::error bind_error(const char* what, const std::string& addr, errc code,
                         const std::string& why) {
  return plexus::error(code, std::string("cannot bind zeromq ") + what + " " + addr + ": " + why,
                       {{"address", addr}});
}

plexus::error bind_error(const char* what, const std::string& addr, const zmq::error_t& e) {
  if (e.num() == EADDRINUSE) return bind_error(what, addr, errc::unavailable, "address in use");
  if (e.num() == EINVAL || e.num() == EPROTONOSUPPORT || e.num() == ENOENT)
    return bind_error(what, addr, errc::invalid_argument, e.what());
  return bind_error(what, addr, errc::internal, e.what());
}

// The ZAP handler of this process's ZeroMQ context (RFC 27), on a thread of its own:
// it only compares keys, and libzmq's I/O thread waits for its answer, so it must not
// depend on any event loop. A CURVE server socket's ZAP domain is the Z85 public key
// of the one client key it accepts (curve_keys(secret).client_public: public, not the
// secret); a CURVE client is accepted only if its key is that one. Sockets with the
// NULL mechanism (ipc, loopback tcp without a secret) are let through as before: libzmq
// asks the handler about them too once one exists. The thread ends when the context
// is terminated (ETERM).
void zap_loop(zmq::socket_t sock) {
  for (;;) {
    std::vector<zmq::message_t> req;
    try {
      if (!zmq::recv_multipart(sock, std::back_inserter(req))) continue;
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      continue;
    }
    // version, request_id, domain, address, routing_id, mechanism, credentials...
    bool ok = false;
    if (req.size() >= 6) {
      const auto mechanism = req[5].to_string_view();
      const auto domain = req[2].to_string_view();
      if (mechanism == "NULL") {
        ok = true;
      } else if (mechanism == "CURVE" && req.size() >= 7 && req[6].size() == 32 &&
                 domain.size() == 40) {
        char key[41];
        zmq_z85_encode(key, static_cast<const std::uint8_t*>(req[6].data()), 32);
        ok = std::string_view(key, 40) == domain;
      }
    }
    std::array<zmq::const_buffer, 6> reply{
        zmq::str_buffer("1.0"),
        zmq::buffer(req.size() >= 2 ? req[1].data() : nullptr, req.size() >= 2 ? req[1].size() : 0),
        ok ? zmq::str_buffer("200") : zmq::str_buffer("400"),
        ok ? zmq::str_buffer("OK") : zmq::str_buffer("not the key of this secret"),
        zmq::str_buffer(""),
        zmq::str_buffer("")};
    try {
      zmq::send_multipart(sock, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
    }
  }
}

void ensure_zap_handler() {
  static std::mutex m;
  static bool running = false;
  std::lock_guard lock(m);
  if (running) return;
  zmq::socket_t sock(detail::shared_context(), zmq::socket_type::rep);
  sock.set(zmq::sockopt::linger, 0);
  sock.bind("inproc://zeromq.zap.01");
  std::thread(zap_loop, std::move(sock)).detach();
  running = true;
}

// Before binding `sock` at `addr`: a tcp endpoint beyond loopback needs a secret; with
// a secret, every tcp endpoint is a CURVE server that the ZAP handler guards.
result<void> secure(zmq::socket_t& sock, const std::string& addr, const options& opts,
                    const char* what) {
  if (!addr.starts_with("tcp://")) return {};
  if (opts.secret.empty()) {
    const auto rest = std::string_view(addr).substr(6);
    const auto colon = rest.rfind(':');
    const auto host = rest.substr(0, colon == std::string_view::npos ? rest.size() : colon);
    if (is_loopback_host(host)) return {};
    return bind_error(what, addr, errc::permission_denied,
                      "refusing to listen without authentication: a tcp address other than "
                      "loopback (127.0.0.1, ::1) needs a shared secret, which makes it a CURVE "
                      "endpoint; " +
                          std::string(secret_hint()));
  }
  ensure_zap_handler();
  const auto keys = curve_keys(opts.secret);
  sock.set(zmq::sockopt::curve_server, true);
  sock.set(zmq::sockopt::curve_secretkey, keys.server_secret);
  sock.set(zmq::sockopt::zap_domain, keys.client_public);
  return {};
}

// For an ipc:// endpoint, what the native listener does before binding
// (detail::prepare_socket_path): libzmq itself would unlink whatever is at the path.
result<void> prepare_ipc(boost::asio::io_context& io, const std::string& addr) {
  if (addr.rfind("ipc://", 0) != 0) return {};
  auto parsed = parse_address(addr);
  if (!parsed) return std::move(parsed).error();
  return detail::prepare_socket_path(io, *parsed);
}

// Owner only. libzmq binds and listens in one call, so this comes just after; the
// directory (0700 unless it is a shared sticky one) keeps others out meanwhile.
void restrict_ipc_socket(const std::string& addr) {
  if (addr.rfind("ipc://", 0) == 0) ::chmod(addr.c_str() + 6, 0600);
}

}  // namespace

result<std::unique_ptr<inlet>> bind_zmq_publishers(boost::asio::io_context& io,
                                                   std::string_view address, const options& opts) {
  const std::string addr(address);
  if (auto ok = prepare_ipc(io, addr); !ok) return std::move(ok).error();
  try {
    zmq::socket_t sock(detail::shared_context(), zmq::socket_type::sub);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_frame_bytes));
    sock.set(zmq::sockopt::rcvhwm, 100000);
    sock.set(zmq::sockopt::subscribe, "");
    if (auto ok = secure(sock, addr, opts, "publishers endpoint"); !ok)
      return std::move(ok).error();
    sock.bind(addr);
    restrict_ipc_socket(addr);
    auto bound = connectable(sock.get(zmq::sockopt::last_endpoint));
    return std::unique_ptr<inlet>(
        std::make_unique<detail::zmq_publishers_inlet>(io, std::move(sock), std::move(bound)));
  } catch (const zmq::error_t& e) {
    return bind_error("publishers endpoint", addr, e);
  }
}

result<std::unique_ptr<outlet>> bind_zmq_subscribers(boost::asio::io_context& io,
                                                     std::string_view address,
                                                     const options& opts) {
  const std::string addr(address);
  if (auto ok = prepare_ipc(io, addr); !ok) return std::move(ok).error();
  try {
    zmq::socket_t sock(detail::shared_context(), zmq::socket_type::pub);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::sndhwm, 100000);
    if (auto ok = secure(sock, addr, opts, "subscribers endpoint"); !ok)
      return std::move(ok).error();
    sock.bind(addr);
    restrict_ipc_socket(addr);
    auto bound = connectable(sock.get(zmq::sockopt::last_endpoint));
    return std::unique_ptr<outlet>(
        std::make_unique<detail::zmq_subscribers_outlet>(std::move(sock), std::move(bound)));
  } catch (const zmq::error_t& e) {
    return bind_error("subscribers endpoint", addr, e);
  }
}

result<listener> listen_zmq(boost::asio::io_context& io, std::string_view address, zmq_role role,
                            const options& opts) {
  static std::atomic<int> monitor_counter{0};
  const std::string addr(address);
  const char* what = role == zmq_role::frontend ? "frontend" : "backend";
  auto fail = [&](errc code, const std::string& why) { return bind_error(what, addr, code, why); };
  if (auto ok = prepare_ipc(io, addr); !ok) return std::move(ok).error();
  try {
    auto& ctx = detail::shared_context();
    zmq::socket_t sock(ctx, zmq::socket_type::router);
    sock.set(zmq::sockopt::router_mandatory, 1);
    sock.set(zmq::sockopt::router_handover, 1);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::heartbeat_ivl, 1000);
    sock.set(zmq::sockopt::heartbeat_timeout, 3000);
    sock.set(zmq::sockopt::heartbeat_ttl, 3000);
    sock.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_frame_bytes));
    sock.set(zmq::sockopt::sndhwm, 100000);
    sock.set(zmq::sockopt::rcvhwm, 100000);
    sock.set(zmq::sockopt::routing_id,
             role == zmq_role::frontend ? "router-frontend" : "router-backend");
    if (auto ok = secure(sock, addr, opts, what); !ok) return std::move(ok).error();
    sock.bind(addr);
    restrict_ipc_socket(addr);
    const auto bound = connectable(sock.get(zmq::sockopt::last_endpoint));
    const auto monitor_addr = "inproc://plexus-zmq-monitor-" + std::to_string(++monitor_counter);
    if (zmq_socket_monitor(sock.handle(), monitor_addr.c_str(), ZMQ_EVENT_DISCONNECTED) != 0)
      return fail(errc::internal, zmq_strerror(zmq_errno()));
    zmq::socket_t monitor(ctx, zmq::socket_type::pair);
    monitor.set(zmq::sockopt::linger, 0);
    // Unbounded, so a burst of events never blocks libzmq's I/O thread (see close()).
    monitor.set(zmq::sockopt::rcvhwm, 0);
    monitor.connect(monitor_addr);
    return listener(std::make_shared<detail::zmq_endpoint>(io, std::move(sock), std::move(monitor),
                                                           bound, role, opts));
  } catch (const zmq::error_t& e) {
    return bind_error(what, addr, e);
  }
}

}  // namespace plexus::transport
