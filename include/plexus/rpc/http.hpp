// HTTP requests and responses as a service's HTTP route handlers see them
// (service::http, docs/gateway.md). The gateway of `plexus run` turns each request it
// receives for a declared route into a call of the declaring service with one
// argument, the request as a map, and turns the result, a map, back into the response
// (docs/protocol.md §5, "HTTP routes"):
//
//   request  {"verb": text, "path": text, "query": text, "params": {name: text},
//             "headers": [[name, value], …], "body": bytes}
//   response {"status": integer, "headers": [[name, value], …], "body": bytes or text}
//
//   svc.http("GET", "/api/counter/{id}", [&](const plexus::rpc::http_request& r) {
//     return plexus::rpc::http_response::json({{"id", r.param("id")}, {"n", ++n}});
//   });
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plexus/wire/error.hpp"

namespace plexus::rpc {

using http_fields = std::vector<std::pair<std::string, std::string>>;

struct http_request {
  std::string verb;     // "GET", "POST", …
  std::string path;     // "/api/counter/7", as the client sent it (percent-encoded)
  std::string query;    // what followed '?', undecoded; "" if nothing did
  http_fields params;   // the pattern's {name}s, percent-decoded
  http_fields headers;  // names in lower case, in the order the client sent them
  std::string body;

  // The path parameter `name`, or "" if the pattern has none of that name.
  std::string_view param(std::string_view name) const noexcept;
  // The first header `name` (any case), or "" if absent.
  std::string_view header(std::string_view name) const noexcept;
  // The first query parameter `name`, percent-decoded ('+' as a space), or "".
  std::string query_param(std::string_view name) const;

  value to_value() &&;
  // invalid_argument naming what is missing or of the wrong type.
  static result<http_request> from_value(value&& v);
};

struct http_response {
  int status = 200;
  http_fields headers;
  std::string body;

  http_response& header(std::string name, std::string value);
  // A body with its content type: text/plain or application/json, both utf-8.
  static http_response text(std::string body, int status = 200);
  static http_response json(const value& body, int status = 200);

  value to_value() &&;
  // invalid_argument naming what is wrong (a status outside 100–599, a header that is
  // not a pair of texts, a body that is neither bytes nor text).
  static result<http_response> from_value(value&& v);
};

// "%41b+c" -> "Ab+c"; with `plus_is_space`, "Ab c". A malformed escape stays as it is.
std::string percent_decode(std::string_view s, bool plus_is_space = false);

}  // namespace plexus::rpc
