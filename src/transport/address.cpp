#include "plexus/transport/address.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "plexus/os/private_dir.hpp"

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

result<host_port> split_host_port(std::string_view rest, std::string_view scheme) {
  auto bad = [](std::string why) { return plexus::error(errc::invalid_argument, std::move(why)); };
  const std::string sch(scheme);
  std::string_view host, port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad("expected " + sch + "://[v6-address]:port");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("expected " + sch + "://host:port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return bad("empty host");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return bad("port must be a number from 0 to 65535");
  return host_port{std::string(host), static_cast<std::uint16_t>(value)};
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
  auto hp = split_host_port(rest, "tcp");
  if (!hp) return bad(hp.error().message);
  a.host = std::move(hp->host);
  a.port = hp->port;
  return a;
}

std::string connectable(std::string_view bound) {
  const auto sep = bound.find("://");
  if (sep == std::string_view::npos || bound.substr(0, sep) != "tcp") return std::string(bound);
  const auto rest = bound.substr(sep + 3);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return std::string(bound);
  const auto host = rest.substr(0, colon);
  const auto port = rest.substr(colon);  // ":5555"
  if (host == "*" || host == "0.0.0.0") return "tcp://127.0.0.1" + std::string(port);
  if (host == "[::]" || host == "[*]") return "tcp://[::1]" + std::string(port);
  return std::string(bound);
}

std::vector<std::string> by_preference(std::string_view list) {
  auto rank = [](std::string_view a) {
    if (a.starts_with("ipc://") || a.starts_with("unix://")) return 0;
    if (a.starts_with("inproc://")) return 1;
    if (a.starts_with("tcp://127.") || a.starts_with("tcp://[::1]") ||
        a.starts_with("tcp://localhost:"))
      return 2;
    return 3;
  };
  std::vector<std::string> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (!item.empty()) out.push_back(connectable(item));
  }
  std::stable_sort(out.begin(), out.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  return out;
}

std::string default_router_address() {
  if (const char* env = std::getenv("PLEXUS_ROUTER"); env && *env) return env;
  return "ipc://" + os::runtime_dir() + "/router.sock";
}

}  // namespace plexus::transport
