// One child process watched from the event loop (the building block of `plexus run`,
// issue 4). The child runs in its own process group and gets SIGKILL when the thread
// that spawned it dies (PR_SET_PDEATHSIG), so a supervisor killed with SIGKILL takes
// its direct children with it. Its exit arrives through a pidfd on the loop: no
// polling, no thread per child, no SIGCHLD handler.
//
//   auto p = plexus::supervisor::process::spawn(io, {.program = "calc"},
//       [](plexus::supervisor::exit_status s) { std::cerr << s.describe(); });
//   (*p)->stop(std::chrono::seconds(5));   // SIGTERM to the group, SIGKILL after 5 s
//
// Threading: the io_context's thread only, except start(), which any thread may call
// (the tree calls it on a spawner thread of its own, so that the loop never waits for an
// exec) and whose result adopt() hands to the loop. Start from a thread that lives as
// long as the children should (the parent-death signal follows the starting thread).
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "plexus/wire/error.hpp"

namespace plexus::supervisor {

struct spawn_spec {
  std::string program;            // a path, or a name looked up in $PATH
  std::vector<std::string> args;  // argv[1...]
  // Added to (or replacing in) the inherited environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd;     // empty: the supervisor's
  int stdin_fd = -1;   // -1: inherit
  int stdout_fd = -1;  // -1: inherit
  int stderr_fd = -1;  // -1: inherit
  int fd3 = -1;        // given to the child as its descriptor 3 (-1: none)
  // Nothing else of this process's reaches the child: every descriptor above 2 (above
  // 3 with fd3) is closed before the exec, close-on-exec or not.
};

struct exit_status {
  bool signaled = false;         // killed by a signal (code is the signal number)
  int code = 0;                  // exit code, or the signal number
  std::string describe() const;  // "exited with 3", "killed by SIGKILL"
};

class process {
 public:
  using exit_handler = std::function<void(exit_status)>;

  // A child that start() has started and no loop watches yet: its pid and pidfd. One
  // destroyed before adopt() took it is killed (SIGKILL to its group) and reaped.
  class started {
   public:
    started() = default;
    started(started&& o) noexcept;
    started& operator=(started&& o) noexcept;
    ~started();
    pid_t pid() const noexcept { return pid_; }

   private:
    friend class process;
    void discard() noexcept;
    pid_t pid_ = 0;
    int pidfd_ = -1;
  };

  // The blocking half of spawn(): the clone, the exec (waited for), the pidfd. Safe to
  // call from any thread, concurrently with the loop's use of other processes. Errors
  // as spawn's.
  static result<started> start(const spawn_spec& spec);
  // The loop's half: watches `child` on `io` (the io_context's thread).
  static std::unique_ptr<process> adopt(boost::asio::io_context& io, started child,
                                        exit_handler on_exit);

  // Starts the child. Errors: not_found (no such program), invalid_argument (empty
  // program, bad cwd), unavailable/internal (fork, pidfd). `on_exit` runs once, from
  // the loop, when the child has exited and been reaped.
  static result<std::unique_ptr<process>> spawn(boost::asio::io_context& io, const spawn_spec& spec,
                                                exit_handler on_exit);

  // Starts the keeper: a small process that outlives this one only to SIGKILL the
  // process groups of the children still running when this process dies, however it
  // dies (SIGKILL included). It covers what the parent-death signal cannot: the
  // children's own children. Call once, before any spawn and before other threads
  // exist. Errors: internal (socketpair, fork).
  static result<void> start_keeper();

  // Makes this process the reaper of the orphans among its descendants
  // (PR_SET_CHILD_SUBREAPER): a grandchild that outlives its parent — one that left
  // the child's process group with setsid(), which the group signals do not reach —
  // becomes a child of this process instead of init's, so that sweep_orphans() can
  // stop it. Call once, from the supervisor's main process. Errors: internal.
  //   process::adopt_orphans();  ...  on SIGCHLD: process::reap_orphans();
  //   at the end, after the children have been stopped: process::sweep_orphans();
  static result<void> adopt_orphans();
  // Reaps the adopted orphans that have exited (call on SIGCHLD); never waits, never
  // touches a child that spawn() started nor the keeper.
  static void reap_orphans();
  // Where the machine allows it, puts every child spawned from now on — and so all of
  // its descendants, setsid() or not — into a cgroup v2 group of its own,
  // "plexus-<pid>" below this process's group, killed as one (cgroup.kill) by
  // sweep_orphans() or, if this process dies, by the keeper. Call after start_keeper,
  // before the spawns, not concurrently with them. Returns the group's directory.
  // Errors: unavailable (no cgroup2 hierarchy, not writable, no cgroup.kill: the
  // message says which); the children are then not contained, adopt_orphans() remains.
  static result<std::string> contain_children();
  // Kills the contained children's group (SIGKILL to all in it) and removes it, then
  // SIGKILLs and reaps every adopted orphan, and the orphans they leave in turn, until
  // none is left (children that spawn() started and that still run, and the keeper,
  // are not orphans). Call once the children have been stopped. Blocks until they have
  // exited (a group at most 2 s); returns how many orphans there were.
  static std::size_t sweep_orphans();

  // A process still running when destroyed is killed (SIGKILL to its group) and
  // reaped before the destructor returns; its exit handler does not run.
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  pid_t pid() const noexcept;
  bool running() const noexcept;
  // Sends `sig` to the child's process group.
  result<void> signal(int sig);
  // SIGTERM to the group now, SIGKILL to the group if the child has not exited after
  // `grace`. When the child exits, whatever is left of its group is SIGKILLed too.
  void stop(std::chrono::milliseconds grace);

 private:
  struct state;
  explicit process(std::shared_ptr<state> s);
  std::shared_ptr<state> s_;
};

}  // namespace plexus::supervisor
