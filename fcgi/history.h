/*
 * history.h - the newest page of each chat's history, kept once for all the
 * processes of an instance.
 *
 * Every client opens a chat with its newest page, and the whole archive is
 * far larger than a worker may be (16 MiB), so the page is not kept per
 * worker: the workers and carebot-admin share one file (setting
 * history_cache_file, on tmpfs), a table of fixed-size slots indexed by chat
 * id. A slot holds one page (the newest `limit` messages, as the answer's
 * JSON text), the chat's total and its state for the access check. The
 * table's small head is mapped; the pages are read and written with
 * pread/pwrite, so they are never part of a worker's resident size.
 *
 * Exactness: each slot carries a counter that moves with every committed
 * change to a chat of that slot (db.c bumps it for every chat whose mutex a
 * committed change held: a new message or a new state are always made under
 * it). A reader takes the counter before it asks MariaDB and stores the page
 * with it; the page is served while the counter has not moved. The bump
 * comes after the commit and before the response and the events, so the
 * next read anywhere on the host sees the change. A change made behind
 * carebot's back (SQL by hand, a worker on another host) moves no counter,
 * so a page older than history_cache_max_age_ms is served only once MariaDB
 * confirms that the chat's newest message and state are still the page's.
 *
 * A slot being rewritten is skipped by readers (a sequence counter, odd
 * while writing); two writers of one slot do not wait for each other, the
 * second one just does not store. A process killed while writing leaves
 * its slot odd, so unused, until the file is made anew (tools/carebot
 * removes it whenever it starts the pool).
 */
#ifndef CB_HISTORY_H
#define CB_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "db-chats.h"
#include "util.h"

/* The most a page may weigh to be kept (bytes of JSON). */
#define CB_HISTORY_PAGE_MAX (32 * 1024 - 1)

struct cb_history_stamp {
	unsigned slot;
	uint64_t counter;
	long long at_ms; /* monotonic */
};

/* What comes with a kept page. */
struct cb_history_page {
	struct cb_chat_state st;
	long long total; /* all of the chat's messages */
	long long last_id; /* the newest message's id; 0 for an empty page */
};

enum cb_history_found {
	CB_HISTORY_NONE, /* not kept, or made stale by a change: read it from MariaDB */
	CB_HISTORY_FRESH, /* serve it */
	/*
	 * No change was announced, but it is older than the maximum age: serve
	 * it once MariaDB confirms the chat's newest message and state, and then
	 * let it live on (cb_history_confirm).
	 */
	CB_HISTORY_OLD,
};

/*
 * Maps path (created if missing, size_mb of slots). Pages are served for
 * max_age_ms; with 0 this process only announces changes (carebot-admin).
 * CB_OK, or CB_ERR (logged unless path is empty) and the store stays off.
 */
int cb_history_open(const char *path, int size_mb, int max_age_ms);
void cb_history_close(void);
/* Records that chat_id changed, once the change is committed. */
void cb_history_bump(long long chat_id);
/* Records that any chat may have changed (a script ran). */
void cb_history_bump_all(void);
/* Stamps a newest page about to be read or confirmed. 0 when the store is off. */
int cb_history_stamp(long long chat_id, struct cb_history_stamp *s);
/*
 * The newest limit messages of chat_id: when FRESH or OLD, the page is
 * appended to out and *p filled; when NONE, out's text is as it was, but a
 * read that a writer overtook may have grown its room (out->data may be
 * new, and the caller's to free, even then).
 */
enum cb_history_found cb_history_get(
    long long chat_id, long long limit, struct cb_history_page *p, struct cb_buf *out);
/* Keeps a page read under stamp s (pages over CB_HISTORY_PAGE_MAX are not kept). */
void cb_history_put(const struct cb_history_stamp *s, long long limit,
    const struct cb_history_page *p, const char *page, size_t len);
/* The OLD page of chat_id and limit was found current under stamp s: it is fresh from s on. */
void cb_history_confirm(const struct cb_history_stamp *s, long long chat_id, long long limit);

#endif
