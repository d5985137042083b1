"""The ``receiver`` command: ``serve``, ``mappings check``, ``replay``, ``export``,
``migrate-store``, ``destinations check``, ``forward``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

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


def _log_in_background() -> None:
    """Log records are formatted and written by a listener thread: a request pays for a
    queue put, not for a write and a flush to the terminal or pipe."""
    import atexit
    import logging.handlers
    import queue

    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    listener = logging.handlers.QueueListener(records, stream)
    listener.start()
    atexit.register(listener.stop)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(logging.handlers.QueueHandler(records))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app, service_of

    _log_in_background()
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


async def _offline(fn: Any) -> int:
    """Open the configured store and a writer in this process, run ``fn(service)``."""
    from .app import Service, make_store
    from .credentials import load_credentials
    from .metrics import Metrics
    from .writer import Writer

    settings = Settings.from_env()
    mappings = load_dir(settings.mappings_dir)
    credentials = load_credentials(
        settings.data_dir, settings.env, sorted({m.envelope.credential.setting for m in mappings.values()})
    )
    store = make_store(settings)
    writer = Writer(store, settings.queue_size, settings.batch_max)
    await store.open()
    await writer.start()
    try:
        result: int = await fn(Service(settings, mappings, credentials, store, writer, Metrics(lambda: 0)))
        return result
    finally:
        await writer.stop()
        await store.close()


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from .replay import replay_delivery
    from .store.base import DeliveryQuery

    async def run(svc: Any) -> int:
        ids = await svc.store.delivery_ids(DeliveryQuery(status=args.status, source=args.source))
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
    from .read.export import EVENT_COLUMNS, LEAD_COLUMNS, csv_rows, ndjson
    from .store.base import EventQuery, LeadQuery

    async def run(svc: Any) -> int:
        if args.what == "events":
            rows = svc.store.iter_events(EventQuery(source=args.source, type=args.type))
            columns = EVENT_COLUMNS
        else:
            rows = svc.store.iter_leads(LeadQuery(source=args.source))
            columns = LEAD_COLUMNS
        chunks = ndjson(rows) if args.format == "ndjson" else csv_rows(rows, columns)
        out = sys.stdout.buffer
        async for chunk in chunks:
            out.write(chunk)
        out.flush()
        return 0

    return asyncio.run(_offline(run))


def cmd_migrate_store(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from .store.copy import copy_sqlite_to_postgres

    settings = Settings.from_env()
    source = Path(args.source) if args.source else settings.sqlite_path
    if source is None or not source.exists():
        print(f"receiver: no SQLite store at {source}", file=sys.stderr)
        return 2
    if not args.to.startswith(("postgresql://", "postgres://")):
        print("receiver: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
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
        print("error: give a FILE or set RECEIVER_DESTINATIONS_FILE", file=sys.stderr)
        return 2
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

    from .app import make_store
    from .forward import ForwardConfigError, Forwarding, load_destinations
    from .store.base import EventQuery

    settings = Settings.from_env()
    if settings.destinations_file is None:
        print("receiver: RECEIVER_DESTINATIONS_FILE is not set", file=sys.stderr)
        return 2
    try:
        destinations = {d.name: d for d in load_destinations(settings.destinations_file, settings.env)}
    except ForwardConfigError as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    d = destinations.get(args.destination)
    if d is None:
        known = ", ".join(destinations)
        print(f"receiver: no destination {args.destination!r}; known: {known}", file=sys.stderr)
        return 2

    async def run() -> int:
        import time

        import msgspec

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
    replay = sub.add_parser("replay", help="run stored deliveries through today's mappings again")
    replay.add_argument("--status", choices=["accepted", "unmapped", "rejected"])
    replay.add_argument("--source")
    replay.add_argument("--progress", action="store_true", help="show the progress bar even when not a TTY")
    replay.set_defaults(fn=cmd_replay)
    export = sub.add_parser("export", help="write every event (or lead) to stdout")
    export.add_argument("what", nargs="?", choices=["events", "leads"], default="events")
    export.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    export.add_argument("--source")
    export.add_argument("--type")
    export.set_defaults(fn=cmd_export)
    migrate = sub.add_parser("migrate-store", help="copy the SQLite store into PostgreSQL")
    migrate.add_argument("--to", required=True, help="postgresql://… (the new RECEIVER_DATABASE_URL)")
    migrate.add_argument("--from", dest="source", help="the SQLite file (default: the configured one)")
    migrate.set_defaults(fn=cmd_migrate_store)
    dests = sub.add_parser("destinations", help="forwarding destinations")
    dsub = dests.add_subparsers(dest="destinations_command", required=True)
    dcheck = dsub.add_parser(
        "check", help="validate a destinations file (default: RECEIVER_DESTINATIONS_FILE)"
    )
    dcheck.add_argument("file", nargs="?")
    dcheck.set_defaults(fn=cmd_destinations_check)
    forward = sub.add_parser("forward", help="send the stored events of a period to a destination again")
    forward.add_argument("--since", required=True, type=_utc, help="received_at >= (RFC 3339)")
    forward.add_argument("--until", type=_utc, help="received_at < (RFC 3339)")
    forward.add_argument("--destination", required=True, help="a destination name of the destinations file")
    forward.add_argument("--progress", action="store_true", help="show the progress bar even when not a TTY")
    forward.set_defaults(fn=cmd_forward)
    args = parser.parse_args(argv)
    result: int = args.fn(args)
    return result
