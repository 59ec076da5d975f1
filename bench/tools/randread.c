/* bench/tools/randread.c: 4 KiB random reads with O_DIRECT from a file or
 * block device for a given time; prints "IOPS N". Built static by
 * bench/volumes.ts, run the same way in a pod's container and on the host. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
main (int argc, char **argv)
{
  void *buf;
  off_t size;
  double seconds, start;
  uint64_t ops = 0, x = 88172645463325252ull;
  int fd;

  if (argc != 3)
    {
      fprintf (stderr, "usage: randread FILE SECONDS\n");
      return 2;
    }
  seconds = atof (argv[2]);
  fd = open (argv[1], O_RDONLY | O_DIRECT);
  if (fd < 0 || (size = lseek (fd, 0, SEEK_END)) < BLOCK || posix_memalign (&buf, BLOCK, BLOCK) != 0)
    {
      perror (argv[1]);
      return 1;
    }
  start = now ();
  while (now () - start < seconds)
    {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
      if (pread (fd, buf, BLOCK, (off_t) (x % (uint64_t) (size / BLOCK)) * BLOCK) != BLOCK)
        {
          perror ("pread");
          return 1;
        }
      ops++;
    }
  printf ("IOPS %.0f\n", (double) ops / (now () - start));
  return 0;
}
