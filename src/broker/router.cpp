#include "plexus/broker/router.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>

#include "broker/inflight_table.hpp"
#include "broker/peer.hpp"
#include "broker/pubsub.hpp"
#include "plexus/broker/http_routes.hpp"
#include "plexus/transport/auth.hpp"
#include "plexus/transport/endpoint.hpp"
#include "plexus/wire/control.hpp"
#include "plexus/wire/message.hpp"

namespace plexus::broker {

namespace {

using detail::peer;
using detail::send_control;

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
  impl(boost::asio::io_context& io, router_options opts)
      : io_(io), opts_(std::move(opts)), pubsub_(opts_, stats_), expiry_timer_(io) {
    add_built_in("ping", [](const value&) -> result<value> { return value("pong"); });
    add_built_in("services", [this](const value&) -> result<value> { return services(); });
    add_built_in("describe", [this](const value& params) { return describe(params); });
    add_built_in("subscriptions",
                 [this](const value&) -> result<value> { return pubsub_.subscriptions(); });
    add_built_in("stats", [this](const value&) -> result<value> { return stats_value(); });
    add_built_in("routes", [this](const value&) -> result<value> { return routes_value(); });
  }

  // Binds every endpoint; the scheme of each address picks its transport and role.
  result<void> start() {
    if (opts_.listen.empty())
      return plexus::error(errc::invalid_argument, "router has no listen address");
    // The tcp secret: given, else from secret_file, else from the environment.
    if (opts_.transport.secret.empty()) {
      auto secret = opts_.secret_file.empty() ? transport::secret_from_environment()
                                              : transport::read_secret_file(opts_.secret_file);
      if (!secret) return std::move(secret).error();
      opts_.transport.secret = std::move(*secret);
    } else if (auto ok = transport::check_secret(opts_.transport.secret, "router_options"); !ok) {
      return ok;
    }
    // A tcp peer that does not finish the handshake has said no hello either: the hello
    // timer closes it at hello_timeout_ms (hello_timeouts). The transport's own deadline
    // is only a backstop, later, so that the count does not depend on which fires first.
    opts_.transport.handshake_timeout =
        std::chrono::milliseconds(opts_.hello_timeout_ms) + std::chrono::seconds(1);
    for (const auto& address : opts_.listen) {
      auto e = transport::bind_endpoint(io_, address, opts_.transport);
      if (!e) return std::move(e).error();
      if (auto* l = std::get_if<transport::listener>(&*e)) {
        // ZeroMQ peers are made on their first message and say hello through the
        // bridge (backend) or never (frontend): only native ones must say it.
        const bool expect_hello = !address.starts_with("zmq");
        l->start([this, expect_hello](transport::connection c) {
          add_peer(std::move(c), expect_hello);
        });
        listeners_.push_back(std::move(*l));
      } else if (auto* in = std::get_if<std::unique_ptr<transport::inlet>>(&*e)) {
        (*in)->start(
            [this](std::span<const std::uint8_t> payload) { pubsub_.publish("", payload); });
        inlets_.push_back(std::move(*in));
      } else {
        pubsub_.add_outlet(std::move(std::get<std::unique_ptr<transport::outlet>>(*e)));
      }
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
    pubsub_.close();
    peers_.clear();  // handles close their connections and silence their handlers
    services_.clear();
    expiry_timer_.cancel();
    expiries_ = {};
    armed_at_ = never;
  }

  // Listeners, then inlets, then outlets, each in the order they were listed.
  std::vector<std::string> addresses() const {
    std::vector<std::string> out;
    for (const auto& l : listeners_)
      out.push_back(l.address());
    for (const auto& in : inlets_)
      out.push_back(in->address());
    pubsub_.append_addresses(out);
    return out;
  }

  router_stats stats() const {
    auto s = stats_;
    s.peers = peers_.size();
    s.in_flight = inflight_.size();
    return s;
  }

  // Built-in methods stay: a handler added under their name is ignored.
  void add_method(std::string name, method_handler h, method_access access) {
    auto [it, added] = methods_.try_emplace(std::move(name));
    if (!added && it->second.built_in) return;
    it->second.handler = std::move(h);
    it->second.access = access;
  }
  void publish_local(std::string_view topic, value params) {
    pubsub_.publish_local(topic, std::move(params));
  }
  void tap(std::string prefix, tap_handler h) { pubsub_.tap(std::move(prefix), std::move(h)); }
  void add_stat(std::string name, std::function<std::uint64_t()> read) {
    extra_stats_.emplace_back(std::move(name), std::move(read));
  }

 private:
  struct service_entry {
    std::vector<peer*> workers;
    value methods = value::array();
    std::size_t cursor = 0;  // rotates the tie-break among equally loaded workers
  };

  struct method_entry {
    method_handler handler;
    bool built_in = false;
    method_access access = method_access::anyone;
  };

  void add_peer(transport::connection c, bool expect_hello) {
    if (peers_.size() >= opts_.max_connections) {
      ++stats_.refused_connections;
      refuse(c, control::hello,
             limit_error("the router has " + std::to_string(peers_.size()) +
                             " peers already: max_connections (" +
                             std::to_string(opts_.max_connections) + ") reached",
                         "max_connections"));
      c.close();  // what was queued leaves if the socket takes it at once
      return;
    }
    auto p = std::make_unique<peer>();
    p->id = next_peer_id_++;
    if (next_peer_id_ == 0) next_peer_id_ = 1;
    write_peer_id(p->id_bytes, p->id);
    p->conn = std::move(c);
    auto* raw = p.get();
    const auto id = p->id;
    peers_.emplace(id, std::move(p));
    if (expect_hello) {
      raw->hello_timer.emplace(io_);
      raw->hello_timer->expires_after(std::chrono::milliseconds(opts_.hello_timeout_ms));
      raw->hello_timer->async_wait([this, id](const boost::system::error_code& ec) {
        if (!ec) hello_overdue(id);  // aborted: it said hello, or it is gone
      });
    }
    raw->conn.start([this, raw](const wire::frame_view& f) { on_frame(*raw, f); },
                    [this, id](const plexus::error& e) { remove_peer(id, e); });
  }

  static plexus::error limit_error(std::string message, std::string limit) {
    return {errc::resource_exhausted, std::move(message), {{"limit", std::move(limit)}}};
  }

  // Tells a connection that is not (or no longer) a peer why it is being closed.
  static void refuse(transport::connection& c, std::string_view about, const plexus::error& e) {
    std::vector<std::uint8_t> bytes;
    wire::encode_value(bytes, control::error_reply(about, e));
    (void)c.send(wire::frame_kind::control, "", bytes);
  }

  void hello_overdue(std::uint32_t id) {
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    auto& p = *it->second;
    p.hello_timer.reset();
    ++stats_.hello_timeouts;
    refuse(p.conn, control::hello,
           {errc::deadline_exceeded,
            "no hello within hello_timeout_ms (" + std::to_string(opts_.hello_timeout_ms) +
                " ms): closing the connection",
            {{"limit", "hello_timeout_ms"}}});
    p.conn.close();  // its close handler removes the peer
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
        on_request(from, f.name, h->msgid, f.payload, f.deadline_ms);
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
                  std::span<const std::uint8_t> payload, std::optional<std::uint32_t> deadline_ms) {
    if (service == "plexus") {
      answer_reserved(from, msgid, payload);
      return;
    }
    if (deadline_ms && *deadline_ms == 0) {  // nothing left to wait for
      ++stats_.expired;
      reply_error(from, msgid,
                  {errc::deadline_exceeded,
                   "the call to " + std::string(service) + " arrived with no time left",
                   {{"service", std::string(service)}, {"deadline_ms", 0}}});
      return;
    }
    if (from.calls_in_flight >= opts_.max_in_flight_per_peer) {
      ++stats_.over_budget;
      reply_error(from, msgid,
                  limit_error("this peer has " + std::to_string(from.calls_in_flight) +
                                  " requests unanswered: max_in_flight_per_peer (" +
                                  std::to_string(opts_.max_in_flight_per_peer) + ") reached",
                              "max_in_flight_per_peer"));
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
    // One call per (caller, msgid) at a time: a second one while the first is in
    // flight is refused, and the first still gets its answer.
    const auto key = detail::inflight_table::key(from.id, msgid);
    const std::int64_t expires = deadline_ms ? now_ms() + *deadline_ms : 0;
    if (!inflight_.insert(key, worker->id, expires)) {
      ++stats_.duplicate_msgid;
      reply_error(from, msgid,
                  {errc::invalid_argument,
                   "msgid " + std::to_string(msgid) +
                       " is already in flight from this caller; the earlier call stands",
                   {{"service", std::string(service)}, {"msgid", msgid}}});
      return;
    }
    // The worker learns the deadline when it said it understands one (hello); the
    // router enforces it either way.
    auto ok = deadline_ms && worker->takes_deadlines
                  ? worker->conn.send_with_deadline(from.id_name(), payload, *deadline_ms)
                  : worker->conn.send(wire::frame_kind::data, from.id_name(), payload);
    if (!ok) {
      (void)inflight_.take(key);
      reply_error(from, msgid,
                  {ok.error().code,
                   "cannot forward to " + std::string(service) + ": " + ok.error().message,
                   {{"service", std::string(service)}}});
      return;
    }
    ++stats_.forwarded;
    ++worker->outstanding;
    ++from.calls_in_flight;
    if (expires != 0) watch(expires, key, *deadline_ms);
  }

  // ---- deadlines -------------------------------------------------------------------
  // Requests that carried a deadline are failed here when it passes, whether or not
  // the worker knows it. One timer serves them all: it is set to the earliest entry of
  // a min-heap of (expires, key); entries whose call was answered are skipped lazily
  // and swept when they outnumber the live calls.
  static constexpr std::int64_t never = INT64_MAX;

  struct expiry {
    std::int64_t at;  // now_ms() clock
    std::uint64_t key;
    std::uint32_t deadline_ms;
    bool operator>(const expiry& o) const { return at > o.at; }
  };
  struct expiry_heap : std::priority_queue<expiry, std::vector<expiry>, std::greater<>> {
    std::vector<expiry>& entries() { return c; }
    void rebuild() { std::make_heap(c.begin(), c.end(), comp); }
  };

  // Rounded up, so that a call is never failed before its full time has passed here.
  static std::int64_t now_ms() {
    return std::chrono::ceil<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void watch(std::int64_t expires, std::uint64_t key, std::uint32_t deadline_ms) {
    expiries_.push({expires, key, deadline_ms});
    if (expiries_.size() > 2 * inflight_.size() + 1024) {
      std::erase_if(expiries_.entries(), [this](const expiry& e) { return !is_live(e); });
      expiries_.rebuild();
    }
    arm(expires);
  }

  bool is_live(const expiry& e) const { return inflight_.worker_if_expiring(e.key, e.at) != 0; }

  void arm(std::int64_t at) {
    if (at >= armed_at_) return;
    armed_at_ = at;
    expiry_timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(at)));
    expiry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // re-armed earlier, or the router stopped
      armed_at_ = never;
      expire_due();
    });
  }

  void expire_due() {
    const auto now = now_ms();
    while (!expiries_.empty()) {
      const auto e = expiries_.top();
      const auto worker_id = inflight_.worker_if_expiring(e.key, e.at);
      if (worker_id != 0 && e.at > now) break;
      expiries_.pop();
      if (worker_id != 0) expire(e, worker_id);
    }
    if (!expiries_.empty()) arm(expiries_.top().at);
  }

  // The caller is told now; a late answer from the worker is dropped (`unsolicited`).
  void expire(const expiry& e, std::uint32_t worker_id) {
    (void)inflight_.take(e.key);
    ++stats_.expired;
    std::string who = "a worker";
    std::int64_t pid = 0;
    if (auto w = peers_.find(worker_id); w != peers_.end()) {
      if (w->second->outstanding > 0) --w->second->outstanding;
      if (!w->second->name.empty()) who = w->second->name;
      pid = w->second->pid;
    }
    auto c = peers_.find(static_cast<std::uint32_t>(e.key >> 32));
    if (c == peers_.end()) return;  // the caller left
    if (c->second->calls_in_flight > 0) --c->second->calls_in_flight;
    reply_error(*c->second, static_cast<std::uint32_t>(e.key),
                {errc::deadline_exceeded,
                 who + " did not answer within the caller's deadline of " +
                     std::to_string(e.deadline_ms) + " ms",
                 {{"peer", who}, {"pid", pid}, {"deadline_ms", e.deadline_ms}}});
  }

  void on_notification(peer& from, std::string_view service,
                       std::span<const std::uint8_t> payload) {
    if (service == wire::publish_name) {
      pubsub_.publish(from.id_name(), payload);
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
    // Only the peer the request went to answers it, once; anything else is dropped.
    if (!inflight_.take_if(detail::inflight_table::key(caller_id, msgid), from.id)) {
      ++stats_.unsolicited;
      return;
    }
    if (from.outstanding > 0) --from.outstanding;
    auto it = peers_.find(caller_id);
    if (it == peers_.end()) return;  // the caller left; nobody to tell
    if (it->second->calls_in_flight > 0) --it->second->calls_in_flight;
    if (it->second->conn.send(wire::frame_kind::data, from.id_name(), payload)) ++stats_.forwarded;
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
  // Its methods are one table: the built-ins below and those add_method() adds.
  void add_built_in(std::string name, method_handler h) {
    methods_[std::move(name)] = {std::move(h), true};
  }

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
    auto it = methods_.find(req.method);
    if (req.method == "declare_routes") {
      auto out = declare_routes(from, req.params);
      if (out)
        r.result = std::move(*out);
      else
        r.error = std::move(out).error();
    } else if (it == methods_.end() || !it->second.handler) {
      // not_found with the service and method in the context: callers (the CLI) tell
      // "no such method" from other errors by these, not by the message.
      r.error = plexus::error(errc::not_found, "the router has no method " + req.method,
                              {{"service", "plexus"}, {"method", req.method}});
    } else if (auto why = refusal(from, it->second.access)) {
      ++stats_.denied;
      r.error = plexus::error(errc::permission_denied, "plexus." + req.method + " " + *why,
                              {{"service", "plexus"}, {"method", req.method}});
    } else {
      try {
        auto out = it->second.handler(req.params);
        if (out)
          r.result = std::move(*out);
        else
          r.error = std::move(out).error();
      } catch (const remote_error& e) {
        r.error = e.error();
      } catch (const std::exception& e) {
        r.error = plexus::error(errc::internal, req.method + " failed: " + e.what());
      }
    }
    reply(from, r);
  }

  // Why `from` may not call a method of `access`, or nothing.
  static std::optional<std::string> refusal(const peer& from, method_access access) {
    if (access == method_access::anyone) return std::nullopt;
    const auto own = ::geteuid();
    const auto who = from.conn.credentials();
    if (!who)
      return "is allowed only to the user running the router (uid " + std::to_string(own) +
             "), over a Unix socket; this peer (" + from.conn.description() +
             ") has no credentials";
    if (who->uid != own)
      return "is allowed only to the user running the router (uid " + std::to_string(own) +
             "); this peer is uid " + std::to_string(who->uid);
    return std::nullopt;
  }

  value services() const {
    value list = value::array();
    for (const auto& [name, entry] : services_) {
      value pids = value::array();
      for (const auto* w : entry.workers)
        pids.push_back(w->pid);
      list.push_back({{"name", name}, {"workers", entry.workers.size()}, {"pids", pids}});
    }
    std::sort(list.begin(), list.end(),
              [](const value& a, const value& b) { return a["name"] < b["name"]; });
    return list;
  }

  http_route_table::liveness has_workers() const {
    return [this](std::string_view s) { return workers(s) > 0; };
  }

  // plexus.declare_routes [routes]: the HTTP routes of the services the calling peer
  // serves, for peers that cannot put them in a `register` (ZeroMQ backend services,
  // whose registration is their probe). Refused like a register's routes.
  result<value> declare_routes(const peer& from, const value& params) {
    if (!params.is_array() || params.size() != 1 || !params[0].is_array())
      return plexus::error(errc::invalid_argument, "declare_routes expects (array routes)");
    if (from.services.empty())
      return plexus::error(errc::invalid_argument,
                           "declare_routes is for a service: this peer has registered none");
    for (const auto& service : from.services) {
      auto ok = http_routes_.claim(service, params[0], has_workers());
      if (!ok) return std::move(ok).error();
    }
    return value(params[0].size());
  }

  // plexus.routes: the HTTP route table, with each route's live workers.
  value routes_value() const {
    value list = value::array();
    for (const auto& r : http_routes_.list())
      list.push_back(route_value(r, workers(r.service)));
    return list;
  }

 public:
  std::size_t workers(std::string_view service) const {
    auto it = services_.find(service);
    return it == services_.end() ? 0 : it->second.workers.size();
  }
  const http_route_table& http_routes() const noexcept { return http_routes_; }

 private:
  result<value> describe(const value& params) const {
    if (params.size() != 1 || !params[0].is_string())
      return plexus::error(errc::invalid_argument, "describe expects (string service)");
    const auto name = params[0].get<std::string>();
    auto it = services_.find(name);
    if (it == services_.end())
      return plexus::error(errc::not_found, "no service named " + name, {{"service", name}});
    return value{
        {"name", name}, {"workers", it->second.workers.size()}, {"methods", it->second.methods}};
  }

  value stats_value() const {
    const auto st = stats();
    value out = {{"peers", st.peers},
                 {"forwarded", st.forwarded},
                 {"no_route", st.no_route},
                 {"failed_by_peer_loss", st.failed_by_peer_loss},
                 {"malformed", st.malformed},
                 {"unsolicited", st.unsolicited},
                 {"duplicate_msgid", st.duplicate_msgid},
                 {"denied", st.denied},
                 {"in_flight", st.in_flight},
                 {"published", st.published},
                 {"delivered", st.delivered},
                 {"dropped", st.dropped},
                 {"dropped_by_zmq_subscribers", pubsub_.outlet_dropped()},
                 {"refused_connections", st.refused_connections},
                 {"hello_timeouts", st.hello_timeouts},
                 {"over_budget", st.over_budget},
                 {"auth_failures", st.auth_failures},
                 {"expired", st.expired}};
    for (const auto& [name, read] : extra_stats_)
      if (!out.contains(name)) out[name] = read();
    return out;
  }

  // ---- control frames ----------------------------------------------------------------
  using control_op = void (impl::*)(peer& from, const std::string& op, const value& v);

  static const std::unordered_map<std::string_view, control_op>& control_ops() {
    static const std::unordered_map<std::string_view, control_op> ops{
        {control::hello, &impl::on_hello},
        {control::register_service, &impl::on_register},
        {control::unregister_service, &impl::on_unregister},
        {control::subscribe, &impl::on_subscription},
        {control::unsubscribe, &impl::on_subscription},
    };
    return ops;
  }

  void on_control(peer& from, std::span<const std::uint8_t> payload) {
    auto v = wire::decode_value(payload, {opts_.transport.max_frame_bytes, 64});
    if (!v || !v->is_object() || !v->contains("op") || !(*v)["op"].is_string()) {
      ++stats_.malformed;
      send_control(from, control::error_reply("", {errc::invalid_argument,
                                                   "control frame must be a map with an op"}));
      return;
    }
    const auto op = control::text_field(*v, "op");
    const auto& ops = control_ops();
    auto it = ops.find(op);
    if (it == ops.end()) {
      send_control(
          from, control::error_reply(op, {errc::unimplemented, "unknown control op '" + op + "'"}));
      return;
    }
    (this->*(it->second))(from, op, *v);
  }

  void on_hello(peer& from, const std::string&, const value& v) {
    from.hello_timer.reset();  // cancels the wait
    from.name = control::text_field(v, "name");
    from.pid = control::int_field(v, "pid");
    from.takes_deadlines = control::bool_field(v, "deadlines");
    send_control(from, {{"op", control::welcome}, {"peer", from.id}, {"deadlines", true}});
  }

  void on_register(peer& from, const std::string& op, const value& v) {
    const auto service = control::text_field(v, "service");
    if (service.empty() || service.size() > wire::max_name_bytes || service == "plexus" ||
        service == wire::publish_name) {
      send_control(
          from, control::error_reply(op, {errc::invalid_argument,
                                          "cannot register service '" + service +
                                              "': names are 1 to 255 bytes; 'plexus' and '*' are "
                                              "reserved"}));
      return;
    }
    if (v.contains("routes")) {
      auto ok = http_routes_.claim(service, v["routes"], has_workers());
      if (!ok) {
        send_control(from, control::error_reply(op, ok.error()));
        return;
      }
    }
    auto& entry = services_[service];
    if (std::find(entry.workers.begin(), entry.workers.end(), &from) == entry.workers.end()) {
      entry.workers.push_back(&from);
      from.services.push_back(service);
    }
    if (v.contains("methods") && v["methods"].is_array()) entry.methods = v["methods"];
    send_control(from, {{"op", control::registered}, {"service", service}});
  }

  void on_unregister(peer& from, const std::string&, const value& v) {
    const auto service = control::text_field(v, "service");
    unregister(from, service);
    send_control(from, {{"op", control::unregistered}, {"service", service}});
  }

  // subscribe and unsubscribe.
  void on_subscription(peer& from, const std::string& op, const value& v) {
    auto it = v.find("prefix");
    if (it == v.end() || !it->is_string()) {
      send_control(from, control::error_reply(op, {errc::invalid_argument,
                                                   op + " needs a text prefix (\"\" for all)"}));
      return;
    }
    auto prefix = it->get<std::string>();
    if (op == control::subscribe && from.prefixes.size() >= opts_.max_subscriptions_per_peer &&
        std::find(from.prefixes.begin(), from.prefixes.end(), prefix) == from.prefixes.end()) {
      ++stats_.over_budget;
      send_control(
          from,
          control::error_reply(
              op, limit_error("cannot subscribe to '" + prefix + "': max_subscriptions_per_peer (" +
                                  std::to_string(opts_.max_subscriptions_per_peer) + ") reached",
                              "max_subscriptions_per_peer")));
      return;
    }
    if (op == control::subscribe) {
      pubsub_.subscribe(from, prefix);
      send_control(from, {{"op", control::subscribed}, {"prefix", prefix}});
    } else {
      pubsub_.unsubscribe(from, prefix);
      send_control(from, {{"op", control::unsubscribed}, {"prefix", prefix}});
    }
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
    // The transport ends a connection whose tcp handshake failed with permission_denied
    // (transport/auth.hpp); nothing else ends one with that code.
    if (why.code == errc::permission_denied) ++stats_.auth_failures;
    auto owned = std::move(it->second);
    peers_.erase(it);
    const auto services = owned->services;
    for (const auto& s : services)
      unregister(*owned, s);
    pubsub_.forget(*owned);
    // Everything forwarded to this peer and unanswered fails now, not at the deadline.
    const std::string who = owned->name.empty() ? "a worker" : owned->name;
    inflight_.drain_worker(id, [&](std::uint32_t caller_id, std::uint32_t msgid) {
      ++stats_.failed_by_peer_loss;
      auto c = peers_.find(caller_id);
      if (c == peers_.end()) return;
      if (c->second->calls_in_flight > 0) --c->second->calls_in_flight;
      reply_error(*c->second, msgid,
                  {errc::unavailable,
                   who + " went away before answering (" + why.message + ")",
                   {{"peer", owned->name}, {"pid", owned->pid}}});
    });
  }

  boost::asio::io_context& io_;
  router_options opts_;
  router_stats stats_;
  std::vector<std::pair<std::string, std::function<std::uint64_t()>>> extra_stats_;  // add_stat
  detail::pubsub pubsub_;
  std::vector<transport::listener> listeners_;
  std::vector<std::unique_ptr<transport::inlet>> inlets_;
  std::unordered_map<std::uint32_t, std::unique_ptr<peer>> peers_;
  std::unordered_map<std::string, service_entry, string_hash, std::equal_to<>> services_;
  detail::inflight_table inflight_;
  expiry_heap expiries_;
  boost::asio::steady_timer expiry_timer_;
  std::int64_t armed_at_ = never;
  std::uint32_t next_peer_id_ = 1;
  std::unordered_map<std::string, method_entry, string_hash, std::equal_to<>> methods_;
  http_route_table http_routes_;
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
void router::add_method(std::string name, method_handler h, method_access access) {
  impl_->add_method(std::move(name), std::move(h), access);
}
void router::publish(std::string_view topic, value params) {
  impl_->publish_local(topic, std::move(params));
}
void router::tap(std::string prefix, tap_handler h) {
  impl_->tap(std::move(prefix), std::move(h));
}
void router::add_stat(std::string name, std::function<std::uint64_t()> read) {
  impl_->add_stat(std::move(name), std::move(read));
}
http_match router::match_http(std::string_view verb, std::string_view path) const {
  return impl_->http_routes().match(verb, path);
}
std::vector<http_route> router::http_routes() const {
  return impl_->http_routes().list();
}
std::size_t router::workers(std::string_view service) const {
  return impl_->workers(service);
}

}  // namespace plexus::broker
