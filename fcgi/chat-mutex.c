/* chat-mutex.c - the chats' mutexes as record locks on one file of the host (chat-mutex.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "chat-mutex.h"
#include "log.h"
#include "util.h"

/* While a wait lasts, SIGALRM interrupts it this often to look at the clock. */
#define TICK_US 20000

/* The chats' file, and the agents' (its name plus CB_AGENT_MUTEX_SUFFIX). */
static int fd = -1, agent_fd = -1;

static void
tick(int sig)
{
	(void)sig;
}

/*
 * Gives the agents' file the owner, group and mode of the chats' file where
 * they differ, as root only (no one else may). The agents' file came after
 * the chats' one: on an upgrade the first process to open it was often
 * carebot-admin migrate run as root, whose file (mode 0600) no worker of the
 * carebot user could open after the reload, so none started.
 */
static void
agents_like_chats(const char *agents)
{
	struct stat chats, own;

	if (geteuid() != 0 || fstat(fd, &chats) != 0 || fstat(agent_fd, &own) != 0)
		return;
	if ((own.st_uid != chats.st_uid || own.st_gid != chats.st_gid) &&
	    fchown(agent_fd, chats.st_uid, chats.st_gid) != 0)
		cb_warn("chat mutexes: cannot give %s the owner of the chats' file: %s", agents,
		    strerror(errno));
	if ((own.st_mode & 0777) != (chats.st_mode & 0777) &&
	    fchmod(agent_fd, chats.st_mode & 0777) != 0)
		cb_warn("chat mutexes: cannot give %s the mode of the chats' file: %s", agents,
		    strerror(errno));
}

int
cb_chat_mutex_open(const char *path)
{
	cb_chat_mutex_close();
	if (path == NULL || *path == '\0')
		return CB_OK;
	char *agents = xasprintf("%s" CB_AGENT_MUTEX_SUFFIX, path);
	const char *failed = NULL;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		failed = path;
	else if ((agent_fd = open(agents, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		failed = agents;
	if (failed != NULL) {
		cb_error("chat mutexes: cannot open %s: %s", failed, strerror(errno));
		cb_chat_mutex_close();
	} else {
		agents_like_chats(agents);
	}
	free(agents);
	if (failed != NULL)
		return CB_ERR;
	/* No SA_RESTART: the tick must end a waiting fcntl with EINTR. */
	struct sigaction sa = {.sa_handler = tick};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	return CB_OK;
}

void
cb_chat_mutex_close(void)
{
	if (fd >= 0)
		close(fd); /* which also drops every lock this process held on it */
	if (agent_fd >= 0)
		close(agent_fd);
	fd = agent_fd = -1;
}

int
cb_chat_mutex_on(void)
{
	return fd >= 0;
}

static void
ticking(int on)
{
	struct itimerval it = {{0, on ? TICK_US : 0}, {0, on ? TICK_US : 0}};

	setitimer(ITIMER_REAL, &it, NULL);
}

/*
 * The wait: F_SETLKW, woken by a periodic tick so that a deadline can end
 * it. A tick that lands just before the call only means the next one ends
 * it, so there is no window in which the wait cannot be cut short.
 */
static int
wait_for(int file, struct flock *fl, const char *what, long long id, int timeout_ms)
{
	long long deadline = cb_monotonic_ms() + timeout_ms;
	int rc = CB_ERR_RETRY;

	ticking(1);
	for (;;) {
		if (fcntl(file, F_SETLKW, fl) == 0) {
			rc = CB_OK;
			break;
		}
		if (errno == EDEADLK) {
			cb_info(
			    "%s %lld: waiting for its mutex would deadlock; retrying", what, id);
			break;
		}
		if (errno != EINTR) {
			cb_error("%s %lld: cannot lock its mutex: %s", what, id, strerror(errno));
			rc = CB_ERR;
			break;
		}
		if (cb_monotonic_ms() >= deadline) {
			cb_warn("%s %lld: mutex not granted within %d ms; retrying", what, id,
			    timeout_ms);
			break;
		}
	}
	ticking(0);
	return rc;
}

/* Locks the byte at offset id of file, for the mutex of what id. */
static int
take(int file, const char *what, long long id, int timeout_ms)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = id, .l_len = 1};

	if (file < 0 || id <= 0) {
		cb_error("%s %lld: no mutex file to lock", what, id);
		return CB_ERR;
	}
	if (fcntl(file, F_SETLK, &fl) == 0)
		return CB_OK;
	if (errno != EAGAIN && errno != EACCES) {
		cb_error("%s %lld: cannot lock its mutex: %s", what, id, strerror(errno));
		return CB_ERR;
	}
	return wait_for(file, &fl, what, id, timeout_ms);
}

int
cb_chat_mutex_take(long long id, int timeout_ms)
{
	return take(fd, "chat", id, timeout_ms);
}

int
cb_agent_mutex_take(long long id, int timeout_ms)
{
	return take(agent_fd, "agent", id, timeout_ms);
}

void
cb_agent_mutex_release(long long id)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = id, .l_len = 1};

	if (agent_fd >= 0 && fcntl(agent_fd, F_SETLK, &fl) != 0)
		cb_error("agent %lld: cannot release its mutex: %s", id, strerror(errno));
}

void
cb_chat_mutex_release_all(void)
{
	/* Length 0: from offset 0 to the end of any file, every byte this process locked. */
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};

	if (fd >= 0 && fcntl(fd, F_SETLK, &fl) != 0)
		cb_error("chat mutexes: cannot release: %s", strerror(errno));
	if (agent_fd >= 0 && fcntl(agent_fd, F_SETLK, &fl) != 0)
		cb_error("agent mutexes: cannot release: %s", strerror(errno));
}
