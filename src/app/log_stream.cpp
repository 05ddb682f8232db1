#include "app/log_stream.hpp"

#include <charconv>

#include "plexus/log/record.hpp"
#include "plexus/rpc/http.hpp"

namespace plexus::app {

namespace {

constexpr std::size_t default_backlog = 100;
constexpr std::size_t max_backlog = 1000;

std::string event_of(const value& record) {
  return "data: " + record.dump(-1, ' ', false, value::error_handler_t::replace) + "\n\n";
}

}  // namespace

result<std::function<void()>> log_stream::open(std::string_view query,
                                               gateway::gateway::event_send send) {
  const rpc::http_request q{.query = std::string(query)};
  const auto process = q.query_param("process");
  const auto level = q.query_param("level");
  int rank = 0;
  if (!level.empty() && (rank = log::level_rank(level)) < 0)
    return plexus::error(errc::invalid_argument, "unknown level '" + level +
                                                     "' (levels: trace, debug, info, warn, "
                                                     "error, critical)");
  std::size_t backlog = default_backlog;
  if (const auto text = q.query_param("backlog"); !text.empty()) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), backlog);
    if (ec != std::errc() || end != text.data() + text.size() || backlog > max_backlog)
      return plexus::error(errc::invalid_argument, "backlog is a number of records from 0 to " +
                                                       std::to_string(max_backlog));
  }
  value filter = {{"limit", backlog}};
  if (!process.empty()) filter["process"] = process;
  if (!level.empty()) filter["level"] = level;
  auto history = book_.query(value::array({filter}));
  if (!history) return std::move(history).error();
  for (const auto& r : *history)
    if (!send(event_of(r))) return std::function<void()>([] {});
  const auto id = next_id_++;
  clients_.push_back({id, process, rank, std::move(send)});
  return std::function<void()>(
      [this, id] { clients_.remove_if([id](const client& c) { return c.id == id; }); });
}

void log_stream::publish(const value& record) {
  if (clients_.empty()) return;
  std::string event;
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (log::matches(record, it->process, it->rank)) {
      if (event.empty()) event = event_of(record);
      if (!it->send(event)) {
        it = clients_.erase(it);
        continue;
      }
    }
    ++it;
  }
}

}  // namespace plexus::app
