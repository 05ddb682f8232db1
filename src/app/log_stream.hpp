// The live log of `plexus run` as server-sent events: the gateway's /api/logs.
//
//   log_stream logs(book);
//   gw.add_event_stream("/api/logs", [&](auto query, auto send) { return logs.open(query, send);
//   }); router.tap("log.", [&](auto, const value& r) { logs.publish(r); });
//
// A client asks with ?process=NAME&level=LEVEL&backlog=N: first the newest N records of
// the history that match (default 100, at most 1000), then every new matching record as
// it is published. Each event is `data: <the record as JSON>`. A slow client loses
// events (the gateway's budget), never slows the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>

#include "app/log_book.hpp"
#include "plexus/gateway/gateway.hpp"

namespace plexus::app {

class log_stream {
 public:
  explicit log_stream(const log_book& book) : book_(book) {}

  // A new client: the backlog now, then live records. invalid_argument for an
  // unknown level or a backlog that is not a number. Returns what to run when it goes.
  result<std::function<void()>> open(std::string_view query, gateway::gateway::event_send send);
  // A record just published: to every client whose filter it matches.
  void publish(const value& record);
  std::size_t clients() const noexcept { return clients_.size(); }

 private:
  struct client {
    std::uint64_t id;
    std::string process;
    int rank;
    gateway::gateway::event_send send;
  };
  const log_book& book_;
  std::list<client> clients_;
  std::uint64_t next_id_ = 1;
};

}  // namespace plexus::app
