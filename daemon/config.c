/*
 * daemon/config.c - cluckd's configuration file, cluckd.conf(5): its
 * syntax (`key = value` or `key value` lines, '#' comments, one pair of
 * double quotes around a value), the keys (the long option names of
 * daemon/options.c's table, those it allows in a file), and the rule
 * that the command line wins: an option also given there is still
 * validated from the file, but not applied.
 *
 * It must never: set an option but through set_opt() (so the file and
 * the command line accept exactly the same values), accept a key the
 * table keeps out of files (--accept-loss, --rejoin, --config), print
 * more than one line for an error, or read anything but the one file.
 */
#include "config.h"

#include "daemon/options_i.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- configuration file ---------------------------------------------------- */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int config_key(const char *k)
{
	if (!strcmp(k, "options"))
		return O_FUSE;
	for (int i = 0; i < O__COUNT; i++)
		if (optinfo[i].in_config && !strcmp(optinfo[i].key, k))
			return i;
	return -1;
}

/* Reads `key = value` / `key value` lines.  Options given on the command
 * line (cl_set) are validated but not applied, so the command line wins. */
int read_config(struct options *o, const char *path, const int *cl_set)
{
	char err[512], b[80], *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	struct stat st;
	int rc = -1;
	FILE *f;

	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "cluckd: cannot read config file %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
		fprintf(stderr, "cluckd: config file %s is not a regular file\n", path);
		goto close_file;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *k, *v, *hash;
		struct options scratch;
		int id, r;

		lineno++;
		/* '#' starts a comment at line start or after white space, so
		 * values may still hold one ("a#b"). */
		for (hash = line; (hash = strchr(hash, '#')); hash++)
			if (hash == line || isspace((unsigned char)hash[-1])) {
				*hash = '\0';
				break;
			}
		k = trim(line);
		if (!*k)
			continue;
		v = k + strcspn(k, " \t=");
		if (*v) {
			*v++ = '\0';
			v = trim(v);
			/* "key = value": the separator was a blank. */
			if (*v == '=')
				v = trim(v + 1);
		}
		if (strlen(v) >= 2 && v[0] == '"' && v[strlen(v) - 1] == '"') {
			v[strlen(v) - 1] = '\0';
			v++;
		}
		id = config_key(k);
		if (id < 0) {
			fprintf(stderr, "cluckd: %s:%u: unknown key '%s'\n", path, lineno,
				shown(k, b, sizeof(b)));
			goto free_line;
		}
		if (!*v && optinfo[id].has_arg) {
			fprintf(stderr, "cluckd: %s:%u: key '%s' needs a value\n", path,
				lineno, k);
			goto free_line;
		}
		if (cl_set[id] && id != O_FUSE) {
			/* Still reject a bad value: the file must be valid. */
			memset(&scratch, 0, sizeof(scratch));
			r = set_opt(&scratch, (enum opt_id)id, *v ? v : NULL, err,
				    sizeof(err));
			options_free(&scratch);
		} else {
			r = set_opt(o, (enum opt_id)id, *v ? v : NULL, err, sizeof(err));
		}
		if (r < 0) {
			fprintf(stderr, "cluckd: %s:%u: %s\n", path, lineno, err);
			goto free_line;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "cluckd: cannot read config file %s: %s\n", path,
			strerror(errno));
		goto free_line;
	}
	rc = 0;
free_line:
	free(line);
close_file:
	fclose(f);
	return rc;
}
