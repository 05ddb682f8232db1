// Integration tests of `plexus run`: the real command supervising real processes,
// driven through the plexus command and a client, in a unique directory per test.

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "plexus/rpc/client.hpp"
#include "support/http.hpp"
#include "support/process.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;

// The gateway of each plexus run on a port of its own: tests run side by side, and
// 8080 (the default) may be taken on the machine.
constexpr const char* gateway_on_any_port = "[gateway]\nlisten = \"127.0.0.1:0\"\n\n";
using plexus::test::bin;
using plexus::test::child;

using plexus::test::gone;
using plexus::test::session_of;

class Run : public ::testing::Test {
 protected:
  void SetUp() override { address_ = "ipc://" + dir_.path() + "/router.sock"; }

  // Writes app.toml with a [router] on this test's address and a [log] in its dir.
  std::string config(const std::string& body, const std::string& name = "app.toml") {
    const auto path = dir_.path() + "/" + name;
    std::ofstream(path) << "[router]\nlisten = \"" << address_ << "\"\n\n"
                        << gateway_on_any_port << "[log]\ndir = \"" << dir_.path()
                        << "/logs\"\necho = false\n\n"
                        << body;
    return path;
  }

  void start(const std::string& path) {
    run_ = std::make_unique<child>(std::vector<std::string>{bin("plexus"), "run", path});
    ASSERT_TRUE(run_->wait_for_output("plexus run: router on", 5s)) << run_->output();
  }

  plexus::result<plexus::value> call(const std::string& service, const std::string& method,
                                     plexus::value params = plexus::value::array()) {
    boost::asio::io_context io(1);
    plexus::rpc::client c(io, {.router = address_, .name = "test"});
    if (auto ok = c.connect(); !ok) return std::move(ok).error();
    return c.call_value(service, method, std::move(params), 5s);
  }

  // Asks plexus.ps until `pred(ps)` holds (deadline `limit`), asking again after each
  // supervisor event on the log stream (start, ready, exit, restart …) or at least every
  // second (RSS and health are sampled without an event). Returns the last answer.
  template <class Pred>
  plexus::value wait_ps(Pred pred, std::chrono::milliseconds limit = 10000ms) {
    return wait_answer("ps", plexus::value::array(), pred, limit);
  }

  // The same for any method of the plexus service: asks `method` with `params` until
  // `pred(answer)` holds.
  template <class Pred>
  plexus::value wait_answer(const std::string& method, const plexus::value& params, Pred pred,
                            std::chrono::milliseconds limit = 10000ms) {
    boost::asio::io_context io(1);
    plexus::rpc::client c(io, {.router = address_, .name = "test-" + method});
    plexus::value last;
    if (auto ok = c.connect(); !ok) {
      ADD_FAILURE() << ok.error().message;
      return last;
    }
    std::size_t events = 0;
    EXPECT_TRUE(c.subscribe("log.", [&](std::string_view, const plexus::value&) { ++events; }));
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      const auto seen = events;
      if (auto r = c.call_value("plexus", method, params, 5s); r) {
        last = *r;
        if (pred(last)) return last;
      } else {
        last = r.error().message;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      plexus::test::run_until(
          io, [&] { return events != seen; }, std::min(left, 1000ms));
    }
    ADD_FAILURE() << method << " never matched; last: " << last.dump();
    return last;
  }

  static bool all_ready(const plexus::value& ps) {
    for (const auto& p : ps)
      if (p["state"] != "ready") return false;
    return !ps.empty();
  }

  std::pair<int, std::string> cli(std::vector<std::string> args) {
    args.insert(args.begin(), bin("plexus"));
    args.push_back("--router");
    args.push_back(address_);
    return plexus::test::run(args);
  }

  int exit_code() {
    const int status = run_->wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  plexus::test::temp_dir dir_;
  std::string address_;
  std::unique_ptr<child> run_;
};

// The gateway of plexus run serves the web module's routes; a stopped module's route
// answers 503 with Retry-After, and the module's restart brings it back.
TEST_F(Run, TheGatewayServesAModulesRoutesAnd503WhileItIsStopped) {
  namespace http = boost::beast::http;
  start(config("[[process]]\nname = \"web\"\ncommand = \"" + bin("web") + "\"\n"));
  ASSERT_TRUE(run_->wait_for_output("HTTP gateway on http://127.0.0.1:", 5s)) << run_->output();
  ASSERT_TRUE(run_->wait_for_output("/\n", 5s)) << run_->output();
  const auto& out = run_->output();
  const auto at = out.find("HTTP gateway on http://127.0.0.1:") + 33;
  const auto port = static_cast<std::uint16_t>(std::stoi(out.substr(at)));
  wait_ps(all_ready);

  plexus::test::http_client c(port);
  auto r = c.request(http::verb::post, "/api/counter/a?by=2");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(plexus::test::json_of(r)["count"], 2);
  EXPECT_EQ(plexus::test::json_of(c.request(http::verb::get, "/api/counter/a"))["count"], 2);
  auto ps = plexus::test::json_of(c.request(http::verb::get, "/api/processes"));
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0]["name"], "web");

  const auto metrics = c.request(http::verb::get, "/metrics").body();
  EXPECT_NE(metrics.find("plexus_process_up{process=\"web\",replica=\"0\"} 1\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("plexus_http_requests_total{route=\"POST /api/counter/{id}\",status="
                         "\"200\"} 1\n"),
            std::string::npos)
      << metrics;

  // The live log: web's backlog now, its stop later (below), as server-sent events.
  plexus::test::http_client logs(port);
  logs.send_raw("GET /api/logs?process=web&backlog=50 HTTP/1.1\r\nHost: h\r\n\r\n");
  const auto events = logs.read_until("web ready");
  EXPECT_NE(events.find("data: {"), std::string::npos) << events;
  EXPECT_NE(events.find("\"message\":\"web ready\""), std::string::npos) << events;
  EXPECT_EQ(c.request(http::verb::get, "/api/logs?level=loud").result_int(), 400);
  EXPECT_EQ(c.request(http::verb::get, "/api/logs?backlog=5000").result_int(), 400);

  auto [rc, listing] = cli({"routes", "--json"});
  ASSERT_EQ(rc, 0) << listing;
  auto routes = plexus::value::parse(listing);
  ASSERT_EQ(routes.size(), 3u) << listing;
  EXPECT_EQ(routes[0]["pattern"], "/api/counter/{id}");
  EXPECT_EQ(routes[0]["service"], "web");
  EXPECT_EQ(routes[0]["replicas"], 1);
  EXPECT_NE(routes[0]["where"].get<std::string>().find("web/main.cpp:"), std::string::npos);

  ASSERT_EQ(cli({"stop", "web"}).first, 0);
  wait_ps([](const plexus::value& ps) { return ps[0]["state"] == "stopped"; });
  const auto live = logs.read_until("stopped on request");
  EXPECT_NE(live.find("stopped on request"), std::string::npos) << live;
  r = c.request(http::verb::get, "/api/counter/a");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(r[http::field::retry_after], "1");
  ASSERT_EQ(cli({"restart", "web"}).first, 0);
  wait_ps(all_ready);
  r = c.request(http::verb::get, "/api/counter/a");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(plexus::test::json_of(r)["count"], 0);  // a new process
}

TEST_F(Run, KillNineOfPlexusRunLeavesNoProcessOfTheTree) {
  start(config(R"(
[[process]]
name = "calc"
command = "calc"
replicas = 3

[[process]]
name = "shell"
command = "/bin/sh"
args = ["-c", "sleep 1000 & echo READY=1 >&3; wait"]
)"));
  auto ps = wait_ps(all_ready);
  ASSERT_EQ(ps.size(), 4u) << ps.dump();
  std::vector<pid_t> pids;
  for (const auto& p : ps)
    pids.push_back(p["pid"].get<pid_t>());
  // The shell's own child (a grandchild of plexus run) is in the shell's group.
  std::ifstream children("/proc/" + std::to_string(pids.back()) + "/task/" +
                         std::to_string(pids.back()) + "/children");
  pid_t grandchild = 0;
  children >> grandchild;
  ASSERT_GT(grandchild, 0);
  pids.push_back(grandchild);

  run_->kill(SIGKILL);
  for (auto pid : pids)
    EXPECT_TRUE(gone(pid)) << "pid " << pid << " outlived plexus run";
}

// A shell whose child leaves the shell's process group and session (setsid) before
// the shell reports ready; the group signals of the supervisor do not reach it.
const char* const setsid_shell = R"(
[[process]]
name = "shell"
command = "/bin/sh"
args = ["-c", "setsid sh -c 'echo READY=1 >&3; exec sleep 1000' & wait"]
)";

// The shell's setsid child (a grandchild of plexus run), once the shell is ready.
pid_t setsid_grandchild(const plexus::value& ps) {
  if (ps.size() != 1) return 0;
  const auto shell = ps[0]["pid"].get<pid_t>();
  std::ifstream children("/proc/" + std::to_string(shell) + "/task/" + std::to_string(shell) +
                         "/children");
  pid_t grandchild = 0;
  children >> grandchild;
  return grandchild;
}

TEST_F(Run, SighupStopsTheTreeInOrderWithItsSetsidGrandchildren) {
  start(config(setsid_shell));
  const auto ps = wait_ps(all_ready);
  const pid_t grandchild = setsid_grandchild(ps);
  ASSERT_GT(grandchild, 0);
  const auto shell = ps[0]["pid"].get<pid_t>();
  ASSERT_EQ(session_of(grandchild), grandchild) << "the grandchild did not call setsid()";

  ASSERT_EQ(::kill(run_->pid(), SIGHUP), 0);    // the terminal closed
  run_->wait_for_output("\x01never\x01", 10s);  // until plexus run (and its keeper) ended
  ASSERT_TRUE(run_->output_closed()) << run_->output();
  const int status = run_->wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "status " << status << ": " << run_->output();
  EXPECT_NE(run_->output().find("plexus run: hangup: stopping"), std::string::npos)
      << run_->output();
  EXPECT_TRUE(gone(shell)) << "the shell " << shell << " outlived plexus run";
  EXPECT_TRUE(gone(grandchild)) << "the setsid grandchild " << grandchild << " outlived plexus run";
  if (!gone(grandchild, 0ms)) ::kill(grandchild, SIGKILL);
  // In order: the shell was asked to stop (SIGTERM), not killed with its supervisor.
  std::ifstream file(dir_.path() + "/logs/shell.0.log");
  const std::string log((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("stopped (killed by SIGTERM)"), std::string::npos) << log;
}

TEST_F(Run, PlexusStopAlsoStopsSetsidGrandchildren) {
  start(config(setsid_shell));
  const pid_t grandchild = setsid_grandchild(wait_ps(all_ready));
  ASSERT_GT(grandchild, 0);
  ASSERT_EQ(session_of(grandchild), grandchild) << "the grandchild did not call setsid()";

  auto [rc, out] = cli({"stop"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(exit_code(), 0);
  EXPECT_TRUE(gone(grandchild)) << "the setsid grandchild " << grandchild << " outlived plexus run";
  if (!gone(grandchild, 0ms)) ::kill(grandchild, SIGKILL);
}

TEST_F(Run, KillNineTakesSetsidGrandchildrenWhenTheChildrenHaveACgroup) {
  start(config(setsid_shell));
  const pid_t grandchild = setsid_grandchild(wait_ps(all_ready));
  ASSERT_GT(grandchild, 0);
  std::ifstream cgroup("/proc/" + std::to_string(grandchild) + "/cgroup");
  const std::string groups((std::istreambuf_iterator<char>(cgroup)),
                           std::istreambuf_iterator<char>());
  if (groups.find("/plexus-" + std::to_string(run_->pid()) + "\n") == std::string::npos) {
    ::kill(grandchild, SIGKILL);
    GTEST_SKIP() << "no cgroup v2 group for the children here (" << groups
                 << "): only the subreaper path, and a setsid grandchild outlives a kill -9 of "
                    "plexus run";
  }
  run_->kill(SIGKILL);  // no cleanup runs: the keeper kills the group
  EXPECT_TRUE(gone(grandchild)) << "the setsid grandchild " << grandchild << " outlived plexus run";
  if (!gone(grandchild, 0ms)) ::kill(grandchild, SIGKILL);
}

TEST_F(Run, OutputThatIsNotUtf8DoesNotBreakTheLogs) {
  // A line of two bytes that are not UTF-8, then a line of 80001 bytes: "x" and 40000
  // "é", so that the 64 KiB piece limit falls inside a character.
  start(config(R"(
[[process]]
name = "bytes"
command = "/bin/sh"
args = ["-c", "printf '\\377\\376\\n'; printf x; yes '\u00e9' | head -n 40000 | tr -d '\\n'; echo; echo READY=1 >&3; exec sleep 1000"]
)"));
  std::string long_line = "x";
  for (int i = 0; i < 40000; ++i)
    long_line += "\xc3\xa9";
  const std::string fffd = "\xef\xbf\xbd";
  // Until the long line's last piece is in the history (or plexus.logs fails to the end).
  auto history = wait_answer("logs", plexus::value::array({plexus::value{{"process", "bytes"}}}),
                             [](const plexus::value& records) {
                               for (const auto& r : records)
                                 if (r["fields"].is_object() && r["fields"]["stream"] == "stdout" &&
                                     !r["fields"].contains("partial") &&
                                     r["message"].get<std::string>().size() > 1000)
                                   return true;
                               return false;
                             });
  std::vector<std::string> lines;  // stdout, pieces joined
  bool joining = false;
  for (const auto& r : history) {
    if (!r.is_object() || r["fields"]["stream"] != "stdout") continue;
    EXPECT_FALSE(r.contains("raw")) << "the history keeps only valid text";
    const auto& text = r["message"].get_ref<const std::string&>();
    if (joining)
      lines.back() += text;
    else
      lines.push_back(text);
    joining = r["fields"].contains("partial");
    if (joining) {
      EXPECT_EQ(text.size(), 65535u) << "cut at the character before 64 KiB";
    }
  }
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], fffd + fffd);  // one U+FFFD per invalid byte
  EXPECT_EQ(lines[1], long_line);    // no U+FFFD: no character was cut

  auto [rc, out] = cli({"logs", "--process", "bytes"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(" bytes[0] " + fffd + fffd + "\n"), std::string::npos) << out.substr(0, 500);
  auto [json_rc, json] = cli({"logs", "--process", "bytes", "--json"});
  EXPECT_EQ(json_rc, 0) << json.substr(0, 500);
  EXPECT_NE(json.find("\"message\":\"" + fffd + fffd + "\""), std::string::npos)
      << json.substr(0, 500);

  // The file keeps the bytes as written.
  std::ifstream file(dir_.path() + "/logs/bytes.0.log", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(" bytes[0] \xff\xfe\n"), std::string::npos);
  EXPECT_NE(text.find(" bytes[0] " + long_line.substr(0, 65535) + " "), std::string::npos);
  EXPECT_NE(text.find(" bytes[0] " + long_line.substr(65535) + "\n"), std::string::npos);
  EXPECT_EQ(text.find(fffd), std::string::npos);
}

// Issue 10 item 11: the echo goes to a pipe nobody reads (a terminal scrolled back, a
// `plexus run | slow`) while a child floods its output. The loop never waits for it:
// calls are answered, the lines that do not fit are dropped and counted
// (plexus.stats echo_dropped), and the log file still gets every line. Before, the loop
// blocked in fputs on the full pipe and answered nothing more.
TEST_F(Run, AnEchoNobodyReadsNeverBlocksTheLoop) {
  const auto path = dir_.path() + "/app.toml";
  std::ofstream(path) << "[router]\nlisten = \"" << address_ << "\"\n\n"
                      << gateway_on_any_port << "[log]\ndir = \"" << dir_.path()
                      << "/logs\"\necho = true\nmax_bytes = 100000000\n\n"
                      << R"([[process]]
name = "flood"
command = "/bin/sh"
args = ["-c", "echo READY=1 >&3; i=0; while [ $i -lt 30000 ]; do echo \"flood $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); done; exec sleep 1000"]
)";
  start(path);  // reads the banner; from here on nobody reads plexus run's output
  const auto stats = wait_answer("stats", plexus::value::array(), [](const plexus::value& v) {
    return v.is_object() && v.value("echo_dropped", 0) > 0;
  });
  EXPECT_GT(stats.value("echo_dropped", 0), 0) << stats.dump();
  const auto before = std::chrono::steady_clock::now();
  auto pong = call("plexus", "ping");
  ASSERT_TRUE(pong) << pong.error().message;
  EXPECT_EQ(*pong, "pong");
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s);
  // Every line reaches the file, echoed or not.
  const auto logs =
      wait_answer("logs", plexus::value::array({{{"process", "flood"}, {"limit", 1}}}),
                  [](const plexus::value& v) {
                    return v.is_array() && v.size() == 1 &&
                           v[0].value("message", "").starts_with("flood 29999 ");
                  });
  std::ifstream file(dir_.path() + "/logs/flood.0.log");
  std::size_t lines = 0;
  for (std::string line; std::getline(file, line);)
    lines += line.find(" flood ") != std::string::npos ? 1 : 0;
  EXPECT_EQ(lines, 30000u);
}

TEST_F(Run, PsCallRestartAndLogs) {
  // flaky crashes every ~0.35 s: a high intensity keeps a slow run (sanitizers, a
  // loaded machine) from ending in "too many restarts" before the test is done.
  start(config(R"(
[supervisor]
backoff_initial = 0
backoff_max = 0
intensity = 1000

[[process]]
name = "calc"
command = "calc"
replicas = 2

[[process]]
name = "flaky"
command = "flaky"
args = ["--crash-after", "0.3", "--crash-jitter", "0.1"]
)"));
  wait_ps(all_ready);
  // The library's health report reaches plexus.ps; RSS comes from /proc.
  wait_ps([](const plexus::value& ps) {
    for (const auto& p : ps)
      if (p["name"] == "calc" && (!p["health"].is_object() || !p["health"].contains("in_flight") ||
                                  p["rss_bytes"].get<std::uint64_t>() == 0))
        return false;
    return true;
  });
  auto sum = call("calc", "add", plexus::value::array({1, 2}));
  ASSERT_TRUE(sum) << sum.error().message;
  EXPECT_EQ(*sum, 3);
  auto [rc, out] = cli({"call", "calc", "add", "1", "2"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "3\n");

  // flaky crashes after ~0.3 s and comes back.
  wait_ps([](const plexus::value& ps) {
    for (const auto& p : ps)
      if (p["name"] == "flaky" && p["restarts"].get<int>() >= 1 && p["state"] == "ready")
        return true;
    return false;
  });
  auto [ps_rc, table] = cli({"ps"});
  EXPECT_EQ(ps_rc, 0) << table;
  EXPECT_NE(table.find("flaky"), std::string::npos) << table;
  EXPECT_NE(table.find("exited with 3"), std::string::npos) << table;

  auto [logs_rc, logs] = cli({"logs", "--process", "flaky"});
  EXPECT_EQ(logs_rc, 0) << logs;
  EXPECT_NE(logs.find("flaky: simulated crash"), std::string::npos) << logs;
  EXPECT_NE(logs.find("flaky[0] restarting in"), std::string::npos) << logs;
  // Logs are also in a file per child.
  std::ifstream file(dir_.path() + "/logs/flaky.0.log");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("simulated crash"), std::string::npos);

  // Restart by name: new pids for both calc replicas.
  auto before = wait_ps(all_ready);
  auto [restart_rc, restart_out] = cli({"restart", "calc"});
  EXPECT_EQ(restart_rc, 0) << restart_out;
  wait_ps([&](const plexus::value& ps) {
    for (std::size_t i = 0; i < ps.size(); ++i)
      if (ps[i]["name"] == "calc" &&
          (ps[i]["pid"] == before[i]["pid"] || ps[i]["state"] != "ready"))
        return false;
    return true;
  });

  auto [stop_rc, stop_out] = cli({"stop"});
  EXPECT_EQ(stop_rc, 0) << stop_out;
  EXPECT_EQ(exit_code(), 0);
}

TEST_F(Run, EmergencyStopExitsNonZeroNamingTheChild) {
  start(config(R"(
[supervisor]
emergency_exit_code = 42

[[process]]
name = "calc"
command = "calc"

[[process]]
name = "doomed"
command = "/bin/sh"
args = ["-c", "echo READY=1 >&3; exit 42"]
)"));
  EXPECT_EQ(exit_code(), 6);
  run_->wait_for_output("\x01eof\x01", 5s);
  EXPECT_NE(run_->output().find("emergency stop: doomed[0] exited with the emergency exit code 42"),
            std::string::npos)
      << run_->output();
}

TEST_F(Run, IntensityExceededExitsWithItsCode) {
  start(config(R"(
[supervisor]
intensity = 2
period = 10
backoff_initial = 0
backoff_max = 0

[[process]]
name = "crasher"
command = "/bin/sh"
args = ["-c", "exit 1"]
ready = "spawn"
)"));
  EXPECT_EQ(exit_code(), 5);
  run_->wait_for_output("\x01eof\x01", 5s);
  EXPECT_NE(run_->output().find("more than 2 restarts within 10 s"), std::string::npos)
      << run_->output();
}

TEST_F(Run, BadConfigNamesTheLine) {
  const auto path = config(R"(
[[process]]
name = "calc"
command = "calc"
replicas = "two"
)");
  auto [rc, out] = plexus::test::run({bin("plexus"), "run", path});
  EXPECT_EQ(rc, 2) << out;
  // Line 15: the [router], [gateway] and [log] lines config() writes come first.
  EXPECT_NE(out.find("app.toml:15:12:"), std::string::npos) << out;
  EXPECT_NE(out.find("process[0].replicas"), std::string::npos) << out;
}

TEST_F(Run, AMissingCommandIsABadConfig) {
  const auto path = config(R"(
[[process]]
name = "ghost"
command = "no-such-program-plexus"
)");
  auto [rc, out] = plexus::test::run({bin("plexus"), "run", path});
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("process ghost: command no-such-program-plexus not found"), std::string::npos)
      << out;
}

TEST_F(Run, ThePsOfAPlainRouterSaysItSupervisesNothing) {
  run_ = std::make_unique<child>(
      std::vector<std::string>{bin("plexus"), "router", "--listen", address_});
  ASSERT_TRUE(run_->wait_for_output("listening", 5s));
  auto [rc, out] = cli({"ps"});
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("supervises nothing"), std::string::npos) << out;
}

// The lines of `ls -l /proc/$$/fd` in a child's log: "<fd> -> <what>" each.
std::vector<std::string> listed_descriptors(const plexus::value& records) {
  std::vector<std::string> out;
  for (const auto& r : records) {
    const auto message = r.value("message", std::string());
    const auto arrow = message.find(" -> ");
    if (arrow == std::string::npos) continue;
    const auto start = message.rfind(' ', arrow - 1);
    out.push_back(message.substr(start == std::string::npos ? 0 : start + 1));
  }
  return out;
}

// What /proc/PID/fd holds: readlink of each descriptor.
std::vector<std::string> descriptor_targets(pid_t pid) {
  std::vector<std::string> out;
  const auto dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec) out.push_back(target.string());
  }
  return out;
}

TEST_F(Run, AChildInheritsOnlyItsStandardDescriptorsAndTheNotifyFd) {
  // Every kind of socket the router has: native ipc and tcp, libzmq's, udp.
  const auto path = dir_.path() + "/fds.toml";
  std::ofstream(path) << "[router]\nlisten = [\"" << address_ << "\", \"tcp://127.0.0.1:0\"]\n"
                      << "zmq_frontend = \"tcp://127.0.0.1:*\"\nudp = \"udp://127.0.0.1:0\"\n\n"
                      << gateway_on_any_port << "[log]\ndir = \"" << dir_.path()
                      << "/logs\"\necho = false\n\n"
                      << R"([[process]]
name = "fds"
command = "/bin/sh"
args = ["-c", "ls -l /proc/$$/fd; echo READY=1 >&3; exec sleep 1000"]
)";
  start(path);
  const auto first = wait_ps(all_ready);
  // Started again while a client is connected: the supervisor then also holds an
  // accepted socket, and the log file of the first run.
  boost::asio::io_context io(1);
  plexus::rpc::client c(io, {.router = address_, .name = "test-holder"});
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.call_value("plexus", "restart", plexus::value::array({"fds"}), 5s));
  wait_ps(
      [&](const plexus::value& ps) { return all_ready(ps) && ps[0]["pid"] != first[0]["pid"]; });
  // Two listings of four descriptors each.
  const auto logs =
      wait_answer("logs", plexus::value::array({plexus::value{{"process", "fds"}}}),
                  [](const plexus::value& r) { return listed_descriptors(r).size() >= 8; });
  const auto listed = listed_descriptors(logs);
  ASSERT_GE(listed.size(), 8u) << logs.dump();
  for (const auto& line : listed) {
    const int fd = std::stoi(line);
    EXPECT_TRUE(fd >= 0 && fd <= 3) << "the child inherited " << line;
  }

  const auto held = descriptor_targets(run_->pid());
  const auto holds = [&](const std::string& needle) {
    return std::any_of(held.begin(), held.end(),
                       [&](const std::string& t) { return t.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(holds("socket:[")) << testing::PrintToString(held);
  EXPECT_TRUE(holds("/logs/fds.0.log")) << testing::PrintToString(held);
}

// The soft limit of a process, from /proc/PID/limits.
std::pair<std::string, std::string> open_files_limit(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream in(line.substr(std::strlen("Max open files")));
      std::string soft, hard;
      in >> soft >> hard;
      return {soft, hard};
    }
  return {};
}

TEST_F(Run, RunAndRouterRaiseTheSoftDescriptorLimitToTheHardOne) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max <= 256) GTEST_SKIP() << "the hard limit leaves nothing to raise";
  const auto path = config(R"(
[[process]]
name = "idle"
command = "/bin/sh"
args = ["-c", "echo READY=1 >&3; exec sleep 1000"]
)");
  // Each started from a shell that lowered the soft limit to 256 first.
  const std::vector<std::vector<std::string>> commands{
      {bin("plexus"), "run", path},
      {bin("plexus"), "router", "--listen", "ipc://" + dir_.path() + "/alone.sock"}};
  for (const auto& command : commands) {
    std::vector<std::string> argv{"/bin/sh", "-c", "ulimit -Sn 256 && exec \"$@\"", "sh"};
    argv.insert(argv.end(), command.begin(), command.end());
    child p(argv);
    ASSERT_TRUE(p.wait_for_output(command[1] == "run" ? "router on" : "listening", 5s))
        << p.output();
    const auto [soft, hard] = open_files_limit(p.pid());
    EXPECT_EQ(soft, std::to_string(lim.rlim_max)) << command[1];
    EXPECT_EQ(soft, hard) << command[1];
  }
}

// ---- runtime files: private directories, owner-only sockets, nothing replaced --------

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// `command` run as by a user without XDG_RUNTIME_DIR (ssh, cron, containers) whose
// TMPDIR is `tmp`, with a umask that alone would make everything 0777/0666.
std::vector<std::string> without_runtime_dir(const std::string& tmp,
                                             std::vector<std::string> command) {
  std::vector<std::string> argv{
      "/usr/bin/env", "-u", "XDG_RUNTIME_DIR",        "-u", "PLEXUS_ROUTER", "TMPDIR=" + tmp,
      "/bin/sh",      "-c", "umask 0 && exec \"$@\"", "sh"};
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

TEST_F(Run, WithoutXdgRuntimeDirItsSocketIsInAPrivateDirectory) {
  const auto path = dir_.path() + "/default.toml";
  std::ofstream(path) << "[log]\necho = false\n\n"
                      << R"([[process]]
name = "idle"
command = "/bin/sh"
args = ["-c", "echo started; echo READY=1 >&3; exec sleep 1000"]
)";
  const auto runtime = dir_.path() + "/plexus-" + std::to_string(::getuid());
  address_ = "ipc://" + runtime + "/router.sock";
  run_ = std::make_unique<child>(without_runtime_dir(dir_.path(), {bin("plexus"), "run", path}));
  ASSERT_TRUE(run_->wait_for_output("plexus run: router on " + address_, 5s)) << run_->output();
  wait_ps(all_ready);
  EXPECT_EQ(mode_of(runtime), 0700u);
  EXPECT_EQ(mode_of(runtime + "/router.sock"), 0600u);
  auto [rc, out] = cli({"stop"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(exit_code(), 0) << run_->output();
}

TEST_F(Run, ARouterRefusesAFallbackDirectoryOthersCanWriteTo) {
  const auto runtime = dir_.path() + "/plexus-" + std::to_string(::getuid());
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(runtime.c_str(), 0777), 0);  // as another user may have left it in /tmp
  auto [rc, out] =
      plexus::test::run(without_runtime_dir(dir_.path(), {bin("plexus"), "router"}), 5s);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find(runtime + ": it is writable by group or others (mode 0777)"),
            std::string::npos)
      << out;
  EXPECT_FALSE(std::filesystem::exists(runtime + "/router.sock"));
}

TEST_F(Run, ARouterLeavesARegularFileAtItsListenPathAlone) {
  const auto path = dir_.path() + "/router.sock";
  std::ofstream(path) << "precious\n";
  auto [rc, out] = plexus::test::run({bin("plexus"), "router", "--listen", address_}, 5s);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find(path + " exists and is a regular file; refusing to replace it"),
            std::string::npos)
      << out;
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "precious");
}

}  // namespace
