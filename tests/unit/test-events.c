/* test-events.c - the event envelope and its channel list (fcgi/events.c). */
#include <json-c/json.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "tests.h"
#include "util.h"

START_TEST(envelope_has_type_chat_at_data)
{
	static const char *const kinds[] = {"chat", "agent", "department"};
	long long ids[] = {7, 3, 1};
	struct cb_events ev = {0};
	json_object *data = json_object_new_object();

	json_object_object_add(data, "id", json_object_new_int(7));
	cb_events_add(&ev, "chat.assigned", 7, data, kinds, ids, 3);
	ck_assert_uint_eq(ev.n, 1);
	ck_assert_str_eq(ev.items[0].channels, "chat/7,agent/3,department/1");
	json_object *env = json_tokener_parse(ev.items[0].json);
	ck_assert_ptr_nonnull(env);
	ck_assert_int_eq(json_object_object_length(env), 4);
	ck_assert_str_eq(
	    json_object_get_string(json_object_object_get(env, "type")), "chat.assigned");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(env, "chat_id")), 7);
	const char *at = json_object_get_string(json_object_object_get(env, "at"));
	ck_assert_uint_eq(strlen(at), 24); /* 2026-11-24T09:30:00.123Z */
	ck_assert_int_eq(at[10], 'T');
	ck_assert_int_eq(at[23], 'Z');
	ck_assert_int_eq(
	    json_object_get_int(json_object_object_get(json_object_object_get(env, "data"), "id")),
	    7);
	json_object_put(env);
	cb_events_clear(&ev);
	ck_assert_uint_eq(ev.n, 0);
}
END_TEST

START_TEST(missing_and_repeated_channels_are_dropped)
{
	static const char *const kinds[] = {"chat", "agent", "agent", "department", "department"};
	long long ids[] = {9, 0, 4, 2, 2};
	struct cb_events ev = {0};

	cb_events_add(&ev, "chat.transferred", 9, json_object_new_object(), kinds, ids, 5);
	ck_assert_str_eq(ev.items[0].channels, "chat/9,agent/4,department/2");
	cb_events_clear(&ev);
}
END_TEST

START_TEST(no_channel_no_event_and_null_chat_id)
{
	static const char *const kinds[] = {"agent"};
	long long none[] = {0}, one[] = {5};
	struct cb_events ev = {0};

	cb_events_add(&ev, "agent.status", 0, json_object_new_object(), kinds, none, 1);
	ck_assert_uint_eq(ev.n, 0);
	cb_events_add(&ev, "agent.status", 0, json_object_new_object(), kinds, one, 1);
	ck_assert_uint_eq(ev.n, 1);
	ck_assert_ptr_nonnull(strstr(ev.items[0].json, "\"chat_id\":null"));
	cb_events_clear(&ev);
}
END_TEST

START_TEST(move_last_keeps_the_rest_in_order)
{
	static const char *const kinds[] = {"chat"};
	long long ids[] = {1};
	struct cb_events ev = {0};
	const char *types[] = {"a", "b", "c", "d"};

	for (size_t i = 0; i < 4; i++)
		cb_events_add(&ev, types[i], 1, json_object_new_object(), kinds, ids, 1);
	cb_events_move_last(&ev, 1);
	const char *want[] = {"\"a\"", "\"d\"", "\"b\"", "\"c\""};
	for (size_t i = 0; i < 4; i++)
		ck_assert_ptr_nonnull(strstr(ev.items[i].json, want[i]));
	cb_events_move_last(&ev, 3); /* already last: no change */
	ck_assert_ptr_nonnull(strstr(ev.items[3].json, "\"c\""));
	cb_events_clear(&ev);
}
END_TEST

static const char *
stamp_of(const char *json)
{
	const char *at = strstr(json, "\"at\":\"");

	ck_assert_ptr_nonnull(at);
	return at + 6;
}

START_TEST(a_moved_event_is_stamped_no_later_than_the_next)
{
	static const char *const kinds[] = {"chat"};
	long long ids[] = {1};
	struct cb_events ev = {0};

	cb_events_add(&ev, "first", 1, json_object_new_object(), kinds, ids, 1);
	usleep(2000);
	cb_events_add(&ev, "later", 1, json_object_new_object(), kinds, ids, 1);
	ck_assert(
	    strncmp(stamp_of(ev.items[0].json), stamp_of(ev.items[1].json), CB_STAMP_LEN) < 0);
	cb_events_move_last(&ev, 0);
	ck_assert_ptr_nonnull(strstr(ev.items[0].json, "\"later\""));
	ck_assert(
	    strncmp(stamp_of(ev.items[0].json), stamp_of(ev.items[1].json), CB_STAMP_LEN) == 0);
	ck_assert_int_eq(stamp_of(ev.items[0].json)[CB_STAMP_LEN], '"');
	json_object *parsed = json_tokener_parse(ev.items[0].json);
	ck_assert_ptr_nonnull(parsed);
	json_object_put(parsed);
	cb_events_clear(&ev);
}
END_TEST

static json_object *
user_with_status(const char *status)
{
	json_object *user = json_object_new_object();

	json_object_object_add(user, "status", json_object_new_string(status));
	return user;
}

START_TEST(a_later_agent_status_replaces_the_earlier_and_keeps_its_channels)
{
	static const char *const kinds[] = {"agent", "department", "department"};
	static const char *const chat_kinds[] = {"chat"};
	long long moved[] = {4, 2, 1}, settled[] = {4, 2, 0}, other[] = {5, 2, 0}, chat[] = {9};
	struct cb_events ev = {0};

	cb_events_add_status(&ev, 4, user_with_status("available"), kinds, moved, 3);
	cb_events_add_status(&ev, 5, user_with_status("available"), kinds, other, 3);
	cb_events_add(&ev, "chat.assigned", 9, json_object_new_object(), chat_kinds, chat, 1);
	cb_events_add_status(&ev, 4, user_with_status("busy"), kinds, settled, 3);
	ck_assert_uint_eq(ev.n, 3);
	ck_assert_str_eq(ev.items[0].channels, "agent/5,department/2");
	ck_assert_str_eq(ev.items[1].channels, "chat/9");
	/* the department the agent left (1) still hears of it, once */
	ck_assert_str_eq(ev.items[2].channels, "agent/4,department/2,department/1");
	ck_assert_ptr_nonnull(strstr(ev.items[2].json, "\"busy\""));
	cb_events_add_status(&ev, 4, user_with_status("available"), kinds, settled, 3);
	ck_assert_uint_eq(ev.n, 3);
	ck_assert_str_eq(ev.items[2].channels, "agent/4,department/2,department/1");
	ck_assert_ptr_nonnull(strstr(ev.items[2].json, "\"available\""));
	cb_events_clear(&ev);
}
END_TEST

START_TEST(a_status_event_gets_new_data_and_keeps_its_channels)
{
	static const char *const kinds[] = {"agent", "department"};
	static const char *const chat_kinds[] = {"chat"};
	long long ids[] = {4, 2}, chat[] = {9};
	struct cb_events ev = {0};

	cb_events_add(&ev, "chat.closed", 9, user_with_status("x"), chat_kinds, chat, 1);
	cb_events_add_status(&ev, 4, user_with_status("busy"), kinds, ids, 2);
	cb_events_set_status(&ev, 1, user_with_status("available"));
	cb_events_set_status(&ev, 0, user_with_status("not for a chat event"));
	ck_assert_str_eq(ev.items[1].channels, "agent/4,department/2");
	json_object *env = json_tokener_parse(ev.items[1].json);
	ck_assert_str_eq(
	    json_object_get_string(json_object_object_get(env, "type")), "agent.status");
	ck_assert(json_object_object_get(env, "chat_id") == NULL);
	ck_assert_str_eq(json_object_get_string(
	                     json_object_object_get(json_object_object_get(env, "data"), "status")),
	    "available");
	json_object_put(env);
	ck_assert_ptr_null(strstr(ev.items[0].json, "not for a chat event"));
	cb_events_clear(&ev);
}
END_TEST

START_TEST(also_to_adds_a_channel_once)
{
	static const char *const kinds[] = {"chat"};
	long long ids[] = {9};
	struct cb_events ev = {0};

	cb_events_add(&ev, "message.created", 9, json_object_new_object(), kinds, ids, 1);
	cb_events_also_to(&ev, 0, "agent", 3);
	cb_events_also_to(&ev, 0, "agent", 3);
	cb_events_also_to(&ev, 0, "agent", 0);
	cb_events_also_to(&ev, 1, "agent", 4); /* no such event */
	ck_assert_str_eq(ev.items[0].channels, "chat/9,agent/3");
	cb_events_also_to(&ev, 0, "agent", 30);
	ck_assert_str_eq(ev.items[0].channels, "chat/9,agent/3,agent/30");
	cb_events_clear(&ev);
}
END_TEST

Suite *
cb_suite_events(void)
{
	Suite *s = suite_create("events");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, envelope_has_type_chat_at_data);
	tcase_add_test(tc, missing_and_repeated_channels_are_dropped);
	tcase_add_test(tc, no_channel_no_event_and_null_chat_id);
	tcase_add_test(tc, move_last_keeps_the_rest_in_order);
	tcase_add_test(tc, a_moved_event_is_stamped_no_later_than_the_next);
	tcase_add_test(tc, a_later_agent_status_replaces_the_earlier_and_keeps_its_channels);
	tcase_add_test(tc, a_status_event_gets_new_data_and_keeps_its_channels);
	tcase_add_test(tc, also_to_adds_a_channel_once);
	suite_add_tcase(s, tc);
	return s;
}
