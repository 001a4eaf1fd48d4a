/*
 * daemon/options_i.h - what daemon/options.c (the option table, the
 * value parsers, the command line, the cross-checks) and daemon/config.c
 * (the configuration file's syntax) share; the rest of cluckd sees
 * daemon/options.h only.
 *
 * It must never: be included outside daemon/options.c and daemon/config.c,
 * declare what one of them alone uses, or give the file a second way to
 * set an option (set_opt() is the one setter for both).
 */
#ifndef CLUCK_OPTIONS_I_H
#define CLUCK_OPTIONS_I_H

#include <stddef.h>

#include "daemon/options.h"

enum opt_id {
	O_FOREGROUND, O_NAME, O_CLUSTER, O_LISTEN, O_DATA_DIR, O_KEY_FILE,
	O_INSECURE, O_CLIENT_LISTEN, O_LEASE, O_OP_TIMEOUT, O_LOCKFILE_TTL,
	O_ON_LOST, O_STOP_TIMEOUT, O_CONFIG, O_FUSE, O_HELP, O_VERSION, O_ACCEPT_LOSS,
	O_REJOIN, O_MAX_FILES, O_MAX_BYTES, O_MAX_FILES_PER_USER, O_MAX_BYTES_PER_USER,
	O_ROOT_RESERVE, O__COUNT
};

/* One row per option (options.c): its config key, whether it takes a
 * value, whether a configuration file may set it. */
struct optinfo {
	const char *key;
	int has_arg;
	int in_config;
};
extern const struct optinfo optinfo[O__COUNT];

/* ---- options.c ---------------------------------------------------------- */

const char *shown(const char *s, char *buf, size_t len);
int set_opt(struct options *o, enum opt_id id, const char *v, char *err,
	    size_t errlen);

/* ---- config.c ----------------------------------------------------------- */

int read_config(struct options *o, const char *path, const int *cl_set);

#endif /* CLUCK_OPTIONS_I_H */
