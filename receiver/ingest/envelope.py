"""Turning a request body into the vendor's document, as its mapping's envelope says.

Two stages, because some credentials travel inside the body (Convead's ``app_key``):
``decode_outer`` gives the form fields or the JSON value, the credential is checked,
then ``decode_inner`` decodes fields that carry JSON text (Convead's ``data``).
"""

from __future__ import annotations

import binascii
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec

from ..mapping.spec import Envelope
from ..problems import FieldError, Problem, bad_request

_NOT_JSON_TYPES = ("multipart/", "image/", "audio/", "video/")


def unsupported(content_type: str, expected: str) -> Problem:
    return Problem(
        415, "Unsupported Media Type", f"{content_type} cannot carry this payload; send {expected}"
    )


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def check_content_type(envelope: Envelope, content_type: str) -> None:
    """415 for content types that cannot carry the payload. A missing or merely wrong type
    is tolerated: vendors (Kartra) send JSON under any label, and the body decides."""
    mt = media_type(content_type)
    expected = "JSON" if envelope.body == "json" else "JSON or a url-encoded form"
    if mt.startswith(_NOT_JSON_TYPES):
        raise unsupported(mt, expected)
    if envelope.body == "json" and mt == "application/x-www-form-urlencoded":
        raise unsupported(mt, expected)


def decode_json(body: bytes, where: str = "") -> Any:
    try:
        return msgspec.json.decode(body)
    except UnicodeDecodeError as e:
        raise bad_request("the body is not valid UTF-8", [FieldError(where, str(e))]) from None
    except msgspec.DecodeError as e:
        msg = str(e)
        if "utf-8" in msg.lower():
            raise bad_request("the body is not valid UTF-8", [FieldError(where, msg)]) from None
        raise bad_request("the body is not valid JSON", [FieldError(where, msg)]) from None
    except RecursionError:
        raise bad_request("the JSON is nested too deeply", [FieldError(where, "too deep")]) from None


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})|[=\r\n]")


def _pct(raw: bytes) -> str:
    """Percent-decode one form name or value. The stdlib decoder loops in Python per
    escape (~0.5 µs each here, 170 in a typical Convead body); quoted-printable decoding
    is the same transform in C once '%' reads '=', so it is used whenever the text has no
    literal '=', no line breaks and no malformed escape (else the stdlib decides)."""
    raw = raw.replace(b"+", b" ")
    if b"%" not in raw:
        return raw.decode("utf-8")
    if _BAD_ESCAPE.search(raw) is None:
        return binascii.a2b_qp(raw.replace(b"%", b"=")).decode("utf-8")
    return unquote_to_bytes(raw).decode("utf-8")


def parse_form(raw: bytes | str) -> dict[str, Any]:
    """``application/x-www-form-urlencoded`` with PHP-style keys: ``lead[first_name]=…``,
    ``a[b][c]=…``, ``list[]=…``. Numbered keys stay object keys; mappings read them as
    array elements."""
    try:
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        pairs = []
        for part in data.split(b"&"):
            if not part:
                continue
            raw_name, _, raw_value = part.partition(b"=")
            pairs.append((_pct(raw_name), _pct(raw_value)))
    except UnicodeError:
        raise bad_request("the form is not valid UTF-8", [FieldError("", "not UTF-8")]) from None
    doc: dict[str, Any] = {}
    for name, value in pairs:
        if not name:
            raise bad_request("the form has a field without a name", [FieldError("", "empty name")])
        base, bracket, rest = name.partition("[")
        keys = [base]
        if bracket:
            if not rest.endswith("]"):
                keys = [name]
            else:
                keys += rest[:-1].split("][")
        node: Any = doc
        for i, k in enumerate(keys):
            last = i == len(keys) - 1
            if k == "":  # "a[]": append
                if not isinstance(node, dict):
                    break
                k = str(len(node))
            if last:
                if isinstance(node, dict):
                    node[k] = value
            else:
                nxt = node.get(k) if isinstance(node, dict) else None
                if not isinstance(nxt, dict):
                    nxt = {}
                    node[k] = nxt
                node = nxt
    out: dict[str, Any] = _listify(doc)
    return out


def _listify(node: Any) -> Any:
    """``{"0": a, "1": b}`` from ``x[0]=a&x[1]=b`` or ``x[]=…`` becomes ``[a, b]``."""
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out) and sorted(int(k) for k in out) == list(range(len(out))):
        return [out[str(i)] for i in range(len(out))]
    return out


def decode_outer(envelope: Envelope, body: bytes, content_type: str, query: str) -> Any:
    if envelope.body == "json":
        doc = decode_json(body)
    elif envelope.body == "form":
        doc = parse_form(body)
    else:
        # The body decides, not the label: Kartra sends JSON as form-urlencoded, text/plain
        # or with no type at all. A JSON document starts with '{' or '['; a form never does.
        head = body.lstrip()[:1]
        if head in (b"{", b"["):
            doc = decode_json(body)
        elif not head:
            doc = {}
        else:
            doc = parse_form(body)
    if envelope.query_fields and query:
        fields = parse_form(query)
        if isinstance(doc, dict):
            doc = {**fields, **doc}
    return doc


def decode_inner(envelope: Envelope, doc: Any) -> None:
    """Decode fields that hold JSON text, in place (400 naming the field if one is bad)."""
    if not envelope.json_fields:
        return
    items = doc if isinstance(doc, list) else [doc]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for name in envelope.json_fields:
            value = item.get(name)
            if isinstance(value, str) and value != "":
                where = (f"/{index}" if isinstance(doc, list) else "") + f"/{name}"
                try:
                    item[name] = msgspec.json.decode(value.encode("utf-8"))
                except (msgspec.DecodeError, UnicodeError) as e:
                    raise bad_request(
                        f"the field {name!r} is not valid JSON", [FieldError(where, str(e))]
                    ) from None
                except RecursionError:
                    raise bad_request(
                        f"the field {name!r} is nested too deeply", [FieldError(where, "too deep")]
                    ) from None
