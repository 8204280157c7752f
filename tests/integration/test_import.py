"""Importing existing dialog history: timestamps and speakers kept, provenance maps back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from maas.params import BuiltinParams
from tests.helpers import close_and_archive


async def test_import_keeps_time_and_speaker_and_feeds_the_archivist(make_api: Any) -> None:
    quoting = BuiltinParams({"archivist.context_reply_words": 8})
    async with make_api(params=quoting) as api:
        alice = await api.user()
        thread = (await alice.post("/v1/threads", json={"title": "imported"})).json()["thread_id"]
        history = [
            {
                "role": "other",
                "speaker": "Jon",
                "text": "I opened my dance studio downtown.",
                "created_at": "2023-01-20T16:04:00",
            },
            {
                "role": "user",
                "speaker": "Gina",
                "text": "Wow, congratulations Jon!",
                "created_at": "2023-01-20T16:05:00Z",
            },
            {"role": "assistant", "speaker": None, "text": "Noted the studio opening."},
        ]
        resp = await alice.post(f"/v1/threads/{thread}/messages", json={"messages": history})
        assert resp.status_code == 201, resp.text
        ids = resp.json()["message_ids"]
        assert len(ids) == 3 and ids == sorted(ids)

        stored = (await alice.get(f"/v1/threads/{thread}")).json()["messages"]
        assert [m["speaker"] for m in stored] == ["Jon", "Gina", None]
        assert stored[0]["created_at"].startswith("2023-01-20T16:04:00")

        memories = await close_and_archive(alice, thread)
        studio = next(m for m in memories if m["text"].startswith("Jon: "))
        assert studio["source_message_ids"] == [ids[0]]
        assert studio["event_time"].startswith("2023-01-20")
        # A short reply quotes the turn it answers, so both turns are its provenance.
        reply = next(m for m in memories if m["text"].startswith("Gina (to Jon's"))
        assert "dance studio" in reply["text"] and reply["source_message_ids"] == ids[:2]

        ctx = (await alice.post("/v1/context", json={"query": "What did Jon open?"})).json()
        assert ids[0] in ctx["memories_used"][0]["source_message_ids"]


async def test_import_rejects_bad_input_and_foreign_threads(make_api: Any) -> None:
    async with make_api() as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        thread = (await alice.post("/v1/threads", json={})).json()["thread_id"]
        bad_role = {"messages": [{"role": "robot", "text": "x"}]}
        assert (
            await alice.post(f"/v1/threads/{thread}/messages", json=bad_role)
        ).status_code == 422
        empty = {"messages": []}
        assert (await alice.post(f"/v1/threads/{thread}/messages", json=empty)).status_code == 422
        for when in ("2099-01-01T00:00:00Z", "9999-12-31T23:59:59"):  # never idle: never archived
            said = {"role": "user", "text": "Rex loves carrots.", "created_at": when}
            ahead = {"messages": [said]}
            refused = await alice.post(f"/v1/threads/{thread}/messages", json=ahead)
            assert refused.status_code == 422 and "in the future" in refused.text, refused.text
        soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()  # clock skew is fine
        skewed = {"messages": [{"role": "user", "text": "Rex loves apples.", "created_at": soon}]}
        assert (await alice.post(f"/v1/threads/{thread}/messages", json=skewed)).status_code == 201
        ok = {"messages": [{"role": "user", "text": "mine"}]}
        assert (await bob.post(f"/v1/threads/{thread}/messages", json=ok)).status_code == 404
        [kept] = (await alice.get(f"/v1/threads/{thread}")).json()["messages"]
        assert kept["content"] == "Rex loves apples."
