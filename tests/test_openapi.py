"""/openapi.json: a valid OpenAPI 3.1 document, generated from the mappings and the msgspec
Structs, whose schemas describe what the service really answers."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
from conftest import AUTH, SECRETS
from openapi_spec_validator import validate
from starlette.testclient import TestClient

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
KARTRA = {"action": "assign_tag", "lead": {"id": "7", "email": "ann@example.com"}, "action_details": {}}


def conforms(doc: dict[str, Any], r: httpx.Response, path: str, method: str) -> None:
    """The answer's status and media type are documented, and its body matches the schema."""
    response = doc["paths"][path][method]["responses"][str(r.status_code)]
    media = response["content"][r.headers["content-type"].split(";")[0]]
    jsonschema.validate(r.json(), {**media["schema"], "components": doc["components"]})


def test_the_document_is_valid_openapi(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    operation_ids = [
        op["operationId"] for item in doc["paths"].values() for op in item.values() if "operationId" in op
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_vendor_routes_that_answer_200_describe_that_answer(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    track = paths["/hooks/croct/client/web/track"]["post"]["responses"]
    assert "202" not in track
    assert track["200"]["content"]["application/json"]["schema"] == {
        "oneOf": [{"$ref": "#/components/schemas/Accepted"}, {"$ref": "#/components/schemas/Duplicate"}]
    }
    for path in ("/api/tracking/lead", "/api/v1/track/lead", "/api/v1/track/click"):
        responses = paths[f"/hooks/affitor{path}"]["post"]["responses"]
        assert "202" not in responses and "422" not in responses
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/SuccessFlag"
        }
        assert responses["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/FailureFlag"
        }
    kartra = paths["/hooks/kartra"]["post"]["responses"]
    assert kartra["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Accepted"}
    assert kartra["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Duplicate"
    }
    cid = paths["/hooks/croct/client/web/cid"]
    assert list(cid) == ["get"] and cid["get"]["security"] == []


def test_credentials_are_security_schemes_from_the_mappings(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["croct_header_x_app_id"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-app-id",
        "description": "equals RECEIVER_CROCT_APP_ID",
    }
    assert schemes["kartra_query_token"]["in"] == "query"
    assert schemes["affitor_bearer"]["scheme"] == "bearer"
    # Convead's app_key may ride in the body: no scheme is then required.
    assert {} in doc["paths"]["/hooks/convead"]["post"]["security"]


def test_answers_conform_to_their_schemas(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    r = client.post("/hooks/kartra", json=KARTRA, **AUTH["kartra"])
    conforms(doc, r, "/hooks/kartra", "post")
    event_id, delivery_id = r.json()["events"][0]["id"], r.json()["delivery_id"]
    r = client.post("/hooks/kartra", json=KARTRA, **AUTH["kartra"])
    assert r.json()["status"] == "duplicate"
    conforms(doc, r, "/hooks/kartra", "post")
    r = client.post("/hooks/kartra", json={"action": "x"}, **AUTH["kartra"])
    conforms(doc, r, "/hooks/kartra", "post")  # unmapped
    r = client.post(
        "/hooks/croct/client/web/track", json={"type": "goalCompleted", "goalId": "a"}, **AUTH["croct"]
    )
    assert r.status_code == 422
    conforms(doc, r, "/hooks/croct/client/web/track", "post")
    r = client.post("/hooks/croct/client/web/track", json={"type": "tabOpened"}, **AUTH["croct"])
    conforms(doc, r, "/hooks/croct/client/web/track", "post")
    lead = {"customer_code": "c", "user_id": "u", "email": "bo@example.com"}
    r = client.post("/hooks/affitor/api/tracking/lead", json=lead, **AUTH["affitor"])
    conforms(doc, r, "/hooks/affitor/api/tracking/lead", "post")
    r = client.post("/hooks/affitor/api/tracking/lead", json={"customer_code": "c"}, **AUTH["affitor"])
    assert r.status_code == 400
    conforms(doc, r, "/hooks/affitor/api/tracking/lead", "post")
    r = client.post("/hooks/kartra", json=KARTRA)
    conforms(doc, r, "/hooks/kartra", "post")

    reads = [
        ("/v1/events", "/v1/events", "get"),
        (f"/v1/events/{event_id}", "/v1/events/{id}", "get"),
        ("/v1/leads", "/v1/leads", "get"),
        ("/v1/deliveries", "/v1/deliveries", "get"),
        (f"/v1/deliveries/{delivery_id}", "/v1/deliveries/{id}", "get"),
        (f"/v1/deliveries/{delivery_id}/replay", "/v1/deliveries/{id}/replay", "post"),
        ("/v1/replay?source=kartra", "/v1/replay", "post"),
        ("/v1/events?limit=0", "/v1/events", "get"),
        ("/v1/events/nope", "/v1/events/{id}", "get"),
    ]
    lead_id = client.get("/v1/leads", headers=KEY).json()["data"][0]["id"]
    reads.append((f"/v1/leads/{lead_id}", "/v1/leads/{id}", "get"))
    for url, path, method in reads:
        r = client.request(method.upper(), url, headers=KEY)
        conforms(doc, r, path, method)
