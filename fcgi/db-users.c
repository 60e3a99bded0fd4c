/* db-users.c - user rows and the user object. */
#include "db-users.h"
#include "util.h"

int
cb_db_user_json(struct cb_db *db, long long id, json_object **out)
{
	struct cb_res *res;
	int rc = cb_db_query(db, &res, "SELECT " CB_USER_COLUMNS CB_USER_FROM "WHERE u.id = ?", "i", id);

	*out = NULL;
	if (rc != CB_OK)
		return rc;
	if (res->nrows == 1)
		*out = cb_res_row_json(res, 0);
	else
		rc = CB_ERR_NOTFOUND;
	cb_res_free(res);
	return rc;
}
