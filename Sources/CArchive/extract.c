// extract.c — creating a layer's entries (see carchive_unpack.h for the rules): every path is
// resolved beneath the snapshot's directory fd with openat2(RESOLVE_BENEATH), entries are created
// with O_EXCL|O_NOFOLLOW (or their *at equivalents) and metadata calls never follow symlinks.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CArchive needs _GNU_SOURCE"
#endif
#include "unpack_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

// MARK: - Paths

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

void carchive_invalidate_cache(struct tar *t) {
    if (t->cache_fd >= 0) close(t->cache_fd);
    t->cache_fd = -1;
    t->cache_path[0] = 0;
}

/// Normalises an archive path: "./a//b/" -> "a/b". Absolute names and ".." are refused.
/// Returns 0 or -1 with why set.
int carchive_normalize(const char *in, char *out, size_t cap, const char **why) {
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
                    return -carchive_fail(t, e, "entry %s: cannot create parent directory %s: %s", entry, prefix, strerror(e));
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
            return -carchive_fail(t, EPERM, "entry %s: its path goes through a symlink that leads outside the layer", entry);
        if (e == ELOOP && no_symlinks)
            return -carchive_fail(t, EPERM, "entry %s: a whiteout may not be reached through a symlink", entry);
        if (e == ENOTDIR) return -carchive_fail(t, ENOTDIR, "entry %s: a parent of it is not a directory", entry);
        return -carchive_fail(t, e, "entry %s: cannot open its parent %s: %s", entry, parent, strerror(e));
    }
    // A resolution without symlinks is valid for both kinds of lookup, so it is cached too
    // (lookups with no_symlinks never read the cache).
    carchive_invalidate_cache(t);
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
        return -carchive_fail(t, errno, "entry %s: %s", t->cur.path, strerror(errno));
    }
    if (want_dir && S_ISDIR(st.st_mode)) return 1;
    // pfd may be the cached fd: use it first, drop the cache after (what was removed may
    // have been on the cached path). Callers fetch their parent again.
    int r = S_ISDIR(st.st_mode) ? remove_tree(pfd, name) : unlinkat(pfd, name, 0);
    int e = errno;
    carchive_invalidate_cache(t);
    if (r < 0) return -carchive_fail(t, e, "entry %s: cannot replace what is there: %s", t->cur.path, strerror(e));
    return 0;
}

// MARK: - Metadata

static int apply_xattrs(struct tar *t, int fd) {
    for (size_t i = 0; i < t->cur.nxattrs; i++) {
        const struct xattr *x = &t->cur.xattrs[i];
        if (fsetxattr(fd, x->name, x->value, x->len, 0) < 0) {
            if (errno == ENOTSUP) continue;  // the snapshot's filesystem cannot hold it
            return carchive_fail(t, errno, "entry %s: cannot set xattr %s: %s", t->cur.path, x->name, strerror(errno));
        }
    }
    return 0;
}

// Owner, mode, xattrs and times through an fd of the entry itself (never a path).
static int apply_meta_fd(struct tar *t, int fd, int set_times) {
    if (t->opts->preserve_owner && fchown(fd, (uid_t)t->cur.uid, (gid_t)t->cur.gid) < 0)
        return carchive_fail(t, errno, "entry %s: chown: %s", t->cur.path, strerror(errno));
    // After chown, which clears setuid/setgid bits.
    if (fchmod(fd, t->cur.mode & 07777) < 0) return carchive_fail(t, errno, "entry %s: chmod: %s", t->cur.path, strerror(errno));
    if (apply_xattrs(t, fd)) return t->res->error;
    if (set_times) {
        struct timespec ts[2] = {t->cur.mtime, t->cur.mtime};
        if (futimens(fd, ts) < 0) return carchive_fail(t, errno, "entry %s: utimes: %s", t->cur.path, strerror(errno));
    }
    return 0;
}

// Owner and times of an entry that cannot be opened (symlink, device, fifo) by name, not
// following it.
static int apply_meta_nofollow(struct tar *t, int pfd, const char *name, int chmod_it) {
    if (t->opts->preserve_owner && fchownat(pfd, name, (uid_t)t->cur.uid, (gid_t)t->cur.gid, AT_SYMLINK_NOFOLLOW) < 0)
        return carchive_fail(t, errno, "entry %s: chown: %s", t->cur.path, strerror(errno));
    if (chmod_it) {
        // Devices and fifos: fchmodat2 never follows a symlink (Linux 6.6); older kernels go
        // through an O_PATH fd of the node itself.
        int r = (int)syscall(452 /* SYS_fchmodat2 */, pfd, name, t->cur.mode & 07777, AT_SYMLINK_NOFOLLOW);
        int e = errno;
        if (r < 0 && (e == ENOSYS || e == EOPNOTSUPP)) {
            int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) return carchive_fail(t, errno, "entry %s: %s", t->cur.path, strerror(errno));
            char p[64];
            snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
            r = chmod(p, t->cur.mode & 07777);
            e = errno;
            close(fd);
        }
        if (r < 0) return carchive_fail(t, e, "entry %s: chmod: %s", t->cur.path, strerror(e));
    }
    struct timespec ts[2] = {t->cur.mtime, t->cur.mtime};
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return carchive_fail(t, errno, "entry %s: utimes: %s", t->cur.path, strerror(errno));
    return 0;
}

static int remember_dir(struct tar *t) {
    if (t->ndirs == t->capdirs) {
        size_t cap = t->capdirs ? t->capdirs * 2 : 256;
        struct dirtime *d = realloc(t->dirs, cap * sizeof(*d));
        if (d == NULL) return carchive_fail(t, ENOMEM, "out of memory");
        t->dirs = d;
        t->capdirs = cap;
    }
    t->dirs[t->ndirs].path = strdup(t->cur.path);
    if (t->dirs[t->ndirs].path == NULL) return carchive_fail(t, ENOMEM, "out of memory");
    t->dirs[t->ndirs].mtime = t->cur.mtime;
    t->dirs[t->ndirs].mode = t->cur.mode & 07777;
    t->dirs[t->ndirs].mode_set = 1;
    t->ndirs++;
    return 0;
}

// MARK: - Entries

int carchive_start_entry(struct tar *t) {
    struct entry *e = &t->cur;
    if (t->opts->max_entries && t->res->entries >= t->opts->max_entries)
        return carchive_fail(t, EFBIG, "the layer has more than %llu entries (the cap)", (unsigned long long)t->opts->max_entries);
    if (e->path[0] == 0) {
        t->res->entries++;
        // The root itself ("./"): its metadata goes on the snapshot directory, as umoci does.
        if (e->type != '5') return 0;
        int dfd = openat(t->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return carchive_fail(t, errno, "entry ./: %s", strerror(errno));
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
            if (dfd < 0) return carchive_fail(t, errno, "entry %s: %s", e->path, strerror(errno));
            int r = fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0);
            int err = errno;
            close(dfd);
            if (r < 0) return carchive_fail(t, err, "entry %s: cannot mark the directory opaque: %s", e->path, strerror(err));
            t->res->whiteouts++;
            return 0;
        }
        if (strncmp(name, ".wh..wh.", 8) == 0) return 0;  // aufs metadata (.wh..wh.plnk ...): ignored, as docker does
        const char *target = name + 4;
        if (target[0] == 0 || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
            return carchive_fail(t, EPERM, "entry %s: a whiteout must name a file", e->path);
        if (!t->opts->allow_devices)
            return carchive_fail(t, EPERM, "entry %s: whiteouts are device nodes: unpacking needs root (CAP_MKNOD)", e->path);
        if (make_room(t, pfd, target, 0) < 0) return t->res->error;
        pfd = parent_fd(t, parent, 1, e->path);  // make_room may have closed the cached fd
        if (pfd < 0) return t->res->error;
        if (mknodat(pfd, target, S_IFCHR | 0, makedev(0, 0)) < 0)
            return carchive_fail(t, errno, "entry %s: cannot create the whiteout: %s", e->path, strerror(errno));
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
        if (fd < 0) return carchive_fail(t, errno, "entry %s: cannot create it: %s", e->path, strerror(errno));
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
                return carchive_fail(t, errno, "entry %s: cannot create it: %s", e->path, strerror(errno));
        }
        int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) return carchive_fail(t, errno, "entry %s: %s", e->path, strerror(errno));
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
            return carchive_fail(t, errno, "entry %s: cannot create the symlink: %s", e->path, strerror(errno));
        return apply_meta_nofollow(t, pfd, name, 0);
    }
    case '1': {
        // The target is another entry of this archive: same rules as entry names.
        char target[PATH_MAX], tparent[PATH_MAX];
        const char *why = NULL;
        if (carchive_normalize(e->link, target, sizeof(target), &why) < 0)
            return carchive_fail(t, EPERM, "entry %s: hardlink target %s %s", e->path, e->link, why);
        if (target[0] == 0) return carchive_fail(t, EPERM, "entry %s: hardlink to the root", e->path);
        const char *tname;
        split(target, tparent, &tname);
        int tpfd = tparent[0] ? (int)sys_openat2(t->rootfd, tparent, O_PATH | O_DIRECTORY,
                                                  RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
                              : dup(t->rootfd);
        if (tpfd < 0) {
            int err = errno;
            if (err == EXDEV)
                return carchive_fail(t, EPERM, "entry %s: hardlink target %s goes through a symlink that leads outside the layer",
                            e->path, e->link);
            return carchive_fail(t, err, "entry %s: hardlink target %s: %s", e->path, e->link, strerror(err));
        }
        struct stat st;
        if (fstatat(tpfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            int err = errno;
            close(tpfd);
            return carchive_fail(t, err, "entry %s: hardlink target %s is not in the layer: %s", e->path, e->link, strerror(err));
        }
        if (S_ISDIR(st.st_mode)) {
            close(tpfd);
            return carchive_fail(t, EPERM, "entry %s: hardlink to a directory", e->path);
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
        if (r < 0) return carchive_fail(t, err, "entry %s: cannot link to %s: %s", e->path, e->link, strerror(err));
        return 0;
    }
    case '3':
    case '4':
    case '6': {
        if (e->type != '6' && !t->opts->allow_devices)
            return carchive_fail(t, EPERM, "entry %s: device nodes need root (CAP_MKNOD)", e->path);
        if (make_room(t, pfd, name, 0) < 0) return t->res->error;
        pfd = parent_fd(t, parent, 0, e->path);
        if (pfd < 0) return t->res->error;
        mode_t type = e->type == '3' ? S_IFCHR : e->type == '4' ? S_IFBLK : S_IFIFO;
        if (mknodat(pfd, name, type | 0600, makedev(e->devmajor, e->devminor)) < 0)
            return carchive_fail(t, errno, "entry %s: cannot create the node: %s", e->path, strerror(errno));
        return apply_meta_nofollow(t, pfd, name, 1);
    }
    default:
        return carchive_fail(t, EINVAL, "entry %s: unsupported entry type '%c'", e->path, e->type);
    }
}

int carchive_finish_file(struct tar *t) {
    int rc = apply_meta_fd(t, t->file_fd, 1);
    if (close(t->file_fd) < 0 && rc == 0) rc = carchive_fail(t, errno, "entry %s: close: %s", t->cur.path, strerror(errno));
    t->file_fd = -1;
    return rc;
}

// MARK: - Directory times

// Deferred directory times: adding entries changed them; set them last, innermost first.
void carchive_set_dir_times(struct tar *t) {
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
#endif
