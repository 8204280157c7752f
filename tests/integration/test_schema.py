"""The schema: its committed snapshots are current, definition files are re-applied when they
change, and a database migrated the old way (one chain, self-learning's tables in MaaS's
migrations, 0016 whole) upgrades in place to the new layout and keeps its data."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from bench.database import admin_sql, with_database
from maas.db.migrate import Chain, all_chains, maas_chain, migrate
from maas.db.pool import connect
from maas.db.snapshot import HEADER, dump_schema, normalise, snapshot_path
from selflearn.schema import ADOPTED
from selflearn.schema import chain as selflearn_chain

OLD_0016 = (
    Path(__file__).resolve().parents[1] / "data" / "migrations_0016" / "0016_run_retrievals.sql"
)
OLD_0012 = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "migrations_0012"
    / "0012_memory_near_duplicate_index.sql"
)


def test_schema_snapshots_are_current(template_uri: str) -> None:
    """migrations/schema.sql and selflearn/migrations/schema.sql are what a fresh database gets;
    after a schema change, `python -m maas.db.snapshot` rewrites them."""
    for chain in all_chains():
        committed = snapshot_path(chain.folder).read_text()
        assert committed.startswith(HEADER)
        fresh = dump_schema(template_uri, chain.schema)
        assert normalise(committed) == fresh, f"{snapshot_path(chain.folder)} is stale"


def old_layout(into: Path) -> Path:
    """MaaS's migrations as they were before self-learning got its chain."""
    into.mkdir()
    for path in maas_chain().folder.glob("0*.sql"):
        shutil.copy(path, into / path.name)
    shutil.copy(OLD_0016, into / OLD_0016.name)
    for path in selflearn_chain().folder.glob("0*.sql"):
        version = int(path.name[:4])
        if version not in ADOPTED:  # written after the split: only the new layout has it
            continue
        old, old_checksum = ADOPTED[version]
        if old_checksum is None:  # moved as it was
            shutil.copy(path, into / f"{old:04d}{path.name[4:]}")
    return into


async def old_migrate(conn: asyncpg.Connection, folder: Path) -> None:
    """What the migrator did before: one ledger, every file in order, no definitions."""
    await conn.execute(
        "CREATE SCHEMA maas; CREATE TABLE maas.schema_migrations (version integer PRIMARY KEY,"
        " name text NOT NULL, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for path in sorted(folder.glob("*.sql")):  # noqa: ASYNC240 (a test's few small files)
        sql = path.read_text()
        async with conn.transaction():
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO maas.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                int(path.name[:4]),
                path.name[5:-4],
                hashlib.sha256(sql.encode()).hexdigest(),
            )


DATA = """
WITH u AS (INSERT INTO maas.users (name, api_key_hash, key_prefix)
           VALUES ('old', 'h', 'p') RETURNING id),
     t AS (INSERT INTO maas.threads (user_id, title)
           SELECT id, 'then' FROM u RETURNING id, user_id),
     m AS (INSERT INTO maas.messages (thread_id, user_id, role, content)
           SELECT id, user_id, 'user', 'I kept my data.' FROM t RETURNING id, user_id),
     mem AS (INSERT INTO maas.memories (user_id, text, fact_key, source_message_ids)
             SELECT user_id, 'Kept data', 'kept data', ARRAY[id] FROM m RETURNING id, user_id),
     r AS (INSERT INTO maas.pipeline_runs (id, user_id, query, status, mode)
           SELECT $1, user_id, 'what did I keep?', 'COMPLETED', 'offline' FROM mem RETURNING id)
INSERT INTO maas.run_retrievals (run_id, memory_ids, scores, components, used, tokens)
SELECT r.id, ARRAY[mem.id], ARRAY[0.5::real], '[{}]', ARRAY[true], ARRAY[3] FROM r, mem
"""
COUNTS = """SELECT (SELECT count(*) FROM maas.users), (SELECT count(*) FROM maas.memories),
  (SELECT count(*) FROM maas.run_memories), (SELECT count(*) FROM selflearn.sensor_events),
  (SELECT count(*) FROM selflearn.finished_runs)"""


async def test_a_database_of_the_old_layout_upgrades_in_place(
    pg_uri: str, template_uri: str, tmp_path: Path
) -> None:
    name = f"maas_old_{uuid.uuid4().hex[:8]}"
    await admin_sql(pg_uri, f"CREATE DATABASE {name}")
    dsn = with_database(pg_uri, name)
    conn = await connect(dsn)
    try:
        await old_migrate(conn, old_layout(tmp_path / "old"))
        run_id = uuid.uuid4()
        await conn.execute(DATA, run_id)
        await conn.execute(
            "INSERT INTO selflearn.sensor_events SELECT * FROM selflearn.finished_runs"
        )
        before = await conn.fetchrow(COUNTS)
        assert tuple(before) == (1, 1, 1, 1, 1)

        assert await migrate(conn) == []  # nothing of MaaS's to apply; selflearn's adopted
        assert await conn.fetchrow(COUNTS) == before
        adopted = await conn.fetch("SELECT version FROM selflearn.schema_migrations ORDER BY 1")
        every = sorted(int(f.name[:4]) for f in selflearn_chain().folder.glob("0*.sql"))
        assert [r["version"] for r in adopted] == every  # the adopted ones, and the newer run
        for chain in all_chains():
            assert dump_schema(dsn, chain.schema) == dump_schema(template_uri, chain.schema)

        stamps = "SELECT file, applied_at FROM maas.schema_definitions ORDER BY 1"
        applied = await conn.fetch(stamps)
        await migrate(conn)  # nothing changed: no definition file is applied again
        assert await conn.fetch(stamps) == applied
    finally:
        await conn.close()
        await admin_sql(pg_uri, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_a_changed_definition_file_is_applied_again(db_url: str, tmp_path: Path) -> None:
    """Each function has one current text: edit its file, and the next migrate replaces it."""
    chain = maas_chain()
    edited = tmp_path / "maas" / "memory" / "functions.sql"
    edited.parent.mkdir(parents=True)
    original = (chain.root / "memory" / "functions.sql").read_text()
    edited.write_text(original + "\n-- edited: a new text, applied by the next migrate\n")
    moved = Chain(
        schema="maas", folder=chain.folder, definitions=(edited,), root=tmp_path / "maas",
        reshaped=chain.reshaped,
    )  # fmt: skip
    conn = await connect(db_url)
    try:
        await migrate(conn, [moved])
        row = await conn.fetchrow(
            "SELECT checksum FROM maas.schema_definitions WHERE file = 'maas/memory/functions.sql'"
        )
        assert row["checksum"] == hashlib.sha256(edited.read_text().encode()).hexdigest()
    finally:
        await conn.close()


def test_old_0016_is_the_checksum_the_migrator_accepts() -> None:
    assert hashlib.sha256(OLD_0016.read_bytes()).hexdigest() == maas_chain().reshaped[16]


def test_old_0012_is_the_checksum_the_migrator_accepts() -> None:
    """A database that applied 0012 with its btree_gist index still starts (0040 replaces it)."""
    assert hashlib.sha256(OLD_0012.read_bytes()).hexdigest() == maas_chain().reshaped[12]


@pytest.mark.parametrize("chain", all_chains(), ids=lambda c: c.schema)
def test_new_migrations_leave_functions_and_views_to_definition_files(chain: Chain) -> None:
    """Migrations change tables, columns and indexes; a function or view has its one current
    text in a definition file (those written before definition files existed stay as they were)."""
    for mig in chain.migrations():
        if mig.version <= FROZEN[chain.schema]:
            continue
        text = " ".join(mig.sql.upper().split())
        for word in ("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", "CREATE VIEW",
                     "CREATE OR REPLACE VIEW"):  # fmt: skip
            assert word not in text, f"{mig.name}: {word} belongs in a functions.sql"


FROZEN = {"maas": 31, "selflearn": 5}  # the last migrations written before definition files
