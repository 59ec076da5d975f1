/* frakti-vsock-relay CID PORT: connects an AF_VSOCK stream socket and relays
 * stdin -> socket and socket -> stdout until either side closes. Node cannot
 * wrap an AF_VSOCK fd (libuv only knows inet and unix handles), so the daemon
 * spawns this and talks over its stdio.
 *   frakti-vsock-relay --unix PATH   the same over a unix socket (tests only)
 * Exit: 0 when a side closed, 1 with one line on stderr on failure, 2 usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/util.h"

#define RELAY_BUFFER_BYTES (64 * 1024)

static int
fail (const char *what)
{
  fprintf (stderr, "frakti-vsock-relay: %s: %s\n", what, strerror (errno));
  return 1;
}

static int
parse_u32 (const char *s, unsigned int *out)
{
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul (s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > UINT_MAX || s[0] == '-')
    return -1;
  *out = (unsigned int) v;
  return 0;
}

static int
connect_target (int argc, char **argv)
{
  if (argc == 3 && strcmp (argv[1], "--unix") == 0)
    {
      struct sockaddr_un addr = { .sun_family = AF_UNIX };
      int fd;
      if (strlen (argv[2]) >= sizeof (addr.sun_path))
        {
          errno = ENAMETOOLONG;
          return -1;
        }
      memcpy (addr.sun_path, argv[2], strlen (argv[2]) + 1);
      fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof (addr)) < 0)
        {
          int saved = errno;
          close (fd);
          errno = saved;
          return -1;
        }
      return fd;
    }
  else
    {
      struct sockaddr_vm addr = { .svm_family = AF_VSOCK };
      int fd;
      if (parse_u32 (argv[1], &addr.svm_cid) < 0 || parse_u32 (argv[2], &addr.svm_port) < 0)
        {
          errno = EINVAL;
          return -1;
        }
      fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof (addr)) < 0)
        {
          int saved = errno;
          close (fd);
          errno = saved;
          return -1;
        }
      return fd;
    }
}

/* Copies one read's worth from `from` to `to`. Returns 1 on data, 0 on EOF, -1 on error. */
static int
pump (int from, int to, char *buf)
{
  ssize_t n = read (from, buf, RELAY_BUFFER_BYTES);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return 1;
  if (n <= 0)
    return (int) n;
  return write_all (to, buf, (size_t) n) < 0 ? -1 : 1;
}

int
main (int argc, char **argv)
{
  static char buf[RELAY_BUFFER_BYTES];
  int sock;

  if (argc != 3)
    {
      fputs ("usage: frakti-vsock-relay CID PORT\n", stderr);
      return 2;
    }
  signal (SIGPIPE, SIG_IGN);
  sock = connect_target (argc, argv);
  if (sock < 0)
    {
      char what[160];
      snprintf (what, sizeof (what), "connect %s:%s", argv[1], argv[2]);
      return fail (what);
    }
  for (;;)
    {
      struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN }, { .fd = sock, .events = POLLIN } };
      int r;
      if (poll (p, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          return fail ("poll");
        }
      if (p[0].revents)
        {
          r = pump (STDIN_FILENO, sock, buf);
          if (r == 0)
            return 0; /* the host side closed */
          if (r < 0)
            return fail ("stdin -> socket");
        }
      if (p[1].revents)
        {
          r = pump (sock, STDOUT_FILENO, buf);
          if (r == 0)
            return 0; /* the guest side closed */
          if (r < 0)
            return fail ("socket -> stdout");
        }
    }
}
