"""Seed files validate against their schemas; a malformed one names the file and the field;
the plan is deterministic for a seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selflearn.emulator.engine import answered, retrieved_facts
from selflearn.emulator.plan import THREADS_PER_EPISODE, plan
from selflearn.emulator.seeds import (
    PERSONAS,
    SCENARIOS,
    SeedError,
    load_personas,
    load_scenarios,
    seeds_dir,
)

ABILITIES = {"single_fact", "multi_hop", "temporal", "knowledge_update", "abstention"}


def shipped(name: str) -> Any:
    return json.loads((seeds_dir() / name).read_text())


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_shipped_seeds_validate_and_cover_every_ability() -> None:
    scenarios, personas = load_scenarios(), load_personas()
    assert len(scenarios) >= 20 and len(personas) >= 10
    assert {q.ability for s in scenarios for q in s.questions} == ABILITIES
    assert sum(bool(s.updates) for s in scenarios) >= 5  # facts that change later
    assert all(s.distractors for s in scenarios)
    assert {p.register for p in personas} == {"casual", "neutral", "formal"}
    assert len({p.patience for p in personas}) > 1 and len({p.verbosity for p in personas}) > 1


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["scenarios"][3]["facts"][0].pop("answer"),
         r"sim_scenarios.json: scenarios\[3\].facts\[0\]: 'answer' is a required property"),
        (lambda d: d["scenarios"][2]["questions"][1].update(ability="telepathy"),
         r"sim_scenarios.json: scenarios\[2\].questions\[1\].ability: 'telepathy' is not one of"),
        (lambda d: d["scenarios"][0]["questions"][0].update(facts=["nope"]),
         r"sim_scenarios.json: scenarios\[0\].questions\[0\].facts: unknown fact 'nope'"),
        (lambda d: d["scenarios"][0]["updates"][0].update(replaces="nope"),
         r"sim_scenarios.json: scenarios\[0\].updates\[0\].replaces: unknown fact 'nope'"),
        (lambda d: d["scenarios"][5].update(id=d["scenarios"][4]["id"]),
         r"sim_scenarios.json: scenarios\[5\].id: duplicate id"),
    ],
)  # fmt: skip
def test_a_malformed_scenario_file_names_the_file_and_the_field(
    tmp_path: Path, mutate: Any, expected: str
) -> None:
    doc = shipped(SCENARIOS)
    mutate(doc)
    with pytest.raises(SeedError, match=expected):
        load_scenarios(write(tmp_path, SCENARIOS, doc))


def test_a_malformed_persona_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    doc = shipped(PERSONAS)
    doc["personas"][7]["patience"] = 9
    with pytest.raises(SeedError, match=r"sim_personas.json: personas\[7\].patience: 9 is greater"):
        load_personas(write(tmp_path, PERSONAS, doc))
    (tmp_path / PERSONAS).write_text('{"version": 1,')
    with pytest.raises(SeedError, match=r"sim_personas.json: not valid JSON: line 1"):
        load_personas(tmp_path / PERSONAS)


def _said(seed: int, dialogs: int) -> list[list[str]]:
    episodes = plan(seed, dialogs, load_scenarios(), load_personas())
    return [[t.text for t in thread] for ep in episodes for thread in ep.threads]


def test_the_plan_is_deterministic_for_a_seed() -> None:
    assert _said(1, 100) == _said(1, 100)
    assert _said(1, 100) != _said(2, 100)
    assert len(_said(1, 100)) == 102 == -(-100 // THREADS_PER_EPISODE) * THREADS_PER_EPISODE
    episodes = plan(1, 600, load_scenarios(), load_personas())
    assert len({ep.key for ep in episodes}) == 200  # every persona × scenario pair, no repeats


def test_each_episode_plants_before_it_probes() -> None:
    for ep in plan(3, 60, load_scenarios(), load_personas()):
        planted = {t.fact_id for thread in ep.threads[:-1] for t in thread if t.fact_id}
        probes = [t.question for t in ep.threads[-1]]
        assert probes and all(t.kind == "probe" for t in ep.threads[-1])
        for q in probes:
            assert q is not None and set(q.facts) <= planted


def test_scoring_of_answers_and_retrieved_provenance() -> None:
    scenario = next(s for s in load_scenarios() if s.id == "thesis")
    multi = next(q for q in scenario.questions if q.ability == "multi_hop")
    abstain = next(q for q in scenario.questions if q.ability == "abstention")
    planted = {"topic": [10], "advisor": [11]}
    assert retrieved_facts(multi, planted, [{10}, {3}]) == ["topic"]
    assert retrieved_facts(multi, planted, [{10, 2}, {11}]) == ["topic", "advisor"]
    assert answered(multi, "- User: My advisor is  PROFESSOR OKAFOR.")
    assert not answered(multi, "I have nothing in memory about that.")
    assert answered(abstain, "[offline mode] I have nothing in memory about that.")
    assert not answered(abstain, "Your thesis has 200 pages.")
