"""`maas bench locomo --snapshot DIR` then `--replay DIR`: the questions asked again on a copy of
the ingested database give the same scores without ingesting, take other retrieval parameters,
and refuse what a replay cannot honour."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from bench.database import with_database
from maas.__main__ import main as cli
from maas.db.pool import connect

MINI = Path(__file__).resolve().parents[1] / "data" / "mini_locomo.json"


def _run(args: list[str], out: Path) -> dict[str, Any]:
    base = ["bench", "locomo", "--data", str(MINI), "--embedder", "none", "--json", str(out)]
    assert cli([*base, *args]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _recall(report: dict[str, Any]) -> dict[str, Any]:
    return {q["question_id"]: q["maas"]["budget_recall"] for q in report["extras"]["per_question"]}


async def _memories(pg_uri: str, database: str) -> int:
    conn = await connect(with_database(pg_uri, database))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM maas.memories")
    finally:
        await conn.close()
    return count


async def _databases(pg_uri: str) -> set[str]:
    conn = await connect(with_database(pg_uri, "postgres"))
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database")
    finally:
        await conn.close()
    return {r["datname"] for r in rows}


def test_a_replay_scores_what_the_snapshot_scored_without_ingesting(
    pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_DATABASE_URL", pg_uri)
    snap = tmp_path / "snap"
    made = _run(["--snapshot", str(snap)], tmp_path / "made.json")
    manifest = json.loads((snap / "manifest.json").read_text())
    assert stat.S_IMODE((snap / "manifest.json").stat().st_mode) == 0o600  # it holds user keys
    stored = asyncio.run(_memories(pg_uri, manifest["database"]))
    assert stored > 0 and made["extras"]["memories_per_conversation"] == stored

    replayed = _run(["--replay", str(snap)], tmp_path / "replayed.json")
    assert replayed["extras"]["ingest"]["replayed"] is True
    assert replayed["config"]["snapshot"]["replayed"] is True
    # the same memories found for each question (token counts may differ by a tie the clock
    # breaks: recency is scored against now)
    assert _recall(replayed) == _recall(made)
    assert replayed["budget_recall"]["2000"]["overall"] > 0
    assert asyncio.run(_memories(pg_uri, manifest["database"])) == stored  # snapshot untouched

    # retrieval parameters act on a replay: a floor no fused score reaches packs nothing
    floor = tmp_path / "floor.json"
    floor.write_text(json.dumps({"retrieval.min_score": 5.0}))
    none = _run(["--replay", str(snap), "--params", str(floor)], tmp_path / "floor_out.json")
    assert none["budget_recall"]["2000"]["overall"] == 0.0

    # a new snapshot in the same directory replaces the old one's database
    _run(["--snapshot", str(snap)], tmp_path / "again.json")
    renewed = json.loads((snap / "manifest.json").read_text())["database"]
    databases = asyncio.run(_databases(pg_uri))
    assert renewed in databases and manifest["database"] not in databases


def test_a_replay_refuses_what_it_cannot_honour(
    pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAAS_DATABASE_URL", pg_uri)
    snap, out = tmp_path / "snap", tmp_path / "out.json"
    base = ["bench", "locomo", "--embedder", "none", "--json", str(out)]
    assert cli([*base, "--data", str(MINI), "--replay", str(snap)]) == 2
    assert "no snapshot there" in capsys.readouterr().err
    _run(["--snapshot", str(snap)], out)
    capsys.readouterr()

    archivist = tmp_path / "archivist.json"
    archivist.write_text(json.dumps({"archivist.max_memory_words": 30}))
    assert cli([*base, "--data", str(MINI), "--replay", str(snap), "--params", str(archivist)]) == 2
    assert "archivist.max_memory_words act when memories are written" in capsys.readouterr().err
    # the values the snapshot was made with are no change
    made_with = tmp_path / "made_with.json"
    made_with.write_text(json.dumps({"archivist.max_memory_words": 30}))
    assert (
        cli([*base, "--data", str(MINI), "--snapshot", str(snap), "--params", str(made_with)]) == 0
    )
    both_params = tmp_path / "both.json"
    both_params.write_text(json.dumps({"archivist.max_memory_words": 30, "retrieval.rrf_k": 30}))
    assert (
        cli([*base, "--data", str(MINI), "--replay", str(snap), "--params", str(both_params)]) == 0
    )
    capsys.readouterr()

    other = tmp_path / "other"
    other.mkdir()
    conversation = json.loads(MINI.read_text())
    conversation["sessions"][0]["turns"][0]["text"] += " (changed)"
    (other / "mini.json").write_text(json.dumps(conversation))
    assert cli([*base, "--data", str(other), "--replay", str(snap)]) == 2
    assert "ingested other conversations" in capsys.readouterr().err

    # a manifest whose database is gone (another server, a new data directory) says so
    manifest = json.loads((snap / "manifest.json").read_text())
    (snap / "manifest.json").write_text(
        json.dumps({**manifest, "database": "maas_locomo_snapshot_000000000000"})
    )
    assert cli([*base, "--data", str(MINI), "--replay", str(snap)]) == 1
    assert "is not on this server" in capsys.readouterr().err

    both = ["--snapshot", str(tmp_path / "s2"), "--replay", str(snap)]
    assert cli([*base, "--data", str(MINI), *both]) == 2
    assert "one or the other" in capsys.readouterr().err
