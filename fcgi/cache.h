/*
 * cache.h - what a process may remember between requests, and how every
 * process of an instance learns at once that it must forget.
 *
 * The workers and carebot-admin of one instance map the same small file
 * (setting shared_file) that holds one 64-bit counter, the state generation
 * (and, on its second page, typing.c's table).
 * The database layer bumps it after every committed change to departments,
 * users, chats or sessions (db.c, changes_state). A cached item carries a
 * stamp, the generation and the time taken before the database was asked;
 * it may be served while the generation has not moved and the item is
 * younger than the maximum age (setting cache_max_age_ms). So a change made through carebot is seen
 * by the next request to any worker (the bump comes before the response and
 * before the real-time events), and a change made behind carebot's back (SQL
 * by hand, a worker on another host) within the maximum age.
 *
 * Without a shared file (not set, or it cannot be mapped) or with a maximum
 * age of 0, nothing is cached; changes are still announced to the others.
 */
#ifndef CB_CACHE_H
#define CB_CACHE_H

#include <stdint.h>

struct cb_stamp {
	uint64_t gen;
	long long at_ms; /* monotonic */
};

/*
 * Maps path (created if missing); items live at most max_age_ms. CB_OK, or
 * CB_ERR (logged unless path is empty) and caching stays off.
 */
int cb_cache_open(const char *path, int max_age_ms);
void cb_cache_close(void);
/* Records that committed state changed: every stamp taken before is stale. */
void cb_cache_bump(void);
/* Stamps an item about to be read. 0 when caching is off: do not keep the item. */
int cb_cache_stamp(struct cb_stamp *s);
/* Non-zero while an item stamped s may still be served. */
int cb_cache_fresh(const struct cb_stamp *s);
/*
 * The shared table of typing.c (CB_TYPING_SLOTS words), or NULL when no
 * shared file is mapped. It lives here because this module owns the file.
 */
uint64_t *cb_cache_typing_slots(void);
/* The rule itself: fresh at generation gen and time now_ms, for items living max_age_ms. */
int cb_stamp_fresh_at(const struct cb_stamp *s, uint64_t gen, long long now_ms, int max_age_ms);

#endif
