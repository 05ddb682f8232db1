#include "plexus/supervisor/process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "support/process.hpp"
#include "support/wait.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "plexus/os/unique_fd.hpp"

// Child processes started and watched on a loop the test drives; every wait has a
// deadline, every child is killed and reaped by the end of its test.

namespace plexus::supervisor {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

using test::run_until;

// Reads what a child wrote to a pipe until it closes it (bounded by the deadline).
std::string read_all(int fd, std::chrono::milliseconds limit = 5000ms) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + limit;
  char buf[256];
  while (std::chrono::steady_clock::now() < end) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

using test::gone;
using test::session_of;

TEST(Process, ReportsTheExitCode) {
  asio::io_context io;
  std::optional<exit_status> status;
  auto p = process::spawn(io, {.program = "/bin/sh", .args = {"-c", "exit 3"}},
                          [&](exit_status s) { status = s; });
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_GT((*p)->pid(), 0);
  ASSERT_TRUE(run_until(io, [&] { return status.has_value(); }));
  EXPECT_FALSE(status->signaled);
  EXPECT_EQ(status->code, 3);
  EXPECT_EQ(status->describe(), "exited with 3");
  EXPECT_FALSE((*p)->running());
}

TEST(Process, UnknownProgramIsNotFoundNamingIt) {
  asio::io_context io;
  auto p = process::spawn(io, {.program = "plexus-no-such-program"}, [](exit_status) {});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::not_found);
  EXPECT_NE(p.error().message.find("plexus-no-such-program"), std::string::npos);
  auto bad_cwd =
      process::spawn(io, {.program = "/bin/true", .cwd = "/nonexistent-dir"}, [](exit_status) {});
  ASSERT_FALSE(bad_cwd);
  EXPECT_NE(bad_cwd.error().message.find("/nonexistent-dir"), std::string::npos);
}

TEST(Process, PassesArgumentsEnvironmentAndWorkingDirectory) {
  asio::io_context io;
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);  // children get only the dup2-ed end
  std::optional<exit_status> status;
  auto p = process::spawn(
      io,
      {.program = "sh",
       .args = {"-c", "printf '%s|%s|%s' \"$1\" \"$PLEXUS_TEST_VAR\" \"$PWD\"", "sh", "one arg"},
       .env = {{"PLEXUS_TEST_VAR", "héllo"}},
       .cwd = "/tmp",
       .stdout_fd = out[1]},
      [&](exit_status s) { status = s; });
  ::close(out[1]);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(read_all(out[0]), "one arg|héllo|/tmp");
  ::close(out[0]);
  ASSERT_TRUE(run_until(io, [&] { return status.has_value(); }));
  EXPECT_EQ(status->code, 0);
}

TEST(Process, StopEndsAChildThatHonoursSigterm) {
  asio::io_context io;
  std::optional<exit_status> status;
  auto p =
      process::spawn(io, {.program = "sleep", .args = {"30"}}, [&](exit_status s) { status = s; });
  ASSERT_TRUE(p);
  (*p)->stop(10s);
  ASSERT_TRUE(run_until(io, [&] { return status.has_value(); }));
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->code, SIGTERM);
  EXPECT_EQ(status->describe(), "killed by SIGTERM");
}

TEST(Process, ChildIgnoringSigtermIsKilledWithItsGroupAfterTheGrace) {
  asio::io_context io;
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);  // children get only the dup2-ed end
  std::optional<exit_status> status;
  // A shell that ignores SIGTERM, with a grandchild (in the same group) that would
  // outlive it; it prints the grandchild's pid and closes its stdout.
  auto p = process::spawn(io,
                          {.program = "sh",
                           .args = {"-c",
                                    "trap '' TERM; sleep 30 >/dev/null & echo $!; "
                                    "exec >/dev/null; wait"},
                           .stdout_fd = out[1]},
                          [&](exit_status s) { status = s; });
  ::close(out[1]);
  ASSERT_TRUE(p);
  const pid_t grandchild = std::stoi(read_all(out[0]));
  ::close(out[0]);
  const auto stopped = std::chrono::steady_clock::now();
  (*p)->stop(300ms);
  ASSERT_TRUE(run_until(io, [&] { return status.has_value(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - stopped, 300ms);  // it had its grace
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->code, SIGKILL);
  EXPECT_TRUE(gone(grandchild)) << "grandchild " << grandchild << " survived";
}

TEST(Process, DestroyingARunningProcessKillsAndReapsIt) {
  asio::io_context io;
  bool called = false;
  auto p =
      process::spawn(io, {.program = "sleep", .args = {"30"}}, [&](exit_status) { called = true; });
  ASSERT_TRUE(p);
  const pid_t pid = (*p)->pid();
  p->reset();
  // Reaped: no zombie left, and no longer our child.
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_TRUE(gone(pid, 1000ms));
  io.restart();
  io.poll();
  EXPECT_FALSE(called);
}

TEST(Process, ChildDiesWithASupervisorKilledBySigkill) {
  // plexus-spawn-tool spawns `sleep 30` with process::spawn and prints its pid; killing
  // the tool with SIGKILL (no cleanup can run) must take the sleep with it.
  asio::io_context io;
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  std::optional<exit_status> tool_status;
  auto tool = process::spawn(io,
                             {.program = std::string(PLEXUS_BIN_DIR) + "/plexus-spawn-tool",
                              .args = {"sleep", "30"},
                              .stdout_fd = out[1]},
                             [&](exit_status s) { tool_status = s; });
  ::close(out[1]);
  ASSERT_TRUE(tool) << tool.error().message;
  std::string line;
  char c;
  while (::read(out[0], &c, 1) == 1 && c != '\n')
    line += c;
  ::close(out[0]);
  ASSERT_FALSE(line.empty());
  const pid_t grandchild = std::stoi(line);
  ASSERT_EQ(::kill((*tool)->pid(), 0), 0);
  ASSERT_EQ(::kill(grandchild, 0), 0);
  // SIGKILL the tool alone (not its group): only the parent-death signal can reach
  // the sleep, which lives in a process group of its own.
  ASSERT_EQ(::kill((*tool)->pid(), SIGKILL), 0);
  ASSERT_TRUE(run_until(io, [&] { return tool_status.has_value(); }));
  EXPECT_EQ(tool_status->describe(), "killed by SIGKILL");
  EXPECT_TRUE(gone(grandchild)) << "child " << grandchild << " outlived its supervisor";
}

// The descriptors a child's shell sees, as "0 1 2 3" (ls sorts them). Two
// descriptors of this process lack close-on-exec, as a library's might (one low, one
// high); neither may reach the child.
std::string descriptors_of_child(bool with_fd3) {
  asio::io_context io;
  os::unique_fd leaked(::open("/dev/null", O_RDONLY));
  EXPECT_TRUE(leaked);
  os::unique_fd leaked_high(::fcntl(leaked.get(), F_DUPFD, 200));
  EXPECT_TRUE(leaked_high);
  os::unique_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int out[2], note[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(note, O_CLOEXEC), 0);
  os::unique_fd out_read(out[0]), out_write(out[1]), note_read(note[0]), note_write(note[1]);
  std::optional<exit_status> status;
  // "; exit": the shell forks ls instead of becoming it, so ls lists the shell's table.
  auto p = process::spawn(io,
                          {.program = "/bin/sh",
                           .args = {"-c", "ls /proc/$$/fd; exit 0"},
                           .stdin_fd = null.get(),
                           .stdout_fd = out_write.get(),
                           .fd3 = with_fd3 ? note_write.get() : -1},
                          [&](exit_status s) { status = s; });
  out_write.close();
  note_write.close();
  EXPECT_TRUE(p) << p.error().message;
  if (!p) return {};
  std::string fds = read_all(out_read.get());
  EXPECT_TRUE(run_until(io, [&] { return status.has_value(); }));
  std::replace(fds.begin(), fds.end(), '\n', ' ');
  while (!fds.empty() && fds.back() == ' ')
    fds.pop_back();
  return fds;
}

TEST(Process, ChildStartsWithOnlyItsStandardDescriptorsAndFd3) {
  EXPECT_EQ(descriptors_of_child(true), "0 1 2 3");
  EXPECT_EQ(descriptors_of_child(false), "0 1 2");
}

// A shell whose child leaves the shell's process group and session (setsid), out of
// reach of the group signals; the shell then waits for it. `grandchild` is its pid.
struct setsid_shell {
  std::unique_ptr<process> shell;
  pid_t grandchild = 0;
};

setsid_shell spawn_setsid_shell(asio::io_context& io, process::exit_handler on_exit) {
  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  os::unique_fd out_read(out[0]), out_write(out[1]);
  auto p = process::spawn(
      io,
      {.program = "/bin/sh",
       .args = {"-c", "setsid sh -c 'echo $$; exec sleep 30 >/dev/null' & exec >/dev/null; wait"},
       .stdout_fd = out_write.get()},
      std::move(on_exit));
  out_write.close();
  EXPECT_TRUE(p) << p.error().message;
  if (!p) return {};
  const auto pid = read_all(out_read.get());
  return {std::move(*p), pid.empty() ? 0 : std::stoi(pid)};
}

TEST(Process, AnOrphanThatLeftItsGroupIsAdoptedAndSwept) {
  ASSERT_TRUE(process::adopt_orphans());
  struct subreaper_off {
    ~subreaper_off() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
  } off;
  asio::io_context io;
  std::optional<exit_status> status;
  auto [shell, grandchild] = spawn_setsid_shell(io, [&](exit_status s) { status = s; });
  auto bystander = process::spawn(io, {.program = "sleep", .args = {"30"}}, [](exit_status) {});
  ASSERT_TRUE(shell);
  ASSERT_TRUE(bystander);
  ASSERT_GT(grandchild, 0);
  ASSERT_EQ(session_of(grandchild), grandchild) << "the grandchild did not call setsid()";
  shell->stop(5s);
  ASSERT_TRUE(run_until(io, [&] { return status.has_value(); }));
  // The group signals missed it; it is now this process's child.
  ASSERT_FALSE(gone(grandchild, 0ms)) << "the setsid grandchild was stopped with its group";
  EXPECT_EQ(process::sweep_orphans(), 1u);
  EXPECT_TRUE(gone(grandchild, 1000ms));
  EXPECT_EQ(::waitpid(grandchild, nullptr, WNOHANG), -1);  // and reaped
  EXPECT_TRUE((*bystander)->running());
  EXPECT_FALSE(gone((*bystander)->pid(), 0ms)) << "a spawned child is not an orphan";
}

TEST(Process, ContainedChildrenAreKilledWithTheirSetsidDescendants) {
  auto dir = process::contain_children();
  if (!dir) GTEST_SKIP() << "the cgroup path is not available here: " << dir.error().message;
  struct uncontain {
    ~uncontain() { process::sweep_orphans(); }  // also ends the containment
  } end;
  asio::io_context io;
  auto [shell, grandchild] = spawn_setsid_shell(io, [](exit_status) {});
  ASSERT_TRUE(shell);
  ASSERT_GT(grandchild, 0);
  ASSERT_EQ(session_of(grandchild), grandchild) << "the grandchild did not call setsid()";
  std::ifstream cgroup("/proc/" + std::to_string(grandchild) + "/cgroup");
  const std::string groups((std::istreambuf_iterator<char>(cgroup)),
                           std::istreambuf_iterator<char>());
  EXPECT_NE(groups.find("/plexus-" + std::to_string(::getpid()) + "\n"), std::string::npos)
      << groups;
  shell.reset();  // SIGKILL to the shell's group: the grandchild is not in it
  ASSERT_FALSE(gone(grandchild, 0ms)) << "the setsid grandchild was killed with the group";
  process::sweep_orphans();
  EXPECT_TRUE(gone(grandchild)) << "grandchild " << grandchild << " outlived its cgroup";
  EXPECT_FALSE(std::filesystem::exists(*dir)) << *dir;
}

}  // namespace
}  // namespace plexus::supervisor
