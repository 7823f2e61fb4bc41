/*
 * ws_load: a WebSocket echo load generator for bench/run.py.
 *
 * One thread, epoll, non-blocking sockets. Opens N connections to ws://HOST:PORT/PATH,
 * does the opening handshake on each, then keeps K messages of S bytes in flight on every
 * connection: each echo that comes back is checked (opcode, length, content, order) and
 * answered with the next message. Only after every connection is open does the clock
 * start; the run counts the echoes that arrive within --duration seconds.
 *
 * The handshake is HTTP/1.1's upgrade by default (a fixed Sec-WebSocket-Key; the answer
 * must be 101 with the matching Sec-WebSocket-Accept). Two modes change what is spoken,
 * and combine:
 *   --deflate  offers permessage-deflate (RFC 7692) as browsers do and requires the server
 *              to accept it; every message is sent compressed, compressed echoes are
 *              inflated before the check, and the messages are JSON-like text (an app's
 *              traffic) rather than the alphabet, so that compression has work to do.
 *   --h2       WebSocket over HTTP/2 in clear text with prior knowledge (RFC 8441): one
 *              extended CONNECT stream per connection, the WebSocket's bytes in its DATA
 *              frames, under HTTP/2 flow control both ways.
 * Without --deflate no extension is offered, and one in the answer is an error.
 *
 * At the deadline it stops sending, waits for the echoes still in flight, then closes
 * every connection with a close frame (1000) and waits for the server's close frame (over
 * HTTP/2 also for the end of the server's stream; the close frame goes with END_STREAM).
 * Anything that goes wrong on the way counts as an error: a failed connect or handshake,
 * a malformed or unexpected frame, a wrong echo, a close or EOF from the server before
 * ours, echoes that never come back, a close handshake that does not complete; over
 * HTTP/2 also a GOAWAY, a RST_STREAM or a violation of the protocol.
 *
 * Output: one JSON object on stdout (the last line), e.g.
 *   {"connections": 64, "open": 64, "in_flight": 1, "size": 32, "binary": false,
 *    "seconds": 3.000, "messages": 91234, "msg_per_sec": 30411.3, "client_cpu": 0.41,
 *    "errors": 0, "handshake_errors": 0, "error_detail": ""}
 * client_cpu is this process's user+system CPU time over the measured wall time (1.0 =
 * one core busy), the check that the client is not the bottleneck.
 *
 * Build: gcc -O2 -Wall -Wextra -o ws_load ws_load.c -lz
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* RFC 6455 section 1.3's example key and its accept value. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/* What browsers offer: permessage-deflate, and the server may limit our window. */
#define DEFLATE_OFFER "permessage-deflate; client_max_window_bits"

enum state { CONNECTING, HANDSHAKE, OPEN, CLOSING, DONE, FAILED };

/* Bytes data[off..len) are pending. */
struct buf {
    unsigned char *data;
    size_t off, len, cap;
};

/* The permessage-deflate both ways, as negotiated. */
struct deflate {
    z_stream tx, rx;
    int tx_reset, rx_reset; /* no_context_takeover: every message starts a fresh window */
};

struct hpack_entry {
    char *name, *value; /* one allocation, name first */
    size_t nlen, vlen;
};

/* The HPACK decoder's dynamic table (RFC 7541 section 2.3.2), newest entry first. */
struct hpack_table {
    struct hpack_entry *entries;
    size_t count, size, max;
};

/* The HTTP/2 connection and its one stream (id 1), which carries the WebSocket. */
struct h2 {
    int settings_seen;        /* the server's first SETTINGS arrived and was answered */
    int connect_protocol;     /* the server's SETTINGS_ENABLE_CONNECT_PROTOCOL */
    int response;             /* the CONNECT was answered with 200 */
    int64_t send_conn;        /* window the server granted us, connection and stream */
    int64_t send_stream;
    int64_t peer_initial;     /* the server's SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t max_frame;       /* the server's SETTINGS_MAX_FRAME_SIZE */
    uint32_t owed_conn;       /* DATA consumed, not yet granted back with WINDOW_UPDATE */
    uint32_t owed_stream;
    int end_pending;          /* END_STREAM goes with the last of ws_out */
    int end_received;         /* the server's END_STREAM arrived */
    int close_received;       /* the server's close frame arrived */
    struct buf ws_out;        /* WebSocket bytes waiting for window */
    struct buf ws_in;         /* the start of a WebSocket frame split across DATA frames */
    struct buf block;         /* a header block split into HEADERS + CONTINUATION */
    uint32_t block_stream;    /* nonzero while CONTINUATION frames are due */
    int block_end_stream;
    int status;               /* :status of the response, 0 if none yet */
    char *extensions;         /* sec-websocket-extensions of the response, or NULL */
    size_t extensions_len;
    struct hpack_table table;
};

struct conn {
    int fd;
    int id;
    enum state state;
    unsigned char *rbuf; /* bytes read, not yet parsed (HTTP/1.1: WebSocket; --h2: HTTP/2) */
    size_t rlen;
    struct buf out;      /* bytes for the socket */
    int want_out;        /* EPOLLOUT registered */
    uint64_t sent;       /* data messages sent */
    uint64_t echoed;     /* data messages echoed back and checked */
    unsigned char *msg;  /* a fragmented or compressed echo being put together */
    size_t msg_len;
    int msg_opcode;      /* 0: no message in progress */
    int msg_deflated;    /* the message in progress had RSV1: its payload is inflated */
    int close_sent;
    struct deflate *dfl; /* --deflate: set once the server accepted it */
    struct h2 *h2;       /* --h2 */
};

static struct {
    const char *host;
    int port;
    const char *path;
    int connections;
    int in_flight;
    size_t size;
    int binary;
    int deflate;
    int h2;
    double duration;
    double connect_timeout;
    double drain_timeout;
} opt = {"127.0.0.1", 0, "/", 64, 1, 32, 0, 0, 0, 10.0, 10.0, 5.0};

static int epfd;
static struct conn *conns;
static size_t rcap;              /* receive buffer size per connection */
static unsigned char *pattern;   /* message n is pattern + (n % 26), opt.size bytes */
static unsigned char *zbuf;      /* one compressed message, before it is framed */
static size_t zcap;
static uint32_t rng = 0x9e3779b9u;
static int sending = 1;          /* cleared at the deadline: no new messages */
static int counting = 0;         /* set while the clock runs */
static uint64_t counted = 0;     /* echoes within the measurement */
static long errors = 0, handshake_errors = 0;
static char detail[512];
static int detail_n = 0;         /* how many error details were recorded (first 3 kept) */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static uint32_t xorshift(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) {
        perror("realloc");
        exit(2);
    }
    return p;
}

/* Room for `more` bytes at data + len (the caller advances len). */
static unsigned char *buf_room(struct buf *b, size_t more) {
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + more > b->cap && b->off) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + more > b->cap) {
        if (!b->cap)
            b->cap = 4096;
        while (b->len + more > b->cap)
            b->cap *= 2;
        b->data = xrealloc(b->data, b->cap);
    }
    return b->data + b->len;
}

static void buf_add(struct buf *b, const void *p, size_t n) {
    memcpy(buf_room(b, n), p, n);
    b->len += n;
}

static size_t buf_used(const struct buf *b) { return b->len - b->off; }

static void buf_drop(struct buf *b, size_t n) {
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

/* Record an error; the first three get their text into the report. */
static void note(const char *fmt, ...) {
    if (detail_n < 3) {
        size_t used = strlen(detail);
        if (used && used < sizeof detail - 2) {
            strcat(detail, "; ");
            used += 2;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail + used, sizeof detail - used, fmt, ap);
        va_end(ap);
    }
    detail_n++;
}

static void set_events(struct conn *c) {
    struct epoll_event ev = {.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int ended(const struct conn *c) { return c->state == FAILED || c->state == DONE; }

static void fail(struct conn *c, const char *fmt, ...) {
    if (ended(c))
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (c->state == CONNECTING || c->state == HANDSHAKE)
        handshake_errors++;
    errors++;
    note("connection %d: %s", c->id, text);
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = FAILED;
}

/* ------------------------------------------------------------------------------------ */
/* Message content                                                                       */

/* Message n is pattern + (n % 26): each differs from its neighbours (the order check) and
 * all are text. Plain messages are the alphabet, as they always were. With --deflate they
 * are a run of JSON records like a chat app's, so they compress about as an app's traffic
 * does, not as random bytes (nothing) or one repeated letter (everything). */
static void make_pattern(void) {
    size_t n = opt.size + 26;
    pattern = malloc(n);
    if (!opt.deflate) {
        for (size_t i = 0; i < n; i++)
            pattern[i] = 'a' + i % 26;
        return;
    }
    static const char *const users[] = {"ada", "grace", "linus", "margaret", "dennis", "barbara"};
    static const char *const texts[] = {"on my way",          "see the latest build",
                                        "lunch at noon?",     "merged, thanks!",
                                        "can you review #4521", "ok"};
    size_t used = 0;
    for (unsigned id = 1000; used < n; id++) {
        char rec[256];
        int len = snprintf(rec, sizeof rec,
                           "%s{\"id\":%u,\"type\":\"message\",\"room\":\"general\",\"user\":\"%s\","
                           "\"text\":\"%s\",\"ts\":%llu,\"read\":%s}",
                           id == 1000 ? "[" : ",", id, users[id % 6], texts[id / 2 % 6],
                           1700000000000ULL + id * 1337ULL, id % 3 ? "false" : "true");
        size_t take = (size_t)len < n - used ? (size_t)len : n - used;
        memcpy(pattern + used, rec, take);
        used += take;
    }
}

/* ------------------------------------------------------------------------------------ */
/* permessage-deflate (RFC 7692)                                                         */

struct deflate_params {
    int server_no_takeover, client_no_takeover;
    int server_bits, client_bits;
};

/* One parameter's value, quotes removed; -1 if not a window size (8..15). */
static int window_bits(const char *v, size_t len) {
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    if (len < 1 || len > 2 || v[0] < '0' || v[0] > '9' || (len == 2 && (v[1] < '0' || v[1] > '9')))
        return -1;
    int bits = len == 1 ? v[0] - '0' : (v[0] - '0') * 10 + v[1] - '0';
    return bits >= 8 && bits <= 15 ? bits : -1;
}

/* The server's answer to DEFLATE_OFFER; NULL, or why it is not acceptable. */
static const char *parse_deflate(const char *v, size_t len, struct deflate_params *dp) {
    static char why[160];
    *dp = (struct deflate_params){0, 0, 15, 15};
    if (memchr(v, ',', len))
        return "more than one extension, only permessage-deflate was offered";
    int seen[4] = {0, 0, 0, 0};
    const char *end = v + len;
    for (int i = 0; v < end; i++) {
        const char *semi = memchr(v, ';', end - v);
        const char *stop = semi ? semi : end;
        const char *eq = memchr(v, '=', stop - v);
        const char *name = v, *name_end = eq ? eq : stop;
        const char *value = eq ? eq + 1 : NULL, *value_end = stop;
        v = semi ? semi + 1 : end;
        while (name < name_end && (*name == ' ' || *name == '\t'))
            name++;
        while (name_end > name && (name_end[-1] == ' ' || name_end[-1] == '\t'))
            name_end--;
        if (value) {
            while (value < value_end && (*value == ' ' || *value == '\t'))
                value++;
            while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
                value_end--;
        }
        size_t nlen = name_end - name;
        if (i == 0) {
            if (value || nlen != 18 || strncasecmp(name, "permessage-deflate", 18) != 0)
                return "not permessage-deflate";
            continue;
        }
        static const char *const known[] = {"server_no_context_takeover",
                                            "client_no_context_takeover",
                                            "server_max_window_bits", "client_max_window_bits"};
        int k = 0;
        while (k < 4 && !(strlen(known[k]) == nlen && strncasecmp(name, known[k], nlen) == 0))
            k++;
        if (k == 4) {
            snprintf(why, sizeof why, "unknown parameter '%.*s'", (int)nlen, name);
            return why;
        }
        if (seen[k]++) {
            snprintf(why, sizeof why, "parameter %s twice", known[k]);
            return why;
        }
        if (k < 2) {
            if (value)
                return "a no_context_takeover parameter with a value";
            *(k == 0 ? &dp->server_no_takeover : &dp->client_no_takeover) = 1;
            continue;
        }
        /* RFC 7692 section 7.1.2: in an answer, both window sizes need a value. */
        int bits = value ? window_bits(value, value_end - value) : -1;
        if (bits < 0) {
            snprintf(why, sizeof why, "%s without a window size of 8 to 15", known[k]);
            return why;
        }
        *(k == 2 ? &dp->server_bits : &dp->client_bits) = bits;
    }
    return NULL;
}

static struct deflate *deflate_start(const struct deflate_params *dp) {
    struct deflate *d = calloc(1, sizeof *d);
    /* zlib refuses a raw deflate window of 2^8; with 2^9 its matches still reach back at
     * most 512 - 262 bytes (MAX_DIST), inside the 256 the server allowed, which is how
     * Chromium answers client_max_window_bits=8 too. */
    int client_bits = dp->client_bits == 8 ? 9 : dp->client_bits;
    /* Chromium's choices: the default level and memLevel 8. */
    if (deflateInit2(&d->tx, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -client_bits, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK ||
        inflateInit2(&d->rx, -dp->server_bits) != Z_OK) {
        fprintf(stderr, "zlib: cannot set up a stream\n");
        exit(2);
    }
    d->tx_reset = dp->client_no_takeover;
    d->rx_reset = dp->server_no_takeover;
    return d;
}

/* Compress one message into zbuf; returns its length, the sync flush's 00 00 ff ff removed
 * (RFC 7692 section 7.2.1). */
static size_t deflate_message(struct deflate *d, const unsigned char *data, size_t len) {
    z_stream *z = &d->tx;
    z->next_in = (Bytef *)data;
    z->avail_in = len;
    size_t used = 0;
    for (;;) {
        if (zcap - used < 64) {
            zcap = zcap ? 2 * zcap : len + 1024;
            zbuf = xrealloc(zbuf, zcap);
        }
        z->next_out = zbuf + used;
        z->avail_out = zcap - used;
        int ret = deflate(z, Z_SYNC_FLUSH);
        used = z->next_out - zbuf;
        if (ret != Z_OK && ret != Z_BUF_ERROR) {
            fprintf(stderr, "deflate: %s\n", z->msg ? z->msg : "error");
            exit(2);
        }
        if (z->avail_out) /* zlib: room left over means the flush is complete */
            break;
    }
    if (used >= 4 && memcmp(zbuf + used - 4, "\0\0\xff\xff", 4) == 0)
        used -= 4;
    if (!used) {
        /* An empty message after another one: zlib had nothing to flush. The data must
         * still end with an empty stored block (section 7.2.1), 00 00 00 ff ff, of which
         * the removal of the marker leaves one 0x00. */
        zbuf[0] = 0;
        used = 1;
    }
    if (d->tx_reset)
        deflateReset(z);
    return used;
}

/* Inflate part of a compressed echo onto c->msg. Returns 0, or -1 after fail(). */
static int inflate_part(struct conn *c, const unsigned char *in, size_t len) {
    z_stream *z = &c->dfl->rx;
    z->next_in = (Bytef *)in;
    z->avail_in = len;
    while (z->avail_in) {
        /* One byte more than was sent: an echo that inflates longer shows up. */
        z->next_out = c->msg + c->msg_len;
        z->avail_out = opt.size + 1 - c->msg_len;
        int ret = inflate(z, Z_SYNC_FLUSH);
        c->msg_len = z->next_out - c->msg;
        if (c->msg_len > opt.size) {
            fail(c, "compressed echo %llu inflates to more than the %zu bytes sent",
                 (unsigned long long)c->echoed, opt.size);
            return -1;
        }
        if (ret == Z_STREAM_END) {
            /* A final block (BFINAL) ends the DEFLATE stream; what follows starts a new one. */
            inflateReset(z);
            continue;
        }
        if (ret != Z_OK) {
            fail(c, "compressed echo %llu does not inflate: %s", (unsigned long long)c->echoed,
                 z->msg ? z->msg : "zlib error");
            return -1;
        }
    }
    return 0;
}

/* The server's Sec-WebSocket-Extensions (NULL if none) against what was offered.
 * Returns 0, or -1 after fail(). */
static int accept_extensions(struct conn *c, const char *v, size_t len) {
    if (!opt.deflate) {
        if (v && len) {
            fail(c, "server answered extensions '%.*s' that were not offered", (int)len, v);
            return -1;
        }
        return 0;
    }
    if (!v || !len) {
        fail(c, "the server did not accept permessage-deflate");
        return -1;
    }
    struct deflate_params dp;
    const char *why = parse_deflate(v, len, &dp);
    if (why) {
        fail(c, "permessage-deflate answered '%.*s': %s", (int)len, v, why);
        return -1;
    }
    c->dfl = deflate_start(&dp);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* HPACK (RFC 7541): literal fields out, a full decoder in                              */

/* RFC 7541 Appendix A. */
static const char *const static_table[61][2] = {
    {":authority", ""}, {":method", "GET"}, {":method", "POST"}, {":path", "/"},
    {":path", "/index.html"}, {":scheme", "http"}, {":scheme", "https"}, {":status", "200"},
    {":status", "204"}, {":status", "206"}, {":status", "304"}, {":status", "400"},
    {":status", "404"}, {":status", "500"}, {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"}, {"accept-language", ""}, {"accept-ranges", ""},
    {"accept", ""}, {"access-control-allow-origin", ""}, {"age", ""}, {"allow", ""},
    {"authorization", ""}, {"cache-control", ""}, {"content-disposition", ""},
    {"content-encoding", ""}, {"content-language", ""}, {"content-length", ""},
    {"content-location", ""}, {"content-range", ""}, {"content-type", ""}, {"cookie", ""},
    {"date", ""}, {"etag", ""}, {"expect", ""}, {"expires", ""}, {"from", ""}, {"host", ""},
    {"if-match", ""}, {"if-modified-since", ""}, {"if-none-match", ""}, {"if-range", ""},
    {"if-unmodified-since", ""}, {"last-modified", ""}, {"link", ""}, {"location", ""},
    {"max-forwards", ""}, {"proxy-authenticate", ""}, {"proxy-authorization", ""},
    {"range", ""}, {"referer", ""}, {"refresh", ""}, {"retry-after", ""}, {"server", ""},
    {"set-cookie", ""}, {"strict-transport-security", ""}, {"transfer-encoding", ""},
    {"user-agent", ""}, {"vary", ""}, {"via", ""}, {"www-authenticate", ""},
};

/* RFC 7541 Appendix B, the code length of each symbol (256 is EOS). The code is canonical:
 * codes of one length are consecutive in symbol order, and each length continues where
 * the shorter one stopped, so the lengths alone determine it (as in DEFLATE). */
static const unsigned char huff_len[257] = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28,
    30, 28, 28, 28, 28, 28, 28, 28, 28, 28, 6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11,
    8,  6,  6,  6,  5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10, 13, 6,
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,
    8,  7,  8,  13, 19, 13, 14, 6,  15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,
    6,  5,  6,  7,  6,  5,  5,  6,  7,  7,  7,  7,  7,  15, 11, 14, 13, 28, 20, 22, 20, 20,
    22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21,
    22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23,
    22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26,
    28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27,
    26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
};
static uint16_t huff_count[31];  /* symbols per code length */
static uint16_t huff_symbol[257]; /* symbols by (length, value) */

static void huffman_init(void) {
    uint16_t offset[32] = {0};
    for (int s = 0; s < 257; s++)
        huff_count[huff_len[s]]++;
    for (int len = 1; len <= 30; len++)
        offset[len + 1] = offset[len] + huff_count[len];
    for (int s = 0; s < 257; s++)
        huff_symbol[offset[huff_len[s]]++] = s;
}

/* Decode `len` bytes into out (room for len * 8 / 5 bytes). Returns the length, or -1. */
static long huffman_decode(const unsigned char *in, size_t len, char *out) {
    long n = 0;
    int code = 0, first = 0, index = 0, bits = 0, ones = 1;
    for (size_t i = 0; i < len; i++) {
        for (int b = 7; b >= 0; b--) {
            int bit = (in[i] >> b) & 1;
            code |= bit;
            ones &= bit;
            bits++;
            int count = huff_count[bits];
            if (code - first < count) {
                int sym = huff_symbol[index + code - first];
                if (sym == 256)
                    return -1; /* EOS inside a string: a decoding error (section 5.2) */
                out[n++] = (char)sym;
                code = first = index = bits = 0;
                ones = 1;
                continue;
            }
            if (bits == 30)
                return -1;
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
    }
    /* Padding: fewer than 8 bits, all of them 1 (the start of EOS). */
    return bits > 7 || !ones ? -1 : n;
}

/* An integer with an N-bit prefix (section 5.1). Returns 0, or -1 if truncated or huge. */
static int hpack_int(const unsigned char **p, const unsigned char *end, int prefix,
                     uint32_t *out) {
    uint32_t max = (1u << prefix) - 1, v = **p & max;
    (*p)++;
    if (v < max) {
        *out = v;
        return 0;
    }
    for (int shift = 0; shift <= 21; shift += 7) {
        if (*p == end)
            return -1;
        unsigned char b = *(*p)++;
        v += (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* A string literal (section 5.2), decoded into a new allocation. Returns 0, or -1. */
static int hpack_string(const unsigned char **p, const unsigned char *end, char **out,
                        size_t *len) {
    if (*p == end)
        return -1;
    int huffman = **p & 0x80;
    uint32_t n;
    if (hpack_int(p, end, 7, &n) < 0 || n > (size_t)(end - *p))
        return -1;
    *out = malloc(huffman ? (size_t)n * 8 / 5 + 1 : (size_t)n + 1);
    if (huffman) {
        long d = huffman_decode(*p, n, *out);
        if (d < 0) {
            free(*out);
            return -1;
        }
        *len = d;
    } else {
        memcpy(*out, *p, n);
        *len = n;
    }
    *p += n;
    return 0;
}

static void hpack_evict(struct hpack_table *t, size_t room) {
    while (t->count && t->size + room > t->max) {
        struct hpack_entry *e = &t->entries[--t->count];
        t->size -= e->nlen + e->vlen + 32;
        free(e->name);
    }
}

static void hpack_insert(struct hpack_table *t, const char *name, size_t nlen, const char *value,
                         size_t vlen) {
    size_t size = nlen + vlen + 32;
    /* Copied before evicting: the name may be that of an entry about to go (section 4.4). */
    char *copy = malloc(nlen + vlen + 1);
    memcpy(copy, name, nlen);
    memcpy(copy + nlen, value, vlen);
    hpack_evict(t, size);
    if (size > t->max) {
        free(copy); /* larger than the table: it empties the table and is not kept */
        return;
    }
    t->entries = xrealloc(t->entries, (t->count + 1) * sizeof *t->entries);
    memmove(t->entries + 1, t->entries, t->count * sizeof *t->entries);
    struct hpack_entry *e = &t->entries[0];
    e->name = copy;
    e->value = e->name + nlen;
    e->nlen = nlen;
    e->vlen = vlen;
    t->count++;
    t->size += size;
}

/* Entry `index` of the static or the dynamic table; -1 if there is none. */
static int hpack_lookup(const struct hpack_table *t, uint32_t index, const char **name,
                        size_t *nlen, const char **value, size_t *vlen) {
    if (index >= 1 && index <= 61) {
        *name = static_table[index - 1][0];
        *value = static_table[index - 1][1];
        *nlen = strlen(*name);
        *vlen = strlen(*value);
        return 0;
    }
    if (index < 62 || index - 62 >= t->count)
        return -1;
    const struct hpack_entry *e = &t->entries[index - 62];
    *name = e->name;
    *nlen = e->nlen;
    *value = e->value;
    *vlen = e->vlen;
    return 0;
}

/* The two response fields this client looks at. */
static void on_field(struct h2 *h, const char *name, size_t nlen, const char *value,
                     size_t vlen) {
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        h->status = -1;
        if (vlen == 3 && value[0] >= '1' && value[0] <= '9' && value[1] >= '0' &&
            value[1] <= '9' && value[2] >= '0' && value[2] <= '9')
            h->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + value[2] - '0';
    } else if (nlen == 24 && memcmp(name, "sec-websocket-extensions", 24) == 0) {
        /* Several fields are one list (RFC 9110 section 5.3). */
        size_t at = h->extensions_len;
        h->extensions = xrealloc(h->extensions, at + 2 + vlen);
        if (at) {
            memcpy(h->extensions + at, ", ", 2);
            at += 2;
        }
        memcpy(h->extensions + at, value, vlen);
        h->extensions_len = at + vlen;
    }
}

/* Decode one header block. Returns NULL, or what is wrong with it. */
static const char *hpack_decode(struct h2 *h, const unsigned char *p, size_t len) {
    struct hpack_table *t = &h->table;
    const unsigned char *end = p + len;
    int fields = 0;
    while (p < end) {
        unsigned char b = *p;
        uint32_t index;
        const char *name, *value;
        size_t nlen, vlen;
        char *own_name = NULL, *own_value = NULL;
        if (b & 0x80) { /* indexed field (6.1) */
            if (hpack_int(&p, end, 7, &index) < 0 ||
                hpack_lookup(t, index, &name, &nlen, &value, &vlen) < 0)
                return "bad index in an indexed field";
            on_field(h, name, nlen, value, vlen);
            fields++;
            continue;
        }
        if ((b & 0xe0) == 0x20) { /* dynamic table size update (6.3) */
            uint32_t size;
            if (fields)
                return "a table size update after a field";
            if (hpack_int(&p, end, 5, &size) < 0 || size > 4096)
                return "a table size update over SETTINGS_HEADER_TABLE_SIZE (4096)";
            t->max = size;
            hpack_evict(t, 0);
            continue;
        }
        /* Literal field: with incremental indexing (6.2.1), without (6.2.2), never (6.2.3). */
        int indexing = (b & 0xc0) == 0x40;
        if (hpack_int(&p, end, indexing ? 6 : 4, &index) < 0)
            return "truncated literal field";
        if (index) {
            const char *unused;
            size_t unused_len;
            if (hpack_lookup(t, index, &name, &nlen, &unused, &unused_len) < 0)
                return "bad name index in a literal field";
        } else {
            if (hpack_string(&p, end, &own_name, &nlen) < 0)
                return "bad field name string";
            name = own_name;
        }
        if (hpack_string(&p, end, &own_value, &vlen) < 0) {
            free(own_name);
            return "bad field value string";
        }
        value = own_value;
        on_field(h, name, nlen, value, vlen);
        if (indexing)
            hpack_insert(t, name, nlen, value, vlen);
        free(own_name);
        free(own_value);
        fields++;
    }
    return NULL;
}

/* An integer with an N-bit prefix, the first byte's other bits given (section 5.1). */
static size_t hpack_put_int(unsigned char *p, int prefix, unsigned char first, size_t v) {
    size_t max = (1u << prefix) - 1, n = 1;
    if (v < max) {
        p[0] = first | v;
        return 1;
    }
    p[0] = first | max;
    for (v -= max; v >= 128; v >>= 7)
        p[n++] = 0x80 | (v & 0x7f);
    p[n++] = v;
    return n;
}

/* A literal field without indexing, new name, no Huffman (section 6.2.2). */
static size_t hpack_literal(unsigned char *p, const char *name, const char *value) {
    size_t nlen = strlen(name), vlen = strlen(value), n = 0;
    p[n++] = 0;
    n += hpack_put_int(p + n, 7, 0, nlen);
    memcpy(p + n, name, nlen);
    n += nlen;
    n += hpack_put_int(p + n, 7, 0, vlen);
    memcpy(p + n, value, vlen);
    return n + vlen;
}

/* ------------------------------------------------------------------------------------ */
/* HTTP/2 frames out (RFC 9113)                                                          */

enum {
    H2_DATA, H2_HEADERS, H2_PRIORITY, H2_RST_STREAM, H2_SETTINGS, H2_PUSH_PROMISE, H2_PING,
    H2_GOAWAY, H2_WINDOW_UPDATE, H2_CONTINUATION
};
#define FLAG_END_STREAM 0x1
#define FLAG_ACK 0x1
#define FLAG_END_HEADERS 0x4
#define FLAG_PADDED 0x8
#define FLAG_PRIORITY 0x20
#define H2_WINDOW (16u << 20)  /* what we grant, stream and connection */
#define H2_MAX_FRAME 16384     /* SETTINGS_MAX_FRAME_SIZE: we keep the default */
#define H2_MAX_BLOCK 65536     /* the longest response header block we put together */
#define H2_MAX_WINDOW 0x7fffffff

static void put32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Append a frame header to the socket's bytes; returns where its `len` bytes go. */
static unsigned char *h2_frame(struct conn *c, int type, int flags, uint32_t stream,
                               size_t len) {
    unsigned char *p = buf_room(&c->out, 9 + len);
    p[0] = len >> 16;
    p[1] = len >> 8;
    p[2] = len;
    p[3] = type;
    p[4] = flags;
    put32(p + 5, stream);
    c->out.len += 9 + len;
    return p + 9;
}

static void h2_window_update(struct conn *c, uint32_t stream, uint32_t increment) {
    put32(h2_frame(c, H2_WINDOW_UPDATE, 0, stream, 4), increment);
}

/* Move the stream's WebSocket bytes into DATA frames as far as the server's windows and
 * frame size allow; END_STREAM goes with the last byte after the close frame. */
static void h2_pump(struct conn *c) {
    struct h2 *h = c->h2;
    size_t left;
    while ((left = buf_used(&h->ws_out)) > 0) {
        int64_t window = h->send_conn < h->send_stream ? h->send_conn : h->send_stream;
        if (window <= 0)
            return;
        size_t n = left;
        if ((int64_t)n > window)
            n = window;
        if (n > h->max_frame)
            n = h->max_frame;
        int last = n == left && h->end_pending;
        memcpy(h2_frame(c, H2_DATA, last ? FLAG_END_STREAM : 0, 1, n),
               h->ws_out.data + h->ws_out.off, n);
        buf_drop(&h->ws_out, n);
        h->send_conn -= n;
        h->send_stream -= n;
        if (last)
            h->end_pending = 0;
    }
    if (h->end_pending) { /* nothing left to carry it: an empty DATA frame needs no window */
        h2_frame(c, H2_DATA, FLAG_END_STREAM, 1, 0);
        h->end_pending = 0;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Writing                                                                               */

static void flush(struct conn *c) {
    if (c->h2)
        h2_pump(c);
    struct buf *b = &c->out;
    while (buf_used(b)) {
        ssize_t n = send(c->fd, b->data + b->off, buf_used(b), MSG_NOSIGNAL);
        if (n > 0) {
            buf_drop(b, n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                c->want_out = 1;
                set_events(c);
            }
            return;
        }
        fail(c, "send: %s", n < 0 ? strerror(errno) : "wrote nothing");
        return;
    }
    if (c->want_out) {
        c->want_out = 0;
        set_events(c);
    }
}

/* Append one masked client frame (RFC 6455 section 5.2): to the socket's bytes, or over
 * HTTP/2 to the stream's, which leave in DATA frames as the windows allow. */
static void queue_frame(struct conn *c, int rsv, int opcode, const unsigned char *payload,
                        size_t len) {
    struct buf *b = c->h2 ? &c->h2->ws_out : &c->out;
    unsigned char *start = buf_room(b, len + 14), *p = start;
    *p++ = 0x80 | rsv | opcode;
    if (len < 126) {
        *p++ = 0x80 | len;
    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = len >> 8;
        *p++ = len & 0xff;
    } else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            *p++ = ((uint64_t)len >> (8 * i)) & 0xff;
    }
    uint32_t key = xorshift();
    unsigned char mask[4];
    memcpy(mask, &key, 4);
    memcpy(p, mask, 4);
    p += 4;
    /* Eight bytes at a time (the mask repeats every 4), then the tail. */
    uint64_t mask8 = (uint64_t)key << 32 | key, word;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&word, payload + i, 8);
        word ^= mask8;
        memcpy(p + i, &word, 8);
    }
    for (; i < len; i++)
        p[i] = payload[i] ^ mask[i & 3];
    p += len;
    b->len += p - start;
    /* Over HTTP/2 each message gets its own DATA frame while the windows allow, as a
     * browser's would: coalescing them would spare the server frames. */
    if (c->h2)
        h2_pump(c);
}

static void queue_message(struct conn *c) {
    const unsigned char *m = pattern + (c->sent % 26);
    int opcode = opt.binary ? 2 : 1;
    if (c->dfl)
        queue_frame(c, 0x40, opcode, zbuf, deflate_message(c->dfl, m, opt.size)); /* RSV1 */
    else
        queue_frame(c, 0, opcode, m, opt.size);
    c->sent++;
}

static void send_close(struct conn *c) {
    unsigned char code[2] = {1000 >> 8, 1000 & 0xff};
    if (c->h2)
        c->h2->end_pending = 1; /* our side of the stream ends with the close frame */
    queue_frame(c, 0, 8, code, 2);
    c->close_sent = 1;
    c->state = CLOSING;
    flush(c);
}

/* The close handshake is complete: the connection goes. */
static void finish(struct conn *c) {
    if (c->h2) {
        /* As a browser closing its session: GOAWAY, no stream processed, no error. */
        memset(h2_frame(c, H2_GOAWAY, 0, 0, 8), 0, 8);
        flush(c);
        if (ended(c))
            return;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = DONE;
}

/* ------------------------------------------------------------------------------------ */
/* Opening handshakes                                                                    */

static void send_handshake(struct conn *c) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s"
                     "\r\n",
                     opt.path, opt.host, opt.port,
                     opt.deflate ? "Sec-WebSocket-Extensions: " DEFLATE_OFFER "\r\n" : "");
    if (n >= (int)sizeof req) {
        fail(c, "the handshake request is over %zu bytes (--path too long)", sizeof req);
        return;
    }
    buf_add(&c->out, req, n);
    c->state = HANDSHAKE;
    flush(c);
}

/* The value of header `name` in the response head, or NULL. */
static const char *header_value(const char *head, const char *name, size_t *len) {
    size_t nlen = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r') {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *end = strstr(v, "\r\n");
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            *len = end - v;
            return v;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

/* Parse the 101 answer; returns the bytes it took, 0 if incomplete, -1 after fail(). */
static long parse_handshake(struct conn *c) {
    unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen >= rcap - 1) {
            fail(c, "handshake answer too long");
            return -1;
        }
        return 0;
    }
    size_t head_len = end + 4 - c->rbuf;
    char *head = malloc(head_len + 1);
    memcpy(head, c->rbuf, head_len);
    head[head_len] = 0;
    size_t vlen = 0;
    const char *v;
    char *eol = strstr(head, "\r\n");
    *eol = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fail(c, "handshake answered '%.80s'", head);
        free(head);
        return -1;
    }
    *eol = '\r';
    v = header_value(head, "sec-websocket-accept", &vlen);
    if (!v || vlen != strlen(WS_ACCEPT) || memcmp(v, WS_ACCEPT, vlen) != 0) {
        fail(c, "bad or missing Sec-WebSocket-Accept");
        free(head);
        return -1;
    }
    v = header_value(head, "sec-websocket-extensions", &vlen);
    int bad = accept_extensions(c, v, v ? vlen : 0) < 0;
    free(head);
    if (bad)
        return -1;
    c->state = OPEN;
    return head_len;
}

/* The connection preface (RFC 9113 section 3.4): the magic, our SETTINGS and the
 * connection window; the CONNECT waits for the server's SETTINGS. */
static void h2_start(struct conn *c) {
    buf_add(&c->out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    unsigned char *p = h2_frame(c, H2_SETTINGS, 0, 0, 12);
    p[0] = 0;
    p[1] = 2; /* SETTINGS_ENABLE_PUSH */
    put32(p + 2, 0);
    p[6] = 0;
    p[7] = 4; /* SETTINGS_INITIAL_WINDOW_SIZE */
    put32(p + 8, H2_WINDOW);
    h2_window_update(c, 0, H2_WINDOW - 65535);
    c->state = HANDSHAKE;
    flush(c);
}

/* The extended CONNECT (RFC 8441 section 4) on stream 1. */
static void h2_request(struct conn *c) {
    char authority[300];
    snprintf(authority, sizeof authority, "%s:%d", opt.host, opt.port);
    const char *fields[][2] = {
        {":method", "CONNECT"},    {":protocol", "websocket"},
        {":scheme", "http"},       {":path", opt.path},
        {":authority", authority}, {"sec-websocket-version", "13"},
        {"sec-websocket-extensions", DEFLATE_OFFER},
    };
    size_t count = opt.deflate ? 7 : 6, bound = 0, n = 0;
    for (size_t i = 0; i < count; i++)
        bound += 1 + 2 * 6 + strlen(fields[i][0]) + strlen(fields[i][1]);
    unsigned char *block = malloc(bound);
    for (size_t i = 0; i < count; i++)
        n += hpack_literal(block + n, fields[i][0], fields[i][1]);
    if (n > c->h2->max_frame)
        fail(c, "the CONNECT's header block (%zu bytes) exceeds the server's frame size", n);
    else
        memcpy(h2_frame(c, H2_HEADERS, FLAG_END_HEADERS, 1, n), block, n);
    free(block);
}

/* ------------------------------------------------------------------------------------ */
/* WebSocket frames in                                                                   */

/* A complete data message came back: check it, count it, send the next. */
static int on_echo(struct conn *c, int opcode, const unsigned char *data, size_t len) {
    int want = opt.binary ? 2 : 1;
    if (c->echoed >= c->sent) {
        fail(c, "a message that was never sent (%zu bytes)", len);
        return -1;
    }
    if (opcode != want) {
        fail(c, "echo has opcode %d, sent %d", opcode, want);
        return -1;
    }
    if (len != opt.size || memcmp(data, pattern + (c->echoed % 26), len) != 0) {
        fail(c, "echo %llu differs from the message sent (%zu bytes back, %zu sent)",
             (unsigned long long)c->echoed, len, opt.size);
        return -1;
    }
    c->echoed++;
    if (counting)
        counted++;
    if (sending && c->state == OPEN)
        queue_message(c);
    return 0;
}

/* Parse server frames from buf[*pos..buf_len). Returns 0 when it needs more bytes, 1 after the
 * server's close frame that answers ours (*pos just past it), -1 if the connection failed. */
static int parse_frames(struct conn *c, const unsigned char *buf, size_t buf_len, size_t *pos) {
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    for (;;) {
        const unsigned char *p = buf + *pos;
        size_t avail = buf_len - *pos;
        if (avail < 2)
            return 0;
        int fin = p[0] & 0x80, rsv = p[0] & 0x70, opcode = p[0] & 0x0f;
        int rsv1 = rsv == 0x40 && c->dfl; /* RSV1 is permessage-deflate's "compressed" */
        if (p[1] & 0x80) {
            fail(c, "server frame is masked");
            return -1;
        }
        if (rsv && !rsv1) {
            fail(c, "server frame has RSV bits 0x%x%s", rsv,
                 c->dfl ? "" : " (no extension was negotiated)");
            return -1;
        }
        uint64_t len = p[1] & 0x7f;
        size_t hlen = 2;
        if (len == 126) {
            if (avail < 4)
                return 0;
            len = ((uint64_t)p[2] << 8) | p[3];
            hlen = 4;
        } else if (len == 127) {
            if (avail < 10)
                return 0;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            hlen = 10;
        }
        if (hlen + len > rcap) {
            fail(c, "server frame of %llu bytes, more than was ever sent", (unsigned long long)len);
            return -1;
        }
        if (avail < hlen + len)
            return 0;
        const unsigned char *payload = p + hlen;
        *pos += hlen + len;
        if (opcode >= 8) {
            if (!fin || len > 125 || rsv1) {
                fail(c, "malformed control frame (opcode %d)", opcode);
                return -1;
            }
            if (opcode == 8) {
                int code = len >= 2 ? (payload[0] << 8) | payload[1] : 1005;
                if (!c->close_sent) {
                    fail(c, "server closed the WebSocket (code %d, '%.*s')", code,
                         len > 2 ? (int)len - 2 : 0, payload + 2);
                    return -1;
                }
                return 1; /* the close handshake is complete */
            }
            if (opcode == 9) {
                if (!c->close_sent)
                    queue_frame(c, 0, 10, payload, len); /* pong */
            } else if (opcode != 10) {
                fail(c, "unknown control opcode %d", opcode);
                return -1;
            }
            continue;
        }
        if (opcode == 0) {
            if (!c->msg_opcode) {
                fail(c, "continuation frame without a message");
                return -1;
            }
            if (rsv1) {
                fail(c, "RSV1 on a continuation frame");
                return -1;
            }
        } else if (opcode == 1 || opcode == 2) {
            if (c->msg_opcode) {
                fail(c, "new message inside a fragmented one");
                return -1;
            }
            if (fin && !rsv1) {
                if (on_echo(c, opcode, payload, len) < 0)
                    return -1;
                continue;
            }
            c->msg_opcode = opcode;
            c->msg_len = 0;
            c->msg_deflated = rsv1;
        } else {
            fail(c, "unknown data opcode %d", opcode);
            return -1;
        }
        if (c->msg_deflated) {
            if (inflate_part(c, payload, len) < 0)
                return -1;
        } else {
            if (c->msg_len + len > opt.size) {
                fail(c, "fragmented echo longer than %zu bytes", opt.size);
                return -1;
            }
            memcpy(c->msg + c->msg_len, payload, len);
            c->msg_len += len;
        }
        if (fin) {
            int op = c->msg_opcode;
            c->msg_opcode = 0;
            if (c->msg_deflated) {
                /* RFC 7692 section 7.2.2: the message's data ends with the flush marker. */
                if (inflate_part(c, tail, 4) < 0)
                    return -1;
                if (c->dfl->rx_reset)
                    inflateReset(&c->dfl->rx);
            }
            if (on_echo(c, op, c->msg, c->msg_len) < 0)
                return -1;
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* HTTP/2 frames in                                                                      */

static const char *h2_error_name(uint32_t code) {
    static const char *const names[] = {
        "NO_ERROR",        "PROTOCOL_ERROR",      "INTERNAL_ERROR",    "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT", "STREAM_CLOSED",      "FRAME_SIZE_ERROR",  "REFUSED_STREAM",
        "CANCEL",          "COMPRESSION_ERROR",   "CONNECT_ERROR",     "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
    };
    return code < 14 ? names[code] : "an unknown error code";
}

/* WebSocket bytes from a DATA frame. Returns 0, or -1 if the connection ended. */
static int ws_feed(struct conn *c, const unsigned char *data, size_t len) {
    struct h2 *h = c->h2;
    struct buf *in = &h->ws_in;
    size_t pos = 0, rest;
    int r;
    if (!len)
        return 0;
    if (h->close_received) {
        fail(c, "WebSocket bytes after the server's close frame");
        return -1;
    }
    if (!buf_used(in)) {
        /* The common case, whole frames: parsed where they lie, the rest kept. */
        r = parse_frames(c, data, len, &pos);
        rest = len - pos;
        if (r == 0 && rest)
            buf_add(in, data + pos, rest);
    } else {
        buf_add(in, data, len);
        r = parse_frames(c, in->data + in->off, buf_used(in), &pos);
        if (r >= 0)
            buf_drop(in, pos);
        rest = buf_used(in);
    }
    if (r < 0)
        return -1;
    if (r > 0) {
        h->close_received = 1;
        if (rest) {
            fail(c, "WebSocket bytes after the server's close frame");
            return -1;
        }
    }
    return 0;
}

static void h2_data(struct conn *c, int flags, const unsigned char *p, uint32_t len) {
    struct h2 *h = c->h2;
    if (!h->response) {
        fail(c, "DATA before the response HEADERS");
        return;
    }
    if (h->end_received) {
        fail(c, "DATA after END_STREAM");
        return;
    }
    uint32_t data_len = len;
    if (flags & FLAG_PADDED) {
        if (!len || p[0] >= len) {
            fail(c, "DATA padding longer than the frame");
            return;
        }
        data_len = len - 1 - p[0];
        p++;
    }
    /* Flow control counts the whole frame, padding included (RFC 9113 section 6.9.1). */
    h->owed_conn += len;
    h->owed_stream += len;
    if (h->owed_conn > H2_WINDOW || h->owed_stream > H2_WINDOW) {
        fail(c, "the server sent DATA beyond the window it was given");
        return;
    }
    if (ws_feed(c, p, data_len) < 0)
        return;
    if (flags & FLAG_END_STREAM) {
        h->end_received = 1;
        if (!h->close_received)
            fail(c, "the server ended the stream without a close frame");
        else
            finish(c);
        return;
    }
    /* Granted back once half the window is used, as browsers do: a WINDOW_UPDATE per
     * message would double the frames the server handles. */
    if (h->owed_stream >= H2_WINDOW / 2) {
        h2_window_update(c, 1, h->owed_stream);
        h->owed_stream = 0;
    }
    if (h->owed_conn >= H2_WINDOW / 2) {
        h2_window_update(c, 0, h->owed_conn);
        h->owed_conn = 0;
    }
}

/* A complete header block on stream 1: the answer to the CONNECT. */
static void h2_response(struct conn *c, int end_stream) {
    struct h2 *h = c->h2;
    if (h->response) {
        fail(c, "HEADERS after the response (trailers on a WebSocket stream)");
        return;
    }
    const char *why = hpack_decode(h, h->block.data + h->block.off, buf_used(&h->block));
    h->block.off = h->block.len = 0;
    h->block_stream = 0;
    if (why) {
        fail(c, "HPACK: %s", why);
        return;
    }
    if (h->status != 200) {
        if (h->status > 0)
            fail(c, "the CONNECT was answered with :status %d", h->status);
        else
            fail(c, "a response without a valid :status");
        return;
    }
    if (end_stream) {
        fail(c, "the 200 response ended the stream");
        return;
    }
    if (accept_extensions(c, h->extensions, h->extensions_len) < 0)
        return;
    h->response = 1;
    c->state = OPEN;
}

/* A fragment of a header block, from HEADERS or CONTINUATION. */
static void h2_block(struct conn *c, const unsigned char *p, size_t len, int end_headers,
                     uint32_t stream, int end_stream) {
    struct h2 *h = c->h2;
    if (buf_used(&h->block) + len > H2_MAX_BLOCK) {
        fail(c, "a header block over %d bytes", H2_MAX_BLOCK);
        return;
    }
    buf_add(&h->block, p, len);
    if (end_headers) {
        h2_response(c, end_stream);
    } else {
        h->block_stream = stream;
        h->block_end_stream = end_stream;
    }
}

static void h2_headers(struct conn *c, int flags, const unsigned char *p, uint32_t len) {
    uint32_t pad = 0;
    if (flags & FLAG_PADDED) {
        if (!len) {
            fail(c, "HEADERS too short for its padding");
            return;
        }
        pad = p[0];
        p++;
        len--;
    }
    if (flags & FLAG_PRIORITY) {
        if (len < 5) {
            fail(c, "HEADERS too short for its priority");
            return;
        }
        p += 5;
        len -= 5;
    }
    if (pad > len) {
        fail(c, "HEADERS padding longer than the frame");
        return;
    }
    h2_block(c, p, len - pad, flags & FLAG_END_HEADERS, 1, flags & FLAG_END_STREAM);
}

static void h2_settings(struct conn *c, int flags, const unsigned char *p, uint32_t len) {
    struct h2 *h = c->h2;
    if (flags & FLAG_ACK) {
        if (len)
            fail(c, "SETTINGS ACK with a payload");
        return;
    }
    if (len % 6) {
        fail(c, "SETTINGS of %u bytes", len);
        return;
    }
    for (uint32_t i = 0; i < len; i += 6) {
        unsigned id = p[i] << 8 | p[i + 1];
        uint32_t v = get32(p + i + 2);
        if (id == 4) { /* SETTINGS_INITIAL_WINDOW_SIZE */
            if (v > H2_MAX_WINDOW) {
                fail(c, "SETTINGS_INITIAL_WINDOW_SIZE %u", v);
                return;
            }
            /* It moves the open stream's window at once, possibly below zero (6.9.2). */
            h->send_stream += (int64_t)v - h->peer_initial;
            h->peer_initial = v;
            if (h->send_stream > H2_MAX_WINDOW) {
                fail(c, "SETTINGS_INITIAL_WINDOW_SIZE overflows the stream's window");
                return;
            }
        } else if (id == 5) { /* SETTINGS_MAX_FRAME_SIZE */
            if (v < 16384 || v > 16777215) {
                fail(c, "SETTINGS_MAX_FRAME_SIZE %u", v);
                return;
            }
            h->max_frame = v;
        } else if (id == 8) { /* SETTINGS_ENABLE_CONNECT_PROTOCOL: 0 or 1, never back to 0 */
            if (v > 1 || (h->connect_protocol && !v)) {
                fail(c, "SETTINGS_ENABLE_CONNECT_PROTOCOL %u after %d", v, h->connect_protocol);
                return;
            }
            h->connect_protocol = v;
        }
        /* Others do not concern this client: it never indexes fields, so the server's
         * table size is moot, and it opens one stream. */
    }
    h2_frame(c, H2_SETTINGS, FLAG_ACK, 0, 0);
    if (!h->settings_seen) {
        h->settings_seen = 1;
        if (!h->connect_protocol) {
            fail(c, "the server's SETTINGS do not enable extended CONNECT (RFC 8441)");
            return;
        }
        h2_request(c);
    }
}

static void h2_window(struct conn *c, uint32_t stream, const unsigned char *p, uint32_t len) {
    struct h2 *h = c->h2;
    if (len != 4) {
        fail(c, "WINDOW_UPDATE of %u bytes", len);
        return;
    }
    uint32_t increment = get32(p) & 0x7fffffff;
    int64_t *window = stream == 0 ? &h->send_conn : stream == 1 ? &h->send_stream : NULL;
    if (!window)
        return; /* another stream: none is open */
    if (!increment) {
        fail(c, "WINDOW_UPDATE of 0 on stream %u", stream);
        return;
    }
    *window += increment;
    if (*window > H2_MAX_WINDOW)
        fail(c, "WINDOW_UPDATE past 2^31-1 on stream %u", stream);
}

/* Parse HTTP/2 frames from rbuf. Returns 0, or -1 if the connection ended. */
static int h2_parse(struct conn *c, size_t *pos) {
    struct h2 *h = c->h2;
    for (;;) {
        const unsigned char *p = c->rbuf + *pos;
        size_t avail = c->rlen - *pos;
        if (avail < 9)
            return 0;
        uint32_t len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        int type = p[3], flags = p[4];
        uint32_t stream = get32(p + 5) & 0x7fffffff;
        if (!h->settings_seen && (type != H2_SETTINGS || (flags & FLAG_ACK))) {
            if (memcmp(p, "HTTP/", 5) == 0) {
                const unsigned char *eol = memchr(p, '\r', avail);
                fail(c, "answered in HTTP/1.1, not HTTP/2 ('%.*s')",
                     eol ? (int)(eol - p) : (avail > 40 ? 40 : (int)avail), p);
            } else {
                fail(c, "the server's first frame is not SETTINGS (type %d)", type);
            }
            return -1;
        }
        if (len > H2_MAX_FRAME) {
            fail(c, "a frame of %u bytes, over SETTINGS_MAX_FRAME_SIZE", len);
            return -1;
        }
        if (avail < 9 + len)
            return 0;
        *pos += 9 + len;
        p += 9;
        if (h->block_stream && (type != H2_CONTINUATION || stream != h->block_stream))
            fail(c, "a frame of type %d where CONTINUATION was due", type);
        else if ((type == H2_DATA || type == H2_HEADERS) && stream != 1)
            fail(c, "%s on stream %u", type ? "HEADERS" : "DATA", stream);
        else if ((type == H2_SETTINGS || type == H2_PING) && stream != 0)
            fail(c, "frame of type %d on stream %u", type, stream);
        else
            switch (type) {
            case H2_DATA:
                h2_data(c, flags, p, len);
                break;
            case H2_HEADERS:
                h2_headers(c, flags, p, len);
                break;
            case H2_CONTINUATION:
                if (!h->block_stream)
                    fail(c, "CONTINUATION without HEADERS");
                else
                    h2_block(c, p, len, flags & FLAG_END_HEADERS, stream, h->block_end_stream);
                break;
            case H2_RST_STREAM:
                fail(c, "RST_STREAM on stream %u: %s", stream,
                     h2_error_name(len == 4 ? get32(p) : 1));
                break;
            case H2_SETTINGS:
                h2_settings(c, flags, p, len);
                break;
            case H2_PUSH_PROMISE:
                fail(c, "PUSH_PROMISE, though SETTINGS_ENABLE_PUSH is 0");
                break;
            case H2_PING:
                if (len != 8)
                    fail(c, "PING of %u bytes", len);
                else if (!(flags & FLAG_ACK))
                    memcpy(h2_frame(c, H2_PING, FLAG_ACK, 0, 8), p, 8);
                break;
            case H2_GOAWAY:
                if (len < 8)
                    fail(c, "GOAWAY of %u bytes", len);
                else
                    fail(c, "GOAWAY: %s '%.*s'", h2_error_name(get32(p + 4)),
                         len - 8 > 100 ? 100 : (int)len - 8, p + 8);
                break;
            case H2_WINDOW_UPDATE:
                h2_window(c, stream, p, len);
                break;
            default:
                break; /* PRIORITY and unknown types are ignored (RFC 9113 section 5.5) */
            }
        if (ended(c))
            return -1;
    }
}

/* ------------------------------------------------------------------------------------ */
/* The event loop                                                                        */

static void on_readable(struct conn *c) {
    for (;;) {
        if (c->rlen == rcap) {
            fail(c, "receive buffer full");
            return;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, rcap - c->rlen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (n < 0)
                fail(c, "recv: %s", strerror(errno));
            else
                fail(c, c->close_sent ? "EOF before the server's close frame"
                                      : "EOF from the server (no close frame)");
            return;
        }
        c->rlen += n;
        size_t pos = 0;
        if (c->h2) {
            if (h2_parse(c, &pos) < 0)
                return;
        } else {
            if (c->state == HANDSHAKE) {
                long took = parse_handshake(c);
                if (took <= 0)
                    return; /* incomplete (keep reading later) or failed */
                pos = took;
            }
            int r = parse_frames(c, c->rbuf, c->rlen, &pos);
            if (r > 0)
                finish(c);
            if (r)
                return;
        }
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
        if ((size_t)n < rcap / 2)
            break; /* probably drained; level-triggered epoll will call again */
    }
    flush(c);
}

static void on_writable(struct conn *c) {
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail(c, "connect: %s", strerror(err));
            return;
        }
        if (c->h2)
            h2_start(c);
        else
            send_handshake(c);
        return;
    }
    flush(c);
}

static void open_conn(struct conn *c, struct sockaddr_in *addr) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("socket");
        exit(2);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS)
        fail(c, "connect: %s", strerror(errno));
}

static int count_state(enum state s) {
    int n = 0;
    for (int i = 0; i < opt.connections; i++)
        n += conns[i].state == s;
    return n;
}

static int in_flight_total(void) {
    uint64_t n = 0;
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state == OPEN)
            n += conns[i].sent - conns[i].echoed;
    return (int)n;
}

/* Run the event loop until `until` (monotonic) or until done() says stop. */
static void loop(double until, int (*done)(void)) {
    struct epoll_event events[256];
    for (;;) {
        if (done && done())
            return;
        double left = until - now();
        if (left <= 0)
            return;
        int timeout = (int)(left * 1000) + 1;
        if (timeout > 100)
            timeout = 100;
        int n = epoll_wait(epfd, events, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            exit(2);
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (ended(c))
                continue;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c);
            if (!ended(c) && (events[i].events & EPOLLOUT))
                on_writable(c);
        }
    }
}

static int handshakes_done(void) {
    return count_state(CONNECTING) + count_state(HANDSHAKE) == 0;
}
static int drained(void) { return in_flight_total() == 0; }
static int all_closed(void) { return count_state(CLOSING) == 0; }

/* Every close handshake is complete: what may still be awaited is END_STREAM. */
static int close_frames_in(void) {
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state == CLOSING && !(conns[i].h2 && conns[i].h2->close_received))
            return 0;
    return 1;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --port PORT [--host 127.0.0.1] [--path /] [--connections 64]\n"
            "          [--in-flight 1] [--size 32] [--binary] [--deflate] [--h2]\n"
            "          [--duration 10]\n",
            prog);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--binary")) {
            opt.binary = 1;
            continue;
        }
        if (!strcmp(a, "--deflate")) {
            opt.deflate = 1;
            continue;
        }
        if (!strcmp(a, "--h2")) {
            opt.h2 = 1;
            continue;
        }
        if (!v)
            usage(argv[0]);
        if (!strcmp(a, "--host"))
            opt.host = v;
        else if (!strcmp(a, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(a, "--path"))
            opt.path = v;
        else if (!strcmp(a, "--connections"))
            opt.connections = atoi(v);
        else if (!strcmp(a, "--in-flight"))
            opt.in_flight = atoi(v);
        else if (!strcmp(a, "--size"))
            opt.size = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(v);
        else
            usage(argv[0]);
        i++;
    }
    if (opt.port <= 0 || opt.connections < 1 || opt.in_flight < 1 || opt.size > (1u << 24) ||
        opt.duration <= 0)
        usage(argv[0]);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1) {
        fprintf(stderr, "--host must be an IPv4 address\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.connections + 16) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    make_pattern();
    if (opt.h2)
        huffman_init();
    rcap = 2 * (opt.size + 14) > 65536 ? 2 * (opt.size + 14) : 65536;

    epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc(opt.connections, sizeof *conns);
    for (int i = 0; i < opt.connections; i++) {
        struct conn *c = &conns[i];
        c->id = i;
        c->rbuf = malloc(rcap);
        buf_room(&c->out, opt.in_flight * (opt.size + 14));
        c->msg = malloc(opt.size + 1); /* + 1: an inflated echo that is too long shows */
        if (opt.h2) {
            struct h2 *h = calloc(1, sizeof *h);
            /* RFC 9113 defaults until the server's SETTINGS say otherwise. */
            h->send_conn = h->send_stream = h->peer_initial = 65535;
            h->max_frame = 16384;
            h->table.max = 4096;
            c->h2 = h;
        }
        open_conn(c, &addr);
    }

    /* 1. Connect and handshake every connection; the clock is not running yet. */
    loop(now() + opt.connect_timeout, handshakes_done);
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state == CONNECTING || conns[i].state == HANDSHAKE)
            fail(&conns[i], "no handshake answer within %.0fs", opt.connect_timeout);
    int open = count_state(OPEN);

    /* 2. Measure: K messages in flight on every open connection, for --duration. */
    double cpu0 = cpu_seconds(), t0 = now();
    counting = 1;
    for (int i = 0; i < opt.connections; i++) {
        struct conn *c = &conns[i];
        if (c->state != OPEN)
            continue;
        for (int k = 0; k < opt.in_flight; k++)
            queue_message(c);
        flush(c);
    }
    if (open)
        loop(t0 + opt.duration, NULL);
    double t1 = now(), cpu1 = cpu_seconds();
    counting = 0;
    sending = 0;

    /* 3. Collect the echoes still in flight, then close every connection cleanly. */
    loop(now() + opt.drain_timeout, drained);
    for (int i = 0; i < opt.connections; i++) {
        struct conn *c = &conns[i];
        if (c->state == OPEN && c->sent != c->echoed)
            fail(c, "%llu message(s) never echoed",
                 (unsigned long long)(c->sent - c->echoed));
    }
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state == OPEN)
            send_close(&conns[i]);
    loop(now() + opt.drain_timeout, close_frames_in);
    /* Over HTTP/2 the server's END_STREAM stands for its closing the TCP connection (RFC
     * 8441 section 5), which it SHOULD do first (RFC 6455 section 7.1.1). One that does
     * not gets a second more and a line on stderr, not an error: over HTTP/1.1 its FIN
     * is not waited for either. */
    loop(now() + 1.0, all_closed);
    int lingering = 0;
    for (int i = 0; i < opt.connections; i++) {
        struct conn *c = &conns[i];
        if (c->state != CLOSING)
            continue;
        if (c->h2 && c->h2->close_received) {
            lingering++;
            finish(c);
        } else {
            fail(c, "no close frame from the server within %.0fs", opt.drain_timeout);
        }
    }
    if (lingering)
        fprintf(stderr, "ws_load: %d connection(s) without END_STREAM 1s after the server's "
                        "close frame\n", lingering);

    double seconds = open ? t1 - t0 : 0.0; /* no clock ran without an open connection */
    double rate = seconds > 0 ? counted / seconds : 0.0;
    if (!open && !errors) {
        errors++;
        note("no connection opened");
    }
    /* JSON string: escape what could break it. */
    char esc[1100];
    size_t j = 0;
    for (size_t i = 0; detail[i] && j < sizeof esc - 7; i++) {
        unsigned char ch = detail[i];
        if (ch == '"' || ch == '\\') {
            esc[j++] = '\\';
            esc[j++] = ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            j += snprintf(esc + j, 7, "\\u%04x", ch);
        } else {
            esc[j++] = ch;
        }
    }
    esc[j] = 0;
    printf("{\"connections\": %d, \"open\": %d, \"in_flight\": %d, \"size\": %zu, "
           "\"binary\": %s, \"seconds\": %.3f, \"messages\": %llu, \"msg_per_sec\": %.1f, "
           "\"client_cpu\": %.3f, \"errors\": %ld, \"handshake_errors\": %ld, "
           "\"error_detail\": \"%s%s\"}\n",
           opt.connections, open, opt.in_flight, opt.size, opt.binary ? "true" : "false",
           seconds, (unsigned long long)counted, rate, seconds > 0 ? (cpu1 - cpu0) / seconds : 0.0,
           errors, handshake_errors, esc, detail_n > 3 ? " ..." : "");
    return 0;
}
