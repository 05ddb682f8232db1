// Internal: the router's publish/subscribe part. A publication (a notification sent
// to "*", or one from an inlet) goes to every peer subscribed to a prefix of its topic,
// to every outlet, and to the in-process taps. Slow subscribers lose publications
// (router_options::subscriber_queue_bytes); the losses are counted and reported to the
// subscriber with a "dropped" control frame when delivery resumes. Every subscriber's
// queue references one immutable copy of a publication (transport::shared_bytes).
// Threading: the router's loop only.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "broker/peer.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/transport/pubsub.hpp"

namespace plexus::broker::detail {

class pubsub {
 public:
  // `opts` and `stats` belong to the router and outlive this.
  pubsub(const router_options& opts, router_stats& stats) : opts_(opts), stats_(stats) {}

  void add_outlet(std::unique_ptr<transport::outlet> out) { outlets_.push_back(std::move(out)); }
  // `from` is the publisher's peer id, or empty for publications from an inlet.
  void publish(std::string_view from, std::span<const std::uint8_t> payload);
  // A publication made in this process: encoded only if a subscriber or outlet takes it.
  void publish_local(std::string_view topic, value params);
  void tap(std::string prefix, router::tap_handler h) {
    taps_.push_back({std::move(prefix), std::move(h)});
  }

  void subscribe(peer& p, std::string prefix);
  void unsubscribe(peer& p, std::string_view prefix);
  // The peer is leaving: it is no subscriber any more.
  void forget(peer& p);
  // Closes the outlets and forgets every subscriber (the taps stay).
  void close();

  // plexus.subscriptions: one entry per subscribed peer.
  value subscriptions() const;
  // Publications the outlets could not take.
  std::uint64_t outlet_dropped() const;
  void append_addresses(std::vector<std::string>& out) const;

 private:
  struct tap_entry {
    std::string prefix;
    router::tap_handler handler;
  };

  template <class Shared, class Bytes>
  void deliver_all(std::string_view from, std::string_view topic, Shared&& shared, Bytes&& bytes);
  void deliver(peer& to, std::string_view from, const transport::shared_bytes& payload);
  void lost(peer& to);

  const router_options& opts_;
  router_stats& stats_;
  std::vector<peer*> subscribers_;  // peers with at least one prefix
  std::vector<std::unique_ptr<transport::outlet>> outlets_;
  std::vector<tap_entry> taps_;
};

}  // namespace plexus::broker::detail
