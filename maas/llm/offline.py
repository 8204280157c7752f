"""Offline mode: no network, no LLM. Extractive and statistical, and labelled as such.

- analyzer: keywords scored by frequency, casing and position (a small YAKE-like statistic);
- archivist: declarative sentences the user (or another speaker) states become facts;
- responder: quotes the best packed memories verbatim; it never composes new claims.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from maas.llm.tokens import count_tokens
from maas.llm.types import (
    Analysis,
    CallLog,
    Fact,
    Recorder,
    RespondInput,
    TranscriptLine,
)
from maas.llm.when import resolve
from maas.params import ParamSet

OFFLINE_LABEL = "[offline mode: extractive answer, no LLM]"
# Inputs longer than this are worked on in a thread: an import of ~1 MB takes seconds of regex
# and token counting, which on the event loop would stall every other request meanwhile.
OFF_LOOP_CHARS = 8_000
LISTED = 64  # entities and time expressions kept per message (Analysis holds at most 64 each)
# Who a message without a speaker (a chat user's) is in the memories cut from it: "User: ...".
UNNAMED = "User"
T = TypeVar("T")

STOPWORDS = frozenset(
    line.strip()
    for line in (Path(__file__).parent / "stopwords.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]|\d[\d.,:/\-]*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_TIME = re.compile(
    rf"\b(?:(?:yesterday|today|tonight|tomorrow)|(?:last|next|this) "
    r"(?:week|month|year|weekend|monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
    rf"|(?:\d{{1,2}} )?(?:{_MONTHS})(?: \d{{1,2}})?(?:,? \d{{4}})?|\d{{4}}-\d{{2}}-\d{{2}}"
    r"|(?:in|since) \d{4}|\d+ (?:days?|weeks?|months?|years?) ago)\b",
    re.IGNORECASE,
)
_GREETING = re.compile(r"^(hi|hey|hello|thanks|thank you|bye|good (morning|night|evening))\b", re.I)
_SLOTS = (
    (re.compile(r"\bmy ((?:[a-z]+ ){0,2}?[a-z]+) (?:is|are|was|were)\b", re.I), "my {0}"),
    (re.compile(r"\bi (?:now )?(?:live|reside|moved) (?:in|to)\b", re.I), "home"),
    (re.compile(r"\bi (?:now )?work (?:at|for|as)\b", re.I), "work"),
    (re.compile(r"\bmy favou?rite ([a-z]+)\b", re.I), "favourite {0}"),
)


def keywords(text: str, limit: int) -> list[str]:
    """Rank non-stopword terms by frequency, capitalisation and earliness."""
    words = _WORD.findall(text)
    scores: defaultdict[str, float] = defaultdict(float)
    for pos, word in enumerate(words):
        low = word.lower().strip("'")
        if low in STOPWORDS or (len(low) < 3 and not low.isdigit()):
            continue
        bonus = 0.5 if word[0].isupper() and pos > 0 else 0.0
        scores[low] += 1.0 + bonus + 1.0 / (1 + pos)
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    return [w for w, _ in ranked[:limit]]


def entities(text: str) -> list[str]:
    """Capitalised words past a sentence's first, each once, the first LISTED of them."""
    found: dict[str, None] = {}
    for sentence in _SENTENCE.split(text):
        tokens = sentence.split()
        for tok in tokens[1:]:  # the first word is capitalised anyway
            word = tok.strip(".,!?;:\"'()")
            if word[:1].isupper() and word.lower() not in STOPWORDS:
                found[word] = None
                if len(found) == LISTED:
                    return list(found)
    return list(found)


def time_expressions(text: str) -> list[str]:
    """Each distinct expression once, the first LISTED of them."""
    return list(dict.fromkeys(m.group(0) for m in _TIME.finditer(text)))[:LISTED]


def slot_of(sentence: str) -> str | None:
    for pattern, template in _SLOTS:
        match = pattern.search(sentence)
        if match:
            return template.format(*(g.lower() for g in match.groups()))
    return None


def is_fact(sentence: str, min_words: int) -> bool:
    text = sentence.strip()
    if text.endswith("?") or _GREETING.match(text):
        return False
    content = [w for w in _WORD.findall(text) if w.lower() not in STOPWORDS]
    return len(text.split()) >= min_words and len(content) >= 1


def importance(sentence: str, default: float) -> float:
    score = float(default)
    score += 0.1 if _TIME.search(sentence) or re.search(r"\d", sentence) else 0.0
    score += 0.1 if entities(sentence) else 0.0
    score += (
        0.1 if re.search(r"\b(love|hate|allergic|favou?rite|always|never)\b", sentence, re.I) else 0
    )
    return min(score, 1.0)


def facts_from(line: TranscriptLine, prev: TranscriptLine | None, params: ParamSet) -> list[Fact]:
    """One memory per turn: its factual sentences, dates resolved, named by speaker.

    A sentence that states a changeable attribute ("my X is Y", "I live in Z") becomes its own
    memory with a slot so a later change can supersede exactly it. A short reply carries the
    turn it answers, quoted, so it stands alone; both turns are then its provenance.
    """
    if line.role == "assistant":
        return []
    who = line.speaker or UNNAMED
    default = params.num("archivist.default_importance")
    kept, facts = [], []
    for raw in _SENTENCE.split(line.text):
        sentence = resolve(raw.strip(), line.at)
        if not is_fact(sentence, int(params["archivist.min_fact_words"])):
            continue
        slot = slot_of(sentence)
        if slot:
            facts.append(
                _fact(f"{who}: {sentence}", [line.number], default, f"{who.lower()}|{slot}")
            )
        else:
            kept.append(sentence)
    chunks = _chunks(kept, int(params["archivist.max_memory_words"]))
    if len(chunks) == 1:
        text, source = _with_context(who, chunks[0], line, prev, params)
        return [_fact(text, source, default, None), *facts]
    return [_fact(f"{who}: {c}", [line.number], default, None) for c in chunks] + facts


def _split_long(sentence: str, max_words: int) -> list[str]:
    """Only a run-on sentence (over twice the limit) is cut, into balanced windows, so no
    fragment is too short to mean anything."""
    words = sentence.split()
    if len(words) <= 2 * max_words:
        return [sentence]
    parts = -(-len(words) // max_words)
    size = -(-len(words) // parts)
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)]


def _chunks(sentences: list[str], max_words: int) -> list[str]:
    """Consecutive sentences grouped up to max_words, so a long turn is several memories."""
    chunks: list[list[str]] = []
    words = 0
    for sentence in [piece for s in sentences for piece in _split_long(s, max_words)]:
        n = len(sentence.split())
        if not chunks or words + n > max_words:
            chunks.append([])
            words = 0
        chunks[-1].append(sentence)
        words += n
    return [" ".join(c) for c in chunks]


def _with_context(
    who: str, text: str, line: TranscriptLine, prev: TranscriptLine | None, params: ParamSet
) -> tuple[str, list[int]]:
    """A short reply quotes what it answers; provenance gains that turn only if quoted whole."""
    limit = int(params["archivist.context_reply_words"])
    short = len(text.split()) < limit
    if not short or prev is None or prev.role == "assistant" or prev.speaker == line.speaker:
        return f"{who}: {text}", [line.number]
    words = prev.text.split()
    whole = len(words) <= 3 * limit
    quote = " ".join(words if whole else words[: 3 * limit] + ["…"])
    asker = prev.speaker or UNNAMED
    source = [prev.number, line.number] if whole else [line.number]
    return f'{who} (to {asker}\'s "{quote}"): {text}', source


def _fact(text: str, source: list[int], default: float, slot: str | None) -> Fact:
    return Fact(text=text, importance=importance(text, default), source=source, slot=slot)


class OfflineModel:
    mode = "offline"
    model = "offline-extractive"

    def __init__(self, encoding: str = "cl100k_base") -> None:
        self.encoding = encoding  # token counts in llm_calls use the configured encoding

    async def analyze(self, message: str, params: ParamSet, rec: Recorder) -> Analysis:
        result, call = await _work(len(message), self._analyze, message, params)
        await rec(call)
        return result

    def _analyze(self, message: str, params: ParamSet) -> tuple[Analysis, CallLog]:
        started = time.perf_counter()
        result = Analysis(
            keywords=keywords(message, int(params["llm.analyzer_max_keywords"])),
            entities=entities(message),
            time_expressions=time_expressions(message),
        )
        return result, self._log("analyzer", started, message, result.model_dump_json())

    async def extract_facts(
        self, lines: list[TranscriptLine], params: ParamSet, rec: Recorder
    ) -> list[Fact]:
        size = sum(len(line.text) for line in lines)
        facts, call = await _work(size, self._extract, lines, params)
        await rec(call)
        return facts

    def _extract(self, lines: list[TranscriptLine], params: ParamSet) -> tuple[list[Fact], CallLog]:
        started = time.perf_counter()
        previous = [None, *lines][: len(lines)]  # no lines (nothing left to archive): no pairs
        pairs = zip(lines, previous, strict=True)
        facts = [fact for line, prev in pairs for fact in facts_from(line, prev, params)]
        source = "\n".join(line.text for line in lines)
        return facts, self._log("archivist", started, source, "\n".join(f.text for f in facts))

    async def respond(self, data: RespondInput, params: ParamSet, rec: Recorder) -> str:
        started = time.perf_counter()
        answer = extractive_answer(data)
        await rec(self._log("responder", started, data.message, answer))
        return answer

    def _log(self, stage: str, started: float, prompt: str, completion: str) -> CallLog:
        ms = (time.perf_counter() - started) * 1000
        tokens = (count_tokens(prompt, self.encoding), count_tokens(completion, self.encoding))
        return CallLog(stage, f"{self.model}:{stage}", tokens[0], tokens[1], ms, "ok")


async def _work(size: int, fn: Callable[..., T], *args: object) -> T:
    """Small inputs inline (a thread hop costs more than the work), large ones in a thread."""
    if size <= OFF_LOOP_CHARS:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def extractive_answer(data: RespondInput, quote: int = 3) -> str:
    if not data.memories:
        return f"{OFFLINE_LABEL} I have nothing in memory about that."
    lines = [f"- {m.text}" + (f" (said {m.date})" if m.date else "") for m in data.memories[:quote]]
    return f"{OFFLINE_LABEL} From memory:\n" + "\n".join(lines)
