#include "app/log_book.hpp"

#include <boost/asio/post.hpp>
#include <chrono>

#include "plexus/log/record.hpp"

namespace plexus::app {

namespace {

std::string text_of(const value& v, const char* key) {
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

log_book::log_book(boost::asio::io_context& io, supervisor::log_options opts, std::string dir,
                   echo_writer* echo, known_processes known)
    : io_(io), opts_(opts), dir_(std::move(dir)), echo_(echo), known_(std::move(known)) {}

log_book::known_processes log_book::known_from(const supervisor::tree_spec& spec) {
  known_processes out{{"plexus", 1}};
  for (const auto& p : spec.processes)
    out[p.name] = std::max<std::size_t>(p.replicas, 1);
  return out;
}

bool log_book::known(std::string_view process, const value& record) const {
  auto it = known_.find(process);
  if (it == known_.end()) return false;
  auto rep = record.find("replica");
  if (rep == record.end()) return true;
  return rep->is_number_integer() && rep->get<std::int64_t>() >= 0 &&
         static_cast<std::uint64_t>(rep->get<std::int64_t>()) < it->second;
}

log_book::~log_book() {
  flush();
}

// One flush per turn of the loop: a burst of lines read in one go is written with a
// few large writes instead of one per line (the echo is written by its own thread).
void log_book::flush_soon() {
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this] { flush(); });
}

void log_book::flush() {
  flush_posted_ = false;
  for (auto& [key, f] : files_)
    f->flush();
}

void log_book::add(std::string_view topic, const value& params) {
  value record;
  if (params.is_array() && !params.empty() && params[0].is_object()) {
    record = params[0];
  } else {  // someone published a bare value under log.*: keep it, as a message
    record = {{"level", "info"},
              {"message", params.dump(-1, ' ', false, value::error_handler_t::replace)}};
  }
  if (!record.contains("process") || !record["process"].is_string())
    record["process"] = std::string(topic.substr(topic.find('.') + 1));
  if (!record.contains("time"))
    record["time"] =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // The file gets a captured line's bytes as written; the history, `plexus logs` and
  // the echo get valid text only: one bad string would make every answer that holds
  // it undecodable (CBOR text must be UTF-8), whoever logged it.
  std::string raw_line;
  if (auto raw = record.find("raw"); raw != record.end()) {
    raw_line = log::format_raw(record);
    record.erase(raw);
  }
  log::make_valid(record);
  const auto line = log::format(record);

  const auto process = text_of(record, "process");
  std::string key = process;
  if (auto rep = record.find("replica"); rep != record.end() && rep->is_number_integer())
    key += "." + std::to_string(rep->get<std::int64_t>());
  auto it = files_.find(key);
  if (it == files_.end() && !known(process, record)) {
    ++unfiled_;
  } else if (it == files_.end() && !process.empty() && process.find('/') == std::string::npos &&
             process[0] != '.') {
    auto f =
        supervisor::rotating_file::open(dir_ + "/" + key + ".log", {opts_.max_bytes, opts_.files});
    if (f)
      it = files_.emplace(key, std::move(*f)).first;
    else
      ++file_errors_;
  }
  if (it != files_.end()) it->second->write_line(raw_line.empty() ? line : raw_line);
  if (echo_ && log::level_rank(text_of(record, "level")) >= log::level_rank("info"))
    echo_->line(line);
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
    rank = log::level_rank(level);
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
    if (log::matches(*it, process, rank)) picked.push_front(&*it);
  for (const auto* r : picked)
    out.push_back(*r);
  return out;
}

}  // namespace plexus::app
