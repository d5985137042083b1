"""The inspector through the ASGI app: every page, every guard, on both backends.

Browser behaviour (scripts, focus, layout) is in test_ui_browser.py; here is what the
server answers: sessions, CSRF, headers, escaping, what each page shows, what each
action changes, and that nothing else changes anything.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from conftest import AUTH, DB, ROOT, SECRETS, Server, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app
from receiver.mapping.transforms import sha256_hex
from receiver.ui.bodyview import body_view, locate
from receiver.ui.session import Sessions

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
KARTRA = {
    "lead": {"id": "k-1", "email": "Ana@Example.com", "first_name": "Ana", "website": "https://ana.example/"},
    "action": "kartra_page_visit",
    "action_details": {"kartra_page": {"kartra_page_id": "7", "kartra_page_name": "Pricing"}},
}
AFFITOR = {
    "customer_code": "c-1",
    "user_id": "u-1",
    "email": "Secret.Person@example.com",
    "name": "Secret Person",
    "phone": "+15555550123",
}


def post(client: TestClient, source: str, path: str = "", **kw: Any) -> Any:
    params = {**AUTH[source].get("params", {}), **kw.pop("params", {})}
    headers = {**AUTH[source].get("headers", {}), **kw.pop("headers", {})}
    return client.post(f"/hooks/{source}{path}", params=params, headers=headers, **kw)


def sign_in(client: TestClient) -> str:
    """Sign the client in; returns the session's CSRF token (read from a page's form)."""
    r = client.post("/ui/", data={"api_key": SECRETS["RECEIVER_API_KEY"]}, follow_redirects=False)
    assert r.status_code == 303
    return csrf_of(client.get("/ui/events").text)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def main_of(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def api(client: TestClient, path: str) -> Any:
    r = client.get(path, headers=KEY)
    return r.json() if r.status_code == 200 else r.status_code


@pytest.fixture
def signed(client: TestClient) -> tuple[TestClient, str]:
    return client, sign_in(client)


# -- sessions and guards ------------------------------------------------------------------
GET_PAGES = [
    "/ui/deliveries",
    "/ui/deliveries/some-id",
    "/ui/events",
    "/ui/events/some-id",
    "/ui/leads",
    "/ui/leads/some-id",
    "/ui/mappings",
]
POSTS = [
    "/ui/sign-out",
    "/ui/deliveries/some-id/replay",
    "/ui/leads/some-id/erase",
    "/ui/leads/search",
    "/ui/mappings/playground",
]


def test_pages_without_a_session_send_to_sign_in_and_back(client: TestClient) -> None:
    for path in GET_PAGES:
        client.cookies.clear()
        r = client.get(path + "?source=kartra", follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"] == "/ui/?" + urlencode({"next": path + "?source=kartra"})
        form = client.get(r.headers["location"])
        assert form.status_code == 200 and 'name="api_key"' in form.text and 'type="password"' in form.text
        assert 'name="next" value="' + path + "?source=kartra" in form.text
        signed_in = client.post(
            "/ui/", data={"api_key": SECRETS["RECEIVER_API_KEY"], "next": path}, follow_redirects=False
        )
        assert signed_in.headers["location"] == path


def test_sign_in_root_shows_the_form_then_the_overview(client: TestClient) -> None:
    r = client.get("/ui/")
    assert r.status_code == 200 and "<h1>Sign in</h1>" in r.text
    assert '<label for="api_key">' in r.text and 'name="api_key"' in r.text
    wrong = client.post("/ui/", data={"api_key": "not-it"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert "not the read-API key" in wrong.text and 'name="api_key"' in wrong.text
    assert "set-cookie" not in wrong.headers
    empty = client.post("/ui/", data={}, follow_redirects=False)
    assert empty.status_code == 401
    right = client.post("/ui/", data={"api_key": SECRETS["RECEIVER_API_KEY"]}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/ui/"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert SECRETS["RECEIVER_API_KEY"] not in right.headers["set-cookie"]
    assert "<h1>Overview</h1>" in client.get("/ui/").text


def test_cookie_is_secure_behind_https(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="https://inspector.example") as c:
        r = c.post("/ui/", data={"api_key": SECRETS["RECEIVER_API_KEY"]}, follow_redirects=False)
        assert "secure" in r.headers["set-cookie"].lower()


def test_sign_in_never_redirects_off_the_inspector(client: TestClient) -> None:
    for target in [
        "https://evil.example/",
        "//evil.example/ui/",
        "/ui/\\evil",
        "/elsewhere",
        "/ui//evil.example",
    ]:
        r = client.post(
            "/ui/", data={"api_key": SECRETS["RECEIVER_API_KEY"], "next": target}, follow_redirects=False
        )
        assert r.headers["location"] == "/ui/", target


def test_forged_expired_and_foreign_cookies_are_no_session(client: TestClient, settings: Settings) -> None:
    sign_in(client)
    good = client.cookies["receiver_ui"]
    expires, nonce, mac = good.split(".")
    later = str(int(expires) + 10**6)
    for forged in [f"{later}.{nonce}.{mac}", f"{expires}.{nonce}.{mac[:-2]}AA", "x", "", "a.b.c.d"]:
        client.cookies.clear()
        client.cookies.set("receiver_ui", forged, path="/ui")
        assert client.get("/ui/events", follow_redirects=False).status_code == 303, forged
    other_key = Sessions("another-api-key").issue()[0]
    client.cookies.clear()
    client.cookies.set("receiver_ui", other_key, path="/ui")
    assert client.get("/ui/events", follow_redirects=False).status_code == 303
    expired = Sessions(SECRETS["RECEIVER_API_KEY"], lifetime=-1).issue()[0]
    client.cookies.clear()
    client.cookies.set("receiver_ui", expired, path="/ui")
    assert client.get("/ui/events", follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set("receiver_ui", good, path="/ui")
    assert client.get("/ui/events").status_code == 200


def test_posts_without_a_session_change_nothing(client: TestClient, db: DB) -> None:
    post(client, "kartra", json=KARTRA)
    before = db.rows("SELECT id, status FROM deliveries"), db.count("events"), db.count("leads")
    for path in POSTS:
        r = client.post(path, data={"csrf": "x", "confirm": "some-id", "body": "{}"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/", path
    assert (db.rows("SELECT id, status FROM deliveries"), db.count("events"), db.count("leads")) == before


def test_every_post_needs_the_session_csrf_token(signed: tuple[TestClient, str], db: DB) -> None:
    client, csrf = signed
    r = post(client, "kartra", json=KARTRA)
    delivery_id = r.json()["delivery_id"]
    event_id = r.json()["events"][0]["id"]
    lead_id = api(client, f"/v1/events/{event_id}")["lead_id"]
    other = Sessions(SECRETS["RECEIVER_API_KEY"]).issue()[1].csrf  # a valid token of another session
    for path in [
        f"/ui/deliveries/{delivery_id}/replay",
        f"/ui/leads/{lead_id}/erase",
        "/ui/sign-out",
        "/ui/leads/search",
        "/ui/mappings/playground",
    ]:
        for token in [None, "", "forged", other, csrf + "x"]:
            data = {"confirm": lead_id, "email": "ana@example.com", "source": "croct", "body": "{}"}
            if token is not None:
                data["csrf"] = token
            answer = client.post(path, data=data, follow_redirects=False)
            assert answer.status_code == 403, (path, token)
            assert "Forbidden" in answer.text
    assert api(client, f"/v1/leads/{lead_id}")["id"] == lead_id  # not erased
    assert [e["id"] for e in api(client, f"/v1/deliveries/{delivery_id}")["events"]] == [
        event_id
    ]  # not replayed
    assert client.get("/ui/events", follow_redirects=False).status_code == 200  # still signed in


def test_no_get_changes_anything(signed: tuple[TestClient, str], db: DB) -> None:
    client, _ = signed
    r = post(client, "kartra", json=KARTRA)
    delivery_id, event_id = r.json()["delivery_id"], r.json()["events"][0]["id"]
    lead_id = api(client, f"/v1/events/{event_id}")["lead_id"]
    snapshot = (
        db.rows("SELECT * FROM deliveries"),
        db.rows("SELECT * FROM events"),
        db.rows("SELECT * FROM leads"),
    )
    for path in [
        f"/ui/deliveries/{delivery_id}/replay",
        f"/ui/leads/{lead_id}/erase?confirm={lead_id}",
        "/ui/sign-out",
        "/ui/leads/search?email=ana@example.com",
        "/ui/mappings/playground",
    ]:
        assert client.get(path, follow_redirects=False).status_code in (404, 405), path
    assert (
        db.rows("SELECT * FROM deliveries"),
        db.rows("SELECT * FROM events"),
        db.rows("SELECT * FROM leads"),
    ) == (snapshot)
    assert client.get("/ui/events", follow_redirects=False).status_code == 200


def test_sign_out_ends_the_session(signed: tuple[TestClient, str]) -> None:
    client, csrf = signed
    r = client.post("/ui/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    assert 'receiver_ui=""' in r.headers["set-cookie"] and "max-age=0" in r.headers["set-cookie"].lower()
    assert client.get("/ui/events", follow_redirects=False).status_code == 303


def test_unknown_ids_answer_the_404_page(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    unknown = "0190c0de-0000-7000-8000-000000000000"
    for path, what in [
        (f"/ui/deliveries/{unknown}", f"no delivery with the id {unknown}"),
        (f"/ui/events/{unknown}", f"no event with the id {unknown}"),
        (f"/ui/leads/{unknown}", f"no lead with the id {unknown}"),
        ("/ui/no-such-page", "no such page"),
    ]:
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "<h1>Not found</h1>" in r.text and what in r.text, path
        assert "Sign out" in r.text  # the page keeps the navigation


def test_replay_and_erase_of_unknown_ids_are_404(signed: tuple[TestClient, str]) -> None:
    client, csrf = signed
    assert client.post("/ui/deliveries/nope/replay", data={"csrf": csrf}).status_code == 404
    assert client.post("/ui/leads/nope/erase", data={"csrf": csrf, "confirm": "nope"}).status_code == 404


# -- headers, escaping, assets --------------------------------------------------------------
def test_security_headers_on_every_answer(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    client.cookies.clear()
    paths = ["/ui/", "/ui/deliveries", "/ui/nope", "/ui/static/ui.js", "/ui/static/ui.css"]
    answers = [client.get(p, follow_redirects=False) for p in paths]
    sign_in(client)
    answers += [client.get(p) for p in ["/ui/", "/ui/events", "/ui/mappings", "/ui/nope"]]
    for r in answers:
        csp = r.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    for r in answers:
        if "/static/" not in str(r.url):
            assert r.headers["cache-control"] == "no-store"  # pages carry personal data
    js, css = answers[3], answers[4]
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_pages_have_no_inline_script_style_or_handler(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    r = post(client, "kartra", json=KARTRA)
    delivery_id, event_id = r.json()["delivery_id"], r.json()["events"][0]["id"]
    lead_id = api(client, f"/v1/events/{event_id}")["lead_id"]
    for path in [
        "/ui/",
        "/ui/deliveries",
        f"/ui/deliveries/{delivery_id}",
        "/ui/events",
        f"/ui/events/{event_id}",
        "/ui/leads",
        f"/ui/leads/{lead_id}",
        "/ui/mappings",
    ]:
        html = client.get(path).text
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
        assert " style=" not in html and "<style" not in html, path
        assert re.findall(r"\son[a-z]+=", html) == [], path


PAYLOAD = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"


def test_vendor_values_are_escaped_everywhere(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    body = {
        "lead": {
            "id": PAYLOAD,
            "email": "x@example.com",
            "first_name": PAYLOAD,
            "website": "javascript:alert(3)",
            "custom_fields": [
                {"field_identifier": PAYLOAD, "field_type": "input_field", "field_value": PAYLOAD}
            ],
        },
        "action": "assign_tag",
        "action_details": {"tag": {"tag_id": PAYLOAD, "tag_name": PAYLOAD}},
    }
    r = post(client, "kartra", json=body, headers={"X-Evil": PAYLOAD}, params={PAYLOAD: PAYLOAD})
    delivery_id, event_id = r.json()["delivery_id"], r.json()["events"][0]["id"]
    lead_id = api(client, f"/v1/events/{event_id}")["lead_id"]
    unmapped = post(client, "croct", json={"type": PAYLOAD})
    odd = post(client, "kartra", content=PAYLOAD.encode())  # read as a form, no type: unmapped
    post(
        client,
        "croct",
        content=b'{"type": "' + PAYLOAD.encode(),
        headers={"Content-Type": "application/json"},
    )
    for path in [
        "/ui/",
        "/ui/deliveries",
        f"/ui/deliveries/{delivery_id}",
        f"/ui/deliveries/{unmapped.json()['delivery_id']}",
        f"/ui/deliveries/{odd.json()['delivery_id']}",
        f"/ui/deliveries/{rejected_id(client)}",
        "/ui/events",
        f"/ui/events/{event_id}",
        "/ui/leads",
        f"/ui/leads/{lead_id}",
        f"/ui/events?lead_id={lead_id}",
    ]:
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert 'href="javascript:' not in html, path
    lead_page = client.get(f"/ui/leads/{lead_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in lead_page
    assert "javascript:alert(3)" in lead_page  # shown, as text


def rejected_id(client: TestClient) -> str:
    return str(client.get("/v1/deliveries?status=rejected", headers=KEY).json()["data"][0]["id"])


def test_templates_never_mark_data_safe() -> None:
    for template in (ROOT / "receiver" / "ui" / "templates").glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", "") and "Markup(" not in text, template.name
        assert "autoescape false" not in text, template.name


# -- what the pages show ----------------------------------------------------------------------
def test_overview_counts_charts_rejections_and_webhook_urls(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    post(client, "kartra", json=KARTRA)
    post(client, "kartra", json={**KARTRA, "action": "no_such_action"})
    post(client, "croct", json={"type": "goalCompleted", "goalId": "x"})
    post(client, "croct", json={"type": "pageOpened", "url": "https://a.example/"})
    html = main_of(client.get("/ui/").text)
    rows = dict(
        re.findall(
            r'<th scope="row"><a href="/ui/deliveries\?source=(\w+)">\w+</a></th>(.*?)</tr>', html, re.S
        )
    )
    cells = {s: re.findall(r'<td class="num">(?:<a [^>]*>)?(\d+)', row) for s, row in rows.items()}
    assert cells["kartra"] == ["1", "1", "0", "2"]  # accepted, unmapped, rejected, total
    assert cells["croct"] == ["1", "0", "1", "2"]
    assert cells["affitor"] == ["0", "0", "0", "0"]
    assert html.count('<rect class="bar"') == 60
    assert "4 deliveries between" in html and "4 in the last hour" in html
    assert "/goalId</code> must be at least 3 characters long" in html
    assert 'id="queue-depth">0<' in html
    # URLs to paste; secrets hidden (in the page, revealed by the button) and never in the URL shown.
    assert "http://testserver/hooks/kartra?token=••••••" in html
    assert f"hidden>http://testserver/hooks/kartra?token={SECRETS['RECEIVER_KARTRA_TOKEN']}</code>" in html
    assert "http://testserver/hooks/affitor/api/tracking/lead" in html
    for secret in ("RECEIVER_CROCT_APP_ID", "RECEIVER_AFFITOR_TOKEN", "RECEIVER_CONVEAD_APP_KEY"):
        assert f"hidden>{SECRETS[secret]}</code>" in html
    assert SECRETS["RECEIVER_API_KEY"] not in html


def test_deliveries_filters_search_and_pages(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    ids = [
        post(client, "croct", json={"type": "pageOpened", "url": f"https://a.example/{i}"}).json()[
            "delivery_id"
        ]
        for i in range(53)
    ]
    kartra = post(client, "kartra", json=KARTRA).json()["delivery_id"]
    post(client, "croct", json={"type": "goalCompleted", "goalId": "x"})
    page = client.get("/ui/deliveries").text
    shown = re.findall(r'<tr data-id="([^"]+)">', page)
    assert len(shown) == 50 and shown == sorted(shown, reverse=True)  # newest first
    assert shown[1] == kartra and f'href="/ui/deliveries/{kartra}"' in page
    older = re.search(r'href="/ui/deliveries\?([^"]*before=[^"]+)" rel="next"', page)
    assert older
    rest = re.findall(
        r'<tr data-id="([^"]+)">', client.get("/ui/deliveries?" + older.group(1).replace("&amp;", "&")).text
    )
    assert len(rest) == 5 and not set(rest) & set(shown) and set(rest) | set(shown) >= set(ids)
    only = re.findall(r'<tr data-id="([^"]+)">', client.get("/ui/deliveries?source=kartra").text)
    assert only == [kartra]
    rejected = re.findall(r'<tr data-id="([^"]+)">', client.get("/ui/deliveries?status=rejected").text)
    assert len(rejected) == 1
    assert re.findall(
        r'<tr data-id="([^"]+)">', client.get(f"/ui/deliveries?q={kartra[-12:].upper()}").text
    ) == [kartra]
    assert re.findall(r'<tr data-id="([^"]+)">', client.get(f"/ui/deliveries?q={kartra[9:23]}").text) == [
        kartra
    ]
    bad = client.get("/ui/deliveries?source=nope&status=maybe&q=%25_")
    assert bad.status_code == 200 and bad.text.count("the filter was left out") == 3
    assert len(re.findall(r"<tr data-id=", bad.text)) == 50


def test_live_rows_are_only_the_new_ones(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    first = post(client, "kartra", json=KARTRA).json()["delivery_id"]
    later = [
        post(client, "croct", json={"type": "pageOpened", "url": f"https://a.example/{i}"}).json()[
            "delivery_id"
        ]
        for i in range(2)
    ]
    r = client.get(f"/ui/deliveries/live?after={first}")
    assert r.status_code == 200 and "<html" not in r.text
    assert re.findall(r'<tr data-id="([^"]+)">', r.text) == later[::-1]
    assert (
        re.findall(
            r'<tr data-id="([^"]+)">', client.get(f"/ui/deliveries/live?source=kartra&after={first}").text
        )
        == []
    )
    assert client.get(f"/ui/deliveries/live?after={later[-1]}").text.strip() == ""
    client.cookies.clear()
    assert (
        client.get(f"/ui/deliveries/live?after={first}").status_code == 401
    )  # a script cannot follow a redirect


def test_delivery_page_json_body_reasons_and_events(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    ok = post(client, "kartra", json=KARTRA).json()
    html = main_of(client.get(f"/ui/deliveries/{ok['delivery_id']}").text)
    assert "accepted" in html and 'href="/ui/mappings#src-kartra"><code>kartra@1</code>' in html
    assert '<span class="key">&#34;first_name&#34;</span>: &#34;Ana&#34;,' in html  # pretty-printed
    event = ok["events"][0]["id"]
    lead_id = api(client, f"/v1/events/{event}")["lead_id"]
    assert f'href="/ui/events/{event}"' in html and f'href="/ui/leads/{lead_id}"' in html
    assert ">Replay</button>" in html
    batch = [
        {"type": "pageOpened", "url": "https://a.example/"},
        {"type": "goalCompleted", "goalId": "g", "value": -1},
    ]
    post(client, "croct", json=batch)
    rejected = main_of(client.get(f"/ui/deliveries/{rejected_id(client)}").text)
    assert "/1/goalId</code> must be at least 3 characters long" in rejected
    hits = re.findall(r'<span class="line hit" id="(at-\d)"[^>]*>(.*?)</span>\n', rejected)
    assert {re.sub("<[^>]+>", "", t).strip() for _, t in hits} == {
        "&#34;goalId&#34;: &#34;g&#34;,",
        "&#34;value&#34;: -1",
    }
    assert 'href="#at-1"' in rejected and 'href="#at-2"' in rejected


def test_delivery_page_form_bodies_as_a_table_with_data_decoded(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    # Credential in the query: the form body is stored as received, data still JSON text.
    form = {
        "visitor_uid": "v-1",
        "guest_uid": "g-1",
        "data": json.dumps({"type": "link", "url": "https://s.example/", "properties": {"k": 1}}),
    }
    r = client.post("/hooks/convead", params={"app_key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]}, data=form)
    html = main_of(client.get(f"/ui/deliveries/{r.json()['delivery_id']}").text)
    assert (
        '<th scope="row"><code>visitor_uid</code></th>' in html and '<code class="value">v-1</code>' in html
    )
    assert (
        "JSON text, decoded" in html
        and '<span class="key">&#34;url&#34;</span>: &#34;https://s.example/&#34;' in html
    )
    assert SECRETS["RECEIVER_CONVEAD_APP_KEY"] not in html
    # A Kartra PHP-style form, rejected for a bad number: the row of the field is marked.
    kartra = "lead[id]=5&lead[email]=f%40example.com&lead[score]=lots&action=kartra_page_visit"
    post(client, "kartra", content=kartra, headers={"Content-Type": "application/x-www-form-urlencoded"})
    rejected = main_of(client.get(f"/ui/deliveries/{rejected_id(client)}").text)
    assert re.search(
        r'<tr class="hit" id="at-1" tabindex="-1">\s*<th scope="row"><code>lead\[score\]</code>', rejected
    )
    # Not JSON at all: shown as text, with the reason.
    post(client, "croct", content=b'{"type": ', headers={"Content-Type": "application/json"})
    raw = main_of(client.get(f"/ui/deliveries/{rejected_id(client)}").text)
    assert "Not valid JSON: shown as received." in raw and "{&#34;type&#34;: " in raw


def curl_of(html: str) -> str:
    command = re.search(r'<pre class="raw" id="curl"[^>]*>(.*?)</pre>', html, re.S)
    assert command
    return command.group(1).replace("&#39;", "'").replace("&#34;", '"').replace("&amp;", "&")


def test_copy_as_curl_names_the_credential_never_carries_it(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    r = post(client, "kartra", json=KARTRA, headers={"Idempotency-Key": "curl-1"})
    text = curl_of(client.get(f"/ui/deliveries/{r.json()['delivery_id']}").text)
    assert '"http://testserver/hooks/kartra?token=${RECEIVER_KARTRA_TOKEN}"' in text
    assert SECRETS["RECEIVER_KARTRA_TOKEN"] not in text
    assert "-H 'idempotency-key: curl-1'" in text and "host:" not in text and "content-length" not in text


CURL_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("kartra", "", {"json": KARTRA}),  # credential in the query
    ("croct", "", {"json": {"type": "goalCompleted", "goalId": "newsletter"}}),  # in a header
    ("affitor", "/api/tracking/lead", {"json": {"customer_code": "c", "user_id": "u"}}),  # bearer
    ("convead", "", {"data": {"visitor_uid": "v", "data": '{"type":"link","url":"https://s.example/$x`y"}'}}),
]


def test_copied_curl_sends_the_same_delivery_again(server: Server) -> None:
    """Run each copied command in a shell, the secrets in the environment: the service sees
    the same delivery again (a duplicate), so body, path, query and credential all match."""
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the copied command")
    with httpx.Client(base_url=server.url) as http:
        http.post("/ui/", data={"api_key": SECRETS["RECEIVER_API_KEY"]})
        for source, path, body in CURL_CASES:
            first = http.post(
                f"/hooks/{source}{path}",
                params=AUTH[source].get("params", {}),
                headers=AUTH[source].get("headers", {}),
                **body,
            )
            assert first.status_code in (200, 202), first.text
            stored = http.get("/v1/deliveries", headers=KEY).json()["data"]
            delivery_id = stored[0]["id"]
            command = curl_of(http.get(f"/ui/deliveries/{delivery_id}").text)
            out = subprocess.run(
                ["bash", "-c", command + " --silent --include"],
                env={"PATH": "/usr/bin:/bin", **SECRETS},
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("HTTP/1.1 200"), (source, out.stdout)
            # A duplicate of the first: nothing new stored.
            assert http.get("/v1/deliveries", headers=KEY).json()["data"] == stored, source


def test_replay_shows_what_changed(tmp_path: Path, database_url: str | None) -> None:
    """A delivery stored as unmapped under an older mapping, replayed with today's."""
    old = tmp_path / "old-mappings"
    shutil.copytree(ROOT / "mappings", old)
    kartra = old / "kartra.yaml"
    kartra.write_text(kartra.read_text().replace("  kartra_page_visit: page.viewed\n", ""))
    env = make_env(tmp_path / "data", **({"RECEIVER_DATABASE_URL": database_url} if database_url else {}))
    with TestClient(create_app(Settings.from_env({**env, "RECEIVER_MAPPINGS_DIR": str(old)}))) as c:
        r = post(c, "kartra", json=KARTRA)
        assert r.json()["status"] == "unmapped"
        delivery_id = r.json()["delivery_id"]
    with TestClient(create_app(Settings.from_env(env))) as c:
        csrf = sign_in(c)
        html = main_of(c.post(f"/ui/deliveries/{delivery_id}/replay", data={"csrf": csrf}).text)
        assert "Replayed with kartra@1" in html
        assert re.search(r"Status: .*unmapped.*→.*accepted", html)
        assert "Event 1: (none) → page.viewed" in html
        type_row = re.search(r"<tr><th scope=\"row\"><code>/type</code></th>(.*?)</tr>", html)
        assert type_row and 'class="note">absent<' in type_row.group(1)
        assert "&#34;page.viewed&#34;" in type_row.group(1)
        assert api(c, f"/v1/deliveries/{delivery_id}")["status"] == "accepted"
        again = main_of(c.post(f"/ui/deliveries/{delivery_id}/replay", data={"csrf": csrf}).text)
        assert 'accepted</span> → <span class="status status-accepted">accepted' in again
        assert len(api(c, f"/v1/deliveries/{delivery_id}")["events"]) == 1  # replaced, not doubled


def test_events_list_filters_like_the_api_and_event_page(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    k = post(client, "kartra", json=KARTRA).json()["events"][0]["id"]
    c = post(client, "croct", json={"type": "goalCompleted", "goalId": "newsletter"}).json()["events"][0][
        "id"
    ]
    lead_id = api(client, f"/v1/events/{k}")["lead_id"]

    def shown(query: str) -> list[str]:
        return re.findall(r'<td><a href="/ui/events/([^"]+)">', client.get("/ui/events?" + query).text)

    assert shown("") == [c, k]
    assert shown("source=croct") == [c]
    assert shown("type=page.viewed") == [k]
    assert shown(f"lead_id={lead_id}") == [k]
    received = api(client, f"/v1/events/{c}")["received_at"]
    assert shown("since=2000-01-01T00:00") == [c, k]
    assert shown("until=2000-01-01T00:00") == []
    assert shown("since=" + received[:16]) and shown("until=2999-01-01T00%3A00Z") == [c, k]
    bad = client.get("/ui/events?since=yesterday&type=nope").text
    assert bad.count("the filter was left out") == 2
    page = main_of(client.get(f"/ui/events/{k}").text)
    assert "page.viewed" in page and f'href="/ui/leads/{lead_id}"' in page and "/ui/deliveries/" in page
    assert '<span class="key">&#34;page&#34;</span>' in page


def test_lead_page_traits_with_their_source_identities_merges_and_timeline(
    signed: tuple[TestClient, str],
) -> None:
    client, _ = signed
    first = post(client, "kartra", json=KARTRA).json()["events"][0]["id"]
    convead = {
        "visitor_uid": "v-9",
        "data": json.dumps(
            {"type": "link", "url": "https://s.example/", "visitor_info": {"last_name": "Silva"}}
        ),
    }
    post(client, "convead", params={"app_key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]}, data=convead)
    # The Convead visitor (a lead of its own) then gives the Kartra lead's email: the two merge.
    merge = {
        "visitor_uid": "v-9",
        "data": json.dumps({"type": "update_info", "visitor_info": {"email": "ana@example.com"}}),
    }
    post(client, "convead", params={"app_key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]}, data=merge)
    survivor = api(client, f"/v1/events/{first}")["lead_id"]
    leads = api(client, "/v1/leads")["data"]
    assert [lead["id"] for lead in leads] == [survivor]
    html = main_of(client.get(f"/ui/leads/{survivor}").text)
    merged_cell = html.split("Merged ids</dt><dd>")[1].split("</dd>")[0]
    [merged_id] = re.findall(r"<code>([0-9a-f-]{36})</code>", merged_cell)
    assert merged_id != survivor
    # A merged-away id opens the survivor and says so.
    via_old = main_of(client.get(f"/ui/leads/{merged_id}").text)
    assert f"<code>{merged_id}</code> was merged into this lead" in via_old
    rows = re.findall(
        r'<th scope="row"><code>([a-z_.]+)</code></th>\s*<td>(.*?)</td>\s*<td class="nowrap">(.*?)</td>',
        html,
        re.S,
    )
    came_from = {name: origin for name, _, origin in rows}
    assert ">kartra</span>" in came_from["first_name"] and ">convead</span>" in came_from["last_name"]
    assert 'href="https://ana.example/" rel="noopener noreferrer nofollow"' in html
    assert "convead_visitor_uid" in html and "kartra_lead_id" in html
    timeline = re.findall(
        r'<li>\s*<time[^>]*>[^<]*</time>\s*<span class="source[^"]*">(\w+)</span>\s*'
        r'<a href="/ui/events/[^"]+">([^<]+)</a>',
        html,
    )
    assert timeline == [("convead", "profile.updated"), ("convead", "page.viewed"), ("kartra", "page.viewed")]
    assert '<form method="post" action="/ui/leads/' + survivor + '/erase"' in html


def test_lead_search_by_email_is_posted_and_by_id_redirects(signed: tuple[TestClient, str]) -> None:
    client, csrf = signed
    event = post(client, "kartra", json=KARTRA).json()["events"][0]["id"]
    lead_id = api(client, f"/v1/events/{event}")["lead_id"]
    found = client.post("/ui/leads/search", data={"csrf": csrf, "email": "  ANA@example.com "})
    assert found.status_code == 200 and f'href="/ui/leads/{lead_id}"' in found.text
    none = client.post("/ui/leads/search", data={"csrf": csrf, "email": "nobody@example.com"})
    assert "No leads match." in none.text
    assert (
        "Enter a whole email address."
        in client.post("/ui/leads/search", data={"csrf": csrf, "email": "ana"}).text
    )
    r = client.get(f"/ui/leads?id={lead_id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/ui/leads/{lead_id}"
    assert "There is no lead with the id nope." in client.get("/ui/leads?id=nope").text
    assert f'href="/ui/leads/{lead_id}"' in client.get("/ui/leads").text
    assert f'href="/ui/leads/{lead_id}"' not in client.get("/ui/leads?source=croct").text


def test_erase_needs_the_typed_id_then_erases_through_the_store(
    signed: tuple[TestClient, str], db: DB
) -> None:
    client, csrf = signed
    r = post(client, "kartra", json=KARTRA)
    lead_id = api(client, f"/v1/events/{r.json()['events'][0]['id']}")["lead_id"]
    for typed in ["", "yes", lead_id[:-1], lead_id + "x"]:
        wrong = client.post(f"/ui/leads/{lead_id}/erase", data={"csrf": csrf, "confirm": typed})
        assert wrong.status_code == 400 and "Nothing was erased" in wrong.text
        assert api(client, f"/v1/leads/{lead_id}")["id"] == lead_id
    done = client.post(f"/ui/leads/{lead_id}/erase", data={"csrf": csrf, "confirm": f" {lead_id} "})
    assert done.status_code == 200 and "<h1>Lead erased</h1>" in done.text
    assert api(client, f"/v1/leads/{lead_id}") == 404
    assert db.count("deliveries") == 0 and db.count("events") == 0
    assert client.get(f"/ui/leads/{lead_id}").status_code == 404
    assert (
        client.post(f"/ui/leads/{lead_id}/erase", data={"csrf": csrf, "confirm": lead_id}).status_code == 404
    )


def test_privacy_marked_fields_never_appear_on_any_page(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    r = post(client, "affitor", "/api/tracking/lead", json=AFFITOR)
    assert r.status_code == 200
    event = api(client, "/v1/events")["data"][0]
    pages = [
        "/ui/",
        "/ui/deliveries",
        f"/ui/deliveries/{event['delivery_id']}",
        "/ui/events",
        f"/ui/events/{event['id']}",
        "/ui/leads",
        f"/ui/leads/{event['lead_id']}",
    ]
    for path in pages:
        html = client.get(path).text.lower()
        for clear in ("secret.person@example.com", "secret person", "5555550123"):
            assert clear not in html, (path, clear)
    lead = client.get(f"/ui/leads/{event['lead_id']}").text
    assert sha256_hex(AFFITOR["email"]) in lead and "s***@example.com" in lead


def test_mappings_page_tables(signed: tuple[TestClient, str]) -> None:
    client, _ = signed
    html = main_of(client.get("/ui/mappings").text)
    for source in ("affitor", "convead", "croct", "kartra"):
        assert f'<section id="src-{source}"' in html
    assert "<dt><code>goalCompleted</code></dt><dd>goal.completed</dd>" in html
    assert "<dt><code>buy_product</code></dt><dd>order.placed</dd>" in html
    assert "<code>RECEIVER_KARTRA_TOKEN</code>, in query parameter token, or header x-webhook-token" in html
    assert "<code>/client/web/track</code>" in html and "<code>/api/v1/track/click</code>" in html
    assert "<code>lead.email</code> (hash + mask)" in html and "<code>lead.name</code> (drop)" in html
    for secret in SECRETS.values():
        assert secret not in html


def playground(client: TestClient, csrf: str, **form: str) -> str:
    data = {"csrf": csrf, "source": "croct", "path": "/", "content_type": "application/json", **form}
    r = client.post("/ui/mappings/playground", data=data)
    assert r.status_code == 200, r.text
    html = main_of(r.text)
    return html[html.index('<section id="result"') :]


def test_playground_maps_without_storing(signed: tuple[TestClient, str], db: DB) -> None:
    client, csrf = signed
    ok = playground(client, csrf, body='{"type":"goalCompleted","goalId":"newsletter","value":3}')
    assert "Answer <strong>202</strong>" in ok and "status-accepted" in ok
    assert '<span class="key">&#34;goal_id&#34;</span>: &#34;newsletter&#34;' in ok
    bad = playground(
        client,
        csrf,
        body='[{"type":"pageOpened","url":"https://a.example/"},{"type":"goalCompleted","goalId":"g"}]',
    )
    assert (
        "Answer <strong>422</strong>" in bad and "/1/goalId</code> must be at least 3 characters long" in bad
    )
    assert re.search(
        r'<span class="line hit" id="at-1"[^>]*>\s*<span class="key">&#34;goalId&#34;</span>', bad
    )
    unmapped = playground(client, csrf, body='{"type":"somethingNew"}')
    assert "status-unmapped" in unmapped and "<code>somethingNew</code>" in unmapped
    broken = playground(client, csrf, body='{"type": ')
    assert "Answer <strong>400</strong>" in broken and "not valid JSON" in broken
    wrong_type = playground(client, csrf, content_type="application/x-www-form-urlencoded", body="a=1")
    assert "Answer <strong>415</strong>" in wrong_type and "nothing would be stored" in wrong_type
    no_path = playground(client, csrf, path="/nowhere", body="{}")
    assert "Answer <strong>404</strong>" in no_path and "croct has no path" in no_path
    sdk = playground(
        client,
        csrf,
        path="/client/web/track",
        headers="X-Client-Id: 0123456789abcdef0123456789abcdef\nX-App-Id: should-not-matter",
        body=json.dumps(
            {
                "context": {"tabId": "t", "url": "https://a.example/", "timeZone": "UTC"},
                "payload": {"type": "goalCompleted", "goalId": "ab"},
                "originalTime": 1764028800000,
            }
        ),
    )
    assert "Answer <strong>422</strong>" in sdk and '<code class="ptr">/goalId</code>' in sdk
    assert re.search(
        r'<span class="line hit" id="at-1"[^>]*>\s+<span class="key">&#34;goalId&#34;</span>', sdk
    )  # inside /payload
    assert db.count("deliveries") == 0 and db.count("events") == 0 and db.count("leads") == 0


def test_playground_redacts_as_ingest_does(signed: tuple[TestClient, str]) -> None:
    client, csrf = signed
    affitor = playground(client, csrf, source="affitor", path="/api/tracking/lead", body=json.dumps(AFFITOR))
    assert (
        "Answer <strong>200</strong>" in affitor
    )  # as Affitor's own path answers and "lead.captured" in affitor
    for clear in ("Secret.Person@example.com".lower(), "secret person", "5555550123"):
        assert clear not in affitor.lower()
    assert sha256_hex(AFFITOR["email"]) in affitor and "Redacted:" in affitor
    convead = playground(
        client,
        csrf,
        source="convead",
        content_type="application/x-www-form-urlencoded",
        body="app_key=convead-app-key&visitor_uid=v&data=%7B%22type%22%3A%22link%22%2C%22url%22%3A%22https%3A%2F%2Fs.example%2F%22%7D",
    )
    assert "page.viewed" in convead and "convead-app-key" not in convead
    withheld = playground(
        client, csrf, source="affitor", path="/api/tracking/lead", body='{"email": "x@example.com"'
    )
    assert (
        "Answer <strong>400</strong>" in withheld
        and "Withheld" in withheld
        and "x@example.com" not in withheld
    )
    missing = playground(client, csrf, source="affitor", path="/api/tracking/lead", body='{"user_id":"u"}')
    assert "Answer <strong>400</strong>" in missing and "/customer_code</code> is required" in missing


def test_playground_answers_bad_forms_clearly(signed: tuple[TestClient, str], settings: Settings) -> None:
    client, csrf = signed
    r = client.post("/ui/mappings/playground", data={"csrf": csrf, "source": "nope", "body": "{}"})
    assert r.status_code == 400 and "source must be one of" in r.text
    big = "x" * (settings.max_body_bytes + 1)
    r = client.post("/ui/mappings/playground", data={"csrf": csrf, "source": "croct", "body": big})
    assert r.status_code == 400 and "exceeds the limit" in r.text
    huge = client.post(
        "/ui/mappings/playground",
        content=b"csrf=" + b"x" * (settings.max_body_bytes * 4),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413


# -- the body view, on its own ----------------------------------------------------------------
def test_locate_follows_batches_event_roots_and_absent_fields() -> None:
    croct_roots = [["payload"], []]
    beacon = [{"payload": {"type": "goalCompleted", "goalId": "g"}}, {"type": "x", "goalId": "h"}]
    assert locate(beacon, "/0/goalId", croct_roots, batch=True) == ("/0/payload/goalId", True)
    assert locate(beacon, "/1/goalId", croct_roots, batch=True) == ("/1/goalId", True)
    assert locate(beacon, "/1/value", croct_roots, batch=True) == ("/1", False)
    assert locate({"data": "oops"}, "/data", [["data"], []], batch=False) == ("/data", True)
    assert locate({"a": {"b/c": 1}}, "/a/b~1c", [[]], batch=False) == ("/a/b~1c", True)
    assert locate({"a": 1}, "", [[]], batch=False) == ("", True)


def test_body_view_survives_any_depth_and_size() -> None:
    deep = "[" * 5000 + "]" * 5000
    view = body_view(deep, "original", None, [[]], [{"path": "", "message": "is nested too deeply"}])
    assert view.kind in ("json", "text") and view.reasons[0].message == "is nested too deeply"
    wide = json.dumps({f"k{i}": i for i in range(10000)})
    many = body_view(wide, "original", None, [[]], [])
    assert len(many.lines) == 4000 and many.truncated > 0


def test_ui_reads_through_the_store_interface_only() -> None:
    """No SQL and no backend module in the inspector: it works wherever the read API does."""
    for path in (ROOT / "receiver" / "ui").glob("*.py"):
        text = path.read_text()
        assert "SELECT" not in text and "sqlite" not in text.lower() and "asyncpg" not in text, path.name
