#include "dealer.hpp"

#include <chrono>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

namespace bench {
namespace {

using namespace std::chrono_literals;

constexpr auto startup_timeout = 10s;
constexpr auto idle_timeout = 60s;  // the service exits when nothing has arrived for this long
constexpr auto poll_period = 1000ms;
constexpr int client_recv_timeout_ms = 10000;
constexpr std::string_view service_id = "echo";
constexpr std::string_view client_id = "bench-client";

}  // namespace

void dealer_codec::check_first(const zmq::message_t&, std::uint64_t) const {}

std::string dealer_codec::error_text(const zmq::message_t&) const {
  return "error reply";
}

dealer_client::dealer_client(std::string name, const std::string& endpoint, dealer_codec& codec,
                             pid_t broker, pid_t service)
    : name_(std::move(name)), codec_(codec), ctx_(1), dealer_(ctx_, zmq::socket_type::dealer) {
  dealer_.set(zmq::sockopt::routing_id, zmq::buffer(client_id));
  dealer_.set(zmq::sockopt::probe_router, 1);
  dealer_.set(zmq::sockopt::linger, 0);
  dealer_.set(zmq::sockopt::rcvtimeo, client_recv_timeout_ms);
  dealer_.connect(endpoint);

  const auto deadline = mono_now() + startup_timeout;
  std::string last_error = "no reply";
  for (bool connected = false; !connected;) {
    if (mono_now() >= deadline) {
      throw std::runtime_error(name_ + ": no echo within 10 s (" + last_error + ")");
    }
    if (child_exited(broker) || child_exited(service)) {
      throw std::runtime_error(name_ + ": broker or service exited");
    }
    send_request(++id_);
    zmq::pollitem_t item{dealer_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 200ms) == 0) continue;
    bool refused = false;
    while (const auto got = recv_reply(zmq::recv_flags::dontwait)) {
      if (got->ok) {
        codec_.check_first(reply_, got->id);
        connected = true;
      } else {
        last_error = codec_.error_text(reply_);
        refused = true;
      }
    }
    if (!connected && refused) std::this_thread::sleep_for(5ms);
  }
}

void dealer_client::send_request(std::uint64_t id) {
  (void)dealer_.send(zmq::buffer(service_id), zmq::send_flags::sndmore);
  (void)dealer_.send(codec_.request(id), zmq::send_flags::none);
}

std::optional<dealer_reply> dealer_client::recv_reply(zmq::recv_flags flags) {
  if (!dealer_.recv(from_, flags)) return std::nullopt;
  if (!from_.more() || !dealer_.recv(reply_) || reply_.more()) {
    throw std::runtime_error(name_ + ": reply is not [sender_id, payload]");
  }
  return codec_.parse(reply_);
}

void dealer_client::round_trip() {
  const std::uint64_t expected = ++id_;
  send_request(expected);
  for (;;) {
    const auto got = recv_reply(zmq::recv_flags::none);
    if (!got) throw std::runtime_error(name_ + ": no echo within the receive timeout");
    if (got->id == expected) {
      if (!got->ok) throw std::runtime_error(name_ + ": call failed: " + codec_.error_text(reply_));
      return;
    }
    if (got->id > expected) throw std::runtime_error(name_ + ": echo of a request never sent");
  }
}

void dealer_client::send(std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    send_request(++id_);
}

std::size_t dealer_client::receive() {
  zmq::pollitem_t item{dealer_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(client_recv_timeout_ms)) == 0) {
    throw std::runtime_error(name_ + ": pipelined echoes stopped arriving");
  }
  std::size_t answered = 0;
  while (const auto got = recv_reply(zmq::recv_flags::dontwait)) {
    if (!got->ok) throw std::runtime_error(name_ + ": call failed: " + codec_.error_text(reply_));
    ++answered;
  }
  return answered;
}

std::uint64_t run_dealer_service(const std::string& endpoint, dealer_answer answer) {
  zmq::context_t ctx(1);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::routing_id, zmq::buffer(service_id));
  dealer.set(zmq::sockopt::probe_router, 1);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(endpoint);

  zmq::message_t sender, request, scratch, extra;
  std::uint64_t malformed = 0;
  zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  auto last_activity = mono_now();
  for (;;) {
    if (zmq::poll(&item, 1, poll_period) == 0) {
      if (mono_now() - last_activity > idle_timeout) return malformed;
      continue;
    }
    last_activity = mono_now();
    while (dealer.recv(sender, zmq::recv_flags::dontwait)) {
      if (!sender.more()) continue;
      (void)dealer.recv(request);
      if (request.more()) {
        do {
          (void)dealer.recv(extra);
        } while (extra.more());
        ++malformed;
        continue;
      }
      zmq::message_t* const reply = answer(request, scratch);
      if (reply == nullptr) {
        ++malformed;
        continue;
      }
      (void)dealer.send(sender, zmq::send_flags::sndmore);
      (void)dealer.send(*reply, zmq::send_flags::none);
    }
  }
}

}  // namespace bench
