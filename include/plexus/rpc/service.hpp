// The service: answers calls addressed to one service name, dispatching each method
// to a handler. Arguments and results are converted automatically; a wrong arity or
// type is an invalid_argument error naming the expected signature; an exception
// thrown by a handler becomes an error response (remote_error keeps its code).
//
//   plexus::rpc::service s(io, {.name = "calc"});
//   s.route("add", [](int a, int b) { return a + b; });
//   if (s.start()) io.run();
//
// Handlers come in three kinds:
//   plain      R f(Args...)                      runs on the event loop; keep it short
//   coroutine  asio::awaitable<R> f(Args...)     runs on the event loop, may co_await
//   blocking   route(name, f, {.blocking = true}) runs on the worker pool
// A handler is one object per route, shared by all its calls (a mutable lambda keeps
// its state across calls; a blocking one may run on several pool threads at once, so
// its state needs its own synchronisation).
// Coroutine and blocking handlers have a deadline (route_options::deadline, else
// service_options::handler_deadline): when it passes the caller gets
// deadline_exceeded and the late result is dropped. A request also carries its
// caller's remaining time (docs/protocol.md §1, kind 2): when that runs out first the
// router answers the caller, and the service stops the call the same way without
// answering. A coroutine handler is cancelled then (cancellation_type::terminal: the
// operation it awaits completes with operation_aborted); a blocking handler runs to
// its end and its result is dropped. expired() counts both.
// The router may start after the service and may restart (reconnect.hpp): the service
// waits for it, registers again on every new connection and reports through
// on_link_event. `.reconnect = {.enabled = false}` keeps the fail-fast behaviour.
// Threading: every member runs on the io_context's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "plexus/rpc/convert.hpp"
#include "plexus/rpc/http.hpp"
#include "plexus/rpc/reconnect.hpp"
#include "plexus/transport/address.hpp"
#include "plexus/transport/connection.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::rpc {

struct service_options {
  std::string router = transport::default_router_address();
  std::string name;                // the service name clients address; required
  std::size_t worker_threads = 4;  // pool for blocking handlers
  std::chrono::milliseconds handler_deadline{30000};
  std::chrono::milliseconds drain_timeout{10000};
  transport::options transport;
  reconnect_options reconnect;
};

// Where an HTTP route was declared: the file and line of the call to service::http,
// taken from its default argument. (What std::source_location gives; clang 14 with
// libstdc++ 12 has no std::source_location, and these builtins work in both compilers.)
struct declared_at {
  constexpr declared_at(const char* f = __builtin_FILE(), unsigned l = __builtin_LINE()) noexcept
      : file(f), line(l) {}
  const char* file;
  unsigned line;
};

struct route_options {
  bool blocking = false;                  // run on the worker pool
  std::chrono::milliseconds deadline{0};  // 0: the service's handler_deadline
};

namespace detail {

template <class T>
struct callable_traits : callable_traits<decltype(&T::operator())> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const> {
  using result_type = R;
  using args = std::tuple<std::remove_cvref_t<A>...>;
};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...)> : callable_traits<R (C::*)(A...) const> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const noexcept> : callable_traits<R (C::*)(A...) const> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) noexcept> : callable_traits<R (C::*)(A...) const> {};
template <class R, class... A>
struct callable_traits<R (*)(A...)> {
  using result_type = R;
  using args = std::tuple<std::remove_cvref_t<A>...>;
};
template <class R, class... A>
struct callable_traits<R (*)(A...) noexcept> : callable_traits<R (*)(A...)> {};

template <class T>
struct awaitable_result {
  static constexpr bool is_awaitable = false;
  using type = T;
};
template <class T, class E>
struct awaitable_result<boost::asio::awaitable<T, E>> {
  static constexpr bool is_awaitable = true;
  using type = T;
};

template <class R, class Tuple, std::size_t... I>
std::string signature(std::index_sequence<I...>) {
  std::string s = "(";
  ((s += (I == 0 ? "" : ", ") + type_label<std::tuple_element_t<I, Tuple>>()), ...);
  return s + ") -> " + type_label<R>();
}

template <class Tuple, std::size_t... I>
result<Tuple> convert_args(value& params, const std::string& method, const std::string& sig,
                           std::index_sequence<I...>) {
  constexpr std::size_t n = sizeof...(I);
  if (params.size() != n)
    return plexus::error(errc::invalid_argument,
                         method + " expects " + std::to_string(n) + " argument" +
                             (n == 1 ? "" : "s") + " " + sig + ", got " +
                             std::to_string(params.size()),
                         {{"method", method}, {"signature", sig}});
  Tuple out;
  std::optional<plexus::error> err;
  [[maybe_unused]] auto one = [&](auto& slot, std::size_t i) {  // unused with no arguments
    if (err) return;
    using T = std::remove_cvref_t<decltype(slot)>;
    auto r = convert_value_from<T>(params[i], [&] {
      return "argument " + std::to_string(i + 1) + " of " + method + " " + sig;
    });
    if (!r)
      err = std::move(r).error();
    else
      slot = std::move(*r);
  };
  (one(std::get<I>(out), I), ...);
  if (err) return std::move(*err);
  return out;
}

// The one argument of an HTTP route's call.
result<http_request> http_request_of(value& params);
inline constexpr const char* http_signature = "(http request) -> http response";

template <class R>
value to_value(R&& r) {
  return value(std::forward<R>(r));
}

}  // namespace detail

class service {
 public:
  // A handler reduced to its essence: params in, value or error out. Invoked on the
  // loop (plain) or on a pool thread (blocking); may throw. The params are the
  // handler's own: it may move out of them.
  using sync_invoker = std::function<result<value>(value&& params)>;
  using async_invoker = std::function<boost::asio::awaitable<result<value>>(value params)>;

  service(boost::asio::io_context& io, service_options opts);
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  template <class F>
  service& route(std::string method, F f, route_options opts = {}) {
    using traits = detail::callable_traits<std::decay_t<F>>;
    using R = typename traits::result_type;
    using args = typename traits::args;
    using aw = detail::awaitable_result<R>;
    using out_t = typename aw::type;
    constexpr auto n = std::tuple_size_v<args>;
    auto sig = detail::signature<out_t, args>(std::make_index_sequence<n>{});
    if constexpr (aw::is_awaitable) {
      add_async(
          method, sig,
          [f = std::move(f), method,
           sig](value params) mutable -> boost::asio::awaitable<result<value>> {
            auto a = detail::convert_args<args>(params, method, sig, std::make_index_sequence<n>{});
            if (!a) co_return std::move(a).error();
            if constexpr (std::is_void_v<out_t>) {
              co_await std::apply(f, std::move(*a));
              co_return value();
            } else {
              co_return detail::to_value(co_await std::apply(f, std::move(*a)));
            }
          },
          opts);
    } else {
      add_sync(
          method, sig,
          [f = std::move(f), method, sig](value&& params) mutable -> result<value> {
            auto a = detail::convert_args<args>(params, method, sig, std::make_index_sequence<n>{});
            if (!a) return std::move(a).error();
            if constexpr (std::is_void_v<R>) {
              std::apply(f, std::move(*a));
              return value();
            } else {
              return detail::to_value(std::apply(f, std::move(*a)));
            }
          },
          opts);
    }
    return *this;
  }

  // Registers a handler that takes the raw params array.
  service& route_raw(std::string method, std::string signature, sync_invoker f,
                     route_options opts = {}) {
    add_sync(std::move(method), std::move(signature), std::move(f), opts);
    return *this;
  }

  // Declares an HTTP route answered by `f` (docs/gateway.md). `verb` is GET, HEAD,
  // POST, PUT, PATCH, DELETE or OPTIONS; `pattern` a path whose `{name}` segments are
  // parameters ("/api/counter/{id}"). `f` takes the request (http_request, by value or
  // const&) and returns an http_response, or asio::awaitable<http_response> (a
  // coroutine); `opts` as for route(): blocking, and a deadline past which the gateway
  // answers 504 (0: the gateway's default). An exception becomes a 500 whose JSON body
  // has the error's message and code.
  // The route travels with the registration, with where it was declared (`where`).
  // The router checks it: a bad verb or pattern, or a route another running service
  // declared, refuses the registration; the service then ends as if the router had
  // gone (on_disconnect) with an error naming both declarations.
  template <class F>
  service& http(std::string verb, std::string pattern, F f, route_options opts = {},
                declared_at where = {}) {
    using traits = detail::callable_traits<std::decay_t<F>>;
    using R = typename traits::result_type;
    using aw = detail::awaitable_result<R>;
    static_assert(std::is_same_v<typename aw::type, http_response>,
                  "an HTTP route's handler returns http_response or awaitable<http_response>");
    auto method = "http " + verb + " " + pattern;
    if constexpr (aw::is_awaitable) {
      add_async(
          method, detail::http_signature,
          [f = std::move(f)](value params) mutable -> boost::asio::awaitable<result<value>> {
            auto req = detail::http_request_of(params);
            if (!req) co_return std::move(req).error();
            http_response out = co_await f(std::move(*req));
            co_return std::move(out).to_value();
          },
          opts);
    } else {
      add_sync(
          method, detail::http_signature,
          [f = std::move(f)](value&& params) mutable -> result<value> {
            auto req = detail::http_request_of(params);
            if (!req) return std::move(req).error();
            return f(std::move(*req)).to_value();
          },
          opts);
    }
    add_http_route(std::move(verb), std::move(pattern), std::move(method),
                   std::string(where.file) + ":" + std::to_string(where.line), opts);
    return *this;
  }

  // Connects to the router and registers the service name with its methods.
  // `on_ready` (optional) runs once, when the router first confirmed the registration.
  // With reconnection (the default) nothing listening is not an error: the service
  // waits for the router (connected() is false until then). Errors: invalid_argument
  // (no name, bad address); unavailable (nothing listening) only without reconnection.
  result<void> start(std::function<void()> on_ready = {});
  // A connection to the router is up now.
  bool connected() const noexcept;

  // Graceful drain: the router stops routing new calls here, calls that still
  // arrive get unavailable, calls in flight finish (bounded by drain_timeout), then
  // the connection closes and `done` runs. Idempotent. It also ends any waiting for
  // the router, so a program asked to stop while the router is away stops at once.
  void stop(std::function<void()> done = {});

  // Called when the connection to the router ends for good without stop(): the router
  // went away and reconnection is disabled. (With reconnection, see on_link_event.)
  void on_disconnect(std::function<void(const plexus::error&)> f);
  // The program's callback: connected, lost, reconnected (reconnect.hpp). Set it
  // before start() to see the first `connected`.
  void on_link_event(link_handler h);

  // Publishes `params` under `topic` (docs/protocol.md §6). Errors only for a local
  // problem (not connected, queue full).
  result<void> publish(std::string_view topic, value params);
  // A structured log record (rpc/supervision.hpp) published under "log.<process>":
  // `plexus logs` shows it and `plexus run` writes it to the process's log file.
  // Never blocks: a record the connection has no room for is refused, not waited on.
  result<void> log(std::string_view level, std::string_view message,
                   value fields = value::object());

  std::size_t in_flight() const noexcept;
  // Calls stopped at a deadline (the handler's or the caller's) since start.
  std::uint64_t expired() const noexcept;
  const std::string& name() const noexcept;

 private:
  void add_sync(std::string method, std::string signature, sync_invoker f, route_options opts);
  void add_async(std::string method, std::string signature, async_invoker f, route_options opts);
  void add_http_route(std::string verb, std::string pattern, std::string method, std::string where,
                      route_options opts);

  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace plexus::rpc
