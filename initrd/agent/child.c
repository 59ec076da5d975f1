/* The container side of a fork: namespaces, cgroup, mounts, pivot_root,
 * user, capabilities, execve. Every failure is reported to the agent over
 * the report pipe as errno + "what failed", then the child exits. */
#define _GNU_SOURCE
#include "child.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

#define MAX_SYMLINKS 40
/* A hot-plugged disk appears a moment after QEMU took it (PCIe hotplug, then
 * the virtio probe): looked for this often, this long. */
#define DISK_POLL_MS 20
#define DISK_WAIT_MS 15000
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define REPORT_FD 3
#define START_FD 4
/* A spare's end of the socket its container's spec and stdio come over. */
#define CTL_FD 5

static const char *const cap_names[] = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
  "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
  "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

int
capability_number (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (cap_names); i++)
    if (strcmp (cap_names[i], name) == 0)
      return (int) i;
  return -1;
}

static const char *const sig_names[] = {
  NULL, "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
  "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
  "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
};

int
signal_number (const char *name)
{
  for (size_t i = 1; i < ARRAY_SIZE (sig_names); i++)
    if (strcmp (sig_names[i], name) == 0)
      return (int) i;
  return 0;
}

const char *
signal_name (int sig)
{
  if (sig > 0 && (size_t) sig < ARRAY_SIZE (sig_names))
    return sig_names[sig];
  return "SIGUNKNOWN";
}

static void __attribute__ ((noreturn, format (printf, 2, 3)))
die (int errnum, const char *fmt, ...)
{
  struct child_report r = { .errnum = errnum ? errnum : EINVAL };
  va_list ap;
  size_t len;

  va_start (ap, fmt);
  vsnprintf (r.message, sizeof (r.message), fmt, ap);
  va_end (ap);
  if (errnum)
    {
      len = strlen (r.message);
      snprintf (r.message + len, sizeof (r.message) - len, ": %s", strerror (errnum));
    }
  if (write (REPORT_FD, &r, sizeof (r)) < 0)
    _exit (126);
  _exit (127);
}

/* Resolves `dest` inside `root` as if root were "/" (symlinks cannot lead
 * out), creating what is missing: directories, and the last component as a
 * file when `file` is set. Writes the host-side path to out. */
static int
resolve_in_root (const char *root, const char *dest, bool file, char *out, size_t out_size)
{
  char rest[4096], cur[4096], link[4096];
  int links = 0;

  snprintf (rest, sizeof (rest), "%s", dest);
  snprintf (cur, sizeof (cur), "%s", root);
  for (;;)
    {
      char *p = rest, comp[256];
      size_t n;
      struct stat st;

      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      n = strcspn (p, "/");
      if (n >= sizeof (comp))
        return -ENAMETOOLONG;
      memcpy (comp, p, n);
      comp[n] = '\0';
      memmove (rest, p + n, strlen (p + n) + 1);
      if (strcmp (comp, ".") == 0)
        continue;
      if (strcmp (comp, "..") == 0)
        {
          char *slash = strrchr (cur, '/');
          if (strlen (cur) > strlen (root) && slash)
            *slash = '\0';
          continue;
        }
      if (strlen (cur) + 1 + n + 1 > sizeof (cur))
        return -ENAMETOOLONG;
      strcat (cur, "/");
      strcat (cur, comp);
      if (lstat (cur, &st) == 0)
        {
          if (S_ISLNK (st.st_mode))
            {
              ssize_t l;
              if (++links > MAX_SYMLINKS)
                return -ELOOP;
              l = readlink (cur, link, sizeof (link) - 1);
              if (l < 0)
                return -errno;
              link[l] = '\0';
              *strrchr (cur, '/') = '\0';
              if (link[0] == '/')
                snprintf (cur, sizeof (cur), "%s", root);
              if (strlen (link) + 1 + strlen (rest) + 1 > sizeof (rest))
                return -ENAMETOOLONG;
              memmove (rest + strlen (link) + 1, rest, strlen (rest) + 1);
              memcpy (rest, link, strlen (link));
              rest[strlen (link)] = '/';
            }
          continue;
        }
      if (errno != ENOENT)
        return -errno;
      {
        bool last = rest[strspn (rest, "/")] == '\0';
        if (last && file)
          {
            int fd = open (cur, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
            if (fd < 0)
              return -errno;
            close (fd);
          }
        else if (mkdir (cur, 0755) < 0 && errno != EEXIST)
          return -errno;
      }
    }
  snprintf (out, out_size, "%s", cur);
  return 0;
}

struct flag_name
{
  const char *name;
  unsigned long set, clear;
};

static const struct flag_name mount_flags[] = {
  { "ro", MS_RDONLY, 0 },       { "rw", 0, MS_RDONLY },         { "nosuid", MS_NOSUID, 0 },
  { "suid", 0, MS_NOSUID },     { "nodev", MS_NODEV, 0 },       { "dev", 0, MS_NODEV },
  { "noexec", MS_NOEXEC, 0 },   { "exec", 0, MS_NOEXEC },       { "relatime", MS_RELATIME, 0 },
  { "strictatime", MS_STRICTATIME, 0 }, { "noatime", MS_NOATIME, 0 }, { "sync", MS_SYNCHRONOUS, 0 },
};

/* Splits options into mount flags and the fs data string. */
static void
parse_options (char **opts, size_t n, unsigned long *flags, char *data, size_t data_size)
{
  data[0] = '\0';
  for (size_t i = 0; i < n; i++)
    {
      bool known = false;
      for (size_t j = 0; j < ARRAY_SIZE (mount_flags); j++)
        if (strcmp (opts[i], mount_flags[j].name) == 0)
          {
            *flags = (*flags | mount_flags[j].set) & ~mount_flags[j].clear;
            known = true;
          }
      if (! known && strlen (data) + strlen (opts[i]) + 2 < data_size)
        {
          if (data[0])
            strcat (data, ",");
          strcat (data, opts[i]);
        }
    }
}

static void
do_mount (const char *id, const char *root, const char *kind, const char *source, const char *dest,
          unsigned long flags, const char *data, bool file)
{
  char target[4096];
  int r = resolve_in_root (root, dest, file, target, sizeof (target));
  if (r < 0)
    die (-r, "mount %s on `%s` in container %s: resolve the destination", kind, dest, id);
  if (strcmp (kind, "bind") == 0)
    {
      if (mount (source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        die (errno, "bind `%s` on `%s` in container %s", source, dest, id);
      if ((flags & MS_RDONLY) && mount (NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | (flags & ~MS_RDONLY), NULL) < 0)
        die (errno, "make bind `%s` read-only in container %s", dest, id);
      return;
    }
  if (mount (kind, target, kind, flags, data && data[0] ? data : NULL) < 0)
    die (errno, "mount %s on `%s` in container %s", kind, dest, id);
}

/* The hot-plugged disk whose virtio serial is `serial`: its node under the
 * guest's /dev and its device number, once the guest has found it. */
static void
find_disk (const char *id, const char *serial, char *dev, size_t dev_size, dev_t *rdev)
{
  for (int waited = 0;; waited += DISK_POLL_MS)
    {
      DIR *d = opendir ("/sys/block");
      struct dirent *de;
      while (d != NULL && (de = readdir (d)) != NULL)
        {
          char path[320], got[DISK_SERIAL_MAX + 2];
          struct stat st;
          ssize_t n;
          int fd;
          if (strncmp (de->d_name, "vd", 2) != 0)
            continue;
          snprintf (path, sizeof (path), "/sys/block/%s/serial", de->d_name);
          if ((fd = open (path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
          n = read (fd, got, sizeof (got) - 1);
          close (fd);
          if (n <= 0)
            continue;
          got[n] = '\0';
          got[strcspn (got, "\n")] = '\0';
          snprintf (dev, dev_size, "/dev/%s", de->d_name);
          if (strcmp (got, serial) == 0 && stat (dev, &st) == 0 && S_ISBLK (st.st_mode))
            {
              *rdev = st.st_rdev;
              closedir (d);
              return;
            }
        }
      if (d != NULL)
        closedir (d);
      if (waited >= DISK_WAIT_MS)
        die (ENODEV, "disk %s of container %s: the guest did not find it within %d ms", serial, id, DISK_WAIT_MS);
      usleep (DISK_POLL_MS * 1000);
    }
}

/* The init's devices cgroup (DEVICES_ROOT/<cgroup>), opened before the root
 * changes: its blockdevs are allowed there, and it joins once its mounts are
 * made (mounting a disk needs the device; the container must not). */
static int devices_allow_fd = -1, devices_procs_fd = -1;

static void
devices_open (const char *cgroup, const char *id)
{
  char path[512];
  if (! cgroup_devices_ready ())
    return;
  snprintf (path, sizeof (path), DEVICES_ROOT "/%s/devices.allow", cgroup);
  if ((devices_allow_fd = open (path, O_WRONLY | O_CLOEXEC)) < 0)
    die (errno, "open the devices cgroup of container %s", id);
  snprintf (path, sizeof (path), DEVICES_ROOT "/%s/cgroup.procs", cgroup);
  if ((devices_procs_fd = open (path, O_WRONLY | O_CLOEXEC)) < 0)
    die (errno, "open the devices cgroup of container %s", id);
}

/* "b 254:16 rw": the disk's access as the host asked, never w when it is read-only. */
static void
devices_allow (const char *id, dev_t rdev, const Frakti__Agent__V1__Mount *m)
{
  char rule[64], access[4] = "";
  size_t n = 0;
  const char *want = m->device_access[0] ? m->device_access : "rw";
  for (const char *c = "rwm"; *c; c++)
    if (strchr (want, *c) && ! (*c == 'w' && m->readonly))
      access[n++] = *c;
  access[n] = '\0';
  if (devices_allow_fd < 0 || n == 0)
    return;
  int len = snprintf (rule, sizeof (rule), "b %u:%u %s", major (rdev), minor (rdev), access);
  if (write (devices_allow_fd, rule, (size_t) len) != len)
    die (errno, "allow disk %s (%s) in the devices cgroup of container %s", m->source, rule, id);
}

static void
devices_join (const char *id)
{
  if (devices_procs_fd >= 0 && write (devices_procs_fd, "0", 1) != 1)
    die (errno, "join the devices cgroup of container %s", id);
}

/* A disk in the container: mounted with its filesystem (block), or as a device node (blockdev). */
static void
mount_disk (const char *id, const char *root, const Frakti__Agent__V1__Mount *m)
{
  char dev[300], target[4096], data[1024];
  unsigned long flags = 0;
  dev_t rdev;
  bool node = strcmp (m->kind, "blockdev") == 0;
  int r;

  find_disk (id, m->source, dev, sizeof (dev), &rdev);
  if ((r = resolve_in_root (root, m->destination, node, target, sizeof (target))) < 0)
    die (-r, "disk %s on `%s` in container %s: resolve the destination", m->source, m->destination, id);
  if (node)
    {
      /* Read-only is QEMU's (the disk is plugged read-only); the mode says so too. */
      if ((unlink (target) < 0 && errno != ENOENT) || mknod (target, S_IFBLK | (m->readonly ? 0440 : 0660), rdev) < 0)
        die (errno, "device node `%s` for disk %s in container %s", m->destination, m->source, id);
      devices_allow (id, rdev, m);
      return;
    }
  parse_options (m->options, m->n_options, &flags, data, sizeof (data));
  if (m->readonly)
    flags |= MS_RDONLY;
  if (mount (dev, target, m->fs_type[0] ? m->fs_type : "ext4", flags, data[0] ? data : NULL) < 0)
    die (errno, "mount disk %s (%s) on `%s` in container %s", m->source, m->fs_type[0] ? m->fs_type : "ext4", m->destination, id);
}

/* A path of the container as it is now, without creating anything: false when
 * it is missing or a symlink (which could lead out of the root). */
static bool
existing_in_root (const char *root, const char *path, char *out, size_t out_size, struct stat *st)
{
  if ((size_t) snprintf (out, out_size, "%s%s", root, path) >= out_size)
    return false;
  return lstat (out, st) == 0 && ! S_ISLNK (st->st_mode);
}

/* runc's maskedPaths and readonlyPaths, after every other mount. */
static void
mask_and_protect (const char *id, const char *root, const Frakti__Agent__V1__ContainerSpec *spec)
{
  char target[4096];
  struct stat st;

  for (size_t i = 0; i < spec->n_readonly_paths; i++)
    {
      struct statfs fs;
      unsigned long keep = 0;
      if (! existing_in_root (root, spec->readonly_paths[i], target, sizeof (target), &st))
        continue;
      if (mount (target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        die (errno, "bind read-only path `%s` in container %s", spec->readonly_paths[i], id);
      /* A remount must keep the locked flags of the mount it binds (proc's nosuid, nodev, noexec). */
      if (statfs (target, &fs) == 0)
        keep = (fs.f_flags & ST_NOSUID ? MS_NOSUID : 0) | (fs.f_flags & ST_NODEV ? MS_NODEV : 0) | (fs.f_flags & ST_NOEXEC ? MS_NOEXEC : 0);
      if (mount (NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | keep, NULL) < 0)
        die (errno, "make `%s` read-only in container %s", spec->readonly_paths[i], id);
    }
  for (size_t i = 0; i < spec->n_masked_paths; i++)
    {
      int r;
      if (! existing_in_root (root, spec->masked_paths[i], target, sizeof (target), &st))
        continue;
      if (S_ISDIR (st.st_mode))
        r = mount ("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
      else
        r = mount ("/dev/null", target, NULL, MS_BIND, NULL);
      if (r < 0)
        die (errno, "mask `%s` in container %s", spec->masked_paths[i], id);
    }
}

static bool
user_mounts (const Frakti__Agent__V1__ContainerSpec *spec, const char *dest)
{
  for (size_t i = 0; i < spec->n_mounts; i++)
    if (strcmp (spec->mounts[i]->destination, dest) == 0)
      return true;
  return false;
}

static void
setup_rootfs (const char *id, const Frakti__Agent__V1__ContainerSpec *spec)
{
  static const struct
  {
    const char *kind, *dest, *data;
    unsigned long flags;
  } defaults[] = {
    { "proc", "/proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC },
    { "tmpfs", "/dev", "mode=755,size=65536k", MS_NOSUID | MS_STRICTATIME },
    { "devpts", "/dev/pts", "newinstance,ptmxmode=0666,mode=0620,gid=5", MS_NOSUID | MS_NOEXEC },
    { "tmpfs", "/dev/shm", "mode=1777,size=65536k", MS_NOSUID | MS_NODEV | MS_NOEXEC },
    { "mqueue", "/dev/mqueue", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC },
    { "sysfs", "/sys", NULL, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC },
  };
  static const struct
  {
    const char *name;
    unsigned major, minor;
  } devices[] = { { "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 } };
  const char *root = spec->rootfs;
  char path[4096];
  bool own_dev;

  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    die (errno, "make mounts private in container %s", id);
  if (mount (root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
    die (errno, "bind rootfs `%s` of container %s", root, id);
  for (size_t i = 0; i < ARRAY_SIZE (defaults); i++)
    if (! user_mounts (spec, defaults[i].dest))
      do_mount (id, root, defaults[i].kind, NULL, defaults[i].dest, defaults[i].flags, defaults[i].data, false);
  own_dev = ! user_mounts (spec, "/dev");
  if (own_dev)
    {
      for (size_t i = 0; i < ARRAY_SIZE (devices); i++)
        {
          snprintf (path, sizeof (path), "%s/dev/%s", root, devices[i].name);
          if (mknod (path, S_IFCHR | 0666, makedev (devices[i].major, devices[i].minor)) < 0 && errno != EEXIST)
            die (errno, "mknod `/dev/%s` in container %s", devices[i].name, id);
          chmod (path, 0666);
        }
      static const char *links[][2] = { { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
                                         { "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
                                         { "pts/ptmx", "ptmx" } };
      for (size_t i = 0; i < ARRAY_SIZE (links); i++)
        {
          snprintf (path, sizeof (path), "%s/dev/%s", root, links[i][1]);
          if (symlink (links[i][0], path) < 0 && errno != EEXIST)
            die (errno, "symlink `/dev/%s` in container %s", links[i][1], id);
        }
    }
  for (size_t i = 0; i < spec->n_mounts; i++)
    {
      const Frakti__Agent__V1__Mount *m = spec->mounts[i];
      unsigned long flags = 0;
      char data[1024];
      if (strcmp (m->kind, "bind") == 0)
        {
          struct stat st;
          if (stat (m->source, &st) < 0)
            die (errno, "bind source `%s` of container %s", m->source, id);
          do_mount (id, root, "bind", m->source, m->destination, m->readonly ? MS_RDONLY : 0, NULL, ! S_ISDIR (st.st_mode));
          continue;
        }
      if (strcmp (m->kind, "block") == 0 || strcmp (m->kind, "blockdev") == 0)
        {
          mount_disk (id, root, m);
          continue;
        }
      if (strcmp (m->kind, "tmpfs") == 0 && m->source[0])
        {
          /* The pod's tmpfs, mounted by the agent: every container binds the same. */
          do_mount (id, root, "bind", m->source, m->destination, m->readonly ? MS_RDONLY : 0, NULL, false);
          continue;
        }
      parse_options (m->options, m->n_options, &flags, data, sizeof (data));
      if (strcmp (m->kind, "proc") == 0 || strcmp (m->kind, "sysfs") == 0 || strcmp (m->kind, "mqueue") == 0)
        flags |= MS_NOSUID | MS_NODEV | MS_NOEXEC;
      do_mount (id, root, m->kind, NULL, m->destination, flags, data, false);
    }

  mask_and_protect (id, root, spec);

  /* pivot_root needs the old root to be a mount with a parent, which the
   * initramfs root is not; where it refuses (EINVAL), move the rootfs over
   * "/" and chroot, as runc's no-pivot mode does. */
  if (chdir (root) < 0)
    die (errno, "chdir to rootfs `%s` of container %s", root, id);
  if (syscall (SYS_pivot_root, ".", ".") == 0)
    {
      if (umount2 (".", MNT_DETACH) < 0)
        die (errno, "detach the old root of container %s", id);
    }
  else
    {
      if (errno != EINVAL)
        die (errno, "pivot_root to `%s` in container %s", root, id);
      if (mount (root, "/", NULL, MS_MOVE, NULL) < 0)
        die (errno, "move rootfs `%s` to / in container %s", root, id);
      if (chroot (".") < 0)
        die (errno, "chroot to `%s` in container %s", root, id);
    }
  if (chdir ("/") < 0)
    die (errno, "chdir / in container %s", id);
  if (spec->readonly_rootfs && mount (NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
    die (errno, "make the rootfs of container %s read-only", id);
}

static const char *
env_path (char **env, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strncmp (env[i], "PATH=", 5) == 0)
      return env[i] + 5;
  return DEFAULT_PATH;
}

static void
set_user_and_caps (const char *id, const Frakti__Agent__V1__ContainerSpec *spec, int64_t uid, int64_t gid,
                   uint32_t *gids, size_t n_gids)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2];
  uint64_t keep = 0, ambient = 0;
  gid_t groups[256];

  for (size_t i = 0; i < spec->n_capabilities; i++)
    {
      int c = capability_number (spec->capabilities[i]);
      if (c < 0)
        die (EINVAL, "unknown capability `%s` for container %s", spec->capabilities[i], id);
      keep |= 1ULL << c;
    }
  for (int c = 0; c < 64; c++)
    if (! (keep & (1ULL << c)) && prctl (PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      die (errno, "drop capability %d from the bounding set in container %s", c, id);
  if (n_gids > ARRAY_SIZE (groups))
    die (E2BIG, "more than %zu supplementary groups in container %s", ARRAY_SIZE (groups), id);
  for (size_t i = 0; i < n_gids; i++)
    groups[i] = gids[i];
  if (setgroups (n_gids, groups) < 0)
    die (errno, "setgroups in container %s", id);
  if (setresgid ((gid_t) gid, (gid_t) gid, (gid_t) gid) < 0)
    die (errno, "setgid %lld in container %s", (long long) gid, id);
  if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    die (errno, "keep capabilities in container %s", id);
  if (setresuid ((uid_t) uid, (uid_t) uid, (uid_t) uid) < 0)
    die (errno, "setuid %lld in container %s", (long long) uid, id);
  prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0);
  /* Effective = permitted = the list; inheritable and ambient hold only what
   * the CRI asks as ambient (empty otherwise, as containerd sets them since
   * CVE-2022-24769): an ambient capability must be inheritable too. */
  for (size_t i = 0; i < spec->n_ambient_capabilities; i++)
    ambient |= 1ULL << capability_number (spec->ambient_capabilities[i]);
  memset (data, 0, sizeof (data));
  data[0].effective = data[0].permitted = (uint32_t) keep;
  data[1].effective = data[1].permitted = (uint32_t) (keep >> 32);
  data[0].inheritable = (uint32_t) (ambient & keep);
  data[1].inheritable = (uint32_t) ((ambient & keep) >> 32);
  if (syscall (SYS_capset, &hdr, data) < 0)
    die (errno, "set capabilities in container %s", id);
  prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (int c = 0; c < 64; c++)
    if ((ambient & keep & (1ULL << c)) && prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
      die (errno, "raise ambient capability %d in container %s", c, id);
  if (spec->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    die (errno, "set no_new_privs in container %s", id);
}

/* The container's seccomp filter (compiled by the host), as the last step
 * before the user's code: with no_new_privs after the switch to the user;
 * without, before it, while the process still holds CAP_SYS_ADMIN, which
 * installing a filter then needs (runc does the same). */
static void
install_seccomp (const char *id, const ProtobufCBinaryData *f)
{
  struct sock_fprog prog;
  struct sock_filter *insns;

  if (f->len == 0)
    return;
  if (f->len % sizeof (struct sock_filter) != 0 || f->len / sizeof (struct sock_filter) > BPF_MAXINSNS)
    die (EINVAL, "the seccomp filter of container %s is not a BPF program", id);
  /* A copy: protobuf-c's bytes need not be aligned for sock_filter. */
  insns = xmalloc (f->len);
  memcpy (insns, f->data, f->len);
  prog.len = (unsigned short) (f->len / sizeof (struct sock_filter));
  prog.filter = insns;
  if (prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
    die (errno, "install the seccomp filter of container %s", id);
}

static void __attribute__ ((noreturn))
exec_process (const char *id, const Frakti__Agent__V1__ContainerSpec *spec, const Frakti__Agent__V1__ProcessSpec *p)
{
  const Frakti__Agent__V1__ProcessSpec *init = spec->process;
  char **env = p->n_env ? p->env : init->env;
  size_t n_env = p->n_env ? p->n_env : init->n_env;
  const char *cwd = p->cwd[0] ? p->cwd : init->cwd;
  bool own_user = p->uid >= 0;
  char **argv = xzalloc ((p->n_args + 1) * sizeof (char *));
  char **envp = xzalloc ((n_env + 1) * sizeof (char *));
  char path[4096];

  memcpy (argv, p->args, p->n_args * sizeof (char *));
  memcpy (envp, env, n_env * sizeof (char *));
  /* As runc does for a container's own process: a working directory the
   * image lacks is made (0755, as root, inside the container's root). A
   * failure to make it shows as the chdir's error just below. */
  if (p == init && cwd[0])
    {
      char made[4096];
      (void) resolve_in_root ("", cwd, false, made, sizeof (made));
    }
  if (chdir (cwd[0] ? cwd : "/") < 0)
    die (errno, "chdir `%s` in container %s", cwd, id);
  if (! spec->no_new_privileges)
    install_seccomp (id, &spec->seccomp_filter);
  if (own_user)
    set_user_and_caps (id, spec, p->uid, p->gid >= 0 ? p->gid : init->gid, p->additional_gids, p->n_additional_gids);
  else
    set_user_and_caps (id, spec, init->uid, init->gid, init->additional_gids, init->n_additional_gids);
  if (spec->no_new_privileges)
    install_seccomp (id, &spec->seccomp_filter);
  if (strchr (argv[0], '/'))
    snprintf (path, sizeof (path), "%s", argv[0]);
  else
    {
      const char *dirs = env_path (envp, n_env);
      path[0] = '\0';
      while (*dirs)
        {
          size_t n = strcspn (dirs, ":");
          snprintf (path, sizeof (path), "%.*s/%s", (int) n, dirs, argv[0]);
          if (access (path, X_OK) == 0)
            break;
          path[0] = '\0';
          dirs += n;
          if (*dirs == ':')
            dirs++;
        }
      if (path[0] == '\0')
        die (ENOENT, "find `%s` in $PATH of container %s", argv[0], id);
    }
  execve (path, argv, envp);
  die (errno, "execve `%s` in container %s", path, id);
}

static void
move_fd (int from, int to)
{
  if (from == to)
    {
      fcntl (to, F_SETFD, 0);
      return;
    }
  dup2 (from, to);
}

/* What every child does first: the agent's signal mask and dispositions undone, a session of its own. */
static void
child_prologue (void)
{
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  signal (SIGPIPE, SIG_DFL);
  if (setsid () < 0)
    _exit (126);
}

/* The init joins its cgroup (v2) and opens its devices cgroup (joined after the mounts). */
static void
join_cgroups (const char *cgroup, const char *id)
{
  char procs[512];
  struct agent_error e = { 0 };
  snprintf (procs, sizeof (procs), CGROUP_PARENT "/%s/cgroup.procs", cgroup);
  if (write_file (procs, "0", &e) < 0)
    die (e.errnum, "join the cgroup of container %s", id);
  devices_open (cgroup, id);
}

static void child_container (const struct child_ctx *ctx) __attribute__ ((noreturn));

void
child_run (struct child_ctx *ctx)
{
  int report, start = -1;
  const char *id = ctx->id;
  char procs[512];
  struct agent_error exec_failed = { 0 };

  child_prologue ();
  /* An exec joins the container first: its cgroup (by path, before the
   * mount namespace changes what paths mean), then its namespaces. */
  if (ctx->exec)
    {
      static const int types[3] = { CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC };
      struct agent_error e = { 0 };
      snprintf (procs, sizeof (procs), CGROUP_PARENT "/%s/cgroup.procs", ctx->cgroup);
      if (write_file (procs, "0", &e) < 0)
        exec_failed = e;
      snprintf (procs, sizeof (procs), DEVICES_ROOT "/%s/cgroup.procs", ctx->cgroup);
      if (exec_failed.errnum == 0 && cgroup_devices_ready () && write_file (procs, "0", &e) < 0)
        exec_failed = e;
      for (int i = 0; i < 3 && exec_failed.errnum == 0; i++)
        if (setns (ctx->ns_fds[i], types[i]) < 0)
          agent_error_set (&exec_failed, errno, "join namespace %d of container %s", i, id);
    }
  /* The fds we keep go far up first, so the stdio dup2s below cannot clobber them. */
  report = fcntl (ctx->report_fd, F_DUPFD_CLOEXEC, 200);
  if (ctx->start_fd >= 0)
    start = fcntl (ctx->start_fd, F_DUPFD_CLOEXEC, 200);
  int in = fcntl (ctx->stdio[0], F_DUPFD, 210), out = fcntl (ctx->stdio[1], F_DUPFD, 211),
      err = fcntl (ctx->stdio[2], F_DUPFD, 212);
  dup2 (report, REPORT_FD);
  fcntl (REPORT_FD, F_SETFD, FD_CLOEXEC);
  if (start >= 0)
    {
      dup2 (start, START_FD);
      fcntl (START_FD, F_SETFD, FD_CLOEXEC);
    }

  if (exec_failed.errnum)
    {
      /* The message already ends in strerror: send it as it is. */
      struct child_report r = { .errnum = exec_failed.errnum };
      memcpy (r.message, exec_failed.message, sizeof (r.message));
      if (write (REPORT_FD, &r, sizeof (r)) < 0)
        _exit (126);
      _exit (127);
    }
  move_fd (in, 0);
  move_fd (out, 1);
  move_fd (err, 2);
  syscall (SYS_close_range, ctx->exec ? 3 + 1 : START_FD + 1, ~0U, 0);
  /* An init's terminal comes with the start (below): its pty lives in the devpts the setup mounts. */
  if (ctx->terminal && ctx->exec && ioctl (0, TIOCSCTTY, 0) < 0)
    die (errno, "set the controlling terminal in container %s", id);

  if (ctx->exec)
    exec_process (id, ctx->spec, ctx->exec);

  join_cgroups (ctx->cgroup, id);
  child_container (ctx);
}

/* From the namespaces to execve: the init's part after its cgroups, the same
 * for a fresh fork and for a spare. */
static void
child_container (const struct child_ctx *ctx)
{
  const char *id = ctx->id;
  /* The IPC namespace stays the guest's, which is the pod's: its containers
   * share SysV IPC and POSIX queues, and the pod's kernel.shm* / kernel.msg* /
   * kernel.sem sysctls (set by the sandbox setup) are theirs. */
  if (unshare (CLONE_NEWNS | CLONE_NEWUTS) < 0)
    die (errno, "unshare the namespaces of container %s", id);
  if (ctx->spec->hostname[0] && sethostname (ctx->spec->hostname, strlen (ctx->spec->hostname)) < 0)
    die (errno, "set hostname `%s` of container %s", ctx->spec->hostname, id);
  setup_rootfs (id, ctx->spec);
  devices_join (id);
  {
    struct child_report ok = { 0 };
    if (write (REPORT_FD, &ok, sizeof (ok)) < 0)
      _exit (126);
  }
  /* Created: wait for StartContainer. EOF means the container was removed first. */
  {
    unsigned char go[5];
    size_t want = ctx->terminal ? 5 : 1, got = 0;
    while (got < want)
      {
        ssize_t n = read (START_FD, go + got, want - got);
        if (n < 0 && errno == EINTR)
          continue;
        if (n <= 0)
          _exit (0);
        got += (size_t) n;
      }
    close (START_FD);
    if (ctx->terminal)
      {
        unsigned number;
        char path[32];
        memcpy (&number, go + 1, 4);
        snprintf (path, sizeof (path), "/dev/pts/%u", number);
        int tty = open (path, O_RDWR | O_NOCTTY);
        if (tty < 0)
          die (errno, "open the terminal `%s` of container %s", path, id);
        for (int i = 0; i < 3; i++)
          if (dup2 (tty, i) < 0)
            die (errno, "dup2 the terminal of container %s", id);
        if (tty > 2)
          close (tty);
        if (ioctl (0, TIOCSCTTY, 0) < 0)
          die (errno, "set the controlling terminal in container %s", id);
      }
  }
  exec_process (id, ctx->spec, ctx->spec->process);
}

/* Moves fds[i] to the number to[i] (and closes the original), through numbers
 * above them all so that no move lands on an fd still to be moved. */
static void
place_fds (int n, const int *fds, const int *to, int flags)
{
  int high[3];
  for (int i = 0; i < n; i++)
    if ((high[i] = fcntl (fds[i], F_DUPFD_CLOEXEC, 200)) < 0)
      _exit (126);
  for (int i = 0; i < n; i++)
    if (fds[i] != high[i])
      close (fds[i]);
  for (int i = 0; i < n; i++)
    {
      if (dup3 (high[i], to[i], flags) < 0)
        _exit (126);
      close (high[i]);
    }
}

/* The spec and the stdio of the container the spare becomes: a length and
 * three fds, then the packed spec. EOF: the agent discarded the spare. */
static Frakti__Agent__V1__ContainerSpec *
receive_container (int stdio[3])
{
  uint32_t len = 0;
  struct iovec iov = { .iov_base = &len, .iov_len = sizeof (len) };
  union
  {
    char buf[CMSG_SPACE (3 * sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
  ssize_t n;
  do
    n = recvmsg (CTL_FD, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  while (n < 0 && errno == EINTR);
  if (n == 0)
    _exit (0);
  struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
  if (n != (ssize_t) sizeof (len) || cm == NULL || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS
      || cm->cmsg_len != CMSG_LEN (3 * sizeof (int)))
    die (n < 0 ? errno : EPROTO, "a spare container process: bad hand-over header");
  memcpy (stdio, CMSG_DATA (cm), 3 * sizeof (int));
  if (len == 0 || len > MAX_FRAME_PAYLOAD_BYTES)
    die (EMSGSIZE, "a spare container process: a spec of %u bytes", len);
  uint8_t *buf = malloc (len);
  if (buf == NULL)
    die (ENOMEM, "a spare container process: the spec");
  for (size_t got = 0; got < len;)
    {
      ssize_t r = read (CTL_FD, buf + got, len - got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        die (r < 0 ? errno : EPIPE, "a spare container process: read the spec");
      got += (size_t) r;
    }
  Frakti__Agent__V1__ContainerSpec *spec = frakti__agent__v1__container_spec__unpack (NULL, len, buf);
  free (buf);
  if (spec == NULL || spec->process == NULL)
    die (EPROTO, "a spare container process: the spec does not unpack");
  return spec;
}

void
child_exec_spare (const char *cgroup, int ctl, int start_fd, int report_fd)
{
  char *argv[] = { "frakti-spare", "--spare", (char *) cgroup, cgroup_devices_ready () ? "--devices" : NULL, NULL };
  place_fds (3, (int[]) { report_fd, start_fd, ctl }, (int[]) { REPORT_FD, START_FD, CTL_FD }, 0);
  syscall (SYS_close_range, CTL_FD + 1, ~0U, 0);
  execve ("/proc/self/exe", argv, environ);
  _exit (127);
}

int
child_run_spare (const char *cgroup, bool devices)
{
  int stdio[3];

  /* Only the agent execs this, with the name it made: anything else is refused before it touches a cgroup. */
  if (strncmp (cgroup, "_spare-", 7) != 0 || strlen (cgroup) >= SPARE_CGROUP_BYTES || strspn (cgroup + 7, "0123456789") != strlen (cgroup + 7)
      || cgroup[7] == '\0')
    {
      fprintf (stderr, "frakti-spare: `%s` is not a spare's cgroup\n", cgroup);
      _exit (2);
    }
  child_prologue ();
  prctl (PR_SET_NAME, "frakti-spare");
  for (int fd = REPORT_FD; fd <= CTL_FD; fd++)
    if (fcntl (fd, F_SETFD, FD_CLOEXEC) < 0)
      _exit (126);
  if (devices)
    cgroup_devices_mounted ();
  join_cgroups (cgroup, cgroup);

  Frakti__Agent__V1__ContainerSpec *spec = receive_container (stdio);
  close (CTL_FD);
  place_fds (3, stdio, (int[]) { 0, 1, 2 }, 0);
  struct child_ctx ctx = {
    .id = spec->id, .cgroup = cgroup, .spec = spec, .exec = NULL, .stdio = { 0, 1, 2 },
    .report_fd = REPORT_FD, .start_fd = START_FD, .ns_fds = { -1, -1, -1 }, .terminal = spec->process->terminal,
  };
  child_container (&ctx);
}
