"""Scenario and persona seeds: loaded once per run, validated against their JSON Schemas.

A malformed file fails with a SeedError naming the file and the field (JSON path), e.g.
`sim_scenarios.json: scenarios[3].facts[0]: 'answer' is a required property`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

SCENARIOS, PERSONAS = "sim_scenarios.json", "sim_personas.json"


class SeedError(ValueError):
    """A seed file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Fact:
    id: str
    text: str
    answer: str


@dataclass(frozen=True)
class Question:
    ability: str
    ask: str
    facts: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Scenario:
    id: str
    topic: str
    goal: str
    opening: str
    facts: tuple[Fact, ...]
    updates: tuple[Fact, ...]  # each replaces the fact named in `replaces`
    replaces: dict[str, str]  # update id -> the fact id it changes
    distractors: tuple[str, ...]
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    style: str
    verbosity: int
    patience: int
    register: str
    phrasing: dict[str, tuple[str, ...]]
    fillers: tuple[str, ...]


def seeds_dir() -> Path:
    """The installed copy (the wheel puts seeds/ under maas/_seeds) or the repository's."""
    import maas

    packaged = Path(maas.__file__).resolve().parent / "_seeds"
    if (packaged / SCENARIOS).is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "seeds"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SeedError(f"{path.name}: file not found ({path})") from exc
    except json.JSONDecodeError as exc:
        raise SeedError(f"{path.name}: not valid JSON: line {exc.lineno}: {exc.msg}") from exc


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(top level)"


def validate(path: Path, schema_path: Path) -> Any:
    """The parsed document, or a SeedError for the first problem, in document order."""
    doc = _read_json(path)
    schema = _read_json(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        raise SeedError(f"{path.name}: {_where(err.absolute_path)}: {err.message}")
    return doc


def _scenario(raw: dict[str, Any], where: str) -> Scenario:
    facts = tuple(Fact(f["id"], f["text"], f["answer"]) for f in raw["facts"])
    updates_raw = raw.get("updates", [])
    updates = tuple(Fact(u["id"], u["text"], u["answer"]) for u in updates_raw)
    known = [f.id for f in facts + updates]
    if len(set(known)) != len(known):
        raise SeedError(f"{where}.facts: fact ids must be unique within a scenario")
    for i, upd in enumerate(updates_raw):
        if upd["replaces"] not in {f.id for f in facts}:
            raise SeedError(f"{where}.updates[{i}].replaces: unknown fact {upd['replaces']!r}")
    questions = []
    for i, q in enumerate(raw["questions"]):
        _check_question(q, set(known), f"{where}.questions[{i}]")
        questions.append(Question(q["ability"], q["ask"], tuple(q["facts"]), q["answer"]))
    return Scenario(
        raw["id"],
        raw["topic"],
        raw["goal"],
        raw["opening"],
        facts,
        updates,
        {u["id"]: u["replaces"] for u in updates_raw},
        tuple(raw.get("distractors", [])),
        tuple(questions),
    )


def _check_question(q: dict[str, Any], known: set[str], where: str) -> None:
    for fact_id in q["facts"]:
        if fact_id not in known:
            raise SeedError(f"{where}.facts: unknown fact {fact_id!r}")
    abstain = q["ability"] == "abstention"
    if abstain and q["facts"]:
        raise SeedError(f"{where}.facts: an abstention question plants no facts")
    if not abstain and not (q["facts"] and q["answer"]):
        raise SeedError(f"{where}: needs planted facts and an expected answer")


def _persona(raw: dict[str, Any]) -> Persona:
    return Persona(
        raw["id"],
        raw["name"],
        raw["style"],
        raw["verbosity"],
        raw["patience"],
        raw["register"],
        {k: tuple(v) for k, v in raw["phrasing"].items()},
        tuple(raw["fillers"]),
    )


def _unique(items: list[Any], file: str, key: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            raise SeedError(f"{file}: {key}[{i}].id: duplicate id {item.id!r}")
        seen.add(item.id)


def load_scenarios(path: Path | None = None) -> list[Scenario]:
    path = path or seeds_dir() / SCENARIOS
    doc = validate(path, seeds_dir() / "sim_scenarios.schema.json")
    found = []
    for i, raw in enumerate(doc["scenarios"]):
        found.append(_scenario(raw, f"{path.name}: scenarios[{i}]"))
    _unique(found, path.name, "scenarios")
    return found


def load_personas(path: Path | None = None) -> list[Persona]:
    path = path or seeds_dir() / PERSONAS
    doc = validate(path, seeds_dir() / "sim_personas.schema.json")
    found = [_persona(raw) for raw in doc["personas"]]
    _unique(found, path.name, "personas")
    return found
