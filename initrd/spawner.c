/* frakti-spawner: runs short commands (CNI plugins, ip, tc, mount) for the
 * frakti daemon. Node forks its whole process for every child: at the
 * daemon's ~90 MiB resident that cost ~10 ms of page-table copying each time,
 * with the event loop stopped. This process is small, so its forks are cheap.
 *
 * Requests come as frames on stdin, answers go as frames on stdout, both a
 * little-endian u32 length then the payload; commands run concurrently.
 *   request: u32 id, u32 timeout_ms (0: none), u32 max_output (per stream),
 *            u32 argc, u32 envc, u32 input_len, then NUL-terminated cwd
 *            ("" keeps ours), argv[argc], env[envc], then input_len bytes
 *   answer:  u32 id, i32 kind, i32 code, u8 timed_out, u8 overflow, u16 0,
 *            u32 out_len, u32 err_len, then the output and the error output
 * kind: 0 exited (code: exit status), 1 killed (code: signal), 2 could not
 * start (code: errno), 3 refused (code: errno; a bad request or too many).
 * Each command runs in a process group of its own, killed whole on a timeout
 * or output beyond max_output.
 *
 * When the daemon goes (stdin closed, or an answer cannot be written), the
 * commands still running are let finish, each within its timeout and at most
 * DRAIN_MAX_MS more, and the spawner exits after them: a CNI DEL cut in half
 * leaves what no retry can find (the bridge plugin deletes the veth first,
 * and learns from it which NAT rules to delete). A frame not of ours kills
 * every command and exits at once.
 *
 * Given a lock file (argv[1]), the spawner holds it while it runs and takes
 * it before reading any request: a restarted daemon's commands then run only
 * once its previous spawner's last commands are over, waiting at most
 * LOCK_WAIT_MS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST_BYTES (1u << 20)
#define MAX_CHILDREN 64
#define MAX_OUTPUT_BYTES (16u << 20)
#define MAX_ARGS 4096
/* After the daemon has gone: how long its commands may still run. */
#define DRAIN_MAX_MS 30000u
/* A command killed then that does not exit (stuck in the kernel) is left. */
#define DRAIN_GRACE_MS 5000u
#define LOCK_WAIT_MS (DRAIN_MAX_MS + DRAIN_GRACE_MS + 5000u)

enum kind { EXITED = 0, KILLED = 1, NOT_STARTED = 2, REFUSED = 3 };

struct stream
{
  int fd;
  char *buf;
  uint32_t len;
};

struct child
{
  bool used, exited, timed_out, overflow, killed;
  uint32_t id, max_output;
  pid_t pid;
  int status;
  int in_fd;
  char *input;
  uint32_t input_len, input_off;
  struct stream out, err;
  uint64_t deadline_ms; /* 0: none */
};

static struct child children[MAX_CHILDREN];
extern char **environ;
/* The daemon has gone: answers are dropped, no request is read. */
static bool draining;
static uint64_t drain_end_ms;

static uint64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void
put32 (char *p, uint32_t v)
{
  memcpy (p, &v, 4);
}

static uint32_t
get32 (const char *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return v;
}

static void
kill_group (struct child *c)
{
  if (! c->exited && ! c->killed)
    {
      kill (-c->pid, SIGKILL);
      kill (c->pid, SIGKILL);
      c->killed = true;
    }
}

/* Timeouts and output limits are ours to enforce: a command left behind
 * would run unbounded, so none outlives the spawner. */
static void
kill_all_and_exit (int code)
{
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i].used)
      kill_group (&children[i]);
  _exit (code);
}

/* The daemon is gone: what runs is let finish, within its timeout and at
 * most DRAIN_MAX_MS (see the top of this file). */
static void
start_draining (void)
{
  if (draining)
    return;
  draining = true;
  drain_end_ms = now_ms () + DRAIN_MAX_MS;
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i].used && (! children[i].deadline_ms || children[i].deadline_ms > drain_end_ms))
      children[i].deadline_ms = drain_end_ms;
}

static bool
write_all (const char *p, size_t n)
{
  while (n > 0)
    {
      ssize_t w = write (STDOUT_FILENO, p, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        {
          start_draining (); /* the daemon is gone */
          return false;
        }
      p += w;
      n -= (size_t) w;
    }
  return true;
}

static void
answer (uint32_t id, int kind, int code, bool timed_out, bool overflow, const struct stream *out, const struct stream *err)
{
  uint32_t out_len = out ? out->len : 0, err_len = err ? err->len : 0;
  char head[4 + 24];
  put32 (head, 24 + out_len + err_len);
  put32 (head + 4, id);
  put32 (head + 8, (uint32_t) kind);
  put32 (head + 12, (uint32_t) code);
  head[16] = timed_out;
  head[17] = overflow;
  head[18] = head[19] = 0;
  put32 (head + 20, out_len);
  put32 (head + 24, err_len);
  if (draining)
    return;
  if (write_all (head, sizeof (head)) && out_len)
    write_all (out->buf, out_len);
  if (! draining && err_len)
    write_all (err->buf, err_len);
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

static void
finish_if_done (struct child *c)
{
  if (! c->used || ! c->exited || c->out.fd >= 0 || c->err.fd >= 0)
    return;
  if (WIFSIGNALED (c->status))
    answer (c->id, KILLED, WTERMSIG (c->status), c->timed_out, c->overflow, &c->out, &c->err);
  else
    answer (c->id, EXITED, WEXITSTATUS (c->status), c->timed_out, c->overflow, &c->out, &c->err);
  close_fd (&c->in_fd);
  free (c->input);
  free (c->out.buf);
  free (c->err.buf);
  memset (c, 0, sizeof (*c));
}

/* Parses one request and starts its command; answers at once when it cannot. */
static void
start (const char *p, uint32_t len)
{
  if (len < 24)
    {
      answer (len >= 4 ? get32 (p) : 0, REFUSED, EINVAL, false, false, NULL, NULL);
      return;
    }
  uint32_t id = get32 (p), timeout = get32 (p + 4), max_output = get32 (p + 8), argc = get32 (p + 12),
           envc = get32 (p + 16), input_len = get32 (p + 20);
  const char *s = p + 24, *end = p + len;
  if (argc == 0 || argc > MAX_ARGS || envc > MAX_ARGS || input_len > len - 24)
    {
      answer (id, REFUSED, EINVAL, false, false, NULL, NULL);
      return;
    }
  const char *strings_end = end - input_len;
  char **argv = calloc (argc + 1, sizeof (char *)), **envp = calloc (envc + 1, sizeof (char *));
  const char *cwd = s;
  bool ok = argv && envp;
  /* cwd, then argc + envc strings, each NUL-terminated, before the input. */
  for (uint32_t i = 0; ok && i < 1 + argc + envc; i++)
    {
      const char *nul = memchr (s, '\0', (size_t) (strings_end - s));
      if (! nul)
        {
          ok = false;
          break;
        }
      if (i >= 1 && i <= argc)
        argv[i - 1] = (char *) s;
      else if (i > argc)
        envp[i - 1 - argc] = (char *) s;
      s = nul + 1;
    }
  if (! ok || s != strings_end)
    {
      free (argv);
      free (envp);
      answer (id, REFUSED, EINVAL, false, false, NULL, NULL);
      return;
    }
  struct child *c = NULL;
  for (int i = 0; i < MAX_CHILDREN && ! c; i++)
    if (! children[i].used)
      c = &children[i];
  if (! c)
    {
      free (argv);
      free (envp);
      answer (id, REFUSED, EAGAIN, false, false, NULL, NULL);
      return;
    }

  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, ex[2] = { -1, -1 };
  int failed = 0;
  if (pipe2 (in, O_CLOEXEC) < 0 || pipe2 (out, O_CLOEXEC) < 0 || pipe2 (err, O_CLOEXEC) < 0 || pipe2 (ex, O_CLOEXEC) < 0)
    failed = errno;
  pid_t pid = failed ? -1 : fork ();
  if (pid == 0)
    {
      sigset_t none;
      sigemptyset (&none);
      signal (SIGPIPE, SIG_DFL);
      sigprocmask (SIG_SETMASK, &none, NULL);
      setpgid (0, 0);
      int e = 0;
      if (dup2 (in[0], 0) < 0 || dup2 (out[1], 1) < 0 || dup2 (err[1], 2) < 0)
        e = errno;
      if (! e && cwd[0] && chdir (cwd) < 0)
        e = errno;
      if (! e)
        {
          environ = envp; /* execvp searches the PATH the command is given */
          execvp (argv[0], argv);
          e = errno;
        }
      if (write (ex[1], &e, sizeof (e)) < 0)
        _exit (127);
      _exit (127);
    }
  if (pid < 0 && ! failed)
    failed = errno;
  if (pid > 0)
    {
      /* EOF: the exec happened (the pipe is close-on-exec); an int: it did not. */
      int e = 0;
      ssize_t n;
      close_fd (&ex[1]);
      do
        n = read (ex[0], &e, sizeof (e));
      while (n < 0 && errno == EINTR);
      if (n == sizeof (e))
        {
          failed = e;
          while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
            ;
        }
    }
  int *fds[] = { &in[0], &out[1], &err[1], &ex[0], &ex[1] };
  for (size_t i = 0; i < sizeof (fds) / sizeof (fds[0]); i++)
    close_fd (fds[i]);
  free (argv);
  free (envp);
  if (failed)
    {
      close_fd (&in[1]);
      close_fd (&out[0]);
      close_fd (&err[0]);
      answer (id, NOT_STARTED, failed, false, false, NULL, NULL);
      return;
    }

  memset (c, 0, sizeof (*c));
  c->used = true;
  c->id = id;
  c->pid = pid;
  c->max_output = max_output == 0 || max_output > MAX_OUTPUT_BYTES ? MAX_OUTPUT_BYTES : max_output;
  c->deadline_ms = timeout ? now_ms () + timeout : 0;
  c->in_fd = in[1];
  c->out.fd = out[0];
  c->err.fd = err[0];
  fcntl (c->in_fd, F_SETFL, O_NONBLOCK);
  fcntl (c->out.fd, F_SETFL, O_NONBLOCK);
  fcntl (c->err.fd, F_SETFL, O_NONBLOCK);
  if (input_len)
    {
      c->input = malloc (input_len);
      if (c->input)
        {
          memcpy (c->input, strings_end, input_len);
          c->input_len = input_len;
        }
    }
  if (! c->input_len)
    close_fd (&c->in_fd);
}

static void
read_stream (struct child *c, struct stream *st)
{
  char chunk[65536];
  for (;;)
    {
      ssize_t n = read (st->fd, chunk, sizeof (chunk));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n <= 0)
        {
          close_fd (&st->fd);
          return;
        }
      if ((uint64_t) st->len + (uint64_t) n > c->max_output)
        {
          /* As a bounded buffer would: the command goes, what it printed so far stays. */
          c->overflow = true;
          kill_group (c);
          close_fd (&c->out.fd);
          close_fd (&c->err.fd);
          return;
        }
      char *grown = realloc (st->buf, st->len + (size_t) n);
      if (! grown)
        {
          c->overflow = true;
          kill_group (c);
          close_fd (&c->out.fd);
          close_fd (&c->err.fd);
          return;
        }
      st->buf = grown;
      memcpy (st->buf + st->len, chunk, (size_t) n);
      st->len += (uint32_t) n;
    }
}

static void
write_input (struct child *c)
{
  while (c->input_off < c->input_len)
    {
      ssize_t n = write (c->in_fd, c->input + c->input_off, c->input_len - c->input_off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n < 0)
        break; /* the command closed its stdin: what it did not read is dropped */
      c->input_off += (uint32_t) n;
    }
  close_fd (&c->in_fd);
}

static void
reap (void)
{
  int status;
  pid_t pid;
  while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
    for (int i = 0; i < MAX_CHILDREN; i++)
      if (children[i].used && children[i].pid == pid)
        {
          children[i].exited = true;
          children[i].status = status;
          finish_if_done (&children[i]);
        }
}

/* Holds `path` (never given to a command) once no other spawner does, or
 * after LOCK_WAIT_MS, saying so: commands are run late rather than never. */
static void
take_lock (const char *path)
{
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      fprintf (stderr, "frakti-spawner: lock %s: %s; not waiting for an earlier spawner\n", path, strerror (errno));
      return;
    }
  uint64_t give_up = now_ms () + LOCK_WAIT_MS;
  bool said = false;
  while (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      int e = errno;
      if ((e != EWOULDBLOCK && e != EINTR) || now_ms () >= give_up)
        {
          fprintf (stderr, "frakti-spawner: lock %s: %s; running commands beside an earlier spawner's\n", path,
                   e == EWOULDBLOCK ? "still held" : strerror (e));
          return;
        }
      if (! said && e == EWOULDBLOCK)
        fprintf (stderr, "frakti-spawner: waiting for an earlier spawner's commands to end (lock %s)\n", path);
      said = true;
      struct timespec pause = { 0, 20 * 1000 * 1000 };
      nanosleep (&pause, NULL);
    }
}

int
main (int argc, char **argv)
{
  sigset_t chld;
  sigemptyset (&chld);
  sigaddset (&chld, SIGCHLD);
  sigprocmask (SIG_BLOCK, &chld, NULL);
  signal (SIGPIPE, SIG_IGN);
  int sfd = signalfd (-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0)
    return 1;
  fcntl (STDIN_FILENO, F_SETFD, FD_CLOEXEC);
  fcntl (STDOUT_FILENO, F_SETFD, FD_CLOEXEC);
  if (argc > 1)
    take_lock (argv[1]);

  char *req = malloc (4 + MAX_REQUEST_BYTES);
  uint32_t have = 0;
  if (! req)
    return 1;
  for (;;)
    {
      struct pollfd pfd[2 + 3 * MAX_CHILDREN];
      struct stream *which[2 + 3 * MAX_CHILDREN];
      struct child *owner[2 + 3 * MAX_CHILDREN];
      nfds_t n = 0;
      int wait_ms = -1;
      uint64_t now = now_ms ();
      bool running = false;

      if (draining && now >= drain_end_ms + DRAIN_GRACE_MS)
        kill_all_and_exit (0); /* what was killed then and is still there is stuck: leave it */
      /* A negative fd is not polled: stdin is not read once the daemon is gone. */
      pfd[n++] = (struct pollfd) { .fd = draining ? -1 : STDIN_FILENO, .events = POLLIN };
      pfd[n++] = (struct pollfd) { .fd = sfd, .events = POLLIN };
      for (int i = 0; i < MAX_CHILDREN; i++)
        {
          struct child *c = &children[i];
          if (! c->used)
            continue;
          running = true;
          if (c->deadline_ms && ! c->killed)
            {
              if (now >= c->deadline_ms)
                {
                  c->timed_out = true;
                  kill_group (c);
                  /* A descendant may hold the pipes open: do not wait for their EOF. */
                  close_fd (&c->out.fd);
                  close_fd (&c->err.fd);
                  close_fd (&c->in_fd);
                  finish_if_done (c);
                  continue;
                }
              int left = (int) (c->deadline_ms - now);
              if (wait_ms < 0 || left < wait_ms)
                wait_ms = left;
            }
          if (c->killed && draining)
            {
              int left = (int) (drain_end_ms + DRAIN_GRACE_MS - now);
              if (wait_ms < 0 || left < wait_ms)
                wait_ms = left < 0 ? 0 : left;
            }
          if (c->in_fd >= 0)
            {
              owner[n] = c;
              which[n] = NULL;
              pfd[n++] = (struct pollfd) { .fd = c->in_fd, .events = POLLOUT };
            }
          struct stream *sts[2] = { &c->out, &c->err };
          for (int k = 0; k < 2; k++)
            if (sts[k]->fd >= 0)
              {
                owner[n] = c;
                which[n] = sts[k];
                pfd[n++] = (struct pollfd) { .fd = sts[k]->fd, .events = POLLIN };
              }
        }
      if (draining && ! running)
        _exit (0);
      if (poll (pfd, n, wait_ms) < 0)
        {
          if (errno == EINTR)
            continue;
          return 1;
        }
      for (nfds_t i = 2; i < n; i++)
        {
          struct child *c = owner[i];
          if (! pfd[i].revents || ! c->used)
            continue;
          if (which[i] == NULL)
            {
              if (c->in_fd == pfd[i].fd)
                write_input (c);
            }
          else if (which[i]->fd == pfd[i].fd)
            read_stream (c, which[i]);
          finish_if_done (c);
        }
      if (pfd[1].revents)
        {
          struct signalfd_siginfo si;
          while (read (sfd, &si, sizeof (si)) > 0)
            ;
          reap ();
        }
      if (pfd[0].revents)
        {
          ssize_t r = read (STDIN_FILENO, req + have, 4 + MAX_REQUEST_BYTES - have);
          if (r < 0 && errno == EINTR)
            continue;
          if (r <= 0)
            {
              start_draining (); /* stdin's end: the daemon is gone */
              continue;
            }
          have += (uint32_t) r;
          for (;;)
            {
              if (have < 4)
                break;
              uint32_t len = get32 (req);
              if (len > MAX_REQUEST_BYTES)
                kill_all_and_exit (2); /* not a frame of ours: the stream cannot be trusted further */
              if (have < 4 + len)
                break;
              start (req + 4, len);
              memmove (req, req + 4 + len, have - 4 - len);
              have -= 4 + len;
            }
        }
    }
}
