#include "plexus/config/app_config.hpp"

#include <toml++/toml.h>
#include <fstream>
#include <sstream>

namespace plexus::config {

namespace {

plexus::error fail(const std::string& source, const toml::source_region& where,
                   const std::string& key, const std::string& why) {
  std::string at = source;
  if (where.begin.line > 0)
    at += ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
  return plexus::error(errc::invalid_argument, at + ": " + key + ": " + why,
                       {{"file", source}, {"line", where.begin.line}, {"key", key}});
}

// A string, or an array of strings.
result<void> read_strings(const std::string& source, const toml::node& node, const std::string& key,
                          std::vector<std::string>& out) {
  out.clear();
  if (auto s = node.value<std::string>()) {
    out.push_back(*s);
    return {};
  }
  const auto* arr = node.as_array();
  if (!arr) return fail(source, node.source(), key, "expected a string or an array of strings");
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    if (!s) return fail(source, item.source(), key, "expected a string");
    out.push_back(*s);
  }
  return {};
}

result<void> read_size(const std::string& source, const toml::node& node, const std::string& key,
                       std::size_t& out, std::int64_t min) {
  auto v = node.value<std::int64_t>();
  if (!v || !node.is_integer() || *v < min)
    return fail(source, node.source(), key,
                "expected an integer of at least " + std::to_string(min));
  out = static_cast<std::size_t>(*v);
  return {};
}

result<void> read_router(const std::string& source, const toml::table& t,
                         broker::router_options& r) {
  for (const auto& [k, node] : t) {
    const std::string name(k.str());
    const std::string key = "router." + name;
    result<void> ok;
    if (name == "listen")
      ok = read_strings(source, node, key, r.listen);
    else if (name == "zmq_frontend")
      ok = read_strings(source, node, key, r.zmq_frontend);
    else if (name == "zmq_backend")
      ok = read_strings(source, node, key, r.zmq_backend);
    else if (name == "zmq_publishers")
      ok = read_strings(source, node, key, r.zmq_publishers);
    else if (name == "zmq_subscribers")
      ok = read_strings(source, node, key, r.zmq_subscribers);
    else if (name == "udp")
      ok = read_strings(source, node, key, r.udp);
    else if (name == "max_frame_bytes")
      ok = read_size(source, node, key, r.transport.max_frame_bytes, 64);
    else if (name == "max_queued_bytes")
      ok = read_size(source, node, key, r.transport.max_queued_bytes, 0);
    else if (name == "subscriber_queue_bytes")
      ok = read_size(source, node, key, r.subscriber_queue_bytes, 0);
    else
      ok = fail(source, node.source(), key,
                "unknown key (known: listen, zmq_frontend, zmq_backend, zmq_publishers, "
                "zmq_subscribers, udp, max_frame_bytes, max_queued_bytes, "
                "subscriber_queue_bytes)");
    if (!ok) return ok;
  }
  return {};
}

}  // namespace

result<app_config> parse(std::string_view text, const std::string& source) {
  toml::table doc;
  try {
    doc = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return fail(source, e.source(), "(syntax)", std::string(e.description()));
  }
  app_config cfg;
  for (const auto& [k, node] : doc) {
    const std::string name(k.str());
    if (name == "router") {
      const auto* t = node.as_table();
      if (!t) return fail(source, node.source(), name, "expected a table [router]");
      if (auto ok = read_router(source, *t, cfg.router); !ok) return std::move(ok).error();
    } else {
      return fail(source, node.source(), name, "unknown key (known: [router])");
    }
  }
  return cfg;
}

result<app_config> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return plexus::error(errc::invalid_argument, "cannot read config file " + path,
                         {{"file", path}});
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

}  // namespace plexus::config
