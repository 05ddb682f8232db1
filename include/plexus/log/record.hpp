// A log record: one structured line of a process's log, as it travels from a library
// (rpc::service::log, rpc::client::log), from a child's captured output or from the
// supervisor to `plexus run`'s log book and to `plexus logs` (docs/protocol.md §15).
//
//   plexus::value r = plexus::log::make_record("warn", "disk low", {{"free_mb", 12}}, "calc");
//   std::string line = plexus::log::format(r);  // "…Z warn  calc[0] disk low {…}"
//   bool shown = plexus::log::matches(r, "calc", plexus::log::level_rank("info"));
//
// A record is a map {time (seconds since the epoch, float), level, process, replica,
// pid, message, fields (map), raw (bytes; only on a captured line that was not UTF-8)},
// published under the topic "log.<process>" with params [record]. Every function here
// is pure (no I/O) and may be called from any thread.
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

// ---- valid text ----------------------------------------------------------------------
// Records travel as CBOR, whose text must be UTF-8: a peer rejects a whole message with
// one bad string in it. So every text of a record is made valid before it is published
// or stored; only the log file keeps the bytes as they came (see `raw` below).

// Whether `text` is UTF-8 as Unicode defines it: no overlong forms, no surrogates,
// nothing above U+10FFFF, no truncated sequence.
bool is_valid_utf8(std::string_view text) noexcept;
// `text` with each maximal invalid subsequence replaced by one U+FFFD (the "maximal
// subpart" practice of Unicode §3.9 and the WHATWG decoder); valid text unchanged.
//   make_valid_utf8("a\xff\xfe!") == "a\uFFFD\uFFFD!"; make_valid_utf8("\xe2\x82") == "\uFFFD"
std::string make_valid_utf8(std::string_view text);
// Where to cut `text` to at most `max` bytes without splitting a character: `max`
// moved back to the start of a multi-byte sequence that would cross it (never to 0:
// then `max`); text.size() when it is not longer than `max`.
std::size_t cut_at_boundary(std::string_view text, std::size_t max) noexcept;
// Repairs every text in `v` (strings and map keys, at any depth) with make_valid_utf8.
// Returns whether anything changed. Byte strings are left alone.
bool make_valid(value& v);

// A record stamped now. `fields` that is not a map becomes {}; `pid` unset: this
// process's. Every text in it is valid UTF-8 (make_valid).
value make_record(std::string_view level, std::string_view message, value fields,
                  std::string_view process, std::int64_t replica = 0,
                  std::optional<std::int64_t> pid = std::nullopt);

// The record of one line a child wrote to stdout/stderr: make_record's, and when `line`
// is not valid UTF-8 (its message is then the repaired copy) also "raw": the bytes as
// read, a CBOR byte string, so that the log file can keep them exactly.
value make_line_record(std::string_view level, std::string_view line, value fields,
                       std::string_view process, std::int64_t replica, std::int64_t pid);
// The record as its log file's line: as format, but with the "raw" bytes as the message
// when there are some (and no '\n' among them: a record stays one line of the file).
std::string format_raw(const value& record);

// The record as one line: "2026-12-02T12:00:00.123Z info  calc[0] message {fields}"
// (UTC). Fields that only name the captured stream are left out.
std::string format(const value& record);
// Whether `record` is of `process` (empty: any) and at least the level of rank
// `min_rank` (0: any).
bool matches(const value& record, std::string_view process, int min_rank);

}  // namespace plexus::log
