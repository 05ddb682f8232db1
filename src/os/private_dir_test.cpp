#include "plexus/os/private_dir.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "support/temp_dir.hpp"

// The directory rule of the runtime files: made 0700, and a directory found must be
// ours and writable by nobody else (a shared sticky one only for sockets). Each case
// works under a fresh temp_dir (mkdtemp: 0700, ours).

namespace plexus::os {
namespace {

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

void make_dir(const std::string& path, mode_t mode) {
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0) << path;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;  // whatever the umask says
}

// Gives `path` to the user nobody; false when that is not permitted (not root).
bool give_away(const std::string& path) {
  const passwd* nobody = ::getpwnam("nobody");
  const uid_t uid = nobody ? nobody->pw_uid : 65534;
  if (uid == ::geteuid()) return false;
  return ::chown(path.c_str(), uid, static_cast<gid_t>(-1)) == 0;
}

void expect_refused(const std::optional<std::string>& why, const std::string& path,
                    const std::string& reason) {
  ASSERT_TRUE(why) << path << " was accepted";
  EXPECT_NE(why->find(path), std::string::npos) << *why;
  EXPECT_NE(why->find(reason), std::string::npos) << *why;
}

TEST(PrivateDir, MissingDirectoriesAreCreatedOwnerOnly) {
  test::temp_dir tmp;
  const auto path = tmp.path() + "/a/b/c";
  const mode_t old_umask = ::umask(0);  // a permissive umask changes nothing
  const auto why = ensure_private_dir(path);
  ::umask(old_umask);
  ASSERT_FALSE(why) << *why;
  EXPECT_EQ(mode_of(tmp.path() + "/a"), 0700u);
  EXPECT_EQ(mode_of(tmp.path() + "/a/b"), 0700u);
  EXPECT_EQ(mode_of(path), 0700u);
}

TEST(PrivateDir, AnExistingPrivateDirectoryIsAcceptedAsItIs) {
  test::temp_dir tmp;
  const auto path = tmp.path() + "/mine";
  make_dir(path, 0755);
  EXPECT_FALSE(ensure_private_dir(path));
  EXPECT_FALSE(ensure_private_dir(path + "/"));
  EXPECT_EQ(mode_of(path), 0755u);
}

TEST(PrivateDir, AGroupOrWorldWritableDirectoryIsRefused) {
  test::temp_dir tmp;
  const auto group = tmp.path() + "/group";
  const auto world = tmp.path() + "/world";
  make_dir(group, 0770);
  make_dir(world, 0777);
  expect_refused(ensure_private_dir(group), group, "writable by group or others (mode 0770)");
  expect_refused(ensure_private_dir(world), world, "writable by group or others (mode 0777)");
  expect_refused(ensure_socket_dir(world), world, "writable by group or others");
}

TEST(PrivateDir, ADirectoryOwnedBySomeoneElseIsRefusedAndNothingIsMadeInIt) {
  test::temp_dir tmp;
  const auto theirs = tmp.path() + "/plexus-0";
  make_dir(theirs, 0755);
  if (!give_away(theirs)) GTEST_SKIP() << "chown is not permitted here (not root)";
  expect_refused(ensure_private_dir(theirs), theirs, "owned by uid");
  expect_refused(ensure_socket_dir(theirs), theirs, "owned by uid");
  expect_refused(ensure_private_dir(theirs + "/logs"), theirs, "owned by uid");
  EXPECT_NE(::access((theirs + "/logs").c_str(), F_OK), 0);
}

TEST(PrivateDir, ADirectoryBelowAWritableOneWithoutStickyBitIsRefused) {
  test::temp_dir tmp;
  const auto open = tmp.path() + "/open";
  make_dir(open, 0777);
  expect_refused(ensure_private_dir(open + "/logs"), open, "without the sticky bit");
}

TEST(PrivateDir, ASymbolicLinkIsRefusedEvenToAPrivateDirectory) {
  test::temp_dir tmp;
  const auto target = tmp.path() + "/real";
  const auto link = tmp.path() + "/link";
  make_dir(target, 0700);
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  expect_refused(ensure_private_dir(link), link, "symbolic link");
  expect_refused(ensure_socket_dir(link), link, "symbolic link");
}

TEST(PrivateDir, AFileInTheWayIsRefused) {
  test::temp_dir tmp;
  const auto file = tmp.path() + "/file";
  ASSERT_EQ(::close(::creat(file.c_str(), 0600)), 0);
  expect_refused(ensure_private_dir(file), file, "not a directory");
  expect_refused(ensure_private_dir(file + "/sub"), file, "");
}

TEST(PrivateDir, ASharedStickyDirectoryIsASocketDirectoryButNotAPrivateOne) {
  test::temp_dir tmp;
  const auto shared = tmp.path() + "/shared";
  make_dir(shared, 01777);  // like /tmp, and ours (or root's)
  EXPECT_FALSE(ensure_socket_dir(shared));
  expect_refused(ensure_private_dir(shared), shared, "writable by group or others");
  // Below it, a directory of our own is fine for both.
  EXPECT_FALSE(ensure_private_dir(shared + "/mine"));
  EXPECT_EQ(mode_of(shared + "/mine"), 0700u);
}

}  // namespace
}  // namespace plexus::os
