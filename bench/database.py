"""Databases for benchmarks and tests: a server URI pointed at another database, admin statements,
and a fresh database (empty or copied from a template) dropped at the end."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from maas.db.embedded import start_embedded, stop_embedded
from maas.db.pool import connect


@dataclass(frozen=True)
class Database:
    dsn: str
    name: str
    kind: str  # "embedded" or "external"


def with_database(uri: str, name: str) -> str:
    """The same server URI pointing at database `name`."""
    return urlunsplit(urlsplit(uri)._replace(path=f"/{name}"))


async def admin_sql(server_uri: str, sql: str) -> None:
    """Run `sql` (CREATE/DROP DATABASE ...) in the server's `postgres` database."""
    conn = await connect(with_database(server_uri, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(
    tmp: Path,
    server_uri: str | None = None,
    template: str | None = None,
    keep_as: str | None = None,
) -> AsyncIterator[Database]:
    """A new database `maas_bench_<random>` (empty, or a copy of `template`), dropped at the end
    (or, with `keep_as` and no error, kept under that name): on `server_uri` when given (e.g. a
    test session's Postgres), else on MAAS_DATABASE_URL's server, else on an embedded Postgres
    started in `tmp` (and stopped at the end)."""
    external = server_uri or os.environ.get("MAAS_DATABASE_URL") or None
    server = external if external else await asyncio.to_thread(start_embedded, tmp)
    name = f"maas_bench_{secrets.token_hex(6)}"
    copy = f" TEMPLATE {template}" if template else ""
    try:
        await admin_sql(server, f"CREATE DATABASE {name}{copy}")
        kept = False
        try:
            kind = "external" if external else "embedded"
            yield Database(with_database(server, name), name, kind)
            if keep_as is not None:
                await _rename(server, name, keep_as)
                kept = True
        finally:
            if not kept:
                await admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        if not external:
            await asyncio.to_thread(stop_embedded, tmp)


async def _rename(server: str, name: str, new_name: str) -> None:
    """A renamed database may have no session; the service that used it has stopped, any
    straggler of it is ended."""
    conn = await connect(with_database(server, "postgres"))
    try:
        ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1"
        await conn.execute(ended, name)
        await conn.execute(f"ALTER DATABASE {name} RENAME TO {new_name}")
    finally:
        await conn.close()


async def server_version(dsn: str) -> str:
    conn = await connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
