#include "supervisor/launch.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace plexus::supervisor {

namespace fs = std::filesystem;

namespace {

bool executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// A pipe whose ends are close-on-exec; the child gets its end through dup2.
struct pipe_pair {
  os::unique_fd read;
  os::unique_fd write;
};

result<pipe_pair> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return plexus::error(errc::resource_exhausted,
                         std::string("cannot create pipes: ") + ::strerror(errno));
  return pipe_pair{os::unique_fd(fds[0]), os::unique_fd(fds[1])};
}

}  // namespace

result<std::string> find_program(const child_spec& p, const program_search& where) {
  if (p.command.find('/') == std::string::npos) {
    if (!where.program_dir.empty() && executable(fs::path(where.program_dir) / p.command))
      return (fs::path(where.program_dir) / p.command).string();
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':'))
      if (!dir.empty() && executable(fs::path(dir) / p.command))
        return (fs::path(dir) / p.command).string();
    return plexus::error(errc::not_found,
                         "process " + p.name + ": command " + p.command + " not found in " +
                             (where.program_dir.empty() ? "" : where.program_dir + " or ") +
                             "$PATH",
                         {{"process", p.name}, {"command", p.command}});
  }
  fs::path cmd(p.command);
  if (cmd.is_relative() && !where.config_dir.empty()) cmd = fs::path(where.config_dir) / cmd;
  if (!executable(cmd))
    return plexus::error(errc::not_found,
                         "process " + p.name + ": " + cmd.string() + " is not an executable file",
                         {{"process", p.name}, {"command", p.command}});
  return cmd.string();
}

result<launched_child> launch(boost::asio::io_context& io, const child_spec& spec,
                              const launch_options& opts, process::exit_handler on_exit) {
  auto child = start_launch(spec, opts);
  if (!child) return std::move(child).error();
  return adopt_launch(io, std::move(*child), std::move(on_exit));
}

launched_child adopt_launch(boost::asio::io_context& io, started_child child,
                            process::exit_handler on_exit) {
  return launched_child{process::adopt(io, std::move(child.proc), std::move(on_exit)),
                        std::move(child.out), std::move(child.err), std::move(child.notify)};
}

result<started_child> start_launch(const child_spec& spec, const launch_options& opts) {
  auto out = make_pipe();
  if (!out) return std::move(out).error();
  auto err = make_pipe();
  if (!err) return std::move(err).error();
  auto note = make_pipe();
  if (!note) return std::move(note).error();
  // Room for a burst of output while the loop is busy elsewhere (best effort).
  ::fcntl(out->read.get(), F_SETPIPE_SZ, 1 << 20);
  ::fcntl(err->read.get(), F_SETPIPE_SZ, 1 << 20);
  // Reports never block the child: a full pipe drops them.
  ::fcntl(note->write.get(), F_SETFL, ::fcntl(note->write.get(), F_GETFL) | O_NONBLOCK);

  spawn_spec s;
  s.program = opts.program;
  s.args = spec.args;
  s.env = spec.env;
  s.env.emplace_back("PLEXUS_ROUTER", opts.router_address);
  s.env.emplace_back("PLEXUS_PROCESS", spec.name);
  s.env.emplace_back("PLEXUS_REPLICA", std::to_string(opts.replica));
  s.env.emplace_back("PLEXUS_NOTIFY_FD", "3");
  s.cwd = spec.cwd;
  s.stdin_fd = opts.stdin_fd;  // a child in the background never reads the terminal
  s.stdout_fd = out->write.get();
  s.stderr_fd = err->write.get();
  s.fd3 = note->write.get();
  auto p = process::start(s);
  // The child has its copies (or does not exist): only the read ends stay here.
  if (!p) return std::move(p).error();
  return started_child{std::move(*p), std::move(out->read), std::move(err->read),
                       std::move(note->read)};
}

}  // namespace plexus::supervisor
