/* What a container process does between fork and execve, in the child. */
#ifndef FRAKTI_CHILD_H
#define FRAKTI_CHILD_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"

/* Sent by the child over the report pipe: errnum 0 = set up (create) or,
 * for exec, nothing comes at all (the pipe closes on execve). */
struct child_report
{
  int32_t errnum;
  char message[AGENT_ERROR_MESSAGE_BYTES];
};

struct child_ctx
{
  const char *id;
  const char *cgroup; /* the container's cgroup name: its id, or the spare's it took */
  const Frakti__Agent__V1__ContainerSpec *spec;
  const Frakti__Agent__V1__ProcessSpec *exec; /* NULL for the container's init */
  int stdio[3];
  int report_fd;
  int start_fd;  /* init: read end of the start pipe */
  int ns_fds[3]; /* exec: mnt, uts, ipc of the container */
  bool terminal;
};

void child_run (struct child_ctx *ctx) __attribute__ ((noreturn));
/* A spare (spare.c), in the child of the fork: execs the agent as
 * `frakti-spare --spare CGROUP [--devices]`, its pipes and control socket on
 * fds 3, 4 and 5, so that it shares no memory with the agent (whose every
 * write would otherwise copy a page while the spare waits). */
void child_exec_spare (const char *cgroup, int ctl, int start_fd, int report_fd) __attribute__ ((noreturn));
/* The spare after the exec: joins `cgroup`, waits for the spec and stdio of
 * the container it becomes, and goes on as an init does. */
int child_run_spare (const char *cgroup, bool devices) __attribute__ ((noreturn));
/* Maps "CAP_SYS_ADMIN" to its number; -1 if unknown. */
int capability_number (const char *name);
/* Maps "SIGTERM" to its number; 0 if unknown. */
int signal_number (const char *name);
const char *signal_name (int sig);

#endif
