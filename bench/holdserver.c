/* The floor for the long-poll fan-out on this machine: a single-threaded epoll server in C
 * that does nothing but hold every GET and, when a POST arrives, write one canned answer
 * of ANSWER_BYTES (the size of Musit's whole answer to the same poll) to every held connection and close it.
 * No parsing, no auth, no JSON, no logging. bench/longpoll.py runs it beside Musit with
 * the same client, so the two latencies are comparable.
 *
 * usage: holdserver PORT ANSWER_BYTES
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
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: holdserver PORT ANSWER_BYTES\n"); return 2; }
    int port = atoi(argv[1]), total = atoi(argv[2]);
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n";
    int blen = total - (int)strlen(head);  /* "%d" takes about as many bytes as the number */
    if (blen < 1) blen = 1;
    struct rlimit rl = {65536, 65536};
    setrlimit(RLIMIT_NOFILE, &rl);
    char *body = malloc((size_t)blen + 1);
    memset(body, 'x', (size_t)blen);
    body[blen] = 0;
    char *answer = malloc((size_t)blen + 256);
    int alen = snprintf(answer, (size_t)blen + 256, head, blen);
    alen += snprintf(answer + alen, (size_t)blen + 1, "%s", body);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4096) != 0) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
    int cap = 65536, nheld = 0;
    int *held = calloc((size_t)cap, sizeof(int)), *closing = calloc((size_t)cap, sizeof(int));
    char buf[8192];
    struct epoll_event evs[512];
    for (;;) {
        int k = epoll_wait(ep, evs, 512, -1);
        for (int j = 0; j < k; j++) {
            int fd = evs[j].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); close(fd); continue; }
            buf[r < (ssize_t)sizeof buf ? r : (ssize_t)sizeof buf - 1] = 0;
            if (r >= 4 && memcmp(buf, "POST", 4) == 0) {
                for (int i = 0; i < nheld; i++) {
                    if (write(held[i], answer, (size_t)alen) < 0) perror("write");
                    if (closing[i]) { epoll_ctl(ep, EPOLL_CTL_DEL, held[i], NULL); close(held[i]); }
                }
                nheld = 0;
                if (write(fd, answer, (size_t)alen) < 0) perror("write");
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
            } else if (nheld < cap) {
                closing[nheld] = strcasestr(buf, "connection: close") != NULL;
                held[nheld++] = fd;
            } else {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
            }
        }
    }
}
