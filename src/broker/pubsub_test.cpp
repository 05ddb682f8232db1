#include "broker/pubsub.hpp"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "plexus/wire/message.hpp"
#include "transport/connection_impl.hpp"

// The router's publish/subscribe part against connections that record what they are
// handed, to see what is shared and what is copied.

namespace plexus::broker::detail {
namespace {

// Keeps every payload handed to it, by reference when the sender shares it.
class recording_connection final : public transport::detail::connection_impl {
 public:
  void start(transport::connection::frame_handler, transport::connection::close_handler) override {}
  result<void> send(wire::frame_kind, std::string_view,
                    std::span<const std::uint8_t> payload) override {
    kept.push_back(
        std::make_shared<const std::vector<std::uint8_t>>(payload.begin(), payload.end()));
    return {};
  }
  result<void> send_shared(wire::frame_kind, std::string_view,
                           transport::shared_bytes payload) override {
    kept.push_back(std::move(payload));
    return {};
  }
  void close() override {}
  void detach() override {}
  bool is_open() const noexcept override { return true; }
  std::size_t queued_bytes() const noexcept override { return 0; }
  std::string description() const override { return "recording"; }

  std::vector<transport::shared_bytes> kept;
};

struct subscriber {
  explicit subscriber(std::uint32_t id) {
    p.id = id;
    p.conn = transport::connection(recorder);
  }
  std::shared_ptr<recording_connection> recorder = std::make_shared<recording_connection>();
  peer p;
};

std::vector<std::uint8_t> publication(const std::string& topic, value params) {
  std::vector<std::uint8_t> out;
  wire::encode(out, wire::notification{topic, std::move(params)});
  return out;
}

TEST(PubSub, SubscribersOfAPublicationShareOneImmutableBuffer) {
  router_options opts;
  router_stats stats;
  pubsub ps(opts, stats);
  subscriber a(1), b(2), c(3), other(4);
  ps.subscribe(a.p, "tick");
  ps.subscribe(b.p, "ti");
  ps.subscribe(c.p, "");
  ps.subscribe(other.p, "news");

  const auto bytes = publication("tick", value::array({1, std::string(1000, 'x')}));
  ps.publish("", bytes);

  ASSERT_EQ(a.recorder->kept.size(), 1u);
  ASSERT_EQ(b.recorder->kept.size(), 1u);
  ASSERT_EQ(c.recorder->kept.size(), 1u);
  EXPECT_TRUE(other.recorder->kept.empty());
  const auto& shared = a.recorder->kept[0];
  EXPECT_EQ(b.recorder->kept[0].get(), shared.get());
  EXPECT_EQ(c.recorder->kept[0].get(), shared.get());
  EXPECT_EQ(shared.use_count(), 3);  // the three queues; the router kept none
  EXPECT_EQ(*shared, bytes);
  EXPECT_EQ(stats.delivered, 3u);

  // A publication made in the router's process is encoded once and shared too.
  ps.publish_local("tick", value::array({2}));
  ASSERT_EQ(a.recorder->kept.size(), 2u);
  ASSERT_EQ(c.recorder->kept.size(), 2u);
  EXPECT_EQ(a.recorder->kept[1].get(), c.recorder->kept[1].get());
  EXPECT_EQ(a.recorder->kept[1].use_count(), 3);
  EXPECT_EQ(*a.recorder->kept[1], publication("tick", value::array({2})));
}

}  // namespace
}  // namespace plexus::broker::detail
