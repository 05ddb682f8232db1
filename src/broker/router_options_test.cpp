#include "plexus/broker/router_options.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

// The option table: each row sets router_options as its key means, and it renders
// the [router] table of docs/config.md.

namespace plexus::broker {
namespace {

using strings = std::vector<std::string>;

TEST(RouterOptions, AddressOptionsPutTheirRoleInTheEndpointScheme) {
  router_options o;
  const std::pair<const char*, const char*> rows[] = {
      {"listen", "ipc:///n"},
      {"zmq_frontend", "zmq-frontend+ipc:///f"},
      {"zmq_backend", "zmq-backend+tcp://127.0.0.1:5561"},
      {"zmq_publishers", "zmq-pub+ipc:///p"},
      {"zmq_subscribers", "zmq-sub+ipc:///s"},
      {"udp", "udp://127.0.0.1:9000"},
  };
  // Set in reverse: the list still comes out in table order.
  for (auto it = std::rbegin(rows); it != std::rend(rows); ++it) {
    const auto* opt = find_router_option(it->first);
    ASSERT_NE(opt, nullptr) << it->first;
    const std::string endpoint = it->second;
    const auto given = endpoint.substr(opt->role.size());
    ASSERT_TRUE(opt->set(o, given)) << it->first;
    EXPECT_EQ(opt->get(o), value::array({given})) << it->first;
  }
  strings expected;
  for (const auto& [key, endpoint] : rows)
    expected.push_back(endpoint);
  EXPECT_EQ(o.listen, expected);
}

TEST(RouterOptions, SettingAnOptionReplacesOnlyItsOwnAddresses) {
  router_options o;
  const auto& listen = *find_router_option("listen");
  const auto& front = *find_router_option("zmq_frontend");
  ASSERT_TRUE(listen.set(o, value::array({"ipc:///a", "tcp://127.0.0.1:1"})));
  ASSERT_TRUE(front.set(o, "ipc:///f1"));
  ASSERT_TRUE(front.set(o, value::array({"ipc:///f2", "ipc:///f3"})));
  ASSERT_TRUE(listen.set(o, "ipc:///b"));
  EXPECT_EQ(o.listen, (strings{"ipc:///b", "zmq-frontend+ipc:///f2", "zmq-frontend+ipc:///f3"}));
  ASSERT_TRUE(front.set(o, value::array()));
  EXPECT_EQ(o.listen, strings{"ipc:///b"});
}

TEST(RouterOptions, ValuesAreChecked) {
  router_options o;
  const auto& udp = *find_router_option("udp");
  auto wrong_scheme = udp.set(o, "tcp://h:1");
  ASSERT_FALSE(wrong_scheme);
  EXPECT_EQ(wrong_scheme.error().code, errc::invalid_argument);
  EXPECT_EQ(wrong_scheme.error().message, "expected a udp:// address, not 'tcp://h:1'");
  EXPECT_FALSE(udp.set(o, 5));
  EXPECT_FALSE(udp.set(o, value::array({"udp://h:1", 7})));
  EXPECT_TRUE(o.listen.empty());

  const auto& frame = *find_router_option("max_frame_bytes");
  auto small = frame.set(o, 10);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().message, "expected an integer of at least 64");
  EXPECT_FALSE(frame.set(o, "big"));
  ASSERT_TRUE(frame.set(o, 4096));
  EXPECT_EQ(o.transport.max_frame_bytes, 4096u);
  EXPECT_EQ(frame.get(o), 4096);
  ASSERT_TRUE(find_router_option("max_queued_bytes")->set(o, 0));
  EXPECT_EQ(o.transport.max_queued_bytes, 0u);
  ASSERT_TRUE(find_router_option("subscriber_queue_bytes")->set(o, 77));
  EXPECT_EQ(o.subscriber_queue_bytes, 77u);
}

TEST(RouterOptions, CommandLineTextsBecomeValues) {
  const auto& frame = *find_router_option("max_frame_bytes");
  EXPECT_EQ(frame.from_text(strings{"1024"}).value(), 1024);
  EXPECT_FALSE(frame.from_text(strings{"12"}));
  EXPECT_FALSE(frame.from_text(strings{"1k"}));
  EXPECT_EQ(frame.default_value(), std::to_string(router_options{}.transport.max_frame_bytes));
  EXPECT_FALSE(frame.repeatable());

  const auto& back = *find_router_option("zmq_backend");
  EXPECT_TRUE(back.repeatable());
  EXPECT_EQ(back.from_text(strings{"ipc:///a", "ipc:///b"}).value(),
            value::array({"ipc:///a", "ipc:///b"}));
  EXPECT_EQ(back.long_flag(), "--zmq-backend");
  EXPECT_EQ(find_router_option("listen")->long_flag(), "--listen");
  EXPECT_EQ(find_router_option("udp")->plain_help(),
            "udp://host:port[?interface=IPv4&ttl=N]: each datagram, one notification, is "
            "published (protocol.md §14)");
}

TEST(RouterOptions, EveryRowIsComplete) {
  std::set<std::string_view> keys, flags;
  for (const auto& o : router_option_table()) {
    EXPECT_TRUE(keys.insert(o.key).second) << o.key;
    EXPECT_TRUE(flags.insert(o.long_flag()).second) << o.key;
    EXPECT_TRUE(o.long_flag().starts_with("--")) << o.key;
    EXPECT_FALSE(o.help.empty()) << o.key;
    EXPECT_FALSE(o.type_text.empty()) << o.key;
    EXPECT_FALSE(o.default_text.empty()) << o.key;
    EXPECT_EQ(o.type == option_type::size, o.field != nullptr) << o.key;
    EXPECT_EQ(o.type == option_type::text, o.text_field != nullptr) << o.key;
    EXPECT_EQ(find_router_option(o.key), &o);
  }
  EXPECT_EQ(find_router_option("nope"), nullptr);
  EXPECT_EQ(router_option_keys(),
            "listen, zmq_frontend, zmq_backend, zmq_publishers, zmq_subscribers, udp, "
            "max_frame_bytes, max_queued_bytes, subscriber_queue_bytes, max_connections, "
            "hello_timeout_ms, max_subscriptions_per_peer, max_in_flight_per_peer, secret_file");
}

TEST(RouterOptions, DefaultListenIsAddedOnlyWithoutANativeAddress) {
  router_options o;
  ASSERT_TRUE(find_router_option("zmq_frontend")->set(o, "ipc:///f"));
  add_default_listen(o, "ipc:///default");
  EXPECT_EQ(o.listen, (strings{"ipc:///default", "zmq-frontend+ipc:///f"}));
  add_default_listen(o, "ipc:///other");
  EXPECT_EQ(o.listen, (strings{"ipc:///default", "zmq-frontend+ipc:///f"}));
}

TEST(RouterOptions, DocsConfigHasTheTableRendering) {
  // __FILE__ is relative to the build directory when the compiler was given a relative
  // path (Ninja does that for a build directory inside the source tree).
  std::filesystem::path here(__FILE__);
  if (here.is_relative()) here = std::filesystem::path(PLEXUS_BIN_DIR) / ".." / here;
  const auto docs = here.parent_path() / "../../docs/config.md";
  std::ifstream in(docs);
  ASSERT_TRUE(in) << docs;
  std::ostringstream text;
  text << in.rdbuf();
  const auto table = router_options_markdown();
  EXPECT_NE(text.str().find("## `[router]`\n\n" + table + "\n"), std::string::npos)
      << "docs/config.md should have, under ## `[router]`:\n"
      << table;
}

}  // namespace
}  // namespace plexus::broker
