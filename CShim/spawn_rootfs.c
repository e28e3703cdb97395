// spawn_rootfs.c — the container's root filesystem, for the child-side executor (see
// spawn_internal.h): the overlay root, the plan's mounts, /dev nodes and symlinks, masked and
// read-only paths, pivot_root, the working directory and a read-only root.
//
// Everything in this file runs in the cloned child, between clone3 and execve (called from
// cshim_child_main in spawn_child.c); nothing here runs in the parent. Only raw system calls
// and async-signal-safe functions: no malloc, no stdio, no locks; paths are built on the stack.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

// MARK: - Raw system calls used by the child

long cshim_child_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.resolve = resolve;
    long r;
    do {
        r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    } while (r < 0 && (errno == EAGAIN || errno == EINTR));
    return r;
}

// Opens `path` (absolute, inside the rootfs) relative to rootfd, never leaving it.
static int open_in_root(int rootfd, const char *path, uint64_t flags) {
    return (int)cshim_child_openat2(rootfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

// Splits an absolute in-root path into its parent and last component (both in buffers).
static int split_path(const char *path, char parent[PATH_MAX], char last[NAME_MAX + 1]) {
    size_t n = cshim_child_len(path);
    while (n > 1 && path[n - 1] == '/') n--;  // trailing slashes
    size_t i = n;
    while (i > 0 && path[i - 1] != '/') i--;
    size_t lastlen = n - i;
    if (lastlen == 0 || lastlen > NAME_MAX) return -1;
    memcpy(last, path + i, lastlen);
    last[lastlen] = 0;
    if (i >= PATH_MAX) return -1;
    if (i == 0) {
        parent[0] = '/';
        parent[1] = 0;
    } else {
        memcpy(parent, path, i);
        parent[i] = 0;
    }
    return 0;
}

// Resolves `path` inside the root, creating missing directories (mode 0755) and, when
// as_file is set, the last component as an empty file. Returns an O_PATH fd or -1.
static int resolve_or_create(int rootfd, const char *path, int as_file) {
    int fd = open_in_root(rootfd, path, O_PATH);
    if (fd >= 0 || errno != ENOENT) return fd;

    // Walk the path, creating each missing component relative to its resolved parent.
    char prefix[PATH_MAX];
    size_t n = cshim_child_len(path);
    if (n >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t i = 0;
    prefix[0] = 0;
    while (i < n) {
        while (i < n && path[i] == '/') i++;
        if (i >= n) break;
        size_t start = i;
        while (i < n && path[i] != '/') i++;
        size_t len = i - start;
        char comp[NAME_MAX + 1];
        if (len > NAME_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(comp, path + start, len);
        comp[len] = 0;
        int is_last = 1;
        for (size_t j = i; j < n; j++)
            if (path[j] != '/') {
                is_last = 0;
                break;
            }
        char parent[PATH_MAX];
        cshim_child_copy(parent, sizeof(parent), prefix[0] ? prefix : "/");
        if (cshim_child_append(prefix, sizeof(prefix), "/") < 0 ||
            cshim_child_append(prefix, sizeof(prefix), comp) < 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int probe = open_in_root(rootfd, prefix, O_PATH);
        if (probe >= 0) {
            close(probe);
            continue;
        }
        if (errno != ENOENT) return -1;
        if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
            errno = ENOENT;
            return -1;
        }
        int pfd = open_in_root(rootfd, parent, O_PATH | O_DIRECTORY);
        if (pfd < 0) return -1;
        int r;
        if (is_last && as_file) {
            r = openat(pfd, comp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (r >= 0) {
                close(r);
                r = 0;
            }
        } else {
            r = mkdirat(pfd, comp, 0755);
        }
        int saved = errno;
        close(pfd);
        if (r < 0 && saved != EEXIST) {
            errno = saved;
            return -1;
        }
    }
    return open_in_root(rootfd, path, O_PATH);
}

// MARK: - Mounts

static unsigned long statvfs_to_ms(unsigned long f) {
    unsigned long ms = 0;
    if (f & ST_RDONLY) ms |= MS_RDONLY;
    if (f & ST_NOSUID) ms |= MS_NOSUID;
    if (f & ST_NODEV) ms |= MS_NODEV;
    if (f & ST_NOEXEC) ms |= MS_NOEXEC;
    if (f & ST_NOATIME) ms |= MS_NOATIME;
    if (f & ST_NODIRATIME) ms |= MS_NODIRATIME;
    if (f & ST_RELATIME) ms |= MS_RELATIME;
    return ms;
}

static void do_mount(struct child *c, const struct cshim_mount *m) {
    const int stage = CSHIM_STAGE_MOUNT;
    char tbuf[64], sbuf[64];
    int srcfd = -1;
    int as_file = (m->options & CSHIM_MOUNT_TARGET_FILE) != 0;

    if (m->options & CSHIM_MOUNT_BIND) {
        if (m->source_fd >= 0) {
            // A detached mount tree made by the caller (a volume subPath, resolved inside the
            // volume): attached below with move_mount.
            srcfd = m->source_fd;
        } else {
            if (m->source == NULL) cshim_child_fail(c, stage, EINVAL, m->target);
            // The source is a host path, opened before anything is mounted on the target.
            srcfd = open(m->source, O_PATH | O_CLOEXEC);
        }
        if (srcfd < 0) cshim_child_fail(c, stage, errno, m->source ? m->source : m->target);
        struct stat st;
        if (fstat(srcfd, &st) < 0) cshim_child_fail(c, stage, errno, m->source);
        as_file = !S_ISDIR(st.st_mode);
    }

    if (m->options & CSHIM_MOUNT_NO_SYMLINK) {
        // CVE-2023-27561: proc and sysfs must be mounted on an ordinary directory.
        char parent[PATH_MAX], last[NAME_MAX + 1];
        if (split_path(m->target, parent, last) == 0) {
            int pfd = open_in_root(c->rootfd, parent, O_PATH | O_DIRECTORY);
            if (pfd >= 0) {
                struct stat st;
                if (fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
                    close(pfd);
                    cshim_child_fail(c, stage, S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR, m->target);
                }
                close(pfd);
            }
        }
    }

    int tfd = resolve_or_create(c->rootfd, m->target, as_file);
    if (tfd < 0) cshim_child_fail(c, stage, errno, m->target);

    if ((m->options & CSHIM_MOUNT_BIND) && m->source_fd >= 0) {
        if (syscall(SYS_move_mount, srcfd, "", tfd, "", 4U /* F_EMPTY_PATH */ | 0x40U /* T_EMPTY_PATH */) < 0)
            cshim_child_fail(c, stage, errno, m->target);
    } else if (m->options & CSHIM_MOUNT_BIND) {
        unsigned long flags = MS_BIND | (m->flags & MS_REC);
        if (mount(cshim_child_fd_path(sbuf, srcfd), cshim_child_fd_path(tbuf, tfd), NULL, flags, NULL) < 0)
            cshim_child_fail(c, stage, errno, m->target);
    } else if (mount(m->source ? m->source : "none", cshim_child_fd_path(tbuf, tfd), m->fstype, m->flags & ~MS_REC,
                     m->data) < 0) {
        // In a user namespace that does not own the network namespace, sysfs cannot be
        // mounted: the runtime's /sys is bound instead, read-only when asked (runc does too).
        if (errno != EPERM || m->fstype == NULL || strcmp(m->fstype, "sysfs") != 0)
            cshim_child_fail(c, stage, errno, m->target);
        if (mount("/sys", tbuf, NULL, MS_BIND | MS_REC, NULL) < 0) cshim_child_fail(c, stage, errno, m->target);
        if (m->flags & MS_RDONLY) {
            // Through the new mount's root, not the directory below it.
            int rfd = open_in_root(c->rootfd, m->target, O_PATH);
            if (rfd < 0) cshim_child_fail(c, stage, errno, m->target);
            char rbuf[64];
            if (mount(NULL, cshim_child_fd_path(rbuf, rfd), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      NULL) < 0)
                cshim_child_fail(c, stage, errno, m->target);
            close(rfd);
        }
    }
    close(tfd);
    if (srcfd >= 0 && srcfd != m->source_fd) close(srcfd);

    int needs_new_fd = (m->options & (CSHIM_MOUNT_REMOUNT | CSHIM_MOUNT_RECURSIVE_RO)) || m->propagation;
    if (!needs_new_fd) return;

    // Reopen the target: the old fd points below the new mount, this one at its root.
    tfd = open_in_root(c->rootfd, m->target, O_PATH);
    if (tfd < 0) cshim_child_fail(c, stage, errno, m->target);
    cshim_child_fd_path(tbuf, tfd);
    if (m->options & CSHIM_MOUNT_REMOUNT) {
        unsigned long flags = MS_BIND | MS_REMOUNT |
                              (m->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
                                           MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW));
        if (mount(NULL, tbuf, NULL, flags, NULL) < 0) cshim_child_fail(c, stage, errno, m->target);
    }
    if (m->options & CSHIM_MOUNT_RECURSIVE_RO) {
        struct {
            uint64_t set, clr, prop, userns;
        } attr = {MOUNT_ATTR_RDONLY, 0, 0, 0};
        if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
            cshim_child_fail(c, stage, errno, m->target);
    }
    if (m->propagation) {
        if (mount(NULL, tbuf, NULL, m->propagation, NULL) < 0) cshim_child_fail(c, stage, errno, m->target);
    }
    close(tfd);
}

// MARK: - /dev

// The directory that holds `path` (made if missing), as a real directory fd: mknodat and
// symlinkat need one, not O_PATH. Its last component goes to `last`.
static int open_parent_dir(struct child *c, const char *path, char last[NAME_MAX + 1]) {
    const int stage = CSHIM_STAGE_DEVICES;
    char parent[PATH_MAX];
    if (split_path(path, parent, last) < 0) cshim_child_fail(c, stage, EINVAL, path);
    int pfd = resolve_or_create(c->rootfd, parent, 0);
    if (pfd < 0) cshim_child_fail(c, stage, errno, path);
    char pbuf[64];
    int dfd = open(cshim_child_fd_path(pbuf, pfd), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(pfd);
    if (dfd < 0) cshim_child_fail(c, stage, errno, path);
    return dfd;
}

// A user namespace cannot make device nodes: the runtime's node at the same path is bound
// over an empty file instead (runc does the same), after checking it is the device asked for.
static void bind_device(struct child *c, int dfd, const char *last, const struct cshim_device *d) {
    const int stage = CSHIM_STAGE_DEVICES;
    int src = open(d->path, O_PATH | O_CLOEXEC);
    if (src < 0) cshim_child_fail(c, stage, errno, d->path);
    struct stat st;
    if (fstat(src, &st) < 0) cshim_child_fail(c, stage, errno, d->path);
    if ((st.st_mode & S_IFMT) != (d->mode & S_IFMT) || st.st_rdev != makedev(d->major, d->minor))
        cshim_child_fail(c, stage, ENODEV, d->path);
    int f = openat(dfd, last, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f < 0) cshim_child_fail(c, stage, errno, d->path);
    close(f);
    int t = openat(dfd, last, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (t < 0) cshim_child_fail(c, stage, errno, d->path);
    char sbuf[64], tbuf[64];
    if (mount(cshim_child_fd_path(sbuf, src), cshim_child_fd_path(tbuf, t), NULL, MS_BIND, NULL) < 0)
        cshim_child_fail(c, stage, errno, d->path);
    close(t);
    close(src);
}

static void make_devices(struct child *c) {
    const int stage = CSHIM_STAGE_DEVICES;
    const struct cshim_spawn_plan *p = c->plan;
    for (size_t i = 0; i < p->ndevices; i++) {
        const struct cshim_device *d = &p->devices[i];
        char last[NAME_MAX + 1];
        int dfd = open_parent_dir(c, d->path, last);
        if (mknodat(dfd, last, d->mode, makedev(d->major, d->minor)) < 0) {
            if (errno == EPERM && (d->mode & S_IFMT) != S_IFIFO) {
                bind_device(c, dfd, last, d);
                close(dfd);
                continue;
            }
            if (errno != EEXIST) cshim_child_fail(c, stage, errno, d->path);
            if (!d->must_match) {  // one of the runtime's defaults: the image's file stays
                close(dfd);
                continue;
            }
            // config-linux.md: a file already at the path that is not the requested device
            // is an error (a node of the same type and numbers is taken as it is).
            struct stat st;
            if (fstatat(dfd, last, &st, AT_SYMLINK_NOFOLLOW) < 0) cshim_child_fail(c, stage, errno, d->path);
            if ((st.st_mode & S_IFMT) != (d->mode & S_IFMT) ||
                ((d->mode & S_IFMT) != S_IFIFO && st.st_rdev != makedev(d->major, d->minor)))
                cshim_child_fail(c, stage, EEXIST, d->path);
        } else {
            if (fchmodat(dfd, last, d->mode & 07777, 0) < 0) cshim_child_fail(c, stage, errno, d->path);
            if (fchownat(dfd, last, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
                cshim_child_fail(c, stage, errno, d->path);
        }
        close(dfd);
    }
    for (size_t i = 0; i < p->nsymlinks; i++) {
        const struct cshim_symlink *l = &p->symlinks[i];
        char last[NAME_MAX + 1];
        int dfd = open_parent_dir(c, l->path, last);
        if (symlinkat(l->target, dfd, last) < 0 && errno != EEXIST) cshim_child_fail(c, stage, errno, l->path);
        close(dfd);
    }
}

// MARK: - Masked and read-only paths

static void mask_paths(struct child *c) {
    const int stage = CSHIM_STAGE_MASKED_PATHS;
    const struct cshim_spawn_plan *p = c->plan;
    char tbuf[64], nbuf[64];
    for (size_t i = 0; i < p->nmasked; i++) {
        const char *path = p->masked_paths[i];
        int fd = open_in_root(c->rootfd, path, O_PATH);
        if (fd < 0) {
            if (errno == ENOENT) continue;
            cshim_child_fail(c, stage, errno, path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) cshim_child_fail(c, stage, errno, path);
        if (S_ISDIR(st.st_mode)) {
            if (mount("tmpfs", cshim_child_fd_path(tbuf, fd), "tmpfs", MS_RDONLY, NULL) < 0)
                cshim_child_fail(c, stage, errno, path);
        } else {
            // CVE-2025-31133: bind the runtime's /dev/null, opened and verified before any of
            // the container's files could be involved, never the container's /dev/null.
            if (mount(cshim_child_fd_path(nbuf, c->devnull_fd), cshim_child_fd_path(tbuf, fd), NULL, MS_BIND, NULL) < 0)
                cshim_child_fail(c, stage, errno, path);
        }
        close(fd);
    }
}

static void readonly_paths(struct child *c) {
    const int stage = CSHIM_STAGE_READONLY_PATHS;
    const struct cshim_spawn_plan *p = c->plan;
    char tbuf[64];
    for (size_t i = 0; i < p->nreadonly; i++) {
        const char *path = p->readonly_paths[i];
        int fd = open_in_root(c->rootfd, path, O_PATH);
        if (fd < 0) {
            if (errno == ENOENT) continue;
            cshim_child_fail(c, stage, errno, path);
        }
        if (mount(cshim_child_fd_path(tbuf, fd), tbuf, NULL, MS_BIND | MS_REC, NULL) < 0)
            cshim_child_fail(c, stage, errno, path);
        close(fd);
        fd = open_in_root(c->rootfd, path, O_PATH);
        if (fd < 0) cshim_child_fail(c, stage, errno, path);
        struct statvfs sv;
        unsigned long keep = 0;
        if (fstatvfs(fd, &sv) == 0) keep = statvfs_to_ms(sv.f_flag) & ~MS_RDONLY;
        if (mount(NULL, cshim_child_fd_path(tbuf, fd), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
            cshim_child_fail(c, stage, errno, path);
        close(fd);
    }
}

// MARK: - Root filesystem

// An overlay filesystem context with these layers, upper and work dirs, created (ready for
// fsmount); -errno on failure. `plus`: one lowerdir+ per layer (Linux 6.8), else a single
// lowerdir joined with ':' (snapshot paths never contain ':' or ','; one that does is refused).
// Used by the child and by the parent's idmapped-overlay helper (both own their memory).
int cshim_overlay_context(const char *const *lower, size_t nlower, const char *upper, const char *work, int plus) {
    int fs = (int)syscall(SYS_fsopen, "overlay", 1U /* FSOPEN_CLOEXEC */);
    if (fs < 0) return -errno;
    int err = 0;
    if (plus) {
        for (size_t i = 0; i < nlower && !err; i++)
            if (syscall(SYS_fsconfig, fs, 1 /* FSCONFIG_SET_STRING */, "lowerdir+", lower[i], 0) < 0) err = errno;
    } else {
        static char joined[65536];  // the process's own copy (no CLONE_VM)
        joined[0] = 0;
        for (size_t k = 0; k < nlower && !err; k++) {
            for (const char *q = lower[k]; *q; q++)
                if (*q == ':' || *q == ',') err = EINVAL;
            if ((k > 0 && cshim_child_append(joined, sizeof joined, ":") < 0) ||
                cshim_child_append(joined, sizeof joined, lower[k]) < 0)
                err = ENAMETOOLONG;
        }
        if (!err && syscall(SYS_fsconfig, fs, 1, "lowerdir", joined, 0) < 0) err = errno;
    }
    if (!err && upper && syscall(SYS_fsconfig, fs, 1, "upperdir", upper, 0) < 0) err = errno;
    if (!err && work && syscall(SYS_fsconfig, fs, 1, "workdir", work, 0) < 0) err = errno;
    if (!err && syscall(SYS_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) < 0) err = errno;
    if (err) {
        close(fs);
        return -err;
    }
    return fs;
}

// The overlay mount: lowerdir+ per layer, or (before Linux 6.8, which passes lowerdir+ on as
// legacy mount data and refuses it at create) one joined lowerdir. A detached mount fd, or -errno.
int cshim_overlay_mount(const char *const *lower, size_t nlower, const char *upper, const char *work) {
    int fs = cshim_overlay_context(lower, nlower, upper, work, 1);
    if (fs == -EINVAL) fs = cshim_overlay_context(lower, nlower, upper, work, 0);
    if (fs < 0) return fs;
    int mnt = (int)syscall(SYS_fsmount, fs, 1U /* FSMOUNT_CLOEXEC */, 0);
    int e = errno;
    close(fs);
    return mnt < 0 ? -e : mnt;
}

// The mount point of the mount that holds `path` (a directory): the highest ancestor with the
// same mount id (statx STATX_MNT_ID). Writes it into `out`; -1 when it cannot be told.
static int mount_point_of(const char *path, char *out, size_t cap) {
    struct statx sx;
    if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID)) return -1;
    unsigned long long id = sx.stx_mnt_id;
    cshim_child_copy(out, cap, path);
    size_t n = cshim_child_len(out);
    if (n == 0 || n + 1 >= cap) return -1;
    while (n > 1) {
        // The parent directory of out[0..<n].
        size_t cut = n;
        while (cut > 0 && out[cut - 1] != '/') cut--;
        if (cut == 0) return -1;
        char saved = out[cut > 1 ? cut - 1 : cut];
        out[cut > 1 ? cut - 1 : cut] = 0;
        if (statx(AT_FDCWD, out, 0, STATX_MNT_ID, &sx) < 0 || sx.stx_mnt_id != id) {
            out[cut > 1 ? cut - 1 : cut] = saved;  // the parent is another mount: this is the point
            return 0;
        }
        n = cshim_child_len(out);
    }
    return 0;  // "/"
}

void cshim_child_setup_rootfs(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    // The propagation asked for applies now when it is shared or slave (a bidirectional
    // volume must be bound while it is still a peer of the host's mount), and after
    // pivot_root otherwise (private, unbindable), as runc and crun do. Default: rslave.
    unsigned long asked = p->root_propagation;
    unsigned long prop = (asked & (MS_SHARED | MS_SLAVE)) ? asked : (MS_SLAVE | MS_REC);
    // In the runtime's own mount namespace the host's "/" is never touched.
    if (!p->rootfs_chroot && mount(NULL, "/", NULL, prop, NULL) < 0)
        cshim_child_fail(c, CSHIM_STAGE_ROOT_PROPAGATION, errno, "/");
    if (!p->rootfs_chroot && (prop & MS_SHARED)) {
        // pivot_root refuses a shared parent of the new root or of the old root, and the
        // rootfs's mounts must not reach the host: both parents become private (runc's
        // rootfsParentMountPrivate), not what is mounted below them.
        char parent[PATH_MAX], point[PATH_MAX];
        cshim_child_copy(parent, sizeof parent, p->rootfs);
        size_t n = cshim_child_len(parent);
        while (n > 1 && parent[n - 1] != '/') n--;
        parent[n > 1 ? n - 1 : n] = 0;
        if (mount_point_of(parent, point, sizeof point) < 0) cshim_child_fail(c, CSHIM_STAGE_ROOT_PROPAGATION, errno, parent);
        if (mount(NULL, point, NULL, MS_PRIVATE, NULL) < 0) cshim_child_fail(c, CSHIM_STAGE_ROOT_PROPAGATION, errno, point);
        if (mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0) cshim_child_fail(c, CSHIM_STAGE_ROOT_PROPAGATION, errno, "/");
    }

    if (p->rootfs_mount_fd >= 0) {
        // A root the parent mounted (an overlay of idmapped layers): attached here.
        if (syscall(SYS_move_mount, p->rootfs_mount_fd, "", AT_FDCWD, p->rootfs, 4U /* MOVE_MOUNT_F_EMPTY_PATH */) < 0)
            cshim_child_fail(c, CSHIM_STAGE_ROOTFS, errno, p->rootfs);
    } else if (p->overlay_lower != NULL && p->noverlay_lower > 0) {
        // The container's root: its image's layers plus its own upper dir, mounted here in
        // the child's mount namespace with the new mount API.
        int mnt = cshim_overlay_mount(p->overlay_lower, p->noverlay_lower, p->overlay_upper, p->overlay_work);
        if (mnt < 0) cshim_child_fail(c, CSHIM_STAGE_ROOTFS, -mnt, "overlay");
        if (syscall(SYS_move_mount, mnt, "", AT_FDCWD, p->rootfs, 4U /* MOVE_MOUNT_F_EMPTY_PATH */) < 0)
            cshim_child_fail(c, CSHIM_STAGE_ROOTFS, errno, p->rootfs);
        close(mnt);
    }

    // Bind the rootfs onto itself so it is a mount point pivot_root can use.
    if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        cshim_child_fail(c, CSHIM_STAGE_ROOTFS, errno, p->rootfs);
    if (p->rootfs_chroot && mount(NULL, p->rootfs, NULL, MS_PRIVATE | MS_REC, NULL) < 0)
        cshim_child_fail(c, CSHIM_STAGE_ROOT_PROPAGATION, errno, p->rootfs);
    c->rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->rootfd < 0) cshim_child_fail(c, CSHIM_STAGE_ROOTFS, errno, p->rootfs);

    for (size_t i = 0; i < p->nmounts; i++) do_mount(c, &p->mounts[i]);
    if (p->setup_dev) make_devices(c);
    // Sysctls before /proc/sys becomes read-only (runc writes them before its readonly paths).
    cshim_child_write_sysctls(c);
    c->sysctls_done = 1;
    mask_paths(c);
    readonly_paths(c);
}

// Makes the prepared rootfs the root: pivot_root, the cwd, a read-only root.
void cshim_child_pivot_root(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    // pivot_root(".", ".") and detach the old root stacked on top (as runc does): no
    // temporary directory is needed inside the rootfs.
    const int stage = CSHIM_STAGE_PIVOT_ROOT;
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0) cshim_child_fail(c, stage, errno, "/");
    char rbuf[64];
    int newroot = open(cshim_child_fd_path(rbuf, c->rootfd), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (newroot < 0) cshim_child_fail(c, stage, errno, p->rootfs);
    if (fchdir(newroot) < 0) cshim_child_fail(c, stage, errno, p->rootfs);
    if (p->rootfs_chroot) {
        // The host's mount namespace: chroot, as runc does without a mount namespace.
        if (chroot(".") < 0) cshim_child_fail(c, stage, errno, p->rootfs);
        if (chdir("/") < 0) cshim_child_fail(c, stage, errno, "/");
    } else {
        if (syscall(SYS_pivot_root, ".", ".") < 0) cshim_child_fail(c, stage, errno, p->rootfs);
        if (fchdir(oldroot) < 0) cshim_child_fail(c, stage, errno, "old root");
        // Keep the unmount of the old root from propagating to the host.
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) cshim_child_fail(c, stage, errno, "old root");
        if (umount2(".", MNT_DETACH) < 0) cshim_child_fail(c, stage, errno, "old root");
        if (chdir("/") < 0) cshim_child_fail(c, stage, errno, "/");
        // The root's propagation as asked, now that it is the root (runc does it here too).
        if (p->root_propagation && mount(NULL, "/", NULL, p->root_propagation, NULL) < 0)
            cshim_child_fail(c, CSHIM_STAGE_ROOT_PROPAGATION, errno, "/");
    }
    close(oldroot);
    close(newroot);
    close(c->rootfd);
    c->rootfd = -1;

    // A missing working directory is created (0755), inside the new root and before it may
    // become read-only, as runc does (MkdirAll in prepareRootfs).
    if (p->cwd && p->cwd[0] == '/' && p->cwd[1]) {
        char dir[PATH_MAX];
        size_t n = strlen(p->cwd);
        if (n >= sizeof dir) cshim_child_fail(c, CSHIM_STAGE_CWD, ENAMETOOLONG, p->cwd);
        memcpy(dir, p->cwd, n + 1);
        for (char *q = dir + 1;; q++) {
            if (*q == '/' || *q == 0) {
                char saved = *q;
                *q = 0;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) cshim_child_fail(c, CSHIM_STAGE_CWD, errno, p->cwd);
                *q = saved;
                if (saved == 0) break;
            }
        }
    }

    if (p->rootfs_readonly) {
        struct statvfs sv;
        unsigned long keep = 0;
        if (statvfs("/", &sv) == 0) keep = statvfs_to_ms(sv.f_flag) & ~MS_RDONLY;
        if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
            cshim_child_fail(c, CSHIM_STAGE_READONLY_ROOT, errno, "/");
    }
}
#endif
