#ifndef C_FAULTLINE_SYSTEM_H
#define C_FAULTLINE_SYSTEM_H

#include <spawn.h>
#include <sys/types.h>

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no other child inherits, created atomically.
int faultline_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addchdir_np, which Swift's Glibc module does not expose.
int faultline_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to this process.
int faultline_set_child_subreaper(void);

#endif
