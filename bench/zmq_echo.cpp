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

namespace {

using namespace std::chrono_literals;

constexpr auto startup_timeout = 10s;
constexpr auto idle_timeout = 60s;  // a role exits when nothing has arrived for this long
constexpr auto poll_period = 1000ms;
constexpr int client_recv_timeout_ms = 10000;
constexpr std::string_view service_id = "echo";
constexpr std::string_view client_id = "bench-client";

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

void check_config(const echo_config& cfg) {
  if (cfg.payload < 8) throw std::invalid_argument("zmq: payload must be at least 8 bytes");
  if (cfg.inflight < 1 || cfg.calls < 1 || cfg.warmup < 0 || !(cfg.seconds > 0)) {
    throw std::invalid_argument("zmq: inflight >= 1, calls >= 1, warmup >= 0, seconds > 0");
  }
}

}  // namespace

std::string zmq_front_path(const std::string& workdir) {
  return workdir + "/zmq-front.sock";
}
std::string zmq_back_path(const std::string& workdir) {
  return workdir + "/zmq-back.sock";
}

int zmq_broker_role(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "zmq_broker: usage: _role zmq_broker WORKDIR\n");
    return 2;
  }
  try {
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
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zmq_broker: %s\n", e.what());
    return 1;
  }
}

int zmq_service_role(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "zmq_service: usage: _role zmq_service WORKDIR\n");
    return 2;
  }
  try {
    zmq::context_t ctx(1);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::routing_id, zmq::buffer(service_id));
    dealer.set(zmq::sockopt::probe_router, 1);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect("ipc://" + zmq_back_path(args[0]));

    // [client_id, payload] in, the same two frames back out.
    zmq::message_t sender, payload, extra;
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    auto last_activity = bench::mono_now();
    for (;;) {
      if (zmq::poll(&item, 1, poll_period) == 0) {
        if (bench::mono_now() - last_activity > idle_timeout) return 0;
        continue;
      }
      last_activity = bench::mono_now();
      while (dealer.recv(sender, zmq::recv_flags::dontwait)) {
        if (!sender.more()) continue;
        (void)dealer.recv(payload);
        if (payload.more()) {
          do {
            (void)dealer.recv(extra);
          } while (extra.more());
          continue;
        }
        (void)dealer.send(sender, zmq::send_flags::sndmore);
        (void)dealer.send(payload, zmq::send_flags::none);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zmq_service: %s\n", e.what());
    return 1;
  }
}

echo_result run_zmq_echo(const echo_config& cfg) {
  check_config(cfg);
  const std::string front = zmq_front_path(cfg.workdir);
  const std::string back = zmq_back_path(cfg.workdir);
  ::unlink(front.c_str());
  ::unlink(back.c_str());

  bench::child_guard children;
  const pid_t broker = children.spawn(cfg.self_exe, "zmq_broker", {cfg.workdir});
  bench::wait_for_unix_socket(front, startup_timeout, broker);
  bench::wait_for_unix_socket(back, startup_timeout, broker);
  const pid_t service = children.spawn(cfg.self_exe, "zmq_service", {cfg.workdir});

  echo_result result;
  {
    zmq::context_t ctx(1);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::routing_id, zmq::buffer(client_id));
    dealer.set(zmq::sockopt::probe_router, 1);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::rcvtimeo, client_recv_timeout_ms);
    dealer.connect("ipc://" + front);

    std::vector<std::uint8_t> body(cfg.payload);
    for (std::size_t i = 0; i < body.size(); ++i)
      body[i] = static_cast<std::uint8_t>('a' + i % 26);
    zmq::message_t from, reply;

    auto send_request = [&](std::uint64_t seq) {
      std::memcpy(body.data(), &seq, sizeof seq);
      (void)dealer.send(zmq::buffer(service_id), zmq::send_flags::sndmore);
      (void)dealer.send(zmq::buffer(body), zmq::send_flags::none);
    };
    // Receives one [service_id, payload] reply (waiting up to ZMQ_RCVTIMEO unless `flags` says
    // dontwait) and returns its sequence number; nullopt if none arrived.
    auto recv_reply = [&](zmq::recv_flags flags) -> std::optional<std::uint64_t> {
      if (!dealer.recv(from, flags)) return std::nullopt;
      if (!from.more() || !dealer.recv(reply) || reply.more() || reply.size() != body.size()) {
        throw std::runtime_error("zmq: malformed reply");
      }
      std::uint64_t seq;
      std::memcpy(&seq, reply.data(), sizeof seq);
      return seq;
    };

    std::uint64_t seq = 0;
    // The first request may wait in the broker until the service's probe has arrived; resend at
    // most every 200 ms until an echo comes back, within startup_timeout.
    {
      const auto deadline = bench::mono_now() + startup_timeout;
      bool connected = false;
      while (!connected) {
        if (bench::mono_now() >= deadline) throw std::runtime_error("zmq: no echo within 10 s");
        if (bench::child_exited(broker) || bench::child_exited(service)) {
          throw std::runtime_error("zmq: broker or service exited");
        }
        send_request(++seq);
        zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, 200ms) == 0) continue;
        while (const auto got = recv_reply(zmq::recv_flags::dontwait))
          connected = true;
      }
    }

    // Sequential: echoes of earlier (resent) requests are skipped by their sequence number.
    auto round_trip = [&]() {
      const std::uint64_t expected = ++seq;
      send_request(expected);
      for (;;) {
        const auto got = recv_reply(zmq::recv_flags::none);
        if (!got) throw std::runtime_error("zmq: no echo within the receive timeout");
        if (*got == expected) {
          if (std::memcmp(reply.data(), body.data(), body.size()) != 0) {
            throw std::runtime_error("zmq: echo does not match the request");
          }
          return;
        }
        if (*got > expected) throw std::runtime_error("zmq: echo of a request never sent");
      }
    };
    for (int i = 0; i < cfg.warmup; ++i)
      round_trip();
    std::vector<bench::mono_clock::duration> samples;
    samples.reserve(static_cast<std::size_t>(cfg.calls));
    for (int i = 0; i < cfg.calls; ++i) {
      const auto t0 = bench::mono_now();
      round_trip();
      samples.push_back(bench::mono_now() - t0);
    }

    // Pipelined: `inflight` requests out; per wake-up take every reply, send as many new ones.
    std::uint64_t completed = 0;
    const auto start = bench::mono_now();
    const auto end = start + std::chrono::duration_cast<bench::mono_clock::duration>(
                                 std::chrono::duration<double>(cfg.seconds));
    auto stop = start;
    for (int i = 0; i < cfg.inflight; ++i)
      send_request(++seq);
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    for (;;) {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(client_recv_timeout_ms)) == 0) {
        throw std::runtime_error("zmq: pipelined echoes stopped arriving");
      }
      std::uint64_t answered = 0;
      while (recv_reply(zmq::recv_flags::dontwait))
        ++answered;
      completed += answered;
      stop = bench::mono_now();
      if (stop >= end) break;
      for (std::uint64_t i = 0; i < answered; ++i)
        send_request(++seq);
    }
    const double elapsed = std::chrono::duration<double>(stop - start).count();

    result.rtt_p50_us = bench::percentile_us(samples, 0.50);
    result.rtt_p99_us = bench::percentile_us(samples, 0.99);
    result.calls_per_s = static_cast<double>(completed) / elapsed;
    result.broker_rss_kib = bench::read_vm_hwm_kib(broker);
  }
  children.stop_all();
  return result;
}
