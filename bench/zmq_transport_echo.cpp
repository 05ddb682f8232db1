// `plexus-bench echo --transport zmq`: seed-style ZeroMQ peers (seeds/001) through two brokers.
// The client and the service are the same code for both systems; only the broker differs:
//
//   zmq         the raw ZeroMQ ROUTER-ROUTER broker of bench/zmq_echo.cpp (zmq_broker role)
//   plexus-zmq  plexus::broker::router with only zmq-frontend+ / zmq-backend+ endpoints
//
// Client: a DEALER (ZMQ_PROBE_ROUTER=1) sending [recipient "echo", request] and receiving
// [sender_id, response]. Service: a DEALER whose routing id is its service name "echo"
// (ZMQ_PROBE_ROUTER=1: its empty probe registers it with the plexus router), receiving
// [sender_id, request] and answering [sender_id, response]. Payloads are the CBOR messages of
// the wire protocol, as a seed peer writes them (shortest integer heads, like cbor2):
//   request   [0, msgid, "echo", [h'<payload bytes>']]
//   response  [1, msgid, null, h'<payload bytes>']
// The service answers by copying the msgid and the argument as they are (no decode/encode),
// the client checks msgid and payload of every response. The raw broker forwards any payload;
// the plexus router peeks at kind and msgid (it tracks requests in flight), so both need real
// CBOR messages for the comparison to be like for like.
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include <zmq.hpp>

#include "common.hpp"
#include "echo.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/wire/message.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr auto startup_timeout = 10s;
constexpr auto idle_timeout = 60s;  // the service exits when nothing has arrived for this long
constexpr auto poll_period = 1000ms;
constexpr int client_recv_timeout_ms = 10000;
constexpr std::string_view service_id = "echo";
constexpr std::string_view method = "echo";
constexpr std::string_view client_id = "bench-client";

std::string plexus_front_path(const std::string& workdir) {
  return workdir + "/plexus-zmq-front.sock";
}
std::string plexus_back_path(const std::string& workdir) {
  return workdir + "/plexus-zmq-back.sock";
}

// ---- CBOR, just what the two messages need ---------------------------------------------------

constexpr std::uint8_t cbor_array4 = 0x84, cbor_array1 = 0x81, cbor_null = 0xf6;
constexpr unsigned major_uint = 0, major_bytes = 2, major_text = 3;

// Appends a head (major type, argument) with the shortest argument encoding.
void put_head(std::vector<std::uint8_t>& out, unsigned major, std::uint64_t arg) {
  const auto mt = static_cast<std::uint8_t>(major << 5);
  int bytes = 0;
  if (arg < 24) {
    out.push_back(static_cast<std::uint8_t>(mt | arg));
    return;
  } else if (arg <= 0xff) {
    out.push_back(mt | 24);
    bytes = 1;
  } else if (arg <= 0xffff) {
    out.push_back(mt | 25);
    bytes = 2;
  } else if (arg <= 0xffffffff) {
    out.push_back(mt | 26);
    bytes = 4;
  } else {
    out.push_back(mt | 27);
    bytes = 8;
  }
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<std::uint8_t>(arg >> (8 * i)));
}

// Reads a head at `p`: the position after it, or nullptr if [p, end) does not start with one
// (indefinite lengths and reserved values included).
const std::uint8_t* get_head(const std::uint8_t* p, const std::uint8_t* end, unsigned& major,
                             std::uint64_t& arg) {
  if (p >= end) return nullptr;
  major = *p >> 5;
  const unsigned info = *p & 31;
  ++p;
  if (info < 24) {
    arg = info;
    return p;
  }
  if (info > 27) return nullptr;
  const std::size_t n = std::size_t{1} << (info - 24);
  if (static_cast<std::size_t>(end - p) < n) return nullptr;
  arg = 0;
  for (std::size_t i = 0; i < n; ++i)
    arg = arg << 8 | p[i];
  return p + n;
}

// The service's whole job: [0, msgid, method, [x]] -> [1, msgid, null, x], msgid and x copied
// as they are. False (and `out` untouched) when `in` is not such a request.
bool answer(const zmq::message_t& in, zmq::message_t& out) {
  const auto* const begin = static_cast<const std::uint8_t*>(in.data());
  const auto* const end = begin + in.size();
  if (in.size() < 2 || begin[0] != cbor_array4 || begin[1] != 0) return false;
  unsigned major = 0;
  std::uint64_t arg = 0;
  const std::uint8_t* const id = begin + 2;
  const std::uint8_t* const id_end = get_head(id, end, major, arg);
  if (id_end == nullptr || major != major_uint || arg > std::numeric_limits<std::uint32_t>::max())
    return false;
  const std::uint8_t* p = get_head(id_end, end, major, arg);  // the method
  if (p == nullptr || major != major_text || arg > static_cast<std::uint64_t>(end - p))
    return false;
  p += arg;
  if (end - p < 2 || *p != cbor_array1) return false;
  ++p;  // the one argument runs to the end
  const auto id_size = static_cast<std::size_t>(id_end - id);
  const auto arg_size = static_cast<std::size_t>(end - p);
  out.rebuild(3 + id_size + arg_size);
  auto* o = static_cast<std::uint8_t*>(out.data());
  o[0] = cbor_array4;
  o[1] = 1;
  std::memcpy(o + 2, id, id_size);
  o[2 + id_size] = cbor_null;
  std::memcpy(o + 3 + id_size, p, arg_size);
  return true;
}

// ---- the client -------------------------------------------------------------------------------

struct reply_info {
  std::uint32_t msgid = 0;
  bool ok = false;  // false: an error response ([1, msgid, [message, context], null])
};

class cbor_dealer_client {
 public:
  cbor_dealer_client(const echo_config& cfg, const std::string& endpoint)
      : ctx_(1), dealer_(ctx_, zmq::socket_type::dealer), body_(cfg.payload) {
    for (std::size_t i = 0; i < body_.size(); ++i)
      body_[i] = static_cast<std::uint8_t>('a' + i % 26);
    dealer_.set(zmq::sockopt::routing_id, zmq::buffer(client_id));
    dealer_.set(zmq::sockopt::probe_router, 1);
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.set(zmq::sockopt::rcvtimeo, client_recv_timeout_ms);
    dealer_.connect(endpoint);
    check_request_encoding();
  }

  zmq::socket_t& socket() { return dealer_; }

  void send_request(std::uint32_t msgid) {
    build_request(msgid);
    (void)dealer_.send(zmq::buffer(service_id), zmq::send_flags::sndmore);
    (void)dealer_.send(zmq::buffer(request_), zmq::send_flags::none);
  }

  // One [sender_id, response] (waiting up to ZMQ_RCVTIMEO unless `flags` says dontwait);
  // nullopt if none arrived. A success must echo the payload; throws on anything malformed.
  std::optional<reply_info> recv_reply(zmq::recv_flags flags) {
    if (!dealer_.recv(from_, flags)) return std::nullopt;
    if (!from_.more() || !dealer_.recv(reply_) || reply_.more()) {
      throw std::runtime_error("zmq client: reply is not [sender_id, payload]");
    }
    const auto* const begin = static_cast<const std::uint8_t*>(reply_.data());
    const auto* const end = begin + reply_.size();
    unsigned major = 0;
    std::uint64_t arg = 0;
    const std::uint8_t* p = reply_.size() >= 2 && begin[0] == cbor_array4 && begin[1] == 1
                                ? get_head(begin + 2, end, major, arg)
                                : nullptr;
    if (p == nullptr || major != major_uint || arg > std::numeric_limits<std::uint32_t>::max() ||
        p == end) {
      throw std::runtime_error("zmq client: reply is not a CBOR response");
    }
    reply_info info{static_cast<std::uint32_t>(arg), false};
    if (*p != cbor_null) return info;  // an error response; see last_error()
    p = get_head(p + 1, end, major, arg);
    if (p == nullptr || major != major_bytes || arg != body_.size() ||
        static_cast<std::size_t>(end - p) != body_.size() ||
        std::memcmp(p, body_.data(), body_.size()) != 0) {
      throw std::runtime_error("zmq client: echo does not match the request");
    }
    info.ok = true;
    return info;
  }

  // The last reply, decoded by the plexus wire library: checks that what the bench writes and
  // reads by hand is what the library (and the router) means.
  void check_last_reply(std::uint32_t msgid) const {
    auto m = plexus::wire::decode({static_cast<const std::uint8_t*>(reply_.data()), reply_.size()});
    if (!m) throw std::runtime_error("zmq client: response does not decode: " + m.error().message);
    const auto* r = std::get_if<plexus::wire::response>(&*m);
    if (r == nullptr || r->msgid != msgid || r->error.has_value() || !same_bytes(r->result)) {
      throw std::runtime_error("zmq client: response decodes to something else");
    }
  }

  // The message of the last (error) reply.
  std::string last_error() const {
    auto m = plexus::wire::decode({static_cast<const std::uint8_t*>(reply_.data()), reply_.size()});
    if (!m) return "undecodable response: " + m.error().message;
    const auto* r = std::get_if<plexus::wire::response>(&*m);
    if (r == nullptr || !r->error) return "not an error response";
    return r->error->message;
  }

 private:
  bool same_bytes(const plexus::value& v) const {
    if (!v.is_binary()) return false;
    const auto& b = v.get_binary();
    return b.size() == body_.size() && std::equal(b.begin(), b.end(), body_.begin());
  }
  void check_request_encoding() {
    build_request(12345);
    auto m = plexus::wire::decode(request_);
    const auto* r = m ? std::get_if<plexus::wire::request>(&*m) : nullptr;
    if (r == nullptr || r->msgid != 12345 || r->method != method || r->params.size() != 1 ||
        !same_bytes(r->params[0])) {
      throw std::runtime_error("zmq client: the request encoding does not decode as a request");
    }
  }
  // [0, msgid, "echo", [h'body']] into request_.
  void build_request(std::uint32_t msgid) {
    request_.clear();
    request_.push_back(cbor_array4);
    request_.push_back(0);
    put_head(request_, major_uint, msgid);
    put_head(request_, major_text, method.size());
    request_.insert(request_.end(), method.begin(), method.end());
    request_.push_back(cbor_array1);
    put_head(request_, major_bytes, body_.size());
    request_.insert(request_.end(), body_.begin(), body_.end());
  }

  zmq::context_t ctx_;
  zmq::socket_t dealer_;
  std::vector<std::uint8_t> body_, request_;
  zmq::message_t from_, reply_;
};

void check_config(const echo_config& cfg) {
  if (cfg.inflight < 1 || cfg.calls < 1 || cfg.warmup < 0 || !(cfg.seconds > 0)) {
    throw std::invalid_argument("zmq: inflight >= 1, calls >= 1, warmup >= 0, seconds > 0");
  }
}

// The measurement, identical for both brokers: connect to `front`, wait until an echo comes
// back, sequential round trips, then the pipelined window. `name` labels errors.
echo_result measure(const echo_config& cfg, const std::string& front, pid_t broker, pid_t service,
                    const std::string& name) {
  cbor_dealer_client client(cfg, "ipc://" + front);
  auto& dealer = client.socket();
  std::uint32_t msgid = 0;

  // The first requests may wait in the raw broker until the service's probe has arrived, or be
  // answered "no route" by the plexus router until it has: resend (after at most 200 ms, or 5 ms
  // after an error) until an echo comes back, within startup_timeout.
  {
    const auto deadline = bench::mono_now() + startup_timeout;
    std::string last_error = "no reply";
    bool connected = false;
    while (!connected) {
      if (bench::mono_now() >= deadline) {
        throw std::runtime_error(name + ": no echo within 10 s (" + last_error + ")");
      }
      if (bench::child_exited(broker) || bench::child_exited(service)) {
        throw std::runtime_error(name + ": broker or service exited");
      }
      client.send_request(++msgid);
      zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, 200ms) == 0) continue;
      bool refused = false;
      while (const auto got = client.recv_reply(zmq::recv_flags::dontwait)) {
        if (got->ok) {
          client.check_last_reply(got->msgid);
          connected = true;
        } else {
          last_error = client.last_error();
          refused = true;
        }
      }
      if (!connected && refused) std::this_thread::sleep_for(5ms);
    }
  }

  // Sequential: echoes of earlier (resent) requests are skipped by their msgid.
  auto round_trip = [&]() {
    const std::uint32_t expected = ++msgid;
    client.send_request(expected);
    for (;;) {
      const auto got = client.recv_reply(zmq::recv_flags::none);
      if (!got) throw std::runtime_error(name + ": no echo within the receive timeout");
      if (got->msgid == expected) {
        if (!got->ok) throw std::runtime_error(name + ": call failed: " + client.last_error());
        return;
      }
      if (got->msgid > expected) throw std::runtime_error(name + ": echo of a request never sent");
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
    client.send_request(++msgid);
  zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  for (;;) {
    if (zmq::poll(&item, 1, std::chrono::milliseconds(client_recv_timeout_ms)) == 0) {
      throw std::runtime_error(name + ": pipelined echoes stopped arriving");
    }
    std::uint64_t answered = 0;
    while (const auto got = client.recv_reply(zmq::recv_flags::dontwait)) {
      if (!got->ok) throw std::runtime_error(name + ": call failed: " + client.last_error());
      ++answered;
    }
    completed += answered;
    stop = bench::mono_now();
    if (stop >= end) break;
    for (std::uint64_t i = 0; i < answered; ++i)
      client.send_request(++msgid);
  }
  const double elapsed = std::chrono::duration<double>(stop - start).count();

  echo_result result;
  result.rtt_p50_us = bench::percentile_us(samples, 0.50);
  result.rtt_p99_us = bench::percentile_us(samples, 0.99);
  result.calls_per_s = static_cast<double>(completed) / elapsed;
  result.broker_rss_kib = bench::read_vm_hwm_kib(broker);
  return result;
}

}  // namespace

int zmq_cbor_service_role(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "zmq_cbor_service: usage: _role zmq_cbor_service BACKEND_ENDPOINT\n");
    return 2;
  }
  try {
    zmq::context_t ctx(1);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::routing_id, zmq::buffer(service_id));
    dealer.set(zmq::sockopt::probe_router, 1);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(args[0]);

    // [sender_id, request] in, [sender_id, response] out.
    zmq::message_t sender, request, response, extra;
    std::uint64_t malformed = 0;
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    auto last_activity = bench::mono_now();
    for (;;) {
      if (zmq::poll(&item, 1, poll_period) == 0) {
        if (bench::mono_now() - last_activity > idle_timeout) break;
        continue;
      }
      last_activity = bench::mono_now();
      while (dealer.recv(sender, zmq::recv_flags::dontwait)) {
        if (!sender.more()) continue;
        (void)dealer.recv(request);
        if (request.more()) {
          do {
            (void)dealer.recv(extra);
          } while (extra.more());
          ++malformed;
          continue;
        }
        if (!answer(request, response)) {
          ++malformed;
          continue;
        }
        (void)dealer.send(sender, zmq::send_flags::sndmore);
        (void)dealer.send(response, zmq::send_flags::none);
      }
    }
    std::fprintf(stderr, "zmq_cbor_service: idle, exiting (%llu malformed dropped)\n",
                 static_cast<unsigned long long>(malformed));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zmq_cbor_service: %s\n", e.what());
    return 1;
  }
}

int plexus_zmq_router_role(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "plexus_zmq_router: usage: _role plexus_zmq_router WORKDIR\n");
    return 2;
  }
  asio::io_context io(1);
  plexus::broker::router r(io, {.listen = {"zmq-frontend+ipc://" + plexus_front_path(args[0]),
                                           "zmq-backend+ipc://" + plexus_back_path(args[0])}});
  if (auto ok = r.start(); !ok) {
    std::fprintf(stderr, "plexus_zmq_router: %s\n", ok.error().message.c_str());
    return 1;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  io.run();
  return 0;
}

echo_result run_zmq_cbor_echo(const echo_config& cfg) {
  check_config(cfg);
  const std::string front = zmq_front_path(cfg.workdir);
  const std::string back = zmq_back_path(cfg.workdir);
  ::unlink(front.c_str());
  ::unlink(back.c_str());

  bench::child_guard children;
  const pid_t broker = children.spawn(cfg.self_exe, "zmq_broker", {cfg.workdir});
  bench::wait_for_unix_socket(front, startup_timeout, broker);
  bench::wait_for_unix_socket(back, startup_timeout, broker);
  const pid_t service = children.spawn(cfg.self_exe, "zmq_cbor_service", {"ipc://" + back});
  const echo_result result = measure(cfg, front, broker, service, "zmq");
  children.stop_all();
  return result;
}

echo_result run_plexus_zmq_echo(const echo_config& cfg) {
  check_config(cfg);
  const std::string front = plexus_front_path(cfg.workdir);
  const std::string back = plexus_back_path(cfg.workdir);
  ::unlink(front.c_str());
  ::unlink(back.c_str());

  bench::child_guard children;
  const pid_t router = children.spawn(cfg.self_exe, "plexus_zmq_router", {cfg.workdir});
  bench::wait_for_unix_socket(front, startup_timeout, router);
  bench::wait_for_unix_socket(back, startup_timeout, router);
  const pid_t service = children.spawn(cfg.self_exe, "zmq_cbor_service", {"ipc://" + back});
  const echo_result result = measure(cfg, front, router, service, "plexus-zmq");
  children.stop_all();
  return result;
}
