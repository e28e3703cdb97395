// cshim_seccomp.h — compile a seccomp profile with libseccomp in the parent and export it
// as a classic BPF program, so the child only has to load it (DESIGN §3). Swift never sees
// libseccomp's headers: the context is an opaque pointer and actions are plain integers.
#ifndef CSHIM_SECCOMP_H
#define CSHIM_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Action values (libseccomp/seccomp.h SCMP_ACT_*).
#define CSHIM_SCMP_ACT_KILL_PROCESS 0x80000000U
#define CSHIM_SCMP_ACT_KILL_THREAD  0x00000000U
#define CSHIM_SCMP_ACT_TRAP         0x00030000U
#define CSHIM_SCMP_ACT_ERRNO_BASE   0x00050000U
#define CSHIM_SCMP_ACT_TRACE_BASE   0x7ff00000U
#define CSHIM_SCMP_ACT_LOG          0x7ffc0000U
#define CSHIM_SCMP_ACT_ALLOW        0x7fff0000U
#define CSHIM_SCMP_ACT_NOTIFY       0x7fc00000U

// Comparison operators (enum scmp_compare).
#define CSHIM_SCMP_CMP_NE 1
#define CSHIM_SCMP_CMP_LT 2
#define CSHIM_SCMP_CMP_LE 3
#define CSHIM_SCMP_CMP_EQ 4
#define CSHIM_SCMP_CMP_GE 5
#define CSHIM_SCMP_CMP_GT 6
#define CSHIM_SCMP_CMP_MASKED_EQ 7

struct cshim_seccomp_arg {
    unsigned int index;
    int op;
    uint64_t value;
    uint64_t value_two;
};

/// A new filter context with the given default action, or NULL (errno set).
void *_Nullable cshim_seccomp_new(uint32_t default_action);
/// Adds an architecture by libseccomp name ("x86_64", "x86", "x32", "aarch64", ...).
/// Returns 0, or -errno (-EINVAL: unknown name).
int cshim_seccomp_add_arch(void *_Nonnull ctx, const char *_Nonnull arch);
/// Adds one rule. Returns 0, or -errno; -ENOENT when this libseccomp does not know the syscall.
int cshim_seccomp_add_rule(void *_Nonnull ctx, uint32_t action, const char *_Nonnull syscall_name,
                           const struct cshim_seccomp_arg *_Nullable args, unsigned int nargs);
/// Exports the filter as BPF: *out is malloc'd (free with cshim_seccomp_free_program),
/// *ninstructions the number of struct sock_filter entries. Returns 0 or -errno.
int cshim_seccomp_export(void *_Nonnull ctx, void *_Nullable *_Nonnull out, size_t *_Nonnull ninstructions);
void cshim_seccomp_free_program(void *_Nullable program);
void cshim_seccomp_release(void *_Nullable ctx);
/// Whether the running kernel accepts a seccomp filter flag (SECCOMP_GET_ACTION_AVAIL/flags probe).
int cshim_seccomp_flag_supported(unsigned int flag);
/// Whether the running kernel supports an action (SECCOMP_GET_ACTION_AVAIL).
int cshim_seccomp_action_supported(uint32_t action);
/// Number for a syscall name on the native architecture, or -1.
int cshim_seccomp_syscall_number(const char *_Nonnull name);

#ifdef __cplusplus
}
#endif
#endif
