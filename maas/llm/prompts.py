"""Prompt templates (prompts/*.j2), loaded once.

Stored and user text never goes into a prompt as it is where it could pass for our own words: in a
tagged block it goes through the `data` filter (`<`, `>`, `&` as entities, so nothing in it can
close the block or open another), and a transcript goes as JSON (maas/llm/client.py), whose
string escaping keeps each message's text inside its own string."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2


def as_data(text: str) -> str:
    """Text for the inside of a tagged block: no `<` or `>` left to end or open a tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "prompts"),
    autoescape=False,  # plain text for a model, never HTML; stored text goes through `data`
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
)
_env.filters["data"] = as_data


@cache
def _template(name: str) -> jinja2.Template:
    return _env.get_template(f"{name}.j2")


def render(name: str, **values: Any) -> str:
    return _template(name).render(**values).strip()
