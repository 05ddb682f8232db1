#include "plexus/supervisor/logs.hpp"

#include "plexus/log/record.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

// line_reader over a pipe the test writes to, on a loop the test drives (every wait has
// a deadline); rotating_file in a fresh directory under /tmp, removed afterwards.

namespace plexus::supervisor {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using test::run_until;

struct piece {
  std::string text;
  bool partial;
  bool operator==(const piece&) const = default;
};

std::ostream& operator<<(std::ostream& os, const piece& p) {
  return os << '"' << p.text << '"' << (p.partial ? "(partial)" : "");
}

// A pipe whose read end goes to a line_reader collecting what it delivers.
struct reader_fixture {
  explicit reader_fixture(line_reader_options opts = {}) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    wfd = fds[1];
    reader.emplace(
        io, fds[0], opts,
        [this](std::string_view line, bool partial) {
          got.push_back({std::string(line), partial});
          if (on_line) on_line();
        },
        [this] { ++eofs; });
    reader->start();
  }
  ~reader_fixture() {
    close_writer();
    reader.reset();
  }

  // Writes everything, letting the loop drain the pipe when it is full.
  void write(std::string_view data) {
    const int flags = ::fcntl(wfd, F_GETFL);
    ::fcntl(wfd, F_SETFL, flags | O_NONBLOCK);
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (!data.empty() && std::chrono::steady_clock::now() < end) {
      const auto n = ::write(wfd, data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        break;
      } else {
        io.restart();
        io.run_one_for(20ms);
      }
    }
    ASSERT_TRUE(data.empty()) << "could not write to the pipe";
  }
  void close_writer() {
    if (wfd >= 0) ::close(wfd);
    wfd = -1;
  }
  bool wait_for(std::size_t pieces) {
    return run_until(io, [&] { return got.size() >= pieces; });
  }
  bool wait_eof() {
    return run_until(io, [&] { return eofs > 0; });
  }
  // Runs the loop until it has nothing left to do (bounded).
  void drain() {
    io.restart();
    io.run_for(200ms);
  }

  asio::io_context io;
  int wfd = -1;
  std::vector<piece> got;
  int eofs = 0;
  std::function<void()> on_line;
  std::optional<line_reader> reader;
};

TEST(LineReader, JoinsALineSplitAcrossWrites) {
  reader_fixture f;
  f.write("hel");
  f.drain();
  EXPECT_TRUE(f.got.empty());
  f.write("lo wor");
  f.drain();
  EXPECT_TRUE(f.got.empty());
  f.write("ld\nsecond");
  ASSERT_TRUE(f.wait_for(1));
  f.write(" line\n");
  ASSERT_TRUE(f.wait_for(2));
  EXPECT_EQ(f.got, (std::vector<piece>{{"hello world", false}, {"second line", false}}));
  EXPECT_EQ(f.eofs, 0);
}

TEST(LineReader, StripsCarriageReturns) {
  reader_fixture f;
  f.write("dos\r\nunix\n\r\nin\rside\r\nsplit\r");
  ASSERT_TRUE(f.wait_for(4));
  f.write("\n");
  ASSERT_TRUE(f.wait_for(5));
  EXPECT_EQ(
      f.got,
      (std::vector<piece>{
          {"dos", false}, {"unix", false}, {"", false}, {"in\rside", false}, {"split", false}}));
}

TEST(LineReader, DeliversManyLinesFromOneWrite) {
  reader_fixture f;
  std::string data;
  for (int i = 0; i < 2000; ++i)
    data += "line " + std::to_string(i) + "\n";
  f.write(data);
  ASSERT_TRUE(f.wait_for(2000));
  ASSERT_EQ(f.got.size(), 2000u);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(f.got[static_cast<std::size_t>(i)], (piece{"line " + std::to_string(i), false}));
  }
}

TEST(LineReader, SplitsALongLineIntoMaxLinePieces) {
  reader_fixture f({.max_line = 4});
  f.write("abcdefghij\nabcd\nabcdefgh\nabcd\r\n");
  ASSERT_TRUE(f.wait_for(7));
  EXPECT_EQ(f.got, (std::vector<piece>{{"abcd", true},
                                       {"efgh", true},
                                       {"ij", false},
                                       {"abcd", false},
                                       {"abcd", true},
                                       {"efgh", false},
                                       {"abcd", false}}));
}

TEST(LineReader, SplitsALongLineArrivingInParts) {
  reader_fixture f({.max_line = 4});
  f.write("abcdef");
  ASSERT_TRUE(f.wait_for(1));
  EXPECT_EQ(f.got, (std::vector<piece>{{"abcd", true}}));
  // A trailing '\r' may still turn out to end the line: nothing more goes out yet.
  f.write("gh\r");
  f.drain();
  EXPECT_EQ(f.got.size(), 1u);
  f.write("\n");
  ASSERT_TRUE(f.wait_for(2));
  EXPECT_EQ(f.got, (std::vector<piece>{{"abcd", true}, {"efgh", false}}));
}

TEST(LineReader, CutsALongLineBetweenCharactersNotInsideThem) {
  // "é" is 2 bytes: with max_line 5, a byte cut would split every third one.
  reader_fixture f({.max_line = 5});
  std::string line;
  for (int i = 0; i < 20; ++i)
    line += "\xc3\xa9";
  f.write(line.substr(0, 17));  // arrives in parts: the unterminated path
  f.write(line.substr(17) + "\n" + line + "\n");
  ASSERT_TRUE(f.wait_for(20));
  std::string first, second;
  std::size_t line_ends = 0;
  for (const auto& p : f.got) {
    if (p.partial) {
      EXPECT_EQ(p.text.size(), 4u) << p;
    }
    EXPECT_TRUE(log::is_valid_utf8(p.text)) << p;
    (line_ends == 0 ? first : second) += p.text;
    if (!p.partial) ++line_ends;
  }
  EXPECT_EQ(line_ends, 2u);
  EXPECT_EQ(first, line);
  EXPECT_EQ(second, line);
}

TEST(LineReader, SplitsAVeryLongLineWithTheDefaultLimit) {
  reader_fixture f;
  const std::size_t max = line_reader_options{}.max_line;
  std::string line(3 * max + 1000, 'x');
  for (std::size_t i = 0; i < line.size(); ++i)
    line[i] = static_cast<char>('a' + i % 26);
  f.write(line + "\nnext\n");
  ASSERT_TRUE(f.wait_for(5));
  ASSERT_EQ(f.got.size(), 5u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(f.got[i].text, line.substr(i * max, max));
    EXPECT_TRUE(f.got[i].partial);
  }
  EXPECT_EQ(f.got[3], (piece{line.substr(3 * max), false}));
  EXPECT_EQ(f.got[4], (piece{"next", false}));
}

TEST(LineReader, DeliversTheUnterminatedLastLineThenEofOnce) {
  reader_fixture f;
  f.write("one\ntwo");
  ASSERT_TRUE(f.wait_for(1));
  f.close_writer();
  ASSERT_TRUE(f.wait_eof());
  EXPECT_EQ(f.got, (std::vector<piece>{{"one", false}, {"two", false}}));
  f.drain();
  EXPECT_EQ(f.eofs, 1);
  EXPECT_EQ(f.got.size(), 2u);
}

TEST(LineReader, EofWithoutInput) {
  reader_fixture f;
  f.close_writer();
  ASSERT_TRUE(f.wait_eof());
  f.drain();
  EXPECT_TRUE(f.got.empty());
  EXPECT_EQ(f.eofs, 1);
}

TEST(LineReader, NothingRunsAfterTheReaderIsDestroyed) {
  reader_fixture f;
  f.write("first\n");
  ASSERT_TRUE(f.wait_for(1));
  f.write("second\nthird");  // in the pipe, not read yet: the loop has not run
  f.reader.reset();
  f.close_writer();  // (writing more would raise SIGPIPE: the read end is closed)
  f.drain();
  EXPECT_EQ(f.got, (std::vector<piece>{{"first", false}}));
  EXPECT_EQ(f.eofs, 0);
}

TEST(LineReader, AHandlerMayDestroyTheReader) {
  reader_fixture f;
  f.on_line = [&] { f.reader.reset(); };
  f.write("a\nb\nc");
  f.close_writer();
  ASSERT_TRUE(f.wait_for(1));
  f.drain();
  EXPECT_EQ(f.got, (std::vector<piece>{{"a", false}}));
  EXPECT_EQ(f.eofs, 0);
}

TEST(LineReader, AnEofHandlerMayDestroyTheReader) {
  asio::io_context io;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  std::optional<line_reader> reader;
  std::vector<std::string> lines;
  int eofs = 0;
  reader.emplace(
      io, fds[0], line_reader_options{},
      [&](std::string_view line, bool) { lines.emplace_back(line); },
      [&] {
        ++eofs;
        reader.reset();
      });
  reader->start();
  ASSERT_EQ(::write(fds[1], "x\ny", 3), 3);
  ::close(fds[1]);
  ASSERT_TRUE(run_until(io, [&] { return eofs > 0; }));
  io.restart();
  io.run_for(200ms);
  EXPECT_EQ(lines, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(eofs, 1);
  EXPECT_FALSE(reader.has_value());
}

// ---- rotating_file ------------------------------------------------------------------

class RotatingFile : public ::testing::Test {
 protected:
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  // Writes "line1" … "line<n>" and flushes.
  static void write_lines(rotating_file& f, int n) {
    for (int i = 1; i <= n; ++i)
      f.write_line("line" + std::to_string(i));
    f.flush();
  }

  test::temp_dir tmp_;
  fs::path dir_ = tmp_.path();
};

TEST_F(RotatingFile, CreatesItsDirectoryAndAppendsLines) {
  const auto path = (dir_ / "a" / "b" / "app.log").string();
  auto f = rotating_file::open(path, {});
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ((*f)->path(), path);
  EXPECT_EQ((*f)->size(), 0u);
  (*f)->write_line("hello");
  (*f)->write_line("");
  (*f)->write_line("world");
  (*f)->flush();
  EXPECT_EQ((*f)->size(), 13u);
  EXPECT_EQ(read(path), "hello\n\nworld\n");
  EXPECT_EQ((*f)->write_errors(), 0u);
}

TEST_F(RotatingFile, AppendsToAnExistingFile) {
  const auto path = (dir_ / "app.log").string();
  { std::ofstream(path) << "old\n"; }
  {
    auto f = rotating_file::open(path, {});
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ((*f)->size(), 4u);
    (*f)->write_line("new");
  }  // closing flushes
  EXPECT_EQ(read(path), "old\nnew\n");
}

TEST_F(RotatingFile, RotatesKeepingTheConfiguredNumberOfFiles) {
  const auto path = (dir_ / "app.log").string();
  auto f = rotating_file::open(path, {.max_bytes = 12, .files = 2});
  ASSERT_TRUE(f) << f.error().message;
  write_lines(**f, 7);  // each line is 6 bytes: two fit exactly, the third rotates
  EXPECT_EQ(read(path), "line7\n");
  EXPECT_EQ(read(path + ".1"), "line5\nline6\n");
  EXPECT_EQ(read(path + ".2"), "line3\nline4\n");
  EXPECT_FALSE(fs::exists(path + ".3"));
  EXPECT_EQ((*f)->size(), 6u);
  EXPECT_EQ((*f)->write_errors(), 0u);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_))
    ++files;
  EXPECT_EQ(files, 3u);
}

TEST_F(RotatingFile, RotatesAnExistingFileThatIsTooBig) {
  const auto path = (dir_ / "app.log").string();
  { std::ofstream(path) << "0123456789\n"; }
  auto f = rotating_file::open(path, {.max_bytes = 12, .files = 1});
  ASSERT_TRUE(f) << f.error().message;
  (*f)->write_line("abc");
  (*f)->flush();
  EXPECT_EQ(read(path), "abc\n");
  EXPECT_EQ(read(path + ".1"), "0123456789\n");
}

TEST_F(RotatingFile, WritesALineLongerThanTheLimitIntoItsOwnFile) {
  const auto path = (dir_ / "app.log").string();
  auto f = rotating_file::open(path, {.max_bytes = 8, .files = 3});
  ASSERT_TRUE(f) << f.error().message;
  (*f)->write_line("0123456789abc");  // an empty file takes it whole
  (*f)->write_line("x");
  (*f)->flush();
  EXPECT_EQ(read(path), "x\n");
  EXPECT_EQ(read(path + ".1"), "0123456789abc\n");
  EXPECT_FALSE(fs::exists(path + ".2"));
}

TEST_F(RotatingFile, TruncatesWhenNoFilesAreKept) {
  const auto path = (dir_ / "app.log").string();
  auto f = rotating_file::open(path, {.max_bytes = 12, .files = 0});
  ASSERT_TRUE(f) << f.error().message;
  write_lines(**f, 5);
  EXPECT_EQ(read(path), "line5\n");
  EXPECT_FALSE(fs::exists(path + ".1"));
  EXPECT_EQ((*f)->size(), 6u);
  EXPECT_EQ((*f)->write_errors(), 0u);
}

TEST_F(RotatingFile, FailsWhenTheDirectoryCannotBeCreated) {
  const auto blocker = dir_ / "file";
  { std::ofstream(blocker) << "x"; }
  const auto path = (blocker / "sub" / "app.log").string();
  auto f = rotating_file::open(path, {});
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, errc::unavailable);
  EXPECT_NE(f.error().message.find(path), std::string::npos) << f.error().message;
}

TEST_F(RotatingFile, FailsWhenThePathIsADirectory) {
  const auto path = (dir_ / "d").string();
  fs::create_directory(path);
  auto f = rotating_file::open(path, {});
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, errc::unavailable);
  EXPECT_NE(f.error().message.find(path), std::string::npos) << f.error().message;
}

TEST_F(RotatingFile, CountsFailedWrites) {
  // A file size limit makes writes past it fail (EFBIG, with SIGXFSZ ignored).
  const auto path = (dir_ / "app.log").string();
  auto f = rotating_file::open(path, {});
  ASSERT_TRUE(f) << f.error().message;
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old_limit;
  small.rlim_cur = 4;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  (*f)->write_line("lost beyond four bytes");
  (*f)->flush();
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_GT((*f)->write_errors(), 0u);
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST_F(RotatingFile, ItsDirectoriesAreOwnerOnlyAndItsFileToo) {
  const auto path = dir_ / "a" / "b" / "app.log";
  const mode_t old_umask = ::umask(0);  // by the umask alone: 0777 and 0666
  auto f = rotating_file::open(path.string(), {.max_bytes = 12, .files = 1});
  ::umask(old_umask);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(mode_of(dir_ / "a"), 0700u);
  EXPECT_EQ(mode_of(dir_ / "a" / "b"), 0700u);
  EXPECT_EQ(mode_of(path), 0600u);
}

TEST_F(RotatingFile, ASymbolicLinkAtThePathIsRefusedAndItsTargetUntouched) {
  const auto target = dir_ / "target";
  const auto path = dir_ / "app.log";
  { std::ofstream(target) << "precious\n"; }
  fs::create_symlink(target, path);
  auto f = rotating_file::open(path.string(), {});
  ASSERT_FALSE(f) << "opened through the link";
  EXPECT_EQ(f.error().code, errc::unavailable);
  EXPECT_NE(f.error().message.find(path.string() + ": it is a symbolic link"), std::string::npos)
      << f.error().message;
  EXPECT_EQ(read(target), "precious\n");
  EXPECT_TRUE(fs::is_symlink(path));
}

TEST_F(RotatingFile, AFifoAtThePathIsRefused) {
  const auto path = dir_ / "app.log";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // With a reader there, opening the fifo for writing would succeed at once.
  const int reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  auto f = rotating_file::open(path.string(), {});
  ::close(reader);
  ASSERT_FALSE(f) << "opened a fifo";
  EXPECT_NE(f.error().message.find(path.string()), std::string::npos) << f.error().message;
}

TEST_F(RotatingFile, AWritableLogDirectoryIsRefused) {
  const auto shared = dir_ / "shared";
  fs::create_directory(shared);
  fs::permissions(shared, fs::perms::all);
  auto f = rotating_file::open((shared / "app.log").string(), {});
  ASSERT_FALSE(f) << "opened in a directory anyone may write to";
  EXPECT_EQ(f.error().code, errc::unavailable);
  EXPECT_NE(f.error().message.find(shared.string()), std::string::npos) << f.error().message;
  EXPECT_NE(f.error().message.find("writable by group or others"), std::string::npos)
      << f.error().message;
  EXPECT_FALSE(fs::exists(shared / "app.log"));
}

}  // namespace
}  // namespace plexus::supervisor
