"""Impact factors: the tunable parameters of IMPACTS.md, with defaults and guard ranges.

The active set comes from a ParamSource. MaaS ships BuiltinParams; the self-learning Tuner plugs
its own source in at the composition root, so maas never imports selflearn.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from maas.settings import Settings

Value = float | int | bool


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Value
    low: Value
    high: Value
    meaning: str

    def check(self, value: Any) -> Value:
        """Coerce to the default's type and enforce the guard range; raise ValueError if not."""
        kind = type(self.default)
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be a boolean")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.name} must be a number")
        if kind is int and float(value) != int(value):
            raise ValueError(f"{self.name} must be an integer")
        coerced: Value = kind(value)
        if not (self.low <= coerced <= self.high):
            raise ValueError(f"{self.name}={value} is outside [{self.low}, {self.high}]")
        return coerced


SPECS: tuple[ParamSpec, ...] = (
    # retrieval
    ParamSpec("retrieval.candidate_limit", 200, 5, 1000, "candidates fetched per search arm"),
    ParamSpec("retrieval.w_bm25", 1.0, 0.0, 5.0, "weight of the BM25 full-text arm in fusion"),
    ParamSpec("retrieval.w_trgm", 0.0, 0.0, 5.0, "weight of the trigram arm (0 = arm off)"),
    ParamSpec("retrieval.w_vector", 1.0, 0.0, 5.0, "weight of the embedding arm in fusion"),
    ParamSpec("retrieval.rrf_k", 20.0, 1.0, 1000.0, "reciprocal-rank constant: higher = flatter"),
    ParamSpec("retrieval.bm25_k1", 1.2, 0.0, 3.0, "BM25 term-frequency saturation"),
    ParamSpec("retrieval.bm25_b", 0.75, 0.0, 1.0, "BM25 length normalisation"),
    ParamSpec(
        "retrieval.w_context_terms", 0.15, 0.0, 1.0, "BM25 weight of a word of the turn before"
    ),
    ParamSpec("retrieval.w_speaker", 0.3, 0.0, 2.0, "bonus when the query names the speaker"),
    ParamSpec(
        "retrieval.w_period", 0.3, 0.0, 2.0, "bonus when a memory is dated in the asked period"
    ),
    ParamSpec("retrieval.w_recency", 0.05, 0.0, 2.0, "weight of recency decay"),
    ParamSpec("retrieval.recency_half_life_days", 30.0, 0.1, 3650.0, "half-life of recency"),
    ParamSpec("retrieval.w_importance", 0.05, 0.0, 2.0, "weight of stored importance"),
    ParamSpec("retrieval.trgm_threshold", 0.3, 0.05, 1.0, "minimum trigram word similarity"),
    ParamSpec("retrieval.min_score", 0.05, 0.0, 5.0, "score below which a memory is dropped"),
    ParamSpec(
        "retrieval.sibling_decay", 0.3, 0.0, 1.0, "score of a hit's sibling chunks (0 = off)"
    ),
    ParamSpec(
        "retrieval.neighbor_decay", 0.0, 0.0, 1.0, "score of the turn a hit replies to (0 = off)"
    ),
    ParamSpec(
        "retrieval.diversity", 1.0, 0.0, 5.0, "penalty on word overlap with memories above (MMR)"
    ),
    ParamSpec("retrieval.part_lead", 3, 0, 50, "each named person's best memories packed first"),
    ParamSpec("retrieval.include_superseded", False, False, True, "also search closed facts"),
    # context
    ParamSpec("context.max_tokens", 1500, 50, 32000, "token budget of the packed memories"),
    ParamSpec("context.history_messages", 6, 0, 50, "recent thread messages shown to responder"),
    ParamSpec("context.include_dates", True, False, True, "prefix each memory with its date"),
    ParamSpec(
        "context.group_speakers",
        True,
        False,
        True,
        "one header per speaker a day, not a name a line",
    ),
    # llm
    ParamSpec("llm.temperature", 0.2, 0.0, 2.0, "sampling temperature of responder"),
    ParamSpec("llm.max_answer_tokens", 512, 16, 8192, "maximum tokens of an answer"),
    ParamSpec("llm.analyzer_max_keywords", 8, 1, 32, "keywords the analyzer keeps"),
    # archivist
    ParamSpec("archivist.idle_s", 600.0, 5.0, 604800.0, "idle seconds before a thread archives"),
    ParamSpec("archivist.min_fact_words", 3, 1, 20, "shortest sentence kept as a fact"),
    ParamSpec("archivist.max_memory_words", 20, 5, 400, "longest memory cut from one turn"),
    ParamSpec(
        "archivist.context_reply_words", 0, 0, 100, "a reply shorter than this quotes its prompt"
    ),
    ParamSpec(
        "archivist.context_mix", 0.45, 0.0, 1.0, "weight of the turn before, in a memory's vector"
    ),
    ParamSpec(
        "archivist.context_terms", 15, 0, 100, "words of the turn before searched with a memory"
    ),
    ParamSpec("archivist.dedupe_similarity", 0.9, 0.5, 1.0, "trigram similarity = near duplicate"),
    ParamSpec(
        "archivist.semantic_dedup", 0.95, 0.85, 1.0, "embedding cosine = same fact (1 = off)"
    ),
    ParamSpec("archivist.default_importance", 0.5, 0.0, 1.0, "importance of an unscored fact"),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}


@dataclass(frozen=True)
class ParamSet:
    version: str
    values: dict[str, Value]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def num(self, name: str) -> float:
        return float(self.values[name])

    def semantic_dedup(self) -> float | None:
        """archivist.semantic_dedup as store.write takes it: None when off (1.0)."""
        value = self.num("archivist.semantic_dedup")
        return None if value >= 1.0 else value


def validate(values: dict[str, Any]) -> dict[str, Value]:
    """Full set from defaults overlaid with checked overrides; unknown names are errors."""
    unknown = sorted(set(values) - set(SPEC_BY_NAME))
    if unknown:
        raise ValueError(f"unknown parameters: {', '.join(unknown)}")
    merged: dict[str, Value] = {s.name: s.default for s in SPECS}
    for name, value in values.items():
        merged[name] = SPEC_BY_NAME[name].check(value)
    return merged


def defaults() -> ParamSet:
    return ParamSet("builtin", validate({}))


class ParamSource(Protocol):
    async def active(
        self, thread_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> ParamSet:
        """The set a new run (or archive job) of this thread and user uses. A source may give
        threads or users different sets (the Tuner's experiment arms: by thread, or a version
        pinned to one synthetic user); None = not known. The caller's request cannot choose."""
        ...


class BuiltinParams:
    """Defaults, optionally overridden (MAAS_PARAMS JSON: params_from_settings, or a test)."""

    def __init__(self, overrides: dict[str, Any] | None = None, version: str = "builtin") -> None:
        self._set = ParamSet(version, validate(overrides or {}))

    async def active(
        self, thread_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> ParamSet:
        return self._set


def params_from_settings(settings: Settings) -> ParamSource:
    """MAAS_PARAMS (JSON) overrides defaults under a version named by its content, so runs made
    with different overrides are never compared as if alike. Bad names or values stop start-up."""
    if not settings.params:
        return BuiltinParams()
    digest = hashlib.sha256(json.dumps(settings.params, sort_keys=True).encode()).hexdigest()
    return BuiltinParams(settings.params, version=f"env-{digest[:10]}")
