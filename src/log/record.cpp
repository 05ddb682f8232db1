#include "plexus/log/record.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

namespace plexus::log {

namespace {

std::string text_of(const value& v, const char* key) {
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string iso_time(double t) {
  const auto secs = static_cast<std::time_t>(std::floor(t));
  const int ms = static_cast<int>((t - std::floor(t)) * 1000.0);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

}  // namespace

int level_rank(std::string_view level) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(levels)); ++i)
    if (levels[i] == level) return i;
  return -1;
}

result<void> check_level(std::string_view level) {
  if (level_rank(level) >= 0) return {};
  return plexus::error(errc::invalid_argument,
                       "unknown log level '" + std::string(level) +
                           "' (levels: trace, debug, info, warn, error, critical)",
                       {{"level", std::string(level)}});
}

std::string topic(std::string_view process) {
  return std::string(topic_prefix) + std::string(process);
}

value make_record(std::string_view level, std::string_view message, value fields,
                  std::string_view process, std::int64_t replica, std::optional<std::int64_t> pid) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return {{"time", std::chrono::duration<double>(now).count()},
          {"level", std::string(level)},
          {"process", std::string(process)},
          {"replica", replica},
          {"pid", pid ? *pid : static_cast<std::int64_t>(::getpid())},
          {"message", std::string(message)},
          {"fields", fields.is_object() ? std::move(fields) : value::object()}};
}

std::string format(const value& r) {
  std::string out;
  const auto t = r.find("time");
  out += t != r.end() && t->is_number() ? iso_time(t->get<double>()) : std::string("-");
  auto level = text_of(r, "level");
  level.resize(std::max<std::size_t>(level.size(), 5), ' ');
  out += " " + level + " " + text_of(r, "process");
  if (auto rep = r.find("replica"); rep != r.end() && rep->is_number_integer())
    out += "[" + std::to_string(rep->get<std::int64_t>()) + "]";
  out += " " + text_of(r, "message");
  if (auto f = r.find("fields"); f != r.end() && f->is_object() && !f->empty()) {
    // A captured line's fields are just its stream: nothing to add.
    if (f->size() == 1 && f->contains("stream")) return out;
    value rest = *f;
    // The captured stream is implied by the line; say only what is news.
    if (text_of(rest, "stream") == "stdout" || text_of(rest, "stream") == "stderr" ||
        text_of(rest, "stream") == "supervisor") {
      rest.erase("stream");
      rest.erase("event");
    }
    if (!rest.empty()) out += " " + rest.dump();
  }
  return out;
}

bool matches(const value& r, std::string_view process, int min_rank) {
  if (!process.empty() && text_of(r, "process") != process) return false;
  return min_rank <= 0 || level_rank(text_of(r, "level")) >= min_rank;
}

}  // namespace plexus::log
