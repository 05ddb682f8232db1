// A log record: one structured line of a process's log, as it travels from a library
// (rpc::service::log, rpc::client::log), from a child's captured output or from the
// supervisor to `plexus run`'s log book and to `plexus logs` (docs/protocol.md §15).
//
//   plexus::value r = plexus::log::make_record("warn", "disk low", {{"free_mb", 12}}, "calc");
//   std::string line = plexus::log::format(r);  // "…Z warn  calc[0] disk low {…}"
//   bool shown = plexus::log::matches(r, "calc", plexus::log::level_rank("info"));
//
// A record is a map {time (seconds since the epoch, float), level, process, replica,
// pid, message, fields (map)}, published under the topic "log.<process>" with params
// [record]. Every function here is pure (no I/O) and may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "plexus/wire/error.hpp"

namespace plexus::log {

// Log levels, lowest first; `level_rank` maps a name to its place (unknown: -1).
inline constexpr std::string_view levels[] = {"trace", "debug", "info",
                                              "warn",  "error", "critical"};
int level_rank(std::string_view level) noexcept;
// invalid_argument naming the levels, unless `level` is one of them.
result<void> check_level(std::string_view level);

// Topics of log records: "log." + process.
inline constexpr std::string_view topic_prefix = "log.";
std::string topic(std::string_view process);

// A record stamped now. `fields` that is not a map becomes {}; `pid` unset: this
// process's.
value make_record(std::string_view level, std::string_view message, value fields,
                  std::string_view process, std::int64_t replica = 0,
                  std::optional<std::int64_t> pid = std::nullopt);

// The record as one line: "2026-12-02T12:00:00.123Z info  calc[0] message {fields}"
// (UTC). Fields that only name the captured stream are left out.
std::string format(const value& record);
// Whether `record` is of `process` (empty: any) and at least the level of rank
// `min_rank` (0: any).
bool matches(const value& record, std::string_view process, int min_rank);

}  // namespace plexus::log
