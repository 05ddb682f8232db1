// libFuzzer target: the HTTP route table (broker/http_routes.hpp) and the request
// helpers (rpc/http.hpp) on arbitrary bytes. The input is lines: every line but the
// last declares "VERB PATTERN" (a route of service a or b, alternately); the last is
// "VERB PATH?QUERY", looked up. Nothing may crash, throw or read out of bounds, and a
// route found must have as many parameters as its pattern has {name} segments.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/broker/http_routes.hpp"
#include "plexus/rpc/http.hpp"

namespace {

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty() && out.size() < 64) {
    const auto nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto lines = lines_of(text);
  if (lines.empty()) return 0;
  plexus::broker::http_route_table table;
  auto alive = [](std::string_view) { return true; };
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    const auto space = lines[i].find(' ');
    if (space == std::string_view::npos) continue;
    const std::string verb(lines[i].substr(0, space)), pattern(lines[i].substr(space + 1));
    plexus::value route = {{"verb", verb},
                           {"pattern", pattern},
                           {"method", "http " + verb + " " + pattern},
                           {"where", "fuzz:" + std::to_string(i)}};
    (void)table.claim(i % 2 ? "a" : "b", plexus::value::array({route}), alive);
  }
  const auto last = lines.back();
  const auto space = last.find(' ');
  const auto verb = last.substr(0, space);
  const auto target = space == std::string_view::npos ? std::string_view() : last.substr(space + 1);
  const auto q = target.find('?');
  const auto m = table.match(verb, target.substr(0, q));
  if (m.what == plexus::broker::http_match::outcome::found) {
    std::size_t params = 0;
    for (std::size_t at = 0; (at = m.route.pattern.find('{', at)) != std::string::npos; ++at)
      ++params;
    if (params != m.params.size()) std::abort();
  }
  plexus::rpc::http_request req;
  req.query = std::string(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
  for (const auto& [name, raw] : m.params)
    req.params.emplace_back(name, plexus::rpc::percent_decode(raw));
  (void)req.query_param("a");
  (void)plexus::rpc::percent_decode(target, true);
  (void)table.list();
  return 0;
}
