#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
agent_error_set (struct agent_error *err, int errnum, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (err->message, sizeof (err->message), fmt, ap);
  va_end (ap);
  if (n < 0)
    err->message[0] = '\0';
  if (errnum != 0)
    {
      size_t len = strlen (err->message);
      snprintf (err->message + len, sizeof (err->message) - len, ": %s", strerror (errnum));
    }
  err->errnum = errnum;
  return -1;
}

int
agent_error_wrap (struct agent_error *err, const char *fmt, ...)
{
  char prefix[AGENT_ERROR_MESSAGE_BYTES];
  size_t plen, mlen;
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (prefix, sizeof (prefix) - 2, fmt, ap);
  va_end (ap);
  if (n < 0)
    return -1;
  /* "prefix: message", cut to the buffer: move the message right, then copy the prefix in. */
  plen = strlen (prefix);
  memcpy (prefix + plen, ": ", 3);
  plen += 2;
  mlen = strnlen (err->message, sizeof (err->message) - 1);
  if (plen + mlen >= sizeof (err->message))
    mlen = sizeof (err->message) - 1 - plen;
  memmove (err->message + plen, err->message, mlen);
  memcpy (err->message, prefix, plen);
  err->message[plen + mlen] = '\0';
  return -1;
}

void
agent_error_clear (struct agent_error *err)
{
  err->errnum = 0;
  err->message[0] = '\0';
}

void
agent_error_log (struct agent_error *err)
{
  agent_log ("%s", err->message);
  agent_error_clear (err);
}

void
agent_log (const char *fmt, ...)
{
  char line[AGENT_ERROR_MESSAGE_BYTES + 64];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (line, sizeof (line), fmt, ap);
  va_end (ap);
  fprintf (stderr, "frakti-agent: %s\n", line);
}
