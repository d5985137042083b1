"""Values found by fuzzing that used to crash a transform or a constraint (500): broken URLs,
extreme numbers, dates past year 9999, odd digits, deep nesting. Each is answered with a
4xx naming the field, or stored with a sensible value; never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import AUTH, DB, ROOT
from starlette.testclient import TestClient

from receiver.mapping import load_dir
from receiver.pipeline import map_document

BAD_URL = "http://[x?utm_source=a"
PRODUCT = {"productId": "p1", "name": "Phone", "displayPrice": 10}
CART = {
    "currency": "USD",
    "total": 10,
    "items": [{"index": 0, "quantity": 1, "total": 10, "product": PRODUCT}],
}


def croct(client: TestClient, body: Any) -> Any:
    return client.post("/hooks/croct", json=body, **AUTH["croct"])


def convead(client: TestClient, data: str) -> Any:
    form = {"app_key": "convead-app-key", "visitor_uid": "v-1", "data": data}
    return client.post("/hooks/convead", data=form, **AUTH["convead"])


def kartra(client: TestClient, body: Any) -> Any:
    return client.post("/hooks/kartra", json=body, **AUTH["kartra"])


def errors(response: Any) -> list[tuple[str, str]]:
    return [(e["path"], e["message"]) for e in response.json()["errors"]]


def test_a_url_that_urllib_cannot_split(client: TestClient, db: DB) -> None:
    item = {**CART["items"][0], "product": {**PRODUCT, "url": BAD_URL}}
    r = croct(client, {"type": "cartViewed", "cart": {**CART, "items": [item]}})
    assert r.status_code == 422 and errors(r) == [("/cart/items/0/product/url", "must be a well-formed URL")]
    r = croct(client, {"type": "pageOpened", "url": BAD_URL})  # campaign extraction: no campaign
    assert r.status_code == 202, r.text
    r = client.post(
        "/hooks/affitor/api/v1/track/click", json={"click_id": "c1", "url": BAD_URL}, **AUTH["affitor"]
    )
    assert r.status_code == 200, r.text
    r = convead(client, json.dumps({"type": "link", "url": BAD_URL}))
    assert r.status_code == 202, r.text
    for event in db.events():
        assert "campaign" not in event["context"]
        assert event["context"].get("page", {}).get("url", BAD_URL) == BAD_URL


@pytest.mark.parametrize(
    ("revenue", "status", "message"),
    [
        ('"1e-320"', 202, None),
        ("1e-320", 202, None),
        ('"' + "1" * 5000 + '"', 422, "must be a finite number"),
        ('"NaN"', 422, "must be a number, got 'NaN'"),
        ('"Infinity"', 422, "must be a number, got 'Infinity'"),
        ('"1e999"', 422, "must be a finite number"),
        ("9" * 4000, 202, None),
    ],
)
def test_extreme_numbers(client: TestClient, revenue: str, status: int, message: str | None) -> None:
    data = '{"type": "purchase", "properties": {"order_id": $n, "revenue": $n}}'.replace("$n", revenue)
    r = convead(client, data)
    assert r.status_code == status, r.text
    if message is not None:
        assert ("/properties/revenue", message) in errors(r)


@pytest.mark.parametrize("data", ["1e-320", "NaN", "Infinity", "1" * 5000, "-0", "[1e-320]"])
def test_a_data_field_that_is_a_number_or_not_json(client: TestClient, data: str) -> None:
    r = convead(client, data)
    assert r.status_code in (202, 400), r.text
    if r.status_code == 400:
        assert errors(r)[0][0] == "/data"


def test_dates_past_the_calendar(client: TestClient) -> None:
    r = croct(client, {"type": "nothingChanged", "sinceTime": 1e300})
    assert r.status_code == 422 and errors(r) == [("/sinceTime", "is not a representable time")]
    r = croct(client, {"type": "nothingChanged", "sinceTime": 10**400})
    assert r.status_code == 422 and errors(r) == [("/sinceTime", "is not a representable time")]
    r = croct(client, {"payload": {"type": "tabOpened"}, "originalTime": 253402300800000})  # year 10000
    assert r.status_code == 422 and errors(r) == [("/originalTime", "is not a representable time")]
    r = croct(client, {"payload": {"type": "tabOpened"}, "originalTime": 253402300799999})
    assert r.status_code == 202, r.text
    details = {"transaction_details": {"transaction_date": "10000-01-01 00:00:00"}}
    r = kartra(client, {"action": "buy_product", "action_details": details})
    assert r.status_code == 422
    assert errors(r) == [
        ("/action_details/transaction_details/transaction_date", "must be a date-time like %Y-%m-%d %H:%M:%S")
    ]
    details = {"calendar": {"calendar_date": "0001-01-01 00:00:00"}}
    r = kartra(client, {"action": "calendar_subscribe", "action_details": details})
    assert r.status_code == 202, r.text
    r = convead(client, json.dumps({"type": "update_info", "visitor_info": {"date_of_birth": "99999-01-01"}}))
    assert r.status_code == 422 and errors(r) == [
        ("/visitor_info/date_of_birth", "must be a date like YYYY-MM-DD")
    ]


def test_digits_python_will_not_convert(client: TestClient, db: DB) -> None:
    for country in ("²", "1" * 5000, "+٣٤"):
        info = {"phone": "612 34 56 78", "country": country}
        r = convead(client, json.dumps({"type": "update_info", "visitor_info": info}))
        assert r.status_code == 202, r.text
    options = {"²": {"option_value": "a"}, "1" * 5000: {"option_value": "b"}}
    fields = [{"field_identifier": "x", "field_type": "checkbox", "field_value": options}]
    r = kartra(client, {"action": "filled_form", "lead": {"id": 1, "custom_fields": fields}})
    assert r.status_code == 202, r.text
    r = kartra(client, {"action": "filled_form", "lead": {"id": 2, "custom_fields": {"²": fields[0]}}})
    assert r.status_code == 202, r.text
    assert db.count("events") == 5


def nested(depth: int, leaf: Any = "x") -> Any:
    node = leaf
    for _ in range(depth):
        node = {"a": node}
    return node


DEEP = '"$deep"'


def test_deep_nesting_never_escapes_as_a_500(client: TestClient) -> None:
    """As deep as the JSON decoder lets through, into private values, constraints and extra."""
    bodies = [
        ("affitor", "/api/v1/track/lead", {"customer_key": "k", "email": "$deep", "name": "$deep"}),
        ("croct", "", {"type": "eventOccurred", "name": "n", "details": "$deep"}),
        (
            "croct",
            "",
            {"type": "userSignedUp", "userId": "u", "profile": {"custom": "$deep", "email": "$deep"}},
        ),
        ("kartra", "", {"action": "filled_form", "lead": "$deep"}),
    ]
    for depth in (200, 600, 900, 5000):
        deep = '{"a":' * depth + '"x"' + "}" * depth
        for source, path, body in bodies:
            text = json.dumps(body).replace(DEEP, deep)
            headers = {**AUTH[source].get("headers", {}), "Content-Type": "application/json"}
            params = AUTH[source].get("params")
            r = client.post(f"/hooks/{source}{path}", content=text, headers=headers, params=params)
            assert r.status_code < 500, (source, depth, r.text)


def test_redaction_and_mapping_of_values_deeper_than_python_recursion() -> None:
    """redact() hashes a private value as JSON text: one too deep to write is dropped, not
    left in the clear and not a RecursionError; mapping it is a problem, not an exception."""
    mappings = load_dir(ROOT / "mappings")
    m = mappings["affitor"]
    doc = {"customer_key": "k", "email": nested(5000, "secret@x.example"), "additional_data": nested(5000)}
    assert m.redact(doc)
    assert set(doc["email"]) == {"$redacted"}  # nothing kept of it
    out = map_document(m, doc, {}, "/api/v1/track/lead", "2025-11-25T00:00:00.000Z", "d")
    assert out.status in ("accepted", "rejected")
    for source, body in [
        ("croct", {"type": "eventOccurred", "name": "n", "details": nested(5000)}),
        ("kartra", {"action": "filled_form", "lead": {"custom_fields": [nested(5000)]}}),
        ("convead", {"type": "update_cart", "properties": {"items": [nested(5000)]}}),
    ]:
        mappings[source].redact(body)
        out = map_document(mappings[source], body, {}, "/", "2025-11-25T00:00:00.000Z", "d")
        assert out.status in ("accepted", "rejected"), source
