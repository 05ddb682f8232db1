// The ZeroMQ baseline: what a user builds today instead of plexus. A broker with two ROUTER
// sockets forwarding exactly like the Router of seed 001, a DEALER service with identity "echo",
// a DEALER client.
//
// Frames: the client sends [recipient_id, payload]; the frontend ROUTER delivers
// [client_id, recipient_id, payload]; the broker sends [recipient_id, client_id, payload] on the
// backend, so the service receives [client_id, payload] and replies [client_id, payload]; the
// broker sends [client_id, service_id, payload] on the frontend and the client receives
// [service_id, payload]. Empty probe messages ([sender_id, ""], from ZMQ_PROBE_ROUTER) are not
// forwarded; the broker reads its frontend only after the service's probe has arrived, so the
// service's identity is routable before the first request is forwarded.
#include "echo.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common.hpp"
#include "dealer.hpp"

namespace {

using namespace std::chrono_literals;

constexpr auto idle_timeout = 60s;  // the broker exits when nothing has arrived for this long
constexpr auto poll_period = 1000ms;

struct route_counters {
  std::uint64_t probes = 0, malformed = 0, loopback = 0, unroutable = 0;
};

// Moves every message queued on `from` to `to` as in seed 001's `_route`: [sender, recipient,
// payload] in, [recipient, sender, payload] out. Returns without blocking once `from` says
// EAGAIN. Returns true if a probe arrived. Unroutable messages (EHOSTUNREACH under
// ZMQ_ROUTER_MANDATORY) and malformed ones are dropped and counted; other zmq errors throw.
bool route_all(zmq::socket_t& from, zmq::socket_t& to, zmq::message_t (&parts)[3],
               route_counters& counters) {
  bool saw_probe = false;
  zmq::message_t extra;
  for (;;) {
    if (!from.recv(parts[0], zmq::recv_flags::dontwait)) return saw_probe;
    std::size_t count = 1;
    for (bool more = parts[0].more(); more; ++count) {
      zmq::message_t& part = count < 3 ? parts[count] : extra;
      (void)from.recv(part);  // the rest of a multipart message is already here
      more = part.more();
    }
    if (count == 2 && parts[1].size() == 0) {
      ++counters.probes;
      saw_probe = true;
      continue;
    }
    if (count != 3) {
      ++counters.malformed;
      continue;
    }
    if (parts[0] == parts[1]) {
      ++counters.loopback;
      continue;
    }
    try {
      if (!to.send(parts[1], zmq::send_flags::sndmore)) {
        ++counters.unroutable;  // peer at its high-water mark past ZMQ_SNDTIMEO
        continue;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EHOSTUNREACH) throw;
      ++counters.unroutable;
      continue;
    }
    (void)to.send(parts[0], zmq::send_flags::sndmore);
    (void)to.send(parts[2], zmq::send_flags::none);
  }
}

void configure_router(zmq::socket_t& s, std::string_view identity) {
  s.set(zmq::sockopt::router_mandatory, 1);
  s.set(zmq::sockopt::router_handover, 1);
  s.set(zmq::sockopt::routing_id, zmq::buffer(identity));
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndtimeo, 5000);
}

// Raw payloads of `payload` bytes whose first 8 carry the request's sequence number; the rest
// is a fixed pattern that must come back unchanged.
class raw_codec final : public bench::dealer_codec {
 public:
  explicit raw_codec(std::size_t payload) : body_(payload) {
    if (payload < 8) throw std::invalid_argument("zmq: payload must be at least 8 bytes");
    for (std::size_t i = 0; i < body_.size(); ++i)
      body_[i] = static_cast<std::uint8_t>('a' + i % 26);
  }

  zmq::const_buffer request(std::uint64_t id) override {
    std::memcpy(body_.data(), &id, sizeof id);
    return zmq::buffer(body_);
  }

  bench::dealer_reply parse(const zmq::message_t& reply) override {
    if (reply.size() != body_.size()) throw std::runtime_error("zmq: malformed reply");
    const auto* const p = static_cast<const std::uint8_t*>(reply.data());
    if (std::memcmp(p + 8, body_.data() + 8, body_.size() - 8) != 0) {
      throw std::runtime_error("zmq: echo does not match the request");
    }
    bench::dealer_reply r{0, true};
    std::memcpy(&r.id, p, sizeof r.id);
    return r;
  }

 private:
  std::vector<std::uint8_t> body_;
};

// The raw service echoes the payload as it came.
zmq::message_t* echo_as_is(zmq::message_t& request, zmq::message_t&) {
  return &request;
}

}  // namespace

std::string zmq_front_path(const std::string& workdir) {
  return workdir + "/zmq-front.sock";
}
std::string zmq_back_path(const std::string& workdir) {
  return workdir + "/zmq-back.sock";
}

int zmq_broker_role(const std::vector<std::string>& args) {
  zmq::context_t ctx(1);
  zmq::socket_t frontend(ctx, zmq::socket_type::router);
  zmq::socket_t backend(ctx, zmq::socket_type::router);
  configure_router(frontend, "router-frontend");
  configure_router(backend, "router-backend");
  frontend.bind("ipc://" + zmq_front_path(args[0]));
  backend.bind("ipc://" + zmq_back_path(args[0]));

  zmq::message_t parts[3];
  route_counters counters;
  bool service_seen = false;
  zmq::pollitem_t items[] = {{backend.handle(), 0, ZMQ_POLLIN, 0},
                             {frontend.handle(), 0, ZMQ_POLLIN, 0}};
  auto last_activity = bench::mono_now();
  for (;;) {
    const std::size_t polled = service_seen ? 2 : 1;
    if (zmq::poll(items, polled, poll_period) == 0) {
      if (bench::mono_now() - last_activity > idle_timeout) break;
      continue;
    }
    last_activity = bench::mono_now();
    if (items[0].revents & ZMQ_POLLIN) {
      service_seen = route_all(backend, frontend, parts, counters) || service_seen;
    }
    if (polled == 2 && (items[1].revents & ZMQ_POLLIN)) {
      route_all(frontend, backend, parts, counters);
    }
  }
  std::fprintf(stderr, "zmq_broker: idle, exiting (dropped: %llu malformed, %llu unroutable)\n",
               static_cast<unsigned long long>(counters.malformed),
               static_cast<unsigned long long>(counters.unroutable));
  return 0;
}

int zmq_service_role(const std::vector<std::string>& args) {
  (void)bench::run_dealer_service("ipc://" + zmq_back_path(args[0]), echo_as_is);
  return 0;
}

echo_result run_zmq_echo(const echo_config& cfg) {
  raw_codec codec(cfg.payload);
  const std::string front = zmq_front_path(cfg.workdir);
  bench::child_guard children;
  const auto roles =
      bench::start_roles(children, cfg, {"zmq_broker", {cfg.workdir}},
                         {front, zmq_back_path(cfg.workdir)}, {"zmq_service", {cfg.workdir}});
  echo_result result;
  {
    bench::dealer_client client("zmq", "ipc://" + front, codec, roles.broker, roles.service);
    result = bench::measure_echo(client, cfg);
    result.broker_rss_kib = bench::read_vm_hwm_kib(roles.broker);
  }
  children.stop_all();
  return result;
}
