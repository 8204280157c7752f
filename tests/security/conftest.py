"""Security tests: every route of the app, two tenants, a hostile one among them."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

# /metrics: counts only, no user data (tests/integration/test_metrics.py checks none leaks).
PUBLIC = {"/health", "/metrics", "/openapi.json", "/docs", "/docs/init.js"}

# A valid body for each route that takes one; a new route must be added here (the tests check).
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/v1/chat"): {"message": "what is my locker code?"},
    ("POST", "/v1/context"): {"query": "locker code secret word"},
    ("POST", "/v1/chat/completions"): {
        "model": "maas",
        "messages": [{"role": "user", "content": "what is my locker code?"}],
    },
    ("GET", "/v1/models"): None,
    ("GET", "/v1/models/{model_id}"): None,
    ("GET", "/v1/runs/{run_id}"): None,
    ("GET", "/v1/runs/{run_id}/events"): None,
    ("POST", "/v1/threads"): {"title": "mine"},
    ("GET", "/v1/threads"): None,
    ("GET", "/v1/threads/{thread_id}"): None,
    ("POST", "/v1/threads/{thread_id}/messages"): {"messages": [{"role": "user", "text": "x y"}]},
    ("POST", "/v1/threads/{thread_id}/close"): None,
    ("GET", "/v1/memories"): None,
    ("DELETE", "/v1/memories/{memory_id}"): None,
    ("GET", "/v1/users/me"): None,
    ("GET", "/v1/users/me/export"): None,
    ("DELETE", "/v1/users/me"): None,
    ("POST", "/v1/admin/users"): {"name": "mallory"},
    ("POST", "/v1/admin/users/{user_id}/revoke"): None,
    ("DELETE", "/v1/admin/users/{user_id}"): None,
    ("GET", "/v1/test-suites"): None,
    ("POST", "/v1/test-runs"): {
        "suite_def": {
            "name": "probe",
            "steps": [{"action": "send", "user": "u", "thread": "t", "message": "hello there"}],
        }
    },
    ("GET", "/v1/test-runs"): None,
    ("GET", "/v1/test-runs/{run_id}"): None,
}


def walk(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every APIRoute, also inside included routers (FastAPI keeps them nested)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            inner = prefix + route.include_context.prefix
            found += walk(route.original_router.routes, inner)
    return found


def api_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, except the public ones."""
    found = []
    for path, route in walk(app.routes):
        if path not in PUBLIC:
            found += [(m, path) for m in sorted(route.methods - {"HEAD"})]
    return found


def is_admin(path: str) -> bool:
    return path.startswith("/v1/admin/")


from tests.faults.conftest import fleet  # noqa: E402, F401 (the schemathesis run serves for real)
