// plexus-bench: benchmarks that print their figures as JSON lines on stdout next to baselines
// measured in the same run. Exit codes: 0 all checked targets hold, 1 a target missed,
// 2 a system failed to run (its figures are missing) or bad usage.
//
//   plexus-bench echo --systems floor,zmq --seconds 2 --no-check
//   plexus-bench echo --repeat 3          # median of three interleaved runs, targets checked
//   plexus-bench echo --transport zmq     # seed-style ZeroMQ peers: raw zmq broker vs plexus
//   plexus-bench supervisor --repeat 3    # plexus run with 100 calc vs spawning them directly
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
    {"native", "floor", run_floor_echo},        {"native", "zmq", run_zmq_echo},
    {"native", "plexus", run_plexus_echo},      {"zmq", "zmq", run_zmq_cbor_echo},
    {"zmq", "plexus-zmq", run_plexus_zmq_echo},
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

struct echo_samples {
  std::vector<double> p50, p99, calls_per_s, rss_kib;
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

  std::map<std::string, echo_samples, std::less<>> samples;
  for (int round = 1; round <= repeat; ++round) {
    for (const auto& name : systems) {
      auto& s = samples[name];
      if (s.failed) continue;
      for (const auto& sys : echo_systems) {
        if (sys.transport != transport || sys.name != name) continue;
        try {
          const echo_result r = sys.run(cfg);
          s.p50.push_back(r.rtt_p50_us);
          s.p99.push_back(r.rtt_p99_us);
          s.calls_per_s.push_back(r.calls_per_s);
          s.rss_kib.push_back(static_cast<double>(r.broker_rss_kib));
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
  std::map<std::string, echo_result, std::less<>> medians;
  for (const auto& name : systems) {
    const auto& s = samples[name];
    if (s.failed) {
      error = true;
      continue;
    }
    echo_result m;
    m.rtt_p50_us = bench::median(s.p50);
    m.rtt_p99_us = bench::median(s.p99);
    m.calls_per_s = bench::median(s.calls_per_s);
    m.broker_rss_kib = static_cast<long>(bench::median(s.rss_kib));
    medians[name] = m;
    bench::print_json_line(label, name, "rtt_p50_us", m.rtt_p50_us, 1);
    bench::print_json_line(label, name, "rtt_p99_us", m.rtt_p99_us, 1);
    bench::print_json_line(label, name, "calls_per_s", m.calls_per_s, 0);
    bench::print_json_line(label, name, "rss_kib", static_cast<double>(m.broker_rss_kib), 0);
  }

  auto ran = [&](std::string_view name) {
    for (const auto& s : systems) {
      if (s == name) return true;
    }
    return false;
  };
  auto have = [&](std::string_view name) { return medians.find(name) != medians.end(); };
  bool missed = false;
  auto report = [&](const char* target, bool ok, double ratio, const char* limit) {
    if (!check) return;
    std::fprintf(stderr, "%s: %s (%.3f, target %s)\n", ok ? "PASS" : "FAIL", target, ratio, limit);
    missed = missed || !ok;
  };
  if (transport == "zmq" && ran("plexus-zmq") && ran("zmq")) {
    if (have("plexus-zmq") && have("zmq") && medians["zmq"].rtt_p50_us > 0) {
      const double ratio = medians["plexus-zmq"].rtt_p50_us / medians["zmq"].rtt_p50_us;
      bench::print_json_line(label, "plexus-zmq", "p50_vs_zmq", ratio, 3);
      report("plexus-zmq p50 <= 1.25 x zmq p50", ratio <= 1.25, ratio, "<= 1.25");
    } else if (check) {
      std::fprintf(stderr, "FAIL: plexus-zmq p50 <= 1.25 x zmq p50 (not measured)\n");
      missed = true;
    }
  }
  if (transport == "native" && ran("plexus") && ran("floor")) {
    if (have("plexus") && have("floor") && medians["floor"].rtt_p50_us > 0) {
      const double ratio = medians["plexus"].rtt_p50_us / medians["floor"].rtt_p50_us;
      bench::print_json_line("echo", "plexus", "p50_vs_floor", ratio, 3);
      report("plexus p50 <= 1.5 x floor p50", ratio <= 1.5, ratio, "<= 1.5");
    } else if (check) {
      std::fprintf(stderr, "FAIL: plexus p50 <= 1.5 x floor p50 (not measured)\n");
      missed = true;
    }
  }
  if (transport == "native" && ran("plexus") && ran("zmq")) {
    if (have("plexus") && have("zmq") && medians["zmq"].calls_per_s > 0) {
      const double ratio = medians["plexus"].calls_per_s / medians["zmq"].calls_per_s;
      bench::print_json_line("echo", "plexus", "calls_per_s_vs_zmq", ratio, 3);
      report("plexus calls/s >= 2 x zmq calls/s", ratio >= 2.0, ratio, ">= 2.0");
    } else if (check) {
      std::fprintf(stderr, "FAIL: plexus calls/s >= 2 x zmq calls/s (not measured)\n");
      missed = true;
    }
  }
  if (error) return 2;
  return missed ? 1 : 0;
}

}  // namespace

int run_role(const std::string& role, const std::vector<std::string>& args) {
  using role_fn = int (*)(const std::vector<std::string>&);
  static const std::map<std::string, role_fn, std::less<>> roles = {
      {"floor_broker", floor_broker_role},
      {"floor_service", floor_service_role},
      {"zmq_broker", zmq_broker_role},
      {"zmq_service", zmq_service_role},
      {"plexus_router", plexus_router_role},
      {"plexus_service", plexus_service_role},
      {"zmq_cbor_service", zmq_cbor_service_role},
      {"plexus_zmq_router", plexus_zmq_router_role},
  };
  const auto it = roles.find(role);
  if (it == roles.end()) {
    std::fprintf(stderr, "plexus-bench: unknown role '%s'\n", role.c_str());
    return 2;
  }
  try {
    return it->second(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plexus-bench: role %s: %s\n", role.c_str(), e.what());
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
  echo->add_option("--calls", cfg.calls, "Sequential calls measured")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  echo->add_option("--warmup", cfg.warmup, "Sequential calls before measuring")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
  echo->add_option("--seconds", cfg.seconds, "Length of the pipelined window")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  echo->add_option("--inflight", cfg.inflight, "Requests in flight in the pipelined window")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  echo->add_option("--payload", cfg.payload, "Echo body size in bytes")
      ->check(CLI::Range(std::size_t{8}, std::size_t{60 * 1024}))
      ->capture_default_str();
  echo->add_option("--transport", transport,
                   "native: plexus client/service vs floor and zmq baselines; zmq: seed-style "
                   "ZeroMQ peers through a raw zmq broker vs the plexus router")
      ->check(CLI::IsMember({"native", "zmq"}))
      ->capture_default_str();
  echo->add_option("--systems", systems_csv,
                   "Comma-separated subset of floor,zmq,plexus (--transport native, the default) "
                   "or zmq,plexus-zmq (--transport zmq); default: all of them");
  echo->add_option("--repeat", repeat, "Interleaved runs per system; the median is reported")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  echo->add_flag("--no-check", no_check, "Report figures without checking the plexus targets");

  supervisor_config sup;
  int sup_repeat = 1;
  bool sup_no_check = false;
  auto* supervisor = app.add_subcommand(
      "supervisor",
      "plexus run with N replicas of calc: startup until every replica is ready in plexus.ps, "
      "crash-to-ready after SIGKILL (p50, max), RSS of the plexus run process; baseline: the "
      "same N calc spawned directly against a plain plexus router");
  supervisor->add_option("--replicas", sup.replicas, "calc replicas")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  supervisor->add_option("--crashes", sup.crashes, "Replicas SIGKILLed one after another")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  supervisor
      ->add_option("--repeat", sup_repeat, "Interleaved rounds (direct, plexus); medians reported")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  supervisor->add_flag("--no-check", sup_no_check, "Report figures without checking the targets");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help exits 0
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
