// The HTTP route table: which service answers a (verb, path). Services declare their
// routes in their registration (docs/protocol.md §5, `routes`); the router keeps the
// table and the gateway of `plexus run` looks requests up in it (docs/gateway.md).
//
//   http_route_table t;
//   t.claim("counter", routes, has_workers);       // refused: a duplicate, naming both
//   auto m = t.match("GET", "/api/counter/7");     // found, params {{"id", "7"}}
//
// A pattern is a path of segments; a segment `{name}` matches any one non-empty
// segment and yields it as the parameter `name` (still percent-encoded). Two patterns
// that differ only in parameter names are the same route. When several routes match a
// path, the one with a literal segment where the others have a parameter, earliest,
// wins ("/a/new" before "/a/{id}").
//
// A (verb, pattern) belongs to one service. Its replicas declare it again, which is
// not a duplicate; another service declaring it is refused while the owner has
// workers, and takes it over when the owner has none left (the owner is gone; a
// restarting owner would otherwise keep a route nobody can serve). Routes of a
// service whose workers have all gone stay in the table: the gateway answers them
// 503 until a worker registers again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plexus/wire/error.hpp"

namespace plexus::broker {

struct http_route {
  std::string verb;              // GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS
  std::string pattern;           // "/api/counter/{id}"
  std::string kind;              // "plain"
  std::string service;           // who answers
  std::string method;            // the service method the gateway calls
  std::string where;             // the declaration, "counter.cpp:42"
  std::int64_t deadline_ms = 0;  // 0: the gateway's default
};

struct http_match {
  enum class outcome { found, no_route, wrong_verb };
  outcome what = outcome::no_route;
  http_route route;                                         // found
  std::vector<std::pair<std::string, std::string>> params;  // found: {name} -> segment
  std::string allow;                                        // wrong_verb: "GET, POST"
};

// A route as plexus.routes and the gateway's /api/routes list it, with its service's
// workers now.
value route_value(const http_route& r, std::size_t replicas);

// Paths no service may declare: the gateway answers them itself.
bool is_reserved_http_path(std::string_view pattern);
// Why `verb` or `pattern` cannot be declared, or "" when they can.
std::string check_http_route(std::string_view verb, std::string_view pattern);

class http_route_table {
 public:
  // Whether a service has a worker now.
  using liveness = std::function<bool(std::string_view service)>;

  // Makes `routes` (an array of {"verb", "pattern", "kind", "method", "where",
  // "deadline_ms"} maps, as a registration carries them) the routes of `service`,
  // replacing those it had. Refused, with nothing changed: a malformed route
  // (invalid_argument naming it), or a (verb, pattern) another service with workers
  // holds (invalid_argument naming both declarations).
  result<void> claim(const std::string& service, const value& routes, const liveness& alive);
  // Drops every route of `service`.
  void forget(std::string_view service);

  http_match match(std::string_view verb, std::string_view path) const;
  // Every route, sorted by pattern then verb.
  std::vector<http_route> list() const;
  std::size_t size() const noexcept { return routes_.size(); }

 private:
  struct entry {
    http_route route;
    std::string key;                    // verb + " " + pattern with every {name} as {}
    std::vector<std::string> segments;  // the pattern's, "{name}" kept
  };
  std::vector<entry> routes_;
};

}  // namespace plexus::broker
