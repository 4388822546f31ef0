// The floor for any proxy in user space on this machine (Benchmarks/http/run.sh): one thread, one
// epoll, and per readable socket one recv(2) and the send(2)s that pass its bytes to the other side.
// No parsing, no toxics, no counters, no backpressure beyond a blocking wait for a full socket —
// nothing a real proxy can do without. What it costs on top of direct is what the kernel charges
// for a second TCP hop on loopback; a proxy cannot beat it.
//
//   floor-relay LISTEN_PORT UPSTREAM_PORT     (both on 127.0.0.1; runs until killed)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct side {
    int fd;
    struct side *peer;
    struct pair *pair;
};
struct pair {
    struct side sides[2];
    int dead;
    struct pair *next_dead;
};

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return address;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: floor-relay LISTEN_PORT UPSTREAM_PORT\n");
        return 2;
    }
    int one = 1;
    struct sockaddr_in listen_address = loopback(atoi(argv[1])), upstream = loopback(atoi(argv[2]));
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&listen_address, sizeof listen_address) != 0 || listen(listener, 1024) != 0) {
        perror("floor-relay: listen");
        return 1;
    }
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    static char buffer[65536];
    struct epoll_event events[256];
    for (;;) {
        int count = epoll_wait(epoll, events, 256, -1);
        struct pair *dead = NULL;
        for (int index = 0; index < count; index++) {
            struct side *side = events[index].data.ptr;
            if (side == NULL) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int server = socket(AF_INET, SOCK_STREAM, 0);
                    if (connect(server, (struct sockaddr *)&upstream, sizeof upstream) != 0) {
                        close(client);
                        close(server);
                        continue;
                    }
                    fcntl(server, F_SETFL, O_NONBLOCK);
                    struct pair *pair = calloc(1, sizeof *pair);
                    int fds[2] = {client, server};
                    for (int s = 0; s < 2; s++) {
                        setsockopt(fds[s], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                        pair->sides[s] = (struct side){.fd = fds[s], .peer = &pair->sides[1 - s], .pair = pair};
                        struct epoll_event watch = {.events = EPOLLIN, .data.ptr = &pair->sides[s]};
                        epoll_ctl(epoll, EPOLL_CTL_ADD, fds[s], &watch);
                    }
                }
                continue;
            }
            if (side->pair->dead) continue;
            ssize_t received = recv(side->fd, buffer, sizeof buffer, 0);
            if (received < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            ssize_t offset = 0;
            while (received > 0 && offset < received) {
                ssize_t sent = send(side->peer->fd, buffer + offset, received - offset, MSG_NOSIGNAL);
                if (sent > 0) {
                    offset += sent;
                } else if (sent < 0 && (errno == EAGAIN || errno == EINTR)) {
                    struct pollfd wait = {.fd = side->peer->fd, .events = POLLOUT};
                    poll(&wait, 1, -1);
                } else {
                    received = 0;
                }
            }
            if (received <= 0) {
                // Either side's end or error ends both; freed after this batch of events.
                side->pair->dead = 1;
                side->pair->next_dead = dead;
                dead = side->pair;
                close(side->fd);
                close(side->peer->fd);
            }
        }
        while (dead != NULL) {
            struct pair *next = dead->next_dead;
            free(dead);
            dead = next;
        }
    }
}
