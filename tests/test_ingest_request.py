"""The hook request's headers: decoded as Starlette decodes them, names remembered, values not."""

from __future__ import annotations

from starlette.datastructures import Headers as StarletteHeaders

from receiver.ingest import request


def test_headers_read_as_starlettes_and_only_a_bounded_set_of_names_is_remembered() -> None:
    raw = [
        (b"Host", b"bench"),
        (b"X-Token", b"s3cr\xe9t"),
        (b"x-token", b"second"),
        (b"CONTENT-TYPE", b"application/json"),
        (b"", b"empty name"),
    ]
    for _ in range(2):  # decoded, then remembered
        headers = request.Headers(raw)
        want = StarletteHeaders(raw=[(k.lower(), v) for k, v in raw])
        assert headers.items() == want.items()
        for name in ("host", "X-TOKEN", "content-type", "", "absent"):
            assert headers.get(name) == want.get(name)
    many = [(f"X-Name-{i}".encode(), b"v") for i in range(2 * request._MAX_NAMES)]
    kept = dict(request._NAMES)
    try:
        assert [k for k, _ in request.Headers(many).items()] == [k.decode().lower() for k, _ in many]
        assert len(request._NAMES) == request._MAX_NAMES
    finally:
        request._NAMES.clear()
        request._NAMES.update(kept)
    assert all(isinstance(k, bytes) for k in request._NAMES)
    assert "s3cr\xe9t" not in request._NAMES.values() and b"s3cr\xe9t" not in request._NAMES
