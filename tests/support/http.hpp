// A blocking HTTP/1.1 client (Beast) for tests that talk to a gateway from their own
// thread while the gateway's loop runs elsewhere (a loop_thread, or plexus run).
//
//   plexus::test::http_client c(port);
//   auto r = c.request(boost::beast::http::verb::get, "/api/healthz");   // r.result_int() == 200
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plexus/wire/error.hpp"

namespace plexus::test {

// One connection. Reads give up after 10 s (SO_RCVTIMEO) or when the gateway closes.
class http_client {
  using tcp = boost::asio::ip::tcp;
  using response = boost::beast::http::response<boost::beast::http::string_body>;

 public:
  explicit http_client(std::uint16_t port) : socket_(io_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval tv{10, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send_raw(std::string_view bytes) { boost::asio::write(socket_, boost::asio::buffer(bytes)); }
  // `head`: the response to a HEAD request (a length, no body).
  boost::beast::http::response<boost::beast::http::string_body> read(bool head = false) {
    boost::beast::http::response_parser<boost::beast::http::string_body> p;
    p.body_limit(64u << 20);
    p.skip(head);
    boost::beast::error_code ec;
    boost::beast::http::read(socket_, buffer_, p, ec);
    if (ec) ADD_FAILURE() << "reading a response: " << ec.message();
    return p.release();
  }
  boost::beast::http::response<boost::beast::http::string_body> request(
      boost::beast::http::verb verb, std::string target, std::string body = {},
      std::vector<std::pair<std::string, std::string>> fields = {}) {
    boost::beast::http::request<boost::beast::http::string_body> req{verb, target, 11};
    req.set(boost::beast::http::field::host, "127.0.0.1");
    for (auto& [n, v] : fields)
      req.set(n, v);
    req.body() = std::move(body);
    req.prepare_payload();
    boost::beast::http::write(socket_, req);
    return read(verb == boost::beast::http::verb::head);
  }
  // Reads raw bytes (a stream's) until `needle` has arrived; returns everything read
  // so far, or what came before a timeout or the end.
  std::string read_until(std::string_view needle) {
    while (raw_.find(needle) == std::string::npos) {
      if (buffer_.size() > 0) {  // what the last read() left over
        raw_.append(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        buffer_.consume(buffer_.size());
        continue;
      }
      char chunk[4096];
      boost::beast::error_code ec;
      const auto n = socket_.read_some(boost::asio::buffer(chunk), ec);
      if (ec) break;
      raw_.append(chunk, n);
    }
    return raw_;
  }

  // True when the gateway closed the connection (EOF), within the receive deadline.
  bool closed_by_peer() {
    char c;
    boost::beast::error_code ec;
    socket_.read_some(boost::asio::buffer(&c, 1), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }

 private:
  boost::asio::io_context io_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::string raw_;
};

inline value json_of(const boost::beast::http::response<boost::beast::http::string_body>& r) {
  return value::parse(r.body(), nullptr, false);
}

}  // namespace plexus::test
