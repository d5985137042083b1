"""A body stored the same however it arrives at ``receiver serve``: whole with its
headers (taken without a wait, serving.py ``receive_ready``), split across writes, chunked
in parts, or after ``Expect: 100-continue``."""

from __future__ import annotations

import json
import socket
import time

from conftest import DB, SECRETS, Server
from test_ingest import KARTRA_VISIT


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(65536)
    return head


def test_a_body_is_stored_the_same_whole_split_chunked_or_after_100_continue(server: Server, db: DB) -> None:
    token = SECRETS["RECEIVER_KARTRA_TOKEN"]
    bodies = []
    parts: list[list[bytes]] = []
    for i, how in enumerate(["whole", "split", "chunked", "continue"]):
        doc = json.loads(json.dumps(KARTRA_VISIT))
        doc["lead"]["email"] = f"arrival{i}@example.com"
        body = json.dumps(doc).encode()
        bodies.append(body)
        head = f"POST /hooks/kartra?token={token} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        if how == "chunked":
            head += "Transfer-Encoding: chunked\r\n\r\n"
            parts.append(
                [
                    head.encode() + b"%x\r\n" % 10 + body[:10] + b"\r\n",
                    b"%x\r\n" % (len(body) - 10) + body[10:] + b"\r\n0\r\n\r\n",
                ]
            )
            continue
        head += f"Content-Length: {len(body)}\r\n"
        if how == "continue":
            head += "Expect: 100-continue\r\n"
        whole = head.encode() + b"\r\n" + body
        cut = len(head) + 2 + (0 if how == "continue" else 10)
        parts.append([whole] if how == "whole" else [whole[:cut], whole[cut:]])
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        for i, chunks in enumerate(parts):
            for n, chunk in enumerate(chunks):
                if n:
                    time.sleep(0.2)
                    if i == 3:  # the interim answer came first
                        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
                sock.sendall(chunk)
            assert _answer(sock).startswith(b"HTTP/1.1 202 "), i
    rows = db.rows("SELECT body FROM deliveries ORDER BY id")
    assert [bytes(r["body"]) for r in rows] == bodies
