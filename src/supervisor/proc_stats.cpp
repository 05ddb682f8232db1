#include "supervisor/proc_stats.hpp"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace plexus::supervisor {

std::optional<proc_sample> parse_proc_stat(std::string_view text) {
  // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 > text.size()) return std::nullopt;
  std::istringstream fields{std::string(text.substr(close + 2))};
  std::string f;
  std::vector<std::string> v;
  while (fields >> f)
    v.push_back(f);
  // v[0] is field 3 (state): field n is v[n - 3].
  if (v.size() < 22) return std::nullopt;
  try {
    proc_sample s;
    s.ticks = std::stoull(v[14 - 3]) + std::stoull(v[15 - 3]);
    s.threads = std::stoi(v[20 - 3]);
    s.rss_pages = std::stoull(v[24 - 3]);
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<proc_sample> read_proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return std::nullopt;
  return parse_proc_stat(text);
}

void proc_stats::sample(pid_t pid, time_point now, time_point started) {
  static const long ticks_per_s = ::sysconf(_SC_CLK_TCK);
  static const long page = ::sysconf(_SC_PAGESIZE);
  const auto s = read_proc_stat(pid);
  if (!s) return;
  if (last_ticks_ != 0 || last_sample_ > started) {
    const double wall = std::chrono::duration<double>(now - last_sample_).count();
    if (wall > 0)
      cpu_percent_ = 100.0 * static_cast<double>(s->ticks - last_ticks_) /
                     static_cast<double>(ticks_per_s) / wall;
  }
  last_ticks_ = s->ticks;
  last_sample_ = now;
  threads_ = s->threads;
  rss_bytes_ = s->rss_pages * static_cast<std::uint64_t>(page);
}

}  // namespace plexus::supervisor
