/* The agent's error convention (after crun's): a function that fails
 * returns a negative value and fills an agent_error with the errno and a
 * message naming the operation and the object ("mount `/proc`: ..."). Callers
 * add context on the way up with agent_error_wrap. */
#ifndef FRAKTI_ERROR_H
#define FRAKTI_ERROR_H

#include <stddef.h>

#define AGENT_ERROR_MESSAGE_BYTES 512

struct agent_error
{
  int errnum;
  char message[AGENT_ERROR_MESSAGE_BYTES];
};

/* Sets err (errnum may be 0) and returns -1. The message gets ": strerror" appended when errnum != 0. */
int agent_error_set (struct agent_error *err, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Prefixes err's message with "context: "; returns -1. */
int agent_error_wrap (struct agent_error *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Prints "frakti-agent: <message>" on stderr and clears err. */
void agent_error_log (struct agent_error *err);

void agent_error_clear (struct agent_error *err);

/* One line on stderr, prefixed with the program name. */
void agent_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

#endif
