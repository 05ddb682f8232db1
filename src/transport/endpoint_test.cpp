#include "plexus/transport/endpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <set>

// The scheme table: every scheme gives its kind of endpoint, and a bad address names
// the schemes there are.

namespace plexus::transport {
namespace {

enum class kind { listener, inlet, outlet };

kind kind_of(const endpoint& e) {
  if (std::holds_alternative<listener>(e)) return kind::listener;
  if (std::holds_alternative<std::unique_ptr<inlet>>(e)) return kind::inlet;
  return kind::outlet;
}

std::string address_of(const endpoint& e) {
  if (const auto* l = std::get_if<listener>(&e)) return l->address();
  if (const auto* in = std::get_if<std::unique_ptr<inlet>>(&e)) return (*in)->address();
  return std::get<std::unique_ptr<outlet>>(e)->address();
}

class EndpointTable : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/plexus-endpoint-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  boost::asio::io_context io_;
  std::string dir_;
};

TEST_F(EndpointTable, EverySchemeBindsItsKindOfEndpoint) {
  struct row {
    std::string scheme, address;
    kind expected;
    std::string reported_prefix;  // what address() starts with: no role prefix
  };
  const std::vector<row> rows{
      {"ipc", "ipc://" + dir_ + "/native.sock", kind::listener, "ipc://" + dir_},
      {"unix", "unix://" + dir_ + "/unix.sock", kind::listener, "ipc://" + dir_},
      {"tcp", "tcp://127.0.0.1:0", kind::listener, "tcp://127.0.0.1:"},
      {"inproc", "inproc://endpoint-test", kind::listener, "inproc://endpoint-test"},
      {"udp", "udp://127.0.0.1:0", kind::inlet, "udp://127.0.0.1:"},
      {"zmq-frontend+", "zmq-frontend+ipc://" + dir_ + "/front.sock", kind::listener,
       "ipc://" + dir_ + "/front.sock"},
      {"zmq-backend+", "zmq-backend+tcp://127.0.0.1:*", kind::listener, "tcp://127.0.0.1:"},
      {"zmq-pub+", "zmq-pub+ipc://" + dir_ + "/pubs.sock", kind::inlet,
       "ipc://" + dir_ + "/pubs.sock"},
      {"zmq-sub+", "zmq-sub+ipc://" + dir_ + "/subs.sock", kind::outlet,
       "ipc://" + dir_ + "/subs.sock"},
  };
  std::set<std::string> covered;
  for (const auto& r : rows) {
    auto e = bind_endpoint(io_, r.address);
    ASSERT_TRUE(e) << r.address << ": " << e.error().message;
    EXPECT_EQ(kind_of(*e), r.expected) << r.address;
    EXPECT_TRUE(address_of(*e).starts_with(r.reported_prefix)) << address_of(*e);
    EXPECT_FALSE(address_of(*e).ends_with(":0")) << address_of(*e);
    covered.insert(r.scheme);
  }
  const auto schemes = endpoint_schemes();
  EXPECT_EQ(covered, std::set<std::string>(schemes.begin(), schemes.end()));
}

TEST_F(EndpointTable, UnknownSchemeNamesTheKnownOnes) {
  for (const std::string bad : {"bogus://x", "zmq-frontend://127.0.0.1:1", "ipc+tcp://h:1",
                                "zmq-nothing+ipc:///x", "no-scheme"}) {
    auto e = bind_endpoint(io_, bad);
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(e.error().code, errc::invalid_argument);
    EXPECT_NE(e.error().message.find("'" + bad + "'"), std::string::npos) << e.error().message;
    EXPECT_NE(e.error().message.find("known: ipc, unix, tcp, inproc, udp, zmq-frontend+, "
                                     "zmq-backend+, zmq-pub+, zmq-sub+"),
              std::string::npos)
        << e.error().message;
    EXPECT_EQ(e.error().context["address"], bad);
  }
}

TEST_F(EndpointTable, TransportErrorsComeBackNamingTheAddress) {
  auto first = bind_endpoint(io_, "inproc://endpoint-taken");
  ASSERT_TRUE(first);
  auto second = bind_endpoint(io_, "inproc://endpoint-taken");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::unavailable);
  EXPECT_NE(second.error().message.find("inproc://endpoint-taken"), std::string::npos);

  auto bad_zmq = bind_endpoint(io_, "zmq-sub+nonsense://x");
  ASSERT_FALSE(bad_zmq);
  EXPECT_EQ(bad_zmq.error().code, errc::invalid_argument);
  EXPECT_NE(bad_zmq.error().message.find("nonsense://x"), std::string::npos)
      << bad_zmq.error().message;
}

}  // namespace
}  // namespace plexus::transport
