"""Geometry of the dashboard's and the reports' inline SVG (attributes only: the pages' CSP
allows no inline style). Pure functions, unit-tested."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
class Series:
    points: list[tuple[float, float, str, str]]  # x, y, source, label
    line: str  # polyline points of the in-force measurements
    marks: list[tuple[float, str]]  # x of a parameter change, its label
    target_y: float | None
    y_ticks: list[tuple[float, str]]
    width: float
    height: float


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


def goal_series(
    measurements: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    target: float,
    width: float = 560,
    height: float = 160,
) -> Series:
    """A goal's metric over time (x: time, y: value; the target as a line), parameter changes
    (activations, rollbacks) as vertical marks."""
    pad = 24.0
    times = [_ts(m["measured_at"]) for m in measurements] + [_ts(c["at"]) for c in changes]
    values = [float(m["value"]) for m in measurements] + [target]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    v0, v1 = min(values), max(values)
    if v1 - v0 < 1e-9:
        v0, v1 = v0 - 1.0, v1 + 1.0

    def x(t: float) -> float:
        return round(pad + (t - t0) / ((t1 - t0) or 1.0) * (width - 2 * pad), 1)

    def y(v: float) -> float:
        return round(height - pad - (v - v0) / (v1 - v0) * (height - 2 * pad), 1)

    points = [(x(_ts(m["measured_at"])), y(float(m["value"])), m["source"],
               f"{m['source']} {float(m['value']):.4g} ({m.get('param_version') or '?'})")
              for m in measurements]  # fmt: skip
    line = " ".join(f"{px},{py}" for (px, py, _, _), m in zip(points, measurements, strict=True)
                    if m.get("in_force"))  # fmt: skip
    marks = [(x(_ts(c["at"])), f"{c['action']} → {c.get('version') or 'own'}") for c in changes]
    ticks = [(y(v), f"{v:.3g}") for v in (v0, (v0 + v1) / 2, v1)]
    return Series(points, line, marks, y(target), ticks, width, height)
