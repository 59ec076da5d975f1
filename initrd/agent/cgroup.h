/* cgroup v2 in the guest: one cgroup per container under /sys/fs/cgroup/frakti. */
#ifndef FRAKTI_CGROUP_H
#define FRAKTI_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "agent.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define CGROUP_PARENT CGROUP_ROOT "/frakti"
/* The devices controller is cgroup v1 only (v2 needs a BPF program): its own
 * hierarchy, beside the v2 one, with one cgroup per container. */
#define DEVICES_ROOT "/run/frakti/cgroup-devices"

/* Enables the controllers for frakti's cgroups (once, at start). */
int cgroup_setup (struct agent_error *err);
/* The container's cgroups: v2, and the devices one (deny all but the
 * defaults every container has; its disks are allowed by the child). */
int cgroup_create (const char *id, struct agent_error *err);
/* Whether the devices hierarchy is mounted (only by an agent that is PID 1). */
bool cgroup_devices_ready (void);
/* A spare, exec'd by the agent, told that the agent mounted the devices cgroup. */
void cgroup_devices_mounted (void);
int cgroup_apply (const char *id, const Frakti__Agent__V1__Resources *r, struct agent_error *err);
int cgroup_stats (const char *id, Frakti__Agent__V1__ContainerStatsResponse *out, struct agent_error *err);
/* Kills every process in the cgroup (cgroup.kill). */
int cgroup_kill (const char *id, struct agent_error *err);
bool cgroup_populated (const char *id);
int cgroup_remove (const char *id, struct agent_error *err);
/* oom_kill count from memory.events, 0 when unreadable. */
uint64_t cgroup_oom_kills (const char *id);
/* Reads a small file into buf (NUL-terminated); returns bytes or -1. */
ssize_t read_small_file (const char *path, char *buf, size_t size);
int write_file (const char *path, const char *value, struct agent_error *err);

#endif
