"""`maas bench locomo --snapshot DIR` and `--replay DIR`: ingest the conversations once, then ask
the questions again and again, each time on a fresh copy of the ingested database, with other
retrieval parameters. A replay skips the import and the archivist (minutes with local
embeddings), so a retrieval variant is measured in the time its questions take.

DIR holds `manifest.json` (mode 0600: it holds the snapshot's user keys) and, on the embedded
Postgres, the server's data directory `pg/`; with MAAS_DATABASE_URL the database lives on that
server under the name the manifest gives. What the archivist did cannot change on a replay: its
parameters (`archivist.*`) and the embedder are the snapshot's, and a replay refuses others.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.database import admin_sql, with_database
from maas.db.embedded import start_embedded, stop_embedded
from maas.db.pool import connect

MANIFEST = "manifest.json"
FORMAT = 1
INGEST_ONLY = "archivist."  # parameters that act when memories are written, not when searched


@dataclass(frozen=True)
class SnapshotArgs:
    """`--snapshot DIR` (save) or `--replay DIR`, as given."""

    directory: Path
    replay: bool


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"--replay {directory}: no snapshot there (make one with --snapshot {directory})"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--replay {directory}: {MANIFEST} is not valid JSON: {exc}") from exc
    if not re.fullmatch(r"maas_locomo_snapshot_[0-9a-f]{12}", str(manifest.get("database"))):
        raise ValueError(f"--replay {directory}: {MANIFEST} names no snapshot database")
    if manifest.get("format") != FORMAT:
        found = manifest.get("format")
        raise ValueError(
            f"--replay {directory}: snapshot format {found!r}, this version reads {FORMAT};"
            " make it again with --snapshot"
        )
    return manifest


def check_replay(manifest: dict[str, Any], fingerprint: str, params: dict[str, Any]) -> None:
    """A replay asks what the snapshot ingested (`fingerprint`: locomo.fingerprint of the
    conversations), with parameters a search can use."""
    if manifest["fingerprint"] != fingerprint:
        raise ValueError(
            "--replay: the snapshot ingested other conversations than --data (and"
            " --limit-conversations) give; make it again with --snapshot"
        )
    made_with = manifest.get("params") or {}
    ingest_only = sorted(
        k for k in params if k.startswith(INGEST_ONLY) and params[k] != made_with.get(k)
    )
    if ingest_only:
        raise ValueError(
            f"--replay: {', '.join(ingest_only)} act when memories are written, which a replay"
            " does not do, and the snapshot was made with other values; make a snapshot with"
            " them (--snapshot DIR --params FILE)"
        )


def check_embedder(manifest: dict[str, Any], health: dict[str, Any]) -> None:
    """The replay's service must embed queries as the snapshot embedded the memories."""
    if health.get("embedder") != manifest["embedder"]:
        raise RuntimeError(
            f"--replay: the snapshot's memories were embedded with {manifest['embedder']!r},"
            f" this service embeds with {health.get('embedder')!r}; pass the same --embedder"
        )


def new_database_name() -> str:
    return f"maas_locomo_snapshot_{secrets.token_hex(6)}"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"format": FORMAT, **manifest}, out, indent=2)
        out.write("\n")
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class Ingested:
    """What a snapshot's manifest records of its ingest."""

    fingerprint: str  # locomo.fingerprint of the conversations
    embedder: str | None  # as /health names it
    params: dict[str, Any]
    figures: dict[str, Any]  # turns, threads, seconds, turns_per_s
    users: dict[str, dict[str, Any]]  # conversation id -> user id, name, key, message ids


@asynccontextmanager
async def snapshot_server(directory: Path) -> AsyncIterator[str]:
    """The server a snapshot lives on: MAAS_DATABASE_URL's, else an embedded Postgres whose data
    directory is DIR/pg (started here, stopped at the end; it keeps the snapshot between runs)."""
    external = os.environ.get("MAAS_DATABASE_URL")
    if external:
        yield external
        return
    uri = await asyncio.to_thread(start_embedded, directory)  # its data in DIR/pg (made there)
    try:
        yield uri
    finally:
        await asyncio.to_thread(stop_embedded, directory)


@dataclass(frozen=True)
class Place:
    """Where a run's database comes from and goes."""

    server_uri: str | None
    template: str | None  # a replay copies the snapshot's database
    keep_as: str | None = None  # a new snapshot keeps the run's database under this name
    manifest: dict[str, Any] | None = None  # a replay's snapshot


@asynccontextmanager
async def place(args: SnapshotArgs | None) -> AsyncIterator[Place]:
    """Without a snapshot, a fresh database on the usual server (harness.running_service)."""
    if args is None:
        yield Place(None, None)
        return
    async with snapshot_server(args.directory) as uri:
        if args.replay:
            manifest = read_manifest(args.directory)
            await _exists(uri, manifest["database"], args.directory)
            yield Place(uri, manifest["database"], manifest=manifest)
        else:
            yield Place(uri, None, keep_as=new_database_name())


async def _exists(server_uri: str, database: str, directory: Path) -> None:
    conn = await connect(with_database(server_uri, "postgres"))
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
    finally:
        await conn.close()
    if found is None:  # the data directory was replaced, or another MAAS_DATABASE_URL is set
        raise RuntimeError(
            f"--replay {directory}: the snapshot's database {database} is not on this server;"
            " make it again with --snapshot"
        )


async def keep(directory: Path, where: Place, ingested: Ingested) -> None:
    """The run's database is the new snapshot: its manifest written, the one it replaces (if
    any) dropped."""
    assert where.keep_as is not None and where.server_uri is not None
    try:
        old: str | None = read_manifest(directory)["database"]
    except ValueError:
        old = None
    manifest = {
        "database": where.keep_as,
        "fingerprint": ingested.fingerprint,
        "embedder": ingested.embedder,
        "params": ingested.params,
        "ingest": ingested.figures,
        "created_at": datetime.now(UTC).isoformat(),
        "users": ingested.users,
    }
    write_manifest(directory, manifest)
    if old is not None and old != where.keep_as:
        await admin_sql(where.server_uri, f"DROP DATABASE IF EXISTS {old} WITH (FORCE)")
