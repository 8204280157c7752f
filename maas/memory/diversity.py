"""Diversity: a memory that repeats what ranks above it is worth less than one that adds.

Maximal marginal relevance over the ranked candidates: each next pick maximises
score - weight * (its greatest word overlap with a memory already picked), so an aggregation
question ("what activities does Melanie do?") packs one memory per event instead of five
rewordings of the best one. Overlap is the Jaccard index of content-word sets (numpy, one row per
pick). Cheap enough for every chat and /v1/context (the assembler runs on the event loop): it runs
over the head of the list that could be packed (twice the budget in line tokens, at most MAX_HEAD
memories, not the ~600 candidates of three arms and their siblings) and picks at most MAX_PICKS
(or until the picks fill the budget); the rest keeps the search's order behind. On LoCoMo dev the
cap keeps the gain at 500 tokens (budget recall +0.008, answer-in-context +0.013 over no
diversity) and gives up the +0.010 answer-in-context at 2,000 that picking through the whole head
bought, at ~2 ms a call. (The chat throughput drop seen in `maas bench pipeline` with float
overlap rows, which woke OpenBLAS's threads, is gone with integer rows: docs/performance.md,
Sessions 8 and 9.)
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import numpy as np

from maas.llm.offline import STOPWORDS
from maas.memory.search import Candidate

_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
REACH = 2  # the head diversified: this many budgets of line tokens,
MAX_HEAD = 72  # and at most this many memories,
MAX_PICKS = 24  # of which this many are picked by MMR (the rest follow in the search's order)
TOKENS_PER_CHAR = 0.25  # a line's tokens when the memory has none stored (English text)


@lru_cache(maxsize=4_096)  # a user's memories come back query after query (~1 KB each)
def content_words(text: str) -> frozenset[str]:
    """Lowercase words of 3+ characters that are not stopwords."""
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOPWORDS)


class Overlaps:
    """The Jaccard index of texts' content words, a row at a time: one row per pick is all the
    picking needs, over the words two texts share. Integer arithmetic, so numpy runs it in its own
    loop and never wakes OpenBLAS's thread pool in the service process (a float product of the
    whole matrix ran on two spinning OpenBLAS threads: 4 ms of CPU a call beside the database)."""

    def __init__(self, texts: list[str]) -> None:
        sets = [content_words(t) for t in texts]
        seen = Counter(w for words in sets for w in words)
        shared = {w: i for i, w in enumerate(w for w, n in seen.items() if n > 1)}
        cells = [(r, shared[w]) for r, words in enumerate(sets) for w in words if w in shared]
        self.words = np.zeros((len(texts), max(len(shared), 1)), dtype=np.int32)
        if cells:
            rows, cols = zip(*cells, strict=True)
            self.words[list(rows), list(cols)] = 1
        self.sizes = np.array([len(words) for words in sets], dtype=np.int32)

    def row(self, i: int) -> np.ndarray:
        """Text i's overlap with every text (0 where both have no content word)."""
        inter = self.words @ self.words[i]
        inter[i] = self.sizes[i]
        union = self.sizes + self.sizes[i] - inter
        out = np.zeros(len(self.sizes))
        jaccard: np.ndarray = np.divide(inter, union, out=out, where=union > 0)
        return jaccard


def line_cost(c: Candidate) -> float:
    """A memory's packed line in tokens, as stored, else estimated (no date headers: a bound)."""
    return c.line_tokens if c.line_tokens is not None else len(c.text) * TOKENS_PER_CHAR


def head_size(ranked: list[Candidate], budget: int) -> int:
    """How many leading candidates fill REACH budgets of line tokens."""
    total, reach = 0.0, REACH * budget
    for n, c in enumerate(ranked[:MAX_HEAD], start=1):
        total += line_cost(c)
        if total >= reach:
            return n
    return min(len(ranked), MAX_HEAD)


def diversify(ranked: list[Candidate], weight: float, budget: int) -> list[Candidate]:
    """The candidates in MMR order (weight 0: unchanged). Scores are left as they are. Picking
    stops once the picks fill the budget: what follows is packed only into gaps, so it keeps the
    search's order."""
    head = ranked[: head_size(ranked, budget)]
    if weight <= 0 or len(head) < 3:
        return ranked
    similar = Overlaps([c.text for c in head])
    score = np.array([c.score for c in head])
    gain = score.copy()  # score - weight * greatest overlap with a pick so far; -inf: picked
    order: list[int] = []
    filled = 0.0
    while filled < budget and len(order) < min(len(head), MAX_PICKS):
        best = int(np.argmax(gain))
        order.append(best)
        filled += line_cost(head[best])
        np.minimum(gain, score - weight * similar.row(best), out=gain)
        gain[best] = -np.inf
    picked = set(order)
    order += [i for i in range(len(head)) if i not in picked]
    return [head[i] for i in order] + ranked[len(head) :]
