#define _GNU_SOURCE
#include "CFaultlineSystem.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <signal.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

int faultline_pipe_cloexec(int fds[2]) {
#if defined(__linux__)
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

int faultline_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
    return posix_spawn_file_actions_addchdir_np(actions, path);
#elif defined(__APPLE__)
    return posix_spawn_file_actions_addchdir_np(actions, path);
#else
    (void)actions; (void)path;
    return -1;
#endif
}

int faultline_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
#else
    (void)actions; (void)from;
    return -1;
#endif
}

int faultline_set_child_subreaper(void) {
#if defined(__linux__)
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#else
    return -1;
#endif
}

int faultline_pidfd_open(pid_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int faultline_pidfd_send_signal(int pidfd, int signal) {
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
#else
    (void)pidfd; (void)signal;
    errno = ENOSYS;
    return -1;
#endif
}

/* Moves past spaces, then past one field; returns the field's start, or NULL at the line's end. */
static const char *next_field(const char **cursor, const char *end, const char **field_end) {
    const char *p = *cursor;
    while (p < end && *p == ' ') p++;
    if (p >= end) return NULL;
    const char *start = p;
    while (p < end && *p != ' ') p++;
    *field_end = p;
    *cursor = p;
    return start;
}

size_t faultline_tcp_listen_inodes(const char *text, size_t length, int port, uint64_t *inodes, size_t capacity) {
    size_t found = 0;
    const char *end = text + length;
    const char *line = memchr(text, '\n', length); /* skip the header */
    line = line ? line + 1 : end;
    while (line < end) {
        const char *line_end = memchr(line, '\n', (size_t)(end - line));
        if (!line_end) line_end = end;
        /* sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode */
        const char *cursor = line, *field_end = NULL, *local = NULL, *local_end = NULL, *field = NULL;
        int index = 0, listening = 0;
        while ((field = next_field(&cursor, line_end, &field_end)) != NULL) {
            if (index == 1) {
                local = field;
                local_end = field_end;
            } else if (index == 3) {
                listening = (field_end - field == 2 && field[0] == '0' && field[1] == 'A');
                if (!listening) break;
                const char *colon = local_end;
                while (colon > local && colon[-1] != ':') colon--;
                if (colon == local || strtol(colon, NULL, 16) != port) break;
            } else if (index == 9) {
                uint64_t inode = strtoull(field, NULL, 10);
                if (inode != 0 && found < capacity) inodes[found++] = inode;
                break;
            }
            index++;
        }
        line = line_end + 1;
    }
    return found;
}
