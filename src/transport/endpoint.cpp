#include "plexus/transport/endpoint.hpp"

#include <array>

#include "plexus/transport/udp.hpp"
#include "plexus/transport/zmq.hpp"

namespace plexus::transport {
namespace {

// `address` is the whole address; `inner` is what follows a role prefix ("zmq-pub+"),
// or the whole address for a plain scheme.
using factory = result<endpoint> (*)(boost::asio::io_context& io, std::string_view address,
                                     std::string_view inner, const options& opts);

template <class T>
result<endpoint> as_endpoint(result<T> r) {
  if (!r) return std::move(r).error();
  return endpoint(std::move(*r));
}

result<endpoint> native(boost::asio::io_context& io, std::string_view address, std::string_view,
                        const options& opts) {
  return as_endpoint(listen(io, address, opts));
}
result<endpoint> zmq_frontend(boost::asio::io_context& io, std::string_view,
                              std::string_view inner, const options& opts) {
  return as_endpoint(listen_zmq(io, inner, zmq_role::frontend, opts));
}
result<endpoint> zmq_backend(boost::asio::io_context& io, std::string_view, std::string_view inner,
                             const options& opts) {
  return as_endpoint(listen_zmq(io, inner, zmq_role::backend, opts));
}
result<endpoint> zmq_publishers(boost::asio::io_context& io, std::string_view,
                                std::string_view inner, const options& opts) {
  return as_endpoint(bind_zmq_publishers(io, inner, opts));
}
result<endpoint> zmq_subscribers(boost::asio::io_context& io, std::string_view,
                                 std::string_view inner, const options& opts) {
  return as_endpoint(bind_zmq_subscribers(io, inner, opts));
}
result<endpoint> udp(boost::asio::io_context& io, std::string_view address, std::string_view,
                     const options&) {
  return as_endpoint(bind_udp(io, address));
}

struct transport_entry {
  std::string_view scheme;  // what precedes "://", or the role before '+'
  bool role_prefix;         // true: "<scheme>+<inner address>"
  factory bind;
};

// Adding a transport is one line here (and its own files); the router does not change.
constexpr std::array transports{
    transport_entry{"ipc", false, native},
    transport_entry{"unix", false, native},
    transport_entry{"tcp", false, native},
    transport_entry{"inproc", false, native},
    transport_entry{"udp", false, udp},
    transport_entry{"zmq-frontend", true, zmq_frontend},
    transport_entry{"zmq-backend", true, zmq_backend},
    transport_entry{"zmq-pub", true, zmq_publishers},
    transport_entry{"zmq-sub", true, zmq_subscribers},
};

std::string known_schemes() {
  std::string out;
  for (const auto& s : endpoint_schemes())
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

std::vector<std::string> endpoint_schemes() {
  std::vector<std::string> out;
  for (const auto& t : transports)
    out.push_back(std::string(t.scheme) + (t.role_prefix ? "+" : ""));
  return out;
}

result<endpoint> bind_endpoint(boost::asio::io_context& io, std::string_view address,
                               const options& opts) {
  auto bad = [&](const std::string& why) {
    return plexus::error(errc::invalid_argument,
                         "bad address '" + std::string(address) + "': " + why + " (known: " +
                             known_schemes() + ")",
                         {{"address", std::string(address)}});
  };
  const auto sep = address.find("://");
  if (sep == std::string_view::npos) return bad("expected scheme://…");
  const auto scheme = address.substr(0, sep);
  const auto plus = scheme.find('+');
  const auto name = scheme.substr(0, plus);
  for (const auto& t : transports) {
    if (t.scheme != name) continue;
    if (t.role_prefix != (plus != std::string_view::npos)) break;
    const auto inner = t.role_prefix ? address.substr(plus + 1) : address;
    return t.bind(io, address, inner, opts);
  }
  return bad("unknown scheme '" + std::string(scheme) + "'");
}

}  // namespace plexus::transport
