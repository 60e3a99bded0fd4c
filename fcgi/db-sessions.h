/* db-sessions.h - bearer sessions: issue, look up, revoke. */
#ifndef CB_DB_SESSIONS_H
#define CB_DB_SESSIONS_H

#include "auth.h"
#include "db.h"

/*
 * Issues a token for user_id valid for ttl seconds. token receives the
 * token text, *expires_at (caller frees) its expiry as RFC 3339.
 */
int cb_db_session_create(
    struct cb_db *db, long long user_id, int ttl, char token[CB_TOKEN_HEX + 1], char **expires_at);
/*
 * The active user behind a live token, or CB_ERR_NOTFOUND. Refreshes an
 * agent's last_seen_at, at most every few seconds so reads stay reads.
 */
int cb_db_session_lookup(struct cb_db *db, const char *token, struct cb_user *out);
int cb_db_session_revoke(struct cb_db *db, long long session_id);
/* Ends every live session of user_id but keep (0: none), e.g. the caller's own. */
int cb_db_sessions_revoke_user(struct cb_db *db, long long user_id, long long keep);

/* The login limit of contract section 3: attempts per client address in any window. */
#define CB_LOGIN_ATTEMPTS 10
#define CB_LOGIN_WINDOW_SECONDS 60
/*
 * Counts a login attempt from address. *retry_after is 0 when the attempt may
 * go ahead (it is then counted), else the seconds until the oldest counted
 * attempt leaves the window (a refused attempt is not counted).
 */
int cb_db_login_attempt(struct cb_db *db, const char *address, long long *retry_after);
/*
 * Forgets what no answer needs any more (cron's `reassign`): login attempts
 * that have left the window, sessions an hour past their expiry (a revoked
 * one expires too) and Idempotency-Key rows past their 24 h (contract 2).
 * In statements of CB_SWEEP_BATCH rows, at most CB_SWEEP_BATCHES per table
 * and run, so a backlog (the first run after an upgrade) is worked off over
 * a few runs and no statement holds its locks for long.
 */
#define CB_SWEEP_BATCH 1000
#define CB_SWEEP_BATCHES 50
int cb_db_sweep_expired(struct cb_db *db);

#endif
