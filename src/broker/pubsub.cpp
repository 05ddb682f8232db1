#include "broker/pubsub.hpp"

#include <algorithm>

#include "plexus/wire/control.hpp"

namespace plexus::broker::detail {

void pubsub::publish(std::string_view from, std::span<const std::uint8_t> payload) {
  const auto topic = wire::peek_method(payload);
  if (!topic) {
    ++stats_.malformed;
    return;
  }
  ++stats_.published;
  // One immutable copy, made when the first subscriber takes it, shared by all of them.
  transport::shared_bytes shared;
  deliver_all(
      from, *topic,
      [&] {
        if (!shared)
          shared =
              std::make_shared<const std::vector<std::uint8_t>>(payload.begin(), payload.end());
        return shared;
      },
      [payload] { return payload; });
  // In-process taps: decoded once, only when one of them wants the topic.
  const auto wanted = [&](const tap_entry& t) { return topic->starts_with(t.prefix); };
  if (std::none_of(taps_.begin(), taps_.end(), wanted)) return;
  auto m = wire::decode(payload, {opts_.transport.max_frame_bytes, 64});
  if (!m || !std::holds_alternative<wire::notification>(*m)) return;
  const auto& n = std::get<wire::notification>(*m);
  for (auto& t : taps_)
    if (n.method.starts_with(t.prefix)) t.handler(n.method, n.params);
}

void pubsub::publish_local(std::string_view topic, value params) {
  ++stats_.published;
  transport::shared_bytes shared;
  const auto encoded = [&] {
    if (!shared) {
      auto bytes = std::make_shared<std::vector<std::uint8_t>>();
      wire::encode(*bytes, wire::notification{std::string(topic), params});
      shared = std::move(bytes);
    }
    return shared;
  };
  deliver_all("", topic, encoded, [&] { return std::span<const std::uint8_t>(*encoded()); });
  for (auto& t : taps_)
    if (topic.starts_with(t.prefix)) t.handler(topic, params);
}

// To the subscribers and outlets (not the taps). `shared()` gives the encoded
// publication as one buffer every subscriber's queue references, `bytes()` as bytes
// for the outlets; each is asked for only when someone takes it.
template <class Shared, class Bytes>
void pubsub::deliver_all(std::string_view from, std::string_view topic, Shared&& shared,
                         Bytes&& bytes) {
  for (peer* p : subscribers_) {
    for (const auto& prefix : p->prefixes) {
      if (!topic.starts_with(prefix)) continue;
      deliver(*p, from, shared());
      break;  // once per subscriber, however many of its prefixes match
    }
  }
  for (auto& out : outlets_)
    out->publish(topic, bytes());
}

void pubsub::deliver(peer& to, std::string_view from, const transport::shared_bytes& payload) {
  if (to.conn.queued_bytes() > opts_.subscriber_queue_bytes) {
    lost(to);
    return;
  }
  if (to.unreported > 0) {
    send_control(to, {{"op", control::dropped}, {"count", to.unreported}, {"total", to.dropped}});
    to.unreported = 0;
  }
  if (to.conn.send_shared(wire::frame_kind::data, from, payload)) {
    ++to.delivered;
    ++stats_.delivered;
  } else {
    lost(to);
  }
}

void pubsub::lost(peer& to) {
  ++to.dropped;
  ++to.unreported;
  ++stats_.dropped;
}

void pubsub::subscribe(peer& p, std::string prefix) {
  if (std::find(p.prefixes.begin(), p.prefixes.end(), prefix) != p.prefixes.end()) return;
  if (p.prefixes.empty()) subscribers_.push_back(&p);
  p.prefixes.push_back(std::move(prefix));
}

void pubsub::unsubscribe(peer& p, std::string_view prefix) {
  std::erase(p.prefixes, prefix);
  if (p.prefixes.empty()) std::erase(subscribers_, &p);
}

void pubsub::forget(peer& p) {
  if (!p.prefixes.empty()) std::erase(subscribers_, &p);
}

void pubsub::close() {
  for (auto& out : outlets_)
    out->close();
  outlets_.clear();
  subscribers_.clear();
}

value pubsub::subscriptions() const {
  value list = value::array();
  for (const auto* p : subscribers_)
    list.push_back({{"peer", p->id},
                    {"name", p->name},
                    {"pid", p->pid},
                    {"prefixes", p->prefixes},
                    {"delivered", p->delivered},
                    {"dropped", p->dropped}});
  return list;
}

std::uint64_t pubsub::outlet_dropped() const {
  std::uint64_t n = 0;
  for (const auto& o : outlets_)
    n += o->dropped();
  return n;
}

void pubsub::append_addresses(std::vector<std::string>& out) const {
  for (const auto& o : outlets_)
    out.push_back(o->address());
}

}  // namespace plexus::broker::detail
