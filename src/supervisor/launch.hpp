// How the tree starts one child: where its command is found, and the process with its
// plumbing — stdout/stderr pipes (1 MiB, read by the tree), the notify pipe on its
// descriptor 3 (non-blocking on the child's side: a full pipe drops a report, never
// blocks the child), stdin from /dev/null, and the PLEXUS_* environment.
//
//   auto program = supervisor::find_program(spec, {.program_dir = dir});
//   auto child = supervisor::launch(io, spec, {.program = *program, .replica = 0, ...},
//                                   [](exit_status s) { ... });
//   line_reader out(io, child->out.release(), {}, ...);
//
// Threading: launch() on the io_context's thread only; start_launch() (the blocking
// half: pipes, clone, exec) on any thread, its result given to adopt_launch() on the
// loop's thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "plexus/os/unique_fd.hpp"
#include "plexus/supervisor/process.hpp"
#include "plexus/supervisor/spec.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::supervisor {

struct program_search {
  // A command without '/' is looked up here first, then in $PATH (/usr/bin:/bin if
  // unset).
  std::string program_dir;
  // A relative command with '/' is relative to this directory.
  std::string config_dir;
};

// The executable file `spec.command` names. Errors: not_found (the message names the
// process and the command).
result<std::string> find_program(const child_spec& spec, const program_search& where);

struct launch_options {
  std::string program;         // from find_program
  std::size_t replica = 0;     // $PLEXUS_REPLICA
  std::string router_address;  // $PLEXUS_ROUTER
  int stdin_fd = -1;           // the child's stdin (not owned; -1: inherit)
};

// A started child and the supervisor's ends of its pipes.
struct launched_child {
  std::unique_ptr<process> proc;
  os::unique_fd out;     // the child's stdout
  os::unique_fd err;     // the child's stderr
  os::unique_fd notify;  // what it writes to descriptor 3 ("READY=1", "HEALTH=…")
};

// Starts `spec` as `opts.program`; `on_exit` as in process::spawn. Errors:
// resource_exhausted (pipes), and those of process::spawn.
result<launched_child> launch(boost::asio::io_context& io, const child_spec& spec,
                              const launch_options& opts, process::exit_handler on_exit);

// launch() in two halves: the child started (any thread; `opts.stdin_fd` must stay open
// meanwhile), then watched by the loop.
struct started_child {
  process::started proc;  // killed and reaped if never adopted
  os::unique_fd out, err, notify;
};
result<started_child> start_launch(const child_spec& spec, const launch_options& opts);
launched_child adopt_launch(boost::asio::io_context& io, started_child child,
                            process::exit_handler on_exit);

}  // namespace plexus::supervisor
