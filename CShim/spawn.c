// spawn.c — the child-side executor (see cshim_spawn.h).
//
// Code in this file runs in two places:
//   - cshim_spawn() and cshim_spawn_wait_exec() run in the parent (any thread of a Swift
//     process);
//   - everything reached from child_main() runs in the cloned child, between clone3 and
//     execve. The child is a copy of a multithreaded process made by a raw clone3, so glibc's
//     view of threads and locks is stale there: only raw system calls and async-signal-safe
//     functions are allowed (no malloc, no stdio, no locale, no glibc set*id wrappers, which
//     would try to signal threads that do not exist in the child). Strings are built on the
//     stack.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "cshim_spawn.h"
#include "cshim_syscall.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(sizeof(gid_t) == sizeof(unsigned int), "gid_t");

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#define SYS_move_mount 429
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

// MARK: - Messages from the child

enum { MSG_ERROR = 1, MSG_READY = 2, MSG_HOOKS = 3 };

struct child_msg {
    int32_t kind;
    int32_t stage;
    int32_t error;
    char detail[512];
};

// State of the child, all on its stack.
struct child {
    const struct cshim_spawn_plan *plan;
    int report_fd;
    int rootfd;       // O_PATH fd of the (self-bound) rootfs, before pivot_root
    int devnull_fd;   // O_PATH fd of the host's /dev/null, verified char 1:3
    int open_gate_fd; // the gate after it opened (a FIFO: failures write 'E' there), or -1
    char exe[PATH_MAX];
};

// MARK: - Async-signal-safe string helpers

static size_t s_len(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

// Appends src to dst (capacity cap), always NUL-terminated. Returns 0, or -1 if truncated.
static int s_append(char *dst, size_t cap, const char *src) {
    size_t n = s_len(dst);
    size_t m = s_len(src);
    if (n + m + 1 > cap) return -1;
    memcpy(dst + n, src, m + 1);
    return 0;
}

static void s_copy(char *dst, size_t cap, const char *src) {
    if (cap == 0) return;
    dst[0] = 0;
    size_t m = s_len(src);
    if (m >= cap) m = cap - 1;
    memcpy(dst, src, m);
    dst[m] = 0;
}

// "/proc/self/fd/<fd>" into buf.
static const char *fd_path(char buf[64], int fd) {
    char digits[16];
    int n = 0;
    unsigned int v = (unsigned int)fd;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 15);
    memcpy(buf, "/proc/self/fd/", 14);
    int i = 14;
    while (n) buf[i++] = digits[--n];
    buf[i] = 0;
    return buf;
}

// MARK: - Reporting

static void report(struct child *c, int kind, int stage, int err, const char *detail) {
    struct child_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = kind;
    m.stage = stage;
    m.error = err;
    if (detail) s_copy(m.detail, sizeof(m.detail), detail);
    const char *p = (const char *)&m;
    size_t left = sizeof(m);
    while (left > 0) {
        ssize_t w = write(c->report_fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        left -= (size_t)w;
    }
}

__attribute__((noreturn)) static void fail(struct child *c, int stage, int err, const char *detail) {
    // After the gate opened, `start` may be gone from the report pipe but watches the gate
    // FIFO: an 'E' there says the program never ran.
    if (c->open_gate_fd >= 0) {
        signal(SIGPIPE, SIG_IGN);
        ssize_t w = write(c->open_gate_fd, "E", 1);
        (void)w;
    }
    report(c, MSG_ERROR, stage, err, detail);
    _exit(127);
}

// MARK: - Raw system calls used by the child

static long sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve) {
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
    return (int)sys_openat2(rootfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

// Splits an absolute in-root path into its parent and last component (both in buffers).
static int split_path(const char *path, char parent[PATH_MAX], char last[NAME_MAX + 1]) {
    size_t n = s_len(path);
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
    size_t n = s_len(path);
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
        s_copy(parent, sizeof(parent), prefix[0] ? prefix : "/");
        if (s_append(prefix, sizeof(prefix), "/") < 0 || s_append(prefix, sizeof(prefix), comp) < 0) {
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
            if (m->source == NULL) fail(c, stage, EINVAL, m->target);
            // The source is a host path, opened before anything is mounted on the target.
            srcfd = open(m->source, O_PATH | O_CLOEXEC);
        }
        if (srcfd < 0) fail(c, stage, errno, m->source ? m->source : m->target);
        struct stat st;
        if (fstat(srcfd, &st) < 0) fail(c, stage, errno, m->source);
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
                    fail(c, stage, S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR, m->target);
                }
                close(pfd);
            }
        }
    }

    int tfd = resolve_or_create(c->rootfd, m->target, as_file);
    if (tfd < 0) fail(c, stage, errno, m->target);

    if ((m->options & CSHIM_MOUNT_BIND) && m->source_fd >= 0) {
        if (syscall(SYS_move_mount, srcfd, "", tfd, "", 4U /* F_EMPTY_PATH */ | 0x40U /* T_EMPTY_PATH */) < 0)
            fail(c, stage, errno, m->target);
    } else if (m->options & CSHIM_MOUNT_BIND) {
        unsigned long flags = MS_BIND | (m->flags & MS_REC);
        if (mount(fd_path(sbuf, srcfd), fd_path(tbuf, tfd), NULL, flags, NULL) < 0) fail(c, stage, errno, m->target);
    } else {
        if (mount(m->source ? m->source : "none", fd_path(tbuf, tfd), m->fstype, m->flags & ~MS_REC, m->data) < 0)
            fail(c, stage, errno, m->target);
    }
    close(tfd);
    if (srcfd >= 0 && srcfd != m->source_fd) close(srcfd);

    int needs_new_fd = (m->options & (CSHIM_MOUNT_REMOUNT | CSHIM_MOUNT_RECURSIVE_RO)) || m->propagation;
    if (!needs_new_fd) return;

    // Reopen the target: the old fd points below the new mount, this one at its root.
    tfd = open_in_root(c->rootfd, m->target, O_PATH);
    if (tfd < 0) fail(c, stage, errno, m->target);
    fd_path(tbuf, tfd);
    if (m->options & CSHIM_MOUNT_REMOUNT) {
        unsigned long flags = MS_BIND | MS_REMOUNT |
                              (m->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
                                           MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW));
        if (mount(NULL, tbuf, NULL, flags, NULL) < 0) fail(c, stage, errno, m->target);
    }
    if (m->options & CSHIM_MOUNT_RECURSIVE_RO) {
        struct {
            uint64_t set, clr, prop, userns;
        } attr = {MOUNT_ATTR_RDONLY, 0, 0, 0};
        if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
            fail(c, stage, errno, m->target);
    }
    if (m->propagation) {
        if (mount(NULL, tbuf, NULL, m->propagation, NULL) < 0) fail(c, stage, errno, m->target);
    }
    close(tfd);
}

// MARK: - /dev

// The directory that holds `path` (made if missing), as a real directory fd: mknodat and
// symlinkat need one, not O_PATH. Its last component goes to `last`.
static int open_parent_dir(struct child *c, const char *path, char last[NAME_MAX + 1]) {
    const int stage = CSHIM_STAGE_DEVICES;
    char parent[PATH_MAX];
    if (split_path(path, parent, last) < 0) fail(c, stage, EINVAL, path);
    int pfd = resolve_or_create(c->rootfd, parent, 0);
    if (pfd < 0) fail(c, stage, errno, path);
    char pbuf[64];
    int dfd = open(fd_path(pbuf, pfd), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(pfd);
    if (dfd < 0) fail(c, stage, errno, path);
    return dfd;
}

static void make_devices(struct child *c) {
    const int stage = CSHIM_STAGE_DEVICES;
    const struct cshim_spawn_plan *p = c->plan;
    for (size_t i = 0; i < p->ndevices; i++) {
        const struct cshim_device *d = &p->devices[i];
        char last[NAME_MAX + 1];
        int dfd = open_parent_dir(c, d->path, last);
        if (mknodat(dfd, last, d->mode, makedev(d->major, d->minor)) < 0) {
            if (errno != EEXIST) fail(c, stage, errno, d->path);
        } else {
            if (fchmodat(dfd, last, d->mode & 07777, 0) < 0) fail(c, stage, errno, d->path);
            if (fchownat(dfd, last, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) fail(c, stage, errno, d->path);
        }
        close(dfd);
    }
    for (size_t i = 0; i < p->nsymlinks; i++) {
        const struct cshim_symlink *l = &p->symlinks[i];
        char last[NAME_MAX + 1];
        int dfd = open_parent_dir(c, l->path, last);
        if (symlinkat(l->target, dfd, last) < 0 && errno != EEXIST) fail(c, stage, errno, l->path);
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
            fail(c, stage, errno, path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) fail(c, stage, errno, path);
        if (S_ISDIR(st.st_mode)) {
            if (mount("tmpfs", fd_path(tbuf, fd), "tmpfs", MS_RDONLY, NULL) < 0) fail(c, stage, errno, path);
        } else {
            // CVE-2025-31133: bind the host's /dev/null, opened and verified before any of the
            // container's files could be involved, never the container's /dev/null.
            if (mount(fd_path(nbuf, c->devnull_fd), fd_path(tbuf, fd), NULL, MS_BIND, NULL) < 0)
                fail(c, stage, errno, path);
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
            fail(c, stage, errno, path);
        }
        if (mount(fd_path(tbuf, fd), tbuf, NULL, MS_BIND | MS_REC, NULL) < 0) fail(c, stage, errno, path);
        close(fd);
        fd = open_in_root(c->rootfd, path, O_PATH);
        if (fd < 0) fail(c, stage, errno, path);
        struct statvfs sv;
        unsigned long keep = 0;
        if (fstatvfs(fd, &sv) == 0) keep = statvfs_to_ms(sv.f_flag) & ~MS_RDONLY;
        if (mount(NULL, fd_path(tbuf, fd), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
            fail(c, stage, errno, path);
        close(fd);
    }
}

// MARK: - Root filesystem

// An overlay filesystem context with the plan's layers, upper and work dirs, created (ready
// for fsmount); -errno on failure. `plus`: one lowerdir+ per layer (Linux 6.8), else a single
// lowerdir joined with ':' (snapshot paths never contain ':' or ','; one that does is refused).
static int overlay_context(struct child *c, int plus) {
    const struct cshim_spawn_plan *p = c->plan;
    int fs = (int)syscall(SYS_fsopen, "overlay", 1U /* FSOPEN_CLOEXEC */);
    if (fs < 0) return -errno;
    int err = 0;
    if (plus) {
        for (size_t i = 0; i < p->noverlay_lower && !err; i++)
            if (syscall(SYS_fsconfig, fs, 1 /* FSCONFIG_SET_STRING */, "lowerdir+", p->overlay_lower[i], 0) < 0) err = errno;
    } else {
        static char joined[65536];  // the child's own copy (no CLONE_VM)
        joined[0] = 0;
        for (size_t k = 0; k < p->noverlay_lower && !err; k++) {
            for (const char *q = p->overlay_lower[k]; *q; q++)
                if (*q == ':' || *q == ',') err = EINVAL;
            if ((k > 0 && s_append(joined, sizeof joined, ":") < 0) || s_append(joined, sizeof joined, p->overlay_lower[k]) < 0)
                err = ENAMETOOLONG;
        }
        if (!err && syscall(SYS_fsconfig, fs, 1, "lowerdir", joined, 0) < 0) err = errno;
    }
    if (!err && p->overlay_upper && syscall(SYS_fsconfig, fs, 1, "upperdir", p->overlay_upper, 0) < 0) err = errno;
    if (!err && p->overlay_work && syscall(SYS_fsconfig, fs, 1, "workdir", p->overlay_work, 0) < 0) err = errno;
    if (!err && syscall(SYS_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) < 0) err = errno;
    if (err) {
        close(fs);
        return -err;
    }
    return fs;
}

static void setup_rootfs(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    unsigned long prop = p->root_propagation ? p->root_propagation : (MS_SLAVE | MS_REC);
    if (mount(NULL, "/", NULL, prop, NULL) < 0) fail(c, CSHIM_STAGE_ROOT_PROPAGATION, errno, "/");

    if (p->overlay_lower != NULL && p->noverlay_lower > 0) {
        // The container's root: its image's layers plus its own upper dir, mounted here in
        // the child's mount namespace with the new mount API (lowerdir+ per layer, Linux 6.8).
        const int ostage = CSHIM_STAGE_ROOTFS;
        int fs = overlay_context(c, 1);
        if (fs < 0) {
            // Before Linux 6.8 overlay has no lowerdir+ (older kernels pass it on as legacy
            // mount data and refuse it at create): one "lowerdir" of the layers joined by ':'.
            if (fs != -EINVAL) fail(c, ostage, -fs, "overlay");
            fs = overlay_context(c, 0);
            if (fs < 0) fail(c, ostage, -fs, "overlay");
        }
        int mnt = (int)syscall(SYS_fsmount, fs, 1U /* FSMOUNT_CLOEXEC */, 0);
        if (mnt < 0) fail(c, ostage, errno, "overlay");
        if (syscall(SYS_move_mount, mnt, "", AT_FDCWD, p->rootfs, 4U /* MOVE_MOUNT_F_EMPTY_PATH */) < 0)
            fail(c, ostage, errno, p->rootfs);
        close(mnt);
        close(fs);
    }

    // Bind the rootfs onto itself so it is a mount point pivot_root can use.
    if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) fail(c, CSHIM_STAGE_ROOTFS, errno, p->rootfs);
    c->rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->rootfd < 0) fail(c, CSHIM_STAGE_ROOTFS, errno, p->rootfs);

    for (size_t i = 0; i < p->nmounts; i++) do_mount(c, &p->mounts[i]);
    if (p->setup_dev) make_devices(c);
    mask_paths(c);
    readonly_paths(c);
}

// Makes the prepared rootfs the root: pivot_root, the cwd, a read-only root.
static void pivot_into_root(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    // pivot_root(".", ".") and detach the old root stacked on top (as runc does): no
    // temporary directory is needed inside the rootfs.
    const int stage = CSHIM_STAGE_PIVOT_ROOT;
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0) fail(c, stage, errno, "/");
    char rbuf[64];
    int newroot = open(fd_path(rbuf, c->rootfd), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (newroot < 0) fail(c, stage, errno, p->rootfs);
    if (fchdir(newroot) < 0) fail(c, stage, errno, p->rootfs);
    if (syscall(SYS_pivot_root, ".", ".") < 0) fail(c, stage, errno, p->rootfs);
    if (fchdir(oldroot) < 0) fail(c, stage, errno, "old root");
    // Keep the unmount of the old root from propagating to the host.
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) fail(c, stage, errno, "old root");
    if (umount2(".", MNT_DETACH) < 0) fail(c, stage, errno, "old root");
    if (chdir("/") < 0) fail(c, stage, errno, "/");
    close(oldroot);
    close(newroot);
    close(c->rootfd);
    c->rootfd = -1;

    // A missing working directory is created (0755), inside the new root and before it may
    // become read-only, as runc does (MkdirAll in prepareRootfs).
    if (p->cwd && p->cwd[0] == '/' && p->cwd[1]) {
        char dir[PATH_MAX];
        size_t n = strlen(p->cwd);
        if (n >= sizeof dir) fail(c, CSHIM_STAGE_CWD, ENAMETOOLONG, p->cwd);
        memcpy(dir, p->cwd, n + 1);
        for (char *q = dir + 1;; q++) {
            if (*q == '/' || *q == 0) {
                char saved = *q;
                *q = 0;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) fail(c, CSHIM_STAGE_CWD, errno, p->cwd);
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
            fail(c, CSHIM_STAGE_READONLY_ROOT, errno, "/");
    }
}

// MARK: - Sysctls (after pivot_root: the container's /proc/sys)

static void write_sysctls(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    for (size_t i = 0; i < p->nsysctls; i++) {
        char path[PATH_MAX] = "/proc/sys/";
        if (s_append(path, sizeof(path), p->sysctls[i].path) < 0) fail(c, CSHIM_STAGE_SYSCTL, ENAMETOOLONG, p->sysctls[i].path);
        int fd = (int)sys_openat2(AT_FDCWD, path, O_WRONLY | O_CLOEXEC, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
        if (fd < 0) fail(c, CSHIM_STAGE_SYSCTL, errno, p->sysctls[i].path);
        size_t len = s_len(p->sysctls[i].value);
        if (write(fd, p->sysctls[i].value, len) != (ssize_t)len) fail(c, CSHIM_STAGE_SYSCTL, errno, p->sysctls[i].path);
        close(fd);
    }
}

// MARK: - Capabilities, ids, seccomp

static void apply_bounding(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    for (int cap = 0; cap <= p->cap_last && cap < 64; cap++) {
        if (p->cap_bounding & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            fail(c, CSHIM_STAGE_CAPABILITIES, errno, "bounding set");
    }
}

static void apply_caps(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)p->cap_effective;
    data[1].effective = (uint32_t)(p->cap_effective >> 32);
    data[0].permitted = (uint32_t)p->cap_permitted;
    data[1].permitted = (uint32_t)(p->cap_permitted >> 32);
    data[0].inheritable = (uint32_t)p->cap_inheritable;
    data[1].inheritable = (uint32_t)(p->cap_inheritable >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0) fail(c, CSHIM_STAGE_CAPABILITIES, errno, "capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        fail(c, CSHIM_STAGE_CAPABILITIES, errno, "ambient");
    for (int cap = 0; cap <= p->cap_last && cap < 64; cap++) {
        if (!(p->cap_ambient & (1ULL << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            fail(c, CSHIM_STAGE_CAPABILITIES, errno, "ambient");
    }
}

static void load_seccomp(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    if (p->seccomp_filter == NULL || p->seccomp_len == 0) return;
    struct sock_fprog prog = {(unsigned short)p->seccomp_len, (struct sock_filter *)p->seccomp_filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog) < 0)
        fail(c, CSHIM_STAGE_SECCOMP, errno, "seccomp");
}

static void set_user(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    // Raw system calls: glibc's wrappers would broadcast to threads this copy does not have.
    size_t n = p->ngroups;
    if (syscall(SYS_setgroups, n, n ? p->groups : NULL) < 0) fail(c, CSHIM_STAGE_USER, errno, "setgroups");
    if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0) fail(c, CSHIM_STAGE_USER, errno, "setresgid");
    if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0) fail(c, CSHIM_STAGE_USER, errno, "setresuid");
}

// MARK: - Finding the executable

static int is_executable(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) return -1;
    if (S_ISDIR(st.st_mode)) {
        errno = EACCES;
        return -1;
    }
    if (syscall(SYS_faccessat, AT_FDCWD, path, X_OK) < 0) return -1;
    return 0;
}

// Fills c->exe with the program to run, searching PATH when argv[0] has no '/'.
static void lookup_exe(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    const char *name = p->argv[0];
    if (name == NULL || name[0] == 0) fail(c, CSHIM_STAGE_LOOKUP, ENOENT, "");
    if (strchr(name, '/') != NULL) {
        if (is_executable(name) < 0) fail(c, CSHIM_STAGE_EXEC, errno, name);
        s_copy(c->exe, sizeof(c->exe), name);
        return;
    }
    const char *path = p->path_env ? p->path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int saw_eacces = 0;
    const char *d = path;
    while (1) {
        const char *e = strchr(d, ':');
        size_t len = e ? (size_t)(e - d) : s_len(d);
        char cand[PATH_MAX];
        if (len == 0) {
            cand[0] = 0;  // empty entry = current directory
        } else if (len < sizeof(cand)) {
            memcpy(cand, d, len);
            cand[len] = 0;
            if (s_append(cand, sizeof(cand), "/") < 0) cand[0] = 0;
        } else {
            cand[0] = 0;
        }
        if (s_append(cand, sizeof(cand), name) == 0) {
            if (is_executable(cand) == 0) {
                s_copy(c->exe, sizeof(c->exe), cand);
                return;
            }
            if (errno == EACCES) saw_eacces = 1;
        }
        if (!e) break;
        d = e + 1;
    }
    fail(c, CSHIM_STAGE_LOOKUP, saw_eacces ? EACCES : ENOENT, name);
}

// MARK: - fds

// Closes every fd >= 3 except the ones in keep[] (already CLOEXEC ones stay until exec).
// Opens a pty in the (new or joined) root's /dev/pts, sends the master over
// plan->console_socket and returns the slave; with a new root the slave is bound over
// /dev/console (runc's setupConsole).
static int open_console(struct child *c) {
    const int stage = CSHIM_STAGE_CONSOLE;
    const struct cshim_spawn_plan *p = c->plan;
    int ptm = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (ptm < 0) ptm = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (ptm < 0) fail(c, stage, errno, "/dev/pts/ptmx");
    int unlock = 0;
    if (ioctl(ptm, TIOCSPTLCK, &unlock) < 0) fail(c, stage, errno, "TIOCSPTLCK");
    int pts = ioctl(ptm, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (pts < 0) fail(c, stage, errno, "TIOCGPTPEER");
    if (p->console_rows != 0 || p->console_cols != 0) {
        struct winsize ws = {.ws_row = p->console_rows, .ws_col = p->console_cols};
        if (ioctl(ptm, TIOCSWINSZ, &ws) < 0) fail(c, stage, errno, "TIOCSWINSZ");
    }
    if (p->rootfs != NULL) {
        int t = open("/dev/console", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (t < 0) fail(c, stage, errno, "/dev/console");
        char sbuf[64], tbuf[64];
        if (mount(fd_path(sbuf, pts), fd_path(tbuf, t), NULL, MS_BIND, NULL) < 0) fail(c, stage, errno, "/dev/console");
        close(t);
    }
    char tag = 'M';
    struct iovec iov = {.iov_base = &tag, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &ptm, sizeof(int));
    if (sendmsg(p->console_socket, &mh, MSG_NOSIGNAL) < 0) fail(c, stage, errno, "console socket");
    close(ptm);
    return pts;
}

static void close_fds_except(const int *keep, size_t nkeep) {
    unsigned int from = 3;
    while (1) {
        // The smallest kept fd >= from.
        unsigned int next = ~0U;
        for (size_t i = 0; i < nkeep; i++)
            if (keep[i] >= (int)from && (unsigned int)keep[i] < next) next = (unsigned int)keep[i];
        if (next == ~0U) {
            syscall(SYS_close_range, from, ~0U, 0);
            return;
        }
        if (next > from) syscall(SYS_close_range, from, next - 1, 0);
        from = next + 1;
    }
}

// MARK: - The child

// MARK: - Hooks

static char hook_state_creating[65536];
static char hook_state_created[65536];

static int read_full(int fd, void *buf, size_t n) {
    char *b = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

// [u32 length][bytes] into a NUL-terminated buffer of 64 KiB.
static int read_state(int fd, char *buf) {
    uint32_t n;
    if (read_full(fd, &n, sizeof(n)) < 0 || n >= 65536) return -1;
    if (read_full(fd, buf, n) < 0) return -1;
    buf[n] = 0;
    return 0;
}

static void u_to_s(char *dst, size_t cap, unsigned long v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 23);
    size_t k = 0;
    while (n && k + 1 < cap) dst[k++] = tmp[--n];
    dst[k] = 0;
}

int cshim_run_hook(const struct cshim_hook *h, const char *state, size_t len, char *err, size_t errlen) {
    err[0] = 0;
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0) {
        s_copy(err, errlen, "pipe: ");
        s_append(err, errlen, strerrordesc_np(errno));
        return -1;
    }
    const char *default_argv[2] = {h->path, NULL};
    const char *empty_env[1] = {NULL};
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        // Its own process group, so that a timeout kills what it started too.
        setpgid(0, 0);
        if (dup2(in[0], 0) < 0) _exit(126);
        // Only stdin, stdout and stderr go to the hook (as Go's os/exec gives runc's).
        syscall(SYS_close_range, 3, ~0U, 0);
        execve(h->path, (char *const *)(h->argv && h->argv[0] ? (const char *const *)h->argv : default_argv),
               (char *const *)(h->envp ? (const char *const *)h->envp : empty_env));
        int e = errno;
        char msg[PATH_MAX + 96] = "hook ";
        s_append(msg, sizeof(msg), h->path);
        s_append(msg, sizeof(msg), ": ");
        s_append(msg, sizeof(msg), strerrordesc_np(e) ? strerrordesc_np(e) : "exec failed");
        s_append(msg, sizeof(msg), "\n");
        ssize_t w = write(2, msg, s_len(msg));
        (void)w;
        _exit(127);
    }
    int fork_errno = errno;
    close(in[0]);
    if (pid < 0) {
        close(in[1]);
        s_copy(err, errlen, "fork: ");
        s_append(err, errlen, strerrordesc_np(fork_errno));
        return -1;
    }
    // The state, as much as the pipe takes without waiting (a hook need not read it).
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(in[1], state + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(in[1]);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int timed_out = 0;
    if (pfd >= 0 && h->timeout > 0) {
        struct pollfd pp = {.fd = pfd, .events = POLLIN};
        int r;
        do {
            r = poll(&pp, 1, h->timeout * 1000);
        } while (r < 0 && errno == EINTR);
        if (r == 0) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
    }
    if (pfd >= 0) close(pfd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char num[24];
    if (timed_out) {
        u_to_s(num, sizeof(num), (unsigned long)h->timeout);
        s_copy(err, errlen, "timed out after ");
        s_append(err, errlen, num);
        s_append(err, errlen, " s");
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFEXITED(status)) {
        u_to_s(num, sizeof(num), (unsigned long)WEXITSTATUS(status));
        s_copy(err, errlen, "exited with status ");
    } else {
        u_to_s(num, sizeof(num), (unsigned long)WTERMSIG(status));
        s_copy(err, errlen, "killed by signal ");
    }
    s_append(err, errlen, num);
    return -1;
}

// Runs hooks of one kind in order; the first failure fails the spawn.
static void run_hooks(struct child *c, const char *kind, const struct cshim_hook *hooks, size_t n, const char *state,
                      int after_gate) {
    for (size_t i = 0; i < n; i++) {
        char err[256];
        if (cshim_run_hook(&hooks[i], state, s_len(state), err, sizeof(err)) == 0) continue;
        char detail[512];
        char num[24];
        u_to_s(num, sizeof(num), (unsigned long)i);
        s_copy(detail, sizeof(detail), kind);
        s_append(detail, sizeof(detail), " hook ");
        s_append(detail, sizeof(detail), num);
        s_append(detail, sizeof(detail), " (");
        s_append(detail, sizeof(detail), hooks[i].path);
        s_append(detail, sizeof(detail), "): ");
        s_append(detail, sizeof(detail), err);
        if (after_gate) {
            // The runtime that reads reports may be gone (create returned): say it on stderr
            // too, and do not die of SIGPIPE.
            signal(SIGPIPE, SIG_IGN);
            char msg[600] = "husk: ";
            s_append(msg, sizeof(msg), detail);
            s_append(msg, sizeof(msg), "\n");
            ssize_t w = write(2, msg, s_len(msg));
            (void)w;
        }
        fail(c, CSHIM_STAGE_HOOK, 0, detail);
    }
}

__attribute__((noreturn)) static void child_main(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;

    // Signals: nothing of the parent's may run here. Reset every handler, then unblock.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < _NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, &dfl, NULL);  // async-signal-safe; fails harmlessly for glibc's own signals
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    // CVE-2019-5736: until execve this process is a copy of the runtime; make its /proc
    // entries (exe, mem, fd) unreachable for anything without CAP_SYS_PTRACE.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) fail(c, CSHIM_STAGE_SETUP, errno, "dumpable");
    // Every inherited fd closes at exec; the plan's own fds stay usable until then.
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) fail(c, CSHIM_STAGE_SETUP, errno, "close_range");
    umask(0);

    if (p->setsid && setsid() < 0) fail(c, CSHIM_STAGE_SETUP, errno, "setsid");
    // Only the runtime writes hook states: its end closes here, so that its death is EOF.
    if (p->hooks_fd >= 0 && p->hooks_peer_fd >= 0) close(p->hooks_peer_fd);

    // The host's /dev/null, for masking (opened while the host's /dev is still visible).
    if (p->nmasked > 0) {
        c->devnull_fd = open("/dev/null", O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (c->devnull_fd < 0) fail(c, CSHIM_STAGE_MASKED_PATHS, errno, "/dev/null");
        struct stat st;
        if (fstat(c->devnull_fd, &st) < 0) fail(c, CSHIM_STAGE_MASKED_PATHS, errno, "/dev/null");
        if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
            fail(c, CSHIM_STAGE_MASKED_PATHS, ENOTTY, "/dev/null");
    }

    if (p->set_oom_score_adj) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(c, CSHIM_STAGE_OOM_SCORE_ADJ, errno, "/proc/self/oom_score_adj");
        char buf[16];
        int v = p->oom_score_adj, n = 0, neg = v < 0;
        unsigned int u = neg ? (unsigned int)(-v) : (unsigned int)v;
        char tmp[16];
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u && n < 15);
        int k = 0;
        if (neg) buf[k++] = '-';
        while (n) buf[k++] = tmp[--n];
        if (write(fd, buf, (size_t)k) != k) fail(c, CSHIM_STAGE_OOM_SCORE_ADJ, errno, "/proc/self/oom_score_adj");
        close(fd);
    }

    // Join existing namespaces (the pid namespace was entered by the parent thread).
    for (size_t i = 0; i < p->njoins; i++) {
        if (setns(p->joins[i].fd, p->joins[i].nstype) < 0) fail(c, CSHIM_STAGE_SETNS, errno, "setns");
    }
    // Inside the target cgroup (CLONE_INTO_CGROUP) a new cgroup namespace is rooted there.
    if (p->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0) fail(c, CSHIM_STAGE_CGROUP_NAMESPACE, errno, "unshare");

    if (p->rootfs != NULL) setup_rootfs(c);
    // The runtime's hooks (prestart, createRuntime) run now, then the createContainer ones.
    if (p->hooks_fd >= 0) {
        report(c, MSG_HOOKS, 0, 0, NULL);
        if (read_state(p->hooks_fd, hook_state_creating) < 0 || read_state(p->hooks_fd, hook_state_created) < 0)
            _exit(127);  // the runtime gave up (its own error is what the caller sees)
        close(p->hooks_fd);
        run_hooks(c, "createContainer", p->create_container_hooks, p->ncreate_container_hooks, hook_state_creating, 0);
    }
    if (p->rootfs != NULL) pivot_into_root(c);

    // The container's own (empty) session keyring, so it cannot read the runtime's keys.
    if (p->session_keyring != NULL &&
        syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, p->session_keyring, 0, 0, 0) < 0 && errno != ENOSYS)
        fail(c, CSHIM_STAGE_KEYRING, errno, p->session_keyring);

    if (p->loopback_up) {
        // `lo` of a new network namespace starts down (containers talk over localhost).
        int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sk < 0) fail(c, CSHIM_STAGE_LOOPBACK, errno, "socket");
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        memcpy(ifr.ifr_name, "lo", 3);
        if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) fail(c, CSHIM_STAGE_LOOPBACK, errno, "lo");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) fail(c, CSHIM_STAGE_LOOPBACK, errno, "lo");
        close(sk);
    }

    if (p->hostname && sethostname(p->hostname, s_len(p->hostname)) < 0)
        fail(c, CSHIM_STAGE_HOSTNAME, errno, p->hostname);
    if (p->domainname && setdomainname(p->domainname, s_len(p->domainname)) < 0)
        fail(c, CSHIM_STAGE_HOSTNAME, errno, p->domainname);
    write_sysctls(c);

    for (size_t i = 0; i < p->nrlimits; i++) {
        struct rlimit rl = {(rlim_t)p->rlimits[i].soft, (rlim_t)p->rlimits[i].hard};
        if (syscall(SYS_prlimit64, 0, p->rlimits[i].resource, &rl, NULL) < 0) {
            char name[8];
            int r = p->rlimits[i].resource;
            name[0] = (char)('0' + (r / 10) % 10);
            name[1] = (char)('0' + r % 10);
            name[2] = 0;
            fail(c, CSHIM_STAGE_RLIMITS, errno, name);
        }
    }

    // A terminal of the container's own: a pty from its /dev/pts, the master to the caller.
    int console = p->console_fd;
    if (p->console_socket >= 0) console = open_console(c);

    // Standard streams, then the preserved fds at 3, 4, ...; everything else closes.
    if (console >= 0) {
        if (ioctl(console, TIOCSCTTY, 0) < 0) fail(c, CSHIM_STAGE_CONSOLE, errno, "TIOCSCTTY");
        for (int i = 0; i < 3; i++)
            if (dup2(console, i) < 0) fail(c, CSHIM_STAGE_CONSOLE, errno, "dup2");
    } else {
        for (int i = 0; i < 3; i++)
            if (p->stdio[i] >= 0 && p->stdio[i] != i && dup2(p->stdio[i], i) < 0) fail(c, CSHIM_STAGE_STDIO, errno, "dup2");
            else if (p->stdio[i] == i) fcntl(i, F_SETFD, 0);
    }
    // Move the fds we still need above the preserved range, then lay the preserved ones out.
    int keep[4 + 64];
    size_t nkeep = 0;
    unsigned int top = 3 + (unsigned int)p->npreserve + 64;
    int report_fd = fcntl(c->report_fd, F_DUPFD_CLOEXEC, (int)top);
    if (report_fd < 0) fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "report pipe");
    c->report_fd = report_fd;
    keep[nkeep++] = report_fd;
    int exec_fd = -1;
    if (p->exec_fd >= 0) {
        exec_fd = fcntl(p->exec_fd, F_DUPFD_CLOEXEC, (int)top);
        if (exec_fd < 0) fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "exec fd");
        keep[nkeep++] = exec_fd;
    }
    int gate_fd = -1;
    if (p->gate_fd >= 0) {
        gate_fd = fcntl(p->gate_fd, F_DUPFD_CLOEXEC, (int)top);
        if (gate_fd < 0) fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "gate");
        keep[nkeep++] = gate_fd;
    }
    if (p->npreserve > 64) fail(c, CSHIM_STAGE_CLOSE_FDS, EINVAL, "preserve_fds");
    int moved[64];
    for (size_t i = 0; i < p->npreserve; i++) {
        moved[i] = fcntl(p->preserve_fds[i], F_DUPFD_CLOEXEC, (int)top);
        if (moved[i] < 0) fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "preserve_fds");
    }
    for (size_t i = 0; i < p->npreserve; i++) {
        if (dup2(moved[i], 3 + (int)i) < 0) fail(c, CSHIM_STAGE_CLOSE_FDS, errno, "preserve_fds");
        keep[nkeep++] = 3 + (int)i;
    }
    close_fds_except(keep, nkeep);

    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before the drop
    // (as runc does). With no_new_privs it is the very last step before execve.
    if (!p->no_new_privs) load_seccomp(c);

    apply_bounding(c);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail(c, CSHIM_STAGE_CAPABILITIES, errno, "keepcaps");
    set_user(c);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail(c, CSHIM_STAGE_CAPABILITIES, errno, "keepcaps");
    apply_caps(c);
    // Dropping privileges can reset the dumpable flag; keep it off until execve.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    // The working directory, as the container user; it must be inside the root
    // (CVE-2024-21626: a leaked fd must not put the cwd on the host).
    if (chdir(p->cwd) < 0) fail(c, CSHIM_STAGE_CWD, errno, p->cwd);
    {
        char cwd[PATH_MAX];
        long n = syscall(SYS_getcwd, cwd, sizeof(cwd));
        if (n < 0) fail(c, CSHIM_STAGE_CWD, errno, p->cwd);
        if (cwd[0] != '/') fail(c, CSHIM_STAGE_CWD, EPERM, p->cwd);
    }
    umask(p->umask >= 0 ? (mode_t)p->umask : 022);

    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(c, CSHIM_STAGE_NO_NEW_PRIVS, errno, "prctl");

    if (exec_fd < 0) lookup_exe(c);

    if (gate_fd >= 0) {
        report(c, MSG_READY, 0, 0, NULL);
        char b;
        ssize_t n;
        do {
            n = read(gate_fd, &b, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) _exit(n == 0 ? 0 : 127);  // the gate was abandoned
        c->open_gate_fd = gate_fd;
        // gate_fd stays open (CLOEXEC) until exec: a runtime watching the gate FIFO sees its
        // last writer go (POLLHUP) once the program runs, or the process died.
    }

    if (p->hooks_fd >= 0)
        run_hooks(c, "startContainer", p->start_container_hooks, p->nstart_container_hooks, hook_state_created, 1);

    if (p->no_new_privs) load_seccomp(c);

    if (exec_fd >= 0) {
        syscall(SYS_execveat, exec_fd, "", (char *const *)p->argv, (char *const *)p->envp, AT_EMPTY_PATH);
        s_copy(c->exe, sizeof(c->exe), p->argv[0]);
    } else {
        execve(c->exe, (char *const *)p->argv, (char *const *)p->envp);
    }
    int err = errno;
    // After create, the runtime that read our reports may be gone: do not die of SIGPIPE,
    // and say it on stderr too.
    signal(SIGPIPE, SIG_IGN);
    if (c->open_gate_fd >= 0) {
        ssize_t w = write(c->open_gate_fd, "E", 1);
        (void)w;
    }
    report(c, MSG_ERROR, CSHIM_STAGE_EXEC, err, c->exe);
    {
        char msg[PATH_MAX + 128] = "husk: exec ";
        s_append(msg, sizeof(msg), c->exe);
        s_append(msg, sizeof(msg), ": ");
        s_append(msg, sizeof(msg), strerrordesc_np(err) ? strerrordesc_np(err) : "error");
        s_append(msg, sizeof(msg), "\n");
        ssize_t w = write(2, msg, s_len(msg));
        (void)w;
    }
    _exit(127);
}

// MARK: - Parent side

struct clone_args_v2 {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

static int read_msg(int fd, struct child_msg *m) {
    char *p = (char *)m;
    size_t got = 0;
    while (got < sizeof(*m)) {
        ssize_t n = read(fd, p + got, sizeof(*m) - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return got == 0 ? 0 : -1;
        got += (size_t)n;
    }
    return 1;
}

static void reap(int pidfd) {
    siginfo_t info;
    while (syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, NULL) < 0 && errno == EINTR) {
    }
}

static int set_failure(struct cshim_spawn_result *r, int stage, int err, const char *detail) {
    r->stage = stage;
    r->error = err ? err : EIO;
    s_copy(r->detail, sizeof(r->detail), detail ? detail : "");
    return r->error;
}

static int spawn_outcome(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result);

int cshim_spawn(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result) {
    memset(result, 0, sizeof(*result));
    result->pid = -1;
    result->pidfd = -1;
    result->report_fd = -1;
    if (plan->cwd == NULL || plan->argv == NULL || plan->argv[0] == NULL || plan->envp == NULL)
        return set_failure(result, CSHIM_STAGE_SETUP, EINVAL, "the plan needs cwd, argv and envp");

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) return set_failure(result, CSHIM_STAGE_PIPE, errno, "pipe2");

    // Block every signal so no handler of the parent runs in the child before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    // The pid namespace of the child is taken from this thread's pid_for_children; switch
    // it for the clone and back (per-thread state; allowed in a threaded process).
    int saved_pidns = -1;
    if (plan->pid_ns_fd >= 0) {
        saved_pidns = open("/proc/thread-self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
        if (saved_pidns < 0 || setns(plan->pid_ns_fd, CLONE_NEWPID) < 0) {
            int e = errno;
            if (saved_pidns >= 0) close(saved_pidns);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            close(pipefd[0]);
            close(pipefd[1]);
            return set_failure(result, CSHIM_STAGE_PID_NAMESPACE, e, "setns");
        }
    }

    int pidfd = -1;
    struct clone_args_v2 args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PIDFD | (plan->clone_flags & ~(uint64_t)CLONE_NEWCGROUP);
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    if (plan->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)plan->cgroup_fd;
    }
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
        struct child c;
        memset(&c, 0, sizeof(c));
        c.plan = plan;
        c.report_fd = pipefd[1];
        c.rootfd = -1;
        c.devnull_fd = -1;
        c.open_gate_fd = -1;
        child_main(&c);
    }
    int clone_errno = errno;

    if (saved_pidns >= 0) {
        // A thread stuck in another pid namespace would put every later child there.
        if (setns(saved_pidns, CLONE_NEWPID) < 0) abort();
        close(saved_pidns);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);

    if (pid < 0) {
        close(pipefd[0]);
        return set_failure(result, CSHIM_STAGE_CLONE, clone_errno, "clone3");
    }
    result->pid = (pid_t)pid;
    result->pidfd = pidfd;

    result->report_fd = pipefd[0];
    return spawn_outcome(plan, result);
}

int cshim_spawn_continue(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result) {
    result->at_hooks = 0;
    return spawn_outcome(plan, result);
}

// Reads the child's next report from result->report_fd: ready at the gate or stopped for
// hooks (0, the fd kept), exec'd (0), or a failure (the child reaped).
static int spawn_outcome(const struct cshim_spawn_plan *plan, struct cshim_spawn_result *result) {
    int pidfd = result->pidfd;
    int fd = result->report_fd;
    result->report_fd = -1;
    struct child_msg m;
    int r = read_msg(fd, &m);
    if (r == 1 && (m.kind == MSG_READY || m.kind == MSG_HOOKS)) {
        result->report_fd = fd;
        result->at_hooks = m.kind == MSG_HOOKS;
        return 0;
    }
    close(fd);
    if (r == 0 && plan->gate_fd < 0) return 0;  // EOF: the child exec'd
    if (r == 0) {
        // No report and no exec: something killed the child during setup.
        reap(pidfd);
        close(pidfd);
        result->pidfd = -1;
        return set_failure(result, CSHIM_STAGE_SETUP, ESRCH, "the process died before reaching the start gate");
    }
    if (r < 0) {
        int e = errno;
        cshim_pidfd_send_signal(pidfd, SIGKILL, 0);
        reap(pidfd);
        close(pidfd);
        result->pidfd = -1;
        return set_failure(result, CSHIM_STAGE_SETUP, e, "report pipe");
    }
    reap(pidfd);
    close(pidfd);
    result->pidfd = -1;
    return set_failure(result, m.stage, m.error, m.detail);
}

int cshim_spawn_wait_exec(struct cshim_spawn_result *result) {
    if (result->report_fd < 0) return 0;
    struct child_msg m;
    int r = read_msg(result->report_fd, &m);
    close(result->report_fd);
    result->report_fd = -1;
    if (r == 0) return 0;
    if (r < 0) return set_failure(result, CSHIM_STAGE_EXEC, errno, "report pipe");
    // The child exits after reporting; the caller reaps it through its pidfd.
    return set_failure(result, m.stage, m.error, m.detail);
}
#endif
