// devices.c — the cgroup v2 device filter (see cshim_devices.h). Runs in the parent only.
#if defined(__linux__)
#include "cshim_devices.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(CSHIM_DEV_ACCESS_MKNOD == BPF_DEVCG_ACC_MKNOD, "mknod");
_Static_assert(CSHIM_DEV_ACCESS_READ == BPF_DEVCG_ACC_READ, "read");
_Static_assert(CSHIM_DEV_ACCESS_WRITE == BPF_DEVCG_ACC_WRITE, "write");
_Static_assert(CSHIM_DEV_TYPE_BLOCK == BPF_DEVCG_DEV_BLOCK, "block");
_Static_assert(CSHIM_DEV_TYPE_CHAR == BPF_DEVCG_DEV_CHAR, "char");

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

int cshim_device_filter_attach(int cgroup_fd, const struct cshim_device_rule *rules, size_t nrules, int default_allow,
                               char *log, size_t log_size) {
    // At most 10 instructions per rule, 6 of prologue, 2 of epilogue.
    size_t cap = 8 + nrules * 10;
    struct bpf_insn *p = calloc(cap, sizeof(*p));
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    size_t n = 0;
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    // access_type = (access << 16) | type
    p[n++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 2, 1, 0, 0);   // r2 = access_type
    p[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xFFFF);  // r2 = type
    p[n++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 3, 1, 0, 0);   // r3 = access_type
    p[n++] = INSN(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16);  // r3 = requested access
    p[n++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 4, 1, 4, 0);   // r4 = major
    p[n++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 5, 1, 8, 0);   // r5 = minor

    for (size_t i = 0; i < nrules; i++) {
        const struct cshim_device_rule *r = &rules[i];
        size_t start = n;
        // Conditional jumps to "next rule" are emitted with off = 0 and patched below.
        size_t jumps[8];
        size_t nj = 0;
        if (r->type != CSHIM_DEV_TYPE_ANY) {
            jumps[nj++] = n;
            p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 0, r->type);
        }
        unsigned int all = CSHIM_DEV_ACCESS_MKNOD | CSHIM_DEV_ACCESS_READ | CSHIM_DEV_ACCESS_WRITE;
        unsigned int a = r->access & all;
        if (a != all) {
            p[n++] = INSN(BPF_ALU | BPF_MOV | BPF_X, 1, 3, 0, 0);  // r1 = r3
            p[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, 1, 0, 0, (int)a);
            jumps[nj++] = n;
            if (r->allow)
                p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_X, 1, 3, 0, 0);  // not everything granted
            else
                p[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0, 0);  // nothing of it covered
        }
        if (r->major >= 0) {
            jumps[nj++] = n;
            p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 0, (int)r->major);
        }
        if (r->minor >= 0) {
            jumps[nj++] = n;
            p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, (int)r->minor);
        }
        p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r->allow ? 1 : 0);
        p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        for (size_t j = 0; j < nj; j++) p[jumps[j]].off = (int16_t)(n - jumps[j] - 1);
        (void)start;
    }
    p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, default_allow ? 1 : 0);
    p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)p;
    attr.insn_cnt = (uint32_t)n;
    attr.license = (uint64_t)(uintptr_t) "Apache";
    if (log != NULL && log_size > 0) log[0] = 0;
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    int saved = errno;
    if (prog < 0 && saved != ENOSYS && saved != EPERM && log != NULL && log_size > 0) {
        // Load again with the verifier's log, only to explain the failure (a verbose log
        // that does not fit its buffer makes a load fail by itself, so not the first time).
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = (uint32_t)log_size;
        attr.log_level = 1;
        int again = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
        if (again >= 0) close(again);
    }
    free(p);
    if (prog < 0) {
        errno = saved;
        return -1;
    }
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    int r = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr));
    saved = errno;
    close(prog);  // the attachment keeps the program alive
    errno = saved;
    return r;
}
#endif
