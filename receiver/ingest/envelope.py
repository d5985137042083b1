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
from .storable import MAX_DEPTH, check_nul, check_shape, nested_too_deeply
from .storable import shown as _shown

#: Media types that can carry a JSON document (the body still decides whether it is one).
#: text/plain is what ``navigator.sendBeacon`` sends; a missing type is tolerated.
_JSON_TYPES = frozenset({"", "application/json", "text/json", "text/plain", "application/octet-stream"})
_FORM_TYPE = "application/x-www-form-urlencoded"
#: What can never hold JSON or a form, even from a vendor that mislabels its bodies.
_NEVER_TYPES = ("multipart/", "image/", "audio/", "video/", "font/", "model/")

_BOM = b"\xef\xbb\xbf"


def unsupported(content_type: str, expected: str) -> Problem:
    return Problem(
        415, "Unsupported Media Type", f"{content_type} cannot carry this payload; send {expected}"
    )


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_type(mt: str) -> bool:
    return mt in _JSON_TYPES or mt.endswith("+json")


def check_content_type(envelope: Envelope, content_type: str) -> None:
    """415 for content types that cannot carry the payload. A JSON source takes JSON
    types, text/plain and no type at all; a source that may send JSON or a form
    (Kartra labels JSON as anything) refuses only what can never be either."""
    mt = media_type(content_type)
    if envelope.body == "json":
        if not _is_json_type(mt):
            raise unsupported(mt, "JSON (application/json)")
    elif envelope.body == "form":
        if mt not in ("", _FORM_TYPE, "text/plain"):
            raise unsupported(mt, f"a url-encoded form ({_FORM_TYPE})")
    elif mt.startswith(_NEVER_TYPES) or mt.endswith(("/xml", "+xml", "/html")):
        raise unsupported(mt, f"JSON or a url-encoded form ({_FORM_TYPE})")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _json_error(e: msgspec.DecodeError, raw: bytes) -> str:
    """msgspec's reason, or a clearer one for an unpaired surrogate (which it reports as
    "truncated" when the escape ends a string)."""
    msg = str(e)
    if "surrogate" not in msg and "truncated" in msg and _SURROGATE_ESCAPE.search(raw):
        return "holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff alone)"
    return msg


def decode_json(body: bytes, where: str = "") -> Any:
    if body.startswith(_BOM):
        raise bad_request(
            "the body starts with a byte order mark (U+FEFF)", [FieldError(where, "starts with a BOM")]
        )
    check_shape(body, where)
    try:
        doc = msgspec.json.decode(body)
    except UnicodeDecodeError as e:
        raise bad_request("the body is not valid UTF-8", [FieldError(where, str(e))]) from None
    except msgspec.DecodeError as e:
        msg = _json_error(e, body)
        if "utf-8" in msg.lower():
            raise bad_request("the body is not valid UTF-8", [FieldError(where, msg)]) from None
        raise bad_request("the body is not valid JSON", [FieldError(where, msg)]) from None
    except RecursionError:
        raise nested_too_deeply(where) from None
    check_nul(body, where)
    return doc


def _pct(raw: bytes) -> str:
    """Percent-decode one form name or value, as ``urllib.parse.unquote_to_bytes`` does.
    The stdlib decoder loops in Python per escape (~0.5 µs each here, 170 in a typical
    Convead body); quoted-printable decoding is the same transform in C once '%' reads
    '=', for a text with no literal '=' and no line breaks. Each well-formed escape makes
    the text 2 bytes shorter and a malformed one (``%zz``, a bare ``%``) less than that,
    so the length tells whether every escape was well-formed; if not, the stdlib decides
    (a regular expression looking for malformed escapes cost 10 µs per Convead body)."""
    raw = raw.replace(b"+", b" ")
    # ``find``, not ``in``: a bytes ``in`` first tries its operand as an int, and the
    # TypeError it raises and clears costs more than the search (CPython 3.11).
    if raw.find(b"%") < 0:
        return raw.decode("utf-8")
    if raw.find(b"=") < 0 and raw.find(b"\n") < 0 and raw.find(b"\r") < 0:
        decoded = binascii.a2b_qp(raw.replace(b"%", b"="))
        if len(decoded) == len(raw) - 2 * raw.count(b"%"):
            return decoded.decode("utf-8")
    return unquote_to_bytes(raw).decode("utf-8")


def parse_form(raw: bytes | str) -> dict[str, Any]:
    """``application/x-www-form-urlencoded`` with PHP-style keys: ``lead[first_name]=…``,
    ``a[b][c]=…``, ``list[]=…``. Numbered keys stay object keys; mappings read them as
    array elements. As in PHP, a later value for the same key wins and keys nest at most
    ``MAX_DEPTH`` levels (deeper is a 400 naming the field)."""
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
        if "\x00" in name or "\x00" in value:
            raise bad_request(
                "the form cannot be stored: a field contains a NUL character (U+0000)",
                [FieldError("/" + _shown(name), "contains a NUL character (U+0000)")],
            )
        base, bracket, rest = name.partition("[")
        keys = [base]
        if bracket:
            if not rest.endswith("]"):
                keys = [name]
            elif rest.count("][") < MAX_DEPTH:  # counted first: no list of 100,000 names
                keys += rest[:-1].split("][")
            else:
                keys = [base] * (MAX_DEPTH + 1)
        if len(keys) > MAX_DEPTH:
            raise bad_request(
                "the form has a field nested too deeply",
                [FieldError("/" + _shown(name), f"is nested more than {MAX_DEPTH} levels deep")],
            )
        node: Any = doc
        for i, k in enumerate(keys):
            if k == "":  # "a[]": append
                if not isinstance(node, dict):
                    break
                n = len(node)
                while str(n) in node:
                    n += 1
                k = str(n)
            if i == len(keys) - 1:
                node[k] = value
            else:
                nxt = node.get(k)
                if not isinstance(nxt, dict):
                    nxt = {}
                    node[k] = nxt
                node = nxt
    # The top level is always named fields ("0=a&1=b" is two fields, never a list): only
    # what is under a name becomes a list.
    return {k: _listify(v) for k, v in doc.items()}


#: A list index as PHP writes one: ASCII digits, no leading zero ("00", "²" are names).
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def _listify(node: Any) -> Any:
    """``{"0": a, "1": b}`` from ``x[0]=a&x[1]=b`` or ``x[]=…`` becomes ``[a, b]``; any
    other key set stays an object. Depth is bounded by ``MAX_DEPTH``."""
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    n = len(out)
    if n and all(_INDEX.fullmatch(k) and int(k) < n for k in out):
        return [out[str(i)] for i in range(n)]
    return out


def decode_outer(envelope: Envelope, body: bytes, content_type: str, query: str) -> Any:
    if envelope.body == "json":
        doc = decode_json(body)
    elif envelope.body == "form":
        doc = parse_form(body)
    else:
        # The body decides, not the label: Kartra sends JSON as form-urlencoded, text/plain
        # or with no type at all. A JSON document starts with '{' or '['; a form never does.
        head = body.lstrip()[:3]
        if head[:1] in (b"{", b"[") or head == _BOM:  # decode_json refuses the BOM clearly
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
                raw = value.encode("utf-8", "surrogatepass")
                check_shape(raw, where)
                try:
                    inner = msgspec.json.decode(raw)
                except msgspec.DecodeError as e:
                    raise bad_request(
                        f"the field {name!r} is not valid JSON", [FieldError(where, _json_error(e, raw))]
                    ) from None
                except UnicodeError as e:
                    raise bad_request(
                        f"the field {name!r} is not valid UTF-8", [FieldError(where, str(e))]
                    ) from None
                except RecursionError:
                    raise nested_too_deeply(where) from None
                check_nul(raw, where)
                item[name] = inner


def withhold_unreadable(envelope: Envelope, doc: Any) -> None:
    """Drop JSON-text fields that could not be decoded: what cannot be read cannot be
    redacted (a credential or an email may sit inside), so it is not stored."""
    items = doc if isinstance(doc, list) else [doc]
    for item in items:
        if isinstance(item, dict):
            for name in envelope.json_fields:
                if isinstance(item.get(name), str) and item[name] != "":
                    del item[name]
