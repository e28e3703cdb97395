// unpack.c — layer extraction (see carchive_unpack.h): reads the blob, hashes it, and drives
// stream.c (decompression), tar.c (the tar stream) and extract.c (its entries). Runs in the
// parent (any thread); it allocates, so it is never called between clone3 and execve.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CArchive needs _GNU_SOURCE"
#endif
#include "unpack_internal.h"
#include "carchive_digest.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// MARK: - Errors

int carchive_fail(struct tar *t, int err, const char *fmt, ...) {
    if (t->res->error == 0) {
        t->res->error = err ? err : EINVAL;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->res->message, sizeof(t->res->message), fmt, ap);
        va_end(ap);
    }
    return t->res->error;
}

// MARK: - Reading a blob

/// Reads the blob, hashes it (its digest) and feeds it to the decompressor, which feeds the tar
/// parser or, for a big layer, the pipe. Returns the bytes read.
static uint64_t read_blob(struct tar *t, struct stream *s, int blob_fd, uint64_t size, unsigned char *in, void *hin) {
    uint64_t off = 0;
    int first = 1;
    while (off < size && !t->res->error) {
        size_t want = (size - off) < CHUNK ? (size_t)(size - off) : CHUNK;
        ssize_t n = pread(blob_fd, in, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            carchive_fail(t, n == 0 ? EIO : errno, "reading the layer blob: %s",
                          n == 0 ? "it is shorter than its size" : strerror(errno));
            break;
        }
        off += (uint64_t)n;
        carchive_sha256_update(hin, in, (size_t)n);
        if (first) {
            first = 0;
            if (carchive_stream_check(t, s, in, (size_t)n)) break;
        }
        carchive_stream_feed(t, s, in, (size_t)n);
    }
    carchive_stream_finish(t, s);
    return off;
}

// MARK: - Two threads for a big layer

// A layer of PIPE_MIN bytes or more is read, hashed and decompressed on a thread of its own
// while this one creates its entries: the two halves of the work overlap (on a 120 MB layer
// they take about as long as each other). The tar bytes go through PIPE_SLOTS buffers, in
// order. Errors keep the order of one thread: the reader stops at the chunk it refuses and
// hands over nothing after it, so the extractor fails first on anything earlier; an extractor
// that fails stops the reader, whose own error ("stopped") is then dropped.
#define PIPE_MIN (4u << 20)
#define PIPE_SLOTS 3

struct pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *buf[PIPE_SLOTS];
    size_t len[PIPE_SLOTS];
    unsigned head, count;  // the next slot to extract; slots filled (the one being extracted included)
    int ended;             // the reader is done: no more slots will come
    int stopped;           // the extractor failed: pushes fail
};

int carchive_pipe_push(struct pipe *p, const unsigned char *data, size_t n) {
    pthread_mutex_lock(&p->mu);
    while (p->count == PIPE_SLOTS && !p->stopped) pthread_cond_wait(&p->cv, &p->mu);
    if (p->stopped) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    unsigned i = (p->head + p->count) % PIPE_SLOTS;
    pthread_mutex_unlock(&p->mu);
    memcpy(p->buf[i], data, n);  // only this thread writes slot i until it is counted
    pthread_mutex_lock(&p->mu);
    p->len[i] = n;
    p->count++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

struct reader {
    struct tar t;  // the reader's view: options, root (free space), its own result, the pipe
    struct carchive_unpack_result res;
    struct pipe *pipe;
    int blob_fd;
    uint64_t size, off;
    unsigned char digest[32], diff_id[32];
};

static void *read_thread(void *arg) {
    struct reader *r = arg;
    struct stream s;
    memset(&s, 0, sizeof(s));
    unsigned char *in = malloc(CHUNK);
    void *hin = carchive_sha256_new();
    if (in == NULL || hin == NULL) {
        carchive_fail(&r->t, ENOMEM, "out of memory");
    } else if (carchive_stream_open(&r->t, &s, r->t.opts->compression) == 0) {
        r->off = read_blob(&r->t, &s, r->blob_fd, r->size, in, hin);
    }
    if (hin) carchive_sha256_final(hin, r->digest);
    carchive_stream_close(&s, r->diff_id);
    free(in);
    pthread_mutex_lock(&r->pipe->mu);
    r->pipe->ended = 1;
    pthread_cond_broadcast(&r->pipe->cv);
    pthread_mutex_unlock(&r->pipe->mu);
    return NULL;
}

/// The big-layer path: 1 when it ran (the result is in t->res), 0 when the thread could not be
/// started (the caller does it all on one thread).
static int unpack_two_threads(struct tar *t, int blob_fd, uint64_t size) {
    struct pipe p;
    memset(&p, 0, sizeof(p));
    struct reader *r = calloc(1, sizeof(*r));
    int ok = r != NULL;
    for (int i = 0; ok && i < PIPE_SLOTS; i++) ok = (p.buf[i] = malloc(CHUNK)) != NULL;
    pthread_attr_t attr;
    pthread_t th;
    if (ok) {
        pthread_mutex_init(&p.mu, NULL);
        pthread_cond_init(&p.cv, NULL);
        r->t.rootfd = t->rootfd;
        r->t.opts = t->opts;
        r->t.res = &r->res;
        r->t.pipe = &p;
        r->t.file_fd = -1;
        r->t.cache_fd = -1;
        r->pipe = &p;
        r->blob_fd = blob_fd;
        r->size = size;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 << 10);
        ok = pthread_create(&th, &attr, read_thread, r) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) {
            pthread_cond_destroy(&p.cv);
            pthread_mutex_destroy(&p.mu);
        }
    }
    if (!ok) {
        for (int i = 0; i < PIPE_SLOTS; i++) free(p.buf[i]);
        free(r);
        return 0;
    }
    for (;;) {
        pthread_mutex_lock(&p.mu);
        while (p.count == 0 && !p.ended) pthread_cond_wait(&p.cv, &p.mu);
        if (p.count == 0) {  // ended, and everything extracted
            pthread_mutex_unlock(&p.mu);
            break;
        }
        unsigned i = p.head;
        pthread_mutex_unlock(&p.mu);
        carchive_tar_feed(t, p.buf[i], p.len[i]);
        pthread_mutex_lock(&p.mu);
        p.head = (p.head + 1) % PIPE_SLOTS;
        p.count--;
        if (t->res->error) p.stopped = 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        if (t->res->error) break;
    }
    pthread_join(th, NULL);
    struct carchive_unpack_result *res = t->res;
    res->tar_size = r->res.tar_size;
    res->inflater = r->res.inflater;
    res->blob_size = r->off;
    memcpy(res->digest, r->digest, sizeof(res->digest));
    memcpy(res->diff_id, r->diff_id, sizeof(res->diff_id));
    if (res->error == 0 && r->res.error != 0) {
        res->error = r->res.error;
        memcpy(res->message, r->res.message, sizeof(res->message));
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    for (int k = 0; k < PIPE_SLOTS; k++) free(p.buf[k]);
    free(r);
    return 1;
}

// MARK: - The driver

int carchive_unpack_layer(int blob_fd, uint64_t size, int root_fd, const struct carchive_unpack_options *opts,
                          struct carchive_unpack_result *res) {
    memset(res, 0, sizeof(*res));
    struct tar t;
    memset(&t, 0, sizeof(t));
    t.rootfd = root_fd;
    t.opts = opts;
    t.res = res;
    t.state = S_HEADER;
    t.file_fd = -1;
    t.cache_fd = -1;

    struct stream s;
    memset(&s, 0, sizeof(s));
    unsigned char *in = NULL;
    void *hin = NULL;
    int two = opts->threads == 2 || (opts->threads == 0 && size >= PIPE_MIN);
    if (two && unpack_two_threads(&t, blob_fd, size)) {
        // digest, diff_id, sizes and the reader's error are in res
    } else {
        in = malloc(CHUNK);
        hin = carchive_sha256_new();
        if (in == NULL || hin == NULL) {
            carchive_fail(&t, ENOMEM, "out of memory");
            goto done;
        }
        if (carchive_stream_open(&t, &s, opts->compression)) goto done;
        res->blob_size = read_blob(&t, &s, blob_fd, size, in, hin);
    }
    if (!res->error && t.state != S_END && !(t.state == S_HEADER && t.hdr_fill == 0))
        carchive_fail(&t, EINVAL, "the tar stream ends in the middle of entry %s", t.cur.path);
    if (!res->error) carchive_set_dir_times(&t);

done:
    if (t.file_fd >= 0) close(t.file_fd);
    carchive_invalidate_cache(&t);
    if (hin) carchive_sha256_final(hin, res->digest);
    carchive_stream_close(&s, res->diff_id);  // nothing to write after the two-thread path
    free(in);
    free(t.acc);
    carchive_free_overrides(&t.next);
    for (size_t i = 0; i < t.ndirs; i++) free(t.dirs[i].path);
    free(t.dirs);
    return res->error;
}
#endif
