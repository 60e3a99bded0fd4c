"""Model-based random test of contract 4-6 and 8's reassign: departments,
agents' presence, status and capacity, chats, queues, assignment, transfer,
agents going offline and close.

A small reference model in Python (departments: active, default, deleted;
agents: department, is_active, presence, max_chats, last assignment; chats:
status, department, agent, queued_at, messages) is driven side by side with
the running instance through the public API only, by seeded random
sequences of operations: customers open chats (in a department, or none: the
default), agents set their presence and send heartbeats, chats are closed and
transferred (to a department, with or without an agent) by the admin, the
assigned agent or the customer, and by callers who may not, the admin
changes max_chats, moves, deactivates and reactivates agents, creates,
(de)activates, deletes departments and moves the default, and
`carebot-admin reassign` runs. Every answer (status, error code and field,
the chat or user it returns) is compared with the model, and every few steps
the whole observable state of the sequence's world: its departments' counts
and flags, every chat's status, department, agent and queue_position, every
agent's presence, status and active_chats, the available-agents list, and
the chats' messages (the customers' and the system's).

Each sequence builds its own world (departments, agents, guest customers,
with unique names) and takes the default for one of its own departments so
that a chat naming none lands in the model; it gives the default back to the
department that had it and clears its world away (agents deactivated, open
chats closed, departments deleted) whatever happens, so the shared instance
is as the other files expect. `reassign` runs with --offline-after 3600, so
it times out only agents never seen (all of them in this instance: other
files' idle agents too, as the other tests that run it do).

Where the contract leaves a choice, the model follows README section 11:
an inactive department's queue is paused; a closed chat keeps its agent;
naming the agent who holds the chat is 422 agent_id; moving an agent
requeues its chats with the "left" message and keeps its presence; queued_at
ties (same millisecond) go to the lower id, as the contract says, so the model
orders a queue by the queued_at the API returned.

Environment:
    E2E_MODEL_SEEDS     seeds to run, e.g. "1-200" or "3,17" (default: SEEDS)
    E2E_MODEL_STEPS     operations per sequence (default: STEPS)
    E2E_MODEL_EVERY     compare the whole state every N steps (default 4)
    E2E_MODEL_MINIMIZE  1: on a failure, shrink the sequence (deleting
                            operations while it still fails, whole state
                            compared after every step) and report the shortest
e.g. a longer hunt: E2E_MODEL_SEEDS=1-200 E2E_MODEL_STEPS=60. (Not CAREBOT_*:
carebot-admin, run for tokens and reassign, warns about a CAREBOT_ variable
that names no setting.)
"""

import os
import random
import re

import pytest

from chathelp import ok, uniq

SEEDS = list(range(1, 25))
STEPS = 60
OFFLINE_AFTER = 3600


class Mismatch(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Mismatch(what)


def seeds_from_env():
    text = os.environ.get("E2E_MODEL_SEEDS")
    if not text:
        return SEEDS
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += range(int(lo), int(hi or lo) + 1)
    return seeds


# ---------------------------------------------------------------- the model

class Dept:
    def __init__(self, id, name, active):
        self.id, self.name, self.active = id, name, active
        self.default = self.deleted = False


class Agent:
    def __init__(self, id, username, full_name, dept, max_chats):
        self.id, self.username, self.full_name = id, username, full_name
        self.dept, self.max_chats = dept, max_chats
        self.active, self.presence, self.last = True, "offline", 0
        self.role, self.token = "agent", None


class Chat:
    def __init__(self, id, customer, dept, queued_at):
        self.id, self.customer, self.dept, self.queued_at = id, customer, dept, queued_at
        self.status, self.agent, self.closed_by = "waiting", None, None
        self.msgs, self.transfers = [], []


class Model:
    """The contract's rules over the sequence's own objects."""

    def __init__(self):
        self.depts, self.agents, self.chats = {}, {}, {}
        self.clock = 0

    def active_chats(self, agent):
        return sum(1 for c in self.chats.values() if c.agent == agent.id and c.status == "active")

    def status(self, agent):
        if agent.role != "agent":
            return None
        if agent.presence == "offline":
            return "offline"
        if agent.presence == "busy" or self.active_chats(agent) >= agent.max_chats:
            return "busy"
        return "available"

    def queue(self, dept_id):
        return sorted((c for c in self.chats.values() if c.dept == dept_id and c.status == "waiting"),
                      key=lambda c: (c.queued_at, c.id))

    def queue_position(self, chat):
        if chat.status != "waiting":
            return None
        return self.queue(chat.dept).index(chat) + 1

    def assign(self, chat, agent):
        chat.status, chat.agent = "active", agent.id
        self.clock += 1
        agent.last = self.clock
        chat.msgs.append(("system", f"{agent.full_name} joined the chat."))

    def drain(self, dept_id):
        """Rule 6.2.5 with 6.2.2-6.2.4; an inactive department's queue waits (README 11)."""
        dept = self.depts.get(dept_id)
        if dept is None or not dept.active or dept.deleted:
            return
        for chat in self.queue(dept_id):
            eligible = [a for a in self.agents.values()
                        if a.active and a.role == "agent" and a.dept == dept_id and a.presence == "available"
                        and self.active_chats(a) < a.max_chats]
            if not eligible:
                return
            self.assign(chat, min(eligible, key=lambda a: (self.active_chats(a), a.last, a.id)))

    def requeue(self, agent):
        """6.4: the agent's active chats go back to the front, queued_at kept."""
        for chat in sorted(self.chats.values(), key=lambda c: (c.queued_at, c.id)):
            if chat.agent == agent.id and chat.status == "active":
                chat.status, chat.agent = "waiting", None
                chat.msgs.append(("system", f"{agent.full_name} left; you are back in the queue."))

    def default(self):
        return next((d for d in self.depts.values() if d.default), None)


# ---------------------------------------------------------------- the driver

def pick(items, r):
    return items[min(int(r * len(items)), len(items) - 1)] if items else None


class Run:
    """One sequence: its world on the instance, the model, and the operations."""

    def __init__(self, api, admin, admin_me, token_for, admin_cli, seed, every):
        self.api, self.admin, self.admin_me = api, admin, admin_me
        self.token_for, self.admin_cli, self.seed, self.every = token_for, admin_cli, seed, every
        self.m = Model()
        self.customers = []  # (id, token)
        self.chat_order, self.agent_order, self.dept_order = [], [], []
        self.last_queued = ""
        self.log = []
        self.tag = f"m{seed}_{uniq('w')[-12:]}"

    # -- plumbing

    def call(self, method, path, token=None, json=None):
        resp = self.api.request(method, path, token=token or self.admin, json=json)
        self.log.append(f"  {method} {path} {json or ''} -> {resp.status_code} {resp.text[:300]}")
        return resp

    def expect(self, resp, status, code=None, field=None, codes=None):
        got = resp.status_code
        body = resp.json() if resp.content else None
        check(got == status, f"expected {status} {code or ''} {field or ''}, got {got} {resp.text[:300]}")
        if status >= 400:
            err = body["error"]
            if codes is not None:
                check(err["code"] in codes, f"expected one of {codes}, got {err}")
            elif code is not None:
                check(err["code"] == code, f"expected code {code}, got {err}")
            check(err.get("field") == field, f"expected field {field}, got {err}")
        return body

    def token_of(self, agent):
        """The agent's token; a deactivated agent's is revoked (or, if it never had one, unknown)."""
        if agent.token is None and not agent.active:
            agent.token = "0" * 64
        if agent.token is None:
            agent.token = self.token_for(agent.username)
        return agent.token

    def queued(self, text):
        """A queued_at the API gave to a chat entering a queue now: never before an earlier one."""
        check(text >= self.last_queued, f"queued_at {text} before an earlier {self.last_queued}")
        self.last_queued = text
        return text

    # -- the world

    def setup(self):
        r = self.api.get("/api/departments/?limit=200", token=self.admin)
        ok(r)
        self.original_default = None
        offset = 0
        while self.original_default is None:
            page = ok(self.api.get(f"/api/departments/?limit=200&offset={offset}", token=self.admin))
            if not page:
                break
            self.original_default = next((d["id"] for d in page if d["is_default"]), None)
            offset += len(page)
        assert self.original_default is not None
        for _ in range(2):
            self.new_dept(True)
        d0 = self.dept_order[0]
        self.expect(self.call("PUT", f"/api/departments/{d0.id}", json={"is_default": True}), 200)
        d0.default = True
        rng = random.Random(self.seed * 7919)
        for dept in (self.dept_order[0], self.dept_order[0], self.dept_order[1]):
            self.new_agent(dept, rng.randint(1, 3))

    def new_dept(self, active):
        name = f"{self.tag} D{len(self.dept_order)}"
        body = self.expect(self.call("POST", "/api/departments/", json={"name": name, "is_active": active}), 201)
        dept = Dept(body["id"], name, active)
        self.m.depts[dept.id] = dept
        self.dept_order.append(dept)
        return dept

    def new_agent(self, dept, max_chats):
        username = f"{self.tag}_a{len(self.agent_order)}"
        body = {"username": username, "password": "password123", "role": "agent",
                "full_name": f"Agent {username}", "department_id": dept.id, "max_chats": max_chats}
        resp = self.call("POST", "/api/users/", json=body)
        if not dept.active or dept.deleted:
            self.expect(resp, 422, "validation_error", "department_id")
            return None
        user = self.expect(resp, 201)
        check(user["presence"] == "offline" and user["status"] == "offline", f"new agent {user}")
        agent = Agent(user["id"], username, body["full_name"], dept.id, max_chats)
        self.m.agents[agent.id] = agent
        self.agent_order.append(agent)
        return agent

    def new_customer(self):
        body = ok(self.api.post("/api/auth/guest", json={"full_name": f"Guest {self.tag}"}), 201)
        self.customers.append((body["user"]["id"], body["token"]))
        return self.customers[-1]

    def cleanup(self):
        """Best effort, every step tried: the default back, the world cleared."""
        api, admin = self.api.raw if hasattr(self.api, "raw") else self.api, self.admin
        api.put(f"/api/departments/{self.original_default}", token=admin, json={"is_default": True})
        for agent in self.agent_order:
            api.delete(f"/api/users/{agent.id}", token=admin)
        for chat in self.chat_order:
            api.put(f"/api/chats/{chat.id}/close", token=admin)
        for dept in self.dept_order:
            api.delete(f"/api/departments/{dept.id}", token=admin)

    # -- comparing

    def compare_chat(self, chat, body, what):
        exp = (chat.status, chat.dept, chat.agent, self.m.queue_position(chat))
        got = (body["status"], body["department_id"], body["agent_id"], body["queue_position"])
        check(exp == got, f"{what}: chat {chat.id} (status, department, agent, queue_position) "
                          f"model {exp}, API {got}")
        if chat.status == "closed":
            check(body["closed_by"] == chat.closed_by, f"{what}: chat {chat.id} closed_by {body['closed_by']}")

    def compare_agent(self, agent, body, what):
        exp = (agent.role, agent.active, agent.dept,
               agent.presence if agent.role == "agent" else None,
               self.m.status(agent), self.m.active_chats(agent), agent.max_chats)
        got = (body["role"], body["is_active"], body["department_id"], body["presence"], body["status"],
               body["active_chats"], body["max_chats"])
        check(exp == got, f"{what}: agent {agent.id} (role, is_active, department, presence, status, "
                          f"active_chats, max_chats) model {exp}, API {got}")

    def compare_all(self, messages=False):
        m = self.m
        for dept in self.dept_order:
            resp = self.api.get(f"/api/departments/{dept.id}", token=self.admin)
            if dept.deleted:
                check(resp.status_code == 404, f"deleted department {dept.id}: {resp.status_code}")
                continue
            body = ok(resp)
            agents = [a for a in m.agents.values() if a.dept == dept.id and a.active and a.role == "agent"]
            exp = (dept.active, dept.default, len(agents),
                   sum(1 for a in agents if m.status(a) == "available"), len(m.queue(dept.id)))
            got = (body["is_active"], body["is_default"], body["agent_count"],
                   body["available_agents"], body["waiting_chats"])
            check(exp == got, f"department {dept.id} (is_active, is_default, agent_count, "
                              f"available_agents, waiting_chats) model {exp}, API {got}")
            listed = ok(self.api.get(f"/api/chats/?department_id={dept.id}&limit=200", token=self.admin))
            mine = {c.id for c in m.chats.values() if c.dept == dept.id}
            check({c["id"] for c in listed} == mine,
                  f"department {dept.id} chats: model {sorted(mine)}, API {sorted(c['id'] for c in listed)}")
            for body in listed:
                self.compare_chat(m.chats[body["id"]], body, "list")
            avail = ok(self.api.get(f"/api/users/agents/available?department_id={dept.id}&limit=200",
                                    token=self.admin))
            exp_ids = sorted(a.id for a in agents if m.status(a) == "available")
            check(sorted(u["id"] for u in avail) == exp_ids,
                  f"available agents of {dept.id}: model {exp_ids}, API {[u['id'] for u in avail]}")
        for agent in self.agent_order:
            self.compare_agent(agent, ok(self.api.get(f"/api/users/{agent.id}", token=self.admin)), "state")
        if messages:
            for chat in self.chat_order:
                got = [(x["sender_role"], x["content"]) for x in
                       ok(self.api.get(f"/api/chats/{chat.id}/messages?limit=500", token=self.admin))]
                check(got == chat.msgs, f"chat {chat.id} messages: model {chat.msgs}, API {got}")
                got = [(t["from_department_id"], t["to_department_id"], t["from_agent_id"], t["to_agent_id"],
                        t["reason"], t["transferred_by"]) for t in
                       ok(self.api.get(f"/api/chats/{chat.id}", token=self.admin))["transfers"]]
                check(got == chat.transfers, f"chat {chat.id} transfers: model {chat.transfers}, API {got}")

    # -- the operations; each takes random numbers in [0, 1) and resolves them
    # against the world as it is, so that a shrunk sequence still runs.

    def op_create(self, r):
        m = self.m
        if not self.customers or r[0] < 0.3:
            self.new_customer()
        cust_id, cust_token = pick(self.customers, r[1])
        body = {}
        dept = None if r[2] < 0.2 else pick(self.dept_order, r[3])
        if dept is not None:
            body["department_id"] = dept.id
        if r[4] < 0.5:
            body["message"] = f"hello {len(self.chat_order)}"
        by_admin = r[5] < 0.3
        if by_admin:
            body["customer_id"] = cust_id
        resp = self.call("POST", "/api/chats/", token=self.admin if by_admin else cust_token, json=body)
        target = dept or m.default()
        if not target.active or target.deleted:
            self.expect(resp, 422, "validation_error", "department_id")
            return
        got = self.expect(resp, 201)
        chat = Chat(got["id"], cust_id, target.id, self.queued(got["queued_at"]))
        if "message" in body:
            chat.msgs.append(("customer", body["message"]))
        m.chats[chat.id] = chat
        self.chat_order.append(chat)
        m.drain(target.id)
        self.compare_chat(chat, got, "create")

    def op_presence(self, r):
        agent = pick(self.agent_order, r[0])
        presence = pick(["available", "available", "busy", "offline"], r[1])
        self_ = r[2] < 0.5
        resp = self.call("PUT", f"/api/users/{agent.id}/status",
                         token=self.token_of(agent) if self_ else None, json={"status": presence})
        if not agent.active:
            self.expect(resp, 401 if self_ else 404, "unauthorized" if self_ else "not_found")
            return
        if agent.role != "agent":
            self.expect(resp, 403 if self_ else 404, "forbidden" if self_ else "not_found")
            return
        got = self.expect(resp, 200)
        agent.presence = presence
        if presence == "offline":
            self.m.requeue(agent)
        self.m.drain(agent.dept)
        self.compare_agent(agent, got, "presence")

    def op_heartbeat(self, r):
        agent = pick(self.agent_order, r[0])
        self_ = r[1] < 0.7
        resp = self.call("POST", f"/api/users/{agent.id}/heartbeat",
                         token=self.token_of(agent) if self_ else None)
        if not agent.active:
            self.expect(resp, 401 if self_ else 404, "unauthorized" if self_ else "not_found")
        elif agent.role != "agent" and self_:
            self.expect(resp, 403, "forbidden")
        elif agent.role != "agent":
            # The contract names heartbeats for agents; README 11: "admins for anyone".
            self.expect(resp, 204)
        else:
            self.expect(resp, 204)

    ACTORS = ["admin", "admin", "agent", "agent", "agent", "other_agent", "customer", "customer",
              "other_customer"]

    def actor(self, chat, r, kinds=ACTORS, no_holder="other_agent"):
        """Who acts on a chat: ('admin'|'agent'|'other_agent'|'customer'|'other_customer', token, id);
        "agent" is the one who holds it, or no_holder's kind when nobody does."""
        m = self.m
        kind = pick(kinds, r)
        if kind in ("agent", "other_agent"):
            holder = m.agents.get(chat.agent)
            if kind == "agent" and holder is not None and holder.active and holder.role == "agent":
                return "agent", self.token_of(holder), holder.id
            if kind == "agent" and no_holder == "admin":
                return "admin", self.admin, self.admin_me["id"]
            others = [a for a in self.agent_order
                      if a.active and a.role == "agent" and a.id != chat.agent]
            if others:
                a = pick(others, r * 7 % 1)
                return "other_agent", self.token_of(a), a.id
            kind = "admin"
        if kind == "other_customer":
            others = [c for c in self.customers if c[0] != chat.customer]
            if others:
                c = pick(others, r * 7 % 1)
                return "other_customer", c[1], c[0]
            kind = "customer"
        if kind == "customer":
            token = next(t for i, t in self.customers if i == chat.customer)
            return "customer", token, chat.customer
        return "admin", self.admin, self.admin_me["id"]

    def refused(self, kind, resp, chat):
        """Checks the answer to a caller who may not act on chat (another
        agent: 403; another customer: 404) or to any caller on a closed one
        (409): True if it was one of those."""
        if kind == "other_agent":
            self.expect(resp, 403, "forbidden")
        elif kind == "other_customer":
            self.expect(resp, 404, "not_found")
        elif chat.status == "closed":
            self.expect(resp, 409, "chat_closed")
        else:
            return False
        return True

    def op_close(self, r):
        m = self.m
        chat = pick(self.chat_order, r[0])
        if chat is None:
            return
        kind, token, who = self.actor(chat, r[1])
        resp = self.call("PUT", f"/api/chats/{chat.id}/close", token=token)
        if self.refused(kind, resp, chat):
            return
        got = self.expect(resp, 200)
        was_active = chat.status == "active"
        chat.status, chat.closed_by = "closed", who
        if was_active:
            m.drain(chat.dept)
        self.compare_chat(chat, got, "close")

    def op_post(self, r):
        chat = pick(self.chat_order, r[0])
        if chat is None:
            return
        kind, token, who = self.actor(chat, r[1])
        resp = self.call("POST", f"/api/chats/{chat.id}/messages", token=token,
                         json={"content": f"text {r[2]:.4f}"})
        if self.refused(kind, resp, chat):
            return
        self.expect(resp, 201)
        chat.msgs.append((kind, f"text {r[2]:.4f}"))

    def op_transfer(self, r):
        m = self.m
        chat = pick(self.chat_order, r[0])
        if chat is None:
            return
        kind, token, who = self.actor(
            chat, r[1], ["admin", "admin", "agent", "agent", "agent", "agent", "other_agent", "customer"],
            no_holder="admin")
        target = m.depts[chat.dept] if r[2] < 0.25 else pick(self.dept_order, r[3])
        body = {"department_id": target.id}
        agent = None
        if r[4] < 0.5:
            agent = pick(self.agent_order, r[5])
            body["agent_id"] = agent.id
        reason = None
        if r[6] < 0.4:
            reason = pick([f"reason {r[6]:.3f}", "", "  ", None], r[6] / 0.4)
            body["reason"] = reason
            reason = (reason or "").strip() or None  # README 11: blank is no reason
        resp = self.call("POST", f"/api/chats/{chat.id}/transfer", token=token, json=body)
        if kind in ("customer", "other_customer", "other_agent"):
            self.expect(resp, 403, "forbidden")
            return
        if chat.status == "closed":
            self.expect(resp, 409, "chat_closed")
            return
        if not target.active or target.deleted:
            self.expect(resp, 422, "validation_error", "department_id")
            return
        if agent is None and target.id == chat.dept:
            self.expect(resp, 422, "validation_error", "department_id")
            return
        if agent is not None:
            if (not agent.active or agent.role != "agent" or agent.dept != target.id
                    or agent.id == chat.agent):
                self.expect(resp, 422, "validation_error", "agent_id")
                return
            if agent.presence != "available" or m.active_chats(agent) >= agent.max_chats:
                self.expect(resp, 409, "agent_unavailable")
                return
        got = self.expect(resp, 200)
        source, previous = chat.dept, chat.agent
        by = self.admin_me["full_name"] if kind == "admin" else m.agents[who].full_name
        text = f"Chat transferred from {m.depts[source].name} to {target.name} by {by}."
        chat.msgs.append(("system", text + (f" Reason: {reason}" if reason else "")))
        chat.dept, chat.status, chat.agent = target.id, "waiting", None
        chat.queued_at = self.queued(got["queued_at"])
        if agent is not None:
            m.assign(chat, agent)
        else:
            m.drain(target.id)
        chat.transfers.append((source, target.id, previous, chat.agent, reason, who))
        if previous is not None:
            m.drain(source)
        self.compare_chat(chat, got, "transfer")

    def op_max_chats(self, r):
        agent = pick(self.agent_order, r[0])
        n = 1 + int(r[1] * 4)
        if r[2] < 0.15 and agent.active:
            resp = self.call("PUT", f"/api/users/{agent.id}", token=self.token_of(agent), json={"max_chats": n})
            self.expect(resp, 403, "forbidden", "max_chats")
            return
        resp = self.call("PUT", f"/api/users/{agent.id}", json={"max_chats": n})
        got = self.expect(resp, 200)
        raised = n > agent.max_chats
        agent.max_chats = n
        if raised and agent.active and agent.role == "agent":
            self.m.drain(agent.dept)
        self.compare_agent(agent, got, "max_chats")

    def op_deactivate(self, r):
        agent = pick(self.agent_order, r[0])
        if r[1] < 0.5:
            resp = self.call("DELETE", f"/api/users/{agent.id}")
        else:
            resp = self.call("PUT", f"/api/users/{agent.id}", json={"is_active": False})
        if not agent.active:
            if resp.request.method == "DELETE":
                self.expect(resp, 404, "not_found")
            else:
                self.expect(resp, 200)
            return
        self.expect(resp, 204 if resp.request.method == "DELETE" else 200)
        agent.active = False
        if agent.role == "agent":
            agent.presence = "offline"
            self.m.requeue(agent)
            self.m.drain(agent.dept)

    def op_reactivate(self, r):
        agent = pick([a for a in self.agent_order if not a.active] or self.agent_order, r[0])
        resp = self.call("PUT", f"/api/users/{agent.id}", json={"is_active": True})
        dept = self.m.depts.get(agent.dept)
        if not agent.active and dept is not None and (not dept.active or dept.deleted):
            self.expect(resp, 422, "validation_error", "department_id")
            return
        got = self.expect(resp, 200)
        if not agent.active:
            agent.active, agent.token = True, None  # the old token stays revoked
        self.compare_agent(agent, got, "reactivate")

    def op_move(self, r):
        m = self.m
        agent = pick(self.agent_order, r[0])
        dept = pick(self.dept_order, r[1])
        body = {"department_id": dept.id}
        if r[2] < 0.3:  # one PUT, several fields
            body["max_chats"] = 1 + int(r[3] * 4)
        if r[4] < 0.5 and not agent.active:
            body["is_active"] = True  # README 11: reactivation with a department
        resp = self.call("PUT", f"/api/users/{agent.id}", json=body)
        if agent.role != "agent":
            self.expect(resp, 422, "validation_error", "department_id")
            return
        if ((dept.id != agent.dept or "is_active" in body) and (not dept.active or dept.deleted)):
            self.expect(resp, 422, "validation_error", "department_id")
            return
        got = self.expect(resp, 200)
        was_active, source = agent.active, agent.dept
        raised = body.get("max_chats", 0) > agent.max_chats
        agent.max_chats = body.get("max_chats", agent.max_chats)
        agent.active = agent.active or "is_active" in body
        if agent.active and not was_active:
            agent.token = None
        if was_active and dept.id != source:
            m.requeue(agent)
        agent.dept = dept.id
        if agent.active and (dept.id != source or raised or not was_active):
            m.drain(source)
            m.drain(dept.id)
        self.compare_agent(agent, got, "move")

    def op_role(self, r):
        """An agent made a customer (requeue, no department, no presence), or back (offline)."""
        m = self.m
        agent = pick(self.agent_order, r[0])
        if agent.role == "agent":
            resp = self.call("PUT", f"/api/users/{agent.id}", json={"role": "customer"})
            got = self.expect(resp, 200)
            if agent.active:
                m.requeue(agent)
            source = agent.dept
            agent.role, agent.dept, agent.presence = "customer", None, "offline"
            if agent.active:
                m.drain(source)
            self.compare_agent(agent, got, "demote")
            if agent.active and agent.token is not None:
                # Its session now is a customer's: no presence of its own any more.
                self.expect(self.call("PUT", f"/api/users/{agent.id}/status", token=agent.token,
                                      json={"status": "available"}), 403, "forbidden")
            return
        dept = pick(self.dept_order, r[1])
        body = {"role": "agent"} if r[2] < 0.1 else {"role": "agent", "department_id": dept.id}
        resp = self.call("PUT", f"/api/users/{agent.id}", json=body)
        if "department_id" not in body or not dept.active or dept.deleted:
            self.expect(resp, 422, "validation_error", "department_id")
            return
        got = self.expect(resp, 200)
        agent.role, agent.dept, agent.presence = "agent", dept.id, "offline"
        self.compare_agent(agent, got, "promote")

    def op_new_agent(self, r):
        if sum(1 for a in self.agent_order if a.active) >= 6:
            return
        self.new_agent(pick(self.dept_order, r[0]), 1 + int(r[1] * 3))

    def op_dept_new(self, r):
        if len(self.dept_order) < 5:
            self.new_dept(r[0] < 0.8)

    def op_dept_active(self, r):
        dept = pick(self.dept_order, r[0])
        active = r[1] < 0.6
        resp = self.call("PUT", f"/api/departments/{dept.id}", json={"is_active": active})
        if dept.deleted:
            self.expect(resp, 404, "not_found")
            return
        if dept.default and not active:
            self.expect(resp, 409, "conflict")
            return
        got = self.expect(resp, 200)
        check(got["is_active"] == active, f"department {got}")
        was = dept.active
        dept.active = active
        if active and not was:
            self.m.drain(dept.id)

    def op_dept_default(self, r):
        dept = pick(self.dept_order, r[0])
        resp = self.call("PUT", f"/api/departments/{dept.id}", json={"is_default": True})
        if dept.deleted:
            self.expect(resp, 404, "not_found")
            return
        if not dept.active:
            self.expect(resp, 409, "conflict")
            return
        self.expect(resp, 200)
        for d in self.m.depts.values():
            d.default = d is dept

    def op_dept_delete(self, r):
        m = self.m
        dept = pick(self.dept_order, r[0])
        resp = self.call("DELETE", f"/api/departments/{dept.id}")
        if dept.deleted:
            self.expect(resp, 404, "not_found")
            return
        if dept.default:
            self.expect(resp, 409, "conflict")
            return
        in_use = (any(a.active and a.role == "agent" and a.dept == dept.id for a in m.agents.values())
                  or any(c.dept == dept.id and c.status != "closed" for c in m.chats.values()))
        if in_use:
            self.expect(resp, 409, "department_in_use")
            return
        self.expect(resp, 204)
        dept.deleted = True

    def op_reassign(self, r):
        m = self.m
        silent = []
        for agent in self.agent_order:
            if agent.active and agent.role == "agent" and agent.presence != "offline":
                seen = ok(self.api.get(f"/api/users/{agent.id}", token=self.admin))["last_seen_at"]
                if seen is None:
                    silent.append(agent)
        done = self.admin_cli("reassign", "--offline-after", OFFLINE_AFTER)
        self.log.append(f"  reassign -> {done.returncode} {done.stdout.strip()} {done.stderr.strip()}")
        check(done.returncode == 0, f"reassign: {done.stderr}")
        counts = re.fullmatch(r"assigned=(\d+) requeued=(\d+) timed_out=(\d+)",
                              done.stdout.strip().splitlines()[-1])
        check(counts is not None, f"reassign printed {done.stdout!r}")
        requeued = 0
        for agent in silent:
            requeued += m.active_chats(agent)
            agent.presence = "offline"
            m.requeue(agent)
        for dept in self.dept_order:
            m.drain(dept.id)
        # Other files' agents may time out too: these are lower bounds.
        check(int(counts[3]) >= len(silent) and int(counts[2]) >= requeued,
              f"reassign {counts[0]}: this world alone timed out {len(silent)}, requeued {requeued}")

    OPS = [("create", 8), ("presence", 6), ("heartbeat", 1), ("close", 4), ("post", 1),
           ("transfer", 4), ("max_chats", 2), ("deactivate", 1), ("reactivate", 1), ("move", 2), ("role", 1),
           ("new_agent", 1), ("dept_new", 1), ("dept_active", 2), ("dept_default", 1),
           ("dept_delete", 1), ("reassign", 1)]

    def run(self, ops, every=None, messages_at_end=True):
        every = every or self.every
        for i, (name, r) in enumerate(ops):
            self.log.append(f"step {i}: {name} {[round(x, 3) for x in r]}")
            try:
                getattr(self, "op_" + name)(r)
                if (i + 1) % every == 0:
                    self.compare_all()
            except Mismatch as e:
                raise Mismatch(f"seed {self.seed} step {i} ({name}): {e}") from None
        try:
            self.compare_all(messages=messages_at_end)
        except Mismatch as e:
            raise Mismatch(f"seed {self.seed} at the end: {e}") from None


def generate(seed, steps):
    rng = random.Random(seed)
    names = [n for n, w in Run.OPS for _ in range(w)]
    return [(rng.choice(names), [rng.random() for _ in range(7)]) for _ in range(steps)]


def run_once(env, seed, ops, every):
    run = Run(*env, seed, every)
    try:
        run.setup()
        run.run(ops)
        return None, run
    except Mismatch as e:
        return e, run
    finally:
        run.cleanup()


def shrink(env, seed, ops):
    """Deletes operations one at a time while the sequence still fails (whole state every step)."""
    best = ops
    changed = True
    while changed:
        changed = False
        i = len(best) - 1
        while i >= 0:
            trial = best[:i] + best[i + 1:]
            err, _ = run_once(env, seed, trial, 1)
            if err is not None:
                best, changed = trial, True
            i -= 1
    err, run = run_once(env, seed, best, 1)
    return best, err, run


@pytest.mark.parametrize("seed", seeds_from_env())
def test_model(seed, api, admin_token, token_for, admin_cli):
    steps = int(os.environ.get("E2E_MODEL_STEPS", STEPS))
    every = int(os.environ.get("E2E_MODEL_EVERY", 4))
    admin_me = ok(api.get("/api/auth/me", token=admin_token))
    env = (api, admin_token, admin_me, token_for, admin_cli)
    ops = generate(seed, steps)
    err, run = run_once(env, seed, ops, every)
    if err is None:
        return
    report = str(err) + "\n" + "\n".join(run.log[-40:])
    if os.environ.get("E2E_MODEL_MINIMIZE") == "1":
        small, err2, run2 = shrink(env, seed, ops)
        report += (f"\n\nshrunk to {len(small)} operations: {small}\n{err2}\n" + "\n".join(run2.log))
    pytest.fail(report, pytrace=False)
