/* Containers and their processes. A container is created by a forked child
 * that sets everything up (child.c) and then waits on a start pipe; start
 * releases it. Exec forks a child into the container's namespaces and
 * cgroup. Each process has its io streams (stream.c); its exit is recorded
 * on SIGCHLD and reported (EVENT) once its output streams are closed. Exits
 * are remembered until the container is removed, across host reconnects. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO ('T', 0x41) /* Linux 4.13 */
#endif

#include "calls.h"
#include "cgroup.h"
#include "child.h"
#include "util.h"

#define MAX_CONTAINERS 1024
#define MAX_EXECS_PER_CONTAINER 1024
/* Bound on a child's setup (create) and on execve (start, exec). */
/* Under TCG with several pod VMs starting on few host cores a guest gets a
 * small share of a core: its container setup (mounts through virtio-fs) has
 * taken over 10 s there. */
#define CHILD_REPORT_TIMEOUT_MS 30000
#define REMOVE_TIMEOUT_MS 5000
#define REMOVE_POLL_MS 5

struct proc
{
  struct container *c;
  char exec_id[65];
  pid_t pid;
  bool terminal, exited, done;
  int status;
  int64_t exited_at_ns;
  int pty; /* master, for resize; -1 without a terminal */
  struct ostream out, err;
  struct istream in;
  struct proc *next;
};

struct container
{
  struct container *next;
  char id[129];
  char cg[129]; /* its cgroup's name: the id, or the name of the spare it took */
  Frakti__Agent__V1__ContainerSpec *spec; /* our own copy */
  struct proc init;
  struct proc *execs;
  unsigned n_execs;
  bool started;
  int start_fd;  /* write end of the start pipe until started */
  int report_fd; /* read end of the init's report pipe until started */
  /* A terminal init: its pty's terminal end, held open until the init has
   * opened it by number (the agent made the pty in the container's devpts,
   * which exists only once the container's setup has mounted it). */
  int pty_slave;
  unsigned pty_number;
  int oom_wd;
  uint64_t oom_kills;
  struct agent *agent;
};

static bool
valid_id (const char *id, size_t max, bool allow_dot)
{
  size_t n = strlen (id);
  if (n == 0 || n > max)
    return false;
  for (size_t i = 0; i < n; i++)
    {
      char ch = id[i];
      bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'
                || (allow_dot && ch == '.');
      if (! ok || (i == 0 && (ch == '.' || ch == '-' || ch == '_') && allow_dot))
        return false;
    }
  return true;
}

static bool
valid_path (const char *p)
{
  if (p == NULL || p[0] != '/' || strlen (p) >= 4096)
    return false;
  for (const char *s = p; (s = strstr (s, "..")) != NULL; s += 2)
    if ((s == p || s[-1] == '/') && (s[2] == '/' || s[2] == '\0'))
      return false;
  return true;
}

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
containers_init (struct agent *agent, struct agent_error *err)
{
  agent->next_stream_id = 2;
  agent->pod_pidns = -1;
  agent->self_pidns = open ("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (agent->pid1 && cgroup_setup (err) < 0)
    agent_error_log (err);
  agent->inotify.fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  agent->inotify.fn = containers_on_inotify;
  agent->inotify.data = agent;
  if (agent->inotify.fd >= 0 && loop_watch (&agent->loop, &agent->inotify, EPOLLIN, err) < 0)
    agent_error_log (err);
  spare_init (agent);
  return 0;
}

static struct container *
find_container (struct agent *agent, const char *id)
{
  for (struct container *c = agent->containers; c; c = c->next)
    if (strcmp (c->id, id) == 0)
      return c;
  return NULL;
}

static struct proc *
find_proc (struct container *c, const char *exec_id)
{
  if (exec_id == NULL || exec_id[0] == '\0')
    return &c->init;
  for (struct proc *p = c->execs; p; p = p->next)
    if (strcmp (p->exec_id, exec_id) == 0)
      return p;
  return NULL;
}

static void
fill_status (const struct proc *p, Frakti__Agent__V1__ExitStatus *st)
{
  if (WIFSIGNALED (p->status))
    {
      st->exit_code = 128 + WTERMSIG (p->status);
      st->signal = (char *) signal_name (WTERMSIG (p->status));
    }
  else
    st->exit_code = WEXITSTATUS (p->status);
  st->exited_at_ns = p->exited_at_ns;
}

static void
proc_check_done (void *arg)
{
  struct proc *p = arg;
  Frakti__Agent__V1__Event ev = FRAKTI__AGENT__V1__EVENT__INIT;
  Frakti__Agent__V1__ExitEvent ex = FRAKTI__AGENT__V1__EXIT_EVENT__INIT;
  Frakti__Agent__V1__ExitStatus st = FRAKTI__AGENT__V1__EXIT_STATUS__INIT;

  if (p->done || ! p->exited || ! ostream_done (&p->out) || ! ostream_done (&p->err))
    return;
  p->done = true;
  if (p->pty >= 0)
    {
      close (p->pty);
      p->pty = -1;
    }
  fill_status (p, &st);
  ex.container_id = p->c->id;
  ex.exec_id = p->exec_id;
  ex.status = &st;
  ev.event_case = FRAKTI__AGENT__V1__EVENT__EVENT_EXIT;
  ev.exit = &ex;
  session_queue_event (p->c->agent, &ev);
}

static void
proc_free (struct proc *p)
{
  ostream_free (&p->out);
  ostream_free (&p->err);
  istream_free (&p->in);
  if (p->pty >= 0)
    close (p->pty);
  p->pty = -1;
}

/* The ptmx of the devpts mounted in `pid`'s root. Resolved inside that root,
 * which the container's processes can change: a symlink planted there must
 * not lead the agent to a file of its own, and only a ptmx will do. */
static int
open_container_ptmx (pid_t pid)
{
  char root[64];
  struct stat st;
  struct open_how how = { .flags = O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  cleanup_close int rfd = -1;
  int fd;

  snprintf (root, sizeof (root), "/proc/%d/root", (int) pid);
  rfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0)
    return -1;
  fd = (int) syscall (SYS_openat2, rfd, "dev/pts/ptmx", &how, sizeof (how));
  if (fd < 0)
    return -1;
  if (fstat (fd, &st) < 0 || ! S_ISCHR (st.st_mode) || major (st.st_rdev) != 5 || minor (st.st_rdev) != 2)
    {
      close (fd);
      errno = ENOTTY;
      return -1;
    }
  return fd;
}

/* Pipes or a pty for a process: agent ends go into p's streams, child ends
 * into child[3]. The pty comes from the devpts in the root of `devpts_of`
 * (the container's init), so that inside the container the terminal has a
 * name (ttyname, `tty`) under its /dev/pts. */
static int
proc_io (struct agent *agent, struct proc *p, bool terminal, bool want_stdin, pid_t devpts_of, int child[3], struct agent_error *err)
{
  int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, in[2] = { -1, -1 };

  p->pty = -1;
  p->terminal = terminal;
  if (terminal)
    {
      int master = open_container_ptmx (devpts_of), slave;
      if (master < 0)
        return agent_error_set (err, errno, "open the container's /dev/pts/ptmx");
      /* The peer by fd, not by path: the agent does not see the container's /dev/pts. */
      if (unlockpt (master) < 0 || (slave = ioctl (master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
        {
          int e = errno;
          close (master);
          return agent_error_set (err, e, "open the terminal of the container's pty");
        }
      /* A terminal is never 0x0 (programs read that as "no size" and fail): 80x24 until resized. */
      struct winsize ws = { .ws_row = 24, .ws_col = 80 };
      ioctl (master, TIOCSWINSZ, &ws);
      p->pty = fcntl (master, F_DUPFD_CLOEXEC, 0);
      ostream_init (&p->out, agent, master, proc_check_done, p);
      ostream_init (&p->err, agent, -1, proc_check_done, p);
      istream_init (&p->in, agent, want_stdin ? fcntl (master, F_DUPFD_CLOEXEC, 0) : -1);
      p->in.tty = true;
      child[0] = child[1] = child[2] = slave;
      return 0;
    }
  if (pipe2 (out, O_CLOEXEC) < 0 || pipe2 (errp, O_CLOEXEC) < 0 || (want_stdin && pipe2 (in, O_CLOEXEC) < 0))
    {
      int e = errno;
      for (int i = 0; i < 2; i++)
        {
          if (out[i] >= 0)
            close (out[i]);
          if (errp[i] >= 0)
            close (errp[i]);
        }
      return agent_error_set (err, e, "pipe");
    }
  fcntl (out[0], F_SETFL, O_NONBLOCK);
  fcntl (errp[0], F_SETFL, O_NONBLOCK);
  ostream_init (&p->out, agent, out[0], proc_check_done, p);
  ostream_init (&p->err, agent, errp[0], proc_check_done, p);
  if (want_stdin)
    {
      fcntl (in[1], F_SETFL, O_NONBLOCK);
      istream_init (&p->in, agent, in[1]);
      child[0] = in[0];
    }
  else
    {
      istream_init (&p->in, agent, -1);
      child[0] = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    }
  child[1] = out[1];
  child[2] = errp[1];
  return 0;
}

static void
close_child_fds (int child[3])
{
  for (int i = 0; i < 3; i++)
    if (child[i] >= 0 && (i == 0 || child[i] != child[i - 1]))
      close (child[i]);
}

pid_t
fork_in_pidns (struct agent *agent, int nsfd, struct agent_error *err)
{
  pid_t pid;
  int r = nsfd >= 0 ? setns (nsfd, CLONE_NEWPID) : unshare (CLONE_NEWPID);
  if (r < 0)
    {
      agent_error_set (err, errno, nsfd >= 0 ? "join a PID namespace" : "create a PID namespace");
      return -1;
    }
  pid = fork ();
  if (pid < 0)
    agent_error_set (err, errno, "fork");
  if (pid != 0 && agent->self_pidns >= 0 && setns (agent->self_pidns, CLONE_NEWPID) < 0)
    agent_log ("restore the agent's PID namespace: %s", strerror (errno));
  return pid;
}

static void
holder_on_child (int sig UNUSED)
{
}

/* PID 1 of the pod's shared PID namespace: reaps orphans, nothing else. */
static void __attribute__ ((noreturn))
holder_main (void)
{
  sigset_t none;
  sigemptyset (&none);
  signal (SIGCHLD, holder_on_child);
  sigprocmask (SIG_SETMASK, &none, NULL);
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  prctl (PR_SET_NAME, "frakti-pod");
  syscall (SYS_close_range, 3, ~0U, 0);
  for (;;)
    {
      while (waitpid (-1, NULL, WNOHANG) > 0)
        ;
      pause ();
    }
}

static int
pod_pidns (struct agent *agent, struct agent_error *err)
{
  char path[64];
  pid_t pid;

  if (agent->pod_holder > 0 && agent->pod_pidns >= 0)
    return agent->pod_pidns;
  pid = fork_in_pidns (agent, -1, err);
  if (pid < 0)
    return -1;
  if (pid == 0)
    holder_main ();
  snprintf (path, sizeof (path), "/proc/%d/ns/pid", pid);
  agent->pod_pidns = open (path, O_RDONLY | O_CLOEXEC);
  if (agent->pod_pidns < 0)
    {
      kill (pid, SIGKILL);
      return agent_error_set (err, errno, "open `%s`", path);
    }
  agent->pod_holder = pid;
  return agent->pod_pidns;
}

/* Waits for the child's report: 1 = a report arrived, 0 = EOF (execve done), -1 = timeout or error. */
static int
read_report (int fd, struct child_report *r)
{
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int n;
  do
    n = poll (&p, 1, CHILD_REPORT_TIMEOUT_MS);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return -1;
  ssize_t got;
  do
    got = read (fd, r, sizeof (*r));
  while (got < 0 && errno == EINTR);
  if (got == 0)
    return 0;
  if (got != (ssize_t) sizeof (*r))
    return -1;
  r->message[sizeof (r->message) - 1] = '\0';
  return 1;
}

static void
reap_now (struct agent *agent, pid_t pid)
{
  int status;
  if (waitpid (pid, &status, 0) == pid)
    containers_on_exit (agent, pid, status);
}

static Frakti__Agent__V1__ContainerSpec *
copy_spec (const Frakti__Agent__V1__ContainerSpec *spec)
{
  size_t n = frakti__agent__v1__container_spec__get_packed_size (spec);
  cleanup_free uint8_t *buf = xmalloc (n);
  frakti__agent__v1__container_spec__pack (spec, buf);
  return frakti__agent__v1__container_spec__unpack (NULL, n, buf);
}

static int
check_spec (const Frakti__Agent__V1__ContainerSpec *spec, struct agent_error *err)
{
  const Frakti__Agent__V1__ProcessSpec *p = spec->process;
  if (! valid_id (spec->id, 128, true))
    return agent_error_set (err, EINVAL, "invalid container id `%.64s`", spec->id);
  if (! valid_path (spec->rootfs))
    return agent_error_set (err, EINVAL, "invalid rootfs path for container %s", spec->id);
  if (p == NULL || p->n_args == 0 || p->uid < 0 || p->gid < 0)
    return agent_error_set (err, EINVAL, "container %s needs a process with args, uid and gid", spec->id);
  if (p->cwd[0] && ! valid_path (p->cwd))
    return agent_error_set (err, EINVAL, "invalid cwd for container %s", spec->id);
  for (size_t i = 0; i < spec->n_mounts; i++)
    {
      const Frakti__Agent__V1__Mount *m = spec->mounts[i];
      static const char *kinds[] = { "bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", "block", "blockdev" };
      static const char *fs_types[] = { "", "ext4", "ext3", "ext2" };
      bool known = false, disk = strcmp (m->kind, "block") == 0 || strcmp (m->kind, "blockdev") == 0;
      for (size_t k = 0; k < ARRAY_SIZE (kinds); k++)
        known |= strcmp (m->kind, kinds[k]) == 0;
      if (! known)
        return agent_error_set (err, EINVAL, "unknown mount kind `%.32s` in container %s", m->kind, spec->id);
      if (! valid_path (m->destination) || (strcmp (m->kind, "bind") == 0 && ! valid_path (m->source)))
        return agent_error_set (err, EINVAL, "invalid mount path in container %s", spec->id);
      if (strcmp (m->kind, "tmpfs") == 0 && m->source[0]
          && (! valid_path (m->source) || strncmp (m->source, POD_TMPFS_DIR "/", strlen (POD_TMPFS_DIR "/")) != 0
              || strchr (m->source + strlen (POD_TMPFS_DIR "/"), '/') != NULL))
        return agent_error_set (err, EINVAL, "a pod tmpfs of container %s must be a folder of " POD_TMPFS_DIR, spec->id);
      if (disk && ! valid_id (m->source, DISK_SERIAL_MAX, false))
        return agent_error_set (err, EINVAL, "invalid disk serial `%.32s` in container %s", m->source, spec->id);
      known = false;
      for (size_t k = 0; k < ARRAY_SIZE (fs_types); k++)
        known |= strcmp (m->fs_type, fs_types[k]) == 0;
      if (! known)
        return agent_error_set (err, EINVAL, "filesystem `%.32s` of a disk in container %s is not one the guest has", m->fs_type, spec->id);
    }
  for (size_t i = 0; i < spec->n_capabilities; i++)
    if (capability_number (spec->capabilities[i]) < 0)
      return agent_error_set (err, EINVAL, "unknown capability `%.64s`", spec->capabilities[i]);
  if (spec->n_masked_paths > 64 || spec->n_readonly_paths > 64)
    return agent_error_set (err, EINVAL, "container %s: at most 64 masked and 64 read-only paths", spec->id);
  for (size_t i = 0; i < spec->n_masked_paths; i++)
    if (! valid_path (spec->masked_paths[i]))
      return agent_error_set (err, EINVAL, "invalid masked path in container %s", spec->id);
  for (size_t i = 0; i < spec->n_readonly_paths; i++)
    if (! valid_path (spec->readonly_paths[i]))
      return agent_error_set (err, EINVAL, "invalid read-only path in container %s", spec->id);
  for (size_t i = 0; i < spec->n_ambient_capabilities; i++)
    {
      bool held = false;
      for (size_t j = 0; j < spec->n_capabilities; j++)
        held |= strcmp (spec->ambient_capabilities[i], spec->capabilities[j]) == 0;
      if (capability_number (spec->ambient_capabilities[i]) < 0 || ! held)
        return agent_error_set (err, EINVAL, "ambient capability `%.64s` of container %s is not one of its capabilities", spec->ambient_capabilities[i], spec->id);
    }
  if (spec->seccomp_filter.len % 8 != 0 || spec->seccomp_filter.len > 4096 * 8)
    return agent_error_set (err, EINVAL, "container %s: the seccomp filter is not a BPF program of at most 4096 instructions", spec->id);
  if (strlen (spec->hostname) > 64)
    return agent_error_set (err, EINVAL, "hostname of container %s is too long", spec->id);
  return 0;
}

/* A tmpfs with a source is the pod's (a memory-backed emptyDir): made once,
 * in the agent's own mount namespace, so every container of the pod that
 * names it binds the same one. Its pages are the guest's, bounded by `size`. */
static int
pod_tmpfs_mounts (const Frakti__Agent__V1__ContainerSpec *spec, struct agent_error *err)
{
  for (size_t i = 0; i < spec->n_mounts; i++)
    {
      const Frakti__Agent__V1__Mount *m = spec->mounts[i];
      char data[256] = "mode=1777";
      struct stat st, parent;
      if (strcmp (m->kind, "tmpfs") != 0 || m->source[0] == '\0')
        continue;
      if ((mkdir (POD_TMPFS_DIR, 0700) < 0 && errno != EEXIST) || (mkdir (m->source, 0755) < 0 && errno != EEXIST))
        return agent_error_set (err, errno, "make the pod tmpfs `%s`", m->source);
      if (stat (m->source, &st) < 0 || stat (POD_TMPFS_DIR, &parent) < 0)
        return agent_error_set (err, errno, "stat the pod tmpfs `%s`", m->source);
      if (st.st_dev != parent.st_dev)
        continue; /* mounted already, by an earlier container of the pod */
      unsigned long flags = MS_NOSUID | MS_NODEV;
      for (size_t o = 0; o < m->n_options; o++)
        {
          if (strncmp (m->options[o], "size=", 5) == 0 && strlen (m->options[o]) < 64)
            snprintf (data + strlen (data), sizeof (data) - strlen (data), ",%s", m->options[o]);
          if (strcmp (m->options[o], "noexec") == 0)
            flags |= MS_NOEXEC;
        }
      if (mount ("tmpfs", m->source, "tmpfs", flags, data) < 0)
        return agent_error_set (err, errno, "mount the pod tmpfs `%s`", m->source);
    }
  return 0;
}

size_t
call_create_container (struct agent *agent, const Request *req, uint8_t **out)
{
  const Frakti__Agent__V1__ContainerSpec *spec = req->create_container->spec;
  struct agent_error err = { 0 };
  struct container *c;
  int child[3] = { -1, -1, -1 }, start[2] = { -1, -1 }, report[2] = { -1, -1 };
  struct child_report r;
  struct spare_taken taken = { 0 };
  pid_t pid;
  int nsfd = -1;

  if (spec == NULL)
    return error_response (EINVAL, "create_container without a spec", out);
  if (check_spec (spec, &err) < 0)
    return agent_error_response (&err, out);
  if (find_container (agent, spec->id))
    return error_response (EEXIST, "container exists", out);
  if (agent->n_containers >= MAX_CONTAINERS)
    return error_response (EAGAIN, "too many containers", out);
  if (pod_tmpfs_mounts (spec, &err) < 0)
    return agent_error_response (&err, out);
  c = xzalloc (sizeof (*c));
  c->agent = agent;
  snprintf (c->id, sizeof (c->id), "%s", spec->id);
  c->spec = copy_spec (spec);
  c->init.c = c;
  c->init.pty = -1;
  c->start_fd = c->report_fd = c->pty_slave = -1;
  c->oom_wd = -1;
  if (spec->process->terminal)
    {
      /* Until StartContainer hands it its terminal, the init's stdio is /dev/null
       * and its streams are empty (proc_io fills them once the pty exists). */
      ostream_init (&c->init.out, agent, -1, proc_check_done, &c->init);
      ostream_init (&c->init.err, agent, -1, proc_check_done, &c->init);
      istream_init (&c->init.in, agent, -1);
      for (int i = 0; i < 3; i++)
        if ((child[i] = open ("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
          {
            agent_error_set (&err, errno, "open /dev/null");
            goto fail;
          }
      c->init.terminal = true;
    }
  else if (proc_io (agent, &c->init, false, spec->process->with_stdin, 0, child, &err) < 0)
    goto fail;
  if (spec->own_pid_namespace && spare_take (agent, c->spec, child, &taken) == 1)
    {
      snprintf (c->cg, sizeof (c->cg), "%s", taken.cgroup);
      pid = taken.pid;
      c->start_fd = taken.start_fd;
      c->report_fd = taken.report_fd;
    }
  else
    {
      snprintf (c->cg, sizeof (c->cg), "%s", c->id);
      if (cgroup_create (c->cg, &err) < 0 || cgroup_apply (c->cg, spec->resources, &err) < 0)
        {
          agent_error_wrap (&err, "create container %s", spec->id);
          goto fail;
        }
      if (pipe2 (start, O_CLOEXEC) < 0 || pipe2 (report, O_CLOEXEC) < 0)
        {
          agent_error_set (&err, errno, "pipe");
          goto fail;
        }
      if (! spec->own_pid_namespace && (nsfd = pod_pidns (agent, &err)) < 0)
        goto fail;
      pid = fork_in_pidns (agent, spec->own_pid_namespace ? -1 : nsfd, &err);
      if (pid < 0)
        goto fail;
      if (pid == 0)
        {
          struct child_ctx ctx = {
            .id = c->id, .cgroup = c->cg, .spec = c->spec, .exec = NULL, .stdio = { child[0], child[1], child[2] },
            .report_fd = report[1], .start_fd = start[0], .ns_fds = { -1, -1, -1 }, .terminal = spec->process->terminal,
          };
          child_run (&ctx);
        }
      close (start[0]);
      close (report[1]);
      start[0] = report[1] = -1;
      c->start_fd = start[1];
      c->report_fd = report[0];
    }
  c->init.pid = pid;
  close_child_fds (child);
  child[0] = child[1] = child[2] = -1;
  /* One for the next container, made once the guest is idle (this one's, or
   * one that could not be made before, is tried again). */
  spare_want (agent);
  /* Linked before the report is read, so an early exit is recorded against it. */
  c->next = agent->containers;
  agent->containers = c;
  agent->n_containers++;
  /* A spare's cgroup gets the container's limits while the spare sets it up. */
  if (taken.pid > 0 && cgroup_apply (c->cg, spec->resources, &err) < 0)
    {
      agent_error_wrap (&err, "create container %s", spec->id);
      goto fail_started;
    }
  switch (read_report (c->report_fd, &r))
    {
    case 1:
      if (r.errnum == 0)
        break;
      agent_error_set (&err, 0, "%s", r.message);
      err.errnum = r.errnum;
      goto fail_started;
    case 0:
      agent_error_set (&err, EIO, "container %s: its setup ended without a word", c->id);
      goto fail_started;
    default:
      agent_error_set (&err, ETIMEDOUT, "container %s: setup did not finish within %d ms", c->id, CHILD_REPORT_TIMEOUT_MS);
      goto fail_started;
    }
  if (spec->process->terminal)
    {
      int tty[3] = { -1, -1, -1 };
      if (proc_io (agent, &c->init, true, spec->process->with_stdin, pid, tty, &err) < 0)
        goto fail_started;
      c->pty_slave = tty[0];
      if (ioctl (c->init.pty, TIOCGPTN, &c->pty_number) < 0)
        {
          agent_error_set (&err, errno, "number of the pty of container %s", c->id);
          goto fail_started;
        }
    }
  {
    char path[512];
    snprintf (path, sizeof (path), CGROUP_PARENT "/%s/memory.events", c->cg);
    if (agent->inotify.fd >= 0)
      c->oom_wd = inotify_add_watch (agent->inotify.fd, path, IN_MODIFY);
    c->oom_kills = cgroup_oom_kills (c->cg);
  }
  {
    Frakti__Agent__V1__CreateContainerResponse m = FRAKTI__AGENT__V1__CREATE_CONTAINER_RESPONSE__INIT;
    return empty_response (FRAKTI__AGENT__V1__RESPONSE__RESULT_CREATE_CONTAINER, &m, out);
  }

fail_started:
  kill (c->init.pid, SIGKILL);
  reap_now (agent, c->init.pid);
  agent->containers = c->next;
  agent->n_containers--;
fail:
  close_child_fds (child);
  for (int i = 0; i < 2; i++)
    {
      if (start[i] >= 0)
        close (start[i]);
      if (report[i] >= 0)
        close (report[i]);
    }
  if (c->start_fd >= 0 && c->start_fd != start[1])
    close (c->start_fd);
  if (c->report_fd >= 0 && c->report_fd != report[0])
    close (c->report_fd);
  if (c->pty_slave >= 0)
    close (c->pty_slave);
  proc_free (&c->init);
  if (c->cg[0])
    {
      struct agent_error ignored = { 0 };
      cgroup_remove (c->cg, &ignored);
    }
  frakti__agent__v1__container_spec__free_unpacked (c->spec, NULL);
  free (c);
  return agent_error_response (&err, out);
}

static void
attach_proc (struct agent *agent, struct proc *p, Frakti__Agent__V1__ProcessIo *io)
{
  ostream_attach (&p->out, stream_new_id (agent));
  ostream_attach (&p->err, stream_new_id (agent));
  io->stdout_stream = p->out.id;
  io->stderr_stream = p->err.id;
  if (p->in.h.fd >= 0 && ! p->in.host_closed)
    {
      istream_attach (&p->in, stream_new_id (agent));
      io->stdin_stream = p->in.id;
    }
}

static size_t
started_result (struct agent *agent, struct proc *p, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__ProcessStarted st = FRAKTI__AGENT__V1__PROCESS_STARTED__INIT;
  Frakti__Agent__V1__ProcessIo io = FRAKTI__AGENT__V1__PROCESS_IO__INIT;

  attach_proc (agent, p, &io);
  st.pid = (uint32_t) p->pid;
  st.io = &io;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_STARTED;
  resp.started = &st;
  return pack_response (&resp, out);
}

static struct container *
lookup (struct agent *agent, const char *id, uint8_t **out, size_t *n)
{
  struct container *c = find_container (agent, id ? id : "");
  if (c == NULL)
    {
      char msg[200];
      snprintf (msg, sizeof (msg), "container %.128s not found", id ? id : "");
      *n = error_response (ENOENT, msg, out);
    }
  return c;
}

size_t
call_start_container (struct agent *agent, const Request *req, uint8_t **out)
{
  size_t n;
  struct container *c = lookup (agent, req->start_container->container_id, out, &n);
  struct child_report r;
  char msg[AGENT_ERROR_MESSAGE_BYTES + 64];
  int got;

  if (c == NULL)
    return n;
  if (c->started || c->start_fd < 0)
    return error_response (EALREADY, "container already started", out);
  c->started = true;
  /* The go: 'g', then for a terminal init the number of its pty under /dev/pts. */
  unsigned char go[5] = { 'g', 0, 0, 0, 0 };
  memcpy (go + 1, &c->pty_number, 4);
  if (write (c->start_fd, go, c->pty_slave >= 0 ? 5 : 1) != (c->pty_slave >= 0 ? 5 : 1))
    {
      snprintf (msg, sizeof (msg), "start container %s: %s", c->id, strerror (errno));
      return error_response (errno, msg, out);
    }
  close (c->start_fd);
  c->start_fd = -1;
  got = read_report (c->report_fd, &r);
  close (c->report_fd);
  c->report_fd = -1;
  if (c->pty_slave >= 0)
    close (c->pty_slave);
  c->pty_slave = -1;
  if (got == 1)
    return error_response (r.errnum ? r.errnum : EIO, r.message, out);
  if (got < 0)
    {
      snprintf (msg, sizeof (msg), "start container %s: no execve within %d ms", c->id, CHILD_REPORT_TIMEOUT_MS);
      return error_response (ETIMEDOUT, msg, out);
    }
  return started_result (agent, &c->init, out);
}

static int
open_ns (pid_t pid, const char *name)
{
  char path[64];
  snprintf (path, sizeof (path), "/proc/%d/ns/%s", pid, name);
  return open (path, O_RDONLY | O_CLOEXEC);
}

/* Makes room for one more exec record: forgets the oldest finished one when full. */
static bool
exec_room (struct container *c)
{
  struct proc **pp, **oldest = NULL;
  if (c->n_execs < MAX_EXECS_PER_CONTAINER)
    return true;
  for (pp = &c->execs; *pp; pp = &(*pp)->next)
    if ((*pp)->done)
      oldest = pp;
  if (oldest == NULL)
    return false;
  struct proc *p = *oldest;
  *oldest = p->next;
  proc_free (p);
  free (p);
  c->n_execs--;
  return true;
}

size_t
call_exec (struct agent *agent, const Request *req, uint8_t **out)
{
  const Frakti__Agent__V1__ExecRequest *x = req->exec;
  struct agent_error err = { 0 };
  size_t n;
  struct container *c = lookup (agent, x->container_id, out, &n);
  int child[3] = { -1, -1, -1 }, report[2] = { -1, -1 }, ns[4] = { -1, -1, -1, -1 };
  struct child_report r;
  struct proc *p;
  pid_t pid;
  int got;

  if (c == NULL)
    return n;
  if (! valid_id (x->exec_id, 64, false) || x->process == NULL || x->process->n_args == 0)
    return error_response (EINVAL, "exec needs an exec id [A-Za-z0-9_-]{1,64} and args", out);
  if (x->process->cwd[0] && ! valid_path (x->process->cwd))
    return error_response (EINVAL, "invalid exec cwd", out);
  if (find_proc (c, x->exec_id))
    return error_response (EEXIST, "exec id already used in this container", out);
  if (! c->started || c->init.exited)
    return error_response (ESRCH, "container is not running", out);
  if (! exec_room (c))
    return error_response (EAGAIN, "too many execs in this container", out);
  static const char *names[4] = { "mnt", "uts", "ipc", "pid" };
  for (int i = 0; i < 4; i++)
    if ((ns[i] = open_ns (c->init.pid, names[i])) < 0)
      {
        agent_error_set (&err, errno, "open namespace %s of container %s", names[i], c->id);
        for (int j = 0; j < i; j++)
          close (ns[j]);
        return agent_error_response (&err, out);
      }
  p = xzalloc (sizeof (*p));
  p->c = c;
  p->pty = -1;
  snprintf (p->exec_id, sizeof (p->exec_id), "%s", x->exec_id);
  if (proc_io (agent, p, x->process->terminal, x->process->with_stdin, c->init.pid, child, &err) < 0)
    goto fail;
  if (pipe2 (report, O_CLOEXEC) < 0)
    {
      agent_error_set (&err, errno, "pipe");
      goto fail;
    }
  pid = fork_in_pidns (agent, ns[3], &err);
  if (pid < 0)
    goto fail;
  if (pid == 0)
    {
      struct child_ctx ctx = {
        .id = c->id, .cgroup = c->cg, .spec = c->spec, .exec = x->process, .stdio = { child[0], child[1], child[2] },
        .report_fd = report[1], .start_fd = -1, .ns_fds = { ns[0], ns[1], ns[2] }, .terminal = x->process->terminal,
      };
      child_run (&ctx);
    }
  p->pid = pid;
  close (report[1]);
  report[1] = -1;
  close_child_fds (child);
  child[0] = child[1] = child[2] = -1;
  p->next = c->execs;
  c->execs = p;
  c->n_execs++;
  got = read_report (report[0], &r);
  close (report[0]);
  for (int i = 0; i < 4; i++)
    close (ns[i]);
  if (got != 0)
    {
      /* The child failed before execve (it exits) or hangs: either way this exec is gone. */
      kill (pid, SIGKILL);
      reap_now (agent, pid);
      c->execs = p->next;
      c->n_execs--;
      proc_free (p);
      free (p);
      if (got == 1)
        return error_response (r.errnum ? r.errnum : EIO, r.message, out);
      return error_response (ETIMEDOUT, "exec: no execve in time", out);
    }
  return started_result (agent, p, out);

fail:
  close_child_fds (child);
  for (int i = 0; i < 2; i++)
    if (report[i] >= 0)
      close (report[i]);
  for (int i = 0; i < 4; i++)
    close (ns[i]);
  proc_free (p);
  free (p);
  return agent_error_response (&err, out);
}

static struct proc *
lookup_proc (struct agent *agent, const char *cid, const char *eid, uint8_t **out, size_t *n)
{
  struct container *c = lookup (agent, cid, out, n);
  struct proc *p;
  if (c == NULL)
    return NULL;
  p = find_proc (c, eid);
  if (p == NULL)
    *n = error_response (ENOENT, "no such exec in this container", out);
  else if (p->pid == 0)
    {
      *n = error_response (ESRCH, "process not started", out);
      p = NULL;
    }
  return p;
}

size_t
call_signal (struct agent *agent, const Request *req, uint8_t **out)
{
  const Frakti__Agent__V1__SignalRequest *x = req->signal;
  size_t n;
  int sig = signal_number (x->signal);
  struct proc *p;
  char msg[160];

  if (sig == 0)
    return error_response (EINVAL, "unknown signal", out);
  p = lookup_proc (agent, x->container_id, x->exec_id, out, &n);
  if (p == NULL)
    {
      /* A created container's init has a pid but is not started: SIGKILL ends it too. */
      return n;
    }
  /* Signalling a process that is gone is not an error: stop after exit is common. */
  if (! p->exited && kill (p->pid, sig) < 0 && errno != ESRCH)
    {
      snprintf (msg, sizeof (msg), "kill %s to pid %d: %s", x->signal, p->pid, strerror (errno));
      return error_response (errno, msg, out);
    }
  Frakti__Agent__V1__SignalResponse m = FRAKTI__AGENT__V1__SIGNAL_RESPONSE__INIT;
  return empty_response (FRAKTI__AGENT__V1__RESPONSE__RESULT_SIGNAL, &m, out);
}

size_t
call_wait (struct agent *agent, const Request *req, uint8_t **out)
{
  size_t n;
  struct proc *p = lookup_proc (agent, req->wait->container_id, req->wait->exec_id, out, &n);
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__WaitResponse w = FRAKTI__AGENT__V1__WAIT_RESPONSE__INIT;
  Frakti__Agent__V1__ExitStatus st = FRAKTI__AGENT__V1__EXIT_STATUS__INIT;

  if (p == NULL)
    return n;
  w.exited = p->done;
  if (p->done)
    {
      fill_status (p, &st);
      w.status = &st;
    }
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_WAIT;
  resp.wait = &w;
  return pack_response (&resp, out);
}

size_t
call_resize_tty (struct agent *agent, const Request *req, uint8_t **out)
{
  const Frakti__Agent__V1__ResizeTtyRequest *x = req->resize_tty;
  size_t n;
  struct proc *p = lookup_proc (agent, x->container_id, x->exec_id, out, &n);
  struct winsize ws = { .ws_row = (unsigned short) x->rows, .ws_col = (unsigned short) x->cols };

  if (p == NULL)
    return n;
  if (p->pty < 0)
    return error_response (ENOTTY, "process has no terminal", out);
  if (x->rows == 0 || x->cols == 0 || x->rows > 0xffff || x->cols > 0xffff)
    return error_response (EINVAL, "rows and cols must be in [1, 65535]", out);
  if (ioctl (p->pty, TIOCSWINSZ, &ws) < 0)
    return error_response (errno, "TIOCSWINSZ", out);
  Frakti__Agent__V1__ResizeTtyResponse m = FRAKTI__AGENT__V1__RESIZE_TTY_RESPONSE__INIT;
  return empty_response (FRAKTI__AGENT__V1__RESPONSE__RESULT_RESIZE_TTY, &m, out);
}

size_t
call_attach_io (struct agent *agent, const Request *req, uint8_t **out)
{
  size_t n;
  struct proc *p = lookup_proc (agent, req->attach_io->container_id, req->attach_io->exec_id, out, &n);
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__AttachIoResponse a = FRAKTI__AGENT__V1__ATTACH_IO_RESPONSE__INIT;
  Frakti__Agent__V1__ProcessIo io = FRAKTI__AGENT__V1__PROCESS_IO__INIT;

  if (p == NULL)
    return n;
  attach_proc (agent, p, &io);
  a.io = &io;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_ATTACH_IO;
  resp.attach_io = &a;
  return pack_response (&resp, out);
}

static bool
all_exited (struct container *c)
{
  if (c->init.pid > 0 && ! c->init.exited)
    return false;
  for (struct proc *p = c->execs; p; p = p->next)
    if (! p->exited)
      return false;
  return true;
}

/* Ends a process' record for good: streams closed towards the host, exit reported. */
static void
proc_finish (struct proc *p)
{
  if (! p->exited)
    {
      p->exited = true;
      p->status = SIGKILL; /* as waitpid would say */
      p->exited_at_ns = now_ns ();
    }
  if (! p->done)
    {
      /* Held output of a removed container is dropped on purpose: removal was asked for. */
      p->out.len = p->err.len = p->out.sent = p->err.sent = 0;
      ostream_free (&p->out);
      ostream_free (&p->err);
      ostream_pump (&p->out);
      ostream_pump (&p->err);
      proc_check_done (p);
    }
  proc_free (p);
}

size_t
call_remove_container (struct agent *agent, const Request *req, uint8_t **out)
{
  size_t n;
  struct container *c = lookup (agent, req->remove_container->container_id, out, &n);
  struct agent_error err = { 0 };
  struct container **cp;

  if (c == NULL)
    return n;
  if (! all_exited (c) || cgroup_populated (c->cg))
    {
      struct agent_error ignored = { 0 };
      cgroup_kill (c->cg, &ignored);
      if (c->init.pid > 0 && ! c->init.exited)
        kill (c->init.pid, SIGKILL);
      for (struct proc *p = c->execs; p; p = p->next)
        if (! p->exited)
          kill (p->pid, SIGKILL);
    }
  for (int waited = 0; waited < REMOVE_TIMEOUT_MS; waited += REMOVE_POLL_MS)
    {
      reap_children (agent);
      if (all_exited (c) && ! cgroup_populated (c->cg))
        break;
      usleep (REMOVE_POLL_MS * 1000);
    }
  if (c->start_fd >= 0)
    close (c->start_fd);
  if (c->report_fd >= 0)
    close (c->report_fd);
  if (c->pty_slave >= 0)
    close (c->pty_slave);
  c->start_fd = c->report_fd = c->pty_slave = -1;
  if (c->oom_wd >= 0)
    inotify_rm_watch (agent->inotify.fd, c->oom_wd);
  proc_finish (&c->init);
  while (c->execs)
    {
      struct proc *p = c->execs;
      c->execs = p->next;
      proc_finish (p);
      free (p);
    }
  for (cp = &agent->containers; *cp; cp = &(*cp)->next)
    if (*cp == c)
      {
        *cp = c->next;
        break;
      }
  agent->n_containers--;
  if (cgroup_remove (c->cg, &err) < 0)
    agent_error_log (&err);
  frakti__agent__v1__container_spec__free_unpacked (c->spec, NULL);
  free (c);
  Frakti__Agent__V1__RemoveContainerResponse m = FRAKTI__AGENT__V1__REMOVE_CONTAINER_RESPONSE__INIT;
  return empty_response (FRAKTI__AGENT__V1__RESPONSE__RESULT_REMOVE_CONTAINER, &m, out);
}

size_t
call_update_resources (struct agent *agent, const Request *req, uint8_t **out)
{
  size_t n;
  struct container *c = lookup (agent, req->update_resources->container_id, out, &n);
  struct agent_error err = { 0 };

  if (c == NULL)
    return n;
  if (cgroup_apply (c->cg, req->update_resources->resources, &err) < 0)
    {
      agent_error_wrap (&err, "update resources of container %s", c->id);
      return agent_error_response (&err, out);
    }
  Frakti__Agent__V1__UpdateResourcesResponse m = FRAKTI__AGENT__V1__UPDATE_RESOURCES_RESPONSE__INIT;
  return empty_response (FRAKTI__AGENT__V1__RESPONSE__RESULT_UPDATE_RESOURCES, &m, out);
}

size_t
call_container_stats (struct agent *agent, const Request *req, uint8_t **out)
{
  size_t n;
  struct container *c = lookup (agent, req->container_stats->container_id, out, &n);
  struct agent_error err = { 0 };
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__ContainerStatsResponse st = FRAKTI__AGENT__V1__CONTAINER_STATS_RESPONSE__INIT;

  if (c == NULL)
    return n;
  if (cgroup_stats (c->cg, &st, &err) < 0)
    {
      agent_error_wrap (&err, "stats of container %s", c->id);
      return agent_error_response (&err, out);
    }
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_CONTAINER_STATS;
  resp.container_stats = &st;
  return pack_response (&resp, out);
}

size_t
call_list_containers (struct agent *agent, const Request *req UNUSED, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__ListContainersResponse l = FRAKTI__AGENT__V1__LIST_CONTAINERS_RESPONSE__INIT;
  cleanup_free Frakti__Agent__V1__ContainerInfo *infos = xzalloc (sizeof (*infos) * (agent->n_containers + 1));
  cleanup_free Frakti__Agent__V1__ContainerInfo **ptrs = xzalloc (sizeof (*ptrs) * (agent->n_containers + 1));
  cleanup_free Frakti__Agent__V1__ExitStatus *sts = xzalloc (sizeof (*sts) * (agent->n_containers + 1));
  size_t n_execs = 0, e = 0, i = 0;
  for (struct container *c = agent->containers; c; c = c->next)
    n_execs += c->n_execs;
  cleanup_free char **exec_ids = xzalloc (sizeof (*exec_ids) * (n_execs + 1));

  for (struct container *c = agent->containers; c; c = c->next, i++)
    {
      Frakti__Agent__V1__ContainerInfo init = FRAKTI__AGENT__V1__CONTAINER_INFO__INIT;
      Frakti__Agent__V1__ExitStatus st = FRAKTI__AGENT__V1__EXIT_STATUS__INIT;
      infos[i] = init;
      sts[i] = st;
      infos[i].id = c->id;
      infos[i].pid = (uint32_t) c->init.pid;
      infos[i].state = (char *) (! c->started ? "created" : c->init.exited ? "exited" : "running");
      infos[i].running_execs = exec_ids + e;
      for (struct proc *p = c->execs; p && e < n_execs; p = p->next)
        if (p->pid > 0 && ! p->exited)
          {
            exec_ids[e++] = p->exec_id;
            infos[i].n_running_execs++;
          }
      if (c->init.exited)
        {
          infos[i].exited = true;
          fill_status (&c->init, &sts[i]);
          infos[i].exit = &sts[i];
        }
      ptrs[i] = &infos[i];
    }
  l.n_containers = i;
  l.containers = ptrs;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_LIST_CONTAINERS;
  resp.list_containers = &l;
  return pack_response (&resp, out);
}

void
containers_on_exit (struct agent *agent, pid_t pid, int status)
{
  if (spare_on_exit (agent, pid))
    return;
  if (pid == agent->pod_holder)
    {
      agent->pod_holder = 0;
      if (agent->pod_pidns >= 0)
        close (agent->pod_pidns);
      agent->pod_pidns = -1;
      return;
    }
  for (struct container *c = agent->containers; c; c = c->next)
    {
      struct proc *p = c->init.pid == pid ? &c->init : NULL;
      for (struct proc *x = c->execs; p == NULL && x; x = x->next)
        if (x->pid == pid)
          p = x;
      if (p == NULL || p->exited)
        continue;
      p->exited = true;
      p->status = status;
      p->exited_at_ns = now_ns ();
      /* A container ends with its own process, as with runc: in a PID
       * namespace of its own the kernel kills the rest; in the pod's shared
       * one nothing would, so its cgroup is killed (what containerd's shim
       * does). Otherwise a child holding the output pipes keeps the
       * container's output, and so its exit, open for ever. */
      if (p == &c->init)
        {
          struct agent_error ignored = { 0 };
          cgroup_kill (c->cg, &ignored);
        }
      /* Its stdin has no reader any more. */
      istream_close_fd (&p->in);
      proc_check_done (p);
      struct session *s = agent_session (agent);
      if (s)
        session_kick (s);
      return;
    }
}

#define FOR_EACH_PROC(agent, p)                                                        \
  for (struct container *c_ = (agent)->containers; c_; c_ = c_->next)                  \
    for (struct proc *p = &c_->init; p; p = (p == &c_->init ? c_->execs : p->next))

struct istream *
containers_find_istream (struct agent *agent, uint32_t id)
{
  FOR_EACH_PROC (agent, p)
  if (p->in.id == id)
    return &p->in;
  return NULL;
}

struct ostream *
containers_find_ostream (struct agent *agent, uint32_t id)
{
  FOR_EACH_PROC (agent, p)
  {
    if (p->out.id == id)
      return &p->out;
    if (p->err.id == id)
      return &p->err;
  }
  return NULL;
}

void
containers_for_each_ostream (struct agent *agent, void (*fn) (struct ostream *))
{
  FOR_EACH_PROC (agent, p)
  {
    fn (&p->out);
    fn (&p->err);
  }
}

void
containers_detach_all (struct agent *agent)
{
  FOR_EACH_PROC (agent, p)
  {
    ostream_detach (&p->out);
    ostream_detach (&p->err);
    p->in.id = 0;
    p->in.host_credit = 0;
  }
  FOR_EACH_PROC (agent, p)
  proc_check_done (p);
}

void
containers_on_inotify (struct loop *loop UNUSED, struct handler *h, uint32_t events UNUSED)
{
  struct agent *agent = h->data;
  char buf[4096] __attribute__ ((aligned (__alignof__ (struct inotify_event))));

  while (read (h->fd, buf, sizeof (buf)) > 0)
    ;
  /* Events name watches, but a re-read of every container is cheap and needs no bookkeeping. */
  for (struct container *c = agent->containers; c; c = c->next)
    {
      uint64_t kills = cgroup_oom_kills (c->cg);
      if (kills > c->oom_kills)
        {
          Frakti__Agent__V1__Event ev = FRAKTI__AGENT__V1__EVENT__INIT;
          Frakti__Agent__V1__OomEvent oom = FRAKTI__AGENT__V1__OOM_EVENT__INIT;
          oom.container_id = c->id;
          ev.event_case = FRAKTI__AGENT__V1__EVENT__EVENT_OOM;
          ev.oom = &oom;
          session_queue_event (agent, &ev);
        }
      c->oom_kills = kills;
    }
}
