"""A large store that looks like real ingest output, built in about a minute.

People first arrive through the real pipeline: a vendor delivery is decoded, redacted,
mapped and written by the store's own write path (dedup, identity resolution, traits),
exactly as ``/hooks`` would. Some people come back through a second vendor with the
same email, so their lead gathers several sources and identities. The rest of the
history repeats what those people (and anonymous visitors) sent: the delivery and
event rows the pipeline wrote, copied under new ids and times and bulk-inserted.

Time is simulated: the history spans 30 days, and while it is generated the clock that
``receiver.ids`` and ``receiver.clock`` read says when each delivery arrived, so ids
(UUIDv7), ``received_at``, ``occurred_at`` and the leads' own times agree. Activity per
person is heavy-tailed (Pareto), so a few leads have thousands of events and most a few.

    from history import fill_sqlite, copy_to_postgres
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import hashlib
import json
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
from payloads import (
    AFFITOR_LEAD,
    CONVEAD_LINK_FORM,
    CONVEAD_PURCHASE_FORM,
    CROCT_BEACON,
    CROCT_PAGE_OPENED,
    KARTRA_BUY,
    KARTRA_PAGE_VISIT,
)

import receiver.clock
import receiver.ids
from receiver.config import shipped_mappings_dir
from receiver.events import Event
from receiver.ids import new_id
from receiver.ingest.envelope import decode_inner, decode_outer
from receiver.mapping import CompiledMapping, load_dir
from receiver.pipeline import map_document
from receiver.problems import Problem
from receiver.store.base import Delivery, WriteRequest
from receiver.store.copy import TABLES, rebuild_lead_sources
from receiver.store.sql import ADD_LEAD_SOURCE, SUMMARIZE_LEAD, lead_sources
from receiver.store.sqlite import SQLiteStore

DAY = 86_400.0
ROUTES = {
    "kartra": "/",
    "convead": "/watch/event",
    "croct": "/client/web/track",
    "affitor": "/api/tracking/lead",
}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


class SimulatedTime:
    """Stands in for the ``time`` module of receiver.ids and receiver.clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return int(self.now * 1e9)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# -- what each vendor sends, for person ``p``, unique number ``n``, at time ``t`` -------------
Request = tuple[str, bytes, str, dict[str, str]]  # source, body, content type, headers


def _email(p: int) -> str:
    return f"person{p}@example.com"


def kartra(p: int, n: int, t: float, buy: bool) -> Request:
    doc: dict[str, Any] = copy.deepcopy(KARTRA_BUY if buy else KARTRA_PAGE_VISIT)
    doc["lead"].update(id=str(100_000 + p), email=_email(p), first_name=f"Name{p % 997}", phone=f"6{p:08d}")
    if buy:
        tx = doc["action_details"]["transaction_details"]
        tx["transaction_id"] = f"TX{n}"
        tx["transaction_date"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
    else:
        doc["action_details"]["kartra_page"]["kartra_page_id"] = str(n % 40)
    return "kartra", json.dumps(doc).encode(), JSON, {}


def convead(p: int, n: int, t: float, guest: str = "", email: int | None = None) -> Request:
    inner = json.loads(CONVEAD_PURCHASE_FORM["data"])
    inner["properties"]["order_id"] = str(n)
    inner["visitor_info"].update(email=_email(p if email is None else email), first_name=f"Name{p % 997}")
    ids = {"visitor_uid": f"v{p}", "guest_uid": guest or f"g{p}"}
    form = dict(CONVEAD_PURCHASE_FORM, **ids, data=json.dumps(inner))
    return "convead", urlencode(form).encode(), FORM, {}


def croct_sign_in(p: int, n: int, t: float) -> Request:
    doc = {
        "context": {"tabId": f"tab-{n}", "url": "https://app.example.com/login", "timeZone": "Europe/Lisbon"},
        "payload": {"type": "userSignedIn", "externalUserId": f"user-{p}"},
        "originalTime": int(t * 1000),
        "departureTime": int(t * 1000) + 12,
    }
    return "croct", json.dumps(doc).encode(), JSON, {"x-client-id": f"{p:032x}"}


def croct_order(p: int, n: int, t: float) -> Request:
    doc: dict[str, Any] = copy.deepcopy(CROCT_BEACON)
    doc["payload"]["order"]["orderId"] = str(n)
    doc["originalTime"] = doc["departureTime"] = int(t * 1000)
    return "croct", json.dumps(doc).encode(), JSON, {"x-client-id": f"{p:032x}"}


def affitor(p: int, n: int, t: float) -> Request:
    doc = dict(AFFITOR_LEAD, user_id=f"usr{p}", email=_email(p), customer_code=f"cust_{n}")
    return "affitor", json.dumps(doc).encode(), JSON, {}


def anonymous(v: int, n: int, t: float) -> Request:
    """A visitor nobody has identified: a Croct page view or a Convead link."""
    if v % 2:
        doc: dict[str, Any] = copy.deepcopy(CROCT_PAGE_OPENED)
        doc["payload"]["url"] = doc["context"]["url"] = f"https://shop.example/p/{n % 500}?utm_source=x"
        doc["originalTime"] = doc["departureTime"] = int(t * 1000)
        return "croct", json.dumps(doc).encode(), JSON, {"x-client-id": f"a{v:031x}"}
    inner = json.loads(CONVEAD_LINK_FORM["data"])
    inner["guest_uid"] = f"ga{v}"
    form = dict(CONVEAD_LINK_FORM, guest_uid=f"ga{v}", data=json.dumps(inner))
    return "convead", urlencode(form).encode(), FORM, {}


def broken(v: int, n: int, t: float) -> Request:
    """A delivery the mapping refuses (an order without its order): stored as rejected."""
    doc = {"payload": {"type": "orderPlaced"}, "originalTime": int(t * 1000)}
    return "croct", json.dumps(doc).encode(), JSON, {"x-client-id": f"b{v:031x}"}


FIRST = [  # (weight, how a person first arrives)
    (3, lambda p, n, t: kartra(p, n, t, buy=False)),
    (1, lambda p, n, t: kartra(p, n, t, buy=True)),
    (2, convead),
    (2, croct_sign_in),
    (2, affitor),
]
AGAIN = [  # the same person through another vendor, same email (not for Croct users)
    lambda p, n, t: kartra(p, n, t, buy=False),
    convead,
    affitor,
]


# -- the pipeline, as /hooks runs it (minus HTTP and credentials) ------------------------------
def through_pipeline(mappings: dict[str, CompiledMapping], req: Request, now: str) -> WriteRequest:
    source, body, ctype, headers = req
    m = mappings[source]
    path = ROUTES[source]
    stored_headers = {"content-type": ctype, "user-agent": UA, **headers}
    delivery = Delivery(
        id=new_id(),
        source=source,
        received_at=now,
        method="POST",
        path=path,
        content_type=ctype,
        query={},
        headers=stored_headers,
        body=body,
        body_format="original",
        status="rejected",
        fingerprint=hashlib.sha256(f"{path}?\n".encode() + body).hexdigest(),
        mapping=m.name,
    )
    try:
        doc = decode_outer(m.envelope, body, ctype, "")
        decode_inner(m.envelope, doc)
    except Problem as p:
        delivery.reasons = p.errors
        return WriteRequest(delivery=delivery, dedup=False)
    if m.redact(doc):
        delivery.body, delivery.body_format = msgspec.json.encode(doc), "document"
    mapped = map_document(m, doc, stored_headers, path, now, delivery.id)
    delivery.status, delivery.reasons = mapped.status, mapped.reasons
    return WriteRequest(delivery=delivery, events=mapped.events, identities=mapped.identities)


Sent = list[tuple[Event, Delivery]]  # what one delivery produced, with the delivery


@dataclass
class Seen:
    """Who has arrived so far, and what each sent: what later deliveries repeat."""

    people: list[Sent] = field(default_factory=list)
    cumulative: list[float] = field(default_factory=list)  # activity, for weighted picks
    visitors: list[Sent] = field(default_factory=list)

    def add_person(self, sent: Sent, activity: float) -> None:
        self.people.append(sent)
        self.cumulative.append((self.cumulative[-1] if self.cumulative else 0.0) + activity)

    def pick(self, rnd: random.Random) -> Sent | None:
        if self.visitors and (not self.people or rnd.random() < 0.3):
            return rnd.choice(self.visitors)
        if not self.people:
            return None
        return self.people[bisect.bisect(self.cumulative, rnd.random() * self.cumulative[-1])]


@dataclass
class Summary:
    events: int = 0
    deliveries: int = 0
    leads: int = 0
    emails: list[str] = field(default_factory=list)  # people's emails, for lookups
    since: str = ""
    until: str = ""


def _delivery_row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.id, d.source, d.received_at, d.method, d.path, d.content_type,
        msgspec.json.encode(d.query).decode(), msgspec.json.encode(d.headers).decode(), d.body,
        d.body_format, d.status, msgspec.json.encode(d.reasons).decode(), d.idempotency_key,
        d.fingerprint, d.mapping,
    )  # fmt: skip


def _event_row(e: Event) -> tuple[Any, ...]:
    return (
        e.id, e.delivery_id, e.source, e.type, e.source_type, e.occurred_at, e.received_at,
        e.lead_id, e.anonymous_id, msgspec.json.encode(e),
    )  # fmt: skip


def _insert(table: str) -> str:
    columns = TABLES[table]
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


async def _write(store: SQLiteStore, requests: list[WriteRequest]) -> None:
    """New people through the store's write path (dedup, identities, leads, traits), as the
    group-commit writer would hand them over, at the simulated time of the last one."""
    if requests:
        for res in await store.write_batch(requests):
            if isinstance(res, Exception):
                raise res


def fill_sqlite(db: Path, events: int, leads: int, seed: int = 7, progress: bool = True) -> Summary:
    """About ``events`` events of ``leads`` people (and anonymous visitors) in a fresh store."""
    return asyncio.run(_fill(db, events, leads, seed, progress))


async def _fill(db: Path, n: int, n_people: int, seed: int, progress: bool) -> Summary:
    rnd = random.Random(seed)
    mappings = load_dir(shipped_mappings_dir())
    sim = SimulatedTime()
    end = time.time() - 60
    start = end - 30 * DAY
    step = (end - start) / n
    sim.now = start
    saved = receiver.ids.time, receiver.clock.time
    receiver.ids.time = receiver.clock.time = sim  # type: ignore[assignment]
    store = SQLiteStore(db)
    await store.open()
    bulk = sqlite3.connect(db, isolation_level=None)
    bulk.execute("PRAGMA synchronous=OFF")  # bench data: the copies need no fsync
    bulk.execute("PRAGMA cache_size=-400000")  # 400 MB: the indexes stay in memory
    try:
        # Who arrives when: people and anonymous visitors over the first 95% of the span,
        # a second vendor for 40% of people some time after their first delivery, and a
        # few broken deliveries; every other slot repeats someone already seen.
        n_visitors = max(1, n_people // 10)
        firsts = rnd.sample(range(int(n * 0.95)), n_people + n_visitors)
        arrivals: dict[int, list[tuple[str, int]]] = {}
        for i, pos in enumerate(firsts):
            arrivals.setdefault(pos, []).append(("person", i) if i < n_people else ("visitor", i - n_people))
        for p in range(n_people):
            if rnd.random() < 0.4:
                arrivals.setdefault(rnd.randrange(firsts[p] + 1, n + 1), []).append(("again", p))
        for b in range(n // 300):
            arrivals.setdefault(rnd.randrange(n), []).append(("broken", b))
        # Near the end, some anonymous Convead guests buy as someone known (their earlier
        # events join that lead), and some people turn out to be one (two leads merge).
        late = int(n * 0.97)
        for v in range(0, n_visitors, 2):
            if rnd.random() < 0.2:
                arrivals.setdefault(rnd.randrange(late, n), []).append(("identify", v))
        activity = [min(rnd.paretovariate(1.5), 2000.0) for _ in range(n_people)]
        first_kind = rnd.choices([f for _, f in FIRST], weights=[w for w, _ in FIRST], k=n_people)
        for p in range(n_people):
            if first_kind[p] is convead and rnd.random() < 0.05:
                arrivals.setdefault(rnd.randrange(late, n), []).append(("merge", p))
        seen, summary = Seen(), Summary()
        person_sent: dict[int, Sent] = {}
        summary.since = receiver.clock.now_rfc3339()
        t0 = time.perf_counter()
        chunk = 20_000
        for lo in range(0, n, chunk):
            requests: list[WriteRequest] = []
            written = 0
            repeats: list[tuple[str, str, str, Sent]] = []
            for pos in range(lo, min(lo + chunk, n)):
                sim.now = start + pos * step
                now = receiver.clock.now_rfc3339()
                arrived = arrivals.get(pos)
                if not arrived:
                    sent = seen.pick(rnd)
                    if sent:
                        repeats.append((new_id(), new_id(), now, sent))
                    continue
                for kind, who in arrived:
                    if kind == "person":
                        req = first_kind[who](who, pos, sim.now)
                    elif kind == "again":
                        if first_kind[who] is croct_sign_in:
                            req = croct_order(who, pos, sim.now)
                        else:
                            other = rnd.choice([a for a in AGAIN if a is not first_kind[who]])
                            req = other(who, pos, sim.now)
                    elif kind == "visitor":
                        req = anonymous(who, pos, sim.now)
                    elif kind == "identify":
                        p = rnd.randrange(n_people)
                        req = convead(p, pos, sim.now, guest=f"ga{who}")
                    elif kind == "merge":  # this person's Convead visitor id, another's email
                        req = convead(who, pos, sim.now, email=rnd.randrange(n_people))
                    else:
                        req = broken(who, pos, sim.now)
                    wr = through_pipeline(mappings, req, now)
                    requests.append(wr)
                    sent = [(e, wr.delivery) for e in wr.events]
                    if not sent:
                        continue
                    if kind == "person":
                        person_sent[who] = sent
                        seen.add_person(sent, activity[who])
                    elif kind == "again" and who in person_sent:
                        person_sent[who].extend(sent)
                    elif kind == "visitor":
                        seen.visitors.append(sent)
                if len(requests) - written >= 256:
                    await _write(store, requests[written:])
                    written = len(requests)
            await _write(store, requests[written:])
            # Everyone else: copies of what they sent before, under new ids and times.
            deliveries, events = [], []
            for did, eid, now, sent in repeats:
                e, d = rnd.choice(sent)
                fingerprint = hashlib.sha256(did.encode()).hexdigest()
                again = msgspec.structs.replace(d, id=did, received_at=now, fingerprint=fingerprint)
                deliveries.append(_delivery_row(again))
                events.append(
                    _event_row(
                        msgspec.structs.replace(e, id=eid, delivery_id=did, received_at=now, occurred_at=now)
                    )
                )
            bulk.execute("BEGIN")
            bulk.executemany(_insert("deliveries"), deliveries)
            bulk.executemany(_insert("events"), events)
            bulk.executemany(ADD_LEAD_SOURCE, lead_sources(events, []))  # what the write path keeps
            bulk.execute("COMMIT")
            summary.events += sum(len(r.events) for r in requests) + len(events)
            summary.deliveries += len(requests) + len(deliveries)
            if progress:
                print(
                    f"\r  history: {summary.events:,} events, {len(person_sent):,} people"
                    f" ({time.perf_counter() - t0:.0f}s)",
                    end="",
                    flush=True,
                )
        if progress:
            print()
        summary.until = receiver.clock.now_rfc3339()
        # The copies' events on their leads' rows, as the write path keeps them.
        bulk.execute("BEGIN")
        live = bulk.execute("SELECT id FROM leads WHERE merged_into IS NULL").fetchall()
        bulk.executemany(SUMMARIZE_LEAD, live)
        bulk.execute("COMMIT")
        # What is stored (a delivery the pipeline found a duplicate of adds no event).
        summary.events = bulk.execute("SELECT count(*) FROM events").fetchone()[0]
        summary.deliveries = bulk.execute("SELECT count(*) FROM deliveries").fetchone()[0]
        summary.leads = bulk.execute("SELECT count(*) FROM leads WHERE merged_into IS NULL").fetchone()[0]
        summary.emails = [_email(p) for p in sorted(person_sent)]
        return summary
    finally:
        bulk.close()
        await store.close()
        receiver.ids.time, receiver.clock.time = saved


async def copy_to_postgres(db: Path, url: str, progress: bool = True) -> None:
    """The same rows into PostgreSQL (its own migrations), with COPY, then VACUUM ANALYZE
    as autovacuum would do on a live store."""
    from receiver.store.postgres import PostgresStore

    store = PostgresStore(url)
    await store.open()
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    t0 = time.perf_counter()
    try:
        async with store._p().acquire() as conn:
            for table, columns in TABLES.items():
                cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
                n = 0
                while rows := cursor.fetchmany(20_000):
                    if table == "identities":
                        rows = [(*r[:3], bool(r[3]), *r[4:]) for r in rows]
                    await conn.copy_records_to_table(
                        table, records=rows, columns=columns, schema_name=store.schema
                    )
                    n += len(rows)
                    if progress:
                        took = time.perf_counter() - t0
                        print(f"\r  copy to PostgreSQL: {table} {n:,} ({took:.0f}s)", end="", flush=True)
                if progress:
                    print()
            await rebuild_lead_sources(conn)
            for table in (*TABLES, "lead_sources"):
                await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        source.close()
        await store.close()
