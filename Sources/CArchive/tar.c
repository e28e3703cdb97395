// tar.c — the tar stream (see unpack_internal.h): headers and their checksums, numeric
// fields, PAX records and GNU long names, and the state machine that hands entries and their
// data to extract.c.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CArchive needs _GNU_SOURCE"
#endif
#include "unpack_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// MARK: - Fields

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void carchive_free_overrides(struct overrides *o) {
    free(o->path);
    free(o->linkpath);
    for (size_t i = 0; i < o->nxattrs; i++) {
        free(o->xattrs[i].name);
        free(o->xattrs[i].value);
    }
    free(o->xattrs);
    memset(o, 0, sizeof(*o));
}

// Parses an octal (or GNU base-256) numeric field.
static int parse_number(const unsigned char *f, size_t len, uint64_t *out) {
    if (len > 0 && (f[0] & 0x80)) {
        // base-256: big-endian, first byte's high bit is the marker (negative values refused)
        if (f[0] & 0x40) return -1;
        uint64_t v = f[0] & 0x3f;
        for (size_t i = 1; i < len; i++) {
            if (v >> 56) return -1;
            v = (v << 8) | f[i];
        }
        *out = v;
        return 0;
    }
    uint64_t v = 0;
    size_t i = 0;
    while (i < len && (f[i] == ' ' || f[i] == 0)) i++;
    int digits = 0;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 61) return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != 0) return -1;
    *out = v;
    return 0;
}

static int is_zero_block(const unsigned char *b) {
    for (int i = 0; i < BLOCK; i++)
        if (b[i]) return 0;
    return 1;
}

static int checksum_ok(const unsigned char *h) {
    uint64_t want;
    if (parse_number(h + 148, 8, &want) < 0) return 0;
    uint64_t u = 0;
    int64_t s = 0;
    for (int i = 0; i < BLOCK; i++) {
        unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
        u += c;
        s += (signed char)c;
    }
    return want == u || (int64_t)want == s;
}

// Copies a NUL-padded header field.
static void field(char *dst, const unsigned char *src, size_t len) {
    size_t n = 0;
    while (n < len && src[n]) n++;
    memcpy(dst, src, n);
    dst[n] = 0;
}
// MARK: - PAX

#define MAX_XATTRS 256             // per entry
#define MAX_XATTR_VALUE (64 << 10) // the kernel's limit for one value

static int add_xattr(struct tar *t, struct overrides *o, const char *name, const char *value, size_t len) {
    if (strncmp(name, "trusted.", 8) == 0)
        return carchive_fail(t, EPERM, "a layer may not set trusted.* xattrs (%s): they steer overlayfs", name);
    if (o->nxattrs >= MAX_XATTRS || len > MAX_XATTR_VALUE)
        return carchive_fail(t, EFBIG, "too many or too large xattrs for one entry (after %s)", t->cur.path);
    struct xattr *x = realloc(o->xattrs, (o->nxattrs + 1) * sizeof(*x));
    if (x == NULL) return carchive_fail(t, ENOMEM, "out of memory");
    o->xattrs = x;
    x[o->nxattrs].name = strdup(name);
    x[o->nxattrs].value = malloc(len ? len : 1);
    if (x[o->nxattrs].name == NULL || x[o->nxattrs].value == NULL) return carchive_fail(t, ENOMEM, "out of memory");
    memcpy(x[o->nxattrs].value, value, len);
    x[o->nxattrs].len = len;
    o->nxattrs++;
    return 0;
}

static int parse_time(const char *v, size_t len, struct timespec *ts) {
    char buf[64];
    if (len >= sizeof(buf)) return -1;
    memcpy(buf, v, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long long sec = strtoll(buf, &end, 10);
    if (errno || end == buf) return -1;
    long nsec = 0;
    if (*end == '.') {
        end++;
        int digits = 0;
        while (*end >= '0' && *end <= '9') {
            if (digits < 9) {
                nsec = nsec * 10 + (*end - '0');
                digits++;
            }
            end++;
        }
        while (digits++ < 9) nsec *= 10;
    }
    if (*end) return -1;
    if (buf[0] == '-' && nsec > 0) {
        // "-1.5" is 1.5 s before the epoch: -2 s + 0.5 s.
        sec -= 1;
        nsec = 1000000000L - nsec;
    }
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = nsec;
    return 0;
}

static int parse_pax(struct tar *t, struct overrides *o) {
    size_t i = 0;
    while (i < t->acc_len) {
        // "<len> <key>=<value>\n"
        size_t j = i;
        size_t reclen = 0;
        int digits = 0;
        while (j < t->acc_len && t->acc[j] >= '0' && t->acc[j] <= '9' && digits < 10) {
            reclen = reclen * 10 + (size_t)(t->acc[j++] - '0');
            digits++;
        }
        // A record is "<len> <key>=<value>\n" and lies entirely within the header data.
        if (j >= t->acc_len || t->acc[j] != ' ' || reclen == 0 || reclen > t->acc_len - i || j + 1 >= i + reclen ||
            t->acc[i + reclen - 1] != '\n')
            return carchive_fail(t, EINVAL, "malformed PAX header (after entry %s)", t->cur.path[0] ? t->cur.path : "<start>");
        const char *key = t->acc + j + 1;
        const char *eq = memchr(key, '=', (size_t)(t->acc + i + reclen - 1 - key));
        if (eq == NULL) return carchive_fail(t, EINVAL, "malformed PAX record");
        size_t klen = (size_t)(eq - key);
        const char *val = eq + 1;
        size_t vlen = (size_t)(t->acc + i + reclen - 1 - val);
        char k[512];  // "SCHILY.xattr." + an xattr name of up to 255 bytes
        if (klen >= sizeof(k)) return carchive_fail(t, EINVAL, "PAX key too long");
        memcpy(k, key, klen);
        k[klen] = 0;
        if (strcmp(k, "path") == 0 || strcmp(k, "linkpath") == 0) {
            char *s = malloc(vlen + 1);
            if (s == NULL) return carchive_fail(t, ENOMEM, "out of memory");
            memcpy(s, val, vlen);
            s[vlen] = 0;
            if (strlen(s) != vlen) {
                free(s);
                return carchive_fail(t, EINVAL, "PAX %s contains a NUL byte", k);
            }
            char **slot = k[0] == 'p' ? &o->path : &o->linkpath;
            free(*slot);
            *slot = s;
        } else if (strcmp(k, "size") == 0 || strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0) {
            char num[32];
            if (vlen == 0 || vlen >= sizeof(num)) return carchive_fail(t, EINVAL, "PAX %s is malformed", k);
            memcpy(num, val, vlen);
            num[vlen] = 0;
            char *end;
            errno = 0;
            unsigned long long n = strtoull(num, &end, 10);
            if (errno || *end || num[0] == '-') return carchive_fail(t, EINVAL, "PAX %s is malformed", k);
            if (k[0] == 's') {
                o->size = n;
                o->has_size = 1;
            } else if (k[0] == 'u') {
                o->uid = n;
                o->has_uid = 1;
            } else {
                o->gid = n;
                o->has_gid = 1;
            }
        } else if (strcmp(k, "mtime") == 0) {
            if (parse_time(val, vlen, &o->mtime) < 0) return carchive_fail(t, EINVAL, "PAX mtime is malformed");
            o->has_mtime = 1;
        } else if (strncmp(k, "SCHILY.xattr.", 13) == 0) {
            if (add_xattr(t, o, k + 13, val, vlen)) return t->res->error;
        } else if (strncmp(k, "GNU.sparse.", 11) == 0) {
            return carchive_fail(t, ENOTSUP, "sparse files are not supported (entry after %s)", t->cur.path);
        }
        // Other keys (atime, ctime, uname, gname, comment, LIBARCHIVE.*) do not matter here.
        i += reclen;
    }
    return 0;
}

// MARK: - Headers

static int handle_header(struct tar *t) {
    const unsigned char *h = t->hdr;
    if (is_zero_block(h)) {
        if (++t->zero_blocks >= 2) t->state = S_END;
        return 0;
    }
    if (t->zero_blocks) return carchive_fail(t, EINVAL, "a tar header follows a single zero block (corrupt archive)");
    if (!checksum_ok(h)) return carchive_fail(t, EINVAL, "corrupt tar header (bad checksum) after entry %s", t->cur.path);

    char type = (char)h[156];
    uint64_t size;
    if (parse_number(h + 124, 12, &size) < 0) return carchive_fail(t, EINVAL, "corrupt tar header (size)");

    // Metadata-only headers.
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
        if (size > MAX_META) return carchive_fail(t, EFBIG, "a %c header of %llu bytes is over the cap", type, (unsigned long long)size);
        t->kind = type == 'x' ? D_PAX : type == 'g' ? D_PAX_GLOBAL : type == 'L' ? D_LONGNAME : D_LONGLINK;
        if (t->kind == D_PAX_GLOBAL) {
            t->kind = D_SKIP;
            t->remaining = size;
            t->pad = (BLOCK - size % BLOCK) % BLOCK;
            t->state = size ? S_DATA : (t->pad ? S_PAD : S_HEADER);
            return 0;
        }
        free(t->acc);
        t->acc = malloc(size + 1);
        if (t->acc == NULL) return carchive_fail(t, ENOMEM, "out of memory");
        t->acc_len = 0;
        t->remaining = size;
        t->pad = (BLOCK - size % BLOCK) % BLOCK;
        t->state = size ? S_DATA : (t->pad ? S_PAD : S_HEADER);
        if (size == 0) {
            t->acc[0] = 0;
            if (t->kind == D_PAX || t->kind == D_PAX_GLOBAL) return 0;
        }
        return 0;
    }
    if (type == 'S') return carchive_fail(t, ENOTSUP, "sparse files are not supported");
    if (type == 'V' || type == 'M' || type == 'N')
        return carchive_fail(t, ENOTSUP, "tar entry type '%c' is not supported", type);

    struct entry *e = &t->cur;
    memset(e, 0, offsetof(struct entry, xattrs));
    e->xattrs = NULL;
    e->nxattrs = 0;
    e->type = type;
    char raw[PATH_MAX], rawlink[PATH_MAX];
    int ustar = memcmp(h + 257, "ustar\0", 6) == 0;
    if (t->next.path) {
        if (strlen(t->next.path) >= sizeof(raw)) return carchive_fail(t, ENAMETOOLONG, "an entry name is longer than PATH_MAX");
        snprintf(raw, sizeof(raw), "%s", t->next.path);
    } else {
        char name[101], prefix[156];
        field(name, h, 100);
        prefix[0] = 0;
        if (ustar) field(prefix, h + 345, 155);
        if (prefix[0])
            snprintf(raw, sizeof(raw), "%s/%s", prefix, name);
        else
            snprintf(raw, sizeof(raw), "%s", name);
    }
    if (t->next.linkpath) {
        if (strlen(t->next.linkpath) >= sizeof(rawlink)) return carchive_fail(t, ENAMETOOLONG, "entry %s: its link target is longer than PATH_MAX", raw);
        snprintf(rawlink, sizeof(rawlink), "%s", t->next.linkpath);
    } else
        field(rawlink, h + 157, 100);
    if (raw[0] == 0) return carchive_fail(t, EINVAL, "an entry has an empty name");
    const char *why = NULL;
    if (carchive_normalize(raw, e->path, sizeof(e->path), &why) < 0) return carchive_fail(t, EPERM, "entry %s %s", raw, why);
    snprintf(e->link, sizeof(e->link), "%s", rawlink);

    uint64_t mode, uid, gid, mtime, maj = 0, min = 0;
    if (parse_number(h + 100, 8, &mode) < 0 || parse_number(h + 108, 8, &uid) < 0 || parse_number(h + 116, 8, &gid) < 0 ||
        parse_number(h + 136, 12, &mtime) < 0)
        return carchive_fail(t, EINVAL, "entry %s: corrupt numeric field", e->path);
    if (type == '3' || type == '4') {
        if (parse_number(h + 329, 8, &maj) < 0 || parse_number(h + 337, 8, &min) < 0)
            return carchive_fail(t, EINVAL, "entry %s: corrupt device numbers", e->path);
    }
    e->mode = (unsigned int)(mode & 07777);
    e->uid = t->next.has_uid ? t->next.uid : uid;
    e->gid = t->next.has_gid ? t->next.gid : gid;
    e->mtime = t->next.has_mtime ? t->next.mtime : (struct timespec){(time_t)mtime, 0};
    e->size = t->next.has_size ? t->next.size : size;
    e->devmajor = (unsigned int)maj;
    e->devminor = (unsigned int)min;
    e->xattrs = t->next.xattrs;
    e->nxattrs = t->next.nxattrs;
    if (e->uid > 0xFFFFFFFEULL || e->gid > 0xFFFFFFFEULL) return carchive_fail(t, EINVAL, "entry %s: uid or gid out of range", e->path);

    // Links, devices, directories and fifos carry no data whatever their size field says
    // (as Go's archive/tar reads them): skipping "their" data would hide entries from other
    // readers.
    int has_data = (type == '0' || type == '\0' || type == '7');
    t->kind = D_SKIP;
    t->file_fd = -1;
    if (carchive_start_entry(t)) return t->res->error;

    t->remaining = has_data ? e->size : 0;
    uint64_t total = t->remaining;
    t->pad = (BLOCK - total % BLOCK) % BLOCK;
    if (total) {
        t->state = S_DATA;
    } else {
        if (t->kind == D_FILE && carchive_finish_file(t)) return t->res->error;
        t->state = t->pad ? S_PAD : S_HEADER;
    }
    // The next-entry overrides are used up; xattrs stay referenced by cur until done.
    return 0;
}

static int end_of_data(struct tar *t) {
    switch (t->kind) {
    case D_FILE:
        if (carchive_finish_file(t)) return t->res->error;
        break;
    case D_PAX:
        t->acc[t->acc_len] = 0;
        if (parse_pax(t, &t->next)) return t->res->error;
        break;
    case D_PAX_GLOBAL:
        // Ignored, as docker and containerd do: a global header must not rename, re-own or
        // re-stamp every later entry.
        break;
    case D_LONGNAME:
    case D_LONGLINK: {
        t->acc[t->acc_len] = 0;
        char **slot = t->kind == D_LONGNAME ? &t->next.path : &t->next.linkpath;
        free(*slot);
        *slot = strdup(t->acc);
        if (*slot == NULL) return carchive_fail(t, ENOMEM, "out of memory");
        break;
    }
    case D_SKIP:
        break;
    }
    return 0;
}

// After a real entry's header, data and padding: drop the per-entry overrides.
static void entry_done(struct tar *t) {
    if (t->kind == D_PAX || t->kind == D_PAX_GLOBAL || t->kind == D_LONGNAME || t->kind == D_LONGLINK) return;
    carchive_free_overrides(&t->next);
    t->cur.xattrs = NULL;
    t->cur.nxattrs = 0;
}

// Feeds uncompressed tar bytes to the state machine.
int carchive_tar_feed(struct tar *t, const unsigned char *p, size_t n) {
    while (n > 0) {
        switch (t->state) {
        case S_END:
            return 0;  // the rest (padding after the end marker) is only hashed
        case S_HEADER: {
            size_t want = BLOCK - t->hdr_fill;
            size_t take = n < want ? n : want;
            memcpy(t->hdr + t->hdr_fill, p, take);
            t->hdr_fill += take;
            p += take;
            n -= take;
            if (t->hdr_fill == BLOCK) {
                t->hdr_fill = 0;
                if (handle_header(t)) return t->res->error;
                if (t->state == S_HEADER && !is_zero_block(t->hdr)) entry_done(t);
            }
            break;
        }
        case S_DATA: {
            size_t take = (uint64_t)n < t->remaining ? n : (size_t)t->remaining;
            if (t->kind == D_FILE) {
                if (write_all(t->file_fd, p, take) < 0)
                    return carchive_fail(t, errno, "entry %s: write: %s", t->cur.path, strerror(errno));
            } else if (t->kind != D_SKIP) {
                memcpy(t->acc + t->acc_len, p, take);
                t->acc_len += take;
            }
            p += take;
            n -= take;
            t->remaining -= take;
            if (t->remaining == 0) {
                if (end_of_data(t)) return t->res->error;
                t->state = t->pad ? S_PAD : S_HEADER;
                if (t->state == S_HEADER) entry_done(t);
            }
            break;
        }
        case S_PAD: {
            size_t take = (uint64_t)n < t->pad ? n : (size_t)t->pad;
            p += take;
            n -= take;
            t->pad -= take;
            if (t->pad == 0) {
                t->state = S_HEADER;
                entry_done(t);
            }
            break;
        }
        }
    }
    return 0;
}
#endif
