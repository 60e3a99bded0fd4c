/*
 * db-assign.h - the assignment engine (contract 6.2, 6.4): the one place that
 * locks, picks (logic-assign.c), and moves chats between the queue and agents.
 *
 * Why one lock per department is enough (6.2.7). Every transaction that can
 * change any input of a department's assignment - its waiting chats, its
 * agents' membership, presence, is_active or max_chats, or a chat given to one
 * of its agents - first takes SELECT ... FOR UPDATE on that department's row
 * (cb_db_lock_departments), and ends with cb_db_assign_drain for it. So those
 * transactions run one at a time per department, each sees the committed
 * result of the one before (READ COMMITTED), and each leaves either no waiting
 * chat or no eligible agent. An agent belongs to one department, so every
 * chat ever given to an agent is given under that agent's department lock,
 * with the count of its active chats read inside it: no agent can exceed
 * max_chats, and a waiting chat is taken with "WHERE status = 'waiting'" under
 * the same lock, so no chat goes to two agents. Closing a chat only lowers a
 * load; it still takes the lock, so that the drain it ends with is not lost.
 * Locks are always taken departments first (ascending id), then chats'
 * mutexes, then rows: chats, then users. A cycle between a mutex and a row
 * lock is seen whole by neither the mutex nor InnoDB, and would end only when
 * one side's 10 s wait ran out. So whatever locks an agent's row and then
 * requeues the agent's chats takes their mutexes first
 * (cb_db_agent_chats_mutex), and a post, which holds its chat's mutex without
 * its department's lock, locks no users row at all (schema/004). A deadlock
 * InnoDB does see just reruns the transaction (cb_db_tx).
 */
#ifndef CB_DB_ASSIGN_H
#define CB_DB_ASSIGN_H

#include "db.h"
#include "events.h"

/* Locks the rows of departments a and b (0: none) in ascending id order. */
int cb_db_lock_departments(struct cb_db *db, long long a, long long b);

/*
 * With dept locked: assigns its oldest waiting chats to eligible agents by
 * rule 6.2.3 until no waiting chat or no eligible agent is left. *assigned
 * (may be NULL) is increased by the number placed.
 */
int cb_db_assign_drain(struct cb_db *db, long long dept, struct cb_events *ev, int *assigned);

/*
 * With the chat's department locked and the chat waiting: gives it to
 * agent_id, stamps the agent's last assignment, adds the "joined" system
 * message and queues chat.assigned.
 */
int cb_db_assign_chat(
    struct cb_db *db, long long chat_id, long long agent_id, struct cb_events *ev);

/*
 * With the agent's department locked: puts each of the agent's active chats
 * back at the front of its queue (old queued_at) with the "left" system
 * message and chat.waiting (rule 6.4). Does not drain.
 */
int cb_db_assign_requeue_agent(
    struct cb_db *db, long long agent_id, struct cb_events *ev, int *requeued);

/*
 * With the agent's department locked: takes the mutex of each of the agent's
 * active chats, before anything locks the agent's row (see the lock order
 * above). The department lock keeps that set of chats from growing.
 */
int cb_db_agent_chats_mutex(struct cb_db *db, long long agent_id);

/*
 * The core of cb_db_agent_set_presence, for a caller that already holds dept
 * (the agent's department) locked and, going offline, the agent's chats'
 * mutexes: updates the row, requeues the agent's chats when going offline,
 * and queues agent.status. Does not drain: a caller that sets several agents
 * offline drains once, after all of them (db-reassign.c). CB_ERR_RETRY if
 * the agent left dept or was deactivated meanwhile.
 */
int cb_db_agent_presence_locked(struct cb_db *db, long long agent_id, long long dept,
    const char *presence, int deactivate, struct cb_events *ev, int *requeued);

/*
 * Sets an agent's presence ("available", "busy", "offline") with every effect
 * of 5 and 6.4 in one go: lock, update, requeue when going offline, drain, and
 * agent.status. With deactivate, the agent is also made inactive (DELETE of a
 * user). Takes its own lock; call inside a transaction. CB_ERR_NOTFOUND if
 * agent_id is not an agent.
 */
int cb_db_agent_set_presence(struct cb_db *db, long long agent_id, const char *presence,
    int deactivate, struct cb_events *ev, int *requeued, int *assigned);

/*
 * Publishes ev, in order, after its transaction committed, and empties it.
 * Each agent.status is read again first, under the agent's mutex: changes of
 * one agent made in different chats commit one after the other (their
 * department's lock) but publish under their own chats' mutexes, so a
 * snapshot taken in the transaction could reach subscribers after a newer
 * one. Read after the commit and published under the mutex, the last
 * agent.status of an agent is always its state after the last change.
 */
void cb_db_events_publish(struct cb_db *db, struct cb_events *ev);

/* Queues agent.status (the user object) for the agent and their department. */
int cb_db_agent_status_event(struct cb_db *db, long long agent_id, struct cb_events *ev);

#endif
