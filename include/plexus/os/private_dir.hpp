// The one check of the directories plexus keeps its runtime files in (sockets, logs):
// the ssh-agent / tmux rule. Missing directories are created 0700; the directory,
// created now or found, must be a real directory (not a symbolic link) owned by this
// user and writable by nobody else, and every directory above it must be owned by this
// user or root and writable by others only with the sticky bit (as /tmp is). Otherwise
// another user could replace a socket or a log file in it.
//
//   if (auto why = plexus::os::ensure_private_dir(plexus::os::runtime_dir() + "/logs"))
//     return error(errc::unavailable, *why);   // names the path and the reason
//   // the directory exists, is ours and is private
//
// ensure_socket_dir is the same, except that the directory itself may also be a shared
// sticky one like /tmp (owned by root, or by us): others can put files there but cannot
// remove or rename ours, so an explicit ipc:///tmp/x.sock stays usable.
//
// Both return nothing on success, else a message naming the path and the reason (the
// caller makes it an `unavailable` error). Once the directory passes, nobody else can
// change what is in it; callers still open files there without following symbolic
// links (O_NOFOLLOW) and remove only what they made. Both only make system calls on
// the local file system (they may block briefly); call them before serving.
#pragma once

#include <optional>
#include <string>

namespace plexus::os {

// Creates `path` and its missing parents (0700, whatever the umask) and checks it as
// above. Used for the log directory and, through ensure_socket_dir, the socket one.
[[nodiscard]] std::optional<std::string> ensure_private_dir(const std::string& path);

// As ensure_private_dir, but `path` itself may be a sticky directory owned by root or
// by us (/tmp): the directory of a Unix socket.
[[nodiscard]] std::optional<std::string> ensure_socket_dir(const std::string& path);

// Where plexus keeps its runtime files by default (the router's socket, the logs of
// `plexus run`): $XDG_RUNTIME_DIR/plexus when XDG_RUNTIME_DIR is set, else
// ${TMPDIR:-/tmp}/plexus-<uid>. Only names the directory; the users of it create and
// check it with the functions above.
std::string runtime_dir();

}  // namespace plexus::os
