"""The emulator world: deterministic, versioned, LoCoMo-shaped, with every question type and
ground truth that holds (evidence ids exist, paraphrases share no content word with what they
ask about, updates come after the value they replace, relative dates resolve to the answer)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.locomo import load_conversations
from selflearn.emulator.seeds import SeedError
from selflearn.emulator.world import GENERATOR, WorldSpec, generate
from selflearn.emulator.world.model import TYPES
from selflearn.emulator.world.vocab import load_vocab
from selflearn.emulator.world.words import content_stems, day, shares_content

SMALL = WorldSpec(seed=7, users=3, sessions=6, turns=60)


@pytest.fixture(scope="module")
def default_world() -> Any:
    return generate(WorldSpec(seed=1))


def _turns(conv: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """turn id -> (turn, its session)."""
    return {t["turn_id"]: (t, s) for s in conv["sessions"] for t in s["turns"]}


def test_same_seed_same_world_other_seed_other_world() -> None:
    a, b = generate(SMALL), generate(SMALL)
    assert a.hash == b.hash and a.conversations == b.conversations
    other = generate(WorldSpec(seed=8, users=3, sessions=6, turns=60))
    assert other.hash != a.hash
    assert other.conversations[0]["sessions"] != a.conversations[0]["sessions"]
    bigger = generate(WorldSpec(seed=7, users=4, sessions=6, turns=60))
    assert bigger.conversations[:3] == a.conversations  # a user's stream is its own
    assert bigger.hash != a.hash
    assert a.describe() == {
        "hash": a.hash,
        "generator": GENERATOR,
        "vocabulary": "world-seed-1",
        "seed": 7,
        "users": 3,
        "sessions": 6,
        "turns": 60,
    }


def test_default_size_is_real_sized_and_asks_every_type(default_world: Any) -> None:
    assert len(default_world.conversations) == 8
    for conv in default_world.conversations:
        turns = [t for s in conv["sessions"] for t in s["turns"]]
        assert len(turns) >= 300, conv["conversation_id"]
        assert len(conv["sessions"]) == 20
        dates = [datetime.fromisoformat(s["date_time_iso"]) for s in conv["sessions"]]
        assert dates == sorted(dates) and (dates[-1] - dates[0]).days >= 60  # months of history
        for s in conv["sessions"]:  # the two speakers take turns
            said = [t["speaker"] for t in s["turns"]]
            assert all(a != b for a, b in zip(said, said[1:], strict=False)), s["session_id"]
    asked = Counter(q["type"] for c in default_world.conversations for q in c["questions"])
    assert set(asked) == set(TYPES)
    assert all(n >= 8 for n in asked.values()), asked


def test_evidence_ids_exist_and_answers_match_the_type(default_world: Any) -> None:
    for conv in default_world.conversations:
        turns = _turns(conv)
        for q in conv["questions"]:
            assert q["category"] == TYPES[q["type"]]
            if q["type"] == "unanswerable":
                assert q["evidence"] == [] and q["answer"] is None
                continue
            assert q["evidence"] and all(e in turns for e in q["evidence"]), q
            assert q["answer"]
            if q["type"] in ("multi_hop",) or "first for" in q["question"]:
                sessions = {turns[e][1]["session_id"] for e in q["evidence"]}
                assert len(q["evidence"]) == 2 and len(sessions) == 2, q  # two sessions apart


def test_paraphrased_questions_share_no_content_word_with_their_evidence(
    default_world: Any,
) -> None:
    checked = 0
    for conv in default_world.conversations:
        turns, names = _turns(conv), frozenset(n.lower() for n in conv["speakers"])
        for q in conv["questions"]:
            if q["type"] == "paraphrased":
                said = [turns[e][0]["text"] for e in q["evidence"]]
                assert not shares_content(q["question"], said, names), (q, said)
                checked += 1
    assert checked >= 20
    # the check itself: stems and stopwords, names aside
    assert shares_content("Who employs Ana?", ["Ana: I am employed at X."], frozenset({"ana"}))
    assert not shares_content("Where is Ana based?", ["I live in Porto."], frozenset({"ana"}))
    assert content_stems("The Dogs are running", frozenset()) == {"dog", "run"}


def test_knowledge_updates_come_after_the_value_they_replace(default_world: Any) -> None:
    seen = 0
    for conv in default_world.conversations:
        turns = _turns(conv)
        order = {tid: i for i, tid in enumerate(turns)}
        for q in conv["questions"]:
            if q["type"] != "knowledge_update":
                continue
            (new,) = q["evidence"]
            assert q["answer"] in turns[new][0]["text"]
            earlier = [
                m for m in conv["questions"] if m["type"] == "multi_hop" and new in m["evidence"]
            ]
            for m in earlier:  # "where did X live / work before …": the old value, said earlier
                old = next(e for e in m["evidence"] if e != new)
                assert order[old] < order[new] and m["answer"] in turns[old][0]["text"]
                seen += 1
    assert seen >= 8


def test_relative_dates_resolve_to_the_expected_answer(default_world: Any) -> None:
    offsets = {
        "yesterday": 1,
        "two days ago": 2,
        "three days ago": 3,
        "four days ago": 4,
        "a week ago": 7,
    }
    checked = 0
    for conv in default_world.conversations:
        turns = _turns(conv)
        for q in conv["questions"]:
            if q["type"] != "temporal" or not q["question"].startswith("When did"):
                continue
            turn, session = turns[q["evidence"][0]]
            at = datetime.fromisoformat(session["date_time_iso"])
            text = turn["text"].lower()
            phrase = next((p for p in offsets if p in text), None)
            if phrase:
                expected = at - timedelta(days=offsets[phrase])
            else:
                weekday = text.split("last ", 1)[1].split()[0].strip("!.,").capitalize()
                names = [
                    "Monday",
                    "Tuesday",
                    "Wednesday",
                    "Thursday",
                    "Friday",
                    "Saturday",
                    "Sunday",
                ]
                expected = at - timedelta(days=(at.weekday() - names.index(weekday)) % 7 or 7)
            assert q["answer"] == day(expected), (q, turn, session["date_time_iso"])
            checked += 1
    assert checked >= 16


def test_a_written_world_is_a_corpus_the_locomo_reader_loads(tmp_path: Path) -> None:
    world = generate(SMALL)
    paths = world.write(tmp_path)
    assert [p.name for p in paths] == [f"world7-u00{i}.json" for i in range(3)]
    loaded = load_conversations(tmp_path)
    assert [c.conversation_id for c in loaded] == [p.stem for p in paths]
    first = loaded[0]
    raw = json.loads(paths[0].read_text())
    assert len(first.turns) == sum(len(s["turns"]) for s in raw["sessions"])
    assert len(first.scored_questions()) == sum(1 for q in raw["questions"] if q["category"] <= 4)
    assert {t.speaker for t in first.turns} == set(raw["speakers"])


def test_a_broken_vocabulary_names_the_field(tmp_path: Path) -> None:
    raw = json.loads((Path(__file__).resolve().parents[2] / "seeds" / "world.json").read_text())
    raw["cities"] = "Porto"
    broken = tmp_path / "world.json"
    broken.write_text(json.dumps(raw))
    with pytest.raises(SeedError, match=r"world.json: cities: 'Porto' is not of type 'array'"):
        load_vocab(broken)
    raw["cities"] = ["Porto"] * 12
    broken.write_text(json.dumps(raw))
    with pytest.raises(SeedError, match="cities"):
        load_vocab(broken)


def test_the_vocabulary_is_part_of_the_world_hash(tmp_path: Path) -> None:
    raw = json.loads((Path(__file__).resolve().parents[2] / "seeds" / "world.json").read_text())
    raw["closers"] = [*raw["closers"], "Bye for now!"]
    changed = tmp_path / "world.json"
    changed.write_text(json.dumps(raw))
    assert generate(SMALL, load_vocab(changed)).hash != generate(SMALL).hash


def test_size_is_checked() -> None:
    with pytest.raises(ValueError, match="world size"):
        WorldSpec(users=0)


def test_the_teachers_answer_normalisation_is_the_benchmarks() -> None:
    """The benchmark scores with the teacher's normalisation (selflearn may not import the
    benchmark); its answer-in-context, which also takes the exact (SQuAD) normalisation, agrees."""
    from bench import locomo
    from selflearn.teacher import metrics

    assert locomo.normalize_locomo is metrics.normalize_locomo
    for answer, context in [("7 May 2023", "on 7 May 2023"), ("May", "maybe later"),
                            ("sweatshirts", "a hoodie"), ("hoodies", "my hoodie")]:  # fmt: skip
        assert metrics.answer_in_context(answer, context) == bool(
            locomo.answer_in_context(answer, context)), (answer, context)  # fmt: skip
    assert not metrics.answer_in_context("May", "maybe later")  # tokens, not substrings
