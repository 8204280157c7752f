"""Self-learning's own schema chain (entry point group `maas.migrations`): its migrations in
selflearn/migrations (ledger selflearn.schema_migrations), its definitions in functions.sql.

Its first four migrations and half of a fifth were once MaaS's (0007, 0008, 0010, 0013 and
0016): a database that applied them there has them recorded here, not run again."""

from __future__ import annotations

from pathlib import Path

from maas.db.migrate import RESHAPED, Chain

HERE = Path(__file__).resolve().parent
# This chain's version -> MaaS's version that applied it, with the checksum it had there (None:
# the same file, moved as it was; 0005 is half of MaaS's 0016 as it was before the split).
ADOPTED: dict[int, tuple[int, str | None]] = {
    1: (7, None),
    2: (8, None),
    3: (10, None),
    4: (13, None),
    5: (16, RESHAPED[16]),
}


def chain() -> Chain:
    return Chain(
        schema="selflearn",
        folder=HERE / "migrations",
        definitions=(HERE / "functions.sql",),
        root=HERE,
        adopted=dict(ADOPTED),
    )
