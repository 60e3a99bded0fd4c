/* tests.h - one Check suite per core file; test-main.c runs them all. */
#ifndef CB_TESTS_H
#define CB_TESTS_H

#include <check.h>

Suite *cb_suite_auth(void);
Suite *cb_suite_cache(void);
Suite *cb_suite_chat_mutex(void);
Suite *cb_suite_config(void);
Suite *cb_suite_events(void);
Suite *cb_suite_history(void);
Suite *cb_suite_json(void);
Suite *cb_suite_log(void);
Suite *cb_suite_logic_assign(void);
Suite *cb_suite_logic_directory(void);
Suite *cb_suite_logic_transfer(void);
Suite *cb_suite_publish(void);
Suite *cb_suite_router(void);
Suite *cb_suite_typing(void);
Suite *cb_suite_util(void);

/* A new empty file /tmp/carebot-test-NAME.XXXXXX; the caller unlinks and frees the path. */
char *cb_test_temp_file(const char *name);

#endif
