// The seed-style ZeroMQ peers of `plexus-bench echo` (seeds/001): a DEALER echo client, driven by
// measure_echo(), and a DEALER echo service. The raw ZeroMQ system (zmq_echo.cpp) and the CBOR
// systems of `--transport zmq` (zmq_transport_echo.cpp) differ only in their payloads, which a
// dealer_codec (client) and a dealer_answer (service) supply.
//
// Frames: the client sends [service_id "echo", request] and receives [sender_id, reply]; the
// service receives [sender_id, request] and sends [sender_id, reply].
//
//   raw_codec codec(cfg.payload);
//   bench::dealer_client client("zmq", "ipc://" + front, codec, roles.broker, roles.service);
//   echo_result r = bench::measure_echo(client, cfg);
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "measure.hpp"

namespace bench {

struct dealer_reply {
  std::uint64_t id = 0;
  bool ok = false;  // false: an error reply (from the broker or the service)
};

// What the client's payloads are. Called from the client's thread only.
class dealer_codec {
 public:
  virtual ~dealer_codec() = default;

  // The request payload carrying `id`; valid until the next call.
  virtual zmq::const_buffer request(std::uint64_t id) = 0;

  // Reads a reply payload. Throws std::runtime_error if it is malformed, or a success whose
  // echo does not match the request.
  virtual dealer_reply parse(const zmq::message_t& reply) = 0;

  // Checks the first successful reply of a connection in more depth (default: nothing more).
  virtual void check_first(const zmq::message_t& reply, std::uint64_t id) const;

  // What an error reply says.
  virtual std::string error_text(const zmq::message_t& reply) const;
};

class dealer_client final : public echo_client {
 public:
  // Connects a DEALER (routing id "bench-client", ZMQ_PROBE_ROUTER, receive timeout 10 s) to
  // `endpoint`, then resends a request (after at most 200 ms, or 5 ms after an error reply) until
  // an echo comes back: the first requests may wait in a broker, or be refused by it, until the
  // service has registered. Throws std::runtime_error if no echo comes within 10 s or `broker` or
  // `service` exits first. `name` labels every error. `codec` must outlive the client.
  dealer_client(std::string name, const std::string& endpoint, dealer_codec& codec, pid_t broker,
                pid_t service);

  // Echoes of earlier (resent) requests are skipped by their id.
  void round_trip() override;
  void send(std::size_t n) override;
  std::size_t receive() override;

 private:
  void send_request(std::uint64_t id);
  // One [sender_id, reply] (waiting up to the receive timeout unless `flags` says dontwait);
  // nullopt if none arrived.
  std::optional<dealer_reply> recv_reply(zmq::recv_flags flags);

  std::string name_;
  dealer_codec& codec_;
  zmq::context_t ctx_;
  zmq::socket_t dealer_;
  zmq::message_t from_, reply_;
  std::uint64_t id_ = 0;
};

// The service's answer to one request: the message to send back (`request` itself, or `scratch`
// filled in), or nullptr to drop a malformed request.
using dealer_answer = zmq::message_t* (*)(zmq::message_t& request, zmq::message_t& scratch);

// Runs a DEALER service (routing id "echo", ZMQ_PROBE_ROUTER: its empty probe registers it)
// connected to `endpoint` until nothing has arrived for 60 s. Returns how many requests it
// dropped as malformed (a request of more than one frame, or one `answer` refused). Throws on a
// ZeroMQ error.
std::uint64_t run_dealer_service(const std::string& endpoint, dealer_answer answer);

}  // namespace bench
