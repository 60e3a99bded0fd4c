/*
 * events.h - real-time events gathered while a transaction runs and
 * published only after it commits (contract section 7). A transaction that
 * rolls back or is retried clears its list, so nothing uncommitted is sent.
 */
#ifndef CB_EVENTS_H
#define CB_EVENTS_H

#include <json-c/json.h>
#include <stddef.h>

/* "2026-11-24T09:30:00.123Z": the length of every event's "at". */
#define CB_STAMP_LEN 24

struct cb_event {
	char *channels; /* comma-separated Nchan ids: "chat/7,agent/3,department/1" */
	char *json; /* {"type","chat_id","at","data"} */
	long long status_of; /* the agent of an agent.status event, else 0 */
};

struct cb_events {
	struct cb_event *items;
	size_t n, cap;
};

/*
 * Appends an event; takes data. chat_id 0 is sent as null. It goes to the
 * channels "<kinds[i]>/<ids[i]>" for each i < nchannels; ids <= 0 are
 * skipped and duplicates dropped, so callers can pass "the previous agent"
 * blindly.
 */
void cb_events_add(struct cb_events *ev, const char *type, long long chat_id, json_object *data,
    const char *const *kinds, const long long *ids, size_t nchannels);
/*
 * Appends agent.status for agent_id (takes user). One queued earlier for the
 * same agent is dropped, its channels added to the new one: the later
 * snapshot is what will be committed, and it still reaches a department
 * the agent has just left.
 */
void cb_events_add_status(struct cb_events *ev, long long agent_id, json_object *user,
    const char *const *kinds, const long long *ids, size_t nchannels);
/* Adds the channel "<kind>/<id>" to event i, unless it has it already. */
void cb_events_also_to(struct cb_events *ev, size_t i, const char *kind, long long id);
/*
 * Moves the last event to position pos, after the first pos events: for an
 * event whose data is known only after later changes, but which must be
 * published in the order of the change it reports. Its "at" becomes the
 * one of the event it now precedes when that one is earlier.
 */
void cb_events_move_last(struct cb_events *ev, size_t pos);
/* Replaces the data of agent.status event i with user (taken), stamped now. */
void cb_events_set_status(struct cb_events *ev, size_t i, json_object *user);
/* Publishes event i (cb_db_events_publish publishes a whole list, in order). */
void cb_events_publish_one(const struct cb_events *ev, size_t i);
void cb_events_clear(struct cb_events *ev);

#endif
