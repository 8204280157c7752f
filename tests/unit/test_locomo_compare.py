"""`maas bench compare`: which cells of two LoCoMo runs moved beyond noise, and the rule's error
rates and power on simulated runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench.locomo_compare import Asked, Cell, CompareError, compare, holm, load_run, main, sign_test
from maas.__main__ import main as maas_main

# LoCoMo dev's questions per category (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop)
SIZES = {1: 142, 2: 156, 3: 44, 4: 418}
BUDGETS = ("500", "2000")


def test_sign_test_is_exact_and_two_sided() -> None:
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test(1, 9) == sign_test(9, 1)
    assert sign_test(6, 0) == pytest.approx(2 / 64)
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(3, 3) == 1.0
    assert sign_test(0, 0) == 1.0


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def run(values: dict[str, tuple[int, float]]) -> dict[str, Asked]:
    """question id -> (category, value of every metric at every budget)."""
    return {
        q: Asked(
            cat, {m: dict.fromkeys(BUDGETS, v) for m in ("budget_recall", "answer_in_context")}
        )
        for q, (cat, v) in values.items()
    }


def verdicts(cells: list[Cell], alpha: float = 0.05) -> dict[tuple[str, str, str], str]:
    return {(c.metric, c.budget, c.group): c.verdict(alpha) for c in cells}


def test_a_category_that_rises_and_one_that_falls_are_both_named() -> None:
    before = {f"q{i}": (1 if i < 40 else 2, 0.0 if i < 20 else 1.0) for i in range(80)}
    after = dict(before)
    for i in range(20):  # multi-hop: 20 questions 0 -> 1
        after[f"q{i}"] = (1, 1.0)
    for i in range(40, 52):  # temporal: 12 questions 1 -> 0
        after[f"q{i}"] = (2, 0.0)
    said = verdicts(compare(run(before), run(after)))
    assert said[("answer_in_context", "2000", "1")] == "up"
    assert said[("budget_recall", "500", "2")] == "down"
    assert said[("answer_in_context", "500", "overall")] == "noise"  # 20 up, 12 down: p 0.22
    assert ("budget_recall", "2000", "3") not in said  # no open-domain question: no cell


def test_five_lone_gains_are_noise_though_the_normal_interval_excludes_zero() -> None:
    before = {f"q{i}": (4, 0.0) for i in range(760)}
    after = {**before, **{f"q{i}": (4, 1.0) for i in range(5)}}
    cells = compare(run(before), run(after))
    overall = next(c for c in cells if c.group == "overall")
    assert overall.low > 0  # the interval alone would call it a gain
    assert overall.p == pytest.approx(1 / 16)
    assert overall.verdict(0.05) == "noise"


def test_a_half_step_counts_as_one_vote() -> None:
    before = {f"q{i}": (1, 0.5) for i in range(10)}
    after = {**before, **{f"q{i}": (1, 1.0) for i in range(10)}}
    cell = compare(run(before), run(after))[0]
    assert (cell.up, cell.down) == (10, 0)
    assert cell.diff == pytest.approx(0.5)


def simulated(
    rng: random.Random, change: float, up_share: dict[int, float], rate_in: float = 0.2
) -> tuple[dict[str, Asked], dict[str, Asked]]:
    """Two runs of LoCoMo-dev-sized question sets: a question's value (each metric, each budget)
    changes with chance `change` (or its category's own, keyed -1 for "every other"), upward with
    its category's `up_share`; an unchanged one is 1 with chance 0.7 in both runs."""
    before: dict[str, Asked] = {}
    after: dict[str, Asked] = {}
    for cat, size in SIZES.items():
        rate = change if cat not in up_share else rate_in
        for i in range(size):
            b: dict[str, dict[str, float]] = {}
            a: dict[str, dict[str, float]] = {}
            for m in ("budget_recall", "answer_in_context"):
                b[m], a[m] = {}, {}
                for budget in BUDGETS:
                    if rng.random() < rate:
                        up = rng.random() < up_share.get(cat, 0.5)
                        b[m][budget], a[m][budget] = (0.0, 1.0) if up else (1.0, 0.0)
                    else:
                        b[m][budget] = a[m][budget] = float(rng.random() < 0.7)
            before[f"{cat}:{i}"], after[f"{cat}:{i}"] = Asked(cat, b), Asked(cat, a)
    return before, after


def test_no_effect_rarely_calls_any_cell_changed() -> None:
    """Family-wise false alarms under churn with no direction (4 % of the questions change,
    either way): at most 5 % nominal; 200 simulated pairs of runs. Without Holm (each of the 20
    cells at 5 %) the rate is several times that, and this test fails."""
    rng = random.Random(20261207)
    alarms = sum(
        any(v != "noise" for v in verdicts(compare(*simulated(rng, 0.04, {}))).values())
        for _ in range(200)
    )
    assert alarms / 200 <= 0.08  # 0.05 plus two Monte Carlo standard errors (0.015)


def test_a_real_gain_in_one_category_is_found() -> None:
    """Power: in temporal (156 questions) 10 % of the questions change in each cell, 85 % of
    those upward (about 13 up and 2 down: +0.07); the rest churn without direction. Found
    (temporal "up" in some cell, nothing "down") in 82 of 100 simulated pairs; at least 70 here
    (three Monte Carlo standard errors under 0.82)."""
    rng = random.Random(7)
    found = 0
    for _ in range(100):
        said = verdicts(compare(*simulated(rng, 0.04, {2: 0.85}, 0.1)))
        ups = {k for k, v in said.items() if v == "up"}
        found += any(k[2] == "2" for k in ups) and "down" not in said.values()
    assert found >= 70


def per_question_file(path: Path, values: dict[str, tuple[int, float]]) -> Path:
    rows = [
        {
            "question_id": q,
            "category": cat,
            "maas": {m: dict.fromkeys(BUDGETS, v) for m in ("budget_recall", "answer_in_context")},
        }
        for q, (cat, v) in values.items()
    ]
    path.write_text(json.dumps({"extras": {"per_question": rows}}))
    return path


def test_the_command_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {f"q{i}": (4, 0.0) for i in range(30)}
    after = {**before, **{f"q{i}": (4, 1.0) for i in range(12)}, "extra": (1, 1.0)}
    out = tmp_path / "cmp.json"
    code = main(
        per_question_file(tmp_path / "a.json", before),
        per_question_file(tmp_path / "b.json", after),
        0.05,
        out,
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "up: budget recall@500 overall, budget recall@500 cat4," in printed
    assert "1 questions in only one run" in printed
    cells = json.loads(out.read_text())["cells"]
    assert {c["verdict"] for c in cells} == {"up"}  # overall and cat4, both metrics and budgets


def test_files_that_do_not_compare_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = per_question_file(tmp_path / "a.json", {"q1": (1, 1.0)})
    other = per_question_file(tmp_path / "b.json", {"z9": (1, 1.0)})
    (tmp_path / "bad.json").write_text('{"budget_recall": {}}')
    assert main(good, other, 0.05, None) == 2
    assert "no question in common" in capsys.readouterr().err
    assert main(good, tmp_path / "bad.json", 0.05, None) == 2
    assert "not a `maas bench locomo --json` file" in capsys.readouterr().err
    with pytest.raises(CompareError):
        load_run(tmp_path / "missing.json")
    at_1000 = {"q1": Asked(1, {m: {"1000": 1.0} for m in ("budget_recall", "answer_in_context")})}
    with pytest.raises(CompareError, match="no budget in common"):
        compare(run({"q1": (1, 1.0)}), at_1000)


def test_maas_bench_compare_runs_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_a = per_question_file(tmp_path / "a.json", {f"q{i}": (2, 1.0) for i in range(20)})
    run_b = per_question_file(tmp_path / "b.json", {f"q{i}": (2, 0.0) for i in range(20)})
    assert maas_main(["bench", "compare", str(run_a), str(run_b), "--alpha", "0.01"]) == 0
    assert "down: budget recall@500 overall, budget recall@500 cat2," in capsys.readouterr().out
    assert maas_main(["bench", "compare", str(run_a), str(run_b), "--alpha", "2"]) == 2
    assert "--alpha must be between 0 and 1" in capsys.readouterr().err


def test_judged_runs_compare_j_too(tmp_path: Path) -> None:
    values = {f"q{i}": (1, 1.0) for i in range(12)}

    def judged(path: Path, correct: bool) -> Path:
        per_question_file(path, values)
        data = json.loads(path.read_text())
        data["judge"] = {
            "budget": 2000,
            "per_question": [{"question_id": q, "correct": correct} for q in values],
        }
        path.write_text(json.dumps(data))
        return path

    before = load_run(judged(tmp_path / "a.json", False))
    after = load_run(judged(tmp_path / "b.json", True))
    said = verdicts(compare(before, after))
    assert said[("judge", "2000", "1")] == "up" and said[("judge", "2000", "overall")] == "up"
    assert said[("budget_recall", "2000", "1")] == "noise"
    plain = load_run(per_question_file(tmp_path / "c.json", values))
    assert not any(k[0] == "judge" for k in verdicts(compare(plain, after)))  # one run unjudged
