"""The world's vocabulary: seeds/world.json, validated against seeds/world.schema.json.

A broken file fails with a SeedError naming the file and the field, like the other seeds. The
digest of the file's canonical JSON enters every world's hash, so a changed vocabulary is a
different world.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from selflearn.emulator.seeds import SeedError, seeds_dir, validate

WORLD = "world.json"


@dataclass(frozen=True)
class Vocab:
    raw: dict[str, Any]
    digest: str

    @property
    def version(self) -> str:
        return str(self.raw["version"])

    def words(self, key: str) -> tuple[str, ...]:
        return tuple(self.raw[key])


def load_vocab(path: Path | None = None) -> Vocab:
    """The vocabulary (cached per path); SeedError when the file is broken."""
    return _load(path or seeds_dir() / WORLD)


@cache
def _load(path: Path) -> Vocab:
    raw = validate(path, seeds_dir() / "world.schema.json")
    _check(raw, path.name)
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Vocab(raw, hashlib.sha256(canonical.encode()).hexdigest())


def _check(raw: dict[str, Any], name: str) -> None:
    """What the schema cannot say: a person needs a name distinct from the other speaker's."""
    if len(set(raw["names"])) != len(raw["names"]):
        raise SeedError(f"{name}: names: duplicate names")
    for species in raw["pets"]:
        if species not in raw["lexicon"]:
            raise SeedError(f"{name}: lexicon: no synonym for the pet species {species!r}")
