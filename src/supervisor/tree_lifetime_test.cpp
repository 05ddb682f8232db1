#include "plexus/supervisor/tree.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/wait.hpp"

// The tree owns its sequences (coroutines on the loop): when it dies in the middle of
// one, the sequence ends without touching it and leaves no work on the loop.

namespace plexus::supervisor {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

child_spec sh(std::string name, std::string script) {
  child_spec c;
  c.name = std::move(name);
  c.command = "/bin/sh";
  c.args = {"-c", std::move(script)};
  c.stop_timeout = 60000ms;
  c.ready_timeout = 5000ms;
  return c;
}

std::optional<child_state> state_of(const tree& t, const std::string& name) {
  for (const auto& s : t.status())
    if (s.name == name) return s.state;
  return std::nullopt;
}

pid_t pid_of(const tree& t, const std::string& name) {
  for (const auto& s : t.status())
    if (s.name == name) return s.pid;
  return 0;
}

// Runs what is left on the loop; true if it ran out of work well before `limit`.
bool drains(asio::io_context& io, std::chrono::milliseconds limit = 10000ms) {
  const auto t0 = std::chrono::steady_clock::now();
  io.restart();
  io.run_for(limit);
  return std::chrono::steady_clock::now() - t0 < limit / 2;
}

// One child that becomes ready and exits 1 at once, restarted after a minute.
tree_spec crasher_with_a_minute_of_backoff() {
  tree_spec spec;
  spec.backoff_initial = 60000ms;
  spec.backoff_max = 60000ms;
  spec.processes = {sh("crasher", "echo READY=1 >&3; exit 1")};
  return spec;
}

TEST(Tree, DyingWhileARestartSetWaitsForAStopEndsTheSequence) {
  asio::io_context io;
  tree_spec spec;
  spec.strategy = restart_strategy::one_for_all;
  spec.backoff_initial = 0ms;
  // stubborn ignores SIGTERM (for a minute before SIGKILL); crasher fails once ready.
  spec.processes = {sh("stubborn", "trap '' TERM; echo READY=1 >&3; exec sleep 1000"),
                    sh("crasher", "echo READY=1 >&3; exit 1")};
  std::optional<tree> t(std::in_place, io, spec, tree_options{});
  bool done = false;
  t->start([&](outcome, const std::string&) { done = true; });
  ASSERT_TRUE(
      test::run_until(io, [&] { return state_of(*t, "stubborn") == child_state::stopping; }));
  const pid_t stubborn = pid_of(*t, "stubborn");
  ASSERT_NE(stubborn, 0);
  t.reset();
  EXPECT_TRUE(test::gone(stubborn));
  EXPECT_TRUE(drains(io));
  EXPECT_FALSE(done);  // a tree that dies does not report its end
}

TEST(Tree, DyingWhileARestartSetBacksOffEndsTheSequence) {
  asio::io_context io;
  const auto spec = crasher_with_a_minute_of_backoff();
  std::optional<tree> t(std::in_place, io, spec, tree_options{});
  t->start([](outcome, const std::string&) {});
  ASSERT_TRUE(test::run_until(io, [&] { return state_of(*t, "crasher") == child_state::backoff; }));
  t.reset();
  EXPECT_TRUE(drains(io));  // the minute of backoff is not waited for
}

TEST(Tree, StoppingDuringABackoffDoesNotWaitForIt) {
  asio::io_context io;
  const auto spec = crasher_with_a_minute_of_backoff();
  tree t(io, spec, tree_options{});
  std::optional<outcome> how;
  t.start([&](outcome o, const std::string&) { how = o; });
  ASSERT_TRUE(test::run_until(io, [&] { return state_of(t, "crasher") == child_state::backoff; }));
  t.stop();
  ASSERT_TRUE(test::run_until(io, [&] { return how.has_value(); }));
  EXPECT_EQ(*how, outcome::stopped);
  EXPECT_EQ(state_of(t, "crasher"), child_state::stopped);
  EXPECT_TRUE(drains(io));
}

}  // namespace
}  // namespace plexus::supervisor
