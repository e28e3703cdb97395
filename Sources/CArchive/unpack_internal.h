// unpack_internal.h — what the unpacker's files share; not part of CArchive's interface.
// tar.c parses the tar stream, extract.c creates its entries safely beneath the snapshot's
// directory fd, stream.c checks and decompresses the blob, unpack.c drives them. All of it runs
// in the parent (any thread); it allocates, so it is never called between clone3 and execve.
#ifndef CARCHIVE_UNPACK_INTERNAL_H
#define CARCHIVE_UNPACK_INTERNAL_H

#include "carchive_unpack.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

struct inflate_state;
struct pipe;

#define BLOCK 512
#define CHUNK (1 << 20)
#define MAX_META (1 << 20)  // PAX headers and GNU long names

enum data_kind { D_SKIP, D_FILE, D_PAX, D_PAX_GLOBAL, D_LONGNAME, D_LONGLINK };
enum state { S_HEADER, S_DATA, S_PAD, S_END };

struct xattr {
    char *name;
    char *value;
    size_t len;
};

// Overrides from PAX ('x', for the next entry) and GNU long names.
struct overrides {
    char *path;
    char *linkpath;
    int has_size, has_uid, has_gid, has_mtime;
    uint64_t size;
    uint64_t uid, gid;
    struct timespec mtime;
    struct xattr *xattrs;
    size_t nxattrs;
};

struct entry {
    char path[PATH_MAX];  // normalised, relative ("" is the root)
    char link[PATH_MAX];
    char type;
    unsigned int mode;
    uint64_t uid, gid, size;
    struct timespec mtime;
    unsigned int devmajor, devminor;
    struct xattr *xattrs;  // borrowed from the overrides
    size_t nxattrs;
};

struct dirtime {
    char *path;
    struct timespec mtime;
    unsigned int mode;
    int mode_set;
};

struct tar {
    int rootfd;
    const struct carchive_unpack_options *opts;
    struct carchive_unpack_result *res;
    enum state state;
    unsigned char hdr[BLOCK];
    size_t hdr_fill;
    uint64_t remaining, pad;
    enum data_kind kind;
    int file_fd;
    char *acc;
    size_t acc_len;
    struct overrides next;
    struct entry cur;
    int zero_blocks;
    char cache_path[PATH_MAX];
    int cache_fd;
    struct dirtime *dirs;
    size_t ndirs, capdirs;
    uint64_t next_space_check;  // tar_size at which the free space is checked again
    struct pipe *pipe;          // the reading side of a big layer: tar bytes go here (unpack.c)
};

struct stream {
    int compression;    // CARCHIVE_COMPRESSION_*
    z_stream zs;
    int zinit;
    struct inflate_state *isal;  // ISA-L's gzip inflater, when it is used (else zs)
    ZSTD_DStream *zd;
    int ended;           // the gzip member or the zstd frame is complete
    unsigned char *out;  // CHUNK bytes of uncompressed data
    void *hash;          // sha256 of the uncompressed tar (the diff_id)
};

// unpack.c: records the first failure in the result (later ones are dropped); returns its errno.
__attribute__((format(printf, 3, 4))) int carchive_fail(struct tar *t, int err, const char *fmt, ...);

// unpack.c: hands tar bytes from the reading thread to the extracting one; the error of a
// stopped extractor.
int carchive_pipe_push(struct pipe *p, const unsigned char *data, size_t n);

// tar.c: feeds uncompressed tar bytes to the state machine.
int carchive_tar_feed(struct tar *t, const unsigned char *p, size_t n);
void carchive_free_overrides(struct overrides *o);

// extract.c: archive paths, entries, deferred directory metadata.
int carchive_normalize(const char *in, char *out, size_t cap, const char **why);
int carchive_start_entry(struct tar *t);
int carchive_finish_file(struct tar *t);
void carchive_set_dir_times(struct tar *t);
void carchive_invalidate_cache(struct tar *t);

// stream.c: the blob's bytes, compressed as opts->compression says, to the tar parser.
int carchive_stream_open(struct tar *t, struct stream *s, int compression);
int carchive_stream_check(struct tar *t, const struct stream *s, const unsigned char *p, size_t n);
void carchive_stream_feed(struct tar *t, struct stream *s, unsigned char *p, size_t n);
void carchive_stream_finish(struct tar *t, struct stream *s);
void carchive_stream_close(struct stream *s, unsigned char diff_id[32]);

#endif
