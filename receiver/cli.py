"""The ``receiver`` command: ``serve``, ``mappings check``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError, Settings
from .credentials import API_KEY_SETTING, Credentials
from .mapping import CompiledMapping, MappingError, load_dir


def banner(mappings: dict[str, CompiledMapping], credentials: Credentials, base_url: str) -> str:
    """The webhook URLs to paste into each vendor. A secret appears only on the start that
    generated it; later starts show where it is kept instead."""
    lines = ["", "receiver: webhook URLs to paste into each vendor", ""]
    for name, m in sorted(mappings.items()):
        setting = m.envelope.credential.setting
        fresh = setting in credentials.generated
        secret = credentials.get(setting) if fresh else f"<{setting}>"
        route = next((r for r in m.envelope.routes if r.responder == "ingest"), None)
        path = "" if route is None or route.path in ("", "/") else route.path
        url = f"{base_url}/hooks/{name}{path}"
        loc = m.envelope.credential.locations[0]
        kind, _, field = loc.partition(":")
        if kind == "query":
            lines.append(f"  {name:8} {url}?{field}={secret}")
        elif kind == "header":
            lines.append(f"  {name:8} {url}   (header {field}: {secret})")
        elif kind == "field":
            lines.append(f"  {name:8} {url}   (field {field}={secret})")
        else:
            lines.append(f"  {name:8} {url}   (Authorization: Bearer {secret})")
    key = (
        credentials.get(API_KEY_SETTING)
        if API_KEY_SETTING in credentials.generated
        else f"<{API_KEY_SETTING}>"
    )
    lines += ["", f"  read API: {base_url}/v1/…   (Authorization: Bearer {key})"]
    if credentials.generated:
        lines.append("  Secrets generated on this start are kept in the data directory and shown only now.")
    else:
        lines.append("  Secrets come from the environment or the data directory (credentials.json).")
    return "\n".join(lines) + "\n"


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app, service_of

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app = create_app(Settings.from_env())
    except (ConfigError, MappingError) as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    svc = service_of(app)
    base = os.environ.get("RECEIVER_PUBLIC_URL") or f"http://{args.host}:{args.port}"
    sys.stdout.write(banner(svc.mappings, svc.credentials, base.rstrip("/")))
    sys.stdout.flush()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="info",
        proxy_headers=True,
        server_header=False,
        lifespan="on",
    )
    return 0


def cmd_mappings_check(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else Settings.from_env().mappings_dir
    try:
        mappings = load_dir(directory)
    except MappingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, m in sorted(mappings.items()):
        print(f"ok  {m.name:14} {len(m.source_types):3} event types  ({name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="receiver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(fn=cmd_serve)
    mappings = sub.add_parser("mappings", help="mapping files")
    msub = mappings.add_subparsers(dest="mappings_command", required=True)
    check = msub.add_parser("check", help="load and validate every mapping file of a directory")
    check.add_argument("dir", nargs="?")
    check.set_defaults(fn=cmd_mappings_check)
    args = parser.parse_args(argv)
    result: int = args.fn(args)
    return result
