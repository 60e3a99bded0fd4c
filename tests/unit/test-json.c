/* test-json.c - body parsing, typed fields with 422s, and the field rules (fcgi/json.c, fcgi/validate.c). */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "json.h"
#include "tests.h"
#include "util.h"
#include "validate.h"

static json_object *
parse_ok(const char *text)
{
	struct cb_error e = {0};
	json_object *obj;

	ck_assert_int_eq(cb_json_parse_body(text, strlen(text), &obj, &e), CB_OK);
	return obj;
}

static void
parse_fails_saying(const char *text, size_t len, const char *message)
{
	json_object *obj = NULL;
	struct cb_error e = {0};

	ck_assert_int_eq(cb_json_parse_body(text, len, &obj, &e), CB_ERR_REPLY);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.message, message);
}

static void
parse_fails(const char *text, size_t len)
{
	struct cb_error e = {0};
	json_object *obj = (json_object *)1;

	ck_assert_int_eq(cb_json_parse_body(text, len, &obj, &e), CB_ERR_REPLY);
	ck_assert_ptr_null(obj);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.code, "bad_json");
	ck_assert_ptr_null(e.field);
}

START_TEST(body_must_be_one_json_object)
{
	json_object *obj = parse_ok("{\"a\": 1}  \n");
	ck_assert(json_object_is_type(obj, json_type_object));
	json_object_put(obj);
	obj = parse_ok(""); /* an empty body reads as {} */
	ck_assert_int_eq(json_object_object_length(obj), 0);
	json_object_put(obj);

	parse_fails("{", 1);
	parse_fails("{\"a\":1} x", 9);
	/* json-c stops at a NUL byte: what follows it is not part of the value */
	parse_fails_saying("{\"a\":1}\0x", 9, "the body is not valid JSON: data follows the value");
	parse_fails("[1,2]", 5);
	parse_fails("\"text\"", 6);
	parse_fails("null", 4);
	parse_fails("{'a': 1}", 8);
	parse_fails("{\"a\": \"\xff\"}", 10); /* not UTF-8 */
	parse_fails("{\"a\": 01}", 9);
	parse_fails("{\"a\": NaN}", 10);
	parse_fails("{\"a\": Infinity}", 15);
	parse_fails("{\"a\": \"\t\"}", 10); /* a raw control character in a string */
	parse_fails("{\"a\": 1,}", 9);
	/* numbers json-c lets through that RFC 8259 does not */
	parse_fails_saying("{\"a\": 1.}", 9, "the body is not valid JSON: a malformed number");
	parse_fails("{\"a\": -01}", 10);
	parse_fails("{\"a\": 1.e5}", 11);
	parse_fails("{\"a\": 1e}", 9);
	parse_fails("{\"a\": -}", 8);
	parse_fails("{\"a\": [1, 2.]}", 14);
	obj = parse_ok("{\"a\": [0, -0, 0.5, -10.25e-3, 1E+2, 7e0, 120]}");
	json_object_put(obj);
	/* half a surrogate pair: json-c would store U+FFFD instead */
	parse_fails_saying("{\"a\": \"\\ud800\"}", 15,
	    "the body is not valid JSON: a \\u escape names half of a surrogate pair");
	parse_fails("{\"a\": \"\\uDC00x\"}", 16);
	parse_fails("{\"a\": \"\\ud83d\\u0041\"}", 21);
	parse_fails("{\"a\": \"x\\uD83D\"}", 16);
	parse_fails("{\"a\": \"\\ude00\\ud83d\"}", 21);
	obj = parse_ok("{\"a\": \"\\ud83d\\ude00 \\\\ud800 \\u00e9\"}");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(obj, "a")),
	    "\xf0\x9f\x98\x80 \\ud800 \xc3\xa9");
	json_object_put(obj);
	/* json-c's "continue" is told apart: a bare scalar, a body cut short */
	parse_fails("1", 1);
	parse_fails_saying(" 12", 3, "the body must be a JSON object");
	parse_fails_saying("true", 4, "the body must be a JSON object");
	parse_fails_saying(
	    "{\"a\": 1", 7, "the body is not valid JSON: it ends before the value does");
	obj = parse_ok("{\"a\": [1e5, 2E-3, true, false, null, \"it's \\\"x\\\"\"]}");
	json_object_put(obj);
}
END_TEST

START_TEST(string_fields_check_type_length_and_blankness)
{
	json_object *obj = parse_ok(
	    "{\"name\":\"Caf\\u00e9\",\"n\":5,\"blank\":\"  \\t\",\"nul\":\"a\\u0000b\",\"z\":null}");
	struct cb_error e = {0};
	struct cb_field f;

	ck_assert_int_eq(cb_json_string(obj, "name", CB_F_REQUIRED, 1, 4, &f, &e), CB_OK);
	ck_assert(f.present);
	ck_assert_str_eq(f.s, "Caf\xc3\xa9"); /* four characters, five bytes */
	ck_assert_int_eq(cb_json_string(obj, "name", 0, 1, 3, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.code, "validation_error");
	ck_assert_str_eq(e.field, "name");
	ck_assert_int_eq(cb_json_string(obj, "n", 0, 0, 10, &f, &e), CB_ERR_REPLY);
	ck_assert_str_eq(e.field, "n");
	ck_assert_int_eq(
	    cb_json_string(obj, "missing", CB_F_REQUIRED, 0, 10, &f, &e), CB_ERR_REPLY);
	ck_assert_str_eq(e.field, "missing");
	ck_assert_int_eq(cb_json_string(obj, "missing", 0, 0, 10, &f, &e), CB_OK);
	ck_assert(!f.present);
	ck_assert_int_eq(cb_json_string(obj, "blank", CB_F_NOTBLANK, 1, 10, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(cb_json_string(obj, "blank", 0, 1, 10, &f, &e), CB_OK);
	ck_assert_str_eq(f.s, "  \t");
	/* blank reads as null where a field may be left out: a transfer's reason */
	ck_assert_int_eq(
	    cb_json_string(obj, "blank", CB_F_NULLABLE | CB_F_BLANK_NULL, 0, 10, &f, &e), CB_OK);
	ck_assert(f.present && f.is_null && f.s == NULL);
	ck_assert_int_eq(
	    cb_json_string(obj, "name", CB_F_NULLABLE | CB_F_BLANK_NULL, 0, 10, &f, &e), CB_OK);
	ck_assert(!f.is_null && f.s != NULL);
	ck_assert_int_eq(cb_json_string(obj, "nul", 0, 0, 10, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(cb_json_string(obj, "z", 0, 0, 10, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(cb_json_string(obj, "z", CB_F_NULLABLE, 0, 10, &f, &e), CB_OK);
	ck_assert(f.present && f.is_null);
	json_object_put(obj);
}
END_TEST

START_TEST(blank_means_unicode_white_space_and_zero_width_characters)
{
	static const char *const blank[] = {"\\u00a0\\u00a0", "\\u3000", " \\u2003\\n",
	    "\\u2028\\u2029", "\\u0085", "\\u1680", "\\u202f\\u205f", "\\u200b\\ufeff",
	    "\\u000b\\u000c\\r"};
	static const char *const text[] = {
	    "\\u00a0x", "\\u3000\\u4e2d", ".", "\\ud83d\\ude00", "\\u00e9", "\\u2010"};
	struct cb_error e = {0};
	struct cb_field f;
	char body[64];

	for (size_t i = 0; i < CB_ARRAY_LEN(blank); i++) {
		snprintf(body, sizeof body, "{\"s\":\"%s\"}", blank[i]);
		json_object *obj = parse_ok(body);
		ck_assert_msg(
		    cb_json_string(obj, "s", CB_F_NOTBLANK, 1, 10, &f, &e) == CB_ERR_REPLY,
		    "%s is blank", blank[i]);
		json_object_put(obj);
	}
	for (size_t i = 0; i < CB_ARRAY_LEN(text); i++) {
		snprintf(body, sizeof body, "{\"s\":\"%s\"}", text[i]);
		json_object *obj = parse_ok(body);
		ck_assert_msg(cb_json_string(obj, "s", CB_F_NOTBLANK, 1, 10, &f, &e) == CB_OK,
		    "%s is not blank", text[i]);
		json_object_put(obj);
	}
}
END_TEST

START_TEST(int_and_bool_fields_are_strict)
{
	json_object *obj = parse_ok(
	    "{\"i\":7,\"d\":7.0,\"s\":\"7\",\"big\":123456789012345678901234,\"b\":true,\"n\":0}");
	struct cb_error e = {0};
	struct cb_field f;

	ck_assert_int_eq(cb_json_int(obj, "i", CB_F_REQUIRED, 1, 100, &f, &e), CB_OK);
	ck_assert_int_eq(f.i, 7);
	ck_assert_int_eq(cb_json_int(obj, "i", 0, 8, 100, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(cb_json_int(obj, "d", 0, 1, 100, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(cb_json_int(obj, "s", 0, 1, 100, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(cb_json_int(obj, "big", 0, 1, 100, &f, &e), CB_ERR_REPLY);
	ck_assert_int_eq(cb_json_bool(obj, "b", CB_F_REQUIRED, &f, &e), CB_OK);
	ck_assert_int_eq(f.i, 1);
	ck_assert_int_eq(cb_json_bool(obj, "n", 0, &f, &e), CB_ERR_REPLY);
	ck_assert_str_eq(e.field, "n");
	json_object_put(obj);
}
END_TEST

/*
 * An id takes every BIGINT, up to 2^63 - 1; json-c reads anything larger as
 * 2^63 - 1 too, which must not name the object that has that id.
 */
START_TEST(int_fields_take_the_largest_id_and_nothing_past_it)
{
	static const char *const past[] = {"9223372036854775808", "18446744073709551615",
	    "18446744073709551616", "123456789012345678901234"};
	struct cb_error e = {0};
	struct cb_field f;
	char text[64];

	json_object *obj = parse_ok("{\"id\":9223372036854775807,\"js\":9007199254740993}");
	ck_assert_int_eq(cb_json_int(obj, "id", CB_F_REQUIRED, 1, CB_ID_MAX, &f, &e), CB_OK);
	ck_assert(f.i == CB_ID_MAX);
	ck_assert_int_eq(cb_json_int(obj, "js", CB_F_REQUIRED, 1, CB_ID_MAX, &f, &e), CB_OK);
	ck_assert(f.i == 9007199254740993LL);
	json_object_put(obj);
	for (size_t i = 0; i < CB_ARRAY_LEN(past); i++) {
		snprintf(text, sizeof text, "{\"id\":%s}", past[i]);
		obj = parse_ok(text);
		ck_assert_msg(
		    cb_json_int(obj, "id", CB_F_REQUIRED, 1, CB_ID_MAX, &f, &e) == CB_ERR_REPLY,
		    "%s was taken", past[i]);
		ck_assert_str_eq(e.field, "id");
		json_object_put(obj);
	}
}
END_TEST

START_TEST(enum_fields_name_the_choices)
{
	static const char *const choices[] = {"available", "busy", "offline", NULL};
	json_object *obj = parse_ok("{\"ok\":\"busy\",\"bad\":\"away\"}");
	struct cb_error e = {0};
	struct cb_field f;

	ck_assert_int_eq(cb_json_enum(obj, "ok", CB_F_REQUIRED, choices, &f, &e), CB_OK);
	ck_assert_str_eq(f.s, "busy");
	ck_assert_int_eq(cb_json_enum(obj, "bad", CB_F_REQUIRED, choices, &f, &e), CB_ERR_REPLY);
	ck_assert_ptr_nonnull(strstr(e.message, "available, busy, offline"));
	json_object_put(obj);
}
END_TEST

START_TEST(usernames_emails_and_keys)
{
	ck_assert(cb_valid_username("alice_cc"));
	ck_assert(cb_valid_username("a.b-c"));
	ck_assert(!cb_valid_username("ab"));
	ck_assert(!cb_valid_username("has space"));
	ck_assert(!cb_valid_username("caf\xc3\xa9"));
	ck_assert(!cb_valid_username("x23456789012345678901234567890123456789012345678901"));
	ck_assert(cb_valid_email("a@b.co"));
	ck_assert(!cb_valid_email("a@b"));
	ck_assert(!cb_valid_email("@b.co"));
	ck_assert(!cb_valid_email("a@@b.co"));
	ck_assert(!cb_valid_email("a b@c.co"));
	ck_assert(cb_valid_idempotency_key("k-1"));
	ck_assert(!cb_valid_idempotency_key(""));
	ck_assert(cb_valid_idempotency_key("has space")); /* printable: 0x20-0x7e */
	ck_assert(!cb_valid_idempotency_key("tab\there"));
	ck_assert(!cb_valid_idempotency_key("del\x7f"));
	char long_key[130];
	memset(long_key, 'k', 129);
	long_key[129] = '\0';
	ck_assert(!cb_valid_idempotency_key(long_key));
	long_key[128] = '\0';
	ck_assert(cb_valid_idempotency_key(long_key));
}
END_TEST

/* What json-c makes of s as a string, with cb_json_text's flags. */
static void
assert_written_like_json_c(const char *s)
{
	struct cb_buf b = {0};
	json_object *j = json_object_new_string(s);

	cb_json_write_string(&b, s);
	ck_assert_str_eq(b.data, cb_json_text(j));
	json_object_put(j);
	cb_buf_free(&b);
}

START_TEST(written_strings_match_json_c)
{
	char one[2] = {0};

	/* Every byte on its own, then in company, then the usual suspects. */
	for (int c = 1; c < 256; c++) {
		one[0] = (char)c;
		assert_written_like_json_c(one);
	}
	assert_written_like_json_c("");
	assert_written_like_json_c("plain text, no escapes");
	assert_written_like_json_c("a \"quoted\" back\\slash / slash\tand\ttabs\r\n");
	assert_written_like_json_c("\x01\x1f\x7f bell\a vt\v esc\x1b");
	assert_written_like_json_c("UTF-8: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 </script>");
}
END_TEST

START_TEST(written_rows_match_the_row_objects)
{
	char *names[] = {"id", "_hidden", "content", "flag", "created_at", "agent_id"};
	enum cb_col_type types[] = {
	    CB_COL_INT, CB_COL_INT, CB_COL_STR, CB_COL_BOOL, CB_COL_TIME, CB_COL_INT};
	struct cb_val vals[] = {
	    {0, 7, NULL},
	    {0, 1, NULL},
	    {0, 0, "h\"i\n/\x02"},
	    {0, 1, NULL},
	    {0, 0, "2026-11-24T10:00:00.123Z"},
	    {1, 0, NULL},
	    {0, -9000000000LL, NULL},
	    {0, 2, NULL},
	    {1, 0, NULL},
	    {0, 0, NULL},
	    {0, 0, "2026-11-24T10:00:01.000Z"},
	    {0, 42, NULL},
	};
	struct cb_res res = {.ncols = 6, .names = names, .types = types, .vals = vals};

	for (unsigned rows = 0; rows <= 2; rows++) {
		for (int reverse = 0; reverse <= 1; reverse++) {
			struct cb_buf b = {0};
			json_object *arr = json_object_new_array();

			res.nrows = rows;
			for (unsigned i = 0; i < rows; i++)
				json_object_array_add(
				    arr, cb_res_row_json(&res, reverse ? rows - 1 - i : i));
			cb_res_write_array(&res, reverse, &b);
			ck_assert_str_eq(b.data, cb_json_text(arr));
			json_object_put(arr);
			cb_buf_free(&b);
		}
	}
}
END_TEST

Suite *
cb_suite_json(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, body_must_be_one_json_object);
	tcase_add_test(tc, string_fields_check_type_length_and_blankness);
	tcase_add_test(tc, blank_means_unicode_white_space_and_zero_width_characters);
	tcase_add_test(tc, int_and_bool_fields_are_strict);
	tcase_add_test(tc, int_fields_take_the_largest_id_and_nothing_past_it);
	tcase_add_test(tc, enum_fields_name_the_choices);
	tcase_add_test(tc, usernames_emails_and_keys);
	tcase_add_test(tc, written_strings_match_json_c);
	tcase_add_test(tc, written_rows_match_the_row_objects);
	suite_add_tcase(s, tc);
	return s;
}
