// The in-process transport: two connection ends in one process exchanging frames
// through queues, delivered from the event loop. For unit tests and for embedding a
// router and its workers in one process. Both ends must share one io_context.

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <deque>
#include <map>
#include <mutex>

#include "plexus/transport/address.hpp"
#include "transport/connection_impl.hpp"

namespace plexus::transport::detail {
namespace {

namespace asio = boost::asio;

struct queued_frame {
  wire::frame_kind kind;
  std::string name;
  std::vector<std::uint8_t> payload;
  std::optional<std::uint32_t> deadline_ms;
};

class inproc_connection final : public connection_base {
 public:
  inproc_connection(asio::io_context& io, const options& opts, std::string description)
      : connection_base(io.get_executor(), std::move(description)), io_(io), opts_(opts) {}

  static void pair(const std::shared_ptr<inproc_connection>& a,
                   const std::shared_ptr<inproc_connection>& b) {
    a->peer_ = b;
    b->peer_ = a;
  }

  void start(connection::frame_handler on_frame, connection::close_handler on_close) override {
    keep_handlers(std::move(on_frame), std::move(on_close));
    started_ = true;
    if (!inbox_.empty()) schedule_delivery();
    if (closed_) post_closed({errc::unavailable, "connection is closed"});
  }

  result<void> send(wire::frame_kind kind, std::string_view name,
                    std::span<const std::uint8_t> payload) override {
    if (closed_) return plexus::error(errc::unavailable, "connection is closed");
    if (auto ok = check_frame(opts_, name, payload.size()); !ok) return ok;
    auto peer = peer_.lock();
    if (!peer || peer->closed_) return plexus::error(errc::unavailable, "peer is gone");
    peer->inbox_.push_back({kind, std::string(name), {payload.begin(), payload.end()}});
    peer->schedule_delivery();
    return {};
  }

  result<void> send_with_deadline(std::string_view name, std::span<const std::uint8_t> payload,
                                  std::uint32_t deadline_ms) override {
    if (closed_) return plexus::error(errc::unavailable, "connection is closed");
    if (auto ok = check_frame(opts_, name, wire::deadline_bytes + payload.size()); !ok) return ok;
    auto peer = peer_.lock();
    if (!peer || peer->closed_) return plexus::error(errc::unavailable, "peer is gone");
    peer->inbox_.push_back(
        {wire::frame_kind::data, std::string(name), {payload.begin(), payload.end()}, deadline_ms});
    peer->schedule_delivery();
    return {};
  }

  void close() override {
    if (!end_once({errc::unavailable, "connection closed locally"})) return;
    if (auto peer = peer_.lock()) peer->peer_closed();
  }

  std::size_t queued_bytes() const noexcept override { return 0; }

  // Both ends are this process.
  std::optional<peer_credentials> credentials() const override {
    return peer_credentials{::geteuid(), ::getegid(), static_cast<std::int32_t>(::getpid())};
  }

 private:
  void peer_closed() {
    // Frames the peer sent before closing are still delivered, then the close.
    asio::post(io_, [self = self_as<inproc_connection>()] {
      if (self->closed_) return;
      self->deliver_inbox();
      self->end_once({errc::unavailable, "peer closed the connection"});
    });
  }

  void schedule_delivery() {
    if (delivery_posted_ || !started_) return;
    delivery_posted_ = true;
    asio::post(io_, [self = self_as<inproc_connection>()] {
      self->delivery_posted_ = false;
      self->deliver_inbox();
    });
  }

  void deliver_inbox() {
    while (!inbox_.empty() && !closed_ && !detached_) {
      auto f = std::move(inbox_.front());
      inbox_.pop_front();
      deliver(wire::frame_view{f.kind, f.name, f.payload, f.deadline_ms});
    }
  }

  // Closes; the close handler is posted now if started, else start() reports it.
  bool end_once(plexus::error why) {
    if (closed_) return false;
    if (started_) return end(std::move(why));
    closed_ = true;
    return true;
  }

  asio::io_context& io_;
  options opts_;
  std::weak_ptr<inproc_connection> peer_;
  std::deque<queued_frame> inbox_;
  bool started_ = false;
  bool delivery_posted_ = false;
};

class inproc_listener;

// Names are per process. Guarded by a mutex so that tests with several loops on
// several threads may each use their own names.
std::mutex registry_mutex;
std::map<std::string, std::weak_ptr<inproc_listener>, std::less<>> registry;

class inproc_listener final : public listener_impl,
                              public std::enable_shared_from_this<inproc_listener> {
 public:
  inproc_listener(asio::io_context& io, const options& opts, std::string name)
      : io_(io), opts_(opts), name_(std::move(name)) {}
  ~inproc_listener() override { unregister(); }

  void start(listener::accept_handler on_accept) override { on_accept_ = std::move(on_accept); }
  void close() override {
    on_accept_ = nullptr;
    unregister();
  }
  std::string address() const override { return "inproc://" + name_; }

  result<connection> accept_from(const options& client_opts) {
    if (!on_accept_)
      return plexus::error(errc::unavailable, "inproc://" + name_ + " is not accepting");
    auto server = std::make_shared<inproc_connection>(io_, opts_, address());
    auto client = std::make_shared<inproc_connection>(io_, client_opts, address());
    inproc_connection::pair(server, client);
    asio::post(io_, [self = shared_from_this(), server] {
      if (self->on_accept_)
        self->on_accept_(connection(server));
      else
        server->close();  // closed before accepting: the connecting end must see it
    });
    return connection(client);
  }

 private:
  void unregister() {
    std::lock_guard lock(registry_mutex);
    auto it = registry.find(name_);
    if (it != registry.end() && it->second.lock().get() == this) registry.erase(it);
  }

  asio::io_context& io_;
  options opts_;
  std::string name_;
  listener::accept_handler on_accept_;
};

}  // namespace

result<listener> listen_inproc(asio::io_context& io, const address& addr, const options& opts) {
  std::lock_guard lock(registry_mutex);
  auto& slot = registry[addr.path];
  if (!slot.expired())
    return plexus::error(errc::unavailable, "address in use: " + addr.to_string());
  auto impl = std::make_shared<inproc_listener>(io, opts, addr.path);
  slot = impl;
  return listener(impl);
}

result<connection> connect_inproc(asio::io_context&, const address& addr, const options& opts) {
  std::shared_ptr<inproc_listener> target;
  {
    std::lock_guard lock(registry_mutex);
    auto it = registry.find(addr.path);
    if (it != registry.end()) target = it->second.lock();
  }
  if (!target)
    return plexus::error(errc::unavailable,
                         "cannot connect to " + addr.to_string() + ": nothing is listening there");
  return target->accept_from(opts);
}

}  // namespace plexus::transport::detail
