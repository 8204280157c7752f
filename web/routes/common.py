"""Small helpers shared by the page modules."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from maas.api.deps import get_runtime
from maas.runtime.context import Runtime
from web.auth import Viewer, user_viewer, viewer
from web.render import render

Rt = Annotated[Runtime, Depends(get_runtime)]
Who = Annotated[Viewer, Depends(viewer)]
Owner = Annotated[Viewer, Depends(user_viewer)]
PAGE = 25


MAX_FIELDS = 20  # our forms have at most 3


class BadForm(Exception):
    """A form body that is not one of ours (too many fields): answered with a 400 page."""


async def form(request: Request) -> dict[str, str]:
    """A urlencoded form (no python-multipart needed); the body limit middleware caps its size."""
    raw = (await request.body()).decode("utf-8", "replace")
    try:
        fields = parse_qs(raw, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:  # parse_qs refuses more fields than max_num_fields this way
        raise BadForm(f"A form has at most {MAX_FIELDS} fields.") from None
    return {k: v[0] for k, v in fields.items()}


def not_found(request: Request, who: Viewer | None, what: str) -> HTMLResponse:
    """404 for what does not exist and for what belongs to someone else alike."""
    return render(request, "pages/error.html", who, 404, title="Not found", message=what)


def forbidden(request: Request, who: Viewer | None, message: str) -> HTMLResponse:
    return render(request, "pages/error.html", who, 403, title="Not allowed", message=message)
