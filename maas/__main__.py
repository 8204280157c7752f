"""`maas` command line: serve, migrate, users, seed, chat, test-suite; extensions add theirs
(`maas bench`, `maas emulate`, ...). Thin: it calls functions."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from maas.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from maas.app import create_app
    from maas.runtime.serving import serve

    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    print(_banner(settings), flush=True)
    serve(create_app(settings, extensions=_extensions()), settings)
    return 0


def _banner(settings: Settings) -> str:
    """A short, readable start; the embedded database's own chatter goes to a file."""
    from maas import __version__

    if settings.embedded:
        setup_log = _embedded_postgres_to_file(settings.data_dir)
        where = f"embedded Postgres in {settings.data_dir} (its setup log: {setup_log})"
    else:
        where = "external Postgres (MAAS_DATABASE_URL)"
    mode = "offline mode (extractive, no LLM)" if settings.offline else f"LLM {settings.llm_model}"
    url = f"http://{settings.host}:{settings.port}"
    return "\n".join(
        [
            f"MaaS {__version__} on {url} — web UI at /, API under /v1",
            f"  database  {where}",
            f"  mode      {mode}",
        ]
    )


def _embedded_postgres_to_file(data_dir: Path) -> Path:
    """pgserver logs every initdb and pg_ctl line it runs at INFO: into a file, not the console
    (the server's own log stays in <data dir>/pg/log)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "embedded-postgres.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    chatter = logging.getLogger("pgserver")
    chatter.addHandler(handler)
    chatter.propagate = False
    return path


def _extensions() -> list[Any]:
    """Web UI and self-learning register through entry points, so maas never imports them."""
    from importlib.metadata import entry_points

    return [ep.load() for ep in entry_points(group="maas.extensions")]


def cmd_migrate(args: argparse.Namespace) -> int:
    from maas.service import resolve_dsn, run_migrations

    settings = _settings(args)
    applied = asyncio.run(run_migrations(resolve_dsn(settings)))
    print(
        f"applied {len(applied)} migration(s): {applied}" if applied else "database is up to date"
    )
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    from maas.credentials import create_user
    from maas.db.pool import connect
    from maas.service import resolve_dsn, run_migrations

    async def go() -> tuple[Any, str]:
        dsn = resolve_dsn(_settings(args))
        await run_migrations(dsn)
        conn = await connect(dsn)
        try:
            return await create_user(conn, args.name)
        finally:
            await conn.close()

    user_id, key = asyncio.run(go())
    print(json.dumps({"user_id": str(user_id), "name": args.name, "api_key": key}))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from maas.seed import load_demo

    print(json.dumps(asyncio.run(load_demo(_settings(args), args.file)), indent=2))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from maas.cli_chat import run_chat

    code: int = run_chat(args.url, args.key, _settings(args))
    return code


def cmd_mcp(args: argparse.Namespace) -> int:
    from maas.cli_mcp import run_mcp

    return run_mcp(args.url, _settings(args))


def cmd_test_suite_run(args: argparse.Namespace) -> int:
    from maas.testsuite.cli import run_file

    settings = _settings(args)
    return run_file(args.file, args.mode, args.url, args.key, settings, args.json)


def _add_test_suite(sub: Any) -> None:
    suites = sub.add_parser("test-suite", help="run test suites (scripted dialogs with checks)")
    run = suites.add_subparsers(dest="action", required=True).add_parser(
        "run", help="run a suite file on a running service; exit 0 passed, 1 failed"
    )
    run.add_argument("file", type=Path)
    run.add_argument("--mode", choices=("mock", "live"), default="mock")
    run.add_argument("--url", default=None, help="service URL (default http://HOST:PORT)")
    run.add_argument("--key", default=None, help="API key (default: the admin key)")
    run.add_argument("--json", type=Path, default=None, help="write the full report here")
    run.add_argument("--data-dir", type=Path)
    run.set_defaults(func=cmd_test_suite_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maas", description="Memory as a Service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (embedded Postgres by default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path)
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.add_argument("--data-dir", type=Path)
    migrate.set_defaults(func=cmd_migrate)
    users = sub.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True
    )
    create = users.add_parser("create", help="create a user and print its API key once")
    create.add_argument("name")
    create.add_argument("--data-dir", type=Path)
    create.set_defaults(func=cmd_users_create)
    seed = sub.add_parser("seed", help="load demo data (a demo user, threads, memories)")
    seed.add_argument("--file", type=Path, default=None)
    seed.add_argument("--data-dir", type=Path)
    seed.set_defaults(func=cmd_seed)
    chat = sub.add_parser("chat", help="interactive chat client")
    chat.add_argument("--url", default=None, help="service URL (default http://HOST:PORT)")
    chat.add_argument("--key", default=None, help="API key (default: the demo user's key)")
    chat.add_argument("--data-dir", type=Path)
    chat.set_defaults(func=cmd_chat)
    mcp = sub.add_parser("mcp", help="MCP server over stdio for a running serve (MAAS_API_KEY)")
    mcp.add_argument("--url", default=None, help="service URL (default MAAS_URL, else HOST:PORT)")
    mcp.add_argument("--data-dir", type=Path)
    mcp.set_defaults(func=cmd_mcp)
    _add_test_suite(sub)
    _plugin_commands(sub)
    return parser


def _plugin_commands(sub: Any) -> None:
    """Extensions add subcommands (entry point group maas.commands: `register(subparsers)`),
    so maas never imports them; e.g. `maas emulate` from selflearn."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="maas.commands"):
        try:
            ep.load()(sub)
        except Exception as exc:  # noqa: BLE001
            # a broken extension must not take the core commands down
            print(f"maas: command plugin {ep.name!r} not loaded: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        print(settings_errors(exc), file=sys.stderr)
        return 2
    return code


def settings_errors(exc: Any) -> str:
    """A bad MAAS_* setting as one line each, by its variable's name (not a traceback)."""
    lines = ["maas: bad settings:"]
    for err in exc.errors():
        name = "MAAS_" + "_".join(str(part) for part in err["loc"]).upper()
        lines.append(f"  {name}={err.get('input')!r}: {err['msg']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
