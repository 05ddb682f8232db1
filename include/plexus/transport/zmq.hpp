// ZeroMQ endpoints with exactly the frames of the seed's RPC layer (seeds/001), so
// programs written against it join a plexus system unchanged. Each endpoint is one
// ROUTER socket bound to a ZeroMQ address; every peer identity that talks to it is
// one `connection` (listener semantics), so the router treats ZeroMQ peers like any
// other peer.
//
//   auto front = plexus::transport::listen_zmq(io, "ipc:///tmp/front", zmq_role::frontend);
//   auto back = plexus::transport::listen_zmq(io, "ipc:///tmp/back", zmq_role::backend);
//   front->start(on_accept); back->start(on_accept);
//
// Frames (multipart, after the ROUTER's identity frame):
//   frontend, from a client DEALER:  [recipient_service, payload]
//   frontend, to the client:         [sender_id, payload]
//   backend, from a service DEALER:  [sender_id, payload]   (its reply)
//   backend, to the service:         [sender_id, payload]
//   either side, a lone empty frame: the DEALER's connect probe (ZMQ_PROBE_ROUTER)
// A backend peer's identity is its service name: its first message (normally the
// probe) registers that name with the router. Control frames are native-only and are
// not sent to ZeroMQ peers. A peer is gone when its ZeroMQ connection ends (closed
// socket, or missed heartbeats: ZMQ_HEARTBEAT_IVL 1 s, ZMQ_HEARTBEAT_TIMEOUT 3 s).
// Threading: as for every transport, the io_context's thread only.
#pragma once

#include <memory>
#include <string_view>

#include "plexus/transport/connection.hpp"
#include "plexus/transport/pubsub.hpp"

namespace plexus::transport {

enum class zmq_role { frontend, backend };

// Binds a ROUTER socket at `address` (a ZeroMQ endpoint: ipc://path, tcp://host:port,
// tcp://127.0.0.1:* for any port). Errors: invalid_argument (bad endpoint),
// unavailable (address in use), internal.
result<listener> listen_zmq(boost::asio::io_context& io, std::string_view address, zmq_role role,
                            const options& opts = {});

// Publish/subscribe with seed-style nodes (transport/pubsub.hpp):
// binds a SUB socket for PUB clients, whose messages [topic, notification] are
// publications, ...
result<std::unique_ptr<inlet>> bind_zmq_publishers(boost::asio::io_context& io,
                                                   std::string_view address,
                                                   const options& opts = {});
// ... and a PUB socket for SUB services, which receive [topic, notification] for the
// topics they subscribed to.
result<std::unique_ptr<outlet>> bind_zmq_subscribers(boost::asio::io_context& io,
                                                     std::string_view address,
                                                     const options& opts = {});

}  // namespace plexus::transport
