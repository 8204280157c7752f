"""Budget shares for the parts of a question: "what do Nate and Joanna both like?" needs evidence
of each, and one ranked list can give the whole budget to whoever its best hits are about. The
first `lead` memories of every part, taken in turns, head the packing order, so each part's best
evidence is packed before the rest of the list.

The parts: with an LLM, the analyzer's sub-questions, each searched on its own; offline, the
people the question names, each one's memories among the candidates. The person index is the
speaker kept with each memory (memories.speaker, migration 0028): in a conversation the people
asked about are, nearly always, its speakers.
"""

from __future__ import annotations

from maas.memory.search import Candidate, person

MAX_PARTS = 4  # sub-questions searched: each is one more search statement


def people_parts(ranked: list[Candidate], names: list[str]) -> list[list[Candidate]]:
    """Each named person's memories among `ranked`, best first (a person with none: no part)."""
    wanted = list(dict.fromkeys(person(n) for n in names if n.strip()))
    if len(wanted) < 2:  # one part is the ranking itself (most questions name one person)
        return []
    parts: dict[str, list[Candidate]] = {w: [] for w in wanted}
    for c in ranked:
        if c.speaker and (who := person(c.speaker)) in parts:
            parts[who].append(c)
    return [p for p in parts.values() if p]


def lead_with(parts: list[list[Candidate]], ranked: list[Candidate], lead: int) -> list[Candidate]:
    """`ranked` headed by each part's best `lead` memories in turns, then what the parts found
    that `ranked` lacks; unchanged with fewer than two parts."""
    if lead <= 0 or len(parts) < 2:
        return ranked
    head: dict[int, Candidate] = {}
    for i in range(lead):
        for part in parts:
            if i < len(part):
                head.setdefault(part[i].id, part[i])
    rest = [c for c in ranked if c.id not in head]
    known = head.keys() | {c.id for c in ranked}
    extra = {c.id: c for part in parts for c in part if c.id not in known}
    return [*head.values(), *rest, *extra.values()]
