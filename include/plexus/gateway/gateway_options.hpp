// The gateway's settings: app.toml's [gateway] (docs/config.md, docs/gateway.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace plexus::gateway {

struct gateway_options {
  bool enabled = true;
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks one
  // Budgets, checked before anything of that size is allocated.
  std::size_t max_body_bytes = 16u << 20;    // larger: 413
  std::size_t max_url_bytes = 8u << 10;      // the request target; larger: 414
  std::size_t max_header_bytes = 16u << 10;  // the header fields; larger: 431
  std::size_t max_connections = 1024;        // beyond: accepted and closed at once
  // A route's default deadline (a route may declare its own); past it: 504.
  std::chrono::milliseconds deadline{30000};
  // A connection that sends nothing for this long, or takes longer than this to take
  // a response, is closed.
  std::chrono::milliseconds idle_timeout{60000};
  // Bytes queued to one event-stream client (/api/logs) beyond which events to it are
  // dropped and counted.
  std::size_t max_stream_queue_bytes = 1u << 20;
};

}  // namespace plexus::gateway
