/* Small helpers shared by the agent, the relay and the bare init:
 * cleanup attributes (every early return releases what it holds; ownership
 * is handed on visibly with `ret = fd; fd = -1;`) and allocation wrappers
 * that abort on out-of-memory, so callers never check for NULL. */
#ifndef FRAKTI_UTIL_H
#define FRAKTI_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))
#define UNUSED __attribute__ ((unused))

static inline void *
xmalloc (size_t size)
{
  void *p = malloc (size ? size : 1);
  if (p == NULL)
    {
      fputs ("frakti-agent: out of memory\n", stderr);
      abort ();
    }
  return p;
}

static inline void *
xzalloc (size_t size)
{
  void *p = xmalloc (size);
  memset (p, 0, size);
  return p;
}

static inline void *
xrealloc (void *old, size_t size)
{
  void *p = realloc (old, size ? size : 1);
  if (p == NULL)
    {
      fputs ("frakti-agent: out of memory\n", stderr);
      abort ();
    }
  return p;
}

static inline void
cleanup_freep (void *p)
{
  void **pp = (void **) p;
  free (*pp);
}

static inline void
cleanup_closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
    }
}

static inline void
cleanup_fclosep (FILE **f)
{
  if (*f != NULL)
    fclose (*f);
}

#define cleanup_free __attribute__ ((cleanup (cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (cleanup_closep)))
#define cleanup_file __attribute__ ((cleanup (cleanup_fclosep)))

/* Writes all of buf to a blocking fd, retrying on EINTR. */
static inline int
write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

#endif
