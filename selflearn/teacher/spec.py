"""Experiment specs: experiments/*.yaml, validated against a JSON Schema, hashed when started.

A bad file fails with a SpecError naming the file and the field, e.g.
`min-score.yaml: guardrails[0].margin: -1 is less than the minimum of 0`. Parameter names and
values are checked against the guard ranges here too, so a spec the Tuner would refuse is
refused before anything runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from maas.params import SPEC_BY_NAME, validate
from selflearn.teacher.metrics import METRICS, Metric
from selflearn.teacher.stats import PAIRED_TESTS


class SpecError(ValueError):
    """An experiment file that cannot be run; the message names the file and the field."""


_PARAMS = {"type": "object", "propertyNames": {"enum": sorted(SPEC_BY_NAME)}}
_METRIC = {"enum": sorted(METRICS)}
# A metric's role in an experiment, in the order reports list them.
ROLE_ORDER = {"primary": 0, "guardrail": 1, "secondary": 2}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "goal", "baseline", "variant", "primary_metric", "min_sample", "alpha"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,79}$"},
        "goal": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "baseline": _PARAMS,
        "variant": _PARAMS,
        "primary_metric": _METRIC,
        "guardrails": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["metric", "margin"],
                "properties": {"metric": _METRIC, "margin": {"type": "number", "minimum": 0}},
            },
        },
        "min_sample": {"type": "integer", "minimum": 2},
        "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.2},
        "test": {"enum": list(PAIRED_TESTS)},
        "emulator": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dialogs": {"type": "integer", "minimum": 3, "maximum": 630},
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
                "seed": {"type": "integer", "minimum": 0},
                "warmup_dialogs": {"type": "integer", "minimum": 0, "maximum": 30},
            },
        },
        "replay": {
            "type": "object",
            "description": "replay a world's and/or uploaded conversations' questions over "
            "stored histories instead of playing scripted dialogs",
            "additionalProperties": False,
            "properties": {
                "world": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "seed": {"type": "integer", "minimum": 0},
                        "users": {"type": "integer", "minimum": 1, "maximum": 500},
                        "sessions": {"type": "integer", "minimum": 1, "maximum": 200},
                        "turns": {"type": "integer", "minimum": 0, "maximum": 20000},
                    },
                },
                "corpus": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "maxItems": 1000,
                },
                "questions": {"enum": ["all", "search", "confirm"]},
                "max_questions": {"type": "integer", "minimum": 0, "maximum": 100000},
                "budget": {"type": "integer", "minimum": 50, "maximum": 32000},
                "other_budget": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 32000,
                    "description": "ask each question at this budget too (budget_recall_other); "
                    "0: not",
                },
                "abstain_floor": {"type": "number", "minimum": 0, "maximum": 10},
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
            },
        },
        "judge": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "kind": {"enum": ["auto", "heuristic", "llm"]},
                "repeats": {"type": "integer", "minimum": 1, "maximum": 5},
                "min_agreement": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "plan": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mde": {"type": "number", "exclusiveMinimum": 0},
                "sd": {"type": "number", "exclusiveMinimum": 0},
                "power": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            },
        },
        # accepted for old files; intervals now come from the tests themselves (stats.py)
        "bootstrap_resamples": {"type": "integer", "minimum": 200, "maximum": 20000},
    },
}


@dataclass(frozen=True)
class Guardrail:
    metric: str
    margin: float


@dataclass(frozen=True)
class ReplaySpec:
    """Replay experiments: which conversations (a generated world of this seed and size, uploaded
    conversations by hash), which of their questions (all; or a seeded half of each
    conversation's, `search` / `confirm`, so a confirmation asks questions the search never saw),
    at which token budget (and, with `other_budget`, at a second one too)."""

    world: dict[str, int] | None = None
    corpus: tuple[str, ...] = ()
    questions: str = "all"
    budget: int = 2000
    abstain_floor: float = 1.0
    concurrency: int = 4
    max_questions: int = 0  # per conversation, a seeded sample (0: every question)
    other_budget: int = 0  # each question asked at this budget too (budget_recall_other); 0: not


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    goal: str
    baseline: dict[str, Any]
    variant: dict[str, Any]
    primary_metric: str
    min_sample: int
    alpha: float
    guardrails: tuple[Guardrail, ...] = ()
    description: str = ""
    test: str = "t"
    dialogs: int = 30
    concurrency: int = 4
    seed: int = 1
    warmup_dialogs: int = 3  # played first, not analysed: model loads, caches, JIT
    judge: str = "auto"
    judge_repeats: int = 2
    judge_min_agreement: float = 0.8
    bootstrap_resamples: int = 2000
    mde: float | None = None  # the smallest change of the primary worth finding (plan)
    sd: float | None = None  # assumed SD of a scenario's mean paired difference (plan)
    target_power: float = 0.8
    replay: ReplaySpec | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def hash(self) -> str:
        return spec_hash(self.raw)

    def planning(self, metric: Metric) -> tuple[float, float, float]:
        """(minimum detectable effect, assumed SD, target power) of the primary: the plan's,
        else the metric's defaults (METRICS)."""
        return self.mde or metric.mde, self.sd or metric.sd, self.target_power


def spec_hash(raw: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces): the same spec, the same hash."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(top level)"


def _check_schema(raw: Any, source: str) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        raise SpecError(f"{source}: {_where(err.absolute_path)}: {err.message}")


def _check_rules(raw: dict[str, Any], source: str) -> None:
    for arm in ("baseline", "variant"):
        try:
            validate(raw[arm])
        except ValueError as exc:
            raise SpecError(f"{source}: {arm}: {exc}") from exc
    replay = raw.get("replay")
    if replay is not None and replay.get("world") is None and not replay.get("corpus"):
        raise SpecError(f"{source}: replay: give a world, a corpus, or both")
    names = [g["metric"] for g in raw.get("guardrails", [])]
    if raw["primary_metric"] in names or len(set(names)) != len(names):
        raise SpecError(f"{source}: guardrails: each metric once, and not the primary metric")


def parse(raw: Any, source: str = "spec") -> ExperimentSpec:
    """Validate a parsed document and build the spec."""
    _check_schema(raw, source)
    _check_rules(raw, source)
    emulator, judge, plan = raw.get("emulator", {}), raw.get("judge", {}), raw.get("plan", {})
    replay = raw.get("replay")
    return ExperimentSpec(
        name=raw["name"],
        goal=raw["goal"],
        baseline=dict(raw["baseline"]),
        variant=dict(raw["variant"]),
        primary_metric=raw["primary_metric"],
        min_sample=raw["min_sample"],
        alpha=float(raw["alpha"]),
        guardrails=tuple(
            Guardrail(g["metric"], float(g["margin"])) for g in raw.get("guardrails", [])
        ),
        description=raw.get("description", ""),
        test=raw.get("test", "t"),
        dialogs=emulator.get("dialogs", 30),
        concurrency=emulator.get("concurrency", 4),
        seed=emulator.get("seed", 1),
        warmup_dialogs=emulator.get("warmup_dialogs", 3),
        judge=judge.get("kind", "auto"),
        judge_repeats=judge.get("repeats", 2),
        judge_min_agreement=float(judge.get("min_agreement", 0.8)),
        bootstrap_resamples=raw.get("bootstrap_resamples", 2000),
        mde=plan.get("mde"),
        sd=plan.get("sd"),
        target_power=float(plan.get("power", 0.8)),
        replay=None if replay is None else _replay(replay),
        raw=raw,
    )


def _replay(raw: dict[str, Any]) -> ReplaySpec:
    return ReplaySpec(
        dict(raw["world"]) if raw.get("world") is not None else None,
        tuple(raw.get("corpus", ())),
        raw.get("questions", "all"),
        raw.get("budget", 2000),
        float(raw.get("abstain_floor", 1.0)),
        raw.get("concurrency", 4),
        raw.get("max_questions", 0),
        raw.get("other_budget", 0),
    )


def load(path: Path) -> ExperimentSpec:
    """Read and validate experiments/<name>.yaml."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"{path.name}: file not found ({path})") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path.name}: not valid YAML: {exc}") from exc
    return parse(raw, path.name)
