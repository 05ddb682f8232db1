// `plexus-bench supervisor`: `plexus run` with N replicas of calc against N calc processes
// spawned directly by the bench (the baseline: what the processes cost without a supervisor).
// The bench measures from outside, as a user would: it polls plexus.ps (plexus.services for the
// baseline) through a connected client every 2 ms, so every figure is a wall-clock time from the
// bench's action to the answer that first shows the result, resolution ~2 ms.

#include "supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "common.hpp"
#include "router_client.hpp"

extern char** environ;

using namespace bench;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_limit = 20s;     // every wait for the system under test
constexpr auto poll_interval = 2ms;  // between two plexus.ps / plexus.services calls
constexpr auto call_deadline = 2s;   // of one such call
constexpr auto stop_grace = 5s;      // SIGTERM -> SIGKILL for processes the bench stops itself

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

double ms_between(mono_clock::time_point a, mono_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string make_run_dir(const std::string& workdir, const char* prefix) {
  static int runs = 0;
  std::string dir = workdir + "/" + prefix + "-" + std::to_string(++runs);
  if (::mkdir(dir.c_str(), 0700) != 0) throw_errno("mkdir " + dir);
  return dir;
}

// A TOML basic string.
std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

double kib_to_mib(long kib) {
  return kib < 0 ? 0 : static_cast<double>(kib) / 1024.0;
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A live (not zombie) process whose command name is `comm`.
bool running_as(pid_t pid, std::string_view comm) {
  const std::string proc = "/proc/" + std::to_string(pid);
  if (read_first_line(proc + "/comm") != comm) return false;
  const std::string stat = read_first_line(proc + "/stat");
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// The keeper `plexus run` forks before anything else (named plexus-keeper); 0 if not found.
pid_t find_keeper(pid_t supervisor) {
  std::ifstream in("/proc/" + std::to_string(supervisor) + "/task/" + std::to_string(supervisor) +
                   "/children");
  long pid = 0;
  while (in >> pid) {
    if (read_first_line("/proc/" + std::to_string(pid) + "/comm") == "plexus-keeper")
      return static_cast<pid_t>(pid);
  }
  return 0;
}

// Children the bench starts with spawn_quiet (a child_guard spawns roles only). stop_all():
// SIGTERM to every one, one shared grace period, then SIGKILL and reap whatever is left.
class pid_guard {
 public:
  pid_guard() = default;
  pid_guard(const pid_guard&) = delete;
  pid_guard& operator=(const pid_guard&) = delete;
  ~pid_guard() { stop_all(); }

  void reserve(std::size_t n) { pids_.reserve(pids_.size() + n); }
  void add(pid_t pid) noexcept { pids_.push_back(pid); }  // reserve() first: never throws
  void forget(pid_t pid) noexcept { std::erase(pids_, pid); }
  std::size_t size() const noexcept { return pids_.size(); }

  // Returns how many needed SIGKILL.
  int stop_all(std::chrono::milliseconds grace = stop_grace) noexcept {
    for (const pid_t pid : pids_)
      ::kill(pid, SIGTERM);
    const auto deadline = mono_now() + grace;
    int killed = 0;
    for (const pid_t pid : pids_) {
      if (wait_child(pid, std::chrono::milliseconds(remaining_ms(deadline))) != -1) continue;
      if (child_exited(pid)) continue;  // not ours any more
      ::kill(pid, SIGKILL);
      ++killed;
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    pids_.clear();
    return killed;
  }

 private:
  std::vector<pid_t> pids_;
};

void check_alive(pid_t pid, const char* what) {
  if (child_exited(pid)) {
    const int status = wait_child(pid, 0ms);
    throw std::runtime_error(std::string(what) + " (pid " + std::to_string(pid) + ") " +
                             describe_status(status));
  }
}

// `path args...` with stdout to /dev/null (stderr stays): the programs under test.
pid_t spawn_quiet(const std::string& path, std::vector<std::string> args) {
  return spawn_process(path, {.args = std::move(args), .out = child_stdout::to_null});
}

// Calls `count()` every poll_interval until it returns `want`. Throws std::runtime_error when
// `watched` (named `what`) has exited, or when `deadline` has passed ("only N of WANT `things`
// after ..."). Returns the time the wanted count was seen.
template <class Count>
mono_clock::time_point poll_until(Count count, long want, pid_t watched, const char* what,
                                  mono_clock::time_point deadline, const char* things) {
  for (;;) {
    const long have = count();
    if (have == want) return mono_now();
    check_alive(watched, what);
    if (mono_now() > deadline)
      throw std::runtime_error("only " + std::to_string(have) + " of " + std::to_string(want) +
                               " " + things + " after " + std::to_string(wait_limit.count()) +
                               " s");
    std::this_thread::sleep_for(poll_interval);
  }
}

struct replica {
  std::string state;
  long pid = 0;
};

// plexus.ps -> the calc replicas by index.
std::vector<replica> calc_replicas(const plexus::value& ps, int replicas) {
  std::vector<replica> out(static_cast<std::size_t>(replicas));
  if (!ps.is_array()) throw std::runtime_error("plexus.ps: not an array: " + ps.dump());
  for (const auto& e : ps) {
    if (!e.is_object() || e.value("name", "") != "calc") continue;
    const auto r = e.value("replica", -1L);
    if (r < 0 || r >= replicas) throw std::runtime_error("plexus.ps: bad replica: " + e.dump());
    out[static_cast<std::size_t>(r)] = {e.value("state", ""), e.value("pid", 0L)};
  }
  return out;
}

int count_ready(const std::vector<replica>& rs) {
  return static_cast<int>(std::count_if(
      rs.begin(), rs.end(), [](const replica& r) { return r.state == "ready" && r.pid > 0; }));
}

// plexus.services -> workers of calc.
long calc_workers(const plexus::value& services) {
  if (!services.is_array())
    throw std::runtime_error("plexus.services: not an array: " + services.dump());
  for (const auto& s : services)
    if (s.is_object() && s.value("name", "") == "calc") return s.value("workers", 0L);
  return 0;
}

// Milliseconds since midnight (UTC) of a log line "2026-12-02T12:00:00.123Z ..."; -1 if not one.
double log_line_ms(const std::string& line) {
  int h = 0, m = 0, sec = 0, milli = 0;
  if (line.size() < 24 || line[10] != 'T' ||
      std::sscanf(line.c_str() + 11, "%2d:%2d:%2d.%3d", &h, &m, &sec, &milli) != 4)
    return -1;
  return ((h * 60.0 + m) * 60.0 + sec) * 1000.0 + milli;
}

// From the supervisor's log files (one per replica, its own records first): the time from the
// first replica's "started" record to the last one's (the supervisor starts them as start slots
// free up: [supervisor] start_concurrency), and from the first "started" to the last "ready".
// Millisecond resolution; -1 when a file lacks the records.
std::pair<double, double> spawn_and_ready_window(const std::string& log_dir, int replicas) {
  double first_start = -1, last_start = -1, last_ready = -1;
  for (int r = 0; r < replicas; ++r) {
    std::ifstream in(log_dir + "/calc." + std::to_string(r) + ".log");
    std::string line;
    double started = -1, ready = -1;
    while ((started < 0 || ready < 0) && std::getline(in, line)) {
      if (started < 0 && line.find(" started (pid ") != std::string::npos)
        started = log_line_ms(line);
      else if (ready < 0 && line.find(" ready (pid ") != std::string::npos)
        ready = log_line_ms(line);
    }
    if (started < 0 || ready < 0) return {-1, -1};
    first_start = first_start < 0 ? started : std::min(first_start, started);
    last_start = std::max(last_start, started);
    last_ready = std::max(last_ready, ready);
  }
  return {last_start - first_start, last_ready - first_start};
}

std::string write_app_toml(const std::string& dir, const supervisor_config& cfg,
                           const std::string& address) {
  const std::string path = dir + "/app.toml";
  std::ofstream out(path);
  out << "[router]\nlisten = " << toml_string(address) << "\n\n"
      << "[gateway]\nlisten = \"127.0.0.1:0\"\n\n"
      << "[log]\ndir = " << toml_string(dir + "/logs") << "\necho = false\n\n"
      << "[supervisor]\nbackoff_initial = 0\nbackoff_max = 0\nintensity = 1000\nperiod = 10\n\n"
      << "[[process]]\nname = \"calc\"\ncommand = " << toml_string(cfg.bin_dir + "/calc")
      << "\nreplicas = " << cfg.replicas << "\n";
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

}  // namespace

supervisor_result run_supervisor_tree(const supervisor_config& cfg) {
  const std::string dir = make_run_dir(cfg.workdir, "plexus");
  const std::string address = "ipc://" + dir + "/router.sock";
  const std::string config = write_app_toml(dir, cfg, address);
  supervisor_result out;

  pid_guard procs;  // SIGTERM/SIGKILL to plexus run if anything throws; its keeper sweeps calc
  procs.reserve(1);
  router_client client;

  // 1. Startup: spawn -> every replica ready.
  const auto t0 = mono_now();
  const pid_t run = spawn_quiet(cfg.bin_dir + "/plexus", {"run", config});
  procs.add(run);
  const auto deadline = t0 + wait_limit;
  client.connect(address, "plexus-bench", run, deadline);
  std::vector<replica> rs;
  const auto all_ready = poll_until(
      [&] {
        rs = calc_replicas(client.call("ps", call_deadline), cfg.replicas);
        return count_ready(rs);
      },
      cfg.replicas, run, "plexus run", deadline, "calc replicas ready");
  out.ready_all_ms = ms_between(t0, all_ready);
  // The log files are written by the supervisor's log thread: the last records may land a
  // little after plexus.ps has shown them.
  for (const auto until = mono_now() + std::chrono::seconds(2);;) {
    std::tie(out.spawn_window_ms, out.ready_window_ms) =
        spawn_and_ready_window(dir + "/logs", cfg.replicas);
    if (out.spawn_window_ms >= 0 || mono_now() > until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  long rss_kib = read_status_kib(run, "VmRSS");

  // 2. Crash-to-ready: SIGKILL one replica, wait until ps shows it ready with a new pid.
  std::vector<mono_clock::duration> crash;
  for (int k = 0; k < cfg.crashes; ++k) {
    const auto r = static_cast<std::size_t>((k * 37 + 11) % cfg.replicas);
    const long old = rs[r].pid;
    if (rs[r].state != "ready" || old <= 0)
      throw std::runtime_error("calc[" + std::to_string(r) + "] not ready before crash " +
                               std::to_string(k + 1));
    const auto killed = mono_now();
    if (::kill(static_cast<pid_t>(old), SIGKILL) != 0) throw_errno("kill calc");
    const auto until = killed + wait_limit;
    for (;;) {
      std::this_thread::sleep_for(poll_interval);
      rs = calc_replicas(client.call("ps", call_deadline), cfg.replicas);
      if (rs[r].state == "ready" && rs[r].pid > 0 && rs[r].pid != old) break;
      check_alive(run, "plexus run");
      if (mono_now() > until)
        throw std::runtime_error("calc[" + std::to_string(r) + "] not ready again " +
                                 std::to_string(wait_limit.count()) + " s after SIGKILL (state " +
                                 rs[r].state + ")");
    }
    crash.push_back(mono_now() - killed);
  }
  out.crash_p50_ms = percentile_us(crash, 0.5) / 1000.0;
  out.crash_max_ms = percentile_us(crash, 1.0) / 1000.0;

  // 3. RSS at the end; context: children, peak, keeper.
  const auto ps = client.call("ps", call_deadline);
  out.children = static_cast<int>(ps.size());
  rs = calc_replicas(ps, cfg.replicas);
  rss_kib = std::max(rss_kib, read_status_kib(run, "VmRSS"));
  out.rss_mib = kib_to_mib(rss_kib);
  out.rss_peak_mib = kib_to_mib(read_status_kib(run, "VmHWM"));
  if (const pid_t keeper = find_keeper(run); keeper > 0)
    out.keeper_rss_mib = kib_to_mib(read_status_kib(keeper, "VmRSS"));
  client.c->close();

  // 4. Stop: SIGTERM, the tree stops its children; then no calc may be left.
  const auto stop_start = mono_now();
  ::kill(run, SIGTERM);
  int status = wait_child(run, wait_limit);
  const bool timed_out = status == -1;
  if (timed_out) {
    ::kill(run, SIGKILL);
    status = wait_child(run, wait_limit);
  }
  out.stop_ms = ms_between(stop_start, mono_now());
  if (status != -1) procs.forget(run);
  std::vector<pid_t> left;
  for (const auto until = mono_now() + 5s;;) {
    left.clear();
    for (const auto& c : rs)
      if (c.pid > 0 && running_as(static_cast<pid_t>(c.pid), "calc"))
        left.push_back(static_cast<pid_t>(c.pid));
    if (left.empty() || mono_now() > until) break;
    std::this_thread::sleep_for(10ms);
  }
  for (const pid_t pid : left)
    ::kill(pid, SIGKILL);
  if (timed_out)
    throw std::runtime_error("plexus run did not stop within " +
                             std::to_string(wait_limit.count()) + " s of SIGTERM");
  if (!left.empty())
    throw std::runtime_error(std::to_string(left.size()) +
                             " calc processes were left running after plexus run stopped");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("plexus run " + describe_status(status) + " after SIGTERM");
  return out;
}

direct_result run_supervisor_direct(const supervisor_config& cfg) {
  const std::string dir = make_run_dir(cfg.workdir, "direct");
  const std::string sock = dir + "/router.sock";
  const std::string address = "ipc://" + sock;
  direct_result out;

  pid_guard router_proc;  // destroyed last: the calcs stop first
  router_proc.reserve(1);
  const pid_t router = spawn_quiet(cfg.bin_dir + "/plexus", {"router", "--listen", address});
  router_proc.add(router);
  wait_for_unix_socket(sock, wait_limit, router);

  router_client client;
  client.connect(address, "plexus-bench", router, mono_now() + wait_limit);

  // Everything for posix_spawn is built before the clock starts.
  std::string calc = cfg.bin_dir + "/calc";
  std::vector<std::string> storage{calc, "--router", address};
  std::vector<char*> argv;
  for (auto& s : storage)
    argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  if (int e = ::posix_spawn_file_actions_init(&actions); e != 0)
    throw std::system_error(e, std::generic_category(), "posix_spawn_file_actions_init");
  struct actions_guard {
    posix_spawn_file_actions_t* a;
    ~actions_guard() { ::posix_spawn_file_actions_destroy(a); }
  } actions_cleanup{&actions};
  if (int e = ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
      e != 0)
    throw std::system_error(e, std::generic_category(), "posix_spawn_file_actions_addopen");
  if (int e = ::posix_spawn_file_actions_addclosefrom_np(&actions, 3); e != 0)
    throw std::system_error(e, std::generic_category(), "posix_spawn_file_actions_addclosefrom_np");

  pid_guard calcs;
  calcs.reserve(static_cast<std::size_t>(cfg.replicas));
  const auto t0 = mono_now();
  for (int i = 0; i < cfg.replicas; ++i) {
    pid_t pid = 0;
    if (int e = ::posix_spawn(&pid, calc.c_str(), &actions, nullptr, argv.data(), environ); e != 0)
      throw std::system_error(e, std::generic_category(), "posix_spawn " + calc);
    calcs.add(pid);
  }
  out.spawn_all_ms = ms_between(t0, mono_now());
  const auto registered =
      poll_until([&] { return calc_workers(client.call("services", call_deadline)); }, cfg.replicas,
                 router, "plexus router", t0 + wait_limit, "calc workers registered");
  out.ready_all_ms = ms_between(t0, registered);
  out.rss_mib = kib_to_mib(read_status_kib(router, "VmRSS"));
  client.c->close();

  if (const int killed = calcs.stop_all(); killed > 0)
    throw std::runtime_error(std::to_string(killed) + " calc processes needed SIGKILL");
  if (const int killed = router_proc.stop_all(); killed > 0)
    throw std::runtime_error("plexus router needed SIGKILL");
  return out;
}

int run_supervisor_bench(const supervisor_config& cfg, int repeat, bool check) {
  round_figures direct, tree;
  bool direct_failed = false, tree_failed = false;
  // One round of one system; a failure is reported and ends that system's rounds.
  auto run_round = [&](const char* system, int round, bool& failed, const auto& run) {
    if (failed) return;
    try {
      run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "supervisor %s run %d/%d FAILED: %s\n", system, round, repeat, e.what());
      failed = true;
    }
  };
  for (int round = 1; round <= repeat; ++round) {
    run_round("direct", round, direct_failed, [&] {
      const auto d = run_supervisor_direct(cfg);
      direct.add("ready_all_ms", d.ready_all_ms, 1);
      direct.add("spawn_all_ms", d.spawn_all_ms, 1);
      direct.add("rss_mib", d.rss_mib, 1);
      std::fprintf(stderr,
                   "supervisor direct run %d/%d: %d calc spawned in %.1f ms, registered in %.1f "
                   "ms, router RSS %.1f MiB\n",
                   round, repeat, cfg.replicas, d.spawn_all_ms, d.ready_all_ms, d.rss_mib);
    });
    run_round("plexus", round, tree_failed, [&] {
      const auto s = run_supervisor_tree(cfg);
      tree.add("ready_all_ms", s.ready_all_ms, 1);
      tree.add("spawn_window_ms", s.spawn_window_ms, 0);
      tree.add("ready_window_ms", s.ready_window_ms, 0);
      tree.add("crash_to_ready_p50_ms", s.crash_p50_ms, 1);
      tree.add("crash_to_ready_max_ms", s.crash_max_ms, 1);
      tree.add("rss_mib", s.rss_mib, 1);
      tree.add("rss_peak_mib", s.rss_peak_mib, 1);
      tree.add("keeper_rss_mib", s.keeper_rss_mib, 1);
      tree.add("stop_ms", s.stop_ms, 1);
      tree.add("children", s.children, 0);
      std::fprintf(
          stderr,
          "supervisor plexus run %d/%d: %d calc ready in %.1f ms (logs: spawned in %.0f ms, "
          "all ready %.0f ms after the first spawn), crash-to-ready p50 %.1f ms max "
          "%.1f ms, RSS %.1f MiB (peak %.1f, keeper %.1f), stop %.1f ms\n",
          round, repeat, s.children, s.ready_all_ms, s.spawn_window_ms, s.ready_window_ms,
          s.crash_p50_ms, s.crash_max_ms, s.rss_mib, s.rss_peak_mib, s.keeper_rss_mib, s.stop_ms);
    });
  }

  const char* bench = "supervisor";
  if (!direct_failed) direct.print(bench, "direct");
  if (!tree_failed) {
    tree.print(bench, "plexus");
    const double direct_ready = direct.median("ready_all_ms");
    if (!direct_failed && direct_ready > 0)
      print_json_line(bench, "plexus", "ready_all_vs_direct",
                      tree.median("ready_all_ms") / direct_ready, 2);
  }

  bool missed = false;
  auto report = [&](const char* target, const char* metric, double limit, const char* unit) {
    if (!check) return;
    if (tree_failed) {
      std::fprintf(stderr, "FAIL: %s (not measured)\n", target);
      missed = true;
      return;
    }
    const double value = tree.median(metric);
    const bool ok = value < limit;
    std::fprintf(stderr, "%s: %s (%.1f %s, target < %.1f %s)\n", ok ? "PASS" : "FAIL", target,
                 value, unit, limit, unit);
    missed = missed || !ok;
  };
  report("plexus run: all replicas ready < 1.5 s", "ready_all_ms", 1500, "ms");
  report("plexus run: crash-to-ready p50 < 100 ms", "crash_to_ready_p50_ms", 100, "ms");
  report("plexus run: RSS < 20 MiB", "rss_mib", 20, "MiB");
  if (direct_failed || tree_failed) return 2;
  return missed ? 1 : 0;
}
