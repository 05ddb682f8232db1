// The floors: the least a broker can do, in two designs. Unix stream sockets, frames `u32 LE
// length + body`, one read of everything available and one write of every complete frame per
// wake-up; peers (client, service) with blocking reads and writes.
// - "floor": a broker with one blocking thread per direction.
// - "floor-epoll": a broker with one thread and epoll over non-blocking sockets (level
//   triggered; a write the socket cannot take whole waits for EPOLLOUT, and the direction stops
//   reading meanwhile).
// Which one is faster depends on the machine (where its threads sleep and wake); the figures of
// the other systems are read against the faster one.
//
// Protocol on <workdir>/floor.sock: each peer first sends one hello frame, "S" (the service) or
// "C" (the client); the broker forwards client -> service and service -> client once both are
// connected, and frames are never looked into. The service echoes every frame unchanged.
// Shutdown: the client half-closes; the broker half-closes towards the service; the service
// drains and exits; the broker delivers the last echoes, half-closes towards the client, exits.
#include "echo.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common.hpp"
#include "measure.hpp"
#include "plexus/wire/frame.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t buffer_bytes = 256 * 1024;  // per direction, per process
constexpr std::size_t max_frame_bytes = buffer_bytes - 4;
constexpr std::size_t max_hello_bytes = 16;
constexpr auto startup_timeout = 10s;  // accept, hello, first bytes
constexpr auto idle_timeout = 60s;     // a role exits when its peer has been silent this long
constexpr auto client_io_timeout = 10s;
constexpr const char* socket_name = "/floor.sock";

// Copies complete frames from `in` to `out` until EOF on `in`: per wake-up one read() of as much
// as is available and one send() of every complete frame held. Returns on EOF at a frame
// boundary. Throws std::system_error on a socket error (EAGAIN: idle past SO_RCVTIMEO) and
// std::runtime_error on an oversized or truncated frame.
void pump_frames(int in, int out) {
  // Left uninitialised: only the pages traffic touches count towards the broker's RSS.
  const std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[buffer_bytes]);
  std::size_t have = 0;
  for (;;) {
    const ssize_t n = ::read(in, buf.get() + have, buffer_bytes - have);
    if (n == 0) {
      if (have != 0)
        throw std::runtime_error("peer closed the connection in the middle of a frame");
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "read");
    }
    have += static_cast<std::size_t>(n);
    std::size_t whole = 0;
    while (have - whole >= 4) {
      const std::uint32_t len = plexus::wire::read_u32_le(buf.get() + whole);
      if (len > max_frame_bytes) {
        throw std::runtime_error("frame of " + std::to_string(len) +
                                 " bytes exceeds max_frame_bytes (" +
                                 std::to_string(max_frame_bytes) + ")");
      }
      if (have - whole - 4 < len) break;
      whole += 4 + len;
    }
    if (whole == 0) continue;
    bench::write_all(out, buf.get(), whole);
    if (whole < have) std::memmove(buf.get(), buf.get() + whole, have - whole);
    have -= whole;
  }
}

void write_frame(int fd, std::string_view body) {
  std::vector<std::uint8_t> frame(4 + body.size());
  plexus::wire::write_u32_le(frame.data(), static_cast<std::uint32_t>(body.size()));
  std::memcpy(frame.data() + 4, body.data(), body.size());
  bench::write_all(fd, frame.data(), frame.size());
}

// Reads the hello frame. Returns "" on EOF before it (a readiness probe); throws on error.
std::string read_hello(int fd) {
  std::uint8_t header[4];
  if (!bench::read_exact(fd, header, sizeof header)) return {};
  const std::uint32_t len = plexus::wire::read_u32_le(header);
  if (len == 0 || len > max_hello_bytes) throw std::runtime_error("bad hello frame");
  std::string body(len, '\0');
  if (!bench::read_exact(fd, body.data(), len)) throw std::runtime_error("truncated hello");
  return body;
}

void check_config(const echo_config& cfg) {
  if (cfg.payload < 8 || cfg.payload > 60 * 1024) {
    throw std::invalid_argument("floor: payload must be within [8, 61440] bytes");
  }
  if (cfg.inflight < 1 || static_cast<std::size_t>(cfg.inflight) * (cfg.payload + 4) > 128 * 1024) {
    throw std::invalid_argument("floor: inflight * (payload + 4) must be within [1, 131072] bytes");
  }
}

// The client: one blocking socket, a request is the frame `u32 length + body` whose body carries
// a sequence number in its first 8 bytes. Pipelined requests go out in one write per batch; a
// read answers as many as it brings whole.
class floor_client final : public bench::echo_client {
 public:
  floor_client(const echo_config& cfg, const std::string& path)
      : fd_(bench::connect_unix(path, client_io_timeout)),
        frame_size_(4 + cfg.payload),
        inflight_(static_cast<std::size_t>(cfg.inflight)),
        rx_(buffer_bytes),
        tx_(frame_size_),
        batch_(inflight_ * frame_size_) {
    write_frame(fd_.get(), "C");
    plexus::wire::write_u32_le(tx_.data(), static_cast<std::uint32_t>(cfg.payload));
    for (std::size_t i = 0; i < cfg.payload; ++i)
      tx_[4 + i] = static_cast<std::uint8_t>('a' + i % 26);
    for (std::size_t i = 0; i < inflight_; ++i)
      std::memcpy(batch_.data() + i * frame_size_, tx_.data(), frame_size_);
  }

  // One request, block until its echo is back; the body carries `seq` and must come back as sent.
  void round_trip() override {
    ++seq_;
    std::memcpy(tx_.data() + 4, &seq_, sizeof seq_);
    bench::write_all(fd_.get(), tx_.data(), frame_size_);
    std::size_t have = 0;
    while (have < frame_size_) {
      const ssize_t n = ::read(fd_.get(), rx_.data() + have, rx_.size() - have);
      if (n > 0) {
        have += static_cast<std::size_t>(n);
      } else if (n == 0) {
        throw std::runtime_error("floor: broker closed the connection");
      } else if (errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "floor: waiting for an echo");
      }
    }
    if (have != frame_size_ || std::memcmp(rx_.data(), tx_.data(), frame_size_) != 0) {
      throw std::runtime_error("floor: echo does not match the request");
    }
  }

  void send(std::size_t n) override { bench::write_all(fd_.get(), batch_.data(), n * frame_size_); }

  std::size_t receive() override {
    for (;;) {
      const ssize_t n = ::read(fd_.get(), rx_.data() + have_, rx_.size() - have_);
      if (n == 0) throw std::runtime_error("floor: broker closed the connection");
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "floor: pipelined read");
      }
      have_ += static_cast<std::size_t>(n);
      const std::size_t answered = have_ / frame_size_;
      if (answered > inflight_) throw std::runtime_error("floor: more echoes than requests");
      have_ -= answered * frame_size_;
      if (have_ != 0) std::memmove(rx_.data(), rx_.data() + answered * frame_size_, have_);
      return answered;
    }
  }

  // Orderly shutdown: half-close, drain the echoes still in flight, let both roles exit by EOF.
  void close() {
    ::shutdown(fd_.get(), SHUT_WR);
    bench::set_io_timeout(fd_.get(), 2s);
    const auto drain_deadline = bench::mono_now() + 5s;
    while (bench::mono_now() < drain_deadline) {
      const ssize_t n = ::read(fd_.get(), rx_.data(), rx_.size());
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    fd_.close();
  }

 private:
  bench::unique_fd fd_;
  std::size_t frame_size_, inflight_;
  std::vector<std::uint8_t> rx_, tx_, batch_;  // batch_: `inflight` copies of the request frame
  std::size_t have_ = 0;                       // bytes of a partial echo at the front of rx_
  std::uint64_t seq_ = 0;
};

// The client's and the service's connections to a broker, after their hellos.
struct peers {
  bench::unique_fd client, service;
};

// Accepts on `path` until a client and a service have said hello; the listener is closed and
// its path removed before returning.
peers accept_peers(const std::string& path) {
  bench::unique_fd listener(bench::listen_unix(path, startup_timeout));
  bench::unique_fd client, service;
  const auto deadline = bench::mono_now() + startup_timeout;
  while (!client || !service) {
    if (bench::mono_now() >= deadline)
      throw std::runtime_error("client and service not both connected in time");
    bench::unique_fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "accept");
    }
    bench::set_io_timeout(fd.get(), startup_timeout);
    const std::string hello = read_hello(fd.get());
    if (hello == "S" && !service) {
      service = std::move(fd);
    } else if (hello == "C" && !client) {
      client = std::move(fd);
    } else if (!hello.empty()) {
      std::fprintf(stderr, "floor_broker: refused a connection with hello '%s'\n", hello.c_str());
    }
  }
  listener.close();
  ::unlink(path.c_str());
  return {std::move(client), std::move(service)};
}

// One direction of the epoll broker: frames read from `in` are written to `out`.
struct direction {
  int in = -1, out = -1;
  std::unique_ptr<std::uint8_t[]> buf{new std::uint8_t[buffer_bytes]};
  std::size_t have = 0;     // bytes in buf
  std::size_t written = 0;  // of the whole frames at its front, already written
  bool eof = false;         // `in` ended
  bool blocked = false;     // `out` took part of a write: waiting for EPOLLOUT
  bool done = false;        // eof, all forwarded, `out` half-closed

  // Reads what is there (once: the wait is level-triggered), then forwards.
  void on_readable() {
    const ssize_t n = ::read(in, buf.get() + have, buffer_bytes - have);
    if (n == 0) {
      eof = true;
    } else if (n > 0) {
      have += static_cast<std::size_t>(n);
    } else if (errno != EAGAIN && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "read");
    }
    forward();
  }

  // Writes the whole frames held; keeps the rest (a partial frame) for the next read.
  void forward() {
    std::size_t whole = 0;
    while (have - whole >= 4) {
      const std::uint32_t len = plexus::wire::read_u32_le(buf.get() + whole);
      if (len > max_frame_bytes)
        throw std::runtime_error("frame of " + std::to_string(len) + " bytes is too large");
      if (have - whole - 4 < len) break;
      whole += 4 + len;
    }
    blocked = false;
    while (written < whole) {
      const ssize_t n = ::send(out, buf.get() + written, whole - written, MSG_NOSIGNAL);
      if (n > 0) {
        written += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        blocked = true;
        return;
      } else if (n < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "send");
      }
    }
    if (whole > 0) {
      std::memmove(buf.get(), buf.get() + whole, have - whole);
      have -= whole;
      written = 0;
    }
    if (eof && !done) {
      if (have != 0)
        throw std::runtime_error("peer closed the connection in the middle of a frame");
      ::shutdown(out, SHUT_WR);
      done = true;
    }
  }

  bool wants_read() const { return !eof && !blocked && have < buffer_bytes; }
};

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "fcntl O_NONBLOCK");
}

}  // namespace

int floor_broker_role(const std::vector<std::string>& args) {
  auto [client, service] = accept_peers(args[0] + socket_name);
  bench::set_io_timeout(client.get(), idle_timeout);
  bench::set_io_timeout(service.get(), idle_timeout);

  // One direction until EOF, then half-close the other side; on an error both connections close
  // so the other direction ends too.
  auto pump = [&](int in, int out, std::exception_ptr& error) {
    try {
      pump_frames(in, out);
      ::shutdown(out, SHUT_WR);
    } catch (...) {
      error = std::current_exception();
      ::shutdown(client.get(), SHUT_RDWR);
      ::shutdown(service.get(), SHUT_RDWR);
    }
  };
  std::exception_ptr back_error, forth_error;
  std::thread back([&] { pump(service.get(), client.get(), back_error); });
  pump(client.get(), service.get(), forth_error);
  back.join();
  if (forth_error) std::rethrow_exception(forth_error);
  if (back_error) std::rethrow_exception(back_error);
  return 0;
}

int floor_epoll_broker_role(const std::vector<std::string>& args) {
  auto [client, service] = accept_peers(args[0] + socket_name);
  set_nonblocking(client.get());
  set_nonblocking(service.get());
  bench::unique_fd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  direction forth, back;  // client -> service, service -> client
  forth.in = back.out = client.get();
  forth.out = back.in = service.get();
  // What each descriptor waits for: reading for the direction it feeds, writing for the one
  // it drains (when blocked). Changed with EPOLL_CTL_MOD only when it changes.
  struct interest {
    int fd;
    direction& feeds;
    direction& drains;
    std::uint32_t events = 0;
    bool added = false;
  } fds[] = {{client.get(), forth, back}, {service.get(), back, forth}};
  auto update = [&](interest& i) {
    const std::uint32_t want =
        (i.feeds.wants_read() ? EPOLLIN : 0u) | (i.drains.blocked ? EPOLLOUT : 0u);
    if (i.added && want == i.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = i.fd;
    if (::epoll_ctl(ep.get(), i.added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, i.fd, &ev) != 0)
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    i.events = want;
    i.added = true;
  };
  for (auto& i : fds)
    update(i);
  constexpr int idle_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(idle_timeout).count();
  while (!(forth.done && back.done)) {
    epoll_event events[2];
    const int n = ::epoll_wait(ep.get(), events, 2, idle_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "epoll_wait");
    }
    if (n == 0) throw std::runtime_error("no traffic for a minute");
    for (int k = 0; k < n; ++k) {
      auto& i = events[k].data.fd == client.get() ? fds[0] : fds[1];
      // An error or hang-up shows as a read of 0 or an error, or as a failed write.
      if (events[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) i.drains.forward();
      if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (i.feeds.wants_read()) i.feeds.on_readable();
      }
    }
    for (auto& i : fds)
      update(i);
  }
  return 0;
}

int floor_service_role(const std::vector<std::string>& args) {
  bench::unique_fd fd(bench::connect_unix(args[0] + socket_name, startup_timeout));
  write_frame(fd.get(), "S");
  bench::set_io_timeout(fd.get(), idle_timeout);
  pump_frames(fd.get(), fd.get());
  return 0;
}

namespace {

echo_result run_floor_with(const echo_config& cfg, const char* broker_role) {
  check_config(cfg);
  const std::string path = cfg.workdir + socket_name;
  bench::child_guard children;
  const auto roles = bench::start_roles(children, cfg, {broker_role, {cfg.workdir}}, {path},
                                        {"floor_service", {cfg.workdir}});
  floor_client client(cfg, path);
  echo_result result = bench::measure_echo(client, cfg);
  result.broker_rss_kib = bench::read_vm_hwm_kib(roles.broker);
  client.close();
  for (const pid_t pid : {roles.service, roles.broker}) {
    const int status = children.wait(pid, 2s);
    if (status != 0) {
      std::fprintf(stderr, "floor: role %d did not exit cleanly (%s)\n", static_cast<int>(pid),
                   bench::describe_status(status).c_str());
    }
  }
  return result;
}

}  // namespace

echo_result run_floor_echo(const echo_config& cfg) {
  return run_floor_with(cfg, "floor_broker");
}

echo_result run_floor_epoll_echo(const echo_config& cfg) {
  return run_floor_with(cfg, "floor_epoll_broker");
}
