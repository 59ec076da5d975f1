/* The guest as a whole: sandbox setup (hostname, virtio-fs shares, DNS,
 * hosts, sysctls), guest stats, onlining hot-plugged CPUs and memory, and
 * port forwards to 127.0.0.1 inside the pod. */
#define _GNU_SOURCE
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calls.h"
#include "cgroup.h"
#include "util.h"

#define MAX_FORWARDS 1024
#define MAX_HOTPLUG_ITEMS 4096

struct port_forward
{
  struct port_forward *next;
  struct ostream o;
  struct istream i;
};

static int
mkdir_p (const char *path, struct agent_error *err)
{
  char buf[4096];
  snprintf (buf, sizeof (buf), "%s", path);
  for (char *p = buf + 1;; p++)
    if (*p == '/' || *p == '\0')
      {
        char saved = *p;
        *p = '\0';
        if (mkdir (buf, 0755) < 0 && errno != EEXIST)
          return agent_error_set (err, errno, "mkdir `%s`", buf);
        if (saved == '\0')
          return 0;
        *p = saved;
      }
}

static bool
is_mount_point (const char *path)
{
  char parent[4096];
  struct stat a, b;
  snprintf (parent, sizeof (parent), "%s/..", path);
  return stat (path, &a) == 0 && stat (parent, &b) == 0 && a.st_dev != b.st_dev;
}

static int
write_whole (const char *path, const char *content, struct agent_error *err)
{
  char tmp[4200];
  cleanup_close int fd = -1;
  snprintf (tmp, sizeof (tmp), "%s.frakti-tmp", path);
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return agent_error_set (err, errno, "open `%s`", tmp);
  if (write_all (fd, content, strlen (content)) < 0)
    return agent_error_set (err, errno, "write `%s`", tmp);
  if (rename (tmp, path) < 0)
    return agent_error_set (err, errno, "rename to `%s`", path);
  return 0;
}

/* "net.ipv4.ip_forward" or "net/ipv4/ip_forward" -> /proc/sys/net/ipv4/ip_forward, refusing anything odd. */
static int
sysctl_path (const char *name, char *out, size_t size)
{
  size_t n = strlen (name);
  if (n == 0 || n > 255 || strstr (name, "..") || name[0] == '/' || name[0] == '.')
    return -1;
  for (size_t i = 0; i < n; i++)
    {
      char ch = name[i];
      if (! ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '/' || ch == '-'))
        return -1;
    }
  snprintf (out, size, "/proc/sys/%s", name);
  /* Dots separate levels unless the name already uses slashes (then dots belong to names, e.g. interface eth0.1). */
  if (strchr (name, '/') == NULL)
    for (char *p = out + strlen ("/proc/sys/"); *p; p++)
      if (*p == '.')
        *p = '/';
  return 0;
}

size_t
call_setup_sandbox (struct agent *agent UNUSED, const Request *req, uint8_t **out)
{
  const Frakti__Agent__V1__SetupSandboxRequest *s = req->setup_sandbox;
  struct agent_error err = { 0 };
  char path[4200];

  if (strlen (s->hostname) > 64)
    return error_response (EINVAL, "hostname longer than 64 bytes", out);
  if (s->hostname[0] && sethostname (s->hostname, strlen (s->hostname)) < 0)
    {
      agent_error_set (&err, errno, "sethostname `%s`", s->hostname);
      return agent_error_response (&err, out);
    }
  for (size_t i = 0; i < s->n_shares; i++)
    {
      const Frakti__Agent__V1__ShareMount *m = s->shares[i];
      if (m->mount_point[0] != '/' || strstr (m->mount_point, "..") || strlen (m->mount_point) > 1024 || m->tag[0] == '\0')
        return error_response (EINVAL, "invalid share mount point or tag", out);
      if (mkdir_p (m->mount_point, &err) < 0)
        return agent_error_response (&err, out);
      if (is_mount_point (m->mount_point))
        continue; /* set up by an earlier call (a retry after reconnect) */
      /* Not nosuid: a setuid binary of the image must work as under runc
       * (unless the container asks for no_new_privs). */
      if (mount (m->tag, m->mount_point, "virtiofs", MS_NODEV, NULL) < 0)
        {
          agent_error_set (&err, errno, "mount virtiofs `%s` on `%s`", m->tag, m->mount_point);
          return agent_error_response (&err, out);
        }
    }
  if (s->resolv_conf[0] && write_whole ("/etc/resolv.conf", s->resolv_conf, &err) < 0)
    return agent_error_response (&err, out);
  if (s->hosts[0] && write_whole ("/etc/hosts", s->hosts, &err) < 0)
    return agent_error_response (&err, out);
  for (size_t i = 0; i < s->n_sysctls; i++)
    {
      const char *k = s->sysctls[i]->key, *v = s->sysctls[i]->value;
      if (sysctl_path (k, path, sizeof (path)) < 0)
        {
          agent_error_set (&err, EINVAL, "invalid sysctl name `%.64s`", k);
          return agent_error_response (&err, out);
        }
      if (write_file (path, v, &err) < 0)
        {
          agent_error_wrap (&err, "sysctl %s", k);
          return agent_error_response (&err, out);
        }
    }
  Frakti__Agent__V1__SetupSandboxResponse m = FRAKTI__AGENT__V1__SETUP_SANDBOX_RESPONSE__INIT;
  return empty_response (FRAKTI__AGENT__V1__RESPONSE__RESULT_SETUP_SANDBOX, &m, out);
}

/* Counts CPUs in a list such as "0-3,5". */
static uint32_t
count_cpu_list (const char *s)
{
  uint32_t n = 0;
  while (*s >= '0' && *s <= '9')
    {
      char *end;
      unsigned long a = strtoul (s, &end, 10), b = a;
      if (*end == '-')
        b = strtoul (end + 1, &end, 10);
      if (b >= a && b - a < 65536)
        n += (uint32_t) (b - a + 1);
      s = end;
      if (*s == ',')
        s++;
    }
  return n;
}

static uint64_t
meminfo (const char *text, const char *key)
{
  const char *p = strstr (text, key);
  if (p == NULL)
    return 0;
  return strtoull (p + strlen (key), NULL, 10) * 1024;
}

size_t
call_guest_stats (struct agent *agent UNUSED, const Request *req UNUSED, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__GuestStatsResponse g = FRAKTI__AGENT__V1__GUEST_STATS_RESPONSE__INIT;
  char buf[8192];

  if (read_small_file ("/proc/meminfo", buf, sizeof (buf)) < 0)
    return error_response (errno, "read /proc/meminfo", out);
  g.mem_total_bytes = meminfo (buf, "MemTotal:");
  g.mem_available_bytes = meminfo (buf, "MemAvailable:");
  if (read_small_file ("/sys/devices/system/cpu/online", buf, sizeof (buf)) < 0)
    return error_response (errno, "read /sys/devices/system/cpu/online", out);
  g.cpus = count_cpu_list (buf);
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_GUEST_STATS;
  resp.guest_stats = &g;
  return pack_response (&resp, out);
}

/* Writes `value` to DIR/<prefix>N/FILE for every entry whose FILE reads `offline`; returns how many. */
static uint32_t
online_all (const char *dir, const char *prefix, const char *file, const char *offline, const char *value)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  uint32_t n = 0, seen = 0;
  if (d == NULL)
    return 0;
  while ((de = readdir (d)) != NULL && seen++ < MAX_HOTPLUG_ITEMS)
    {
      char path[512], buf[64];
      struct agent_error err = { 0 };
      size_t plen = strlen (prefix);
      if (strncmp (de->d_name, prefix, plen) != 0 || de->d_name[plen] < '0' || de->d_name[plen] > '9')
        continue;
      snprintf (path, sizeof (path), "%s/%s/%s", dir, de->d_name, file);
      if (read_small_file (path, buf, sizeof (buf)) < 0)
        continue;
      buf[strcspn (buf, "\n")] = '\0';
      if (strcmp (buf, offline) != 0)
        continue;
      if (write_file (path, value, &err) < 0)
        agent_error_log (&err);
      else
        n++;
    }
  closedir (d);
  return n;
}

size_t
call_online_hotplugged (struct agent *agent UNUSED, const Request *req UNUSED, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__OnlineHotpluggedResponse h = FRAKTI__AGENT__V1__ONLINE_HOTPLUGGED_RESPONSE__INIT;
  char buf[64];
  uint64_t block = 0;

  h.cpus = online_all ("/sys/devices/system/cpu", "cpu", "online", "0", "1");
  if (read_small_file ("/sys/devices/system/memory/block_size_bytes", buf, sizeof (buf)) > 0)
    block = strtoull (buf, NULL, 16);
  h.memory_bytes = block * online_all ("/sys/devices/system/memory", "memory", "state", "offline", "online");
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_ONLINE_HOTPLUGGED;
  resp.online_hotplugged = &h;
  return pack_response (&resp, out);
}

/* ---- port forwards ---- */

static void
forward_free (struct agent *agent, struct port_forward *f)
{
  struct port_forward **pp;
  for (pp = &agent->forwards; *pp; pp = &(*pp)->next)
    if (*pp == f)
      {
        *pp = f->next;
        break;
      }
  ostream_free (&f->o);
  istream_free (&f->i);
  agent->n_forwards--;
  free (f);
}

static void
forward_changed (void *arg UNUSED)
{
  /* Freed by forwards_pump_all once both directions ended: never from inside a stream callback. */
}

size_t
call_port_forward (struct agent *agent, const Request *req, uint8_t **out)
{
  uint32_t port = req->port_forward->port;
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port), .sin_addr = { htonl (INADDR_LOOPBACK) } };
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__PortForwardResponse r = FRAKTI__AGENT__V1__PORT_FORWARD_RESPONSE__INIT;
  struct port_forward *f;
  char msg[128];
  int fd;

  if (port == 0 || port > 65535)
    return error_response (EINVAL, "port must be in [1, 65535]", out);
  if (agent->n_forwards >= MAX_FORWARDS)
    return error_response (EAGAIN, "too many port forwards", out);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return error_response (errno, "socket", out);
  /* Loopback connects (or is refused) at once: blocking is fine here. */
  if (connect (fd, (struct sockaddr *) &addr, sizeof (addr)) < 0)
    {
      int e = errno;
      close (fd);
      snprintf (msg, sizeof (msg), "connect 127.0.0.1:%u: %s", port, strerror (e));
      return error_response (e, msg, out);
    }
  fcntl (fd, F_SETFL, O_NONBLOCK);
  f = xzalloc (sizeof (*f));
  ostream_init (&f->o, agent, fd, forward_changed, f);
  istream_init (&f->i, agent, fcntl (fd, F_DUPFD_CLOEXEC, 0));
  f->i.shutdown_socket = true;
  ostream_attach (&f->o, stream_new_id (agent));
  istream_attach (&f->i, f->o.id);
  f->next = agent->forwards;
  agent->forwards = f;
  agent->n_forwards++;
  r.stream = f->o.id;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_PORT_FORWARD;
  resp.port_forward = &r;
  return pack_response (&resp, out);
}

struct istream *
forwards_find_istream (struct agent *agent, uint32_t id)
{
  for (struct port_forward *f = agent->forwards; f; f = f->next)
    if (f->i.id == id)
      return &f->i;
  return NULL;
}

struct ostream *
forwards_find_ostream (struct agent *agent, uint32_t id)
{
  for (struct port_forward *f = agent->forwards; f; f = f->next)
    if (f->o.id == id)
      return &f->o;
  return NULL;
}

void
forwards_pump_all (struct agent *agent)
{
  struct port_forward *f = agent->forwards, *next;
  for (; f; f = next)
    {
      next = f->next;
      ostream_pump (&f->o);
      /* Done when our side sent CLOSE and the host's side closed (its data flushed). */
      if (f->o.eof && f->o.close_sent && f->i.host_closed && f->i.len == 0)
        forward_free (agent, f);
    }
}

void
forwards_close_all (struct agent *agent)
{
  while (agent->forwards)
    forward_free (agent, agent->forwards);
}
