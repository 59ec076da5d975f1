#include "loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LOOP_EVENTS_PER_WAIT 16

int
loop_init (struct loop *loop, struct agent_error *err)
{
  loop->epfd = epoll_create1 (EPOLL_CLOEXEC);
  loop->count = 0;
  loop->stop = false;
  loop->idle = NULL;
  if (loop->epfd < 0)
    return agent_error_set (err, errno, "epoll_create1");
  return 0;
}

int
loop_watch (struct loop *loop, struct handler *h, uint32_t events, struct agent_error *err)
{
  struct epoll_event ev = { .events = events, .data.ptr = h };

  if (events == 0)
    {
      loop_forget (loop, h);
      return 0;
    }
  if (h->registered)
    {
      if (h->events == events)
        return 0;
      if (epoll_ctl (loop->epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0)
        return agent_error_set (err, errno, "epoll_ctl MOD fd %d", h->fd);
      h->events = events;
      return 0;
    }
  if (loop->count >= LOOP_MAX_HANDLERS)
    return agent_error_set (err, EMFILE, "watch fd %d: more than %d handlers", h->fd, LOOP_MAX_HANDLERS);
  if (epoll_ctl (loop->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0)
    return agent_error_set (err, errno, "epoll_ctl ADD fd %d", h->fd);
  h->registered = true;
  h->events = events;
  loop->count++;
  return 0;
}

void
loop_forget (struct loop *loop, struct handler *h)
{
  if (! h->registered)
    return;
  epoll_ctl (loop->epfd, EPOLL_CTL_DEL, h->fd, NULL);
  h->registered = false;
  h->events = 0;
  loop->count--;
}

int
loop_run (struct loop *loop, struct agent_error *err)
{
  struct epoll_event events[LOOP_EVENTS_PER_WAIT];

  while (! loop->stop)
    {
      int n = epoll_wait (loop->epfd, events, LOOP_EVENTS_PER_WAIT, loop->idle ? loop->idle_ms : -1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return agent_error_set (err, errno, "epoll_wait");
      if (n == 0 && loop->idle)
        loop->idle (loop);
      for (int i = 0; i < n && ! loop->stop; i++)
        {
          struct handler *h = events[i].data.ptr;
          /* A handler earlier in this batch may have removed this one. */
          if (h->registered)
            h->fn (loop, h, events[i].events);
        }
    }
  return 0;
}
