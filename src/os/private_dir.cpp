#include "plexus/os/private_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace plexus::os {
namespace {

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string uid_text(uid_t uid) {
  return std::to_string(uid);
}

// Why a directory that lies above the one we use is unsafe, or nothing.
// A symbolic link is followed only when it belongs to us or root (/var/run → /run).
std::optional<std::string> unsafe_ancestor(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return "cannot check directory " + dir + ": " + std::strerror(errno);
  if (S_ISLNK(st.st_mode)) {
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
      return "refusing to use directory " + dir + ": it is a symbolic link owned by uid " +
             uid_text(st.st_uid);
    if (::stat(dir.c_str(), &st) != 0)
      return "cannot check directory " + dir + ": " + std::strerror(errno);
  }
  if (!S_ISDIR(st.st_mode)) return "refusing to use " + dir + ": it is not a directory";
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return "refusing to use directory " + dir + ": it is owned by uid " + uid_text(st.st_uid) +
           ", not by this user (uid " + uid_text(::geteuid()) + ") or root";
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)
    return "refusing to use directory " + dir + ": it is writable by others (mode " +
           octal_mode(st.st_mode) + ") without the sticky bit";
  return std::nullopt;
}

// Why the directory itself is unsafe, or nothing. A shared sticky directory passes only
// when `shared_ok`.
std::optional<std::string> unsafe_leaf(const std::string& dir, bool shared_ok) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return "cannot check directory " + dir + ": " + std::strerror(errno);
  if (S_ISLNK(st.st_mode)) return "refusing to use directory " + dir + ": it is a symbolic link";
  if (!S_ISDIR(st.st_mode)) return "refusing to use " + dir + ": it is not a directory";
  if (shared_ok && (st.st_mode & S_ISVTX) != 0 && (st.st_uid == 0 || st.st_uid == ::geteuid()))
    return std::nullopt;
  if (st.st_uid != ::geteuid())
    return "refusing to use directory " + dir + ": it is owned by uid " + uid_text(st.st_uid) +
           ", not by this user (uid " + uid_text(::geteuid()) + ")";
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return "refusing to use directory " + dir + ": it is writable by group or others (mode " +
           octal_mode(st.st_mode) + ")";
  return std::nullopt;
}

std::optional<std::string> ensure_dir(const std::string& path, bool shared_ok) {
  if (path.empty()) return std::string("empty directory path");
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  // Each prefix ending before a '/', then the directory itself.
  for (std::size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
    const bool leaf = pos == std::string::npos;
    const std::string part = leaf ? dir : dir.substr(0, pos);
    if (!leaf && (part.back() == '/' || part.ends_with("/.") || part == ".")) {
      continue;  // "//", "/./": nothing new to check
    }
    if (::mkdir(part.c_str(), 0700) == 0) {
      // Ours from the start; make it exactly 0700 whatever the umask took away.
      if (::chmod(part.c_str(), 0700) != 0)
        return "cannot set the mode of directory " + part + ": " + std::strerror(errno);
    } else if (errno != EEXIST) {
      return "cannot create directory " + part + ": " + std::strerror(errno);
    }
    if (leaf) return unsafe_leaf(part, shared_ok);
    if (auto why = unsafe_ancestor(part)) return why;
  }
}

}  // namespace

std::optional<std::string> ensure_private_dir(const std::string& path) {
  return ensure_dir(path, false);
}

std::optional<std::string> ensure_socket_dir(const std::string& path) {
  return ensure_dir(path, true);
}

std::string runtime_dir() {
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run)
    return std::string(run) + "/plexus";
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  while (base.size() > 1 && base.back() == '/')
    base.pop_back();
  return base + "/plexus-" + std::to_string(::getuid());
}

}  // namespace plexus::os
