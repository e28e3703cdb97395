// syscall.c — one function per system call (see cshim_syscall.h). Runs in the parent only.
#if defined(__linux__)
#ifndef _GNU_SOURCE
#error "CShim needs _GNU_SOURCE"
#endif
#include "cshim_syscall.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

_Static_assert(CSHIM_CLONE_NEWNS == CLONE_NEWNS, "CLONE_NEWNS");
_Static_assert(CSHIM_CLONE_NEWPID == CLONE_NEWPID, "CLONE_NEWPID");
_Static_assert(CSHIM_CLONE_NEWNET == CLONE_NEWNET, "CLONE_NEWNET");
_Static_assert(CSHIM_CLONE_NEWCGROUP == CLONE_NEWCGROUP, "CLONE_NEWCGROUP");
_Static_assert(CSHIM_MS_BIND == MS_BIND, "MS_BIND");
_Static_assert(CSHIM_MS_SLAVE == MS_SLAVE, "MS_SLAVE");
_Static_assert(CSHIM_O_PATH == O_PATH, "O_PATH");
_Static_assert(CSHIM_RESOLVE_IN_ROOT == RESOLVE_IN_ROOT, "RESOLVE_IN_ROOT");
_Static_assert(CSHIM_CLONE_NEWUTS == CLONE_NEWUTS && CSHIM_CLONE_NEWIPC == CLONE_NEWIPC, "CLONE_NEWUTS, CLONE_NEWIPC");
_Static_assert(CSHIM_CLONE_NEWUSER == CLONE_NEWUSER && CSHIM_CLONE_NEWTIME == CLONE_NEWTIME, "CLONE_NEWUSER, CLONE_NEWTIME");
_Static_assert(CSHIM_MS_RDONLY == MS_RDONLY && CSHIM_MS_REC == MS_REC && CSHIM_MS_SHARED == MS_SHARED, "MS_*");
_Static_assert(CSHIM_MS_NOSYMFOLLOW == 256 && CSHIM_MS_LAZYTIME == MS_LAZYTIME, "MS_NOSYMFOLLOW, MS_LAZYTIME");
_Static_assert(CSHIM_MNT_DETACH == MNT_DETACH, "MNT_DETACH");
_Static_assert(CSHIM_EPOLLIN == EPOLLIN && CSHIM_EPOLLOUT == EPOLLOUT && CSHIM_EPOLLERR == EPOLLERR, "EPOLL*");
_Static_assert(CSHIM_EPOLLHUP == EPOLLHUP && CSHIM_EPOLLRDHUP == EPOLLRDHUP, "EPOLLHUP, EPOLLRDHUP");

int cshim_setns(int fd, int nstype) { return setns(fd, nstype); }

int cshim_unshare(int flags) { return unshare(flags); }

int cshim_ns_get_type(int fd) { return ioctl(fd, NS_GET_NSTYPE); }

int cshim_pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

int cshim_pidfd_send_signal(int pidfd, int sig, unsigned int flags) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, flags);
}

int cshim_waitid_pidfd(int pidfd, int options, pid_t *pid, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int r;
    do {
        r = (int)syscall(SYS_waitid, P_PIDFD, pidfd, &info, options, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    *pid = info.si_pid;
    *code = info.si_code;
    *status = info.si_status;
    return 0;
}

int cshim_pipe2(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cshim_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}

int cshim_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0); }

int cshim_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    int r;
    do {
        r = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    } while (r < 0 && errno == EAGAIN);  // RESOLVE_IN_ROOT may ask to retry after a rename race
    return r;
}

int cshim_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cshim_epoll_add(int ep, int fd) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int cshim_epoll_del(int ep, int fd) { return epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); }

int cshim_epoll_wait(int ep, int *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(ep, evs, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        fds[i] = evs[i].data.fd;
        events[i] = evs[i].events;
    }
    return n;
}

int cshim_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

long cshim_xattr_size(const char *path, const char *name) { return (long)lgetxattr(path, name, NULL, 0); }

int cshim_syncfs(int fd) { return syncfs(fd); }

int cshim_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
    return mount(source, target, fstype, flags, data);
}

int cshim_umount2(const char *target, int flags) { return umount2(target, flags); }

int cshim_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int cshim_open_tree(int dirfd, const char *path, unsigned int flags) {
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

int cshim_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

int cshim_fsopen(const char *fsname, unsigned int flags) { return (int)syscall(SYS_fsopen, fsname, flags); }

int cshim_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

int cshim_fsmount(int fd, unsigned int flags, unsigned int attr_flags) {
    return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

struct cshim_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

int cshim_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr) {
    struct cshim_mount_attr attr = {.attr_set = attr_set, .attr_clr = attr_clr};
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

int cshim_mknodat(int dirfd, const char *path, unsigned int mode, unsigned int major_, unsigned int minor_) {
    return mknodat(dirfd, path, (mode_t)mode, makedev(major_, minor_));
}

unsigned int cshim_major(uint64_t dev) { return major((dev_t)dev); }
unsigned int cshim_minor(uint64_t dev) { return minor((dev_t)dev); }

int cshim_memfd_create(const char *name) { return (int)syscall(SYS_memfd_create, name, 1U /* MFD_CLOEXEC */); }

int cshim_memfd_sealed_create(const char *name) { return (int)syscall(SYS_memfd_create, name, 1U | 2U /* MFD_CLOEXEC|MFD_ALLOW_SEALING */); }

int cshim_memfd_seal(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
}

int cshim_set_dumpable(int dumpable) { return prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0); }

const char *cshim_strerror(int err) { return strerrordesc_np(err); }

const char *cshim_signal_name(int sig) { return sigabbrev_np(sig); }

int cshim_sigrtmin(void) { return SIGRTMIN; }
int cshim_sigrtmax(void) { return SIGRTMAX; }

int cshim_forwarded_signals_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    for (int s = 1; s < 32; s++) {
        switch (s) {
        case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGPIPE:
        case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGABRT: case SIGTRAP: case SIGSYS:
            continue;
        default:
            sigaddset(&set, s);
        }
    }
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int cshim_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof(info));
    if (n != (ssize_t)sizeof(info)) return -1;
    return (int)info.ssi_signo;
}

int cshim_cap_last_cap(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    int v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
    return v;
}
#endif

int cshim_signalfd_for(const int *sigs, int n) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < n; i++) sigaddset(&set, sigs[i]);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int unix_address(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(addr->sun_path, path, len + 1);
    return 0;
}

int cshim_unix_listen(const char *path, int backlog) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int cshim_seqpacket_pair(int *sv) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

int cshim_get_winsize(int fd, unsigned short *rows, unsigned short *cols) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return -1;
    *rows = ws.ws_row;
    *cols = ws.ws_col;
    return 0;
}

int cshim_set_winsize(int fd, unsigned short rows, unsigned short cols) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    return ioctl(fd, TIOCSWINSZ, &ws);
}

unsigned long cshim_termios_size(void) {
    return sizeof(struct termios);
}

int cshim_tty_raw(int fd, void *saved) {
    struct termios t;
    if (tcgetattr(fd, &t) < 0) return -1;
    memcpy(saved, &t, sizeof t);
    cfmakeraw(&t);
    return tcsetattr(fd, TCSANOW, &t);
}

int cshim_tty_restore(int fd, const void *saved) {
    struct termios t;
    memcpy(&t, saved, sizeof t);
    return tcsetattr(fd, TCSANOW, &t);
}

int cshim_unix_connect(const char *path) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int r;
    do {
        r = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

long cshim_send_with_fds(int sock, const void *buf, unsigned long len, const int *fds, int nfds) {
    if (nfds < 0 || nfds > 8) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char data[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0 && fds) {
        msg.msg_control = control.data;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return (long)n;
}

long cshim_recv_with_fds(int sock, void *buf, unsigned long len, int *fds, int *nfds) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char data[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.data, .msg_controllen = sizeof(control.data)};
    *nfds = 0;
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof(int));
            if (*nfds < 8) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
            }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        for (int i = 0; i < *nfds; i++) close(fds[i]);
        *nfds = 0;
        errno = EMSGSIZE;
        return -1;
    }
    return (long)n;
}

int cshim_peer_uid(int sock) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    return (int)cred.uid;
}

int cshim_accept(int sock) {
    int c;
    do {
        c = accept4(sock, NULL, NULL, SOCK_CLOEXEC);
    } while (c < 0 && errno == EINTR);
    return c;
}
