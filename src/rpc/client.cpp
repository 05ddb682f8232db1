#include "plexus/rpc/client.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <map>
#include <queue>
#include <unordered_map>

#include "plexus/wire/control.hpp"
#include "plexus/wire/message.hpp"
#include "rpc/router_link.hpp"

namespace plexus::rpc {

namespace asio = boost::asio;
using detail::router_link;
using clock = std::chrono::steady_clock;

// Owned by the client handle; the callbacks of its router link and timer hold weak
// pointers, so that a late callback never touches freed memory.
class client::impl : public std::enable_shared_from_this<client::impl> {
 public:
  impl(asio::io_context& io, client_options opts)
      : io_(io),
        opts_(std::move(opts)),
        link_(io, opts_.router, opts_.transport, opts_.reconnect, opts_.name),
        timer_(io) {
    link_.on_control(control::dropped, [this](const value& v) {
      dropped_ +=
          static_cast<std::uint64_t>(std::max<std::int64_t>(0, control::int_field(v, "count")));
    });
    link_.on_lost([this](const plexus::error& e) {
      // A failed tcp authentication stays permission_denied; any other loss is unavailable.
      fail_sent({e.code == errc::permission_denied ? errc::permission_denied : errc::unavailable,
                 "connection to the router lost: " + e.message});
    });
    link_.on_registration([this] { on_connection(); });
  }

  result<void> connect() {
    if (link_.is_open() || link_.is_reconnecting()) return {};
    return link_.open(weak_from_this(), [this](const wire::frame_view& f) { on_data(f); });
  }

  void on_link_event(link_handler h) { link_.on_event(std::move(h)); }

  bool connected() const noexcept { return link_.is_open(); }

  void close() {
    link_.close();
    timer_.cancel();  // no deadline is left to watch: the loop may run out of work
    timer_armed_ = false;
    fail_all({errc::unavailable, "client closed"});
  }

  void async_call(std::string_view service, std::string_view method, value params, completion done,
                  duration deadline) {
    if (!params.is_array()) {
      complete_later(std::move(done),
                     plexus::error(errc::invalid_argument, "params must be an array"));
      return;
    }
    const bool waits = !link_.is_open();
    if (waits && !link_.is_reconnecting()) {
      complete_later(std::move(done), link_.not_connected());
      return;
    }
    if (pending_.size() >= max_in_flight) {
      complete_later(std::move(done), plexus::error(errc::resource_exhausted,
                                                    "too many calls in flight (max_in_flight " +
                                                        std::to_string(max_in_flight) + ")"));
      return;
    }
    if (deadline == duration::zero()) deadline = opts_.default_deadline;
    const auto when = clock::now() + deadline;
    const auto msgid = next_msgid();
    scratch_.clear();
    wire::encode(scratch_, wire::request{msgid, std::string(method), std::move(params)});
    pending_call call{std::move(done), 0, deadline, when};
    if (waits) {
      // Budgeted like the connection's own queue, which it will end up in.
      const auto limit = opts_.transport.max_queued_bytes;
      if (waiting_bytes_ + scratch_.size() > limit) {
        complete_later(std::move(call.done),
                       plexus::error(errc::resource_exhausted,
                                     "too many bytes of calls waiting for the router "
                                     "(max_queued_bytes " +
                                         std::to_string(limit) + ")",
                                     {{"limit", "max_queued_bytes"}}));
        return;
      }
      call.service = std::string(service);
      call.request = scratch_;
      waiting_bytes_ += call.request.size();
    } else if (auto ok = link_.send_request(service, scratch_, remaining_ms(when)); !ok) {
      complete_later(std::move(call.done), std::move(ok).error());
      return;
    }
    const auto serial = ++serial_;
    call.serial = serial;
    pending_.emplace(msgid, std::move(call));
    if (waits) {
      waiting_.push_back({serial, msgid});
      if (waiting_.size() > 2 * pending_.size() + 1024)
        std::erase_if(waiting_, [this](const waiting_entry& w) { return !is_waiting(w); });
    }
    deadlines_.push({when, serial, msgid});
    if (deadlines_.size() > 2 * pending_.size() + 1024) compact_deadlines();
    arm_timer(when);
  }

  result<void> notify(std::string_view service, std::string_view method, value params) {
    if (!params.is_array()) return plexus::error(errc::invalid_argument, "params must be an array");
    return link_.notify(service, method, std::move(params));
  }

  result<void> subscribe(std::string prefix, publication_handler handler) {
    if (link_.is_open()) {
      if (auto ok = send_subscription(control::subscribe, prefix); !ok) return ok;
    } else if (!link_.is_reconnecting()) {
      return link_.not_connected();
    }  // else sent by on_connection()
    subscriptions_[std::move(prefix)] = std::move(handler);
    return {};
  }

  result<void> unsubscribe(std::string_view prefix) {
    auto it = subscriptions_.find(std::string(prefix));
    if (it == subscriptions_.end()) return {};
    subscriptions_.erase(it);
    if (!link_.is_open()) return {};
    return send_subscription(control::unsubscribe, prefix);
  }

  std::uint64_t dropped_publications() const noexcept { return dropped_; }
  std::size_t in_flight() const noexcept { return pending_.size(); }
  asio::io_context& io() { return io_; }
  router_link& link() { return link_; }

 private:
  struct pending_call {
    completion done;
    std::uint64_t serial;
    duration deadline;
    clock::time_point when;  // the deadline, which travels with the request
    // A call made while waiting for the router: its frame, sent by on_connection().
    // Empty once sent (sent calls fail when the connection is lost; waiting ones wait).
    std::string service;
    std::vector<std::uint8_t> request;
  };
  struct waiting_entry {  // the order in which waiting calls were made
    std::uint64_t serial;
    std::uint32_t msgid;
  };
  struct deadline_entry {
    clock::time_point when;
    std::uint64_t serial;
    std::uint32_t msgid;
    bool operator>(const deadline_entry& o) const { return when > o.when; }
  };

  // Ids must be unique among calls in flight; 2^32 ids against at most
  // max_in_flight pending calls always leaves a free one close by.
  std::uint32_t next_msgid() {
    while (pending_.count(msgid_counter_) != 0)
      ++msgid_counter_;
    return msgid_counter_++;
  }

  // The time left until `when`, as the request carries it: whole milliseconds, rounded
  // up so that a call with time left never arrives with none.
  static std::uint32_t remaining_ms(clock::time_point when) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(when - clock::now()).count();
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 0, UINT32_MAX));
  }

  void complete_later(completion done, plexus::error e) {
    asio::post(io_, [done = std::move(done), e = std::move(e)]() mutable { done(std::move(e)); });
  }

  bool is_waiting(const waiting_entry& w) const {
    auto it = pending_.find(w.msgid);
    return it != pending_.end() && it->second.serial == w.serial && !it->second.request.empty();
  }

  // The registration hook, on every new connection: subscriptions are renewed, then
  // the calls that waited for the router leave, in the order they were made.
  void on_connection() {
    for (const auto& [prefix, handler] : subscriptions_)
      (void)send_subscription(control::subscribe, prefix);
    auto order = std::move(waiting_);
    waiting_.clear();
    for (const auto& w : order) {
      if (!is_waiting(w)) continue;  // expired while waiting
      auto it = pending_.find(w.msgid);
      auto& call = it->second;
      auto ok = link_.send_request(call.service, call.request, remaining_ms(call.when));
      waiting_bytes_ -= call.request.size();
      call.request = {};
      call.service = {};
      if (!ok) {
        complete_later(std::move(call.done), std::move(ok).error());
        pending_.erase(it);
      }
    }
  }

  result<void> send_subscription(const char* op, std::string_view prefix) {
    return link_.send_control({{"op", op}, {"prefix", std::string(prefix)}});
  }

  void on_publication(std::span<const std::uint8_t> payload) {
    if (subscriptions_.empty()) return;
    auto m = wire::decode(payload, link_.decode_limits());
    if (!m) return;
    const auto& note = std::get<wire::notification>(*m);
    // Handlers may subscribe or unsubscribe: collect first, then call.
    std::vector<publication_handler> matched;
    for (const auto& [prefix, handler] : subscriptions_)
      if (note.method.starts_with(prefix)) matched.push_back(handler);
    for (auto& h : matched)
      h(note.method, note.params);
  }

  // A data frame: a response to a call in flight or a publication.
  void on_data(const wire::frame_view& f) {
    const auto h = wire::peek(f.payload);
    if (!h) return;
    if (h->kind == wire::message_kind::notification) {
      on_publication(f.payload);
      return;
    }
    if (h->kind != wire::message_kind::response) return;
    auto it = pending_.find(h->msgid);
    if (it == pending_.end()) return;  // answered after its deadline: dropped
    auto call = std::move(it->second);
    pending_.erase(it);
    auto m = wire::decode(f.payload, link_.decode_limits());
    if (!m) {
      call.done(plexus::error(errc::internal, "malformed response: " + m.error().message));
      return;
    }
    auto& resp = std::get<wire::response>(*m);
    if (resp.error)
      call.done(std::move(*resp.error));
    else
      call.done(std::move(resp.result));
  }

  void arm_timer(clock::time_point when) {
    if (timer_armed_ && when >= timer_expiry_) return;
    timer_armed_ = true;
    timer_expiry_ = when;
    timer_.expires_at(when);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;  // re-armed earlier or cancelled
      if (auto self = weak.lock()) self->expire();
    });
  }

  void expire() {
    timer_armed_ = false;
    const auto now = clock::now();
    while (!deadlines_.empty() && deadlines_.top().when <= now) {
      const auto d = deadlines_.top();
      deadlines_.pop();
      auto it = pending_.find(d.msgid);
      if (it == pending_.end() || it->second.serial != d.serial) continue;  // answered
      auto call = std::move(it->second);
      pending_.erase(it);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(call.deadline).count();
      if (!call.request.empty()) {  // it never left: the router did not come back in time
        waiting_bytes_ -= call.request.size();
        call.done(plexus::error(errc::deadline_exceeded,
                                "not connected to the router at " + opts_.router +
                                    " within the deadline of " + std::to_string(ms) + " ms",
                                {{"deadline_ms", ms}, {"router", opts_.router}}));
        continue;
      }
      call.done(plexus::error(errc::deadline_exceeded,
                              "no answer within the deadline of " + std::to_string(ms) + " ms",
                              {{"deadline_ms", ms}}));
    }
    // Drop heap entries of calls already answered so the heap does not grow forever.
    while (!deadlines_.empty() && !is_live(deadlines_.top()))
      deadlines_.pop();
    if (!deadlines_.empty()) arm_timer(deadlines_.top().when);
  }

  bool is_live(const deadline_entry& d) const {
    auto it = pending_.find(d.msgid);
    return it != pending_.end() && it->second.serial == d.serial;
  }

  // Answered calls leave their heap entry behind; rebuilding without them keeps the
  // heap within about twice the calls in flight (amortised O(1) per call).
  void compact_deadlines() {
    std::erase_if(deadlines_.entries(), [this](const deadline_entry& d) { return !is_live(d); });
    deadlines_.rebuild();
  }

  // The calls that left on the lost connection fail; those still waiting for the
  // router (made after it closed, before its loss was reported) go on waiting.
  void fail_sent(const plexus::error& e) {
    std::vector<completion> failed;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.request.empty()) {
        failed.push_back(std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    if (pending_.empty()) deadlines_ = {};
    for (auto& done : failed)
      done(e);
  }

  void fail_all(const plexus::error& e) {
    auto calls = std::move(pending_);
    pending_.clear();
    deadlines_ = {};
    waiting_.clear();
    waiting_bytes_ = 0;
    for (auto& [id, call] : calls)
      call.done(e);
  }

  static constexpr std::size_t max_in_flight = 1u << 20;

  asio::io_context& io_;
  client_options opts_;
  router_link link_;
  std::unordered_map<std::uint32_t, pending_call> pending_;
  // A min-heap on `when` whose storage can be filtered in place.
  struct deadline_heap
      : std::priority_queue<deadline_entry, std::vector<deadline_entry>, std::greater<>> {
    std::vector<deadline_entry>& entries() { return c; }
    void rebuild() { std::make_heap(c.begin(), c.end(), comp); }
  };
  deadline_heap deadlines_;
  asio::steady_timer timer_;
  clock::time_point timer_expiry_{};
  bool timer_armed_ = false;
  std::uint32_t msgid_counter_ = 1;
  std::uint64_t serial_ = 0;
  std::vector<std::uint8_t> scratch_;
  std::map<std::string, publication_handler, std::less<>> subscriptions_;
  std::deque<waiting_entry> waiting_;
  std::size_t waiting_bytes_ = 0;
  std::uint64_t dropped_ = 0;
};

client::client(asio::io_context& io, client_options opts)
    : impl_(std::make_shared<impl>(io, std::move(opts))) {}
client::~client() {
  if (impl_) impl_->close();
}
result<void> client::connect() {
  return impl_->connect();
}
bool client::connected() const noexcept {
  return impl_->connected();
}
void client::close() {
  impl_->close();
}
void client::on_link_event(link_handler h) {
  impl_->on_link_event(std::move(h));
}

void client::async_call(std::string_view service, std::string_view method, value params,
                        completion done, duration deadline) {
  impl_->async_call(service, method, std::move(params), std::move(done), deadline);
}

std::future<result<value>> client::call_future(std::string_view service, std::string_view method,
                                               value params, duration deadline) {
  auto promise = std::make_shared<std::promise<result<value>>>();
  auto future = promise->get_future();
  asio::post(impl_->io(),
             [self = impl_, service = std::string(service), method = std::string(method),
              params = std::move(params), promise, deadline]() mutable {
               self->async_call(
                   service, method, std::move(params),
                   [promise](result<value> r) { promise->set_value(std::move(r)); }, deadline);
             });
  return future;
}

asio::awaitable<result<value>> client::co_call(std::string service, std::string method,
                                               value params, duration deadline) {
  // Suspends until the completion runs; the completion resumes the coroutine through
  // a one-shot channel made of a timer that is cancelled when the answer arrives.
  auto state = std::make_shared<std::optional<result<value>>>();
  auto wake = std::make_shared<asio::steady_timer>(impl_->io(), clock::time_point::max());
  impl_->async_call(
      service, method, std::move(params),
      [state, wake](result<value> r) {
        state->emplace(std::move(r));
        wake->cancel();
      },
      deadline);
  if (!state->has_value()) {
    boost::system::error_code ec;
    co_await wake->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return std::move(**state);
}

result<value> client::call_value(std::string_view service, std::string_view method, value params,
                                 duration deadline) {
  std::optional<result<value>> out;
  impl_->async_call(
      service, method, std::move(params), [&out](result<value> r) { out.emplace(std::move(r)); },
      deadline);
  auto& io = impl_->io();
  while (!out) {
    if (io.stopped()) io.restart();
    io.run_one();
  }
  return std::move(*out);
}

result<void> client::notify(std::string_view service, std::string_view method, value params) {
  return impl_->notify(service, method, std::move(params));
}

result<void> client::publish(std::string_view topic, value params) {
  return impl_->notify(wire::publish_name, topic, std::move(params));
}
result<void> client::log(std::string_view level, std::string_view message, value fields) {
  return impl_->link().log(level, message, std::move(fields));
}
result<void> client::subscribe(std::string prefix, publication_handler on_publication) {
  return impl_->subscribe(std::move(prefix), std::move(on_publication));
}
result<void> client::unsubscribe(std::string_view prefix) {
  return impl_->unsubscribe(prefix);
}
std::uint64_t client::dropped_publications() const noexcept {
  return impl_->dropped_publications();
}

std::size_t client::in_flight() const noexcept {
  return impl_->in_flight();
}

}  // namespace plexus::rpc
