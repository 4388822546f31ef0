#ifndef C_FAULTLINE_SYSTEM_H
#define C_FAULTLINE_SYSTEM_H

#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no other child inherits, created atomically.
int faultline_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addchdir_np, which Swift's Glibc module does not expose.
int faultline_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np(actions, from): the child gets no descriptor >= from.
/// Returns -1 where the C library lacks it.
int faultline_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to this process.
int faultline_set_child_subreaper(void);

/// pidfd_open(pid, 0): a descriptor that names one process for as long as it is open (no pid
/// reuse), readable once the process has exited. -1 with errno ENOSYS where the kernel has none.
int faultline_pidfd_open(pid_t pid);

/// pidfd_send_signal(fd, signal, NULL, 0): signals exactly the process the descriptor names.
int faultline_pidfd_send_signal(int pidfd, int signal);

/// Scans the text of /proc/net/tcp or /proc/net/tcp6 for sockets in LISTEN state on `port` and
/// stores up to `capacity` of their inodes in `inodes`. Returns how many it found. In C because a
/// busy host lists tens of thousands of sockets, and a debug build of Swift is slow at that.
size_t faultline_tcp_listen_inodes(const char *text, size_t length, int port, uint64_t *inodes, size_t capacity);

#endif
