"""Pack the best memories under a token budget, counted with tiktoken.

The packed context is a timeline: memories grouped under one date header each, in time order,
numbered with small integers the model can cite. A date is paid for once per day, not once per
memory, so the budget buys more evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from maas.llm.tokens import count_line_tokens, count_tokens
from maas.llm.types import PackedMemory
from maas.llm.when import day
from maas.memory.search import Candidate

_INDEX_PLACEHOLDER = 99  # the real number is known after ordering; two digits cost the same


@dataclass
class Packed:
    memories: list[PackedMemory]  # in score order, for answers that quote the best first
    used_ids: set[int]
    line_tokens: dict[int, int]
    text: str
    tokens: int


@dataclass
class _Chosen:
    cand: Candidate
    memory: PackedMemory
    when: datetime


@dataclass
class _State:
    chosen: list[_Chosen] = field(default_factory=list)
    dates: set[str | None] = field(default_factory=set)
    total: int = 0


def memory_line(index: int, text: str) -> str:
    return f"{index}. {text}"


def date_header(date: str) -> str:
    return f"{date}:"


def pack(
    candidates: list[Candidate], max_tokens: int, include_dates: bool, encoding: str
) -> Packed:
    """Greedy by score: a memory that does not fit is skipped and smaller ones may still fit."""
    state = _State()
    line_tokens: dict[int, int] = {}
    for cand in candidates:
        date = day(cand.when) if include_dates else None
        cost = count_line_tokens(memory_line(_INDEX_PLACEHOLDER, cand.text) + "\n", encoding)
        line_tokens[cand.id] = cost
        if date not in state.dates and date is not None:
            cost += count_line_tokens(date_header(date) + "\n", encoding)
        if state.total + cost <= max_tokens:
            state.chosen.append(_Chosen(cand, PackedMemory(cand.text, date), cand.when))
            state.dates.add(date)
            state.total += cost
    text = render(state.chosen, include_dates)
    tokens = count_tokens(text, encoding)
    while state.chosen and tokens > max_tokens:  # BPE merges across lines
        state.chosen.pop()
        text = render(state.chosen, include_dates)
        tokens = count_tokens(text, encoding)
    return Packed(
        memories=[c.memory for c in state.chosen],
        used_ids={c.cand.id for c in state.chosen},
        line_tokens=line_tokens,
        text=text,
        tokens=tokens,
    )


def render(chosen: list[_Chosen], include_dates: bool) -> str:
    if not include_dates:
        return "\n".join(memory_line(i, c.memory.text) for i, c in enumerate(chosen, start=1))
    lines: list[str] = []
    current: str | None = None
    ordered = sorted(chosen, key=lambda c: (c.when, c.cand.id))
    for i, c in enumerate(ordered, start=1):
        if c.memory.date != current:
            current = c.memory.date
            lines.append(date_header(current or ""))
        lines.append(memory_line(i, c.memory.text))
    return "\n".join(lines)
