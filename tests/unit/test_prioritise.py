"""Packing order after the search (issue 22): repeats give way to memories that add something,
and each person a question names gets a share of the budget."""

from __future__ import annotations

from datetime import UTC, datetime

from maas.memory.diversity import MAX_PICKS, Overlaps, diversify
from maas.memory.parts import lead_with, people_parts
from maas.memory.search import Candidate

T0 = datetime(2023, 5, 8, tzinfo=UTC)


def cand(i: int, text: str, score: float, speaker: str | None = None) -> Candidate:
    return Candidate(i, text, 0.5, None, T0, [i], score=score, speaker=speaker)


def ids(cands: list[Candidate]) -> list[int]:
    return [c.id for c in cands]


def test_a_rewording_of_a_picked_memory_gives_way_to_a_new_event() -> None:
    ranked = [
        cand(1, "Melanie: we went camping in the mountains with the kids", 1.0),
        cand(2, "Melanie: camping in the mountains with the kids was great", 0.95),
        cand(3, "Melanie: I signed up for a pottery class yesterday", 0.9),
    ]
    assert ids(diversify(ranked, 0.5, 1000)) == [1, 3, 2]
    assert ids(diversify(ranked, 0.0, 1000)) == [1, 2, 3]  # off: the search's order


def test_overlap_is_over_content_words_only() -> None:
    similar = Overlaps(["I love the beach", "the beach I love", "and I a the", "beach party"])
    assert similar.row(0)[1] == 1.0 and similar.row(0)[0] == 1.0
    assert similar.row(0)[2] == 0.0 and similar.row(2)[2] == 0.0  # stopwords only: nothing shared
    assert abs(similar.row(3)[0] - 1 / 3) < 1e-9  # {love, beach} vs {beach, party}


def test_each_named_person_gets_their_best_memories_first() -> None:
    ranked = [
        cand(1, "Nate: I love turtles", 1.0, "Nate"),
        cand(2, "Nate: turtles are calming", 0.9, "Nate"),
        cand(3, "Nate: my turtles eat fruit", 0.8, "Nate"),
        cand(4, "Joanna: turtles remind me of strength", 0.5, "Joanna"),
        cand(5, "Joanna: I hike on weekends", 0.4, "Joanna"),
    ]
    assert ids(by_parts(ranked, ["Nate", "Joanna's"], 1)) == [1, 4, 2, 3, 5]
    assert ids(by_parts(ranked, ["Nate", "Joanna"], 2)) == [1, 4, 2, 5, 3]


def by_parts(ranked: list[Candidate], names: list[str], lead: int) -> list[Candidate]:
    return lead_with(people_parts(ranked, names), ranked, lead)


def test_sub_questions_found_apart_lead_and_their_own_finds_follow() -> None:
    main = [cand(1, "a", 1.0), cand(2, "b", 0.9), cand(3, "c", 0.8)]
    first, second = [cand(3, "c", 2.0), cand(1, "a", 1.0)], [cand(7, "g", 1.5), cand(8, "h", 1)]
    assert ids(lead_with([first, second], main, 1)) == [3, 7, 1, 2, 8]


def test_one_person_or_none_leaves_the_order_alone() -> None:
    ranked = [cand(1, "Nate: a", 1.0, "Nate"), cand(2, "Joanna: b", 0.5, "Joanna")]
    assert ids(by_parts(ranked, ["Nate"], 3)) == [1, 2]
    assert ids(by_parts(ranked, ["Nate", "Paris"], 3)) == [1, 2]  # Paris said nothing
    assert ids(by_parts(ranked, ["Nate", "Joanna"], 0)) == [1, 2]  # off


def test_only_the_head_that_could_be_packed_is_reordered() -> None:
    """Only the budget's worth is picked, from twice the budget in line tokens; beyond, the
    order stays the search's (~600 candidates reach the assembler)."""
    texts = ["camping trip mountains", "camping trip mountains kids", "pottery class", "painting"]
    texts += ["camping trip mountains"] * 6
    ranked = [cand(i, text, 1.0 - i / 100) for i, text in enumerate(texts)]
    for c in ranked:
        c.line_tokens = 10
    out = ids(diversify(ranked, 1.0, 20))  # the head: 4 lines of 10 tokens
    assert out[:4] == [0, 2, 1, 3]  # two picks fill the budget; the rewording gave way
    assert out[4:] == [4, 5, 6, 7, 8, 9]


def test_at_most_max_picks_are_picked_then_the_search_order_follows() -> None:
    """The cap that keeps the picking off the event loop's back: rewordings past MAX_PICKS are
    not pushed down any more."""
    texts = [f"Nate: turtles calm me {i}" if i % 2 else f"Nate: saw city{i}x" for i in range(60)]
    ranked = [cand(i, text, 1.0 - i / 1000) for i, text in enumerate(texts)]
    for c in ranked:
        c.line_tokens = 1
    out = ids(diversify(ranked, 1.0, 1000))
    picked = out[:MAX_PICKS]
    assert sum(i % 2 == 0 for i in picked) > MAX_PICKS // 2 + 2  # the distinct events come first
    rest = out[MAX_PICKS:]
    assert rest == sorted(rest)  # then the search's order


def test_a_weak_hit_of_a_strong_hits_turn_ranks_as_its_linked_chunk_at_least() -> None:
    """A chunk that matched the query weakly shares turn 1 with the best hit: it scores at least
    what its turn's unmatched chunk scores (the hit's score times the decay), so it no longer
    falls below an unrelated weaker hit; a hit of its own turn, or one already higher, keeps its
    score. (Before, 5 ranked above 3: 0.5 against 0.3.)"""
    from maas.memory.search import linked_siblings

    def at(i: int, message: int, score: float) -> Candidate:
        return Candidate(i, f"memory {i}", 0.5, None, T0, [message], score=score)

    strong, own, weak, high, other = (
        at(1, 1, 2.0),
        at(2, 2, 0.9),
        at(3, 1, 0.3),
        at(4, 1, 0.8),
        at(5, 3, 0.5),
    )
    unmatched = at(6, 1, 0.0)
    ranked = linked_siblings([strong, own, high, other, weak], [unmatched], 0.3)
    assert ids(ranked) == [1, 2, 4, 6, 3, 5]
    assert weak.score == unmatched.score == 2.0 * 0.3
    assert (strong.score, own.score, high.score, other.score) == (2.0, 0.9, 0.8, 0.5)
