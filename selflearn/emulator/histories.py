"""Stored histories, kept for reuse: the synthetic user a replay imported for one conversation,
by what it holds (the conversation's hash, the archivist parameters that built its memories, the
embedder).

Kept in this process (their API keys never touch the database): runs, experiment arms and deep
cycle trials that act at retrieval time ask the same stored memories again instead of importing
them again. The least recently used are dropped beyond `keep`; the caller erases their users
(their memories, sensor rows and per-question records go with them; summaries and verdicts stay).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from selflearn.emulator.replay import Stored


def history_key(source_hash: str, params: dict[str, Any], embedder: str) -> str:
    """What decides the stored memories: the conversations, the archivist.* parameters, the
    embedder (retrieval-time parameters do not)."""
    archivist = {k: v for k, v in sorted(params.items()) if k.startswith("archivist.")}
    raw = json.dumps([source_hash, archivist, embedder], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass
class Histories:
    keep: int = 64  # conversations (synthetic users)
    stored: OrderedDict[str, Stored] = field(default_factory=OrderedDict)

    def get(self, key: str) -> Stored | None:
        found = self.stored.get(key)
        if found is not None:
            self.stored.move_to_end(key)
        return found

    def put(self, key: str, stored: Stored) -> list[Stored]:
        """Keep `stored`; returns the histories dropped to stay within `keep` (to erase)."""
        self.stored[key] = stored
        self.stored.move_to_end(key)
        dropped: list[Stored] = []
        while len(self.stored) > self.keep:
            dropped.append(self.stored.popitem(last=False)[1])
        return dropped

    def forget(self, key: str) -> None:
        self.stored.pop(key, None)
