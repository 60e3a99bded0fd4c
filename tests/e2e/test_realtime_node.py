"""Contract section 7 with a browser-grade client: Nchan's NchanSubscriber
(npm "nchan") under Node, over WebSocket and EventSource, receiving the
events of a chat as a web page would."""

import json
import shutil
import subprocess
import uuid

import pytest

from test_realtime import Org


@pytest.fixture(scope="module")
def node_client(repo_root):
    node = shutil.which("node")
    assert node, "node is required (tools/carebot installs it)"
    e2e = repo_root / "tests" / "e2e"
    assert (e2e / "node_modules" / "nchan").is_dir(), "run npm ci in tests/e2e (tools/carebot test does)"
    return [node, str(e2e / "nchan-subscriber.js")]


@pytest.mark.parametrize("transport", ["websocket", "eventsource"])
def test_nchan_subscriber_receives_chat_events(transport, node_client, base_url, api, admin_token, token_for):
    org = Org(api, admin_token, token_for)
    dept = org.department()
    agent = org.agent(dept)
    customer = org.customer()
    chat = org.chat(customer, dept)
    url = f"{base_url}/ws/chat/{chat['id']}?token={customer['token']}"
    proc = subprocess.Popen(node_client + [url, transport, "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "connected", proc.stderr.read()
        sent = [org.say(customer["token"], chat, f"from the page {uuid.uuid4().hex[:6]}"),
                org.say(agent["token"], chat, "agent reply")]
        assert api.put(f"/api/chats/{chat['id']}/close", token=customer["token"]).status_code == 200
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [e["type"] for e in events] == ["message.created", "message.created", "chat.closed"]
    assert [e["data"]["id"] for e in events[:2]] == [m["id"] for m in sent]
    assert events[2]["data"]["status"] == "closed" and events[2]["chat_id"] == chat["id"]
