/* migrate.h - schema migrations and the sample data (carebot-admin migrate / seed). */
#ifndef CB_MIGRATE_H
#define CB_MIGRATE_H

#include "db.h"

/*
 * The newest migration this build's statements need; health reports the
 * database down until it is applied (tests/e2e/test_ops.py checks that it
 * names the last file in schema/).
 */
#define CB_SCHEMA_VERSION "005-list-indexes.sql"
/* Seconds a migration's statement waits for a table another transaction
 * holds before it gives up (every request on that table waits behind it). */
#define CB_MIGRATE_LOCK_WAIT_S 5

/*
 * Applies, in name order, each schema_dir/NNN-*.sql not yet recorded; once each.
 * Every migration may run again after it stopped halfway (MariaDB commits
 * each DDL statement on its own): its statements say IF [NOT] EXISTS.
 */
int cb_migrate(struct cb_db *db, const char *schema_dir);
/* Loads contract section 9; what already exists is left as it is. */
int cb_seed(struct cb_db *db);

#endif
