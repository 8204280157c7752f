"""`maas serve` exactly as the README runs it: embedded Postgres, no key, no network."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server


def archive(client: httpx.Client, thread_id: str) -> None:
    assert client.post(f"/v1/threads/{thread_id}/close").status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        thread = client.get(f"/v1/threads/{thread_id}").json()
        if thread["archived_upto"] >= max(m["id"] for m in thread["messages"]):
            return
        time.sleep(0.1)
    raise AssertionError("archivist did not finish")


@pytest.mark.slow
def test_readme_serve_memory_crosses_threads(tmp_path: Path, servers: list[Server]) -> None:
    server = Server(tmp_path / "data", {"MAAS_POLL_S": "0.5"})
    servers.append(server.start())
    creds = server.credentials()
    assert creds["admin_key"] and creds["demo_user_key"]
    console = server.log.read_text()  # a short, readable start: no initdb or pg_ctl chatter
    assert "MaaS 0.1.0 on http://" in console
    assert f"demo user key: {creds['demo_user_key']}" in console
    assert "initdb" not in console and "pg_ctl" not in console
    assert "initdb" in (server.data_dir / "embedded-postgres.log").read_text()
    health = httpx.get(f"{server.url}/health").json()
    assert health["mode"] == "offline" and health["database"] == "ok"

    admin = server.client(creds["admin_key"])
    alice = server.client(admin.post("/v1/admin/users", json={"name": "alice"}).json()["api_key"])
    bob = server.client(admin.post("/v1/admin/users", json={"name": "bob"}).json()["api_key"])

    told = alice.post("/v1/chat", json={"message": "My sister Maria teaches piano in Berlin."})
    thread_a = told.json()["thread_id"]
    archive(alice, thread_a)
    source = next(
        m["id"]
        for m in alice.get(f"/v1/threads/{thread_a}").json()["messages"]
        if m["role"] == "user"
    )

    asked = alice.post("/v1/chat", json={"message": "What does my sister Maria teach?"}).json()
    assert asked["thread_id"] != thread_a and "piano" in asked["answer"]
    assert asked["memories_used"][0]["source_message_ids"] == [source]
    assert asked["memories_used"][0]["source_thread_id"] == thread_a

    other = bob.post("/v1/chat", json={"message": "What does my sister Maria teach?"}).json()
    assert other["memories_used"] == [] and "piano" not in other["answer"]

    # A restart reuses the generated keys and the data.
    server.kill()
    servers.append(server.start())
    assert server.credentials() == creds
    again = alice.post("/v1/chat", json={"message": "What does my sister Maria teach?"}).json()
    assert "piano" in again["answer"]


@pytest.mark.slow
def test_seed_then_chat_client(tmp_path: Path, servers: list[Server]) -> None:
    """`maas seed` loads the demo user's threads; `maas chat` talks to the running service."""
    data = tmp_path / "data"
    maas = str(Path(sys.executable).with_name("maas"))
    seeded = subprocess.run(
        [maas, "seed", "--data-dir", str(data)], capture_output=True, text=True, timeout=120
    )
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    summary = json.loads(seeded.stdout[seeded.stdout.index("{") :])
    assert summary["threads"] == 3 and summary["memories"] >= 5

    server = Server(data, {})
    servers.append(server.start())
    chat = subprocess.run(
        [maas, "chat", "--url", server.url, "--data-dir", str(data)],
        input="What is my cat allergic to?\n/memories\n/quit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert "offline mode" in chat.stdout and "chicken" in chat.stdout
