"""Croct's documented constraints (vendor docs 000 and 001, docs/webhooks.md).

Every constraint of the Croct event reference is broken once, in an otherwise valid event
built from the reference's complete examples. Each breach must answer 422
``application/problem+json`` whose ``errors`` name exactly that field, as a JSON Pointer
into the event as the docs show it (``/goalId``, ``/cart/items/0/quantity``; never
``/payload/...``), both as a plain event and through the SDK beacon
(``POST /client/web/track``). The delivery is kept with status ``rejected`` and its reasons,
and no event is stored. Valid edge values are accepted.

One app serves the whole matrix (an app per case would cost half a second each); every
request carries its own ``Idempotency-Key``, which also finds its stored delivery.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from conftest import AUTH, DB, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app

CLIENT_ID = "7e9d59a9e4b343fd8d1a6c2b3f0e5a11"
DELETE = object()
"""As a breach value: remove the field (a required field left out)."""


def s(n: int, c: str = "x") -> str:
    return c * n


# --- valid events, from the reference's complete examples --------------------------------

PROFILE: dict[str, Any] = {
    "firstName": "Carol",
    "lastName": "Doe",
    "birthDate": "2000-08-31",
    "gender": "female",
    "email": "carol@croct.com",
    "alternateEmail": "example@croct.com",
    "phone": "+15555983800",
    "alternatePhone": "+15555983800",
    "address": {
        "street": "123 Some Street",
        "district": "Kings Oak",
        "city": "San Francisco",
        "state": "California",
        "region": "California",
        "country": "US",
        "continent": "NA",
        "postalCode": "94105",
    },
    "avatar": "https://croct.com/carol.png",
    "company": "Croct",
    "companyUrl": "https://croct.com",
    "jobTitle": "Head of Marketing",
    "custom": {"points": 1, "favoriteEmoji": "🐊"},
}


def product(pid: str, name: str, price: float, original: float) -> dict[str, Any]:
    return {
        "productId": pid,
        "sku": f"SKU-{pid}",
        "name": name,
        "category": "Smartphone",
        "brand": "Acme",
        "variant": "64GB Green",
        "displayPrice": price,
        "originalPrice": original,
        "url": f"https://shop.example.com/products/{pid}",
        "imageUrl": f"https://cdn.example.com/images/{pid}.png",
    }


ITEMS: list[dict[str, Any]] = [
    {
        "index": 0,
        "quantity": 1,
        "total": 699.00,
        "discount": 100.00,
        "coupon": "PROMO",
        "product": product("12345", "Smartphone 9", 699.00, 799.00),
    },
    {
        "index": 1,
        "quantity": 1,
        "total": 39.00,
        "discount": 10.00,
        "coupon": "PROMO",
        "product": product("98765", "Silicone Case", 39.00, 49.00),
    },
]
TOTALS: dict[str, Any] = {
    "taxes": {"state": 53.51, "local": 23.98},
    "costs": {"manufacturing": 275.81, "cos": 85.37},
    "subtotal": 848.00,
    "shippingPrice": 59.99,
    "discount": 169.99,
    "total": 815.49,
    "coupon": "FREE-SHIPPING",
}
CART = {"currency": "USD", "items": ITEMS, **TOTALS, "lastUpdateTime": 123456789}
ORDER = {
    "orderId": "123",
    "currency": "USD",
    "items": ITEMS,
    **TOTALS,
    "paymentMethod": "credit-card",
    "installments": 1,
    "status": "paid",
}

VALID: dict[str, dict[str, Any]] = {
    "userSignedUp": {"userId": "1ed2fd65-a027-4f3a-a35f-c6dd97537392", "profile": PROFILE},
    "leadGenerated": {
        "leadId": "1ed2fd65-a027-4f3a-a35f-c6dd97537392",
        "currency": "USD",
        "value": 100,
        "lead": PROFILE,
    },
    "productViewed": {"product": product("12345", "Smartphone 9", 599.00, 699.00)},
    "cartViewed": {"cart": CART},
    "cartModified": {"cart": CART},
    "checkoutStarted": {"orderId": "123", "cart": CART},
    "orderPlaced": {"order": ORDER},
    "goalCompleted": {"goalId": "newsletter-sign-up", "currency": "USD", "value": 9.99},
    "interestShown": {"interests": ["music", "movies"]},
    "postViewed": {
        "post": {
            "postId": "announcing-our-seed-round",
            "url": "https://blog.croct.com/announcing-our-seed-round",
            "title": "Announcing our $1.3M seed round",
            "tags": ["seed-round"],
            "categories": ["croct-news"],
            "authors": ["John Doe"],
            "publishTime": 123456789,
            "updateTime": 123456790,
        }
    },
    "eventOccurred": {
        "name": "personalizationApplied",
        "personalizationId": "banner-home",
        "audience": "loyal-users",
        "testId": "test-banner-home",
        "groupId": "A",
        "details": {"placement": "hero", "impressions": 3},
    },
    "linkOpened": {"link": "https://www.croct.com/pricing"},
}


def tokens(pointer: str) -> list[str]:
    return pointer.split("/")[1:]


def with_value(event: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    """A copy of the event with the field at ``pointer`` set to ``value`` (or removed)."""
    out = copy.deepcopy(event)
    *parents, last = tokens(pointer)
    node: Any = out
    for t in parents:
        node = node[int(t)] if isinstance(node, list) else node[t]
    if value is DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def plain(source_type: str, event: dict[str, Any]) -> dict[str, Any]:
    return {"type": source_type, **event}


def beacon(payload: dict[str, Any], t: int = 1764028800000) -> dict[str, Any]:
    """The JavaScript SDK's wire format around an event."""
    return {
        "context": {
            "tabId": "5c2e7b4a-9f1d-4e0a-8b3c-2d6f1a7e9c04",
            "url": "https://shop.example.com/?utm_source=newsletter",
            "timeZone": "America/New_York",
            "metadata": {},
        },
        "payload": payload,
        "originalTime": t,
        "departureTime": t + 40,
    }


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"operations": list(operations)}


# --- the app, shared by the module -------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, DB]]:
    settings = Settings.from_env(make_env(tmp_path_factory.mktemp("croct") / "data"))
    assert settings.sqlite_path is not None
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c, DB(settings.sqlite_path)


class Sent:
    def __init__(self, response: Any, key: str) -> None:
        self.response = response
        self.key = key


def send(client: TestClient, body: Any, sdk: bool = False, headers: dict[str, str] | None = None) -> Sent:
    key = str(uuid.uuid4())
    r = client.post(
        "/hooks/croct/client/web/track" if sdk else "/hooks/croct",
        content=msgspec.json.encode(body),
        headers={
            **AUTH["croct"]["headers"],
            "Content-Type": "application/json",
            "X-Client-Id": CLIENT_ID,
            "Idempotency-Key": key,
            **(headers or {}),
        },
    )
    return Sent(r, key)


def stored(db: DB, sent: Sent) -> dict[str, Any]:
    """The delivery a request made (a rejected one keeps no idempotency key, so that a fixed
    retry is not a duplicate: it is found by the header it was stored with)."""
    [row] = db.rows("SELECT * FROM deliveries WHERE headers LIKE ?", f"%{sent.key}%")
    return row


def assert_rejected(db: DB, sent: Sent, pointers: list[str]) -> None:
    """422 problem+json listing exactly ``pointers``; stored as rejected, with no event."""
    r = sent.response
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    # the same field may be listed twice (once by its constraint, once by its transform):
    # an engine flaw with a test of its own below; here, which fields are named is what counts
    paths = {e["path"] for e in problem["errors"]}
    assert paths == set(pointers), problem["errors"]
    assert all(isinstance(e["message"], str) and e["message"] for e in problem["errors"])
    assert "Traceback" not in r.text
    row = stored(db, sent)
    assert row["status"] == "rejected"
    assert {e["path"] for e in json.loads(row["reasons"])} == set(pointers)
    assert row["body"]  # the raw delivery is kept, to be looked at and replayed
    assert db.rows("SELECT count(*) AS n FROM events WHERE delivery_id = ?", row["id"])[0]["n"] == 0


def assert_accepted(db: DB, sent: Sent, sdk: bool = False) -> list[dict[str, Any]]:
    r = sent.response
    assert r.status_code == (200 if sdk else 202), r.text
    assert r.json()["status"] == "accepted"
    row = stored(db, sent)
    assert row["status"] == "accepted"
    return db.events(row["id"])


# --- every documented constraint, broken once ---------------------------------------------

PROFILE_BREACHES: list[tuple[str, Any]] = [
    ("/firstName", s(51)),
    ("/lastName", s(51)),
    ("/birthDate", "31/08/2000"),
    ("/birthDate", "2000-02-30"),
    ("/gender", "other"),
    ("/email", s(243) + "@example.com"),  # 255 characters
    ("/alternateEmail", s(255)),
    ("/phone", "+1" + s(29, "5")),  # 31 characters
    ("/alternatePhone", s(31, "5")),
    ("/address/street", s(101)),
    ("/address/district", s(101)),
    ("/address/city", s(101)),
    ("/address/region", s(101)),
    ("/address/country", s(101)),
    ("/address/postalCode", s(21, "9")),
    ("/avatar", "http: //croct.com/carol.png"),  # as the extracted doc 000 shows it: not a URL
    ("/avatar", "carol.png"),
    ("/company", s(201)),
    ("/companyUrl", "croct.com"),
    ("/jobTitle", s(51)),
    ("/custom", "points=1"),
    ("/address", "San Francisco"),
]

CART_BREACHES: list[tuple[str, Any]] = [
    ("/cart", DELETE),
    ("/cart", "empty"),
    ("/cart/currency", DELETE),
    ("/cart/currency", s(11)),
    ("/cart/total", DELETE),
    ("/cart/total", -0.01),
    ("/cart/total", "a lot"),
    ("/cart/items", DELETE),
    ("/cart/items/0", None),
    ("/cart/items/0/product", DELETE),
    ("/cart/items/0/product/productId", DELETE),
    ("/cart/items/0/product/productId", s(51)),
    ("/cart/items/0/product/name", DELETE),
    ("/cart/items/0/product/name", s(201)),
    ("/cart/items/0/product/displayPrice", DELETE),
    ("/cart/items/1/product/displayPrice", -1),
    ("/cart/items/0/index", DELETE),
    ("/cart/items/1/index", -1),
    ("/cart/items/0/quantity", DELETE),
    ("/cart/items/0/quantity", 0),
    ("/cart/items/1/quantity", -2),
    ("/cart/items/0/total", DELETE),
    ("/cart/items/0/total", -699),
    ("/cart/items/0/product/sku", s(51)),
    ("/cart/items/0/product/category", s(101)),
    ("/cart/items/0/product/brand", s(101)),
    ("/cart/items/0/product/variant", s(51)),
    ("/cart/items/0/product/originalPrice", -799),
    ("/cart/items/0/product/url", "/products/12345"),
    ("/cart/items/0/product/imageUrl", "ftp://cdn.example.com/12345.png"),
    ("/cart/items/0/discount", -100),
    ("/cart/items/1/coupon", s(51)),
    ("/cart/subtotal", -848),
    ("/cart/shippingPrice", -59.99),
    ("/cart/taxes", "53.51"),
    ("/cart/costs", ["manufacturing"]),
    ("/cart/discount", -169.99),
    ("/cart/coupon", s(51)),
    ("/cart/lastUpdateTime", -1),
]

ORDER_BREACHES: list[tuple[str, Any]] = [
    (p.replace("/cart", "/order"), v) for p, v in CART_BREACHES if p != "/cart/lastUpdateTime"
] + [
    ("/order/orderId", DELETE),
    ("/order/paymentMethod", s(51)),
    ("/order/installments", -1),
    ("/order/status", "shipped"),
]

BREACHES: list[tuple[str, str, Any]] = [
    ("userSignedUp", "/userId", DELETE),
    ("userSignedUp", "/userId", ""),  # an empty string is an absent value
    ("userSignedUp", "/userId", s(255)),
    ("userSignedUp", "/profile", "Carol Doe"),
    *[("userSignedUp", "/profile" + p, v) for p, v in PROFILE_BREACHES],
    # leadGenerated: "See the user reference for the full list of supported attributes."
    *[("leadGenerated", "/lead" + p, v) for p, v in PROFILE_BREACHES],
    ("leadGenerated", "/leadId", s(101)),
    ("leadGenerated", "/value", -100),
    ("leadGenerated", "/value", "one hundred"),
    ("productViewed", "/product", DELETE),
    ("productViewed", "/product/productId", DELETE),
    ("productViewed", "/product/productId", s(51)),
    ("productViewed", "/product/name", DELETE),
    ("productViewed", "/product/name", s(201)),
    ("productViewed", "/product/displayPrice", DELETE),
    ("productViewed", "/product/displayPrice", -599),
    ("productViewed", "/product/sku", s(51)),
    ("productViewed", "/product/category", s(101)),
    ("productViewed", "/product/brand", s(101)),
    ("productViewed", "/product/variant", s(51)),
    ("productViewed", "/product/originalPrice", -699),
    ("productViewed", "/product/url", "shop.example.com/products/12345"),
    ("productViewed", "/product/imageUrl", "not a url"),
    *[("cartViewed", p, v) for p, v in CART_BREACHES],
    *[("cartModified", p, v) for p, v in CART_BREACHES],
    *[("checkoutStarted", p, v) for p, v in CART_BREACHES],
    *[("orderPlaced", p, v) for p, v in ORDER_BREACHES],
    ("goalCompleted", "/goalId", DELETE),
    ("goalCompleted", "/goalId", "ab"),
    ("goalCompleted", "/goalId", s(101)),
    ("goalCompleted", "/goalId", "-newsletter"),
    ("goalCompleted", "/goalId", "newsletter_"),
    ("goalCompleted", "/goalId", "news letter"),
    ("goalCompleted", "/goalId", "news/letter"),
    ("goalCompleted", "/currency", s(11)),
    ("goalCompleted", "/value", -0.01),
    ("goalCompleted", "/value", "free"),
    ("interestShown", "/interests", DELETE),
    ("interestShown", "/interests", "music"),
    ("interestShown", "/interests", [f"i{n}" for n in range(11)]),
    ("interestShown", "/interests/1", ""),
    ("interestShown", "/interests/0", s(51)),
    ("interestShown", "/interests/1", 42),
    ("postViewed", "/post", DELETE),
    ("postViewed", "/post/postId", DELETE),
    ("postViewed", "/post/postId", s(101)),
    ("postViewed", "/post/title", DELETE),
    ("postViewed", "/post/title", s(101)),
    ("postViewed", "/post/publishTime", DELETE),
    ("postViewed", "/post/publishTime", -1),
    ("postViewed", "/post/url", "announcing-our-seed-round"),
    ("postViewed", "/post/tags", [f"t{n}" for n in range(11)]),
    ("postViewed", "/post/tags/0", s(51)),
    ("postViewed", "/post/categories", [f"c{n}" for n in range(11)]),
    ("postViewed", "/post/categories/0", ""),
    ("postViewed", "/post/authors", [f"a{n}" for n in range(11)]),
    ("postViewed", "/post/authors/0", s(51)),
    ("postViewed", "/post/updateTime", -1),
    ("eventOccurred", "/name", DELETE),
    ("eventOccurred", "/name", s(51)),
    ("eventOccurred", "/personalizationId", s(51)),
    ("eventOccurred", "/audience", s(51)),
    ("eventOccurred", "/testId", s(51)),
    ("eventOccurred", "/groupId", s(51)),
    ("eventOccurred", "/details", {f"k{n}": n for n in range(11)}),
    ("eventOccurred", "/details", "placement=hero"),
    ("linkOpened", "/link", DELETE),
    ("linkOpened", "/link", "not a uri"),
    ("linkOpened", "/link", "https://www.croct.com/<pricing>"),
]


def case_id(source_type: str, pointer: str, value: Any) -> str:
    shown = "missing" if value is DELETE else repr(value)
    return f"{source_type}{pointer}={shown[:24]}"


def broken(source_type: str, pointer: str, value: Any) -> dict[str, Any]:
    event = plain(source_type, VALID[source_type])
    return with_value(event, pointer, value)


def test_every_base_event_is_valid(shared: tuple[TestClient, DB]) -> None:
    """The events the breaches start from are accepted, in both wire formats."""
    client, db = shared
    for source_type, event in VALID.items():
        [one] = assert_accepted(db, send(client, plain(source_type, event)))
        assert one["source_type"] == source_type
        [one] = assert_accepted(db, send(client, beacon(plain(source_type, event)), sdk=True), sdk=True)
        assert one["source_type"] == source_type


@pytest.mark.parametrize(("source_type", "pointer", "value"), BREACHES, ids=[case_id(*b) for b in BREACHES])
def test_breach_as_plain_event(
    shared: tuple[TestClient, DB], source_type: str, pointer: str, value: Any
) -> None:
    client, db = shared
    assert_rejected(db, send(client, broken(source_type, pointer, value)), [pointer])


SDK_BREACHES = [
    b
    for b in BREACHES
    if (b[0], b[1])
    in {
        ("goalCompleted", "/goalId"),
        ("goalCompleted", "/value"),
        ("productViewed", "/product/displayPrice"),
        ("cartModified", "/cart/items/0/quantity"),
        ("cartModified", "/cart/items/1/coupon"),
        ("checkoutStarted", "/cart/currency"),
        ("orderPlaced", "/order/status"),
        ("orderPlaced", "/order/items/1/index"),
        ("interestShown", "/interests"),
        ("postViewed", "/post/publishTime"),
        ("eventOccurred", "/details"),
        ("linkOpened", "/link"),
    }
]


@pytest.mark.parametrize(
    ("source_type", "pointer", "value"), SDK_BREACHES, ids=[case_id(*b) for b in SDK_BREACHES]
)
def test_breach_through_the_sdk_beacon(
    shared: tuple[TestClient, DB], source_type: str, pointer: str, value: Any
) -> None:
    """The SDK path answers 200 on success but a problem on a breach; the pointer is into the
    event (``/goalId``), not into the beacon (``/payload/goalId``)."""
    client, db = shared
    assert_rejected(db, send(client, beacon(broken(source_type, pointer, value)), sdk=True), [pointer])


# --- the SDK's own shapes: externalUserId and patch operations -----------------------------

SDK_SHAPES: list[tuple[str, dict[str, Any], str]] = [
    (
        "externalUserId too long",
        {"type": "userSignedUp", "externalUserId": s(255)},
        "/userId",
    ),
    (
        "no user id at all",
        {
            "type": "userSignedUp",
            "patch": patch({"type": "set", "path": ".", "value": {"firstName": "Carol"}}),
        },
        "/userId",
    ),
    (
        "profile set on '.'",
        {
            "type": "userSignedUp",
            "externalUserId": "user-1",
            "patch": patch({"type": "set", "path": ".", "value": {**PROFILE, "firstName": s(51)}}),
        },
        "/profile/firstName",
    ),
    (
        "nested set",
        {
            "type": "userProfileChanged",
            "patch": patch(
                {"type": "set", "path": "firstName", "value": "Carol"},
                {"type": "set", "path": "address.postalCode", "value": s(21, "9")},
            ),
        },
        "/profile/address/postalCode",
    ),
    (
        "merge",
        {
            "type": "userProfileChanged",
            "patch": patch(
                {"type": "set", "path": "gender", "value": "female"},
                {"type": "merge", "path": ".", "value": {"companyUrl": "croct dot com"}},
            ),
        },
        "/profile/companyUrl",
    ),
    (
        "lead patch",  # leadGenerated's input property is `lead` (doc 000)
        {
            "type": "leadGenerated",
            "leadId": "l-1",
            "patch": patch({"type": "set", "path": ".", "value": {**PROFILE, "email": s(255)}}),
        },
        "/lead/email",
    ),
    (
        "lead patch, merge of a bad avatar",
        {
            "type": "leadGenerated",
            "patch": patch(
                {"type": "set", "path": "email", "value": "carol@croct.com"},
                {"type": "merge", "path": ".", "value": {"avatar": "http: //croct.com/carol.png"}},
            ),
        },
        "/lead/avatar",
    ),
]


@pytest.mark.parametrize(("payload", "pointer"), [c[1:] for c in SDK_SHAPES], ids=[c[0] for c in SDK_SHAPES])
def test_breach_in_the_sdk_shapes_is_named_as_the_docs_show_it(
    shared: tuple[TestClient, DB], payload: dict[str, Any], pointer: str
) -> None:
    client, db = shared
    assert_rejected(db, send(client, beacon(payload), sdk=True), [pointer])


def test_sdk_user_id_from_the_token_alone_is_no_user_id_for_signup(shared: tuple[TestClient, DB]) -> None:
    """userSignedUp requires userId in the event; a token identifies the visitor but is not
    the event's userId."""
    client, db = shared
    token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTQyNDIifQ."
    sent = send(client, beacon({"type": "userSignedUp"}), sdk=True, headers={"X-Token": token})
    assert_rejected(db, sent, ["/userId"])


# --- several breaches at once, and batches ------------------------------------------------


def test_every_breach_of_one_event_is_listed(shared: tuple[TestClient, DB]) -> None:
    client, db = shared
    goal = {"type": "goalCompleted", "goalId": "x", "currency": s(11), "value": -1}
    assert_rejected(db, send(client, goal), ["/goalId", "/currency", "/value"])

    order = plain("orderPlaced", VALID["orderPlaced"])
    for pointer, value in [
        ("/order/currency", DELETE),
        ("/order/items/0/quantity", 0),
        ("/order/items/1/product/displayPrice", -1),
        ("/order/items/1/product/url", "nope"),
        ("/order/status", "shipped"),
    ]:
        order = with_value(order, pointer, value)
    expected = [
        "/order/currency",
        "/order/items/0/quantity",
        "/order/items/1/product/displayPrice",
        "/order/items/1/product/url",
        "/order/status",
    ]
    assert_rejected(db, send(client, order), expected)
    assert_rejected(db, send(client, beacon(order), sdk=True), expected)

    signup = {
        "type": "userSignedUp",
        "patch": patch(
            {"type": "set", "path": "firstName", "value": s(51)},
            {"type": "set", "path": "address.city", "value": s(101)},
        ),
    }
    assert_rejected(
        db, send(client, beacon(signup), sdk=True), ["/userId", "/profile/firstName", "/profile/address/city"]
    )


def test_a_batch_prefixes_pointers_with_the_index(shared: tuple[TestClient, DB]) -> None:
    client, db = shared
    good = {"type": "goalCompleted", "goalId": "newsletter-sign-up"}
    bad = {"type": "goalCompleted", "goalId": "x"}
    assert_rejected(db, send(client, [good, bad]), ["/1/goalId"])

    # both wire formats in one array; the beacon's pointer is into its event, not /2/payload/...
    cart = plain("cartModified", with_value(VALID["cartModified"], "/cart/items/0/quantity", 0))
    batch = [{**good, "value": -5}, beacon(good), beacon(cart)]
    assert_rejected(db, send(client, batch), ["/0/value", "/2/cart/items/0/quantity"])
    # on the SDK's path too
    assert_rejected(db, send(client, [beacon(good), beacon(bad)], sdk=True), ["/1/goalId"])


# --- valid edge values ----------------------------------------------------------------------

EDGES: list[tuple[str, str, Any]] = [
    ("goalCompleted", "/goalId", "abc"),
    ("goalCompleted", "/goalId", s(100)),
    ("goalCompleted", "/goalId", "a-b_c:d"),
    ("goalCompleted", "/goalId", "A1--__::9"),
    ("goalCompleted", "/value", 0),
    ("goalCompleted", "/value", "9.99"),  # a number sent as text counts as a number
    ("goalCompleted", "/currency", ""),  # an empty string is an absent value
    ("goalCompleted", "/currency", s(10)),
    ("cartViewed", "/cart/items/0/quantity", 0.5),
    ("cartViewed", "/cart/items/0/coupon", s(50)),
    ("cartViewed", "/cart/coupon", s(50)),
    ("cartViewed", "/cart/items/1/product/displayPrice", 0),
    ("cartViewed", "/cart/total", 0),
    ("cartViewed", "/cart/items", []),
    ("orderPlaced", "/order/coupon", s(50)),
    ("orderPlaced", "/order/items/0/quantity", 0.5),
    ("orderPlaced", "/order/installments", 0),
    ("orderPlaced", "/order/status", "placed"),
    ("orderPlaced", "/order/status", "completed"),
    ("orderPlaced", "/order/paymentMethod", s(50)),
    ("interestShown", "/interests", [s(50, str(n)) for n in range(10)]),
    ("postViewed", "/post/tags", [f"t{n}" for n in range(10)]),
    ("postViewed", "/post/publishTime", 0),
    ("eventOccurred", "/details", {f"k{n}": n for n in range(10)}),
    ("eventOccurred", "/name", s(50)),
    ("productViewed", "/product/productId", s(50)),
    ("productViewed", "/product/name", s(200)),
    ("userSignedUp", "/userId", s(254)),
    ("userSignedUp", "/profile/address/postalCode", s(20, "9")),
    ("userSignedUp", "/profile/company", s(200)),
    ("userSignedUp", "/profile/gender", "neutral"),
    ("leadGenerated", "/leadId", s(100)),
    ("leadGenerated", "/value", 0),
    ("linkOpened", "/link", "mailto:sales@croct.com"),
    ("linkOpened", "/link", "/pricing?plan=pro#faq"),
    ("linkOpened", "/link", "https://www.croct.com/caf%C3%A9"),
]


@pytest.mark.parametrize(("source_type", "pointer", "value"), EDGES, ids=[case_id(*e) for e in EDGES])
def test_valid_edge_value_is_accepted(
    shared: tuple[TestClient, DB], source_type: str, pointer: str, value: Any
) -> None:
    client, db = shared
    [event] = assert_accepted(db, send(client, broken(source_type, pointer, value)))
    assert event["source_type"] == source_type


def test_edge_values_reach_the_canonical_event(shared: tuple[TestClient, DB]) -> None:
    client, db = shared
    [goal] = assert_accepted(db, send(client, {"type": "goalCompleted", "goalId": "abc", "value": 0}))
    assert goal["properties"] == {"goal_id": "abc", "value": 0}
    [goal] = assert_accepted(db, send(client, {"type": "goalCompleted", "goalId": "abc", "value": "9.99"}))
    assert goal["properties"]["value"] == 9.99
    half = broken("cartViewed", "/cart/items/0/quantity", 0.5)
    [cart] = assert_accepted(db, send(client, beacon(half), sdk=True), sdk=True)
    assert cart["properties"]["cart"]["items"][0]["quantity"] == 0.5


# --- the rejected delivery, on a fresh database (the conftest `db` fixture) ----------------


def test_rejected_delivery_is_stored_with_its_reasons(client: TestClient, db: DB) -> None:
    body = beacon({"type": "goalCompleted", "goalId": "x", "value": -1})
    r = client.post("/hooks/croct/client/web/track", json=body, headers={**AUTH["croct"]["headers"]})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    [row] = db.deliveries()
    assert row["status"] == "rejected"
    assert row["source"] == "croct" and row["path"].endswith("/client/web/track")
    reasons = json.loads(row["reasons"])
    assert {e["path"] for e in reasons} == {"/goalId", "/value"}
    assert all(e["message"] for e in reasons)
    assert json.loads(row["body"]) == body
    assert db.count("events") == 0


# --- engine bugs found while testing the Croct mapping (fixed; kept as regressions) -----------


@pytest.mark.parametrize(
    ("source_type", "pointer", "value"),
    [
        ("cartViewed", "/cart/items/0", "garbage"),
        ("orderPlaced", "/order/items/1", 7),
        ("cartModified", "/cart/items", {"index": 0}),  # an object where the array belongs
    ],
)
def test_non_object_item_is_422_not_500(
    shared: tuple[TestClient, DB], source_type: str, pointer: str, value: Any
) -> None:
    client, db = shared
    assert_rejected(db, send(client, broken(source_type, pointer, value)), [pointer])


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ({"note": s(301)}, "/details/note"),  # string values up to 300 characters
        ({"1st": "x"}, "/details/1st"),  # names start with a letter or underscore
        ({"bad-name": "x"}, "/details/bad-name"),  # then letters, digits, underscores
        ({"nested": {"a": 1}}, "/details/nested"),  # values are primitives
    ],
)
def test_event_details_attribute_rules(
    shared: tuple[TestClient, DB], details: dict[str, Any], pointer: str
) -> None:
    client, db = shared
    assert_rejected(
        db, send(client, {"type": "eventOccurred", "name": "liked", "details": details}), [pointer]
    )


def test_bad_original_time_is_named_by_a_json_pointer(shared: tuple[TestClient, DB]) -> None:
    client, db = shared
    body = {**beacon({"type": "goalCompleted", "goalId": "abc"}), "originalTime": "yesterday"}
    sent = send(client, body, sdk=True)
    assert sent.response.status_code == 422  # this part holds today
    assert_rejected(db, sent, ["/originalTime"])


def test_user_id_sent_twice_is_not_lost(shared: tuple[TestClient, DB]) -> None:
    client, db = shared
    [event] = assert_accepted(
        db, send(client, {"type": "userSignedIn", "userId": "u-1", "externalUserId": "u-2"})
    )
    known = db.rows("SELECT value FROM identities WHERE value = 'u-2'")
    assert known or "u-2" in json.dumps(event["extra"])


@pytest.mark.parametrize(
    ("event", "pointer"),
    [
        ({"type": "goalCompleted", "goalId": "abc", "value": "free"}, "/value"),
        (broken("cartViewed", "/cart/total", "a lot"), "/cart/total"),
        (broken("userSignedUp", "/profile/birthDate", "31/08/2000"), "/profile/birthDate"),
    ],
)
def test_each_offending_field_is_listed_once(
    shared: tuple[TestClient, DB], event: dict[str, Any], pointer: str
) -> None:
    client, _ = shared
    r = send(client, event).response
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == [pointer]
