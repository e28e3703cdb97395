// carchive_unpack.h — unpacking one OCI image layer (tar, tar+gzip, tar+zstd) into a snapshot
// directory, as overlayfs expects it: OCI whiteouts become 0:0 character devices, opaque
// directories get trusted.overlay.opaque=y.
//
// Paranoid by construction: every path is resolved relative to the snapshot's directory fd with
// openat2(RESOLVE_BENEATH) — an absolute or escaping symlink on the way fails with EXDEV —
// entries are created with O_EXCL|O_NOFOLLOW (or their *at equivalents), metadata calls never
// follow symlinks, and `..` components, absolute names, escaping hardlinks, whiteouts through
// symlinks or of `.`/`..`, trusted.* xattrs, sparse files and archives beyond the size caps are
// refused. The digests of the compressed and uncompressed streams are computed on the way.
#ifndef CARCHIVE_UNPACK_H
#define CARCHIVE_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CARCHIVE_COMPRESSION_NONE 0
#define CARCHIVE_COMPRESSION_GZIP 1
#define CARCHIVE_COMPRESSION_ZSTD 2

struct carchive_unpack_options {
    int compression;        // CARCHIVE_COMPRESSION_*: what the media type says
    uint64_t max_bytes;     // cap on the uncompressed size (0: none)
    uint64_t max_entries;   // cap on the number of entries (0: none)
    int preserve_owner;     // chown entries (needs root)
    int allow_devices;      // create device nodes and whiteouts (needs CAP_MKNOD)
    uint64_t min_free_bytes; // stop when the root's filesystem has less free than this (0: never)
    int zlib_only;          // gzip through zlib even when ISA-L is there (comparisons, tests)
    int threads;            // 0: two (reading, extracting) for a blob of 4 MiB or more; 1 or 2: that many
};

#define CARCHIVE_INFLATER_NONE 0   // not gzip
#define CARCHIVE_INFLATER_ZLIB 1
#define CARCHIVE_INFLATER_ISAL 2

struct carchive_unpack_result {
    unsigned char digest[32];    // sha256 of the blob as read
    unsigned char diff_id[32];   // sha256 of the uncompressed tar
    uint64_t blob_size;
    uint64_t tar_size;
    uint64_t entries;
    uint64_t whiteouts;
    int inflater;                // CARCHIVE_INFLATER_*: what decompressed a gzip layer
    int error;                   // 0, or an errno describing the failure
    char message[1024];          // what was wrong, naming the entry
};

/// Unpacks `size` bytes of `blob_fd` (read from offset 0 with pread) into the directory
/// `root_fd` (normally empty). Returns 0 or the error (also in result->error). On failure the
/// directory may hold part of the layer: the caller removes it.
/// Whether ISA-L's inflater (libisal.so.2, loaded on first use) is there: gzip layers go through
/// it, and through zlib when it is not.
int carchive_isal_available(void);

int carchive_unpack_layer(int blob_fd, uint64_t size, int root_fd, const struct carchive_unpack_options *_Nonnull opts,
                       struct carchive_unpack_result *_Nonnull result);

#ifdef __cplusplus
}
#endif
#endif
