"""`maas chat`: a small interactive client for a running service."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from maas.credentials import credentials_path
from maas.settings import Settings

HELP = "commands: /new (new thread)  /close (archive this thread)  /memories  /quit"


def _default_key(settings: Settings) -> str | None:
    try:
        key: str = json.loads(credentials_path(settings.data_dir).read_text())["demo_user_key"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None
    return key


def run_chat(url: str | None, key: str | None, settings: Settings) -> int:
    key = key or _default_key(settings)
    if not key:
        print("no API key: pass --key or run `maas serve` once to create the demo user")
        return 2
    base = url or f"http://{settings.host}:{settings.port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=180) as c:
        health = c.get("/health").json()
        print(f"connected to {base} ({health['mode']} mode). {HELP}")
        _loop(c)
    return 0


def _lines() -> Iterator[str]:
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def _loop(client: httpx.Client) -> None:
    thread: str | None = None
    for line in _lines():
        text = line.strip()
        if text in {"/quit", "/exit"}:
            return
        if text == "/new":
            thread = None
        elif text == "/close" and thread:
            print(client.post(f"/v1/threads/{thread}/close").json())
            thread = None
        elif text == "/memories":
            for m in client.get("/v1/memories").json()["memories"]:
                print(f"  #{m['id']} {m['text']}")
        elif text:
            thread = _send(client, text, thread)


def _send(client: httpx.Client, text: str, thread: str | None) -> str | None:
    resp = client.post("/v1/chat", json={"message": text, "thread_id": thread})
    body: dict[str, Any] = resp.json()
    if resp.status_code >= 400:
        print(f"error {resp.status_code}: {body.get('error', body)}")
        return thread
    print(f"maas> {body['answer']}")
    used = body.get("memories_used") or []
    if used:
        print(f"      ({len(used)} memories used, {body['timings_ms'].get('total', 0):.0f} ms)")
    return str(body["thread_id"])
