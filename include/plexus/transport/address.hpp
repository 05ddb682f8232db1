// Parsing and defaults for transport addresses.
//
//   auto a = plexus::transport::parse_address("tcp://127.0.0.1:0");  // result<address>
//   if (a && a->scheme == plexus::transport::scheme::tcp) use(a->host, a->port);
//   std::string def = plexus::transport::default_router_address();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/wire/error.hpp"

namespace plexus::transport {

enum class scheme { ipc, tcp, inproc };

struct address {
  plexus::transport::scheme scheme = scheme::ipc;
  std::string path;  // ipc: the socket file; inproc: the name
  std::string host;  // tcp only; "*" is accepted for binding and means 0.0.0.0
  std::uint16_t port = 0;

  std::string to_string() const;
};

// "host:port" or "[v6]:port" (what follows a tcp:// or udp:// scheme). The error's
// message is only the reason, e.g. "port must be a number from 0 to 65535"; `scheme`
// names the form in it ("expected tcp://host:port").
struct host_port {
  std::string host;
  std::uint16_t port = 0;
};
result<host_port> split_host_port(std::string_view text, std::string_view scheme);

// Accepts ipc:///abs/path, unix:///abs/path, ipc://relative/path, tcp://host:port,
// tcp://[v6]:port and inproc://name. Errors are invalid_argument naming the input.
result<address> parse_address(std::string_view text);

// The address a peer on this host connects to for a bound address: a wildcard host
// ("*", 0.0.0.0, ::) becomes loopback (127.0.0.1, ::1); everything else is unchanged.
// Works on ZeroMQ endpoints too (tcp://*:5555 -> tcp://127.0.0.1:5555).
std::string connectable(std::string_view bound);

// Several addresses of one peer, as a comma-separated list ("tcp://h:1,ipc:///p"),
// in the order to try them: ipc first (no TCP stack, no port to collide), then
// inproc, then tcp on loopback, then other tcp; ties keep their listed order. Each is
// made connectable(); blanks are skipped.
std::vector<std::string> by_preference(std::string_view list);

// $PLEXUS_ROUTER if set, else ipc://<os::runtime_dir()>/router.sock: that is
// $XDG_RUNTIME_DIR/plexus/router.sock when XDG_RUNTIME_DIR is set, else
// ${TMPDIR:-/tmp}/plexus-<uid>/router.sock. The listener makes the directory 0700.
std::string default_router_address();

}  // namespace plexus::transport
