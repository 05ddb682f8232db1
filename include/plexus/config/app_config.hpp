// The application config file, app.toml (docs/config.md is the reference).
//
//   auto cfg = plexus::config::load_file("app.toml");      // result<app_config>
//   if (!cfg) { std::cerr << cfg.error().message; }         // "app.toml:4:1: router.udp: …"
//   plexus::broker::router r(io, cfg->router);
//
// Every error is invalid_argument and names the file, the line and column, and the
// dotted key; an unknown key is an error (a typo must not be silently ignored).
#pragma once

#include <string>
#include <string_view>

#include "plexus/broker/router.hpp"
#include "plexus/gateway/gateway_options.hpp"
#include "plexus/supervisor/spec.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::config {

struct app_config {
  broker::router_options router;     // [router]
  gateway::gateway_options gateway;  // [gateway]: plexus run's HTTP gateway
  // [supervisor] (strategy, intensity, …), [log], and [[process]] in declared order.
  supervisor::tree_spec supervisor;
};

result<app_config> load_file(const std::string& path);
// Parses TOML text; `source` names it in error messages.
result<app_config> parse(std::string_view text, const std::string& source);

}  // namespace plexus::config
