/* cache.c - the shared state generation (cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "log.h"
#include "typing.h"
#include "util.h"

/* The file's layout; it is zero-filled when the file is created. */
struct shared {
	uint64_t generation;
	char pad[4096 - sizeof(uint64_t)];
	uint64_t typing[CB_TYPING_SLOTS]; /* typing.c's, from the second page on */
};

/* Every process sizes the file to this, so none can shrink it under another's map. */
#define SHARED_SIZE ((off_t)sizeof(struct shared))

static struct shared *shared;
static int max_age; /* milliseconds; 0: keep nothing */

int
cb_cache_open(const char *path, int max_age_ms)
{
	struct stat st;
	void *p;
	int fd;

	cb_cache_close();
	if (path == NULL || *path == '\0')
		return CB_ERR;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		cb_warn("cache: cannot open %s: %s; caching is off", path, strerror(errno));
		return CB_ERR;
	}
	/* Growing to the same size is harmless when two processes race here. */
	if (fstat(fd, &st) != 0 || (st.st_size < SHARED_SIZE && ftruncate(fd, SHARED_SIZE) != 0)) {
		cb_warn("cache: cannot size %s: %s; caching is off", path, strerror(errno));
		close(fd);
		return CB_ERR;
	}
	p = mmap(NULL, SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		cb_warn("cache: cannot map %s: %s; caching is off", path, strerror(errno));
		return CB_ERR;
	}
	shared = p;
	max_age = max_age_ms;
	return CB_OK;
}

void
cb_cache_close(void)
{
	if (shared != NULL)
		munmap(shared, SHARED_SIZE);
	shared = NULL;
}

void
cb_cache_bump(void)
{
	if (shared != NULL)
		__atomic_add_fetch(&shared->generation, 1, __ATOMIC_SEQ_CST);
}

int
cb_cache_stamp(struct cb_stamp *s)
{
	if (shared == NULL || max_age <= 0)
		return 0;
	s->gen = __atomic_load_n(&shared->generation, __ATOMIC_SEQ_CST);
	s->at_ms = cb_monotonic_ms();
	return 1;
}

int
cb_stamp_fresh_at(const struct cb_stamp *s, uint64_t gen, long long now_ms, int max_age_ms)
{
	return s->gen == gen && now_ms >= s->at_ms && now_ms - s->at_ms < max_age_ms;
}

int
cb_cache_fresh(const struct cb_stamp *s)
{
	if (shared == NULL)
		return 0;
	return cb_stamp_fresh_at(
	    s, __atomic_load_n(&shared->generation, __ATOMIC_SEQ_CST), cb_monotonic_ms(), max_age);
}

uint64_t *
cb_cache_typing_slots(void)
{
	return shared != NULL ? shared->typing : NULL;
}
