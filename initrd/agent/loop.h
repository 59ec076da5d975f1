/* One epoll event loop with a small table of per-fd handlers. A handler is
 * embedded in whatever owns the fd (the channel, a connection, the signalfd)
 * and is called with the epoll events that fired. */
#ifndef FRAKTI_LOOP_H
#define FRAKTI_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Bound on fds the loop watches at once: a few per process and port forward. */
#define LOOP_MAX_HANDLERS 8192

struct loop;
struct handler;

typedef void (*handler_fn) (struct loop *loop, struct handler *h, uint32_t events);

struct handler
{
  int fd;
  handler_fn fn;
  void *data;
  uint32_t events; /* what is registered now; 0 when not in the loop */
  bool registered;
};

struct loop
{
  int epfd;
  int count;
  bool stop;
  /* Called once no event came for idle_ms; NULL waits for events only. */
  void (*idle) (struct loop *loop);
  int idle_ms;
};

int loop_init (struct loop *loop, struct agent_error *err);
/* Registers or updates h for `events` (0 removes it). */
int loop_watch (struct loop *loop, struct handler *h, uint32_t events, struct agent_error *err);
void loop_forget (struct loop *loop, struct handler *h);
/* Runs until loop->stop; returns -1 only when epoll itself fails. */
int loop_run (struct loop *loop, struct agent_error *err);

#endif
