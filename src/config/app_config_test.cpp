#include "plexus/config/app_config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace plexus::config {
namespace {

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
  EXPECT_EQ(r.listen, (std::vector<std::string>{"ipc:///tmp/p/r.sock", "tcp://127.0.0.1:5555"}));
  EXPECT_EQ(r.zmq_frontend, std::vector<std::string>{"ipc:///tmp/p/front.sock"});
  EXPECT_EQ(r.zmq_backend, std::vector<std::string>{"ipc:///tmp/p/back.sock"});
  EXPECT_EQ(r.zmq_publishers, std::vector<std::string>{"ipc:///tmp/p/pub.sock"});
  EXPECT_EQ(r.zmq_subscribers, std::vector<std::string>{"ipc:///tmp/p/sub.sock"});
  EXPECT_EQ(r.udp, std::vector<std::string>{"udp://127.0.0.1:9000"});
  EXPECT_EQ(r.transport.max_frame_bytes, 1048576u);
  EXPECT_EQ(r.transport.max_queued_bytes, 8388608u);
  EXPECT_EQ(r.subscriber_queue_bytes, 65536u);
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
  expect_error("[router]\nlisen = \"ipc:///x\"\n", "2:9", "router.lisen: unknown key");
  expect_error("[router]\nmax_frame_bytes = 10\n", "2:19", "router.max_frame_bytes");
  expect_error("[router]\nmax_queued_bytes = \"big\"\n", "2:20", "router.max_queued_bytes");
  expect_error("[routr]\n", "1:1", "routr: unknown key");
  expect_error("router = 1\n", "1:10", "router: expected a table");
  expect_error("[router]\nlisten = [\n", "2:12", "(syntax)");
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
