"""Pack the best memories under a token budget, counted with tiktoken.

The packed context is a timeline: memories grouped under one date header each, in time order, one
memory a line. A date is paid for once per day, not once per memory, so the budget buys more
evidence. A line has no number (two tokens a line that nothing cited: LoCoMo dev, 2,000 tokens,
98 -> 110 memories). A speaker is paid for once a day too (`context.group_speakers`): within a
day, the memories that begin with their speaker's name ("Melanie: We went camping") follow one
"Melanie:" header without it (on LoCoMo dev 92 -> 98 lines in 2,000 tokens), a chat user's
("User: I moved to Lyon") one "User:" header; the others (a reply quoting what it answers, a fact
in another form) come first, whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from maas.llm.offline import UNNAMED
from maas.llm.tokens import count_line_tokens, count_tokens
from maas.llm.types import PackedMemory
from maas.llm.when import day
from maas.memory.search import Candidate

# The encoding memories.line_tokens is counted in (migrations 0026, 0041); with another one the
# packer counts each line itself.
STORED_ENCODING = "cl100k_base"


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
    speaker: str | None  # its group's header (None: a whole line before the groups)
    shown: str  # its line (memory_line of its text, without its speaker's name in a group)


@dataclass
class _State:
    chosen: list[_Chosen] = field(default_factory=list)
    dates: set[str | None] = field(default_factory=set)
    groups: set[tuple[str | None, str]] = field(default_factory=set)
    total: int = 0


# A speaker header starts with a letter and holds no newline or colon, so that (as a date or a
# number does) it starts its own pre-token after the newline before it: the line counts still add
# up to the text's (_total). Other speakers' memories stay whole lines.
_HEADER = re.compile(r"[^\W\d_][^\r\n:]{0,59}")


def memory_line(text: str) -> str:
    """A memory's line: its words on one line (its own line breaks and runs of spaces are one
    space), so a line never starts with a space or a newline that BPE could join to the line
    before (_total). Empty for a memory of no words: such a memory is not packed."""
    return " ".join(text.split())


def date_header(date: str) -> str:
    return f"{date}:"


def speaker_header(speaker: str) -> str:
    return f"{speaker}:"


def grouped(cand: Candidate) -> tuple[str | None, str]:
    """(its speaker, its text without "Speaker: ") when its text begins with its speaker's name
    and the name can head a group; else (None, its whole text)."""
    return split_speaker(cand.text, cand.speaker)


def split_speaker(text: str, speaker: str | None) -> tuple[str | None, str]:
    """grouped() of a memory's text and speaker. A memory of a message with no speaker (a chat
    user's) is the archivist's UNNAMED ("User: I moved to Lyon"). Erasing a memory scrubs the
    shown text too (repo.erase_memory)."""
    who = speaker or UNNAMED
    if text.startswith(f"{who}: ") and _HEADER.fullmatch(who) and who == who.strip():
        return who, text[len(who) + 2 :]
    return None, text


def stored_line_tokens(text: str) -> int:
    """What a memory's writer stores with it (memories.line_tokens): the tokens of its packed
    line, newline included, in STORED_ENCODING."""
    return count_tokens(memory_line(text) + "\n", STORED_ENCODING)


def line_cost(cand: Candidate, encoding: str) -> int:
    """The tokens of a candidate's packed line with its newline: as stored with the memory when
    it was counted in this encoding, else counted (once per process)."""
    if cand.line_tokens is not None and encoding == STORED_ENCODING:
        return cand.line_tokens
    return count_line_tokens(memory_line(cand.text) + "\n", encoding)


def pack(
    candidates: list[Candidate],
    max_tokens: int,
    include_dates: bool,
    encoding: str,
    group_speakers: bool = False,
) -> Packed:
    """Greedy by score: a memory that does not fit is skipped and smaller ones may still fit.
    `group_speakers` (with dates only: the groups are a day's): speakers' headers, see above."""
    state = _State()
    line_tokens: dict[int, int] = {}
    for cand in candidates:
        date = day(cand.when) if include_dates else None
        who, shown = grouped(cand) if group_speakers and date is not None else (None, cand.text)
        shown = memory_line(shown)
        if not shown:
            continue
        cost = line_tokens[cand.id] = (
            line_cost(cand, encoding) if who is None else count_line_tokens(shown + "\n", encoding)
        )
        if date not in state.dates and date is not None:
            cost += count_line_tokens(date_header(date) + "\n", encoding)
        if who is not None and date is not None and (date, who) not in state.groups:
            cost += count_line_tokens(speaker_header(who) + "\n", encoding)
        if state.total + cost <= max_tokens:
            memory = PackedMemory(cand.text, date)
            state.chosen.append(_Chosen(cand, memory, cand.when, who, shown))
            state.dates.add(date)
            if who is not None and date is not None:
                state.groups.add((date, who))
            state.total += cost
    text = render(state.chosen, include_dates)
    tokens = _total(state, include_dates, encoding, line_tokens)
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


def _total(state: _State, include_dates: bool, encoding: str, line_tokens: dict[int, int]) -> int:
    """The packed text's token count from the lines' counts (`line_tokens`: each memory's line
    with its newline), without encoding the text again (that was 5 % of the service's CPU).
    Exact: no line is empty or starts with white space (memory_line; a header starts with a
    date or a letter), and the pre-tokenizers of these encodings split before such a line's
    first character after a newline, so BPE never merges across lines; a line's count with its
    newline is its share of the whole, and the last line has no newline. One exception: after
    punctuation o200k's joins a newline and a "/" that follows it, so a text with a line that
    starts with "/" is counted the slow way. tests/unit/test_budget.py checks it against
    tiktoken on awkward texts."""
    if any(c.shown.startswith("/") for c in state.chosen):
        return count_tokens(render(state.chosen, include_dates), encoding)
    items = _layout(state.chosen, include_dates)
    if not items:
        return 0
    head = sum(
        count_line_tokens(item + "\n", encoding)
        if isinstance(item, str)
        else line_tokens[item.cand.id]
        for item in items[:-1]
    )
    last = items[-1]
    return head + count_line_tokens(last if isinstance(last, str) else last.shown, encoding)


def _layout(chosen: list[_Chosen], include_dates: bool) -> list[str | _Chosen]:
    """The lines of the packed text in order: a header (a date's or a speaker's, as shown) or a
    memory. Within a day: the whole lines in time order, then each speaker's group (in the order
    of its first memory) under its header."""
    if not include_dates:
        return list(chosen)
    days: dict[str | None, dict[str | None, list[_Chosen]]] = {}
    for c in sorted(chosen, key=lambda c: (c.when, c.cand.id)):
        days.setdefault(c.memory.date, {None: []}).setdefault(c.speaker, []).append(c)
    items: list[str | _Chosen] = []
    for date, groups in days.items():
        items.append(date_header(date or ""))
        for who, members in groups.items():
            if who is not None:
                items.append(speaker_header(who))
            items += members
    return items


def render(chosen: list[_Chosen], include_dates: bool) -> str:
    return "\n".join(
        item if isinstance(item, str) else item.shown for item in _layout(chosen, include_dates)
    )
