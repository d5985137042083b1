"""What is POSTed to a destination: the body in its format, and Standard Webhooks headers.

``canonical``: the event as ``GET /v1/events/{id}`` shows it. ``cloudevents``: a
CloudEvents 1.0 envelope in structured mode around it. The stored event JSON is
embedded as is (``msgspec.Raw``), so a message's body is the same bytes on every retry.

Signatures are made by the ``standardwebhooks`` library, the reference implementation:
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from standardwebhooks import Webhook

from .config import Format

USER_AGENT = "receiver-forward/1"
CONTENT_TYPES: dict[Format, str] = {
    "canonical": "application/json",
    "cloudevents": "application/cloudevents+json",
}
_enc = msgspec.json.encode


class _Head(msgspec.Struct):
    """The fields of a stored event the CloudEvents envelope needs."""

    source: str
    type: str
    occurred_at: str
    lead_id: str | None = None


def body(format: Format, message_id: str, event: bytes) -> bytes:
    if format == "canonical":
        return event
    head = msgspec.json.decode(event, type=_Head)
    envelope: dict[str, object] = {
        "specversion": "1.0",
        "id": message_id,
        "source": f"/sources/{head.source}",
        "type": f"receiver.{head.type}",
    }
    if head.lead_id:
        envelope["subject"] = head.lead_id
    envelope["time"] = head.occurred_at
    envelope["datacontenttype"] = "application/json"
    envelope["data"] = msgspec.Raw(event)
    return _enc(envelope)


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._webhook = Webhook(secret)

    def headers(self, format: Format, message_id: str, timestamp: int, payload: bytes) -> dict[str, str]:
        when = datetime.fromtimestamp(timestamp, UTC)
        return {
            "content-type": CONTENT_TYPES[format],
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self._webhook.sign(message_id, when, payload.decode("utf-8")),
        }
