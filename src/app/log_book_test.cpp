#include "app/log_book.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <fstream>
#include <iterator>
#include <vector>

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
    log_book book(io, {}, dir.path(), nullptr);
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

}  // namespace
}  // namespace plexus::app
