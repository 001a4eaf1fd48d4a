/*
 * t/errname.h - the symbolic name of an errno value, for the test programs'
 * output (glibc >= 2.32's strerrorname_np; aliases such as EWOULDBLOCK come
 * out as their Linux canonical name).  Test code only.
 */
#ifndef CLUCK_T_ERRNAME_H
#define CLUCK_T_ERRNAME_H

#include <stdio.h>
#include <string.h>

static inline const char *errname(int e)
{
	static char buf[32];
	const char *n = strerrorname_np(e);

	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

#endif /* CLUCK_T_ERRNAME_H */
