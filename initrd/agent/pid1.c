/* PID 1 duties: the setup checklist, reaping orphans, powering off. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

/* How long power-off waits for the Shutdown answer to leave, and then for the host to hang up. */
#define SHUTDOWN_FLUSH_TIMEOUT_MS 1000
#define SHUTDOWN_LINGER_TIMEOUT_MS 200
#define NOFILE_LIMIT 1048576
#define NOFILE_FALLBACK_LIMIT 65536

struct mount_step
{
  const char *source, *target, *fstype;
  unsigned long flags;
  const char *data;
  bool optional; /* absent from this kernel is fine */
};

static const struct mount_step mounts[] = {
  { "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, false },
  { "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, false },
  { "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", false },
  { "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620", false },
  { "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false },
  { "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", false },
  /* favordynmods: moving a process into a cgroup (every exec) then costs no RCU grace period. */
  { "cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "favordynmods", true },
};

static int
do_mount (const struct mount_step *m, struct agent_error *err)
{
  if (mkdir (m->target, 0755) < 0 && errno != EEXIST)
    return agent_error_set (err, errno, "mkdir `%s`", m->target);
  if (mount (m->source, m->target, m->fstype, m->flags, m->data) < 0)
    {
      if (errno == EBUSY)
        return 0; /* already mounted */
      if (m->optional && errno == ENODEV)
        return 0;
      /* An option this kernel lacks (favordynmods before 6.0): mount without it. */
      if (m->optional && errno == EINVAL && m->data && mount (m->source, m->target, m->fstype, m->flags, NULL) == 0)
        return 0;
      return agent_error_set (err, errno, "mount %s on `%s`", m->fstype, m->target);
    }
  return 0;
}

/* The kernel opens /dev/console for init only if the initrd has the node: make sure fds 0-2 exist. */
static void
ensure_stdio (void)
{
  int fd;

  if (fcntl (STDOUT_FILENO, F_GETFD) >= 0)
    return;
  fd = open ("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0)
    return;
  for (int i = 0; i <= 2; i++)
    if (fd != i)
      dup2 (fd, i);
  if (fd > 2)
    close (fd);
}

/* Free page reporting hands freed guest RAM back to the host, in free blocks
 * of at least this order. Linux 6.1 sets it to its pageblock order when the
 * balloon driver registers (4 MiB without hugetlbfs), so the boot's freed init
 * sections and alignment gaps (about 4 MiB, in smaller blocks) would stay on
 * the host. From order 0 every page free for 2 s goes back; a page used again
 * costs the host one fault. */
#define PAGE_REPORTING_ORDER_PATH "/sys/module/page_reporting/parameters/page_reporting_order"
#define PAGE_REPORTING_ORDER "0"

static void
page_reporting_setup (void)
{
  struct agent_error e = { 0 };

  if (access (PAGE_REPORTING_ORDER_PATH, F_OK) < 0)
    return; /* no reporting in this kernel: nothing to tune */
  if (write_file (PAGE_REPORTING_ORDER_PATH, PAGE_REPORTING_ORDER, &e) < 0)
    agent_error_log (&e);
}

int
pid1_setup (struct agent_error *err)
{
  struct rlimit nofile = { NOFILE_LIMIT, NOFILE_LIMIT };
  int failures = 0;

  for (size_t i = 0; i < ARRAY_SIZE (mounts); i++)
    if (do_mount (&mounts[i], err) < 0)
      {
        /* Keep going: a partly set up guest can still answer and be debugged. */
        agent_error_log (err);
        failures++;
      }
  ensure_stdio ();
  page_reporting_setup ();
  if (symlink ("pts/ptmx", "/dev/ptmx.frakti") == 0)
    rename ("/dev/ptmx.frakti", "/dev/ptmx");
  if (setrlimit (RLIMIT_NOFILE, &nofile) < 0)
    {
      nofile.rlim_cur = nofile.rlim_max = NOFILE_FALLBACK_LIMIT;
      setrlimit (RLIMIT_NOFILE, &nofile);
    }
  setenv ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
  if (failures)
    return agent_error_set (err, 0, "%d setup step(s) failed", failures);
  return 0;
}

void
reap_children (struct agent *agent)
{
  /* Bounded by the number of children: waitpid returns 0 or -1 once none is left. */
  for (;;)
    {
      int status;
      pid_t pid = waitpid (-1, &status, WNOHANG);
      if (pid <= 0)
        break;
      containers_on_exit (agent, pid, status);
    }
}

static void
on_signal (struct loop *loop UNUSED, struct handler *h, uint32_t events UNUSED)
{
  struct signalfd_siginfo si[8];

  /* Drain; SIGCHLD coalesces, so reap everything each time. */
  while (read (h->fd, si, sizeof (si)) > 0)
    ;
  reap_children (h->data);
}

int
signals_setup (struct agent *agent, struct agent_error *err)
{
  sigset_t set;

  signal (SIGPIPE, SIG_IGN);
  sigemptyset (&set);
  sigaddset (&set, SIGCHLD);
  if (sigprocmask (SIG_BLOCK, &set, NULL) < 0)
    return agent_error_set (err, errno, "sigprocmask");
  agent->signals.fd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (agent->signals.fd < 0)
    return agent_error_set (err, errno, "signalfd");
  agent->signals.fn = on_signal;
  agent->signals.data = agent;
  if (prctl (PR_SET_CHILD_SUBREAPER, 1) < 0)
    agent_log ("prctl PR_SET_CHILD_SUBREAPER: %s", strerror (errno));
  return loop_watch (&agent->loop, &agent->signals, EPOLLIN, err);
}

/* Lets a socket peer read the last answer before the connection goes away. */
static void
linger (struct session *s)
{
  struct pollfd p = { .fd = s->h.fd, .events = POLLIN };
  char buf[256];

  shutdown (s->h.fd, SHUT_WR);
  while (poll (&p, 1, SHUTDOWN_LINGER_TIMEOUT_MS) > 0)
    if (read (s->h.fd, buf, sizeof (buf)) <= 0)
      break;
}

void
power_off (struct agent *agent)
{
  struct session *s = agent->port.active ? &agent->port : &agent->conn;

  if (s->active)
    {
      session_flush_blocking (s, SHUTDOWN_FLUSH_TIMEOUT_MS);
      if (s->kind == SESSION_SOCKET)
        linger (s);
    }
  sync ();
  if (! agent->pid1)
    {
      agent_log ("shutdown requested: exiting");
      exit (0);
    }
  reboot (RB_POWER_OFF);
  agent_log ("reboot(RB_POWER_OFF): %s", strerror (errno));
  for (;;)
    pause (); /* PID 1 must not exit: that panics the kernel */
}
