/* Shared by the files that implement calls (dispatch.c owns the table). */
#ifndef FRAKTI_CALLS_H
#define FRAKTI_CALLS_H

#include "agent.h"

typedef Frakti__Agent__V1__Request Request;
typedef Frakti__Agent__V1__Response Response;

size_t pack_response (const Response *resp, uint8_t **out);
size_t error_response (int errnum, const char *message, uint8_t **out);
size_t agent_error_response (struct agent_error *err, uint8_t **out);
/* A result whose message has no fields: msg is its ..._INIT value. */
size_t empty_response (Frakti__Agent__V1__Response__ResultCase which, void *msg, uint8_t **out);

/* container.c */
size_t call_create_container (struct agent *agent, const Request *req, uint8_t **out);
size_t call_start_container (struct agent *agent, const Request *req, uint8_t **out);
size_t call_exec (struct agent *agent, const Request *req, uint8_t **out);
size_t call_signal (struct agent *agent, const Request *req, uint8_t **out);
size_t call_wait (struct agent *agent, const Request *req, uint8_t **out);
size_t call_resize_tty (struct agent *agent, const Request *req, uint8_t **out);
size_t call_attach_io (struct agent *agent, const Request *req, uint8_t **out);
size_t call_remove_container (struct agent *agent, const Request *req, uint8_t **out);
size_t call_update_resources (struct agent *agent, const Request *req, uint8_t **out);
size_t call_container_stats (struct agent *agent, const Request *req, uint8_t **out);
size_t call_list_containers (struct agent *agent, const Request *req, uint8_t **out);

/* guest.c */
size_t call_setup_sandbox (struct agent *agent, const Request *req, uint8_t **out);
size_t call_guest_stats (struct agent *agent, const Request *req, uint8_t **out);
size_t call_online_hotplugged (struct agent *agent, const Request *req, uint8_t **out);
size_t call_port_forward (struct agent *agent, const Request *req, uint8_t **out);

/* netlink.c */
size_t call_configure_network (struct agent *agent, const Request *req, uint8_t **out);
/* Brings the loopback interface up (port forwards dial 127.0.0.1). */
int netlink_loopback_up (struct agent_error *err);

#endif
