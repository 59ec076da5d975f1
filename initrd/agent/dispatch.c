/* The calls. A Request the agent cannot decode gets EBADMSG, a call it does
 * not know (a oneof case it was not built with) ENOSYS; it never exits on a
 * bad request. Issue 3 adds its calls to the table below. */
#include "agent.h"

#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#include "calls.h"
#include "util.h"

/* Fills resp for one call; may point resp at storage in *scratch-like
 * locals of the caller, so each handler packs before returning. */
typedef size_t (*call_fn) (struct agent *agent, const Request *req, uint8_t **out);

size_t
pack_response (const Response *resp, uint8_t **out)
{
  size_t n = frakti__agent__v1__response__get_packed_size (resp);
  *out = xmalloc (n);
  frakti__agent__v1__response__pack (resp, *out);
  return n;
}

size_t
agent_error_response (struct agent_error *err, uint8_t **out)
{
  return error_response (err->errnum ? err->errnum : EINVAL, err->message, out);
}

size_t
empty_response (Frakti__Agent__V1__Response__ResultCase which, void *msg, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  resp.result_case = which;
  /* Every empty result message is the same shape: point the union member at it. */
  resp.setup_sandbox = msg;
  return pack_response (&resp, out);
}

size_t
error_response (int errnum, const char *message, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__Error e = FRAKTI__AGENT__V1__ERROR__INIT;

  e.errnum = errnum;
  e.message = (char *) message;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_ERROR;
  resp.error = &e;
  return pack_response (&resp, out);
}

size_t
pack_error (int errnum, const char *message, uint8_t **out)
{
  Frakti__Agent__V1__Error e = FRAKTI__AGENT__V1__ERROR__INIT;
  size_t n;

  e.errnum = errnum;
  e.message = (char *) message;
  n = frakti__agent__v1__error__get_packed_size (&e);
  *out = xmalloc (n);
  frakti__agent__v1__error__pack (&e, *out);
  return n;
}

static size_t
call_version (struct agent *agent UNUSED, const Request *req UNUSED, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__VersionResponse v = FRAKTI__AGENT__V1__VERSION_RESPONSE__INIT;
  struct utsname uts;

  if (uname (&uts) < 0)
    return error_response (errno, "uname", out);
  v.agent_version = (char *) AGENT_VERSION;
  v.protocol_version = PROTOCOL_VERSION;
  v.kernel_release = uts.release;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_VERSION;
  resp.version = &v;
  return pack_response (&resp, out);
}

static size_t
call_ping (struct agent *agent UNUSED, const Request *req, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__PingResponse p = FRAKTI__AGENT__V1__PING_RESPONSE__INIT;

  p.data = req->ping->data;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_PING;
  resp.ping = &p;
  if (frakti__agent__v1__response__get_packed_size (&resp) > MAX_FRAME_PAYLOAD_BYTES)
    return error_response (E2BIG, "ping: the echo would exceed the frame limit", out);
  return pack_response (&resp, out);
}

static size_t
call_shutdown (struct agent *agent, const Request *req UNUSED, uint8_t **out)
{
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__ShutdownResponse sd = FRAKTI__AGENT__V1__SHUTDOWN_RESPONSE__INIT;

  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_SHUTDOWN;
  resp.shutdown = &sd;
  /* The session flushes this answer, then calls power_off(). */
  agent->shutdown_pending = true;
  return pack_response (&resp, out);
}

static const struct
{
  Frakti__Agent__V1__Request__CallCase call;
  const char *name;
  call_fn fn;
} calls[] = {
  { FRAKTI__AGENT__V1__REQUEST__CALL_VERSION, "version", call_version },
  { FRAKTI__AGENT__V1__REQUEST__CALL_PING, "ping", call_ping },
  { FRAKTI__AGENT__V1__REQUEST__CALL_SHUTDOWN, "shutdown", call_shutdown },
  { FRAKTI__AGENT__V1__REQUEST__CALL_SETUP_SANDBOX, "setup_sandbox", call_setup_sandbox },
  { FRAKTI__AGENT__V1__REQUEST__CALL_CONFIGURE_NETWORK, "configure_network", call_configure_network },
  { FRAKTI__AGENT__V1__REQUEST__CALL_CREATE_CONTAINER, "create_container", call_create_container },
  { FRAKTI__AGENT__V1__REQUEST__CALL_START_CONTAINER, "start_container", call_start_container },
  { FRAKTI__AGENT__V1__REQUEST__CALL_EXEC, "exec", call_exec },
  { FRAKTI__AGENT__V1__REQUEST__CALL_SIGNAL, "signal", call_signal },
  { FRAKTI__AGENT__V1__REQUEST__CALL_WAIT, "wait", call_wait },
  { FRAKTI__AGENT__V1__REQUEST__CALL_RESIZE_TTY, "resize_tty", call_resize_tty },
  { FRAKTI__AGENT__V1__REQUEST__CALL_ATTACH_IO, "attach_io", call_attach_io },
  { FRAKTI__AGENT__V1__REQUEST__CALL_REMOVE_CONTAINER, "remove_container", call_remove_container },
  { FRAKTI__AGENT__V1__REQUEST__CALL_UPDATE_RESOURCES, "update_resources", call_update_resources },
  { FRAKTI__AGENT__V1__REQUEST__CALL_CONTAINER_STATS, "container_stats", call_container_stats },
  { FRAKTI__AGENT__V1__REQUEST__CALL_GUEST_STATS, "guest_stats", call_guest_stats },
  { FRAKTI__AGENT__V1__REQUEST__CALL_ONLINE_HOTPLUGGED, "online_hotplugged", call_online_hotplugged },
  { FRAKTI__AGENT__V1__REQUEST__CALL_PORT_FORWARD, "port_forward", call_port_forward },
  { FRAKTI__AGENT__V1__REQUEST__CALL_LIST_CONTAINERS, "list_containers", call_list_containers },
};

size_t
dispatch_request (struct agent *agent, const uint8_t *payload, size_t len, uint8_t **out)
{
  Request *req = frakti__agent__v1__request__unpack (NULL, len, payload);
  size_t n;

  if (req == NULL)
    return error_response (EBADMSG, "undecodable request", out);
  for (size_t i = 0; i < ARRAY_SIZE (calls); i++)
    if (calls[i].call == req->call_case)
      {
        n = calls[i].fn (agent, req, out);
        frakti__agent__v1__request__free_unpacked (req, NULL);
        return n;
      }
  frakti__agent__v1__request__free_unpacked (req, NULL);
  return error_response (ENOSYS, "unknown call", out);
}
