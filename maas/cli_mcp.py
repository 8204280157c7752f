"""`maas mcp`: the MCP server over stdio, for desktop clients (Claude Desktop, Cursor, ...).

It talks to a running `maas serve` (MAAS_URL, default http://HOST:PORT) as the user whose key is
in MAAS_API_KEY (else the demo user's key from the data directory). Stdout carries only MCP
messages; anything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping

from maas.cli_chat import _default_key
from maas.client import AsyncMaaS
from maas.mcpserver.tools import build_server
from maas.settings import Settings


def run_mcp(url: str | None, settings: Settings) -> int:
    key = os.environ.get("MAAS_API_KEY") or _default_key(settings)
    if not key:
        print("maas mcp: set MAAS_API_KEY to a user key", file=sys.stderr)
        return 2
    base = url or os.environ.get("MAAS_URL") or f"http://{settings.host}:{settings.port}"

    def open_client(_headers: Mapping[str, str] | None) -> AsyncMaaS:
        return AsyncMaaS(base, key)

    asyncio.run(build_server(open_client).run_stdio_async())
    return 0
