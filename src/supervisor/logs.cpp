#include "plexus/supervisor/logs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "plexus/log/record.hpp"
#include "plexus/os/private_dir.hpp"
#include "plexus/os/unique_fd.hpp"

namespace plexus::supervisor {

namespace asio = boost::asio;

// ---- line_reader --------------------------------------------------------------------

namespace {
constexpr std::size_t read_chunk = 64u << 10;
}  // namespace

// Lives as long as the reader or a pending read, whichever is longer. `alive` turns
// false in the reader's destructor: from then on no handler is invoked.
struct line_reader::state : std::enable_shared_from_this<line_reader::state> {
  state(asio::io_context& io, line_reader_options o, line_handler l, std::function<void()> e)
      : sd(io), opts(o), on_line(std::move(l)), on_eof(std::move(e)) {
    if (opts.max_line == 0) opts.max_line = 1;
  }

  // Waits until the pipe is readable, then reads what is there into the loop thread's
  // scratch buffer and hands it on before anything else can use that buffer. (No buffer
  // per reader: a supervisor holds three readers per child, and most of them read a few
  // lines in their life.)
  void read() {
    sd.async_wait(asio::posix::descriptor_base::wait_read,
                  [self = shared_from_this()](const boost::system::error_code& ec) {
                    if (!self->alive || ec == asio::error::operation_aborted) return;
                    if (ec) {
                      self->finish();
                      return;
                    }
                    self->read_ready();
                  });
  }

  void read_ready() {
    static thread_local std::unique_ptr<char[]> scratch(new char[read_chunk]);
    // A few reads at most, then the loop's other work gets its turn; the next wait
    // returns at once if more is there.
    for (int round = 0; round < 4; ++round) {
      const ssize_t n = ::read(sd.native_handle(), scratch.get(), read_chunk);
      if (n > 0) {
        if (!consume(scratch.get(), static_cast<std::size_t>(n))) return;
        if (static_cast<std::size_t>(n) < read_chunk) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      finish();  // end of input, or an error reading it
      return;
    }
    read();
  }

  // Splits `n` bytes into lines. False when the reader went away in a handler.
  bool consume(const char* data, std::size_t n) {
    const char* p = data;
    const char* const end = data + n;
    while (p < end) {
      const auto* nl =
          static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      if (!nl) {
        pending.append(p, static_cast<std::size_t>(end - p));
        return emit_pieces();
      }
      bool ok;
      if (pending.empty()) {
        ok = emit_line(std::string_view(p, static_cast<std::size_t>(nl - p)));
      } else {
        pending.append(p, static_cast<std::size_t>(nl - p));
        ok = emit_line(pending);
        pending.clear();
      }
      if (!ok) return false;
      p = nl + 1;
    }
    return true;
  }

  // A complete line (or the tail of one whose head went out as partial pieces).
  bool emit_line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (line.size() > opts.max_line) {
      const auto n = log::cut_at_boundary(line, opts.max_line);
      if (!deliver(line.substr(0, n), true)) return false;
      line.remove_prefix(n);
    }
    return deliver(line, false);
  }

  // Sends the unterminated `pending` out in max_line pieces while more of the line is
  // sure to follow each one. A trailing '\r' is not sure yet: a '\n' may come next.
  bool emit_pieces() {
    std::size_t certain = pending.size();
    if (certain > 0 && pending.back() == '\r') --certain;
    std::size_t off = 0;
    bool ok = true;
    while (certain - off > opts.max_line) {
      const auto rest = std::string_view(pending).substr(off, certain - off);
      const auto n = log::cut_at_boundary(rest, opts.max_line);
      if (!deliver(rest.substr(0, n), true)) {
        ok = false;
        break;
      }
      off += n;
    }
    if (ok && off > 0) pending.erase(0, off);
    return ok;
  }

  bool deliver(std::string_view line, bool partial) {
    if (on_line) {
      in_handler = true;
      on_line(line, partial);
      in_handler = false;
    }
    if (!alive) release();
    return alive;
  }

  // End of input: the unterminated remainder, then on_eof, once.
  void finish() {
    if (!pending.empty()) {
      std::string last = std::move(pending);
      pending.clear();
      if (!emit_line(last)) return;
    }
    boost::system::error_code ignored;
    sd.close(ignored);
    auto eof = std::move(on_eof);
    on_eof = nullptr;
    release();
    if (eof) eof();
  }

  // Drops the handlers (and what they captured) unless one of them is running.
  void release() {
    if (in_handler) return;
    on_line = nullptr;
    on_eof = nullptr;
  }

  asio::posix::stream_descriptor sd;
  line_reader_options opts;
  line_handler on_line;
  std::function<void()> on_eof;
  std::string pending;  // the unterminated line so far (at most max_line + 1 bytes)
  bool alive = true;
  bool started = false;
  bool in_handler = false;
};

line_reader::line_reader(asio::io_context& io, int fd, line_reader_options opts,
                         line_handler on_line, std::function<void()> on_eof)
    : s_(std::make_shared<state>(io, opts, std::move(on_line), std::move(on_eof))) {
  os::unique_fd owned(fd);
  boost::system::error_code ec;
  s_->sd.assign(owned.get(), ec);
  if (ec) return;         // `owned` closes it; start() reports an empty input
  (void)owned.release();  // the stream descriptor owns it now
  s_->sd.non_blocking(true, ec);
}

line_reader::~line_reader() {
  s_->alive = false;
  boost::system::error_code ignored;
  s_->sd.close(ignored);  // a pending read completes with operation_aborted
  s_->release();
}

void line_reader::start() {
  if (s_->started || !s_->alive) return;
  s_->started = true;
  if (!s_->sd.is_open()) {
    // The descriptor could not be registered: report an empty input.
    asio::post(s_->sd.get_executor(), [self = s_] {
      if (self->alive) self->finish();
    });
    return;
  }
  s_->read();
}

// ---- rotating_file ------------------------------------------------------------------

namespace {

std::size_t file_size(std::FILE* f) {
  struct stat st {};
  if (::fstat(::fileno(f), &st) != 0 || st.st_size < 0) return 0;
  return static_cast<std::size_t>(st.st_size);
}

// Opens a log file for writing (appending, or truncated) without following a symbolic
// link (ELOOP) and only if it is a regular file (a FIFO or device there: EINVAL), mode
// 0600 when created. Null with errno set on failure.
std::FILE* open_log_file(const std::string& path, bool truncate) {
  const int flags =
      O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (truncate ? O_TRUNC : O_APPEND);
  os::unique_fd fd(::open(path.c_str(), flags, 0600));
  if (!fd) return nullptr;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return nullptr;
  if (!S_ISREG(st.st_mode)) {
    errno = EINVAL;
    return nullptr;
  }
  // O_NONBLOCK only kept the open from waiting on a FIFO; writes to a file block.
  const int status = ::fcntl(fd.get(), F_GETFL);
  if (status == -1 || ::fcntl(fd.get(), F_SETFL, status & ~O_NONBLOCK) != 0) return nullptr;
  std::FILE* f = ::fdopen(fd.get(), truncate ? "w" : "a");
  if (f) (void)fd.release();  // the FILE owns it now
  return f;
}

}  // namespace

result<std::unique_ptr<rotating_file>> rotating_file::open(std::string path,
                                                           rotating_file_options opts) {
  const auto dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) {
    if (auto why = os::ensure_private_dir(dir))
      return error(errc::unavailable, "cannot open log file " + path + ": " + *why);
  }
  std::FILE* f = open_log_file(path, false);
  if (!f) {
    const char* why = errno == ELOOP    ? "it is a symbolic link"
                      : errno == EINVAL ? "it is not a regular file"
                                        : std::strerror(errno);
    return error(errc::unavailable, "cannot open log file " + path + ": " + why);
  }
  const std::size_t size = file_size(f);
  return std::unique_ptr<rotating_file>(new rotating_file(std::move(path), opts, f, size));
}

rotating_file::rotating_file(std::string path, rotating_file_options opts, std::FILE* f,
                             std::size_t size)
    : path_(std::move(path)), opts_(opts), file_(f), size_(size) {}

rotating_file::~rotating_file() {
  if (file_) std::fclose(file_);
}

void rotating_file::write_line(std::string_view line) {
  const std::size_t n = line.size() + 1;
  if (size_ > 0 && size_ + n > opts_.max_bytes) rotate();
  if (!file_) {
    // An earlier reopen failed: try again, once per line.
    file_ = open_log_file(path_, false);
    if (!file_) {
      ++errors_;
      return;
    }
    size_ = file_size(file_);
  }
  const std::size_t written = std::fwrite(line.data(), 1, line.size(), file_);
  const bool ok = written == line.size() && std::fputc('\n', file_) != EOF;
  size_ += written + (ok ? 1 : 0);
  if (!ok) {
    ++errors_;
    std::clearerr(file_);
  }
}

void rotating_file::flush() {
  if (file_ && std::fflush(file_) != 0) {
    ++errors_;
    std::clearerr(file_);
  }
}

void rotating_file::rotate() {
  if (file_) {
    if (std::fclose(file_) != 0) ++errors_;
    file_ = nullptr;
  }
  size_ = 0;
  if (opts_.files == 0) {
    file_ = open_log_file(path_, true);
    if (!file_) ++errors_;
    return;
  }
  const auto numbered = [this](std::size_t i) { return path_ + "." + std::to_string(i); };
  // path.(N-1) → path.N … path.1 → path.2: the oldest one is replaced.
  for (std::size_t i = opts_.files - 1; i >= 1; --i) {
    if (std::rename(numbered(i).c_str(), numbered(i + 1).c_str()) != 0 && errno != ENOENT)
      ++errors_;
  }
  if (std::rename(path_.c_str(), numbered(1).c_str()) != 0 && errno != ENOENT) ++errors_;
  file_ = open_log_file(path_, false);
  if (!file_) {
    ++errors_;
    return;
  }
  size_ = file_size(file_);  // not 0 if the rename failed
}

}  // namespace plexus::supervisor
