/*
 * proto/idmap.h - a small map from node id (non-zero) to a pointer: the
 * replay windows of proto/seal.c and the peer addresses of net/peer.c.
 *
 * Open addressing with linear probing; id 0 marks an empty slot.  The map
 * owns its values: idmap_free() frees every one (with free()).  The slots
 * are visible so that an owner may walk them (proto/seal.c picks the least
 * recently used window that way); only the functions below change them.
 *
 * It must never: hold more than half its slots (probes stay short and
 * always end), take id 0 as a key, or lose an entry on -ENOMEM.
 */
#ifndef CLUCK_IDMAP_H
#define CLUCK_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
	struct idslot {
		uint64_t id;
		void *v;
	} *s;
	size_t cap, n;                 /* cap: 0 or a power of two */
};

/* The value of id, or NULL (also for id 0 and an empty map). */
void *idmap_get(const struct idmap *m, uint64_t id);
/* Inserts or replaces.  0 or -ENOMEM (map unchanged). */
int idmap_put(struct idmap *m, uint64_t id, void *v);
/* Removes id (the value is not freed). */
void idmap_del(struct idmap *m, uint64_t id);
/* Frees every value and the slots; the map is empty after. */
void idmap_free(struct idmap *m);

#endif /* CLUCK_IDMAP_H */
