"""Hostile input at the ingest edge, on both backends: every bad body is a 4xx naming the
field (never a 5xx), nothing is stored before the credential is verified, and what is
stored is bounded and redacted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec
import pytest
from conftest import DB, SECRETS, make_env
from starlette.testclient import TestClient
from test_ingest import (
    AFFITOR_LEAD,
    CONVEAD_FORM,
    CROCT_BEACON,
    KARTRA_VISIT,
    VALID,
    healthy,
    is_problem,
    post,
)

from receiver import Settings, create_app

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
AUTH_CONVEAD = {"X-App-Key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]}
KARTRA_FORM = "lead[id]=1&lead[email]=ana%40example.com&action=kartra_page_visit"


def stored(db: DB) -> dict[str, Any]:
    [row] = db.deliveries()
    return row


# -- PHP-style form keys ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "field", "value"),
    [
        # "00" and "01" are names, not indexes: the keys stay an object
        ("&x[00]=1&x[0]=2", "x", {"00": "1", "0": "2"}),
        ("&x[0]=a&x[01]=b", "x", {"0": "a", "01": "b"}),
        ("&x[%C2%B2]=1&x[0]=2", "x", {"²": "1", "0": "2"}),  # a Unicode digit
        ("&x[]=a&x[]=b", "x", ["a", "b"]),
        ("&x[5]=a&x[]=b", "x", {"5": "a", "1": "b"}),
    ],
)
def test_php_form_keys_with_odd_indexes_are_kept_as_sent(
    client: TestClient, db: DB, extra: str, field: str, value: Any
) -> None:
    r = post(client, "kartra", content=(KARTRA_FORM + extra).encode(), headers=FORM)
    assert r.status_code == 202, r.text
    [event] = db.events()
    assert event["extra"][field] == value


def test_form_fields_named_like_indexes_stay_named_fields(client: TestClient, db: DB) -> None:
    """Found by tests/test_fuzz_properties.py: a form whose top-level names are all 0, 1, …
    was read as a list, so Convead's query (merged into the body's fields) was a 500 and
    such a form body a 422 "must be an object". A form's top level is always named fields."""
    data = json.dumps({"type": "link", "url": "http://shop.example/"})
    r = client.post("/hooks/convead?0[visitor_uid]=v-1&1=x", data={"data": data}, headers=AUTH_CONVEAD)
    assert r.status_code == 202, r.text
    [row] = db.deliveries()
    assert row["status"] == "accepted"
    [event] = db.events(row["id"])
    assert event["extra"]["0"] == {"visitor_uid": "v-1"} and event["extra"]["1"] == "x"
    r = post(client, "kartra", content=b"0[id]=1&1=x", headers=FORM)
    assert r.status_code == 202 and r.json()["status"] == "unmapped", r.text
    assert db.deliveries()[-1]["status"] == "unmapped"
    healthy(client)


def test_form_keys_nested_too_deeply_are_a_400_naming_the_field(client: TestClient, db: DB) -> None:
    deep = "x" + "[a]" * 100_000
    r = post(client, "kartra", content=f"{KARTRA_FORM}&{deep}=1".encode(), headers=FORM)
    problem = is_problem(r, 400)
    assert problem["errors"][0]["path"].startswith("/x[a][a]")
    assert "64 levels" in problem["errors"][0]["message"]
    assert len(r.content) < 2000
    assert stored(db)["status"] == "rejected"
    healthy(client)


# -- JSON that parses but cannot be stored or walked ---------------------------------------
@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            b'{"lead":{"id":"1","first_name":"A\\u0000na"},"action":"kartra_page_visit"}',
            "/lead/first_name",
            "NUL",
        ),
        (b'{"lead":{"id":"1","a\\u0000":"x"},"action":"kartra_page_visit"}', "/lead/a\\x00", "NUL"),
        (b'{"lead":{"id":"1"},"x":' + b"[" * 80 + b"]" * 80 + b"}", "/x/0/0", "64 levels"),
        (b"\xef\xbb\xbf" + json.dumps(KARTRA_VISIT).encode(), "", "BOM"),
        (b'{"lead":{"first_name":"\\ud800"}}', "", "surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "", "64 levels"),
        (b'{"lead":{"first_name":"\xed\xa0\x80"}}', "", "UTF-8"),  # a surrogate, UTF-8 encoded
    ],
)
def test_json_that_cannot_be_stored_is_a_400_naming_the_field(
    client: TestClient, db: DB, body: bytes, path: str, message: str
) -> None:
    r = post(client, "kartra", content=body, headers=JSON)
    problem = is_problem(r, 400)
    [error] = problem["errors"]
    assert error["path"].startswith(path), error
    assert message.lower() in (error["message"] + problem["detail"]).lower(), problem
    assert stored(db)["status"] == "rejected"
    assert db.count("events") == 0
    healthy(client)


def test_repeated_json_keys_the_last_wins_and_no_clear_copy_is_kept(client: TestClient, db: DB) -> None:
    # Affitor's email is kept only hashed and masked: a repeated key must not smuggle a
    # clear copy into the stored body (the bytes hold both, the parsed document one).
    body = b'{"customer_code":"c1","user_id":"u1","email":"hidden@example.com","email":null}'
    r = post(client, "affitor", "/api/tracking/lead", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    assert b"hidden@example.com" not in db.dump()
    assert stored(db)["body_format"] == "document"


def test_convead_data_field_with_nul_or_deep_nesting_is_a_400_naming_it(client: TestClient, db: DB) -> None:
    for data, path in [
        ('{"type":"link","url":"http://a/\\u0000"}', "/data/url"),
        ('{"type":"link","p":' + "[" * 70 + "]" * 70 + "}", "/data/p/0"),
    ]:
        r = post(client, "convead", data={**CONVEAD_FORM, "data": data})
        problem = is_problem(r, 400)
        assert problem["errors"][0]["path"].startswith(path), problem
    assert [d["status"] for d in db.deliveries()] == ["rejected", "rejected"]
    healthy(client)


def test_form_value_with_nul_is_a_400_naming_it(client: TestClient, db: DB) -> None:
    r = post(client, "convead", content=b"visitor_uid=v%00&data=%7B%7D", headers=FORM)
    problem = is_problem(r, 400)
    assert problem["errors"][0]["path"] == "/visitor_uid"


# -- the credential first --------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"visitor_uid": "v", "data": ', JSON),  # bad JSON: no key can be found in it
        (b"\xff\xfe", FORM),  # not UTF-8
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--", {"Content-Type": "multipart/form-data"}),
        (b"visitor_uid=v&data=" + b"x" * 2_000_000, FORM),  # over the size limit
    ],
)
def test_convead_without_a_credential_is_401_and_stores_nothing_whatever_else_is_wrong(
    client: TestClient, db: DB, body: bytes, headers: dict[str, str]
) -> None:
    r = post(client, "convead", auth=False, content=body, headers=headers)
    problem = is_problem(r, 401)
    assert "app_key" in problem["detail"]
    assert db.count("deliveries") == 0


def test_convead_bad_json_with_a_header_key_is_stored_rejected_without_the_body(
    client: TestClient, db: DB
) -> None:
    body = b'{"app_key":"' + SECRETS["RECEIVER_CONVEAD_APP_KEY"].encode() + b'", "data": '
    r = post(client, "convead", content=body, headers=JSON)
    is_problem(r, 400)
    row = stored(db)
    assert row["status"] == "rejected" and row["body_format"] == "withheld" and row["body"] is None


def test_unreadable_data_field_is_not_stored(client: TestClient, db: DB) -> None:
    # The key inside data cannot be removed from text that does not parse: data is dropped.
    key = SECRETS["RECEIVER_CONVEAD_APP_KEY"]
    r = post(client, "convead", data={**CONVEAD_FORM, "data": f'{{"app_key":"{key}", broken'})
    is_problem(r, 400)
    assert key.encode() not in db.dump()
    assert "data" not in json.loads(stored(db)["body"])


# -- answers a newcomer can act on ------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "path", "where", "bearer"),
    [
        ("kartra", "", ["query parameter token", "header X-Webhook-Token", "Authorization: Bearer"], True),
        ("convead", "", ["body field app_key", "query parameter app_key", "header X-App-Key"], False),
        ("croct", "", ["header X-App-Id", "query parameter token"], False),
        ("affitor", "/api/tracking/lead", ["Authorization: Bearer"], True),
    ],
)
def test_401_says_where_the_credential_goes(
    client: TestClient, source: str, path: str, where: list[str], bearer: bool
) -> None:
    r = post(client, source, path, auth=False, json={})
    assert r.status_code == 401
    text = r.text
    for w in where:
        assert w in text, text
    assert ("www-authenticate" in r.headers) is bearer
    if bearer:
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("source", "path", "ctype"),
    [
        ("affitor", "/api/tracking/lead", "application/xml"),
        ("croct", "", "text/html"),
        ("croct", "", "application/x-www-form-urlencoded"),
        ("kartra", "", "application/xml"),
        ("convead", "", "image/png"),
    ],
)
def test_a_content_type_that_cannot_carry_the_payload_is_415(
    client: TestClient, db: DB, source: str, path: str, ctype: str
) -> None:
    r = post(client, source, path, content=b"<lead/>", headers={"Content-Type": ctype})
    assert r.status_code == 415, r.text
    assert ctype in r.text
    assert db.count("deliveries") == 0


@pytest.mark.parametrize(
    "ctype", ["application/json", "text/plain;charset=UTF-8", "application/vnd.x+json", ""]
)
def test_json_sources_take_json_under_json_labels_and_text_plain(client: TestClient, ctype: str) -> None:
    r = post(client, "croct", content=json.dumps(CROCT_BEACON).encode(), headers={"Content-Type": ctype})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(("source", "path", "send", "status"), VALID)
def test_every_duplicate_answer_says_idempotent_replayed(
    client: TestClient, source: str, path: str, send: dict[str, Any], status: int
) -> None:
    first = post(client, source, path, **send)
    assert first.status_code == status and "idempotent-replayed" not in first.headers
    again = post(client, source, path, **send)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"


# -- bounded answers and rows --------------------------------------------------------------
@pytest.mark.parametrize("item", [b"0", b"{}"])
def test_a_megabyte_batch_gets_a_small_answer_and_stores_nothing(
    client: TestClient, db: DB, item: bytes
) -> None:
    body = b"[" + b",".join([item] * (1_000_000 // (len(item) + 1))) + b"]"
    r = post(client, "croct", content=body, headers=JSON)
    problem = is_problem(r, 413)
    assert len(r.content) < 1000
    # [0,0,…]: more events than a delivery may carry; [{},{},…]: more objects than a
    # document may hold (caught before they are built).
    assert problem["errors"][0]["message"] in (
        "must hold at most 100 events",
        "must hold at most 20000 objects and arrays and 20000 members",
    )
    assert db.count("deliveries") == 0
    healthy(client)


def test_errors_are_capped_and_the_problem_says_how_many_were_left_out(client: TestClient, db: DB) -> None:
    r = post(client, "croct", content=b"[" + b",".join([b"0"] * 100) + b"]", headers=JSON)
    problem = is_problem(r, 422)
    assert len(problem["errors"]) == 50 and problem["errors_omitted"] == 50
    assert "50 more left out" in problem["detail"]
    reasons = json.loads(stored(db)["reasons"])
    assert len(reasons) == 50 and "51 more errors" in reasons[-1]["message"]


@pytest.mark.parametrize("spacing", [b"", b" "])
def test_a_document_of_too_many_members_is_413_and_stores_nothing(
    client: TestClient, db: DB, spacing: bytes
) -> None:
    members = b",".join(b'"k%x"%s:0' % (i, spacing) for i in range(25_000))
    body = b'{"lead":{"id":"1"},"action":"kartra_page_visit","x":{' + members + b"}}"
    problem = is_problem(post(client, "kartra", content=body, headers=JSON), 413)
    assert "20000 members" in problem["errors"][0]["message"]
    assert db.count("deliveries") == 0
    # Colons inside strings are not members: a long text full of them is fine.
    ok = {**KARTRA_VISIT, "note": "a:" * 30_000}
    assert post(client, "kartra", json=ok).status_code == 202


def test_a_document_deeper_than_the_decoder_goes_is_a_400_stored_rejected(client: TestClient, db: DB) -> None:
    r = post(
        client, "croct", content=b'{"type":"x","a":' + b"[" * 10_000 + b"]" * 10_000 + b"}", headers=JSON
    )
    # Named as deep as a parser can go without running out of stack itself: here, the body.
    assert "64 levels" in is_problem(r, 400)["errors"][0]["message"]
    assert stored(db)["status"] == "rejected"


def test_events_per_delivery_is_a_setting(data_dir: Any) -> None:
    settings = Settings.from_env(make_env(data_dir, RECEIVER_MAX_EVENTS_PER_DELIVERY="2"))
    with TestClient(create_app(settings)) as c:
        assert post(c, "croct", json=[CROCT_BEACON, CROCT_BEACON]).status_code == 202
        r = post(c, "croct", json=[CROCT_BEACON] * 3)
        assert r.status_code == 413 and "at most 2" in r.text


def test_unmapped_answer_does_not_echo_a_huge_type(client: TestClient) -> None:
    r = post(client, "croct", json={"type": "x" * 500_000})
    assert r.status_code == 202 and len(r.content) < 1000


def test_stored_headers_are_bounded_and_hold_no_client_address(client: TestClient, db: DB) -> None:
    headers = {f"X-Extra-{i}": "v" for i in range(100)}
    headers["X-Forwarded-For"] = "203.0.113.9"
    assert post(client, "kartra", json=KARTRA_VISIT, headers=headers).status_code == 202
    kept = json.loads(stored(db)["headers"])
    assert len(kept) <= 40
    assert "203.0.113.9" not in json.dumps(kept)


# -- the stored query is redacted like a body ----------------------------------------------
def test_convead_query_borne_event_is_stored_without_key_or_clear_personal_data(
    client: TestClient, db: DB
) -> None:
    key = SECRETS["RECEIVER_CONVEAD_APP_KEY"]
    data = {
        "type": "link",
        "url": "http://shop.example/",
        "app_key": key,
        "visitor_info": {"email": "q@example.com"},
    }
    r = post(
        client,
        "convead",
        "/watch/event",
        auth=False,
        params={"app_key": key, "visitor_uid": "v-1", "data": json.dumps(data)},
    )
    assert r.status_code == 200, r.text
    row = stored(db)
    assert key not in row["query"] and key.encode() not in (row["body"] or b"")
    assert (
        json.loads(json.loads(row["query"])["data"])["visitor_info"]["email"] == "q@example.com"
    )  # not marked
    shown = client.get(f"/v1/deliveries/{row['id']}", headers=KEY).text
    assert key not in shown


def test_affitor_email_in_the_query_is_hashed_like_in_the_body(client: TestClient, db: DB) -> None:
    r = post(
        client, "affitor", "/api/tracking/lead", json=AFFITOR_LEAD, params={"email": "query@example.com"}
    )
    assert r.status_code == 200
    assert b"query@example.com" not in db.dump()
    query = json.loads(stored(db)["query"])
    assert json.loads(query["email"])["masked"] == "q***@example.com"


def test_convead_rejected_query_data_is_not_stored(client: TestClient, db: DB) -> None:
    key = SECRETS["RECEIVER_CONVEAD_APP_KEY"]
    r = post(client, "convead", params={"visitor_uid": "v", "data": f'{{"app_key":"{key}", "x'})
    is_problem(r, 400)
    row = stored(db)
    assert key not in row["query"] and "data" not in json.loads(row["query"])


# -- a bug is a 500, logged as where, never what ----------------------------------------------
def test_an_unexpected_error_is_a_500_logged_with_the_delivery_id_and_no_contents(
    client: TestClient, db: DB, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import receiver.ingest.endpoint as endpoint

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("ana@example.com")  # an exception quoting the body, as real ones do

    monkeypatch.setattr(endpoint, "map_document", broken)
    with caplog.at_level(logging.DEBUG):
        r = post(client, "kartra", json=KARTRA_VISIT)
        affitor = post(client, "affitor", "/api/tracking/lead", json=AFFITOR_LEAD)
    is_problem(r, 500)
    assert affitor.status_code == 500 and affitor.json()["success"] is False
    assert "ana@example.com" not in r.text
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "KeyError" in logged and "in broken" in logged and "delivery=0" in logged
    assert "ana@example.com" not in logged and "a@example.com" not in logged
    assert db.count("deliveries") == 0
    healthy(client)


def test_security_headers_on_every_answer(client: TestClient) -> None:
    answers = [
        client.get("/healthz"),
        client.get("/nope"),
        post(client, "kartra", json=KARTRA_VISIT),
        client.get("/v1/events", headers=KEY),
        client.get("/v1/events"),
        client.get("/openapi.json"),
    ]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
    assert answers[3].headers["cache-control"] == "no-store"
    assert answers[4].headers["cache-control"] == "no-store"  # the 401 too


def test_too_many_header_bytes_is_431_before_any_work(client: TestClient, db: DB) -> None:
    r = post(client, "kartra", json=KARTRA_VISIT, headers={"X-Big": "x" * 40_000})
    is_problem(r, 431)
    assert db.count("deliveries") == 0


def test_read_api_answers_an_error_once(client: TestClient) -> None:
    body = msgspec.json.decode(client.get("/v1/events", headers=KEY, params={"limit": "0"}).content)
    assert body["errors"] == [{"path": "limit", "message": "must be an integer from 1 to 1000"}]
