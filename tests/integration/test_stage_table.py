"""The stage table is defined once, in Python (maas/pipeline/status.py): it matches the SQL enum,
and only the repository writes runs and archive jobs."""

from __future__ import annotations

import re
from pathlib import Path

from maas.db.pool import connect
from maas.pipeline.status import QUEUED, STAGES, Status

MAAS = Path(__file__).resolve().parents[2] / "maas"


async def test_the_status_enum_and_the_stages_match_the_sql_enum(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        sql = await conn.fetchval("SELECT enum_range(NULL::maas.run_status)::text[]")
    finally:
        await conn.close()
    assert list(sql) == [s.value for s in Status]
    # each stage takes a run from its queue to its working status to the next stage's queue
    walk = [s.value for stage in STAGES for s in (stage.queue, stage.working)]
    assert walk + [STAGES[-1].done.value, Status.FAILED.value] == list(sql)
    assert [a.done for a in STAGES[:-1]] == [b.queue for b in STAGES[1:]]
    assert QUEUED == {"NEW": "analyzer", "ANALYZED": "assembler", "READY": "responder"}


WRITES = re.compile(
    r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+maas\.(pipeline_runs|archive_jobs)\b", re.I
)


def test_only_the_repository_writes_runs_and_archive_jobs() -> None:
    """Named statements that write maas.pipeline_runs or maas.archive_jobs live in repo.sql (the
    definition files hold what those statements call)."""
    writers = {
        path.relative_to(MAAS).as_posix()
        for path in MAAS.rglob("*.sql")
        if WRITES.search(path.read_text())
    }
    assert writers == {"pipeline/repo.sql", "pipeline/functions.sql"}
    python = [p for p in MAAS.rglob("*.py") if WRITES.search(p.read_text())]
    assert python == []
