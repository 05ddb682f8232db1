// Internal: one process connected to the router, as the router and its
// publish/subscribe part (broker/pubsub.hpp) see it.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/transport/connection.hpp"
#include "plexus/wire/message.hpp"

namespace plexus::broker::detail {

struct peer {
  std::uint32_t id = 0;
  char id_bytes[4] = {};  // `id` as the 4-byte frame name of forwarded messages
  transport::connection conn;
  std::string name;  // from hello, for logs and plexus.services
  std::int64_t pid = 0;
  std::vector<std::string> services;
  bool takes_deadlines = false;     // its hello said "deadlines": true (kind 2 frames)
  std::uint32_t outstanding = 0;    // requests forwarded to it, unanswered
  std::size_t calls_in_flight = 0;  // requests it sent, forwarded and unanswered
  // Until it says hello (router_options::hello_timeout_ms); empty once it has.
  std::optional<boost::asio::steady_timer> hello_timer;
  std::vector<std::string> prefixes;  // topic prefixes it subscribed to
  std::uint64_t delivered = 0;        // publications sent to it
  std::uint64_t dropped = 0;          // publications it lost (slow reader)
  std::uint64_t unreported = 0;       // of those, not yet told to it
  std::string_view id_name() const { return {id_bytes, 4}; }
};

// Sends a control frame; a failure shows up as the connection's close.
inline void send_control(peer& to, const value& v) {
  std::vector<std::uint8_t> bytes;
  wire::encode_value(bytes, v);
  (void)to.conn.send(wire::frame_kind::control, "", bytes);
}

}  // namespace plexus::broker::detail
