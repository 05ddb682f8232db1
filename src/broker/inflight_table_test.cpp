#include "broker/inflight_table.hpp"

#include <cstdint>
#include <random>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace plexus::broker::detail {
namespace {

using table_key = std::uint64_t;

TEST(InflightTable, PutThenTakeReturnsTheWorkerAndRemovesTheEntry) {
  inflight_table t;
  const auto k = inflight_table::key(3, 17);
  t.put(k, 9);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.take(k), 9u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.take(k), 0u);  // taken once only
}

TEST(InflightTable, PutOverwritesTheWorkerOfAnExistingKey) {
  inflight_table t;
  const auto k = inflight_table::key(1, 1);
  t.put(k, 4);
  t.put(k, 5);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.take(k), 5u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(InflightTable, InsertKeepsAnExistingEntry) {
  inflight_table t;
  const auto k = inflight_table::key(1, 1);
  EXPECT_TRUE(t.insert(k, 4));
  EXPECT_FALSE(t.insert(k, 5));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.take(k), 4u);
  EXPECT_TRUE(t.insert(k, 5));  // free again once taken
  EXPECT_EQ(t.take(k), 5u);
}

TEST(InflightTable, TakeIfRemovesOnlyTheNamedWorkersEntry) {
  inflight_table t;
  const auto k = inflight_table::key(2, 9);
  EXPECT_FALSE(t.take_if(k, 3));  // absent
  ASSERT_TRUE(t.insert(k, 3));
  EXPECT_FALSE(t.take_if(k, 4));  // another worker's entry stays
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.take_if(k, 3));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.take_if(k, 3));  // once only
}

TEST(InflightTable, InsertAndTakeIfKeepProbeChainsWhole) {
  // Many keys collide into chains; refusing, taking and skipping entries of other
  // workers must leave every other key findable.
  inflight_table t;
  for (std::uint32_t m = 1; m <= 3000; ++m)
    ASSERT_TRUE(t.insert(inflight_table::key(7, m), m % 5 + 1));
  for (std::uint32_t m = 1; m <= 3000; ++m)
    EXPECT_FALSE(t.insert(inflight_table::key(7, m), 99));
  for (std::uint32_t m = 1; m <= 3000; m += 2) {
    EXPECT_FALSE(t.take_if(inflight_table::key(7, m), m % 5 + 2));
    EXPECT_TRUE(t.take_if(inflight_table::key(7, m), m % 5 + 1));
  }
  EXPECT_EQ(t.size(), 1500u);
  for (std::uint32_t m = 2; m <= 3000; m += 2)
    EXPECT_EQ(t.take(inflight_table::key(7, m)), m % 5 + 1);
  EXPECT_EQ(t.size(), 0u);
}

TEST(InflightTable, TakeOfAnAbsentKeyReturnsZero) {
  inflight_table t;
  EXPECT_EQ(t.take(inflight_table::key(1, 1)), 0u);
  t.put(inflight_table::key(1, 1), 2);
  EXPECT_EQ(t.take(inflight_table::key(1, 2)), 0u);  // same caller, other msgid
  EXPECT_EQ(t.take(inflight_table::key(2, 1)), 0u);  // same msgid, other caller
  EXPECT_EQ(t.size(), 1u);
}

TEST(InflightTable, KeyKeepsCallerAndMsgidApart) {
  EXPECT_EQ(inflight_table::key(1, 0), std::uint64_t{1} << 32);
  EXPECT_EQ(inflight_table::key(1, 0xffffffffu), (std::uint64_t{1} << 32) | 0xffffffffu);
  EXPECT_NE(inflight_table::key(1, 2), inflight_table::key(2, 1));
}

// Keys whose home slot in a fresh (1024-slot) table is `home`, found by search so that
// probe chains, erasure inside a chain and wrap-around at the end are exercised.
// White-box: mirrors the table's hash. Were the hash to change, the test would still
// check correctness, only less pointedly.
std::vector<table_key> keys_with_home(std::size_t home, std::size_t count) {
  std::vector<table_key> out;
  for (std::uint32_t msgid = 0; out.size() < count; ++msgid) {
    const auto k = inflight_table::key(1, msgid);
    if (((k * 0x9E3779B97F4A7C15ull) >> 20 & 1023) == home) out.push_back(k);
  }
  return out;
}

TEST(InflightTable, RemovingInsideAProbeChainKeepsTheRestReachable) {
  for (std::size_t home : {std::size_t{5}, std::size_t{1022}, std::size_t{1023}}) {
    inflight_table t;
    auto same = keys_with_home(home, 6);
    auto next = keys_with_home((home + 1) & 1023, 3);
    std::vector<table_key> all = same;
    all.insert(all.end(), next.begin(), next.end());
    for (std::size_t i = 0; i < all.size(); ++i)
      t.put(all[i], static_cast<std::uint32_t>(i + 1));
    // Remove from the front, the middle and the end of the chain, one at a time.
    for (std::size_t victim : {std::size_t{0}, std::size_t{3}, std::size_t{7}}) {
      EXPECT_EQ(t.take(all[victim]), victim + 1) << "home " << home;
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (i == 0 || i == 3 || i == 7) continue;
      EXPECT_EQ(t.take(all[i]), i + 1) << "home " << home << ", key " << i;
    }
    EXPECT_EQ(t.size(), 0u);
  }
}

TEST(InflightTable, DrainWorkerReturnsExactlyThatWorkersEntries) {
  inflight_table t;
  std::set<std::pair<std::uint32_t, std::uint32_t>> expected;
  for (std::uint32_t caller = 1; caller <= 5; ++caller) {
    for (std::uint32_t msgid = 0; msgid < 300; ++msgid) {
      const std::uint32_t worker = 1 + (caller * 7 + msgid) % 3;
      t.put(inflight_table::key(caller, msgid), worker);
      if (worker == 2) expected.insert({caller, msgid});
    }
  }
  ASSERT_EQ(t.size(), 1500u);

  std::set<std::pair<std::uint32_t, std::uint32_t>> drained;
  std::size_t calls = 0;
  t.drain_worker(2, [&](std::uint32_t caller, std::uint32_t msgid) {
    ++calls;
    drained.insert({caller, msgid});
  });
  EXPECT_EQ(calls, expected.size());
  EXPECT_EQ(drained, expected);
  EXPECT_EQ(t.size(), 1500u - expected.size());

  // Everyone else's entries are intact.
  for (std::uint32_t caller = 1; caller <= 5; ++caller) {
    for (std::uint32_t msgid = 0; msgid < 300; ++msgid) {
      const std::uint32_t worker = 1 + (caller * 7 + msgid) % 3;
      EXPECT_EQ(t.take(inflight_table::key(caller, msgid)), worker == 2 ? 0u : worker);
    }
  }
  EXPECT_EQ(t.size(), 0u);

  std::size_t again = 0;
  t.drain_worker(2, [&](std::uint32_t, std::uint32_t) { ++again; });
  EXPECT_EQ(again, 0u);
}

TEST(InflightTable, GrowthPastTheInitialCapacityKeepsEveryEntry) {
  inflight_table t;
  constexpr std::uint32_t n = 20000;  // the table starts with 1024 slots
  for (std::uint32_t i = 0; i < n; ++i)
    t.put(inflight_table::key(1 + i % 7, i), 1 + i % 11);
  ASSERT_EQ(t.size(), n);
  for (std::uint32_t i = 0; i < n; ++i)
    ASSERT_EQ(t.take(inflight_table::key(1 + i % 7, i)), 1 + i % 11) << "entry " << i;
  EXPECT_EQ(t.size(), 0u);
}

TEST(InflightTable, RandomOperationsMatchAnUnorderedMapModel) {
  inflight_table t;
  std::unordered_map<table_key, std::uint32_t> model;
  std::mt19937_64 rng(20240611);
  // A small key space so that puts overwrite, takes hit and chains form.
  std::uniform_int_distribution<std::uint32_t> caller(1, 4), msgid(0, 2047), worker(1, 9);
  std::uniform_int_distribution<int> op(0, 999);
  std::size_t hits = 0;
  for (int step = 0; step < 100000; ++step) {
    const int o = op(rng);
    if (o < 550) {
      const auto k = inflight_table::key(caller(rng), msgid(rng));
      const auto w = worker(rng);
      t.put(k, w);
      model[k] = w;
    } else if (o < 999) {
      const auto k = inflight_table::key(caller(rng), msgid(rng));
      auto it = model.find(k);
      const std::uint32_t want = it == model.end() ? 0 : it->second;
      if (it != model.end()) {
        model.erase(it);
        ++hits;
      }
      ASSERT_EQ(t.take(k), want) << "step " << step;
    } else {
      const auto w = worker(rng);
      std::size_t expected = 0;
      for (auto it = model.begin(); it != model.end();) {
        if (it->second == w) {
          it = model.erase(it);
          ++expected;
        } else {
          ++it;
        }
      }
      std::size_t drained = 0;
      t.drain_worker(w, [&](std::uint32_t, std::uint32_t) { ++drained; });
      ASSERT_EQ(drained, expected) << "step " << step;
    }
    ASSERT_EQ(t.size(), model.size()) << "step " << step;
  }
  EXPECT_GT(hits, 10000u);  // the model run really exercised removal
  for (const auto& [k, w] : model)
    EXPECT_EQ(t.take(k), w);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace plexus::broker::detail
