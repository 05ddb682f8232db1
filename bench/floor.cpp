// The floor: the least a broker can do. Blocking Unix stream sockets, frames `u32 LE length +
// body`, one thread per direction in the broker, one read of everything available and one write
// of every complete frame per wake-up. Nothing else is cheaper on this path, so the figures of the
// other systems are read against it.
//
// Protocol on <workdir>/floor.sock: each peer first sends one hello frame, "S" (the service) or
// "C" (the client); the broker forwards client -> service and service -> client once both are
// connected, and frames are never looked into. The service echoes every frame unchanged.
// Shutdown: the client half-closes; the broker half-closes towards the service; the service
// drains and exits; the broker delivers the last echoes, half-closes towards the client, exits.
#include "echo.hpp"

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
      const std::uint32_t len = bench::load_le32(buf.get() + whole);
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
  bench::store_le32(frame.data(), static_cast<std::uint32_t>(body.size()));
  std::memcpy(frame.data() + 4, body.data(), body.size());
  bench::write_all(fd, frame.data(), frame.size());
}

// Reads the hello frame. Returns "" on EOF before it (a readiness probe); throws on error.
std::string read_hello(int fd) {
  std::uint8_t header[4];
  if (!bench::read_exact(fd, header, sizeof header)) return {};
  const std::uint32_t len = bench::load_le32(header);
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
  if (cfg.calls < 1 || cfg.warmup < 0 || !(cfg.seconds > 0)) {
    throw std::invalid_argument("floor: calls >= 1, warmup >= 0 and seconds > 0 required");
  }
}

}  // namespace

int floor_broker_role(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "floor_broker: usage: _role floor_broker WORKDIR\n");
    return 2;
  }
  const std::string path = args[0] + socket_name;
  try {
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
    bench::set_io_timeout(client.get(), idle_timeout);
    bench::set_io_timeout(service.get(), idle_timeout);

    std::exception_ptr back_error;
    std::thread back([&] {
      try {
        pump_frames(service.get(), client.get());
        ::shutdown(client.get(), SHUT_WR);
      } catch (...) {
        back_error = std::current_exception();
        ::shutdown(client.get(), SHUT_RDWR);
        ::shutdown(service.get(), SHUT_RDWR);
      }
    });
    std::exception_ptr forth_error;
    try {
      pump_frames(client.get(), service.get());
      ::shutdown(service.get(), SHUT_WR);
    } catch (...) {
      forth_error = std::current_exception();
      ::shutdown(client.get(), SHUT_RDWR);
      ::shutdown(service.get(), SHUT_RDWR);
    }
    back.join();
    if (forth_error) std::rethrow_exception(forth_error);
    if (back_error) std::rethrow_exception(back_error);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "floor_broker: %s\n", e.what());
    return 1;
  }
}

int floor_service_role(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "floor_service: usage: _role floor_service WORKDIR\n");
    return 2;
  }
  try {
    bench::unique_fd fd(bench::connect_unix(args[0] + socket_name, startup_timeout));
    write_frame(fd.get(), "S");
    bench::set_io_timeout(fd.get(), idle_timeout);
    pump_frames(fd.get(), fd.get());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "floor_service: %s\n", e.what());
    return 1;
  }
}

echo_result run_floor_echo(const echo_config& cfg) {
  check_config(cfg);
  const std::string path = cfg.workdir + socket_name;
  ::unlink(path.c_str());

  bench::child_guard children;
  const pid_t broker = children.spawn(cfg.self_exe, "floor_broker", {cfg.workdir});
  bench::wait_for_unix_socket(path, startup_timeout, broker);
  const pid_t service = children.spawn(cfg.self_exe, "floor_service", {cfg.workdir});
  bench::unique_fd fd(bench::connect_unix(path, client_io_timeout));
  write_frame(fd.get(), "C");

  const std::size_t frame_size = 4 + cfg.payload;
  std::vector<std::uint8_t> rx(buffer_bytes);
  std::vector<std::uint8_t> tx(frame_size);
  bench::store_le32(tx.data(), static_cast<std::uint32_t>(cfg.payload));
  for (std::size_t i = 0; i < cfg.payload; ++i)
    tx[4 + i] = static_cast<std::uint8_t>('a' + i % 26);

  // One request, block until its echo is back; the body carries `seq` and must come back as sent.
  auto round_trip = [&](std::uint64_t seq) {
    std::memcpy(tx.data() + 4, &seq, sizeof seq);
    bench::write_all(fd.get(), tx.data(), frame_size);
    std::size_t have = 0;
    while (have < frame_size) {
      const ssize_t n = ::read(fd.get(), rx.data() + have, rx.size() - have);
      if (n > 0) {
        have += static_cast<std::size_t>(n);
      } else if (n == 0) {
        throw std::runtime_error("floor: broker closed the connection");
      } else if (errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "floor: waiting for an echo");
      }
    }
    if (have != frame_size || std::memcmp(rx.data(), tx.data(), frame_size) != 0) {
      throw std::runtime_error("floor: echo does not match the request");
    }
  };

  std::uint64_t seq = 0;
  for (int i = 0; i < cfg.warmup; ++i)
    round_trip(++seq);
  std::vector<bench::mono_clock::duration> samples;
  samples.reserve(static_cast<std::size_t>(cfg.calls));
  for (int i = 0; i < cfg.calls; ++i) {
    const auto t0 = bench::mono_now();
    round_trip(++seq);
    samples.push_back(bench::mono_now() - t0);
  }

  // Pipelined: `inflight` frames out; every read answers k of them and k new ones go out at once.
  const auto inflight = static_cast<std::size_t>(cfg.inflight);
  std::vector<std::uint8_t> batch(inflight * frame_size);
  for (std::size_t i = 0; i < inflight; ++i) {
    std::memcpy(batch.data() + i * frame_size, tx.data(), frame_size);
  }
  std::uint64_t completed = 0;
  std::size_t have = 0;
  const auto start = bench::mono_now();
  const auto end = start + std::chrono::duration_cast<bench::mono_clock::duration>(
                               std::chrono::duration<double>(cfg.seconds));
  auto stop = start;
  bench::write_all(fd.get(), batch.data(), batch.size());
  for (;;) {
    const ssize_t n = ::read(fd.get(), rx.data() + have, rx.size() - have);
    if (n == 0) throw std::runtime_error("floor: broker closed the connection");
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "floor: pipelined read");
    }
    have += static_cast<std::size_t>(n);
    const std::size_t answered = have / frame_size;
    if (answered > inflight) throw std::runtime_error("floor: more echoes than requests");
    have -= answered * frame_size;
    if (have != 0) std::memmove(rx.data(), rx.data() + answered * frame_size, have);
    completed += answered;
    stop = bench::mono_now();
    if (stop >= end) break;
    if (answered != 0) bench::write_all(fd.get(), batch.data(), answered * frame_size);
  }
  const double elapsed = std::chrono::duration<double>(stop - start).count();

  echo_result result;
  result.rtt_p50_us = bench::percentile_us(samples, 0.50);
  result.rtt_p99_us = bench::percentile_us(samples, 0.99);
  result.calls_per_s = static_cast<double>(completed) / elapsed;
  result.broker_rss_kib = bench::read_vm_hwm_kib(broker);

  // Orderly shutdown: half-close, drain the echoes still in flight, let both roles exit by EOF.
  ::shutdown(fd.get(), SHUT_WR);
  bench::set_io_timeout(fd.get(), 2s);
  const auto drain_deadline = bench::mono_now() + 5s;
  while (bench::mono_now() < drain_deadline) {
    const ssize_t n = ::read(fd.get(), rx.data(), rx.size());
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  fd.close();
  for (const pid_t pid : {service, broker}) {
    const int status = children.wait(pid, 2s);
    if (status != 0) {
      std::fprintf(stderr, "floor: role %d did not exit cleanly (%s)\n", static_cast<int>(pid),
                   bench::describe_status(status).c_str());
    }
  }
  return result;
}
