"""The Teacher's statistics without a database or an LLM: the A/A proof against noise, power on
known synthetic effects, Holm, SRM, and the verdict order on whole synthetic experiments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from selflearn.teacher import stats
from selflearn.teacher.analysis import Inputs, analyse
from selflearn.teacher.metrics import ArmData, Judged, Probe, Retrieved, RunCost
from selflearn.teacher.spec import parse

ALPHA = 0.05
EXPERIMENTS, UNITS = 2000, 40


def _population(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Unit effects shared by both arms (the pairing), as scenario × persona episodes have."""
    shape = (EXPERIMENTS, UNITS)
    return {
        "quality": rng.beta(4, 3, shape),  # a share metric, e.g. recall of an episode
        "latency": rng.lognormal(5.0, 0.4, shape),  # ms
    }


def _arm(rng: np.random.Generator, pop: dict[str, np.ndarray], lift: float = 0.0,
         slow: float = 1.0) -> dict[str, np.ndarray]:  # fmt: skip
    """One arm's measurements of the same units: noise around each unit's own level."""
    quality = np.clip(pop["quality"] + lift + rng.normal(0, 0.12, pop["quality"].shape), 0, 1)
    latency = pop["latency"] * slow * rng.lognormal(0, 0.15, pop["latency"].shape)
    return {"quality": quality, "latency": latency}


def _verdicts(base: dict[str, np.ndarray], var: dict[str, np.ndarray], test: str,
              paired: bool = True) -> np.ndarray:  # fmt: skip
    """The production decision rule over every simulated experiment at once: primary =
    quality (higher is better), guardrail = latency (lower is better, margin 25 ms)."""
    if paired:
        primary = stats.paired_pvalues(var["quality"] - base["quality"], 0.0, test)
        guard = stats.paired_pvalues(-(var["latency"] - base["latency"]), 25.0, test)
    else:
        kind = stats.UNPAIRED_FOR[test]
        primary = stats.unpaired_pvalues(var["quality"], base["quality"], 0.0, kind)
        guard = stats.unpaired_pvalues(-var["latency"], -base["latency"], 25.0, kind)
    delta = (var["quality"] - base["quality"]).mean(axis=-1)
    invalid = np.zeros(EXPERIMENTS, dtype=bool)
    verdict, _, _ = stats.decide(invalid, primary, delta, [guard], ALPHA)
    return verdict


def _rate(verdicts: np.ndarray, *kinds: str) -> float:
    return float(np.isin(verdicts, kinds).mean())


@pytest.mark.parametrize(("test", "paired"), [("t", True), ("wilcoxon", True), ("t", False),
                                              ("wilcoxon", False)])  # fmt: skip
def test_aa_false_ship_or_rollback_rate_stays_under_alpha(test: str, paired: bool) -> None:
    rng = np.random.default_rng(20261126)
    pop = _population(rng)
    verdicts = _verdicts(_arm(rng, pop), _arm(rng, pop), test, paired)
    false_rate = _rate(verdicts, stats.SHIP, stats.ROLLBACK)
    print(f"A/A {test} paired={paired}: false SHIP/ROLLBACK {false_rate:.4f} over {EXPERIMENTS}")
    assert false_rate <= ALPHA
    assert _rate(verdicts, stats.HOLD) >= 1 - ALPHA


def test_aa_rate_is_measured_not_trivially_zero() -> None:
    """Without the correction and the guardrail, the same data would ship about α/2 of the time:
    the A/A figure above comes from a test that can fire."""
    rng = np.random.default_rng(7)
    pop = _population(rng)
    base, var = _arm(rng, pop), _arm(rng, pop)
    p = stats.paired_pvalues(var["quality"] - base["quality"], 0.0, "t").two_sided
    better = (var["quality"] - base["quality"]).mean(axis=-1) > 0
    assert 0.01 < float(((p < ALPHA) & better).mean()) < ALPHA


@pytest.mark.parametrize("test", ["t", "wilcoxon"])
def test_a_real_improvement_ships_and_a_real_slowdown_rolls_back(test: str) -> None:
    rng = np.random.default_rng(11)
    pop = _population(rng)
    better = _verdicts(_arm(rng, pop), _arm(rng, pop, lift=0.10), test)
    assert _rate(better, stats.SHIP) >= 0.8  # power at a 10-point lift, 40 paired units
    slower = _verdicts(_arm(rng, pop), _arm(rng, pop, lift=0.10, slow=1.5), test)
    assert _rate(slower, stats.ROLLBACK) >= 0.95  # ROLLBACK wins over SHIP


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    adjusted = stats.holm(np.array([0.01, 0.04, 0.03, 0.2]))
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.2])
    rows = stats.holm(np.array([[0.01, 0.02], [0.5, 0.001]]))
    np.testing.assert_allclose(rows, [[0.02, 0.02], [0.5, 0.002]])  # row by row, vectorised


def test_srm_flags_an_uneven_split() -> None:
    assert stats.srm_pvalue(100, 100) == pytest.approx(1.0)
    assert stats.srm_pvalue(130, 70) < stats.SRM_ALPHA
    assert stats.srm_pvalue(105, 95) > 0.4


def test_cluster_bootstrap_ci_is_wider_when_scenarios_differ() -> None:
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(10), 6)
    iid = rng.normal(0.1, 0.2, 60)
    clustered = iid + np.repeat(rng.normal(0, 0.3, 10), 6)  # a shared effect per scenario
    lo_i, hi_i = stats.paired_ci(iid, clusters, 0.95, 2000, 1)
    lo_c, hi_c = stats.paired_ci(clustered, clusters, 0.95, 2000, 1)
    assert lo_i < iid.mean() < hi_i and lo_c < clustered.mean() < hi_c
    assert hi_c - lo_c > 1.5 * (hi_i - lo_i)


# Whole experiments through analyse(): synthetic arms as the database would hand them over.

SPEC: dict[str, Any] = {
    "name": "synthetic", "goal": "test", "baseline": {}, "variant": {"retrieval.min_score": 1.0},
    "primary_metric": "retrieval_recall", "min_sample": 10, "alpha": ALPHA,
    "guardrails": [{"metric": "hallucination_rate", "margin": 0.02},
                   {"metric": "latency_p95_ms", "margin": 50}],
    "bootstrap_resamples": 500,
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


def test_analysis_ships_a_clear_improvement_with_deltas_cis_and_pvalues() -> None:
    rng = np.random.default_rng(5)
    v = analyse(Inputs(parse(SPEC), synthetic_arm(rng, 30, 0.5), synthetic_arm(rng, 30, 0.9)))
    assert v.verdict == "SHIP", v.reasons
    recall = v.metrics["retrieval_recall"]
    assert recall.delta is not None and recall.ci is not None and recall.delta > 0.25
    assert recall.ci[0] > 0 and recall.p_holm is not None and recall.p_holm < ALPHA
    assert v.metrics["latency_p95_ms"].p_noninferior is not None
    assert "Ship the variant" in v.recommendations[0]
    assert set(v.as_json()["metrics"]["retrieval_recall"]) >= {"baseline", "variant", "delta",
                                                              "ci", "p_value"}  # fmt: skip


def test_analysis_rolls_back_when_a_guardrail_breaks_even_if_primary_improves() -> None:
    rng = np.random.default_rng(6)
    base, var = synthetic_arm(rng, 30, 0.5), synthetic_arm(rng, 30, 0.9, halluc=0.6)
    v = analyse(Inputs(parse(SPEC), base, var))
    assert v.verdict == "ROLLBACK" and "hallucination_rate" in v.reasons[0]


def test_analysis_is_invalid_on_srm_few_samples_or_an_inconsistent_judge() -> None:
    rng = np.random.default_rng(8)
    uneven = analyse(Inputs(parse(SPEC), synthetic_arm(rng, 30, 0.5),
                            synthetic_arm(rng, 30, 0.9, drop=20)))  # fmt: skip
    assert uneven.verdict == "INVALID" and "sample ratio mismatch" in uneven.reasons[0]
    few = analyse(Inputs(parse(SPEC), synthetic_arm(rng, 5, 0.5), synthetic_arm(rng, 5, 0.9)))
    assert few.verdict == "INVALID" and any("too few samples" in r for r in few.reasons)
    shaky = Inputs(parse(SPEC), synthetic_arm(rng, 30, 0.5), synthetic_arm(rng, 30, 0.9),
                   judge_agreement=0.6)  # fmt: skip
    judged = analyse(shaky)
    assert judged.verdict == "INVALID" and "judge inconsistent" in judged.reasons[0]


def test_unpaired_analysis_uses_welch_and_still_finds_the_effect() -> None:
    rng = np.random.default_rng(9)
    base = synthetic_arm(rng, 30, 0.5)
    var = synthetic_arm(rng, 30, 0.9)
    for p in var.probes:  # other episodes: nothing to pair with
        object.__setattr__(p, "persona", p.persona + "-other")
    v = analyse(Inputs(parse(SPEC), base, var, paired=False))
    assert v.metrics["retrieval_recall"].test == "welch"
    assert v.verdict == "SHIP", v.reasons


def test_constant_differences_get_the_exact_tests_p_not_zero() -> None:
    """Identical pairs make t and Wilcoxon undefined; the sign test's exact p stands in."""
    from selflearn.teacher.stats import paired_pvalues, unpaired_pvalues

    few = paired_pvalues(np.ones(4), 0.0, "t")
    assert float(few.two_sided) == pytest.approx(2 * 0.5**4)  # 0.125: four pairs prove nothing
    many = paired_pvalues(np.ones(12), 0.0, "wilcoxon")
    assert float(many.two_sided) == pytest.approx(2 * 0.5**12) and float(many.two_sided) > 0
    apart = unpaired_pvalues(np.ones(3), np.zeros(3), 0.0, "welch")
    assert float(apart.two_sided) == pytest.approx(2 / 20)  # 1 / C(6, 3), doubled
