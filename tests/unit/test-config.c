/* test-config.c - carebot.conf lines and environment overrides (fcgi/config.c). */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tests.h"
#include "util.h"

START_TEST(defaults_are_documented_values)
{
	struct cb_config cfg;

	cb_config_defaults(&cfg);
	ck_assert_str_eq(cfg.db_name, "carebot");
	ck_assert_int_eq(cfg.db_port, 3306);
	ck_assert_int_eq(cfg.token_ttl, 43200);
	ck_assert_int_eq(cfg.offline_after, 300);
	ck_assert_str_eq(cfg.shared_file, ""); /* no file: nothing cached */
	ck_assert_int_eq(cfg.cache_max_age_ms, 5000);
	cb_config_free(&cfg);
}
END_TEST

START_TEST(lines_set_values_and_ignore_comments)
{
	struct cb_config cfg;
	char err[128];

	cb_config_defaults(&cfg);
	ck_assert_int_eq(cb_config_line(&cfg, "  db_name =  other  ", err, sizeof err), CB_OK);
	ck_assert_str_eq(cfg.db_name, "other");
	ck_assert_int_eq(cb_config_line(&cfg, "db_port=3307", err, sizeof err), CB_OK);
	ck_assert_int_eq(cfg.db_port, 3307);
	ck_assert_int_eq(cb_config_line(&cfg, "# db_port = 1", err, sizeof err), CB_OK);
	ck_assert_int_eq(cb_config_line(&cfg, "   ", err, sizeof err), CB_OK);
	ck_assert_int_eq(cfg.db_port, 3307);
	ck_assert_int_eq(cb_config_line(&cfg, "log_level = debug", err, sizeof err), CB_OK);
	ck_assert_int_eq(cfg.log_level, CB_LOG_DEBUG);
	cb_config_free(&cfg);
}
END_TEST

START_TEST(bad_lines_are_rejected_with_a_reason)
{
	struct cb_config cfg;
	char err[128];

	cb_config_defaults(&cfg);
	ck_assert_int_eq(cb_config_line(&cfg, "no_such_key = 1", err, sizeof err), CB_ERR);
	ck_assert_ptr_nonnull(strstr(err, "no_such_key"));
	ck_assert_int_eq(cb_config_line(&cfg, "db_port = 70000", err, sizeof err), CB_ERR);
	ck_assert_int_eq(cb_config_line(&cfg, "db_port = abc", err, sizeof err), CB_ERR);
	ck_assert_int_eq(cb_config_line(&cfg, "db_port", err, sizeof err), CB_ERR);
	ck_assert_int_eq(cb_config_line(&cfg, "log_level = loud", err, sizeof err), CB_ERR);
	ck_assert_int_eq(cb_config_line(&cfg, "cache_max_age_ms = -1", err, sizeof err), CB_ERR);
	ck_assert_int_eq(
	    cb_config_line(&cfg, "cache_max_age_ms = 3600001", err, sizeof err), CB_ERR);
	ck_assert_int_eq(cfg.db_port, 3306);
	ck_assert_int_eq(cfg.cache_max_age_ms, 5000);
	cb_config_free(&cfg);
}
END_TEST

START_TEST(environment_overrides_the_file)
{
	struct cb_config cfg;

	setenv("CAREBOT_DB_NAME", "from_env", 1);
	setenv("CAREBOT_TOKEN_TTL", "600", 1);
	unsetenv("CAREBOT_CONFIG");
	ck_assert_int_eq(cb_config_load(&cfg, "/dev/null"), CB_OK);
	ck_assert_str_eq(cfg.db_name, "from_env");
	ck_assert_int_eq(cfg.token_ttl, 600);
	cb_config_free(&cfg);
	setenv("CAREBOT_TOKEN_TTL", "5", 1); /* below the minimum */
	ck_assert_int_eq(cb_config_load(&cfg, "/dev/null"), CB_ERR);
	cb_config_free(&cfg);
	unsetenv("CAREBOT_DB_NAME");
	unsetenv("CAREBOT_TOKEN_TTL");
}
END_TEST

Suite *
cb_suite_config(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, defaults_are_documented_values);
	tcase_add_test(tc, lines_set_values_and_ignore_comments);
	tcase_add_test(tc, bad_lines_are_rejected_with_a_reason);
	tcase_add_test(tc, environment_overrides_the_file);
	suite_add_tcase(s, tc);
	return s;
}
