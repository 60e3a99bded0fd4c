/* events.c - the envelope and the after-commit publish of each event to all its channels at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "events.h"
#include "json.h"
#include "publish.h"
#include "util.h"

static json_object *
now_json(void)
{
	char stamp[40];
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
	return json_object_new_string(stamp);
}

/* The event's JSON text, stamped now; takes data. */
static char *
envelope(const char *type, long long chat_id, json_object *data)
{
	json_object *env = json_object_new_object();

	json_object_object_add(env, "type", json_object_new_string(type));
	json_object_object_add(env, "chat_id", chat_id > 0 ? json_object_new_int64(chat_id) : NULL);
	json_object_object_add(env, "at", now_json());
	json_object_object_add(env, "data", data);
	char *text = xstrdup(cb_json_text(env));
	json_object_put(env);
	return text;
}

void
cb_events_add(struct cb_events *ev, const char *type, long long chat_id, json_object *data,
    const char *const *kinds, const long long *ids, size_t nchannels)
{
	struct cb_buf channels = {0};

	for (size_t i = 0; i < nchannels; i++) {
		char one[64];

		if (ids[i] <= 0)
			continue;
		snprintf(one, sizeof one, "%s/%lld", kinds[i], ids[i]);
		int dup = 0;
		for (size_t j = 0; j < i; j++)
			dup |= ids[j] == ids[i] && strcmp(kinds[j], kinds[i]) == 0;
		if (!dup)
			cb_buf_printf(&channels, "%s%s", channels.len ? "," : "", one);
	}
	if (channels.len > 0) {
		if (ev->n == ev->cap) {
			ev->cap = ev->cap ? ev->cap * 2 : 8;
			ev->items = xrealloc(ev->items, ev->cap * sizeof *ev->items);
		}
		ev->items[ev->n].channels = channels.data;
		ev->items[ev->n].json = envelope(type, chat_id, data);
		ev->items[ev->n].status_of = 0;
		ev->n++;
	} else {
		cb_buf_free(&channels);
		json_object_put(data);
	}
}

/* Is channel (not NUL-terminated, len bytes) one of the comma-separated list? */
static int
has_channel(const char *list, const char *channel, size_t len)
{
	while (*list != '\0') {
		size_t n = strcspn(list, ",");
		if (n == len && strncmp(list, channel, len) == 0)
			return 1;
		list += n + (list[n] == ',');
	}
	return 0;
}

/* Appends to e's channels each channel of list that it does not have yet. */
static void
add_channels(struct cb_event *e, const char *list)
{
	struct cb_buf merged = {0};

	cb_buf_printf(&merged, "%s", e->channels);
	for (const char *p = list; *p != '\0';) {
		size_t len = strcspn(p, ",");
		if (len > 0 && !has_channel(merged.data, p, len))
			cb_buf_printf(&merged, ",%.*s", (int)len, p);
		p += len + (p[len] == ',');
	}
	free(e->channels);
	e->channels = merged.data;
}

void
cb_events_add_status(struct cb_events *ev, long long agent_id, json_object *user,
    const char *const *kinds, const long long *ids, size_t nchannels)
{
	size_t before = ev->n;

	cb_events_add(ev, "agent.status", 0, user, kinds, ids, nchannels);
	if (ev->n == before)
		return;
	struct cb_event *added = &ev->items[ev->n - 1];
	added->status_of = agent_id;
	for (size_t i = 0; i < ev->n - 1; i++) {
		if (ev->items[i].status_of != agent_id)
			continue;
		add_channels(added, ev->items[i].channels);
		free(ev->items[i].channels);
		free(ev->items[i].json);
		memmove(&ev->items[i], &ev->items[i + 1], (ev->n - 1 - i) * sizeof *ev->items);
		ev->n--;
		break; /* there is never more than one: each add drops the one before */
	}
}

void
cb_events_also_to(struct cb_events *ev, size_t i, const char *kind, long long id)
{
	char one[64];

	if (i >= ev->n || id <= 0)
		return;
	snprintf(one, sizeof one, "%s/%lld", kind, id);
	add_channels(&ev->items[i], one);
}

/* The envelope's "at" value in an event's text (envelope() writes it first of all strings after the type). */
static char *
stamp_in(char *json)
{
	static const char key[] = "\"at\":\"";
	char *at = strstr(json, key);

	return at != NULL && strlen(at) >= sizeof key - 1 + CB_STAMP_LEN ? at + sizeof key - 1
	                                                                 : NULL;
}

void
cb_events_move_last(struct cb_events *ev, size_t pos)
{
	if (ev->n == 0 || pos >= ev->n - 1)
		return;
	struct cb_event last = ev->items[ev->n - 1];
	memmove(&ev->items[pos + 1], &ev->items[pos], (ev->n - 1 - pos) * sizeof *ev->items);
	ev->items[pos] = last;
	/*
	 * Stamped after the events it now precedes, it takes the stamp of the
	 * first of them, so that "at" never goes back along a channel (an audit
	 * saw chat.transferred 1 ms after the "joined" message that follows it).
	 */
	char *mine = stamp_in(ev->items[pos].json), *next = stamp_in(ev->items[pos + 1].json);
	if (mine != NULL && next != NULL && memcmp(next, mine, CB_STAMP_LEN) < 0)
		memcpy(mine, next, CB_STAMP_LEN);
}

void
cb_events_set_status(struct cb_events *ev, size_t i, json_object *user)
{
	if (i >= ev->n || ev->items[i].status_of <= 0) {
		json_object_put(user);
		return;
	}
	free(ev->items[i].json);
	ev->items[i].json = envelope("agent.status", 0, user);
}

void
cb_events_publish_one(const struct cb_events *ev, size_t i)
{
	if (i < ev->n)
		cb_publish(ev->items[i].channels, ev->items[i].json);
}

void
cb_events_clear(struct cb_events *ev)
{
	for (size_t i = 0; i < ev->n; i++) {
		free(ev->items[i].channels);
		free(ev->items[i].json);
	}
	free(ev->items);
	memset(ev, 0, sizeof *ev);
}
