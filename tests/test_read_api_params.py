"""Read-API query parameters, on both backends: anything malformed, out of range or
unknown is a 400 naming the parameter (never a 5xx, never a silent "everything")."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import SECRETS
from starlette.testclient import TestClient
from test_ingest import CROCT_BEACON, healthy, is_problem, post

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}

BAD: list[tuple[str, dict[str, str], str]] = [
    ("/v1/events", {"since": "0001-01-01T00:00:00+01:00"}, "since"),  # parses, overflows in UTC
    ("/v1/events", {"until": "9999-12-31T23:59:59-01:00"}, "until"),
    ("/v1/events", {"since": "2026-13-01T00:00:00Z"}, "since"),
    ("/v1/events", {"since": "2026-01-01T00:00:00"}, "since"),  # no zone
    ("/v1/events", {"since": "x" * 10_000}, "since"),
    ("/v1/leads", {"updated_since": "0001-01-01T00:30:00+01:00"}, "updated_since"),
    ("/v1/events", {"limit": "²"}, "limit"),
    ("/v1/events", {"limit": "1e3"}, "limit"),
    ("/v1/events", {"limit": "9" * 5000}, "limit"),
    ("/v1/deliveries", {"limit": "-1"}, "limit"),
    ("/v1/leads", {"limit": "1001"}, "limit"),
    ("/v1/events", {"cursor": "%%%"}, "cursor"),
    ("/v1/events", {"cursor": "AA"}, "cursor"),  # decodes to a NUL byte
    ("/v1/deliveries", {"cursor": "w6k"}, "cursor"),  # not ASCII
    ("/v1/events", {"lead_id": "a\x00b"}, "lead_id"),
    ("/v1/events", {"lead_id": "x" * 500}, "lead_id"),
    ("/v1/events", {"type": "page.view"}, "type"),
    ("/v1/events", {"type": "\x00"}, "type"),
    ("/v1/events", {"source": "croct\x00"}, "source"),
    ("/v1/deliveries", {"status": "accepted "}, "status"),
    ("/v1/events", {"sorce": "croct"}, "sorce"),  # unknown: answers the allowed ones
    ("/v1/leads", {"lead_id": "x"}, "lead_id"),  # a parameter of another call
    ("/v1/deliveries", {"type": "page.viewed"}, "type"),
    ("/v1/events/0190c3a5-0000-7000-8000-000000000000", {"limit": "1"}, "limit"),
]


def test_bad_parameter_is_a_400_naming_it(client: TestClient) -> None:
    for path, params, name in BAD:  # one app for all: each case is one request
        problem = is_problem(client.get(path, headers=KEY, params=params), 400)
        assert [e["path"] for e in problem["errors"]] == [name], (path, params)
    healthy(client)


def test_unknown_parameter_names_the_allowed_ones(client: TestClient) -> None:
    problem = is_problem(client.get("/v1/events", headers=KEY, params={"sorce": "croct"}), 400)
    for allowed in ("source", "type", "lead_id", "since", "until", "limit", "cursor"):
        assert allowed in problem["detail"]
    replay = is_problem(client.post("/v1/replay", headers=KEY, params={"statuss": "rejected"}), 400)
    assert "status, source" in replay["detail"]


def test_repeated_parameter_is_a_400(client: TestClient) -> None:
    r = client.get("/v1/events?source=croct&source=kartra", headers=KEY)
    assert is_problem(r, 400)["errors"][0]["message"] == "must be given once"


@pytest.mark.parametrize(
    "path",
    ["/v1/events/a%00b", "/v1/leads/%ff", "/v1/deliveries/" + "x" * 300, "/v1/leads/a%0ab/events"],
)
def test_impossible_ids_are_404(client: TestClient, path: str) -> None:
    is_problem(client.get(path, headers=KEY), 404)
    is_problem(client.delete("/v1/leads/a%00b", headers=KEY), 404)
    is_problem(client.post("/v1/deliveries/a%00b/replay", headers=KEY), 404)


def test_good_parameters_still_answer(client: TestClient) -> None:
    assert post(client, "croct", json=CROCT_BEACON).status_code == 202
    params: dict[str, Any] = {
        "source": "croct",
        "type": "page.viewed",
        "since": "2000-01-01T00:00:00+01:00",
        "until": "9999-12-31T22:00:00Z",
        "limit": "10",
    }
    r = client.get("/v1/events", headers=KEY, params=params)
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    body = client.get("/v1/events", headers=KEY, params={"limit": "1"}).json()
    assert body["next_cursor"] is None
