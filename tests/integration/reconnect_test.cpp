// Integration tests of reconnection (issue 10): the README's `plexus router & calc &`
// with calc first, a router killed and restarted under a running calc, and a calc
// stopped while it waits. Real processes on a unique ipc path per test.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using plexus::test::bin;
using plexus::test::child;

class Reconnect : public ::testing::Test {
 protected:
  std::unique_ptr<child> start_router() {
    auto r = std::make_unique<child>(
        std::vector<std::string>{bin("plexus"), "router", "--listen", address_});
    EXPECT_TRUE(r->wait_for_output("listening", 5s)) << r->output();
    return r;
  }
  std::unique_ptr<child> start_calc(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{bin("calc"), "--router", address_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<child>(argv);
  }
  std::pair<int, std::string> add_one_and_two() {
    return plexus::test::run(
        {bin("plexus"), "call", "calc", "add", "1", "2", "--router", address_});
  }

  plexus::test::temp_dir dir_;
  std::string socket_ = dir_.path() + "/router.sock";
  std::string address_ = "ipc://" + socket_;
};

TEST_F(Reconnect, CalcStartedBeforeTheRouterWaitsForItThenServes) {
  auto calc = start_calc();
  // calc has made its first attempt and found nothing listening; it is still running.
  ASSERT_TRUE(calc->wait_for_output("waiting for the router", 5s)) << calc->output();
  EXPECT_FALSE(std::filesystem::exists(socket_));
  EXPECT_FALSE(calc->output_closed());

  auto router = start_router();
  ASSERT_TRUE(calc->wait_for_output("calc ready", 5s)) << calc->output();
  auto [rc, out] = add_one_and_two();
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "3\n");
}

TEST_F(Reconnect, CalcRegistersAgainWithARouterRestartedAtTheSamePath) {
  auto router = start_router();
  auto calc = start_calc();
  ASSERT_TRUE(calc->wait_for_output("calc ready", 5s)) << calc->output();
  ASSERT_EQ(add_one_and_two().first, 0);

  router->kill(SIGKILL);  // no goodbye: the socket file stays behind
  ASSERT_TRUE(calc->wait_for_output("lost the router", 5s)) << calc->output();
  EXPECT_FALSE(calc->output_closed());  // calc waits instead of exiting

  router = start_router();
  ASSERT_TRUE(calc->wait_for_output("reconnected to the router", 5s)) << calc->output();
  // Its registration travels on its own connection: until the router has read it, a
  // call may still find no route. Each attempt waits for its answer.
  std::pair<int, std::string> r;
  const auto end = std::chrono::steady_clock::now() + 10s;
  do {
    r = add_one_and_two();
  } while (r.first != 0 && std::chrono::steady_clock::now() < end);
  EXPECT_EQ(r.first, 0) << r.second;
  EXPECT_EQ(r.second, "3\n");

  const int status = calc->kill(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(Reconnect, CalcWaitingForTheRouterStopsCleanlyOnSigterm) {
  auto calc = start_calc();
  ASSERT_TRUE(calc->wait_for_output("waiting for the router", 5s)) << calc->output();
  ::kill(calc->pid(), SIGTERM);
  ASSERT_TRUE(plexus::test::gone(calc->pid(), 5s));
  const int status = calc->wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(Reconnect, CalcWithFailFastExitsThreeWithoutARouter) {
  auto calc = start_calc({"--fail-fast"});
  ASSERT_TRUE(calc->wait_for_output("nothing is listening", 5s)) << calc->output();
  const int status = calc->wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 3);
}

}  // namespace
