// A fresh directory for a test's socket paths and files, removed with everything in it.
//
//   plexus::test::temp_dir dir;
//   const auto address = "ipc://" + dir.path() + "/router.sock";
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace plexus::test {

class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/plexus-test-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  temp_dir(temp_dir&&) = delete;  // one owner: neither copied nor moved
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace plexus::test
