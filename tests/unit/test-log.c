/* test-log.c - log lines (fcgi/log.c): one line per message, whatever it quotes. */
#define _GNU_SOURCE /* pipe2, O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tests.h"
#include "util.h"

/* What cb_log wrote to stderr for one message quoting text. */
static char *
logged(const char *text)
{
	char *path = cb_test_temp_file("log");
	static char out[4096];
	int saved = dup(2);
	FILE *f;

	fflush(stderr);
	ck_assert(freopen(path, "w", stderr) != NULL);
	cb_log(CB_LOG_ERROR, "request GET %s failed", text);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fopen(path, "r");
	ck_assert(f != NULL);
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = '\0';
	fclose(f);
	unlink(path);
	free(path);
	return out;
}

START_TEST(a_newline_from_the_request_does_not_start_a_line)
{
	/* GET /api/x%0a2026-...Z [1] error: forged: nginx decodes the path. */
	const char *out = logged("/api/x\n2026-11-25T00:00:00.000Z [1] error: forged\r");

	ck_assert_ptr_nonnull(
	    strstr(out, "/api/x\\x0a2026-11-25T00:00:00.000Z [1] error: forged\\x0d failed\n"));
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	ck_assert_ptr_null(strchr(out, '\r'));
}
END_TEST

START_TEST(other_text_is_written_as_it_is)
{
	const char *out = logged("/api/caf\xc3\xa9 \"q\" \\x");

	ck_assert_ptr_nonnull(
	    strstr(out, "error: request GET /api/caf\xc3\xa9 \"q\" \\x failed\n"));
	ck_assert_ptr_null(strchr(logged("tab\there"), '\t'));
}
END_TEST

START_TEST(a_long_line_with_a_control_character_is_cut_to_the_room_it_had)
{
	/* The escape takes 4 bytes for 1: the plain text after it is what gets cut. */
	char text[2100];

	text[0] = '\n';
	memset(text + 1, 'a', sizeof text - 2);
	text[sizeof text - 1] = '\0';
	const char *out = logged(text);
	const char *msg = strstr(out, "error: request GET \\x0aaaa");

	ck_assert_ptr_nonnull(msg);
	msg += strlen("error: ");
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	ck_assert_uint_eq(strlen(msg), 2047 + 1); /* the room of the line, and its newline */
	ck_assert_int_eq(msg[2046], 'a');
}
END_TEST

START_TEST(a_line_names_the_request_being_served)
{
	const char *id = "0123456789abcdef0123456789abcdef";
	char want[128];

	cb_log_request(id);
	snprintf(want, sizeof want, "] error: req=%s request GET /api/x failed\n", id);
	ck_assert_ptr_nonnull(strstr(logged("/api/x"), want));
	cb_log_request(NULL);
	ck_assert_ptr_null(strstr(logged("/api/x"), "req="));
	ck_assert_ptr_nonnull(strstr(logged("/api/x"), "] error: request GET /api/x failed\n"));
}
END_TEST

START_TEST(an_id_that_is_not_nginxs_is_not_logged)
{
	/* Not 1-32 hex digits: nothing, rather than a forged field or line. */
	const char *bad[] = {"", "abc def", "abc\n2026-11-25T00:00:00.000Z [1] error: x",
	    "0123456789abcdef0123456789abcdef0", "req=1"};

	for (size_t i = 0; i < CB_ARRAY_LEN(bad); i++) {
		cb_log_request(bad[i]);
		ck_assert_ptr_null(strstr(logged("/api/x"), "req="));
	}
	cb_log_request("abc");
	ck_assert_ptr_nonnull(strstr(logged("/api/x"), "] error: req=abc request GET"));
	cb_log_request(NULL);
}
END_TEST

START_TEST(a_line_of_control_characters_is_one_write)
{
	/*
	 * Each write into a packet-mode pipe is a packet of its own (up to
	 * PIPE_BUF, 4 KiB), and a read takes one packet: a line that took two
	 * writes, between which another worker's line could land, comes in two.
	 */
	static char got[16384];
	char text[2100];
	int p[2], saved = dup(2);

	memset(text, '\x01', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	ck_assert_int_eq(pipe2(p, O_DIRECT | O_NONBLOCK), 0);
	fflush(stderr);
	dup2(p[1], 2);
	cb_log(CB_LOG_ERROR, "request GET %s failed", text);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], got, sizeof got);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(got[n - 1], '\n');
	ck_assert_ptr_eq(memchr(got, '\n', (size_t)n), got + n - 1);
	ck_assert_int_eq(read(p[0], got, sizeof got), 0); /* nothing more: one write */
	close(p[0]);
}
END_TEST

Suite *
cb_suite_log(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, a_newline_from_the_request_does_not_start_a_line);
	tcase_add_test(tc, other_text_is_written_as_it_is);
	tcase_add_test(tc, a_long_line_with_a_control_character_is_cut_to_the_room_it_had);
	tcase_add_test(tc, a_line_names_the_request_being_served);
	tcase_add_test(tc, an_id_that_is_not_nginxs_is_not_logged);
	tcase_add_test(tc, a_line_of_control_characters_is_one_write);
	suite_add_tcase(s, tc);
	return s;
}
