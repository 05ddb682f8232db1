#include "rpc/router_link.hpp"

#include <unistd.h>

#include <algorithm>

#include "plexus/log/record.hpp"
#include "plexus/rpc/supervision.hpp"
#include "plexus/wire/control.hpp"

namespace plexus::rpc::detail {

router_link::router_link(boost::asio::io_context& io, std::string router, transport::options opts,
                         std::string name)
    : io_(io), router_(std::move(router)), opts_(opts), name_(std::move(name)) {}

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

result<void> router_link::open_with(std::weak_ptr<const void> owner,
                                    transport::connection::frame_handler on_frame) {
  auto c = transport::connect(io_, router_, opts_);
  if (!c) return std::move(c).error();
  conn_ = std::move(*c);  // a previous connection is detached: it reports nothing more
  closed_ = false;
  conn_.start(std::move(on_frame), [owner = std::move(owner), this](const plexus::error& e) {
    if (const auto alive = owner.lock()) lost(e);
  });
  (void)send_control({{"op", control::hello},
                      {"name", name_.empty() ? std::string("client") : name_},
                      {"pid", static_cast<std::int64_t>(::getpid())}});
  if (on_registration_) on_registration_();
  return {};
}

void router_link::close() {
  closed_ = true;
  conn_.close();
}

void router_link::lost(const plexus::error& e) {
  if (closed_) return;
  if (on_lost_) on_lost_(e);
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
