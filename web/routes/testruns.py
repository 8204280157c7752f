"""The test runner page: suites, a run in mock mode with live progress, history.

The page is a shell; tests.js drives the engine through its JSON API (/v1/test-suites,
/v1/test-runs) with the session cookie, so the page and CI use the same engine and routes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from web.render import render
from web.routes.common import Who

router = APIRouter(include_in_schema=False)


@router.get("/ui/tests")
async def tests_page(request: Request, who: Who) -> Response:
    return render(request, "pages/tests.html", who)
