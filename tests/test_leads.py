"""One lead across vendors (docs/events.md) and erasure (docs/privacy.md), over HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from conftest import AUTH, DB, SECRETS, Server
from starlette.testclient import TestClient

from receiver.mapping.transforms import sha256_hex

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}


def kartra(client: TestClient, lead: dict[str, Any], action: str = "filled_form") -> Any:
    r = client.post(
        "/hooks/kartra",
        json={"lead": lead, "action": action, "action_details": {"form_id": "3", "form_name": "Signup"}},
        **AUTH["kartra"],
    )
    assert r.status_code == 202, r.text
    return r.json()


def event_lead(client: TestClient, answer: Any) -> str | None:
    event = client.get(f"/v1/events/{answer['events'][0]['id']}", headers=KEY).json()
    lead_id: str | None = event["lead_id"]
    return lead_id


def test_one_person_across_kartra_croct_affitor_is_one_lead(client: TestClient) -> None:
    a = kartra(client, {"id": "77", "email": "  Carol.Doe@Example.COM ", "first_name": "Carol"})
    b = client.post(
        "/hooks/croct",
        json={"type": "leadGenerated", "lead": {"email": "carol.doe@example.com", "lastName": "Doe"}},
        **AUTH["croct"],
    )
    assert b.status_code == 202
    c = client.post(
        "/hooks/affitor/api/tracking/lead",
        json={"customer_code": "cust_1", "user_id": "usr_1", "email": "CAROL.DOE@example.com"},
        **AUTH["affitor"],
    )
    assert c.status_code == 200
    lead_id = event_lead(client, a)
    assert lead_id is not None and event_lead(client, b.json()) == lead_id
    leads = client.get("/v1/leads", headers=KEY).json()["data"]
    assert len(leads) == 1
    lead = leads[0]
    assert lead["id"] == lead_id
    assert lead["sources"] == ["affitor", "croct", "kartra"]
    assert lead["event_count"] == 3
    assert lead["traits"]["email"] == "carol.doe@example.com"
    assert lead["traits"]["email_sha256"] == sha256_hex("carol.doe@example.com")
    assert lead["traits"]["first_name"] == "Carol" and lead["traits"]["last_name"] == "Doe"
    kinds = {(i["source"], i["kind"]) for i in lead["identities"]}
    assert ("kartra", "email_sha256") in kinds
    assert any(k == "affitor" for k, _ in kinds)
    found = client.get("/v1/leads", headers=KEY, params={"email": " Carol.Doe@EXAMPLE.com"}).json()["data"]
    assert [x["id"] for x in found] == [lead_id]
    assert client.get("/v1/leads", headers=KEY, params={"email": "nobody@example.com"}).json()["data"] == []
    timeline = client.get(f"/v1/leads/{lead_id}/events", headers=KEY).json()["data"]
    assert [e["source"] for e in timeline] == ["affitor", "croct", "kartra"]
    assert client.get("/v1/leads", headers=KEY, params={"source": "croct"}).json()["data"][0]["id"] == lead_id


def test_convead_guest_becoming_visitor_links_earlier_guest_events(client: TestClient) -> None:
    def convead(page: str, **fields: str) -> Any:
        data = {"type": "link", "url": f"http://shop.example/{page}", "properties": {}}
        r = client.post("/hooks/convead", data={**fields, "data": json.dumps(data)}, **AUTH["convead"])
        assert r.status_code == 202, r.text
        return r.json()

    guest1 = convead("a", guest_uid="g-100")
    guest2 = convead("b", guest_uid="g-100")
    other_guest = convead("c", guest_uid="g-200")
    assert event_lead(client, guest1) is None and event_lead(client, guest2) is None
    registered = convead("d", guest_uid="g-100", visitor_uid="v-100")
    lead_id = event_lead(client, registered)
    assert lead_id is not None
    assert event_lead(client, guest1) == lead_id and event_lead(client, guest2) == lead_id
    assert event_lead(client, other_guest) is None
    lead = client.get(f"/v1/leads/{lead_id}", headers=KEY).json()
    assert lead["event_count"] == 3
    assert sorted(i["value"] for i in lead["identities"]) == ["g-100", "v-100"]
    # Later events of the linked guest belong to the lead too.
    assert event_lead(client, convead("e", guest_uid="g-100")) == lead_id


def test_merge_keeps_the_older_id_and_the_other_still_resolves(client: TestClient) -> None:
    older = event_lead(client, kartra(client, {"id": "1", "email": "first@example.com", "first_name": "Ann"}))
    r = client.post(
        "/hooks/affitor/api/tracking/lead",
        **AUTH["affitor"],
        json={"customer_code": "c9", "user_id": "u9", "email": "second@example.com"},
    )
    assert r.status_code == 200
    newest_event = client.get("/v1/events", headers=KEY).json()["data"][0]
    newer = newest_event["lead_id"]
    assert older and newer and older != newer
    # Kartra lead 1 now shows up with the second email: both leads are the same person.
    kartra(client, {"id": "1", "email": "second@example.com", "last_name": "Bee"}, action="assign_tag")
    survivor = client.get(f"/v1/leads/{newer}", headers=KEY).json()
    assert survivor["id"] == older
    assert client.get(f"/v1/leads/{older}", headers=KEY).json()["id"] == older
    assert survivor["event_count"] == 3
    assert survivor["traits"]["first_name"] == "Ann" and survivor["traits"]["last_name"] == "Bee"
    assert len(client.get("/v1/leads", headers=KEY).json()["data"]) == 1
    events = client.get("/v1/events", headers=KEY).json()["data"]
    assert {e["lead_id"] for e in events} == {older}
    assert len(client.get(f"/v1/leads/{newer}/events", headers=KEY).json()["data"]) == 3


def test_traits_merge_newest_first_and_null_never_erases(client: TestClient) -> None:
    def croct(t: int, profile: dict[str, Any]) -> None:
        beacon = {
            "context": {"tabId": "t", "url": "https://s.example/", "timeZone": "UTC"},
            "payload": {
                "type": "userSignedUp",
                "externalUserId": "user-1",
                "patch": {"operations": [{"type": "set", "path": ".", "value": profile}]},
            },
            "originalTime": t,
            "departureTime": t,
        }
        assert client.post("/hooks/croct/client/web/track", json=beacon, **AUTH["croct"]).status_code == 200

    croct(2_000_000_000_000, {"firstName": "New", "company": "Acme"})
    croct(1_000_000_000_000, {"firstName": "Old", "jobTitle": "CTO"})  # arrives later, happened earlier
    croct(3_000_000_000_000, {"firstName": "", "company": None})  # absent values erase nothing
    [lead] = client.get("/v1/leads", headers=KEY).json()["data"]
    assert lead["traits"]["first_name"] == "New"
    assert lead["traits"]["company"] == "Acme"
    assert lead["traits"]["job_title"] == "CTO"


def test_concurrent_posts_for_one_new_email_make_one_lead(server: Server) -> None:
    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

            async def one(i: int) -> int:
                if i % 2:
                    r = await c.post(
                        "/hooks/croct",
                        json={
                            "type": "leadGenerated",
                            "leadId": f"l{i}",
                            "lead": {"email": "same@example.com"},
                        },
                        headers={"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]},
                    )
                else:
                    r = await c.post(
                        "/hooks/kartra",
                        params={"token": SECRETS["RECEIVER_KARTRA_TOKEN"]},
                        json={"lead": {"email": "Same@Example.com", "n": i}, "action": "filled_form"},
                    )
                return r.status_code

            return await asyncio.gather(*(one(i) for i in range(40)))

    assert all(s == 202 for s in asyncio.run(run()))
    leads = httpx.get(f"{server.url}/v1/leads", headers=KEY).json()["data"]
    assert len(leads) == 1 and leads[0]["event_count"] == 40


def test_erasure_leaves_no_byte_of_the_lead_in_the_database_files(client: TestClient, db: DB) -> None:
    email = "erase.me@example.com"
    a = kartra(client, {"id": "900", "email": email, "first_name": "Eraseme", "last_name": "Zzyzx"})
    client.post("/hooks/croct", json={"type": "leadGenerated", "lead": {"email": email}}, **AUTH["croct"])
    keep = kartra(client, {"id": "901", "email": "keep@example.com", "first_name": "Keeper"})
    # A rejected delivery (negative value) produced no event, but carries the email too.
    bad = client.post(
        "/hooks/croct", json={"type": "leadGenerated", "value": -1, "lead": {"email": email}}, **AUTH["croct"]
    )
    assert bad.status_code == 422
    form = client.post(
        "/hooks/convead",
        data={"data": '{"type":"custom","properties":{}}', "visitor_info[email]": email},
        **AUTH["convead"],
    )
    assert form.status_code in (202, 422), form.text
    lead_id = event_lead(client, a)
    assert lead_id
    r = client.delete(f"/v1/leads/{lead_id}", headers=KEY)
    assert r.status_code == 200, r.text  # nothing held the files: purged at once
    erasure = r.json()
    assert erasure["state"] == "complete" and erasure["completed_at"]
    # Kartra, Croct and Convead gave one event each; the rejected Croct delivery none.
    assert erasure["erased"] == {"leads": 1, "identities": 2, "events": 3, "deliveries": 4}
    assert client.get(r.headers["location"], headers=KEY).json() == erasure
    raw = db.dump()
    for needle in (email, sha256_hex(email), "Eraseme", "Zzyzx", lead_id):
        assert needle.encode() not in raw, needle
    assert b"Keeper" in raw
    assert client.get(f"/v1/leads/{lead_id}", headers=KEY).status_code == 404
    assert client.get(f"/v1/events/{a['events'][0]['id']}", headers=KEY).status_code == 404
    assert client.delete(f"/v1/leads/{lead_id}", headers=KEY).status_code == 404
    assert event_lead(client, keep) is not None


def test_exports_of_leads_count_all(client: TestClient) -> None:
    for i in range(30):
        kartra(client, {"id": str(i), "email": f"p{i}@example.com", "first_name": "=cmd|' /C calc'!A0"})
    nd = client.get("/v1/leads", headers={**KEY, "Accept": "application/x-ndjson"}).text.splitlines()
    assert len(nd) == 30
    csv_text = client.get("/v1/leads", headers={**KEY, "Accept": "text/csv"}).text
    assert len(csv_text.strip().splitlines()) == 31


def test_traits_nested_from_their_stored_text_as_unflatten_and_msgspec_write_them() -> None:
    import msgspec

    from receiver.leads import unflatten, unflattened_json

    stored = [
        {},
        {"email": "a@example.com"},
        {"a.b": 1, "a": 2},  # a scalar, then an object under the same name: the object wins
        {"a.b.c": 1, "a.b": 2, "a-b": "x", "a.c": [1, {"d": None}], "z": 1.5e300},
        {"100%": "%s %b %%", "odd\"key.x": "\u0001\n", "ünï.cødé": True},
    ]
    for traits in stored:
        flat = msgspec.json.encode(traits)
        want = msgspec.json.encode(unflatten(msgspec.json.decode(flat)))
        assert unflattened_json(flat) == want, traits
        assert unflattened_json(flat) == want  # the second time from the cached template


def test_a_lead_merged_as_it_is_nested_as_its_flat_traits_would_be() -> None:
    """The writer merges an event's lead without flattening it first: the traits, their
    times, their order and the changed flag are those of ``merge_traits(flatten(lead))``."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from receiver.leads import flatten, merge_lead, merge_traits

    scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "x", "y"]))
    value = st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
        ),
        max_leaves=8,
    )
    lead = st.dictionaries(st.sampled_from(["email", "name", "address", "custom", "a"]), value, max_size=4)
    at = st.sampled_from(["2026-01-01", "2026-01-02", "2026-01-03"])

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.tuples(lead, at), max_size=4), lead, at)
    def check(history: list[tuple[dict[str, Any], str]], new: dict[str, Any], when: str) -> None:
        traits: dict[str, Any] = {}
        times: dict[str, str] = {}
        for earlier, earlier_at in history:
            merge_traits(traits, times, flatten(earlier), earlier_at)
        want_traits, want_times = dict(traits), dict(times)
        want = merge_traits(want_traits, want_times, flatten(new), when)
        assert merge_lead(traits, times, new, when) == want
        assert list(traits.items()) == list(want_traits.items())
        assert list(times.items()) == list(want_times.items())

    check()
