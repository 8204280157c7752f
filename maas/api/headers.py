"""Security headers on every response: no MIME sniffing, no framing, and for anything that is not
an HTML page a Content-Security-Policy that lets nothing run (stored text stays inert)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = b"default-src 'none'; frame-ancestors 'none'"
ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in ALWAYS if k not in names]
                html = any(k.lower() == b"content-type" and b"html" in v for k, v in headers)
                if not html and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", API_CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
