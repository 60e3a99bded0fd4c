/*
 * fcgi-hello.c - the FastCGI ceiling of `tools/carebot bench`: the cheapest
 * responder libfcgi allows. It reads (and drops) the request body and answers
 * a small JSON object, so what it costs is exactly the FastCGI round trip
 * nginx -> unix socket -> libfcgi -> back, with no database and no JSON
 * library. The bench runs it with the same spawn-fcgi + multiwatch settings
 * and worker count as carebot-fcgi, behind a location with the same upstream
 * settings (no keepalive), so carebot's figures divide by this one.
 * With ?bytes=N the object is padded to about N bytes: the same round trip
 * carrying a body as large as one of carebot's, for reference.
 *
 * Built by the bench script: cc -O2 -o fcgi-hello fcgi-hello.c -lfcgi
 */
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

#define MAX_PAD (1 << 20)

/* The reply for a padding of pad bytes, built once per size asked for. */
static const char *
reply_for(long pad, int *len)
{
	static char *reply;
	static long built = -1;

	if (pad != built) {
		free(reply);
		reply = malloc((size_t)pad + 128);
		if (reply == NULL)
			abort();
		int n = sprintf(reply,
		    "Status: 200 OK\r\nContent-Type: application/json\r\n\r\n"
		    "{\"status\":\"ok\"");
		if (pad > 0) {
			n += sprintf(reply + n, ",\"pad\":\"");
			memset(reply + n, 'x', (size_t)pad);
			n += (int)pad;
			reply[n++] = '"';
		}
		sprintf(reply + n, "}\n");
		built = pad;
	}
	*len = (int)strlen(reply);
	return reply;
}

int
main(void)
{
	FCGX_Request req;
	struct sigaction sa = {0};
	char buf[4096];

	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
		return 1;
	while (!stopping && FCGX_Accept_r(&req) >= 0) {
		while (FCGX_GetStr(buf, sizeof buf, req.in) > 0)
			;
		const char *qs = FCGX_GetParam("QUERY_STRING", req.envp);
		long pad =
		    qs != NULL && strncmp(qs, "bytes=", 6) == 0 ? strtol(qs + 6, NULL, 10) : 0;
		int len;
		const char *reply = reply_for(pad < 0 ? 0 : pad > MAX_PAD ? MAX_PAD : pad, &len);
		FCGX_PutStr(reply, len, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
