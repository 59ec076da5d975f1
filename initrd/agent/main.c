/* frakti-agent: the guest agent, PID 1 of every pod VM.
 *   /init (PID 1): set up the guest, find the channel, serve the host.
 *   frakti-agent --listen-unix PATH: the same protocol on a unix socket, as an
 *   ordinary process, so host tests can talk to the real agent.
 *   frakti-spare --spare CGROUP [--devices]: a spare container process, exec'd
 *   by the agent itself (spare.c), never by hand. */
#define _GNU_SOURCE
#include "agent.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "calls.h"
#include "child.h"
#include "util.h"

static long
boot_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_BOOTTIME, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
usage (FILE *f)
{
  fputs ("usage: frakti-agent [--listen-unix PATH] [--version]\n"
         "  As PID 1: mounts the guest's file systems and serves the host over the\n"
         "  virtio-serial port " AGENT_SERIAL_PORT_NAME " or vsock port 1024.\n"
         "  --listen-unix PATH  serve the protocol on a unix socket (host tests)\n",
         f);
}

int
main (int argc, char **argv)
{
  static struct agent agent; /* lives as long as the process; handlers point into it */
  struct agent_error err = { 0 };
  const char *listen_unix = NULL;

  if (argc >= 3 && strcmp (argv[1], "--spare") == 0)
    child_run_spare (argv[2], argc >= 4 && strcmp (argv[3], "--devices") == 0);
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--listen-unix") == 0 && i + 1 < argc)
        listen_unix = argv[++i];
      else if (strcmp (argv[i], "--version") == 0)
        {
          printf ("frakti-agent %s (protocol %u)\n", AGENT_VERSION, PROTOCOL_VERSION);
          return 0;
        }
      else if (strcmp (argv[i], "--help") == 0)
        {
          usage (stdout);
          return 0;
        }
      else
        {
          usage (stderr);
          return 2;
        }
    }

  agent.pid1 = getpid () == 1;
  long started_ms = boot_ms ();
  if (agent.pid1 && pid1_setup (&err) < 0)
    agent_error_log (&err);
  if (loop_init (&agent.loop, &err) < 0 || signals_setup (&agent, &err) < 0)
    goto fail;
  if (containers_init (&agent, &err) < 0)
    goto fail;
  if (agent.pid1 && netlink_loopback_up (&err) < 0)
    agent_error_log (&err);
  if (channel_open (&agent, listen_unix, &err) < 0)
    goto fail;
  /* Times since the guest booted: where a slow pod start went. */
  printf ("frakti-agent: ready on %s (started %ld ms, ready %ld ms after boot)\n", agent.channel, started_ms, boot_ms ());
  fflush (stdout);
  if (loop_run (&agent.loop, &err) < 0)
    goto fail;
  return 0;

fail:
  agent_error_log (&err);
  if (agent.pid1)
    {
      /* Nothing can reach this guest: power off so the host notices at once. */
      agent.shutdown_pending = true;
      power_off (&agent);
    }
  return 1;
}
