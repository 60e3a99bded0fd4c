/*
 * db-reassign.h - the cron sweep of contract 8 (carebot-admin reassign):
 * agents silent for too long go offline with the effects of 6.4, then every
 * active department is drained (6.2). The silent agents of one department,
 * and each drain, are one short transaction under the engine's department
 * lock, and its events
 * are published right after its commit, so the sweep is safe beside the API
 * and beside another sweep (db-assign.h).
 */
#ifndef CB_DB_REASSIGN_H
#define CB_DB_REASSIGN_H

#include "db.h"

struct cb_reassign_counts {
	int assigned; /* chats given to agents, by the timeouts' drains and the final drains */
	int requeued; /* chats of timed-out agents put back in their queues */
	int timed_out; /* agents set offline */
};

/*
 * Runs the sweep with the given silence (seconds) and adds to *counts.
 * Publishes as it goes. CB_OK, or the first database error.
 */
int cb_db_reassign(struct cb_db *db, long long offline_after, struct cb_reassign_counts *counts);

#endif
