"""Typical payloads of the four vendors, shared by the benchmarks."""

from __future__ import annotations

import json
from typing import Any

CROCT_HEADERS = {"x-client-id": "9f2b4c6d8e0a1b3c5d7e9f1a2b3c4d5e", "user-agent": "Mozilla/5.0"}

KARTRA_BUY = {
    "lead": {
        "id": "48213",
        "first_name": "Marta",
        "middle_name": "",
        "last_name": "Lopez",
        "email": " Marta.Lopez@Example.es ",
        "phone_country_code": "+34",
        "phone": "612 345 678",
        "company": "Lopez SL",
        "address": "Calle Mayor 1",
        "city": "Madrid",
        "zip": "28013",
        "state": "Madrid",
        "country": "ES",
        "date_joined": "2025-10-01 09:30:00",
        "website": "https://lopez.example",
        "ip": "83.44.1.2",
        "ip_country": "ES",
        "facebook": "",
        "twitter": "",
        "linkedin": "",
        "source": "checkout",
        "score": "40",
        "gdpr_lead_status": "2",
        "gdpr_lead_communications": "0",
        "lead_preferred_time_zone": "Europe/Madrid",
        "custom_fields": [
            {
                "field_id": "1",
                "field_identifier": "favourite_colour",
                "field_type": "drop_down",
                "field_value": [{"option_id": "3", "option_value": "red"}],
            },
            {
                "field_id": "2",
                "field_identifier": "notes",
                "field_type": "text_area",
                "field_value": "Call after 5pm",
            },
        ],
    },
    "action": "buy_product",
    "action_details": {
        "product": {"product_id": "77", "product_name": "Masterclass"},
        "transaction_details": {
            "transaction_id": "TX-9912",
            "transaction_date": "2025-11-20 14:05:09",
            "transaction_full_amount": "199.80",
            "currency": "EUR",
            "quantity": "2",
        },
    },
}

CONVEAD_PURCHASE_FORM = {
    "app_key": "convead-app-key",
    "visitor_uid": "v-5531",
    "guest_uid": "b6c1d8e0-3f1f-4a9b-9b8a-111111111111",
    "data": json.dumps(
        {
            "type": "purchase",
            "properties": {
                "order_id": "12345",
                "revenue": "252.17",
                "items": [
                    {
                        "product_id": "1",
                        "qnt": "1",
                        "price": "125.15",
                        "product_url": "http://site.net/product/1",
                    },
                    {
                        "product_id": "2",
                        "qnt": "1",
                        "price": "127.02",
                        "product_url": "http://site.net/product/2",
                    },
                ],
            },
            "visitor_info": {
                "first_name": "John",
                "last_name": "Smith",
                "email": "test@example.net",
                "phone": "555555",
            },
            "url": "http://site.net/thanks?utm_source=newsletter&utm_medium=email",
            "title": "Thank you",
            "referrer": "http://site.net/cart",
            "domain": "site.net",
        }
    ).replace("/", "\\/"),
}

CROCT_BEACON = {
    "context": {
        "tabId": "0f2c1b8e-5b1a-4f7e-9d51-2b4c1f0a9e77",
        "url": "https://shop.example/checkout?utm_campaign=bf",
        "timeZone": "America/Sao_Paulo",
    },
    "payload": {
        "type": "orderPlaced",
        "order": {
            "orderId": "123",
            "currency": "USD",
            "total": 815.49,
            "subtotal": 848.0,
            "shippingPrice": 59.99,
            "discount": 169.99,
            "coupon": "FREE-SHIPPING",
            "status": "paid",
            "items": [
                {
                    "index": 0,
                    "quantity": 1,
                    "total": 699.0,
                    "discount": 100.0,
                    "coupon": "PROMO",
                    "product": {
                        "productId": "12345",
                        "sku": "SM-124-GREEN",
                        "name": "Smartphone 9",
                        "category": "Smartphone",
                        "brand": "Acme",
                        "variant": "64GB Green",
                        "displayPrice": 699.0,
                        "originalPrice": 799.0,
                    },
                },
                {
                    "index": 1,
                    "quantity": 1,
                    "total": 39.0,
                    "product": {"productId": "98765", "name": "Silicone Case", "displayPrice": 39.0},
                },
            ],
        },
    },
    "originalTime": 1764028800000,
    "departureTime": 1764028800150,
}

AFFITOR_LEAD = {
    "customer_code": "cust_42_1234567890",
    "user_id": "usr_abc123",
    "email": "user@example.com",
    "name": "John Doe",
    "phone": "+1234567890",
    "additional_data": {"signup_method": "email", "plan": "free_trial", "source": "pricing_page"},
}

KARTRA_PAGE_VISIT = {
    "lead": KARTRA_BUY["lead"],
    "action": "kartra_page_visit",
    "action_details": {"kartra_page": {"kartra_page_id": "12", "kartra_page_name": "Webinar"}},
}

CONVEAD_LINK_FORM = {
    "app_key": "convead-app-key",
    "visitor_uid": "",
    "guest_uid": "5f1a2b3c4d5e6",
    "data": json.dumps(
        {
            "app_key": "convead-app-key",
            "guest_uid": "5f1a2b3c4d5e6",
            "visitor_uid": "",
            "domain": "site.net",
            "host": "site.net/catalog/shoes",
            "path": "/catalog/shoes",
            "url": "http://site.net/catalog/shoes?utm_source=google&utm_medium=cpc",
            "title": "Shoes",
            "referrer": "https://www.google.com/",
            "type": "link",
            "properties": {},
        }
    ).replace("/", "\\/"),
}

CROCT_PAGE_OPENED = {
    "context": {
        "tabId": "0f2c1b8e-5b1a-4f7e-9d51-2b4c1f0a9e77",
        "url": "https://shop.example/?utm_source=x",
        "timeZone": "America/Sao_Paulo",
        "metadata": {"sdkVersion": "0.17.0"},
    },
    "payload": {
        "type": "pageOpened",
        "url": "https://shop.example/?utm_source=x",
        "referrer": "https://www.google.com/",
    },
    "originalTime": 1764028800000,
    "departureTime": 1764028800150,
}


def _form(fields: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


#: (source, route path, body bytes, content type, headers) — each vendor's most frequent
#: delivery: page views (auto-tracked by Convead's and Croct's SDKs), Kartra's documented
#: page-visit ping, Affitor's lead.
TYPICAL: list[tuple[str, str, bytes, str, dict[str, Any]]] = [
    ("kartra", "/", json.dumps(KARTRA_PAGE_VISIT).encode(), "application/json", {}),
    ("convead", "/watch/event", _form(CONVEAD_LINK_FORM), "application/x-www-form-urlencoded", {}),
    ("croct", "/client/web/track", json.dumps(CROCT_PAGE_OPENED).encode(), "application/json", CROCT_HEADERS),
    ("affitor", "/api/tracking/lead", json.dumps(AFFITOR_LEAD).encode(), "application/json", {}),
]

#: Rich deliveries: orders with items, the heaviest each vendor sends.
MIX: list[tuple[str, str, bytes, str, dict[str, Any]]] = [
    ("kartra", "/", json.dumps(KARTRA_BUY).encode(), "application/json", {}),
    (
        "convead",
        "/watch/event",
        "&".join(
            f"{k}={__import__('urllib.parse').parse.quote_plus(v)}" for k, v in CONVEAD_PURCHASE_FORM.items()
        ).encode(),
        "application/x-www-form-urlencoded",
        {},
    ),
    ("croct", "/client/web/track", json.dumps(CROCT_BEACON).encode(), "application/json", CROCT_HEADERS),
    ("affitor", "/api/tracking/lead", json.dumps(AFFITOR_LEAD).encode(), "application/json", {}),
]
