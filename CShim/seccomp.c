// seccomp.c — libseccomp, used in the parent only: compile a profile and export it as BPF.
#if defined(__linux__)
#include "cshim_seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

_Static_assert(CSHIM_SCMP_ACT_ALLOW == SCMP_ACT_ALLOW, "SCMP_ACT_ALLOW");
_Static_assert(CSHIM_SCMP_ACT_KILL_PROCESS == SCMP_ACT_KILL_PROCESS, "SCMP_ACT_KILL_PROCESS");
_Static_assert(CSHIM_SCMP_ACT_LOG == SCMP_ACT_LOG, "SCMP_ACT_LOG");
_Static_assert(CSHIM_SCMP_ACT_TRAP == SCMP_ACT_TRAP, "SCMP_ACT_TRAP");
_Static_assert(CSHIM_SCMP_CMP_MASKED_EQ == SCMP_CMP_MASKED_EQ, "SCMP_CMP_MASKED_EQ");

void *cshim_seccomp_new(uint32_t default_action) {
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (ctx == NULL) {
        errno = EINVAL;
        return NULL;
    }
    // The child sets no_new_privs itself (or not) as the spec asks; the filter must not.
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    return ctx;
}

int cshim_seccomp_add_arch(void *ctx, const char *arch) {
    uint32_t token = seccomp_arch_resolve_name(arch);
    if (token == 0) return -EINVAL;
    int r = seccomp_arch_add(ctx, token);
    if (r == -EEXIST) return 0;
    return r;
}

int cshim_seccomp_add_rule(void *ctx, uint32_t action, const char *syscall_name,
                           const struct cshim_seccomp_arg *args, unsigned int nargs) {
    int nr = seccomp_syscall_resolve_name(syscall_name);
    if (nr == __NR_SCMP_ERROR) return -ENOENT;
    if (nargs > 6) return -EINVAL;
    struct scmp_arg_cmp cmps[6];
    for (unsigned int i = 0; i < nargs; i++) {
        cmps[i].arg = args[i].index;
        cmps[i].op = (enum scmp_compare)args[i].op;
        cmps[i].datum_a = args[i].value;
        cmps[i].datum_b = args[i].value_two;
    }
    // A rule whose action equals the default action is rejected by libseccomp (-EACCES);
    // it changes nothing, so it is not an error.
    int r = seccomp_rule_add_array(ctx, action, nr, nargs, cmps);
    if (r == -EACCES) return 0;
    return r;
}

int cshim_seccomp_export(void *ctx, void **out, size_t *ninstructions) {
    *out = NULL;
    *ninstructions = 0;
    int fd = (int)syscall(SYS_memfd_create, "husk-seccomp", 1U /* MFD_CLOEXEC */);
    if (fd < 0) return -errno;
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    size_t size = (size_t)st.st_size;
    if (size == 0 || size % sizeof(struct sock_filter) != 0) {
        close(fd);
        return -EINVAL;
    }
    void *buf = malloc(size);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, (char *)buf + done, size - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            r = n < 0 ? -errno : -EIO;
            free(buf);
            close(fd);
            return r;
        }
        done += (size_t)n;
    }
    close(fd);
    *out = buf;
    *ninstructions = size / sizeof(struct sock_filter);
    return 0;
}

void cshim_seccomp_free_program(void *program) { free(program); }

void cshim_seccomp_release(void *ctx) {
    if (ctx != NULL) seccomp_release(ctx);
}

int cshim_seccomp_flag_supported(unsigned int flag) {
    // An invalid filter pointer with a supported flag fails with EFAULT; an unknown flag
    // fails with EINVAL first.
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flag, NULL);
    if (r == 0) return 1;
    return errno == EFAULT ? 1 : 0;
}

int cshim_seccomp_action_supported(uint32_t action) {
    uint32_t a = action & SECCOMP_RET_ACTION_FULL;
    return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &a) == 0 ? 1 : 0;
}

int cshim_seccomp_syscall_number(const char *name) {
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? -1 : nr;
}
#endif
