// How a process started by `plexus run` talks to its supervisor (docs/protocol.md §15).
// Outside `plexus run` every function here is a harmless no-op.
//
// The supervisor hands each child the write end of a pipe, named by $PLEXUS_NOTIFY_FD,
// and reads one line per report from it:
//   READY=1                  the process is ready (its service is registered)
//   HEALTH={json map}        a periodic health report (in_flight, queued_bytes, …)
// plexus::rpc::service reports both by itself; a process without a service calls
// notify_ready() once it can do its work.
//
// Structured logs go through the router instead: a record (log_record) published
// under the topic "log.<process>" (log_topic); service::log and client::log do both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "plexus/wire/error.hpp"

namespace plexus::rpc {

// True when $PLEXUS_NOTIFY_FD names a descriptor (started by plexus run).
bool supervised() noexcept;
// Writes READY=1. Never blocks.
void notify_ready() noexcept;
// Writes HEALTH={report}. Never blocks: a report the supervisor has no room for is lost.
void notify_health(const value& report) noexcept;
// The name the supervisor gave this process ($PLEXUS_PROCESS), else `fallback`.
std::string process_name(std::string_view fallback);
// The replica number the supervisor gave this process ($PLEXUS_REPLICA), else 0.
int process_replica() noexcept;

// Log levels, lowest first; `level_rank` maps a name to its place (unknown: -1).
inline constexpr std::string_view log_levels[] = {"trace", "debug", "info",
                                                  "warn",  "error", "critical"};
int level_rank(std::string_view level) noexcept;
// invalid_argument naming the levels, unless `level` is one of them.
result<void> check_level(std::string_view level);

// {time (seconds since the epoch, float), level, process, replica, pid, message,
//  fields (map)} for this process.
// `pid` unset: this process's.
value log_record(std::string_view level, std::string_view message, value fields,
                 std::string_view process, std::optional<std::int64_t> pid = std::nullopt);
// "log." + process.
std::string log_topic(std::string_view process);

}  // namespace plexus::rpc
