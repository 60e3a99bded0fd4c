/* migrate.h - schema migrations and the sample data (carebot-admin migrate / seed). */
#ifndef CB_MIGRATE_H
#define CB_MIGRATE_H

#include "db.h"

/* Applies, in name order, each schema_dir/NNN-*.sql not yet recorded; once each. */
int cb_migrate(struct cb_db *db, const char *schema_dir);
/* Loads contract section 9; what already exists is left as it is. */
int cb_seed(struct cb_db *db);

#endif
