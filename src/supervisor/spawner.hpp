// A thread of the tree's own that runs what blocks when a child starts (the program's
// lookup, the pipes, the clone and the wait for the exec: about 6 ms a child), so that
// the loop goes on answering meanwhile (issue 10 item 11). The loop submits jobs; each
// job posts its result back to the loop itself (asio::post).
//
//   spawner s;
//   s.submit([&io, weak] { auto r = start_launch(...); asio::post(io, [r = ...] { ... }); });
//
// Jobs run one at a time, in the order submitted. The thread lives as long as the
// spawner: the children it starts get SIGKILL when it ends (PR_SET_PDEATHSIG follows
// the starting thread), so the spawner must outlive them. All signals are blocked in it.
// Threading: submit() from any thread; the destructor drops the jobs not begun, waits
// for the one running, and joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace plexus::supervisor {

class spawner {
 public:
  spawner();
  ~spawner();
  spawner(const spawner&) = delete;
  spawner& operator=(const spawner&) = delete;

  void submit(std::function<void()> job);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;  // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  std::thread thread_;
};

}  // namespace plexus::supervisor
