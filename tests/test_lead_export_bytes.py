"""The bytes of a leads CSV export (written from rows the database half-formats) are the
lines of the leads' records, as ``export.lead_line`` writes each and as the CSV rules
give them from the NDJSON export: odd traits (quotes, commas, line breaks, formula-looking
text, unicode, nested keys), a lead with more identities than its row keeps, merged
leads, and every filter; on both backends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import AUTH, SECRETS
from starlette.testclient import TestClient
from test_writer import request

from receiver import Settings, create_app
from receiver.app import service_of
from receiver.events import Identity
from receiver.mapping.transforms import sha256_hex
from receiver.read import export
from receiver.service import make_store
from receiver.store.base import LeadQuery
from receiver.writer import Writer

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
ODD = ['Zoë "Z", =cmd', "a\nb", "+1", "-5", "@home", "null", "1,5", '"', "", "plain"]


def kartra(client: TestClient, lead: dict[str, Any]) -> None:
    body = {"lead": lead, "action": "filled_form", "action_details": {"form_id": "3", "form_name": "S"}}
    r = client.post("/hooks/kartra", json=body, **AUTH["kartra"])
    assert r.status_code == 202, r.text


def cell(value: Any) -> str:
    """A JSON cell by the CSV rules: its compact JSON text, quoted when it holds a quote
    or a comma; ``null`` an empty cell."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if text == "null":
        return ""
    return '"' + text.replace('"', '""') + '"' if '"' in text or "," in text else text


def expected_line(lead: dict[str, Any]) -> bytes:
    own = [lead[c] or "" for c in export.LEAD_COLUMNS[:5]]
    cells = [cell(lead[c]) for c in ("traits", "identities", "sources")]
    return (",".join([*own, *cells, str(lead["event_count"])]) + "\r\n").encode()


async def many_identities(settings: Settings, n: int) -> None:
    """One lead with ``n`` phone numbers besides its email (more than its row keeps)."""
    store = make_store(settings)
    await store.open()
    writer = Writer(store, queue_size=100, batch_max=64)
    await writer.start()
    try:
        for i in range(n):
            req = request(email="many@example.com")
            req.identities[0].append(Identity("phone", f"+1555020{i:04d}", True))
            await writer.submit(req)
    finally:
        await writer.stop()
        await store.close()


def test_the_leads_csv_is_the_records_line_by_line(settings: Settings) -> None:
    asyncio.run(many_identities(settings, 40))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for i, text in enumerate(ODD):
            lead = {"id": str(i), "email": f"p{i}@example.com", "first_name": text, "last_name": f"x,{text}"}
            kartra(client, lead)
        nested = {"city": 'Ci"ty', "zip": "1,2"}
        kartra(client, {"id": "50", "email": "nested@example.com", "address": nested})
        # Two ids of one person, then one lead: the other is merged into it.
        kartra(client, {"id": "60", "first_name": "Solo"})
        kartra(client, {"id": "60", "email": "p1@example.com"})
        store: Any = service_of(client.app).store
        queries = [
            LeadQuery(),
            LeadQuery(source="kartra"),
            LeadQuery(updated_since="2000-01-01T00:00:00.000Z"),
            LeadQuery(email_sha256=sha256_hex("p3@example.com")),
            LeadQuery(source="no-such-source"),
        ]

        async def old_way(q: LeadQuery, size: int) -> bytes:
            """The lines of the records, as the export wrote them before."""
            lines = [export.csv_line(export.LEAD_COLUMNS)]
            async for records in store.export_leads(q, size):
                lines += [export.lead_line(r) for r in records]
            return b"".join(lines)

        async def new_way(q: LeadQuery, size: int) -> bytes:
            return b"".join([piece async for piece in export.leads_csv(store.export_leads(q, size))])

        assert client.portal is not None
        for q in queries:
            for size in (1, 3, 1000):  # a chunk per lead, odd chunks, one chunk
                assert client.portal.call(new_way, q, size) == client.portal.call(old_way, q, size), (q, size)
        # Over HTTP, each line is the CSV rules applied to the lead of the NDJSON export.
        nd = client.get("/v1/leads", headers={**KEY, "Accept": "application/x-ndjson"}).content
        leads = [json.loads(line) for line in nd.splitlines()]
        assert len(leads) == len(ODD) + 2  # kartra 60 merged into the lead of p1: not listed
        assert max(len(lead["identities"]) for lead in leads) == 41
        body = client.get("/v1/leads", headers={**KEY, "Accept": "text/csv"}).content
        header = (",".join(export.LEAD_COLUMNS) + "\r\n").encode()
        assert body == header + b"".join(expected_line(lead) for lead in leads)
