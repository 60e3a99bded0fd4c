/* api-health.c - GET /api/health (contract section 8): the database and the publisher. */
#include "migrate.h"
#include "publish.h"
#include "router.h"
#include "util.h"

static int
health(struct cb_request *req)
{
	struct cb_res *res = NULL;
	/* Reachable, and migrated as far as this build needs: new workers on an
	 * old schema would fail every request that meets what is missing. */
	int rc = cb_db_query(req->db, &res,
	    "SELECT 1 AS one FROM schema_migrations WHERE version = ?", "s", CB_SCHEMA_VERSION);
	int schema_old = rc == CB_OK ? res->nrows == 0 : rc == CB_ERR_SCHEMA;
	int db_ok = rc == CB_OK && !schema_old;
	int rt_ok = cb_publish_ping() == CB_OK;
	json_object *body = json_object_new_object();

	cb_res_free(res);
	json_object_object_add(
	    body, "status", json_object_new_string(db_ok && rt_ok ? "ok" : "degraded"));
	json_object_object_add(body, "database", json_object_new_string(db_ok ? "ok" : "down"));
	json_object_object_add(body, "realtime", json_object_new_string(rt_ok ? "ok" : "down"));
	if (!(db_ok && rt_ok)) {
		struct cb_error e;

		cb_error_set(&e, 503, "unavailable", NULL, "%s",
		    schema_old   ? "the database's schema is older than this server "
		                   "(run carebot-admin migrate)"
		        : !db_ok ? "the database cannot be reached"
		                 : "the real-time publisher (Nchan) cannot be reached");
		json_object *err = cb_error_json(&e);
		json_object *inner;
		json_object_object_get_ex(err, "error", &inner);
		json_object_object_add(body, "error", json_object_get(inner));
		json_object_put(err);
	}
	cb_reply_json(req, db_ok && rt_ok ? 200 : 503, body);
	return CB_OK;
}

const struct cb_route cb_api_health_routes[] = {
    {"GET", "/api/health", CB_ROLE_ANON, 0, health},
    {NULL, NULL, 0, 0, NULL},
};
