"""Prompt templates (prompts/*.j2), loaded once."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "prompts"),
    autoescape=False,  # plain text for a model, never HTML
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
)


@cache
def _template(name: str) -> jinja2.Template:
    return _env.get_template(f"{name}.j2")


def render(name: str, **values: Any) -> str:
    return _template(name).render(**values).strip()
