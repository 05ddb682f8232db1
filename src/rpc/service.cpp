#include "plexus/rpc/service.hpp"

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <iostream>
#include <unordered_map>

#include "plexus/rpc/supervision.hpp"
#include "plexus/wire/control.hpp"
#include "plexus/wire/message.hpp"
#include "rpc/router_link.hpp"

namespace plexus::rpc {

namespace asio = boost::asio;
using detail::router_link;

namespace {

plexus::error from_exception(std::exception_ptr ep, const std::string& method) {
  try {
    std::rethrow_exception(ep);
  } catch (const remote_error& e) {
    auto err = e.error();
    if (!err.context.contains("method")) err.context["method"] = method;
    return err;
  } catch (const std::exception& e) {
    return {errc::internal, e.what(), {{"method", method}, {"exception", typeid(e).name()}}};
  } catch (...) {
    return {errc::internal, "handler threw a non-standard exception", {{"method", method}}};
  }
}

}  // namespace

class service::impl : public std::enable_shared_from_this<service::impl> {
 public:
  impl(asio::io_context& io, service_options opts)
      : io_(io),
        opts_(std::move(opts)),
        link_(io, opts_.router, opts_.transport, opts_.reconnect, opts_.name) {
    link_.on_control(control::registered, [this](const value&) { on_registered(); });
    link_.on_control(control::error_op, [this](const value& v) {
      const auto about = control::text_field(v, "about", "a request");
      std::cerr << "plexus service " << opts_.name << ": router refused " << about << ": "
                << control::text_field(v, "message") << "\n";
      if (about == control::register_service) refused(v);
    });
    link_.on_registration([this] { send_registration(); });
    link_.on_lost([this](const plexus::error& e) { on_lost(e); });
    link_.accept_deadlines();
  }

  ~impl() {
    if (pool_) pool_->join();
  }

  struct handler {
    std::string signature;
    sync_invoker sync;
    async_invoker async;
    route_options opts;
  };

  void add(std::string method, handler h) {
    handlers_[std::move(method)] = std::make_shared<handler>(std::move(h));
  }
  void add_http_route(value route) { http_routes_.push_back(std::move(route)); }

  result<void> start(std::function<void()> on_ready) {
    if (opts_.name.empty() || opts_.name.size() > wire::max_name_bytes)
      return plexus::error(errc::invalid_argument, "a service needs a name of 1 to 255 bytes");
    auto ok = link_.open(weak_from_this(), [this](const wire::frame_view& f) { on_data(f); });
    if (ok) on_ready_ = std::move(on_ready);
    return ok;
  }

  void stop(std::function<void()> done) {
    if (drained_) {  // already finished: waiters ran and will not run again
      if (done) asio::post(io_, std::move(done));
      return;
    }
    if (done) drain_waiters_.push_back(std::move(done));
    if (draining_) return;
    draining_ = true;
    if (link_.is_open())
      (void)link_.send_control({{"op", control::unregister_service}, {"service", opts_.name}});
    else
      link_.close();  // waiting for the router: stop waiting, do not register again
    drain_timer_ = std::make_unique<asio::steady_timer>(io_, opts_.drain_timeout);
    drain_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->finish_drain();
    });
    maybe_finish_drain();
  }

  void on_disconnect(std::function<void(const plexus::error&)> f) { on_disconnect_ = std::move(f); }
  void on_link_event(link_handler h) { link_.on_event(std::move(h)); }
  bool connected() const noexcept { return link_.is_open(); }
  std::size_t in_flight() const noexcept { return in_flight_; }
  std::uint64_t expired() const noexcept { return expired_; }
  const std::string& name() const noexcept { return opts_.name; }
  router_link& link() { return link_; }

 private:
  // One call being answered by a coroutine or blocking handler.
  struct call_state {
    std::string caller;  // the frame name to answer to
    std::uint32_t msgid = 0;
    bool is_request = true;
    bool answered = false;
    std::unique_ptr<asio::steady_timer> timer;
    asio::cancellation_signal cancel;  // a coroutine handler's: emitted at the deadline
  };

  // The registration hook: the service name and its methods, sorted by name.
  void send_registration() {
    std::vector<const std::pair<const std::string, std::shared_ptr<handler>>*> sorted;
    for (const auto& entry : handlers_)
      sorted.push_back(&entry);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    value methods = value::array();
    for (const auto* entry : sorted)
      methods.push_back({{"name", entry->first},
                         {"signature", entry->second->signature},
                         {"blocking", entry->second->opts.blocking}});
    value reg = {{"op", control::register_service}, {"service", opts_.name}, {"methods", methods}};
    if (!http_routes_.empty()) reg["routes"] = http_routes_;
    (void)link_.send_control(reg);
  }

  // The router refused the registration (a duplicate HTTP route, a bad name): serving
  // without it is not serving, and registering again would be refused again. The
  // service ends as if the router had gone for good.
  void refused(const value& v) {
    const auto code = errc_from_string(control::text_field(v, "code"));
    plexus::error why(code.value_or(errc::invalid_argument),
                      "the router refused to register service " + opts_.name + ": " +
                          control::text_field(v, "message"),
                      {{"service", opts_.name}});
    draining_ = true;
    finish_drain();
    if (on_disconnect_) on_disconnect_(why);
  }

  // A data frame: a request or a notification.
  void on_data(const wire::frame_view& f) {
    auto m = wire::decode(f.payload, link_.decode_limits());
    if (!m) {
      // Answer what can be answered: a request whose msgid is still readable.
      const auto h = wire::peek(f.payload);
      if (h && h->kind == wire::message_kind::request)
        respond(f.name, h->msgid, std::move(m).error());
      return;
    }
    if (auto* req = std::get_if<wire::request>(&*m)) {
      dispatch(std::string(f.name), req->msgid, true, req->method, std::move(req->params),
               f.deadline_ms);
    } else if (auto* note = std::get_if<wire::notification>(&*m)) {
      dispatch(std::string(f.name), 0, false, note->method, std::move(note->params), {});
    }
    // Responses are not for a service; ignored.
  }

  void on_registered() {
    if (registered_) return;
    registered_ = true;
    notify_ready();  // to plexus run, if it started this process
    report_health();
    if (on_ready_) {
      auto ready = std::move(on_ready_);
      on_ready_ = nullptr;
      ready();
    }
  }

  // Every second (or $PLEXUS_HEALTH_INTERVAL_MS) while supervised: calls in flight and
  // bytes queued to the router. The supervisor adds threads, RSS and CPU from /proc.
  void report_health() {
    if (!supervised() || drained_) return;
    notify_health({{"in_flight", in_flight_},
                   {"expired", expired_},
                   {"queued_bytes", link_.queued_bytes()},
                   {"worker_threads", opts_.worker_threads}});
    if (!health_timer_) {
      health_timer_ = std::make_unique<asio::steady_timer>(io_);
      const char* ms = std::getenv("PLEXUS_HEALTH_INTERVAL_MS");
      health_interval_ = std::chrono::milliseconds(ms && std::atoi(ms) > 0 ? std::atoi(ms) : 1000);
    }
    health_timer_->expires_after(health_interval_);
    health_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->report_health();
    });
  }

  // Calls in flight when the router went away cannot be answered: their callers have
  // failed already. With reconnection the link tries again after this.
  void on_lost(const plexus::error& e) {
    if (draining_) {
      finish_drain();
      return;
    }
    if (!link_.reconnects() && on_disconnect_) on_disconnect_(e);
  }

  // `caller_ms`: the caller's remaining time, when the request carried it.
  void dispatch(std::string caller, std::uint32_t msgid, bool is_request, const std::string& method,
                value params, std::optional<std::uint32_t> caller_ms) {
    if (draining_) {
      if (is_request)
        respond(caller, msgid,
                plexus::error(errc::unavailable, "service " + opts_.name + " is draining",
                              {{"service", opts_.name}}));
      return;
    }
    auto it = handlers_.find(method);
    if (it == handlers_.end()) {
      if (is_request) {
        value known = value::array();
        for (const auto& [name, h] : handlers_)
          known.push_back(name);
        respond(caller, msgid,
                plexus::error(errc::not_found,
                              "service " + opts_.name + " has no method '" + method + "'",
                              {{"service", opts_.name}, {"method", method}, {"methods", known}}));
      }
      return;
    }
    const auto handler_ptr = it->second;
    const auto& h = *handler_ptr;
    if (h.sync && !h.opts.blocking) {
      result<value> r = run_sync(h.sync, params, method);
      if (is_request) respond(caller, msgid, std::move(r));
      return;
    }
    auto state = std::make_shared<call_state>();
    state->caller = std::move(caller);
    state->msgid = msgid;
    state->is_request = is_request;
    ++in_flight_;
    // The earlier of the handler's own deadline and the caller's: at the first the
    // caller is answered deadline_exceeded; at the second the router has answered it
    // already. Either way a coroutine handler is cancelled, a blocking one's result
    // dropped, and the call counted in expired().
    const auto own = h.opts.deadline.count() > 0 ? h.opts.deadline : opts_.handler_deadline;
    const bool callers_first = caller_ms && std::chrono::milliseconds(*caller_ms) < own;
    const auto deadline = callers_first ? std::chrono::milliseconds(*caller_ms) : own;
    state->timer = std::make_unique<asio::steady_timer>(io_, deadline);
    state->timer->async_wait([weak = weak_from_this(), state, method, deadline,
                              callers_first](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->expire(state, method, deadline, callers_first);
    });
    if (h.async) {
      asio::co_spawn(
          io_, h.async(std::move(params)),
          asio::bind_cancellation_slot(state->cancel.slot(),
                                       // handler_ptr keeps the handler (whose captures the
                                       // coroutine uses) alive.
                                       [weak = weak_from_this(), state, method, handler_ptr](
                                           std::exception_ptr ep, result<value> r) {
                                         auto self = weak.lock();
                                         if (!self) return;
                                         if (ep)
                                           self->finish(state, from_exception(ep, method));
                                         else
                                           self->finish(state, std::move(r));
                                       }));
      return;
    }
    if (!pool_) pool_ = std::make_unique<asio::thread_pool>(opts_.worker_threads);
    // The pool thread never owns the impl (its destructor joins the pool): it hands
    // the result back to the loop, which finds the impl alive or not.
    asio::post(*pool_, [weak = weak_from_this(), &io = io_, state, handler_ptr, method,
                        params = std::move(params)]() mutable {
      auto r = run_sync(handler_ptr->sync, params, method);
      asio::post(io, [weak, state, r = std::move(r)]() mutable {
        if (auto self = weak.lock()) self->finish(state, std::move(r));
      });
    });
  }

  // Hands `params` over to the handler, which may move out of them.
  static result<value> run_sync(const sync_invoker& fn, value& params, const std::string& method) {
    try {
      return fn(std::move(params));
    } catch (...) {
      return from_exception(std::current_exception(), method);
    }
  }

  void finish(const std::shared_ptr<call_state>& state, result<value> r, bool answer = true) {
    if (state->answered) return;  // the deadline won, or the handler did
    state->answered = true;
    state->timer->cancel();
    --in_flight_;
    if (answer && state->is_request) respond(state->caller, state->msgid, std::move(r));
    maybe_finish_drain();
  }

  // A deadline passed before the handler finished: the call ends now. The caller is
  // answered unless its own deadline was the one (the router answered it then).
  void expire(const std::shared_ptr<call_state>& state, const std::string& method,
              std::chrono::milliseconds deadline, bool callers) {
    if (state->answered) return;
    ++expired_;
    const auto ms = deadline.count();
    finish(state,
           plexus::error(
               errc::deadline_exceeded,
               "handler " + method + " exceeded its deadline of " + std::to_string(ms) + " ms",
               {{"method", method}, {"deadline_ms", ms}}),
           !callers);
    // After finish(): the coroutine's completion, if cancelling ends it at once, finds
    // the call answered.
    state->cancel.emit(asio::cancellation_type::terminal);
  }

  void respond(std::string_view caller, std::uint32_t msgid, result<value> r) {
    scratch_.clear();
    wire::response resp;
    resp.msgid = msgid;
    if (r)
      resp.result = std::move(*r);
    else
      resp.error = std::move(r).error();
    wire::encode(scratch_, resp);
    if (auto ok = link_.send_data(caller, scratch_); !ok) {
      // The result itself may be what is too large: tell the caller that instead.
      if (ok.error().code == errc::resource_exhausted && link_.is_open()) {
        auto bytes = wire::encode_error_response(msgid, ok.error());
        (void)link_.send_data(caller, bytes);
      }
    }
  }

  void maybe_finish_drain() {
    if (draining_ && in_flight_ == 0) finish_drain();
  }

  void finish_drain() {
    if (drained_) return;
    drained_ = true;
    if (drain_timer_) drain_timer_->cancel();
    if (health_timer_) health_timer_->cancel();
    link_.close();
    auto waiters = std::move(drain_waiters_);
    for (auto& w : waiters)
      w();
  }

  asio::io_context& io_;
  service_options opts_;
  router_link link_;
  // shared_ptr: calls on the pool or suspended in a coroutine keep their handler alive.
  std::unordered_map<std::string, std::shared_ptr<handler>> handlers_;
  value http_routes_ = value::array();  // sent with every registration
  std::unique_ptr<asio::thread_pool> pool_;
  std::function<void()> on_ready_;
  std::function<void(const plexus::error&)> on_disconnect_;
  std::vector<std::function<void()>> drain_waiters_;
  std::unique_ptr<asio::steady_timer> drain_timer_;
  std::unique_ptr<asio::steady_timer> health_timer_;
  std::chrono::milliseconds health_interval_{1000};
  bool registered_ = false;
  std::size_t in_flight_ = 0;
  std::uint64_t expired_ = 0;
  bool draining_ = false;
  bool drained_ = false;
  std::vector<std::uint8_t> scratch_;
};

service::service(asio::io_context& io, service_options opts)
    : impl_(std::make_shared<impl>(io, std::move(opts))) {}
service::~service() = default;

void service::add_sync(std::string method, std::string signature, sync_invoker f,
                       route_options opts) {
  impl_->add(std::move(method), {std::move(signature), std::move(f), nullptr, opts});
}
void service::add_http_route(std::string verb, std::string pattern, std::string method,
                             std::string where, route_options opts) {
  impl_->add_http_route({{"verb", std::move(verb)},
                         {"pattern", std::move(pattern)},
                         {"kind", "plain"},
                         {"method", std::move(method)},
                         {"where", std::move(where)},
                         {"deadline_ms", opts.deadline.count()}});
}

namespace detail {
result<http_request> http_request_of(value& params) {
  if (!params.is_array() || params.size() != 1)
    return plexus::error(errc::invalid_argument,
                         "an HTTP route's call takes one argument, the request");
  return http_request::from_value(std::move(params[0]));
}
}  // namespace detail

void service::add_async(std::string method, std::string signature, async_invoker f,
                        route_options opts) {
  impl_->add(std::move(method), {std::move(signature), nullptr, std::move(f), opts});
}
result<void> service::start(std::function<void()> on_ready) {
  return impl_->start(std::move(on_ready));
}
void service::stop(std::function<void()> done) {
  impl_->stop(std::move(done));
}
void service::on_disconnect(std::function<void(const plexus::error&)> f) {
  impl_->on_disconnect(std::move(f));
}
void service::on_link_event(link_handler h) {
  impl_->on_link_event(std::move(h));
}
bool service::connected() const noexcept {
  return impl_->connected();
}
result<void> service::publish(std::string_view topic, value params) {
  return impl_->link().publish(topic, std::move(params));
}
result<void> service::log(std::string_view level, std::string_view message, value fields) {
  return impl_->link().log(level, message, std::move(fields));
}
std::size_t service::in_flight() const noexcept {
  return impl_->in_flight();
}
std::uint64_t service::expired() const noexcept {
  return impl_->expired();
}
const std::string& service::name() const noexcept {
  return impl_->name();
}

}  // namespace plexus::rpc
