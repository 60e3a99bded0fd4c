"""Contract section 3: at most 10 login attempts a minute per client address, then 429.

Named to run last: it uses up this address's login budget for a minute.
"""


def test_login_is_rate_limited_per_address(api, pool_pids):
    workers = pool_pids()
    statuses = []
    for _ in range(15):
        r = api.post("/api/auth/login", json={"username": "admin", "password": "wrong-password"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.headers["Content-Type"].startswith("application/json")
            assert r.json()["error"]["code"] == "rate_limited"
    assert 429 in statuses, statuses
    assert sum(1 for s in statuses if s != 429) <= 10, statuses
    assert set(statuses) <= {401, 429}, statuses
    # Other endpoints are not limited, and nothing crashed.
    assert api.get("/api/health").status_code == 200
    assert pool_pids() == workers
