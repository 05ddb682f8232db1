#include "plexus/rpc/http.hpp"

#include <strings.h>

namespace plexus::rpc {

namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

value fields_value(http_fields&& fields) {
  value out = value::array();
  for (auto& [n, v] : fields)
    out.push_back(value::array({std::move(n), std::move(v)}));
  return out;
}

plexus::error bad(std::string what) {
  return plexus::error(errc::invalid_argument, std::move(what));
}

// [[name, value], …] of texts into `out`.
result<void> read_fields(value& v, const char* what, http_fields& out) {
  if (!v.is_array()) return bad(std::string(what) + " must be an array of [name, value] pairs");
  out.reserve(v.size());
  for (auto& f : v) {
    if (!f.is_array() || f.size() != 2 || !f[0].is_string() || !f[1].is_string())
      return bad(std::string(what) + " must be an array of [name, value] pairs of texts");
    out.emplace_back(std::move(f[0].get_ref<std::string&>()),
                     std::move(f[1].get_ref<std::string&>()));
  }
  return {};
}

// bytes or text into a string.
result<void> read_body(value& v, const char* what, std::string& out) {
  if (v.is_binary()) {
    auto& b = v.get_binary();
    out.assign(b.begin(), b.end());
  } else if (v.is_string()) {
    out = std::move(v.get_ref<std::string&>());
  } else if (!v.is_null()) {
    return bad(std::string(what) + " must be bytes or text");
  }
  return {};
}

value body_value(std::string&& body) {
  return value::binary(std::vector<std::uint8_t>(body.begin(), body.end()));
}

}  // namespace

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::string_view http_request::param(std::string_view name) const noexcept {
  for (const auto& [n, v] : params)
    if (n == name) return v;
  return {};
}

std::string_view http_request::header(std::string_view name) const noexcept {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return v;
  return {};
}

std::string http_request::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto pair = q.substr(0, amp);
    const auto eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq), true) == name)
      return eq == std::string_view::npos ? std::string()
                                          : percent_decode(pair.substr(eq + 1), true);
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

value http_request::to_value() && {
  value p = value::object();
  for (auto& [n, v] : params)
    p[n] = std::move(v);
  return {{"verb", std::move(verb)},
          {"path", std::move(path)},
          {"query", std::move(query)},
          {"params", std::move(p)},
          {"headers", fields_value(std::move(headers))},
          {"body", body_value(std::move(body))}};
}

result<http_request> http_request::from_value(value&& v) {
  if (!v.is_object()) return bad("an HTTP request must be a map");
  http_request r;
  for (auto [key, out] : {std::pair{"verb", &r.verb}, {"path", &r.path}, {"query", &r.query}}) {
    auto it = v.find(key);
    if (it == v.end()) continue;
    if (!it->is_string()) return bad(std::string("an HTTP request's ") + key + " must be text");
    *out = std::move(it->get_ref<std::string&>());
  }
  if (auto it = v.find("params"); it != v.end()) {
    if (!it->is_object()) return bad("an HTTP request's params must be a map of texts");
    for (auto& [n, pv] : it->items()) {
      if (!pv.is_string()) return bad("an HTTP request's params must be a map of texts");
      r.params.emplace_back(n, std::move(pv.get_ref<std::string&>()));
    }
  }
  if (auto it = v.find("headers"); it != v.end())
    if (auto ok = read_fields(*it, "an HTTP request's headers", r.headers); !ok)
      return std::move(ok).error();
  if (auto it = v.find("body"); it != v.end())
    if (auto ok = read_body(*it, "an HTTP request's body", r.body); !ok)
      return std::move(ok).error();
  return r;
}

http_response& http_response::header(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

http_response http_response::text(std::string body, int status) {
  http_response r{.status = status, .headers = {}, .body = std::move(body)};
  r.header("content-type", "text/plain; charset=utf-8");
  return r;
}

http_response http_response::json(const value& body, int status) {
  http_response r{.status = status, .headers = {}, .body = body.dump()};
  r.header("content-type", "application/json");
  return r;
}

value http_response::to_value() && {
  return {{"status", status},
          {"headers", fields_value(std::move(headers))},
          {"body", body_value(std::move(body))}};
}

result<http_response> http_response::from_value(value&& v) {
  if (!v.is_object())
    return bad("an HTTP response must be a map, got " + std::string(v.type_name()));
  http_response r;
  if (auto it = v.find("status"); it != v.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 100 || it->get<std::int64_t>() > 599)
      return bad("an HTTP response's status must be an integer from 100 to 599");
    r.status = it->get<int>();
  }
  if (auto it = v.find("headers"); it != v.end() && !it->is_null())
    if (auto ok = read_fields(*it, "an HTTP response's headers", r.headers); !ok)
      return std::move(ok).error();
  if (auto it = v.find("body"); it != v.end())
    if (auto ok = read_body(*it, "an HTTP response's body", r.body); !ok)
      return std::move(ok).error();
  return r;
}

}  // namespace plexus::rpc
