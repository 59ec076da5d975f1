/* One host session: finding HOST_MAGIC, parsing frames, answering HELLO,
 * handing REQUESTs to dispatch, and a bounded output queue. agent.proto and
 * src/agent-protocol/framing.ts describe the wire format. */
#define _GNU_SOURCE
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

const uint8_t HOST_MAGIC[8] = { 0xff, 'F', 'R', 'K', 'T', 'H', 'S', 'T' };
const uint8_t AGENT_MAGIC[8] = { 0xff, 'F', 'R', 'K', 'T', 'A', 'G', 'T' };

/* Input holds at most one whole frame plus what arrived behind it in one read. */
#define IN_CAPACITY_BYTES (FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD_BYTES)
/* Above this much unsent output the session stops reading requests. */
#define OUT_HIGH_WATER_BYTES ((size_t) 256 * 1024)
/* High water, plus one response and one GOAWAY, plus the sync marker, plus
 * one DATA frame and the small frames (events, WINDOW, CLOSE) that may be
 * queued above the mark: at most a few per process. */
#define OUT_EVENT_SLACK_BYTES ((size_t) 4 * 1024 * 1024)
#define OUT_CAPACITY_BYTES \
  (OUT_HIGH_WATER_BYTES + 2 * (FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD_BYTES) + 2 * MAGIC_BYTES + NONCE_BYTES \
   + FRAME_HEADER_BYTES + MAX_DATA_BYTES + OUT_EVENT_SLACK_BYTES)

_Static_assert (FRAME_HEADER_BYTES == 12, "agent.proto and the header layout disagree");
_Static_assert (MAGIC_BYTES == sizeof (HOST_MAGIC), "agent.proto and the magic disagree");

static void session_update_watch (struct session *s);
static void session_after_io (struct session *s);
static int session_process (struct session *s);

void
session_init (struct session *s, struct agent *agent, enum session_kind kind)
{
  memset (s, 0, sizeof (*s));
  s->agent = agent;
  s->kind = kind;
  s->h.fd = -1;
  s->h.fn = session_on_events;
  s->h.data = s;
  s->in = xmalloc (IN_CAPACITY_BYTES);
}

/* Forgets all session state; the fd stays. Output of an old session is
 * dropped too: the next host discards anything before its own marker. */
void
session_reset (struct session *s)
{
  bool was_open = s->state == SESSION_OPEN;
  s->state = SESSION_UNSYNCED;
  if (was_open)
    streams_session_changed (s->agent);
  s->in_len = 0;
  s->stalled_len = 0;
  s->out_len = 0;
  s->out_off = 0;
  s->input_blocked = false;
}

void
session_attach (struct session *s, int fd)
{
  session_reset (s);
  s->h.fd = fd;
  s->active = true;
  s->waiting_for_host = false;
  session_update_watch (s);
}

/* A host that left in the middle of a frame, and a new one that connected
 * before the guest saw the hang-up: the new host's HOST_MAGIC and HELLO sit
 * inside the half frame, and the new host says nothing more until answered.
 * A half frame that holds the magic and got no more bytes for a while is the
 * old host's remains: the session starts over at the magic. */
void
session_check_stall (struct session *s)
{
  const uint8_t *m;
  size_t skip;

  m = s->stalled_len == 0 || s->state == SESSION_UNSYNCED || s->in_len <= FRAME_HEADER_BYTES
        ? NULL
        : memmem (s->in + FRAME_HEADER_BYTES, s->in_len - FRAME_HEADER_BYTES, HOST_MAGIC, MAGIC_BYTES);
  if (m == NULL)
    {
      s->stalled_len = 0;
      return;
    }
  if (s->stalled_len != s->in_len)
    {
      /* More came since (the rest of a new host's HELLO, say): look again once it stops. */
      s->stalled_len = s->in_len;
      port_check_stall_later (s);
      return;
    }
  s->stalled_len = 0;
  agent_log ("a host left in the middle of a frame: starting over at the next host's magic");
  skip = (size_t) (m - s->in);
  memmove (s->in, m, s->in_len - skip);
  s->in_len -= skip;
  if (s->state == SESSION_OPEN)
    streams_session_changed (s->agent);
  s->state = SESSION_UNSYNCED;
  s->out_len = 0;
  s->out_off = 0;
  if (session_process (s) < 0)
    return;
  session_after_io (s);
}

/* A host is on the port again: the kept session goes on (see port_host_gone). */
void
session_resume (struct session *s)
{
  s->waiting_for_host = false;
  session_after_io (s);
}

/* Closes a socket session (a port session is never closed: see port_host_gone). */
void
session_detach (struct session *s)
{
  if (! s->active)
    return;
  loop_forget (&s->agent->loop, &s->h);
  close (s->h.fd);
  s->h.fd = -1;
  s->active = false;
  session_reset (s);
  /* Give the memory of a large last frame back. */
  free (s->out);
  s->out = NULL;
  s->out_cap = 0;
}

static void
session_update_watch (struct session *s)
{
  struct agent_error err = { 0 };
  uint32_t events = 0;

  if (! s->active || s->waiting_for_host)
    return;
  if (! s->input_blocked)
    events |= EPOLLIN;
  if (s->out_off < s->out_len)
    events |= EPOLLOUT;
  /* A session with nothing to do still needs HUP/ERR: watch EPOLLIN's absence with RDHUP. */
  if (events == 0)
    events = EPOLLRDHUP;
  if (loop_watch (&s->agent->loop, &s->h, events, &err) < 0)
    agent_error_log (&err);
}

struct session *
agent_session (struct agent *agent)
{
  if (agent->port.active && ! agent->port.waiting_for_host && agent->port.state == SESSION_OPEN)
    return &agent->port;
  if (agent->conn.active && agent->conn.state == SESSION_OPEN)
    return &agent->conn;
  return NULL;
}

bool
session_has_room (struct session *s)
{
  return s->out_len < OUT_HIGH_WATER_BYTES;
}

static void
out_reserve (struct session *s, size_t more)
{
  size_t need = s->out_len + more;
  size_t cap;

  if (need > OUT_CAPACITY_BYTES)
    {
      /* Cannot happen: requests are not read above the high-water mark. */
      agent_log ("output queue over its %zu-byte bound", (size_t) OUT_CAPACITY_BYTES);
      abort ();
    }
  if (need <= s->out_cap)
    return;
  cap = s->out_cap ? s->out_cap : 4096;
  while (cap < need)
    cap *= 2;
  if (cap > OUT_CAPACITY_BYTES)
    cap = OUT_CAPACITY_BYTES;
  s->out = xrealloc (s->out, cap);
  s->out_cap = cap;
}

static void
out_append (struct session *s, const void *data, size_t len)
{
  out_reserve (s, len);
  if (len)
    memcpy (s->out + s->out_len, data, len);
  s->out_len += len;
}

void
session_queue_frame (struct session *s, enum frame_type type, uint32_t stream_id, const uint8_t *payload, size_t len)
{
  uint8_t header[FRAME_HEADER_BYTES];
  uint32_t be;

  if (len > MAX_FRAME_PAYLOAD_BYTES)
    {
      agent_log ("refusing to send a %zu-byte frame", len);
      return;
    }
  be = htonl ((uint32_t) len);
  memcpy (header, &be, 4);
  be = htonl (stream_id);
  memcpy (header + 4, &be, 4);
  header[8] = (uint8_t) type;
  header[9] = 0;
  header[10] = 0;
  header[11] = 0;
  out_append (s, header, sizeof (header));
  out_append (s, payload, len);
}

void
session_goaway (struct session *s, int errnum, const char *message)
{
  cleanup_free uint8_t *payload = NULL;
  size_t len = pack_error (errnum, message, &payload);
  session_queue_frame (s, FRAME_GOAWAY, 0, payload, len);
}

/* Writes what it can without blocking. Returns -1 when the peer is gone. */
static int
session_write (struct session *s)
{
  while (s->out_off < s->out_len)
    {
      ssize_t n = write (s->h.fd, s->out + s->out_off, s->out_len - s->out_off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n < 0)
        return -1;
      s->out_off += (size_t) n;
    }
  if (s->out_off == s->out_len)
    {
      s->out_off = 0;
      s->out_len = 0;
    }
  return 0;
}

void
session_flush_blocking (struct session *s, int timeout_ms)
{
  struct timespec start, now;

  clock_gettime (CLOCK_MONOTONIC, &start);
  while (s->active && s->out_off < s->out_len)
    {
      struct pollfd p = { .fd = s->h.fd, .events = POLLOUT };
      long spent;
      if (session_write (s) < 0)
        return;
      if (s->out_off >= s->out_len)
        return;
      clock_gettime (CLOCK_MONOTONIC, &now);
      spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
      if (spent >= timeout_ms)
        return;
      poll (&p, 1, (int) (timeout_ms - spent));
    }
}

/* The host broke the protocol: tell it why, then drop the connection (a
 * socket) or the session (the port: scan for the next HOST_MAGIC).
 * Returns -1 when the session's fd was closed. */
static int
protocol_error (struct session *s, int errnum, const char *message)
{
  agent_log ("protocol error from the host: %s", message);
  session_goaway (s, errnum, message);
  if (s->kind == SESSION_SOCKET)
    {
      session_write (s);
      session_detach (s);
      return -1;
    }
  s->state = SESSION_UNSYNCED;
  return 0;
}

static int
handle_hello (struct session *s, uint32_t stream_id, const uint8_t *payload, size_t len)
{
  Frakti__Agent__V1__Hello *hello;
  Frakti__Agent__V1__Hello reply = FRAKTI__AGENT__V1__HELLO__INIT;
  uint8_t nonce[NONCE_BYTES];
  uint8_t buf[256];
  size_t n;

  if (stream_id != 0)
    return protocol_error (s, EPROTO, "HELLO on a stream other than 0");
  hello = frakti__agent__v1__hello__unpack (NULL, len, payload);
  if (hello == NULL)
    return protocol_error (s, EBADMSG, "undecodable HELLO");
  if (hello->nonce.len != NONCE_BYTES || hello->protocol_version != PROTOCOL_VERSION)
    {
      bool bad_nonce = hello->nonce.len != NONCE_BYTES;
      frakti__agent__v1__hello__free_unpacked (hello, NULL);
      if (bad_nonce)
        return protocol_error (s, EPROTO, "HELLO nonce must be 16 bytes");
      return protocol_error (s, EPROTONOSUPPORT, "unsupported protocol version");
    }
  memcpy (nonce, hello->nonce.data, NONCE_BYTES);
  frakti__agent__v1__hello__free_unpacked (hello, NULL);

  /* A new session: whatever the previous host left unsent is dropped, and
   * the old session's streams are detached (AttachIo reattaches them). */
  /* Unconditionally: over virtio-serial a new host may say HELLO before we
   * ever saw the old one go (the magic moved the state on already). */
  streams_session_changed (s->agent);
  s->out_len = 0;
  s->out_off = 0;
  reply.protocol_version = PROTOCOL_VERSION;
  reply.agent_version = (char *) AGENT_VERSION;
  n = frakti__agent__v1__hello__get_packed_size (&reply);
  if (n > sizeof (buf))
    abort ();
  frakti__agent__v1__hello__pack (&reply, buf);
  out_append (s, AGENT_MAGIC, MAGIC_BYTES);
  out_append (s, nonce, NONCE_BYTES);
  session_queue_frame (s, FRAME_HELLO, 0, buf, n);
  s->state = SESSION_OPEN;
  return 0;
}

static int
handle_frame (struct session *s, uint8_t type, uint32_t stream_id, const uint8_t *payload, size_t len)
{
  char msg[160];

  if (type == FRAME_HELLO)
    return handle_hello (s, stream_id, payload, len);
  if (s->state != SESSION_OPEN)
    return protocol_error (s, EPROTO, "the first frame of a session must be HELLO");
  if (type == FRAME_REQUEST)
    {
      cleanup_free uint8_t *resp = NULL;
      size_t n;
      if (stream_id % 2 == 0)
        return protocol_error (s, EPROTO, "REQUEST on an even stream id (host streams are odd)");
      n = dispatch_request (s->agent, payload, len, &resp);
      session_queue_frame (s, FRAME_RESPONSE, stream_id, resp, n);
      return 0;
    }
  if (type == FRAME_DATA || type == FRAME_WINDOW || type == FRAME_CLOSE)
    {
      if (streams_on_frame (s->agent, type, stream_id, payload, len, msg, sizeof (msg)) < 0)
        return protocol_error (s, EPROTO, msg);
      return 0;
    }
  snprintf (msg, sizeof (msg), "frame type %u is not accepted from the host", (unsigned) type);
  return protocol_error (s, EPROTO, msg);
}

/* Parses everything complete in the input. Returns -1 when the session's fd was closed. */
static int
session_process (struct session *s)
{
  size_t pos = 0;

  while (! s->agent->shutdown_pending)
    {
      const uint8_t *p = s->in + pos;
      size_t avail = s->in_len - pos;
      uint32_t be, len, stream_id;
      uint8_t type, flags;
      uint16_t reserved;
      char msg[128];

      if (s->state == SESSION_UNSYNCED)
        {
          const uint8_t *m = memmem (p, avail, HOST_MAGIC, MAGIC_BYTES);
          if (m == NULL)
            {
              /* Keep a possible start of the magic. */
              size_t keep = avail < MAGIC_BYTES - 1 ? avail : MAGIC_BYTES - 1;
              pos = s->in_len - keep;
              break;
            }
          pos += (size_t) (m - p) + MAGIC_BYTES;
          s->state = SESSION_EXPECT_HELLO;
          continue;
        }
      /* 0xff cannot start a valid header (length > limit): it is the magic of a new session, or garbage. */
      if (avail > 0 && p[0] == 0xff)
        {
          if (avail < MAGIC_BYTES)
            break;
          if (memcmp (p, HOST_MAGIC, MAGIC_BYTES) == 0)
            {
              pos += MAGIC_BYTES;
              s->state = SESSION_EXPECT_HELLO;
              continue;
            }
        }
      if (avail < FRAME_HEADER_BYTES)
        break;
      memcpy (&be, p, 4);
      len = ntohl (be);
      memcpy (&be, p + 4, 4);
      stream_id = ntohl (be);
      type = p[8];
      flags = p[9];
      reserved = (uint16_t) ((p[10] << 8) | p[11]);
      msg[0] = '\0';
      if (len > MAX_FRAME_PAYLOAD_BYTES)
        snprintf (msg, sizeof (msg), "frame length %u exceeds the %zu-byte limit", len, MAX_FRAME_PAYLOAD_BYTES);
      else if (reserved != 0)
        snprintf (msg, sizeof (msg), "frame reserved field is %u, not 0", (unsigned) reserved);
      else if (flags != 0)
        snprintf (msg, sizeof (msg), "frame flags are %u, none is defined", (unsigned) flags);
      else if (type < FRAME_HELLO || type > FRAME_TYPE_MAX)
        snprintf (msg, sizeof (msg), "unknown frame type %u", (unsigned) type);
      if (msg[0] != '\0')
        {
          if (protocol_error (s, EPROTO, msg) < 0)
            return -1;
          pos += 1; /* rescan from the next byte for a new session's magic */
          continue;
        }
      if (avail < FRAME_HEADER_BYTES + len)
        {
          if (s->kind == SESSION_PORT && s->stalled_len == 0
              && memmem (p + FRAME_HEADER_BYTES, avail - FRAME_HEADER_BYTES, HOST_MAGIC, MAGIC_BYTES) != NULL)
            {
              s->stalled_len = avail;
              port_check_stall_later (s);
            }
          break;
        }
      s->stalled_len = 0;
      if (s->out_len >= OUT_HIGH_WATER_BYTES)
        {
          s->input_blocked = true;
          break;
        }
      if (handle_frame (s, type, stream_id, p + FRAME_HEADER_BYTES, len) < 0)
        return -1;
      pos += FRAME_HEADER_BYTES + len;
    }
  if (pos > 0)
    {
      memmove (s->in, s->in + pos, s->in_len - pos);
      s->in_len -= pos;
    }
  return 0;
}

/* The peer is gone: close a socket, or wait for the next host on the port. */
static void
session_peer_gone (struct session *s)
{
  if (s->kind == SESSION_SOCKET)
    session_detach (s);
  else
    port_host_gone (s);
}

void
session_kick (struct session *s)
{
  if (! s->active || s->waiting_for_host)
    return;
  if (session_write (s) < 0)
    {
      session_peer_gone (s);
      return;
    }
  session_update_watch (s);
}

static void
session_after_io (struct session *s)
{
  if (! s->active || s->waiting_for_host)
    return;
  if (session_write (s) < 0)
    {
      session_peer_gone (s);
      return;
    }
  /* Room in the output queue: streams held back by it go on. */
  if (s->state == SESSION_OPEN && session_has_room (s))
    {
      streams_pump_all (s->agent);
      if (session_write (s) < 0)
        {
          session_peer_gone (s);
          return;
        }
    }
  if (s->input_blocked && s->out_len < OUT_HIGH_WATER_BYTES)
    {
      s->input_blocked = false;
      if (session_process (s) < 0)
        return;
      if (session_write (s) < 0)
        {
          session_peer_gone (s);
          return;
        }
    }
  session_update_watch (s);
}

void
session_on_events (struct loop *loop UNUSED, struct handler *h, uint32_t events)
{
  struct session *s = h->data;

  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
    {
      /* Read until EAGAIN, or until the buffer is full and must be parsed first. */
      for (;;)
        {
          ssize_t n;
          if (s->input_blocked || s->agent->shutdown_pending)
            break;
          if (s->in_len == IN_CAPACITY_BYTES)
            {
              /* Cannot happen: a full frame fits and is always consumed. */
              agent_log ("input buffer full without a frame");
              session_peer_gone (s);
              return;
            }
          n = read (h->fd, s->in + s->in_len, IN_CAPACITY_BYTES - s->in_len);
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0 && errno == EAGAIN)
            break;
          if (n <= 0)
            {
              /* A port flaps on a quick reconnect: the guest may learn that the old
               * host left only after the new one's HELLO was answered. A host that
               * is there again keeps the session; a newer one would have started
               * its own with HOST_MAGIC anyway. */
              if (n == 0 && s->kind == SESSION_PORT && port_host_connected (s))
                break;
              /* read() == 0: the host disconnected (a socket is closed; the port
               * waits for a host, keeping the session: see port_host_gone). */
              session_peer_gone (s);
              return;
            }
          s->in_len += (size_t) n;
          if (session_process (s) < 0)
            return;
        }
    }
  session_after_io (s);
  if (s->agent->shutdown_pending)
    power_off (s->agent);
}
