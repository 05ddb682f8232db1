// What `plexus ps` shows of a running child's resources, sampled from /proc/PID/stat:
// resident memory, CPU share over the last sampling period, threads.
//
//   supervisor::proc_stats s;
//   s.sample(pid, steady_clock::now(), started);   // once per sampling period
//   s.rss_bytes(); s.cpu_percent(); s.threads();
//
// Threading: none of its own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace plexus::supervisor {

// utime+stime (clock ticks), threads and RSS pages of one /proc/PID/stat line.
struct proc_sample {
  std::uint64_t ticks = 0;
  int threads = 0;
  std::uint64_t rss_pages = 0;
};
// nullopt: not a stat line (too few fields, no command name in parentheses).
std::optional<proc_sample> parse_proc_stat(std::string_view text);
// nullopt: no such process (any more), or /proc unreadable.
std::optional<proc_sample> read_proc_stat(pid_t pid);

class proc_stats {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Reads /proc/`pid`/stat; the CPU share is over the time since the previous sample of
  // the same run (`started`: when this run of the child started). A process that is
  // gone leaves the last values.
  void sample(pid_t pid, time_point now, time_point started);
  // Counts the CPU share of the next sample from a fresh run.
  void reset() noexcept { *this = proc_stats{}; }

  std::uint64_t rss_bytes() const noexcept { return rss_bytes_; }
  double cpu_percent() const noexcept { return cpu_percent_; }
  int threads() const noexcept { return threads_; }

 private:
  std::uint64_t last_ticks_ = 0;
  time_point last_sample_{};
  std::uint64_t rss_bytes_ = 0;
  double cpu_percent_ = 0;
  int threads_ = 0;
};

}  // namespace plexus::supervisor
