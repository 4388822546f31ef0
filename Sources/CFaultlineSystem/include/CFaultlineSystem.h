#ifndef C_FAULTLINE_SYSTEM_H
#define C_FAULTLINE_SYSTEM_H

#include <spawn.h>
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

#endif
