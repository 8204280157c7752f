"""Test suites: scripted dialogs with expectations, as JSON files validated by one schema.

The pydantic models are the schema; `seeds/test_suites/schema.json` is generated from them (a
test keeps the two equal), so editors can validate a suite file before MaaS ever loads it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from maas.api.inputs import NonBlank, Text
from maas.errors import MaasError
from maas.testsuite.patterns import PatternError, compiled

NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
ACTOR = r"^[a-z][a-z0-9_-]{0,31}$"


class SuiteError(MaasError):
    """A suite that does not validate; the message names the file (or source) and the field."""

    status_code = 422
    code = "invalid_suite"

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Regex(Strict):
    """A memory whose text matches this regular expression (case-insensitive, RE2 syntax)."""

    regex: str = Field(min_length=1, max_length=500)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        """Refused here (422 for an inline suite), so no pattern reaches a run uncompiled."""
        try:
            compiled(value)
        except PatternError as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


# A plain string matches as a case-insensitive substring; {"regex": ...} as a regex search.
Matcher = Annotated[str, Field(min_length=1, max_length=500)] | Regex
Needle = Annotated[str, Field(min_length=1, max_length=500)]


class SendExpect(Strict):
    status: Literal["COMPLETED", "FAILED"] = "COMPLETED"
    within_stages: int | None = Field(
        default=None, ge=1, le=100, description="at most this many stage attempts (3 = no retry)"
    )
    answer_contains: list[Needle] = Field(default_factory=list, max_length=50)
    answer_not_contains: list[Needle] = Field(default_factory=list, max_length=50)
    memory_retrieved: list[Matcher] = Field(default_factory=list, max_length=50)
    memory_not_retrieved: list[Matcher] = Field(default_factory=list, max_length=50)
    memory_used: list[Matcher] = Field(
        default_factory=list, max_length=50, description="retrieved and packed into the context"
    )


class CloseExpect(Strict):
    memories_created_min: int | None = Field(default=None, ge=0, le=10_000)
    memory_stored: list[Matcher] = Field(default_factory=list, max_length=50)
    memory_not_stored: list[Matcher] = Field(default_factory=list, max_length=50)


class Step(Strict):
    user: str = Field(pattern=ACTOR, description="logical user; a fresh user per test run")
    thread: str = Field(pattern=ACTOR, description="logical thread of that user")
    description: Text | None = Field(default=None, max_length=300)


class Send(Step):
    action: Literal["send"]
    message: NonBlank = Field(min_length=1, max_length=32_000)
    expect: SendExpect = Field(default_factory=SendExpect)


class HistoryMessage(Strict):
    role: Literal["user", "assistant", "other"]
    text: NonBlank = Field(min_length=1, max_length=32_000)
    speaker: Text | None = Field(default=None, max_length=200)
    created_at: datetime | None = None


class Import(Step):
    action: Literal["import"]
    messages: list[HistoryMessage] = Field(min_length=1, max_length=500)


class Close(Step):
    action: Literal["close"]
    expect: CloseExpect = Field(default_factory=CloseExpect)


AnyStep = Annotated[Send | Import | Close, Field(discriminator="action")]


class Suite(Strict):
    name: str = Field(pattern=NAME)
    description: Text = Field(default="", max_length=2000)
    steps: list[AnyStep] = Field(min_length=1, max_length=200)

    def digest(self) -> str:
        return hashlib.sha256(canonical(self).encode()).hexdigest()


def canonical(suite: Suite) -> str:
    return json.dumps(suite.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def describe(step: Send | Import | Close) -> str:
    if step.description:
        return step.description
    where = f"{step.user}/{step.thread}"
    if isinstance(step, Send):
        text = step.message if len(step.message) <= 60 else step.message[:57] + "..."
        return f"{where}: send {text!r}"
    if isinstance(step, Import):
        return f"{where}: import {len(step.messages)} message(s)"
    return f"{where}: close the thread and wait for the archivist"


def _where(loc: tuple[Any, ...]) -> str:
    """('steps', 2, 'send', 'expect', 'x') -> 'steps[2].expect.x' (the union tag is dropped)."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and isinstance(loc[i - 1], int) and part in ("send", "import", "close"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def explain(source: str, exc: ValidationError) -> SuiteError:
    problems = [f"{_where(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
    return SuiteError(source, "; ".join(problems))


def parse(data: Any, source: str = "inline suite") -> Suite:
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise explain(source, exc) from None


def load_file(path: Path, match_name: bool = True) -> Suite:
    """Load and validate one suite file; a shipped suite's name must be its file name."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(path.name, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(path.name, f"not JSON: line {exc.lineno}: {exc.msg}") from None
    suite = parse(data, path.name)
    if match_name and suite.name != path.stem:
        raise SuiteError(path.name, f"name: {suite.name!r} must equal the file name {path.stem!r}")
    return suite


def default_dir() -> Path:
    packaged = Path(__file__).resolve().parent.parent / "_seeds" / "test_suites"
    return (
        packaged
        if packaged.is_dir()
        else Path(__file__).resolve().parents[2] / "seeds" / "test_suites"
    )


def suite_files(folder: Path | None = None) -> list[Path]:
    return sorted(p for p in (folder or default_dir()).glob("*.json") if p.name != "schema.json")


def load_all(folder: Path | None = None) -> tuple[dict[str, Suite], list[SuiteError]]:
    """Every valid suite by name, and the errors of the invalid files (reported, not fatal)."""
    suites: dict[str, Suite] = {}
    errors: list[SuiteError] = []
    for path in suite_files(folder):
        try:
            suites[path.stem] = load_file(path)
        except SuiteError as exc:
            errors.append(exc)
    return suites, errors


def json_schema() -> dict[str, Any]:
    schema = Suite.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MaaS test suite",
        **schema,
    }
