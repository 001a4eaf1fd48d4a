/*
 * daemon/options.c - cluckd's command line and configuration file (SPEC 4.1):
 * the option table, the value parsers, the command line, the cross-checks.
 * The configuration file's syntax is read by daemon/config.c.
 *
 * Every option is validated here, from the command line and from the
 * configuration file alike (one setter per option, so both accept exactly
 * the same values), then the cross-checks run (a cluster needs a key, key file).
 * Any error is ONE line on stderr, "cluckd: ...", and exit status 2.
 *
 * It must never: print more than one line for an error, mount, bind or
 * start anything, or keep the key's secret in memory (it only checks it).
 */
#include "config.h"

#include "daemon/options_i.h"
#include "proto/seal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Config keys are the long option names; -o has none on the command line,
 * so its key is "o" (or "options"). */
const struct optinfo optinfo[O__COUNT] = {
	[O_FOREGROUND]    = { "foreground", 0, 1 },
	[O_NAME]          = { "name", 1, 1 },
	[O_CLUSTER]       = { "cluster", 1, 1 },
	[O_LISTEN]        = { "listen", 1, 1 },
	[O_DATA_DIR]      = { "data-dir", 1, 1 },
	[O_KEY_FILE]      = { "key-file", 1, 1 },
	[O_INSECURE]      = { "insecure", 0, 1 },
	[O_CLIENT_LISTEN] = { "client-listen", 1, 1 },
	[O_LEASE]         = { "lease", 1, 1 },
	[O_OP_TIMEOUT]    = { "op-timeout", 1, 1 },
	[O_LOCKFILE_TTL]  = { "lockfile-ttl", 1, 1 },
	[O_ON_LOST]       = { "on-lost", 1, 1 },
	[O_STOP_TIMEOUT]  = { "stop-timeout", 1, 1 },
	[O_CONFIG]        = { "config", 1, 0 },
	[O_FUSE]          = { "o", 1, 1 },
	[O_HELP]          = { "help", 0, 0 },
	[O_VERSION]       = { "version", 0, 0 },
	/* Never from a file: an acceptance left there would accept the
	 * next, different damage without anyone reading about it. */
	[O_ACCEPT_LOSS]   = { "accept-loss", 1, 0 },
	/* Nor this: voters that all wait to catch up elect nobody. */
	[O_REJOIN]        = { "rejoin", 0, 0 },
	[O_MAX_FILES]          = { "max-files", 1, 1 },
	[O_MAX_BYTES]          = { "max-bytes", 1, 1 },
	[O_MAX_FILES_PER_USER] = { "max-files-per-user", 1, 1 },
	[O_MAX_BYTES_PER_USER] = { "max-bytes-per-user", 1, 1 },
	[O_ROOT_RESERVE]       = { "root-reserve", 1, 1 },
};

#define SHORTOPTS ":fn:C:l:D:k:c:o:hV"
#define LONG_BASE 0x100

static const struct option longopts[] = {
	{ "foreground",    no_argument,       NULL, 'f' },
	{ "name",          required_argument, NULL, 'n' },
	{ "cluster",       required_argument, NULL, 'C' },
	{ "listen",        required_argument, NULL, 'l' },
	{ "data-dir",      required_argument, NULL, 'D' },
	{ "key-file",      required_argument, NULL, 'k' },
	{ "insecure",      no_argument,       NULL, LONG_BASE + O_INSECURE },
	{ "client-listen", required_argument, NULL, LONG_BASE + O_CLIENT_LISTEN },
	{ "lease",         required_argument, NULL, LONG_BASE + O_LEASE },
	{ "op-timeout",    required_argument, NULL, LONG_BASE + O_OP_TIMEOUT },
	{ "lockfile-ttl",  required_argument, NULL, LONG_BASE + O_LOCKFILE_TTL },
	{ "on-lost",       required_argument, NULL, LONG_BASE + O_ON_LOST },
	{ "stop-timeout",  required_argument, NULL, LONG_BASE + O_STOP_TIMEOUT },
	{ "accept-loss",   required_argument, NULL, LONG_BASE + O_ACCEPT_LOSS },
	{ "rejoin",        no_argument,       NULL, LONG_BASE + O_REJOIN },
	{ "config",        required_argument, NULL, 'c' },
	{ "help",          no_argument,       NULL, 'h' },
	{ "version",       no_argument,       NULL, 'V' },
	{ "max-files",          required_argument, NULL, LONG_BASE + O_MAX_FILES },
	{ "max-bytes",          required_argument, NULL, LONG_BASE + O_MAX_BYTES },
	{ "max-files-per-user", required_argument, NULL, LONG_BASE + O_MAX_FILES_PER_USER },
	{ "max-bytes-per-user", required_argument, NULL, LONG_BASE + O_MAX_BYTES_PER_USER },
	{ "root-reserve",       required_argument, NULL, LONG_BASE + O_ROOT_RESERVE },
	{ NULL, 0, NULL, 0 }
};

#define MAX_VOTERS 7u             /* RF_MAX_VOTERS: the others join as members */
#define LEASE_MAX_S 3600u
#define OP_TIMEOUT_MAX_S 3600u
#define TTL_MAX_S (366u * 24u * 3600u)
#define STOP_TIMEOUT_MAX_S 3600u
#define NS_PER_S 1000000000ull
#define LIMIT_MAX (UINT64_C(1) << 50)    /* far beyond any real use */
#define RESERVE_MAX_PCT 50u

static const char usage_text[] =
"Usage: cluckd [OPTIONS] MOUNTPOINT\n"
"Serve the cluster-wide lock filesystem cluckfs on MOUNTPOINT.\n"
"\n"
"  -f, --foreground          stay in the foreground, log to stderr\n"
"  -n, --name NAME           this node's name (default: short hostname)\n"
"  -C, --cluster LIST        voters: NAME=HOST[:PORT],...  (same list on every\n"
"                            node; default: this node alone, no network)\n"
"  -l, --listen HOST[:PORT]  peer address (default: our entry in --cluster;\n"
"                            port 7470)\n"
"  -D, --data-dir DIR        durable state (default /var/lib/cluck/NAME)\n"
"  -k, --key-file FILE       cluster secret; required for a cluster of more\n"
"                            than one node unless --insecure\n"
"      --insecure            allow a multi-node cluster without a key\n"
"      --client-listen HOST[:PORT]\n"
"                            endpoint for remote cluck/libcluck clients\n"
"      --lease SECS          node session lease (default 10)\n"
"      --op-timeout SECS     how long a request may wait for the cluster\n"
"                            before it fails (default 5)\n"
"      --lockfile-ttl SECS   default time to live of O_EXCL files\n"
"                            (default 0: none)\n"
"      --on-lost SIGNAL|none\n"
"                            signal for holders whose lock is lost when the\n"
"                            session ends (default TERM)\n"
"      --stop-timeout SECS   on SIGTERM, how long holders may keep their\n"
"                            locks before they get that signal (default 10)\n"
"      --accept-loss INDEX|state\n"
"                            start once accepting the loss a refused start\n"
"                            named (see cluckd(8))\n"
"      --rejoin              a voter restarted on a lost log: no vote until\n"
"                            it caught up with the leader\n"
"      --max-files N         files and directories in all (default 1000000)\n"
"      --max-bytes SIZE      bytes of content in all (default 1G)\n"
"      --max-files-per-user N\n"
"                            files one uid may own (default 10000)\n"
"      --max-bytes-per-user SIZE\n"
"                            bytes of content one uid may own (default 64M)\n"
"      --root-reserve PERCENT\n"
"                            share of the totals only root may use\n"
"                            (default 5); 0 for a limit means none\n"
"  -c, --config FILE         same keys as the long options (default\n"
"                            " OPT_DEFAULT_CONFIG " when it exists)\n"
"  -o OPTIONS                extra FUSE mount options\n"
"  -h, --help                print this help and exit\n"
"  -V, --version             print the version and exit\n"
"\n"
"See cluckd(8) and cluckfs(5).\n";

/* ---- error reporting ------------------------------------------------------ */

/* Formats the reason of a bad value into err (the caller adds where). */
static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Makes a value printable on one line: control bytes would break the
 * "one line on stderr" promise. */
const char *shown(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = '\0';
	if (s[i] && len > 4)
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

/* ---- value parsers ------------------------------------------------------ */

/* Validates a node name (see options.h). */
int options_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > OPT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return 0;
	return 1;
}

/* Seconds with optional decimals ("10", "0.5"): no sign, no exponent.
 * Stores ns, saturating harmlessly above any bound we accept. */
static int parse_secs(const char *s, uint64_t *ns)
{
	uint64_t whole = 0, frac = 0, scale = NS_PER_S;
	int digits = 0;
	const char *p = s;

	for (; isdigit((unsigned char)*p); p++, digits++)
		if (whole < 100000000000ull)
			whole = whole * 10 + (uint64_t)(*p - '0');
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++) {
			scale /= 10;
			frac += (uint64_t)(*p - '0') * scale;
			/* Beyond ns precision a non-zero digit still means > 0. */
			if (scale == 0 && *p != '0' && frac == 0)
				frac = 1;
		}
	}
	if (!digits || *p)
		return -1;
	*ns = whole * NS_PER_S + frac;
	return 0;
}

static int set_secs(const char *opt, const char *v, int allow_zero,
		    uint64_t max_s, uint64_t *ns, char *err, size_t errlen)
{
	char b[80];

	if (parse_secs(v, ns) < 0 || (!allow_zero && *ns == 0) ||
	    *ns > max_s * NS_PER_S)
		return fail(err, errlen,
			    "bad %s value '%s': expected seconds %s 0 and at most %llu",
			    opt, shown(v, b, sizeof(b)), allow_zero ? ">=" : ">",
			    (unsigned long long)max_s);
	return 0;
}

/* set_secs, kept in whole milliseconds rounded up (never shortened). */
static int set_ms(const char *opt, const char *v, int allow_zero,
		  uint64_t max_s, uint64_t *ms, char *err, size_t errlen)
{
	uint64_t ns;

	if (set_secs(opt, v, allow_zero, max_s, &ns, err, errlen) < 0)
		return -1;
	*ms = (ns + 999999u) / 1000000u;
	return 0;
}

static int valid_dns_name(const char *h)
{
	size_t len = strlen(h), label = 0;

	if (len < 1 || len > 253)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = h[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || h[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-')
			return 0;
		if (label == 0 && c == '-')
			return 0;
		label++;
	}
	return 1;
}

/* HOST[:PORT] with HOST an IPv4 address, [IPv6] or a DNS name. */
static int parse_addr(const char *what, const char *v, uint16_t defport,
		      struct opt_addr *a, char *err, size_t errlen)
{
	char b[300], host[sizeof(a->host)];
	const char *port = NULL;
	size_t hl;

	shown(v, b, sizeof(b));
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		unsigned char tmp[16];

		if (!close)
			return fail(err, errlen, "bad %s '%s': missing ']'", what, b);
		hl = (size_t)(close - v - 1);
		if (hl == 0 || hl >= sizeof(host))
			return fail(err, errlen, "bad %s '%s': empty or too long address", what, b);
		memcpy(host, v + 1, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET6, host, tmp) != 1)
			return fail(err, errlen, "bad %s '%s': '%s' is not an IPv6 address",
				    what, b, host);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return fail(err, errlen, "bad %s '%s': junk after ']'", what, b);
	} else {
		const char *colon = strchr(v, ':');
		unsigned char tmp[4];

		if (colon && strchr(colon + 1, ':'))
			return fail(err, errlen,
				    "bad %s '%s': put an IPv6 address in brackets, e.g. [::1]:%u",
				    what, b, (unsigned)defport);
		hl = colon ? (size_t)(colon - v) : strlen(v);
		if (hl == 0)
			return fail(err, errlen, "bad %s '%s': missing host", what, b);
		if (hl >= sizeof(host) || hl > 253)
			return fail(err, errlen, "bad %s '%s': host name too long", what, b);
		memcpy(host, v, hl);
		host[hl] = '\0';
		if (strspn(host, "0123456789.") == hl) {
			if (inet_pton(AF_INET, host, tmp) != 1)
				return fail(err, errlen, "bad %s '%s': '%s' is not an IPv4 address",
					    what, b, host);
		} else if (!valid_dns_name(host)) {
			return fail(err, errlen, "bad %s '%s': '%s' is not a valid host name",
				    what, b, host);
		}
		if (colon)
			port = colon + 1;
	}
	a->port = defport;
	if (port) {
		unsigned long p = 0;
		size_t nd = strspn(port, "0123456789");

		if (nd == 0 || nd > 5 || port[nd] != '\0' ||
		    (p = strtoul(port, NULL, 10)) == 0 || p > 65535)
			return fail(err, errlen, "bad %s '%s': port must be 1 to 65535", what, b);
		a->port = (uint16_t)p;
	}
	memcpy(a->host, host, strlen(host) + 1);
	return 0;
}

static int parse_cluster(struct options *o, const char *v, char *err, size_t errlen)
{
	struct opt_voter *vv = NULL;
	size_t n = 0;
	char b[80];
	const char *p = v;

	if (!*v)
		return fail(err, errlen, "bad --cluster: empty list");
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char entry[400], *eq;
		struct opt_voter *nv;

		if (len == 0 || len >= sizeof(entry)) {
			fail(err, errlen, "bad --cluster '%s': %s entry", shown(v, b, sizeof(b)),
			     len ? "overlong" : "empty");
			goto free_voters;
		}
		memcpy(entry, p, len);
		entry[len] = '\0';
		eq = strchr(entry, '=');
		if (!eq) {
			fail(err, errlen, "bad --cluster entry '%s': expected NAME=HOST[:PORT]",
			     shown(entry, b, sizeof(b)));
			goto free_voters;
		}
		*eq = '\0';
		if (!options_name_ok(entry)) {
			fail(err, errlen,
			     "bad --cluster entry: node name '%s' must be 1 to 63 letters, digits, '.', '_' or '-'",
			     shown(entry, b, sizeof(b)));
			goto free_voters;
		}
		if (n == MAX_VOTERS) {
			fail(err, errlen, "bad --cluster: more than %u voters (run the others as members)", MAX_VOTERS);
			goto free_voters;
		}
		nv = realloc(vv, (n + 1) * sizeof(*vv));
		if (!nv) {
			fail(err, errlen, "out of memory");
			goto free_voters;
		}
		vv = nv;
		memset(&vv[n], 0, sizeof(vv[n]));
		memcpy(vv[n].name, entry, strlen(entry) + 1);   /* checked: <= 63 */
		if (parse_addr("--cluster address", eq + 1, OPT_DEFAULT_PORT, &vv[n].addr,
			       err, errlen) < 0)
			goto free_voters;
		for (size_t i = 0; i < n; i++) {
			if (!strcmp(vv[i].name, vv[n].name)) {
				fail(err, errlen, "bad --cluster: node '%s' is listed twice",
				     vv[n].name);
				goto free_voters;
			}
			if (!strcasecmp(vv[i].addr.host, vv[n].addr.host) &&
			    vv[i].addr.port == vv[n].addr.port) {
				fail(err, errlen, "bad --cluster: nodes '%s' and '%s' have the same address",
				     vv[i].name, vv[n].name);
				goto free_voters;
			}
		}
		n++;
		if (!end)
			break;
		p = end + 1;
	}
	free(o->voters);
	o->voters = vv;
	o->nvoters = n;
	return 0;

free_voters:
	free(vv);
	return -1;
}

static int parse_signal(const char *v, int *sig)
{
	const char *s = v;
	char *end;

	if (!strcasecmp(v, "none")) {
		*sig = 0;
		return 0;
	}
	if (isdigit((unsigned char)v[0])) {
		long n;

		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || *end || n < 1 || n >= NSIG)
			return -1;
		*sig = (int)n;
		return 0;
	}
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev && !strcasecmp(abbrev, s)) {
			*sig = i;
			return 0;
		}
	}
	return -1;
}

/* A count or a size for a limit: decimal digits, for a size optionally
 * followed by K, M or G (powers of 1024); 0 means no limit. */
static int set_limit(const char *opt, const char *v, int size, uint64_t *out,
		     char *err, size_t errlen)
{
	char b[80], *end;
	unsigned long long n;
	uint64_t mul = 1;

	if (!isdigit((unsigned char)v[0]))
		goto bad;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno)
		goto bad;
	if (size && *end && !end[1]) {
		switch (*end) {
		case 'k': case 'K': mul = UINT64_C(1) << 10; end++; break;
		case 'm': case 'M': mul = UINT64_C(1) << 20; end++; break;
		case 'g': case 'G': mul = UINT64_C(1) << 30; end++; break;
		default: break;
		}
	}
	if (*end || n > LIMIT_MAX / mul)
		goto bad;
	*out = (uint64_t)n * mul;
	return 0;
bad:
	return fail(err, errlen, "bad %s value '%s': expected %s (0 for no limit)",
		    opt, shown(v, b, sizeof(b)),
		    size ? "a size such as 65536, 64K, 64M or 1G" : "a whole number");
}

/* Sets a string field, replacing an earlier value. */
static int set_str(char **field, const char *what, const char *v, char *err,
		   size_t errlen)
{
	char *c;

	if (!*v)
		return fail(err, errlen, "%s must not be empty", what);
	c = strdup(v);
	if (!c)
		return fail(err, errlen, "out of memory");
	free(*field);
	*field = c;
	return 0;
}

/* A path kept absolute: cluckd works from / once started. */
static int set_path(char **field, const char *what, const char *v, char *err,
		    size_t errlen)
{
	char cwd[PATH_MAX], *c;

	if (!*v || v[0] == '/')
		return set_str(field, what, v, err, errlen);
	if (!getcwd(cwd, sizeof(cwd)))
		return fail(err, errlen, "%s '%s': cannot find the current directory: %s",
			    what, v, strerror(errno));
	if (asprintf(&c, "%s/%s", strcmp(cwd, "/") ? cwd : "", v) < 0)
		return fail(err, errlen, "out of memory");
	free(*field);
	*field = c;
	return 0;
}

static int parse_bool(const char *v, int *b)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };

	for (int i = 0; yes[i]; i++)
		if (!strcasecmp(v, yes[i]))
			return *b = 1, 0;
	for (int i = 0; no[i]; i++)
		if (!strcasecmp(v, no[i]))
			return *b = 0, 0;
	return -1;
}

/* The one setter per option, shared by the command line (flags get v =
 * NULL) and the configuration file (flags get yes/no). */
int set_opt(struct options *o, enum opt_id id, const char *v, char *err,
	    size_t errlen)
{
	char b[80];
	uint64_t ns;

	switch (id) {
	case O_FOREGROUND:
	case O_INSECURE: {
		int val = 1;

		if (v && parse_bool(v, &val) < 0)
			return fail(err, errlen, "bad %s value '%s': expected yes or no",
				    optinfo[id].key, shown(v, b, sizeof(b)));
		if (id == O_FOREGROUND)
			o->foreground = val;
		else
			o->insecure = val;
		return 0;
	}
	case O_NAME:
		if (!options_name_ok(v))
			return fail(err, errlen,
				    "bad node name '%s': use 1 to 63 letters, digits, '.', '_' or '-'",
				    shown(v, b, sizeof(b)));
		memcpy(o->name, v, strlen(v) + 1);      /* checked: <= 63 */
		return 0;
	case O_CLUSTER:
		return parse_cluster(o, v, err, errlen);
	case O_LISTEN:
		if (parse_addr("--listen address", v, OPT_DEFAULT_PORT, &o->listen, err,
			       errlen) < 0)
			return -1;
		o->have_listen = 1;
		return 0;
	case O_CLIENT_LISTEN:
		if (parse_addr("--client-listen address", v, OPT_DEFAULT_CLIENT_PORT,
			       &o->client_listen, err, errlen) < 0)
			return -1;
		o->have_client_listen = 1;
		return 0;
	case O_DATA_DIR:
		return set_path(&o->data_dir, "--data-dir", v, err, errlen);
	case O_KEY_FILE:
		return set_path(&o->key_file, "--key-file", v, err, errlen);
	case O_LEASE:
		return set_ms("--lease", v, 0, LEASE_MAX_S, &o->lease_ms, err, errlen);
	case O_OP_TIMEOUT:
		return set_ms("--op-timeout", v, 0, OP_TIMEOUT_MAX_S, &o->op_timeout_ms, err, errlen);
	case O_LOCKFILE_TTL:
		if (set_secs("--lockfile-ttl", v, 1, TTL_MAX_S, &ns, err, errlen) < 0)
			return -1;
		/* lockcore keeps whole seconds; never shorten a ttl. */
		o->lockfile_ttl_s = (uint32_t)((ns + NS_PER_S - 1) / NS_PER_S);
		return 0;
	case O_ON_LOST:
		if (parse_signal(v, &o->on_lost_signal) < 0)
			return fail(err, errlen,
				    "bad --on-lost value '%s': expected a signal (TERM, SIGKILL, 15...) or none",
				    shown(v, b, sizeof(b)));
		return 0;
	case O_STOP_TIMEOUT:
		return set_ms("--stop-timeout", v, 1, STOP_TIMEOUT_MAX_S, &o->stop_timeout_ms, err, errlen);
	case O_REJOIN:
		o->rejoin = 1;
		return 0;
	case O_ACCEPT_LOSS: {
		char *end;

		if (!strcmp(v, "state")) {
			o->accept_state = 1;
			return 0;
		}
		errno = 0;
		o->accept_cut = strtoull(v, &end, 10);
		/* digits only: strtoull() skips blanks and negates a '-' */
		if (errno || !isdigit((unsigned char)v[0]) || *end || !o->accept_cut)
			return fail(err, errlen,
				    "bad --accept-loss value '%s': expected the index a refused start named, or state",
				    shown(v, b, sizeof(b)));
		return 0;
	}
	case O_FUSE: {
		char **nv;

		if (!*v)
			return fail(err, errlen, "-o needs a non-empty list of FUSE options");
		nv = realloc(o->fuse_opts, (o->nfuse_opts + 1) * sizeof(*nv));
		if (!nv)
			return fail(err, errlen, "out of memory");
		o->fuse_opts = nv;
		nv[o->nfuse_opts] = strdup(v);
		if (!nv[o->nfuse_opts])
			return fail(err, errlen, "out of memory");
		o->nfuse_opts++;
		return 0;
	}
	case O_MAX_FILES:
		return set_limit("--max-files", v, 0, &o->max_files, err, errlen);
	case O_MAX_BYTES:
		return set_limit("--max-bytes", v, 1, &o->max_bytes, err, errlen);
	case O_MAX_FILES_PER_USER:
		return set_limit("--max-files-per-user", v, 0, &o->max_files_per_user,
				 err, errlen);
	case O_MAX_BYTES_PER_USER:
		return set_limit("--max-bytes-per-user", v, 1, &o->max_bytes_per_user,
				 err, errlen);
	case O_ROOT_RESERVE: {
		uint64_t pct;
		char pv[32];
		size_t l = strlen(v);

		/* "5" or "5%" */
		if (l && l < sizeof(pv) && v[l - 1] == '%') {
			memcpy(pv, v, l - 1);
			pv[l - 1] = '\0';
			v = pv;
		}
		if (set_limit("--root-reserve", v, 0, &pct, err, errlen) < 0 ||
		    pct > RESERVE_MAX_PCT)
			return fail(err, errlen,
				    "bad --root-reserve value '%s': expected a percentage from 0 to %u",
				    shown(v, b, sizeof(b)), RESERVE_MAX_PCT);
		o->root_reserve_pct = (uint32_t)pct;
		return 0;
	}
	case O_CONFIG:
		return set_str(&o->config_file, "--config", v, err, errlen);
	case O_HELP:
	case O_VERSION:
	case O__COUNT:
		break;
	}
	return fail(err, errlen, "internal error: option %d", (int)id);
}

/* ---- cross-checks ----------------------------------------------------------- */

/* The key must be secret (ours or root's, no group/other access) and long
 * enough. */
static int check_key_file(const char *path)
{
	unsigned char buf[32];
	char why[160];
	size_t got = 0;
	int fd, rc = -1;

	/* O_NONBLOCK: a FIFO in its place must fail the check, not hang us */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "cluckd: key file %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* the rules peer_load_key() applies again to the descriptor it reads */
	switch (peer_key_fd_check(fd, why, sizeof(why))) {
	case 0:
		break;
	case -EACCES:
		fprintf(stderr, "cluckd: key file %s %s (chmod 600 %s)\n", path, why, path);
		goto close_fd;
	default:
		fprintf(stderr, "cluckd: key file %s %s\n", path, why);
		goto close_fd;
	}
	while (got < sizeof(buf)) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "cluckd: key file %s: %s\n", path, strerror(errno));
			goto wipe;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got < sizeof(buf)) {
		fprintf(stderr,
			"cluckd: key file %s is too short: %zu bytes, need at least 32 (head -c 32 /dev/urandom > %s)\n",
			path, got, path);
		goto wipe;
	}
	rc = 0;
wipe:
	explicit_bzero(buf, sizeof(buf));
close_fd:
	close(fd);
	return rc;
}

static int default_name(struct options *o)
{
	char host[HOST_NAME_MAX + 1], b[80];

	if (gethostname(host, sizeof(host)) != 0) {
		fprintf(stderr, "cluckd: cannot get the host name (%s); give one with --name\n",
			strerror(errno));
		return -1;
	}
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';
	if (!options_name_ok(host)) {
		fprintf(stderr,
			"cluckd: the host name '%s' is not a valid node name; give one with --name\n",
			shown(host, b, sizeof(b)));
		return -1;
	}
	memcpy(o->name, host, strlen(host) + 1);        /* checked: <= 63 */
	return 0;
}

/* ---- entry point ------------------------------------------------------------- */

static int id_of(int c)
{
	switch (c) {
	case 'f': return O_FOREGROUND;
	case 'n': return O_NAME;
	case 'C': return O_CLUSTER;
	case 'l': return O_LISTEN;
	case 'D': return O_DATA_DIR;
	case 'k': return O_KEY_FILE;
	case 'c': return O_CONFIG;
	case 'o': return O_FUSE;
	case 'h': return O_HELP;
	case 'V': return O_VERSION;
	default:
		if (c >= LONG_BASE && c < LONG_BASE + O__COUNT)
			return c - LONG_BASE;
		return -1;
	}
}

/* Parses the command line and config file (see options.h). */
int options_parse(struct options *o, int argc, char **argv)
{
	/* Command-line values, applied after the file so they win. */
	struct { int id; const char *v; } *cl = NULL;
	int cl_set[O__COUNT] = { 0 };
	size_t ncl = 0;
	char err[512], b[80];
	const char *config = NULL;
	int rc = 2, c;

	memset(o, 0, sizeof(*o));
	o->lease_ms = 10000;
	o->op_timeout_ms = 5000;
	o->on_lost_signal = SIGTERM;
	o->stop_timeout_ms = 10000;
	o->max_files = OPT_DEFAULT_MAX_FILES;
	o->max_bytes = OPT_DEFAULT_MAX_BYTES;
	o->max_files_per_user = OPT_DEFAULT_MAX_FILES_PER_USER;
	o->max_bytes_per_user = OPT_DEFAULT_MAX_BYTES_PER_USER;
	o->root_reserve_pct = OPT_DEFAULT_ROOT_RESERVE;

	cl = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*cl));
	if (!cl) {
		fprintf(stderr, "cluckd: out of memory\n");
		return 2;
	}
	opterr = 0;
	optind = 0;             /* full reinit: options_parse may run twice */
	while ((c = getopt_long(argc, argv, SHORTOPTS, longopts, NULL)) != -1) {
		const char *bad = argv[optind - 1];
		int id;

		if (c == '?' || c == ':') {
			char name[80];
			const char *why = c == '?' ? "is unknown" : "needs a value";

			if (bad && !strncmp(bad, "--", 2)) {
				shown(bad, name, sizeof(name));
				if (c == '?' && strchr(name, '=')) {
					*strchr(name, '=') = '\0';
					why = "takes no value";
				}
			} else if (optopt > 0x20 && optopt < 0x7f) {
				snprintf(name, sizeof(name), "-%c", optopt);
			} else {
				shown(bad ? bad : "?", name, sizeof(name));
			}
			fprintf(stderr, "cluckd: option '%s' %s\n", name, why);
			goto free_cl;
		}
		id = id_of(c);
		if (id == O_HELP) {
			fputs(usage_text, stdout);
			rc = 1;
			goto free_cl;
		}
		if (id == O_VERSION) {
			printf("cluckd %s\n", PACKAGE_VERSION);
			rc = 1;
			goto free_cl;
		}
		if (id < 0) {
			fprintf(stderr, "cluckd: unknown option '%s'\n",
				bad ? shown(bad, b, sizeof(b)) : "?");
			goto free_cl;
		}
		if (id == O_CONFIG) {
			if (!*optarg) {
				fprintf(stderr, "cluckd: --config must not be empty\n");
				goto free_cl;
			}
			config = optarg;
			continue;
		}
		cl[ncl].id = id;
		cl[ncl].v = optinfo[id].has_arg ? optarg : NULL;
		ncl++;
		cl_set[id] = 1;
	}
	if (optind >= argc) {
		fprintf(stderr, "cluckd: missing MOUNTPOINT (see cluckd --help)\n");
		goto free_cl;
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "cluckd: unexpected argument '%s': give exactly one MOUNTPOINT\n",
			shown(argv[optind + 1], b, sizeof(b)));
		goto free_cl;
	}
	if (!argv[optind][0]) {
		fprintf(stderr, "cluckd: MOUNTPOINT must not be empty\n");
		goto free_cl;
	}
	o->mountpoint = strdup(argv[optind]);
	if (!o->mountpoint) {
		fprintf(stderr, "cluckd: out of memory\n");
		goto free_cl;
	}

	if (!config && access(OPT_DEFAULT_CONFIG, F_OK) == 0)
		config = OPT_DEFAULT_CONFIG;
	if (config) {
		if (read_config(o, config, cl_set) < 0)
			goto free_cl;
		if (set_str(&o->config_file, "--config", config, err, sizeof(err)) < 0) {
			fprintf(stderr, "cluckd: %s\n", err);
			goto free_cl;
		}
	}
	for (size_t i = 0; i < ncl; i++) {
		if (set_opt(o, (enum opt_id)cl[i].id, cl[i].v, err, sizeof(err)) < 0) {
			fprintf(stderr, "cluckd: %s\n", err);
			goto free_cl;
		}
	}

	if (!o->name[0] && default_name(o) < 0)
		goto free_cl;
	if (!o->data_dir) {
		char dd[sizeof("/var/lib/cluck/") + OPT_NAME_MAX];

		snprintf(dd, sizeof(dd), "/var/lib/cluck/%s", o->name);
		if (set_str(&o->data_dir, "--data-dir", dd, err, sizeof(err)) < 0) {
			fprintf(stderr, "cluckd: %s\n", err);
			goto free_cl;
		}
	}
	if (options_networked(o) && o->lease_ms < 1000) {
		fprintf(stderr, "cluckd: --lease must be at least 1 s in a cluster (the node gives "
			"up a safety margin before the leader)\n");
		goto free_cl;
	}
	if (options_networked(o) && !o->key_file && !o->insecure) {
		fprintf(stderr,
			"cluckd: a cluster of more than one node needs --key-file (or --insecure on a trusted network)\n");
		goto free_cl;
	}
	if (o->key_file && check_key_file(o->key_file) < 0)
		goto free_cl;
	rc = 0;
free_cl:
	free(cl);
	return rc;
}

/* 1 when this node talks to others: more than one voter, a member of
 * someone else's cluster, or a lone voter that was given a key or
 * --insecure (it lets members join). */
int options_networked(const struct options *o)
{
	if (o->nvoters == 0)
		return 0;
	if (o->nvoters > 1 || strcmp(o->voters[0].name, o->name) != 0)
		return 1;
	return o->key_file != NULL || o->insecure;
}

/* Frees what options_parse() allocated; *o may be zeroed or partial. */
void options_free(struct options *o)
{
	if (!o)
		return;
	free(o->voters);
	free(o->data_dir);
	free(o->key_file);
	free(o->config_file);
	for (size_t i = 0; i < o->nfuse_opts; i++)
		free(o->fuse_opts[i]);
	free(o->fuse_opts);
	free(o->mountpoint);
	memset(o, 0, sizeof(*o));
}
