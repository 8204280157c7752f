"""`maas bench locomo`: LoCoMo retrieval through the real pipeline, beside a BM25 baseline.

For each conversation file (normalized LoCoMo format, see the data set's README): a fresh user;
each session imported as its own thread (message time = session date + i seconds per turn, role
"user", speaker kept, photo captions appended to the text); every thread closed so the archivist
builds memories; then every question of categories 1-4 that has evidence is sent to
`POST /v1/context` at each token budget. The same questions are answered by BM25 over the raw turns
of the conversation, packed into the same budgets with the same line format and token counter.

Figures per question, averaged per category and overall:
- budget recall@B: share of the evidence turns whose message is in the provenance of a packed
  (used) memory;
- answer-in-context@B: 1 when every normalized token of the gold answer is among the normalized
  tokens of the packed context, normalized as LoCoMo's official scorer does (lowercase, drop
  commas, punctuation and a/an/the/and, Porter-stem each token: "competitions" = "competition");
- answer-in-context-exact@B: the same without stemming (SQuAD normalization), the stricter figure;
- recall@k: share of the evidence turns in the provenance of the top-k ranked memories (used or
  not) of the largest-budget call.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import platform
import re
import string
import sys
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from bench import locomo_snapshot as snap
from bench.harness import BenchUser, Served, running_service
from bench.locomo_snapshot import SnapshotArgs
from bench.stats import mean
from bench.stats import percentile_or_none as percentile

if TYPE_CHECKING:
    from bench.locomo_judge import Judge, JudgeConfig, Judged, JudgeReport
from maas.db.pool import connect
from maas.llm.tokens import count_tokens
from maas.params import validate
from selflearn.teacher.metrics import normalize_locomo

log = logging.getLogger(__name__)
H = TypeVar("H", bound=Hashable)

CATEGORIES = (1, 2, 3, 4)
DEFAULT_BUDGETS = (500, 2000)
KS = (5, 10, 25)
CONCURRENCY = 4
ARCHIVE_TIMEOUT_S = 600.0
ENCODING = "cl100k_base"
NEAR_DUP_SIMILARITY = 0.8
MEMORY_PAGE = 500

# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Turn:
    turn_id: str
    speaker: str
    text: str  # as imported: the turn's text, plus " [shared a photo: caption]" when it has one
    created_at: datetime  # session date + i seconds, i = position in the session
    session_date: datetime


@dataclass(frozen=True)
class Session:
    session_id: str
    date: datetime
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    question_id: str
    question: str
    answer: str
    category: int
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    speakers: tuple[str, ...]
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]

    @property
    def turns(self) -> list[Turn]:
        return [t for s in self.sessions for t in s.turns]

    def scored_questions(self) -> list[Question]:
        """Questions of categories 1-4 with at least one evidence id (the recall set)."""
        return [q for q in self.questions if q.category in CATEGORIES and q.evidence]


def turn_text(raw: dict[str, Any]) -> str:
    text = str(raw["text"])
    caption = raw.get("image_caption")
    return f"{text} [shared a photo: {caption}]" if caption else text


def parse_conversation(obj: dict[str, Any]) -> Conversation:
    sessions = []
    for s in obj["sessions"]:
        date = datetime.fromisoformat(s["date_time_iso"])
        turns = tuple(
            Turn(t["turn_id"], t["speaker"], turn_text(t), date + timedelta(seconds=i), date)
            for i, t in enumerate(s["turns"])
        )
        sessions.append(Session(s["session_id"], date, turns))
    questions = tuple(
        Question(
            q["question_id"],
            q["question"],
            "" if q.get("answer") is None else str(q["answer"]),
            int(q["category"]),
            tuple(q.get("evidence") or ()),
        )
        for q in obj["questions"]
    )
    return Conversation(obj["conversation_id"], tuple(obj["speakers"]), tuple(sessions), questions)


def load_conversations(data: Path, limit: int | None = None) -> list[Conversation]:
    """Every *.json conversation in `data` (a directory or one file), sorted by file name."""
    files = [data] if data.is_file() else sorted(data.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no conversation files (*.json) in {data}")
    files = files[:limit] if limit else files
    return [parse_conversation(json.loads(f.read_text(encoding="utf-8"))) for f in files]


def resolve_evidence(question: Question, known: AbstractSet[str]) -> tuple[tuple[str, ...], int]:
    """The question's evidence turn ids that exist in the conversation, and how many do not."""
    found = tuple(dict.fromkeys(e for e in question.evidence if e in known))
    return found, sum(e not in known for e in question.evidence)


# --------------------------------------------------------------------------- metrics (pure)

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> list[str]:
    """SQuAD answer normalization: lowercase, drop punctuation and articles, split."""
    lowered = text.lower()
    no_punct = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    return _ARTICLES.sub(" ", no_punct).split()


def answer_in_context(
    answer: str, context: str, norm: Callable[[str], list[str]] = normalize_locomo
) -> float:
    """1.0 when every normalized answer token is among the context's tokens (0.0 for no tokens)."""
    wanted = norm(answer)
    if not wanted:
        return 0.0
    present = set(norm(context))
    return 1.0 if all(token in present for token in wanted) else 0.0


def answer_in_context_exact(answer: str, context: str) -> float:
    """The stricter figure: SQuAD normalization, no stemming."""
    return answer_in_context(answer, context, normalize)


def budget_recall(evidence: AbstractSet[H], covered: AbstractSet[H]) -> float:
    """Share of the evidence items that are covered."""
    if not evidence:
        raise ValueError("recall over no evidence")
    return len(evidence & covered) / len(evidence)


def recall_at_k(evidence: AbstractSet[H], ranked: Sequence[AbstractSet[H]], k: int) -> float:
    """Share of the evidence covered by the provenance of the first k ranked items."""
    covered: set[H] = set()
    for provenance in ranked[:k]:
        covered |= provenance
    return budget_recall(evidence, covered)


def provenance(memories: Sequence[dict[str, Any]]) -> tuple[set[int], list[set[int]]]:
    """From /v1/context `memories`: message ids behind the used ones, and per-rank provenance."""
    used = {i for m in memories if m.get("used") for i in m.get("source_message_ids") or ()}
    ordered = sorted(memories, key=lambda m: int(m["rank"]))
    return used, [set(m.get("source_message_ids") or ()) for m in ordered]


@dataclass
class Scores:
    """One question's figures for one system (MaaS or BM25)."""

    question_id: str
    category: int
    budget_recall: dict[int, float] = field(default_factory=dict)
    answer_in_context: dict[int, float] = field(default_factory=dict)
    answer_in_context_exact: dict[int, float] = field(default_factory=dict)
    recall_at_k: dict[int, float] = field(default_factory=dict)
    context_tokens: dict[int, float] = field(default_factory=dict)


METRICS = (
    "budget_recall",
    "answer_in_context",
    "answer_in_context_exact",
    "recall_at_k",
    "context_tokens",
)


def aggregate(pairs: Iterable[tuple[int, float]]) -> dict[str, float | None]:
    """(category, value) pairs -> mean "overall" (over questions) and per category "1".."4"."""
    items = list(pairs)
    out: dict[str, float | None] = {"overall": mean([v for _, v in items])}
    for cat in CATEGORIES:
        out[str(cat)] = mean([v for c, v in items if c == cat])
    return out


def summarize(scores: Sequence[Scores]) -> dict[str, dict[str, dict[str, float | None]]]:
    """metric -> budget or k (as a string) -> "overall" / category -> mean."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for metric in METRICS:
        keys = sorted({k for s in scores for k in getattr(s, metric)})
        out[metric] = {
            str(k): aggregate(
                (s.category, getattr(s, metric)[k]) for s in scores if k in getattr(s, metric)
            )
            for k in keys
        }
    return out


def per_conversation(
    conversations: Sequence[Conversation], scores: Sequence[Scores], budget: int
) -> dict[str, dict[str, float | int | None]]:
    """Each conversation's figures at `budget`: a handful of conversations makes a category's
    figure swing (multi-hop answer-in-context 0.18-0.74 across the five dev conversations), so
    the table shows the spread behind its means."""
    conv_of = {q.question_id: c.conversation_id for c in conversations for q in c.questions}
    out: dict[str, dict[str, float | int | None]] = {}
    for conv in dict.fromkeys(conv_of.values()):
        mine = [s for s in scores if conv_of.get(s.question_id) == conv]
        multi = [
            s.answer_in_context[budget]
            for s in mine
            if s.category == 1 and budget in s.answer_in_context
        ]
        out[conv] = {
            "questions": len(mine),
            "budget_recall": mean(
                [s.budget_recall[budget] for s in mine if budget in s.budget_recall]
            ),
            "answer_in_context": mean(
                [s.answer_in_context[budget] for s in mine if budget in s.answer_in_context]
            ),
            "multi_hop_questions": len(multi),
            "multi_hop_answer_in_context": mean(multi),
        }
    return out


def score_context(
    question: Question, evidence: AbstractSet[int], responses: dict[int, dict[str, Any]]
) -> Scores:
    """MaaS figures of one question from its /v1/context answers per budget ({} = failed call)."""
    scores = Scores(question.question_id, question.category)
    for budget, body in responses.items():
        used, _ = provenance(body.get("memories") or [])
        scores.budget_recall[budget] = budget_recall(evidence, used)
        context = body.get("context") or ""
        scores.answer_in_context[budget] = answer_in_context(question.answer, context)
        scores.answer_in_context_exact[budget] = answer_in_context_exact(question.answer, context)
        scores.context_tokens[budget] = float(body.get("context_tokens") or 0)
    if responses:
        _, ranked = provenance(responses[max(responses)].get("memories") or [])
        for k in KS:
            scores.recall_at_k[k] = recall_at_k(evidence, ranked, k)
    return scores


# --------------------------------------------------------------------------- BM25 baseline


def day(d: datetime) -> str:
    """'8 May 2023', the date form of the service's context lines."""
    return f"{d.day} {d.strftime('%B')} {d.year}"


def turn_body(turn: Turn) -> str:
    """A raw turn's context line after its `[M{i}] ` prefix."""
    return f"({day(turn.session_date)}) {turn.speaker}: {turn.text}"


@dataclass(frozen=True)
class PackedTurns:
    indices: list[int]
    text: str
    tokens: int


def _render(bodies: Sequence[str], chosen: Sequence[int]) -> str:
    return "\n".join(f"[M{n}] {bodies[i]}" for n, i in enumerate(chosen, start=1))


def pack_turns(
    ranked: Sequence[int],
    bodies: Sequence[str],
    max_tokens: int,
    cost: Callable[[str], int] | None = None,
) -> PackedTurns:
    """Greedy in rank order, like the service's packer: a line `[M{i}] {body}` (+ newline) that
    does not fit is skipped and smaller later ones may still fit."""
    count = cost or _cached_count
    chosen: list[int] = []
    total = 0
    for index in ranked:
        line = count(f"[M{len(chosen) + 1}] {bodies[index]}\n")
        if total + line <= max_tokens:
            chosen.append(index)
            total += line
    text = _render(bodies, chosen)
    while chosen and count(text) > max_tokens:  # BPE merges across lines
        chosen.pop()
        text = _render(bodies, chosen)
    return PackedTurns(chosen, text, count(text) if text else 0)


@lru_cache(maxsize=500_000)
def _cached_count(text: str) -> int:
    return count_tokens(text, ENCODING)


class Bm25Turns:
    """BM25 (bm25s, English stopwords, default k1/b) over the raw turns of one conversation."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its logger to DEBUG
        self.turns = list(turns)
        self.bodies = [turn_body(t) for t in self.turns]
        corpus = [f"{t.speaker}: {t.text}" for t in self.turns]
        self._bm25 = bm25s.BM25()
        self._bm25.index(
            bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
        )
        self._tokenize = bm25s.tokenize

    def rank(self, query: str) -> list[int]:
        """Turn indices with a positive score, best first (ties in conversation order)."""
        tokens = self._tokenize([query], stopwords="en", return_ids=False, show_progress=False)
        if not tokens or not tokens[0]:
            return []
        scores = [float(s) for s in self._bm25.get_scores(tokens[0])]
        hits = [i for i, s in enumerate(scores) if s > 0]
        return sorted(hits, key=lambda i: (-scores[i], i))

    def score(
        self, question: Question, evidence: AbstractSet[str], budgets: Sequence[int]
    ) -> Scores:
        ranked = self.rank(question.question)
        scores = Scores(question.question_id, question.category)
        for budget in budgets:
            packed = pack_turns(ranked, self.bodies, budget)
            covered = {self.turns[i].turn_id for i in packed.indices}
            scores.budget_recall[budget] = budget_recall(evidence, covered)
            scores.answer_in_context[budget] = answer_in_context(question.answer, packed.text)
            scores.answer_in_context_exact[budget] = answer_in_context_exact(
                question.answer, packed.text
            )
            scores.context_tokens[budget] = float(packed.tokens)
        ranked_ids = [{self.turns[i].turn_id} for i in ranked]
        for k in KS:
            scores.recall_at_k[k] = recall_at_k(evidence, ranked_ids, k)
        return scores


def baseline(conversations: Sequence[Conversation], budgets: Sequence[int]) -> list[Scores]:
    out: list[Scores] = []
    for conv in conversations:
        index = Bm25Turns(conv.turns)
        known = {t.turn_id for t in conv.turns}
        for q in conv.scored_questions():
            evidence, _ = resolve_evidence(q, known)
            if evidence:
                out.append(index.score(q, set(evidence), budgets))
    return out


# --------------------------------------------------------------------------- progress


class Progress:
    """`label done/total` on stderr, rewritten in place with `\\r` (at most every 0.2 s)."""

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total, self.done, self.enabled = label, total, 0, enabled
        self._last = 0.0

    def tick(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.2 or self.done >= self.total):
            self._last = now
            end = "\n" if self.done >= self.total else ""
            print(f"\r{self.label} {self.done}/{self.total}", end=end, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the service run


class BenchError(RuntimeError):
    """The benchmark could not run (the service refused a call or the archivist stalled)."""


def _ok(resp: httpx.Response, what: str, expected: int = 200) -> Any:
    if resp.status_code != expected:
        raise BenchError(f"{what}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json()


@dataclass
class Ingested:
    conversation: Conversation
    user: BenchUser
    http: httpx.AsyncClient
    message_ids: dict[str, int] = field(default_factory=dict)  # turn id -> message id
    threads: list[tuple[str, str, int]] = field(default_factory=list)  # thread, session, last id


async def import_conversation(ing: Ingested) -> None:
    """Each session as a thread: import its turns, then close it (queues the archivist)."""
    conv, http = ing.conversation, ing.http
    for session in conv.sessions:
        if not session.turns:
            continue
        title = f"{conv.conversation_id} {session.session_id}"
        made = _ok(await http.post("/v1/threads", json={"title": title}), "create thread", 201)
        thread_id = made["thread_id"]
        messages = [
            {
                "role": "user",
                "speaker": t.speaker,
                "text": t.text,
                "created_at": t.created_at.isoformat(),
            }
            for t in session.turns
        ]
        resp = await http.post(f"/v1/threads/{thread_id}/messages", json={"messages": messages})
        ids = _ok(resp, f"import {title}", 201)["message_ids"]
        if len(ids) != len(session.turns):
            raise BenchError(f"import {title}: {len(ids)} ids for {len(session.turns)} turns")
        ing.message_ids.update(zip((t.turn_id for t in session.turns), ids, strict=True))
        _ok(await http.post(f"/v1/threads/{thread_id}/close"), f"close {title}")
        ing.threads.append((thread_id, title, max(ids)))


FAILED_JOBS_SQL = """
SELECT count(*) AS failed, min(error) AS error FROM maas.archive_jobs
WHERE status = 'failed' AND user_id = ANY($1::uuid[])
"""


async def failed_archive_jobs(dsn: str, user_ids: Sequence[str]) -> tuple[int, str | None]:
    """Archive jobs that gave up (read-only, so a broken archivist fails the run at once)."""
    conn = await connect(dsn)
    try:
        row = await conn.fetchrow(FAILED_JOBS_SQL, list(user_ids))
    finally:
        await conn.close()
    return int(row["failed"]), row["error"]


async def _archived_head(
    pending: list[tuple[httpx.AsyncClient, str, str, int]], progress: Progress
) -> list[tuple[httpx.AsyncClient, str, str, int]]:
    """Drop the archived threads from the head of the queue (the archivist works in order)."""
    while pending:
        http, thread_id, title, last = pending[0]
        thread = _ok(await http.get(f"/v1/threads/{thread_id}"), f"read {title}")
        if thread["archived_upto"] < last:
            break
        progress.tick()
        pending = pending[1:]
    return pending


async def wait_archived(
    svc: Served, ingested: Sequence[Ingested], timeout_s: float, progress: Progress
) -> None:
    """Until every thread's archived_upto reaches its last message id; fails on a timeout or
    when an archive job has failed for good."""
    pending = [(ing.http, *t) for ing in ingested for t in ing.threads]
    users = [ing.user.user_id for ing in ingested]
    deadline = time.monotonic() + timeout_s
    polls = 0
    while pending := await _archived_head(pending, progress):
        svc.check_alive()
        polls += 1
        if polls % 8 == 0 and (failed := await failed_archive_jobs(svc.dsn, users))[0]:
            raise BenchError(f"{failed[0]} archive job(s) failed, e.g.: {failed[1]}")
        if time.monotonic() > deadline:
            _, thread_id, title, last = pending[0]
            raise BenchError(
                f"the archivist did not finish within {timeout_s:.0f}s: {progress.done}/"
                f"{progress.total} threads archived; {title} (thread {thread_id}) has not reached "
                f"message {last} (see the service log above)"
            )
        await asyncio.sleep(0.25)


@dataclass
class Asked:
    scores: list[Scores] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)  # server-side timings_ms
    failures: list[str] = field(default_factory=list)
    run_id: str | None = None
    judged: list[Judged] = field(default_factory=list)  # --judge: the largest budget's reading


async def _post_context(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """POST /v1/context. A kept-alive connection the server closed just as it was reused (a race
    that widens under load: whole runs died of one httpx.ReadError) is retried on a new one,
    twice at most; asking for context stores no memory."""
    for _ in range(2):
        try:
            return await http.post("/v1/context", json=body)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            continue
    return await http.post("/v1/context", json=body)


async def ask_all(
    svc: Served,
    ingested: Sequence[Ingested],
    budgets: Sequence[int],
    concurrency: int,
    progress: Progress,
    judge: Judge | None = None,
) -> Asked:
    """Every scored question at every budget through POST /v1/context, `concurrency` at a time;
    with a judge, the largest budget's context is also read and judged."""
    asked = Asked()
    gate = asyncio.Semaphore(concurrency)
    took: dict[tuple[str, int], float] = {}

    async def call(http: httpx.AsyncClient, q: Question, budget: int) -> dict[str, Any]:
        async with gate:
            svc.check_alive()
            t0 = time.perf_counter()
            resp = await _post_context(http, {"query": q.question, "max_tokens": budget})
            took[q.question_id, budget] = (time.perf_counter() - t0) * 1000
            asked.latencies_ms.append(took[q.question_id, budget])
        body: dict[str, Any] = resp.json() if resp.status_code in (200, 202) else {}
        if resp.status_code != 200 or body.get("status") != "READY":
            asked.failures.append(
                f"HTTP {resp.status_code} {body.get('status')} {body.get('error')}"
            )
            return {}
        asked.run_id = asked.run_id or body.get("run_id")
        for stage, ms in (body.get("timings_ms") or {}).items():
            asked.stage_ms.setdefault(stage, []).append(float(ms))
        return body

    async def one(ing: Ingested, q: Question) -> Scores | None:
        evidence = {ing.message_ids[e] for e in q.evidence if e in ing.message_ids}
        if not evidence:
            progress.tick()
            return None
        responses = {b: await call(ing.http, q, b) for b in budgets}
        if judge is not None:
            top = max(budgets)
            asked.judged.append(
                await judge.one(
                    q.question_id, q.category, q.question, q.answer, responses[top],
                    took[q.question_id, top],
                )
            )  # fmt: skip
        progress.tick()
        return score_context(q, evidence, responses)

    jobs = [one(ing, q) for ing in ingested for q in ing.conversation.scored_questions()]
    asked.scores = [s for s in await asyncio.gather(*jobs) if s is not None]
    return asked


async def count_memories(http: httpx.AsyncClient) -> int:
    """The user's active memories, paging GET /v1/memories."""
    total, offset = 0, 0
    while True:
        resp = await http.get("/v1/memories", params={"limit": MEMORY_PAGE, "offset": offset})
        page = _ok(resp, "list memories")["memories"]
        total += len(page)
        if len(page) < MEMORY_PAGE:
            return total
        offset += MEMORY_PAGE


# Near-duplicates: memories whose pg_trgm similarity() with another memory of the same user is at
# least $2. similarity() is the Jaccard index of the two texts' trigram sets (show_trgm), so a
# plain self-join calls it n^2 times (~50 s for LoCoMo's 2,700 memories). Exact candidate pruning
# first (a set-similarity join): with trigrams ordered rarest first, two sets with Jaccard >= t
# share a trigram within their first n - ceil(t n) + 1 (prefix filter); their sizes are within a
# factor t (size filter); and the overlap can be no more than 1 + what follows their first shared
# trigram, which must reach t / (1 + t) (n_a + n_b) (positional filter). similarity() then decides.
NEAR_DUP_SQL = """
WITH mem AS MATERIALIZED (
  SELECT id, user_id, show_trgm(text) AS grams
  FROM maas.memories WHERE valid_to IS NULL AND user_id = ANY($1::uuid[])
), gram AS (
  SELECT m.id, m.user_id, g.gram COLLATE "C" AS gram, cardinality(m.grams) AS n
  FROM mem m, unnest(m.grams) AS g(gram)
), df AS (
  SELECT user_id, gram, count(*) AS df FROM gram GROUP BY user_id, gram
), prefix AS (
  SELECT * FROM (
    SELECT g.id, g.user_id, g.gram, g.n,
           row_number() OVER (PARTITION BY g.id ORDER BY d.df, g.gram) AS pos
    FROM gram g JOIN df d ON d.user_id = g.user_id AND d.gram = g.gram) r
  WHERE pos <= n - ceil($2::numeric * n) + 1
), pairs AS (
  SELECT a.id AS a, b.id AS b
  FROM prefix a JOIN prefix b
    ON a.user_id = b.user_id AND a.gram = b.gram AND a.id < b.id
   AND least(a.n, b.n) >= $2::numeric * greatest(a.n, b.n)
  GROUP BY a.id, b.id, a.n, b.n
  HAVING 1 + least(a.n - min(a.pos), b.n - min(b.pos))
         >= ceil($2::numeric / (1 + $2::numeric) * (a.n + b.n))
), dups AS (
  SELECT p.a, p.b FROM pairs p
  JOIN maas.memories ma ON ma.id = p.a JOIN maas.memories mb ON mb.id = p.b
  WHERE similarity(ma.text, mb.text) >= $2::real
)
SELECT (SELECT count(*) FROM mem) AS memories,
       (SELECT count(*) FROM (SELECT a FROM dups UNION SELECT b FROM dups) f) AS near_dups
"""


async def near_duplicates(
    dsn: str, user_ids: Sequence[str], threshold: float = NEAR_DUP_SIMILARITY
) -> tuple[int, int]:
    """(active memories, those with a trigram similarity >= threshold to another memory of the
    same user)."""
    conn = await connect(dsn)
    try:
        # Fresh tables may not be analyzed yet: estimated at a few rows, the prefix self-join ran
        # as a nested loop for minutes. Statistics first, and a hash join either way.
        await conn.execute("ANALYZE maas.memories")
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_nestloop = off")
            row = await conn.fetchrow(NEAR_DUP_SQL, list(user_ids), threshold)
    finally:
        await conn.close()
    return int(row["memories"]), int(row["near_dups"])


# Semantic near-duplicates (issue 17): valid memories with another valid memory of the same user
# at embedding cosine >= $2 -- what archivist.semantic_dedup looks at, however the texts differ.
# Exact per user (a few hundred memories each here).
SEMANTIC_DUP_SIMILARITY = 0.95
SEMANTIC_DUP_SQL = """
SELECT count(*) AS near_dups FROM maas.memories a
WHERE a.user_id = ANY($1::uuid[]) AND a.valid_to IS NULL AND a.embedding IS NOT NULL
  AND EXISTS (SELECT 1 FROM maas.memories b
              WHERE b.user_id = a.user_id AND b.id <> a.id AND b.valid_to IS NULL
                AND b.embedding IS NOT NULL AND 1 - (a.embedding <=> b.embedding) >= $2)
"""


async def semantic_duplicates(
    dsn: str, user_ids: Sequence[str], threshold: float = SEMANTIC_DUP_SIMILARITY
) -> int:
    conn = await connect(dsn)
    try:
        found: int = await conn.fetchval(SEMANTIC_DUP_SQL, list(user_ids), threshold)
    finally:
        await conn.close()
    return found


# --------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class LocomoConfig:
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    embedder: str = "none"
    concurrency: int = CONCURRENCY
    archive_timeout_s: float = ARCHIVE_TIMEOUT_S
    progress: bool = True
    params: dict[str, Any] = field(default_factory=dict)  # overrides, as MAAS_PARAMS
    judge: JudgeConfig | None = None  # --judge: reader and judge LLM
    snapshot: SnapshotArgs | None = None  # --snapshot DIR (save) or --replay DIR


@dataclass
class LocomoReport:
    budgets: tuple[int, ...]
    maas: list[Scores]
    bm25: list[Scores]
    config: dict[str, Any]
    extras: dict[str, Any]
    judge: JudgeReport | None = None

    @property
    def summary(self) -> dict[str, dict[str, dict[str, float | None]]]:
        return summarize(self.maas)

    @property
    def baseline_summary(self) -> dict[str, dict[str, dict[str, float | None]]]:
        return summarize(self.bm25)


@asynccontextmanager
async def user_clients(
    svc: Served, conversations: Sequence[Conversation]
) -> AsyncIterator[list[Ingested]]:
    async with AsyncExitStack() as stack:
        out = []
        for conv in conversations:
            user = await svc.new_user(f"locomo {conv.conversation_id}")
            http = await stack.enter_async_context(svc.client(user.api_key))
            out.append(Ingested(conv, user, http))
        yield out


@dataclass
class Measured:
    """What one run of the service gave, besides the per-question scores in `asked`."""

    asked: Asked
    ingest: dict[str, Any]
    phases_s: dict[str, float]
    health: dict[str, Any] = field(default_factory=dict)
    param_version: str | None = None
    memories: dict[str, int] = field(default_factory=dict)  # conversation id -> memories
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # for a snapshot's manifest
    near_dup_rate: float | None = None
    semantic_dup_rate: float | None = None  # None without embeddings


async def _service_facts(svc: Served, ingested: Sequence[Ingested], out: Measured) -> None:
    http = ingested[0].http
    out.health = _ok(await http.get("/health"), "health")
    if out.asked.run_id is not None:
        run = _ok(await http.get(f"/v1/runs/{out.asked.run_id}"), "read run")
        out.param_version = run.get("param_version")
    for ing in ingested:
        out.memories[ing.conversation.conversation_id] = await count_memories(ing.http)
    stored, dups = await near_duplicates(svc.dsn, [i.user.user_id for i in ingested])
    out.near_dup_rate = dups / stored if stored else None
    if out.health.get("embedder") not in (None, "none") and stored:
        users = [i.user.user_id for i in ingested]
        out.semantic_dup_rate = await semantic_duplicates(svc.dsn, users) / stored


async def measure(
    svc: Served,
    conversations: Sequence[Conversation],
    cfg: LocomoConfig,
    snapshot: dict[str, Any] | None = None,
) -> Measured:
    """Ingest every conversation, wait for the archivist, ask every question, gather stats;
    with a `snapshot` manifest (a replay) the database holds them already: ask and gather."""
    clients = user_clients(svc, conversations) if snapshot is None else replayed(svc, snapshot)
    async with clients as ingested:
        t0 = time.perf_counter()
        if snapshot is None:
            ingest = await _ingest(svc, ingested, cfg)
        else:
            ingest = {**snapshot["ingest"], "replayed": True}
            snap.check_embedder(snapshot, _ok(await ingested[0].http.get("/health"), "health"))
        t1 = time.perf_counter()
        total = sum(len(c.scored_questions()) for c in conversations)
        progress = Progress("questions", total, cfg.progress)
        async with _judge(cfg) as judge:
            asked = await ask_all(svc, ingested, cfg.budgets, cfg.concurrency, progress, judge)
        t2 = time.perf_counter()
        out = Measured(asked, ingest, {"ingest": t1 - t0, "questions": t2 - t1})
        await _service_facts(svc, ingested, out)
        out.users = {i.conversation.conversation_id: _user_json(i) for i in ingested}
        out.phases_s["stats"] = time.perf_counter() - t2
    return out


async def _ingest(svc: Served, ingested: Sequence[Ingested], cfg: LocomoConfig) -> dict[str, Any]:
    conversations = [i.conversation for i in ingested]
    threads = sum(1 for c in conversations for s in c.sessions if s.turns)
    turns = sum(len(c.turns) for c in conversations)
    t0 = time.perf_counter()
    for ing in ingested:
        await import_conversation(ing)
    progress = Progress("archived threads", threads, cfg.progress)
    await wait_archived(svc, ingested, cfg.archive_timeout_s, progress)
    seconds = time.perf_counter() - t0
    return {"turns": turns, "threads": threads, "seconds": seconds, "turns_per_s": turns / seconds}


def _user_json(ing: Ingested) -> dict[str, Any]:
    user = ing.user
    return {"user_id": user.user_id, "name": user.name, "api_key": user.api_key,
            "message_ids": ing.message_ids}  # fmt: skip


@asynccontextmanager
async def replayed(svc: Served, manifest: dict[str, Any]) -> AsyncIterator[list[Ingested]]:
    """The snapshot's users, in the conversations' order, with their message ids."""
    async with AsyncExitStack() as stack:
        out = []
        for conv in manifest["conversations"]:
            u = manifest["users"][conv.conversation_id]
            http = await stack.enter_async_context(svc.client(u["api_key"]))
            user = BenchUser(u["user_id"], u["name"], u["api_key"])
            out.append(Ingested(conv, user, http, dict(u["message_ids"])))
        yield out


@asynccontextmanager
async def _judge(cfg: LocomoConfig) -> AsyncIterator[Judge | None]:
    if cfg.judge is None:
        yield None
        return
    from bench.locomo_judge import Judge

    judge = Judge(cfg.judge, cfg.concurrency)
    try:
        yield judge
    finally:
        await judge.close()


def _machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


async def run_locomo(conversations: Sequence[Conversation], cfg: LocomoConfig) -> LocomoReport:
    """The whole benchmark: BM25 baseline, then the service on a fresh database (with
    `cfg.snapshot`: kept as a snapshot afterwards, or copied from one and not ingested)."""
    started = time.perf_counter()
    bm25 = baseline(conversations, cfg.budgets)
    baseline_s = time.perf_counter() - started
    async with snap.place(cfg.snapshot) as where:
        manifest = where.manifest and {**where.manifest, "conversations": conversations}
        async with running_service(
            where.server_uri, where.template, where.keep_as, embedder=cfg.embedder,
            params=cfg.params, migrate_on_start=True,
        ) as svc:  # fmt: skip
            measured = await measure(svc, conversations, cfg, manifest)
            stopping = time.perf_counter()
        if where.keep_as is not None and cfg.snapshot is not None:
            embedder = measured.health.get("embedder")
            made = snap.Ingested(fingerprint(conversations), embedder, cfg.params,
                                 measured.ingest, measured.users)  # fmt: skip
            await snap.keep(cfg.snapshot.directory, where, made)
    elapsed = time.perf_counter() - started
    shutdown = elapsed - (stopping - started)
    startup = elapsed - baseline_s - shutdown - sum(measured.phases_s.values())  # + users
    phases = {"baseline": baseline_s, "startup": startup, **measured.phases_s}
    phases["shutdown"] = shutdown
    config = {
        "llm_mode": measured.health.get("mode"),
        "embedder": measured.health.get("embedder"),
        "param_version": measured.param_version,
    }
    if cfg.params:
        config["params"] = dict(cfg.params)
    if cfg.snapshot is not None:
        config["snapshot"] = {"directory": str(cfg.snapshot.directory),
                              "replayed": cfg.snapshot.replay}  # fmt: skip
    extras = _extras_json(conversations, measured, bm25)
    top = max(cfg.budgets)
    extras["per_conversation"] = {
        "budget": top,
        "conversations": per_conversation(conversations, measured.asked.scores, top),
    }
    extras |= {"phases_s": phases, "machine": _machine(), "elapsed_s": elapsed}
    report = LocomoReport(tuple(cfg.budgets), measured.asked.scores, bm25, config, extras)
    if cfg.judge is not None:
        from bench.locomo_judge import JudgeReport, order

        judged = order(measured.asked.judged)
        report.judge = JudgeReport(max(cfg.budgets), cfg.judge.model, CATEGORIES, judged)
    return report


def _extras_json(
    conversations: Sequence[Conversation], measured: Measured, bm25: Sequence[Scores]
) -> dict[str, Any]:
    asked = measured.asked
    missing = sum(
        resolve_evidence(q, {t.turn_id for t in c.turns})[1]
        for c in conversations
        for q in c.scored_questions()
    )
    scored = sum(len(c.scored_questions()) for c in conversations)
    per_conv = measured.memories
    return {
        "conversations": len(conversations),
        "questions": len(asked.scores),
        "questions_skipped_no_evidence": scored - len(asked.scores),
        "evidence_ids_missing": missing,
        "context_failures": len(asked.failures),
        "context_failure_examples": sorted(set(asked.failures))[:5],
        "memories_per_conversation": mean([float(v) for v in per_conv.values()]),
        "memories_by_conversation": per_conv,
        "near_duplicate_rate": measured.near_dup_rate,
        "semantic_duplicate_rate": measured.semantic_dup_rate,
        "ingest_turns_per_s": measured.ingest["turns_per_s"],
        "ingest": measured.ingest,
        "context_latency_ms": {
            "p50": percentile(asked.latencies_ms, 50),
            "p95": percentile(asked.latencies_ms, 95),
            "calls": len(asked.latencies_ms),
        },
        "context_stage_ms_p50": {k: percentile(v, 50) for k, v in asked.stage_ms.items()},
        "mean_context_tokens": {
            "maas": {k: v["overall"] for k, v in summarize(asked.scores)["context_tokens"].items()},
            "bm25": {k: v["overall"] for k, v in summarize(bm25)["context_tokens"].items()},
        },
    }


# --------------------------------------------------------------------------- output


def to_json(report: LocomoReport) -> dict[str, Any]:
    main, base = report.summary, report.baseline_summary
    three = ("budget_recall", "answer_in_context", "answer_in_context_exact", "recall_at_k")
    per_question = [
        {"question_id": m.question_id, "category": m.category, "maas": _flat(m), "bm25": _flat(b)}
        for m, b in zip(report.maas, _matching(report.bm25, report.maas), strict=True)
    ]
    out = {
        **{k: main[k] for k in three},
        "baseline": {k: base[k] for k in three},
        "config": report.config,
        "extras": {**report.extras, "per_question": per_question},
    }
    if report.judge is not None:
        from bench.locomo_judge import judged_json

        out["judge"] = judged_json(report.judge)
    return out


def _matching(bm25: Sequence[Scores], maas: Sequence[Scores]) -> list[Scores | None]:
    by_id = {s.question_id: s for s in bm25}
    return [by_id.get(m.question_id) for m in maas]


def _flat(s: Scores | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {m: {str(k): v for k, v in getattr(s, m).items()} for m in METRICS}


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


ROWS = (
    ("budget_recall", "budget recall@{}", 3),
    ("answer_in_context", "answer-in-context@{}", 3),
    ("answer_in_context_exact", "  exact (no stemming)@{}", 3),
    ("recall_at_k", "recall@{}", 3),
    ("context_tokens", "context tokens@{}", 0),
)


def render(report: LocomoReport) -> str:
    main, base = report.summary, report.baseline_summary
    header = ["metric", "overall", *(f"cat{c}" for c in CATEGORIES), "BM25", "ratio"]
    counts = [sum(1 for s in report.maas if s.category == c) for c in CATEGORIES]
    table = [
        header,
        ["questions", str(len(report.maas)), *map(str, counts), str(len(report.bm25)), ""],
    ]
    for metric, label, digits in ROWS:
        for key, cells in main[metric].items():
            ours, theirs = cells["overall"], base[metric].get(key, {}).get("overall")
            row = [label.format(key), _cell(ours, digits)]
            row += [_cell(cells[str(c)], digits) for c in CATEGORIES]
            table.append([*row, _cell(theirs, digits), _ratio(ours, theirs)])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in table
    ]
    judged: list[str] = []
    if report.judge is not None:
        from bench.locomo_judge import render as render_judge

        judged = ["", *render_judge(report.judge)]
    title = "LoCoMo retrieval (POST /v1/context) vs BM25 over raw turns"
    return "\n".join([title, *lines, "", *_extras(report), *judged])


def _extras(report: LocomoReport) -> list[str]:
    x, c = report.extras, report.config
    lat, m = x["context_latency_ms"], x["machine"]
    dup = x["near_duplicate_rate"]
    return [
        f"memories/conversation   {_cell(x['memories_per_conversation'], 1)}"
        f"  ({', '.join(f'{k}: {v}' for k, v in x['memories_by_conversation'].items())})",
        f"near-duplicate rate     {_cell(dup, 3)} (trigram similarity >= {NEAR_DUP_SIMILARITY})",
        f"semantic dup rate       {_cell(x.get('semantic_duplicate_rate'), 3)}"
        f" (embedding cosine >= {SEMANTIC_DUP_SIMILARITY})",
        f"ingest                  {x['ingest_turns_per_s']:.1f} turns/s"
        f" ({x['ingest']['turns']} turns, {x['ingest']['threads']} threads,"
        f" {x['ingest']['seconds']:.1f} s to archived)"
        + (" when the snapshot was made (replayed)" if x["ingest"].get("replayed") else ""),
        f"/v1/context latency     p50 {_cell(lat['p50'], 0)} ms, p95 {_cell(lat['p95'], 0)} ms"
        f" ({lat['calls']} calls, {x['context_failures']} failed)",
        "server stages p50       "
        + ", ".join(f"{k} {_cell(v, 0)} ms" for k, v in x["context_stage_ms_p50"].items()),
        f"questions               {x['questions']} scored, {x['questions_skipped_no_evidence']}"
        f" skipped (no evidence turn found), {x['evidence_ids_missing']} evidence ids not found",
        *_per_conversation_lines(x.get("per_conversation")),
        f"config                  mode {c['llm_mode']}, embedder {c['embedder']},"
        f" param version {c['param_version']}"
        + (f" ({json.dumps(c['params'], sort_keys=True)})" if c.get("params") else "")
        + _snapshot_note(c.get("snapshot")),
        f"machine                 {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}",
        f"elapsed                 {x['elapsed_s']:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in x["phases_s"].items())
        + ")",
    ]


def _per_conversation_lines(per: dict[str, Any] | None) -> list[str]:
    """One line per conversation: budget recall, answer-in-context and multi-hop
    answer-in-context at the largest budget."""
    if not per:
        return []
    lines = []
    for n, (conv, f) in enumerate(per["conversations"].items()):
        label = f"per conversation @{per['budget']}" if n == 0 else ""
        lines.append(
            f"{label:<24}{conv}: budget recall {_cell(f['budget_recall'], 3)},"
            f" answer-in-context {_cell(f['answer_in_context'], 3)} ({f['questions']}),"
            f" multi-hop {_cell(f['multi_hop_answer_in_context'], 3)}"
            f" ({f['multi_hop_questions']})"
        )
    return lines


def _snapshot_note(snapshot: dict[str, Any] | None) -> str:
    if snapshot is None:
        return ""
    verb = "replayed from" if snapshot["replayed"] else "snapshot kept in"
    return f", {verb} {snapshot['directory']}"


# --------------------------------------------------------------------------- CLI


def parse_budgets(text: str) -> tuple[int, ...]:
    """ "500,2000" -> (500, 2000); each budget at least 50 tokens (the API's minimum)."""
    try:
        budgets = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        budgets = ()
    if not budgets or any(b < 50 or b > 32_000 for b in budgets):
        raise ValueError(f"--budgets: comma-separated token counts within 50..32000, got {text!r}")
    return budgets


def load_params(path: Path | None) -> dict[str, Any]:
    """`--params FILE`: a JSON object of parameter overrides (the keys of MAAS_PARAMS, IMPACTS.md),
    checked against the guard ranges here so a bad file fails before anything starts."""
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params {path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"--params {path}: a JSON object of parameter overrides is expected")
    try:
        validate(raw)
    except ValueError as exc:
        raise ValueError(f"--params {path}: {exc}") from exc
    return raw


def fingerprint(conversations: Sequence[Conversation]) -> str:
    """What a snapshot ingested: every conversation's turns and questions (ids and texts)."""
    digest = hashlib.sha256()
    for conv in conversations:
        digest.update(conv.conversation_id.encode())
        for turn in conv.turns:
            digest.update(f"\0{turn.turn_id}\0{turn.speaker}\0{turn.text}".encode())
        for q in conv.scored_questions():
            digest.update(f"\0{q.question_id}\0{q.question}".encode())
    return digest.hexdigest()


def _snapshot_args(
    args: argparse.Namespace, conversations: Sequence[Conversation], params: dict[str, Any]
) -> SnapshotArgs | None:
    """--snapshot DIR or --replay DIR (not both); a replay's snapshot checked before it starts."""
    save, replay = getattr(args, "snapshot", None), getattr(args, "replay", None)
    if save is not None and replay is not None:
        raise ValueError("--snapshot and --replay: one or the other (make a snapshot, then replay)")
    if replay is not None:
        snap.check_replay(snap.read_manifest(replay), fingerprint(conversations), params)
        return SnapshotArgs(replay, replay=True)
    return None if save is None else SnapshotArgs(save, replay=False)


def main(args: argparse.Namespace) -> int:
    """`maas bench locomo` (arguments are defined in bench.cli)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        budgets = parse_budgets(str(args.budgets))
        conversations = load_conversations(args.data, args.limit_conversations)
        params = load_params(getattr(args, "params", None))
        snapshot = _snapshot_args(args, conversations, params)
    except (ValueError, OSError) as exc:
        print(f"maas bench locomo: {exc}", file=sys.stderr)
        return 2
    judge = None
    if getattr(args, "judge", False):
        from bench.locomo_judge import NEEDS_LLM, JudgeConfig
        from maas.settings import Settings

        judge = JudgeConfig.from_settings(Settings())
        if judge is None:
            print(NEEDS_LLM, file=sys.stderr)
            return 2
    cfg = LocomoConfig(
        budgets=budgets,
        embedder=args.embedder,
        concurrency=args.concurrency,
        archive_timeout_s=args.archive_timeout,
        params=params,
        judge=judge,
        snapshot=snapshot,
    )
    try:
        report = asyncio.run(run_locomo(conversations, cfg))
    except (RuntimeError, TimeoutError) as exc:  # BenchError, or the service died / never started
        print(f"maas bench locomo: {exc}", file=sys.stderr)
        return 1
    print(render(report), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", flush=True)
    return 0
