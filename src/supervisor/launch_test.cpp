#include "supervisor/launch.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "support/temp_dir.hpp"
#include "support/wait.hpp"

// Where a command is found (no process), and one launched /bin/sh child with its
// environment and pipes, waited for with deadlines.

namespace plexus::supervisor {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

child_spec named(std::string command) {
  child_spec c;
  c.name = "p";
  c.command = std::move(command);
  return c;
}

void make_file(const std::string& path, fs::perms mode) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "#!/bin/sh\n";
  fs::permissions(path, mode);
}

// Everything a pipe holds until its writers have all closed it (bounded by `limit`).
std::string read_to_eof(int fd, std::chrono::milliseconds limit = 5000ms) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + limit;
  char buf[256];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    const auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::size_t open_descriptors() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

TEST(FindProgram, LooksInTheProgramDirBeforePath) {
  test::temp_dir dir;
  make_file(dir.path() + "/sh", fs::perms::owner_all);
  auto found = find_program(named("sh"), {.program_dir = dir.path(), .config_dir = ""});
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(*found, dir.path() + "/sh");
  auto from_path = find_program(named("sh"), program_search{});
  ASSERT_TRUE(from_path) << from_path.error().message;
  EXPECT_NE(*from_path, dir.path() + "/sh");
  EXPECT_EQ(fs::path(*from_path).filename(), "sh");
}

TEST(FindProgram, AMissingCommandIsNotFoundNamingWhereItLooked) {
  auto plain = find_program(named("no-such-program-plexus"), program_search{});
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, errc::not_found);
  EXPECT_EQ(plain.error().message, "process p: command no-such-program-plexus not found in $PATH");
  auto with_dir =
      find_program(named("no-such-program-plexus"), {.program_dir = "/opt/x", .config_dir = ""});
  ASSERT_FALSE(with_dir);
  EXPECT_EQ(with_dir.error().message,
            "process p: command no-such-program-plexus not found in /opt/x or $PATH");
}

TEST(FindProgram, ARelativePathIsRelativeToTheConfigDirAndMustBeExecutable) {
  test::temp_dir dir;
  make_file(dir.path() + "/bin/tool", fs::perms::owner_all);
  make_file(dir.path() + "/bin/data", fs::perms::owner_read | fs::perms::owner_write);
  auto tool = find_program(named("bin/tool"), {.program_dir = "", .config_dir = dir.path()});
  ASSERT_TRUE(tool) << tool.error().message;
  EXPECT_EQ(*tool, dir.path() + "/bin/tool");
  auto data = find_program(named("bin/data"), {.program_dir = "", .config_dir = dir.path()});
  ASSERT_FALSE(data);
  EXPECT_EQ(data.error().code, errc::not_found);
  EXPECT_EQ(data.error().message,
            "process p: " + dir.path() + "/bin/data is not an executable file");
}

TEST(Launch, GivesTheChildItsEnvironmentPipesAndNotifyDescriptor) {
  asio::io_context io;
  auto spec = named("/bin/sh");
  spec.name = "calc";
  spec.args = {"-c",
               "echo \"$PLEXUS_ROUTER $PLEXUS_PROCESS $PLEXUS_REPLICA $PLEXUS_NOTIFY_FD\"; "
               "echo oops >&2; echo READY=1 >&3; read line || echo no-input"};
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(null, 0);
  std::optional<exit_status> status;
  auto child =
      launch(io, spec,
             {.program = "/bin/sh", .replica = 2, .router_address = "ipc:///r", .stdin_fd = null},
             [&](exit_status s) { status = s; });
  ::close(null);
  ASSERT_TRUE(child) << child.error().message;
  EXPECT_EQ(read_to_eof(child->out.get()), "ipc:///r calc 2 3\nno-input\n");
  EXPECT_EQ(read_to_eof(child->err.get()), "oops\n");
  EXPECT_EQ(read_to_eof(child->notify.get()), "READY=1\n");
  ASSERT_TRUE(test::run_until(io, [&] { return status.has_value(); }));
  EXPECT_EQ(status->code, 0);
}

TEST(Launch, AFailedSpawnLeavesNoDescriptorOpen) {
  asio::io_context io;
  const auto before = open_descriptors();
  auto child = launch(io, named("/nonexistent/plexus-program"),
                      {.program = "/nonexistent/plexus-program",
                       .replica = 0,
                       .router_address = "",
                       .stdin_fd = -1},
                      [](exit_status) {});
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code, errc::not_found);
  EXPECT_EQ(open_descriptors(), before);
}

}  // namespace
}  // namespace plexus::supervisor
