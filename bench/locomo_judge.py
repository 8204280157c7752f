"""`maas bench locomo --judge`: numbers comparable to the published LoCoMo results.

The protocol of the LoCoMo comparisons that mem0 and Zep published (LLM-as-a-judge "J"):
- categories 1-4 only (5, adversarial, excluded);
- a reader LLM answers each question from the packed context alone (nothing else: no transcript,
  no history), in a short phrase;
- a judge LLM labels the answer CORRECT or WRONG against the gold answer, generous on wording
  (same topic or the same date in another form counts), and says so as JSON;
- J = share of questions labelled CORRECT, overall and per category; also the mean context
  tokens and p50/p95 latency (of POST /v1/context, and of context + reading together).

The prompts are this project's own text. A label the judge does not give in a readable form
counts as WRONG and is counted apart (`unparsed`), so a broken judge cannot raise J.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from bench.stats import mean
from bench.stats import percentile_or_none as percentile
from maas.settings import Settings

READER_STAGE = "locomo-reader"  # X-MaaS-Stage of the requests, so a scripted LLM tells them apart
JUDGE_STAGE = "locomo-judge"
NEEDS_LLM = (
    "maas bench locomo --judge needs an LLM: set MAAS_LLM_BASE_URL (an OpenAI-compatible API) "
    "and MAAS_LLM_API_KEY (and MAAS_LLM_MODEL, default gpt-4o-mini); offline mode can neither "
    "read the context into an answer nor judge it"
)

READER_SYSTEM = """You answer questions about a long conversation between two people, using only \
the memories below (one per line, under the date they were said). Dates in parentheses are \
resolved absolute dates. If the memories do not say, answer from what they make most likely. \
Answer in a short phrase (at most about 10 words), with no explanation.

Memories:
{context}"""

JUDGE_SYSTEM = """You grade answers to questions about a conversation. You get the question, \
the gold answer and a generated answer. Label the generated answer CORRECT if it refers to the \
same thing as the gold answer, however it is worded: a shorter or longer answer that contains \
the gold answer's substance is CORRECT, and a date in another format, or a relative date that \
comes to the same day, month or year, is CORRECT. Otherwise label it WRONG. Reply with JSON only: \
{"label": "CORRECT"} or {"label": "WRONG"}."""

JUDGE_USER = """Question: {question}
Gold answer: {gold}
Generated answer: {answer}"""

_LABEL = re.compile(r"\b(CORRECT|WRONG)\b")


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    api_key: str
    model: str
    timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> JudgeConfig | None:
        """The service's LLM settings (MAAS_LLM_*); None in offline mode."""
        if settings.offline or settings.llm_base_url is None:
            return None
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "none"
        return cls(settings.llm_base_url, key, settings.llm_model, settings.llm_timeout_s)


def parse_label(text: str) -> bool | None:
    """True for CORRECT, False for WRONG, None when the reply says neither (or both)."""
    try:
        data = json.loads(text.strip().removeprefix("```json").strip("`\n "))
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("label"), str):
        text = data["label"]
    found = set(_LABEL.findall(text.upper()))
    return None if len(found) != 1 else found == {"CORRECT"}


@dataclass
class Judged:
    """One question's reading and verdict."""

    question_id: str
    category: int
    answer: str
    correct: bool | None  # None = the judge's reply was unreadable (counted WRONG)
    context_tokens: int
    context_ms: float
    answer_ms: float


class Judge:
    """Reader and judge over one OpenAI-compatible endpoint, `concurrency` questions at a time."""

    def __init__(self, cfg: JudgeConfig, concurrency: int = 4) -> None:
        self.cfg = cfg
        self.client = openai.AsyncOpenAI(
            base_url=cfg.base_url, api_key=cfg.api_key, timeout=cfg.timeout_s, max_retries=2
        )
        self.gate = asyncio.Semaphore(concurrency)

    async def _chat(self, stage: str, messages: list[dict[str, str]]) -> str:
        resp = await self.client.chat.completions.create(
            model=self.cfg.model,
            messages=messages,  # type: ignore[arg-type]
            temperature=0.0,
            extra_headers={"X-MaaS-Stage": stage},
        )
        return (resp.choices[0].message.content or "").strip()

    async def read(self, question: str, context: str) -> str:
        system = READER_SYSTEM.format(context=context or "(none)")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return await self._chat(READER_STAGE, messages)

    async def judge(self, question: str, gold: str, answer: str) -> bool | None:
        user = JUDGE_USER.format(question=question, gold=gold, answer=answer)
        messages = [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]
        return parse_label(await self._chat(JUDGE_STAGE, messages))

    async def one(
        self, qid: str, category: int, question: str, gold: str, body: dict[str, Any], ms: float
    ) -> Judged:
        """Read the packed context of one /v1/context reply (`body`, fetched in `ms`), judge."""
        async with self.gate:
            t0 = time.perf_counter()
            answer = await self.read(question, str(body.get("context") or ""))
            answer_ms = (time.perf_counter() - t0) * 1000
            correct = await self.judge(question, gold, answer)
        tokens = int(body.get("context_tokens") or 0)
        return Judged(qid, category, answer, correct, tokens, ms, answer_ms)

    async def close(self) -> None:
        await self.client.close()


@dataclass
class JudgeReport:
    budget: int
    model: str
    categories: Sequence[int]  # J is reported per category too (bench/locomo.py CATEGORIES)
    judged: list[Judged] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """J overall and per category ("1".."4"), unparsed verdicts, tokens, latencies."""
        items = self.judged
        j: dict[str, float | None] = {"overall": mean([float(bool(x.correct)) for x in items])}
        for cat in self.categories:
            j[str(cat)] = mean([float(bool(x.correct)) for x in items if x.category == cat])
        total = [x.context_ms + x.answer_ms for x in items]
        return {
            "budget": self.budget,
            "model": self.model,
            "questions": len(items),
            "j": j,
            "unparsed": sum(x.correct is None for x in items),
            "mean_context_tokens": mean([float(x.context_tokens) for x in items]),
            "latency_ms": {
                "context_p50": percentile([x.context_ms for x in items], 50),
                "context_p95": percentile([x.context_ms for x in items], 95),
                "total_p50": percentile(total, 50),
                "total_p95": percentile(total, 95),
            },
        }


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(report: JudgeReport) -> list[str]:
    s = report.summary()
    j, lat = s["j"], s["latency_ms"]
    cats = "  ".join(f"cat{c} {_cell(j[str(c)], 3)}" for c in report.categories)
    return [
        f"LLM judge (J, LoCoMo protocol, categories 1-4) @{s['budget']} tokens, model {s['model']}",
        f"J overall {_cell(j['overall'], 3)}  {cats}  ({s['questions']} questions,"
        f" {s['unparsed']} unreadable verdicts counted wrong)",
        f"mean context tokens {_cell(s['mean_context_tokens'], 0)}; latency /v1/context p50"
        f" {_cell(lat['context_p50'], 0)} ms, p95 {_cell(lat['context_p95'], 0)} ms; context +"
        f" answer p50 {_cell(lat['total_p50'], 0)} ms, p95 {_cell(lat['total_p95'], 0)} ms",
    ]


def judged_json(report: JudgeReport) -> dict[str, Any]:
    per_question = [
        {"question_id": x.question_id, "category": x.category, "answer": x.answer,
         "correct": x.correct}
        for x in report.judged
    ]  # fmt: skip
    return {**report.summary(), "per_question": per_question}


def order(judged: Sequence[Judged]) -> list[Judged]:
    return sorted(judged, key=lambda x: x.question_id)
