#define _GNU_SOURCE
#include "CFaultlineSystem.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <signal.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
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

#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

const uint32_t FAULTLINE_EPOLL_IN = EPOLLIN, FAULTLINE_EPOLL_OUT = EPOLLOUT, FAULTLINE_EPOLL_RDHUP = EPOLLRDHUP,
    FAULTLINE_EPOLL_HUP = EPOLLHUP, FAULTLINE_EPOLL_ERR = EPOLLERR, FAULTLINE_EPOLL_ET = EPOLLET,
    FAULTLINE_EPOLL_EXCLUSIVE = EPOLLEXCLUSIVE;

int faultline_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int faultline_epoll_add(int epoll, int fd, uint32_t events, uint64_t tag) {
    struct epoll_event event = {.events = events, .data.u64 = tag};
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int faultline_epoll_remove(int epoll, int fd) { return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL); }

int faultline_epoll_wait(int epoll, uint64_t *tags, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epoll, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        tags[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}

int faultline_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int faultline_accept(int listener) { return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int faultline_tcp_socket(int family) { return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

int faultline_relay_pipe(int fds[2], int size) {
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
    int granted = fcntl(fds[0], F_SETPIPE_SZ, size);
    if (granted < 0) granted = fcntl(fds[0], F_GETPIPE_SZ);
    return granted;
}

long faultline_splice(int from, int to, size_t count) {
    return (long)splice(from, NULL, to, NULL, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

int faultline_timerfd(void) { return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC); }

int faultline_timerfd_set(int fd, uint64_t deadline_ns) {
    struct itimerspec spec = {0};
    if (deadline_ns == 0) deadline_ns = 1;  // zero would disarm it
    spec.it_value.tv_sec = (time_t)(deadline_ns / 1000000000u);
    spec.it_value.tv_nsec = (long)(deadline_ns % 1000000000u);
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL);
}
#else
const uint32_t FAULTLINE_EPOLL_IN = 0, FAULTLINE_EPOLL_OUT = 0, FAULTLINE_EPOLL_RDHUP = 0, FAULTLINE_EPOLL_HUP = 0,
    FAULTLINE_EPOLL_ERR = 0, FAULTLINE_EPOLL_ET = 0, FAULTLINE_EPOLL_EXCLUSIVE = 0;
int faultline_epoll_create(void) { errno = ENOSYS; return -1; }
int faultline_epoll_add(int epoll, int fd, uint32_t events, uint64_t tag) { errno = ENOSYS; return -1; }
int faultline_epoll_remove(int epoll, int fd) { errno = ENOSYS; return -1; }
int faultline_epoll_wait(int epoll, uint64_t *tags, uint32_t *events, int capacity, int timeout_ms) { errno = ENOSYS; return -1; }
int faultline_eventfd(void) { errno = ENOSYS; return -1; }
int faultline_accept(int listener) { errno = ENOSYS; return -1; }
int faultline_tcp_socket(int family) { errno = ENOSYS; return -1; }
int faultline_relay_pipe(int fds[2], int size) { errno = ENOSYS; return -1; }
long faultline_splice(int from, int to, size_t count) { errno = ENOSYS; return -1; }
int faultline_timerfd(void) { errno = ENOSYS; return -1; }
int faultline_timerfd_set(int fd, uint64_t deadline_ns) { errno = ENOSYS; return -1; }
#endif

#if defined(__GLIBC__)
int faultline_malloc_set_mmap_threshold(size_t bytes) { return mallopt(M_MMAP_THRESHOLD, (int)bytes); }
size_t faultline_malloc_free_bytes(void) {
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
    return mallinfo2().fordblks;
#else
    return (size_t)(unsigned int)mallinfo().fordblks;
#endif
}
int faultline_malloc_trim(void) { return malloc_trim(0); }
#else
int faultline_malloc_set_mmap_threshold(size_t bytes) { return 0; }
size_t faultline_malloc_free_bytes(void) { return 0; }
int faultline_malloc_trim(void) { return 0; }
#endif
