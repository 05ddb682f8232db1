// `plexus-bench loop`: call latency through `plexus run` while it starts N replicas, against the
// same calls while it is idle (the baseline, same process, same run).
//
// The app has two entries: a gate (a shell that becomes ready when the bench writes to a FIFO)
// and N replicas of calc, which the tree starts only once the gate is ready. So the bench first
// pings an idle `plexus run` for idle_s, then opens the gate and pings until plexus.ps shows every
// replica ready. Pings are sequential (each waits for its answer), one due every interval_us, the
// latency counted from when it was due; every 100th round also asks plexus.ps (not measured), in
// both windows alike.

#include "loop.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common.hpp"
#include "router_client.hpp"

extern char** environ;

using namespace bench;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_limit = 30s;
constexpr auto call_deadline = 5s;

int calc_ready(const plexus::value& ps) {
  int n = 0;
  for (const auto& e : ps)
    if (e.is_object() && e.value("name", "") == "calc" && e.value("state", "") == "ready") ++n;
  return n;
}

// A TOML basic string (the paths the bench writes have no control characters).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The loop thread of `plexus run` (its main thread): time on a CPU, and time runnable but
// waiting for one (/proc/PID/task/PID/schedstat, nanoseconds).
struct schedstat {
  double cpu_ns = 0, wait_ns = 0;
};
schedstat loop_schedstat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/schedstat");
  schedstat s;
  in >> s.cpu_ns >> s.wait_ns;
  return s;
}

}  // namespace

loop_result run_loop_once(const loop_config& cfg, bool direct) {
  static int runs = 0;
  const std::string dir = cfg.workdir + "/loop-" + std::to_string(++runs);
  if (::mkdir(dir.c_str(), 0700) != 0)
    throw std::system_error(errno, std::generic_category(), "mkdir " + dir);
  const std::string gate = dir + "/gate";
  if (::mkfifo(gate.c_str(), 0600) != 0)
    throw std::system_error(errno, std::generic_category(), "mkfifo " + gate);
  const std::string address = "ipc://" + dir + "/router.sock";
  const std::string config = dir + "/app.toml";
  {
    std::ofstream out(config);
    if (cfg.start_concurrency > 0)
      out << "[supervisor]\nstart_concurrency = " << cfg.start_concurrency << "\n\n";
    out << "[router]\nlisten = " << quoted(address)
        << "\n\n[gateway]\nlisten = \"127.0.0.1:0\"\n\n[log]\ndir = " << quoted(dir + "/logs")
        << "\necho = false\n\n"
        << "[[process]]\nname = \"gate\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", "
        << quoted("read x < '" + gate + "'; echo READY=1 >&3; exec sleep 100000")
        << "]\nready_timeout = 600\n\n"
        << "[[process]]\nname = \"calc\"\ncommand = " << quoted(cfg.bin_dir + "/calc")
        << "\nreplicas = " << cfg.replicas << "\n";
    if (!out) throw std::runtime_error("cannot write " + config);
  }

  const pid_t run = spawn_process(cfg.bin_dir + "/plexus",
                                  {.args = {"run", config}, .out = child_stdout::to_null});
  struct stopper {
    pid_t pid;
    ~stopper() { kill_child(pid, 10s); }  // SIGTERM: the tree stops its children
  } stop{run};
  router_client cl;
  cl.connect(address, "plexus-bench-loop", run, mono_now() + wait_limit);

  loop_result out;
  // One window: pings until `done()` (checked every 100 rounds, with a plexus.ps).
  // A ping is due every interval_us from the window's start; its latency runs from the time it
  // was due, not from when it could be sent: a loop that stalls for 500 ms delays every ping due
  // meanwhile, and each counts (no coordinated omission: a sequential client would otherwise
  // record the stall once).
  auto window = [&](auto done) {
    std::vector<mono_clock::duration> samples;
    const auto first = mono_now();
    const auto deadline = first + wait_limit;
    const auto interval = std::chrono::microseconds(cfg.interval_us);
    std::optional<mono_clock::time_point> ended;
    for (long round = 1;; ++round) {
      const auto due = first + (round - 1) * interval;
      if (const auto now = mono_now(); now < due) std::this_thread::sleep_until(due);
      if (auto pong = cl.call("ping", call_deadline); pong != "pong")
        throw std::runtime_error("plexus.ping: " + pong.dump());
      samples.push_back(mono_now() - due);
      // Once done, the pings due until then are still sent and counted (those a stall held
      // back), then the window ends.
      if (ended) {
        if (first + round * interval > *ended) break;
      } else if (round % 100 == 0 && done(cl.call("ps", call_deadline))) {
        ended = mono_now();
      }
      if (mono_now() > deadline) throw std::runtime_error("the window did not end in time");
      if (child_exited(run)) throw std::runtime_error("plexus run exited");
    }
    return samples;
  };

  // Warm-up: the client's connection and the first answers.
  for (int i = 0; i < 50; ++i)
    cl.call("ping", call_deadline);
  const auto idle_sched = loop_schedstat(run);
  const auto idle_end = mono_now() + std::chrono::duration<double>(cfg.idle_s);
  const auto idle = window([&](const plexus::value& ps) {
    if (calc_ready(ps) != 0) throw std::runtime_error("calc started before the gate opened");
    return mono_now() >= idle_end;
  });

  const auto start_sched = loop_schedstat(run);
  out.idle_loop_cpu_ms = (start_sched.cpu_ns - idle_sched.cpu_ns) / 1e6;
  out.idle_loop_wait_ms = (start_sched.wait_ns - idle_sched.wait_ns) / 1e6;
  const auto opened = mono_now();
  std::vector<mono_clock::duration> start;
  if (!direct) {
    const int fd = ::open(gate.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + gate);
    (void)!::write(fd, "go\n", 3);
    ::close(fd);
    start = window([&](const plexus::value& ps) { return calc_ready(ps) == cfg.replicas; });
  } else {
    // The control: the same N calc started by another thread of the bench with posix_spawn
    // (vfork: the pinging thread is not held up by copies of the bench's page tables), from
    // outside plexus run, registering with the same router; the gate stays shut.
    std::vector<pid_t> calcs;
    struct reaper {
      std::vector<pid_t>& pids;
      ~reaper() {
        for (const pid_t p : pids)
          ::kill(p, SIGTERM);
        for (const pid_t p : pids)
          kill_child(p, 5s);
      }
    } reap{calcs};
    calcs.reserve(static_cast<std::size_t>(cfg.replicas));
    std::string calc = cfg.bin_dir + "/calc";
    std::vector<std::string> storage{calc, "--router", address};
    std::vector<char*> argv;
    for (auto& a : storage)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    struct actions_guard {
      posix_spawn_file_actions_t* a;
      ~actions_guard() { ::posix_spawn_file_actions_destroy(a); }
    } actions_cleanup{&actions};
    ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    std::atomic<bool> over{false};
    std::thread starter([&] {
      for (int i = 0; i < cfg.replicas && !over; ++i) {
        pid_t pid = 0;
        if (::posix_spawn(&pid, calc.c_str(), &actions, nullptr, argv.data(), environ) == 0)
          calcs.push_back(pid);
      }
    });
    try {
      start = window([&](const plexus::value&) {
        const auto services = cl.call("services", call_deadline);
        for (const auto& e : services)
          if (e.is_object() && e.value("name", "") == "calc")
            return e.value("workers", 0) == cfg.replicas;
        return false;
      });
    } catch (...) {
      over = true;
      starter.join();
      throw;
    }
    over = true;
    starter.join();
  }
  out.start_window_ms = std::chrono::duration<double, std::milli>(mono_now() - opened).count();
  const auto end_sched = loop_schedstat(run);
  out.start_loop_cpu_ms = (end_sched.cpu_ns - start_sched.cpu_ns) / 1e6;
  out.start_loop_wait_ms = (end_sched.wait_ns - start_sched.wait_ns) / 1e6;

  out.idle_calls = static_cast<int>(idle.size());
  out.idle_p50_us = percentile_us(idle, 0.5);
  out.idle_p99_us = percentile_us(idle, 0.99);
  out.idle_max_us = percentile_us(idle, 1.0);
  out.start_calls = static_cast<int>(start.size());
  out.start_p50_us = percentile_us(start, 0.5);
  out.start_p99_us = percentile_us(start, 0.99);
  out.start_max_us = percentile_us(start, 1.0);
  return out;
}

int run_loop_bench(const loop_config& cfg, int repeat, bool check) {
  round_figures f, d;
  for (int round = 1; round <= repeat; ++round) {
    try {
      const auto r = run_loop_once(cfg, true);
      d.add("idle_p99_us", r.idle_p99_us, 1);
      d.add("start_p50_us", r.start_p50_us, 1);
      d.add("start_p99_us", r.start_p99_us, 1);
      d.add("start_max_us", r.start_max_us, 1);
      d.add("start_calls", r.start_calls, 0);
      d.add("start_window_ms", r.start_window_ms, 1);
      d.add("start_loop_cpu_ms", r.start_loop_cpu_ms, 1);
      d.add("start_loop_wait_ms", r.start_loop_wait_ms, 1);
      d.add("p99_start_vs_idle", r.idle_p99_us > 0 ? r.start_p99_us / r.idle_p99_us : 0, 2);
      std::fprintf(stderr,
                   "loop direct run %d/%d: ping p99 idle %.0f us, while the bench starts %d calc "
                   "itself %.0f us (%d calls, max %.0f us, all registered after %.0f ms): ratio "
                   "%.2f\n",
                   round, repeat, r.idle_p99_us, cfg.replicas, r.start_p99_us, r.start_calls,
                   r.start_max_us, r.start_window_ms,
                   r.idle_p99_us > 0 ? r.start_p99_us / r.idle_p99_us : 0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "loop direct run %d/%d FAILED: %s\n", round, repeat, e.what());
      return 2;
    }
    try {
      const auto r = run_loop_once(cfg, false);
      f.add("idle_p50_us", r.idle_p50_us, 1);
      f.add("idle_p99_us", r.idle_p99_us, 1);
      f.add("idle_max_us", r.idle_max_us, 1);
      f.add("idle_calls", r.idle_calls, 0);
      f.add("start_p50_us", r.start_p50_us, 1);
      f.add("start_p99_us", r.start_p99_us, 1);
      f.add("start_max_us", r.start_max_us, 1);
      f.add("start_calls", r.start_calls, 0);
      f.add("start_window_ms", r.start_window_ms, 1);
      f.add("idle_loop_cpu_ms", r.idle_loop_cpu_ms, 1);
      f.add("idle_loop_wait_ms", r.idle_loop_wait_ms, 1);
      f.add("start_loop_cpu_ms", r.start_loop_cpu_ms, 1);
      f.add("start_loop_wait_ms", r.start_loop_wait_ms, 1);
      f.add("p99_start_vs_idle", r.idle_p99_us > 0 ? r.start_p99_us / r.idle_p99_us : 0, 2);
      std::fprintf(
          stderr,
          "loop run %d/%d: ping p99 idle %.0f us (%d calls), while %d calc start %.0f us "
          "(%d calls, max %.0f us, all ready after %.0f ms; loop thread %.0f ms on CPU, %.0f ms "
          "waiting for one): ratio %.2f\n",
          round, repeat, r.idle_p99_us, r.idle_calls, cfg.replicas, r.start_p99_us, r.start_calls,
          r.start_max_us, r.start_window_ms, r.start_loop_cpu_ms, r.start_loop_wait_ms,
          r.idle_p99_us > 0 ? r.start_p99_us / r.idle_p99_us : 0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "loop run %d/%d FAILED: %s\n", round, repeat, e.what());
      return 2;
    }
  }
  d.print("loop", "direct");
  f.print("loop", "plexus");
  if (!check) return 0;
  const double ratio = f.median("p99_start_vs_idle");
  const bool ok = ratio <= 2.0;
  std::fprintf(stderr, "%s: call p99 while %d replicas start <= 2x idle p99 (%.2fx)\n",
               ok ? "PASS" : "FAIL", cfg.replicas, ratio);
  return ok ? 0 : 1;
}
