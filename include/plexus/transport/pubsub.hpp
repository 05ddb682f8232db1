// Endpoints that carry publications between the router and programs that do not
// speak the native protocol: seed-style ZeroMQ PUB clients and SUB services
// (transport/zmq.hpp) and UDP datagrams (transport/udp.hpp). A publication is one
// encoded notification [2, topic, params]; its method is its topic.
//
// Threading: as for every transport, the io_context's thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace plexus::transport {

// Receives publications from outside and hands each payload to its handler.
class inlet {
 public:
  using handler = std::function<void(std::span<const std::uint8_t> payload)>;
  virtual ~inlet() = default;
  virtual void start(handler on_publication) = 0;
  virtual void close() = 0;
  virtual std::string address() const = 0;
};

// Sends every publication out, best effort: never blocks and never fails the caller.
class outlet {
 public:
  virtual ~outlet() = default;
  virtual void publish(std::string_view topic, std::span<const std::uint8_t> payload) = 0;
  virtual void close() = 0;
  virtual std::string address() const = 0;
  // Publications the endpoint could not take (its queue was full).
  virtual std::uint64_t dropped() const noexcept = 0;
};

}  // namespace plexus::transport
