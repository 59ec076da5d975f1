/* Finding and serving the channel to the host:
 * - a virtio-serial port named org.frakti.agent.0 (one fd for the VM's life;
 *   hosts connect and disconnect on the QEMU side),
 * - else vsock, listening on port 1024 of any CID,
 * - or, for host tests, a unix socket (--listen-unix PATH).
 * Sockets: one connection at a time; a new one replaces the previous one (a
 * restarted frakti must never be locked out by its dead predecessor). */
#define _GNU_SOURCE
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define VIRTIO_PORTS_DIR "/sys/class/virtio-ports"
/* The port's name arrives from QEMU shortly after the driver binds: keep looking this long. */
#define CHANNEL_SEARCH_TIMEOUT_MS 5000
#define CHANNEL_SEARCH_INTERVAL_MS 5
/* With no host on the port, poll() reports HUP continuously (no edge for
 * "host connected"), so a timer checks: often at first, then less. */
#define PORT_POLL_FAST_INTERVAL_MS 10
#define PORT_POLL_FAST_TICKS 100
#define PORT_POLL_SLOW_INTERVAL_MS 40
/* A new host waits for the answer to its HELLO: its bytes stop coming this
 * long after it sent them, well above a frame's delivery under load. */
#define PORT_STALL_CHECK_MS 1000
#define LISTEN_BACKLOG 4

static unsigned port_poll_ticks;

/* Looks for the port by name; fills dev ("/dev/vport0p1") and returns 0, or -1 if absent. */
static int
find_virtio_port (char *dev, size_t dev_size)
{
  DIR *dir = opendir (VIRTIO_PORTS_DIR);
  struct dirent *de;
  int ret = -1;

  if (dir == NULL)
    return -1;
  while ((de = readdir (dir)) != NULL)
    {
      char path[512], name[64];
      cleanup_close int fd = -1;
      ssize_t n;

      if (de->d_name[0] == '.')
        continue;
      snprintf (path, sizeof (path), VIRTIO_PORTS_DIR "/%s/name", de->d_name);
      fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        continue;
      n = read (fd, name, sizeof (name) - 1);
      if (n <= 0)
        continue;
      name[n] = '\0';
      name[strcspn (name, "\n")] = '\0';
      if (strcmp (name, AGENT_SERIAL_PORT_NAME) == 0)
        {
          snprintf (dev, dev_size, "/dev/%s", de->d_name);
          ret = 0;
          break;
        }
    }
  closedir (dir);
  return ret;
}

/* vsock is usable when a transport gave this guest a CID (a vhost-vsock device exists). */
static bool
vsock_available (void)
{
  cleanup_close int fd = open ("/dev/vsock", O_RDONLY | O_CLOEXEC);
  unsigned int cid = VMADDR_CID_ANY;

  if (fd < 0)
    return false;
  if (ioctl (fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
    return false;
  return cid != VMADDR_CID_ANY && cid > VMADDR_CID_HOST;
}

static void
on_listener (struct loop *loop UNUSED, struct handler *h, uint32_t events UNUSED)
{
  struct agent *agent = h->data;

  for (;;)
    {
      int fd = accept4 (h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && errno == EINTR)
        continue;
      if (fd < 0)
        {
          if (errno != EAGAIN)
            agent_log ("accept on %s: %s", agent->channel, strerror (errno));
          return;
        }
      if (agent->conn.active)
        {
          session_goaway (&agent->conn, EALREADY, "replaced by a newer connection");
          session_flush_blocking (&agent->conn, 0);
          session_detach (&agent->conn);
        }
      session_attach (&agent->conn, fd);
    }
}

static int
listen_socket (struct agent *agent, int fd, const struct sockaddr *addr, socklen_t len, struct agent_error *err)
{
  if (bind (fd, addr, len) < 0)
    return agent_error_set (err, errno, "bind %s", agent->channel);
  if (listen (fd, LISTEN_BACKLOG) < 0)
    return agent_error_set (err, errno, "listen %s", agent->channel);
  agent->listener.fd = fd;
  agent->listener.fn = on_listener;
  agent->listener.data = agent;
  session_init (&agent->conn, agent, SESSION_SOCKET);
  return loop_watch (&agent->loop, &agent->listener, EPOLLIN, err);
}

static int
open_unix (struct agent *agent, const char *path, struct agent_error *err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat st;
  cleanup_close int fd = -1;

  snprintf (agent->channel, sizeof (agent->channel), "unix:%s", path);
  if (strlen (path) >= sizeof (addr.sun_path))
    return agent_error_set (err, ENAMETOOLONG, "listen on `%s`", path);
  memcpy (addr.sun_path, path, strlen (path) + 1);
  /* A socket left by an earlier run is replaced; anything else is not ours to remove. */
  if (lstat (path, &st) == 0 && S_ISSOCK (st.st_mode))
    unlink (path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return agent_error_set (err, errno, "socket AF_UNIX");
  if (listen_socket (agent, fd, (struct sockaddr *) &addr, sizeof (addr), err) < 0)
    return -1;
  fd = -1; /* owned by agent->listener now */
  return 0;
}

static int
open_vsock (struct agent *agent, struct agent_error *err)
{
  struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = AGENT_VSOCK_PORT };
  cleanup_close int fd = -1;

  snprintf (agent->channel, sizeof (agent->channel), "vsock:%u", AGENT_VSOCK_PORT);
  fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return agent_error_set (err, errno, "socket AF_VSOCK");
  if (listen_socket (agent, fd, (struct sockaddr *) &addr, sizeof (addr), err) < 0)
    return -1;
  fd = -1;
  return 0;
}

static void
arm_port_timer (struct agent *agent, int first_ms, int interval_ms)
{
  struct itimerspec its = {
    .it_value = { .tv_sec = first_ms / 1000, .tv_nsec = (long) (first_ms % 1000) * 1000000L },
    .it_interval = { .tv_sec = interval_ms / 1000, .tv_nsec = (long) (interval_ms % 1000) * 1000000L },
  };
  if (timerfd_settime (agent->port_timer.fd, 0, &its, NULL) < 0)
    agent_log ("timerfd_settime: %s", strerror (errno));
}

static void
on_port_timer (struct loop *loop UNUSED, struct handler *h, uint32_t events UNUSED)
{
  struct agent *agent = h->data;
  struct session *s = &agent->port;
  struct pollfd p = { .fd = s->h.fd, .events = POLLIN };
  uint64_t ticks;

  if (read (h->fd, &ticks, sizeof (ticks)) < 0 && errno != EAGAIN)
    agent_log ("read timerfd: %s", strerror (errno));
  if (! s->waiting_for_host)
    {
      session_check_stall (s);
      return;
    }
  if (poll (&p, 1, 0) < 0 || (p.revents & POLLHUP))
    {
      if (++port_poll_ticks == PORT_POLL_FAST_TICKS)
        arm_port_timer (agent, PORT_POLL_SLOW_INTERVAL_MS, PORT_POLL_SLOW_INTERVAL_MS);
      return;
    }
  /* HUP cleared: a host is connected. */
  arm_port_timer (agent, 0, 0);
  session_resume (s);
}

/* The timer is idle while a host is connected: it looks once more at a
 * stalled half frame (session_check_stall). */
void
port_check_stall_later (struct session *s)
{
  arm_port_timer (s->agent, PORT_STALL_CHECK_MS, 0);
}

/* True when a host is connected to the port now (poll reports no hang-up). */
bool
port_host_connected (struct session *s)
{
  struct pollfd p = { .fd = s->h.fd, .events = POLLIN };
  return poll (&p, 1, 0) >= 0 && ! (p.revents & POLLHUP);
}

/* The port reports no host. The guest may learn that the previous host left
 * only after it answered the HELLO of the next one (data interrupts are
 * handled at once, the port's open/close notices later, by a work queue), so
 * the session is kept: a host that is there again goes on where it was; a
 * new one starts its own session with HOST_MAGIC at a frame boundary, which
 * resets everything. Only a half-received frame is dropped with the session:
 * the bytes completing it could be a new host's magic. */
void
port_host_gone (struct session *s)
{
  struct agent *agent = s->agent;

  if (s->in_len > 0)
    session_reset (s);
  loop_forget (&agent->loop, &s->h);
  s->waiting_for_host = true;
  port_poll_ticks = 0;
  arm_port_timer (agent, 1, PORT_POLL_FAST_INTERVAL_MS);
}

static int
open_port (struct agent *agent, const char *dev, struct agent_error *err)
{
  int fd;

  snprintf (agent->channel, sizeof (agent->channel), "virtio-serial:%s", dev);
  fd = open (dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return agent_error_set (err, errno, "open `%s`", dev);
  agent->port_timer.fd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (agent->port_timer.fd < 0)
    {
      close (fd);
      return agent_error_set (err, errno, "timerfd_create");
    }
  agent->port_timer.fn = on_port_timer;
  agent->port_timer.data = agent;
  if (loop_watch (&agent->loop, &agent->port_timer, EPOLLIN, err) < 0)
    return -1;
  session_init (&agent->port, agent, SESSION_PORT);
  agent->port.h.fd = fd;
  agent->port.active = true;
  port_host_gone (&agent->port);
  return 0;
}

int
channel_open (struct agent *agent, const char *listen_unix, struct agent_error *err)
{
  struct timespec start, now;
  char dev[300];

  if (listen_unix != NULL)
    return open_unix (agent, listen_unix, err);

  clock_gettime (CLOCK_MONOTONIC, &start);
  for (;;)
    {
      long spent;
      if (find_virtio_port (dev, sizeof (dev)) == 0)
        return open_port (agent, dev, err);
      if (vsock_available ())
        return open_vsock (agent, err);
      clock_gettime (CLOCK_MONOTONIC, &now);
      spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
      if (spent > CHANNEL_SEARCH_TIMEOUT_MS)
        return agent_error_set (err, ENODEV, "no channel: no virtio-serial port named `%s` and no vsock device",
                                AGENT_SERIAL_PORT_NAME);
      usleep (CHANNEL_SEARCH_INTERVAL_MS * 1000);
    }
}
