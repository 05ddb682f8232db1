// One entry point that binds any kind of endpoint: the address's scheme picks the
// transport and the role, from a table of transports (src/transport/endpoint.cpp), as
// nng does. The router binds every address it is given through this one function and
// names no transport.
//
//   auto e = plexus::transport::bind_endpoint(io, "zmq-frontend+tcp://127.0.0.1:5560");
//   if (!e) fail(e.error());                         // names the address (and the schemes)
//   if (auto* l = std::get_if<plexus::transport::listener>(&*e)) l->start(on_accept);
//
// Schemes and what they give:
//   ipc:///path, unix:///path, tcp://host:port, inproc://name    a listener (native
//       frames; transport/connection.hpp)
//   zmq-frontend+<zmq endpoint>   a listener: seed-style client DEALERs (transport/zmq.hpp)
//   zmq-backend+<zmq endpoint>    a listener: seed-style service DEALERs, identity = service
//   zmq-pub+<zmq endpoint>        an inlet: seed-style PUB clients connect and publish
//   zmq-sub+<zmq endpoint>        an outlet: seed-style SUB services connect and receive
//   udp://host:port[?…]           an inlet: one notification per datagram (transport/udp.hpp)
// A ZeroMQ endpoint is ipc://path or tcp://host:port (tcp://host:* picks a port).
// Threading: the io_context's thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "plexus/transport/connection.hpp"
#include "plexus/transport/pubsub.hpp"

namespace plexus::transport {

// What an address binds: peers that connect (each one a connection), publications
// coming in, or publications going out. Each owns its socket; its address() is the
// bound address without the role prefix (tcp port 0 replaced by the real port).
using endpoint = std::variant<listener, std::unique_ptr<inlet>, std::unique_ptr<outlet>>;

// Binds `address` with the transport its scheme names. Errors: invalid_argument (bad
// address, or an unknown scheme: the message lists the known ones), unavailable
// (address in use), internal; every message names the address.
result<endpoint> bind_endpoint(boost::asio::io_context& io, std::string_view address,
                               const options& opts = {});

// The schemes bind_endpoint knows, in table order; a role prefix is written with its
// '+' ("zmq-frontend+").
std::vector<std::string> endpoint_schemes();

}  // namespace plexus::transport
