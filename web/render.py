"""Jinja2 rendering with autoescape on, and the headers every page carries.

All user and model text reaches the page through autoescaped `{{ }}` (never `|safe`) or, in the
browser, through `textContent`; the CSP lets only our own static files run, so even a missed
escape could not execute a stored `<script>`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from maas.api.deps import runtime
from web.auth import Viewer

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",  # pages hold private data
    "Referrer-Policy": "same-origin",
}


def when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def short(value: Any) -> str:
    return str(value)[:8]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, ms=ms, short=short)
    return env


ENV = _environment()


def mode_badge(request: Request) -> dict[str, str]:
    """Offline mode is named as such: the UI never presents extractive answers as an LLM's."""
    settings = runtime(request).settings
    if settings.offline:
        return {"kind": "offline", "label": "offline mode · extractive answers, no LLM"}
    return {"kind": "llm", "label": f"LLM · {settings.llm_model}"}


def render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = ENV.get_template(template).render(
        viewer=viewer, mode=mode_badge(request), path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
