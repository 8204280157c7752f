"""Conversations to replay, in the format `maas bench locomo` reads (LoCoMo, normalised): a
directory of `*.json` files, each one conversation with dated sessions of turns (speaker, text,
an optional photo caption) and questions with the turn ids that hold their evidence.

The emulator's own worlds are written in the same format (plus a `type` per question). The
turn text is what the benchmark imports (a photo's caption appended), so a corpus replayed here
and benchmarked there stores the same history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

# LoCoMo's categories as our question types (a world's questions carry their own `type`).
CATEGORY_TYPES = {
    1: "multi_hop",
    2: "temporal",
    3: "open_domain",
    4: "single_fact",
    5: "unanswerable",
}


class CorpusError(ValueError):
    """A corpus that cannot be replayed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Turn:
    turn_id: str
    speaker: str
    text: str
    created_at: datetime  # session date + i seconds (i = the turn's place in its session)


@dataclass(frozen=True)
class Session:
    session_id: str
    date: datetime
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    question_id: str
    question: str
    answer: str | None
    category: int
    type: str
    evidence: tuple[str, ...]  # turn ids that exist in the conversation; () when unanswerable

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    speakers: tuple[str, ...]
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]

    @property
    def turns(self) -> int:
        return sum(len(s.turns) for s in self.sessions)


def turn_text(raw: dict[str, Any]) -> str:
    """The turn as imported: its text, plus the photo's caption when it shared one."""
    caption = raw.get("image_caption")
    return f"{raw['text']} [shared a photo: {caption}]" if caption else str(raw["text"])


def _question(raw: dict[str, Any], known: set[str]) -> Question | None:
    """None for a question that cannot be scored: answerable, but no evidence turn exists."""
    category = int(raw["category"])
    qtype = str(raw.get("type") or CATEGORY_TYPES.get(category, "other"))
    answer = None if raw.get("answer") is None else str(raw["answer"])
    if qtype == "unanswerable":
        return Question(raw["question_id"], raw["question"], answer, category, qtype, ())
    evidence = tuple(dict.fromkeys(e for e in raw.get("evidence") or () if e in known))
    if not evidence:
        return None
    return Question(raw["question_id"], raw["question"], answer, category, qtype, evidence)


def parse(raw: dict[str, Any], source: str = "conversation") -> Conversation:
    try:
        sessions = []
        for s in raw["sessions"]:
            date = datetime.fromisoformat(s["date_time_iso"])
            turns = tuple(
                Turn(t["turn_id"], t["speaker"], turn_text(t), date + timedelta(seconds=i))
                for i, t in enumerate(s["turns"])
            )
            sessions.append(Session(s["session_id"], date, turns))
        known = {t.turn_id for s in sessions for t in s.turns}
        found = (_question(q, known) for q in raw["questions"])
        questions = tuple(q for q in found if q is not None)
        return Conversation(
            raw["conversation_id"], tuple(raw["speakers"]), tuple(sessions), questions
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorpusError(f"{source}: not a LoCoMo-format conversation: {exc!r}") from exc


def load(directory: Path) -> tuple[list[Conversation], dict[str, Any]]:
    """Every *.json conversation of a directory (or one file), sorted by name, and what describes
    the corpus (its files and a hash of their contents, stored with every run that used it)."""
    files = [directory] if directory.is_file() else sorted(directory.glob("*.json"))
    if not files:
        raise CorpusError(f"no conversation files (*.json) in {directory}")
    digest, conversations = hashlib.sha256(), []
    for f in files:
        data = f.read_bytes()
        digest.update(hashlib.sha256(data).digest())
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{f.name}: not valid JSON: {exc}") from exc
        conversations.append(parse(raw, f.name))
    about = {"corpus": str(directory), "files": [f.name for f in files], "hash": digest.hexdigest()}
    return conversations, about
