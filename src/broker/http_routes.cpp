#include "plexus/broker/http_routes.hpp"

#include <algorithm>
#include <array>
#include <set>

namespace plexus::broker {

namespace {

constexpr std::size_t max_pattern_bytes = 1024;
constexpr std::size_t max_routes_per_service = 1024;
constexpr std::array<std::string_view, 7> verbs = {"GET",   "HEAD",   "POST",   "PUT",
                                                   "PATCH", "DELETE", "OPTIONS"};
constexpr std::array<std::string_view, 6> reserved = {
    "/", "/api/healthz", "/api/processes", "/api/routes", "/api/logs", "/metrics"};

// "/a/b" -> {"a", "b"}; "/" -> {""}; "/a/" -> {"a", ""}.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') return out;
  path.remove_prefix(1);
  for (;;) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_param(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

std::string text_of(const value& v, const char* key) {
  if (!v.is_object()) return {};
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string described(const http_route& r) {
  return r.verb + " " + r.pattern + " of service " + r.service + " (declared at " +
         (r.where.empty() ? std::string("an unknown place") : r.where) + ")";
}

}  // namespace

value route_value(const http_route& r, std::size_t replicas) {
  return {{"verb", r.verb},
          {"pattern", r.pattern},
          {"kind", r.kind},
          {"service", r.service},
          {"method", r.method},
          {"where", r.where},
          {"deadline_ms", r.deadline_ms},
          {"replicas", replicas}};
}

bool is_reserved_http_path(std::string_view pattern) {
  return std::find(reserved.begin(), reserved.end(), pattern) != reserved.end() ||
         pattern.starts_with("/_plexus/");
}

std::string check_http_route(std::string_view verb, std::string_view pattern) {
  if (std::find(verbs.begin(), verbs.end(), verb) == verbs.end())
    return "unknown HTTP verb '" + std::string(verb) +
           "' (expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)";
  if (pattern.empty() || pattern.front() != '/')
    return "a route's path must start with '/': '" + std::string(pattern) + "'";
  if (pattern.size() > max_pattern_bytes)
    return "a route's path may have at most " + std::to_string(max_pattern_bytes) + " bytes";
  if (is_reserved_http_path(pattern))
    return "'" + std::string(pattern) +
           "' is the gateway's own (/, /api/healthz, /api/processes, "
           "/api/routes, /api/logs, /metrics, /_plexus/…)";
  std::set<std::string_view> names;
  for (auto s : split_path(pattern)) {
    for (char c : s)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '?' || c == '#')
        return "a route's path may not contain spaces, control characters, '?' or '#': '" +
               std::string(pattern) + "'";
    if (!is_param(s)) {
      if (s.find_first_of("{}") != std::string_view::npos)
        return "a parameter is a whole segment, {name}: '" + std::string(pattern) + "'";
      continue;
    }
    const auto name = s.substr(1, s.size() - 2);
    if (!std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_';
        }))
      return "a parameter's name has letters, digits and '_' only: '" + std::string(s) + "'";
    if (!names.insert(name).second)
      return "parameter {" + std::string(name) + "} appears twice in '" + std::string(pattern) +
             "'";
  }
  return {};
}

result<void> http_route_table::claim(const std::string& service, const value& routes,
                                     const liveness& alive) {
  if (!routes.is_array())
    return plexus::error(errc::invalid_argument, "routes of " + service + " must be an array");
  if (routes.size() > max_routes_per_service)
    return plexus::error(errc::invalid_argument,
                         "service " + service + " declares " + std::to_string(routes.size()) +
                             " routes; at most " + std::to_string(max_routes_per_service));
  std::vector<entry> mine;
  for (const auto& r : routes) {
    entry e;
    e.route = {.verb = text_of(r, "verb"),
               .pattern = text_of(r, "pattern"),
               .kind = text_of(r, "kind"),
               .service = service,
               .method = text_of(r, "method"),
               .where = text_of(r, "where")};
    if (e.route.kind.empty()) e.route.kind = "plain";
    if (r.is_object() && r.contains("deadline_ms") && r["deadline_ms"].is_number_integer())
      e.route.deadline_ms = std::max<std::int64_t>(0, r["deadline_ms"].get<std::int64_t>());
    auto why = check_http_route(e.route.verb, e.route.pattern);
    if (why.empty() && e.route.kind != "plain")
      why = "unknown route kind '" + e.route.kind + "' (expected plain)";
    if (why.empty() && (e.route.method.empty() || e.route.method.size() > 255))
      why = "a route needs the name of the method that answers it";
    if (!why.empty())
      return plexus::error(errc::invalid_argument,
                           "service " + service + " declares a bad route" +
                               (e.route.where.empty() ? "" : " at " + e.route.where) + ": " + why,
                           {{"service", service}, {"where", e.route.where}});
    e.key = e.route.verb + " ";
    for (auto s : split_path(e.route.pattern)) {
      e.segments.emplace_back(s);
      e.key += "/";
      e.key += is_param(s) ? std::string_view("{}") : s;
    }
    for (const auto& other : mine)
      if (other.key == e.key)
        return plexus::error(
            errc::invalid_argument,
            "duplicate route: " + described(e.route) + " and " + described(other.route),
            {{"service", service}, {"where", e.route.where}});
    for (const auto& held : routes_)
      if (held.key == e.key && held.route.service != service && alive(held.route.service))
        return plexus::error(
            errc::invalid_argument,
            "duplicate route: " + described(e.route) + " is already " + described(held.route),
            {{"service", service},
             {"where", e.route.where},
             {"held_by", held.route.service},
             {"held_where", held.route.where}});
    mine.push_back(std::move(e));
  }
  // Accepted: the service's old routes and those it takes over go.
  std::erase_if(routes_, [&](const entry& held) {
    return held.route.service == service ||
           std::any_of(mine.begin(), mine.end(), [&](const entry& e) { return e.key == held.key; });
  });
  for (auto& e : mine)
    routes_.push_back(std::move(e));
  return {};
}

void http_route_table::forget(std::string_view service) {
  std::erase_if(routes_, [&](const entry& e) { return e.route.service == service; });
}

http_match http_route_table::match(std::string_view verb, std::string_view path) const {
  http_match out;
  const auto segments = split_path(path);
  if (segments.empty()) return out;
  const entry* best = nullptr;
  std::vector<bool> best_rank;
  std::vector<std::string> allowed;
  for (const auto& e : routes_) {
    if (e.segments.size() != segments.size()) continue;
    std::vector<bool> rank(segments.size());
    bool fits = true;
    for (std::size_t i = 0; i < segments.size() && fits; ++i) {
      if (is_param(e.segments[i]))
        fits = !segments[i].empty();
      else
        fits = rank[i] = e.segments[i] == segments[i];
    }
    if (!fits) continue;
    if (e.route.verb != verb) {
      if (std::find(allowed.begin(), allowed.end(), e.route.verb) == allowed.end())
        allowed.push_back(e.route.verb);
      continue;
    }
    if (!best || rank > best_rank) {
      best = &e;
      best_rank = std::move(rank);
    }
  }
  if (best) {
    out.what = http_match::outcome::found;
    out.route = best->route;
    for (std::size_t i = 0; i < segments.size(); ++i)
      if (is_param(best->segments[i]))
        out.params.emplace_back(best->segments[i].substr(1, best->segments[i].size() - 2),
                                segments[i]);
    return out;
  }
  if (!allowed.empty()) {
    std::sort(allowed.begin(), allowed.end());
    out.what = http_match::outcome::wrong_verb;
    for (const auto& v : allowed)
      out.allow += (out.allow.empty() ? "" : ", ") + v;
  }
  return out;
}

std::vector<http_route> http_route_table::list() const {
  std::vector<http_route> out;
  out.reserve(routes_.size());
  for (const auto& e : routes_)
    out.push_back(e.route);
  std::sort(out.begin(), out.end(), [](const http_route& a, const http_route& b) {
    return std::tie(a.pattern, a.verb) < std::tie(b.pattern, b.verb);
  });
  return out;
}

}  // namespace plexus::broker
