"""What a stored delivery names, so that erasure can find it.

At write time every delivery records, in ``delivery_keys``, the identity keys it carried:
the identities of its events, those of items that mapped to nothing or were rejected
(``WriteRequest.carried``), the hash of every email address in its stored body and query,
whatever its spelling, and every SHA-256 written there (a hashed email, as a privacy
marker keeps it). Erasure finds each delivery of a person by these keys, through an index.

Reading stored bodies for the person's email (``spelled_in``) stays as the safety net:
for deliveries stored before keys were recorded, and beyond ``MAX_KEYS``.
"""

from __future__ import annotations

import hashlib
import html
import re
from urllib.parse import unquote

from .base import WriteRequest

MAX_KEYS = 64
"""Per delivery: a body stuffed with addresses costs no more rows than this."""

_JSON_ESCAPE = re.compile(r"\\+u([0-9a-f]{4})")
_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_SHA256 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_WORD = re.compile(r"[a-z0-9]+")
EMAIL_HASH = "email_sha256"


def normalize(text: str) -> str:
    """Lower-cased, with URL, JSON and HTML escapes undone, nested ones too: an address
    written ``Ana%40Example.com``, ``ana\\u0040example.com``, ``ana%5Cu0040example.com`` or
    ``ana&#64;example.com`` reads ``ana@example.com``."""
    t = text.lower()
    for _ in range(3):
        before = t
        t = unquote(t, errors="replace")
        t = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), t)
        t = html.unescape(t).replace("\\", "").lower()
        if t == before:
            break
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


def _texts(req: WriteRequest) -> list[str]:
    d = req.delivery
    out = [" ".join(f"{k}={v}" for k, v in d.query.items())] if d.query else []
    if d.body:
        out.append(bytes(d.body).decode("utf-8", "replace"))
    return out


def delivery_keys(req: WriteRequest) -> list[tuple[str, str]]:
    """The identity keys a delivery carries, most precise first, at most ``MAX_KEYS``."""
    keys: dict[tuple[str, str], None] = {}
    for idents in req.identities:
        for i in idents:
            keys[(i.kind, i.value)] = None
    for i in req.carried:
        keys[(i.kind, i.value)] = None
    for text in _texts(req):
        clean = normalize(text)
        for email in emails_in(clean):
            keys[(EMAIL_HASH, email_hash(email))] = None
        if len(keys) < MAX_KEYS:
            # Any SHA-256 may be a hashed email; it is only ever compared with one.
            for m in _SHA256.finditer(clean):
                keys[(EMAIL_HASH, m.group(0))] = None
                if len(keys) >= MAX_KEYS:
                    break
    return list(keys)[:MAX_KEYS]


# -- the safety net: reading stored bytes -------------------------------------------------
def needles(emails: list[str], hashes: list[str]) -> list[str]:
    """What to look for in stored bytes: each email (normalized) and each email hash."""
    return sorted({e.strip().lower() for e in emails if e.strip()} | {h.lower() for h in hashes})


def prefilter_words(needle: str) -> list[str]:
    """Words of a needle that every usual spelling keeps literally (URL and JSON escaping
    leave letters and digits alone), for a cheap search in SQL before ``spelled_in``: the
    longest run of letters and digits of the local part and of the domain."""
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
