/* test-util.c - UTF-8 rules, integer parsing, the string buffer and time text (fcgi/util.c). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#include "tests.h"
#include "util.h"

START_TEST(utf8_valid_accepts_well_formed)
{
	ck_assert(cb_utf8_valid("plain", 5));
	ck_assert(cb_utf8_valid("caf\xc3\xa9", 5));
	ck_assert(cb_utf8_valid("\xe2\x82\xac", 3)); /* € */
	ck_assert(cb_utf8_valid("\xf0\x9f\x98\x80", 4)); /* 😀 */
	ck_assert(cb_utf8_valid("", 0));
}
END_TEST

START_TEST(utf8_valid_rejects_malformed)
{
	ck_assert(!cb_utf8_valid("\xff", 1));
	ck_assert(!cb_utf8_valid("\xc3", 1)); /* truncated */
	ck_assert(!cb_utf8_valid("\xc0\xaf", 2)); /* overlong '/' */
	ck_assert(!cb_utf8_valid("\xe0\x80\xaf", 3)); /* overlong */
	ck_assert(!cb_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
	ck_assert(!cb_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
	ck_assert(!cb_utf8_valid("ab\x80", 3)); /* stray continuation */
}
END_TEST

START_TEST(utf8_scrub_leaves_only_well_formed_text)
{
	char path[] = "/api/x\xff/caf\xc3\xa9/\xc3(/\xed\xa0\x80/\xe2\x82";
	char whole[] = "\xf0\x9f\x98\x80 \xe2\x82\xac";

	cb_utf8_scrub(path);
	ck_assert_str_eq(path, "/api/x?/caf\xc3\xa9/?(/?\?\?/?\?");
	ck_assert(cb_utf8_valid(path, strlen(path)));
	cb_utf8_scrub(whole);
	ck_assert_str_eq(whole, "\xf0\x9f\x98\x80 \xe2\x82\xac");
}
END_TEST

START_TEST(utf8_length_counts_code_points)
{
	ck_assert_uint_eq(cb_utf8_length("abc", 3), 3);
	ck_assert_uint_eq(cb_utf8_length("caf\xc3\xa9", 5), 4);
	ck_assert_uint_eq(cb_utf8_length("\xf0\x9f\x98\x80\xe2\x82\xac", 7), 2);
}
END_TEST

START_TEST(parse_int_whole_numbers_in_range)
{
	long long v = -1;

	ck_assert_int_eq(cb_parse_int("42", 0, 100, &v), CB_OK);
	ck_assert_int_eq(v, 42);
	ck_assert_int_eq(cb_parse_int("-3", -5, 5, &v), CB_OK);
	ck_assert_int_eq(v, -3);
	ck_assert_int_eq(cb_parse_int("101", 0, 100, &v), CB_ERR);
	ck_assert_int_eq(cb_parse_int("4x", 0, 100, &v), CB_ERR);
	ck_assert_int_eq(cb_parse_int("", 0, 100, &v), CB_ERR);
	ck_assert_int_eq(cb_parse_int(" 4", 0, 100, &v), CB_ERR);
	ck_assert_int_eq(cb_parse_int("99999999999999999999", 0, 100, &v), CB_ERR);
	ck_assert_int_eq(v, -3); /* untouched on failure */
}
END_TEST

START_TEST(buf_grows_and_formats)
{
	struct cb_buf b = {0};

	for (int i = 0; i < 1000; i++)
		cb_buf_printf(&b, "%d,", i % 10);
	ck_assert_uint_eq(b.len, 2000);
	ck_assert(strncmp(b.data, "0,1,2,", 6) == 0);
	cb_buf_append(&b, "x", 1);
	ck_assert_int_eq(b.data[b.len - 1], 'x');
	ck_assert_int_eq(b.data[b.len], '\0');
	cb_buf_free(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

/*
 * vsnprintf fails (-1) on a wide character the locale cannot encode (and on
 * text past INT_MAX bytes): the buffer's length went one byte back, and
 * xasprintf returned a byte never written. Both abort instead, as running
 * out of memory does.
 */
START_TEST(buf_printf_aborts_when_the_format_fails)
{
	struct cb_buf b = {0};

	cb_buf_printf(&b, "x%lc", (wint_t)0x110000);
	ck_abort_msg("cb_buf_printf returned, its length now %zu", b.len);
}
END_TEST

START_TEST(asprintf_aborts_when_the_format_fails)
{
	char *s = xasprintf("x%lc", (wint_t)0x110000);

	ck_abort_msg("xasprintf returned %zu bytes of text", strlen(s));
}
END_TEST

START_TEST(buf_appends_integers_like_printf)
{
	const long long values[] = {0, 1, -1, 9, 10, -10, 99, 100, 123456789, -987654321, 1LL << 53,
	    LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
	char want[32];

	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		struct cb_buf b = {0};

		cb_buf_append(&b, "<", 1);
		cb_buf_append_int(&b, values[i]);
		snprintf(want, sizeof want, "<%lld", values[i]);
		ck_assert_str_eq(b.data, want);
		cb_buf_free(&b);
	}
}
END_TEST

START_TEST(utc_times_format_like_printf)
{
	/* Field values at, below and past their width, as MariaDB can hand them over. */
	const unsigned long f[][7] = {{2026, 11, 24, 10, 5, 9, 7}, {1970, 1, 1, 0, 0, 0, 0},
	    {9999, 12, 31, 23, 59, 59, 999}, {0, 0, 0, 0, 0, 0, 0},
	    {12026, 123, 100, 24, 60, 61, 1000}, {5, 9, 9, 9, 9, 9, 10}};
	char got[32], want[32];

	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		cb_format_utc(got, (unsigned)f[i][0], (unsigned)f[i][1], (unsigned)f[i][2],
		    (unsigned)f[i][3], (unsigned)f[i][4], (unsigned)f[i][5], f[i][6]);
		snprintf(want, sizeof want, "%04lu-%02lu-%02luT%02lu:%02lu:%02lu.%03luZ",
		    f[i][0] % 10000, f[i][1] % 100, f[i][2] % 100, f[i][3] % 100, f[i][4] % 100,
		    f[i][5] % 100, f[i][6] % 1000);
		ck_assert_str_eq(got, want);
	}
	cb_format_utc(got, 2026, 11, 24, 10, 5, 9, 7);
	ck_assert_str_eq(got, "2026-11-24T10:05:09.007Z");
}
END_TEST

Suite *
cb_suite_util(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, utf8_valid_accepts_well_formed);
	tcase_add_test(tc, utf8_valid_rejects_malformed);
	tcase_add_test(tc, utf8_scrub_leaves_only_well_formed_text);
	tcase_add_test(tc, utf8_length_counts_code_points);
	tcase_add_test(tc, parse_int_whole_numbers_in_range);
	tcase_add_test(tc, buf_grows_and_formats);
	tcase_add_test_raise_signal(tc, buf_printf_aborts_when_the_format_fails, SIGABRT);
	tcase_add_test_raise_signal(tc, asprintf_aborts_when_the_format_fails, SIGABRT);
	tcase_add_test(tc, buf_appends_integers_like_printf);
	tcase_add_test(tc, utc_times_format_like_printf);
	suite_add_tcase(s, tc);
	return s;
}
