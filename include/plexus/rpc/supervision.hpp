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
// Structured logs go through the router instead: a record (plexus/log/record.hpp)
// published under the topic "log.<process>"; service::log and client::log do both.
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

}  // namespace plexus::rpc
