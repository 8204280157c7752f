"""The Teacher's statistics without a database or an LLM, through the same `analyse()` path real
experiments take: the A/A against the nominal rate (and proof that the check fails when the rule
is broken), power on a known effect, one-sided tests, attrition, one inference for decision and
interval, exact tests at small n, power in the report."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selflearn.teacher import simulate as sim
from selflearn.teacher import spending, stats
from selflearn.teacher.analysis import Inputs, analyse
from selflearn.teacher.metrics import ArmData, Judged, Probe, Retrieved, RunCost
from selflearn.teacher.spec import parse

ALPHA = 0.05

# ---- the rule's error rates, through analyse() on discrete, clustered data ------------------
# α = 0.2 (the largest a spec allows) gives four times the events per simulated experiment at
# the same code, so a few hundred runs tell a correct rule from a broken one.

AA_UNITS, AA_RUNS, AA_ALPHA = [8, 50], 200, 0.2


@pytest.fixture(scope="module")
def aa() -> dict[str, Any]:
    return sim.run(AA_UNITS, AA_RUNS, 0.0, seed=20261206, alpha=AA_ALPHA)


def test_aa_false_ship_and_rollback_at_the_nominal_rate_with_uniform_p(aa: dict[str, Any]) -> None:
    assert aa["nominal_false_ship"] == pytest.approx(AA_ALPHA / 4)  # Holm over 1 + 3 tests
    assert sim.aa_violations(aa) == []
    big = aa["units"]["50"]
    assert big["false_ship"] > 0.01  # the rule can fire: the figure is measured, not a floor
    assert big["invalid"] == 0.0


def _broken_holm(p: Any) -> Any:
    return np.asarray(p, dtype=float)  # no correction at all


@pytest.mark.parametrize("broken", ["no Holm", "half p"])
def test_the_aa_check_fails_when_the_rule_is_broken(
    broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if broken == "no Holm":
        monkeypatch.setattr(stats, "holm", _broken_holm)
    else:
        real = stats.paired

        def halved(*args: Any, **kwargs: Any) -> stats.Inference:
            inf = real(*args, **kwargs)
            return stats.Inference(inf.estimate, inf.p_better / 2, inf.p_worse / 2,
                                   inf.p_harm / 2, inf.p_noninferior / 2, inf.ci,
                                   inf.clusters, inf.test)  # fmt: skip

        monkeypatch.setattr(stats, "paired", halved)
    result = sim.run([50], AA_RUNS, 0.0, seed=20261206, alpha=AA_ALPHA)
    assert sim.aa_violations(result), result["units"]


def test_a_known_effect_ships_at_50_units_and_cannot_at_4() -> None:
    result = sim.run([4, 50], 60, 0.15, seed=3)
    assert result["units"]["50"]["shipped"] >= 0.9  # power at +15 points, 50 paired units
    assert result["units"]["4"]["shipped"] == 0.0  # 4 clusters: 2^-4 > α / 4, never proof
    assert result["units"]["50"]["false_rollback"] == 0.0


# ---- whole synthetic experiments with hand-made effects --------------------------------------

SPEC: dict[str, Any] = {
    "name": "synthetic", "goal": "test", "baseline": {}, "variant": {"retrieval.min_score": 1.0},
    "primary_metric": "retrieval_recall", "min_sample": 10, "alpha": ALPHA,
    "guardrails": [{"metric": "hallucination_rate", "margin": 0.02},
                   {"metric": "latency_p95_ms", "margin": 50}],
}  # fmt: skip


def synthetic_arm(rng: np.random.Generator, units: int, hit: float, slow: float = 1.0,
                  halluc: float = 0.0, drop: int = 0) -> ArmData:  # fmt: skip
    """`units` episodes over 7 scenarios, 4 probes each (two planted facts per probe)."""
    data = ArmData()
    for u in range(units):
        scenario, persona, user = f"s{u % 7}", f"p{u}", f"user-{u}"
        for k in range(4 if u >= drop else 1):
            run = f"{user}-{k}"
            found = rng.random(2) < hit
            retrieved = tuple(Retrieved(True, frozenset({10 + i})) for i in range(2) if found[i])
            planted = {"a": [10], "b": [11]}
            data.probes.append(Probe(run, user, scenario, persona, "single_fact", ("a", "b"),
                                     planted, bool(found.all()), retrieved))  # fmt: skip
            data.judged[run] = Judged(float(rng.random() < halluc), 1.0)
            data.runs.append(RunCost(user, f"t{u}", float(rng.lognormal(4, 0.2)) * slow, 100))
    return data


def test_analysis_ships_a_clear_improvement_with_deltas_intervals_and_pvalues() -> None:
    rng = np.random.default_rng(5)
    v = analyse(Inputs(parse(SPEC), synthetic_arm(rng, 30, 0.5), synthetic_arm(rng, 30, 0.9)))
    assert v.verdict == "SHIP", v.reasons
    recall = v.metrics["retrieval_recall"]
    assert recall.delta is not None and recall.ci is not None and recall.delta > 0.25
    assert recall.ci[0] > 0 and recall.p_holm is not None and recall.p_holm < ALPHA
    assert recall.ci_level == pytest.approx(0.9) and recall.clusters == 7
    assert "Ship the variant" in v.recommendations[0]


def test_analysis_rolls_back_when_a_guardrail_breaks_even_if_primary_improves() -> None:
    rng = np.random.default_rng(6)
    base, var = synthetic_arm(rng, 30, 0.5), synthetic_arm(rng, 30, 0.9, halluc=0.6)
    v = analyse(Inputs(parse(SPEC), base, var))
    assert v.verdict == "ROLLBACK" and "hallucination_rate" in v.reasons[0]


def test_analysis_is_invalid_on_few_samples_or_an_inconsistent_judge() -> None:
    rng = np.random.default_rng(8)
    few = analyse(Inputs(parse(SPEC), synthetic_arm(rng, 5, 0.5), synthetic_arm(rng, 5, 0.9)))
    assert few.verdict == "INVALID" and any("too few samples" in r for r in few.reasons)
    shaky = Inputs(parse(SPEC), synthetic_arm(rng, 30, 0.5), synthetic_arm(rng, 30, 0.9),
                   judge_agreement=0.6)  # fmt: skip
    judged = analyse(shaky)
    assert judged.verdict == "INVALID" and "judge inconsistent" in judged.reasons[0]


def test_unpaired_analysis_uses_a_permutation_test_and_still_finds_the_effect() -> None:
    rng = np.random.default_rng(9)
    base = synthetic_arm(rng, 30, 0.5)
    var = synthetic_arm(rng, 30, 0.9)
    for p in var.probes:  # other episodes: nothing to pair with
        object.__setattr__(p, "persona", p.persona + "-other")
    v = analyse(Inputs(parse(SPEC), base, var, paired=False))
    assert v.metrics["retrieval_recall"].test == "permutation Welch t"
    assert v.verdict == "SHIP", v.reasons


# ---- item 2: a one-sided test in the improvement direction -----------------------------------


def _latency_arms(variant_ms: list[float], baseline_ms: float) -> tuple[ArmData, ArmData]:
    """One probe and one run per unit, each unit its own scenario; only latency differs."""
    arms = []
    for ms in ([baseline_ms] * len(variant_ms), variant_ms):
        data = ArmData()
        for u, value in enumerate(ms):
            user = f"u{u}"
            data.probes.append(
                Probe(
                    f"{user}-r",
                    user,
                    f"s{u}",
                    "p",
                    "single_fact",
                    ("a",),
                    {"a": [1]},
                    True,
                    (Retrieved(True, frozenset({1})),),
                )
            )
            data.runs.append(RunCost(user, f"t{u}", value, 100))  # fmt: skip
        arms.append(data)
    return arms[0], arms[1]


@pytest.mark.parametrize("test", ["wilcoxon", "t"])
def test_a_variant_the_test_finds_worse_never_ships(test: str) -> None:
    """15 units 100 ms slower and one 30 s faster: the mean improves, the ranks say worse.
    A two-sided Wilcoxon with the mean's direction shipped this (p = 0.003)."""
    base, var = _latency_arms([40_100.0] * 15 + [10_000.0], 40_000.0)
    spec = parse({**SPEC, "primary_metric": "latency_p50_ms", "guardrails": [], "test": test,
                  "min_sample": 4})  # fmt: skip
    v = analyse(Inputs(spec, base, var))
    p50 = v.metrics["latency_p50_ms"]
    assert p50.delta is not None and p50.delta < 0  # the mean is lower (better) …
    assert v.verdict == "HOLD", v.reasons  # … but no one-sided test in that direction holds


# ---- item 3: attrition is never dropped silently ---------------------------------------------


def test_units_missing_from_one_arm_make_the_verdict_invalid_and_are_named() -> None:
    """The variant lost its two hardest episodes (they failed): pairing would drop them from
    both arms and compare the rest."""
    rng = np.random.default_rng(12)
    base, var = synthetic_arm(rng, 24, 0.6), synthetic_arm(rng, 24, 0.95)
    lost = {"user-0", "user-1"}
    var.probes = [p for p in var.probes if p.user_id not in lost]
    v = analyse(Inputs(parse(SPEC), base, var))
    assert v.verdict == "INVALID", v.reasons
    assert "attrition" in v.reasons[0] and "s0/p0" in v.reasons[0] and "s1/p1" in v.reasons[0]
    assert v.checks["attrition"] == ["s0/p0 (baseline 4, variant 0 of 4 probes)",
                                     "s1/p1 (baseline 4, variant 0 of 4 probes)"]  # fmt: skip
    planned = {("s0", "p0"): 4, ("s1", "p1"): 4} | {
        (f"s{u % 7}", f"p{u}"): 4 for u in range(2, 24)}  # fmt: skip
    missing_in_both = analyse(Inputs(parse(SPEC), synthetic_arm(rng, 24, 0.6),
                                     synthetic_arm(rng, 24, 0.6), planned=planned | {
                                         ("s3", "p99"): 4}))  # fmt: skip
    assert missing_in_both.verdict == "INVALID"
    assert "s3/p99 (baseline 0, variant 0 of 4 probes)" in missing_in_both.reasons[0]


def test_a_decision_metric_undefined_in_one_arm_is_named_not_dropped() -> None:
    rng = np.random.default_rng(13)
    base, var = synthetic_arm(rng, 20, 0.8), synthetic_arm(rng, 20, 0.8)
    for p in var.probes:  # nothing retrieved for user-3 in the variant: precision undefined
        if p.user_id == "user-3":
            object.__setattr__(p, "retrieved", ())
    spec = parse({**SPEC, "primary_metric": "retrieval_precision"})
    v = analyse(Inputs(spec, base, var))
    assert v.verdict == "INVALID"
    assert any("retrieval_precision is defined in one arm only for 1 unit(s): s3/p3" in r
               for r in v.reasons), v.reasons  # fmt: skip


# ---- item 6: one inference for the decision and the interval ---------------------------------


def test_decision_and_interval_agree_in_every_simulated_experiment() -> None:
    """SHIP ⇒ the primary's interval excludes 0; a guardrail is non-inferior exactly when its
    interval stays inside the margin; harmed exactly when it lies beyond (before Holm)."""
    s = sim.spec()
    rng = np.random.default_rng(21)
    seen = set()
    for i in range(160):
        v = sim.experiment(rng, 8 if i % 2 else 50, 0.05 * (i % 4), s)
        seen.add(v.verdict)
        primary = v.metrics[s.primary_metric]
        assert primary.ci is not None and primary.p_better is not None
        assert (primary.p_better < s.alpha) == (primary.ci[0] > 0)
        if v.verdict == "SHIP":
            assert primary.ci[0] > 0
        for g in s.guardrails:
            r = v.metrics[g.metric]
            assert r.ci is not None and r.p_noninferior is not None and r.p_harm is not None
            good_side = r.ci[1] if g.metric != "answer_accuracy" else -r.ci[0]  # worse = up
            assert (r.p_noninferior < s.alpha) == (good_side < g.margin), (g, r)
    assert {"SHIP", "HOLD"} <= seen


def test_the_hold_text_quotes_the_bound_that_crossed_the_margin() -> None:
    rng = np.random.default_rng(4)
    spec = parse({**SPEC, "guardrails": [{"metric": "latency_p95_ms", "margin": 1}]})
    v = analyse(Inputs(spec, synthetic_arm(rng, 30, 0.5), synthetic_arm(rng, 30, 0.9)))
    assert v.verdict == "HOLD"
    r = v.metrics["latency_p95_ms"]
    assert r.ci is not None and r.ci[1] > 1  # the slower end is past the 1 ms margin …
    [held] = [x for x in v.reasons if x.startswith("non-inferiority not shown")]
    assert f"its upper bound {r.ci[1]:+.4g} is above +1" in held  # … and the text names it


# ---- item 7: exact tests at small n, power stated --------------------------------------------


def _recall_arms(diffs: list[float]) -> tuple[ArmData, ArmData]:
    """Baseline recall 0, variant recall `d` per unit (one probe of 20 facts), one scenario
    per unit."""
    arms = []
    facts = tuple(f"f{i}" for i in range(20))
    planted = {f: [i] for i, f in enumerate(facts)}
    for share in ([0.0] * len(diffs), diffs):
        data = ArmData()
        for u, d in enumerate(share):
            got = tuple(Retrieved(True, frozenset({i})) for i in range(round(d * 20)))
            data.probes.append(Probe(f"u{u}", f"u{u}", f"s{u}", "p", "single_fact", facts,
                                     planted, False, got))  # fmt: skip
        arms.append(data)
    return arms[0], arms[1]


def test_four_nearly_constant_units_prove_nothing() -> None:
    """[1, 1, 1, 0.9]: a t-test said p = 3.7e-5; four clusters can show at best 1/16."""
    base, var = _recall_arms([1.0, 1.0, 1.0, 0.9])
    spec = parse({**SPEC, "guardrails": [], "min_sample": 2})
    v = analyse(Inputs(spec, base, var))
    recall = v.metrics["retrieval_recall"]
    assert recall.p_better == pytest.approx(1 / 16)
    assert v.verdict == "HOLD" and "4 clusters cannot show anything" in v.reasons[0]
    assert recall.ci == (-np.inf, np.inf)  # and its interval says so
    assert v.as_json()["metrics"]["retrieval_recall"]["ci"] == [None, None]


def test_power_is_planned_from_the_mde_and_reported() -> None:
    base, var = _recall_arms([0.1, 0.05, 0.15, 0.1, 0.0, 0.2, 0.1, 0.05])
    spec = parse({**SPEC, "guardrails": [], "min_sample": 2,
                  "plan": {"mde": 0.1, "sd": 0.25, "power": 0.8}})  # fmt: skip
    power = analyse(Inputs(spec, base, var)).checks["power"]
    assert power["clusters"] == 8 and power["alpha_primary"] == ALPHA
    assert power["power"] == pytest.approx(stats.power(8, 0.1, 0.25, ALPHA), abs=1e-4)
    assert power["power"] < 0.3  # 8 units cannot find +10 points reliably …
    needed = power["clusters_needed"]  # … and the plan says how many can
    assert stats.power(needed, 0.1, 0.25, ALPHA) >= 0.8 > stats.power(needed - 1, 0.1, 0.25, ALPHA)


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    adjusted = stats.holm(np.array([0.01, 0.04, 0.03, 0.2]))
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.2])


def test_srm_flags_an_uneven_split() -> None:
    assert stats.srm_pvalue(100, 100) == pytest.approx(1.0)
    assert stats.srm_pvalue(130, 70) < stats.SRM_ALPHA
    assert stats.srm_pvalue(105, 95) > 0.4


def test_sign_flip_interval_is_the_subset_means_interval() -> None:
    """Eight clusters, one unit each: the 90 % interval is bounded by the 12th smallest and
    12th largest of the 255 subset means (Hartigan), and p moves with it."""
    x = np.array([0.3, -0.1, 0.2, 0.5, 0.1, 0.0, 0.4, 0.25])
    inf = stats.paired(stats.grouped(x, np.arange(8)), 0.05, "t", ALPHA)
    means = sorted(np.mean(x[list(s)]) for k in range(1, 9)
                   for s in itertools.combinations(range(8), k))  # fmt: skip
    assert inf.ci == pytest.approx((means[11], means[-12]))
    assert inf.p_better == pytest.approx((1 + sum(m <= 0 for m in means)) / 256)
    assert (inf.p_better < ALPHA) == (inf.ci[0] > 0)


def test_a_single_arm_interval_needs_five_clusters() -> None:
    c = stats.grouped(np.array([0.5, 0.7, 0.6, 0.9]), np.array([0, 0, 1, 1]))
    assert stats.mean_interval(c, 0.95) is None  # two scenarios: no interval at all
    c = stats.grouped(np.array([0.5, 0.7, 0.6, 0.9, 0.4, 0.8]), np.arange(6))
    lo, hi = stats.mean_interval(c, 0.95) or (0, 0)
    sd = np.std([0.5, 0.7, 0.6, 0.9, 0.4, 0.8], ddof=1)  # one unit per cluster: the plain t
    assert lo < 0.65 < hi and hi - lo == pytest.approx(2 * 2.5706 * sd / np.sqrt(6), rel=1e-3)


# ---- item 5: a goal's tests share one α ------------------------------------------------------


def test_a_goals_tests_spend_alpha_and_never_more_than_alpha_in_total() -> None:
    spent: list[float] = []
    for _ in range(200):  # many lever steps, reruns, explicit variants: each one a test
        spent.append(spending.next_alpha(ALPHA, spent))
    assert spent[0] == pytest.approx(ALPHA * 6 / np.pi**2) and spent[1] == pytest.approx(
        spent[0] / 4)  # fmt: skip
    assert ALPHA * 0.99 < sum(spent) <= ALPHA  # the family-wise rate over all of them
    legacy = [ALPHA, 0.01]  # tests run at the full α before spending: the budget is gone
    assert spending.next_alpha(ALPHA, legacy) == 0.0
    row = {"experiment_id": "x", "role": "macro", "alpha": 0.03, "verdict": "HOLD",
           "started_at": None}  # fmt: skip
    record = spending.record(ALPHA, [row])
    assert record["spent"] == 0.03 and record["next_alpha"] == pytest.approx(
        ALPHA * 6 / np.pi**2 / 4
    )


def test_maas_experiment_simulate_prints_and_writes_the_rates(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    maas = Path(sys.executable).with_name("maas")
    done = subprocess.run([str(maas), "experiment", "simulate", "--aa", "--units", "4,8",
                           "--runs", "30", "--json", str(out)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result["units"]) == {"4", "8"}
    four = result["units"]["4"]
    assert {"false_ship", "false_rollback", "shipped", "runs"} <= set(four) and four["runs"] == 30
    assert four["false_ship"] == 0.0 and four["false_ship_se"] > 0  # none, with its MC error
    assert "false SHIP" in done.stdout and "nominal A/A false SHIP ≤ 0.0125" in done.stdout
    bad = subprocess.run([str(maas), "experiment", "simulate", "--aa", "--effect", "0.1"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "exclude each other" in bad.stderr
