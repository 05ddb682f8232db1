#include "plexus/supervisor/policy.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

// The restart rules alone: no process is started, time is a parameter. Each test
// drives the policy as the tree does (launch what next_launches says, report ready,
// carry a restart plan out at once) and checks the plans.

namespace plexus::supervisor {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using indices = std::vector<std::size_t>;
const policy::time_point t0 = policy::time_point{} + 1000s;

child_spec proc(std::string name, restart_policy r = restart_policy::permanent,
                std::string group = "", std::size_t replicas = 1) {
  child_spec c;
  c.name = std::move(name);
  c.command = "/bin/true";
  c.restart = r;
  c.group = std::move(group);
  c.replicas = replicas;
  return c;
}

tree_spec tree_of(std::vector<child_spec> children,
                  restart_strategy s = restart_strategy::one_for_one, std::size_t intensity = 100) {
  tree_spec t;
  t.strategy = s;
  t.intensity = intensity;
  t.period = 10s;
  t.backoff_initial = 100ms;
  t.backoff_max = 5000ms;
  t.start_concurrency = 100;  // start slots are tested on their own
  t.processes = std::move(children);
  return t;
}

const child_exit clean{.code = 0, .description = "exited with 0"};
const child_exit crash{.code = 1, .description = "exited with 1"};
const child_exit killed{.signaled = true, .code = 9, .description = "killed by SIGKILL"};
const child_exit timeout{.signaled = true,
                         .code = 15,
                         .timed_out = true,
                         .description = "not ready within 5 s (killed by SIGTERM)"};

// Launches and readies what the start queue lets through, as the tree does when every
// child reports READY=1 at once.
void launch_ready(policy& p, policy::time_point now) {
  for (auto batch = p.next_launches(); !batch.empty(); batch = p.next_launches())
    for (auto i : batch) {
      p.started(i);
      p.ready(i, now);
    }
}

// Every child started and ready at `now`.
void start_all(policy& p, policy::time_point now = t0) {
  p.enqueue_all();
  launch_ready(p, now);
}

// Carries a restart plan out at once: the running members stopped, the backoff over,
// the set started and ready again at `now`.
void carry_out(policy& p, const plan& pl, policy::time_point now) {
  ASSERT_EQ(pl.what, plan::restart);
  for (auto i : pl.stop)
    if (p.token(i) == pl.token &&
        (p.state(i) == child_state::starting || p.state(i) == child_state::ready)) {
      p.stopping(i);
      p.stopped(i);
    }
  p.backing_off(pl.token);
  p.enqueue(p.due(pl.token));
  launch_ready(p, now);
}

TEST(RestartPolicy, EachStrategyRestartsItsSetStoppedInReverseAndStartedInDeclaredOrder) {
  struct row {
    restart_strategy strategy;
    std::size_t failed;
    indices start;
    indices stop;
  };
  const std::vector<row> table = {
      {restart_strategy::one_for_one, 1, {1}, {1}},
      {restart_strategy::one_for_all, 1, {0, 1, 2}, {2, 1, 0}},
      {restart_strategy::one_for_all, 0, {0, 1, 2}, {2, 1, 0}},
      {restart_strategy::rest_for_one, 1, {1, 2}, {2, 1}},
      {restart_strategy::rest_for_one, 0, {0, 1, 2}, {2, 1, 0}},
      {restart_strategy::rest_for_one, 2, {2}, {2}},
  };
  for (const auto& r : table) {
    const auto spec = tree_of({proc("a"), proc("b"), proc("c")}, r.strategy);
    policy p(spec);
    start_all(p);
    const auto pl = p.child_exited(r.failed, crash, t0 + 1s);
    SCOPED_TRACE(std::string(to_string(r.strategy)) + ", failed " + std::to_string(r.failed));
    ASSERT_EQ(pl.what, plan::restart);
    EXPECT_EQ(pl.start, r.start);
    EXPECT_EQ(pl.stop, r.stop);
    for (auto i : r.start) {
      EXPECT_EQ(p.restarts(i), 1u);
      EXPECT_EQ(p.token(i), pl.token);
    }
  }
}

TEST(RestartPolicy, TheRestartMessageNamesTheSiblingsTheDelayAndTheStrategy) {
  const auto spec = tree_of({proc("a"), proc("b"), proc("c")}, restart_strategy::one_for_all);
  policy p(spec);
  start_all(p);
  const auto pl = p.child_exited(1, crash, t0 + 1s);
  EXPECT_EQ(pl.message, "restarting with a[0], c[0] in 0.1 s (one_for_all)");
  EXPECT_TRUE(pl.group_message.empty());
  EXPECT_EQ(p.label(2), "c[0]");
}

TEST(RestartPolicy, PolicyAndExitDecideWhetherAChildComesBack) {
  struct row {
    restart_policy policy;
    child_exit how;
    bool back;
  };
  const std::vector<row> table = {
      {restart_policy::permanent, clean, true},   {restart_policy::permanent, crash, true},
      {restart_policy::permanent, killed, true},  {restart_policy::permanent, timeout, true},
      {restart_policy::transient, clean, false},  {restart_policy::transient, crash, true},
      {restart_policy::transient, killed, true},  {restart_policy::transient, timeout, true},
      {restart_policy::temporary, clean, false},  {restart_policy::temporary, crash, false},
      {restart_policy::temporary, killed, false}, {restart_policy::temporary, timeout, false},
  };
  for (const auto& r : table) {
    SCOPED_TRACE(std::string(to_string(r.policy)) + " after " + r.how.description);
    const auto spec = tree_of({proc("w", r.policy)});
    policy p(spec);
    start_all(p);
    const auto pl = p.child_exited(0, r.how, t0 + 1s);
    EXPECT_EQ(pl.what, r.back ? plan::restart : plan::nothing);
    EXPECT_EQ(p.state(0), child_state::exited);
    EXPECT_EQ(p.restarts(0), r.back ? 1u : 0u);
  }
}

TEST(RestartPolicy, ATimedOutChildIsAbnormalEvenWithExitCodeZero) {
  const auto spec = tree_of({proc("w", restart_policy::transient)});
  policy p(spec);
  start_all(p);
  const child_exit how{.code = 0, .timed_out = true, .description = "not ready within 1 s"};
  EXPECT_EQ(p.child_exited(0, how, t0).what, plan::restart);
}

TEST(RestartPolicy, ExactlyIntensityRestartsAreAllowedAndOneMoreGivesUp) {
  for (std::size_t intensity : {0u, 1u, 3u}) {
    SCOPED_TRACE("intensity " + std::to_string(intensity));
    const auto spec =
        tree_of({proc("bystander"), proc("crasher")}, restart_strategy::one_for_one, intensity);
    policy p(spec);
    start_all(p);
    for (std::size_t k = 0; k < intensity; ++k) {
      const auto pl = p.child_exited(1, crash, t0 + ms(k));
      ASSERT_EQ(pl.what, plan::restart) << "restart " << k + 1;
      carry_out(p, pl, t0 + ms(k));
    }
    const auto last = p.child_exited(1, crash, t0 + ms(intensity));
    EXPECT_EQ(last.what, plan::give_up);
    EXPECT_EQ(last.why, outcome::intensity_exceeded);
    EXPECT_EQ(last.message, "crasher[0] failed (exited with 1): more than " +
                                std::to_string(intensity) + " restarts within 10 s (intensity " +
                                std::to_string(intensity) + ", period 10 s); stopping the tree");
    EXPECT_EQ(p.restarts(1), intensity);
  }
}

TEST(RestartPolicy, RestartsOlderThanThePeriodNoLongerCount) {
  // Intensity 2 within 10 s: failures at 0 s and 5 s; is a third one allowed?
  struct row {
    ms third;
    plan::kind expected;
  };
  const std::vector<row> table = {
      {9999ms, plan::give_up},   // all three within the period
      {10000ms, plan::give_up},  // exactly one period after the first: it still counts
      {10001ms, plan::restart},  // the first one has left the window
  };
  for (const auto& r : table) {
    SCOPED_TRACE("third failure at " + seconds_text(r.third) + " s");
    const auto spec = tree_of({proc("w")}, restart_strategy::one_for_one, 2);
    policy p(spec);
    start_all(p);
    carry_out(p, p.child_exited(0, crash, t0), t0);
    carry_out(p, p.child_exited(0, crash, t0 + 5s), t0 + 5s);
    EXPECT_EQ(p.child_exited(0, crash, t0 + r.third).what, r.expected);
  }
}

TEST(RestartPolicy, BackoffIsInitialTimesTwoToTheNMinusOneUpToTheCap) {
  struct row {
    std::size_t n;
    ms initial, max, delay;
  };
  const std::vector<row> table = {
      {1, 100ms, 5000ms, 100ms},  {2, 100ms, 5000ms, 200ms},  {3, 100ms, 5000ms, 400ms},
      {6, 100ms, 5000ms, 3200ms}, {7, 100ms, 5000ms, 5000ms}, {60, 100ms, 5000ms, 5000ms},
      {1, 40ms, 100ms, 40ms},     {2, 40ms, 100ms, 80ms},     {3, 40ms, 100ms, 100ms},
      {4, 40ms, 100ms, 100ms},    {1, 0ms, 0ms, 0ms},         {5, 0ms, 0ms, 0ms},
      {1, 500ms, 200ms, 200ms},
  };
  for (const auto& r : table)
    EXPECT_EQ(policy::backoff(r.n, r.initial, r.max), r.delay)
        << "n " << r.n << ", initial " << r.initial.count() << ", max " << r.max.count();
}

TEST(RestartPolicy, ConsecutiveFailuresBackOffStepByStep) {
  auto spec = tree_of({proc("crasher")});
  spec.backoff_initial = 40ms;
  spec.backoff_max = 100ms;
  policy p(spec);
  start_all(p);
  std::vector<ms> delays;
  for (int k = 0; k < 5; ++k) {
    const auto now = t0 + ms(10 * k);
    const auto pl = p.child_exited(0, crash, now);
    delays.push_back(pl.delay);
    carry_out(p, pl, now);
  }
  EXPECT_EQ(delays, (std::vector<ms>{40ms, 80ms, 100ms, 100ms, 100ms}));
}

TEST(RestartPolicy, BackoffStartsOverOnceTheChildStayedReadyAWholePeriod) {
  const auto spec = tree_of({proc("w")});  // period 10 s, backoff 100 ms … 5 s
  policy p(spec);
  start_all(p);
  auto pl = p.child_exited(0, crash, t0 + 1s);
  EXPECT_EQ(pl.delay, 100ms);
  carry_out(p, pl, t0 + 1s);                        // ready again at 1 s
  pl = p.child_exited(0, crash, t0 + 1s + 9999ms);  // ready for less than a period
  EXPECT_EQ(pl.delay, 200ms);
  carry_out(p, pl, t0 + 11s);               // ready again at 11 s
  pl = p.child_exited(0, crash, t0 + 21s);  // ready for exactly a period: starts over
  EXPECT_EQ(pl.delay, 100ms);
}

TEST(RestartPolicy, TheEmergencyExitCodeGivesUpAtOnce) {
  struct row {
    int emergency_code;
    child_exit how;
    plan::kind expected;
  };
  const std::vector<row> table = {
      {99, {.code = 99, .description = "exited with 99"}, plan::give_up},
      {99, {.signaled = true, .code = 99, .description = "killed by signal 99"}, plan::restart},
      {99, crash, plan::restart},
      {0, clean, plan::restart},  // 0 disables it: a clean exit of a permanent child
  };
  for (const auto& r : table) {
    SCOPED_TRACE("code " + std::to_string(r.emergency_code) + ", " + r.how.description);
    auto spec = tree_of({proc("steady"), proc("bomb")});
    spec.emergency_exit_code = r.emergency_code;
    policy p(spec);
    start_all(p);
    const auto pl = p.child_exited(1, r.how, t0);
    EXPECT_EQ(pl.what, r.expected);
    if (r.expected == plan::give_up) {
      EXPECT_EQ(pl.why, outcome::emergency);
      EXPECT_EQ(pl.message, "emergency stop: bomb[0] exited with the emergency exit code 99");
      EXPECT_EQ(p.restarts(1), 0u);
    }
  }
}

TEST(RestartPolicy, EvenATemporaryChildStopsTheTreeWithTheEmergencyCode) {
  auto spec = tree_of({proc("bomb", restart_policy::temporary)});
  policy p(spec);
  start_all(p);
  EXPECT_EQ(p.child_exited(0, {.code = 99, .description = "exited with 99"}, t0).what,
            plan::give_up);
}

TEST(RestartPolicy, AGroupRestartsItsOwnProcessesByItsOwnStrategy) {
  auto spec = tree_of({proc("a"), proc("b", restart_policy::permanent, "pair"),
                       proc("c", restart_policy::permanent, "pair"), proc("d")});
  spec.groups = {{.name = "pair", .strategy = restart_strategy::one_for_all}};
  policy p(spec);
  start_all(p);
  const auto pl = p.child_exited(2, killed, t0);
  EXPECT_EQ(pl.start, (indices{1, 2}));
  EXPECT_EQ(pl.stop, (indices{2, 1}));
  EXPECT_EQ(pl.message, "restarting with b[0] in 0.1 s (one_for_all)");
}

TEST(RestartPolicy, AGroupBeyondItsIntensityIsRestartedWholeByTheTreeAndCountsOnce) {
  // a, [steady, crasher] in group g (one_for_one, intensity 1), z; the tree is
  // rest_for_one with intensity 1.
  auto spec = tree_of({proc("a"), proc("steady", restart_policy::permanent, "g"),
                       proc("crasher", restart_policy::permanent, "g"), proc("z")},
                      restart_strategy::rest_for_one, 1);
  spec.groups = {{.name = "g", .strategy = restart_strategy::one_for_one, .intensity = 1}};
  policy p(spec);
  start_all(p);
  // Within the group's intensity: only the crasher, and the tree counts nothing.
  auto pl = p.child_exited(2, killed, t0);
  EXPECT_EQ(pl.start, (indices{2}));
  carry_out(p, pl, t0);
  // Beyond it: the group is one child of the tree, its first process standing for it;
  // rest_for_one takes it and what follows, not `a`.
  pl = p.child_exited(2, killed, t0 + 1s);
  ASSERT_EQ(pl.what, plan::restart);
  EXPECT_EQ(pl.start, (indices{1, 2, 3}));
  EXPECT_EQ(pl.stop, (indices{3, 2, 1}));
  EXPECT_EQ(pl.group_message,
            "group g: crasher[0] failed (killed by SIGKILL): more than 1 restarts within 10 s "
            "(intensity 1, period 10 s); restarting the group");
  EXPECT_EQ(pl.message,
            "restarting with steady[0], z[0] in 0.2 s (group g restarted by the tree's "
            "rest_for_one)");
  carry_out(p, pl, t0 + 1s);
  // The group starts with a fresh window: one more failure is the group's own again.
  pl = p.child_exited(2, killed, t0 + 2s);
  EXPECT_EQ(pl.start, (indices{2}));
  carry_out(p, pl, t0 + 2s);
  // The group fails a second time: the tree's second restart, beyond its intensity.
  pl = p.child_exited(2, killed, t0 + 3s);
  EXPECT_EQ(pl.what, plan::give_up);
  EXPECT_EQ(pl.why, outcome::intensity_exceeded);
  EXPECT_EQ(pl.message,
            "group g: crasher[0] failed (killed by SIGKILL): more than 1 restarts within 10 s "
            "(intensity 1, period 10 s); the tree: more than 1 restarts within 10 s (intensity "
            "1, period 10 s); stopping the tree");
}

TEST(RestartPolicy, ANewerRestartSetTakesAMemberOverFromAnOlderOne) {
  const auto spec = tree_of({proc("a"), proc("b"), proc("c")}, restart_strategy::one_for_all);
  policy p(spec);
  start_all(p);
  const auto first = p.child_exited(0, crash, t0);
  EXPECT_EQ(first.start, (indices{0, 1, 2}));
  // b fails while the first set is still stopping: the newer set takes b and c; a,
  // down already, stays with the first.
  const auto second = p.child_exited(1, crash, t0 + 1ms);
  EXPECT_EQ(second.start, (indices{1, 2}));
  EXPECT_NE(second.token, first.token);
  EXPECT_EQ(p.token(0), first.token);
  EXPECT_EQ(p.token(1), second.token);
  EXPECT_EQ(p.token(2), second.token);
  // When the first set's backoff ends, it starts only what it still owns.
  p.backing_off(first.token);
  EXPECT_EQ(p.due(first.token), (indices{0}));
  EXPECT_EQ(p.restarts(1), 2u);
}

TEST(RestartPolicy, AHeldChildIsNeverRestartedNorTakenIntoASet) {
  const auto spec = tree_of({proc("a"), proc("b"), proc("c")}, restart_strategy::one_for_all);
  policy p(spec);
  start_all(p);
  p.hold(p.find("b"));
  EXPECT_TRUE(p.held(1));
  p.stopping(1);
  p.stopped(1);
  const auto pl = p.child_exited(0, crash, t0);
  EXPECT_EQ(pl.start, (indices{0, 2}));
  // Killed by hand while held: it stays down.
  EXPECT_EQ(p.child_exited(1, killed, t0).what, plan::nothing);
}

TEST(RestartPolicy, RestartByNameReleasesTheHoldAndCountsNothing) {
  const auto spec = tree_of({proc("a"), proc("w", restart_policy::permanent, "", 2)},
                            restart_strategy::one_for_one, 0);
  policy p(spec);
  start_all(p);
  const auto members = p.find("w");
  EXPECT_EQ(members, (indices{1, 2}));
  p.hold(members);
  const auto token = p.restart_by_name(members);
  EXPECT_FALSE(p.held(1));
  for (auto i : members) {
    p.stopping(i);
    p.stopped(i);
  }
  EXPECT_EQ(p.restarted_by_name(token), members);
  p.enqueue(members);
  launch_ready(p, t0);
  EXPECT_EQ(p.state(1), child_state::ready);
  EXPECT_EQ(p.state(2), child_state::ready);
  EXPECT_EQ(p.restarts(1), 0u);
  // Intensity 0: the first failure by the rules ends the tree, so nothing was counted.
  EXPECT_EQ(p.child_exited(1, crash, t0).what, plan::give_up);
}

TEST(RestartPolicy, EntriesStartOneAfterAnotherAndReplicasTogether) {
  const auto spec = tree_of({proc("a", restart_policy::permanent, "", 2), proc("b")});
  policy p(spec);
  p.enqueue_all();
  EXPECT_EQ(p.next_launches(), (indices{0, 1}));
  p.started(0);
  p.started(1);
  EXPECT_TRUE(p.next_launches().empty());  // b waits for both replicas of a
  p.ready(0, t0);
  EXPECT_TRUE(p.next_launches().empty());
  p.ready(1, t0);
  EXPECT_EQ(p.next_launches(), (indices{2}));
}

TEST(RestartPolicy, AnEntryGoneForGoodDoesNotHoldTheNextOneBack) {
  const auto spec = tree_of({proc("once", restart_policy::temporary), proc("b")});
  policy p(spec);
  p.enqueue_all();
  EXPECT_EQ(p.next_launches(), (indices{0}));
  p.started(0);
  EXPECT_EQ(p.child_exited(0, clean, t0).what, plan::nothing);
  EXPECT_EQ(p.next_launches(), (indices{1}));
}

TEST(RestartPolicy, AChildThatCouldNotStartIsRestartedLikeACrash) {
  auto spec = tree_of({proc("ghost")});
  spec.emergency_exit_code = 127;  // a failed launch is never an emergency
  policy p(spec);
  p.enqueue_all();
  EXPECT_EQ(p.next_launches(), (indices{0}));
  p.exited(0);
  EXPECT_EQ(p.state(0), child_state::exited);
  const auto pl = p.child_failed(0, {.code = 127, .description = "cannot run ghost"}, t0);
  EXPECT_EQ(pl.what, plan::restart);
}

TEST(StartSlots, AtMostStartConcurrencyChildrenStartAtOnceAndEachReadyOneFreesASlot) {
  auto spec = tree_of({proc("a", restart_policy::permanent, "", 5), proc("b")});
  spec.start_concurrency = 2;
  policy p(spec);
  EXPECT_EQ(p.start_concurrency(), 2u);
  p.enqueue_all();
  EXPECT_EQ(p.next_launches(), (indices{0, 1}));
  p.started(0);
  p.started(1);
  EXPECT_TRUE(p.next_launches().empty());  // both slots taken
  p.ready(0, t0);
  EXPECT_EQ(p.next_launches(), (indices{2}));
  p.started(2);
  EXPECT_TRUE(p.next_launches().empty());
  p.ready(1, t0);
  p.ready(2, t0);
  EXPECT_EQ(p.next_launches(), (indices{3, 4}));
  p.started(3);
  p.started(4);
  p.ready(3, t0);
  EXPECT_TRUE(p.next_launches().empty());  // b still waits for every replica of a
  p.ready(4, t0);
  EXPECT_EQ(p.next_launches(), (indices{5}));
}

TEST(StartSlots, AChildThatDiesWhileStartingFreesItsSlotAndARestartTakesOne) {
  auto spec = tree_of({proc("a", restart_policy::permanent, "", 3)});
  spec.start_concurrency = 1;
  policy p(spec);
  p.enqueue_all();
  EXPECT_EQ(p.next_launches(), (indices{0}));
  p.started(0);
  EXPECT_TRUE(p.next_launches().empty());
  const auto pl = p.child_exited(0, crash, t0);  // dies before it is ready
  ASSERT_EQ(pl.what, plan::restart);
  EXPECT_EQ(p.next_launches(), (indices{1}));  // its slot goes to the next replica
  p.started(1);
  p.backing_off(pl.token);
  p.enqueue(p.due(pl.token));  // the restart waits for a slot like any start
  EXPECT_TRUE(p.next_launches().empty());
  p.ready(1, t0);
  EXPECT_EQ(p.next_launches(), (indices{0}));
}

TEST(StartSlots, NoSettingMeansOneSlotPerUsableCpuButOne) {
  auto spec = tree_of({proc("a")});
  spec.start_concurrency = 0;
  policy p(spec);
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(p.start_concurrency(), static_cast<std::size_t>(std::max(1, CPU_COUNT(&set) - 1)));
}

}  // namespace
}  // namespace plexus::supervisor
