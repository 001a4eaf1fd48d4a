/*
 * daemon/mount.c - the mount point checks and the fail-closed flag (see
 * daemon/mount.h), and the capture of libfuse's stderr.
 *
 * It must never: access the mount point after mounting (that deadlocks
 * FUSE: everything here runs before the mount), resolve a dead mount (a
 * stat on it fails ENOTCONN: its path is spelled lexically instead), or
 * advise unmounting a live cluckd (its holders would lose their locks).
 */
#include "config.h"

#include "daemon/mount.h"
#include "net/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- capturing libfuse's own stderr messages ----------------------------- */

void mount_capture_start(struct mount_capture *c)
{
	c->saved = -1;
	fflush(stderr);
	c->tmp = tmpfile();
	if (!c->tmp)
		return;
	c->saved = dup(STDERR_FILENO);
	if (c->saved < 0 || dup2(fileno(c->tmp), STDERR_FILENO) < 0) {
		if (c->saved >= 0)
			close(c->saved);
		c->saved = -1;
		fclose(c->tmp);
		c->tmp = NULL;
	}
}

/* Restores stderr; the captured text, joined into one line, goes to buf. */
void mount_capture_end(struct mount_capture *c, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	fflush(stderr);
	if (c->saved < 0)
		return;
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	rewind(c->tmp);
	n = fread(buf, 1, len - 1, c->tmp);
	buf[n] = '\0';
	fclose(c->tmp);
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
			buf[i] = i + 1 < n ? ' ' : '\0';
}

/* ---- mount point checks ---------------------------------------------------- */

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* 1 if abs is listed as a mount point in /proc/self/mountinfo; its
 * filesystem type (the last mount stacked there) goes to type. */
static int in_mountinfo(const char *abs, char *type, size_t typelen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	snprintf(type, typelen, "unknown type");
	if (!f)
		return 0;
	while (getline(&line, &cap, f) >= 0) {
		char *save = NULL, *tok = strtok_r(line, " \n", &save);

		/* fields: id parent major:minor root MOUNTPOINT opts... - TYPE */
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " \n", &save);
		if (!tok)
			continue;
		unescape_octal(tok);
		if (strcmp(tok, abs) != 0)
			continue;
		found = 1;
		while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
			;
		if (tok && (tok = strtok_r(NULL, " \n", &save)))
			snprintf(type, typelen, "%s", tok);
	}
	free(line);
	fclose(f);
	return found;
}

/* An absolute spelling of mnt without resolving it (a dead mount cannot
 * be resolved): cwd + mnt, trailing slashes dropped. */
static void lexical_abs(const char *mnt, char *out, size_t len)
{
	char cwd[PATH_MAX];
	size_t n;

	out[0] = '\0';
	if (mnt[0] != '/' && getcwd(cwd, sizeof(cwd))) {
		n = strlen(cwd);
		if (n + 1 < len) {
			memcpy(out, cwd, n + 1);
			if (strcmp(cwd, "/"))
				strcat(out, "/");
		}
	}
	n = strlen(out);
	if (strlen(mnt) < len - n)
		strcat(out, mnt);
	n = strlen(out);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
}

/* s as one shell word the admin can paste: as is when it holds only
 * harmless characters, else in single quotes ('\'' for a quote). */
static void shell_quote(const char *s, char *out, size_t len)
{
	size_t o = 0;

	if (len < 8) {
		out[0] = '\0';
		return;
	}
	if (s[0] && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789/._-+,:=@%") == strlen(s)) {
		snprintf(out, len, "%s", s);
		return;
	}
	out[o++] = '\'';
	for (; *s && o + 6 < len; s++) {
		if (*s == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else {
			out[o++] = *s;
		}
	}
	out[o++] = '\'';
	out[o] = '\0';
}

/* The mount point must be an existing directory that nothing is mounted
 * on yet.  Fills abs with its absolute path.  Prints the one-line error,
 * with the exact command to run when there is one. */
int mount_check(const char *mnt, char *abs)
{
	struct stat st, pst;
	char parent[PATH_MAX], *slash, q[2 * PATH_MAX], type[64];

	if (stat(mnt, &st) != 0) {
		int e = errno;

		if (e == ENOTCONN || e == ECONNABORTED) {
			lexical_abs(mnt, parent, sizeof(parent));
			shell_quote(parent, q, sizeof(q));
			fprintf(stderr,
				"cluckd: %s: dead FUSE mount left by a cluckd that died (%s); "
				"clear it with: fusermount3 -uz %s\n", parent, strerror(e), q);
		} else {
			fprintf(stderr, "cluckd: %s: %s\n", mnt, strerror(e));
		}
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cluckd: %s: not a directory\n", mnt);
		return -1;
	}
	if (!realpath(mnt, abs)) {
		fprintf(stderr, "cluckd: %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if (!strcmp(abs, "/")) {
		fprintf(stderr, "cluckd: %s: cannot mount on the root directory\n", mnt);
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s", abs);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (stat(parent, &pst) != 0) {
		fprintf(stderr, "cluckd: %s: %s\n", parent, strerror(errno));
		return -1;
	}
	if (in_mountinfo(abs, type, sizeof(type)) || pst.st_dev != st.st_dev) {
		shell_quote(abs, q, sizeof(q));
		/* Never advise unmounting a live cluckd: its holders would
		 * lose their locks. */
		if (!strcmp(type, "fuse.cluck"))
			fprintf(stderr, "cluckd: %s: a running cluckd already serves it "
				"(stop that one first: fusermount3 -u %s)\n", abs, q);
		else
			fprintf(stderr, "cluckd: %s: already a mount point (%s); "
				"unmount it or choose another directory\n", abs, type);
		return -1;
	}
	return 0;
}

/* chattr +i on the (empty) mount point, so with nothing mounted there a
 * lock attempt fails with EPERM instead of locking a local file. */
void mount_make_immutable(const char *abs)
{
	int fd, flags = 0;

	if (geteuid() != 0) {
		log_warn("%s: not root, cannot make the mount point immutable: while cluckd is "
			 "not running, locks taken there are local only", abs);
		return;
	}
	fd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		log_warn("%s: cannot open to make it immutable: %m", abs);
		return;
	}
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0)
		goto warn;
	if (!(flags & FS_IMMUTABLE_FL)) {
		flags |= FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			goto warn;
	}
	close(fd);
	return;
warn:
	if (errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL)
		log_warn("%s: the filesystem has no immutable flag (chattr +i): while cluckd "
			 "is not running, locks taken there are local only", abs);
	else
		log_warn("%s: cannot make the mount point immutable: %m", abs);
	close(fd);
}

/* A kernel FUSE request timeout aborts the whole connection when one lock
 * wait outlasts it (notes/fuse-locks.md 1.4). */
void mount_warn_request_timeouts(void)
{
	static const char *const files[] = {
		"/proc/sys/fs/fuse/max_request_timeout",
		"/proc/sys/fs/fuse/default_request_timeout",
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "re");
		unsigned long v = 0;

		if (!f)
			continue;
		if (fscanf(f, "%lu", &v) == 1 && v != 0)
			log_warn("%s is %lu: a lock wait longer than %lu s will abort the "
				 "whole mount; set it to 0", files[i], v, v);
		fclose(f);
	}
}
