/*
 * fcgi-hello.c - the FastCGI ceiling of `tools/carebot bench`: the cheapest
 * responder libfcgi allows. It reads (and drops) the request body and answers
 * a small JSON object, so what it costs is exactly the FastCGI round trip
 * nginx -> unix socket -> libfcgi -> back, with no database and no JSON
 * library. The bench runs it with the same spawn-fcgi + multiwatch settings
 * and worker count as carebot-fcgi, behind a location with the same upstream
 * settings (no keepalive), so carebot's figures divide by this one.
 *
 * Built by the bench script: cc -O2 -o fcgi-hello fcgi-hello.c -lfcgi
 */
#include <fcgiapp.h>
#include <signal.h>
#include <stdlib.h>

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

int
main(void)
{
	static const char reply[] = "Status: 200 OK\r\n"
	                            "Content-Type: application/json\r\n"
	                            "\r\n"
	                            "{\"status\":\"ok\"}\n";
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
		FCGX_PutStr(reply, (int)sizeof reply - 1, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
