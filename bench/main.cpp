// plexus-bench: benchmarks that print their figures as JSON lines on stdout next to baselines
// measured in the same run. Exit codes: 0 all checked targets hold, 1 a target missed,
// 2 a system failed to run (its figures are missing) or bad usage.
//
//   plexus-bench echo --systems floor,zmq --seconds 2 --no-check
//   plexus-bench echo --repeat 3          # median of three interleaved runs, targets checked
//   plexus-bench echo --transport zmq     # seed-style ZeroMQ peers: raw zmq broker vs plexus
//   plexus-bench supervisor --repeat 3    # plexus run with 100 calc vs spawning them directly
//   plexus-bench loop --repeat 3          # ping p99 through plexus run: idle vs 100 calc starting
//   plexus-bench gateway --repeat 3       # HTTP through plexus run's gateway vs aiohttp, nginx
#include <signal.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common.hpp"
#include "echo.hpp"
#include "gateway.hpp"
#include "loop.hpp"
#include "supervisor.hpp"

namespace {

// --transport: "native" (plexus's own client and service) or "zmq" (seed-style DEALER client
// and service, the same for every broker; only the broker differs).
struct echo_system {
  std::string_view transport;
  std::string_view name;
  echo_result (*run)(const echo_config&);
};

constexpr echo_system echo_systems[] = {
    {"native", "floor", run_floor_echo}, {"native", "floor-epoll", run_floor_epoll_echo},
    {"native", "zmq", run_zmq_echo},     {"native", "plexus", run_plexus_echo},
    {"zmq", "zmq", run_zmq_cbor_echo},   {"zmq", "plexus-zmq", run_plexus_zmq_echo},
};

// The `bench` field of the JSON lines: "echo" for the native transport, "echo-zmq" for zmq,
// whose "zmq" system (CBOR payloads) is not the native run's "zmq" (raw 32-byte payloads).
std::string bench_name(std::string_view transport) {
  return transport == "native" ? "echo" : "echo-" + std::string(transport);
}

std::string known_systems(std::string_view transport) {
  std::string out;
  for (const auto& sys : echo_systems) {
    if (sys.transport != transport) continue;
    if (!out.empty()) out += ',';
    out += sys.name;
  }
  return out;
}

// A directory from mkdtemp, removed with its contents on destruction.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = "/tmp/plexus-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    path_ = tmpl;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> split_csv(const std::string& csv) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= csv.size()) {
    const std::size_t comma = std::min(csv.find(',', start), csv.size());
    if (comma > start) out.push_back(csv.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// A target of `plexus-bench echo`: `system`'s median `metric` over `baseline`'s, checked when both
// ran; the ratio is printed as the JSON metric `name`.
struct echo_target {
  std::string_view transport, system, baseline, metric, name;
  const char* text;  // PASS/FAIL line
  double limit;
  bool at_most;  // ratio <= limit; otherwise ratio >= limit
  const char* limit_text;
};

// Baseline "floors": the faster of the floors that ran (the lower median for a latency, the
// higher for calls/s), decided per metric in the same run.
constexpr std::string_view faster_floor = "floors";
constexpr std::string_view floor_systems[] = {"floor", "floor-epoll"};

constexpr echo_target echo_targets[] = {
    {"zmq", "plexus-zmq", "zmq", "rtt_p50_us", "p50_vs_zmq", "plexus-zmq p50 <= 1.1 x zmq p50", 1.1,
     true, "<= 1.1"},
    {"zmq", "plexus-zmq", "zmq", "calls_per_s", "calls_per_s_vs_zmq",
     "plexus-zmq calls/s >= 1.0 x zmq calls/s", 1.0, false, ">= 1.0"},
    {"native", "plexus", faster_floor, "rtt_p50_us", "p50_vs_floor",
     "plexus p50 <= 1.5 x the faster floor's p50", 1.5, true, "<= 1.5"},
    {"native", "plexus", faster_floor, "rtt_p99_us", "p99_vs_floor",
     "plexus p99 <= 2 x the faster floor's p99", 2.0, true, "<= 2.0"},
    {"native", "plexus", faster_floor, "calls_per_s", "calls_per_s_vs_floor",
     "plexus calls/s >= 0.5 x the faster floor's calls/s", 0.5, false, ">= 0.5"},
    {"native", "plexus", "zmq", "calls_per_s", "calls_per_s_vs_zmq",
     "plexus calls/s >= 2 x zmq calls/s", 2.0, false, ">= 2.0"},
};

struct system_rounds {
  bench::round_figures figures;
  bool failed = false;
};

int run_echo(echo_config cfg, std::string_view transport, const std::vector<std::string>& systems,
             int repeat, bool check) {
  const std::string label = bench_name(transport);
  int width = 6;  // stderr progress lines: names padded to the longest
  for (const auto& name : systems)
    width = std::max(width, static_cast<int>(name.size()));
  const temp_dir workdir;
  cfg.workdir = workdir.path();
  cfg.self_exe = "/proc/self/exe";

  std::map<std::string, system_rounds, std::less<>> rounds;
  for (int round = 1; round <= repeat; ++round) {
    for (const auto& name : systems) {
      auto& s = rounds[name];
      if (s.failed) continue;
      for (const auto& sys : echo_systems) {
        if (sys.transport != transport || sys.name != name) continue;
        try {
          const echo_result r = sys.run(cfg);
          s.figures.add("rtt_p50_us", r.rtt_p50_us, 1);
          s.figures.add("rtt_p99_us", r.rtt_p99_us, 1);
          s.figures.add("calls_per_s", r.calls_per_s, 0);
          s.figures.add("rss_kib", static_cast<double>(r.broker_rss_kib), 0, true);
          std::fprintf(stderr,
                       "%s %-*s run %d/%d: p50 %.1f us, p99 %.1f us, %.0f calls/s, broker "
                       "peak RSS %ld KiB\n",
                       label.c_str(), width, name.c_str(), round, repeat, r.rtt_p50_us,
                       r.rtt_p99_us, r.calls_per_s, r.broker_rss_kib);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "%s %-*s run %d/%d FAILED: %s\n", label.c_str(), width, name.c_str(),
                       round, repeat, e.what());
          s.failed = true;
        }
      }
    }
  }

  bool error = false;
  for (const auto& name : systems) {
    const auto& s = rounds[name];
    error = error || s.failed;
    if (!s.failed) s.figures.print(label, name);
  }

  auto ran = [&](std::string_view name) {
    return std::find(systems.begin(), systems.end(), name) != systems.end();
  };
  // The figures of a system that ran without failing; nullptr otherwise.
  auto measured = [&](std::string_view name) -> const bench::round_figures* {
    const auto it = rounds.find(name);
    return it == rounds.end() || it->second.failed ? nullptr : &it->second.figures;
  };
  // The median of `metric` for a target's baseline, and the system it came from: for
  // `faster_floor` the better of the floors measured. {0, ""} when none was measured.
  auto baseline = [&](const echo_target& t) -> std::pair<double, std::string_view> {
    if (t.baseline != faster_floor) {
      const auto* base = measured(t.baseline);
      return base ? std::pair{base->median(t.metric), t.baseline} : std::pair{0.0, ""};
    }
    std::pair<double, std::string_view> best{0.0, ""};
    for (const auto name : floor_systems) {
      const auto* f = measured(name);
      if (f == nullptr || f->median(t.metric) <= 0) continue;
      const double v = f->median(t.metric);
      const bool better = t.at_most ? v < best.first : v > best.first;  // lower latency, more calls
      if (best.second.empty() || better) best = {v, name};
    }
    return best;
  };
  auto baseline_ran = [&](const echo_target& t) {
    if (t.baseline != faster_floor) return ran(t.baseline);
    return std::any_of(std::begin(floor_systems), std::end(floor_systems), ran);
  };
  bool missed = false;
  for (const auto& t : echo_targets) {
    if (t.transport != transport || !ran(t.system) || !baseline_ran(t)) continue;
    const auto* sys = measured(t.system);
    const auto [base, base_name] = baseline(t);
    if (sys != nullptr && base > 0) {
      const double ratio = sys->median(t.metric) / base;
      bench::print_json_line(label, t.system, t.name, ratio, 3);
      if (!check) continue;
      const bool ok = t.at_most ? ratio <= t.limit : ratio >= t.limit;
      std::fprintf(stderr, "%s: %s (%.3f against %.*s, target %s)\n", ok ? "PASS" : "FAIL", t.text,
                   ratio, static_cast<int>(base_name.size()), base_name.data(), t.limit_text);
      missed = missed || !ok;
    } else if (check) {
      std::fprintf(stderr, "FAIL: %s (not measured)\n", t.text);
      missed = true;
    }
  }
  if (error) return 2;
  return missed ? 1 : 0;
}

// An option of a subcommand whose value must lie within [lo, hi]; its default is shown in --help.
template <class T>
void add_ranged(CLI::App* sub, const std::string& name, T& value, const std::string& description,
                T lo, T hi) {
  sub->add_option(name, value, description)->check(CLI::Range(lo, hi))->capture_default_str();
}

}  // namespace

int run_role(const std::string& role, const std::vector<std::string>& args) {
  using role_fn = int (*)(const std::vector<std::string>&);
  struct role_entry {
    role_fn run;
    const char* arg;  // the one argument, for the usage line
  };
  static const std::map<std::string, role_entry, std::less<>> roles = {
      {"floor_broker", {floor_broker_role, "WORKDIR"}},
      {"floor_epoll_broker", {floor_epoll_broker_role, "WORKDIR"}},
      {"floor_service", {floor_service_role, "WORKDIR"}},
      {"zmq_broker", {zmq_broker_role, "WORKDIR"}},
      {"zmq_service", {zmq_service_role, "WORKDIR"}},
      {"plexus_router", {plexus_router_role, "WORKDIR"}},
      {"plexus_service", {plexus_service_role, "WORKDIR"}},
      {"zmq_cbor_service", {zmq_cbor_service_role, "BACKEND_ENDPOINT"}},
      {"plexus_zmq_router", {plexus_zmq_router_role, "WORKDIR"}},
      {"gateway_module", {gateway_module_role, "SERVICE_NAME"}},
      {"gateway_beast_server", {gateway_beast_server_role, "SOCKET_PATH"}},
  };
  const auto it = roles.find(role);
  if (it == roles.end()) {
    std::fprintf(stderr, "plexus-bench: unknown role '%s'\n", role.c_str());
    return 2;
  }
  if (args.size() != 1) {
    std::fprintf(stderr, "%s: usage: _role %s %s\n", role.c_str(), role.c_str(), it->second.arg);
    return 2;
  }
  try {
    return it->second.run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", role.c_str(), e.what());
    return 1;
  }
}

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  // Hidden: `plexus-bench _role NAME ARGS...`, how the runners start brokers and services.
  if (argc >= 2 && std::string_view(argv[1]) == "_role") {
    if (argc < 3) {
      std::fprintf(stderr, "usage: plexus-bench _role NAME ARGS...\n");
      return 2;
    }
    return run_role(argv[2], std::vector<std::string>(argv + 3, argv + argc));
  }

  CLI::App app{
      "plexus-bench: plexus benchmarks with baselines measured in the same run.\n"
      "Figures go to stdout as JSON lines; progress and PASS/FAIL go to stderr."};
  app.footer("Exit codes: 0 all checked targets hold, 1 a target missed, 2 a run failed.");
  app.require_subcommand(1);

  echo_config cfg;
  std::string systems_csv;
  std::string transport = "native";
  int repeat = 1;
  bool no_check = false;
  auto* echo = app.add_subcommand(
      "echo",
      "32-byte echo through a broker, client/broker/service in three processes: sequential "
      "round-trip p50/p99, pipelined calls/s, broker peak RSS. --transport zmq: seed-style "
      "ZeroMQ DEALER client and service (CBOR requests) through a raw ZeroMQ broker and "
      "through the plexus router's ZeroMQ frontend/backend");
  add_ranged(echo, "--calls", cfg.calls, "Sequential calls measured", 1, 10'000'000);
  add_ranged(echo, "--warmup", cfg.warmup, "Sequential calls before measuring", 0, 10'000'000);
  add_ranged(echo, "--seconds", cfg.seconds, "Length of the pipelined window", 0.001, 3600.0);
  add_ranged(echo, "--inflight", cfg.inflight, "Requests in flight in the pipelined window", 1,
             4096);
  add_ranged(echo, "--payload", cfg.payload, "Echo body size in bytes", std::size_t{8},
             std::size_t{60 * 1024});
  echo->add_option("--transport", transport,
                   "native: plexus client/service vs floor and zmq baselines; zmq: seed-style "
                   "ZeroMQ peers through a raw zmq broker vs the plexus router")
      ->check(CLI::IsMember({"native", "zmq"}))
      ->capture_default_str();
  echo->add_option(
      "--systems", systems_csv,
      "Comma-separated subset of floor,floor-epoll,zmq,plexus (--transport native, the "
      "default) "
      "or zmq,plexus-zmq (--transport zmq); default: all of them");
  add_ranged(echo, "--repeat", repeat, "Interleaved runs per system; the median is reported", 1,
             100);
  echo->add_flag("--no-check", no_check, "Report figures without checking the plexus targets");

  supervisor_config sup;
  int sup_repeat = 1;
  bool sup_no_check = false;
  auto* supervisor = app.add_subcommand(
      "supervisor",
      "plexus run with N replicas of calc: startup until every replica is ready in plexus.ps, "
      "crash-to-ready after SIGKILL (p50, max), RSS of the plexus run process; baseline: the "
      "same N calc spawned directly against a plain plexus router");
  add_ranged(supervisor, "--replicas", sup.replicas, "calc replicas", 1, 1000);
  add_ranged(supervisor, "--crashes", sup.crashes, "Replicas SIGKILLed one after another", 1, 1000);
  add_ranged(supervisor, "--repeat", sup_repeat,
             "Interleaved rounds (direct, plexus); medians reported", 1, 100);
  supervisor->add_flag("--no-check", sup_no_check, "Report figures without checking the targets");

  loop_config lc;
  int loop_repeat = 1;
  bool loop_no_check = false;
  std::string loop_bin_dir;
  auto* loop = app.add_subcommand(
      "loop",
      "plexus.ping p99 through plexus run while it starts N replicas of calc, against the same "
      "calls while it is idle (the baseline, measured first in the same run); target: at most 2x");
  add_ranged(loop, "--replicas", lc.replicas, "calc replicas started at once", 1, 1000);
  add_ranged(loop, "--idle-seconds", lc.idle_s, "Length of the idle window", 0.1, 60.0);
  add_ranged(loop, "--interval-us", lc.interval_us,
             "A ping is due every interval; its latency counts from then", 10, 100000);
  add_ranged(loop, "--start-concurrency", lc.start_concurrency,
             "[supervisor] start_concurrency of the app (default: not set, plexus's default)", 1,
             1000);
  add_ranged(loop, "--repeat", loop_repeat, "Runs; medians reported", 1, 100);
  loop->add_option("--bin-dir", loop_bin_dir,
                   "Directory of the plexus and calc under test (default: plexus-bench's)");
  loop->add_flag("--no-check", loop_no_check, "Report figures without checking the target");

  gateway_config gw;
  int gw_repeat = 1;
  bool gw_no_check = false;
  std::string gw_systems;
  auto* gateway = app.add_subcommand(
      "gateway",
      "HTTP req/s and latency with wrk (1 thread) against a route of a C++ module served by "
      "plexus run's gateway, beside the gateway's /api/healthz, the seed-000 aiohttp parent/child "
      "design, nginx -> that aiohttp child, and nginx -> a minimal Beast server");
  add_ranged(gateway, "--seconds", gw.seconds, "wrk's duration per system and round", 1.0, 3600.0);
  add_ranged(gateway, "--connections", gw.connections, "wrk's connections", 1, 10000);
  add_ranged(gateway, "--repeat", gw_repeat, "Interleaved rounds; medians reported", 1, 100);
  gateway->add_option("--systems", gw_systems,
                      "Comma-separated subset of builtin,plexus,aiohttp,nginx-aiohttp,nginx-beast "
                      "(default: all)");
  gateway->add_flag("--no-check", gw_no_check, "Report figures without checking the targets");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help exits 0
  }

  if (loop->parsed()) {
    try {
      const temp_dir workdir;
      lc.workdir = workdir.path();
      if (!loop_bin_dir.empty() && loop_bin_dir.front() != '/')
        loop_bin_dir = std::filesystem::absolute(loop_bin_dir).string();
      lc.bin_dir = loop_bin_dir.empty()
                       ? std::filesystem::read_symlink("/proc/self/exe").parent_path().string()
                       : loop_bin_dir;
      return run_loop_bench(lc, loop_repeat, !loop_no_check);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "plexus-bench: %s\n", e.what());
      return 2;
    }
  }

  if (gateway->parsed()) {
    try {
      const temp_dir workdir;
      gw.workdir = workdir.path();
      gw.self_exe = std::filesystem::read_symlink("/proc/self/exe").string();
      gw.bin_dir = std::filesystem::path(gw.self_exe).parent_path().string();
      return run_gateway_bench(gw, split_csv(gw_systems), gw_repeat, !gw_no_check);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "plexus-bench: %s\n", e.what());
      return 2;
    }
  }

  if (supervisor->parsed()) {
    try {
      const temp_dir workdir;
      sup.workdir = workdir.path();
      sup.bin_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
      return run_supervisor_bench(sup, sup_repeat, !sup_no_check);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "plexus-bench: %s\n", e.what());
      return 2;
    }
  }

  if (systems_csv.empty()) systems_csv = known_systems(transport);
  const auto systems = split_csv(systems_csv);
  if (systems.empty()) {
    std::fprintf(stderr, "plexus-bench: --systems is empty\n");
    return 2;
  }
  for (std::size_t i = 0; i < systems.size(); ++i) {
    bool known = false;
    for (const auto& sys : echo_systems)
      known = known || (sys.transport == transport && sys.name == systems[i]);
    if (!known) {
      std::fprintf(stderr, "plexus-bench: unknown system '%s' for --transport %s (known: %s)\n",
                   systems[i].c_str(), transport.c_str(), known_systems(transport).c_str());
      return 2;
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (systems[j] == systems[i]) {
        std::fprintf(stderr, "plexus-bench: system '%s' listed twice\n", systems[i].c_str());
        return 2;
      }
    }
  }
  try {
    return run_echo(cfg, transport, systems, repeat, !no_check);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plexus-bench: %s\n", e.what());
    return 2;
  }
}
