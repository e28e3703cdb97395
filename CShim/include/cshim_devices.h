// cshim_devices.h — device access control for cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE
// program generated from a rule list and attached to a cgroup (what runc does on v2).
#ifndef CSHIM_DEVICES_H
#define CSHIM_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CSHIM_DEV_ACCESS_MKNOD 1U
#define CSHIM_DEV_ACCESS_READ  2U
#define CSHIM_DEV_ACCESS_WRITE 4U
#define CSHIM_DEV_TYPE_ANY   0
#define CSHIM_DEV_TYPE_BLOCK 1
#define CSHIM_DEV_TYPE_CHAR  2

struct cshim_device_rule {
    int type;          // CSHIM_DEV_TYPE_*
    int64_t major;     // -1: any
    int64_t minor;     // -1: any
    unsigned int access;  // CSHIM_DEV_ACCESS_* bits
    int allow;
};

/// Builds a program that checks `rules` in order (the first that matches decides; an allow
/// rule matches when it grants every requested access, a deny rule when it covers any of
/// them) and otherwise answers `default_allow`, loads it and attaches it to the cgroup
/// directory fd. Returns 0, or -1 with errno set; the verifier's log goes into `log`.
int cshim_device_filter_attach(int cgroup_fd, const struct cshim_device_rule *_Nullable rules, size_t nrules,
                               int default_allow, char *_Nullable log, size_t log_size);

#ifdef __cplusplus
}
#endif
#endif
