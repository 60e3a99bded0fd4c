/* test-chat-mutex.c - the chats' mutexes as the host's locks: who waits, who goes, who backs off. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat-mutex.h"
#include "tests.h"
#include "util.h"

static char path[64];

static void
setup(void)
{
	snprintf(path, sizeof path, "/tmp/carebot-test-mutex.%ld", (long)getpid());
	ck_assert_int_eq(cb_chat_mutex_open(path), CB_OK);
}

static void
teardown(void)
{
	char agents[80];

	cb_chat_mutex_close();
	unlink(path);
	snprintf(agents, sizeof agents, "%s" CB_AGENT_MUTEX_SUFFIX, path);
	unlink(agents);
}

/* Another process of the host: it opens the file itself, as a worker does. */
static pid_t
other(void)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0 && cb_chat_mutex_open(path) != CB_OK)
		_exit(99);
	return pid;
}

static int
exit_code(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The code another process's take(id, timeout_ms) returns, as its exit status. */
static int
other_runs(int (*take)(long long, int), long long id, int timeout_ms)
{
	pid_t pid = other();

	if (pid == 0)
		_exit(-take(id, timeout_ms));
	return -exit_code(pid);
}

static int
other_takes(long long id, int timeout_ms)
{
	return other_runs(cb_chat_mutex_take, id, timeout_ms);
}

START_TEST(a_held_mutex_is_refused_to_another_process_and_no_other_is)
{
	ck_assert_int_eq(cb_chat_mutex_take(7, 1000), CB_OK);
	ck_assert_int_eq(other_takes(7, 100), CB_ERR_RETRY);
	ck_assert_int_eq(other_takes(8, 100), CB_OK);
	ck_assert_int_eq(other_takes(6, 100), CB_OK);
	/* The holder may take it again; the caller (db.c) does not even ask. */
	ck_assert_int_eq(cb_chat_mutex_take(7, 100), CB_OK);
}
END_TEST

START_TEST(releasing_frees_every_mutex_held)
{
	ck_assert_int_eq(cb_chat_mutex_take(3, 1000), CB_OK);
	ck_assert_int_eq(cb_chat_mutex_take(5, 1000), CB_OK);
	ck_assert_int_eq(cb_chat_mutex_take(1LL << 40, 1000), CB_OK);
	ck_assert_int_eq(other_takes(5, 100), CB_ERR_RETRY);
	ck_assert_int_eq(other_takes(1LL << 40, 100), CB_ERR_RETRY);
	cb_chat_mutex_release_all();
	ck_assert_int_eq(other_takes(3, 100), CB_OK);
	ck_assert_int_eq(other_takes(5, 100), CB_OK);
	ck_assert_int_eq(other_takes(1LL << 40, 100), CB_OK);
}
END_TEST

static int
other_takes_agent(long long id, int timeout_ms)
{
	return other_runs(cb_agent_mutex_take, id, timeout_ms);
}

START_TEST(an_agents_mutex_is_its_own_and_released_alone)
{
	ck_assert_int_eq(cb_chat_mutex_take(7, 1000), CB_OK);
	ck_assert_int_eq(cb_agent_mutex_take(7, 1000), CB_OK);
	ck_assert_int_eq(other_takes_agent(7, 100), CB_ERR_RETRY);
	ck_assert_int_eq(other_takes_agent(8, 100), CB_OK);
	/* chat 7 and agent 7 are two mutexes: releasing the agent's keeps the chat's */
	cb_agent_mutex_release(7);
	ck_assert_int_eq(other_takes_agent(7, 100), CB_OK);
	ck_assert_int_eq(other_takes(7, 100), CB_ERR_RETRY);
	cb_chat_mutex_release_all();
	ck_assert_int_eq(other_takes(7, 100), CB_OK);
}
END_TEST

/*
 * Chat and agent ids each run to 2^63 - 1, every offset a file has: an
 * agent's mutex at 2^60 + id was chat 2^60 + id's (an agent's release
 * dropped that chat's mutex mid-request), and past 2^63 - 1 - 2^60 it
 * could not be taken at all (EINVAL, and signed overflow).
 */
START_TEST(chats_and_agents_share_no_mutex_up_to_the_largest_id)
{
	static const long long ids[] = {8, (1LL << 60) + 8, CB_ID_MAX - (1LL << 60) + 1, CB_ID_MAX};

	for (size_t i = 0; i < CB_ARRAY_LEN(ids); i++) {
		long long id = ids[i];

		ck_assert_int_eq(cb_chat_mutex_take(id, 1000), CB_OK);
		ck_assert_int_eq(other_takes_agent(id, 100), CB_OK);
		if (id > 1LL << 60) /* the agent whose mutex this chat's was */
			ck_assert_int_eq(other_takes_agent(id - (1LL << 60), 100), CB_OK);
		ck_assert_int_eq(cb_agent_mutex_take(id, 1000), CB_OK);
		ck_assert_int_eq(other_takes_agent(id, 100), CB_ERR_RETRY);
		ck_assert_int_eq(other_takes(id, 100), CB_ERR_RETRY);
		cb_agent_mutex_release(id);
		ck_assert_int_eq(other_takes(id, 100), CB_ERR_RETRY);
		ck_assert_int_eq(other_takes_agent(id, 100), CB_OK);
		cb_chat_mutex_release_all();
		ck_assert_int_eq(other_takes(id, 100), CB_OK);
	}
}
END_TEST

/*
 * An upgrade made the agents' file beside a chats' file of the workers' user,
 * and the first to open it was carebot-admin migrate as root: the file was
 * root's, mode 0600, and no worker of that user could start. Root gives it
 * the chats' file's owner, group and mode, whether it made it or found it.
 */
START_TEST(the_agents_file_belongs_to_whoever_owns_the_chats_file)
{
	char agents[80];
	struct stat st;

	if (geteuid() != 0)
		return; /* only root can give a file away */
	snprintf(agents, sizeof agents, "%s" CB_AGENT_MUTEX_SUFFIX, path);
	cb_chat_mutex_close();
	ck_assert_int_eq(chown(path, 65534, 65534), 0);
	ck_assert_int_eq(chmod(path, 0640), 0);
	for (int made = 0; made < 2; made++) {
		if (made)
			ck_assert_int_eq(unlink(agents), 0);
		ck_assert_int_eq(cb_chat_mutex_open(path), CB_OK);
		ck_assert_int_eq(stat(agents, &st), 0);
		ck_assert_msg(
		    st.st_uid == 65534 && st.st_gid == 65534 && (st.st_mode & 0777) == 0640,
		    "%s: owner %u:%u, mode %o", made ? "made" : "found", (unsigned)st.st_uid,
		    (unsigned)st.st_gid, (unsigned)(st.st_mode & 0777));
		cb_chat_mutex_close();
	}
	/* Either way it works as before. */
	ck_assert_int_eq(cb_chat_mutex_open(path), CB_OK);
	ck_assert_int_eq(cb_agent_mutex_take(7, 1000), CB_OK);
	ck_assert_int_eq(other_takes_agent(7, 100), CB_ERR_RETRY);
}
END_TEST

START_TEST(a_waiter_goes_on_when_the_holder_releases_and_not_before)
{
	int fds[2];
	char got;

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(cb_chat_mutex_take(7, 1000), CB_OK);
	pid_t pid = other();
	if (pid == 0) {
		char rc = (char)-cb_chat_mutex_take(7, 20000);
		_exit(write(fds[1], &rc, 1) == 1 ? 0 : 1);
	}
	/* While the mutex is held, the waiter has nothing to say. */
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	ck_assert_int_eq(poll(&p, 1, 300), 0);
	cb_chat_mutex_release_all();
	ck_assert_int_eq(read(fds[0], &got, 1), 1);
	ck_assert_int_eq(got, -CB_OK);
	ck_assert_int_eq(exit_code(pid), 0);
}
END_TEST

START_TEST(a_holder_that_dies_leaves_the_mutex_free)
{
	pid_t pid = other();

	if (pid == 0) {
		cb_chat_mutex_take(9, 1000);
		_exit(0); /* no release: the kernel drops the lock with the process */
	}
	ck_assert_int_eq(exit_code(pid), 0);
	ck_assert_int_eq(cb_chat_mutex_take(9, 100), CB_OK);
}
END_TEST

/*
 * Two processes each holding what the other waits for: the kernel refuses
 * the wait that closes the cycle, and the refused one backs off (its
 * transaction rolls back and runs again). Without that, both would wait
 * here for the whole minute and the test would time out.
 */
START_TEST(a_cycle_of_waiters_is_broken)
{
	int fds[2];
	char ready;

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(cb_chat_mutex_take(1, 1000), CB_OK);
	pid_t pid = other();
	if (pid == 0) {
		if (cb_chat_mutex_take(2, 1000) != CB_OK || write(fds[1], "r", 1) != 1)
			_exit(98);
		_exit(-cb_chat_mutex_take(1, 60000));
	}
	close(fds[1]); /* so a child that failed to get going ends the read below */
	ck_assert_int_eq(read(fds[0], &ready, 1), 1);
	int mine = cb_chat_mutex_take(2, 60000);
	if (mine == CB_ERR_RETRY)
		cb_chat_mutex_release_all();
	int theirs = -exit_code(pid);
	ck_assert(mine == CB_ERR_RETRY || theirs == CB_ERR_RETRY);
	ck_assert(mine == CB_OK || mine == CB_ERR_RETRY);
	ck_assert(theirs == CB_OK || theirs == CB_ERR_RETRY);
}
END_TEST

START_TEST(without_a_file_there_are_no_host_mutexes)
{
	cb_chat_mutex_close();
	ck_assert_int_eq(cb_chat_mutex_open(""), CB_OK);
	ck_assert(!cb_chat_mutex_on());
	ck_assert_int_eq(cb_chat_mutex_open("/nonexistent-dir/mutexes"), CB_ERR);
	ck_assert(!cb_chat_mutex_on());
	ck_assert_int_eq(cb_chat_mutex_open(path), CB_OK);
	ck_assert(cb_chat_mutex_on());
}
END_TEST

Suite *
cb_suite_chat_mutex(void)
{
	Suite *s = suite_create("chat-mutex");
	TCase *tc = tcase_create("host");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_held_mutex_is_refused_to_another_process_and_no_other_is);
	tcase_add_test(tc, releasing_frees_every_mutex_held);
	tcase_add_test(tc, an_agents_mutex_is_its_own_and_released_alone);
	tcase_add_test(tc, chats_and_agents_share_no_mutex_up_to_the_largest_id);
	tcase_add_test(tc, the_agents_file_belongs_to_whoever_owns_the_chats_file);
	tcase_add_test(tc, a_waiter_goes_on_when_the_holder_releases_and_not_before);
	tcase_add_test(tc, a_holder_that_dies_leaves_the_mutex_free);
	tcase_add_test(tc, a_cycle_of_waiters_is_broken);
	tcase_add_test(tc, without_a_file_there_are_no_host_mutexes);
	suite_add_tcase(s, tc);
	return s;
}
