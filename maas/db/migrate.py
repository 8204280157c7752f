"""The schema: forward-only migrations, then definition files, per chain, under one advisory lock.

A chain is one package's schema: MaaS's (`migrations/`) and each extension's (entry point group
`maas.migrations`, e.g. selflearn's own `selflearn/migrations/`), each with its own ledger
(`<schema>.schema_migrations`). Migrations (`NNNN_name.sql`) change tables, columns and indexes;
they are applied once, in order, and never edited (their checksums are kept). Functions, trigger
functions and views live in definition files next to the code that uses them (`functions.sql`):
each holds the one current text of what it defines, written with CREATE OR REPLACE, and is
re-applied after the migrations whenever its checksum changed or a migration ran
(`<schema>.schema_definitions`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)
_LOCK_KEY = 0x6D616173  # "maas": one migrator at a time across processes
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PACKAGE = Path(__file__).resolve().parent.parent


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return checksum(self.sql)


@dataclass(frozen=True)
class Chain:
    """One package's migrations, ledger and definition files."""

    schema: str  # its ledger lives in this schema (created first if need be)
    folder: Path  # NNNN_name.sql
    definitions: tuple[Path, ...] = ()  # applied in this order after the migrations
    root: Path = _PACKAGE  # definition files are recorded relative to its parent
    # A migration that was split after it had been applied: version -> the checksum it was
    # applied with, accepted as well as today's (the half that moved lives in another chain).
    reshaped: dict[int, str] = field(default_factory=dict)
    # This chain's migrations that MaaS's chain applied before the chain existed: version ->
    # (MaaS's version, the checksum it was applied with; None: this file's own). Found so in
    # MaaS's ledger, they are recorded here, not run again.
    adopted: dict[int, tuple[int, str | None]] = field(default_factory=dict)

    def migrations(self) -> list[Migration]:
        return load_migrations(self.folder)


def migrations_dir() -> Path:
    packaged = _PACKAGE / "_migrations"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "migrations"


def load_migrations(folder: Path | None = None) -> list[Migration]:
    found = []
    for path in sorted((folder or migrations_dir()).glob("*.sql")):
        if path.name == "schema.sql":  # the generated snapshot, not a migration
            continue
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"bad migration file name {path.name!r} (want NNNN_name.sql)")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version number")
    return found


def _ledger(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.schema_definitions (
  file text PRIMARY KEY,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
"""


async def migrate(conn: asyncpg.Connection, chains: Iterable[Chain] | None = None) -> list[int]:
    """Bring every chain up to date (MaaS's, then the installed extensions'); returns the MaaS
    versions applied. Safe to run concurrently: one migrator at a time."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done: list[int] = []
        for i, chain in enumerate(chains if chains is not None else all_chains()):
            applied = await _migrate_chain(conn, chain)
            await _define(conn, chain, force=bool(applied))
            done += applied if i == 0 else []
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _migrate_chain(conn: asyncpg.Connection, chain: Chain) -> list[int]:
    await conn.execute(_ledger(chain.schema))
    applied = await _applied(conn, chain.schema)
    await _adopt(conn, chain, applied)
    done = []
    for mig in chain.migrations():
        if mig.version in applied:
            _check_unchanged(mig, applied[mig.version], chain)
            continue
        await _apply(conn, chain.schema, mig)
        done.append(mig.version)
    if done:
        first, last = done[0], done[-1]
        log.info("%s: applied %d migration(s), %04d to %04d", chain.schema, len(done), first, last)
    return done


async def _applied(conn: asyncpg.Connection, schema: str) -> dict[int, str]:
    rows = await conn.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations")  # noqa: S608
    return {r["version"]: r["checksum"] for r in rows}


async def _adopt(conn: asyncpg.Connection, chain: Chain, applied: dict[int, str]) -> None:
    """Record (not run) this chain's migrations that MaaS's chain applied in its day."""
    if not chain.adopted or chain.schema == "maas":
        return
    in_maas = await _applied(conn, "maas")
    for mig in chain.migrations():
        if mig.version in applied or mig.version not in chain.adopted:
            continue
        old, old_checksum = chain.adopted[mig.version]
        if in_maas.get(old) == (old_checksum or mig.checksum):
            await _record(conn, chain.schema, mig)
            applied[mig.version] = mig.checksum
            log.info("%s: migration %04d was applied as maas %04d", chain.schema, mig.version, old)


def _check_unchanged(mig: Migration, found: str, chain: Chain) -> None:
    if found in (mig.checksum, chain.reshaped.get(mig.version)):
        return
    raise RuntimeError(
        f"migration {mig.version:04d}_{mig.name} changed after it was applied; "
        "migrations are forward-only: add a new one instead"
    )


async def _apply(conn: asyncpg.Connection, schema: str, mig: Migration) -> None:
    log.debug("applying migration %s %04d_%s", schema, mig.version, mig.name)
    async with conn.transaction():
        await conn.execute(mig.sql)
        await _record(conn, schema, mig)


async def _record(conn: asyncpg.Connection, schema: str, mig: Migration) -> None:
    await conn.execute(
        f"INSERT INTO {schema}.schema_migrations (version, name, checksum)"  # noqa: S608
        " VALUES ($1, $2, $3)",
        mig.version,
        mig.name,
        mig.checksum,
    )


async def _define(conn: asyncpg.Connection, chain: Chain, force: bool) -> None:
    """Re-apply each definition file whose text changed (every one after a migration ran: a
    migration may have dropped what a file defines)."""
    rows = await conn.fetch(f"SELECT file, checksum FROM {chain.schema}.schema_definitions")  # noqa: S608
    known = {r["file"]: r["checksum"] for r in rows}
    for path in chain.definitions:
        name, text = str(path.relative_to(chain.root.parent)), path.read_text()
        if not force and known.get(name) == checksum(text):
            continue
        log.debug("applying definitions %s", name)
        async with conn.transaction():
            await conn.execute(text)
            await conn.execute(
                f"INSERT INTO {chain.schema}.schema_definitions (file, checksum)"  # noqa: S608
                " VALUES ($1, $2) ON CONFLICT (file) DO UPDATE"
                " SET checksum = excluded.checksum, applied_at = now()",
                name,
                checksum(text),
            )


# ---- the chains


def maas_chain() -> Chain:
    """MaaS's own schema. Versions 7, 8, 10 and 13 were self-learning's and moved to its chain
    (their rows stay in this ledger as history); 0016 was split, its self-learning half too."""
    return Chain(
        schema="maas",
        folder=migrations_dir(),
        definitions=tuple(_PACKAGE / f for f in DEFINITIONS),
        reshaped=dict(RESHAPED),
    )


# Definition files in the order they are applied (a view after the functions it calls).
DEFINITIONS = ("memory/functions.sql", "pipeline/functions.sql", "testsuite/functions.sql")
# 0016 as applied before its self-learning half moved to selflearn/migrations/0005; 0012 as
# applied before its btree_gist index moved to 0040 (tests/data/ keeps both old texts).
RESHAPED = {
    12: "774a8c2ae10ac1f541251f02c0796ea8900d576008c831ae459f5a25f26b2e94",
    16: "aa117e3efca329a5e7b881138d674943df02df0e1d61c66303c1d355351b894a",
}


def all_chains() -> list[Chain]:
    """MaaS's chain, then each installed extension's (entry point group `maas.migrations`: a
    function returning its Chain), by entry point name."""
    from importlib.metadata import entry_points

    extensions = sorted(entry_points(group="maas.migrations"), key=lambda ep: ep.name)
    return [maas_chain(), *(ep.load()() for ep in extensions)]
