// digest.c — SHA-256 for content addresses (see carchive_digest.h). Parent side only.
#if defined(__linux__)
#include "carchive_digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

void *carchive_sha256_new(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return NULL;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void carchive_sha256_update(void *ctx, const void *data, size_t len) { EVP_DigestUpdate((EVP_MD_CTX *)ctx, data, len); }

void carchive_sha256_final(void *ctx, unsigned char out[32]) {
    unsigned int n = 32;
    EVP_DigestFinal_ex((EVP_MD_CTX *)ctx, out, &n);
    EVP_MD_CTX_free((EVP_MD_CTX *)ctx);
}

static int hash_range(int in_fd, uint64_t offset, uint64_t len, int out_fd, unsigned char out[32]) {
    void *ctx = carchive_sha256_new();
    if (ctx == NULL) {
        errno = ENOMEM;
        return -1;
    }
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        carchive_sha256_final(ctx, out);
        errno = ENOMEM;
        return -1;
    }
    uint64_t done = 0;
    int rc = 0;
    while (done < len) {
        size_t want = (len - done) < cap ? (size_t)(len - done) : cap;
        ssize_t n = pread(in_fd, buf, want, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            rc = -1;
            break;
        }
        carchive_sha256_update(ctx, buf, (size_t)n);
        if (out_fd >= 0) {
            ssize_t w = 0;
            while (w < n) {
                ssize_t k = write(out_fd, buf + w, (size_t)(n - w));
                if (k < 0 && errno == EINTR) continue;
                if (k <= 0) {
                    rc = -1;
                    break;
                }
                w += k;
            }
            if (rc < 0) break;
        }
        done += (uint64_t)n;
    }
    int saved = errno;
    free(buf);
    carchive_sha256_final(ctx, out);
    errno = saved;
    return rc;
}

int carchive_sha256_fd(int fd, uint64_t offset, uint64_t len, unsigned char out[32]) {
    return hash_range(fd, offset, len, -1, out);
}

int carchive_copy_sha256(int in_fd, uint64_t offset, uint64_t len, int out_fd, unsigned char out[32]) {
    return hash_range(in_fd, offset, len, out_fd, out);
}
#endif
