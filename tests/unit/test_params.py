"""Impact factors: guard ranges, unknown names, MAAS_PARAMS overrides with their own version."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from maas.params import SPECS, BuiltinParams, defaults, params_from_settings, validate
from maas.settings import Settings


def test_defaults_are_inside_their_guard_ranges() -> None:
    for spec in SPECS:
        assert spec.check(spec.default) == spec.default


def test_out_of_range_wrong_type_and_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        validate({"context.max_tokens": 10})
    with pytest.raises(ValueError, match="integer"):
        validate({"context.max_tokens": 100.5})
    with pytest.raises(ValueError, match="boolean"):
        validate({"context.include_dates": 1})
    with pytest.raises(ValueError, match="unknown"):
        validate({"context.max_tokenz": 100})


def test_overrides_from_settings_get_a_content_version(tmp_path: Path) -> None:
    plain = params_from_settings(Settings(_env_file=None, data_dir=tmp_path))
    assert asyncio.run(plain.active()) == asyncio.run(BuiltinParams().active())
    tuned = params_from_settings(
        Settings(_env_file=None, data_dir=tmp_path, params={"context.max_tokens": 800})
    )
    active = asyncio.run(tuned.active())
    assert active["context.max_tokens"] == 800 and active.version.startswith("env-")
    assert active.values.keys() == defaults().values.keys()


def test_every_parameter_is_documented_in_impacts_md() -> None:
    impacts = (Path(__file__).parents[2] / "IMPACTS.md").read_text()
    missing = [s.name for s in SPECS if f"`{s.name}`" not in impacts]
    assert missing == []
