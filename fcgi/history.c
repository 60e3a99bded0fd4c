/* history.c - the shared store of newest history pages (history.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history.h"
#include "log.h"

#define MAGIC 0x3174736968626332ULL /* "2cbhist1", little-endian */
#define SLOT_BYTES (CB_HISTORY_PAGE_MAX + 1)

/* The file: this head, the slot heads, then (page-aligned) one page area per slot. */
struct file_head {
	uint64_t magic; /* written last, once the sizes below are */
	uint32_t nslots, slot_bytes;
};

/* What a slot holds; valid while the slot's counter equals stamp. */
struct entry {
	uint64_t stamp;
	int64_t at_ms;
	int64_t limit;
	struct cb_history_page p; /* p.st.id 0: empty */
	uint32_t len;
};

struct slot {
	uint64_t counter; /* moved by every committed change to a chat of this slot */
	uint64_t seq; /* odd while a process rewrites the entry and its page */
	struct entry e;
};

static int fd = -1;
static struct file_head *head;
static struct slot *slots;
static unsigned nslots;
static size_t map_bytes;
static off_t pages_at;
static int max_age;

static size_t
round_page(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) / page * page;
}

static int
fail(const char *what, const char *path)
{
	cb_warn("history cache: cannot %s %s: %s; it is off", what, path, strerror(errno));
	cb_history_close();
	return CB_ERR;
}

/*
 * The file holds every chat's newest messages and the state their readers'
 * access is checked against, and it usually lives in a directory any local
 * user may write (/dev/shm) under a name one can work out: a file someone
 * else made there first, or one that others may read or write, is not used.
 */
static int
owned_privately(const struct stat *st, const char *path)
{
	if (S_ISREG(st->st_mode) && st->st_uid == geteuid() && (st->st_mode & 077) == 0)
		return 1;
	cb_warn("history cache: %s is not a file of this user that only it may read and write "
	        "(owner %u, mode %03o); it is off",
	    path, (unsigned)st->st_uid, (unsigned)(st->st_mode & 0777));
	cb_history_close();
	return 0;
}

int
cb_history_open(const char *path, int size_mb, int max_age_ms)
{
	struct stat st;
	void *p;

	cb_history_close();
	if (path == NULL || *path == '\0' || size_mb <= 0)
		return CB_ERR;
	unsigned n = (unsigned)((size_t)size_mb * 1024 * 1024 / SLOT_BYTES);
	size_t heads = round_page(sizeof(struct file_head) + (size_t)n * sizeof(struct slot));
	off_t size = (off_t)(heads + (size_t)n * SLOT_BYTES);

	/* Not a link (O_NOFOLLOW): it might point at any file of ours. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fail("open", path);
	if (fstat(fd, &st) != 0)
		return fail("stat", path);
	if (!owned_privately(&st, path))
		return CB_ERR;
	/* Growing to the same size is harmless when two processes race here. */
	if (st.st_size < size && ftruncate(fd, size) != 0)
		return fail("size", path);
	p = mmap(NULL, heads, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fail("map", path);
	head = p;
	map_bytes = heads;
	if (__atomic_load_n(&head->magic, __ATOMIC_ACQUIRE) != MAGIC) {
		head->nslots = n;
		head->slot_bytes = SLOT_BYTES;
		__atomic_store_n(&head->magic, MAGIC, __ATOMIC_RELEASE);
	}
	if (head->nslots != n || head->slot_bytes != SLOT_BYTES) {
		cb_warn("history cache: %s was made for another history_cache_mb; it is off "
		        "(remove the file while the instance is down)",
		    path);
		cb_history_close();
		return CB_ERR;
	}
	slots = (struct slot *)(head + 1);
	nslots = n;
	pages_at = (off_t)heads;
	max_age = max_age_ms;
	return CB_OK;
}

void
cb_history_close(void)
{
	if (head != NULL)
		munmap(head, map_bytes);
	if (fd >= 0)
		close(fd);
	fd = -1;
	head = NULL;
	slots = NULL;
	nslots = 0;
}

static unsigned
slot_of(long long chat_id)
{
	return (unsigned)((unsigned long long)chat_id % nslots);
}

void
cb_history_bump(long long chat_id)
{
	if (slots != NULL)
		__atomic_add_fetch(&slots[slot_of(chat_id)].counter, 1, __ATOMIC_SEQ_CST);
}

void
cb_history_bump_all(void)
{
	for (unsigned i = 0; slots != NULL && i < nslots; i++)
		__atomic_add_fetch(&slots[i].counter, 1, __ATOMIC_SEQ_CST);
}

int
cb_history_stamp(long long chat_id, struct cb_history_stamp *s)
{
	if (slots == NULL || max_age <= 0)
		return 0;
	s->slot = slot_of(chat_id);
	s->counter = __atomic_load_n(&slots[s->slot].counter, __ATOMIC_SEQ_CST);
	s->at_ms = cb_monotonic_ms();
	return 1;
}

/* Claims the slot for writing: its sequence odd. 0 if another process is at it. */
static int
claim(struct slot *slot, uint64_t *seq)
{
	*seq = __atomic_load_n(&slot->seq, __ATOMIC_RELAXED);
	return !(*seq & 1) &&
	    __atomic_compare_exchange_n(
	        &slot->seq, seq, *seq + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static void
release(struct slot *slot, uint64_t seq)
{
	__atomic_store_n(&slot->seq, seq + 2, __ATOMIC_RELEASE);
}

enum cb_history_found
cb_history_get(long long chat_id, long long limit, struct cb_history_page *p, struct cb_buf *out)
{
	if (slots == NULL || max_age <= 0)
		return CB_HISTORY_NONE;
	unsigned i = slot_of(chat_id);
	struct slot *slot = &slots[i];
	uint64_t seq = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
	struct entry e;

	if (seq & 1)
		return CB_HISTORY_NONE;
	memcpy(&e, &slot->e, sizeof e);
	if (e.p.st.id != chat_id || e.limit != limit || e.len > CB_HISTORY_PAGE_MAX ||
	    e.stamp != __atomic_load_n(&slot->counter, __ATOMIC_SEQ_CST))
		return CB_HISTORY_NONE;
	char *to = cb_buf_space(out, e.len);
	if (pread(fd, to, e.len, pages_at + (off_t)i * SLOT_BYTES) != (ssize_t)e.len)
		return CB_HISTORY_NONE;
	/* Whatever was copied is only good if nobody began rewriting the slot meanwhile. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&slot->seq, __ATOMIC_RELAXED) != seq)
		return CB_HISTORY_NONE;
	out->len += e.len;
	out->data[out->len] = '\0';
	*p = e.p;
	long long now = cb_monotonic_ms();
	return now >= e.at_ms && now - e.at_ms < max_age ? CB_HISTORY_FRESH : CB_HISTORY_OLD;
}

void
cb_history_put(const struct cb_history_stamp *s, long long limit, const struct cb_history_page *p,
    const char *page, size_t len)
{
	uint64_t seq;

	if (slots == NULL || len > CB_HISTORY_PAGE_MAX || s->slot >= nslots)
		return;
	struct slot *slot = &slots[s->slot];
	/* Read before a change that has been announced since: it would never be served. */
	if (__atomic_load_n(&slot->counter, __ATOMIC_SEQ_CST) != s->counter || !claim(slot, &seq))
		return;
	struct entry e = {
	    .stamp = s->counter, .at_ms = s->at_ms, .limit = limit, .p = *p, .len = (uint32_t)len};
	if (pwrite(fd, page, len, pages_at + (off_t)s->slot * SLOT_BYTES) != (ssize_t)len)
		e.p.st.id = 0;
	memcpy(&slot->e, &e, sizeof e);
	release(slot, seq);
}

void
cb_history_confirm(const struct cb_history_stamp *s, long long chat_id, long long limit)
{
	uint64_t seq;

	if (slots == NULL || s->slot >= nslots)
		return;
	struct slot *slot = &slots[s->slot];
	if (__atomic_load_n(&slot->counter, __ATOMIC_SEQ_CST) != s->counter || !claim(slot, &seq))
		return;
	/* Still the page that was confirmed, and no change since: it lives on. */
	if (slot->e.p.st.id == chat_id && slot->e.limit == limit && slot->e.stamp == s->counter &&
	    slot->e.at_ms < s->at_ms)
		slot->e.at_ms = s->at_ms;
	release(slot, seq);
}
