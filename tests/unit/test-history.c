/* test-history.c - the shared store of newest pages: when a page is served and when it is not. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "history.h"
#include "tests.h"
#include "util.h"

static char *path;

static void
setup(void)
{
	int fd;

	path = xstrdup("/tmp/carebot-test-history.XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void
teardown(void)
{
	cb_history_close();
	unlink(path);
	free(path);
}

static struct cb_history_page
page_info(long long id, long long total)
{
	struct cb_history_page p = {
	    .st = {.id = id, .customer_id = 5, .department_id = 2, .agent_id = 9},
	    .total = total,
	    .last_id = 100 + total};

	snprintf(p.st.status, sizeof p.st.status, "active");
	return p;
}

/* Reads chat's page into a fresh buffer: how it was found. */
static enum cb_history_found
found(long long chat, long long limit, struct cb_chat_state *st, long long *total, struct cb_buf *b)
{
	struct cb_history_page p;

	memset(b, 0, sizeof *b);
	enum cb_history_found f = cb_history_get(chat, limit, &p, b);
	if (f != CB_HISTORY_NONE) {
		*st = p.st;
		*total = p.total;
		ck_assert_int_eq(p.last_id, 100 + p.total);
	}
	return f;
}

/* 1 if chat's page is served as it is; otherwise b is freed (a NONE may have grown it). */
static int
get(long long chat, long long limit, struct cb_chat_state *st, long long *total, struct cb_buf *b)
{
	enum cb_history_found f = found(chat, limit, st, total, b);

	if (f != CB_HISTORY_FRESH)
		cb_buf_free(b);
	return f == CB_HISTORY_FRESH;
}

/* Keeps page as chat's newest limit messages, read at stamp s. */
static void
put_at(const struct cb_history_stamp *s, long long chat, long long limit, const char *page,
    size_t len, long long total)
{
	struct cb_history_page p = page_info(chat, total);

	cb_history_put(s, limit, &p, page, len);
}

/* Stamps, then keeps page as chat's newest limit messages. */
static void
put(long long chat, long long limit, const char *page, size_t len, long long total)
{
	struct cb_history_stamp s;

	ck_assert(cb_history_stamp(chat, &s));
	put_at(&s, chat, limit, page, len, total);
}

START_TEST(a_page_is_served_until_its_chat_changes)
{
	struct cb_chat_state st;
	struct cb_buf b;
	long long total = 0;

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	ck_assert(!get(7, 50, &st, &total, &b));
	put(7, 50, "[{\"id\":1}]", 10, 1);
	ck_assert(get(7, 50, &st, &total, &b));
	ck_assert_str_eq(b.data, "[{\"id\":1}]");
	ck_assert_uint_eq(b.len, 10);
	ck_assert_int_eq(total, 1);
	ck_assert_int_eq(st.id, 7);
	ck_assert_int_eq(st.agent_id, 9);
	ck_assert_str_eq(st.status, "active");
	cb_buf_free(&b);
	cb_history_bump(8); /* another chat, another slot */
	ck_assert(get(7, 50, &st, &total, &b));
	cb_buf_free(&b);
	cb_history_bump(7);
	ck_assert(!get(7, 50, &st, &total, &b));
	ck_assert_ptr_null(b.data); /* a miss leaves the buffer alone */
	put(7, 50, "[]", 2, 0);
	ck_assert(get(7, 50, &st, &total, &b));
	ck_assert_str_eq(b.data, "[]");
	cb_buf_free(&b);
	cb_history_bump_all();
	ck_assert(!get(7, 50, &st, &total, &b));
}
END_TEST

START_TEST(a_page_appends_to_what_the_buffer_holds)
{
	struct cb_history_page p;
	struct cb_buf b = {0};

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	put(3, 10, "[1,2]", 5, 2);
	cb_buf_append(&b, "x", 1);
	ck_assert_int_eq(cb_history_get(3, 10, &p, &b), CB_HISTORY_FRESH);
	ck_assert_str_eq(b.data, "x[1,2]");
	cb_buf_free(&b);
}
END_TEST

START_TEST(a_page_read_before_a_change_is_not_kept)
{
	struct cb_history_stamp s;
	struct cb_chat_state st;
	struct cb_buf b;
	long long total;

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	ck_assert(cb_history_stamp(7, &s));
	cb_history_bump(7); /* committed while the page was being read */
	put_at(&s, 7, 50, "[old]", 5, 1);
	ck_assert_int_eq(found(7, 50, &st, &total, &b), CB_HISTORY_NONE);
}
END_TEST

START_TEST(another_limit_or_another_chat_of_the_slot_misses)
{
	struct cb_chat_state st;
	struct cb_buf b;
	long long total;
	/* 1 MiB holds 32 slots of 32 KiB: chats 7 and 39 share one. */
	long long twin = 7 + 32;

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	put(7, 50, "[7]", 3, 1);
	ck_assert(!get(7, 100, &st, &total, &b));
	ck_assert(!get(twin, 50, &st, &total, &b));
	cb_history_bump(twin); /* a change to the twin costs chat 7 its page, nothing worse */
	ck_assert(!get(7, 50, &st, &total, &b));
	put(twin, 50, "[39]", 4, 1);
	ck_assert(get(twin, 50, &st, &total, &b));
	ck_assert_str_eq(b.data, "[39]");
	cb_buf_free(&b);
	ck_assert(!get(7, 50, &st, &total, &b));
}
END_TEST

START_TEST(pages_over_the_slot_size_are_not_kept)
{
	char *big = xcalloc(1, CB_HISTORY_PAGE_MAX + 1);
	struct cb_chat_state st;
	struct cb_buf b;
	long long total;

	memset(big, 'x', CB_HISTORY_PAGE_MAX + 1);
	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	put(7, 500, big, CB_HISTORY_PAGE_MAX + 1, 500);
	ck_assert(!get(7, 500, &st, &total, &b));
	put(7, 500, big, CB_HISTORY_PAGE_MAX, 500);
	ck_assert(get(7, 500, &st, &total, &b));
	ck_assert_uint_eq(b.len, CB_HISTORY_PAGE_MAX);
	ck_assert_uint_eq(strspn(b.data, "x"), CB_HISTORY_PAGE_MAX);
	cb_buf_free(&b);
	free(big);
}
END_TEST

/* A stamp taken two minutes ago, for pages older than the minute they may live. */
static struct cb_history_stamp
stamp_long_ago(long long chat)
{
	struct cb_history_stamp s;

	ck_assert(cb_history_stamp(chat, &s));
	s.at_ms -= 120000;
	return s;
}

START_TEST(old_pages_are_served_only_once_confirmed)
{
	struct cb_history_stamp s, now;
	struct cb_chat_state st;
	struct cb_buf b;
	long long total;

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	s = stamp_long_ago(7);
	put_at(&s, 7, 50, "[1]", 3, 1);
	ck_assert_int_eq(found(7, 50, &st, &total, &b), CB_HISTORY_OLD);
	ck_assert_str_eq(b.data, "[1]"); /* there to be served once MariaDB confirms it */
	cb_buf_free(&b);
	ck_assert(cb_history_stamp(7, &now));
	cb_history_confirm(&now, 7, 100); /* another limit's page: not this one */
	ck_assert_int_eq(found(7, 50, &st, &total, &b), CB_HISTORY_OLD);
	cb_buf_free(&b);
	cb_history_confirm(&now, 7, 50);
	ck_assert(get(7, 50, &st, &total, &b));
	ck_assert_str_eq(b.data, "[1]");
	ck_assert_int_eq(total, 1);
	cb_buf_free(&b);
}
END_TEST

START_TEST(a_confirmation_under_a_change_does_not_count)
{
	struct cb_history_stamp s, now;
	struct cb_chat_state st;
	struct cb_buf b;
	long long total;

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	s = stamp_long_ago(7);
	put_at(&s, 7, 50, "[1]", 3, 1);
	ck_assert(cb_history_stamp(7, &now));
	cb_history_bump(7); /* committed while MariaDB was being asked */
	cb_history_confirm(&now, 7, 50);
	ck_assert_int_eq(found(7, 50, &st, &total, &b), CB_HISTORY_NONE);
}
END_TEST

START_TEST(without_a_file_or_a_max_age_nothing_is_kept)
{
	struct cb_history_stamp s;
	struct cb_chat_state st;
	struct cb_buf b;
	long long total;

	ck_assert_int_eq(cb_history_open("", 64, 5000), CB_ERR);
	ck_assert(!cb_history_stamp(7, &s));
	ck_assert(!get(7, 50, &st, &total, &b));
	cb_history_bump(7); /* harmless */
	ck_assert_int_eq(cb_history_open("/nonexistent-dir/history", 64, 5000), CB_ERR);
	ck_assert(!cb_history_stamp(7, &s));
	/* A maximum age of 0 serves nothing, but the file is shared for the bumps. */
	ck_assert_int_eq(cb_history_open(path, 1, 0), CB_OK);
	ck_assert(!cb_history_stamp(7, &s));
	ck_assert(!get(7, 50, &st, &total, &b));
}
END_TEST

START_TEST(a_file_made_for_another_size_is_not_used)
{
	ck_assert_int_eq(cb_history_open(path, 1, 5000), CB_OK);
	cb_history_close();
	ck_assert_int_eq(cb_history_open(path, 2, 5000), CB_ERR);
	ck_assert_int_eq(cb_history_open(path, 1, 5000), CB_OK);
}
END_TEST

START_TEST(processes_share_pages_and_changes)
{
	struct cb_chat_state st;
	struct cb_buf b;
	long long total;
	pid_t child;
	int status;

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		/* Another worker keeps the page. */
		put(7, 50, "[42]", 4, 1);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(get(7, 50, &st, &total, &b));
	ck_assert_str_eq(b.data, "[42]");
	cb_buf_free(&b);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) /* carebot-admin announces a change it committed */
		_exit(cb_history_open(path, 1, 0) == CB_OK ? (cb_history_bump(7), 0) : 1);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(!get(7, 50, &st, &total, &b));
}
END_TEST

/* Page k is 1000 + 500 * (k % 26) bytes of the letter 'a' + k % 26, with that total. */
static size_t
page_of(int k, char *page)
{
	size_t len = 1000 + 500 * (size_t)(k % 26);

	memset(page, 'a' + k % 26, len);
	return len;
}

START_TEST(a_reader_never_sees_a_page_half_rewritten)
{
	static char page[32768];
	struct cb_chat_state st;
	long long total;
	unsigned served = 0;
	pid_t child;
	int status;

	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		/*
		 * A writer that rewrites the one page until it is killed, letting
		 * the reader have the processor between pages on a busy machine.
		 */
		for (int k = 0;; k++) {
			size_t len = page_of(k, page);
			put(7, 50, page, len, k % 26);
			sched_yield();
		}
	}
	/* Reads until it has checked enough pages; the deadline only stops a stuck run. */
	long long deadline = cb_monotonic_ms() + 20000;
	for (long i = 0; (i < 200000 || served < 1000) && cb_monotonic_ms() < deadline; i++) {
		struct cb_buf b;

		if (!get(7, 50, &st, &total, &b))
			continue;
		served++;
		ck_assert_int_ge(total, 0);
		ck_assert_int_lt(total, 26);
		size_t len = page_of((int)total, page);
		ck_assert_uint_eq(b.len, len);
		ck_assert(memcmp(b.data, page, len) == 0);
		cb_buf_free(&b);
	}
	kill(child, SIGKILL);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	/* The check above must have had something to check. */
	ck_assert_uint_gt(served, 0);
}
END_TEST

START_TEST(a_file_others_may_read_or_write_is_not_used)
{
	/* Someone else may have made it in /dev/shm, to read every chat's pages. */
	ck_assert_int_eq(chmod(path, 0666), 0);
	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_ERR);
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_ERR);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_OK);
}
END_TEST

START_TEST(a_link_is_not_followed)
{
	char *link = xasprintf("%s.link", path);
	struct stat st;

	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(cb_history_open(link, 1, 60000), CB_ERR);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0); /* the file it points at is untouched */
	unlink(link);
	free(link);
}
END_TEST

START_TEST(a_file_of_another_user_is_not_used)
{
	if (geteuid() != 0)
		return; /* only root can give a file away; another user's fails to open anyway */
	ck_assert_int_eq(chown(path, 65534, 65534), 0);
	ck_assert_int_eq(cb_history_open(path, 1, 60000), CB_ERR);
}
END_TEST

Suite *
cb_suite_history(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, a_page_is_served_until_its_chat_changes);
	tcase_add_test(tc, a_page_appends_to_what_the_buffer_holds);
	tcase_add_test(tc, a_page_read_before_a_change_is_not_kept);
	tcase_add_test(tc, another_limit_or_another_chat_of_the_slot_misses);
	tcase_add_test(tc, pages_over_the_slot_size_are_not_kept);
	tcase_add_test(tc, old_pages_are_served_only_once_confirmed);
	tcase_add_test(tc, a_confirmation_under_a_change_does_not_count);
	tcase_add_test(tc, without_a_file_or_a_max_age_nothing_is_kept);
	tcase_add_test(tc, a_file_made_for_another_size_is_not_used);
	tcase_add_test(tc, a_file_others_may_read_or_write_is_not_used);
	tcase_add_test(tc, a_link_is_not_followed);
	tcase_add_test(tc, a_file_of_another_user_is_not_used);
	tcase_add_test(tc, processes_share_pages_and_changes);
	tcase_add_test(tc, a_reader_never_sees_a_page_half_rewritten);
	suite_add_tcase(s, tc);
	return s;
}
