#define _GNU_SOURCE
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* cgroup v1 cpu.shares range and the v2 cpu.weight it maps onto (as runc and crun convert). */
#define CPU_SHARES_MIN 2
#define CPU_SHARES_MAX 262144

ssize_t
read_small_file (const char *path, char *buf, size_t size)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t got = 0;

  if (fd < 0)
    return -1;
  while (got < size - 1)
    {
      ssize_t n = read (fd, buf + got, size - 1 - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      got += (size_t) n;
    }
  buf[got] = '\0';
  return (ssize_t) got;
}

int
write_file (const char *path, const char *value, struct agent_error *err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return agent_error_set (err, errno, "open `%s`", path);
  if (write_all (fd, value, strlen (value)) < 0)
    return agent_error_set (err, errno, "write `%s` to `%s`", value, path);
  return 0;
}

/* What every container may use, as runc allows it: mknod of any device (which
 * CAP_MKNOD still gates), the standard character devices, ptys and tun. */
static const char *const DEFAULT_DEVICE_RULES[] = {
  "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
  "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
};

static bool devices_ready;

bool
cgroup_devices_ready (void)
{
  return devices_ready;
}

void
cgroup_devices_mounted (void)
{
  devices_ready = true;
}

static int
devices_setup (struct agent_error *err)
{
  if (mkdir ("/run/frakti", 0755) < 0 && errno != EEXIST)
    return agent_error_set (err, errno, "mkdir `/run/frakti`");
  if (mkdir (DEVICES_ROOT, 0755) < 0 && errno != EEXIST)
    return agent_error_set (err, errno, "mkdir `%s`", DEVICES_ROOT);
  if (mount ("cgroup", DEVICES_ROOT, "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, "devices") < 0 && errno != EBUSY)
    return agent_error_set (err, errno, "mount the devices cgroup on `%s`", DEVICES_ROOT);
  devices_ready = true;
  return 0;
}

int
cgroup_setup (struct agent_error *err)
{
  {
    /* Without it containers are refused (cgroup_create): a device they were
     * not given must not be theirs. */
    struct agent_error e = { 0 };
    if (devices_setup (&e) < 0)
      agent_error_log (&e);
  }
  if (mkdir (CGROUP_PARENT, 0755) < 0 && errno != EEXIST)
    return agent_error_set (err, errno, "mkdir `%s`", CGROUP_PARENT);
  /* One by one: a controller the kernel lacks must not keep the others off. */
  static const char *controllers[] = { "+cpu", "+memory", "+pids", "+cpuset" };
  for (size_t i = 0; i < ARRAY_SIZE (controllers); i++)
    {
      struct agent_error e = { 0 };
      if (write_file (CGROUP_ROOT "/cgroup.subtree_control", controllers[i], &e) < 0
          || write_file (CGROUP_PARENT "/cgroup.subtree_control", controllers[i], &e) < 0)
        agent_error_log (&e);
    }
  return 0;
}

static void
path_of (char *out, size_t size, const char *id, const char *file)
{
  snprintf (out, size, CGROUP_PARENT "/%s%s%s", id, file ? "/" : "", file ? file : "");
}

static int
devices_create (const char *id, struct agent_error *err)
{
  char path[512], file[600];
  snprintf (path, sizeof (path), DEVICES_ROOT "/%s", id);
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    return agent_error_set (err, errno, "mkdir devices cgroup `%s`", path);
  snprintf (file, sizeof (file), "%s/devices.deny", path);
  if (write_file (file, "a", err) < 0)
    return -1;
  snprintf (file, sizeof (file), "%s/devices.allow", path);
  for (size_t i = 0; i < ARRAY_SIZE (DEFAULT_DEVICE_RULES); i++)
    if (write_file (file, DEFAULT_DEVICE_RULES[i], err) < 0)
      return -1;
  return 0;
}

int
cgroup_create (const char *id, struct agent_error *err)
{
  char path[512];
  path_of (path, sizeof (path), id, NULL);
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    return agent_error_set (err, errno, "mkdir cgroup `%s`", path);
  if (! devices_ready)
    {
      /* An agent that is not PID 1 (a test on a host) has no guest to guard. */
      if (getpid () == 1)
        return agent_error_set (err, ENODEV, "the devices cgroup is not mounted: containers cannot be confined to their devices");
      return 0;
    }
  return devices_create (id, err);
}

static int
write_cg (const char *id, const char *file, const char *value, struct agent_error *err)
{
  char path[512];
  path_of (path, sizeof (path), id, file);
  return write_file (path, value, err);
}

int
cgroup_apply (const char *id, const Frakti__Agent__V1__Resources *r, struct agent_error *err)
{
  char v[64];

  if (r == NULL)
    return 0;
  if (r->cpu_shares)
    {
      uint64_t shares = r->cpu_shares;
      if (shares < CPU_SHARES_MIN)
        shares = CPU_SHARES_MIN;
      if (shares > CPU_SHARES_MAX)
        shares = CPU_SHARES_MAX;
      /* [2, 262144] -> [1, 10000], linearly. */
      snprintf (v, sizeof (v), "%" PRIu64, 1 + ((shares - 2) * 9999) / 262142);
      if (write_cg (id, "cpu.weight", v, err) < 0)
        return -1;
    }
  if (r->cpu_quota || r->cpu_period)
    {
      uint64_t period = r->cpu_period ? r->cpu_period : 100000;
      if (r->cpu_quota > 0)
        snprintf (v, sizeof (v), "%" PRId64 " %" PRIu64, r->cpu_quota, period);
      else
        snprintf (v, sizeof (v), "max %" PRIu64, period);
      if (write_cg (id, "cpu.max", v, err) < 0)
        return -1;
    }
  if (r->memory_limit_bytes)
    {
      if (r->memory_limit_bytes > 0)
        snprintf (v, sizeof (v), "%" PRId64, r->memory_limit_bytes);
      else
        snprintf (v, sizeof (v), "max");
      if (write_cg (id, "memory.max", v, err) < 0)
        return -1;
      /* No swap in the guest anyway; keep the limit a hard one. */
      struct agent_error ignored = { 0 };
      write_cg (id, "memory.swap.max", "0", &ignored);
    }
  if (r->pids_limit)
    {
      if (r->pids_limit > 0)
        snprintf (v, sizeof (v), "%" PRId64, r->pids_limit);
      else
        snprintf (v, sizeof (v), "max");
      if (write_cg (id, "pids.max", v, err) < 0)
        return -1;
    }
  if (r->cpuset_cpus && r->cpuset_cpus[0])
    {
      for (const char *p = r->cpuset_cpus; *p; p++)
        if (! ((*p >= '0' && *p <= '9') || *p == ',' || *p == '-'))
          return agent_error_set (err, EINVAL, "cpuset `%s`", r->cpuset_cpus);
      if (write_cg (id, "cpuset.cpus", r->cpuset_cpus, err) < 0)
        return -1;
    }
  return 0;
}

/* Finds "key value" in a flat-keyed file's text; returns 0 when absent. */
static uint64_t
keyed (const char *text, const char *key)
{
  size_t klen = strlen (key);
  for (const char *p = text; p && *p; p = strchr (p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp (p, key, klen) == 0 && p[klen] == ' ')
      return strtoull (p + klen + 1, NULL, 10);
  return 0;
}

int
cgroup_stats (const char *id, Frakti__Agent__V1__ContainerStatsResponse *out, struct agent_error *err)
{
  char path[512], buf[8192];
  struct timespec now;

  path_of (path, sizeof (path), id, "cpu.stat");
  if (read_small_file (path, buf, sizeof (buf)) < 0)
    return agent_error_set (err, errno, "read `%s`", path);
  out->cpu_usage_ns = keyed (buf, "usage_usec") * 1000;
  path_of (path, sizeof (path), id, "memory.current");
  if (read_small_file (path, buf, sizeof (buf)) < 0)
    return agent_error_set (err, errno, "read `%s`", path);
  out->memory_usage_bytes = strtoull (buf, NULL, 10);
  path_of (path, sizeof (path), id, "memory.stat");
  if (read_small_file (path, buf, sizeof (buf)) < 0)
    return agent_error_set (err, errno, "read `%s`", path);
  {
    uint64_t inactive = keyed (buf, "inactive_file");
    out->memory_working_set_bytes = out->memory_usage_bytes > inactive ? out->memory_usage_bytes - inactive : 0;
  }
  path_of (path, sizeof (path), id, "pids.current");
  if (read_small_file (path, buf, sizeof (buf)) < 0)
    return agent_error_set (err, errno, "read `%s`", path);
  out->pids = strtoull (buf, NULL, 10);
  clock_gettime (CLOCK_REALTIME, &now);
  out->timestamp_ns = (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
  return 0;
}

int
cgroup_kill (const char *id, struct agent_error *err)
{
  return write_cg (id, "cgroup.kill", "1", err);
}

bool
cgroup_populated (const char *id)
{
  char path[512], buf[256];
  path_of (path, sizeof (path), id, "cgroup.events");
  if (read_small_file (path, buf, sizeof (buf)) < 0)
    return false;
  return keyed (buf, "populated") != 0;
}

int
cgroup_remove (const char *id, struct agent_error *err)
{
  char path[512];
  path_of (path, sizeof (path), id, NULL);
  if (rmdir (path) < 0 && errno != ENOENT)
    return agent_error_set (err, errno, "rmdir cgroup `%s`", path);
  snprintf (path, sizeof (path), DEVICES_ROOT "/%s", id);
  if (devices_ready && rmdir (path) < 0 && errno != ENOENT)
    return agent_error_set (err, errno, "rmdir devices cgroup `%s`", path);
  return 0;
}

uint64_t
cgroup_oom_kills (const char *id)
{
  char path[512], buf[1024];
  path_of (path, sizeof (path), id, "memory.events");
  if (read_small_file (path, buf, sizeof (buf)) < 0)
    return 0;
  return keyed (buf, "oom_kill");
}
