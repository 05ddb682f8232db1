#include "plexus/gateway/gateway.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>

#include "plexus/rpc/client.hpp"
#include "plexus/rpc/http.hpp"
#include "plexus/transport/address.hpp"

namespace plexus::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// Hop-by-hop fields (RFC 9110 §7.6.1) end at the gateway, in both directions; so does
// content-length, which the gateway writes itself.
constexpr std::array<std::string_view, 10> hop_by_hop = {"connection",
                                                         "keep-alive",
                                                         "proxy-connection",
                                                         "proxy-authenticate",
                                                         "proxy-authorization",
                                                         "te",
                                                         "trailer",
                                                         "transfer-encoding",
                                                         "upgrade",
                                                         "content-length"};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Hop-by-hop, or named by the message's own Connection field.
bool dropped_field(std::string_view lower_name, std::string_view connection) {
  if (std::find(hop_by_hop.begin(), hop_by_hop.end(), lower_name) != hop_by_hop.end()) return true;
  while (!connection.empty()) {
    const auto comma = connection.find(',');
    auto token = connection.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
      token.remove_suffix(1);
    if (lower(token) == lower_name) return true;
    if (comma == std::string_view::npos) break;
    connection.remove_prefix(comma + 1);
  }
  return false;
}

// Request latency buckets of /metrics, in seconds.
constexpr std::array<double, 14> latency_buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
// At most this many route labels in /metrics; requests beyond count as "(other)".
constexpr std::size_t max_metric_labels = 4096;

value error_body(std::string_view message, std::string_view code) {
  return {{"message", message}, {"code", code}};
}

}  // namespace

void append_metric(std::string& out, std::string_view name,
                   std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                   double value) {
  out += name;
  if (labels.size() > 0) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out += ',';
      first = false;
      out += k;
      out += "=\"";
      for (char c : v) {
        if (c == '\\' || c == '"') {
          out += '\\';
          out += c;
        } else if (c == '\n') {
          out += "\\n";
        } else {
          out += c;
        }
      }
      out += '"';
    }
    out += '}';
  }
  char num[64];
  std::snprintf(num, sizeof num, " %.17g\n", value);
  out += num;
}

class gateway::impl : public std::enable_shared_from_this<gateway::impl> {
 public:
  impl(asio::io_context& io, broker::router& router, gateway_options opts,
       std::string router_address)
      : io_(io),
        router_(router),
        opts_(std::move(opts)),
        acceptor_(io),
        retry_(io),
        client_(io, {.router = std::move(router_address),
                     .name = "gateway",
                     .default_deadline = opts_.deadline}) {}

  result<void> start() {
    auto hp = transport::split_host_port(opts_.listen, "host:port");
    if (!hp)
      return plexus::error(errc::invalid_argument,
                           "gateway.listen '" + opts_.listen + "': " + hp.error().message,
                           {{"listen", opts_.listen}});
    error_code ec;
    const auto host = hp->host == "*" ? std::string("0.0.0.0") : hp->host;
    const auto addr = asio::ip::make_address(host, ec);
    if (ec)
      return plexus::error(
          errc::invalid_argument,
          "gateway.listen '" + opts_.listen + "': '" + host + "' is not an IP address",
          {{"listen", opts_.listen}});
    const tcp::endpoint ep(addr, hp->port);
    // Close-on-exec from birth: plexus run starts children, which must not inherit it.
    const int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return os_error("cannot open a socket for", errno);
    acceptor_.assign(ep.protocol(), fd, ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      error_code ignored;
      acceptor_.close(ignored);
      return os_error("cannot listen on", ec.value());
    }
    const auto bound = acceptor_.local_endpoint(ec);
    url_ = "http://" +
           (bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                    : bound.address().to_string()) +
           ":" + std::to_string(bound.port());
    if (auto ok = client_.connect(); !ok) return ok;
    accept_next();
    return {};
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
    for (auto& [id, close] : sessions_)
      close();
    sessions_.clear();
    client_.close();
  }

  const std::string& url() const noexcept { return url_; }
  void add_endpoint(std::string path, std::function<value()> f) {
    endpoints_[std::move(path)] = std::move(f);
  }
  void add_metrics(std::function<void(std::string&)> f) { metrics_.push_back(std::move(f)); }
  void add_event_stream(std::string path, stream_open open) {
    streams_[std::move(path)] = std::move(open);
  }

  // One answered request: its route (or built-in) label, status and time taken.
  void record(const std::string& label, unsigned status, std::chrono::steady_clock::duration d) {
    const bool known = by_route_.count(label) > 0;
    auto& r = by_route_[known || by_route_.size() < max_metric_labels ? label : "(other)"];
    ++r.by_status[status];
    const double s = std::chrono::duration<double>(d).count();
    r.sum_s += s;
    ++r.count;
    for (std::size_t i = 0; i < latency_buckets.size(); ++i)
      if (s <= latency_buckets[i]) ++r.buckets[i];
  }

  // /metrics: Prometheus text format 0.0.4.
  std::string metrics_text() const {
    std::string out;
    out +=
        "# HELP plexus_http_requests_total HTTP requests the gateway answered, by route and "
        "status.\n# TYPE plexus_http_requests_total counter\n";
    for (const auto& [label, r] : by_route_)
      for (const auto& [status, n] : r.by_status)
        append_metric(out, "plexus_http_requests_total",
                      {{"route", label}, {"status", std::to_string(status)}},
                      static_cast<double>(n));
    out +=
        "# HELP plexus_http_request_duration_seconds From the request's head read to its "
        "response queued, by route.\n# TYPE plexus_http_request_duration_seconds "
        "histogram\n";
    for (const auto& [label, r] : by_route_) {
      for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
        char le[32];
        std::snprintf(le, sizeof le, "%g", latency_buckets[i]);
        append_metric(out, "plexus_http_request_duration_seconds_bucket",
                      {{"route", label}, {"le", le}}, static_cast<double>(r.buckets[i]));
      }
      append_metric(out, "plexus_http_request_duration_seconds_bucket",
                    {{"route", label}, {"le", "+Inf"}}, static_cast<double>(r.count));
      append_metric(out, "plexus_http_request_duration_seconds_sum", {{"route", label}}, r.sum_s);
      append_metric(out, "plexus_http_request_duration_seconds_count", {{"route", label}},
                    static_cast<double>(r.count));
    }
    out +=
        "# HELP plexus_http_connections Connections open now.\n# TYPE plexus_http_connections "
        "gauge\n";
    append_metric(out, "plexus_http_connections", {}, static_cast<double>(sessions_.size()));
    out +=
        "# HELP plexus_http_refused_connections_total Connections closed at accept: "
        "max_connections reached.\n# TYPE plexus_http_refused_connections_total counter\n";
    append_metric(out, "plexus_http_refused_connections_total", {},
                  static_cast<double>(stats_.refused_connections));
    for (const auto& f : metrics_)
      f(out);
    return out;
  }
  gateway_stats stats() const {
    auto s = stats_;
    s.connections = sessions_.size();
    return s;
  }

  class session;
  using response = http::response<http::string_body>;
  using request = http::request<http::string_body>;

  // What a request gets when the gateway answers it itself, or starts its call.
  void handle(std::shared_ptr<session> s, request&& req);

  const gateway_options& options() const noexcept { return opts_; }
  gateway_stats& counters() noexcept { return stats_; }
  void forget(std::uint64_t id) { sessions_.erase(id); }

 private:
  plexus::error os_error(const std::string& what, int err) const {
    return plexus::error(errc::unavailable,
                         "gateway: " + what + " " + opts_.listen + ": " +
                             error_code(err, boost::system::system_category()).message() +
                             " (set [gateway] listen in app.toml)",
                         {{"listen", opts_.listen}});
  }

  // accept4 with SOCK_CLOEXEC: Asio's accept would leave a window where a child
  // started meanwhile inherits the connection.
  void accept_next() {
    acceptor_.async_wait(tcp::acceptor::wait_read, [weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->stopped_) return;
      self->accept_ready();
    });
  }
  void accept_ready();

  asio::io_context& io_;
  broker::router& router_;
  gateway_options opts_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  rpc::client client_;
  std::string url_;
  bool stopped_ = false;
  gateway_stats stats_;
  std::uint64_t next_session_ = 1;
  std::unordered_map<std::uint64_t, std::function<void()>> sessions_;  // id -> close
  std::unordered_map<std::string, std::function<value()>> endpoints_;
  std::vector<std::function<void(std::string&)>> metrics_;
  std::unordered_map<std::string, stream_open> streams_;
  struct route_figures {
    std::map<unsigned, std::uint64_t> by_status;
    std::array<std::uint64_t, latency_buckets.size()> buckets{};
    std::uint64_t count = 0;
    double sum_s = 0;
  };
  std::map<std::string, route_figures, std::less<>> by_route_;

  friend class session;
};

// One client connection: read a request, answer it, read the next. Owned by its own
// chain of operations (shared_ptr); the gateway keeps only a way to close it.
class gateway::impl::session : public std::enable_shared_from_this<session> {
 public:
  session(std::shared_ptr<impl> gw, tcp::socket socket, std::uint64_t id)
      : gw_(std::move(gw)), stream_(std::move(socket)), id_(id) {}

  void start() { read_header(); }
  void close() {
    if (closed_) return;
    closed_ = true;
    if (on_end_) std::exchange(on_end_, nullptr)();
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }
  // The answer to the request being served; `then_close` ends the connection after it.
  void reply(response&& res, bool then_close = false) {
    if (closed_) return;
    const auto code = res.result_int();
    auto& c = gw_->counters();
    if (code >= 500)
      ++c.responses_5xx;
    else if (code >= 400)
      ++c.responses_4xx;
    else if (code >= 200)
      ++c.responses_2xx;
    gw_->record(label_.empty() ? "(refused)" : label_, code,
                std::chrono::steady_clock::now() - started_);
    close_after_ = then_close || !keep_alive_;
    res.version(version_);
    res.keep_alive(!close_after_);
    if (head_) {
      res.prepare_payload();
      const auto length = res.body().size();
      res.body().clear();
      res.content_length(length);
    } else {
      res.prepare_payload();
    }
    out_ = std::move(res);
    stream_.expires_after(gw_->options().idle_timeout);
    http::async_write(stream_, out_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->end();
      if (self->close_after_) return self->finish();
      self->read_header();
    });
  }
  bool closed() const noexcept { return closed_; }
  // Turns the response into a stream of server-sent events: the head now (chunked on
  // HTTP/1.1; on 1.0 the body ends with the connection), then each pushed event. While
  // it streams, a read watches for the client leaving. `on_end` runs once when the
  // stream ends, whoever ends it.
  void stream(std::function<void()> on_end) {
    on_end_ = std::move(on_end);
    streaming_ = true;
    chunked_ = version_ >= 11;
    ++gw_->counters().responses_2xx;
    gw_->record(label_, 200, std::chrono::steady_clock::now() - started_);
    stream_head_.emplace(http::status::ok, version_);
    stream_head_->set(http::field::content_type, "text/event-stream");
    stream_head_->set(http::field::cache_control, "no-store");
    stream_head_->keep_alive(false);
    if (chunked_) stream_head_->chunked(true);
    serializer_.emplace(*stream_head_);
    stream_.expires_never();  // a stuck client loses events (the budget), not the loop
    writing_ = true;
    http::async_write_header(stream_, *serializer_,
                             [self = shared_from_this()](error_code ec, std::size_t) {
                               if (ec) return self->end();
                               self->writing_ = false;
                               self->write_next();
                             });
    stream_.async_read_some(
        asio::buffer(scratch_), [self = shared_from_this()](error_code, std::size_t) {
          self->end();  // anything from the client, or its leaving, ends the stream
        });
  }
  // Queues one event; false once the stream has ended.
  bool push(std::string event) {
    if (closed_) return false;
    const auto budget = gw_->options().max_stream_queue_bytes;
    if (queued_ + event.size() > budget) {
      ++dropped_;
      return true;
    }
    if (dropped_ > 0) {
      auto note = "event: dropped\ndata: {\"count\":" + std::to_string(dropped_) + "}\n\n";
      dropped_ = 0;
      queued_ += note.size();
      pending_.push_back(std::move(note));
    }
    queued_ += event.size();
    pending_.push_back(std::move(event));
    if (streaming_ && !writing_) write_next();  // before stream(): after the head
    return true;
  }

  // What /metrics counts this request under: a route ("GET /api/x/{id}"), a built-in's
  // path, or a reason the gateway answered itself ("(no route)").
  void label(std::string l) { label_ = std::move(l); }

 private:
  void write_next() {
    if (closed_ || !streaming_ || writing_ || pending_.empty()) return;
    writing_ = true;
    auto done = [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->end();
      self->queued_ -= self->pending_.front().size();
      self->pending_.pop_front();
      self->write_next();
    };
    if (chunked_)
      asio::async_write(stream_, http::make_chunk(asio::buffer(pending_.front())), std::move(done));
    else
      asio::async_write(stream_, asio::buffer(pending_.front()), std::move(done));
  }

  void end() {
    close();
    gw_->forget(id_);
  }
  // After a response that ends the connection: stop sending, and read (and drop) what
  // the client still sends for a moment, so that closing does not reset the connection
  // before the client has read the response.
  void finish() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    drain();
  }
  void drain() {
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > (1u << 20)) return self->end();
                              self->drain();
                            });
  }

  void read_header() {
    const auto& o = gw_->options();
    label_.clear();  // a request refused before its head is read counts as "(refused)"
    started_ = std::chrono::steady_clock::now();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(o.max_header_bytes + o.max_url_bytes, UINT32_MAX)));
    parser_->body_limit(o.max_body_bytes);
    stream_.expires_after(o.idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (ec) return on_read_error(ec);
    ++gw_->counters().requests;
    started_ = std::chrono::steady_clock::now();
    label_.clear();
    const auto& o = gw_->options();
    auto& req = parser_->get();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    if (req.target().size() > o.max_url_bytes)
      return refuse(http::status::uri_too_long,
                    "the URL has " + std::to_string(req.target().size()) + " bytes; at most " +
                        std::to_string(o.max_url_bytes));
    std::size_t header_bytes = 0;
    for (const auto& f : req)
      header_bytes += f.name_string().size() + f.value().size() + 4;
    if (header_bytes > o.max_header_bytes)
      return refuse(http::status::request_header_fields_too_large,
                    "the header fields have " + std::to_string(header_bytes) + " bytes; at most " +
                        std::to_string(o.max_header_bytes));
    if (const auto length = parser_->content_length(); length && *length > o.max_body_bytes)
      return refuse(http::status::payload_too_large, "the body has " + std::to_string(*length) +
                                                         " bytes; at most " +
                                                         std::to_string(o.max_body_bytes));
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      continue_.emplace(http::status::continue_, version_);
      http::async_write(stream_, *continue_,
                        [self = shared_from_this()](error_code ec, std::size_t) {
                          if (ec) return self->end();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) {
                       if (ec) return self->on_read_error(ec);
                       self->gw_->handle(self, self->parser_->release());
                     });
  }

  void on_read_error(error_code ec) {
    if (ec == http::error::header_limit)
      return refuse(
          http::status::request_header_fields_too_large,
          "the request's head is over " +
              std::to_string(gw_->options().max_header_bytes + gw_->options().max_url_bytes) +
              " bytes");
    if (ec == http::error::body_limit)
      return refuse(http::status::payload_too_large,
                    "the body is over " + std::to_string(gw_->options().max_body_bytes) + " bytes");
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
      return refuse(http::status::bad_request, "unreadable HTTP: " + ec.message());
    end();  // the client left, or went quiet
  }

  // An answer the gateway gives itself before the body was read: the connection ends
  // after it (what follows in the stream is not a request boundary it knows).
  void refuse(http::status status, const std::string& why) {
    response res{status, version_};
    res.set(http::field::content_type, "application/json");
    res.body() = error_body(why, status == http::status::bad_request ? "invalid_argument"
                                                                     : "resource_exhausted")
                     .dump();
    reply(std::move(res), true);
  }

  std::shared_ptr<impl> gw_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  // An event stream's head, its serializer, and the events not yet written.
  std::optional<http::response<http::empty_body>> stream_head_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;
  std::deque<std::string> pending_;
  std::size_t queued_ = 0;
  std::uint64_t dropped_ = 0;
  std::function<void()> on_end_;
  bool streaming_ = false;
  bool chunked_ = false;
  bool writing_ = false;
  response out_;
  std::array<char, 4096> scratch_{};
  std::size_t drained_ = 0;
  std::uint64_t id_;
  std::string label_;
  std::chrono::steady_clock::time_point started_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool close_after_ = false;
  bool closed_ = false;
};

void gateway::impl::accept_ready() {
  for (;;) {
    const int fd =
        ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // Out of descriptors or memory: accepting again at once would fail again.
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([weak = weak_from_this()](const error_code& ec) {
        if (auto self = weak.lock(); self && !ec && !self->stopped_) self->accept_next();
      });
      return;
    }
    if (sessions_.size() >= opts_.max_connections) {
      ::close(fd);
      ++stats_.refused_connections;
      continue;
    }
    error_code ec;
    tcp::socket sock(io_);
    sock.assign(acceptor_.local_endpoint(ec).protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      continue;
    }
    sock.set_option(tcp::no_delay(true), ec);
    const auto id = next_session_++;
    auto s = std::make_shared<session>(shared_from_this(), std::move(sock), id);
    sessions_[id] = [weak = std::weak_ptr<session>(s)] {
      if (auto s = weak.lock()) s->close();
    };
    s->start();
  }
  accept_next();
}

void gateway::impl::handle(std::shared_ptr<session> s, request&& req) {
  const auto target = std::string_view(req.target().data(), req.target().size());
  const auto q = target.find('?');
  const auto path = target.substr(0, q);
  const auto query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  const std::string verb(req.method_string());

  auto json_reply = [&](http::status status, const value& body) {
    response res{status, req.version()};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = body.dump(-1, ' ', false, value::error_handler_t::replace);
    return res;
  };

  // Built-in endpoints: answered here, now.
  std::function<value()> builtin;
  if (path == "/api/healthz") {
    builtin = [this] { return value{{"status", "ok"}, {"routes", router_.http_routes().size()}}; };
  } else if (path == "/api/routes") {
    builtin = [this] {
      value list = value::array();
      for (const auto& r : router_.http_routes())
        list.push_back(broker::route_value(r, router_.workers(r.service)));
      return list;
    };
  } else if (auto it = endpoints_.find(std::string(path)); it != endpoints_.end()) {
    builtin = it->second;
  }
  if (path == "/metrics") {
    s->label("/metrics");
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      auto res = json_reply(http::status::method_not_allowed,
                            error_body(verb + " is not allowed on /metrics", "invalid_argument"));
      res.set(http::field::allow, "GET, HEAD");
      return s->reply(std::move(res));
    }
    response res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.body() = metrics_text();
    return s->reply(std::move(res));
  }
  if (auto it = streams_.find(std::string(path)); it != streams_.end()) {
    s->label(std::string(path));
    if (req.method() != http::verb::get) {
      auto res = json_reply(
          http::status::method_not_allowed,
          error_body(verb + " is not allowed on " + std::string(path), "invalid_argument"));
      res.set(http::field::allow, "GET");
      return s->reply(std::move(res));
    }
    auto send = [weak = std::weak_ptr<session>(s)](std::string event) {
      auto alive = weak.lock();
      return alive && alive->push(std::move(event));
    };
    auto opened = it->second(query, std::move(send));
    if (!opened)
      return s->reply(json_reply(
          http::status::bad_request,
          error_body(opened.error().message, std::string(to_string(opened.error().code)))));
    return s->stream(std::move(*opened));
  }
  if (builtin) {
    s->label(std::string(path));
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      auto res = json_reply(
          http::status::method_not_allowed,
          error_body(verb + " is not allowed on " + std::string(path), "invalid_argument"));
      res.set(http::field::allow, "GET, HEAD");
      return s->reply(std::move(res));
    }
    return s->reply(json_reply(http::status::ok, builtin()));
  }

  auto m = router_.match_http(verb, path);
  s->label(m.what == broker::http_match::outcome::found        ? verb + " " + m.route.pattern
           : m.what == broker::http_match::outcome::wrong_verb ? "(wrong verb)"
                                                               : "(no route)");
  if (m.what == broker::http_match::outcome::no_route)
    return s->reply(
        json_reply(http::status::not_found,
                   error_body("no route for " + verb + " " + std::string(path), "not_found")));
  if (m.what == broker::http_match::outcome::wrong_verb) {
    auto res = json_reply(
        http::status::method_not_allowed,
        error_body(verb + " is not allowed on " + std::string(path) + " (allowed: " + m.allow + ")",
                   "invalid_argument"));
    res.set(http::field::allow, m.allow);
    return s->reply(std::move(res));
  }
  const auto& route = m.route;
  if (router_.workers(route.service) == 0) {
    auto res = json_reply(
        http::status::service_unavailable,
        error_body("service " + route.service + " has no worker running", "unavailable"));
    res.set(http::field::retry_after, "1");
    return s->reply(std::move(res));
  }

  rpc::http_request call{.verb = verb,
                         .path = std::string(path),
                         .query = std::string(query),
                         .params = {},
                         .headers = {},
                         .body = std::move(req.body())};
  for (auto& [name, raw] : m.params)
    call.params.emplace_back(std::move(name), rpc::percent_decode(raw));
  const auto connection = std::string_view(req[http::field::connection]);
  for (const auto& f : req) {
    auto name = lower(std::string_view(f.name_string().data(), f.name_string().size()));
    if (dropped_field(name, connection)) continue;
    call.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  const auto deadline =
      route.deadline_ms > 0 ? std::chrono::milliseconds(route.deadline_ms) : opts_.deadline;
  const unsigned version = req.version();
  client_.async_call(
      route.service, route.method, value::array({std::move(call).to_value()}),
      [s = std::move(s), version, route_name = verb + " " + route.pattern](result<value> r) {
        if (s->closed()) return;
        auto answer = [&](http::status status, const value& body) {
          response res{status, version};
          res.set(http::field::content_type, "application/json");
          res.body() = body.dump(-1, ' ', false, value::error_handler_t::replace);
          return res;
        };
        if (!r) {
          const auto& e = r.error();
          const auto code = std::string(to_string(e.code));
          if (e.code == errc::unavailable || e.code == errc::resource_exhausted) {
            auto res = answer(http::status::service_unavailable, error_body(e.message, code));
            res.set(http::field::retry_after, "1");
            return s->reply(std::move(res));
          }
          if (e.code == errc::deadline_exceeded)
            return s->reply(answer(http::status::gateway_timeout,
                                   error_body(route_name + ": " + e.message, code)));
          return s->reply(answer(http::status::internal_server_error, error_body(e.message, code)));
        }
        auto out = rpc::http_response::from_value(std::move(*r));
        if (!out)
          return s->reply(
              answer(http::status::bad_gateway, error_body(route_name +
                                                               " answered something that is not an "
                                                               "HTTP response: " +
                                                               out.error().message,
                                                           "internal")));
        response res{static_cast<http::status>(out->status), version};
        res.result(static_cast<unsigned>(out->status));
        std::string conn;
        for (const auto& [n, v] : out->headers)
          if (lower(n) == "connection") conn = v;
        for (auto& [n, v] : out->headers) {
          if (dropped_field(lower(n), conn)) continue;
          // Bad bytes made safe: a field Beast would write verbatim must not split the
          // response (CR, LF, NUL) .
          if (n.find_first_of("\r\n\0 :", 0, 5) != std::string::npos || n.empty() ||
              v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
            continue;
          res.insert(n, v);
        }
        res.body() = std::move(out->body);
        s->reply(std::move(res));
      },
      deadline);
}

gateway::gateway(asio::io_context& io, broker::router& router, gateway_options opts,
                 std::string router_address)
    : impl_(std::make_shared<impl>(io, router, std::move(opts), std::move(router_address))) {}
gateway::~gateway() {
  impl_->stop();
}
result<void> gateway::start() {
  return impl_->start();
}
void gateway::stop() {
  impl_->stop();
}
std::string gateway::url() const {
  return impl_->url();
}
void gateway::add_endpoint(std::string path, std::function<value()> f) {
  impl_->add_endpoint(std::move(path), std::move(f));
}
void gateway::add_event_stream(std::string path, stream_open open) {
  impl_->add_event_stream(std::move(path), std::move(open));
}
void gateway::add_metrics(std::function<void(std::string& out)> f) {
  impl_->add_metrics(std::move(f));
}
gateway_stats gateway::stats() const {
  return impl_->stats();
}

}  // namespace plexus::gateway
