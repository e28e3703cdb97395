// stream.c — the layer blob's bytes on their way to the tar parser (see unpack_internal.h): the
// media type's claim checked against the data's magic bytes, gzip (ISA-L or zlib, concatenated
// members) and zstd decompression, and the uncompressed side: its size cap (decompression bombs)
// and its digest, the diff_id.
//
// Inflating is the CPU floor of a pull. ISA-L's igzip inflates ~3.5x as fast as zlib here (a
// 46 MB layer: 0.22 s against 0.79 s). Debian ships it only as a shared library (libisal2, no
// libisal.a), and husk is a static executable, so it is loaded with dlopen while a gzip layer
// is being unpacked: libisal needs nothing from libc but memcpy-like calls and allocates nothing
// (the state is ours). It brings a second libc.so.6 with it (~1 MB resident, ~220 KB of it
// private), which a long-lived supervisor must not keep: the last stream to finish unloads it.
// Without it, or with zlib_only, zlib inflates as before; both check the gzip CRC-32 and length
// of every member.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CArchive needs _GNU_SOURCE"
#endif
#include "unpack_internal.h"
#include "carchive_digest.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#if __has_include(<isa-l/igzip_lib.h>)
#include <isa-l/igzip_lib.h>
#define HAVE_ISAL_HEADER 1
#else
#define HAVE_ISAL_HEADER 0
#endif

#if HAVE_ISAL_HEADER
// Loaded while isal_users > 0 (under isal_mu); the pointers do not change while a stream uses them.
static pthread_mutex_t isal_mu = PTHREAD_MUTEX_INITIALIZER;
static void *isal_handle;
static int isal_users;
static int isal_absent;  // dlopen failed: not tried again by this process
static void (*isal_init_fn)(struct inflate_state *);
static int (*isal_inflate_fn)(struct inflate_state *);

/// One more user of ISA-L, loading it if needed: 1, or 0 when it is not there.
static int isal_acquire(void) {
    pthread_mutex_lock(&isal_mu);
    if (isal_handle == NULL && !isal_absent) {
        void *h = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
        void *init = h ? dlsym(h, "isal_inflate_init") : NULL;
        void *inflate = h ? dlsym(h, "isal_inflate") : NULL;
        if (init != NULL && inflate != NULL) {
            isal_handle = h;
            isal_init_fn = (void (*)(struct inflate_state *))init;
            isal_inflate_fn = (int (*)(struct inflate_state *))inflate;
        } else {
            if (h) dlclose(h);
            isal_absent = 1;
        }
    }
    int ok = isal_handle != NULL;
    if (ok) isal_users++;
    pthread_mutex_unlock(&isal_mu);
    return ok;
}

/// The end of one use; the last unloads the library (and the libc it brought).
static void isal_release(void) {
    pthread_mutex_lock(&isal_mu);
    if (--isal_users == 0) {
        dlclose(isal_handle);
        isal_handle = NULL;
        isal_init_fn = NULL;
        isal_inflate_fn = NULL;
    }
    pthread_mutex_unlock(&isal_mu);
}

static const char *isal_error(int r) {
    switch (r) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "incorrect gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect data check";
    case ISAL_NEED_DICT: return "a preset dictionary is needed";
    default: return "inflate failed";
    }
}

/// Starts (or, for the next gzip member, restarts) ISA-L on gzip data: header, deflate, trailer.
static void isal_start(struct inflate_state *st) {
    uint8_t *in = st->next_in;
    uint32_t avail = st->avail_in;
    isal_init_fn(st);
    st->crc_flag = ISAL_GZIP;
    st->next_in = in;
    st->avail_in = avail;
}
#else
static int isal_acquire(void) { return 0; }
#endif

int carchive_isal_available(void) {
#if HAVE_ISAL_HEADER
    if (!isal_acquire()) return 0;
    isal_release();
    return 1;
#else
    return 0;
#endif
}

/// Every SPACE_CHECK uncompressed bytes, the free space of the snapshot's filesystem is checked
/// against the reserve: a layer that would fill the disk stops before it does.
#define SPACE_CHECK (16ull << 20)

static int check_space(struct tar *t) {
    struct statvfs vfs;
    if (fstatvfs(t->rootfd, &vfs) != 0) return 0;  // unknown: the cap still holds
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (avail < t->opts->min_free_bytes)
        return carchive_fail(t, ENOSPC,
                             "the image store's filesystem has %llu MiB free, under its reserve of %llu MiB, after %llu MiB "
                             "of this layer: refused (free space, or remove images with husk rmi)",
                             (unsigned long long)(avail >> 20), (unsigned long long)(t->opts->min_free_bytes >> 20),
                             (unsigned long long)(t->res->tar_size >> 20));
    return 0;
}

static int feed_uncompressed(struct tar *t, void *hash, const unsigned char *p, size_t n) {
    t->res->tar_size += n;
    if (t->opts->max_bytes && t->res->tar_size > t->opts->max_bytes)
        return carchive_fail(t, EFBIG, "the layer unpacks to more than %llu bytes (the cap): refused as a decompression bomb",
                             (unsigned long long)t->opts->max_bytes);
    if (t->opts->min_free_bytes && t->res->tar_size >= t->next_space_check) {
        t->next_space_check = t->res->tar_size + SPACE_CHECK;
        int rc = check_space(t);
        if (rc) return rc;
    }
    carchive_sha256_update(hash, p, n);
    if (t->res->error) return t->res->error;
    if (t->pipe) {
        if (carchive_pipe_push(t->pipe, p, n)) return carchive_fail(t, ECANCELED, "the extraction stopped");
        return 0;
    }
    return carchive_tar_feed(t, p, n);
}

/// Starts the decompressor. `s` is zeroed by the caller, so that carchive_stream_close is safe
/// whatever happens here.
int carchive_stream_open(struct tar *t, struct stream *s, int compression) {
    s->compression = compression;
    s->out = malloc(CHUNK);
    s->hash = carchive_sha256_new();
    if (s->out == NULL || s->hash == NULL) return carchive_fail(t, ENOMEM, "out of memory");
    if (compression == CARCHIVE_COMPRESSION_GZIP && !t->opts->zlib_only && isal_acquire()) {
#if HAVE_ISAL_HEADER
        s->isal = calloc(1, sizeof(struct inflate_state));
        if (s->isal == NULL) {
            isal_release();
            return carchive_fail(t, ENOMEM, "out of memory");
        }
        isal_start(s->isal);
        t->res->inflater = CARCHIVE_INFLATER_ISAL;
#endif
    } else if (compression == CARCHIVE_COMPRESSION_GZIP) {
        t->res->inflater = CARCHIVE_INFLATER_ZLIB;
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) return carchive_fail(t, ENOMEM, "cannot start gzip");
        s->zinit = 1;
    } else if (compression == CARCHIVE_COMPRESSION_ZSTD) {
        s->zd = ZSTD_createDStream();
        if (s->zd == NULL || ZSTD_isError(ZSTD_initDStream(s->zd))) return carchive_fail(t, ENOMEM, "cannot start zstd");
    }
    return 0;
}

/// The first bytes of the blob must be what the media type says: a tar layer that is really
/// compressed, or the other way round, is refused.
int carchive_stream_check(struct tar *t, const struct stream *s, const unsigned char *in, size_t n) {
    int gz = n >= 2 && in[0] == 0x1f && in[1] == 0x8b;
    int zst = n >= 4 && in[0] == 0x28 && in[1] == 0xb5 && in[2] == 0x2f && in[3] == 0xfd;
    const char *declared = s->compression == CARCHIVE_COMPRESSION_GZIP   ? "tar+gzip"
                           : s->compression == CARCHIVE_COMPRESSION_ZSTD ? "tar+zstd"
                                                                         : "tar";
    if ((s->compression == CARCHIVE_COMPRESSION_GZIP && !gz) || (s->compression == CARCHIVE_COMPRESSION_ZSTD && !zst) ||
        (s->compression == CARCHIVE_COMPRESSION_NONE && (gz || zst)))
        return carchive_fail(t, EINVAL, "the media type says %s but the data is %s", declared,
                             gz ? "gzip" : zst ? "zstd" : "not compressed");
    return 0;
}

/// What follows the end of a gzip member (`n` > 0 bytes at `p`): 1 when another member starts
/// (concatenated gzip), 0 when it is all zeros (tolerated, dropped), -1 (failed) for anything
/// else.
static int next_member(struct tar *t, const unsigned char *p, size_t n) {
    if (p[0] == 0) {
        size_t k = 0;
        while (k < n && p[k] == 0) k++;
        if (k == n) return 0;
    } else if (p[0] == 0x1f && (n == 1 || p[1] == 0x8b)) {
        return 1;
    }
    carchive_fail(t, EINVAL, "garbage after the end of the gzip stream");
    return -1;
}

/// Decompresses `n` bytes of the blob and feeds the result to the tar parser. Failures are in
/// t->res->error.
void carchive_stream_feed(struct tar *t, struct stream *s, unsigned char *in, size_t n) {
    unsigned char *out = s->out;
    if (s->compression == CARCHIVE_COMPRESSION_NONE) {
        feed_uncompressed(t, s->hash, in, n);
    } else if (s->isal != NULL) {
#if HAVE_ISAL_HEADER
        struct inflate_state *st = s->isal;
        st->next_in = in;
        st->avail_in = (uint32_t)n;
        while (!t->res->error) {
            if (s->ended) {
                if (st->avail_in == 0) break;
                int next = next_member(t, st->next_in, st->avail_in);
                if (next <= 0) {
                    if (next == 0) st->avail_in = 0;
                    break;
                }
                isal_start(st);
                s->ended = 0;
            }
            st->next_out = out;
            st->avail_out = CHUNK;
            int r = isal_inflate_fn(st);
            if (r < 0 || r == ISAL_NEED_DICT) {
                carchive_fail(t, EINVAL, "the gzip data is corrupt: %s", isal_error(r));
                break;
            }
            size_t produced = CHUNK - st->avail_out;
            if (produced) feed_uncompressed(t, s->hash, out, produced);
            if (st->block_state == ISAL_BLOCK_FINISH) s->ended = 1;
            else if (st->avail_in == 0 && produced < CHUNK) break;  // wants more input
        }
#endif
    } else if (s->compression == CARCHIVE_COMPRESSION_GZIP) {
        z_stream *zs = &s->zs;
        zs->next_in = in;
        zs->avail_in = (uInt)n;
        while (zs->avail_in > 0 && !t->res->error) {
            if (s->ended) {
                int next = next_member(t, zs->next_in, zs->avail_in);
                if (next <= 0) {
                    if (next == 0) zs->avail_in = 0;
                    break;
                }
                inflateReset(zs);
                s->ended = 0;
            }
            zs->next_out = out;
            zs->avail_out = CHUNK;
            int r = inflate(zs, Z_NO_FLUSH);
            if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
                carchive_fail(t, EINVAL, "the gzip data is corrupt: %s", zs->msg ? zs->msg : "inflate failed");
                break;
            }
            size_t produced = CHUNK - zs->avail_out;
            if (produced) feed_uncompressed(t, s->hash, out, produced);
            if (r == Z_STREAM_END) s->ended = 1;
            if (r == Z_BUF_ERROR && produced == 0) break;
        }
    } else {
        ZSTD_inBuffer ib = {in, n, 0};
        while (ib.pos < ib.size && !t->res->error) {
            ZSTD_outBuffer ob = {out, CHUNK, 0};
            size_t r = ZSTD_decompressStream(s->zd, &ob, &ib);
            if (ZSTD_isError(r)) {
                carchive_fail(t, EINVAL, "the zstd data is corrupt: %s", ZSTD_getErrorName(r));
                break;
            }
            if (ob.pos) feed_uncompressed(t, s->hash, out, ob.pos);
            s->ended = r == 0;
        }
    }
}

/// After the last byte of the blob: flushes what the decoder still holds, and refuses a
/// truncated gzip or zstd stream.
void carchive_stream_finish(struct tar *t, struct stream *s) {
    if (!t->res->error && s->compression == CARCHIVE_COMPRESSION_GZIP && !s->ended)
        carchive_fail(t, EINVAL, "the gzip stream is truncated");
    if (!t->res->error && s->compression == CARCHIVE_COMPRESSION_ZSTD) {
        // Flush what the decoder still holds.
        for (;;) {
            ZSTD_inBuffer ib = {NULL, 0, 0};
            ZSTD_outBuffer ob = {s->out, CHUNK, 0};
            size_t r = ZSTD_decompressStream(s->zd, &ob, &ib);
            if (ZSTD_isError(r)) {
                carchive_fail(t, EINVAL, "the zstd data is corrupt: %s", ZSTD_getErrorName(r));
                break;
            }
            if (ob.pos) feed_uncompressed(t, s->hash, s->out, ob.pos);
            if (ob.pos == 0) break;
        }
        if (!t->res->error && !s->ended) carchive_fail(t, EINVAL, "the zstd stream is truncated");
    }
}

/// Frees the decompressor and writes the digest of the uncompressed tar.
void carchive_stream_close(struct stream *s, unsigned char diff_id[32]) {
    if (s->hash) carchive_sha256_final(s->hash, diff_id);
    if (s->zinit) inflateEnd(&s->zs);
#if HAVE_ISAL_HEADER
    if (s->isal) {
        free(s->isal);
        isal_release();
    }
#endif
    if (s->zd) ZSTD_freeDStream(s->zd);
    free(s->out);
}
#endif
