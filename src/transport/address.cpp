#include "plexus/transport/address.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdlib>

namespace plexus::transport {

std::string address::to_string() const {
  switch (scheme) {
    case scheme::ipc:
      return "ipc://" + path;
    case scheme::inproc:
      return "inproc://" + path;
    case scheme::tcp:
      if (host.find(':') != std::string::npos)
        return "tcp://[" + host + "]:" + std::to_string(port);
      return "tcp://" + host + ":" + std::to_string(port);
  }
  return {};
}

result<address> parse_address(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return plexus::error(errc::invalid_argument,
                         "bad address '" + std::string(text) + "': " + std::string(why),
                         {{"address", std::string(text)}});
  };
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) return bad("expected scheme://… (ipc, unix, tcp, inproc)");
  const auto sch = text.substr(0, sep);
  const auto rest = text.substr(sep + 3);
  address a;
  if (sch == "ipc" || sch == "unix") {
    if (rest.empty()) return bad("empty socket path");
    a.scheme = scheme::ipc;
    a.path = std::string(rest);
    return a;
  }
  if (sch == "inproc") {
    if (rest.empty()) return bad("empty inproc name");
    a.scheme = scheme::inproc;
    a.path = std::string(rest);
    return a;
  }
  if (sch != "tcp") return bad("unknown scheme '" + std::string(sch) + "'");
  a.scheme = scheme::tcp;
  std::string_view host, port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad("expected tcp://[v6-address]:port");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("expected tcp://host:port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return bad("empty host");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return bad("port must be a number from 0 to 65535");
  a.host = std::string(host);
  a.port = static_cast<std::uint16_t>(value);
  return a;
}

std::string default_router_address() {
  if (const char* env = std::getenv("PLEXUS_ROUTER"); env && *env) return env;
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run)
    return std::string("ipc://") + run + "/plexus/router.sock";
  return "ipc:///tmp/plexus-" + std::to_string(::getuid()) + "/router.sock";
}

}  // namespace plexus::transport
