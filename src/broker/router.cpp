#include "plexus/broker/router.hpp"

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <iostream>
#include <unordered_map>

#include "broker/inflight_table.hpp"
#include "plexus/transport/pubsub.hpp"
#include "plexus/transport/udp.hpp"
#include "plexus/transport/zmq.hpp"
#include "plexus/wire/control.hpp"
#include "plexus/wire/message.hpp"

namespace plexus::broker {

namespace {

// Peer ids travel as the 4-byte little-endian frame name of forwarded requests and
// of the responses that come back.
void write_peer_id(char* out, std::uint32_t id) noexcept {
  out[0] = static_cast<char>(id);
  out[1] = static_cast<char>(id >> 8);
  out[2] = static_cast<char>(id >> 16);
  out[3] = static_cast<char>(id >> 24);
}
std::uint32_t read_peer_id(std::string_view s) noexcept {
  if (s.size() != 4) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace

class router::impl {
 public:
  impl(boost::asio::io_context& io, router_options opts) : io_(io), opts_(std::move(opts)) {}

  result<void> start() {
    if (opts_.listen.empty() && opts_.zmq_frontend.empty() && opts_.zmq_backend.empty() &&
        opts_.zmq_publishers.empty() && opts_.udp.empty())
      return plexus::error(errc::invalid_argument, "router has no listen address");
    auto add = [this](result<transport::listener> l) -> result<void> {
      if (!l) return std::move(l).error();
      l->start([this](transport::connection c) { add_peer(std::move(c)); });
      listeners_.push_back(std::move(*l));
      return {};
    };
    for (const auto& address : opts_.listen)
      if (auto ok = add(transport::listen(io_, address, opts_.transport)); !ok) return ok;
    for (const auto& address : opts_.zmq_frontend)
      if (auto ok = add(
              transport::listen_zmq(io_, address, transport::zmq_role::frontend, opts_.transport));
          !ok)
        return ok;
    for (const auto& address : opts_.zmq_backend)
      if (auto ok = add(
              transport::listen_zmq(io_, address, transport::zmq_role::backend, opts_.transport));
          !ok)
        return ok;
    auto add_inlet = [this](result<std::unique_ptr<transport::inlet>> in) -> result<void> {
      if (!in) return std::move(in).error();
      (*in)->start([this](std::span<const std::uint8_t> payload) { publish("", payload); });
      inlets_.push_back(std::move(*in));
      return {};
    };
    for (const auto& address : opts_.zmq_publishers)
      if (auto ok = add_inlet(transport::bind_zmq_publishers(io_, address, opts_.transport)); !ok)
        return ok;
    for (const auto& address : opts_.udp)
      if (auto ok = add_inlet(transport::bind_udp(io_, address)); !ok) return ok;
    for (const auto& address : opts_.zmq_subscribers) {
      auto out = transport::bind_zmq_subscribers(io_, address, opts_.transport);
      if (!out) return std::move(out).error();
      outlets_.push_back(std::move(*out));
    }
    return {};
  }

  void stop() {
    for (auto& l : listeners_)
      l.close();
    listeners_.clear();
    for (auto& in : inlets_)
      in->close();
    inlets_.clear();
    for (auto& out : outlets_)
      out->close();
    outlets_.clear();
    subscribers_.clear();
    peers_.clear();  // handles close their connections and silence their handlers
    services_.clear();
  }

  std::vector<std::string> addresses() const {
    std::vector<std::string> out;
    for (const auto& l : listeners_)
      out.push_back(l.address());
    for (const auto& in : inlets_)
      out.push_back(in->address());
    for (const auto& o : outlets_)
      out.push_back(o->address());
    return out;
  }

  router_stats stats() const {
    auto s = stats_;
    s.peers = peers_.size();
    s.in_flight = inflight_.size();
    return s;
  }

 private:
  struct peer {
    std::uint32_t id = 0;
    char id_bytes[4] = {};
    transport::connection conn;
    std::string name;  // from hello, for logs and plexus.services
    std::int64_t pid = 0;
    std::vector<std::string> services;
    std::uint32_t outstanding = 0;      // requests forwarded to it, unanswered
    std::vector<std::string> prefixes;  // topic prefixes it subscribed to
    std::uint64_t delivered = 0;        // publications sent to it
    std::uint64_t dropped = 0;          // publications it lost (slow reader)
    std::uint64_t unreported = 0;       // of those, not yet told to it
    std::string_view id_name() const { return {id_bytes, 4}; }
  };

  struct tap_entry {
    std::string prefix;
    tap_handler handler;
  };

  struct service_entry {
    std::vector<peer*> workers;
    value methods = value::array();
    std::size_t cursor = 0;  // rotates the tie-break among equally loaded workers
  };

  void add_peer(transport::connection c) {
    auto p = std::make_unique<peer>();
    p->id = next_peer_id_++;
    if (next_peer_id_ == 0) next_peer_id_ = 1;
    write_peer_id(p->id_bytes, p->id);
    p->conn = std::move(c);
    auto* raw = p.get();
    const auto id = p->id;
    peers_.emplace(id, std::move(p));
    raw->conn.start([this, raw](const wire::frame_view& f) { on_frame(*raw, f); },
                    [this, id](const plexus::error& e) { remove_peer(id, e); });
  }

  void on_frame(peer& from, const wire::frame_view& f) {
    if (f.kind == wire::frame_kind::control) {
      on_control(from, f.payload);
      return;
    }
    const auto h = wire::peek(f.payload);
    if (!h) {
      ++stats_.malformed;
      return;
    }
    switch (h->kind) {
      case wire::message_kind::request:
        on_request(from, f.name, h->msgid, f.payload);
        break;
      case wire::message_kind::notification:
        on_notification(from, f.name, f.payload);
        break;
      case wire::message_kind::response:
        on_response(from, f.name, h->msgid, f.payload);
        break;
    }
  }

  peer* pick_worker(std::string_view service) {
    auto it = services_.find(service);
    if (it == services_.end() || it->second.workers.empty()) return nullptr;
    auto& entry = it->second;
    const auto n = entry.workers.size();
    peer* best = nullptr;
    for (std::size_t k = 0; k < n; ++k) {
      peer* w = entry.workers[(entry.cursor + k) % n];
      if (!best || w->outstanding < best->outstanding) best = w;
    }
    entry.cursor = (entry.cursor + 1) % n;
    return best;
  }

  void on_request(peer& from, std::string_view service, std::uint32_t msgid,
                  std::span<const std::uint8_t> payload) {
    if (service == "plexus") {
      answer_reserved(from, msgid, payload);
      return;
    }
    peer* worker = pick_worker(service);
    if (!worker) {
      ++stats_.no_route;
      reply_error(from, msgid,
                  {errc::unavailable,
                   "no route to " + std::string(service),
                   {{"service", std::string(service)}}});
      return;
    }
    if (auto ok = worker->conn.send(wire::frame_kind::data, from.id_name(), payload); !ok) {
      reply_error(from, msgid,
                  {ok.error().code,
                   "cannot forward to " + std::string(service) + ": " + ok.error().message,
                   {{"service", std::string(service)}}});
      return;
    }
    ++stats_.forwarded;
    ++worker->outstanding;
    inflight_.put(detail::inflight_table::key(from.id, msgid), worker->id);
  }

  void on_notification(peer& from, std::string_view service,
                       std::span<const std::uint8_t> payload) {
    if (service == wire::publish_name) {
      publish(from.id_name(), payload);
      return;
    }
    peer* worker = pick_worker(service);
    if (!worker) {
      ++stats_.no_route;  // notifications are never answered, not even with errors
      return;
    }
    if (worker->conn.send(wire::frame_kind::data, from.id_name(), payload)) ++stats_.forwarded;
  }

  void on_response(peer& from, std::string_view to, std::uint32_t msgid,
                   std::span<const std::uint8_t> payload) {
    const auto caller_id = read_peer_id(to);
    if (caller_id == 0) {
      ++stats_.malformed;
      return;
    }
    const auto worker_id = inflight_.take(detail::inflight_table::key(caller_id, msgid));
    if (worker_id == from.id && from.outstanding > 0) --from.outstanding;
    auto it = peers_.find(caller_id);
    if (it == peers_.end()) return;  // the caller left; nobody to tell
    if (it->second->conn.send(wire::frame_kind::data, from.id_name(), payload)) ++stats_.forwarded;
  }

  // ---- publish/subscribe -------------------------------------------------------------
  // `from` is the publisher's peer id, or empty for publications from an inlet.
  void publish(std::string_view from, std::span<const std::uint8_t> payload) {
    const auto topic = wire::peek_method(payload);
    if (!topic) {
      ++stats_.malformed;
      return;
    }
    ++stats_.published;
    deliver_all(from, *topic, [payload] { return payload; });
    // In-process taps: decoded once, only when one of them wants the topic.
    const auto wanted = [&](const tap_entry& t) { return topic->starts_with(t.prefix); };
    if (std::none_of(taps_.begin(), taps_.end(), wanted)) return;
    auto m = wire::decode(payload, {opts_.transport.max_frame_bytes, 64});
    if (!m || !std::holds_alternative<wire::notification>(*m)) return;
    const auto& n = std::get<wire::notification>(*m);
    for (auto& t : taps_)
      if (n.method.starts_with(t.prefix)) t.handler(n.method, n.params);
  }

  // To the subscribers and outlets (not the taps). `payload()` gives the encoded
  // publication; it is asked for only when someone takes it.
  template <class Payload>
  void deliver_all(std::string_view from, std::string_view topic, Payload&& payload) {
    for (peer* p : subscribers_) {
      for (const auto& prefix : p->prefixes) {
        if (!topic.starts_with(prefix)) continue;
        deliver(*p, from, payload());
        break;  // once per subscriber, however many of its prefixes match
      }
    }
    for (auto& out : outlets_)
      out->publish(topic, payload());
  }

 public:
  void add_method(std::string name, method_handler h) { methods_[std::move(name)] = std::move(h); }

  // Encoded only when a subscriber or an outlet takes it; taps get the value.
  void publish_local(std::string_view topic, value params) {
    ++stats_.published;
    bool encoded = false;
    deliver_all("", topic, [&]() -> std::span<const std::uint8_t> {
      if (!encoded) {
        local_scratch_.clear();
        wire::encode(local_scratch_, wire::notification{std::string(topic), params});
        encoded = true;
      }
      return local_scratch_;
    });
    for (auto& t : taps_)
      if (topic.starts_with(t.prefix)) t.handler(topic, params);
  }

  void tap(std::string prefix, tap_handler h) {
    taps_.push_back({std::move(prefix), std::move(h)});
  }

 private:
  void deliver(peer& to, std::string_view from, std::span<const std::uint8_t> payload) {
    if (to.conn.queued_bytes() > opts_.subscriber_queue_bytes) {
      lost(to);
      return;
    }
    if (to.unreported > 0) {
      send_control(to, {{"op", control::dropped}, {"count", to.unreported}, {"total", to.dropped}});
      to.unreported = 0;
    }
    if (to.conn.send(wire::frame_kind::data, from, payload)) {
      ++to.delivered;
      ++stats_.delivered;
    } else {
      lost(to);
    }
  }

  void lost(peer& to) {
    ++to.dropped;
    ++to.unreported;
    ++stats_.dropped;
  }

  void subscribe(peer& p, std::string prefix) {
    if (std::find(p.prefixes.begin(), p.prefixes.end(), prefix) != p.prefixes.end()) return;
    if (p.prefixes.empty()) subscribers_.push_back(&p);
    p.prefixes.push_back(std::move(prefix));
  }

  void unsubscribe(peer& p, std::string_view prefix) {
    std::erase(p.prefixes, prefix);
    if (p.prefixes.empty()) std::erase(subscribers_, &p);
  }

  void reply_error(peer& to, std::uint32_t msgid, const plexus::error& e) {
    const auto bytes = wire::encode_error_response(msgid, e);
    (void)to.conn.send(wire::frame_kind::data, "", bytes);
  }

  void reply(peer& to, const wire::response& r) {
    std::vector<std::uint8_t> bytes;
    wire::encode(bytes, r);
    (void)to.conn.send(wire::frame_kind::data, "", bytes);
  }

  // ---- the router's own service: "plexus" --------------------------------------
  void answer_reserved(peer& from, std::uint32_t msgid, std::span<const std::uint8_t> payload) {
    auto m = wire::decode(payload, {opts_.transport.max_frame_bytes, 64});
    if (!m) {
      ++stats_.malformed;
      reply_error(from, msgid, m.error());
      return;
    }
    const auto& req = std::get<wire::request>(*m);
    wire::response r;
    r.msgid = req.msgid;
    if (req.method == "ping") {
      r.result = "pong";
    } else if (req.method == "services") {
      value list = value::array();
      for (const auto& [name, entry] : services_) {
        value pids = value::array();
        for (const auto* w : entry.workers)
          pids.push_back(w->pid);
        list.push_back({{"name", name}, {"workers", entry.workers.size()}, {"pids", pids}});
      }
      std::sort(list.begin(), list.end(),
                [](const value& a, const value& b) { return a["name"] < b["name"]; });
      r.result = std::move(list);
    } else if (req.method == "describe") {
      if (req.params.size() != 1 || !req.params[0].is_string()) {
        r.error = plexus::error(errc::invalid_argument, "describe expects (string service)");
      } else {
        const auto name = req.params[0].get<std::string>();
        auto it = services_.find(name);
        if (it == services_.end())
          r.error = plexus::error(errc::not_found, "no service named " + name, {{"service", name}});
        else
          r.result = {{"name", name},
                      {"workers", it->second.workers.size()},
                      {"methods", it->second.methods}};
      }
    } else if (req.method == "subscriptions") {
      value list = value::array();
      for (const auto* p : subscribers_)
        list.push_back({{"peer", p->id},
                        {"name", p->name},
                        {"pid", p->pid},
                        {"prefixes", p->prefixes},
                        {"delivered", p->delivered},
                        {"dropped", p->dropped}});
      r.result = std::move(list);
    } else if (req.method == "stats") {
      const auto st = stats();
      std::uint64_t outlet_dropped = 0;
      for (const auto& o : outlets_)
        outlet_dropped += o->dropped();
      r.result = {{"peers", st.peers},         {"forwarded", st.forwarded},
                  {"no_route", st.no_route},   {"failed_by_peer_loss", st.failed_by_peer_loss},
                  {"malformed", st.malformed}, {"in_flight", st.in_flight},
                  {"published", st.published}, {"delivered", st.delivered},
                  {"dropped", st.dropped},     {"dropped_by_zmq_subscribers", outlet_dropped}};
    } else if (auto m = methods_.find(req.method); m != methods_.end()) {
      try {
        auto out = m->second(req.params);
        if (out)
          r.result = std::move(*out);
        else
          r.error = std::move(out).error();
      } catch (const remote_error& e) {
        r.error = e.error();
      } catch (const std::exception& e) {
        r.error = plexus::error(errc::internal, req.method + " failed: " + e.what());
      }
    } else {
      r.error = plexus::error(errc::not_found, "the router has no method " + req.method,
                              {{"service", "plexus"}, {"method", req.method}});
    }
    reply(from, r);
  }

  // ---- control frames ----------------------------------------------------------------
  void on_control(peer& from, std::span<const std::uint8_t> payload) {
    auto v = wire::decode_value(payload, {opts_.transport.max_frame_bytes, 64});
    if (!v || !v->is_object() || !v->contains("op") || !(*v)["op"].is_string()) {
      ++stats_.malformed;
      send_control(from, control::error_reply("", {errc::invalid_argument,
                                                   "control frame must be a map with an op"}));
      return;
    }
    const auto op = control::text_field(*v, "op");
    if (op == control::hello) {
      from.name = control::text_field(*v, "name");
      from.pid = control::int_field(*v, "pid");
      send_control(from, {{"op", control::welcome}, {"peer", from.id}});
    } else if (op == control::register_service) {
      const auto service = control::text_field(*v, "service");
      if (service.empty() || service.size() > wire::max_name_bytes || service == "plexus" ||
          service == wire::publish_name) {
        send_control(
            from, control::error_reply(op, {errc::invalid_argument,
                                            "cannot register service '" + service +
                                                "': names are 1 to 255 bytes; 'plexus' and '*' are "
                                                "reserved"}));
        return;
      }
      auto& entry = services_[service];
      if (std::find(entry.workers.begin(), entry.workers.end(), &from) == entry.workers.end()) {
        entry.workers.push_back(&from);
        from.services.push_back(service);
      }
      if (v->contains("methods") && (*v)["methods"].is_array()) entry.methods = (*v)["methods"];
      send_control(from, {{"op", control::registered}, {"service", service}});
    } else if (op == control::unregister_service) {
      const auto service = control::text_field(*v, "service");
      unregister(from, service);
      send_control(from, {{"op", control::unregistered}, {"service", service}});
    } else if (op == control::subscribe || op == control::unsubscribe) {
      auto it = v->find("prefix");
      if (it == v->end() || !it->is_string()) {
        send_control(from, control::error_reply(op, {errc::invalid_argument,
                                                     op + " needs a text prefix (\"\" for all)"}));
        return;
      }
      auto prefix = it->get<std::string>();
      if (op == control::subscribe) {
        subscribe(from, prefix);
        send_control(from, {{"op", control::subscribed}, {"prefix", prefix}});
      } else {
        unsubscribe(from, prefix);
        send_control(from, {{"op", control::unsubscribed}, {"prefix", prefix}});
      }
    } else {
      send_control(
          from, control::error_reply(op, {errc::unimplemented, "unknown control op '" + op + "'"}));
    }
  }

  void send_control(peer& to, const value& v) {
    std::vector<std::uint8_t> bytes;
    wire::encode_value(bytes, v);
    (void)to.conn.send(wire::frame_kind::control, "", bytes);
  }

  void unregister(peer& p, std::string_view service) {
    auto it = services_.find(service);
    if (it != services_.end()) {
      auto& w = it->second.workers;
      w.erase(std::remove(w.begin(), w.end(), &p), w.end());
      if (w.empty())
        services_.erase(it);
      else
        it->second.cursor %= w.size();
    }
    p.services.erase(std::remove(p.services.begin(), p.services.end(), service), p.services.end());
  }

  void remove_peer(std::uint32_t id, const plexus::error& why) {
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    auto owned = std::move(it->second);
    peers_.erase(it);
    const auto services = owned->services;
    for (const auto& s : services)
      unregister(*owned, s);
    if (!owned->prefixes.empty()) std::erase(subscribers_, owned.get());
    // Everything forwarded to this peer and unanswered fails now, not at the deadline.
    const std::string who = owned->name.empty() ? "a worker" : owned->name;
    inflight_.drain_worker(id, [&](std::uint32_t caller_id, std::uint32_t msgid) {
      ++stats_.failed_by_peer_loss;
      auto c = peers_.find(caller_id);
      if (c == peers_.end()) return;
      reply_error(*c->second, msgid,
                  {errc::unavailable,
                   who + " went away before answering (" + why.message + ")",
                   {{"peer", owned->name}, {"pid", owned->pid}}});
    });
  }

  boost::asio::io_context& io_;
  router_options opts_;
  std::vector<transport::listener> listeners_;
  std::vector<std::unique_ptr<transport::inlet>> inlets_;
  std::vector<std::unique_ptr<transport::outlet>> outlets_;
  std::vector<peer*> subscribers_;  // peers with at least one prefix
  std::unordered_map<std::uint32_t, std::unique_ptr<peer>> peers_;
  std::unordered_map<std::string, service_entry, string_hash, std::equal_to<>> services_;
  detail::inflight_table inflight_;
  std::uint32_t next_peer_id_ = 1;
  router_stats stats_;
  std::vector<tap_entry> taps_;
  std::vector<std::uint8_t> local_scratch_;
  std::unordered_map<std::string, method_handler> methods_;
};

router::router(boost::asio::io_context& io, router_options opts)
    : impl_(std::make_unique<impl>(io, std::move(opts))) {}
router::~router() {
  impl_->stop();
}
result<void> router::start() {
  return impl_->start();
}
void router::stop() {
  impl_->stop();
}
std::vector<std::string> router::addresses() const {
  return impl_->addresses();
}
router_stats router::stats() const {
  return impl_->stats();
}
void router::add_method(std::string name, method_handler h) {
  impl_->add_method(std::move(name), std::move(h));
}
void router::publish(std::string_view topic, value params) {
  impl_->publish_local(topic, std::move(params));
}
void router::tap(std::string prefix, tap_handler h) {
  impl_->tap(std::move(prefix), std::move(h));
}

}  // namespace plexus::broker
