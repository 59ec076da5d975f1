/* Byte streams between the host and fds in the guest (agent.proto: DATA,
 * WINDOW, CLOSE). Output: read from the fd into a bounded buffer while it
 * has room, send as DATA within the host's credit. A byte leaves the buffer
 * only when the host's WINDOW acknowledges it, so bytes lost in flight when
 * the host drops are sent again after AttachIo. When no host is attached
 * the buffer fills and reading stops, so the writing process blocks in
 * write(): output is held, never dropped. Input: the host sends within the
 * credit we grant; we grant back what reached the fd. */
#define _GNU_SOURCE
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* Grant stdin credit back in batches of at least this much (or when the buffer empties). */
#define GRANT_BATCH_BYTES ((uint32_t) 32 * 1024)
/* Input a stream may hold: the host's window, plus one more after a reconnect. */
#define ISTREAM_MAX_BYTES ((size_t) 2 * STREAM_WINDOW_BYTES)

uint32_t
stream_new_id (struct agent *agent)
{
  uint32_t id = agent->next_stream_id;
  agent->next_stream_id = id >= 0xfffffff0u ? 2 : id + 2;
  return id;
}

static void
ostream_watch (struct ostream *o)
{
  struct agent_error err = { 0 };
  if (o->h.fd < 0)
    return;
  if (o->len < STREAM_BUFFER_BYTES)
    {
      if (loop_watch (&o->agent->loop, &o->h, EPOLLIN, &err) < 0)
        agent_error_log (&err);
    }
  else
    loop_forget (&o->agent->loop, &o->h);
}

static void
ostream_set_eof (struct ostream *o)
{
  if (o->h.fd >= 0)
    {
      loop_forget (&o->agent->loop, &o->h);
      close (o->h.fd);
      o->h.fd = -1;
    }
  o->eof = true;
}

static void
ostream_on_events (struct loop *loop UNUSED, struct handler *h, uint32_t events UNUSED)
{
  struct ostream *o = h->data;

  for (int rounds = 0; rounds < 4 && o->h.fd >= 0 && o->len < STREAM_BUFFER_BYTES; rounds++)
    {
      ssize_t n;
      if (o->off > 0 && o->off + o->len == STREAM_BUFFER_BYTES)
        {
          memmove (o->buf, o->buf + o->off, o->len);
          o->off = 0;
        }
      if (o->buf == NULL)
        o->buf = xmalloc (STREAM_BUFFER_BYTES);
      n = read (o->h.fd, o->buf + o->off + o->len, STREAM_BUFFER_BYTES - o->off - o->len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n <= 0)
        {
          /* EOF, or EIO from a pty master once the terminal's last holder closed it. */
          ostream_set_eof (o);
          break;
        }
      o->len += (size_t) n;
    }
  ostream_pump (o);
  ostream_watch (o);
  if (o->eof && o->on_change)
    o->on_change (o->owner);
  struct session *s = agent_session (o->agent);
  if (s)
    session_kick (s);
}

void
ostream_init (struct ostream *o, struct agent *agent, int fd, void (*on_change) (void *), void *owner)
{
  memset (o, 0, sizeof (*o));
  o->agent = agent;
  o->h.fd = fd;
  o->h.fn = ostream_on_events;
  o->h.data = o;
  o->on_change = on_change;
  o->owner = owner;
  if (fd < 0)
    o->eof = true;
  else
    ostream_watch (o);
}

void
ostream_attach (struct ostream *o, uint32_t id)
{
  o->id = id;
  o->credit = STREAM_WINDOW_BYTES;
  o->close_sent = false;
  o->sent = 0; /* whatever the last host did not acknowledge goes out again first */
}

void
ostream_detach (struct ostream *o)
{
  o->id = 0;
  o->credit = 0;
  o->sent = 0;
}

bool
ostream_done (const struct ostream *o)
{
  return o->eof && o->len == 0 && (o->id == 0 || o->close_sent);
}

/* The host's WINDOW: it has the first n sent bytes, so they leave the buffer and n more may go. */
static int
ostream_ack (struct ostream *o, uint32_t n, char *msg, size_t msg_size)
{
  if (n == 0 || n > o->sent)
    {
      snprintf (msg, msg_size, "WINDOW of %u bytes on stream %u, which has %zu unacknowledged bytes", n, o->id, o->sent);
      return -1;
    }
  o->off += n;
  o->len -= n;
  o->sent -= n;
  o->credit += n;
  if (o->len == 0)
    o->off = 0;
  ostream_pump (o);
  if (ostream_done (o) && o->on_change)
    o->on_change (o->owner);
  return 0;
}

void
ostream_pump (struct ostream *o)
{
  struct session *s = agent_session (o->agent);
  bool sent_close = false;

  if (s == NULL || o->id == 0)
    return;
  while (o->sent < o->len && o->credit > 0 && session_has_room (s))
    {
      size_t n = o->len - o->sent;
      if (n > o->credit)
        n = o->credit;
      if (n > MAX_DATA_BYTES)
        n = MAX_DATA_BYTES;
      session_queue_frame (s, FRAME_DATA, o->id, o->buf + o->off + o->sent, n);
      o->sent += n;
      o->credit -= (uint32_t) n;
    }
  if (o->len == 0 && o->eof && o->buf)
    {
      free (o->buf);
      o->buf = NULL;
    }
  if (o->eof && o->sent == o->len && ! o->close_sent)
    {
      session_queue_frame (s, FRAME_CLOSE, o->id, NULL, 0);
      o->close_sent = true;
      sent_close = true;
    }
  ostream_watch (o);
  if (sent_close && o->on_change)
    o->on_change (o->owner);
}

void
ostream_free (struct ostream *o)
{
  ostream_set_eof (o);
  free (o->buf);
  o->buf = NULL;
  o->len = o->off = o->sent = 0;
}

static void istream_flush (struct istream *i);

static void
istream_on_events (struct loop *loop UNUSED, struct handler *h, uint32_t events)
{
  struct istream *i = h->data;
  if (events & (EPOLLERR | EPOLLHUP))
    {
      /* The reader is gone: what the host sends is discarded (and granted back). */
      istream_close_fd (i);
    }
  istream_flush (i);
  struct session *s = agent_session (i->agent);
  if (s)
    session_kick (s);
}

void
istream_init (struct istream *i, struct agent *agent, int fd)
{
  memset (i, 0, sizeof (*i));
  i->agent = agent;
  i->h.fd = fd;
  i->h.fn = istream_on_events;
  i->h.data = i;
}

void
istream_attach (struct istream *i, uint32_t id)
{
  i->id = id;
  i->host_credit = STREAM_WINDOW_BYTES;
  i->ungranted = 0;
}

void
istream_close_fd (struct istream *i)
{
  if (i->h.fd < 0)
    return;
  loop_forget (&i->agent->loop, &i->h);
  if (i->shutdown_socket)
    shutdown (i->h.fd, SHUT_WR);
  close (i->h.fd);
  i->h.fd = -1;
}

void
istream_free (struct istream *i)
{
  istream_close_fd (i);
  free (i->buf);
  i->buf = NULL;
  i->len = i->off = i->cap = 0;
}

static void
istream_grant (struct istream *i, bool force)
{
  struct session *s = agent_session (i->agent);
  uint32_t be;

  if (i->ungranted == 0 || i->id == 0 || s == NULL || i->host_closed)
    return;
  if (! force && i->ungranted < GRANT_BATCH_BYTES)
    return;
  be = htonl (i->ungranted);
  session_queue_frame (s, FRAME_WINDOW, i->id, (const uint8_t *) &be, 4);
  i->host_credit += i->ungranted;
  i->ungranted = 0;
}

static void
istream_flush (struct istream *i)
{
  struct agent_error err = { 0 };

  while (i->len > 0)
    {
      ssize_t n;
      if (i->h.fd < 0)
        {
          i->ungranted += (uint32_t) i->len; /* discarded: the process is gone */
          i->len = 0;
          break;
        }
      n = write (i->h.fd, i->buf + i->off, i->len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n < 0)
        {
          istream_close_fd (i);
          continue;
        }
      i->off += (size_t) n;
      i->len -= (size_t) n;
      i->ungranted += (uint32_t) n;
    }
  if (i->len == 0)
    i->off = 0;
  if (i->h.fd >= 0)
    {
      if (i->len > 0)
        {
          if (loop_watch (&i->agent->loop, &i->h, EPOLLOUT, &err) < 0)
            agent_error_log (&err);
        }
      else
        loop_forget (&i->agent->loop, &i->h);
    }
  istream_grant (i, i->len == 0);
  if (i->host_closed && i->len == 0 && i->h.fd >= 0)
    {
      if (i->tty)
        {
          static const char eot = 4; /* ^D: end of input for a terminal's reader */
          if (write (i->h.fd, &eot, 1) < 0)
            agent_log ("write ^D to a pty: %s", strerror (errno));
        }
      istream_close_fd (i);
    }
}

static int
istream_on_data (struct istream *i, const uint8_t *payload, size_t len, char *msg, size_t msg_size)
{
  if (i->host_closed)
    {
      snprintf (msg, msg_size, "DATA on stream %u after its CLOSE", i->id);
      return -1;
    }
  if (len > i->host_credit)
    {
      snprintf (msg, msg_size, "DATA of %zu bytes on stream %u exceeds the credit of %u", len, i->id, i->host_credit);
      return -1;
    }
  i->host_credit -= (uint32_t) len;
  if (i->off + i->len + len > i->cap)
    {
      if (i->off > 0)
        {
          memmove (i->buf, i->buf + i->off, i->len);
          i->off = 0;
        }
      if (i->len + len > i->cap)
        {
          size_t cap = i->len + len;
          if (cap > ISTREAM_MAX_BYTES)
            {
              snprintf (msg, msg_size, "stream %u holds more than %zu bytes", i->id, ISTREAM_MAX_BYTES);
              return -1;
            }
          i->buf = xrealloc (i->buf, cap);
          i->cap = cap;
        }
    }
  memcpy (i->buf + i->off + i->len, payload, len);
  i->len += len;
  istream_flush (i);
  return 0;
}

int
streams_on_frame (struct agent *agent, enum frame_type type, uint32_t id, const uint8_t *payload, size_t len,
                  char *msg, size_t msg_size)
{
  if (id == 0 || id % 2 != 0)
    {
      snprintf (msg, msg_size, "stream frame on stream %u (byte streams are even)", id);
      return -1;
    }
  if (type == FRAME_DATA || type == FRAME_CLOSE)
    {
      struct istream *i = containers_find_istream (agent, id);
      if (i == NULL)
        i = forwards_find_istream (agent, id);
      if (type == FRAME_DATA && len > MAX_DATA_BYTES)
        {
          snprintf (msg, msg_size, "DATA of %zu bytes exceeds %zu", len, MAX_DATA_BYTES);
          return -1;
        }
      if (type == FRAME_CLOSE && len != 0)
        {
          snprintf (msg, msg_size, "CLOSE with a payload");
          return -1;
        }
      if (i == NULL)
        return 0; /* a stream that ended meanwhile (process gone, removed): dropped */
      if (type == FRAME_DATA)
        return istream_on_data (i, payload, len, msg, msg_size);
      i->host_closed = true;
      istream_flush (i);
      return 0;
    }
  /* WINDOW */
  {
    struct ostream *o = containers_find_ostream (agent, id);
    uint32_t be, n;
    if (o == NULL)
      o = forwards_find_ostream (agent, id);
    if (len != 4)
      {
        snprintf (msg, msg_size, "WINDOW of %zu bytes, not 4", len);
        return -1;
      }
    memcpy (&be, payload, 4);
    n = ntohl (be);
    if (o == NULL)
      return 0;
    return ostream_ack (o, n, msg, msg_size);
  }
}

static void
pump_one (struct ostream *o)
{
  ostream_pump (o);
}

void
streams_pump_all (struct agent *agent)
{
  containers_for_each_ostream (agent, pump_one);
  forwards_pump_all (agent);
}

void
streams_session_changed (struct agent *agent)
{
  containers_detach_all (agent);
  forwards_close_all (agent);
}

void
session_queue_event (struct agent *agent, const Frakti__Agent__V1__Event *ev)
{
  struct session *s = agent_session (agent);
  cleanup_free uint8_t *buf = NULL;
  size_t n;

  if (s == NULL)
    return;
  n = frakti__agent__v1__event__get_packed_size (ev);
  buf = xmalloc (n);
  frakti__agent__v1__event__pack (ev, buf);
  session_queue_frame (s, FRAME_EVENT, 0, buf, n);
  session_kick (s);
}
