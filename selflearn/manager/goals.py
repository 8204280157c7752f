"""Goals: a Teacher metric to move toward a target, constraints every shipped change must keep,
and the parameters cycles may change for it. Stored in selflearn.goals.

A goal's direction is its metric's (a SHIP verdict means better in that direction), so a goal
that asks for the opposite is refused rather than silently optimised the wrong way.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from maas.errors import Conflict, NotFound
from maas.params import SPEC_BY_NAME
from selflearn.queries import q
from selflearn.teacher.metrics import METRICS

STATUSES = ("active", "paused", "achieved", "archived")


class Constraint(BaseModel):
    metric: str = Field(description="a Teacher metric, e.g. latency_p95_ms")
    op: Literal["<=", ">="] = "<="
    value: float = Field(allow_inf_nan=False)

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; one of {', '.join(sorted(METRICS))}")
        return v

    def holds(self, value: float | None) -> bool:
        if value is None:
            return True  # not measured: nothing to hold against
        return value <= self.value if self.op == "<=" else value >= self.value

    def text(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def check_space(space: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Every searched parameter is numeric and its range inside its guard range."""
    for name, (low, high) in space.items():
        spec = SPEC_BY_NAME.get(name)
        if spec is None or isinstance(spec.default, bool):
            raise ValueError(f"{name!r} is not a numeric parameter")
        if not low < high:
            raise ValueError(f"{name}: the low end {low:g} must be below the high end {high:g}")
        if not spec.low <= low < high <= spec.high:
            raise ValueError(
                f"{name}: [{low:g}, {high:g}] must lie in its guard range "
                f"[{spec.low:g}, {spec.high:g}]"
            )
    return space


class GoalIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    metric: str = Field(description="the primary metric (METRICS.md section 10)")
    direction: Literal["increase", "decrease"] | None = Field(
        default=None, description="must match the metric's own direction; default: that"
    )
    target: float = Field(allow_inf_nan=False)
    constraints: list[Constraint] = Field(default_factory=list, max_length=20)
    search_space: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="{parameter: [low, high]}; empty: default levers"
    )

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        return Constraint._known(v)

    @field_validator("search_space")
    @classmethod
    def _space(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        return check_space(v)

    @model_validator(mode="after")
    def _direction(self) -> GoalIn:
        natural = "increase" if METRICS[self.metric].direction > 0 else "decrease"
        if self.direction not in (None, natural):
            raise ValueError(f"{self.metric} can only be improved by a {natural}")
        self.direction = "increase" if natural == "increase" else "decrease"
        return self


class GoalPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    target: float | None = Field(default=None, allow_inf_nan=False)
    constraints: list[Constraint] | None = Field(default=None, max_length=20)
    search_space: dict[str, tuple[float, float]] | None = None
    status: Literal["active", "paused", "achieved", "archived"] | None = None

    @field_validator("search_space")
    @classmethod
    def _space(
        cls, v: dict[str, tuple[float, float]] | None
    ) -> dict[str, tuple[float, float]] | None:
        return None if v is None else check_space(v)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def view(row: Any) -> dict[str, Any]:
    """A goal with its progress: the latest value on the parameters in force vs the target."""
    goal = dict(row)
    goal["constraints"] = _json(goal["constraints"])
    goal["search_space"] = _json(goal["search_space"])
    goal["progress"] = progress(goal)
    goal["met"] = met(goal["direction"], goal["current"], goal["target"])
    return goal


def met(direction: str, value: float | None, target: float) -> bool:
    if value is None:
        return False
    return value >= target if direction == "increase" else value <= target


def progress(goal: dict[str, Any]) -> float | None:
    """Share of the way from the first measurement to the target (0..1); None: not measured."""
    first, current, target = goal.get("first"), goal.get("current"), goal["target"]
    if current is None:
        return None
    if met(goal["direction"], current, target):
        return 1.0
    if first is None or first == target:
        return 0.0
    return max(0.0, min(1.0, float(current - first) / float(target - first)))


def constraints(goal: dict[str, Any]) -> list[Constraint]:
    return [Constraint(**c) for c in goal["constraints"]]


async def create(conn: Any, body: GoalIn) -> dict[str, Any]:
    """A goal whose name an unarchived goal has already is refused (409): two goals by one name
    would be told apart by nobody."""
    name = body.name.strip().casefold()
    if any(g["name"].strip().casefold() == name for g in await list_goals(conn)):
        raise Conflict(
            f"a goal named {body.name.strip()!r} exists: archive it or pick another name"
        )
    goal_id = await conn.fetchval(
        q("mgr_goal_insert"), body.name, body.description, body.metric, body.direction,
        body.target, [c.model_dump() for c in body.constraints],
        {k: list(v) for k, v in body.search_space.items()},
    )  # fmt: skip
    return await get(conn, goal_id)


async def get(conn: Any, goal_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(q("mgr_goal_get"), goal_id)
    if row is None:
        raise NotFound(f"goal {goal_id} not found")
    return view(row)


async def list_goals(conn: Any, archived: bool = False) -> list[dict[str, Any]]:
    return [await get(conn, r["id"]) for r in await conn.fetch(q("mgr_goal_list"), archived)]


async def update(conn: Any, goal_id: int, patch: GoalPatch) -> dict[str, Any]:
    goal = await get(conn, goal_id)
    changes = patch.model_dump(exclude_none=True)
    merged = {**goal, **changes}
    if patch.constraints is not None:
        merged["constraints"] = [c.model_dump() for c in patch.constraints]
    if patch.search_space is not None:
        merged["search_space"] = {k: list(v) for k, v in patch.search_space.items()}
    await conn.fetchval(
        q("mgr_goal_update"), goal_id, merged["name"], merged["description"], merged["target"],
        merged["constraints"], merged["search_space"], merged["status"],
    )  # fmt: skip
    return await get(conn, goal_id)


async def delete(conn: Any, goal_id: int) -> None:
    if await conn.fetchval(q("mgr_goal_delete"), goal_id) is None:
        raise NotFound(f"goal {goal_id} not found")


def violated(
    goal: dict[str, Any] | None, metrics: dict[str, Any], arm: str = "variant"
) -> list[str]:
    """Goal constraints the measured arm breaks (absolute limits, beside the guardrails)."""
    if goal is None:
        return []
    out = []
    for c in constraints(goal):
        value = (metrics.get(c.metric) or {}).get(arm)
        if not c.holds(value):
            out.append(f"{c.text()} broken: {value:.4g}")
    return out


def hold_outcome(verdict: str, broken: list[str]) -> str:
    if verdict == "SHIP" and broken:
        return "blocked by a constraint"
    return {"HOLD": "held", "ROLLBACK": "variant harmful", "INVALID": "invalid"}.get(
        verdict, "held"
    )
