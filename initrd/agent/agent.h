/* The guest agent's shared state and the prototypes between its parts:
 *   main.c     arguments, ready line, the event loop
 *   pid1.c     PID 1 duties: mounts, subreaper, rlimits, reaping, power-off
 *   channel.c  finding and serving the channel (virtio-serial, vsock, unix)
 *   session.c  one host session: sync marker, framing, output queue
 *   dispatch.c the calls: decode a Request, build a Response
 *   stream.c   byte streams to and from the host, with flow control
 *   container.c containers and their processes: create, start, exec, exit
 *   child.c    what a container process does between fork and execve
 *   spare.c    a container's process forked ahead, while the guest is idle
 *   cgroup.c   cgroup v2: limits, stats, kill, OOM events
 *   guest.c    sandbox setup, guest stats, hotplug, port forwards
 *   netlink.c  interfaces, addresses, routes, neighbours (rtnetlink)
 * Wire constants come from agent.proto (generated agent.pb-c.h). */
#ifndef FRAKTI_AGENT_H
#define FRAKTI_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
/* A virtio-blk serial holds at most 20 bytes. */
#define DISK_SERIAL_MAX 20
/* Where the pod's own tmpfs volumes (memory-backed emptyDirs) live in the guest. */
#define POD_TMPFS_DIR "/run/frakti/tmpfs"
#define MAX_DATA_BYTES ((size_t) FRAKTI__AGENT__V1__LIMITS__MAX_DATA_BYTES)
#define STREAM_WINDOW_BYTES ((uint32_t) FRAKTI__AGENT__V1__LIMITS__STREAM_WINDOW_BYTES)
#define STREAM_BUFFER_BYTES ((size_t) FRAKTI__AGENT__V1__LIMITS__STREAM_BUFFER_BYTES)

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
struct container;
struct port_forward;

/* Bytes from an fd (pipe, pty master, socket) to the host. Reads stop when
 * the buffer is full, so a writer that outruns the host blocks. */
struct ostream
{
  struct handler h; /* h.fd: the source, -1 after EOF */
  struct agent *agent;
  uint32_t id;      /* 0: not attached to the current session */
  uint32_t credit;  /* bytes the host still accepts */
  uint8_t *buf;
  /* buf[off, off+len) is held output: the first `sent` bytes went to the host
   * and wait for its WINDOW (its acknowledgement), the rest is still unsent. */
  size_t off, len, sent;
  bool eof, close_sent;
  void (*on_change) (void *owner);
  void *owner;
};

/* Bytes from the host to an fd (stdin, socket). */
struct istream
{
  struct handler h; /* h.fd: the sink, -1 once closed */
  struct agent *agent;
  uint32_t id;
  uint32_t host_credit; /* bytes the host may still send */
  uint32_t ungranted;   /* written to the fd, not yet granted back */
  uint8_t *buf;
  size_t off, len, cap;
  bool host_closed;
  bool tty; /* a pty: end of input is ^D, not close */
  bool shutdown_socket;
};

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
  size_t stalled_len; /* port only: in_len when a half frame holding HOST_MAGIC stalled; 0 if none */
  uint8_t *out;
  size_t out_len, out_off, out_cap;
};

/* A spare container process (spare.c): forked, in a PID namespace and a
 * cgroup of its own, waiting for the spec of the container it will be. */
#define SPARE_CGROUP_BYTES 32
struct spare
{
  pid_t pid;  /* 0 when there is none */
  bool ready; /* false once discarded: its exit is still to be reaped */
  int ctl, start_fd, report_fd;
  char cgroup[SPARE_CGROUP_BYTES];
  unsigned made;
};

/* What a taken spare hands its container. */
struct spare_taken
{
  pid_t pid;
  int start_fd, report_fd;
  char cgroup[SPARE_CGROUP_BYTES];
};

struct agent
{
  struct loop loop; /* first: the loop's idle hook finds the agent from it */
  bool pid1;
  bool shutdown_pending;
  char channel[320];
  struct session port;
  struct session conn;
  struct handler listener;
  struct handler port_timer;
  struct handler signals;
  struct handler inotify;
  uint32_t next_stream_id;
  struct container *containers;
  unsigned n_containers;
  struct port_forward *forwards;
  unsigned n_forwards;
  int self_pidns;   /* to restore pid_for_children after forking into another one */
  pid_t pod_holder; /* PID 1 of the pod's shared PID namespace, 0 until needed */
  int pod_pidns;
  struct spare spare;
};

/* pid1.c */
int pid1_setup (struct agent_error *err);
int signals_setup (struct agent *agent, struct agent_error *err);
void reap_children (struct agent *agent);
void power_off (struct agent *agent) __attribute__ ((noreturn));

/* channel.c */
int channel_open (struct agent *agent, const char *listen_unix, struct agent_error *err);
void port_host_gone (struct session *s);
bool port_host_connected (struct session *s);
void port_check_stall_later (struct session *s);

/* session.c */
void session_init (struct session *s, struct agent *agent, enum session_kind kind);
void session_attach (struct session *s, int fd);
void session_resume (struct session *s);
void session_check_stall (struct session *s);
void session_detach (struct session *s);
void session_reset (struct session *s);
void session_on_events (struct loop *loop, struct handler *h, uint32_t events);
/* Queues a frame; payload may be NULL when len is 0. */
void session_queue_frame (struct session *s, enum frame_type type, uint32_t stream_id, const uint8_t *payload, size_t len);
/* Tells the host why its session ends (GOAWAY), as a best effort. */
void session_goaway (struct session *s, int errnum, const char *message);
/* Blocks until the output is written or timeout_ms passed. */
void session_flush_blocking (struct session *s, int timeout_ms);

/* The open session, or NULL when no host is connected. */
struct session *agent_session (struct agent *agent);
/* Queues nothing; writes what is queued and watches for more room. */
void session_kick (struct session *s);
bool session_has_room (struct session *s);

/* stream.c */
uint32_t stream_new_id (struct agent *agent);
void ostream_init (struct ostream *o, struct agent *agent, int fd, void (*on_change) (void *), void *owner);
void ostream_attach (struct ostream *o, uint32_t id);
void ostream_detach (struct ostream *o);
void ostream_pump (struct ostream *o);
void ostream_free (struct ostream *o);
/* EOF reached, and the host acknowledged every byte read (and got CLOSE, when attached). */
bool ostream_done (const struct ostream *o);
void istream_init (struct istream *i, struct agent *agent, int fd);
void istream_attach (struct istream *i, uint32_t id);
void istream_close_fd (struct istream *i);
void istream_free (struct istream *i);
/* A DATA/WINDOW/CLOSE frame from the host; returns -1 with a message on a protocol violation. */
int streams_on_frame (struct agent *agent, enum frame_type type, uint32_t id, const uint8_t *payload, size_t len,
                      char *msg, size_t msg_size);
void streams_pump_all (struct agent *agent);
/* The session ended or a new one began: streams of the old one are detached, port forwards closed. */
void streams_session_changed (struct agent *agent);
void session_queue_event (struct agent *agent, const Frakti__Agent__V1__Event *ev);

/* container.c */
struct proc;
int containers_init (struct agent *agent, struct agent_error *err);
void containers_on_exit (struct agent *agent, pid_t pid, int status);
struct istream *containers_find_istream (struct agent *agent, uint32_t id);
struct ostream *containers_find_ostream (struct agent *agent, uint32_t id);
void containers_for_each_ostream (struct agent *agent, void (*fn) (struct ostream *));
void containers_detach_all (struct agent *agent);
void containers_on_inotify (struct loop *loop, struct handler *h, uint32_t events);
/* Forks with pid_for_children set to `nsfd` (or a new namespace when -1), then restores ours. */
pid_t fork_in_pidns (struct agent *agent, int nsfd, struct agent_error *err);

/* spare.c */
void spare_init (struct agent *agent);
/* A spare is made the next time the guest is idle (none is while one exists). */
void spare_want (struct agent *agent);
/* Hands the spare, if there is one, the spec and stdio of a container: 1 and
 * *out filled, or 0 (none, or it could not take it: fork one as usual). The
 * caller asks for the next one (spare_want). */
int spare_take (struct agent *agent, const Frakti__Agent__V1__ContainerSpec *spec, const int stdio[3],
                struct spare_taken *out);
/* True when `pid` was the spare (reaped here); its cgroup goes with it. */
bool spare_on_exit (struct agent *agent, pid_t pid);

/* guest.c: port forwards */
struct istream *forwards_find_istream (struct agent *agent, uint32_t id);
struct ostream *forwards_find_ostream (struct agent *agent, uint32_t id);
void forwards_pump_all (struct agent *agent);
void forwards_close_all (struct agent *agent);

/* dispatch.c: handles one REQUEST payload, returns a packed Response (malloc'd) in *out. */
size_t dispatch_request (struct agent *agent, const uint8_t *payload, size_t len, uint8_t **out);
/* Packs an Error {errnum, message}; returns its size, buffer in *out. */
size_t pack_error (int errnum, const char *message, uint8_t **out);

#endif
