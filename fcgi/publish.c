/* publish.c - one reused libcurl handle per worker, talking HTTP over a unix socket. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "publish.h"
#include "util.h"

/* After a failed publish, publishing pauses this long (a dead Nchan must not slow every request). */
#define BACKOFF_MS 2000

static CURL *curl;
static const struct cb_config *config;
static unsigned long failures;
static long long paused_until_ms;

static size_t
discard(char *ptr, size_t size, size_t n, void *arg)
{
	return size * n;
}

int
cb_publish_init(const struct cb_config *cfg)
{
	config = cfg;
	if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
		return CB_ERR;
	curl = curl_easy_init();
	return curl != NULL ? CB_OK : CB_ERR;
}

void
cb_publish_cleanup(void)
{
	if (curl != NULL)
		curl_easy_cleanup(curl);
	curl = NULL;
	curl_global_cleanup();
}

/* One request to the publisher; the handle (and its connection) is reused. */
static int
request(const char *method, const char *path, const char *body, long *status)
{
	struct curl_slist *headers = NULL;
	char url[512];
	CURLcode res;

	*status = 0;
	if (curl == NULL || config == NULL || config->publish_socket[0] == '\0')
		return CB_ERR;
	snprintf(url, sizeof url, "http://localhost%s", path);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, config->publish_socket);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	if (body != NULL) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		headers = curl_slist_append(headers, "Expect:");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	res = curl_easy_perform(curl);
	if (res == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(headers);
	if (res != CURLE_OK) {
		cb_debug("publisher %s %s: %s", method, path, curl_easy_strerror(res));
		return CB_ERR;
	}
	return CB_OK;
}

int
cb_publish(const char *channels, const char *json)
{
	long status;
	int rc;

	if (cb_now_ms() < paused_until_ms) {
		failures++;
		return CB_ERR;
	}
	/* Raw, not escaped: nginx hands $arg_id to Nchan undecoded, and '/' and ',' are legal here. */
	char *path = xasprintf("/pub?id=%s", channels);
	rc = request("POST", path, json, &status);
	/* Nchan answers 201 for a new message on a subscribed channel, 202 when nobody listens. */
	if (rc == CB_OK && (status < 200 || status > 299))
		rc = CB_ERR;
	if (rc != CB_OK) {
		failures++;
		paused_until_ms = cb_now_ms() + BACKOFF_MS;
		cb_warn("publish to %s failed (status %ld); %lu failures so far; pausing %d ms",
		    channels, status, failures, BACKOFF_MS);
	}
	free(path);
	return rc;
}

int
cb_publish_ping(void)
{
	long status;

	return request("GET", "/ping", NULL, &status) == CB_OK && status >= 200 && status < 300
	    ? CB_OK
	    : CB_ERR;
}

unsigned long
cb_publish_failures(void)
{
	return failures;
}
