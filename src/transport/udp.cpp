// UDP datagram node (see include/plexus/transport/udp.hpp).

#include "plexus/transport/udp.hpp"

#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/udp.hpp>
#include <charconv>
#include <vector>

#include "plexus/transport/address.hpp"
#include "plexus/wire/message.hpp"
#include "transport/cloexec.hpp"

namespace plexus::transport {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

plexus::error bad_address(std::string_view text, const std::string& why) {
  return plexus::error(errc::invalid_argument,
                       "bad udp address '" + std::string(text) + "': " + why +
                           " (expected udp://host:port[?interface=IPv4&ttl=N])",
                       {{"address", std::string(text)}});
}

result<int> parse_int(std::string_view text, std::string_view s, int lo, int hi, const char* what) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
    return bad_address(text, std::string(what) + " must be an integer from " + std::to_string(lo) +
                                 " to " + std::to_string(hi));
  return v;
}

// "*" binds every interface and, for sending, means this host.
result<udp::endpoint> resolve(asio::io_context& io, const udp_address& a, std::string_view text,
                              bool for_bind) {
  boost::system::error_code ec;
  const auto host = a.host == "*" ? std::string(for_bind ? "0.0.0.0" : "127.0.0.1") : a.host;
  auto ip = asio::ip::make_address(host, ec);
  if (!ec) return udp::endpoint(ip, a.port);
  udp::resolver resolver(io);
  auto results = resolver.resolve(host, std::to_string(a.port), ec);
  if (ec || results.empty()) return bad_address(text, "cannot resolve host '" + host + "'");
  return results.begin()->endpoint();
}

}  // namespace

result<udp_address> parse_udp_address(std::string_view text) {
  constexpr std::string_view prefix = "udp://";
  if (!text.starts_with(prefix)) return bad_address(text, "it must start with udp://");
  auto rest = text.substr(prefix.size());
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  udp_address out;
  auto hp = split_host_port(rest, "udp");
  if (!hp) return bad_address(text, hp.error().message);
  out.host = std::move(hp->host);
  out.port = hp->port;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = item.find('=');
    const auto key = item.substr(0, eq);
    const auto val = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    if (key == "interface") {
      boost::system::error_code ec;
      auto ip = asio::ip::make_address_v4(std::string(val), ec);
      if (ec) return bad_address(text, "interface must be an IPv4 address");
      out.interface_address = ip.to_string();
    } else if (key == "ttl") {
      auto t = parse_int(text, val, 0, 255, "ttl");
      if (!t) return std::move(t).error();
      out.ttl = *t;
    } else {
      return bad_address(text, "unknown key '" + std::string(key) + "'");
    }
  }
  return out;
}

// ---- sending ------------------------------------------------------------------------

struct udp_sender::state {
  explicit state(asio::io_context& io) : socket(io) {}
  udp::socket socket;
  udp::endpoint to;
  std::vector<std::uint8_t> scratch;
};

udp_sender::udp_sender(std::unique_ptr<state> s) : s_(std::move(s)) {}
udp_sender::udp_sender(udp_sender&&) noexcept = default;
udp_sender& udp_sender::operator=(udp_sender&&) noexcept = default;
udp_sender::~udp_sender() = default;

result<udp_sender> udp_sender::open(asio::io_context& io, std::string_view address) {
  auto a = parse_udp_address(address);
  if (!a) return std::move(a).error();
  auto to = resolve(io, *a, address, false);
  if (!to) return std::move(to).error();
  auto s = std::make_unique<state>(io);
  s->to = *to;
  boost::system::error_code ec;
  detail::open_cloexec(s->socket, to->protocol(), ec);
  if (!ec) s->socket.non_blocking(true, ec);
  if (!ec && to->address().is_multicast()) {
    s->socket.set_option(asio::ip::multicast::hops(a->ttl), ec);
    if (!ec) s->socket.set_option(asio::ip::multicast::enable_loopback(true), ec);
    if (!ec && !a->interface_address.empty() && to->address().is_v4())
      s->socket.set_option(
          asio::ip::multicast::outbound_interface(asio::ip::make_address_v4(a->interface_address)),
          ec);
  }
  if (ec)
    return plexus::error(errc::unavailable,
                         "cannot open udp socket for " + std::string(address) + ": " + ec.message(),
                         {{"address", std::string(address)}});
  return udp_sender(std::move(s));
}

result<void> udp_sender::notify(std::string_view method, const value& params) {
  if (!params.is_array()) return plexus::error(errc::invalid_argument, "params must be an array");
  s_->scratch.clear();
  wire::encode(s_->scratch, wire::notification{std::string(method), params});
  return send(s_->scratch);
}

result<void> udp_sender::send(std::span<const std::uint8_t> datagram) {
  if (datagram.size() > max_datagram_bytes)
    return plexus::error(errc::resource_exhausted,
                         "message of " + std::to_string(datagram.size()) +
                             " bytes does not fit in one UDP datagram (max_datagram_bytes " +
                             std::to_string(max_datagram_bytes) + "); it was not sent",
                         {{"limit", "max_datagram_bytes"}, {"size", datagram.size()}});
  boost::system::error_code ec;
  s_->socket.send_to(asio::buffer(datagram.data(), datagram.size()), s_->to, 0, ec);
  if (ec == asio::error::would_block)
    return plexus::error(errc::resource_exhausted, "udp send buffer is full; datagram not sent");
  if (ec == asio::error::message_size)
    return plexus::error(errc::resource_exhausted,
                         "datagram of " + std::to_string(datagram.size()) +
                             " bytes is too large for the path; it was not sent",
                         {{"limit", "max_datagram_bytes"}, {"size", datagram.size()}});
  if (ec) return plexus::error(errc::unavailable, "udp send failed: " + ec.message());
  return {};
}

// ---- receiving ----------------------------------------------------------------------

namespace {

class udp_inlet final : public inlet, public std::enable_shared_from_this<udp_inlet> {
 public:
  udp_inlet(asio::io_context& io, std::string address)
      : socket_(io), address_(std::move(address)) {}
  ~udp_inlet() override { close(); }

  udp::socket& socket() { return socket_; }
  void set_address(std::string a) { address_ = std::move(a); }

  void start(handler on_publication) override {
    on_publication_ = std::move(on_publication);
    receive();
  }
  void close() override {
    if (closed_) return;
    closed_ = true;
    *alive_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  std::string address() const override { return address_; }

 private:
  void receive() {
    socket_.async_receive_from(
        asio::buffer(buffer_), from_,
        [this, alive = alive_](const boost::system::error_code& ec, std::size_t n) {
          if (!*alive) return;
          // A datagram larger than the buffer cannot arrive: the buffer holds the
          // largest possible one.
          if (!ec && n > 0) {
            on_publication_(std::span<const std::uint8_t>(buffer_.data(), n));
            if (!*alive) return;
          }
          if (ec == asio::error::operation_aborted) return;
          receive();
        });
  }

  udp::socket socket_;
  std::string address_;
  udp::endpoint from_;
  std::vector<std::uint8_t> buffer_ = std::vector<std::uint8_t>(65536);
  handler on_publication_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool closed_ = false;
};

}  // namespace

result<std::unique_ptr<inlet>> bind_udp(asio::io_context& io, std::string_view address) {
  auto a = parse_udp_address(address);
  if (!a) return std::move(a).error();
  auto at = resolve(io, *a, address, true);
  if (!at) return std::move(at).error();
  const bool multicast = at->address().is_multicast();
  auto fail = [&](const boost::system::error_code& ec) {
    return plexus::error(
        ec == asio::error::address_in_use ? errc::unavailable : errc::invalid_argument,
        "cannot bind udp " + std::string(address) + ": " + ec.message(),
        {{"address", std::string(address)}});
  };
  auto in = std::make_unique<udp_inlet>(io, std::string(address));
  auto& sock = in->socket();
  boost::system::error_code ec;
  detail::open_cloexec(sock, at->protocol(), ec);
  if (ec) return fail(ec);
  if (multicast) {
    // Several receivers of one group on one host share the port.
    sock.set_option(udp::socket::reuse_address(true), ec);
    if (ec) return fail(ec);
    const auto any = at->address().is_v4() ? asio::ip::address(asio::ip::address_v4::any())
                                           : asio::ip::address(asio::ip::address_v6::any());
    sock.bind(udp::endpoint(any, at->port()), ec);
    if (ec) return fail(ec);
    if (at->address().is_v4() && !a->interface_address.empty())
      sock.set_option(asio::ip::multicast::join_group(
                          at->address().to_v4(), asio::ip::make_address_v4(a->interface_address)),
                      ec);
    else
      sock.set_option(asio::ip::multicast::join_group(at->address()), ec);
    if (ec) return fail(ec);
  } else {
    sock.bind(*at, ec);
    if (ec) return fail(ec);
  }
  // Report the port actually bound (port 0 picks one).
  const auto bound = sock.local_endpoint(ec);
  if (!ec && a->port == 0) {
    // A wildcard bind is reported as loopback: the address others on this host use.
    auto ip = at->address();
    if (ip.is_unspecified())
      ip = ip.is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                      : asio::ip::address(asio::ip::address_v4::loopback());
    const auto host = ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string();
    in->set_address("udp://" + host + ":" + std::to_string(bound.port()));
  }
  return std::unique_ptr<inlet>(std::move(in));
}

}  // namespace plexus::transport
