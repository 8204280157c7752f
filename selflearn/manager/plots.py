"""Geometry of the dashboard's and the reports' inline SVG (attributes only: the pages' CSP
allows no inline style). Pure functions, unit-tested."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Bar:
    """One metric's effect: the delta and its CI on a scale symmetric around zero."""

    name: str
    role: str
    delta: float | None
    low: float | None  # x of the CI's ends and of the delta, in 0..width
    high: float | None
    x: float | None
    zero: float
    better: bool | None  # the delta points the metric's good way (None: no delta)
    label: str


def forest(rows: list[dict[str, Any]], width: float, directions: dict[str, int]) -> list[Bar]:
    """Each metric on its own scale (metrics have different units): zero in the middle, the
    widest of |delta|, |CI ends| at the edges."""
    zero = width / 2
    bars = []
    for r in rows:
        delta, ci = r.get("delta"), r.get("ci") or [None, None]
        ends = [abs(v) for v in (delta, *ci) if v is not None]
        scale = (zero - 4) / max(ends) if ends and max(ends) > 0 else 0.0

        def at(v: float | None, s: float = scale) -> float | None:
            return None if v is None else round(zero + v * s, 1)

        way = directions.get(r["name"], 1)
        better = None if not delta else delta * way > 0
        text = "n/a" if delta is None else f"{delta:+.4g}"
        if ci[0] is not None and ci[1] is not None:
            text += f" [{ci[0]:+.3g}, {ci[1]:+.3g}]"
        bars.append(Bar(r["name"], r.get("role", ""), delta, at(ci[0]), at(ci[1]), at(delta),
                        zero, better, text))  # fmt: skip
    return bars


@dataclass(frozen=True)
class Point:
    """One measurement: `kind` force (on the parameters in force: a micro cycle's batch or a
    re-measurement), baseline (an experiment's baseline arm), variant (an arm never activated,
    drawn hollow) or shipped (an arm whose version was activated later)."""

    x: float
    y: float
    kind: str
    label: str
    ci: tuple[float, float] | None  # y of the interval's ends


@dataclass(frozen=True)
class Mark:
    x: float  # a parameter change (activation, rollback …)
    label: str
    anchor: str  # its label's text-anchor: "end" near the right edge, so it is never clipped


@dataclass(frozen=True)
class Series:
    points: list[Point]
    line: str  # polyline points of the in-force measurements
    marks: list[Mark]
    target_y: float | None
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]  # the time axis (UTC)
    width: float
    height: float
    left: float  # the plot area's edges
    right: float
    bottom: float


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


LEFT, RIGHT, TOP, BOTTOM = 44.0, 12.0, 22.0, 24.0  # room for the tick and mark labels
NUDGE = {"baseline": -4.0, "variant": 4.0, "shipped": 4.0}  # an experiment's arms side by side


def _kind(m: dict[str, Any], activated: set[str]) -> str:
    if m["source"] == "variant":
        return "shipped" if m.get("param_version") in activated else "variant"
    return "baseline" if m["source"] == "baseline" else "force"


def _label(m: dict[str, Any], kind: str) -> str:
    ci = ""
    if m.get("ci_low") is not None and m.get("ci_high") is not None:
        ci = f" [{float(m['ci_low']):.4g}, {float(m['ci_high']):.4g}]"
    return f"{kind} {float(m['value']):.4g}{ci} ({m.get('param_version') or 'built-in'})"


def goal_series(
    measurements: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    target: float,
    width: float = 560,
    height: float = 180,
) -> Series:
    """A goal's metric over time (x: time, y: value with its CI; the target as a line),
    parameter changes (activations, rollbacks) as vertical marks."""
    times = [_ts(m["measured_at"]) for m in measurements] + [_ts(c["at"]) for c in changes]
    values = [float(m["value"]) for m in measurements] + [target]
    values += [float(m[k]) for m in measurements for k in ("ci_low", "ci_high")
               if m.get(k) is not None]  # fmt: skip
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    v0, v1 = min(values), max(values)
    if v1 - v0 < 1e-9:
        v0, v1 = v0 - 1.0, v1 + 1.0

    def x(t: float) -> float:
        return round(LEFT + (t - t0) / ((t1 - t0) or 1.0) * (width - LEFT - RIGHT), 1)

    def y(v: float) -> float:
        return round(height - BOTTOM - (v - v0) / (v1 - v0) * (height - TOP - BOTTOM), 1)

    activated = {f"tuner-{c['version']}" for c in changes if c["action"] == "activate"}
    points = []
    for m in measurements:
        kind = _kind(m, activated)
        ends = (m.get("ci_low"), m.get("ci_high"))
        ci = None if None in ends else (y(float(ends[0])), y(float(ends[1])))  # type: ignore[arg-type]
        px = x(_ts(m["measured_at"])) + NUDGE.get(kind, 0.0)
        points.append(Point(px, y(float(m["value"])), kind, _label(m, kind), ci))
    line = " ".join(f"{p.x},{p.y}" for p, m in zip(points, measurements, strict=True)
                    if m.get("in_force"))  # fmt: skip
    marks = []
    for c in changes:
        at = x(_ts(c["at"]))
        version = f"tuner-{c['version']}" if c.get("version") else "built-in"
        marks.append(Mark(at, f"{c['action']} → {version}", "end" if at > width / 2 else "start"))
    y_ticks = [(y(v), f"{v:.3g}") for v in (v0, (v0 + v1) / 2, v1)]
    x_ticks = [(x(t), datetime.fromtimestamp(t, UTC).strftime("%d %b %H:%M"))
               for t in ((t0, (t0 + t1) / 2, t1) if t1 > t0 else (t0,))]  # fmt: skip
    return Series(points, line, marks, y(target), y_ticks, x_ticks, width, height,
                  LEFT, width - RIGHT, height - BOTTOM)  # fmt: skip
