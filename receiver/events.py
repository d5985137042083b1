"""The canonical event (docs/events.md) and its closed set of types (docs/types.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class EventType(StrEnum):
    LEAD_CAPTURED = "lead.captured"
    LEAD_TEST = "lead.test"
    AFFILIATE_CLICK = "affiliate.click"
    USER_SIGNED_UP = "user.signed_up"
    USER_SIGNED_IN = "user.signed_in"
    USER_SIGNED_OUT = "user.signed_out"
    PROFILE_UPDATED = "profile.updated"
    PAGE_VIEWED = "page.viewed"
    PAGE_LOADED = "page.loaded"
    TAB_OPENED = "tab.opened"
    TAB_URL_CHANGED = "tab.url_changed"
    TAB_VISIBILITY_CHANGED = "tab.visibility_changed"
    PRODUCT_VIEWED = "product.viewed"
    CART_VIEWED = "cart.viewed"
    CART_UPDATED = "cart.updated"
    CART_ITEM_ADDED = "cart.item_added"
    CART_ITEM_REMOVED = "cart.item_removed"
    CHECKOUT_STARTED = "checkout.started"
    ORDER_PLACED = "order.placed"
    ORDER_UPDATED = "order.updated"
    ORDER_REFUNDED = "order.refunded"
    SUBSCRIPTION_CANCELLED = "subscription.cancelled"
    GOAL_COMPLETED = "goal.completed"
    INTEREST_SHOWN = "interest.shown"
    POST_VIEWED = "post.viewed"
    LINK_OPENED = "link.opened"
    FILE_DOWNLOADED = "file.downloaded"
    EMAIL_LINK_CLICKED = "email.link_clicked"
    TAG_ADDED = "tag.added"
    TAG_REMOVED = "tag.removed"
    LIST_SUBSCRIBED = "list.subscribed"
    LIST_UNSUBSCRIBED = "list.unsubscribed"
    SEQUENCE_SUBSCRIBED = "sequence.subscribed"
    SEQUENCE_UNSUBSCRIBED = "sequence.unsubscribed"
    SEQUENCE_COMPLETED = "sequence.completed"
    MEMBERSHIP_GRANTED = "membership.granted"
    MEMBERSHIP_REVOKED = "membership.revoked"
    AFFILIATE_SIGNED_UP = "affiliate.signed_up"
    SCORE_REACHED = "score.reached"
    APPOINTMENT_BOOKED = "appointment.booked"
    APPOINTMENT_CANCELLED = "appointment.cancelled"
    APPOINTMENT_COMPLETED = "appointment.completed"
    SURVEY_COMPLETED = "survey.completed"
    VIDEO_PLAYED = "video.played"
    VIDEO_COMPLETED = "video.completed"
    SESSION_ATTRIBUTES_CHANGED = "session.attributes_changed"
    SESSION_IDLE = "session.idle"
    USER_CLICKED = "user.clicked"
    USER_SCROLLED = "user.scrolled"
    CUSTOM = "custom"


class Identity(msgspec.Struct, frozen=True, array_like=True):
    """An identifier of a person as one source knows it (docs/events.md)."""

    kind: str
    value: str
    known: bool
    """True for a known-person identity, False for an anonymous one (guest, client, click)."""


class Event(msgspec.Struct, omit_defaults=False):
    """The canonical event as stored and as the read API returns it."""

    id: str
    source: str
    source_type: str | None
    type: str
    occurred_at: str
    received_at: str
    lead_id: str | None
    anonymous_id: str | None
    lead: dict[str, Any] | None
    properties: dict[str, Any]
    context: dict[str, Any]
    extra: dict[str, Any]
    delivery_id: str
    mapping: str
