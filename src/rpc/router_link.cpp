#include "rpc/router_link.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <random>

#include "plexus/log/record.hpp"
#include "plexus/rpc/supervision.hpp"
#include "plexus/transport/auth.hpp"
#include "plexus/wire/control.hpp"

namespace plexus::rpc::detail {

namespace {

// The wait before the next attempt: between half and all of `cap`, so that peers that
// lost the same router do not all come back in the same millisecond.
std::chrono::milliseconds jittered(std::chrono::milliseconds cap) {
  thread_local std::minstd_rand random(std::random_device{}());
  const auto half = cap.count() / 2;
  std::uniform_int_distribution<std::int64_t> extra(0,
                                                    std::max<std::int64_t>(0, cap.count() - half));
  return std::chrono::milliseconds(half + extra(random));
}

}  // namespace

router_link::router_link(boost::asio::io_context& io, std::string router, transport::options opts,
                         reconnect_options reconnect, std::string name)
    : io_(io),
      router_(std::move(router)),
      opts_(opts),
      reconnect_(reconnect),
      name_(std::move(name)),
      retry_timer_(io) {
  reconnect_.first_delay = std::max(reconnect_.first_delay, std::chrono::milliseconds(1));
  reconnect_.max_delay = std::max(reconnect_.max_delay, reconnect_.first_delay);
}

void router_link::on_control(std::string op, control_handler h) {
  auto it = std::find_if(control_handlers_.begin(), control_handlers_.end(),
                         [&](const auto& entry) { return entry.first == op; });
  if (it != control_handlers_.end())
    it->second = std::move(h);
  else
    control_handlers_.emplace_back(std::move(op), std::move(h));
}

void router_link::on_registration(std::function<void()> h) {
  on_registration_ = std::move(h);
}

void router_link::on_lost(loss_handler h) {
  on_lost_ = std::move(h);
}

void router_link::on_event(link_handler h) {
  on_event_ = std::move(h);
}

result<void> router_link::open_with(std::weak_ptr<const void> owner,
                                    transport::connection::frame_handler on_frame) {
  // The tcp secret: the one given, else $PLEXUS_SECRET / $PLEXUS_SECRET_FILE.
  if (opts_.secret.empty()) {
    auto secret = transport::secret_from_environment();
    if (!secret) return std::move(secret).error();
    opts_.secret = std::move(*secret);
  } else if (auto ok = transport::check_secret(opts_.secret, "transport::options::secret"); !ok) {
    return ok;
  }
  owner_ = std::move(owner);
  on_frame_ = std::move(on_frame);
  closed_ = false;
  reconnecting_ = false;
  ++attempt_serial_;
  ever_connected_ = false;
  attempts_ = 0;
  backoff_ = {};
  auto ok = attempt();
  if (ok) {
    opened_ = true;
    return {};
  }
  if (!reconnect_.enabled || ok.error().code != errc::unavailable) return ok;
  opened_ = true;
  schedule_attempt();
  return {};
}

result<void> router_link::attempt() {
  ++attempts_;
  auto c = transport::connect(io_, router_, opts_);
  if (!c) return std::move(c).error();
  adopt(std::move(*c));
  return {};
}

void router_link::attempt_async() {
  ++attempts_;
  transport::async_connect(
      io_, router_, opts_,
      [owner = owner_, this, serial = ++attempt_serial_](result<transport::connection> c) {
        const auto alive = owner.lock();
        if (!alive || closed_ || !reconnecting_ || serial != attempt_serial_) return;
        // Any failure now is worth another try: the address was good enough once.
        if (!c) return schedule_attempt();
        adopt(std::move(*c));
      });
}

void router_link::adopt(transport::connection c) {
  conn_ = std::move(c);  // a previous connection is detached: it reports nothing more
  reconnecting_ = false;
  connected_at_ = std::chrono::steady_clock::now();
  conn_.start(on_frame_,
              [owner = owner_, this, generation = ++generation_](const plexus::error& e) {
                if (const auto alive = owner.lock()) lost(generation, e);
              });
  value hello = {{"op", control::hello},
                 {"name", name_.empty() ? std::string("client") : name_},
                 {"pid", static_cast<std::int64_t>(::getpid())}};
  if (accept_deadlines_) hello["deadlines"] = true;
  (void)send_control(hello);
  if (on_registration_) on_registration_();
  post_event(ever_connected_ ? link_event::reconnected : link_event::connected);
  ever_connected_ = true;
}

void router_link::schedule_attempt() {
  reconnecting_ = true;
  backoff_ =
      backoff_.count() == 0 ? reconnect_.first_delay : std::min(backoff_ * 2, reconnect_.max_delay);
  retry_timer_.expires_after(jittered(backoff_));
  retry_timer_.async_wait([owner = owner_, this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled by close(), or the link is gone
    const auto alive = owner.lock();
    if (!alive || closed_ || !reconnecting_) return;
    attempt_async();
  });
}

void router_link::post_event(link_event e) {
  boost::asio::post(io_, [owner = owner_, this, e] {
    const auto alive = owner.lock();
    if (alive && !closed_ && on_event_) on_event_(e, plexus::error(errc::unavailable, ""));
  });
}

void router_link::close() {
  closed_ = true;
  reconnecting_ = false;
  ++attempt_serial_;
  retry_timer_.cancel();
  conn_.close();
}

void router_link::lost(std::uint64_t generation, const plexus::error& e) {
  if (closed_ || generation != generation_) return;
  if (on_lost_) on_lost_(e);
  if (on_event_) on_event_(link_event::lost, e);
  if (closed_ || !reconnect_.enabled || reconnecting_ || conn_.is_open())
    return;  // the owner closed, or opened again
  // A connection that lived long resets the backoff; one the router ended at once (it
  // refused us, or it is crash-looping) does not, so the attempts keep slowing down.
  if (std::chrono::steady_clock::now() - connected_at_ >= reconnect_.max_delay) backoff_ = {};
  schedule_attempt();
}

plexus::error router_link::not_connected() const {
  return {errc::unavailable, "not connected to the router at " + router_};
}

result<void> router_link::check_open() const {
  if (is_open()) return {};
  return not_connected();
}

void router_link::dispatch_control(std::span<const std::uint8_t> payload) {
  auto v = wire::decode_value(payload);
  if (!v || !v->is_object()) return;
  const auto op = control::text_field(*v, "op");
  for (const auto& [name, handler] : control_handlers_)
    if (name == op) {
      handler(*v);
      return;
    }
}

result<void> router_link::send_control(const value& map) {
  scratch_.clear();
  wire::encode_value(scratch_, map);
  return conn_.send(wire::frame_kind::control, "", scratch_);
}

result<void> router_link::notify(std::string_view service, std::string_view method, value params) {
  if (auto ok = check_open(); !ok) return ok;
  scratch_.clear();
  wire::encode(scratch_, wire::notification{std::string(method), std::move(params)});
  return conn_.send(wire::frame_kind::data, service, scratch_);
}

result<void> router_link::publish(std::string_view topic, value params) {
  return notify(wire::publish_name, topic, std::move(params));
}

result<void> router_link::log(std::string_view level, std::string_view message, value fields) {
  if (auto ok = plexus::log::check_level(level); !ok) return ok;
  const auto process = process_name(name_);
  return publish(plexus::log::topic(process),
                 value::array({plexus::log::make_record(level, message, std::move(fields), process,
                                                        process_replica())}));
}

}  // namespace plexus::rpc::detail
