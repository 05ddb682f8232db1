#include "app/log_book.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <iterator>

#include "plexus/log/record.hpp"

namespace plexus::app {

namespace {

std::string text_of(const value& v, const char* key) {
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

log_book::log_book(boost::asio::io_context& io, supervisor::log_options opts, std::string dir,
                   echo_writer* echo, known_processes known, std::size_t max_unwritten)
    : io_(io),
      opts_(opts),
      dir_(std::move(dir)),
      echo_(echo),
      known_(std::move(known)),
      max_unwritten_(max_unwritten),
      writer_([this] { write_loop(); }) {}

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
  hand_over();
  {
    std::lock_guard lock(mu_);
    ending_ = true;
  }
  wake_.notify_one();
  writer_.join();  // it writes out what is queued first
}

// One hand-over per turn of the loop: the lines read in one go reach the writer with
// one lock and one wake-up, and are written with a few large writes.
void log_book::hand_over_soon() {
  if (hand_over_posted_) return;
  hand_over_posted_ = true;
  boost::asio::post(io_, [this] { hand_over(); });
}

void log_book::hand_over() {
  hand_over_posted_ = false;
  if (batch_.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (queued_.empty()) {
      queued_.swap(batch_);
    } else {
      std::move(batch_.begin(), batch_.end(), std::back_inserter(queued_));
    }
    queued_bytes_ += batch_bytes_;
    ++handed_;
  }
  batch_.clear();
  batch_bytes_ = 0;
  wake_.notify_one();
}

void log_book::wait_written() {
  hand_over();
  std::unique_lock lock(mu_);
  const auto target = handed_;
  written_.wait(lock, [&] { return done_ >= target; });
}

void log_book::write_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return !queued_.empty() || ending_; });
    if (queued_.empty()) return;  // ending, and all written
    std::vector<line_for> lines;
    lines.swap(queued_);
    const auto upto = handed_;
    lock.unlock();
    std::size_t bytes = 0;
    std::set<supervisor::rotating_file*> touched;
    for (const auto& l : lines) {
      bytes += l.key.size() + l.text.size();
      auto it = files_.find(l.key);
      if (it == files_.end()) {
        auto f = supervisor::rotating_file::open(dir_ + "/" + l.key + ".log",
                                                 {opts_.max_bytes, opts_.files});
        if (!f) {
          ++file_errors_;
          continue;
        }
        it = files_.emplace(l.key, std::move(*f)).first;
      }
      const auto before = it->second->write_errors();
      it->second->write_line(l.text);
      if (it->second->write_errors() != before) ++file_errors_;
      touched.insert(it->second.get());
    }
    for (auto* f : touched)
      f->flush();
    lock.lock();
    queued_bytes_ -= std::min(queued_bytes_, bytes);
    done_ = upto;
    written_.notify_all();
  }
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
  auto filed = filed_.find(key);
  if (filed == filed_.end() && !known(process, record)) {
    ++unfiled_;
  } else if (filed == filed_.end() &&
             (process.empty() || process.find('/') != std::string::npos || process[0] == '.')) {
    ++file_errors_;  // a name that is no file name (cannot happen for a known process)
  } else {
    if (filed == filed_.end()) filed = filed_.insert(key).first;
    std::string text = raw_line.empty() ? line : std::move(raw_line);
    const std::size_t bytes = key.size() + text.size();
    bool room;
    {
      std::lock_guard lock(mu_);
      room = queued_bytes_ + batch_bytes_ + bytes <= max_unwritten_;
    }
    if (room) {
      batch_bytes_ += bytes;
      batch_.push_back({*filed, std::move(text)});
    } else {
      ++unwritten_;  // the writer is that far behind: this line is not filed
    }
  }
  if (echo_ && log::level_rank(text_of(record, "level")) >= log::level_rank("info"))
    echo_->line(line);
  hand_over_soon();
  if (on_record_) on_record_(record);
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
