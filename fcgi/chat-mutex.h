/*
 * chat-mutex.h - the chats' mutexes as locks of the host rather than of
 * MariaDB.
 *
 * Each change to a chat is made under the chat's mutex, held past COMMIT
 * until the events are published (db.h, cb_db_chat_mutex): that is what
 * orders a chat's changes, message ids and publishes. The mutex only has to
 * be shared by the processes that publish into the instance's Nchan, and
 * those are on one host: the workers and carebot-admin of the instance. So
 * when the setting chat_mutex_file names a file, a chat's mutex is a POSIX
 * record lock on the byte at offset <chat id> of that file, taken and
 * dropped with one system call each instead of a round trip to MariaDB
 * (GET_LOCK) and a statement to release it. Without the setting, the
 * database layer uses MariaDB named locks, which also order workers on
 * several hosts sharing one database.
 *
 * Why record locks: the kernel drops them when their process dies, as
 * MariaDB drops a named lock with its connection, and it detects a cycle
 * of waiters (EDEADLK), as MariaDB does. They belong to the process, so a
 * process must hold the file open once only (this module's descriptor)
 * and must not be multi-threaded; the workers and carebot-admin are
 * neither.
 */
#ifndef CB_CHAT_MUTEX_H
#define CB_CHAT_MUTEX_H

/*
 * Opens path and the agents' file beside it (each created if missing) for
 * this process. CB_OK; CB_ERR (logged) if either cannot be opened: the
 * caller must not go on with named locks while the other processes use the
 * files, so it stops. An empty path: CB_OK, and cb_chat_mutex_on says 0.
 */
int cb_chat_mutex_open(const char *path);
void cb_chat_mutex_close(void);
/* Non-zero when the chats' mutexes are this host's locks. */
int cb_chat_mutex_on(void);
/*
 * Takes chat id's mutex, waiting at most timeout_ms. CB_OK; CB_ERR_RETRY if
 * it was not had in time or waiting would close a cycle (the caller rolls
 * back, which releases, and runs the transaction again); CB_ERR (logged).
 * Taking a mutex this process holds is a no-op.
 */
int cb_chat_mutex_take(long long id, int timeout_ms);
/* Releases every chat mutex this process holds (and any agent's). */
void cb_chat_mutex_release_all(void);

/*
 * An agent's mutex: the byte at offset <agent id> of a second file, the
 * chat file's name plus CB_AGENT_MUTEX_SUFFIX, opened with it. Chat and
 * agent ids each take the whole BIGINT range, which is every offset a
 * file has, so they cannot share one file (agents at 2^60 + id met the
 * chats from 2^60 on, and overflowed past 2^63 - 1 - 2^60). It orders the
 * publishes of one agent's agent.status events (db-assign.h,
 * cb_db_events_publish); it is taken only after COMMIT, one at a time, and
 * held only to read the agent and publish. Same results as
 * cb_chat_mutex_take.
 */
#define CB_AGENT_MUTEX_SUFFIX ".agents"
int cb_agent_mutex_take(long long id, int timeout_ms);
void cb_agent_mutex_release(long long id);

#endif
