"""Fresh screenshots of the web UI for docs/screenshots (the tests never write there).

Starts `maas serve` (every installed extension: the web UI and self-learning) on a free port with
a throwaway data directory (embedded Postgres, offline mode, local embeddings), fills it through
the public API as a user would (chats, an archived thread, a question, a test suite run, a goal
with a macro and a micro cycle), then drives Debian's Chromium through Playwright at 1,280 px and
writes chat, run inspector, memory browser, test runner and dashboard pages:

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

It takes a few minutes (the cycles run real emulated dialogs); the machine's load shows only in
the time it takes, never in the pictures.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT: Any = {"width": 1280, "height": 800}  # playwright.ViewportSize
FACTS = (
    "My sister Ana has a dog called Pico. Pico lives with her in Porto.",
    "I play the cello every Sunday morning with two friends.",
    "I work as a nurse at the Santa Maria hospital, mostly night shifts.",
)
QUESTION = "Where does my sister's dog live?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(data_dir: Path, admin_key: str) -> Iterator[str]:
    """`maas serve` in a child process; its output goes to data_dir/serve.log."""
    port = free_port()
    env = {
        **os.environ,
        "MAAS_ADMIN_KEY": admin_key,
        "MAAS_EMBEDDER": "local",
        "MAAS_SELFLEARN_MANAGER_MACRO_DIALOGS": "24",
    }
    env.pop("MAAS_DATABASE_URL", None)  # a throwaway embedded database, never someone's
    cmd = [sys.executable, "-m", "maas", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    with (data_dir / "serve.log").open("w") as log:
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, child)
            yield url
        finally:
            child.terminate()
            child.wait(timeout=60)


def wait_healthy(url: str, child: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"maas serve exited with {child.returncode}: see serve.log")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("maas serve did not become healthy")


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def until(check: Any, what: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def archive(api: httpx.Client, thread: str) -> None:
    api.post(f"/v1/threads/{thread}/close").raise_for_status()

    def done() -> bool:
        view = api.get(f"/v1/threads/{thread}").json()
        return bool(view["archived_upto"] >= max(m["id"] for m in view["messages"]))

    until(done, "the archivist")


def fill_user(api: httpx.Client) -> dict[str, str]:
    """Memories from three archived threads, then a thread with a question: its run and thread."""
    for fact in FACTS:
        told = api.post("/v1/chat", json={"message": fact}).json()
        archive(api, told["thread_id"])
    thread = api.post("/v1/threads", json={"title": "Family and pets"}).json()["thread_id"]
    api.post("/v1/chat", json={"message": "Pico turned three last week!", "thread_id": thread})
    asked = api.post("/v1/chat", json={"message": QUESTION, "thread_id": thread}).json()
    started = api.post("/v1/test-runs", json={"suite": "memory-across-threads", "mode": "mock"})
    test_run = started.json()["id"]
    until(lambda: api.get(f"/v1/test-runs/{test_run}").json()["status"] != "running", "the suite")
    return {"run": asked["run_id"], "thread": thread, "test_run": test_run}


def fill_learning(admin: httpx.Client) -> str:
    """A goal, a macro cycle testing a lever step, then a micro cycle: the macro's id."""
    base = "/v1/selflearn"
    goal = admin.post(f"{base}/goals", json={"name": "Find something for every question",
                      "metric": "found_anything_rate", "target": 0.95,
                      "search_space": {"retrieval.min_score": [0.0, 0.1]}}).json()  # fmt: skip
    ids = []
    for body in (
        {"kind": "macro", "goal_id": goal["id"]},
        {"kind": "micro", "goal_id": goal["id"]},
    ):
        cycle = admin.post(f"{base}/cycles", json={**body, "who": "screenshots"}).json()
        until(lambda c=cycle: admin.get(f"{base}/cycles/{c['id']}").json()["status"] != "running",
              f"the {body['kind']} cycle")  # fmt: skip
        ids.append(cycle["id"])
    return str(ids[0])


def login(page: Any, url: str, key: str, path: str) -> None:
    page.goto(f"{url}{path}")
    page.fill("#api-key", key)
    page.click("#login-button")
    page.wait_for_url(lambda u: u.endswith(path))


def shoot(page: Any, out: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    sys.stdout.write(f"wrote {out / name}.png\n")


def take(url: str, keys: dict[str, str], made: dict[str, str], out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(viewport=VIEWPORT).new_page()
        login(page, url, keys["user"], f"/ui/chat?thread={made['thread']}")
        page.locator(".msg.assistant").last.wait_for()
        shoot(page, out, "chat")
        page.goto(f"{url}/ui/runs/{made['run']}")
        shoot(page, out, "run-inspector")
        page.goto(f"{url}/ui/memories?q=pets")
        shoot(page, out, "memories")
        page.goto(f"{url}/ui/tests?run={made['test_run']}")
        page.locator("#current[data-status=passed], #current[data-status=failed]").wait_for()
        shoot(page, out, "test-runner")
        page = browser.new_context(viewport=VIEWPORT).new_page()
        login(page, url, keys["admin"], "/ui/dashboard")
        shoot(page, out, "dashboard")
        page.goto(f"{url}/ui/dashboard/cycles/{made['cycle']}")
        shoot(page, out, "dashboard-cycle")
        page.goto(f"{url}/ui/dashboard/parameters")
        shoot(page, out, "dashboard-parameters")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keys = {"admin": f"maas_shots_{secrets.token_urlsafe(24)}"}
    with tempfile.TemporaryDirectory(prefix="maas-shots-") as tmp:
        os.chmod(tmp, 0o755)  # pgserver runs Postgres as its own user when started by root
        run(Path(tmp), keys, args)


def run(data_dir: Path, keys: dict[str, str], args: argparse.Namespace) -> None:
    with serve(data_dir, keys["admin"]) as url:
        with client(url, keys["admin"]) as admin:
            made_user = admin.post("/v1/admin/users", json={"name": "ana"}).json()
            keys["user"] = made_user["api_key"]
            with client(url, keys["user"]) as api:
                made = fill_user(api)
            made["cycle"] = fill_learning(admin)
        take(url, keys, made, args.out, args.chromium)


if __name__ == "__main__":
    main()
