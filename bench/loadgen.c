/* A small HTTP/1.1 load generator for bench/serving.py: keep-alive connections driven by one epoll
 * loop, one request in flight per connection, for a fixed time. Unlike wrk it answers HEAD (no body
 * follows the headers) and counts non-2xx answers itself.
 *
 *   loadgen -c CONNECTIONS -d SECONDS -m METHOD [-b BODY_BYTES] http://HOST:PORT/PATH?QUERY
 *
 * Prints one JSON line: requests, seconds, rps, p50_ms, p99_ms, non2xx, errors. Latency is from the
 * first byte sent to the last byte of the answer, kept in a histogram of 10 µs steps (up to 10 s).
 * Answers must carry Content-Length (every server benchmarked does); `Connection: close` reconnects.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 1000000 /* 10 µs each: 10 s */
#define BUF 262144

struct conn {
    int fd;
    size_t sent;      /* bytes of the request sent */
    size_t have;      /* bytes of the answer in buf */
    long long body;   /* body bytes still to read, -1 while reading headers */
    int close_after;  /* the answer said Connection: close */
    int status;
    double started;
    char buf[BUF];
};

static char *request;
static size_t request_len;
static struct sockaddr_in addr;
static unsigned long long hist[BUCKETS];
static long long done_count, non2xx, errors;
static int is_head;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(int ep, struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) return -1;
    c->sent = c->have = 0;
    c->body = -1;
    c->close_after = 0;
    c->started = now();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void restart(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (open_conn(ep, c) < 0) {
        fprintf(stderr, "loadgen: connect failed: %s\n", strerror(errno));
        exit(1);
    }
}

static void want(int ep, struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Headers complete in c->buf[0..end): status, Content-Length, Connection: close. */
static int parse_head(struct conn *c, size_t end) {
    c->buf[end - 1] = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &c->status) != 1) return -1;
    long long length = -1;
    for (char *line = strstr(c->buf, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "content-length:", 15) == 0) length = atoll(h + 15);
        if (strncasecmp(h, "connection:", 11) == 0 && strcasestr(h, "close") && strcasestr(h, "close") < strstr(h, "\r\n"))
            c->close_after = 1;
    }
    if (is_head || c->status == 204 || c->status == 304) length = 0;
    if (length < 0) return -1;
    c->body = length;
    return 0;
}

static void finished(int ep, struct conn *c) {
    double t = now();
    long long step = (long long)((t - c->started) * 1e5);
    hist[step < BUCKETS ? step : BUCKETS - 1]++;
    done_count++;
    if (c->status < 200 || c->status > 299) non2xx++;
    if (c->close_after) {
        restart(ep, c);
        return;
    }
    c->sent = 0;
    c->body = -1;
    c->started = t;
    want(ep, c, EPOLLIN | EPOLLOUT);
}

static void on_read(int ep, struct conn *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->have, BUF - 1 - c->have);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            errors++;
            restart(ep, c);
            return;
        }
        if (n < 0) return;
        c->have += n;
        while (c->have) {
            if (c->body < 0) {
                c->buf[c->have] = 0;
                char *end = strstr(c->buf, "\r\n\r\n");
                if (!end) {
                    if (c->have >= BUF - 1) { errors++; restart(ep, c); return; }
                    break;
                }
                size_t head = end + 4 - c->buf;
                if (parse_head(c, head) < 0) { errors++; restart(ep, c); return; }
                memmove(c->buf, c->buf + head, c->have - head);
                c->have -= head;
            }
            size_t take = (size_t)c->body < c->have ? (size_t)c->body : c->have;
            c->body -= take;
            memmove(c->buf, c->buf + take, c->have - take);
            c->have -= take;
            if (c->body == 0) {
                finished(ep, c);
                if (c->have) { errors++; restart(ep, c); return; } /* nothing may follow: one in flight */
                return;
            }
        }
        if (c->body > 0 && c->have == 0) continue;
    }
}

static void on_write(int ep, struct conn *c) {
    while (c->sent < request_len) {
        ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
        if (n < 0) {
            if (errno == EAGAIN) return;
            errors++;
            restart(ep, c);
            return;
        }
        c->sent += n;
    }
    want(ep, c, EPOLLIN);
}

static double percentile(double p) {
    unsigned long long target = (unsigned long long)(done_count * p), seen = 0;
    for (long i = 0; i < BUCKETS; i++) {
        seen += hist[i];
        if (seen > target) return (i + 0.5) / 100.0; /* ms */
    }
    return 0;
}

int main(int argc, char **argv) {
    int connections = 32;
    double seconds = 5;
    const char *method = "GET";
    long body_bytes = 0;
    int opt;
    while ((opt = getopt(argc, argv, "c:d:m:b:")) != -1) {
        if (opt == 'c') connections = atoi(optarg);
        else if (opt == 'd') seconds = atof(optarg);
        else if (opt == 'm') method = optarg;
        else if (opt == 'b') body_bytes = atol(optarg);
        else return 2;
    }
    if (optind >= argc || strncmp(argv[optind], "http://", 7) != 0) {
        fprintf(stderr, "usage: loadgen -c N -d SECONDS -m METHOD [-b BYTES] http://HOST:PORT/PATH\n");
        return 2;
    }
    char host[256];
    int port = 80;
    const char *rest = argv[optind] + 7, *path = strchr(rest, '/');
    if (!path) path = "/";
    size_t hostlen = (path > rest ? (size_t)(path - rest) : strlen(rest));
    snprintf(host, sizeof host, "%.*s", (int)hostlen, rest);
    char *colon = strchr(host, ':');
    if (colon) { *colon = 0; port = atoi(colon + 1); }
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    is_head = strcmp(method, "HEAD") == 0;

    size_t cap = strlen(path) + 512 + body_bytes;
    request = malloc(cap);
    int len = snprintf(request, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, path, host, port);
    if (body_bytes > 0 || strcmp(method, "PUT") == 0)
        len += snprintf(request + len, cap - len, "Content-Type: application/octet-stream\r\nContent-Length: %ld\r\n", body_bytes);
    len += snprintf(request + len, cap - len, "\r\n");
    memset(request + len, 'x', body_bytes);
    request_len = len + body_bytes;

    int ep = epoll_create1(0);
    struct conn *conns = calloc(connections, sizeof *conns);
    for (int i = 0; i < connections; i++)
        if (open_conn(ep, &conns[i]) < 0) { perror("connect"); return 1; }
    struct epoll_event events[256];
    double start = now(), stop = start + seconds;
    while (now() < stop) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & (EPOLLERR | EPOLLHUP) && !(events[i].events & EPOLLIN)) {
                errors++;
                restart(ep, c);
                continue;
            }
            if (events[i].events & EPOLLOUT) on_write(ep, c);
            if (events[i].events & EPOLLIN) on_read(ep, c);
        }
    }
    double elapsed = now() - start;
    printf("{\"requests\": %lld, \"seconds\": %.3f, \"rps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"non2xx\": %lld, \"errors\": %lld}\n",
           done_count, elapsed, done_count / elapsed, percentile(0.5), percentile(0.99), non2xx, errors);
    return 0;
}
