// spawn_process.c — the process side of the child-side executor (see spawn_internal.h):
// sysctls, the bounding set and capabilities, user and group ids, seccomp, finding the
// executable, the console (a pty whose master goes to the caller) and closing fds.
//
// Everything in this file runs in the cloned child, between clone3 and execve (called from
// cshim_child_main in spawn_child.c); nothing here runs in the parent. Only raw system calls
// and async-signal-safe functions: no malloc, no stdio, no locks, no glibc set*id wrappers.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// MARK: - Sysctls (after pivot_root: the container's /proc/sys)

void cshim_child_write_sysctls(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    for (size_t i = 0; i < p->nsysctls; i++) {
        // Inside the prepared rootfs (its own /proc) before pivot_root, else the root's.
        int inside = c->rootfd >= 0 && !c->sysctls_done && p->rootfs != NULL;
        char path[PATH_MAX];
        cshim_child_copy(path, sizeof(path), inside ? "proc/sys/" : "/proc/sys/");
        if (cshim_child_append(path, sizeof(path), p->sysctls[i].path) < 0)
            cshim_child_fail(c, CSHIM_STAGE_SYSCTL, ENAMETOOLONG, p->sysctls[i].path);
        int fd = (int)cshim_child_openat2(inside ? c->rootfd : AT_FDCWD, path, O_WRONLY | O_CLOEXEC,
                                          RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (inside ? RESOLVE_BENEATH : 0));
        if (fd < 0) cshim_child_fail(c, CSHIM_STAGE_SYSCTL, errno, p->sysctls[i].path);
        size_t len = cshim_child_len(p->sysctls[i].value);
        if (write(fd, p->sysctls[i].value, len) != (ssize_t)len)
            cshim_child_fail(c, CSHIM_STAGE_SYSCTL, errno, p->sysctls[i].path);
        close(fd);
    }
}

// MARK: - Capabilities, ids, seccomp

void cshim_child_apply_bounding(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    for (int cap = 0; cap <= p->cap_last && cap < 64; cap++) {
        if (p->cap_bounding & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            cshim_child_fail(c, CSHIM_STAGE_CAPABILITIES, errno, "bounding set");
    }
}

void cshim_child_apply_caps(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)p->cap_effective;
    data[1].effective = (uint32_t)(p->cap_effective >> 32);
    data[0].permitted = (uint32_t)p->cap_permitted;
    data[1].permitted = (uint32_t)(p->cap_permitted >> 32);
    data[0].inheritable = (uint32_t)p->cap_inheritable;
    data[1].inheritable = (uint32_t)(p->cap_inheritable >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0) cshim_child_fail(c, CSHIM_STAGE_CAPABILITIES, errno, "capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        cshim_child_fail(c, CSHIM_STAGE_CAPABILITIES, errno, "ambient");
    for (int cap = 0; cap <= p->cap_last && cap < 64; cap++) {
        if (!(p->cap_ambient & (1ULL << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            cshim_child_fail(c, CSHIM_STAGE_CAPABILITIES, errno, "ambient");
    }
}

void cshim_child_load_seccomp(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    if (p->seccomp_filter == NULL || p->seccomp_len == 0) return;
    struct sock_fprog prog = {(unsigned short)p->seccomp_len, (struct sock_filter *)p->seccomp_filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog) < 0)
        cshim_child_fail(c, CSHIM_STAGE_SECCOMP, errno, "seccomp");
}

_Static_assert(sizeof(gid_t) == sizeof(unsigned int), "gid_t");

void cshim_child_set_user(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    // Raw system calls: glibc's wrappers would broadcast to threads this copy does not have.
    size_t n = p->ngroups;
    if (syscall(SYS_setgroups, n, n ? p->groups : NULL) < 0) cshim_child_fail(c, CSHIM_STAGE_USER, errno, "setgroups");
    if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0) cshim_child_fail(c, CSHIM_STAGE_USER, errno, "setresgid");
    if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0) cshim_child_fail(c, CSHIM_STAGE_USER, errno, "setresuid");
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
void cshim_child_lookup_exe(struct child *c) {
    const struct cshim_spawn_plan *p = c->plan;
    const char *name = p->argv[0];
    if (name == NULL || name[0] == 0) cshim_child_fail(c, CSHIM_STAGE_LOOKUP, ENOENT, "");
    if (strchr(name, '/') != NULL) {
        if (is_executable(name) < 0) cshim_child_fail(c, CSHIM_STAGE_EXEC, errno, name);
        cshim_child_copy(c->exe, sizeof(c->exe), name);
        return;
    }
    const char *path = p->path_env ? p->path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int saw_eacces = 0;
    const char *d = path;
    while (1) {
        const char *e = strchr(d, ':');
        size_t len = e ? (size_t)(e - d) : cshim_child_len(d);
        char cand[PATH_MAX];
        if (len == 0) {
            cand[0] = 0;  // empty entry = current directory
        } else if (len < sizeof(cand)) {
            memcpy(cand, d, len);
            cand[len] = 0;
            if (cshim_child_append(cand, sizeof(cand), "/") < 0) cand[0] = 0;
        } else {
            cand[0] = 0;
        }
        if (cshim_child_append(cand, sizeof(cand), name) == 0) {
            if (is_executable(cand) == 0) {
                cshim_child_copy(c->exe, sizeof(c->exe), cand);
                return;
            }
            if (errno == EACCES) saw_eacces = 1;
        }
        if (!e) break;
        d = e + 1;
    }
    cshim_child_fail(c, CSHIM_STAGE_LOOKUP, saw_eacces ? EACCES : ENOENT, name);
}

// MARK: - Console and fds

// Opens a pty in the (new or joined) root's /dev/pts, sends the master over
// plan->console_socket and returns the slave; with a new root the slave is bound over
// /dev/console (runc's setupConsole).
int cshim_child_open_console(struct child *c) {
    const int stage = CSHIM_STAGE_CONSOLE;
    const struct cshim_spawn_plan *p = c->plan;
    int ptm = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (ptm < 0) ptm = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (ptm < 0) cshim_child_fail(c, stage, errno, "/dev/pts/ptmx");
    int unlock = 0;
    if (ioctl(ptm, TIOCSPTLCK, &unlock) < 0) cshim_child_fail(c, stage, errno, "TIOCSPTLCK");
    int pts = ioctl(ptm, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (pts < 0) cshim_child_fail(c, stage, errno, "TIOCGPTPEER");
    if (p->console_rows != 0 || p->console_cols != 0) {
        struct winsize ws = {.ws_row = p->console_rows, .ws_col = p->console_cols};
        if (ioctl(ptm, TIOCSWINSZ, &ws) < 0) cshim_child_fail(c, stage, errno, "TIOCSWINSZ");
    }
    if (p->rootfs != NULL) {
        int t = open("/dev/console", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (t < 0) cshim_child_fail(c, stage, errno, "/dev/console");
        char sbuf[64], tbuf[64];
        if (mount(cshim_child_fd_path(sbuf, pts), cshim_child_fd_path(tbuf, t), NULL, MS_BIND, NULL) < 0)
            cshim_child_fail(c, stage, errno, "/dev/console");
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
    if (sendmsg(p->console_socket, &mh, MSG_NOSIGNAL) < 0) cshim_child_fail(c, stage, errno, "console socket");
    close(ptm);
    return pts;
}

// Closes every fd >= 3 except the ones in keep[] (already CLOEXEC ones stay until exec).
void cshim_child_close_fds_except(const int *keep, size_t nkeep) {
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
#endif
