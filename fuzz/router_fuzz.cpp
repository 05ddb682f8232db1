// libFuzzer target: the router (broker/router.hpp) reading frames from an untrusted
// peer — control messages (hello, register, subscribe, …), requests, responses to
// any peer id, publications and malformed payloads.
//
// The input is a stream in the native framing (wire/frame.hpp): u32 body length |
// kind | name length | name | [deadline_ms, kind 2] | payload, repeated; a trailing
// partial frame is ignored. Kind 2 frames go to the router with their deadline.
// Each run connects a worker that registers "calc" (and takes deadlines) and a fuzzed
// peer over inproc, sends the frames, lets the router work, then closes both. Besides
// "no crash", the router must be back where it started: no peers, nothing in flight.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "plexus/broker/router.hpp"
#include "plexus/transport/connection.hpp"
#include "plexus/wire/cbor.hpp"
#include "plexus/wire/frame.hpp"

namespace {

namespace asio = boost::asio;
namespace wire = plexus::wire;
namespace transport = plexus::transport;

constexpr const char* address = "inproc://fuzz-router";

struct fixture {
  asio::io_context io;
  plexus::broker::router router{io, {.listen = {address}}};
  fixture() {
    if (!router.start()) std::abort();
  }
};

fixture& the_fixture() {
  static fixture f;
  return f;
}

void drain(asio::io_context& io) {
  io.restart();
  while (io.poll() > 0) {
  }
}

std::vector<std::uint8_t> cbor(const plexus::value& v) {
  std::vector<std::uint8_t> out;
  wire::encode_value(out, v);
  return out;
}

transport::connection open(fixture& f) {
  auto c = transport::connect(f.io, address);
  if (!c) std::abort();
  c->start([](const wire::frame_view&) {}, [](const plexus::error&) {});
  return std::move(*c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& f = the_fixture();
  {
    auto worker = open(f);
    (void)worker.send(wire::frame_kind::control, "",
                      cbor({{"op", "hello"}, {"name", "calc"}, {"deadlines", true}}));
    (void)worker.send(wire::frame_kind::control, "",
                      cbor({{"op", "register"}, {"service", "calc"}}));
    auto peer = open(f);
    drain(f.io);

    std::span<const std::uint8_t> in(data, size);
    while (in.size() >= wire::frame_prefix_bytes) {
      const std::size_t body = wire::read_frame_length(in.data());
      if (in.size() - wire::frame_prefix_bytes < body) break;
      auto frame = wire::parse_frame_body(in.subspan(wire::frame_prefix_bytes, body));
      in = in.subspan(wire::frame_prefix_bytes + body);
      if (!frame) continue;
      if (frame->deadline_ms)
        (void)peer.send_with_deadline(frame->name, frame->payload, *frame->deadline_ms);
      else
        (void)peer.send(frame->kind, frame->name, frame->payload);
    }
    drain(f.io);
    peer.close();
    worker.close();
    drain(f.io);
  }
  drain(f.io);
  const auto stats = f.router.stats();
  if (stats.peers != 0 || stats.in_flight != 0) std::abort();
  return 0;
}
