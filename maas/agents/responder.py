"""Final Responder: the answer from the packed memories and the recent thread history."""

from __future__ import annotations

from dataclasses import replace

from maas.llm.types import LanguageModel, PackedMemory, Recorder, RespondInput
from maas.params import ParamSet


async def respond(
    model: LanguageModel, inputs: RespondInput, params: ParamSet, record: Recorder
) -> str:
    if not params["context.include_dates"]:
        inputs = replace(inputs, memories=[PackedMemory(m.text, None) for m in inputs.memories])
    return await model.respond(inputs, params, record)
