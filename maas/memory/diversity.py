"""Diversity: a memory that repeats what ranks above it is worth less than one that adds.

Maximal marginal relevance over the ranked candidates: each next pick maximises
score - weight * (its greatest word overlap with a memory already picked), so an aggregation
question ("what activities does Melanie do?") packs one memory per event instead of five
rewordings of the best one. Overlap is the Jaccard index of content-word sets, kept as int
bitsets so the O(n²) comparisons of ~200 candidates cost a few milliseconds.
"""

from __future__ import annotations

import re

from maas.llm.offline import STOPWORDS
from maas.memory.search import Candidate

_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")


def content_bits(texts: list[str]) -> list[int]:
    """Each text's content words (lowercase, no stopwords, 3+ characters) as a bitset."""
    index: dict[str, int] = {}
    bits = []
    for text in texts:
        b = 0
        for word in _WORD.findall(text.lower()):
            if len(word) >= 3 and word not in STOPWORDS:
                b |= 1 << index.setdefault(word, len(index))
        bits.append(b)
    return bits


def jaccard(a: int, b: int) -> float:
    union = (a | b).bit_count()
    return (a & b).bit_count() / union if union else 0.0


def diversify(ranked: list[Candidate], weight: float) -> list[Candidate]:
    """The candidates in MMR order (weight 0: unchanged). Scores are left as they are."""
    if weight <= 0 or len(ranked) < 3:
        return ranked
    bits = content_bits([c.text for c in ranked])
    left = list(range(len(ranked)))
    overlap = [0.0] * len(ranked)
    order: list[int] = []
    while left:
        best = max(left, key=lambda i: ranked[i].score - weight * overlap[i])
        left.remove(best)
        order.append(best)
        chosen = bits[best]
        for i in left:
            sim = jaccard(bits[i], chosen)
            if sim > overlap[i]:
                overlap[i] = sim
    return [ranked[i] for i in order]
