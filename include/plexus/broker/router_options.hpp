// The router's options, and one description of each: the table that the config
// parser ([router] in app.toml), the `plexus router` flags and docs/config.md are
// made from. A new router option is one row in router_options.cpp.
//
//   plexus::broker::router_options o;
//   const auto* z = plexus::broker::find_router_option("zmq_frontend");
//   if (auto ok = z->set(o, "tcp://127.0.0.1:5560"); !ok) fail(ok.error());
//   // o.listen == {"zmq-frontend+tcp://127.0.0.1:5560"}
//
// The CLI adds one flag per row (repeatable for addresses) and applies what was given:
//   for (const auto& opt : plexus::broker::router_option_table())
//     cmd->add_option(std::string(opt.flags), texts[opt.key], opt.plain_help());
//   ... if given: opt.set(o, opt.from_text(texts[opt.key]).value())
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/transport/connection.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::broker {

struct router_options {
  // Every endpoint the router binds, in the order addresses() reports them; the scheme
  // picks the transport and the role (transport/endpoint.hpp): "ipc:///p", "tcp://h:1",
  // "zmq-frontend+ipc:///f", "zmq-sub+tcp://*:5570", "udp://239.1.2.3:9000", ….
  // The options zmq_frontend, …, udp below set the addresses of their role here.
  std::vector<std::string> listen;
  transport::options transport;  // per-connection limits
  // Bytes queued to a subscriber beyond which publications to it are dropped.
  std::size_t subscriber_queue_bytes = 4u << 20;
  // Peers connected at once; a connection beyond it is told why and closed.
  std::size_t max_connections = 4096;
  // Milliseconds a native connection may stay without saying hello before it is closed.
  std::size_t hello_timeout_ms = 5000;
  // Topic prefixes one peer may subscribe to; more are refused (resource_exhausted).
  std::size_t max_subscriptions_per_peer = 1024;
  // Requests of one peer forwarded and unanswered at once; more are answered with
  // resource_exhausted.
  std::size_t max_in_flight_per_peer = 65536;
  // A file holding the tcp secret (transport/auth.hpp): read by router::start() when
  // transport.secret is empty. Neither set: $PLEXUS_SECRET, else $PLEXUS_SECRET_FILE.
  std::string secret_file;
};

enum class option_type {
  addresses,  // a string or a list of strings; a repeatable flag
  size,       // an integer of at least `min`
  text,       // one string (a path)
};

// One router option as users know it: TOML key in [router], command-line flag, and
// how it sets router_options.
struct router_option {
  std::string_view key;    // in [router]: "zmq_frontend"
  std::string_view flags;  // CLI11 names: "--listen,-l"
  option_type type;
  std::string_view type_text;     // docs/config.md "type" column
  std::string_view default_text;  // docs/config.md "default" column
  std::string_view help;          // the meaning, Markdown (docs); plain_help() for the CLI
  // addresses: prepended to each address ("zmq-frontend+"), so the endpoint's scheme
  // names the role; an address of this option is one that starts with it.
  std::string_view role;
  // addresses: the scheme every address must have ("udp"), empty for any.
  std::string_view scheme;
  std::int64_t min = 0;                                   // size: the smallest value accepted
  std::size_t& (*field)(router_options&) = nullptr;       // size: the member it sets
  std::string& (*text_field)(router_options&) = nullptr;  // text: the member it sets

  // Replaces this option's setting in `o` with `v` (addresses: a string or an array
  // of strings; size: an integer). Errors are invalid_argument; the message is only
  // the reason ("expected an integer of at least 64"), the caller names the key.
  result<void> set(router_options& o, const value& v) const;
  // This option's setting in `o` (addresses: an array without the role prefix).
  value get(const router_options& o) const;
  // A command-line flag's texts as a value for set(): each text one address, or the
  // one integer. Errors as for set().
  result<value> from_text(std::span<const std::string> texts) const;
  // The first long flag ("--listen"), e.g. for CLI11's count().
  std::string_view long_flag() const;
  // The help without Markdown backticks, for --help.
  std::string plain_help() const;
  // What --help shows as the default: the number for a size, empty for addresses.
  std::string default_value() const;
  bool repeatable() const noexcept { return type == option_type::addresses; }
};

// Every router option, in the order docs/config.md lists them.
std::span<const router_option> router_option_table();
// The option with this TOML key, or nullptr.
const router_option* find_router_option(std::string_view key);
// "listen, zmq_frontend, …": for "unknown key (known: …)".
std::string router_option_keys();
// The [router] table of docs/config.md: header, separator and one row per option,
// each line ending in '\n'.
std::string router_options_markdown();
// Adds `address` to `o.listen` when the option `listen` has no address of its own
// (the ZeroMQ and UDP options' addresses do not count): what `plexus router` and
// `plexus run` do with the default router address.
void add_default_listen(router_options& o, std::string address);

}  // namespace plexus::broker
