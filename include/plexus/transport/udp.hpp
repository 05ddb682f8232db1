// UDP datagram node (seed 001's DatagramNode): notifications over UDP unicast or
// multicast, one CBOR notification per datagram, best effort — a datagram may be
// lost, duplicated or reordered, and nobody is told.
//
//   auto tx = plexus::transport::udp_sender::open(io, "udp://127.0.0.1:9000");
//   tx->notify("temperature", plexus::value::array({21.5}));   // refused if > 65,507 bytes
//   // the router: router_options.listen = {"udp://127.0.0.1:9000"} publishes each one
//
// Addresses: udp://host:port, udp://[v6]:port. A multicast host (224.0.0.0/4,
// ff00::/8) joins the group on receive and sends to it. Query keys:
//   ?interface=IPv4  the interface to join / send multicast on (default: the system's);
//                     udp://239.1.2.3:9000?interface=127.0.0.1 stays on loopback
//   ?ttl=N           multicast hops (default 1: the local network only)
// A datagram carries at most max_datagram_bytes (the IPv4 UDP payload limit); a larger
// notification is refused with resource_exhausted instead of being truncated.
// Threading: the io_context's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "plexus/transport/pubsub.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::transport {

inline constexpr std::size_t max_datagram_bytes = 65507;

struct udp_address {
  std::string host;
  std::uint16_t port = 0;
  std::string interface_address;  // multicast interface, IPv4; empty: the system's choice
  int ttl = 1;
};

// Errors: invalid_argument naming the input.
result<udp_address> parse_udp_address(std::string_view text);

class udp_sender {
 public:
  // Opens a socket aimed at `address`; nothing is sent. Errors: invalid_argument
  // (bad address, unresolvable host), unavailable.
  static result<udp_sender> open(boost::asio::io_context& io, std::string_view address);

  // Encodes [2, method, params] and sends it as one datagram. Errors:
  // resource_exhausted (over max_datagram_bytes, or the socket's buffer is full),
  // invalid_argument (params not an array), unavailable (send failed, e.g. ICMP
  // port unreachable reported for an earlier datagram).
  result<void> notify(std::string_view method, const value& params);
  // Sends an already encoded message as one datagram; same errors.
  result<void> send(std::span<const std::uint8_t> datagram);

  udp_sender(udp_sender&&) noexcept;
  udp_sender& operator=(udp_sender&&) noexcept;
  ~udp_sender();

 private:
  struct state;
  explicit udp_sender(std::unique_ptr<state> s);
  std::unique_ptr<state> s_;
};

// Binds `address` (a multicast address joins its group) and hands every datagram to
// the inlet's handler. The port may be 0 to pick a free one: address() tells it.
result<std::unique_ptr<inlet>> bind_udp(boost::asio::io_context& io, std::string_view address);

}  // namespace plexus::transport
