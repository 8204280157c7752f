"""`maas emulate`: start a User Emulator run on a running MaaS, show its progress, print the
summary; `maas world DIR`: write an emulator world as a corpus. Registered through the entry point
group maas.commands (maas never imports this).

The emulator itself runs inside the MaaS process (POST /v1/selflearn/emulator/runs) and talks to
that MaaS over HTTP; this command only uploads the corpus (if any), starts the run, follows it and
stops it on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from maas import cli_support
from maas.cli_support import admin_key
from maas.settings import Settings
from selflearn.emulator import corpus

SUMMARY_KEYS = ("dialogs", "turns", "runs", "failures", "planted_fact_recall")
REPLAY_KEYS = ("users", "questions", "budget_recall", "retrieval_recall", "recall_at_10",
               "answer_in_context", "abstention_correctness")  # fmt: skip


def register(sub: Any) -> None:
    """Add the `emulate` subcommand to maas's argparse subparsers."""
    emulate = sub.add_parser(
        "emulate", help="User Emulator: synthetic dialogs through the HTTP API (self-learning)"
    )
    emulate.add_argument("--dialogs", type=int, default=100, help="threads (whole episodes of 3)")
    emulate.add_argument("--concurrency", type=int, default=8, help="synthetic users at once")
    emulate.add_argument("--seed", type=int, default=1)
    emulate.add_argument("--url", default=None, help="MaaS URL (default http://HOST:PORT)")
    emulate.add_argument("--json", type=Path, default=None, help="write the summary here")
    emulate.add_argument(
        "--paraphrase", action="store_true", help="rewrite turns with the service's LLM"
    )
    emulate.add_argument("--data-dir", type=Path, help="where credentials.json is (admin key)")
    emulate.add_argument(
        "--corpus", type=Path, default=None,
        help="replay the conversations of this directory (LoCoMo format, as maas bench locomo)",
    )  # fmt: skip
    emulate.add_argument("--world", action="store_true", help="replay a generated world (--seed)")
    _world_size(emulate)
    emulate.add_argument("--budget", type=int, default=2000, help="replay: context tokens")
    emulate.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    emulate.set_defaults(func=run)
    world = sub.add_parser("world", help="write an emulator world as a corpus (LoCoMo format)")
    world.add_argument("directory", type=Path)
    world.add_argument("--seed", type=int, default=1)
    _world_size(world)
    world.set_defaults(func=write_world)


def _world_size(parser: Any) -> None:
    parser.add_argument("--users", type=int, default=8, help="world: synthetic users")
    parser.add_argument("--sessions", type=int, default=20, help="world: sessions per user")
    parser.add_argument("--turns", type=int, default=400, help="world: turns per user (about)")


def write_world(args: argparse.Namespace) -> int:
    from selflearn.emulator.world import WorldSpec, generate

    try:
        spec = WorldSpec(args.seed, args.users, args.sessions, args.turns)
    except ValueError as exc:
        print(f"maas world: {exc}", file=sys.stderr)
        return 2
    world = generate(spec)
    paths = world.write(args.directory)
    print(json.dumps({**world.describe(), "files": [p.name for p in paths]}, indent=2))
    return 0


def bar(view: dict[str, Any], width: int = 30) -> str:
    done = int(width * view["progress"])
    if view.get("kind") == "replay":
        return (
            f"[{'#' * done}{'.' * (width - done)}] {view['dialogs']}/{view['dialogs_planned']} "
            f"users asked  {view['turns']} turns stored  {view['runs']} questions  "
            f"{view['failures']} failures  {view['status']}"
        )
    return (
        f"[{'#' * done}{'.' * (width - done)}] {view['dialogs']}/{view['dialogs_planned']} dialogs"
        f"  {view['turns']} turns  {view['failures']} failures  {view['status']}"
    )


def follow(http: httpx.Client, run_id: str, poll: float) -> dict[str, Any]:
    """Poll until the run ends, drawing the bar on stderr; Ctrl-C asks the run to stop."""
    return cli_support.follow(http, f"/v1/selflearn/emulator/runs/{run_id}", bar, poll, _ok)


def _ok(resp: httpx.Response) -> Any:
    return cli_support.http_ok("maas emulate", resp)


def read_corpus(directory: Path | None) -> list[dict[str, Any]]:
    """The corpus's conversations, checked here first (a bad file fails before anything runs)."""
    if directory is None:
        return []
    corpus.load(directory)
    files = [directory] if directory.is_file() else sorted(directory.glob("*.json"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def upload(http: httpx.Client, conversations: list[dict[str, Any]]) -> list[str]:
    """Upload each conversation (idempotent: by content hash); their hashes in order."""
    return [_ok(http.post("/v1/selflearn/conversations", json=c))["hash"] for c in conversations]


def replay_body(
    http: httpx.Client, files: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    body: dict[str, Any] = {"corpus": upload(http, files), "budget": args.budget}
    if args.world:
        body["world"] = {"users": args.users, "sessions": args.sessions, "turns": args.turns}
    return body


def run(args: argparse.Namespace) -> int:
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    key = admin_key(settings)
    if not key:
        hint = "set MAAS_ADMIN_KEY or pass --data-dir of `maas serve`"
        print(f"maas emulate: no admin key: {hint}", file=sys.stderr)
        return 2
    url = args.url or f"http://{settings.host}:{settings.port}"
    body: dict[str, Any] = {"dialogs": args.dialogs, "concurrency": args.concurrency,
                            "seed": args.seed, "paraphrase": args.paraphrase}  # fmt: skip
    try:
        files = read_corpus(args.corpus)
    except corpus.CorpusError as exc:
        print(f"maas emulate: {exc}", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as h:
        if files or args.world:
            body |= replay_body(h, files, args)
        started = _ok(h.post("/v1/selflearn/emulator/runs", json=body))
        print(f"emulator run {started['id']} on {url}", file=sys.stderr)
        view = follow(h, started["id"], args.poll)
    found = view["summary"] or {}
    keys = REPLAY_KEYS if view.get("kind") == "replay" else SUMMARY_KEYS
    headline = {k: found.get(k) for k in keys}  # jsonb does not keep the key order
    result = {"emulator_run_id": view["id"], "status": view["status"], **headline, **found}
    if view["error"]:
        result["error"] = view["error"]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if view["status"] == "completed" else 1
