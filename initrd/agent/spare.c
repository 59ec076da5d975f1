/* A spare container process: forked while the guest is idle, in a PID
 * namespace of its own, already in a cgroup of its own, waiting for the spec
 * of the container it will be. A container with a PID namespace of its own
 * (what kubelet asks by default) takes it, and its create skips the fork, the
 * cgroup's creation and the cgroup join (under TCG about half of a create).
 * A spare serves one container of this VM and is never shared: it is made in
 * this guest from this agent, and holds nothing but its cgroup until taken.
 * Cgroup v2 has no rename, so the container keeps the spare's cgroup name. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "agent.h"
#include "cgroup.h"
#include "child.h"
#include "util.h"

/* Quiet this long before a spare is forked: not while a request is served. */
#define SPARE_IDLE_MS 50
/* Bound on handing the spec over (the spare reads it at once). */
#define SPARE_SEND_TIMEOUT_MS 5000

static void spare_on_idle (struct loop *loop);

void
spare_init (struct agent *agent)
{
  agent->spare = (struct spare) { .ctl = -1, .start_fd = -1, .report_fd = -1 };
  spare_want (agent);
}

void
spare_want (struct agent *agent)
{
  /* Only as PID 1 of a guest: an agent under test on a host has no cgroup of its own. */
  if (! agent->pid1 || agent->spare.pid > 0)
    return;
  agent->loop.idle = spare_on_idle;
  agent->loop.idle_ms = SPARE_IDLE_MS;
}

static void
close_fds (struct spare *s)
{
  int *fds[] = { &s->ctl, &s->start_fd, &s->report_fd };
  for (size_t i = 0; i < ARRAY_SIZE (fds); i++)
    if (*fds[i] >= 0)
      {
        close (*fds[i]);
        *fds[i] = -1;
      }
}

static int
spare_make (struct agent *agent, struct agent_error *err)
{
  struct spare *s = &agent->spare;
  int ctl[2] = { -1, -1 }, start[2] = { -1, -1 }, report[2] = { -1, -1 };
  pid_t pid;

  /* "_" cannot begin a container id: no container's cgroup has this name. */
  snprintf (s->cgroup, sizeof (s->cgroup), "_spare-%u", ++s->made);
  if (cgroup_create (s->cgroup, err) < 0)
    goto fail;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0 || pipe2 (start, O_CLOEXEC) < 0
      || pipe2 (report, O_CLOEXEC) < 0)
    {
      agent_error_set (err, errno, "a spare's pipes");
      goto fail;
    }
  struct timeval tv = { .tv_sec = SPARE_SEND_TIMEOUT_MS / 1000, .tv_usec = SPARE_SEND_TIMEOUT_MS % 1000 * 1000 };
  setsockopt (ctl[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof (tv));
  pid = fork_in_pidns (agent, -1, err);
  if (pid < 0)
    goto fail;
  if (pid == 0)
    child_exec_spare (s->cgroup, ctl[1], start[0], report[1]);
  close (ctl[1]);
  close (start[0]);
  close (report[1]);
  s->pid = pid;
  s->ready = true;
  s->ctl = ctl[0];
  s->start_fd = start[1];
  s->report_fd = report[0];
  return 0;

fail:
  for (int i = 0; i < 2; i++)
    {
      if (ctl[i] >= 0)
        close (ctl[i]);
      if (start[i] >= 0)
        close (start[i]);
      if (report[i] >= 0)
        close (report[i]);
    }
  {
    struct agent_error ignored = { 0 };
    cgroup_remove (s->cgroup, &ignored);
  }
  return -1;
}

static void
spare_on_idle (struct loop *loop)
{
  struct agent *agent = (struct agent *) ((char *) loop - offsetof (struct agent, loop));
  struct agent_error err = { 0 };

  /* Once: a spare that cannot be made is tried again after the next create, not on every quiet moment. */
  loop->idle = NULL;
  if (agent->spare.pid > 0 || agent->shutdown_pending)
    return;
  if (spare_make (agent, &err) < 0)
    {
      agent_error_wrap (&err, "make a spare container process");
      agent_error_log (&err);
    }
}

/* The spare goes (killed); its cgroup once it is reaped. */
static void
spare_discard (struct agent *agent)
{
  struct spare *s = &agent->spare;
  close_fds (s);
  s->ready = false;
  kill (s->pid, SIGKILL);
}

static int
send_all (int fd, const uint8_t *buf, size_t len)
{
  while (len > 0)
    {
      ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return -1;
      buf += n;
      len -= (size_t) n;
    }
  return 0;
}

int
spare_take (struct agent *agent, const Frakti__Agent__V1__ContainerSpec *spec, const int stdio[3],
            struct spare_taken *out)
{
  struct spare *s = &agent->spare;
  size_t len = frakti__agent__v1__container_spec__get_packed_size (spec);

  if (s->pid <= 0 || ! s->ready || len == 0 || len > MAX_FRAME_PAYLOAD_BYTES)
    return 0;
  uint8_t *buf = malloc (len);
  if (buf == NULL)
    return 0;
  frakti__agent__v1__container_spec__pack (spec, buf);
  uint32_t hdr = (uint32_t) len;
  struct iovec iov = { .iov_base = &hdr, .iov_len = sizeof (hdr) };
  union
  {
    char buf[CMSG_SPACE (3 * sizeof (int))];
    struct cmsghdr align;
  } u;
  memset (&u, 0, sizeof (u));
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
  struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN (3 * sizeof (int));
  memcpy (CMSG_DATA (cm), stdio, 3 * sizeof (int));
  ssize_t n;
  do
    n = sendmsg (s->ctl, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  int sent = n == (ssize_t) sizeof (hdr) && send_all (s->ctl, buf, len) == 0;
  int errnum = errno;
  free (buf);
  if (! sent)
    {
      agent_log ("a spare container process could not take container %s: %s", spec->id, strerror (errnum));
      spare_discard (agent);
      return 0;
    }
  /* The container's now: its exit is the container's, not the spare's. */
  out->pid = s->pid;
  out->start_fd = s->start_fd;
  out->report_fd = s->report_fd;
  snprintf (out->cgroup, sizeof (out->cgroup), "%s", s->cgroup);
  close (s->ctl);
  s->ctl = s->start_fd = s->report_fd = -1;
  s->pid = 0;
  s->ready = false;
  return 1;
}

bool
spare_on_exit (struct agent *agent, pid_t pid)
{
  struct spare *s = &agent->spare;
  struct agent_error err = { 0 };

  if (s->pid <= 0 || pid != s->pid)
    return false;
  if (s->ready)
    agent_log ("the spare container process %d ended before it was taken", (int) pid);
  close_fds (s);
  if (cgroup_remove (s->cgroup, &err) < 0)
    agent_error_log (&err);
  /* Not made again at once: one that died untaken could die again (the next create asks for one). */
  s->pid = 0;
  s->ready = false;
  return true;
}
