"""Diversity: a memory that repeats what ranks above it is worth less than one that adds.

Maximal marginal relevance over the ranked candidates: each next pick maximises
score - weight * (its greatest word overlap with a memory already picked), so an aggregation
question ("what activities does Melanie do?") packs one memory per event instead of five
rewordings of the best one. Overlap is the Jaccard index of content-word sets, all pairs at once
with numpy. It runs over the head of the list that could be packed at all (twice the budget in
line tokens: ~130 memories at 2,000 tokens, not the ~600 candidates of three arms and their
siblings), and picks until the picks fill the budget; the rest keeps the search's order behind.
"""

from __future__ import annotations

import re

import numpy as np

from maas.llm.offline import STOPWORDS
from maas.memory.search import Candidate

_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
REACH = 2  # the head diversified: this many budgets of line tokens
TOKENS_PER_CHAR = 0.25  # a line's tokens when the memory has none stored (English text)


def content_words(text: str) -> set[str]:
    """Lowercase words of 3+ characters that are not stopwords."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOPWORDS}


def overlaps(texts: list[str]) -> np.ndarray:
    """The Jaccard index of every pair of texts' content words (0 where both have none)."""
    vocab: dict[str, int] = {}
    rows = [[vocab.setdefault(w, len(vocab)) for w in content_words(t)] for t in texts]
    x = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float32)
    for r, cols in enumerate(rows):
        x[r, cols] = 1.0
    inter = x @ x.T
    sizes = x.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    jaccard: np.ndarray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return jaccard


def line_cost(c: Candidate) -> float:
    """A memory's packed line in tokens, as stored, else estimated (no date headers: a bound)."""
    return c.line_tokens if c.line_tokens is not None else len(c.text) * TOKENS_PER_CHAR


def head_size(ranked: list[Candidate], budget: int) -> int:
    """How many leading candidates fill REACH budgets of line tokens."""
    total, reach = 0.0, REACH * budget
    for n, c in enumerate(ranked, start=1):
        total += line_cost(c)
        if total >= reach:
            return n
    return len(ranked)


def diversify(ranked: list[Candidate], weight: float, budget: int) -> list[Candidate]:
    """The candidates in MMR order (weight 0: unchanged). Scores are left as they are. Picking
    stops once the picks fill the budget: what follows is packed only into gaps, so it keeps the
    search's order."""
    head = ranked[: head_size(ranked, budget)]
    if weight <= 0 or len(head) < 3:
        return ranked
    similar = overlaps([c.text for c in head])
    score = np.array([c.score for c in head])
    gain = score.copy()  # score - weight * greatest overlap with a pick so far
    picked = np.zeros(len(head), dtype=bool)
    order: list[int] = []
    filled = 0.0
    while filled < budget and len(order) < len(head):
        best = int(np.argmax(np.where(picked, -np.inf, gain)))
        picked[best] = True
        order.append(best)
        filled += line_cost(head[best])
        gain = np.minimum(gain, score - weight * similar[best])
    order += [i for i in range(len(head)) if not picked[i]]
    return [head[i] for i in order] + ranked[len(head) :]
