"""A bad MAAS_* setting stops the CLI with its variable named, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.__main__ import main


def test_bad_settings_are_named_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MAAS_SEARCH_POOL_MAX", "0")
    monkeypatch.setenv("MAAS_EMBED_THREADS", "many")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "MAAS_SEARCH_POOL_MAX='0': Input should be greater than or equal to 1" in err
    assert "MAAS_EMBED_THREADS='many': Input should be a valid integer" in err
    assert "Traceback" not in err
