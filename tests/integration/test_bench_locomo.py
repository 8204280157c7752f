"""`maas bench locomo`: the metric functions on hand-computed cases, and one whole run of the CLI
on a small hand-made conversation (tests/data/mini_locomo.json) through the real service."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench.locomo import (
    Bm25Turns,
    Question,
    Scores,
    aggregate,
    answer_in_context,
    answer_in_context_exact,
    budget_recall,
    load_conversations,
    load_params,
    near_duplicates,
    normalize,
    normalize_locomo,
    pack_turns,
    parse_budgets,
    per_conversation,
    percentile,
    provenance,
    recall_at_k,
    resolve_evidence,
    score_context,
    summarize,
)
from bench.locomo_judge import JUDGE_STAGE, READER_STAGE, parse_label
from bench.scripted_llm import Reply, ScriptedLLM
from maas.__main__ import main as cli
from maas.db.pool import connect
from maas.llm.tokens import count_tokens

MINI = Path(__file__).resolve().parents[1] / "data" / "mini_locomo.json"
KEYS = {"budget_recall", "answer_in_context", "answer_in_context_exact", "recall_at_k"}
GROUPS = {"overall", "1", "2", "3", "4"}

# --------------------------------------------------------------------------- pure functions


def test_normalize_is_squad_normalization() -> None:
    assert normalize("The Cat's hat, a RED one!") == ["cats", "hat", "red", "one"]
    assert normalize("7 May, 2023") == ["7", "may", "2023"]
    assert normalize("an apple and the theme") == ["apple", "and", "theme"]  # whole words only


def test_locomo_normalization_stems_like_the_official_scorer() -> None:
    assert normalize_locomo("Hoodies, and the Competitions!") == ["hoodi", "competit"]
    assert normalize_locomo("winning") == normalize_locomo("wins") == ["win"]


def test_exact_answer_in_context_does_not_stem() -> None:
    context = "Gina: I made a limited edition line of this hoodie."
    assert answer_in_context("Hoodies", context) == 1.0
    assert answer_in_context_exact("Hoodies", context) == 0.0
    assert answer_in_context_exact("limited edition hoodie", context) == 1.0
    assert answer_in_context("sweatshirts", context) == 0.0  # stemming is not synonymy


def test_answer_in_context_needs_every_answer_token() -> None:
    context = "[M1] (7 May 2023) Caroline: I went to the LGBTQ support group."
    assert answer_in_context("7 May, 2023", context) == 1.0
    assert answer_in_context("the support group", context) == 1.0
    assert answer_in_context("The week before 7 May 2023", context) == 0.0  # "week", "before"
    assert answer_in_context("group therapy", context) == 0.0
    assert answer_in_context("", context) == 0.0 and answer_in_context("the", context) == 0.0


def test_budget_recall_and_recall_at_k() -> None:
    assert budget_recall({1, 2, 3}, {2, 3, 9}) == pytest.approx(2 / 3)
    assert budget_recall({"D1:1"}, set()) == 0.0
    with pytest.raises(ValueError):
        budget_recall(set(), {1})
    ranked = [{5}, {1, 7}, {8}, {2}]
    assert recall_at_k({1, 2}, ranked, 1) == 0.0
    assert recall_at_k({1, 2}, ranked, 2) == 0.5
    assert recall_at_k({1, 2}, ranked, 4) == 1.0
    assert recall_at_k({1, 2}, ranked, 25) == 1.0  # fewer ranked items than k


def _memory(rank: int, used: bool, sources: list[int]) -> dict[str, Any]:
    return {"rank": rank, "used": used, "score": 1.0 / rank, "source_message_ids": sources}


def test_provenance_orders_by_rank_and_keeps_used_sources() -> None:
    memories = [_memory(3, False, [30]), _memory(1, True, [10, 11]), _memory(2, True, [20])]
    used, ranked = provenance(memories)
    assert used == {10, 11, 20}
    assert ranked == [{10, 11}, {20}, {30}]


def test_score_context_on_a_hand_computed_question() -> None:
    question = Question("q", "When did Lena run?", "13 April 2024", 2, ("D2:1", "D2:3"))
    evidence = {101, 103}  # the message ids of D2:1 and D2:3
    small = {
        "context": "[M1] (14 April 2024) Lena: I ran yesterday (13 April 2024).",
        "context_tokens": 20,
        "memories": [_memory(1, True, [101]), _memory(2, False, [103])],
    }
    large = {
        "context": "[M1] (14 April 2024) Lena: I ran yesterday.\n[M2] Lena: two hours",
        "context_tokens": 40,
        "memories": [
            _memory(1, True, [101]),
            *(_memory(r, True, [200 + r]) for r in range(2, 7)),
            _memory(7, True, [102, 103]),
        ],
    }
    scores = score_context(question, evidence, {500: small, 2000: large})
    assert scores.budget_recall == {500: 0.5, 2000: 1.0}
    assert scores.answer_in_context == {500: 1.0, 2000: 0.0}  # "13" only in the small one
    assert scores.context_tokens == {500: 20.0, 2000: 40.0}
    assert scores.recall_at_k == {5: 0.5, 10: 1.0, 25: 1.0}  # ranks of the 2000-token call
    failed = score_context(question, evidence, {500: {}, 2000: {}})
    assert failed.budget_recall == {500: 0.0, 2000: 0.0}
    assert failed.recall_at_k == {5: 0.0, 10: 0.0, 25: 0.0}


def test_aggregate_and_summarize_average_over_questions() -> None:
    assert aggregate([(1, 1.0), (1, 0.0), (4, 1.0)]) == {
        "overall": pytest.approx(2 / 3),
        "1": 0.5,
        "2": None,
        "3": None,
        "4": 1.0,
    }
    a = Scores("a", 1, {500: 1.0}, {500: 1.0}, {500: 1.0}, {5: 1.0}, {500: 100.0})
    b = Scores("b", 2, {500: 0.5}, {500: 0.0}, {500: 0.0}, {5: 0.0}, {500: 300.0})
    summary = summarize([a, b])
    assert summary["budget_recall"] == {
        "500": {"overall": 0.75, "1": 1.0, "2": 0.5, "3": None, "4": None}
    }
    assert summary["recall_at_k"]["5"]["overall"] == 0.5
    assert summary["context_tokens"]["500"]["overall"] == 200.0


def test_per_conversation_figures_keep_conversations_apart() -> None:
    mini = load_conversations(MINI)[0]
    other = replace(
        mini,
        conversation_id="other",
        questions=tuple(replace(q, question_id=f"x{q.question_id}") for q in mini.questions[:2]),
    )
    first, multi = mini.questions[0].question_id, mini.questions[3].question_id  # cat 4, cat 1
    scores = [
        Scores(first, 4, {2000: 1.0}, {2000: 1.0}),
        Scores(multi, 1, {2000: 0.5}, {2000: 0.0}),
        Scores(f"x{first}", 4, {2000: 0.0}, {2000: 0.0}),
    ]
    per = per_conversation([mini, other], scores, 2000)
    assert per["mini-1"] == {
        "questions": 2,
        "budget_recall": 0.75,
        "answer_in_context": 0.5,
        "multi_hop_questions": 1,
        "multi_hop_answer_in_context": 0.0,
    }
    assert per["other"]["budget_recall"] == 0.0
    assert per["other"]["multi_hop_answer_in_context"] is None  # no multi-hop question asked


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None


def test_pack_turns_skips_what_does_not_fit_and_fills_with_smaller_lines() -> None:
    bodies = ["a" * 10, "b" * 30, "c" * 5]  # with cost = characters, lines cost 16, 36, 11
    packed = pack_turns([0, 1, 2], bodies, 30, cost=len)
    assert packed.indices == [0, 2]
    assert packed.text == f"[M1] {'a' * 10}\n[M2] {'c' * 5}"
    assert packed.tokens == len(packed.text) == 26
    assert pack_turns([1], bodies, 30, cost=len).indices == []


def test_pack_turns_counts_real_tokens_within_budget() -> None:
    turns = load_conversations(MINI)[0].turns
    index = Bm25Turns(turns)
    packed = pack_turns(list(range(len(turns))), index.bodies, 100)
    assert 0 < packed.tokens <= 100
    assert packed.tokens == count_tokens(packed.text)
    assert packed.text.startswith("[M1] (2 March 2024) Ravi: Morning Lena!")


def test_bm25_ranks_only_matching_turns_with_the_imported_text() -> None:
    conv = load_conversations(MINI)[0]
    index = Bm25Turns(conv.turns)
    ids = [conv.turns[i].turn_id for i in index.rank("Which city is Rotterdam?")]
    assert set(ids) == {"D3:2", "D3:3"}
    assert index.rank("zzz qqq") == []
    cello = [conv.turns[i].turn_id for i in index.rank("brown bookshelf")]
    assert cello == ["D2:4"]  # the photo caption is part of the turn's text


def test_mini_conversation_loads_as_imported() -> None:
    conv = load_conversations(MINI)[0]
    assert conv.speakers == ("Ravi", "Lena") and len(conv.sessions) == 3
    assert len(conv.turns) == 15
    d24 = next(t for t in conv.turns if t.turn_id == "D2:4")
    assert d24.text.endswith(
        " [shared a photo: a photo of a brown cello leaning against a bookshelf]"
    )
    assert d24.created_at == datetime(2024, 4, 14, 18, 40, 3)  # session time + 3 s (4th turn)
    scored = conv.scored_questions()
    assert len(scored) == 7 and all(q.category in (1, 2, 4) for q in scored)
    q004 = next(q for q in scored if q.question_id == "mini-1:q004")
    assert resolve_evidence(q004, {t.turn_id for t in conv.turns}) == (("D2:3",), 1)


def test_parse_budgets() -> None:
    assert parse_budgets("2000,500") == (500, 2000)
    assert parse_budgets("1000") == (1000,)
    for bad in ("", "10", "a,b", "500,99999"):
        with pytest.raises(ValueError):
            parse_budgets(bad)


# --------------------------------------------------------------------------- near-duplicates

BRUTE_NEAR_DUPS = """
SELECT count(*) FILTER (WHERE EXISTS (
  SELECT 1 FROM maas.memories o
  WHERE o.user_id = m.user_id AND o.id <> m.id AND o.valid_to IS NULL
    AND similarity(o.text, m.text) >= $2::real))
FROM maas.memories m WHERE m.valid_to IS NULL AND m.user_id = ANY($1::uuid[])
"""


async def test_near_duplicate_sql_matches_the_plain_self_join(db_url: str) -> None:
    """The pruned query counts exactly what comparing every pair with similarity() counts."""
    conv = load_conversations(MINI)[0]
    texts = {
        "a": [
            "Lena adopted a tortoise named Pebbles.",
            "Lena adopted a tortoise named Pebbles!",  # same trigrams: similarity 1
            "Lena adopted a small tortoise named Pebbles.",
            "Ravi plays the cello at the community hall.",
            *(f"{t.speaker}: {t.text}" for t in conv.turns),
            *(f"{t.speaker} said: {t.text}" for t in conv.turns),
        ],
        "b": ["Lena adopted a tortoise named Pebbles."],  # another user's copy does not count
    }
    conn = await connect(db_url)
    try:
        users = {}
        for name, items in texts.items():
            users[name] = str(
                await conn.fetchval(
                    "INSERT INTO maas.users (name, api_key_hash, key_prefix)"
                    " VALUES ($1, $1, 'x') RETURNING id",
                    name,
                )
            )
            await conn.executemany(
                "INSERT INTO maas.memories (user_id, text, fact_key) VALUES ($1, $2, $3)",
                [(users[name], text, f"k{i}") for i, text in enumerate(items)],
            )
        await conn.execute(  # a closed memory is not counted, nor compared with
            "INSERT INTO maas.memories (user_id, text, fact_key, valid_to)"
            " VALUES ($1, 'Ravi plays the cello at the community hall!', 'closed', now())",
            users["a"],
        )
        ids = list(users.values())
        expected = {t: await conn.fetchval(BRUTE_NEAR_DUPS, ids, t) for t in (0.3, 0.6, 0.8, 0.95)}
    finally:
        await conn.close()
    total = len(texts["a"]) + 1
    assert await near_duplicates(db_url, ids, 1.0) == (total, 2)
    for threshold, count in expected.items():
        assert await near_duplicates(db_url, ids, threshold) == (total, count), threshold
    assert expected[0.3] > expected[0.8] > 2  # the cases are not trivial


# --------------------------------------------------------------------------- the whole run


def _in_unit_range(tree: dict[str, dict[str, float | None]]) -> bool:
    return all(v is None or 0.0 <= v <= 1.0 for cells in tree.values() for v in cells.values())


def test_bench_locomo_end_to_end_on_the_mini_conversation(
    pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI: a fresh database on the test Postgres (MAAS_DATABASE_URL), the real app
    under uvicorn, import + archive + /v1/context over HTTP; the table and the JSON."""
    monkeypatch.setenv("MAAS_DATABASE_URL", pg_uri)
    out = tmp_path / "locomo.json"
    assert cli(["bench", "locomo", "--data", str(MINI), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "budget recall@2000" in printed and "recall@25" in printed and "BM25" in printed

    data = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert set(data) == KEYS | {"baseline", "config", "extras"}
    assert set(data["baseline"]) == KEYS
    for tree in (data, data["baseline"]):
        assert set(tree["budget_recall"]) == set(tree["answer_in_context"]) == {"500", "2000"}
        assert set(tree["recall_at_k"]) == {"5", "10", "25"}
        for key in KEYS:
            assert all(set(cells) == GROUPS for cells in tree[key].values())
            assert _in_unit_range(tree[key])
            assert all(cells["3"] is None for cells in tree[key].values())  # no category 3
    # --embedder defaults to auto: the local model the README's install brings (as maas serve)
    assert data["config"] == {
        "llm_mode": "offline",
        "embedder": "local:all-minilm-l6-v2",
        "param_version": "builtin",
    }

    extras = data["extras"]
    assert extras["questions"] == 7 and extras["evidence_ids_missing"] == 1
    assert extras["context_failures"] == 0
    assert extras["memories_by_conversation"]["mini-1"] > 0
    assert 0.0 <= extras["near_duplicate_rate"] <= 1.0
    assert extras["ingest"]["turns"] == 15 and extras["ingest_turns_per_s"] > 0
    assert extras["context_latency_ms"]["calls"] == 14
    assert not math.isnan(extras["context_latency_ms"]["p95"])
    for system in ("maas", "bm25"):
        assert 0 < extras["mean_context_tokens"][system]["500"] <= 500

    by_id = {q["question_id"]: q for q in extras["per_question"]}
    assert len(by_id) == 7
    per = extras["per_conversation"]
    assert per["budget"] == 2000 and set(per["conversations"]) == {"mini-1"}
    assert per["conversations"]["mini-1"]["questions"] == 7
    assert per["conversations"]["mini-1"]["multi_hop_questions"] == 1
    assert "per conversation @2000  mini-1: budget recall" in printed
    # A single evidence turn holding an exact-phrase fact is found by both systems.
    tortoise = by_id["mini-1:q000"]
    assert tortoise["maas"]["budget_recall"]["2000"] == 1.0
    assert tortoise["bm25"]["budget_recall"]["2000"] == 1.0
    assert tortoise["maas"]["answer_in_context"]["2000"] == 1.0


# --------------------------------------------------------------------------- --params FILE


def test_load_params_checks_the_file_against_the_guards(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"retrieval.min_score": 1.0, "retrieval.w_vector": 0}')
    assert load_params(good) == {"retrieval.min_score": 1.0, "retrieval.w_vector": 0}
    assert load_params(None) == {}
    for text, why in (
        ("[1, 2]", "a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"retrieval.min_score": 9}', "outside [0.0, 5.0]"),
        ('{"retrieval.nope": 1}', "unknown parameters: retrieval.nope"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
            load_params(bad)


def test_bench_locomo_params_file_changes_what_the_service_retrieves(
    pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A floor no fused score reaches: nothing is packed, so budget recall is 0 (the defaults give
    more on the same conversation, see the run above), and the run records the overrides."""
    monkeypatch.setenv("MAAS_DATABASE_URL", pg_uri)
    params, out = tmp_path / "floor.json", tmp_path / "locomo.json"
    params.write_text(json.dumps({"retrieval.min_score": 5.0}))
    args = ["bench", "locomo", "--data", str(MINI), "--embedder", "none", "--json", str(out)]
    assert cli([*args, "--params", str(params)]) == 0
    data = json.loads(out.read_text())
    assert data["config"]["params"] == {"retrieval.min_score": 5.0}
    assert data["config"]["param_version"].startswith("env-")
    assert data["budget_recall"]["2000"]["overall"] == 0.0
    assert "retrieval.min_score" in capsys.readouterr().out
    params.write_text('{"retrieval.min_score": 50}')
    assert cli([*args, "--params", str(params)]) == 2
    assert "outside" in capsys.readouterr().err


# --------------------------------------------------------------------------- --judge


def test_parse_label_reads_json_or_a_bare_word_and_nothing_else() -> None:
    assert parse_label('{"label": "CORRECT"}') is True
    assert parse_label('```json\n{"label": "WRONG"}\n```') is False
    assert parse_label("correct") is True
    assert parse_label("CORRECT or WRONG, hard to say") is None
    assert parse_label("I cannot tell") is None
    assert parse_label('{"label": "maybe"}') is None


def test_judge_without_an_llm_says_it_needs_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("MAAS_LLM_BASE_URL", "MAAS_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert cli(["bench", "locomo", "--data", str(MINI), "--judge"]) == 2
    assert "--judge needs an LLM" in capsys.readouterr().err


# The scripted reader answers from the question: Lena's questions "yes", the cello's colour
# "???", the rest "no"; the scripted judge says CORRECT to "yes", WRONG to "no" and something
# unreadable to "???". Category 5 is never asked.
def _reader_and_judge(stage: str | None, body: dict[str, Any]) -> Reply:
    user = body["messages"][-1]["content"]
    if stage == READER_STAGE:
        answer = "???" if "color" in user else "yes" if "Lena" in user else "no"
        return Reply(content=answer)
    assert stage == JUDGE_STAGE
    generated = user.rsplit("Generated answer: ", 1)[1]
    verdict = {"yes": '{"label": "CORRECT"}', "no": '{"label": "WRONG"}'}
    return Reply(content=verdict.get(generated, "I cannot tell"))


def test_bench_locomo_judge_against_the_scripted_llm(
    pg_uri: str,
    scripted: ScriptedLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The reader sees the question and the packed context only; J per category is the share of
    CORRECT verdicts, an unreadable verdict counts wrong and is counted apart."""
    monkeypatch.setenv("MAAS_DATABASE_URL", pg_uri)
    monkeypatch.setenv("MAAS_LLM_BASE_URL", scripted.base_url)
    monkeypatch.setenv("MAAS_LLM_API_KEY", "test")
    scripted.set_handler(_reader_and_judge)
    out = tmp_path / "locomo.json"
    args = ["bench", "locomo", "--data", str(MINI), "--judge", "--json", str(out)]
    assert cli([*args, "--budgets", "300"]) == 0
    assert "J overall 0.571" in capsys.readouterr().out

    judge = json.loads(out.read_text())["judge"]
    assert judge["questions"] == 7 and judge["unparsed"] == 1 and judge["budget"] == 300
    # category 4: three of Lena's right, the colour unreadable; 2: Lena right, Ravi wrong; 1: Ravi
    assert judge["j"] == {"overall": 4 / 7, "1": 0.0, "2": 0.5, "3": None, "4": 0.75}
    assert 0 < judge["mean_context_tokens"] <= 300
    assert judge["latency_ms"]["total_p95"] >= judge["latency_ms"]["context_p95"] > 0
    readings = scripted.requests_for(READER_STAGE)
    assert len(readings) == 7 and len(scripted.requests_for(JUDGE_STAGE)) == 7
    asked = sorted(r.json["messages"][-1]["content"] for r in readings)
    assert "What is the name of Ravi's tortoise?" not in asked  # category 5
    for r in readings:
        messages = r.json["messages"]
        assert [m["role"] for m in messages] == ["system", "user"]
        memories = messages[0]["content"].split("Memories:\n", 1)[1]
        assert memories.strip() and "Lena" in memories + "Ravi"
