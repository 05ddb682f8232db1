// Controlling when things happen on a test's loop: a gate that coroutine handlers wait
// at until the test opens it, and a thread that runs the loop for tests that call from
// another thread.
//
//   auto g = std::make_shared<plexus::test::gate>(io);
//   svc.route("hang", [g]() -> asio::awaitable<int> { co_await g->wait(); co_return 1; });
//   g->open();  // every waiting handler resumes on the loop's next turn
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <thread>

namespace plexus::test {

// Lets coroutine handlers wait until the test says go; a cancelled wait throws
// operation_aborted, like the asio operations a real handler awaits. Hold it by shared_ptr from the
// handler's own frame, so it outlives a waiting handler whatever happens to the service.
class gate {
 public:
  explicit gate(boost::asio::io_context& io)
      : timer_(io, std::chrono::steady_clock::time_point::max()) {}
  boost::asio::awaitable<void> wait() {
    if (open_) co_return;
    boost::system::error_code ec;
    co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    // Woken without open(): the handler was cancelled, as any awaited operation would be.
    if (!open_) throw boost::system::system_error(boost::asio::error::operation_aborted);
  }
  void open() {
    open_ = true;
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  bool open_ = false;
};

// Runs an io_context on a thread of its own until destroyed; then the loop is stopped,
// the thread joined and the io_context restartable again by the test.
class loop_thread {
 public:
  explicit loop_thread(boost::asio::io_context& io)
      : io_(io), guard_(boost::asio::make_work_guard(io)) {
    io_.restart();
    thread_ = std::thread([this] { io_.run(); });
  }
  loop_thread(const loop_thread&) = delete;
  loop_thread& operator=(const loop_thread&) = delete;
  ~loop_thread() {
    guard_.reset();
    io_.stop();
    thread_.join();
    io_.restart();
  }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  boost::asio::io_context& io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace plexus::test
