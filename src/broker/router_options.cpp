#include "plexus/broker/router_options.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace plexus::broker {
namespace {

std::size_t& max_frame_bytes(router_options& o) {
  return o.transport.max_frame_bytes;
}
std::size_t& max_queued_bytes(router_options& o) {
  return o.transport.max_queued_bytes;
}
std::size_t& subscriber_queue_bytes(router_options& o) {
  return o.subscriber_queue_bytes;
}
std::size_t& max_connections(router_options& o) {
  return o.max_connections;
}
std::size_t& hello_timeout_ms(router_options& o) {
  return o.hello_timeout_ms;
}
std::size_t& max_subscriptions_per_peer(router_options& o) {
  return o.max_subscriptions_per_peer;
}
std::size_t& max_in_flight_per_peer(router_options& o) {
  return o.max_in_flight_per_peer;
}
std::string& secret_file(router_options& o) {
  return o.secret_file;
}

// clang-format off
constexpr std::array table{
    router_option{.key = "listen", .flags = "--listen,-l", .type = option_type::addresses,
                  .type_text = "string or array of strings",
                  .default_text = "the default router address (below)",
                  .help = "native addresses to accept peers on: `ipc:///path`, `tcp://host:port`, "
                          "`tcp://[v6]:port` (docs/protocol.md §9)",
                  .role = {}, .scheme = {}},
    router_option{.key = "zmq_frontend", .flags = "--zmq-frontend", .type = option_type::addresses,
                  .type_text = "string or array", .default_text = "none",
                  .help = "ZeroMQ ROUTER endpoints for seed-style client DEALERs (protocol.md §13)",
                  .role = "zmq-frontend+", .scheme = {}},
    router_option{.key = "zmq_backend", .flags = "--zmq-backend", .type = option_type::addresses,
                  .type_text = "string or array", .default_text = "none",
                  .help = "ZeroMQ ROUTER endpoints for seed-style service DEALERs; identity = "
                          "service name",
                  .role = "zmq-backend+", .scheme = {}},
    router_option{.key = "zmq_publishers", .flags = "--zmq-publishers",
                  .type = option_type::addresses, .type_text = "string or array",
                  .default_text = "none",
                  .help = "ZeroMQ endpoints (router binds SUB) where seed-style PUB clients "
                          "publish",
                  .role = "zmq-pub+", .scheme = {}},
    router_option{.key = "zmq_subscribers", .flags = "--zmq-subscribers",
                  .type = option_type::addresses, .type_text = "string or array",
                  .default_text = "none",
                  .help = "ZeroMQ endpoints (router binds PUB) where seed-style SUB services "
                          "receive publications",
                  .role = "zmq-sub+", .scheme = {}},
    router_option{.key = "udp", .flags = "--udp", .type = option_type::addresses,
                  .type_text = "string or array", .default_text = "none",
                  .help = "`udp://host:port[?interface=IPv4&ttl=N]`: each datagram, one "
                          "notification, is published (protocol.md §14)",
                  .role = {}, .scheme = "udp"},
    router_option{.key = "max_frame_bytes", .flags = "--max-frame-bytes", .type = option_type::size,
                  .type_text = "integer ≥ 64", .default_text = "67,109,376 (64 MiB + 512)",
                  .help = "the largest frame a peer may send; larger ones disconnect it",
                  .role = {}, .scheme = {}, .min = 64, .field = max_frame_bytes},
    router_option{.key = "max_queued_bytes", .flags = "--max-queued-bytes",
                  .type = option_type::size, .type_text = "integer ≥ 0",
                  .default_text = "268,435,456 (256 MiB)",
                  .help = "bytes queued to one peer beyond which frames to it are refused",
                  .role = {}, .scheme = {}, .min = 0, .field = max_queued_bytes},
    router_option{.key = "subscriber_queue_bytes", .flags = "--subscriber-queue-bytes",
                  .type = option_type::size, .type_text = "integer ≥ 0",
                  .default_text = "4,194,304 (4 MiB)",
                  .help = "bytes queued to one subscriber beyond which publications to it are "
                          "dropped and counted",
                  .role = {}, .scheme = {}, .min = 0, .field = subscriber_queue_bytes},
    router_option{.key = "max_connections", .flags = "--max-connections",
                  .type = option_type::size, .type_text = "integer ≥ 1", .default_text = "4,096",
                  .help = "peers connected at once; a connection beyond it gets a "
                          "`resource_exhausted` error and is closed, and is counted "
                          "(`refused_connections` in stats)",
                  .role = {}, .scheme = {}, .min = 1, .field = max_connections},
    router_option{.key = "hello_timeout_ms", .flags = "--hello-timeout-ms",
                  .type = option_type::size, .type_text = "integer ≥ 1",
                  .default_text = "5,000 (5 s)",
                  .help = "milliseconds a native connection may stay without saying hello; "
                          "then it is closed and counted (`hello_timeouts` in stats); also the "
                          "time a tcp peer has to finish the authentication handshake",
                  .role = {}, .scheme = {}, .min = 1, .field = hello_timeout_ms},
    router_option{.key = "max_subscriptions_per_peer", .flags = "--max-subscriptions-per-peer",
                  .type = option_type::size, .type_text = "integer ≥ 0", .default_text = "1,024",
                  .help = "topic prefixes one peer may subscribe to; a subscribe beyond it is "
                          "refused with `resource_exhausted`",
                  .role = {}, .scheme = {}, .min = 0, .field = max_subscriptions_per_peer},
    router_option{.key = "max_in_flight_per_peer", .flags = "--max-in-flight-per-peer",
                  .type = option_type::size, .type_text = "integer ≥ 1", .default_text = "65,536",
                  .help = "requests of one peer forwarded and not yet answered; a request "
                          "beyond it is answered with `resource_exhausted`",
                  .role = {}, .scheme = {}, .min = 1, .field = max_in_flight_per_peer},
    router_option{.key = "secret_file", .flags = "--secret-file", .type = option_type::text,
                  .type_text = "string (a path)",
                  .default_text = "none: `$PLEXUS_SECRET`, else `$PLEXUS_SECRET_FILE`",
                  .help = "a file (mode 0600, owned by the router's user) holding the shared "
                          "secret of tcp authentication: native tcp peers must prove they know "
                          "it, ZeroMQ tcp endpoints use CURVE; needed to listen on tcp beyond "
                          "loopback (docs/security.md)",
                  .role = {}, .scheme = {}, .text_field = secret_file},
};
// clang-format on

plexus::error invalid(std::string why) {
  return plexus::error(errc::invalid_argument, std::move(why));
}

// Which address option an endpoint of router_options::listen belongs to: the first whose
// role prefix or scheme it has, else `listen`.
std::size_t owner_of(std::string_view endpoint) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    const auto& o = table[i];
    if (o.type != option_type::addresses) continue;
    if (!o.role.empty() && endpoint.starts_with(o.role)) return i;
    if (!o.scheme.empty() && endpoint.starts_with(std::string(o.scheme) + "://")) return i;
  }
  return 0;  // listen
}

std::size_t index_of(const router_option& o) {
  return static_cast<std::size_t>(&o - table.data());
}

}  // namespace

result<void> router_option::set(router_options& o, const value& v) const {
  if (type == option_type::text) {
    if (!v.is_string() || v.get_ref<const std::string&>().empty())
      return invalid("expected a non-empty string");
    text_field(o) = v.get<std::string>();
    return {};
  }
  if (type == option_type::size) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < min)
      return invalid("expected an integer of at least " + std::to_string(min));
    field(o) = static_cast<std::size_t>(v.get<std::int64_t>());
    return {};
  }
  std::vector<std::string> added;
  auto add = [&](const value& item) -> result<void> {
    if (!item.is_string()) return invalid("expected a string");
    const auto& text = item.get_ref<const std::string&>();
    if (!scheme.empty() && !text.starts_with(std::string(scheme) + "://"))
      return invalid("expected a " + std::string(scheme) + ":// address, not '" + text + "'");
    added.push_back(std::string(role) + text);
    return {};
  };
  if (v.is_string()) {
    if (auto ok = add(v); !ok) return ok;
  } else if (v.is_array()) {
    for (const auto& item : v)
      if (auto ok = add(item); !ok) return ok;
  } else {
    return invalid("expected a string or an array of strings");
  }
  // Keep the list in table order (listen, zmq_frontend, …), the order addresses() reports.
  const auto me = index_of(*this);
  std::erase_if(o.listen, [&](const std::string& e) { return owner_of(e) == me; });
  const auto at = std::find_if(o.listen.begin(), o.listen.end(),
                               [&](const std::string& e) { return owner_of(e) > me; });
  o.listen.insert(at, added.begin(), added.end());
  return {};
}

value router_option::get(const router_options& o) const {
  if (type == option_type::text) return text_field(const_cast<router_options&>(o));
  if (type == option_type::size)
    return static_cast<std::int64_t>(field(const_cast<router_options&>(o)));
  value out = value::array();
  const auto me = index_of(*this);
  for (const auto& e : o.listen)
    if (owner_of(e) == me) out.push_back(e.substr(role.size()));
  return out;
}

result<value> router_option::from_text(std::span<const std::string> texts) const {
  if (type == option_type::addresses)
    return value(std::vector<std::string>(texts.begin(), texts.end()));
  if (type == option_type::text) {
    if (texts.size() != 1) return invalid("expected one string");
    return value(texts.front());
  }
  if (texts.size() != 1) return invalid("expected one integer");
  std::int64_t n = 0;
  const auto& t = texts.front();
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (ec != std::errc() || end != t.data() + t.size() || n < min)
    return invalid("expected an integer of at least " + std::to_string(min));
  return value(n);
}

std::string_view router_option::long_flag() const {
  return flags.substr(0, flags.find(','));
}

std::string router_option::plain_help() const {
  std::string out(help);
  std::erase(out, '`');
  return out;
}

std::string router_option::default_value() const {
  if (type != option_type::size) return {};
  router_options defaults;
  return std::to_string(field(defaults));
}

std::span<const router_option> router_option_table() {
  return table;
}

const router_option* find_router_option(std::string_view key) {
  for (const auto& o : table)
    if (o.key == key) return &o;
  return nullptr;
}

std::string router_option_keys() {
  std::string out;
  for (const auto& o : table)
    out += (out.empty() ? "" : ", ") + std::string(o.key);
  return out;
}

std::string router_options_markdown() {
  std::string out =
      "| key | type | default | command-line flag | meaning |\n"
      "|---|---|---|---|---|\n";
  for (const auto& o : table) {
    std::string flags;
    for (std::string_view rest = o.flags; !rest.empty();) {
      const auto comma = rest.find(',');
      flags += (flags.empty() ? "`" : ", `") + std::string(rest.substr(0, comma)) + "`";
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    out += "| `" + std::string(o.key) + "` | " + std::string(o.type_text) + " | " +
           std::string(o.default_text) + " | " + flags + " | " + std::string(o.help) + " |\n";
  }
  return out;
}

void add_default_listen(router_options& o, std::string address) {
  const auto& listen = table[0];
  if (!listen.get(o).empty()) return;
  o.listen.insert(o.listen.begin(), std::move(address));
}

}  // namespace plexus::broker
