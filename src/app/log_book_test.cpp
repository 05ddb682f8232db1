#include "app/log_book.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "plexus/log/record.hpp"
#include "plexus/wire/message.hpp"
#include "support/temp_dir.hpp"

// The log book on a loop the test owns, writing into a fresh directory; no echo.

namespace plexus::app {
namespace {

const std::string fffd = "\xef\xbf\xbd";  // U+FFFD

std::string file_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(LogBook, ServesValidTextAndWritesTheCapturedBytesToTheFile) {
  test::temp_dir dir;
  boost::asio::io_context io;
  {
    log_book book(io, {}, dir.path(), nullptr, {{"calc", 1}, {"lib", 1}});
    // A child's line that is not UTF-8, as the supervisor publishes it.
    book.add("log.calc", value::array({log::make_line_record(
                             "info", "bad \xff\xfe", {{"stream", "stdout"}}, "calc", 0, 7)}));
    // A record made without make_record (another library, a hand-made publication).
    book.add("log.lib",
             value::array({value{
                 {"level", "warn"}, {"message", "lib \xfe"}, {"fields", {{"k\xff", "v\xc0"}}}}}));
    auto history = book.query(value::array());
    ASSERT_TRUE(history) << history.error().message;
    ASSERT_EQ(history->size(), 2u)
        << history->dump(-1, ' ', false, value::error_handler_t::replace);
    EXPECT_EQ((*history)[0]["message"], "bad " + fffd + fffd);
    EXPECT_FALSE((*history)[0].contains("raw"));
    EXPECT_EQ((*history)[1]["message"], "lib " + fffd);
    EXPECT_EQ((*history)[1]["fields"], value({{"k" + fffd, "v" + fffd}}));
    // The answer to plexus.logs decodes on the other side (CBOR text must be UTF-8).
    std::vector<std::uint8_t> bytes;
    wire::encode(bytes, wire::response{.msgid = 1, .result = *history});
    auto decoded = wire::decode(bytes);
    EXPECT_TRUE(decoded) << decoded.error().message;
  }  // the book flushes its files
  const auto text = file_text(dir.path() + "/calc.0.log");
  EXPECT_NE(text.find(" calc[0] bad \xff\xfe\n"), std::string::npos) << text;
  EXPECT_NE(file_text(dir.path() + "/lib.log").find(" lib lib " + fffd), std::string::npos);
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.insert(e.path().filename().string());
  return out;
}

value record(std::string_view process, std::int64_t replica) {
  return value::array({log::make_record("info", "a line", value::object(), process, replica, 1)});
}

TEST(LogBook, OpensFilesOnlyForTheProcessesTheSupervisorKnows) {
  test::temp_dir dir;
  boost::asio::io_context io;
  supervisor::tree_spec spec;
  spec.processes.push_back({.name = "calc", .replicas = 2});
  log_book book(io, {}, dir.path(), nullptr, log_book::known_from(spec));

  book.add("log.calc", record("calc", 0));
  book.add("log.calc", record("calc", 1));
  book.add("log.calc", record("calc", 1));
  book.add("log.plexus", record("plexus", 0));
  EXPECT_EQ(book.open_files(), 3u);
  EXPECT_EQ(book.unfiled(), 0u);

  // Names nobody configured, and a replica the process does not have.
  for (int i = 0; i < 50; ++i)
    book.add("log.intruder" + std::to_string(i), record("intruder" + std::to_string(i), 0));
  book.add("log.calc", record("calc", 2));
  book.add("log.calc", record("calc", -1));
  book.add("log.other", value::array({value{{"level", "info"}, {"message", "bare"}}}));
  EXPECT_EQ(book.open_files(), 3u);
  EXPECT_EQ(book.unfiled(), 53u);
  book.wait_written();
  EXPECT_EQ(files_in(dir.path()),
            (std::set<std::string>{"calc.0.log", "calc.1.log", "plexus.0.log"}));

  // They are not filed, but `plexus logs` still shows them (the history is bounded).
  auto intruders = book.query(value::array({{{"process", "intruder7"}}}));
  ASSERT_TRUE(intruders);
  EXPECT_EQ(intruders->size(), 1u);
}

// The files are written by the book's thread: what waits for it is bounded, a line
// beyond the bound is counted and not filed, and everything within it reaches the file.
TEST(LogBook, LinesBeyondWhatMayWaitForTheWriterAreCountedNotFiled) {
  test::temp_dir dir;
  boost::asio::io_context io;  // never run: the lines of this "turn" wait in the book
  log_book book(io, {}, dir.path(), nullptr, {{"calc", 1}}, 300);
  for (int i = 0; i < 20; ++i)
    book.add("log.calc", value::array({log::make_record("info", "line " + std::to_string(i),
                                                        value::object(), "calc", 0, 1)}));
  EXPECT_GT(book.unwritten(), 0u);
  EXPECT_LT(book.unwritten(), 20u);
  book.wait_written();
  const auto text = file_text(dir.path() + "/calc.0.log");
  const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  EXPECT_EQ(lines + book.unwritten(), 20u) << text;
  EXPECT_NE(text.find(" line 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find(" line 19\n"), std::string::npos) << text;
  EXPECT_EQ(book.file_errors(), 0u);

  // Once written, there is room again.
  book.add("log.calc",
           value::array({log::make_record("info", "after", value::object(), "calc", 0, 1)}));
  book.wait_written();
  EXPECT_NE(file_text(dir.path() + "/calc.0.log").find(" after\n"), std::string::npos);
}

}  // namespace
}  // namespace plexus::app
