"""The judge: per completed run, is the answer supported by its context (hallucination), which
packed memories does it use, which are relevant to the question. Every score carries the judge's
version.

Two judges share one orchestrator. The LLM judge renders a versioned prompt template
(prompts/judge-v2.j2), shows memories as small numbers mapped back in code and validates its JSON
reply with pydantic. The question, memories and answer reach it as one JSON object (v1 pasted them
as plain sections, which a memory or an answer could close and continue with words of its own).
In offline mode (no LLM) the heuristic judge stands in and says so in its
version: a sentence of the answer is supported when most of its content words occur in the
context. Consistency: an order-sensitive judge (the LLM) scores each run `repeats` times with the
memories in their order and reversed (position swap); agreement = share of judged items on which
all those verdicts agree. The heuristic judge reads words, not positions, and is deterministic:
repeating or swapping could only agree, so it judges once and its agreement is not measurable
(None) rather than a 1.0 that could never fail.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import jinja2
from pydantic import BaseModel, ValidationError

from maas.llm.offline import OFFLINE_LABEL, STOPWORDS

PROMPTS = Path(__file__).resolve().parent / "prompts"
TEMPLATE = "judge-v2"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_FRAMING = re.compile(r"^(from memory:|i have nothing in memory about that\.?|- )", re.I)
_SAID = re.compile(r"\(said [^)]*\)")  # the offline answer's memory date: metadata, not a claim


class JudgeError(Exception):
    """The judge could not score a run (bad reply, no connection)."""


@dataclass(frozen=True)
class JudgeInput:
    run_id: str
    user_id: str
    question: str
    answer: str
    context: str
    memories: tuple[tuple[int, str], ...]  # (memory id, text) of the packed memories, by rank


@dataclass(frozen=True)
class Score:
    run_id: str
    aspect: str  # hallucination | uses_memory | relevance
    memory_id: int | None
    score: float  # 0 … 1
    swapped: bool
    repeat: int


class Judge(Protocol):
    version: str
    order_sensitive: bool  # False: repeats and position swaps cannot change its verdicts

    async def judge(self, inp: JudgeInput, swapped: bool, repeat: int) -> list[Score]: ...


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def claims(answer: str) -> list[str]:
    """The answer's sentences that state something (the offline label and framing removed)."""
    text = _SAID.sub("", answer.replace(OFFLINE_LABEL, ""))
    parts = (_FRAMING.sub("", s.strip()) for s in _SENTENCE.split(text))
    return [p for p in parts if words(p)]


class HeuristicJudge:
    """Lexical support, no LLM: labelled as such in every score's version."""

    version = "heuristic-lexical/1"
    order_sensitive = False

    def __init__(self, support: float = 0.6, uses: float = 0.5) -> None:
        self.support, self.uses = support, uses

    async def judge(self, inp: JudgeInput, swapped: bool, repeat: int) -> list[Score]:
        memories = inp.memories[::-1] if swapped else inp.memories
        corpus = words(inp.context) | set().union(*(words(t) for _, t in memories))
        unsupported = [
            c for c in claims(inp.answer) if self._share(words(c), corpus) < self.support
        ]
        said, asked = words(inp.answer), words(inp.question)
        scores = [
            Score(inp.run_id, "hallucination", None, float(bool(unsupported)), swapped, repeat)
        ]
        for memory_id, text in memories:
            used = self._share(words(text), said) >= self.uses
            relevant = bool(words(text) & asked)
            scores.append(Score(inp.run_id, "uses_memory", memory_id, float(used), swapped, repeat))
            scores.append(
                Score(inp.run_id, "relevance", memory_id, float(relevant), swapped, repeat)
            )
        return scores

    @staticmethod
    def _share(part: set[str], whole: set[str]) -> float:
        return len(part & whole) / len(part) if part else 1.0


class _Reply(BaseModel):
    hallucination: bool
    uses: list[int] = []
    relevant: list[int] = []


@cache
def template(name: str = TEMPLATE) -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS), autoescape=False, undefined=jinja2.StrictUndefined
    )
    return env.get_template(f"{name}.j2")


Complete = Callable[[str], Awaitable[str]]  # prompt -> the model's reply text


class LLMJudge:
    """An OpenAI-compatible model behind `complete`; version = model + prompt template."""

    order_sensitive = True

    def __init__(self, complete: Complete, model: str, prompt: str = TEMPLATE) -> None:
        self.complete, self.prompt = complete, prompt
        self.version = f"llm:{model}/{prompt}"

    async def judge(self, inp: JudgeInput, swapped: bool, repeat: int) -> list[Score]:
        memories = inp.memories[::-1] if swapped else inp.memories
        numbered = {i: mid for i, (mid, _) in enumerate(memories, start=1)}
        shown = [{"n": i, "text": text} for i, (_, text) in enumerate(memories, start=1)]
        data = {"question": inp.question, "memories": shown, "answer": inp.answer}
        prompt = template(self.prompt).render(data=json.dumps(data, ensure_ascii=False, indent=1))
        reply = self._parse(await self.complete(prompt))
        scores = [Score(inp.run_id, "hallucination", None, float(reply.hallucination), swapped,
                        repeat)]  # fmt: skip
        for number, memory_id in numbered.items():  # numbers the model invents are dropped
            for aspect, chosen in (("uses_memory", reply.uses), ("relevance", reply.relevant)):
                scores.append(
                    Score(inp.run_id, aspect, memory_id, float(number in chosen), swapped, repeat)
                )
        return scores

    @staticmethod
    def _parse(text: str) -> _Reply:
        match = re.search(r"\{.*\}", text, re.S)
        try:
            return _Reply.model_validate(json.loads(match.group(0) if match else text))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise JudgeError(f"judge reply is not the JSON asked for: {text[:200]!r}") from exc


async def judge_all(judge: Judge, inputs: list[JudgeInput], repeats: int) -> list[Score]:
    """Every run, `repeats` times, in order and position-swapped (an order-insensitive judge:
    once). A run the judge cannot score is left out (its metrics are then undefined for that
    run; the analysis checks each arm's coverage)."""
    scores: list[Score] = []
    ways = (False, True) if judge.order_sensitive else (False,)
    for inp in inputs:
        try:
            for repeat in range(1, (repeats if judge.order_sensitive else 1) + 1):
                for swapped in ways:
                    scores += await judge.judge(inp, swapped, repeat)
        except JudgeError:
            scores = [s for s in scores if s.run_id != inp.run_id]
    return scores


def agreement(scores: list[Score]) -> float | None:
    """Share of judged items (run, aspect, memory) whose repeated and swapped verdicts agree;
    None when no item was judged more than once (nothing to compare)."""
    groups: dict[tuple[str, str, int | None], list[bool]] = defaultdict(list)
    for s in scores:
        groups[(s.run_id, s.aspect, s.memory_id)].append(s.score >= 0.5)
    repeated = [v for v in groups.values() if len(v) > 1]
    if not repeated:
        return None
    return sum(len(set(v)) == 1 for v in repeated) / len(repeated)


def per_run(scores: list[Score]) -> dict[str, tuple[float, float | None]]:
    """{run: (hallucination score, context utilisation)}: means over repeats and swaps; a memory
    counts as used when most of its judgements say so."""
    halluc: dict[str, list[float]] = defaultdict(list)
    uses: dict[str, dict[int | None, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in scores:
        if s.aspect == "hallucination":
            halluc[s.run_id].append(s.score)
        elif s.aspect == "uses_memory":
            uses[s.run_id][s.memory_id].append(s.score)
    out: dict[str, tuple[float, float | None]] = {}
    for run, values in halluc.items():
        used = [sum(v) / len(v) >= 0.5 for v in uses[run].values()]
        out[run] = (sum(values) / len(values), sum(used) / len(used) if used else None)
    return out


def openai_complete(base_url: str | None, api_key: str, model: str, timeout_s: float) -> Complete:
    """A `complete` for LLMJudge through the openai SDK (temperature 0)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=2)

    async def complete(prompt: str) -> str:
        try:
            resp: Any = await client.chat.completions.create(
                model=model, temperature=0.0, messages=[{"role": "user", "content": prompt}]
            )
        except Exception as exc:  # any SDK failure: this run stays unjudged
            raise JudgeError(f"judge call failed: {type(exc).__name__}: {exc}") from exc
        return str(resp.choices[0].message.content or "")

    return complete
