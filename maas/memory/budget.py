"""Pack the best memories under a token budget, counted with tiktoken."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from maas.llm.tokens import count_tokens
from maas.llm.types import PackedMemory
from maas.llm.when import day
from maas.memory.search import Candidate


@dataclass
class Packed:
    memories: list[PackedMemory]
    used_ids: set[int]
    line_tokens: dict[int, int]
    text: str
    tokens: int


def memory_line(index: int, memory: PackedMemory) -> str:
    date = f"({memory.date}) " if memory.date else ""
    return f"[M{index}] {date}{memory.text}"


def pack(
    candidates: list[Candidate], max_tokens: int, include_dates: bool, encoding: str
) -> Packed:
    """Greedy by score: a memory that does not fit is skipped and smaller ones may still fit."""
    chosen: list[tuple[Candidate, PackedMemory]] = []
    line_tokens: dict[int, int] = {}
    total = 0
    for cand in candidates:
        mem = PackedMemory(cand.text, day(cand.when) if include_dates else None)
        cost = count_tokens(memory_line(len(chosen) + 1, mem) + "\n", encoding)
        line_tokens[cand.id] = cost
        if total + cost <= max_tokens:
            chosen.append((cand, mem))
            total += cost
    text = render(m for _, m in chosen)
    while chosen and count_tokens(text, encoding) > max_tokens:  # BPE merges across lines
        chosen.pop()
        text = render(m for _, m in chosen)
    return Packed(
        memories=[m for _, m in chosen],
        used_ids={c.id for c, _ in chosen},
        line_tokens=line_tokens,
        text=text,
        tokens=count_tokens(text, encoding) if text else 0,
    )


def render(memories: Iterable[PackedMemory]) -> str:
    return "\n".join(memory_line(i, m) for i, m in enumerate(memories, start=1))
