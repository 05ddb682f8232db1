#include "plexus/config/app_config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <tuple>

namespace plexus::config {
namespace {

TEST(AppConfig, ReadsTheRouterSecretFile) {
  auto cfg = parse("[router]\nsecret_file = \"/etc/plexus/secret\"\n", "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->router.secret_file, "/etc/plexus/secret");
  EXPECT_TRUE(cfg->router.transport.secret.empty());  // read by the router when it starts
  auto bad = parse("[router]\nsecret_file = 3\n", "app.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("router.secret_file"), std::string::npos)
      << bad.error().message;
}

TEST(AppConfig, ReadsTheRouterSection) {
  auto cfg = parse(R"(
[router]
listen = ["ipc:///tmp/p/r.sock", "tcp://127.0.0.1:5555"]
zmq_frontend = "ipc:///tmp/p/front.sock"
zmq_backend = ["ipc:///tmp/p/back.sock"]
zmq_publishers = "ipc:///tmp/p/pub.sock"
zmq_subscribers = "ipc:///tmp/p/sub.sock"
udp = "udp://127.0.0.1:9000"
max_frame_bytes = 1048576
max_queued_bytes = 8388608
subscriber_queue_bytes = 65536
)",
                   "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const auto& r = cfg->router;
  // One list of endpoints; each key's addresses carry its role in the scheme.
  EXPECT_EQ(r.listen, (std::vector<std::string>{
                          "ipc:///tmp/p/r.sock", "tcp://127.0.0.1:5555",
                          "zmq-frontend+ipc:///tmp/p/front.sock",
                          "zmq-backend+ipc:///tmp/p/back.sock", "zmq-pub+ipc:///tmp/p/pub.sock",
                          "zmq-sub+ipc:///tmp/p/sub.sock", "udp://127.0.0.1:9000"}));
  EXPECT_EQ(broker::find_router_option("zmq_backend")->get(r),
            value::array({"ipc:///tmp/p/back.sock"}));
  EXPECT_EQ(r.transport.max_frame_bytes, 1048576u);
  EXPECT_EQ(r.transport.max_queued_bytes, 8388608u);
  EXPECT_EQ(r.subscriber_queue_bytes, 65536u);
}

TEST(AppConfig, RouterEndpointsKeepTheOrderOfTheKeysNotOfTheFile) {
  auto cfg = parse(
      "[router]\nudp = \"udp://127.0.0.1:9000\"\nzmq_frontend = \"ipc:///f\"\n"
      "listen = \"ipc:///n\"\n",
      "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->router.listen, (std::vector<std::string>{"ipc:///n", "zmq-frontend+ipc:///f",
                                                          "udp://127.0.0.1:9000"}));
}

TEST(AppConfig, EmptyFileKeepsTheDefaults) {
  auto cfg = parse("", "app.toml");
  ASSERT_TRUE(cfg);
  EXPECT_TRUE(cfg->router.listen.empty());
  EXPECT_EQ(cfg->router.subscriber_queue_bytes, broker::router_options{}.subscriber_queue_bytes);
}

void expect_error(std::string_view text, const std::string& where, const std::string& what) {
  auto cfg = parse(text, "app.toml");
  ASSERT_FALSE(cfg) << text;
  EXPECT_EQ(cfg.error().code, errc::invalid_argument);
  EXPECT_EQ(cfg.error().message.rfind("app.toml:" + where + ": ", 0), 0u) << cfg.error().message;
  EXPECT_NE(cfg.error().message.find(what), std::string::npos) << cfg.error().message;
}

TEST(AppConfig, ErrorsNameFileLineAndKey) {
  expect_error("[router]\nlisten = 5\n", "2:10", "router.listen: expected a string or an array");
  expect_error("[router]\n\nudp = [\"udp://h:1\", 7]\n", "3:21", "router.udp: expected a string");
  expect_error("[router]\nlisen = \"ipc:///x\"\n", "2:9",
               "router.lisen: unknown key (known: listen, zmq_frontend, zmq_backend, "
               "zmq_publishers, zmq_subscribers, udp, max_frame_bytes, max_queued_bytes, "
               "subscriber_queue_bytes, max_connections, hello_timeout_ms, "
               "max_subscriptions_per_peer, max_in_flight_per_peer, secret_file)");
  expect_error("[router]\nudp = \"tcp://h:1\"\n", "2:7", "router.udp: expected a udp:// address");
  expect_error("[router]\nmax_frame_bytes = 10\n", "2:19", "router.max_frame_bytes");
  expect_error("[router]\nmax_queued_bytes = \"big\"\n", "2:20", "router.max_queued_bytes");
  expect_error("[routr]\n", "1:1", "routr: unknown key");
  expect_error("router = 1\n", "1:10", "router: expected a table");
  expect_error("[router]\nlisten = [\n", "2:12", "(syntax)");
}

using namespace std::chrono_literals;
namespace sv = plexus::supervisor;

// The tree-wide settings of a [supervisor] section, compared in one expectation: strategy,
// intensity, period, backoff_initial, backoff_max, emergency_exit_code, start_concurrency.
auto tree_settings(const sv::tree_spec& s) {
  return std::tuple(s.strategy, s.intensity, s.period, s.backoff_initial, s.backoff_max,
                    s.emergency_exit_code, s.start_concurrency);
}

TEST(AppConfig, ReadsTheSupervisorLogAndProcessSections) {
  auto cfg = parse(R"(
[supervisor]
strategy = "rest_for_one"
intensity = 7
period = 2.5
backoff_initial = 0.25
backoff_max = 3
emergency_exit_code = 42
start_concurrency = 16

[log]
dir = "/var/log/myapp"
max_bytes = 2048
files = 0
history = 50
echo = false

[[process]]
name = "calc"
command = "calc"
args = ["--workers", "2"]
env = { ZETA = "z", GREETING = "hi", ALPHA = "a" }
cwd = "/tmp"
replicas = 3
restart = "transient"
ready = "spawn"
stop_timeout = 0
ready_timeout = 0.0006

[[process]]
name = "web.front-1_b"
command = "./bin/web"
args = "--verbose"
restart = "temporary"
stop_timeout = 1.2345
ready_timeout = 30
[process.env]
B = "2"
A = "1"
)",
                   "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const auto& s = cfg->supervisor;
  EXPECT_EQ(tree_settings(s),
            std::tuple(sv::restart_strategy::rest_for_one, 7u, 2500ms, 250ms, 3000ms, 42, 16u));

  EXPECT_EQ(s.log.dir, "/var/log/myapp");
  EXPECT_EQ(s.log.max_bytes, 2048u);
  EXPECT_EQ(s.log.files, 0u);
  EXPECT_EQ(s.log.history, 50u);
  EXPECT_FALSE(s.log.echo);

  ASSERT_EQ(s.processes.size(), 2u);
  const auto& calc = s.processes[0];
  EXPECT_EQ(calc.name, "calc");
  EXPECT_EQ(calc.command, "calc");
  EXPECT_EQ(calc.args, (std::vector<std::string>{"--workers", "2"}));
  using env_t = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(calc.env, (env_t{{"ZETA", "z"}, {"GREETING", "hi"}, {"ALPHA", "a"}}));
  EXPECT_EQ(calc.cwd, "/tmp");
  EXPECT_EQ(calc.replicas, 3u);
  EXPECT_EQ(calc.restart, sv::restart_policy::transient);
  EXPECT_EQ(calc.ready, sv::readiness::spawn);
  EXPECT_EQ(calc.stop_timeout, 0ms);
  EXPECT_EQ(calc.ready_timeout, 1ms);  // 0.6 ms, rounded to the nearest millisecond

  const auto& web = s.processes[1];
  EXPECT_EQ(web.name, "web.front-1_b");
  EXPECT_EQ(web.command, "./bin/web");
  EXPECT_EQ(web.args, std::vector<std::string>{"--verbose"});
  EXPECT_EQ(web.env, (env_t{{"B", "2"}, {"A", "1"}}));
  EXPECT_EQ(web.cwd, "");
  EXPECT_EQ(web.replicas, 1u);
  EXPECT_EQ(web.restart, sv::restart_policy::temporary);
  EXPECT_EQ(web.ready, sv::readiness::notify);
  EXPECT_EQ(web.stop_timeout, 1235ms);  // rounded to the nearest millisecond
  EXPECT_EQ(web.ready_timeout, 30000ms);
}

TEST(AppConfig, AbsentSupervisorSectionsKeepTheDefaults) {
  auto cfg = parse("[router]\nlisten = \"ipc:///tmp/x.sock\"\n", "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const sv::tree_spec d;
  const auto& s = cfg->supervisor;
  EXPECT_EQ(tree_settings(s),
            std::tuple(sv::restart_strategy::one_for_one, 5u, 10000ms, 100ms, 5000ms, 99, 0u));
  EXPECT_TRUE(s.processes.empty());
  EXPECT_EQ(s.log.dir, "");
  EXPECT_EQ(s.log.max_bytes, d.log.max_bytes);
  EXPECT_EQ(s.log.files, 3u);
  EXPECT_EQ(s.log.history, 1000u);
  EXPECT_TRUE(s.log.echo);

  // A process with only the required keys gets every other field's default.
  cfg = parse("[[process]]\nname = \"a\"\ncommand = \"a\"\n", "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->supervisor.processes.size(), 1u);
  const auto& p = cfg->supervisor.processes[0];
  const sv::child_spec dc;
  EXPECT_TRUE(p.args.empty());
  EXPECT_TRUE(p.env.empty());
  EXPECT_EQ(p.cwd, "");
  EXPECT_EQ(p.replicas, 1u);
  EXPECT_EQ(p.restart, sv::restart_policy::permanent);
  EXPECT_EQ(p.ready, sv::readiness::notify);
  EXPECT_EQ(p.stop_timeout, dc.stop_timeout);
  EXPECT_EQ(p.ready_timeout, dc.ready_timeout);
  EXPECT_EQ(cfg->supervisor.strategy, d.strategy);

  // Empty sections are allowed too.
  cfg = parse("process = []\n[supervisor]\n[log]\n", "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_TRUE(cfg->supervisor.processes.empty());
  EXPECT_EQ(cfg->supervisor.period, d.period);
}

TEST(AppConfig, AHugeFloatWhereASizeGoesIsAnErrorNotAnOverflow) {
  // Found by fuzz/app_config_fuzz (UBSan: float-cast-overflow in the size reader).
  expect_error("[router]\nsubscriber_queue_bytes = 1048e76\n", "2:26",
               "router.subscriber_queue_bytes: expected an integer");
}

TEST(AppConfig, SupervisorSectionErrors) {
  expect_error("[supervisor]\nstrategy = \"one_for_some\"\n", "2:12",
               "supervisor.strategy: unknown value 'one_for_some' (expected one of: one_for_one, "
               "one_for_all, rest_for_one)");
  expect_error("[supervisor]\nstrategy = 1\n", "2:12",
               "supervisor.strategy: expected a string, one of: one_for_one");
  expect_error("[supervisor]\nintensity = -1\n", "2:13",
               "supervisor.intensity: expected an integer");
  expect_error("[supervisor]\nintensity = 2.0\n", "2:13",
               "supervisor.intensity: expected an integer");
  expect_error("[supervisor]\nperiod = 0\n", "2:10",
               "supervisor.period: expected a number of seconds greater than 0");
  expect_error("[supervisor]\nperiod = \"10s\"\n", "2:10", "supervisor.period: expected a number");
  expect_error("[supervisor]\nperiod = nan\n", "2:10", "supervisor.period: expected a number");
  expect_error("[supervisor]\nperiod = inf\n", "2:10", "supervisor.period: expected at most");
  expect_error("[supervisor]\nbackoff_initial = -0.5\n", "2:19",
               "supervisor.backoff_initial: expected a number of seconds, at least 0");
  expect_error("[supervisor]\nbackoff_initial = 2\nbackoff_max = 1.5\n", "3:15",
               "supervisor.backoff_max: must be at least backoff_initial (2 s)");
  expect_error("[supervisor]\nbackoff_max = 0.05\n", "2:15",
               "supervisor.backoff_max: must be at least backoff_initial (0.1 s)");
  expect_error("[supervisor]\nbackoff_initial = 6\n", "2:19",
               "supervisor.backoff_initial: must be at most backoff_max (5 s by default)");
  expect_error("[supervisor]\nemergency_exit_code = 300\n", "2:23",
               "supervisor.emergency_exit_code: expected an integer from 0 to 255");
  expect_error("[supervisor]\nemergency_exit_code = -1\n", "2:23",
               "supervisor.emergency_exit_code: expected an integer from 0 to 255");
  expect_error("[supervisor]\nintensty = 5\n", "2:12",
               "supervisor.intensty: unknown key (known: strategy, intensity, period, "
               "backoff_initial, backoff_max, emergency_exit_code, start_concurrency)");
  expect_error("[supervisor]\nstart_concurrency = 0\n", "2:21",
               "supervisor.start_concurrency: expected an integer of at least 1");
  expect_error("supervisor = \"x\"\n", "1:14", "supervisor: expected a table [supervisor]");
}

TEST(AppConfig, LogSectionErrors) {
  expect_error("[log]\nmax_bytes = 1023\n", "2:13",
               "log.max_bytes: expected an integer of at least 1024");
  expect_error("[log]\nfiles = -1\n", "2:9", "log.files: expected an integer of at least 0");
  expect_error("[log]\nhistory = \"many\"\n", "2:11", "log.history: expected an integer");
  expect_error("[log]\necho = \"yes\"\n", "2:8", "log.echo: expected true or false");
  expect_error("[log]\ndir = 5\n", "2:7", "log.dir: expected a string");
  expect_error("[log]\nsize = 5\n", "2:8",
               "log.size: unknown key (known: dir, max_bytes, files, history, echo)");
  expect_error("log = 1\n", "1:7", "log: expected a table [log]");
}

TEST(AppConfig, ProcessSectionErrors) {
  const std::string calc = "[[process]]\nname = \"calc\"\ncommand = \"calc\"\n";
  expect_error(calc + "replicas = 0\n", "4:12",
               "process[0].replicas: expected an integer from 1 to 1000");
  expect_error(calc + "replicas = 1001\n", "4:12", "process[0].replicas");
  expect_error(calc + "replicas = \"3\"\n", "4:12", "process[0].replicas");
  expect_error(calc + "restart = \"always\"\n", "4:11",
               "process[0].restart: unknown value 'always' (expected one of: permanent, "
               "transient, temporary)");
  expect_error(calc + "ready = \"socket\"\n", "4:9",
               "process[0].ready: unknown value 'socket' (expected one of: notify, spawn)");
  expect_error(calc + "args = [\"a\", 1]\n", "4:14", "process[0].args: expected a string");
  expect_error(calc + "env = { A = 1 }\n", "4:13", "process[0].env.A: expected a string");
  expect_error(calc + "env = [\"A=1\"]\n", "4:7", "process[0].env: expected a table of strings");
  expect_error(calc + "env = { \"A=B\" = \"1\" }\n", "4:9", "process[0].env.A=B");
  expect_error(calc + "cwd = false\n", "4:7", "process[0].cwd: expected a string");
  expect_error(calc + "stop_timeout = -1\n", "4:16", "process[0].stop_timeout");
  expect_error(calc + "ready_timeout = 0\n", "4:17", "process[0].ready_timeout");
  // Greater than 0 once rounded to the millisecond.
  expect_error(calc + "ready_timeout = 0.0004\n", "4:17",
               "process[0].ready_timeout: expected a number of seconds greater than 0");
  expect_error(calc + "restrat = \"permanent\"\n", "4:11",
               "process[0].restrat: unknown key (known: name, command, args, env, cwd, replicas, "
               "restart, ready, stop_timeout, ready_timeout, group)");
  expect_error("[[process]]\nname = \"a b\"\ncommand = \"x\"\n", "2:8",
               "process[0].name: expected 1 to 64 characters");
  expect_error("[[process]]\nname = \"\"\ncommand = \"x\"\n", "2:8", "process[0].name");
  expect_error("[[process]]\nname = \"" + std::string(65, 'a') + "\"\ncommand = \"x\"\n", "2:8",
               "process[0].name");
  expect_error("[[process]]\nname = \"a\"\ncommand = \"\"\n", "3:11",
               "process[0].command: expected a non-empty string");
  expect_error("[[process]]\nname = \"a\"\ncommand = [\"a\"]\n", "3:11",
               "process[0].command: expected a string");

  // A missing required key points at the [[process]] table itself.
  expect_error(calc + "\n[[process]]\ncommand = \"x\"\n", "5:1", "process[1].name: required");
  expect_error("[[process]]\nname = \"a\"\n", "1:1", "process[0].command: required");

  expect_error(calc + "\n[[process]]\nname = \"web\"\ncommand = \"w\"\n\n" + calc, "10:8",
               "process[2].name: duplicate process name 'calc' (also process[0])");

  expect_error("process = 1\n", "1:11", "process: expected an array of tables [[process]]");
  expect_error("[process]\nname = \"a\"\n", "1:1", "process: expected an array of tables");
  expect_error("process = [1]\n", "1:12", "process[0]: expected a table");
}

TEST(AppConfig, UnknownSectionListsEveryKnownOne) {
  expect_error("[[proces]]\nname = \"a\"\n", "1:1",
               "proces: unknown key (known: [router], [gateway], [supervisor], [log], "
               "[group.NAME], [[process]])");
}

TEST(AppConfig, TheFirstErrorInTheFileIsReported) {
  // toml::table sorts keys; errors still come in file order.
  expect_error("[supervisor]\nperiod = -1\nintensity = -1\n", "2:10", "supervisor.period");
}

TEST(AppConfig, PolicyNamesRoundTripThroughToString) {
  EXPECT_EQ(sv::to_string(sv::restart_policy::permanent), "permanent");
  EXPECT_EQ(sv::to_string(sv::restart_policy::transient), "transient");
  EXPECT_EQ(sv::to_string(sv::restart_policy::temporary), "temporary");
  EXPECT_EQ(sv::to_string(sv::restart_strategy::one_for_one), "one_for_one");
  EXPECT_EQ(sv::to_string(sv::restart_strategy::one_for_all), "one_for_all");
  EXPECT_EQ(sv::to_string(sv::restart_strategy::rest_for_one), "rest_for_one");
  EXPECT_EQ(sv::to_string(sv::readiness::notify), "notify");
  EXPECT_EQ(sv::to_string(sv::readiness::spawn), "spawn");
}

TEST(AppConfig, LoadFileReadsAFileAndNamesAMissingOne) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("plexus-config-test-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(path);
    out << "[router]\nlisten = \"ipc:///tmp/x.sock\"\n";
  }
  auto cfg = load_file(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->router.listen, std::vector<std::string>{"ipc:///tmp/x.sock"});
  auto missing = load_file(path.string());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find(path.string()), std::string::npos);
}

}  // namespace
}  // namespace plexus::config

namespace plexus::config {
namespace {

TEST(AppConfig, ReadsGroups) {
  auto cfg = parse(R"(
[group.pipeline]
strategy = "rest_for_one"
intensity = 3
period = 2.5

[[process]]
name = "a"
command = "a"

[[process]]
name = "b"
command = "b"
group = "pipeline"

[[process]]
name = "c"
command = "c"
group = "pipeline"
)",
                   "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const auto& groups = cfg->supervisor.groups;
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].name, "pipeline");
  EXPECT_EQ(groups[0].strategy, supervisor::restart_strategy::rest_for_one);
  EXPECT_EQ(groups[0].intensity, 3u);
  EXPECT_EQ(groups[0].period, std::chrono::milliseconds(2500));
  std::vector<std::string> group_of;
  for (const auto& p : cfg->supervisor.processes)
    group_of.push_back(p.group);
  EXPECT_EQ(group_of, (std::vector<std::string>{"", "pipeline", "pipeline"}));
}

TEST(AppConfig, GroupErrors) {
  expect_error("[group.g]\nstrategy = \"all\"\n", "2:12", "group.g.strategy: unknown value 'all'");
  expect_error("[group.g]\nsize = 1\n", "2:8", "group.g.size: unknown key (known: strategy");
  expect_error("[[process]]\nname = \"a\"\ncommand = \"a\"\ngroup = \"nope\"\n", "4:9",
               "process[0].group: no [group.nope] table");
  expect_error(R"([group.g]
[[process]]
name = "a"
command = "a"
group = "g"
[[process]]
name = "b"
command = "b"
[[process]]
name = "c"
command = "c"
group = "g"
)",
               "12:9", "process[2].group: the processes of group g must be declared one after");
}

}  // namespace
}  // namespace plexus::config

namespace plexus::config {
namespace {

TEST(AppConfig, ReadsTheGateway) {
  auto dflt = parse("", "app.toml");
  ASSERT_TRUE(dflt);
  EXPECT_TRUE(dflt->gateway.enabled);
  EXPECT_EQ(dflt->gateway.listen, "127.0.0.1:8080");
  auto cfg = parse(R"([gateway]
enabled = false
listen = "127.0.0.1:0"
max_body_bytes = 1000
max_url_bytes = 100
max_header_bytes = 2000
max_connections = 5
max_stream_queue_bytes = 8192
deadline = 2.5
idle_timeout = 10
)",
                   "app.toml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const auto& g = cfg->gateway;
  EXPECT_FALSE(g.enabled);
  EXPECT_EQ(g.listen, "127.0.0.1:0");
  EXPECT_EQ(g.max_body_bytes, 1000u);
  EXPECT_EQ(g.max_url_bytes, 100u);
  EXPECT_EQ(g.max_header_bytes, 2000u);
  EXPECT_EQ(g.max_connections, 5u);
  EXPECT_EQ(g.max_stream_queue_bytes, 8192u);
  EXPECT_EQ(g.deadline, std::chrono::milliseconds(2500));
  EXPECT_EQ(g.idle_timeout, std::chrono::milliseconds(10000));
}

TEST(AppConfig, GatewayErrors) {
  expect_error("[gateway]\nlisten = \"127.0.0.1\"\n", "2:10", "gateway.listen: ");
  expect_error("[gateway]\nlisten = 8080\n", "2:10", "gateway.listen: expected a string");
  expect_error("[gateway]\nmax_url_bytes = 10\n", "2:17",
               "gateway.max_url_bytes: expected an integer of at least 64");
  expect_error("[gateway]\ndeadline = 0\n", "2:12",
               "gateway.deadline: expected a number of seconds greater than 0");
  expect_error("[gateway]\nport = 1\n", "2:8",
               "gateway.port: unknown key (known: enabled, listen,");
  expect_error("gateway = 1\n", "1:11", "gateway: expected a table [gateway]");
}

}  // namespace
}  // namespace plexus::config
