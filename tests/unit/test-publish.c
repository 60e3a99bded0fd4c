/*
 * test-publish.c - the publisher client against a scripted server on a unix
 * socket: what it sends, how it reads every kind of answer, when it dials
 * again, and that it never sends a publish twice; what it reads of a
 * channel, and when a subscriber's resume is one Nchan can take.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "publish.h"
#include "tests.h"
#include "util.h"

/* After its answer the server keeps the connection, closes it, or (HANG) never answers on it. */
enum after { KEEP, CLOSE, HANG };

/* One answer of the scripted server, and what it does next. */
struct step {
	const char *answer;
	enum after after;
	int dribble; /* write the answer a byte at a time */
};

/*
 * The clocks as the code under test reads them, each shifted by what a test
 * sets: the wall clock can step (NTP, a VM resumed), the monotonic one only
 * runs on. Defined here, clock_gettime takes the place of libc's in this
 * program; with both shifts 0 it is the kernel's.
 */
static long long realtime_shift_ms, monotonic_shift_ms;

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	long long shift = id == CLOCK_REALTIME ? realtime_shift_ms
	    : id == CLOCK_MONOTONIC            ? monotonic_shift_ms
	                                       : 0;

	if (syscall(SYS_clock_gettime, id, ts) != 0)
		return -1;
	long long ns = (long long)ts->tv_sec * 1000000000 + ts->tv_nsec + shift * 1000000;
	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
	return 0;
}

static struct cb_config cfg;
static pid_t server = -1;
static int log_fd =
    -1; /* the server's log: "A\n" per connection, "R<len>\n<request>" per request */

static void
setup(void)
{
	cb_config_defaults(&cfg);
	free(cfg.publish_socket);
	cfg.publish_socket = xasprintf("/tmp/carebot-test-pub.%ld", (long)getpid());
	unlink(cfg.publish_socket);
	cb_publish_init(&cfg);
}

static void
teardown(void)
{
	cb_publish_cleanup();
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
	}
	unlink(cfg.publish_socket);
	cb_config_free(&cfg);
}

/* Reads one request (head and Content-Length body) into buf. Its length, 0 at close. */
static size_t
read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char *end;

	buf[0] = '\0';
	while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
	}
	const char *cl = strstr(buf, "Content-Length: ");
	size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
	while (len < want) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
	}
	return len;
}

static void
say(int fd, const struct step *s)
{
	size_t n = strlen(s->answer);

	if (!s->dribble) {
		ck_assert_int_eq(write(fd, s->answer, n), (ssize_t)n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(write(fd, s->answer + i, 1), 1);
		usleep(200);
	}
}

/* The server: listens before it forks, so the client never races it. */
static void
serve(const struct step *script, size_t nsteps)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), pipefd[2];

	strcpy(addr.sun_path, cfg.publish_socket);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, sizeof addr), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	ck_assert_int_eq(pipe(pipefd), 0);
	server = fork();
	ck_assert_int_ge(server, 0);
	if (server > 0) {
		close(lfd);
		close(pipefd[1]);
		log_fd = pipefd[0];
		return;
	}
	close(pipefd[0]);
	size_t i = 0;
	while (i < nsteps) {
		int fd = accept(lfd, NULL, NULL);
		char req[65536];
		size_t len;

		if (fd < 0 || write(pipefd[1], "A\n", 2) != 2)
			_exit(1);
		while (i < nsteps && (len = read_request(fd, req, sizeof req)) > 0) {
			dprintf(pipefd[1], "R%zu\n", len);
			if (write(pipefd[1], req, len) != (ssize_t)len)
				_exit(1);
			const struct step *s = &script[i++];
			if (s->after == HANG)
				break; /* and the connection stays open, unanswered */
			say(fd, s);
			if (s->after == CLOSE)
				break;
		}
		if (i == 0 || script[i - 1].after != HANG)
			close(fd);
	}
	_exit(0);
}

/* Everything the server logged, once it has finished its script (or is killed). */
static char *
server_log(int kill_it)
{
	static char buf[1 << 20];
	size_t len = 0;
	ssize_t n;

	if (kill_it)
		kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	server = -1;
	while ((n = read(log_fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

#define OK_201 "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"

START_TEST(a_publish_is_one_post_of_the_body_to_the_channels)
{
	static const struct step script[] = {{OK_201, KEEP, 0}};

	serve(script, 1);
	ck_assert_int_eq(cb_publish("chat/7,agent/3", "{\"a\":1}"), CB_OK);
	char *log = server_log(0);
	ck_assert_ptr_nonnull(strstr(log, "A\nR"));
	ck_assert_ptr_nonnull(strstr(log, "\nPOST /pub?id=chat/7,agent/3 HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strstr(log, "\r\nHost: localhost\r\n"));
	ck_assert_ptr_nonnull(strstr(log, "\r\nContent-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(log, "\r\nContent-Length: 7\r\n\r\n{\"a\":1}"));
	ck_assert_uint_eq(cb_publish_failures(), 0);
}
END_TEST

START_TEST(one_connection_carries_every_kind_of_answer)
{
	static const struct step script[] = {
	    {"HTTP/1.1 202 Accepted\r\nContent-Length: 22\r\nConnection: keep-alive\r\n\r\n"
	     "queued messages: 1\r\n\r\n",
	        KEEP, 0},
	    {"HTTP/1.1 201 Created\r\ntransfer-encoding: Chunked\r\n\r\n"
	     "5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n",
	        KEEP, 1},
	    {"HTTP/1.1 204 No Content\r\n\r\n", KEEP, 0},
	    {OK_201, KEEP, 1},
	};

	serve(script, 4);
	ck_assert_int_eq(cb_publish("chat/1", "{}"), CB_OK);
	ck_assert_int_eq(cb_publish("chat/1", "{}"), CB_OK);
	ck_assert_int_eq(cb_publish_ping(), CB_OK);
	ck_assert_int_eq(cb_publish("chat/1", "{}"), CB_OK);
	char *log = server_log(0);
	ck_assert_int_eq(count(log, "A\n"), 1);
	ck_assert_int_eq(count(log, "POST /pub?id=chat/1 "), 3);
	ck_assert_int_eq(count(log, "POST /ping "), 1);
}
END_TEST

START_TEST(a_connection_closed_by_the_server_is_dialled_again_and_nothing_is_sent_twice)
{
	static const struct step script[] = {
	    {OK_201, CLOSE, 0}, /* as nginx does at keepalive_timeout, with no warning */
	    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", CLOSE, 0},
	    {OK_201, KEEP, 0},
	};

	serve(script, 3);
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":1}"), CB_OK);
	usleep(50000); /* let the close arrive */
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":2}"), CB_OK);
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":3}"), CB_OK);
	char *log = server_log(0);
	ck_assert_int_eq(count(log, "A\n"), 3);
	ck_assert_int_eq(count(log, "{\"n\":1}"), 1);
	ck_assert_int_eq(count(log, "{\"n\":2}"), 1);
	ck_assert_int_eq(count(log, "{\"n\":3}"), 1);
	ck_assert_uint_eq(cb_publish_failures(), 0);
}
END_TEST

/* Nchan answers 500 when its memory is full; the next message may fit. */
START_TEST(a_refusal_is_a_failure_and_the_next_publish_is_tried)
{
	static const struct step script[] = {
	    {"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nerr", KEEP, 0},
	    {OK_201, KEEP, 0},
	};

	serve(script, 2);
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":1}"), CB_ERR);
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":2}"), CB_OK);
	ck_assert_uint_eq(cb_publish_failures(), 1);
	char *log = server_log(0);
	ck_assert_int_eq(count(log, "{\"n\":2}"), 1);
	ck_assert_int_eq(count(log, "A\n"), 1);
}
END_TEST

/*
 * Were the unanswered publish sent again, the server would take it on a new
 * connection. After it, publishing pauses: the next one is not even sent.
 */
START_TEST(a_publisher_that_does_not_answer_is_a_failure_and_is_not_asked_twice)
{
	static const struct step script[] = {{OK_201, KEEP, 0}, {NULL, HANG, 0}, {OK_201, KEEP, 0}};

	serve(script, 3);
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":1}"), CB_OK);
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":2}"), CB_ERR);
	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":3}"), CB_ERR);
	ck_assert_uint_eq(cb_publish_failures(), 2);
	char *log = server_log(1);
	ck_assert_int_eq(count(log, "{\"n\":2}"), 1);
	ck_assert_int_eq(count(log, "{\"n\":3}"), 0);
	ck_assert_int_eq(count(log, "A\n"), 1);
}
END_TEST

/*
 * The pause after an unanswered publish lasts its time however the wall
 * clock steps: set back an hour within it, it paused publishing, every
 * event of the instance lost, for that hour.
 */
START_TEST(the_pause_after_no_answer_ends_in_time_when_the_wall_clock_steps_back)
{
	static const struct step script[] = {{OK_201, KEEP, 0}};

	ck_assert_int_eq(cb_publish("chat/1", "{\"n\":1}"), CB_ERR); /* nothing listens yet */
	realtime_shift_ms = -3600 * 1000LL;
	monotonic_shift_ms = 2500; /* past the pause */
	serve(script, 1);
	int rc = cb_publish("chat/1", "{\"n\":2}");
	realtime_shift_ms = monotonic_shift_ms = 0;
	ck_assert_int_eq(rc, CB_OK);
	ck_assert_int_eq(count(server_log(0), "{\"n\":2}"), 1);
}
END_TEST

START_TEST(an_answer_that_is_not_http_is_a_failure)
{
	static const struct step script[] = {{"SSH-2.0-OpenSSH\r\n\r\n", KEEP, 0}};

	serve(script, 1);
	ck_assert_int_eq(cb_publish_ping(), CB_ERR);
	server_log(1);
}
END_TEST

START_TEST(nothing_listening_is_a_failure)
{
	ck_assert_int_eq(cb_publish_ping(), CB_ERR);
	ck_assert_int_eq(cb_publish("chat/1", "{}"), CB_ERR);
	ck_assert_uint_eq(cb_publish_failures(), 1);
}
END_TEST

START_TEST(channel_info_reads_what_nchan_keeps_on_one_connection)
{
	static const struct step script[] = {
	    {"HTTP/1.1 200 OK\r\nContent-Type: text/json\r\nContent-Length: 86\r\n\r\n"
	     "{\"messages\": 2, \"requested\": -1, \"subscribers\": 0, \"last_message_id\": "
	     "\"1795604968:1\" }",
	        KEEP, 1},
	    {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", KEEP, 0},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "e\r\n{\"messages\": 0\r\n2\r\n }\r\n0\r\n\r\n",
	        KEEP, 0},
	    {"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", KEEP, 0},
	    {OK_201, KEEP, 0},
	};
	long messages = -1;
	long long newest = -1;

	serve(script, 5);
	ck_assert_int_eq(cb_publish_channel_info("chat/7", &messages, &newest), CB_OK);
	ck_assert_int_eq(messages, 2);
	ck_assert_int_eq(newest, 1795604968);
	ck_assert_int_eq(cb_publish_channel_info("department/3", &messages, &newest), CB_OK);
	ck_assert_int_eq(messages, 0); /* no such channel: nothing kept */
	ck_assert_int_eq(newest, 0);
	ck_assert_int_eq(cb_publish_channel_info("agent/4", &messages, &newest), CB_OK);
	ck_assert_int_eq(messages, 0);
	ck_assert_int_eq(cb_publish_channel_info("agent/5", &messages, &newest), CB_ERR);
	/* The bodies were read to their ends: the next publish is understood. */
	ck_assert_int_eq(cb_publish("chat/7", "{}"), CB_OK);
	char *log = server_log(0);
	ck_assert_int_eq(count(log, "A\n"), 1);
	ck_assert_ptr_nonnull(strstr(log, "GET /pub?id=chat/7 HTTP/1.1\r\n"));
	ck_assert_int_eq(count(log, "\r\nAccept: application/json\r\n"), 4);
}
END_TEST

/*
 * An answer with neither Content-Length nor chunked ends when the server
 * closes: its body is still what was asked for, and the next request dials
 * again. A header line without a colon is passed over.
 */
START_TEST(an_answer_that_ends_at_close_is_read_whole_and_the_connection_not_reused)
{
	static const struct step script[] = {
	    {"HTTP/1.1 200 OK\r\nContent-Type: text/json\r\nno colon here\r\n\r\n"
	     "{\"messages\": 3, \"requested\": -1, \"subscribers\": 0, \"last_message_id\": "
	     "\"1795604970:2\" }",
	        CLOSE, 1},
	    {OK_201, KEEP, 0},
	};
	long messages = -1;
	long long newest = -1;

	serve(script, 2);
	ck_assert_int_eq(cb_publish_channel_info("chat/8", &messages, &newest), CB_OK);
	ck_assert_int_eq(messages, 3);
	ck_assert_int_eq(newest, 1795604970);
	ck_assert_int_eq(cb_publish("chat/8", "{}"), CB_OK);
	char *log = server_log(0);
	ck_assert_int_eq(count(log, "A\n"), 2);
	ck_assert_int_eq(count(log, "POST /pub?id=chat/8 "), 1);
}
END_TEST

START_TEST(a_resume_is_asked_in_nchans_order)
{
	/* If-Modified-Since first: a time after 1970's first second is an id, at or before it none. */
	ck_assert(cb_publish_resume_asked("Thu, 01 Jan 1970 00:00:01 GMT", "0", NULL, NULL));
	ck_assert(cb_publish_resume_asked("Wed, 25 Nov 2026 11:00:00 GMT", NULL, NULL, NULL));
	ck_assert(!cb_publish_resume_asked("Thu, 01 Jan 1970 00:00:00 GMT", "0", "1:0", "1:0"));
	ck_assert(!cb_publish_resume_asked("Mon, 31 Dec 1969 23:59:59 GMT", NULL, NULL, NULL));
	ck_assert(cb_publish_resume_asked(
	    "Thursday, 01-Jan-70", NULL, NULL, NULL)); /* unread: cautious */
	/* Then If-None-Match as <time>:<tag>, which hides the two others. */
	ck_assert(cb_publish_resume_asked(NULL, "1:0", NULL, NULL));
	ck_assert(!cb_publish_resume_asked(NULL, "0", "1:0", "1:0"));
	ck_assert(!cb_publish_resume_asked("", "", NULL, NULL));
	/* Then Last-Event-ID or ?last_event_id=. */
	ck_assert(cb_publish_resume_asked(NULL, NULL, "1795604968:1", NULL));
	ck_assert(cb_publish_resume_asked(NULL, NULL, "", "1795604968:1"));
	ck_assert(!cb_publish_resume_asked(NULL, NULL, "", ""));
	ck_assert(!cb_publish_resume_asked(NULL, NULL, NULL, NULL));
}
END_TEST

START_TEST(a_resume_needs_a_kept_event_that_outlives_the_margin)
{
	long long now = 1795604968;

	ck_assert(!cb_publish_resumable(0, 0, now));
	ck_assert(!cb_publish_resumable(0, now, now)); /* expired, and the channel still there */
	ck_assert(cb_publish_resumable(1, now, now));
	ck_assert(
	    cb_publish_resumable(1, now - CB_PUBLISH_KEEP_S + CB_PUBLISH_RESUME_MARGIN_S, now));
	ck_assert(!cb_publish_resumable(
	    1, now - CB_PUBLISH_KEEP_S + CB_PUBLISH_RESUME_MARGIN_S - 1, now));
}
END_TEST

Suite *
cb_suite_publish(void)
{
	Suite *s = suite_create("publish");
	TCase *tc = tcase_create("client");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_publish_is_one_post_of_the_body_to_the_channels);
	tcase_add_test(tc, one_connection_carries_every_kind_of_answer);
	tcase_add_test(
	    tc, a_connection_closed_by_the_server_is_dialled_again_and_nothing_is_sent_twice);
	tcase_add_test(tc, a_refusal_is_a_failure_and_the_next_publish_is_tried);
	tcase_add_test(tc, a_publisher_that_does_not_answer_is_a_failure_and_is_not_asked_twice);
	tcase_add_test(tc, the_pause_after_no_answer_ends_in_time_when_the_wall_clock_steps_back);
	tcase_add_test(tc, an_answer_that_is_not_http_is_a_failure);
	tcase_add_test(tc, nothing_listening_is_a_failure);
	tcase_add_test(tc, channel_info_reads_what_nchan_keeps_on_one_connection);
	tcase_add_test(
	    tc, an_answer_that_ends_at_close_is_read_whole_and_the_connection_not_reused);
	tcase_add_test(tc, a_resume_is_asked_in_nchans_order);
	tcase_add_test(tc, a_resume_needs_a_kept_event_that_outlives_the_margin);
	suite_add_tcase(s, tc);
	return s;
}
