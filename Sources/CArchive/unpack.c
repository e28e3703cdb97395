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
    unsigned char *in = malloc(CHUNK);
    void *hin = carchive_sha256_new();
    if (in == NULL || hin == NULL) {
        carchive_fail(&t, ENOMEM, "out of memory");
        goto done;
    }
    if (carchive_stream_open(&t, &s, opts->compression)) goto done;

    uint64_t off = 0;
    int first = 1;
    while (off < size && !res->error) {
        size_t want = (size - off) < CHUNK ? (size_t)(size - off) : CHUNK;
        ssize_t n = pread(blob_fd, in, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            carchive_fail(&t, n == 0 ? EIO : errno, "reading the layer blob: %s",
                          n == 0 ? "it is shorter than its size" : strerror(errno));
            break;
        }
        off += (uint64_t)n;
        carchive_sha256_update(hin, in, (size_t)n);
        if (first) {
            first = 0;
            if (carchive_stream_check(&t, &s, in, (size_t)n)) break;
        }
        carchive_stream_feed(&t, &s, in, (size_t)n);
    }
    carchive_stream_finish(&t, &s);
    if (!res->error && t.state != S_END && !(t.state == S_HEADER && t.hdr_fill == 0))
        carchive_fail(&t, EINVAL, "the tar stream ends in the middle of entry %s", t.cur.path);
    if (!res->error) carchive_set_dir_times(&t);
    res->blob_size = off;

done:
    if (t.file_fd >= 0) close(t.file_fd);
    carchive_invalidate_cache(&t);
    if (hin) carchive_sha256_final(hin, res->digest);
    carchive_stream_close(&s, res->diff_id);
    free(in);
    free(t.acc);
    carchive_free_overrides(&t.next);
    for (size_t i = 0; i < t.ndirs; i++) free(t.dirs[i].path);
    free(t.dirs);
    return res->error;
}
#endif
