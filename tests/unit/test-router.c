/* test-router.c - path patterns and the token primitives the gate relies on (fcgi/router.c, fcgi/auth.c). */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "router.h"
#include "tests.h"
#include "util.h"

START_TEST(patterns_match_ids)
{
	long long ids[CB_MAX_IDS];
	unsigned n;

	ck_assert(cb_router_match("/api/chats/{id}/messages", "/api/chats/42/messages", ids, &n));
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], 42);
	ck_assert(cb_router_match("/api/health", "/api/health", ids, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/0", ids, &n));
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/007", ids, &n));
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/-1", ids, &n));
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/abc", ids, &n));
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/1x", ids, &n));
	/* Every id a BIGINT holds, past 2^53 too (what JavaScript reads exactly), and none past it. */
	ck_assert(cb_router_match("/api/chats/{id}", "/api/chats/9007199254740993", ids, &n));
	ck_assert(ids[0] == 9007199254740993LL);
	ck_assert(cb_router_match("/ws/chat/{id}", "/ws/chat/9223372036854775807", ids, &n));
	ck_assert(ids[0] == CB_ID_MAX);
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/9223372036854775808", ids, &n));
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/9999999999999999999", ids, &n));
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/18446744073709551617", ids, &n));
	ck_assert(!cb_router_match("/api/chats/{id}", "/api/chats/1/messages", ids, &n));
	ck_assert(!cb_router_match("/api/chats", "/api/chat", ids, &n));
}
END_TEST

START_TEST(paths_lose_their_query_and_trailing_slashes)
{
	static const char *cases[][2] = {
	    {"/api/chats/", "/api/chats"},
	    {"/api/chats//?limit=5", "/api/chats"},
	    {"/ws/chat/7/?token=x/", "/ws/chat/7"},
	    {"/ws/chat/7?token=/", "/ws/chat/7"},
	    {"/", "/"},
	    {"//", "/"},
	    {"/?a=b", "/"},
	};

	for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
		char *path = cb_path_clean(cases[i][0]);
		ck_assert_str_eq(path, cases[i][1]);
		free(path);
	}
}
END_TEST

START_TEST(bearer_header_parsing)
{
	ck_assert_str_eq(cb_auth_bearer("Bearer abc"), "abc");
	ck_assert_str_eq(cb_auth_bearer("bearer   abc"), "abc");
	ck_assert_ptr_null(cb_auth_bearer("Basic abc"));
	ck_assert_ptr_null(cb_auth_bearer("Bearer "));
	ck_assert_ptr_null(cb_auth_bearer(NULL));
}
END_TEST

START_TEST(tokens_are_random_and_hashed)
{
	char a[CB_TOKEN_HEX + 1], b[CB_TOKEN_HEX + 1];
	unsigned char ha[CB_TOKEN_HASH], hb[CB_TOKEN_HASH], again[CB_TOKEN_HASH];

	ck_assert_int_eq(cb_auth_init(), CB_OK);
	cb_auth_token_new(a, ha);
	cb_auth_token_new(b, hb);
	ck_assert_uint_eq(strlen(a), CB_TOKEN_HEX);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(cb_auth_token_hash(a, again), CB_OK);
	ck_assert_mem_eq(ha, again, CB_TOKEN_HASH);
	ck_assert_int_ne(memcmp(ha, hb, CB_TOKEN_HASH), 0);
	ck_assert_int_eq(cb_auth_token_hash("short", again), CB_ERR);
	a[0] = 'Z';
	ck_assert_int_eq(cb_auth_token_hash(a, again), CB_ERR);
}
END_TEST

START_TEST(passwords_verify_only_themselves)
{
	char hash[CB_PWHASH_LEN];

	ck_assert_int_eq(cb_auth_init(), CB_OK);
	ck_assert_int_eq(cb_auth_password_hash("password123", hash), CB_OK);
	ck_assert(strncmp(hash, "$argon2id$", 10) == 0);
	ck_assert(cb_auth_password_ok("password123", hash));
	ck_assert(!cb_auth_password_ok("password124", hash));
	ck_assert(!cb_auth_password_ok("password123", NULL));
}
END_TEST

START_TEST(role_names)
{
	ck_assert_uint_eq(cb_role_parse("agent"), CB_ROLE_AGENT);
	ck_assert_uint_eq(cb_role_parse("root"), 0);
	ck_assert_str_eq(cb_role_name(CB_ROLE_CUSTOMER), "customer");
}
END_TEST

Suite *
cb_suite_router(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, patterns_match_ids);
	tcase_add_test(tc, paths_lose_their_query_and_trailing_slashes);
	tcase_add_test(tc, bearer_header_parsing);
	tcase_add_test(tc, tokens_are_random_and_hashed);
	tcase_add_test(tc, passwords_verify_only_themselves);
	tcase_add_test(tc, role_names);
	suite_add_tcase(s, tc);
	return s;
}
