"""Analyzer: the search keys of a message (keywords, entities, time expressions)."""

from __future__ import annotations

from maas.llm.types import Analysis, LanguageModel, Recorder
from maas.params import ParamSet


async def analyze(
    model: LanguageModel, message: str, params: ParamSet, record: Recorder
) -> Analysis:
    return await model.analyze(message, params, record)
