/* test-auth.c - which pages may subscribe with the carebot_token cookie, and which may call the API (CORS). */
#include "auth.h"
#include "tests.h"

START_TEST(the_instances_own_pages_and_clients_without_an_origin_may)
{
	const char *host = "chat.example.com:8443";

	ck_assert(cb_auth_cookie_origin_ok(NULL, host, ""));
	ck_assert(cb_auth_cookie_origin_ok("", host, ""));
	ck_assert(cb_auth_cookie_origin_ok("https://chat.example.com:8443", host, ""));
	ck_assert(cb_auth_cookie_origin_ok("HTTP://Chat.Example.COM:8443", host, ""));
	/* another port, scheme-less, a longer or a shorter host: another origin */
	ck_assert(!cb_auth_cookie_origin_ok("https://chat.example.com", host, ""));
	ck_assert(!cb_auth_cookie_origin_ok("chat.example.com:8443", host, ""));
	ck_assert(!cb_auth_cookie_origin_ok("https://chat.example.com:8443.evil.io", host, ""));
	ck_assert(!cb_auth_cookie_origin_ok("https://hat.example.com:8443", host, ""));
	ck_assert(!cb_auth_cookie_origin_ok("null", host, ""));
	/* no Host to compare with: only the list decides */
	ck_assert(!cb_auth_cookie_origin_ok("https://chat.example.com:8443", NULL, ""));
	ck_assert(!cb_auth_cookie_origin_ok("https://", "", ""));
}
END_TEST

START_TEST(other_pages_only_when_listed)
{
	const char *host = "chat.example.com";
	const char *list = " https://shop.example.com, https://www.shop.example.com/\thttp://x.io ";

	ck_assert(cb_auth_cookie_origin_ok("https://shop.example.com", host, list));
	ck_assert(cb_auth_cookie_origin_ok("HTTPS://WWW.shop.example.com", host, list));
	ck_assert(cb_auth_cookie_origin_ok("http://x.io", host, list));
	ck_assert(!cb_auth_cookie_origin_ok("http://shop.example.com", host, list));
	ck_assert(!cb_auth_cookie_origin_ok("https://shop.example.co", host, list));
	ck_assert(!cb_auth_cookie_origin_ok("https://shop.example.com.evil.io", host, list));
	ck_assert(!cb_auth_cookie_origin_ok("http://x.i", host, list));
	ck_assert(!cb_auth_cookie_origin_ok("https://evil.io", host, NULL));
	ck_assert(!cb_auth_cookie_origin_ok("*", host, "https://evil.io"));
	ck_assert(cb_auth_cookie_origin_ok("https://evil.io", host, "https://a.io *"));
	ck_assert(cb_auth_cookie_origin_ok("null", host, "*"));
	ck_assert(!cb_auth_cookie_origin_ok("https://evil.io", host, "**, /"));
}
END_TEST

START_TEST(cors_only_for_listed_pages_and_never_without_an_origin)
{
	const char *list = "https://shop.example.com http://localhost:3000/";
	char longest[CB_CORS_ORIGIN_MAX + 2];

	ck_assert(cb_auth_cors_origin_ok("https://shop.example.com", list));
	ck_assert(cb_auth_cors_origin_ok("http://localhost:3000", list));
	ck_assert(!cb_auth_cors_origin_ok("http://localhost:3001", list));
	ck_assert(!cb_auth_cors_origin_ok("https://shop.example.com.evil.io", list));
	/* the instance's own host is no CORS matter: a same-origin page needs no header */
	ck_assert(!cb_auth_cors_origin_ok("https://chat.example.com", list));
	ck_assert(!cb_auth_cors_origin_ok(NULL, "*"));
	ck_assert(!cb_auth_cors_origin_ok("", "*"));
	ck_assert(!cb_auth_cors_origin_ok("https://shop.example.com", ""));
	ck_assert(cb_auth_cors_origin_ok("null", "*"));

	memset(longest, 'a', sizeof longest - 1);
	longest[sizeof longest - 1] = '\0';
	ck_assert(!cb_auth_cors_origin_ok(longest, "*"));
	longest[CB_CORS_ORIGIN_MAX] = '\0';
	ck_assert(cb_auth_cors_origin_ok(longest, "*"));
}
END_TEST

Suite *
cb_suite_auth(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("cookie origins");

	tcase_add_test(tc, the_instances_own_pages_and_clients_without_an_origin_may);
	tcase_add_test(tc, other_pages_only_when_listed);
	suite_add_tcase(s, tc);
	tc = tcase_create("cors origins");
	tcase_add_test(tc, cors_only_for_listed_pages_and_never_without_an_origin);
	suite_add_tcase(s, tc);
	return s;
}
