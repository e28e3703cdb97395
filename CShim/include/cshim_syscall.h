// cshim_syscall.h — thin wrappers over Linux syscalls that Swift's Glibc module does not
// expose (or hides behind _GNU_SOURCE), plus the constants they take.
//
// Convention (STYLE §6.4): every function returns -1 and sets errno on failure, like the
// system call it wraps. No function here forks; nothing here runs Swift code.
#ifndef CSHIM_SYSCALL_H
#define CSHIM_SYSCALL_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Namespace flags (linux/sched.h)
#define CSHIM_CLONE_NEWNS     0x00020000ULL
#define CSHIM_CLONE_NEWCGROUP 0x02000000ULL
#define CSHIM_CLONE_NEWUTS    0x04000000ULL
#define CSHIM_CLONE_NEWIPC    0x08000000ULL
#define CSHIM_CLONE_NEWUSER   0x10000000ULL
#define CSHIM_CLONE_NEWPID    0x20000000ULL
#define CSHIM_CLONE_NEWNET    0x40000000ULL
#define CSHIM_CLONE_NEWTIME   0x00000080ULL
#define CSHIM_CLONE_PIDFD     0x00001000ULL
#define CSHIM_CLONE_INTO_CGROUP 0x200000000ULL

// MARK: - mount(2) flags (linux/mount.h)
#define CSHIM_MS_RDONLY      0x00000001UL
#define CSHIM_MS_NOSUID      0x00000002UL
#define CSHIM_MS_NODEV       0x00000004UL
#define CSHIM_MS_NOEXEC      0x00000008UL
#define CSHIM_MS_SYNCHRONOUS 0x00000010UL
#define CSHIM_MS_REMOUNT     0x00000020UL
#define CSHIM_MS_MANDLOCK    0x00000040UL
#define CSHIM_MS_DIRSYNC     0x00000080UL
#define CSHIM_MS_NOSYMFOLLOW 0x00000100UL
#define CSHIM_MS_NOATIME     0x00000400UL
#define CSHIM_MS_NODIRATIME  0x00000800UL
#define CSHIM_MS_BIND        0x00001000UL
#define CSHIM_MS_MOVE        0x00002000UL
#define CSHIM_MS_REC         0x00004000UL
#define CSHIM_MS_SILENT      0x00008000UL
#define CSHIM_MS_UNBINDABLE  0x00020000UL
#define CSHIM_MS_PRIVATE     0x00040000UL
#define CSHIM_MS_SLAVE       0x00080000UL
#define CSHIM_MS_SHARED      0x00100000UL
#define CSHIM_MS_RELATIME    0x00200000UL
#define CSHIM_MS_STRICTATIME 0x01000000UL
#define CSHIM_MS_LAZYTIME    0x02000000UL

#define CSHIM_MNT_FORCE       0x1
#define CSHIM_MNT_DETACH      0x2
#define CSHIM_UMOUNT_NOFOLLOW 0x8

// MARK: - open flags and openat2 resolve flags
#define CSHIM_O_PATH      010000000
#define CSHIM_O_TMPFILE   (020000000 | 0200000)
#define CSHIM_RESOLVE_NO_XDEV       0x01ULL
#define CSHIM_RESOLVE_NO_MAGICLINKS 0x02ULL
#define CSHIM_RESOLVE_NO_SYMLINKS   0x04ULL
#define CSHIM_RESOLVE_BENEATH       0x08ULL
#define CSHIM_RESOLVE_IN_ROOT       0x10ULL

#define CSHIM_CLOSE_RANGE_CLOEXEC (1U << 2)
#define CSHIM_P_PIDFD 3

// MARK: - new mount API (linux/mount.h)
#define CSHIM_OPEN_TREE_CLONE   1U
#define CSHIM_OPEN_TREE_CLOEXEC 02000000U
#define CSHIM_AT_RECURSIVE      0x8000U
#define CSHIM_AT_FDCWD          (-100)
#define CSHIM_AT_EMPTY_PATH     0x1000U
#define CSHIM_AT_SYMLINK_NOFOLLOW 0x100U
#define CSHIM_MOVE_MOUNT_F_EMPTY_PATH 0x00000004U
#define CSHIM_MOVE_MOUNT_T_EMPTY_PATH 0x00000040U
#define CSHIM_FSOPEN_CLOEXEC 0x00000001U
#define CSHIM_FSMOUNT_CLOEXEC 0x00000001U
#define CSHIM_FSCONFIG_SET_FLAG   0U
#define CSHIM_FSCONFIG_SET_STRING 1U
#define CSHIM_FSCONFIG_CMD_CREATE 6U
#define CSHIM_MOUNT_ATTR_RDONLY 0x00000001ULL
#define CSHIM_MOUNT_ATTR_NOSUID 0x00000002ULL
#define CSHIM_MOUNT_ATTR_NODEV  0x00000004ULL
#define CSHIM_MOUNT_ATTR_NOEXEC 0x00000008ULL

// MARK: - epoll events (sys/epoll.h, which Swift's Glibc module does not import)
#define CSHIM_EPOLLIN    0x001U
#define CSHIM_EPOLLOUT   0x004U
#define CSHIM_EPOLLERR   0x008U
#define CSHIM_EPOLLHUP   0x010U
#define CSHIM_EPOLLRDHUP 0x2000U

// MARK: - Namespaces and processes

/// setns(2) with a namespace fd or a pidfd (nstype is a CLONE_NEW* mask; 0 = any).
int cshim_setns(int fd, int nstype);
/// unshare(2).
int cshim_unshare(int flags);
/// The namespace type (a CLONE_NEW* value) of a /proc/<pid>/ns/<x> fd (ioctl NS_GET_NSTYPE).
int cshim_ns_get_type(int fd);
/// pidfd_open(2).
int cshim_pidfd_open(pid_t pid, unsigned int flags);
/// pidfd_send_signal(2) with no siginfo.
int cshim_pidfd_send_signal(int pidfd, int sig, unsigned int flags);
/// waitid(P_PIDFD, pidfd, ...): on success returns 0 and stores si_pid (0 when WNOHANG found
/// nothing), si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED, ...) and si_status.
int cshim_waitid_pidfd(int pidfd, int options, pid_t *_Nonnull pid, int *_Nonnull code, int *_Nonnull status);
/// pipe2(2) with O_CLOEXEC.
int cshim_pipe2(int fds[_Nonnull 2]);
/// close_range(2).
int cshim_close_range(unsigned int first, unsigned int last, unsigned int flags);
/// prctl(PR_SET_CHILD_SUBREAPER, on).
int cshim_set_child_subreaper(int on);

// MARK: - Files and mounts

/// openat2(2) with struct open_how {flags, mode, resolve}.
int cshim_openat2(int dirfd, const char *_Nonnull path, uint64_t flags, uint64_t mode, uint64_t resolve);
/// lgetxattr(2) size query: the length of an xattr of `path` (not following a symlink), or -1.
long cshim_xattr_size(const char *_Nonnull path, const char *_Nonnull name);
/// epoll_create1(EPOLL_CLOEXEC).
int cshim_epoll_create(void);
/// Watches fd for input and hang-up (EPOLLIN|EPOLLRDHUP).
int cshim_epoll_add(int ep, int fd);
int cshim_epoll_del(int ep, int fd);
/// epoll_wait into parallel arrays of fds and event masks (EINTR: 0 events).
/// Drops the resident pages of the executable's code (r-xp) and of its read-only data that are
/// still the file's (r--p, by pagemap); they stay in the page cache. Returns the bytes dropped.
size_t cshim_trim_executable(void);
/// mallopt(M_ARENA_MAX, 1): every thread allocates from the main heap.
void cshim_malloc_one_arena(void);
/// malloc_trim(0): free heap memory back to the kernel (free pages inside the heap too).
void cshim_malloc_trim(void);
/// Drops the calling thread's stack pages below its stack pointer less `margin` bytes: what a
/// deep call left dirty. Returns the bytes given back (0 when the stack cannot be found).
size_t cshim_trim_stack(size_t margin);

int cshim_epoll_wait(int ep, int *_Nonnull fds, uint32_t *_Nonnull events, int max, int timeout_ms);
/// eventfd(0, EFD_CLOEXEC|EFD_NONBLOCK).
int cshim_eventfd(void);
/// syncfs(2).
int cshim_syncfs(int fd);
/// mount(2).
int cshim_mount(const char *_Nullable source, const char *_Nonnull target, const char *_Nullable fstype,
                unsigned long flags, const char *_Nullable data);
/// umount2(2).
int cshim_umount2(const char *_Nonnull target, int flags);
/// pivot_root(2).
int cshim_pivot_root(const char *_Nonnull new_root, const char *_Nonnull put_old);
/// open_tree(2).
int cshim_open_tree(int dirfd, const char *_Nonnull path, unsigned int flags);
/// move_mount(2).
int cshim_move_mount(int from_dirfd, const char *_Nonnull from_path, int to_dirfd, const char *_Nonnull to_path,
                     unsigned int flags);
/// fsopen(2).
int cshim_fsopen(const char *_Nonnull fsname, unsigned int flags);
/// fsconfig(2).
int cshim_fsconfig(int fd, unsigned int cmd, const char *_Nullable key, const void *_Nullable value, int aux);
/// fsmount(2).
int cshim_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
/// mount_setattr(2): sets and clears MOUNT_ATTR_* bits (no propagation, no idmap).
int cshim_mount_setattr(int dirfd, const char *_Nonnull path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr);
/// mknodat(2).
int cshim_mknodat(int dirfd, const char *_Nonnull path, unsigned int mode, unsigned int major, unsigned int minor);
/// The major/minor numbers of a dev_t.
unsigned int cshim_major(uint64_t dev);
unsigned int cshim_minor(uint64_t dev);
/// memfd_create(2) with MFD_CLOEXEC.
int cshim_memfd_create(const char *_Nonnull name);
/// memfd_create(2) with MFD_CLOEXEC|MFD_ALLOW_SEALING.
int cshim_memfd_sealed_create(const char *_Nonnull name);
/// Seals a memfd against writes, growth, shrinking and further seals.
int cshim_memfd_seal(int fd);
/// prctl(PR_SET_DUMPABLE, v).
int cshim_set_dumpable(int dumpable);
/// The English text of an errno, independent of the locale (strerrordesc_np).
const char *_Nullable cshim_strerror(int err);
/// The name of a signal ("TERM" for SIGTERM, sigabbrev_np), or NULL.
const char *_Nullable cshim_signal_name(int sig);
/// SIGRTMIN and SIGRTMAX as this C library reserves them.
int cshim_sigrtmin(void);
int cshim_sigrtmax(void);
/// Blocks, in the calling thread, every signal a foreground runtime forwards to its
/// container (all of 1..31 except KILL, STOP, CHLD, PIPE and the synchronous faults) and
/// returns a CLOEXEC signalfd that reads them. Call it before any other thread exists so
/// that every thread inherits the mask. Returns -1 on failure.
int cshim_forwarded_signals_fd(void);
/// Reads one signal number from a signalfd, or -1 (errno set; EAGAIN when none is pending).
int cshim_signalfd_read(int fd);
/// Blocks `sigs` in the calling thread (threads created later inherit the mask) and returns a
/// CLOEXEC, non-blocking signalfd that reads them, or -1.
int cshim_signalfd_for(const int *_Nonnull sigs, int n);

/// A listening unix stream socket (CLOEXEC) bound at `path` (a path, never abstract), or -1.
int cshim_unix_listen(const char *_Nonnull path, int backlog);
/// accept4(SOCK_CLOEXEC), retried on EINTR.
int cshim_accept(int sock);
/// A unix stream socket (CLOEXEC) connected to `path`, or -1.
int cshim_unix_connect(const char *_Nonnull path);
/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC). Returns 0 or -1.
int cshim_seqpacket_pair(int *_Nonnull sv);
/// The window size of terminal `fd` (TIOCGWINSZ) into rows/cols; 0 or -1.
int cshim_get_winsize(int fd, unsigned short *_Nonnull rows, unsigned short *_Nonnull cols);
/// Sets the window size of terminal `fd` (TIOCSWINSZ); 0 or -1.
int cshim_set_winsize(int fd, unsigned short rows, unsigned short cols);
/// Puts terminal `fd` in raw mode (cfmakeraw); the previous settings go to `saved` (a
/// buffer of cshim_termios_size() bytes). 0 or -1.
int cshim_tty_raw(int fd, void *_Nonnull saved);
/// Restores what cshim_tty_raw saved.
int cshim_tty_restore(int fd, const void *_Nonnull saved);
unsigned long cshim_termios_size(void);
/// sendmsg of `len` bytes with `nfds` descriptors as SCM_RIGHTS (nfds <= 8). Returns bytes
/// sent or -1.
long cshim_send_with_fds(int sock, const void *_Nonnull buf, unsigned long len, const int *_Nullable fds, int nfds);
/// recvmsg of up to `len` bytes; received descriptors (CLOEXEC) go to `fds` (room for 8) and
/// their count to `*nfds`. Returns bytes read (0 at EOF) or -1.
long cshim_recv_with_fds(int sock, void *_Nonnull buf, unsigned long len, int *_Nonnull fds, int *_Nonnull nfds);
/// The peer's credentials of a unix socket (SO_PEERCRED): uid, or -1.
int cshim_peer_uid(int sock);
/// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap), or -1.
int cshim_cap_last_cap(void);

#ifdef __cplusplus
}
#endif
#endif
