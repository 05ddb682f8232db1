// The in-process transport: two connection ends in one process exchanging frames
// through queues, delivered from the event loop. For unit tests and for embedding a
// router and its workers in one process. Both ends must share one io_context.

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
};

class inproc_connection final : public connection_impl,
                                public std::enable_shared_from_this<inproc_connection> {
 public:
  inproc_connection(asio::io_context& io, const options& opts, std::string description)
      : io_(io), opts_(opts), description_(std::move(description)) {}

  static void pair(const std::shared_ptr<inproc_connection>& a,
                   const std::shared_ptr<inproc_connection>& b) {
    a->peer_ = b;
    b->peer_ = a;
  }

  void start(connection::frame_handler on_frame, connection::close_handler on_close) override {
    on_frame_ = std::move(on_frame);
    on_close_ = std::move(on_close);
    started_ = true;
    if (!inbox_.empty()) schedule_delivery();
    if (closed_) notify_closed({errc::unavailable, "connection is closed"});
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

  void close() override {
    if (closed_) return;
    closed_ = true;
    notify_closed({errc::unavailable, "connection closed locally"});
    if (auto peer = peer_.lock()) peer->peer_closed();
  }

  void detach() override {
    detached_ = true;
    asio::post(io_, [self = shared_from_this()] {
      self->on_frame_ = nullptr;
      self->on_close_ = nullptr;
    });
  }

  bool is_open() const noexcept override { return !closed_; }
  std::size_t queued_bytes() const noexcept override { return 0; }
  std::string description() const override { return description_; }

 private:
  void peer_closed() {
    // Frames the peer sent before closing are still delivered, then the close.
    asio::post(io_, [self = shared_from_this()] {
      if (self->closed_) return;
      self->deliver();
      self->closed_ = true;
      self->notify_closed({errc::unavailable, "peer closed the connection"});
    });
  }

  void schedule_delivery() {
    if (delivery_posted_ || !started_) return;
    delivery_posted_ = true;
    asio::post(io_, [self = shared_from_this()] {
      self->delivery_posted_ = false;
      self->deliver();
    });
  }

  void deliver() {
    while (!inbox_.empty() && !closed_ && !detached_) {
      auto f = std::move(inbox_.front());
      inbox_.pop_front();
      if (on_frame_) on_frame_(wire::frame_view{f.kind, f.name, f.payload});
    }
  }

  void notify_closed(plexus::error e) {
    if (!started_) return;  // start() reports it
    asio::post(io_, [self = shared_from_this(), e = std::move(e)] {
      if (self->detached_ || !self->on_close_) return;
      auto handler = std::move(self->on_close_);
      self->on_close_ = nullptr;
      handler(e);
    });
  }

  asio::io_context& io_;
  options opts_;
  std::string description_;
  std::weak_ptr<inproc_connection> peer_;
  std::deque<queued_frame> inbox_;
  connection::frame_handler on_frame_;
  connection::close_handler on_close_;
  bool started_ = false;
  bool closed_ = false;
  bool detached_ = false;
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
