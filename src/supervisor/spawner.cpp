#include "supervisor/spawner.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

namespace plexus::supervisor {

spawner::spawner() {
  // Created with every signal blocked: the thread inherits the mask, so no handler of
  // the process (asio's SIGCHLD, SIGINT) ever runs on it.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  thread_ = std::thread([this] { run(); });
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

spawner::~spawner() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_one();
  thread_.join();
}

void spawner::submit(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void spawner::run() {
  ::prctl(PR_SET_NAME, "plexus-spawner");
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace plexus::supervisor
