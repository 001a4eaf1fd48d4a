/*
 * daemon/options.h - cluckd's command line and configuration file (SPEC 4.1).
 *
 * Parses and fully validates everything before anything is started, so a
 * bad option is one line on stderr and exit status 2.  It must never start,
 * mount or open anything beyond reading the config and key files.
 */
#ifndef CLUCK_OPTIONS_H
#define CLUCK_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define OPT_NAME_MAX     63u
#define OPT_DEFAULT_PORT 7470u
#define OPT_DEFAULT_CLIENT_PORT 7471u
#define OPT_DEFAULT_CONFIG "/etc/cluck/cluckd.conf"
/* Limits (cluckd(8) "Limits"): far above what a lock directory needs,
 * far below what fills a disk or the daemon's memory. */
#define OPT_DEFAULT_MAX_FILES          UINT64_C(1000000)
#define OPT_DEFAULT_MAX_BYTES          (UINT64_C(1) << 30)
#define OPT_DEFAULT_MAX_FILES_PER_USER UINT64_C(10000)
#define OPT_DEFAULT_MAX_BYTES_PER_USER (UINT64_C(64) << 20)
#define OPT_DEFAULT_ROOT_RESERVE       5u

/* HOST[:PORT]; host is an IPv4 address, an IPv6 address (given in
 * brackets, stored without) or a DNS name. */
struct opt_addr {
	char host[256];
	uint16_t port;
};

struct opt_voter {
	char name[OPT_NAME_MAX + 1];
	struct opt_addr addr;
};

struct options {
	int foreground;
	char name[OPT_NAME_MAX + 1];
	struct opt_voter *voters;       /* --cluster, nvoters entries (0: alone) */
	size_t nvoters;
	int have_listen;
	struct opt_addr listen;
	char *data_dir;                 /* default /var/lib/cluck/NAME */
	char *key_file;                 /* NULL: none */
	int insecure;
	int have_client_listen;
	struct opt_addr client_listen;
	uint64_t lease_ms;              /* default 10 s */
	uint64_t op_timeout_ms;         /* default 5 s */
	uint32_t lockfile_ttl_s;        /* default 0; decimals round up */
	int on_lost_signal;             /* default SIGTERM; 0 = none */
	uint64_t stop_timeout_ms;       /* default 10 s; 0: signal holders at once */
	uint64_t accept_cut;            /* --accept-loss INDEX, 0: none */
	int accept_state;               /* --accept-loss state */
	int rejoin;                     /* --rejoin */
	uint64_t max_files, max_bytes;  /* --max-files, --max-bytes; 0 = none */
	uint64_t max_files_per_user;    /* --max-files-per-user; 0 = none */
	uint64_t max_bytes_per_user;    /* --max-bytes-per-user; 0 = none */
	uint32_t root_reserve_pct;      /* --root-reserve: share only root may use */
	char *config_file;              /* the file read, or NULL */
	char **fuse_opts;               /* -o values, in order (file first) */
	size_t nfuse_opts;
	char *mountpoint;
};

/*
 * Parses argv (and the configuration file) into *o.  Returns 0 when cluckd
 * should run, 1 when it printed --help or --version (exit 0), 2 after
 * printing the one-line error "cluckd: ..." to stderr (exit 2).  Call
 * options_free() in every case.
 */
int options_parse(struct options *o, int argc, char **argv);
void options_free(struct options *o);

/* 1 when this node talks to others (see cluckd(8)): then it needs a key
 * or --insecure, and it listens on the peer port. */
int options_networked(const struct options *o);

/* Validates a node name: 1..63 of [A-Za-z0-9._-].  1 if valid, else 0. */
int options_name_ok(const char *name);

#endif /* CLUCK_OPTIONS_H */
