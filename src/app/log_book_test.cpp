#include "app/log_book.hpp"

#include <filesystem>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "plexus/log/record.hpp"
#include "support/temp_dir.hpp"

namespace plexus::app {
namespace {

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
  EXPECT_EQ(files_in(dir.path()),
            (std::set<std::string>{"calc.0.log", "calc.1.log", "plexus.0.log"}));

  // They are not filed, but `plexus logs` still shows them (the history is bounded).
  auto intruders = book.query(value::array({{{"process", "intruder7"}}}));
  ASSERT_TRUE(intruders);
  EXPECT_EQ(intruders->size(), 1u);
}

}  // namespace
}  // namespace plexus::app
