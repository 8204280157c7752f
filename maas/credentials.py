"""API keys: random, shown once, stored only as sha256. First-start bootstrap of the admin key."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from maas.db.queries import q

log = logging.getLogger(__name__)


def new_key(prefix: str = "maas") -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_key(given: str, expected: str) -> bool:
    return hmac.compare_digest(hash_key(given), hash_key(expected))


async def create_user(conn: Any, name: str) -> tuple[Any, str]:
    key = new_key()
    user_id = await conn.fetchval(q("insert_user"), name, hash_key(key), key[:12])
    return user_id, key


def _read(path: Path) -> dict[str, str]:
    try:
        data: dict[str, str] = json.loads(path.read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_private(path: Path, data: dict[str, str]) -> None:
    """Mode 0600 always: written to a new file and moved over the old one (os.open's mode applies
    only to a file it creates, so rewriting in place kept a wider mode the old file had)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # a stale temporary file of the same name: narrowed too
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


async def bootstrap(conn: Any, data_dir: Path, admin_key: SecretStr | None = None) -> str | None:
    """The demo user (its key kept in the data dir; recreated if the database lost it) and,
    without MAAS_ADMIN_KEY, a generated admin key kept beside it; both reused on restart.

    Returns the generated admin key (None when MAAS_ADMIN_KEY is set). New keys are printed
    once on the operator's console (not the log), as the README and the login page promise.
    """
    path = credentials_path(data_dir)
    creds = _read(path)
    new: dict[str, str] = {}
    if admin_key is None and "admin_key" not in creds:
        new["admin_key"] = new_key("maas_admin")
    demo = creds.get("demo_user_key")
    if demo is None or await conn.fetchval(q("user_by_key_hash"), hash_key(demo)) is None:
        _, new["demo_user_key"] = await create_user(conn, "demo")
    if new:
        creds |= new
        _write_private(path, creds)
        print(f"MaaS generated keys (stored in {path}, mode 0600):", flush=True)
        for name, label in (("admin_key", "admin key:    "), ("demo_user_key", "demo user key:")):
            if name in new:
                print(f"  {label} {new[name]}", flush=True)
    else:
        print(f"MaaS keys: reusing {path}", flush=True)
    return None if admin_key is not None else creds["admin_key"]


def stored_keys(path: Path) -> set[str]:
    """Which keys the credentials file holds (names only: the login page says where keys are)."""
    return set(_read(path))


def credentials_path(data_dir: Path) -> Path:
    return data_dir / "credentials.json"
