/*
 * net/log.c - cluckd's log sink (see net/log.h).
 *
 * It must never write under the FUSE mount, allocate, or change errno as
 * seen by its caller.
 */
#include "config.h"

#include "net/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static int use_syslog;
static enum log_level max_level = LOG_LV_INFO;
static char prefix[128] = "cluckd";

/* Chooses stderr or syslog (see log.h). */
void log_init(int to_syslog)
{
	if (to_syslog && !use_syslog)
		openlog("cluckd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!to_syslog && use_syslog)
		closelog();
	use_syslog = !!to_syslog;
}

/* Sets the stderr prefix (see log.h). */
void log_set_prefix(const char *p)
{
	snprintf(prefix, sizeof(prefix), "%s", p ? p : "cluckd");
}

/* Sets the most verbose level logged. */
void log_set_level(enum log_level max)
{
	max_level = max;
}

/* Logs one line (see log.h). */
void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error: ", "warning: ", "", "debug: " };
	int saved = errno;
	char line[1024];
	va_list ap;

	if (level > max_level || level < LOG_LV_ERR)
		goto restore_errno;
	va_start(ap, fmt);
	errno = saved;          /* for %m */
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (use_syslog)
		/* syslog adds "cluckd[pid]: "; keep the node name after it. */
		syslog(prio[level], "%s%s%s%s",
		       strncmp(prefix, "cluckd ", 7) ? "" : prefix + 7,
		       strncmp(prefix, "cluckd ", 7) ? "" : ": ", tag[level], line);
	else
		fprintf(stderr, "%s: %s%s\n", prefix, tag[level], line);
restore_errno:
	errno = saved;
}
