/* test-main.c - runs every unit suite; Check prints the summary. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests.h"
#include "util.h"

char *
cb_test_temp_file(const char *name)
{
	char *path = xasprintf("/tmp/carebot-test-%s.XXXXXX", name);
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	return path;
}

int
main(void)
{
	SRunner *sr = srunner_create(cb_suite_util());

	srunner_add_suite(sr, cb_suite_auth());
	srunner_add_suite(sr, cb_suite_cache());
	srunner_add_suite(sr, cb_suite_chat_mutex());
	srunner_add_suite(sr, cb_suite_config());
	srunner_add_suite(sr, cb_suite_events());
	srunner_add_suite(sr, cb_suite_history());
	srunner_add_suite(sr, cb_suite_json());
	srunner_add_suite(sr, cb_suite_log());
	srunner_add_suite(sr, cb_suite_logic_assign());
	srunner_add_suite(sr, cb_suite_logic_directory());
	srunner_add_suite(sr, cb_suite_logic_transfer());
	srunner_add_suite(sr, cb_suite_publish());
	srunner_add_suite(sr, cb_suite_router());
	srunner_add_suite(sr, cb_suite_typing());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
