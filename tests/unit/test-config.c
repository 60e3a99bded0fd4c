/* test-config.c - carebot.conf lines and environment overrides (fcgi/config.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Writes len bytes of text to a new temporary file; the caller unlinks and frees the path. */
static char *
conf_file(const char *text, size_t len)
{
	char *path = cb_test_temp_file("conf");
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	return path;
}

/* Loads text as a carebot.conf; CB_OK or CB_ERR, cfg filled either way. */
static int
load_text(struct cb_config *cfg, const char *text, size_t len)
{
	char *path = conf_file(text, len);
	int rc = cb_config_load(cfg, path);

	unlink(path);
	free(path);
	return rc;
}

START_TEST(a_directory_is_not_a_config)
{
	struct cb_config cfg;

	unsetenv("CAREBOT_CONFIG");
	/* fopen opens a directory; reading it fails (EISDIR): not an empty file. */
	ck_assert_int_eq(cb_config_load(&cfg, "/tmp"), CB_ERR);
	cb_config_free(&cfg);
}
END_TEST

START_TEST(long_lines_are_one_line)
{
	struct cb_config cfg;
	char *origins = xmalloc(3000), *text;
	size_t n = 0;

	unsetenv("CAREBOT_CONFIG");
	while (n < 2000)
		n += (size_t)snprintf(origins + n, 3000 - n, "https://s%zu.example ", n);
	origins[n - 1] = '\0';
	/* A long comment, then a long value whose 1,024th byte is '#'. */
	text = xasprintf(
	    "# %s\ncors_origins = %.1008s#%s\ntoken_ttl = 600\n", origins, origins, origins + 1008);
	ck_assert_int_eq(load_text(&cfg, text, strlen(text)), CB_OK);
	ck_assert_uint_eq(strlen(cfg.cors_origins), 1008 + 1 + strlen(origins + 1008));
	ck_assert_int_eq(cfg.token_ttl, 600);
	cb_config_free(&cfg);
	free(text);
	free(origins);
}
END_TEST

START_TEST(a_byte_order_mark_and_crlf_are_read_as_text_editors_mean_them)
{
	static const char text[] = "\xef\xbb\xbf# written on Windows\r\ntoken_ttl = 600\r\n";
	struct cb_config cfg;

	unsetenv("CAREBOT_CONFIG");
	ck_assert_int_eq(load_text(&cfg, text, sizeof text - 1), CB_OK);
	ck_assert_int_eq(cfg.token_ttl, 600);
	cb_config_free(&cfg);
	/* Only at the very start: elsewhere it is part of a key, an unknown one. */
	ck_assert_int_eq(load_text(&cfg, "\n\xef\xbb\xbftoken_ttl = 600\n", 19), CB_ERR);
	cb_config_free(&cfg);
}
END_TEST

START_TEST(a_nul_byte_is_refused)
{
	/* UTF-16, as some editors save: each line would be cut at its first NUL. */
	static const char text[] = "db_password = abc\0def\n";
	struct cb_config cfg;

	unsetenv("CAREBOT_CONFIG");
	ck_assert_int_eq(load_text(&cfg, text, sizeof text - 1), CB_ERR);
	cb_config_free(&cfg);
}
END_TEST

START_TEST(names_the_database_and_schema_must_not_be_empty)
{
	static const char *const lines[] = {"db_host =", "db_name =", "db_user = ", "schema_dir ="};
	struct cb_config cfg;
	char err[128];

	cb_config_defaults(&cfg);
	for (size_t i = 0; i < CB_ARRAY_LEN(lines); i++) {
		ck_assert_int_eq(cb_config_line(&cfg, lines[i], err, sizeof err), CB_ERR);
		ck_assert_ptr_nonnull(strstr(err, "may not be empty"));
	}
	ck_assert_str_eq(cfg.db_user, "carebot");
	/* The empty ones that mean something stay allowed. */
	ck_assert_int_eq(cb_config_line(&cfg, "db_password =", err, sizeof err), CB_OK);
	ck_assert_int_eq(cb_config_line(&cfg, "shared_file =", err, sizeof err), CB_OK);
	cb_config_free(&cfg);
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
	tcase_add_test(tc, a_directory_is_not_a_config);
	tcase_add_test(tc, long_lines_are_one_line);
	tcase_add_test(tc, a_byte_order_mark_and_crlf_are_read_as_text_editors_mean_them);
	tcase_add_test(tc, a_nul_byte_is_refused);
	tcase_add_test(tc, names_the_database_and_schema_must_not_be_empty);
	suite_add_tcase(s, tc);
	return s;
}
