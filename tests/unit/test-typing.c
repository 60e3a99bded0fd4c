/* test-typing.c - which typing events are published: the rule, and its table shared by processes. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "tests.h"
#include "typing.h"
#include "util.h"

START_TEST(a_repeat_waits_for_the_interval_a_change_never_does)
{
	uint64_t word = 0, next = 0;

	ck_assert(cb_typing_decide(word, 77, 1, 5000, 1000, &next)); /* the first */
	word = next;
	ck_assert(!cb_typing_decide(word, 77, 1, 5999, 1000, &next)); /* a repeat, too soon */
	ck_assert(cb_typing_decide(word, 77, 1, 6000, 1000, &next)); /* a repeat, in time */
	ck_assert(cb_typing_decide(word, 77, 0, 5001, 1000, &next)); /* a change */
	word = next;
	ck_assert(!cb_typing_decide(word, 77, 0, 5002, 1000, &next));
	ck_assert(cb_typing_decide(word, 77, 1, 5003, 1000, &next)); /* and back */
	ck_assert(cb_typing_decide(word, 78, 0, 5002, 1000, &next)); /* another (user, chat) */
	ck_assert(cb_typing_decide(word, 77, 0, 5002, 0, &next)); /* no interval, no limit */
}
END_TEST

START_TEST(the_age_survives_the_clock_wrapping)
{
	uint64_t word = 0, next = 0;
	long long wrap = 1LL << 31;

	ck_assert(cb_typing_decide(0, 5, 1, wrap - 10, 1000, &word));
	ck_assert(!cb_typing_decide(word, 5, 1, wrap + 500, 1000, &next));
	ck_assert(cb_typing_decide(word, 5, 1, wrap + 990, 1000, &next));
}
END_TEST

/* Forks a process of its own that maps path and asks about (1, 2, on). */
static int
due_in_another_process(const char *path, int on)
{
	int status;
	pid_t child = fork();

	ck_assert_int_ge(child, 0);
	if (child == 0)
		_exit(cb_cache_open(path, 0) == CB_OK ? cb_typing_due(1, 2, on, 60000) : 2);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) < 2);
	return WEXITSTATUS(status);
}

START_TEST(every_process_sees_the_last_value_published)
{
	char *path = cb_test_temp_file("typing");

	ck_assert_int_eq(cb_cache_open(path, 0), CB_OK);
	ck_assert(cb_typing_due(1, 2, 1, 60000));
	ck_assert(!due_in_another_process(path, 1)); /* a repeat of this process's start */
	ck_assert(due_in_another_process(path, 0)); /* a stop, from elsewhere */
	/* The case a per-process memory lost: a start after the other's stop. */
	ck_assert(cb_typing_due(1, 2, 1, 60000));
	ck_assert(!cb_typing_due(1, 2, 1, 60000));
	cb_cache_close();
	unlink(path);
	free(path);
}
END_TEST

Suite *
cb_suite_typing(void)
{
	Suite *s = suite_create("typing");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, a_repeat_waits_for_the_interval_a_change_never_does);
	tcase_add_test(tc, the_age_survives_the_clock_wrapping);
	tcase_add_test(tc, every_process_sees_the_last_value_published);
	suite_add_tcase(s, tc);
	return s;
}
