/* The guest agent's shared state and the prototypes between its parts:
 *   main.c     arguments, ready line, the event loop
 *   pid1.c     PID 1 duties: mounts, subreaper, rlimits, reaping, power-off
 *   channel.c  finding and serving the channel (virtio-serial, vsock, unix)
 *   session.c  one host session: sync marker, framing, output queue
 *   dispatch.c the calls: decode a Request, build a Response
 * Wire constants come from agent.proto (generated agent.pb-c.h). */
#ifndef FRAKTI_AGENT_H
#define FRAKTI_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.pb-c.h"
#include "error.h"
#include "loop.h"

#ifndef AGENT_VERSION
#define AGENT_VERSION "0.0.0-dev"
#endif

#define PROTOCOL_VERSION ((uint32_t) FRAKTI__AGENT__V1__LIMITS__PROTOCOL_VERSION)
#define FRAME_HEADER_BYTES ((size_t) FRAKTI__AGENT__V1__LIMITS__FRAME_HEADER_BYTES)
#define MAX_FRAME_PAYLOAD_BYTES ((size_t) FRAKTI__AGENT__V1__LIMITS__MAX_FRAME_PAYLOAD_BYTES)
#define NONCE_BYTES ((size_t) FRAKTI__AGENT__V1__LIMITS__NONCE_BYTES)
#define MAGIC_BYTES ((size_t) FRAKTI__AGENT__V1__LIMITS__MAGIC_BYTES)
#define AGENT_VSOCK_PORT ((unsigned) FRAKTI__AGENT__V1__LIMITS__VSOCK_PORT)
#define AGENT_SERIAL_PORT_NAME "org.frakti.agent.0"

enum frame_type
{
  FRAME_HELLO = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_HELLO,
  FRAME_REQUEST = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_REQUEST,
  FRAME_RESPONSE = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_RESPONSE,
  FRAME_DATA = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_DATA,
  FRAME_WINDOW = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_WINDOW,
  FRAME_CLOSE = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_CLOSE,
  FRAME_EVENT = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_EVENT,
  FRAME_GOAWAY = FRAKTI__AGENT__V1__FRAME_TYPE__FRAME_TYPE_GOAWAY,
};
#define FRAME_TYPE_MAX FRAME_GOAWAY

extern const uint8_t HOST_MAGIC[8];
extern const uint8_t AGENT_MAGIC[8];

enum session_state
{
  SESSION_UNSYNCED,     /* scanning the input for HOST_MAGIC */
  SESSION_EXPECT_HELLO, /* magic seen: the next frame must be HELLO */
  SESSION_OPEN,
};

enum session_kind
{
  SESSION_PORT,   /* virtio-serial: one fd for the VM's life, hosts come and go */
  SESSION_SOCKET, /* an accepted unix or vsock connection: closed when dropped */
};

struct agent;

struct session
{
  struct handler h;
  struct agent *agent;
  enum session_kind kind;
  enum session_state state;
  bool active;           /* an fd is attached */
  bool waiting_for_host; /* port only: no host connected, polled by a timer */
  bool input_blocked;    /* output above the high-water mark: not reading */
  uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_len, out_off, out_cap;
};

struct agent
{
  struct loop loop;
  bool pid1;
  bool shutdown_pending;
  char channel[320];
  struct session port;
  struct session conn;
  struct handler listener;
  struct handler port_timer;
  struct handler signals;
};

/* pid1.c */
int pid1_setup (struct agent_error *err);
int signals_setup (struct agent *agent, struct agent_error *err);
void reap_children (void);
void power_off (struct agent *agent) __attribute__ ((noreturn));

/* channel.c */
int channel_open (struct agent *agent, const char *listen_unix, struct agent_error *err);
void port_host_gone (struct session *s);

/* session.c */
void session_init (struct session *s, struct agent *agent, enum session_kind kind);
void session_attach (struct session *s, int fd);
void session_detach (struct session *s);
void session_reset (struct session *s);
void session_on_events (struct loop *loop, struct handler *h, uint32_t events);
/* Queues a frame; payload may be NULL when len is 0. */
void session_queue_frame (struct session *s, enum frame_type type, uint32_t stream_id, const uint8_t *payload, size_t len);
/* Tells the host why its session ends (GOAWAY), as a best effort. */
void session_goaway (struct session *s, int errnum, const char *message);
/* Blocks until the output is written or timeout_ms passed. */
void session_flush_blocking (struct session *s, int timeout_ms);

/* dispatch.c: handles one REQUEST payload, returns a packed Response (malloc'd) in *out. */
size_t dispatch_request (struct agent *agent, const uint8_t *payload, size_t len, uint8_t **out);
/* Packs an Error {errnum, message}; returns its size, buffer in *out. */
size_t pack_error (int errnum, const char *message, uint8_t **out);

#endif
