// carchive_digest.h — SHA-256 through OpenSSL's libcrypto (SHA-NI where the CPU has it).
#ifndef CARCHIVE_DIGEST_H
#define CARCHIVE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A streaming SHA-256 context, or NULL when out of memory.
void *_Nullable carchive_sha256_new(void);
void carchive_sha256_update(void *_Nonnull ctx, const void *_Nonnull data, size_t len);
/// Writes the digest and frees the context.
void carchive_sha256_final(void *_Nonnull ctx, unsigned char out[_Nonnull 32]);
/// Hashes `len` bytes of `fd` from `offset` (pread). Returns 0, or -1 with errno set (EIO for
/// a short file).
int carchive_sha256_fd(int fd, uint64_t offset, uint64_t len, unsigned char out[_Nonnull 32]);
/// Copies `len` bytes of `in_fd` from `offset` to `out_fd` (at its position) while hashing
/// them. Returns 0, or -1 with errno set.
int carchive_copy_sha256(int in_fd, uint64_t offset, uint64_t len, int out_fd, unsigned char out[_Nonnull 32]);

#ifdef __cplusplus
}
#endif
#endif
