"""`/docs`: the interactive API documentation, served from this process under a strict CSP.

FastAPI's default pages load Swagger UI (and ReDoc) from a CDN with an inline script, no
Content-Security-Policy and no integrity check, on the origin of the web UI's session cookie: a
compromised CDN could act as the logged-in user. Here the Swagger UI files come from the
`fastapi-offline` package (MIT; Swagger UI itself is Apache-2.0), the page's own script is a file
too, and the CSP lets only this origin's scripts run. ReDoc is not served (it injects inline
styles, which the CSP refuses).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "same-origin"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MaaS API</title>
<link rel="icon" href="/docs/static/favicon.png">
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=HEADERS)


@router.get("/docs/init.js")
async def docs_script() -> Response:
    return Response(INIT, media_type="text/javascript", headers=HEADERS)


def install(app: FastAPI) -> None:
    app.mount("/docs/static", StaticFiles(directory=ASSETS), name="docs-static")
    app.include_router(router)
