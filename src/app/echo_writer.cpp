#include "app/echo_writer.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace plexus::app {

struct echo_writer::shared {
  int fd;
  std::size_t capacity;
  std::mutex mutex;
  std::condition_variable wake;     // the writer: something to write, or stop
  std::condition_variable drained;  // the destructor: the buffer is empty
  std::string buffer;               // guarded by mutex
  bool stopping = false;            // guarded by mutex
  bool writing = false;             // guarded by mutex: a batch is being written
  std::uint64_t unreported = 0;     // guarded by mutex: dropped since the last report
  std::atomic<std::uint64_t> dropped{0};

  // Writes all of `text`, however long the descriptor makes it wait; false if it
  // cannot be written at all (closed, EPIPE): the text is lost then.
  bool write_all(std::string_view text) const {
    while (!text.empty()) {
      const auto n = ::write(fd, text.data(), text.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void run() {
    ::prctl(PR_SET_NAME, "plexus-echo");
    std::string batch;
    std::unique_lock lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return stopping || !buffer.empty(); });
      if (buffer.empty()) return;  // stopping, all written
      batch.swap(buffer);
      buffer.clear();
      writing = true;
      lock.unlock();
      write_all(batch);
      batch.clear();
      lock.lock();
      writing = false;
      if (buffer.empty() && unreported > 0) {
        // Drained: say what was lost (outside the budget: one line per drain).
        const auto n = unreported;
        unreported = 0;
        lock.unlock();
        write_all("[plexus] " + std::to_string(n) + " line" + (n == 1 ? "" : "s") +
                  " not echoed: terminal too slow\n");
        lock.lock();
      }
      if (buffer.empty()) drained.notify_all();
    }
  }
};

echo_writer::echo_writer(int fd, std::size_t capacity, std::chrono::milliseconds drain_limit)
    : s_(std::make_shared<shared>()), drain_limit_(drain_limit) {
  s_->fd = fd;
  s_->capacity = capacity;
  s_->buffer.reserve(std::min<std::size_t>(capacity, 64u << 10));
  // Every signal blocked in the writer: no handler of the process runs on it.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread([s = s_] { s->run(); }).detach();
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

echo_writer::~echo_writer() {
  std::unique_lock lock(s_->mutex);
  s_->stopping = true;
  s_->wake.notify_one();
  // What is buffered is written if the terminal takes it in time; a writer stuck on a
  // terminal nobody reads is left behind (it holds `s_`) and ends with the process.
  s_->drained.wait_for(lock, drain_limit_, [&] { return s_->buffer.empty() && !s_->writing; });
}

bool echo_writer::line(std::string_view text) {
  {
    std::lock_guard lock(s_->mutex);
    if (s_->buffer.size() + text.size() + 1 > s_->capacity) {
      ++s_->unreported;
      s_->dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    const bool was_empty = s_->buffer.empty();
    s_->buffer.append(text);
    s_->buffer.push_back('\n');
    if (!was_empty) return true;  // the writer has been woken already
  }
  s_->wake.notify_one();
  return true;
}

std::uint64_t echo_writer::dropped() const noexcept {
  return s_->dropped.load(std::memory_order_relaxed);
}

std::size_t echo_writer::pending() const {
  std::lock_guard lock(s_->mutex);
  return s_->buffer.size();
}

}  // namespace plexus::app
