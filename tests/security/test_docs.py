"""`/docs` is served from this process under a strict CSP; FastAPI's defaults loaded Swagger UI
and ReDoc from a CDN with an inline script on the session cookie's origin."""

from __future__ import annotations

import re
from typing import Any


async def test_the_docs_page_loads_only_our_own_scripts_under_a_csp(make_api: Any) -> None:
    async with make_api() as api:
        page = await api.client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
        scripts = re.findall(r"<script([^>]*)>", page.text)
        assert scripts and all(re.fullmatch(r' src="/docs/[^"]+"', s) for s in scripts), scripts
        assert "http" not in page.text  # no other origin at all
        for path in re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text):
            assert (await api.client.get(path)).status_code == 200, path
        assert (await api.client.get("/redoc")).status_code == 404  # not served
        schema = (await api.client.get("/openapi.json")).json()
        assert "/v1/chat" in schema["paths"]
