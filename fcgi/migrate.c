/* migrate.c - versioned migrations under a named lock, and the idempotent seed. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "migrate.h"
#include "util.h"

/*
 * The whole file, or NULL with errno set. A read that fails part-way is a
 * failure: fread's 0 at an error looked like the end of the file, and the
 * text read so far (none, for a directory) was run as the migration.
 */
static char *
slurp(const char *path)
{
	struct cb_buf b = {0};
	char chunk[8192];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		cb_buf_append(&b, chunk, n);
	if (ferror(f)) {
		int saved = errno;

		fclose(f);
		cb_buf_free(&b);
		errno = saved;
		return NULL;
	}
	fclose(f);
	if (b.data == NULL)
		cb_buf_append(&b, "", 0);
	return b.data;
}

static int
is_migration(const struct dirent *d)
{
	size_t len = strlen(d->d_name);

	return len > 4 && strcmp(d->d_name + len - 4, ".sql") == 0 && d->d_name[0] >= '0' &&
	    d->d_name[0] <= '9';
}

static int
apply(struct cb_db *db, const char *dir, const char *name)
{
	struct cb_res *res;
	char *path, *sql;
	int rc = cb_db_query(
	    db, &res, "SELECT 1 AS applied FROM schema_migrations WHERE version = ?", "s", name);

	if (rc != CB_OK)
		return rc;
	int done = res->nrows > 0;
	cb_res_free(res);
	if (done)
		return CB_OK;
	path = xasprintf("%s/%s", dir, name);
	sql = slurp(path);
	if (sql == NULL) {
		fprintf(stderr, "carebot-admin: cannot read %s: %s\n", path, strerror(errno));
		rc = CB_ERR;
	} else if ((rc = cb_db_exec_script(db, sql)) == CB_OK) {
		rc =
		    cb_db_exec(db, "INSERT INTO schema_migrations (version) VALUES (?)", "s", name);
		printf("applied %s\n", name);
	} else if (rc == CB_ERR_RETRY) {
		fprintf(stderr,
		    "carebot-admin: migration %s waited " CB_STR(
		        CB_MIGRATE_LOCK_WAIT_S) " s for a table "
		                                "that another transaction holds (SHOW PROCESSLIST names it) and gave up, so that "
		                                "requests do not queue behind it; end that transaction and run migrate again "
		                                "(a migration may run again after it stopped halfway)\n",
		    name);
	} else {
		fprintf(stderr,
		    "carebot-admin: migration %s failed (see the log above); mend the cause and run "
		    "migrate again (a migration may run again after it stopped halfway)\n",
		    name);
	}
	free(sql);
	free(path);
	return rc;
}

/*
 * The named lock that migrate and seed run under: two runs at once (two
 * hosts' deploy scripts, say) would both find a row missing and both try to
 * add it; the second one waits instead, then finds nothing to do. A seed
 * never meets a half-applied migration either. CB_ERR, said on stderr, when
 * another run holds it for a minute.
 */
static int
schema_lock(struct cb_db *db, const char *what)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT GET_LOCK('carebot.migrate', 60) AS got", "");

	if (rc != CB_OK)
		return rc;
	int got = cb_res_int(res, 0, "got") == 1;
	cb_res_free(res);
	if (!got) {
		fprintf(stderr,
		    "carebot-admin: %s: another migrate or seed held the lock for 60 s; try again\n",
		    what);
		return CB_ERR;
	}
	return CB_OK;
}

static void
schema_unlock(struct cb_db *db)
{
	struct cb_res *res;

	if (cb_db_query(db, &res, "SELECT RELEASE_LOCK('carebot.migrate') AS released", "") ==
	    CB_OK)
		cb_res_free(res);
}

int
cb_migrate(struct cb_db *db, const char *dir)
{
	struct dirent **names;
	int rc, n;

	rc = cb_db_exec(db,
	    "CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR(255) NOT NULL PRIMARY KEY, "
	    "applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
	    "");
	/* A statement that waits for a table's metadata lock holds up every
	 * request on that table behind it: it may only wait briefly. */
	if (rc == CB_OK)
		rc = cb_db_exec(db,
		    "SET SESSION lock_wait_timeout = " CB_STR(
		        CB_MIGRATE_LOCK_WAIT_S) ", "
		                                "SESSION innodb_lock_wait_timeout = " CB_STR(
		                                    CB_MIGRATE_LOCK_WAIT_S),
		    "");
	if (rc == CB_OK)
		rc = schema_lock(db, "migrate");
	if (rc != CB_OK)
		return rc;
	n = scandir(dir, &names, is_migration, alphasort);
	if (n < 0) {
		fprintf(stderr, "carebot-admin: cannot list %s: %s\n", dir, strerror(errno));
		rc = CB_ERR;
	}
	for (int i = 0; i < n; i++) {
		if (rc == CB_OK)
			rc = apply(db, dir, names[i]->d_name);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	schema_unlock(db);
	return rc;
}

/* Contract section 9. */
static const char *const departments[] = {"Customer Care", "Technical Support", "Sales", "Billing"};

static const struct seed_user {
	const char *username, *password, *full_name, *role, *department;
} users[] = {
    {"admin", "admin123", "Administrator", "admin", NULL},
    {"alice_cc", "password123", "Alice Carter", "agent", "Customer Care"},
    {"bob_cc", "password123", "Bob Collins", "agent", "Customer Care"},
    {"charlie_tech", "password123", "Charlie Turner", "agent", "Technical Support"},
    {"diana_tech", "password123", "Diana Taylor", "agent", "Technical Support"},
    {"eve_sales", "password123", "Eve Sanders", "agent", "Sales"},
    {"frank_billing", "password123", "Frank Bishop", "agent", "Billing"},
    {"customer1", "password123", "Casey Customer", "customer", NULL},
};

/* Adds department name unless it is there; *added says whether it was. */
static int
seed_department(struct cb_db *db, const char *name, int want_default, int *added)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT (SELECT COUNT(*) FROM departments WHERE live_name = LOWER(?)) AS present, "
	    "  (SELECT COUNT(*) FROM departments WHERE default_flag = 1) AS defaults",
	    "s", name);

	*added = 0;
	if (rc != CB_OK)
		return rc;
	int present = cb_res_int(res, 0, "present") > 0;
	/* Only the first seed makes the default; an admin may have moved it since. */
	int is_default = want_default && cb_res_int(res, 0, "defaults") == 0;
	cb_res_free(res);
	if (present)
		return CB_OK;
	rc = cb_db_exec(db, "INSERT INTO departments (name, is_default) VALUES (?, ?)", "si", name,
	    (long long)is_default);
	*added = rc == CB_OK;
	return rc;
}

/* Adds user u unless its username is taken; *added says whether it was. */
static int
seed_user(struct cb_db *db, const struct seed_user *u, int *added)
{
	char hash[CB_PWHASH_LEN];
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT id FROM users WHERE username = ?", "s", u->username);

	*added = 0;
	if (rc != CB_OK)
		return rc;
	int exists = res->nrows > 0;
	cb_res_free(res);
	if (exists)
		return CB_OK;
	if (cb_auth_password_hash(u->password, hash) != CB_OK)
		return CB_ERR;
	rc = cb_db_exec(db,
	    "INSERT INTO users (username, password_hash, full_name, role, department_id, presence, max_chats) "
	    "VALUES (?, ?, ?, ?, (SELECT id FROM departments WHERE live_name = LOWER(?)), 'offline', 5)",
	    "sssss", u->username, hash, u->full_name, u->role, u->department);
	*added = rc == CB_OK;
	return rc;
}

/* Why adding a sample row failed, in the operator's words; the database's own are logged above. */
static const char *
seed_failure(int rc)
{
	switch (rc) {
	case CB_ERR_UNAVAILABLE: return "the database cannot be reached";
	case CB_ERR_DUPLICATE: return "one of that name was added meanwhile";
	case CB_ERR_RETRY: return "a lock wait timed out";
	case CB_ERR_FULL: return "the database has no room (is its disk full?)";
	case CB_ERR_NO_IDS: return "a table of the database has used up its ids";
	default: return "the database refused it (see the log line above; has migrate run?)";
	}
}

static const char *
plural(int n)
{
	return n == 1 ? "" : "s";
}

/* Adds what is missing, counting it in *ndepts and *nusers; on failure, says which row. */
static int
seed_rows(struct cb_db *db, int *ndepts, int *nusers)
{
	const char *row = NULL;
	int rc = CB_OK, added;

	for (size_t i = 0; rc == CB_OK && i < CB_ARRAY_LEN(departments); i++) {
		row = departments[i];
		rc = seed_department(db, row, i == 0, &added);
		*ndepts += added;
	}
	for (size_t i = 0; rc == CB_OK && i < CB_ARRAY_LEN(users); i++) {
		row = users[i].username;
		rc = seed_user(db, &users[i], &added);
		*nusers += added;
	}
	if (rc != CB_OK)
		fprintf(stderr,
		    "carebot-admin: seed: cannot add '%s': %s (%d department%s and %d user%s added "
		    "before it)\n",
		    row, seed_failure(rc), *ndepts, plural(*ndepts), *nusers, plural(*nusers));
	return rc;
}

/*
 * Under migrate's lock (schema_lock), so that two seeds at once do not both
 * find a row missing and both add it: the second waits, then adds nothing.
 * Says what it added.
 */
int
cb_seed(struct cb_db *db)
{
	int ndepts = 0, nusers = 0;
	int rc = schema_lock(db, "seed");

	if (rc != CB_OK)
		return rc;
	rc = seed_rows(db, &ndepts, &nusers);
	schema_unlock(db);
	if (rc == CB_OK)
		printf("seed: %d department%s and %d user%s added%s\n", ndepts, plural(ndepts),
		    nusers, plural(nusers),
		    ndepts + nusers == 0 ? " (the sample data was there already)" : "");
	return rc;
}
