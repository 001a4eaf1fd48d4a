/*
 * proto/idmap.c - the map from node id to pointer (see proto/idmap.h).
 *
 * It must never: probe forever (at most half the slots are used, so a
 * probe meets an empty one), or break a probe chain when removing
 * (backward-shift deletion).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "proto/idmap.h"

static size_t id_hash(uint64_t id, size_t cap)
{
	/* splitmix64's finalizer: ids are often small and sequential */
	id ^= id >> 30;
	id *= 0xbf58476d1ce4e5b9ull;
	id ^= id >> 27;
	id *= 0x94d049bb133111ebull;
	id ^= id >> 31;
	return (size_t)id & (cap - 1);
}

void *idmap_get(const struct idmap *m, uint64_t id)
{
	if (!m->cap || !id)
		return NULL;
	for (size_t i = id_hash(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->s[i].id == id)
			return m->s[i].v;
		if (!m->s[i].id)
			return NULL;
	}
}

static void idmap_insert_slot(struct idslot *s, size_t cap, uint64_t id, void *v)
{
	size_t i = id_hash(id, cap);

	while (s[i].id && s[i].id != id)
		i = (i + 1) & (cap - 1);
	s[i].id = id;
	s[i].v = v;
}

/* Inserts or replaces; the map never holds more than half its slots so
 * probes stay short and always end.  0 or -ENOMEM (map unchanged). */
int idmap_put(struct idmap *m, uint64_t id, void *v)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 16;
		struct idslot *ns = calloc(ncap, sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->s[i].id)
				idmap_insert_slot(ns, ncap, m->s[i].id, m->s[i].v);
		free(m->s);
		m->s = ns;
		m->cap = ncap;
	}
	if (!idmap_get(m, id))
		m->n++;
	idmap_insert_slot(m->s, m->cap, id, v);
	return 0;
}

/* Removes id (backward-shift deletion keeps probe chains intact). */
void idmap_del(struct idmap *m, uint64_t id)
{
	size_t i, j, mask = m->cap - 1;

	if (!m->cap || !id)
		return;
	for (i = id_hash(id, m->cap); m->s[i].id != id; i = (i + 1) & mask)
		if (!m->s[i].id)
			return;
	m->n--;
	for (j = (i + 1) & mask; m->s[j].id; j = (j + 1) & mask) {
		size_t h = id_hash(m->s[j].id, m->cap);

		/* move j back to the hole unless its home lies in (i, j] */
		if (((j - h) & mask) >= ((j - i) & mask)) {
			m->s[i] = m->s[j];
			i = j;
		}
	}
	m->s[i].id = 0;
	m->s[i].v = NULL;
}

void idmap_free(struct idmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->s[i].id)
			free(m->s[i].v);
	free(m->s);
	m->s = NULL;
	m->cap = m->n = 0;
}
