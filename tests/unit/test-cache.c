/* test-cache.c - the freshness rule, the shared generation and which SQL moves it. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "db.h"
#include "tests.h"
#include "util.h"

START_TEST(fresh_only_at_the_same_generation_and_young)
{
	struct cb_stamp s = {7, 1000};

	ck_assert(cb_stamp_fresh_at(&s, 7, 1000, 500));
	ck_assert(cb_stamp_fresh_at(&s, 7, 1499, 500));
	ck_assert(!cb_stamp_fresh_at(&s, 7, 1500, 500));
	ck_assert(!cb_stamp_fresh_at(&s, 8, 1001, 500));
	ck_assert(!cb_stamp_fresh_at(&s, 6, 1001, 500));
	ck_assert(!cb_stamp_fresh_at(&s, 7, 999, 500)); /* a clock going back proves nothing */
	ck_assert(!cb_stamp_fresh_at(&s, 7, 1000, 0));
}
END_TEST

START_TEST(a_bump_in_another_process_makes_stamps_stale)
{
	char *path = cb_test_temp_file("cache");
	struct cb_stamp s;
	pid_t child;
	int status;

	ck_assert_int_eq(cb_cache_open(path, 60000), CB_OK);
	ck_assert(cb_cache_stamp(&s));
	ck_assert(cb_cache_fresh(&s));
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		/* A process of its own mapping the file, as carebot-admin does. */
		_exit(cb_cache_open(path, 0) == CB_OK ? (cb_cache_bump(), 0) : 1);
	}
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(!cb_cache_fresh(&s));
	ck_assert(cb_cache_stamp(&s));
	ck_assert(cb_cache_fresh(&s));
	cb_cache_close();
	unlink(path);
	free(path);
}
END_TEST

START_TEST(without_a_shared_file_or_a_max_age_nothing_is_kept)
{
	struct cb_stamp s = {0, 0};

	char *path = cb_test_temp_file("cache");

	ck_assert_int_eq(cb_cache_open("", 500), CB_ERR);
	ck_assert(!cb_cache_stamp(&s));
	ck_assert(!cb_cache_fresh(&s));
	cb_cache_bump(); /* harmless */
	ck_assert_int_eq(cb_cache_open("/nonexistent-dir/carebot.shm", 500), CB_ERR);
	ck_assert(!cb_cache_stamp(&s));
	/* A maximum age of 0 keeps nothing, but the file is shared for the bumps. */
	ck_assert_int_eq(cb_cache_open(path, 0), CB_OK);
	ck_assert(!cb_cache_stamp(&s));
	cb_cache_close();
	unlink(path);
	free(path);
}
END_TEST

START_TEST(which_statements_move_the_generation)
{
	static const char *const quiet[] = {
	    "SELECT id FROM chats WHERE id = ? FOR UPDATE",
	    "INSERT INTO messages (chat_id, sender_id, sender_role, content) VALUES (?, ?, ?, ?)",
	    "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES (?, ?, ?)",
	    "INSERT INTO idempotency_keys (user_id) VALUES (?)",
	    "UPDATE idempotency_keys SET status = ?",
	    "DELETE FROM idempotency_keys WHERE user_id = ?",
	    "UPDATE users SET last_seen_at = NOW(3) WHERE id = ?",
	};
	static const char *const changes[] = {
	    "UPDATE users SET presence = ? WHERE id = ?",
	    "UPDATE users SET last_seen_at = NOW(3), presence = 'offline' WHERE id = ?",
	    "UPDATE sessions SET revoked_at = NOW(3) WHERE id = ?",
	    "UPDATE chats SET status = 'closed' WHERE id = ?",
	    "INSERT INTO chats (customer_id) VALUES (?)",
	    "INSERT INTO departments (name) VALUES (?)",
	    "INSERT INTO messagesx (a) VALUES (?)",
	    "DELETE FROM sessions WHERE id = ?",
	    "CALL anything()",
	};

	for (size_t i = 0; i < CB_ARRAY_LEN(quiet); i++)
		ck_assert_msg(!cb_db_sql_changes_state(quiet[i]), "%s", quiet[i]);
	for (size_t i = 0; i < CB_ARRAY_LEN(changes); i++)
		ck_assert_msg(cb_db_sql_changes_state(changes[i]), "%s", changes[i]);
}
END_TEST

Suite *
cb_suite_cache(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, fresh_only_at_the_same_generation_and_young);
	tcase_add_test(tc, a_bump_in_another_process_makes_stamps_stale);
	tcase_add_test(tc, without_a_shared_file_or_a_max_age_nothing_is_kept);
	tcase_add_test(tc, which_statements_move_the_generation);
	suite_add_tcase(s, tc);
	return s;
}
