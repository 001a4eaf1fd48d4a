/*
 * net/log.h - cluckd's log: stderr in the foreground, syslog as a daemon.
 *
 * One line per message, no trailing newline needed.  Safe to call before
 * log_init() (it then writes to stderr).  It must never write to the FUSE
 * mount or block on anything but the log sink itself.
 */
#ifndef CLUCK_LOG_H
#define CLUCK_LOG_H

enum log_level {
	LOG_LV_ERR = 0,
	LOG_LV_WARN,
	LOG_LV_INFO,
	LOG_LV_DEBUG,
};

/* Foreground: lines go to stderr as "PREFIX: message"; the prefix starts
 * as "cluckd".  Daemon (to_syslog != 0): openlog("cluckd", LOG_PID,
 * LOG_DAEMON) and messages go to syslog at the matching priority. */
void log_init(int to_syslog);

/* Changes the stderr prefix, e.g. to "cluckd NAME" once the name is known
 * (copied; truncated to 127 bytes). */
void log_set_prefix(const char *prefix);

/* Messages above `max` (LOG_LV_*) are dropped; the default is LOG_LV_INFO. */
void log_set_level(enum log_level max);

/* Logs one message.  Preserves errno, so "%m" and later checks work. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_LV_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LV_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LV_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LV_DEBUG, __VA_ARGS__)

#endif /* CLUCK_LOG_H */
