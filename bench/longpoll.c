/* Long-poll fan-out client: N held polls on one loopback server, one event published,
 * the time until each poll's answer is complete. Written in C with epoll so the client's
 * own cost (on the same cores as the server) stays small.
 *
 * MODE is "keep-alive" (what a real client does: the connection stays open for the next
 * poll, and an answer is complete when its Content-Length bytes are in) or "close" (one
 * connection per poll, an answer is complete at EOF).
 *
 * The connections are opened first, then the polls are sent: "connected" and "held" on
 * stderr mark the two stages, so the caller can read the server's memory with the
 * connections alone and with a poll held on each.
 *
 * usage: longpoll PORT TOKEN CURSOR N POST_TOKEN HOLD_MS MODE
 * prints: p50_ms p99_ms max_ms answered bytes_per_answer
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); exit(1); }
    return fd;
}

static void send_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) { perror("write"); exit(1); }
        s += w; n -= (size_t)w;
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 8) { fprintf(stderr, "usage: longpoll PORT TOKEN CURSOR N POST_TOKEN HOLD_MS MODE\n"); return 2; }
    int keep = strcmp(argv[7], "keep-alive") == 0;
    int port = atoi(argv[1]), n = atoi(argv[4]), hold = atoi(argv[6]);
    const char *token = argv[2], *cursor = argv[3], *poster = argv[5];
    struct rlimit rl = {n + 64, n + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    char req[2048];
    int len = snprintf(req, sizeof req, "GET /api/v1/events?cursor=%s&timeout=60 HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer %s\r\n%s\r\n", cursor, token,
                       keep ? "" : "Connection: close\r\n");
    int ep = epoll_create1(0);
    int *fds = calloc(n, sizeof(int));
    double *done = calloc(n, sizeof(double));
    long *got = calloc(n, sizeof(long)), *want = calloc(n, sizeof(long));
    char (*head)[1024] = calloc(n, sizeof *head);  /* the first bytes of each answer */
    for (int i = 0; i < n; i++) fds[i] = connect_to(port);
    usleep((useconds_t)hold * 500);  /* let the server accept every connection */
    fprintf(stderr, "connected\n");
    usleep((useconds_t)hold * 500);
    for (int i = 0; i < n; i++) {
        send_all(fds[i], req, (size_t)len);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    }
    usleep((useconds_t)hold * 1000);  /* let the server take every request and hold it */
    fprintf(stderr, "held\n");
    usleep((useconds_t)hold * 300);
    char body[256], post[2048];
    int blen = snprintf(body, sizeof body, "{\"to\":\"bob\",\"body\":\"ping\",\"clientId\":\"bench-%d\"}", getpid());
    int plen = snprintf(post, sizeof post, "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                        "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                        poster, blen, body);
    int pfd = connect_to(port);
    double t0 = now_ms();
    send_all(pfd, post, (size_t)plen);
    int left = n, answered = 0;
    long bytes = 0;
    char buf[65536];
    struct epoll_event evs[512];
    while (left > 0) {
        int k = epoll_wait(ep, evs, 512, 30000);
        if (k <= 0) break;
        for (int j = 0; j < k; j++) {
            int i = (int)evs[j].data.u32;
            for (;;) {
                ssize_t r = read(fds[i], buf, sizeof buf);
                if (r < 0 && errno == EAGAIN) break;
                if (r > 0) {
                    if (got[i] < (long)sizeof head[i] - 1) {
                        long k2 = r < (long)sizeof head[i] - 1 - got[i] ? r : (long)sizeof head[i] - 1 - got[i];
                        memcpy(head[i] + got[i], buf, (size_t)k2);
                    }
                    got[i] += r;
                    bytes += r;
                    if (!keep) continue;
                    if (want[i] == 0) {
                        char *end = strstr(head[i], "\r\n\r\n");
                        char *cl = strcasestr(head[i], "content-length:");
                        if (end && cl) want[i] = (end + 4 - head[i]) + atol(cl + 15);
                    }
                    if (want[i] == 0 || got[i] < want[i]) continue;
                }
                /* Keep-alive: Content-Length bytes are in. Close: EOF. Either way, or an
                 * error, this poll is answered. */
                done[answered++] = now_ms() - t0;
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
                if (!keep) close(fds[i]);
                left--;
                break;
            }
        }
    }
    close(pfd);
    qsort(done, (size_t)answered, sizeof(double), cmp);
    if (answered == 0) { printf("nan nan nan 0 0\n"); return 1; }
    int i99 = (int)(0.99 * (answered - 1) + 0.5);
    printf("%.1f %.1f %.1f %d %ld\n", done[answered / 2], done[i99], done[answered - 1], answered, bytes / answered);
    return 0;
}
