"""What cron's `reassign` forgets besides login attempts (README 4): sessions
an hour past their expiry and Idempotency-Key rows past their 24 h, which
nothing else ever removed, in batches, so that a backlog is worked off over a
few runs and no statement runs long."""

import uuid

from chathelp import World, ok, reassign_counts
from test_history_age import sql, sql_value

BATCH, BATCHES = 1000, 50  # CB_SWEEP_BATCH, CB_SWEEP_BATCHES (fcgi/db-sessions.h)


def test_expired_sessions_and_old_idempotency_rows_go_and_live_ones_stay(
        api, admin_token, token_for, state_dir, admin_cli):
    w = World(api, admin_token, token_for)
    customer = w.customer()
    me = ok(api.get("/api/auth/me", token=customer["token"]))["id"]
    chat = w.chat(customer)
    key = f"sweep-{uuid.uuid4().hex}"
    first = api.post(f"/api/chats/{chat['id']}/messages", token=customer["token"],
                     json={"content": "kept"}, headers={"Idempotency-Key": key})
    ok(first, 201)
    # Rows as an old database holds them: past their time, and just within it.
    sql(state_dir,
        "INSERT INTO sessions (user_id, token_hash, created_at, expires_at, revoked_at) VALUES "
        f"({me}, RANDOM_BYTES(32), NOW(3) - INTERVAL 2 DAY, NOW(3) - INTERVAL 61 MINUTE, NULL), "
        f"({me}, RANDOM_BYTES(32), NOW(3) - INTERVAL 2 DAY, NOW(3) - INTERVAL 2 HOUR, NOW(3)), "
        f"({me}, RANDOM_BYTES(32), NOW(3) - INTERVAL 1 DAY, NOW(3) - INTERVAL 59 MINUTE, NULL); "
        "INSERT INTO idempotency_keys (user_id, endpoint, idem_key, request_hash, status, "
        "response, created_at) VALUES "
        f"({me}, 'sweep', 'old', RANDOM_BYTES(32), 201, '{{}}', NOW(3) - INTERVAL 1441 MINUTE), "
        f"({me}, 'sweep', 'young', RANDOM_BYTES(32), 201, '{{}}', NOW(3) - INTERVAL 1439 MINUTE)")
    assert sql_value(state_dir, f"SELECT COUNT(*) FROM sessions WHERE user_id = {me}") == 4
    reassign_counts(admin_cli)
    # The two an hour past their expiry went; the one just expired and the live token stay.
    assert sql_value(state_dir, f"SELECT COUNT(*) FROM sessions WHERE user_id = {me}") == 2
    assert sql_value(state_dir, f"SELECT COUNT(*) FROM sessions WHERE user_id = {me} "
                            "AND expires_at > NOW(3)") == 1
    assert sql_value(state_dir, f"SELECT COUNT(*) FROM idempotency_keys WHERE user_id = {me} "
                            "AND endpoint = 'sweep'") == 1
    assert sql_value(state_dir, f"SELECT COUNT(*) FROM idempotency_keys WHERE user_id = {me} "
                            "AND idem_key = 'young'") == 1
    # What is live still works as before: the token, and the key's replay.
    assert ok(api.get("/api/auth/me", token=customer["token"]))["id"] == me
    again = api.post(f"/api/chats/{chat['id']}/messages", token=customer["token"],
                     json={"content": "kept"}, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == first.json()


def test_a_backlog_goes_in_batches_over_a_few_runs(state_dir, admin_cli):
    address = f"sweep-{uuid.uuid4().hex[:12]}"
    old = BATCH * BATCHES + 1500
    sql(state_dir, "INSERT INTO login_attempts (address, attempted_at) "
                   f"SELECT '{address}', NOW(3) - INTERVAL 2 MINUTE FROM seq_1_to_{old}; "
                   "INSERT INTO login_attempts (address, attempted_at) "
                   f"VALUES ('{address}', NOW(3) - INTERVAL 10 SECOND)")
    left = f"SELECT COUNT(*) FROM login_attempts WHERE address = '{address}'"
    assert sql_value(state_dir, left) == old + 1
    reassign_counts(admin_cli)
    # One run takes at most its batches (other addresses' rows may share them).
    after_one = sql_value(state_dir, left)
    assert 1500 + 1 <= after_one < old + 1, after_one
    reassign_counts(admin_cli)
    # The rest in the next run; the attempt still within its minute stays.
    assert sql_value(state_dir, left) == 1
