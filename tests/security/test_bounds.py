"""Replies whose size a tenant controls are paged: a thread grows without bound (imports of 500
messages at a time, chats), and its whole history was encoded into one reply on the event loop."""

from __future__ import annotations

from pathlib import Path

from tests.security.test_sessions import key_of, log_in, web_api


async def test_a_huge_thread_is_paged_by_the_api_and_cut_by_the_page(
    db_url: str, tmp_path: Path
) -> None:
    async with web_api(db_url, tmp_path) as api:
        alice = await api.user()
        thread = (await alice.post("/v1/threads", json={})).json()["thread_id"]
        for batch in range(3):
            messages = [{"role": "user", "text": f"note {batch}-{i}"} for i in range(500)]
            sent = await alice.post(f"/v1/threads/{thread}/messages", json={"messages": messages})
            assert sent.status_code == 201, sent.text

        first = (await alice.get(f"/v1/threads/{thread}")).json()
        assert len(first["messages"]) == 1000 and first["next_after"] == first["messages"][-1]["id"]
        rest = (await alice.get(f"/v1/threads/{thread}?after={first['next_after']}")).json()
        assert len(rest["messages"]) == 500 and rest["next_after"] is None
        texts = [m["content"] for m in first["messages"] + rest["messages"]]
        assert texts[0] == "note 0-0" and texts[-1] == "note 2-499" and len(set(texts)) == 1500
        small = (await alice.get(f"/v1/threads/{thread}?limit=10")).json()
        assert len(small["messages"]) == 10
        assert (await alice.get(f"/v1/threads/{thread}?limit=1001")).status_code == 422

        name, token = await log_in(api, key_of(alice))
        page = await api.client.get(
            f"/ui/chat?thread={thread}", headers={"Cookie": f"{name}={token}"}
        )
        assert page.status_code == 200 and page.text.count('class="msg user"') == 500
        assert "note 2-499" in page.text and "note 0-0<" not in page.text
        assert "Only the last 500 messages are shown here" in page.text
