#include "supervisor/log_book.hpp"

#include <boost/asio/post.hpp>
#include <chrono>
#include <cmath>
#include <ctime>

#include "plexus/rpc/supervision.hpp"
#include "plexus/supervisor/run.hpp"

namespace plexus::supervisor {

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

log_book::log_book(boost::asio::io_context& io, log_options opts, std::string dir, std::FILE* echo)
    : io_(io), opts_(opts), dir_(std::move(dir)), echo_(echo) {}

log_book::~log_book() {
  flush();
}

// One flush per turn of the loop: a burst of lines read in one go is written with a
// few large writes instead of one per line.
void log_book::flush_soon() {
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this] { flush(); });
}

void log_book::flush() {
  flush_posted_ = false;
  for (auto& [key, f] : files_)
    f->flush();
  if (echo_) std::fflush(echo_);
}

std::string log_book::format(const value& r) {
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

bool log_book::matches(const value& r, std::string_view process, int min_rank) {
  if (!process.empty() && text_of(r, "process") != process) return false;
  return min_rank <= 0 || rpc::level_rank(text_of(r, "level")) >= min_rank;
}

void log_book::add(std::string_view topic, const value& params) {
  value record;
  if (params.is_array() && !params.empty() && params[0].is_object()) {
    record = params[0];
  } else {  // someone published a bare value under log.*: keep it, as a message
    record = {{"level", "info"}, {"message", params.dump()}};
  }
  if (!record.contains("process") || !record["process"].is_string())
    record["process"] = std::string(topic.substr(topic.find('.') + 1));
  if (!record.contains("time"))
    record["time"] =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto line = format(record);

  const auto process = text_of(record, "process");
  std::string key = process;
  if (auto rep = record.find("replica"); rep != record.end() && rep->is_number_integer())
    key += "." + std::to_string(rep->get<std::int64_t>());
  auto it = files_.find(key);
  if (it == files_.end() && !process.empty() && process.find('/') == std::string::npos &&
      process[0] != '.') {
    auto f = rotating_file::open(dir_ + "/" + key + ".log", {opts_.max_bytes, opts_.files});
    if (f)
      it = files_.emplace(key, std::move(*f)).first;
    else
      ++file_errors_;
  }
  if (it != files_.end()) it->second->write_line(line);
  if (echo_ && rpc::level_rank(text_of(record, "level")) >= rpc::level_rank("info")) {
    std::fputs(line.c_str(), echo_);
    std::fputc('\n', echo_);
  }
  flush_soon();
  if (opts_.history == 0) return;
  history_.push_back(std::move(record));
  while (history_.size() > opts_.history)
    history_.pop_front();
}

result<value> log_book::query(const value& params) const {
  value filter = params.is_array() && !params.empty() ? params[0] : value::object();
  if (!filter.is_object())
    return plexus::error(errc::invalid_argument,
                         "logs expects ({process?: text, level?: text, limit?: integer})");
  const auto process = text_of(filter, "process");
  int rank = 0;
  if (auto level = text_of(filter, "level"); !level.empty()) {
    rank = rpc::level_rank(level);
    if (rank < 0)
      return plexus::error(
          errc::invalid_argument,
          "unknown level " + level + " (levels: trace, debug, info, warn, error, critical)");
  }
  std::size_t limit = 200;
  if (auto l = filter.find("limit"); l != filter.end() && l->is_number_unsigned())
    limit = l->get<std::size_t>();
  value out = value::array();
  std::deque<const value*> picked;
  for (auto it = history_.rbegin(); it != history_.rend() && picked.size() < limit; ++it)
    if (matches(*it, process, rank)) picked.push_front(&*it);
  for (const auto* r : picked)
    out.push_back(*r);
  return out;
}

std::string format_log_record(const value& record) {
  return log_book::format(record);
}
bool log_record_matches(const value& record, std::string_view process, int min_rank) {
  return log_book::matches(record, process, min_rank);
}

}  // namespace plexus::supervisor
