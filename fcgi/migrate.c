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
	} else {
		fprintf(stderr, "carebot-admin: migration %s failed (see the log above)\n", name);
	}
	free(sql);
	free(path);
	return rc;
}

int
cb_migrate(struct cb_db *db, const char *dir)
{
	struct dirent **names;
	struct cb_res *res = NULL;
	int rc, n;

	rc = cb_db_exec(db,
	    "CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR(255) NOT NULL PRIMARY KEY, "
	    "applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
	    "");
	/* Two migrate runs at once: the second waits, then finds nothing to do. */
	if (rc == CB_OK)
		rc = cb_db_query(db, &res, "SELECT GET_LOCK('carebot.migrate', 60) AS got", "");
	cb_res_free(res);
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
	res = NULL;
	cb_db_query(db, &res, "SELECT RELEASE_LOCK('carebot.migrate') AS released", "");
	cb_res_free(res);
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

static int
seed_department(struct cb_db *db, const char *name, int want_default)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res,
	    "SELECT (SELECT COUNT(*) FROM departments WHERE live_name = LOWER(?)) AS present, "
	    "  (SELECT COUNT(*) FROM departments WHERE default_flag = 1) AS defaults",
	    "s", name);

	if (rc != CB_OK)
		return rc;
	int present = cb_res_int(res, 0, "present") > 0;
	/* Only the first seed makes the default; an admin may have moved it since. */
	int is_default = want_default && cb_res_int(res, 0, "defaults") == 0;
	cb_res_free(res);
	if (present)
		return CB_OK;
	return cb_db_exec(db, "INSERT INTO departments (name, is_default) VALUES (?, ?)", "si",
	    name, (long long)is_default);
}

static int
seed_user(struct cb_db *db, const struct seed_user *u)
{
	char hash[CB_PWHASH_LEN];
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT id FROM users WHERE username = ?", "s", u->username);

	if (rc != CB_OK)
		return rc;
	int exists = res->nrows > 0;
	cb_res_free(res);
	if (exists)
		return CB_OK;
	if (cb_auth_password_hash(u->password, hash) != CB_OK)
		return CB_ERR;
	return cb_db_exec(db,
	    "INSERT INTO users (username, password_hash, full_name, role, department_id, presence, max_chats) "
	    "VALUES (?, ?, ?, ?, (SELECT id FROM departments WHERE live_name = LOWER(?)), 'offline', 5)",
	    "sssss", u->username, hash, u->full_name, u->role, u->department);
}

int
cb_seed(struct cb_db *db)
{
	int rc = CB_OK;

	for (size_t i = 0; rc == CB_OK && i < CB_ARRAY_LEN(departments); i++)
		rc = seed_department(db, departments[i], i == 0);
	for (size_t i = 0; rc == CB_OK && i < CB_ARRAY_LEN(users); i++)
		rc = seed_user(db, &users[i]);
	if (rc == CB_OK)
		printf("sample data in place: %zu departments, %zu users\n",
		    CB_ARRAY_LEN(departments), CB_ARRAY_LEN(users));
	return rc;
}
