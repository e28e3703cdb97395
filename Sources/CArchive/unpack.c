// unpack.c — layer extraction (see carchive_unpack.h). Runs in the parent (any thread); it
// allocates, so it is never called between clone3 and execve.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CArchive needs _GNU_SOURCE"
#endif
#include "carchive_unpack.h"
#include "carchive_digest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

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
};

// MARK: - Errors

__attribute__((format(printf, 3, 4))) static int fail(struct tar *t, int err, const char *fmt, ...) {
    if (t->res->error == 0) {
        t->res->error = err ? err : EINVAL;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->res->message, sizeof(t->res->message), fmt, ap);
        va_end(ap);
    }
    return t->res->error;
}

// MARK: - Small helpers

static long sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags | O_CLOEXEC;
    how.resolve = resolve;
    long r;
    do {
        r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    } while (r < 0 && (errno == EAGAIN || errno == EINTR));
    return r;
}

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

static void free_overrides(struct overrides *o) {
    free(o->path);
    free(o->linkpath);
    for (size_t i = 0; i < o->nxattrs; i++) {
        free(o->xattrs[i].name);
        free(o->xattrs[i].value);
    }
    free(o->xattrs);
    memset(o, 0, sizeof(*o));
}

static void invalidate_cache(struct tar *t) {
    if (t->cache_fd >= 0) close(t->cache_fd);
    t->cache_fd = -1;
    t->cache_path[0] = 0;
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

/// Normalises an archive path: "./a//b/" -> "a/b". Absolute names and ".." are refused.
/// Returns 0 or -1 with why set.
static int normalize(const char *in, char *out, size_t cap, const char **why) {
    if (in[0] == '/') {
        *why = "is an absolute path";
        return -1;
    }
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *s = p;
        while (*p && *p != '/') p++;
        size_t len = (size_t)(p - s);
        if (len == 1 && s[0] == '.') continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            *why = "contains ..";
            return -1;
        }
        if (len > NAME_MAX) {
            *why = "has a component longer than NAME_MAX";
            return -1;
        }
        if (o + len + 2 > cap) {
            *why = "is too long";
            return -1;
        }
        if (o) out[o++] = '/';
        memcpy(out + o, s, len);
        o += len;
    }
    out[o] = 0;
    return 0;
}

static void split(const char *path, char *parent, const char **name) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        parent[0] = 0;
        *name = path;
    } else {
        size_t n = (size_t)(slash - path);
        memcpy(parent, path, n);
        parent[n] = 0;
        *name = slash + 1;
    }
}

// MARK: - Resolving parents inside the layer

/// An O_PATH fd of directory `parent` (relative to the root), creating missing directories
/// (0755, like implicit parents in docker and containerd). With `no_symlinks`, no symlink may
/// be on the way at all (whiteouts); otherwise in-layer relative symlinks are followed but
/// nothing may leave the layer. The fd belongs to the cache: do not close it.
static int parent_fd(struct tar *t, const char *parent, int no_symlinks, const char *entry) {
    if (parent[0] == 0) return t->rootfd;
    if (!no_symlinks && t->cache_fd >= 0 && strcmp(t->cache_path, parent) == 0) return t->cache_fd;
    uint64_t resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
    int fd = (int)sys_openat2(t->rootfd, parent, O_PATH | O_DIRECTORY, resolve);
    if (fd < 0 && errno == ENOENT) {
        // Create the missing components one by one, each resolved from the root again.
        char prefix[PATH_MAX];
        size_t n = strlen(parent);
        size_t i = 0;
        int prev = t->rootfd;
        int prev_owned = 0;
        while (i <= n) {
            size_t j = i;
            while (j < n && parent[j] != '/') j++;
            memcpy(prefix, parent, j);
            prefix[j] = 0;
            int next = (int)sys_openat2(t->rootfd, prefix, O_PATH | O_DIRECTORY, resolve);
            if (next < 0 && errno == ENOENT) {
                char comp[NAME_MAX + 1];
                size_t len = j - i;
                memcpy(comp, parent + i, len);
                comp[len] = 0;
                if (mkdirat(prev, comp, 0755) < 0 && errno != EEXIST) {
                    int e = errno;
                    if (prev_owned) close(prev);
                    return -fail(t, e, "entry %s: cannot create parent directory %s: %s", entry, prefix, strerror(e));
                }
                // 0755 whatever the process umask is.
                int made = openat(prev, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (made >= 0) {
                    fchmod(made, 0755);
                    close(made);
                }
                next = (int)sys_openat2(t->rootfd, prefix, O_PATH | O_DIRECTORY, resolve);
            }
            if (next < 0) {
                int e = errno;
                if (prev_owned) close(prev);
                errno = e;
                fd = -1;
                break;
            }
            if (prev_owned) close(prev);
            prev = next;
            prev_owned = 1;
            i = j + 1;
        }
        if (i > n) fd = prev;
    }
    if (fd < 0) {
        int e = errno;
        if (e == EXDEV)
            return -fail(t, EPERM, "entry %s: its path goes through a symlink that leads outside the layer", entry);
        if (e == ELOOP && no_symlinks)
            return -fail(t, EPERM, "entry %s: a whiteout may not be reached through a symlink", entry);
        if (e == ENOTDIR) return -fail(t, ENOTDIR, "entry %s: a parent of it is not a directory", entry);
        return -fail(t, e, "entry %s: cannot open its parent %s: %s", entry, parent, strerror(e));
    }
    // A resolution without symlinks is valid for both kinds of lookup, so it is cached too
    // (lookups with no_symlinks never read the cache).
    invalidate_cache(t);
    snprintf(t->cache_path, sizeof(t->cache_path), "%s", parent);
    t->cache_fd = fd;
    return fd;
}

// Removes a directory tree inside the layer, never following symlinks.
static int remove_tree(int pfd, const char *name) {
    int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return -1;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0) continue;
        if (errno == EISDIR || errno == EPERM) {
            if (remove_tree(dirfd(d), de->d_name) < 0) rc = -1;
        } else {
            rc = -1;
        }
    }
    closedir(d);
    if (rc == 0 && unlinkat(pfd, name, AT_REMOVEDIR) < 0) rc = -1;
    return rc;
}

/// Makes room for a new entry at (pfd, name): later entries replace earlier ones, except that
/// a directory over a directory is kept (returns 1).
static int make_room(struct tar *t, int pfd, const char *name, int want_dir) {
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return 0;
        return -fail(t, errno, "entry %s: %s", t->cur.path, strerror(errno));
    }
    if (want_dir && S_ISDIR(st.st_mode)) return 1;
    // pfd may be the cached fd: use it first, drop the cache after (what was removed may
    // have been on the cached path). Callers fetch their parent again.
    int r = S_ISDIR(st.st_mode) ? remove_tree(pfd, name) : unlinkat(pfd, name, 0);
    int e = errno;
    invalidate_cache(t);
    if (r < 0) return -fail(t, e, "entry %s: cannot replace what is there: %s", t->cur.path, strerror(e));
    return 0;
}

// MARK: - Metadata

static int apply_xattrs(struct tar *t, int fd) {
    for (size_t i = 0; i < t->cur.nxattrs; i++) {
        const struct xattr *x = &t->cur.xattrs[i];
        if (fsetxattr(fd, x->name, x->value, x->len, 0) < 0) {
            if (errno == ENOTSUP) continue;  // the snapshot's filesystem cannot hold it
            return fail(t, errno, "entry %s: cannot set xattr %s: %s", t->cur.path, x->name, strerror(errno));
        }
    }
    return 0;
}

// Owner, mode, xattrs and times through an fd of the entry itself (never a path).
static int apply_meta_fd(struct tar *t, int fd, int set_times) {
    if (t->opts->preserve_owner && fchown(fd, (uid_t)t->cur.uid, (gid_t)t->cur.gid) < 0)
        return fail(t, errno, "entry %s: chown: %s", t->cur.path, strerror(errno));
    // After chown, which clears setuid/setgid bits.
    if (fchmod(fd, t->cur.mode & 07777) < 0) return fail(t, errno, "entry %s: chmod: %s", t->cur.path, strerror(errno));
    if (apply_xattrs(t, fd)) return t->res->error;
    if (set_times) {
        struct timespec ts[2] = {t->cur.mtime, t->cur.mtime};
        if (futimens(fd, ts) < 0) return fail(t, errno, "entry %s: utimes: %s", t->cur.path, strerror(errno));
    }
    return 0;
}

// Owner and times of an entry that cannot be opened (symlink, device, fifo) by name, not
// following it.
static int apply_meta_nofollow(struct tar *t, int pfd, const char *name, int chmod_it) {
    if (t->opts->preserve_owner && fchownat(pfd, name, (uid_t)t->cur.uid, (gid_t)t->cur.gid, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(t, errno, "entry %s: chown: %s", t->cur.path, strerror(errno));
    if (chmod_it) {
        // Devices and fifos: fchmodat2 never follows a symlink (Linux 6.6); older kernels go
        // through an O_PATH fd of the node itself.
        int r = (int)syscall(452 /* SYS_fchmodat2 */, pfd, name, t->cur.mode & 07777, AT_SYMLINK_NOFOLLOW);
        int e = errno;
        if (r < 0 && (e == ENOSYS || e == EOPNOTSUPP)) {
            int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) return fail(t, errno, "entry %s: %s", t->cur.path, strerror(errno));
            char p[64];
            snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
            r = chmod(p, t->cur.mode & 07777);
            e = errno;
            close(fd);
        }
        if (r < 0) return fail(t, e, "entry %s: chmod: %s", t->cur.path, strerror(e));
    }
    struct timespec ts[2] = {t->cur.mtime, t->cur.mtime};
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(t, errno, "entry %s: utimes: %s", t->cur.path, strerror(errno));
    return 0;
}

static int remember_dir(struct tar *t) {
    if (t->ndirs == t->capdirs) {
        size_t cap = t->capdirs ? t->capdirs * 2 : 256;
        struct dirtime *d = realloc(t->dirs, cap * sizeof(*d));
        if (d == NULL) return fail(t, ENOMEM, "out of memory");
        t->dirs = d;
        t->capdirs = cap;
    }
    t->dirs[t->ndirs].path = strdup(t->cur.path);
    if (t->dirs[t->ndirs].path == NULL) return fail(t, ENOMEM, "out of memory");
    t->dirs[t->ndirs].mtime = t->cur.mtime;
    t->dirs[t->ndirs].mode = t->cur.mode & 07777;
    t->dirs[t->ndirs].mode_set = 1;
    t->ndirs++;
    return 0;
}

// MARK: - Entries

static int start_entry(struct tar *t) {
    struct entry *e = &t->cur;
    if (t->opts->max_entries && t->res->entries >= t->opts->max_entries)
        return fail(t, EFBIG, "the layer has more than %llu entries (the cap)", (unsigned long long)t->opts->max_entries);
    if (e->path[0] == 0) {
        t->res->entries++;
        // The root itself ("./"): its metadata goes on the snapshot directory, as umoci does.
        if (e->type != '5') return 0;
        int dfd = openat(t->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return fail(t, errno, "entry ./: %s", strerror(errno));
        int rc = apply_meta_fd(t, dfd, 0);
        close(dfd);
        return rc ? rc : remember_dir(t);
    }
    t->res->entries++;

    char parent[PATH_MAX];
    const char *name;
    split(e->path, parent, &name);

    // Whiteouts (OCI image-spec layer.md) become overlayfs whiteouts.
    if (strncmp(name, ".wh.", 4) == 0) {
        int pfd = parent_fd(t, parent, 1, e->path);
        if (pfd < 0) return t->res->error;
        if (strcmp(name, ".wh..wh..opq") == 0) {
            int dfd = parent[0] ? (int)sys_openat2(t->rootfd, parent, O_RDONLY | O_DIRECTORY,
                                                    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
                                : dup(t->rootfd);
            if (dfd < 0) return fail(t, errno, "entry %s: %s", e->path, strerror(errno));
            int r = fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0);
            int err = errno;
            close(dfd);
            if (r < 0) return fail(t, err, "entry %s: cannot mark the directory opaque: %s", e->path, strerror(err));
            t->res->whiteouts++;
            return 0;
        }
        if (strncmp(name, ".wh..wh.", 8) == 0) return 0;  // aufs metadata (.wh..wh.plnk ...): ignored, as docker does
        const char *target = name + 4;
        if (target[0] == 0 || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
            return fail(t, EPERM, "entry %s: a whiteout must name a file", e->path);
        if (!t->opts->allow_devices)
            return fail(t, EPERM, "entry %s: whiteouts are device nodes: unpacking needs root (CAP_MKNOD)", e->path);
        if (make_room(t, pfd, target, 0) < 0) return t->res->error;
        pfd = parent_fd(t, parent, 1, e->path);  // make_room may have closed the cached fd
        if (pfd < 0) return t->res->error;
        if (mknodat(pfd, target, S_IFCHR | 0, makedev(0, 0)) < 0)
            return fail(t, errno, "entry %s: cannot create the whiteout: %s", e->path, strerror(errno));
        t->res->whiteouts++;
        return 0;
    }

    int pfd = parent_fd(t, parent, 0, e->path);
    if (pfd < 0) return t->res->error;

    switch (e->type) {
    case '0':
    case '\0':
    case '7': {
        int fd = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            if (make_room(t, pfd, name, 0) < 0) return t->res->error;
            pfd = parent_fd(t, parent, 0, e->path);
            if (pfd < 0) return t->res->error;
            fd = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        }
        if (fd < 0) return fail(t, errno, "entry %s: cannot create it: %s", e->path, strerror(errno));
        t->file_fd = fd;
        t->kind = D_FILE;
        return 0;
    }
    case '5': {
        int r = make_room(t, pfd, name, 1);
        if (r < 0) return t->res->error;
        if (r == 0) {
            pfd = parent_fd(t, parent, 0, e->path);
            if (pfd < 0) return t->res->error;
            if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
                return fail(t, errno, "entry %s: cannot create it: %s", e->path, strerror(errno));
        }
        int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) return fail(t, errno, "entry %s: %s", e->path, strerror(errno));
        // Owner-writable until the end (set_dir_times applies the final mode).
        unsigned int final_mode = e->mode;
        e->mode = (e->mode | 0700) & 07777;
        int rc = apply_meta_fd(t, dfd, 0);
        e->mode = final_mode;
        close(dfd);
        if (rc) return rc;
        return remember_dir(t);
    }
    case '2': {
        if (make_room(t, pfd, name, 0) < 0) return t->res->error;
        pfd = parent_fd(t, parent, 0, e->path);
        if (pfd < 0) return t->res->error;
        if (symlinkat(e->link, pfd, name) < 0)
            return fail(t, errno, "entry %s: cannot create the symlink: %s", e->path, strerror(errno));
        return apply_meta_nofollow(t, pfd, name, 0);
    }
    case '1': {
        // The target is another entry of this archive: same rules as entry names.
        char target[PATH_MAX], tparent[PATH_MAX];
        const char *why = NULL;
        if (normalize(e->link, target, sizeof(target), &why) < 0)
            return fail(t, EPERM, "entry %s: hardlink target %s %s", e->path, e->link, why);
        if (target[0] == 0) return fail(t, EPERM, "entry %s: hardlink to the root", e->path);
        const char *tname;
        split(target, tparent, &tname);
        int tpfd = tparent[0] ? (int)sys_openat2(t->rootfd, tparent, O_PATH | O_DIRECTORY,
                                                  RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
                              : dup(t->rootfd);
        if (tpfd < 0) {
            int err = errno;
            if (err == EXDEV)
                return fail(t, EPERM, "entry %s: hardlink target %s goes through a symlink that leads outside the layer",
                            e->path, e->link);
            return fail(t, err, "entry %s: hardlink target %s: %s", e->path, e->link, strerror(err));
        }
        struct stat st;
        if (fstatat(tpfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            int err = errno;
            close(tpfd);
            return fail(t, err, "entry %s: hardlink target %s is not in the layer: %s", e->path, e->link, strerror(err));
        }
        if (S_ISDIR(st.st_mode)) {
            close(tpfd);
            return fail(t, EPERM, "entry %s: hardlink to a directory", e->path);
        }
        if (strcmp(target, e->path) == 0) {
            close(tpfd);
            return 0;
        }
        if (make_room(t, pfd, name, 0) < 0) {
            close(tpfd);
            return t->res->error;
        }
        pfd = parent_fd(t, parent, 0, e->path);
        if (pfd < 0) {
            close(tpfd);
            return t->res->error;
        }
        // flags 0: a symlink target is linked as the symlink itself, never followed.
        int r = linkat(tpfd, tname, pfd, name, 0);
        int err = errno;
        close(tpfd);
        if (r < 0) return fail(t, err, "entry %s: cannot link to %s: %s", e->path, e->link, strerror(err));
        return 0;
    }
    case '3':
    case '4':
    case '6': {
        if (e->type != '6' && !t->opts->allow_devices)
            return fail(t, EPERM, "entry %s: device nodes need root (CAP_MKNOD)", e->path);
        if (make_room(t, pfd, name, 0) < 0) return t->res->error;
        pfd = parent_fd(t, parent, 0, e->path);
        if (pfd < 0) return t->res->error;
        mode_t type = e->type == '3' ? S_IFCHR : e->type == '4' ? S_IFBLK : S_IFIFO;
        if (mknodat(pfd, name, type | 0600, makedev(e->devmajor, e->devminor)) < 0)
            return fail(t, errno, "entry %s: cannot create the node: %s", e->path, strerror(errno));
        return apply_meta_nofollow(t, pfd, name, 1);
    }
    default:
        return fail(t, EINVAL, "entry %s: unsupported entry type '%c'", e->path, e->type);
    }
}

static int finish_file(struct tar *t) {
    int rc = apply_meta_fd(t, t->file_fd, 1);
    if (close(t->file_fd) < 0 && rc == 0) rc = fail(t, errno, "entry %s: close: %s", t->cur.path, strerror(errno));
    t->file_fd = -1;
    return rc;
}

// MARK: - PAX

#define MAX_XATTRS 256             // per entry
#define MAX_XATTR_VALUE (64 << 10) // the kernel's limit for one value

static int add_xattr(struct tar *t, struct overrides *o, const char *name, const char *value, size_t len) {
    if (strncmp(name, "trusted.", 8) == 0)
        return fail(t, EPERM, "a layer may not set trusted.* xattrs (%s): they steer overlayfs", name);
    if (o->nxattrs >= MAX_XATTRS || len > MAX_XATTR_VALUE)
        return fail(t, EFBIG, "too many or too large xattrs for one entry (after %s)", t->cur.path);
    struct xattr *x = realloc(o->xattrs, (o->nxattrs + 1) * sizeof(*x));
    if (x == NULL) return fail(t, ENOMEM, "out of memory");
    o->xattrs = x;
    x[o->nxattrs].name = strdup(name);
    x[o->nxattrs].value = malloc(len ? len : 1);
    if (x[o->nxattrs].name == NULL || x[o->nxattrs].value == NULL) return fail(t, ENOMEM, "out of memory");
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
            return fail(t, EINVAL, "malformed PAX header (after entry %s)", t->cur.path[0] ? t->cur.path : "<start>");
        const char *key = t->acc + j + 1;
        const char *eq = memchr(key, '=', (size_t)(t->acc + i + reclen - 1 - key));
        if (eq == NULL) return fail(t, EINVAL, "malformed PAX record");
        size_t klen = (size_t)(eq - key);
        const char *val = eq + 1;
        size_t vlen = (size_t)(t->acc + i + reclen - 1 - val);
        char k[512];  // "SCHILY.xattr." + an xattr name of up to 255 bytes
        if (klen >= sizeof(k)) return fail(t, EINVAL, "PAX key too long");
        memcpy(k, key, klen);
        k[klen] = 0;
        if (strcmp(k, "path") == 0 || strcmp(k, "linkpath") == 0) {
            char *s = malloc(vlen + 1);
            if (s == NULL) return fail(t, ENOMEM, "out of memory");
            memcpy(s, val, vlen);
            s[vlen] = 0;
            if (strlen(s) != vlen) {
                free(s);
                return fail(t, EINVAL, "PAX %s contains a NUL byte", k);
            }
            char **slot = k[0] == 'p' ? &o->path : &o->linkpath;
            free(*slot);
            *slot = s;
        } else if (strcmp(k, "size") == 0 || strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0) {
            char num[32];
            if (vlen == 0 || vlen >= sizeof(num)) return fail(t, EINVAL, "PAX %s is malformed", k);
            memcpy(num, val, vlen);
            num[vlen] = 0;
            char *end;
            errno = 0;
            unsigned long long n = strtoull(num, &end, 10);
            if (errno || *end || num[0] == '-') return fail(t, EINVAL, "PAX %s is malformed", k);
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
            if (parse_time(val, vlen, &o->mtime) < 0) return fail(t, EINVAL, "PAX mtime is malformed");
            o->has_mtime = 1;
        } else if (strncmp(k, "SCHILY.xattr.", 13) == 0) {
            if (add_xattr(t, o, k + 13, val, vlen)) return t->res->error;
        } else if (strncmp(k, "GNU.sparse.", 11) == 0) {
            return fail(t, ENOTSUP, "sparse files are not supported (entry after %s)", t->cur.path);
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
    if (t->zero_blocks) return fail(t, EINVAL, "a tar header follows a single zero block (corrupt archive)");
    if (!checksum_ok(h)) return fail(t, EINVAL, "corrupt tar header (bad checksum) after entry %s", t->cur.path);

    char type = (char)h[156];
    uint64_t size;
    if (parse_number(h + 124, 12, &size) < 0) return fail(t, EINVAL, "corrupt tar header (size)");

    // Metadata-only headers.
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
        if (size > MAX_META) return fail(t, EFBIG, "a %c header of %llu bytes is over the cap", type, (unsigned long long)size);
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
        if (t->acc == NULL) return fail(t, ENOMEM, "out of memory");
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
    if (type == 'S') return fail(t, ENOTSUP, "sparse files are not supported");
    if (type == 'V' || type == 'M' || type == 'N')
        return fail(t, ENOTSUP, "tar entry type '%c' is not supported", type);

    struct entry *e = &t->cur;
    memset(e, 0, offsetof(struct entry, xattrs));
    e->xattrs = NULL;
    e->nxattrs = 0;
    e->type = type;
    char raw[PATH_MAX], rawlink[PATH_MAX];
    int ustar = memcmp(h + 257, "ustar\0", 6) == 0;
    if (t->next.path) {
        if (strlen(t->next.path) >= sizeof(raw)) return fail(t, ENAMETOOLONG, "an entry name is longer than PATH_MAX");
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
        if (strlen(t->next.linkpath) >= sizeof(rawlink)) return fail(t, ENAMETOOLONG, "entry %s: its link target is longer than PATH_MAX", raw);
        snprintf(rawlink, sizeof(rawlink), "%s", t->next.linkpath);
    } else
        field(rawlink, h + 157, 100);
    if (raw[0] == 0) return fail(t, EINVAL, "an entry has an empty name");
    const char *why = NULL;
    if (normalize(raw, e->path, sizeof(e->path), &why) < 0) return fail(t, EPERM, "entry %s %s", raw, why);
    snprintf(e->link, sizeof(e->link), "%s", rawlink);

    uint64_t mode, uid, gid, mtime, maj = 0, min = 0;
    if (parse_number(h + 100, 8, &mode) < 0 || parse_number(h + 108, 8, &uid) < 0 || parse_number(h + 116, 8, &gid) < 0 ||
        parse_number(h + 136, 12, &mtime) < 0)
        return fail(t, EINVAL, "entry %s: corrupt numeric field", e->path);
    if (type == '3' || type == '4') {
        if (parse_number(h + 329, 8, &maj) < 0 || parse_number(h + 337, 8, &min) < 0)
            return fail(t, EINVAL, "entry %s: corrupt device numbers", e->path);
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
    if (e->uid > 0xFFFFFFFEULL || e->gid > 0xFFFFFFFEULL) return fail(t, EINVAL, "entry %s: uid or gid out of range", e->path);

    // Links, devices, directories and fifos carry no data whatever their size field says
    // (as Go's archive/tar reads them): skipping "their" data would hide entries from other
    // readers.
    int has_data = (type == '0' || type == '\0' || type == '7');
    t->kind = D_SKIP;
    t->file_fd = -1;
    if (start_entry(t)) return t->res->error;

    t->remaining = has_data ? e->size : 0;
    uint64_t total = t->remaining;
    t->pad = (BLOCK - total % BLOCK) % BLOCK;
    if (total) {
        t->state = S_DATA;
    } else {
        if (t->kind == D_FILE && finish_file(t)) return t->res->error;
        t->state = t->pad ? S_PAD : S_HEADER;
    }
    // The next-entry overrides are used up; xattrs stay referenced by cur until done.
    return 0;
}

static int end_of_data(struct tar *t) {
    switch (t->kind) {
    case D_FILE:
        if (finish_file(t)) return t->res->error;
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
        if (*slot == NULL) return fail(t, ENOMEM, "out of memory");
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
    free_overrides(&t->next);
    t->cur.xattrs = NULL;
    t->cur.nxattrs = 0;
}

// Feeds uncompressed tar bytes to the state machine.
static int tar_feed(struct tar *t, const unsigned char *p, size_t n) {
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
                    return fail(t, errno, "entry %s: write: %s", t->cur.path, strerror(errno));
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

// Deferred directory times: adding entries changed them; set them last, innermost first.
static void set_dir_times(struct tar *t) {
    // Forward: for a directory listed twice the last entry wins. Setting a directory's times
    // does not touch its parent's, so the order is otherwise free.
    for (size_t i = 0; i < t->ndirs; i++) {
        int fd = t->dirs[i].path[0] ? (int)sys_openat2(t->rootfd, t->dirs[i].path, O_RDONLY | O_DIRECTORY,
                                                       RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
                                    : dup(t->rootfd);
        if (fd < 0) continue;  // replaced by a later entry
        // Directory modes come last too, so that a read-only directory could be filled first.
        if (t->dirs[i].mode_set) fchmod(fd, t->dirs[i].mode);
        struct timespec ts[2] = {t->dirs[i].mtime, t->dirs[i].mtime};
        futimens(fd, ts);
        close(fd);
    }
}

// MARK: - Streams

static int feed_uncompressed(struct tar *t, void *hash, const unsigned char *p, size_t n) {
    t->res->tar_size += n;
    if (t->opts->max_bytes && t->res->tar_size > t->opts->max_bytes)
        return fail(t, EFBIG, "the layer unpacks to more than %llu bytes (the cap): refused as a decompression bomb",
                    (unsigned long long)t->opts->max_bytes);
    carchive_sha256_update(hash, p, n);
    if (t->res->error) return t->res->error;
    return tar_feed(t, p, n);
}

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

    unsigned char *in = malloc(CHUNK);
    unsigned char *out = malloc(CHUNK);
    void *hin = carchive_sha256_new();
    void *hout = carchive_sha256_new();
    z_stream zs;
    int zinit = 0;
    ZSTD_DStream *zd = NULL;
    if (in == NULL || out == NULL || hin == NULL || hout == NULL) {
        fail(&t, ENOMEM, "out of memory");
        goto done;
    }
    if (opts->compression == CARCHIVE_COMPRESSION_GZIP) {
        memset(&zs, 0, sizeof(zs));
        if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
            fail(&t, ENOMEM, "cannot start gzip");
            goto done;
        }
        zinit = 1;
    } else if (opts->compression == CARCHIVE_COMPRESSION_ZSTD) {
        zd = ZSTD_createDStream();
        if (zd == NULL || ZSTD_isError(ZSTD_initDStream(zd))) {
            fail(&t, ENOMEM, "cannot start zstd");
            goto done;
        }
    }

    uint64_t off = 0;
    int first = 1;
    int stream_ended = 0;
    while (off < size && !res->error) {
        size_t want = (size - off) < CHUNK ? (size_t)(size - off) : CHUNK;
        ssize_t n = pread(blob_fd, in, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fail(&t, n == 0 ? EIO : errno, "reading the layer blob: %s", n == 0 ? "it is shorter than its size" : strerror(errno));
            break;
        }
        off += (uint64_t)n;
        carchive_sha256_update(hin, in, (size_t)n);
        if (first) {
            first = 0;
            int gz = n >= 2 && in[0] == 0x1f && in[1] == 0x8b;
            int zst = n >= 4 && in[0] == 0x28 && in[1] == 0xb5 && in[2] == 0x2f && in[3] == 0xfd;
            const char *declared = opts->compression == CARCHIVE_COMPRESSION_GZIP   ? "tar+gzip"
                                   : opts->compression == CARCHIVE_COMPRESSION_ZSTD ? "tar+zstd"
                                                                                 : "tar";
            if ((opts->compression == CARCHIVE_COMPRESSION_GZIP && !gz) || (opts->compression == CARCHIVE_COMPRESSION_ZSTD && !zst) ||
                (opts->compression == CARCHIVE_COMPRESSION_NONE && (gz || zst))) {
                fail(&t, EINVAL, "the media type says %s but the data is %s", declared,
                     gz ? "gzip" : zst ? "zstd" : "not compressed");
                break;
            }
        }
        if (opts->compression == CARCHIVE_COMPRESSION_NONE) {
            feed_uncompressed(&t, hout, in, (size_t)n);
        } else if (opts->compression == CARCHIVE_COMPRESSION_GZIP) {
            zs.next_in = in;
            zs.avail_in = (uInt)n;
            while (zs.avail_in > 0 && !res->error) {
                if (stream_ended) {
                    // Another gzip member may follow (concatenated gzip); trailing zeros are tolerated.
                    if (zs.next_in[0] == 0) {
                        size_t k = 0;
                        while (k < zs.avail_in && zs.next_in[k] == 0) k++;
                        if (k == zs.avail_in) {
                            zs.avail_in = 0;
                            break;
                        }
                        fail(&t, EINVAL, "garbage after the end of the gzip stream");
                        break;
                    }
                    inflateReset(&zs);
                    stream_ended = 0;
                }
                zs.next_out = out;
                zs.avail_out = CHUNK;
                int r = inflate(&zs, Z_NO_FLUSH);
                if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
                    fail(&t, EINVAL, "the gzip data is corrupt: %s", zs.msg ? zs.msg : "inflate failed");
                    break;
                }
                size_t produced = CHUNK - zs.avail_out;
                if (produced) feed_uncompressed(&t, hout, out, produced);
                if (r == Z_STREAM_END) stream_ended = 1;
                if (r == Z_BUF_ERROR && produced == 0) break;
            }
        } else {
            ZSTD_inBuffer ib = {in, (size_t)n, 0};
            while (ib.pos < ib.size && !res->error) {
                ZSTD_outBuffer ob = {out, CHUNK, 0};
                size_t r = ZSTD_decompressStream(zd, &ob, &ib);
                if (ZSTD_isError(r)) {
                    fail(&t, EINVAL, "the zstd data is corrupt: %s", ZSTD_getErrorName(r));
                    break;
                }
                if (ob.pos) feed_uncompressed(&t, hout, out, ob.pos);
                stream_ended = r == 0;
            }
        }
    }
    if (!res->error && opts->compression == CARCHIVE_COMPRESSION_GZIP && !stream_ended)
        fail(&t, EINVAL, "the gzip stream is truncated");
    if (!res->error && opts->compression == CARCHIVE_COMPRESSION_ZSTD) {
        // Flush what the decoder still holds.
        for (;;) {
            ZSTD_inBuffer ib = {in, 0, 0};
            ZSTD_outBuffer ob = {out, CHUNK, 0};
            size_t r = ZSTD_decompressStream(zd, &ob, &ib);
            if (ZSTD_isError(r)) {
                fail(&t, EINVAL, "the zstd data is corrupt: %s", ZSTD_getErrorName(r));
                break;
            }
            if (ob.pos) feed_uncompressed(&t, hout, out, ob.pos);
            if (ob.pos == 0) break;
        }
        if (!res->error && !stream_ended) fail(&t, EINVAL, "the zstd stream is truncated");
    }
    if (!res->error && t.state != S_END && !(t.state == S_HEADER && t.hdr_fill == 0))
        fail(&t, EINVAL, "the tar stream ends in the middle of entry %s", t.cur.path);
    if (!res->error) set_dir_times(&t);
    res->blob_size = off;

done:
    if (t.file_fd >= 0) close(t.file_fd);
    invalidate_cache(&t);
    if (hin) carchive_sha256_final(hin, res->digest);
    if (hout) carchive_sha256_final(hout, res->diff_id);
    if (zinit) inflateEnd(&zs);
    if (zd) ZSTD_freeDStream(zd);
    free(in);
    free(out);
    free(t.acc);
    free_overrides(&t.next);
    for (size_t i = 0; i < t.ndirs; i++) free(t.dirs[i].path);
    free(t.dirs);
    return res->error;
}
#endif
