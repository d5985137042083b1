"""The bytes of an events export: each CSV line is what the CSV rules below give for the
event's NDJSON line, whatever its cells hold (quotes, commas, line breaks, unicode,
formula-looking text, the text ``null``, no lead, a merged lead), in chunks of plain
rows, of odd rows, and of both mixed."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from conftest import AUTH, SECRETS
from starlette.testclient import TestClient

from receiver.events import Event
from receiver.read import export

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
ODD = [
    'a,"quoted"\tvalue', "x\ny", "c\r", "=1+2", "=cmd", "+1", "-5", "@home", "\tlead", "\rx", "null",
    "Zoë ☃ 💡", "\x1fsep", "a\x1e\x1db", "1,5", '"', "'", "", "end-", "mid=dle", "a@b",
]  # fmt: skip


def cell(text: str | None) -> str:
    """A text cell as the export writes it: a formula-looking cell gets a leading quote;
    a cell holding a quote, a comma or a line break is quoted (Python's csv, QUOTE_MINIMAL)."""
    text = text or ""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    if any(c in text for c in '",\n\r'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def expected_line(event: dict[str, Any]) -> bytes:
    """The CSV line of one event: its objects always quoted, as JSON text as stored; a
    lead that is null an empty cell."""

    def obj(value: Any) -> str:
        return '"' + msgspec.json.encode(value).decode().replace('"', '""') + '"'

    cells = [cell(event[c]) for c in export.EVENT_COLUMNS[:8]]
    cells.append("" if event["lead"] is None else obj(event["lead"]))
    cells += [obj(event[c]) for c in ("properties", "context", "extra")]
    cells += [cell(event[c]) for c in export.EVENT_COLUMNS[12:]]
    return (",".join(cells) + "\r\n").encode()


def stored(i: int, text: str = "", lead: dict[str, Any] | None = None) -> tuple[bytes, str | None]:
    """An event as the store holds it (msgspec's encoding of ``Event``) and its lead now."""
    event = Event(
        id=f"01900000-0000-7000-8000-{i:012d}", source="kartra", source_type=text or None,
        type="page.viewed", occurred_at="2026-01-02T03:04:05.000Z",
        received_at="2026-01-02T03:04:05.000Z", lead_id=None, anonymous_id=text or None,
        lead=lead, properties={"v": text, "n": [1, 2.5, None]}, context={}, extra={"k": {"v": text}},
        delivery_id=f"01900000-0000-7000-9000-{i:012d}", mapping="kartra@1",
    )  # fmt: skip
    return msgspec.json.encode(event), f"01900000-0000-7000-a000-{i:012d}" if lead else None


def as_dict(row: tuple[bytes, str | None]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(row[0])
    event["lead_id"] = row[1]
    return event


def test_every_chunk_of_stored_events_gives_the_lines_the_csv_rules_give() -> None:
    plain = [stored(i, f"v{i}", {"email": f"p{i}@example.com"} if i % 2 else None) for i in range(5)]
    odd = [stored(100 + i, text, {"name": text}) for i, text in enumerate(ODD)]
    # Every text cell odd in turn, not only those a vendor fills.
    for column in export.EVENT_COLUMNS[:8] + export.EVENT_COLUMNS[12:]:
        for text in ODD:
            event = as_dict(plain[1])
            event[column] = text
            data = msgspec.json.encode(Event(**{**event, "lead_id": None}))
            odd.append((data, event["lead_id"]) if column != "lead_id" else (data, text))
    for chunk in ([*plain], *([row] for row in odd), [*plain, *odd], [*odd, *plain]):
        want = b"".join(expected_line(as_dict(row)) for row in chunk)
        assert export.event_lines(chunk) == want
        assert b"".join(map(export.event_line, chunk)) == want


def croct(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/hooks/croct", json=body, headers=AUTH["croct"]["headers"])
    assert r.status_code == 202, r.text


def test_the_csv_export_is_the_ndjson_export_line_by_line(client: TestClient) -> None:
    for text in ODD:
        if text.strip():
            croct(client, {"type": "eventOccurred", "name": text, "clientId": text})
    for email, name in (("one@example.com", 'Zoë "Z", =cmd'), ("two@example.com", "a\nb")):
        profile = {"email": email, "firstName": name}
        croct(client, {"type": "userSignedUp", "userId": email, "profile": profile})
    # One person under two ids: the older events now name the surviving lead.
    croct(client, {"type": "userSignedIn", "userId": "one@example.com", "clientId": "=1+2"})
    croct(client, {"type": "userSignedIn", "userId": "two@example.com", "clientId": "=1+2"})
    ndjson = client.get("/v1/events", headers={**KEY, "Accept": "application/x-ndjson"})
    events = [json.loads(line) for line in ndjson.content.splitlines()]
    assert any(e["lead_id"] is None for e in events) and any(e["lead"] for e in events)
    assert len({e["lead_id"] for e in events if e["lead_id"]}) == 1  # merged
    assert any(e["anonymous_id"] and e["anonymous_id"][0] in "=+-@" for e in events)
    body = client.get("/v1/events", headers={**KEY, "Accept": "text/csv"}).content
    header = (",".join(export.EVENT_COLUMNS) + "\r\n").encode()
    assert body == header + b"".join(expected_line(e) for e in events)


def test_an_export_reads_chunk_after_chunk_and_may_be_left_midway(client: TestClient) -> None:
    from receiver.app import service_of
    from receiver.store.base import EventQuery

    for i in range(5):
        croct(client, {"type": "eventOccurred", "name": f"e{i}", "clientId": f"c{i}"})
    store: Any = service_of(client.app).store

    async def read(size: int, keep: int) -> list[list[Any]]:
        chunks: list[list[Any]] = []
        export_events = store.export_events(EventQuery(), size)
        async for chunk in export_events:
            chunks.append(chunk)
            if len(chunks) == keep:
                await export_events.aclose()  # the next chunk is being read meanwhile
                break
        return chunks

    assert client.portal is not None
    every = client.portal.call(read, 2, 99)
    assert [len(chunk) for chunk in every] == [2, 2, 1]
    ndjson = client.get("/v1/events", headers={**KEY, "Accept": "application/x-ndjson"}).content
    assert [json.loads(data)["id"] for chunk in every for data, _ in chunk] == [
        json.loads(line)["id"] for line in ndjson.splitlines()
    ]
    assert [len(chunk) for chunk in client.portal.call(read, 2, 1)] == [2]
    assert [len(chunk) for chunk in client.portal.call(read, 5, 99)] == [5]  # and an empty read
    assert len(client.get("/v1/events", headers=KEY).json()["data"]) == 5  # the store still answers
