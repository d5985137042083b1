"""What a stored delivery names, so that erasure can find it.

At write time every delivery records, in ``delivery_keys``, the identity keys it carried
that nothing else leads to. A mapped event's identities say it (the mapping knows where a
vendor puts its people), unless the event was resolved to a lead: then the event itself,
by its ``lead_id``, is how erasure finds the delivery (one index entry less per identity
on the write path). So do the declared identities of items that mapped to nothing or
were rejected (``WriteRequest.carried``). A delivery that is not wholly accepted may also
hold people the mapping never read: for those the stored body and query are searched
too, for every email address however it is spelled (its hash becomes a key) and for
hashed emails.
Erasure then finds each delivery of a person by key, through an index, whatever its status.

Reading stored bytes for the person's email at erasure time (``spelled_in``) stays as the
safety net: for deliveries stored before keys were recorded, for an address an accepted
delivery carries outside its mapped fields, and beyond ``MAX_KEYS``.
"""

from __future__ import annotations

import hashlib
import html
import re
from urllib.parse import unquote

from .base import WriteRequest

MAX_KEYS = 64
"""Per delivery: a body stuffed with addresses costs no more rows than this."""
WINDOW_BEFORE, WINDOW_AFTER = 200, 320
"""Text decoded around each written ``@``: room for a long address, URL-encoded."""

_JSON_ESCAPE = re.compile(r"\\+u([0-9a-f]{4})")
_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_WORD = re.compile(r"[a-z0-9]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# How an "@" can be written: as is, URL-encoded (once or twice), JSON- or HTML-escaped.
_AT = ("@", "%40", "%2540", "u0040", "&#64;", "&#x40;", "&commat;")
# A hashed email as a privacy marker (or a vendor) writes it: {"sha256": "<hex>"}.
_SHA256_FIELD = re.compile(r'sha256\\?"\s*:\s*\\?"([0-9a-f]{64})\b')
EMAIL_HASH = "email_sha256"


def normalize(text: str) -> str:
    """Lower-cased, with URL, JSON and HTML escapes undone, nested ones too: an address
    written ``Ana%40Example.com``, ``ana\\u0040example.com``, ``ana%5Cu0040example.com`` or
    ``ana&#64;example.com`` reads ``ana@example.com``."""
    t = text.lower()
    for _ in range(3):
        before = t
        if "%" in t:
            t = unquote(t, errors="replace")
        if "\\" in t:
            t = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), t).replace("\\", "")
        if "&" in t:
            t = html.unescape(t)
        if t == before:
            break
        t = t.lower()  # what was escaped may be upper case
    return t


def email_hash(email: str) -> str:
    """The identity value of an email: the same hash as the mappings' ``email_sha256``."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()


def emails_in(text: str) -> list[str]:
    """Email addresses in normalized text. Linear: each ``@`` looks at most 64 characters
    back and 255 ahead (no regex that could backtrack over a hostile body)."""
    found: list[str] = []
    at = text.find("@")
    while at != -1 and len(found) < MAX_KEYS:
        start = at
        while start > 0 and at - start < 64 and text[start - 1] in _LOCAL:
            start -= 1
        local = text[start:at].lstrip(".")
        domain = _DOMAIN.match(text, at + 1, at + 256)
        if local and domain is not None:
            email = f"{local}@{domain.group(0)}"
            if email not in found:
                found.append(email)
        at = text.find("@", at + 1)
    return found


def emails_written_in(text: str) -> list[str]:
    """Every email address in raw stored text, however it is spelled. Only the text
    around each written ``@`` is decoded, so the cost follows the addresses, not the size
    of the body (a megabyte of escapes costs a few windows)."""
    low = text.lower()
    spots: list[int] = []
    for at in _AT:
        i = low.find(at)
        while i != -1 and len(spots) < 4 * MAX_KEYS:
            spots.append(i)
            i = low.find(at, i + 1)
    found: dict[str, None] = {}
    covered = -1
    for i in sorted(spots):
        if i < covered:
            continue  # decoded with the previous window
        end = i + WINDOW_AFTER
        for email in emails_in(normalize(low[max(0, i - WINDOW_BEFORE) : end])):
            found[email] = None
        covered = end - WINDOW_AFTER // 2
        if len(found) >= MAX_KEYS:
            break
    return list(found)


def _texts(req: WriteRequest) -> list[str]:
    d = req.delivery
    out = [" ".join(f"{k}={v}" for k, v in d.query.items())] if d.query else []
    if d.body:
        out.append(bytes(d.body).decode("utf-8", "replace"))
    return out


def delivery_keys(req: WriteRequest) -> list[tuple[str, str]]:
    """The identity keys a delivery carries, most precise first, at most ``MAX_KEYS``.

    The identities of an event resolved to a lead are not keys: each of them points at
    that lead, as the event does (``lead_id``, kept through merges), and erasure finds
    the delivery by the lead's events. Call after resolution."""
    keys: dict[tuple[str, str], None] = {}
    for event, idents in zip(req.events, req.identities, strict=False):
        if event.lead_id is not None:
            continue
        for i in idents:
            keys[(i.kind, i.value)] = None
    for i in req.carried:
        keys[(i.kind, i.value)] = None
    if req.delivery.status == "accepted":
        return list(keys)[:MAX_KEYS]
    for text in _texts(req):
        for email in emails_written_in(text):
            keys[(EMAIL_HASH, email_hash(email))] = None
        if "sha256" in text or "SHA256" in text:
            for m in _SHA256_FIELD.finditer(text.lower()):
                keys[(EMAIL_HASH, m.group(1))] = None
    return list(keys)[:MAX_KEYS]


# -- the safety net: reading stored bytes -------------------------------------------------
def needles(emails: list[str], hashes: list[str]) -> list[str]:
    """What to look for in stored bytes: each email (normalized) and each email hash."""
    return sorted({e.strip().lower() for e in emails if e.strip()} | {h.lower() for h in hashes})


def prefilter_words(needle: str) -> list[str]:
    """Words of a needle that every usual spelling keeps literally (URL and JSON escaping
    leave letters and digits alone), for a cheap search in SQL before ``spelled_in``: the
    longest run of letters and digits of the local part and of the domain."""
    if _HEX64.fullmatch(needle):
        return [needle[:20]]  # a hash: its start is rare enough, the check reads it whole
    words = []
    for part in needle.rpartition("@")[0::2]:
        runs = _WORD.findall(part)
        if runs:
            words.append(max(runs, key=len))
    return words


def spelled_in(stored: bytes | str | None, targets: list[str]) -> bool:
    """True when stored bytes spell one of the targets, in any case and escaping."""
    if not stored:
        return False
    text = stored if isinstance(stored, str) else bytes(stored).decode("utf-8", "replace")
    clean = normalize(text)
    return any(t in clean for t in targets)
