"""Forward-only migrations: migrations/NNNN_name.sql applied in order under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)
_LOCK_KEY = 0x6D616173  # "maas": one migrator at a time across processes
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    packaged = Path(__file__).resolve().parent.parent / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def load_migrations(folder: Path | None = None) -> list[Migration]:
    found = []
    for path in sorted((folder or migrations_dir()).glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"bad migration file name {path.name!r} (want NNNN_name.sql)")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version number")
    return found


_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS maas;
CREATE TABLE IF NOT EXISTS maas.schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
"""


async def migrate(conn: asyncpg.Connection, folder: Path | None = None) -> list[int]:
    """Apply pending migrations; returns the versions applied. Safe to run concurrently."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_BOOTSTRAP)
        rows = await conn.fetch("SELECT version, checksum FROM maas.schema_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        done = []
        for mig in load_migrations(folder):
            if mig.version in applied:
                _check_unchanged(mig, applied[mig.version])
                continue
            await _apply(conn, mig)
            done.append(mig.version)
        if done:
            first, last = done[0], done[-1]
            log.info("database: applied %d migration(s), %04d to %04d", len(done), first, last)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


def _check_unchanged(mig: Migration, checksum: str) -> None:
    if mig.checksum != checksum:
        raise RuntimeError(
            f"migration {mig.version:04d}_{mig.name} changed after it was applied; "
            "migrations are forward-only: add a new one instead"
        )


async def _apply(conn: asyncpg.Connection, mig: Migration) -> None:
    log.debug("applying migration %04d_%s", mig.version, mig.name)
    async with conn.transaction():
        await conn.execute(mig.sql)
        await conn.execute(
            "INSERT INTO maas.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            mig.version,
            mig.name,
            mig.checksum,
        )
