"""The receiver command line: run the service and look after its store and credentials.

Configuration comes from the environment, as for the service itself (docs/configuration.md):
RECEIVER_DATA_DIR (default ./data), RECEIVER_DATABASE_URL, RECEIVER_MAPPINGS_DIR, and
the credentials. Run `receiver COMMAND --help` for each command's options.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import LOG_LEVELS, ConfigError, Settings
from .credentials import API_KEY_SETTING, Credentials, MissingCredentials, read_credentials, required
from .mapping import CompiledMapping, MappingError, load_dir
from .webhooks import webhook_urls

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


class CommandError(Exception):
    """A command cannot run as asked; the message says why and what to do."""


def banner(
    mappings: Mapping[str, CompiledMapping], credentials: Credentials, base_url: str, reveal: bool = False
) -> str:
    """The webhook URLs to paste into each vendor. On ``receiver serve`` a secret appears
    only on the start that generated it (later starts show where it is kept instead);
    ``receiver credentials`` reveals them all (``reveal``)."""
    lines = ["", "receiver: webhook URLs to paste into each vendor", ""]

    def shown(setting: str) -> str | None:
        if reveal or setting in credentials.generated:
            return credentials.get(setting)
        return None

    for hook in webhook_urls(mappings, base_url):
        lines.append(f"  {hook.source:8} {hook.line(shown(hook.setting))}")
    key = shown(API_KEY_SETTING) or f"<{API_KEY_SETTING}>"
    lines += ["", f"  read API: {base_url}/v1/…   (Authorization: Bearer {key})"]
    if credentials.overridden:
        lines.append(
            f"  Set in the environment: {', '.join(sorted(credentials.overridden))}, replacing the value"
            " kept in the data directory\n  (credentials.json now holds the new one). A vendor still sending"
            " the old value gets 401:\n  update the URL pasted there."
        )
    for setting in sorted(credentials.misshapen):
        lines.append(
            f"  {setting} is not a UUID, which the vendor's SDK requires (generated before 0.2?).\n"
            "  Plain HTTP clients still work; for the SDK, set a UUID in the environment."
        )
    if credentials.generated:
        lines.append("  Secrets generated on this start are kept in the data directory and shown only now;")
        lines.append("  `receiver credentials` prints them again.")
    elif not reveal:
        lines.append(
            "  Secrets come from the environment or the data directory (credentials.json);\n"
            "  `receiver credentials` prints them."
        )
    return "\n".join(lines) + "\n"


#: Addresses that mean "every interface": no URL a vendor could use.
_ANY_HOST = ("0.0.0.0", "::", "[::]", "")  # noqa: S104 (compared with, never bound)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from . import logs, serving
    from .app import create_app, service_of
    from .gc_tuning import tune_for_serving

    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    level = args.log_level or settings.log_level
    logs.setup(level)
    try:
        app = create_app(settings)
    except (ConfigError, MappingError) as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    svc = service_of(app)
    base = os.environ.get("RECEIVER_PUBLIC_URL")
    if not base and args.host in _ANY_HOST:
        base = f"http://YOUR-HOST:{args.port}"
        sys.stdout.write(
            f"\nreceiver: listening on every interface ({args.host or '*'}:{args.port}); set\n"
            "  RECEIVER_PUBLIC_URL=https://hooks.example.com to print the URLs vendors can reach.\n"
        )
    sys.stdout.write(
        banner(svc.mappings, svc.credentials, (base or f"http://{args.host}:{args.port}").rstrip("/"))
    )
    sys.stdout.flush()
    tune_for_serving()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,  # its line holds the raw query string; receiver.access logs instead
        log_level=level,
        proxy_headers=True,
        server_header=False,
        lifespan="on",
        # Limits, deliberately (README "Limits"): headers bounded in size and time (431,
        # 408), idle keep-alive connections closed, bodies bounded by the ingest edge.
        http=serving.protocol(settings.max_header_bytes, settings.header_timeout_seconds),
        timeout_keep_alive=int(max(1, settings.keepalive_seconds)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    return 0


def cmd_mappings_check(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else Settings.from_env().mappings_dir
    try:
        mappings = load_dir(directory)
    except MappingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"mapping files in {directory}")
    for name, m in sorted(mappings.items()):
        print(f"ok  {m.name:14} {len(m.source_types):3} event types  ({name})")
        if m.private:
            print("    private: " + ", ".join(f"{key} ({', '.join(ops)})" for key, ops in m.private))
    return 0


def cmd_mappings_docs(args: argparse.Namespace) -> int:
    from .mapping.docs import transforms_markdown, update

    if args.update is None:
        sys.stdout.write(transforms_markdown())
        return 0
    try:
        changed = update(Path(args.update))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.update}: {'updated' if changed else 'up to date'}")
    return 0


def cmd_mappings_types(args: argparse.Namespace) -> int:
    from .reference import types_markdown

    directory = Path(args.dir) if args.dir else Settings.from_env().mappings_dir
    sys.stdout.write(types_markdown(load_dir(directory)))
    return 0


def _data_dir_origin(settings: Settings) -> str:
    if settings.env.get("RECEIVER_DATA_DIR"):
        return f"RECEIVER_DATA_DIR={settings.env['RECEIVER_DATA_DIR']}"
    return "RECEIVER_DATA_DIR is not set, so ./data of the current directory"


async def existing_store(settings: Settings) -> None:
    """Refuse to work on a store that is not there: opening it would create an empty one
    (and a maintenance command on an empty store would only mislead)."""
    path = settings.sqlite_path
    if path is not None:
        if not path.is_file():
            raise CommandError(
                f"no store at {path} ({_data_dir_origin(settings)}). Set RECEIVER_DATA_DIR to the"
                " service's data directory, or RECEIVER_DATABASE_URL to its database."
            )
        return
    import asyncpg

    from .store.postgres import PostgresStore

    pg = PostgresStore(settings.database_url)
    table = f'"{pg.schema}".deliveries' if pg.schema else "deliveries"
    try:
        conn = await asyncpg.connect(pg.dsn)
        try:
            found = await conn.fetchval("SELECT to_regclass($1)", table)
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as e:
        raise CommandError(f"cannot reach the PostgreSQL store (RECEIVER_DATABASE_URL): {e}") from None
    if found is None:
        parts = urlsplit(settings.database_url)
        where = f"{parts.hostname or 'localhost'}{parts.path}" + (
            f", schema {pg.schema}" if pg.schema else ""
        )
        raise CommandError(
            f"no receiver store in PostgreSQL at {where} (RECEIVER_DATABASE_URL): nothing to read."
            " Point RECEIVER_DATABASE_URL at the service's database, or start `receiver serve` on it once."
        )


async def _offline(fn: Any) -> int:
    """Open the configured store and a writer in this process, run ``fn(service)``. Needs
    no credentials, and generates none."""
    from .forward import Forwarding
    from .metrics import Metrics
    from .service import Service, make_store
    from .writer import Writer

    settings = Settings.from_env()
    await existing_store(settings)
    mappings = load_dir(settings.mappings_dir)
    store = make_store(settings)
    # A replay whose events change forwards the new version (the running service sends it).
    forwarding = Forwarding.from_settings(settings, store, sorted(mappings))
    writer = Writer(
        store, settings.queue_size, settings.batch_max, route=forwarding.router.route if forwarding else None
    )
    await store.open()
    await writer.start()
    try:
        result: int = await fn(
            Service(settings, mappings, Credentials({}), store, writer, Metrics(lambda: 0))
        )
        return result
    finally:
        await writer.stop()
        await store.close()


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from .replay import replay_delivery
    from .store.base import DeliveryQuery

    async def run(svc: Any) -> int:
        ids = await svc.store.delivery_ids(DeliveryQuery(status=args.status, source=args.source))
        if args.status is None and ids and not args.yes and sys.stdin.isatty():
            which = f"every stored {args.source} delivery" if args.source else "every stored delivery"
            question = (
                f"Replay {which} ({len(ids)}: accepted, unmapped and rejected alike)? Their events"
                " are replaced by what today's mapping files make of them."
            )
            if not _confirm(question):
                print("nothing replayed")
                return 1
        counts: dict[str, int] = {}
        with Progress(disable=not sys.stderr.isatty() and not args.progress) as progress:
            task = progress.add_task("replaying", total=len(ids))
            for delivery_id in ids:
                row = await svc.store.raw_delivery(delivery_id)
                if row is not None:
                    result = await replay_delivery(svc.mappings, svc.writer, row)
                    counts[result.status] = counts.get(result.status, 0) + 1
                progress.advance(task)
        summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "nothing to replay"
        print(f"replayed {sum(counts.values())} deliveries: {summary}")
        return 0

    return asyncio.run(_offline(run))


def cmd_export(args: argparse.Namespace) -> int:
    from .read.export import FORMATS
    from .store.base import EventQuery, LeadQuery

    async def run(svc: Any) -> int:
        if args.what == "events":
            rows = svc.store.export_events(EventQuery(source=args.source, type=args.type))
        else:
            rows = svc.store.export_leads(LeadQuery(source=args.source))
        pieces = FORMATS[args.what, args.format](rows)
        out = sys.stdout.buffer
        async for piece in pieces:
            out.write(piece)
        out.flush()
        return 0

    return asyncio.run(_offline(run))


def cmd_credentials(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    mappings = load_dir(settings.mappings_dir)
    try:
        credentials = read_credentials(settings.data_dir, settings.env, required(mappings))
    except MissingCredentials as e:
        raise CommandError(
            f"{e} ({_data_dir_origin(settings)}). Set RECEIVER_DATA_DIR to the service's data"
            " directory, or start `receiver serve` once to generate them."
        ) from None
    if args.env:
        for name, value in sorted(credentials.values.items()):
            print(f"export {name}={shlex.quote(value)}")
        return 0
    base = args.public_url or os.environ.get("RECEIVER_PUBLIC_URL") or DEFAULT_BASE_URL
    sys.stdout.write(banner(mappings, credentials, base.rstrip("/"), reveal=True))
    return 0


def cmd_migrate_store(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from .store.copy import copy_sqlite_to_postgres

    settings = Settings.from_env()
    source = Path(args.source) if args.source else settings.sqlite_path
    if source is None or not source.exists():
        where = "--from" if args.source else _data_dir_origin(settings)
        raise CommandError(f"no SQLite store at {source} ({where})")
    if not args.to.startswith(("postgresql://", "postgres://")):
        raise CommandError("--to must be a postgresql:// URL")
    with Progress(disable=not sys.stderr.isatty()) as bar:
        tasks: dict[str, Any] = {}

        def progress(table: str, n: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=None)
            bar.advance(tasks[table], n)

        copied = asyncio.run(copy_sqlite_to_postgres(source, args.to, progress))
    print("copied " + ", ".join(f"{t}={n}" for t, n in copied.items()))
    return 0


def cmd_destinations_check(args: argparse.Namespace) -> int:
    from .forward import ForwardConfigError, load_destinations

    settings = Settings.from_env()
    path = Path(args.file) if args.file else settings.destinations_file
    if path is None:
        raise CommandError("give a FILE or set RECEIVER_DESTINATIONS_FILE")
    try:
        sources: list[str] | None = sorted(load_dir(settings.mappings_dir))
    except MappingError:
        sources = None  # the mappings are checked by `mappings check`
    try:
        destinations = load_destinations(path, settings.env, sources)
    except ForwardConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for d in destinations:
        what = [
            d.format,
            "sources=" + (",".join(sorted(d.sources)) if d.sources is not None else "all"),
            "types=" + (",".join(d.types) if d.types is not None else "all"),
            f"max_age={d.max_age:g}s timeout={d.timeout:g}s concurrency={d.concurrency}",
        ]
        if d.allow_private:
            what.append("allow_private")
        print(f"ok  {d.name:14} {d.shown_url}  " + "  ".join(what))
    if not destinations:
        print(f"ok  {path}: no destinations (nothing is forwarded)")
    return 0


def _utc(value: str) -> str:
    from datetime import UTC, datetime

    from .clock import rfc3339

    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an RFC 3339 date-time") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone (Z or an offset)")
    return rfc3339(t.astimezone(UTC))


def cmd_forward(args: argparse.Namespace) -> int:
    """Send the stored events of a period to a destination again, as new messages."""
    from rich.progress import Progress

    from .forward import Forwarding, load_destinations
    from .service import make_store
    from .store.base import EventQuery

    settings = Settings.from_env()
    if settings.destinations_file is None:
        raise CommandError("RECEIVER_DESTINATIONS_FILE is not set")
    destinations = {d.name: d for d in load_destinations(settings.destinations_file, settings.env)}
    d = destinations.get(args.destination)
    if d is None:
        raise CommandError(f"no destination {args.destination!r}; known: {', '.join(destinations)}")

    async def run() -> int:
        import time

        import msgspec

        await existing_store(settings)
        store = make_store(settings)
        await store.open()
        forwarding = Forwarding.build([d], store)
        try:
            ids: list[str] = []
            chunk: list[tuple[str, str, bytes]] = []
            async for e in store.iter_events(EventQuery(since=args.since, until=args.until)):
                if d.matches(e["source"], e["type"]):
                    chunk.append((e["id"], e["delivery_id"], msgspec.json.encode(e)))
                if len(chunk) >= 500:
                    ids += await forwarding.outbox.enqueue(d.name, d.max_age, chunk)
                    chunk = []
            ids += await forwarding.outbox.enqueue(d.name, d.max_age, chunk)
            await forwarding.forwarder.start()
            states: dict[str, int] = {}
            with Progress(disable=not sys.stderr.isatty() and not args.progress) as progress:
                task = progress.add_task(f"forwarding to {d.name}", total=len(ids))
                while True:
                    states = await forwarding.outbox.states(ids)
                    progress.update(task, completed=len(ids) - states.get("pending", 0))
                    lane = forwarding.forwarder.lanes[d.name]
                    down = lane.disabled or lane.circuit.state(time.time()) == "open"
                    if not states.get("pending") or down:
                        break  # every message was tried, or the destination is down
                    await asyncio.sleep(0.2)
            await forwarding.forwarder.stop()
            states = await forwarding.outbox.states(ids)
        finally:
            await forwarding.forwarder.stop()
            await store.close()
        delivered = states.get("delivered", 0)
        waiting = states.get("pending", 0) + states.get("retrying", 0)
        print(
            f"forwarded {len(ids)} events to {d.name}: delivered={delivered}"
            f" waiting={waiting} failed={states.get('failed', 0)}"
        )
        if delivered < len(ids):
            print("the rest stays in the outbox: a running `receiver serve` keeps retrying it")
        return 0 if delivered == len(ids) else 1

    return asyncio.run(run())


class _Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks (they are written for a terminal)."""


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="receiver",
        description=__doc__,
        formatter_class=_Help,
        epilog="Documentation: docs/ in the source distribution, or the project's repository.",
    )
    parser.add_argument("--version", action="version", version=f"receiver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description, formatter_class=_Help)

    serve = command(
        "serve",
        "run the HTTP service",
        "Run the HTTP service: webhooks under /hooks/{source}, the read API under /v1.\n"
        "On the start that generates credentials, prints the URLs to paste into each vendor.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    serve.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="debug, info, warning or error (default: $RECEIVER_LOG_LEVEL, else info); no level logs"
        " bodies, query values, secrets or personal data",
    )
    serve.set_defaults(fn=cmd_serve)

    creds = command(
        "credentials",
        "print the webhook URLs with their secrets, or `export` lines",
        "Print the credentials the service uses, read where the service reads them: the\n"
        "environment first, then credentials.json in RECEIVER_DATA_DIR. Generates nothing.\n"
        'In a shell: eval "$(receiver credentials --env)" sets RECEIVER_KARTRA_TOKEN etc.',
    )
    creds.add_argument(
        "--env", action="store_true", help="print `export RECEIVER_…=…` lines instead of URLs (default: URLs)"
    )
    creds.add_argument(
        "--public-url",
        metavar="URL",
        help=f"base of the URLs (default: $RECEIVER_PUBLIC_URL, else {DEFAULT_BASE_URL})",
    )
    creds.set_defaults(fn=cmd_credentials)

    mappings = command(
        "mappings",
        "check mapping files, or print their type table or transform reference",
        "Mapping files: check, types, docs.",
    )
    msub = mappings.add_subparsers(
        dest="mappings_command", required=True, title="commands", metavar="COMMAND"
    )
    for name, help, fn in (
        ("check", "load and validate every mapping file of a directory", cmd_mappings_check),
        (
            "types",
            "print the vendor type -> canonical type table as Markdown (docs/types.md)",
            cmd_mappings_types,
        ),
    ):
        p = msub.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", formatter_class=_Help
        )
        p.add_argument(
            "dir",
            nargs="?",
            help="directory of mapping files (default: $RECEIVER_MAPPINGS_DIR, else the shipped ones)",
        )
        p.set_defaults(fn=fn)
    docs_help = "print the transform reference of mappings/README.md as Markdown, or --update that file"
    docs = msub.add_parser("docs", help=docs_help, description=docs_help[0].upper() + docs_help[1:] + ".")
    docs.add_argument(
        "--update", metavar="README", help="rewrite the generated section of this file (default: print it)"
    )
    docs.set_defaults(fn=cmd_mappings_docs)

    replay = command(
        "replay",
        "run stored deliveries through today's mappings again",
        "Run stored deliveries through today's mapping files again. Each delivery's events are\n"
        "replaced under the ids they had (never doubled); its status becomes what the mapping\n"
        "now says. Without --status, EVERY stored delivery (of --source, if given) is replayed:\n"
        "accepted, unmapped and rejected alike, so on a terminal it asks first (--yes skips the\n"
        "question; without a terminal it does not ask). The store must exist.",
    )
    replay.add_argument(
        "--status",
        choices=["accepted", "unmapped", "rejected"],
        help="only deliveries with this status, e.g. unmapped after adding a mapping (default: every status)",
    )
    replay.add_argument("--source", help="only deliveries of this source (default: every source)")
    replay.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (default: ask on a terminal)"
    )
    replay.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when not a terminal (default: off)",
    )
    replay.set_defaults(fn=cmd_replay)

    export = command(
        "export",
        "write every event (or lead) to stdout as NDJSON or CSV",
        "Write every stored event (or lead) to stdout, newest first, streamed. The store must exist.",
    )
    export.add_argument(
        "what",
        nargs="?",
        choices=["events", "leads"],
        default="events",
        help="what to export (default: %(default)s)",
    )
    export.add_argument(
        "--format", choices=["ndjson", "csv"], default="ndjson", help="output format (default: %(default)s)"
    )
    export.add_argument("--source", help="only this source (default: every source)")
    export.add_argument("--type", help="events only: only this canonical type (default: every type)")
    export.set_defaults(fn=cmd_export)

    migrate = command(
        "migrate-store",
        "copy the SQLite store into PostgreSQL",
        "Copy deliveries, events, leads and identities from a SQLite store into PostgreSQL\n"
        "(streamed; safe to run again). Stop the service first.",
    )
    migrate.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://… (the new RECEIVER_DATABASE_URL; required)"
    )
    migrate.add_argument(
        "--from", dest="source", metavar="FILE", help="the SQLite file (default: the configured store's)"
    )
    migrate.set_defaults(fn=cmd_migrate_store)

    dests = command(
        "destinations",
        "check a forwarding destinations file",
        "Forwarding destinations (RECEIVER_DESTINATIONS_FILE, docs/forwarding.md): check.",
    )
    dsub = dests.add_subparsers(
        dest="destinations_command", required=True, title="commands", metavar="COMMAND"
    )
    dcheck = dsub.add_parser(
        "check",
        help="validate a destinations file as the service would at start",
        description="Validate a destinations file as the service would at start (the secrets are\n"
        "read from the environment) and show each destination as it will be used.",
        formatter_class=_Help,
    )
    dcheck.add_argument("file", nargs="?", help="the file (default: $RECEIVER_DESTINATIONS_FILE)")
    dcheck.set_defaults(fn=cmd_destinations_check)

    forward = command(
        "forward",
        "send the stored events of a period to a destination again",
        "Send the stored events received in a period (those the destination's sources and types\n"
        "match) to a destination again, as new messages, with a progress bar. Returns once each\n"
        "has been tried; what waits for a retry is sent by the running service. The store must exist.",
    )
    forward.add_argument("--since", required=True, type=_utc, help="received_at >= this (RFC 3339; required)")
    forward.add_argument("--until", type=_utc, help="received_at < this (RFC 3339; default: now)")
    forward.add_argument(
        "--destination", required=True, help="a destination name of RECEIVER_DESTINATIONS_FILE (required)"
    )
    forward.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when not a terminal (default: off)",
    )
    forward.set_defaults(fn=cmd_forward)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Whatever a command creates (the store, its -wal and -shm, credentials) is its owner's only.
    os.umask(0o077)
    try:
        result: int = args.fn(args)
    except (CommandError, ConfigError, MappingError) as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    return result
