"""Diversity: a memory that repeats what ranks above it is worth less than one that adds.

Maximal marginal relevance over the ranked candidates: each next pick maximises
score - weight * (its greatest word overlap with a memory already picked), so an aggregation
question ("what activities does Melanie do?") packs one memory per event instead of five
rewordings of the best one. Overlap is the Jaccard index of content-word sets, kept as int
bitsets. The picking is O(n²), so it runs over the head of the list that could be packed at
all (twice the budget in line tokens: ~100 memories at 2,000 tokens, not the ~600 candidates of
three arms and their siblings); the rest keeps its order behind.
"""

from __future__ import annotations

import re

from maas.llm.offline import STOPWORDS
from maas.memory.search import Candidate

_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
REACH = 2  # the head diversified: this many budgets of line tokens
TOKENS_PER_CHAR = 0.25  # a line's tokens when the memory has none stored (English text)


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


def head_size(ranked: list[Candidate], budget: int) -> int:
    """How many leading candidates fill REACH budgets of line tokens."""
    total, reach = 0.0, REACH * budget
    for n, c in enumerate(ranked, start=1):
        total += c.line_tokens if c.line_tokens is not None else len(c.text) * TOKENS_PER_CHAR
        if total >= reach:
            return n
    return len(ranked)


def diversify(ranked: list[Candidate], weight: float, budget: int) -> list[Candidate]:
    """The candidates in MMR order (weight 0: unchanged). Scores are left as they are."""
    head = ranked[: head_size(ranked, budget)]
    if weight <= 0 or len(head) < 3:
        return ranked
    bits = content_bits([c.text for c in head])
    left = list(range(len(head)))
    gain = [c.score for c in head]  # score - weight * greatest overlap so far
    order: list[int] = []
    while left:
        best = left[0]
        for i in left:
            if gain[i] > gain[best]:
                best = i
        left.remove(best)
        order.append(best)
        chosen = bits[best]
        for i in left:
            penalised = head[i].score - weight * jaccard(bits[i], chosen)
            if penalised < gain[i]:
                gain[i] = penalised
    return [head[i] for i in order] + ranked[len(head) :]
