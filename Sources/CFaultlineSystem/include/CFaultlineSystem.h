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

// MARK: The proxy's relay and the load's loops (Linux): epoll and friends, which Swift's Glibc module does not expose.

/// Readiness a relay waits for, as epoll flags: readable, writable, peer half-closed, edge-triggered.
extern const uint32_t FAULTLINE_EPOLL_IN, FAULTLINE_EPOLL_OUT, FAULTLINE_EPOLL_RDHUP, FAULTLINE_EPOLL_HUP,
    FAULTLINE_EPOLL_ERR, FAULTLINE_EPOLL_ET, FAULTLINE_EPOLL_EXCLUSIVE;

/// epoll_create1(EPOLL_CLOEXEC); -1 where there is no epoll.
int faultline_epoll_create(void);
/// Adds `fd` with `events`, tagged `tag`; 0 or -1.
int faultline_epoll_add(int epoll, int fd, uint32_t events, uint64_t tag);
/// Removes `fd`; 0 or -1.
int faultline_epoll_remove(int epoll, int fd);
/// Waits up to `timeout_ms` (-1: forever) and stores up to `capacity` ready tags and event masks.
/// Returns how many, or -1 (EINTR included).
int faultline_epoll_wait(int epoll, uint64_t *tags, uint32_t *events, int capacity, int timeout_ms);
/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a counter one thread writes to wake another's epoll.
int faultline_eventfd(void);
/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int faultline_accept(int listener);
/// A non-blocking, close-on-exec TCP socket of `family`.
int faultline_tcp_socket(int family);
/// A non-blocking, close-on-exec pipe of (at least) `size` bytes; -1 where there is none.
int faultline_relay_pipe(int fds[2], int size);
/// splice(from, NULL, to, NULL, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK): bytes moved between a
/// socket and a pipe inside the kernel.
long faultline_splice(int from, int to, size_t count);
/// A monotonic timer file descriptor (non-blocking), and arming it for an absolute deadline in
/// CLOCK_MONOTONIC nanoseconds (NIODeadline's clock).
int faultline_timerfd(void);
int faultline_timerfd_set(int fd, uint64_t deadline_ns);

// MARK: Memory: giving freed memory back to the system (glibc; no-ops elsewhere).

/// mallopt(M_MMAP_THRESHOLD, bytes): blocks of at least `bytes` get mappings of their own, unmapped
/// when freed. Setting it also stops glibc from raising the threshold each time such a block is
/// freed, which otherwise moves later large blocks into the heap, where freed ones stay resident.
/// 1 on success, 0 where it cannot be set.
int faultline_malloc_set_mmap_threshold(size_t bytes);
/// Bytes the allocator holds free in its heaps (mallinfo2's fordblks); 0 where unknown.
size_t faultline_malloc_free_bytes(void);
/// malloc_trim(0): returns whole free pages of every heap to the system; 1 if any were.
int faultline_malloc_trim(void);

#endif
