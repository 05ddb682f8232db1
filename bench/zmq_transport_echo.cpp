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
#include "dealer.hpp"
#include "echo.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/wire/message.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr std::string_view method = "echo";

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
// as they are, into `out`. nullptr (and `out` untouched) when `in` is not such a request.
zmq::message_t* answer(zmq::message_t& in, zmq::message_t& out) {
  const auto* const begin = static_cast<const std::uint8_t*>(in.data());
  const auto* const end = begin + in.size();
  if (in.size() < 2 || begin[0] != cbor_array4 || begin[1] != 0) return nullptr;
  unsigned major = 0;
  std::uint64_t arg = 0;
  const std::uint8_t* const id = begin + 2;
  const std::uint8_t* const id_end = get_head(id, end, major, arg);
  if (id_end == nullptr || major != major_uint || arg > std::numeric_limits<std::uint32_t>::max())
    return nullptr;
  const std::uint8_t* p = get_head(id_end, end, major, arg);  // the method
  if (p == nullptr || major != major_text || arg > static_cast<std::uint64_t>(end - p))
    return nullptr;
  p += arg;
  if (end - p < 2 || *p != cbor_array1) return nullptr;
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
  return &out;
}

// ---- the client -------------------------------------------------------------------------------

// Requests [0, msgid, "echo", [h'body']]; a success must be [1, msgid, null, h'body'].
class cbor_codec final : public bench::dealer_codec {
 public:
  explicit cbor_codec(std::size_t payload) : body_(payload) {
    for (std::size_t i = 0; i < body_.size(); ++i)
      body_[i] = static_cast<std::uint8_t>('a' + i % 26);
    check_request_encoding();
  }

  zmq::const_buffer request(std::uint64_t id) override {
    build_request(static_cast<std::uint32_t>(id));
    return zmq::buffer(request_);
  }

  bench::dealer_reply parse(const zmq::message_t& reply) override {
    const auto* const begin = static_cast<const std::uint8_t*>(reply.data());
    const auto* const end = begin + reply.size();
    unsigned major = 0;
    std::uint64_t arg = 0;
    const std::uint8_t* p = reply.size() >= 2 && begin[0] == cbor_array4 && begin[1] == 1
                                ? get_head(begin + 2, end, major, arg)
                                : nullptr;
    if (p == nullptr || major != major_uint || arg > std::numeric_limits<std::uint32_t>::max() ||
        p == end) {
      throw std::runtime_error("zmq client: reply is not a CBOR response");
    }
    bench::dealer_reply info{arg, false};
    if (*p != cbor_null) return info;  // an error response; see error_text()
    p = get_head(p + 1, end, major, arg);
    if (p == nullptr || major != major_bytes || arg != body_.size() ||
        static_cast<std::size_t>(end - p) != body_.size() ||
        std::memcmp(p, body_.data(), body_.size()) != 0) {
      throw std::runtime_error("zmq client: echo does not match the request");
    }
    info.ok = true;
    return info;
  }

  // The reply, decoded by the plexus wire library: checks that what the bench writes and reads
  // by hand is what the library (and the router) means.
  void check_first(const zmq::message_t& reply, std::uint64_t msgid) const override {
    auto m = plexus::wire::decode({static_cast<const std::uint8_t*>(reply.data()), reply.size()});
    if (!m) throw std::runtime_error("zmq client: response does not decode: " + m.error().message);
    const auto* r = std::get_if<plexus::wire::response>(&*m);
    if (r == nullptr || r->msgid != msgid || r->error.has_value() || !same_bytes(r->result)) {
      throw std::runtime_error("zmq client: response decodes to something else");
    }
  }

  // The message of an error reply.
  std::string error_text(const zmq::message_t& reply) const override {
    auto m = plexus::wire::decode({static_cast<const std::uint8_t*>(reply.data()), reply.size()});
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

  std::vector<std::uint8_t> body_, request_;
};

// Both systems: the CBOR echo service behind `broker`, whose sockets are `front` and `back`;
// the measurement from the client at `front`. `name` labels errors.
echo_result run_cbor_system(const echo_config& cfg, const std::string& name,
                            const bench::role_command& broker, const std::string& front,
                            const std::string& back) {
  cbor_codec codec(cfg.payload);
  bench::child_guard children;
  const auto roles = bench::start_roles(children, cfg, broker, {front, back},
                                        {"zmq_cbor_service", {"ipc://" + back}});
  echo_result result;
  {
    bench::dealer_client client(name, "ipc://" + front, codec, roles.broker, roles.service);
    result = bench::measure_echo(client, cfg);
    result.broker_rss_kib = bench::read_vm_hwm_kib(roles.broker);
  }
  children.stop_all();
  return result;
}

}  // namespace

int zmq_cbor_service_role(const std::vector<std::string>& args) {
  const std::uint64_t malformed = bench::run_dealer_service(args[0], answer);
  std::fprintf(stderr, "zmq_cbor_service: idle, exiting (%llu malformed dropped)\n",
               static_cast<unsigned long long>(malformed));
  return 0;
}

int plexus_zmq_router_role(const std::vector<std::string>& args) {
  asio::io_context io(1);
  plexus::broker::router r(io, {.listen = {"zmq-frontend+ipc://" + plexus_front_path(args[0]),
                                           "zmq-backend+ipc://" + plexus_back_path(args[0])}});
  if (auto ok = r.start(); !ok) throw std::runtime_error(ok.error().message);
  bench::run_until_signalled(io);
  return 0;
}

echo_result run_zmq_cbor_echo(const echo_config& cfg) {
  return run_cbor_system(cfg, "zmq", {"zmq_broker", {cfg.workdir}}, zmq_front_path(cfg.workdir),
                         zmq_back_path(cfg.workdir));
}

echo_result run_plexus_zmq_echo(const echo_config& cfg) {
  return run_cbor_system(cfg, "plexus-zmq", {"plexus_zmq_router", {cfg.workdir}},
                         plexus_front_path(cfg.workdir), plexus_back_path(cfg.workdir));
}
