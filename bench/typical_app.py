"""The typical receiver: what a team writes first with the usual Python web stack.

    RECEIVER_TYPICAL_DB=/tmp/typical.db uvicorn --app-dir bench typical_app:app

Why it is representative: it is the shape of the FastAPI and SQLAlchemy tutorials. A
pydantic model validates what is kept of the delivery; an ORM session per request adds
one row and commits it before the answer (so it is as durable as receiver: SQLite in WAL
mode, ``synchronous=FULL``); the blocking database work runs in FastAPI's thread pool
(``run_in_threadpool``), never on the event loop. It does much less than receiver (no
mapping, no dedup, no identities, no privacy), and nothing clever: no batching of
commits, no hand-written parsing beyond telling JSON from a form.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from sqlalchemy import DateTime, Integer, String, Text, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

engine = create_engine(f"sqlite:///{os.environ.get('RECEIVER_TYPICAL_DB', 'typical.db')}")


@event.listens_for(engine, "connect")
def _pragmas(conn: Any, _: Any) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")


class Base(DeclarativeBase):
    pass


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime)


Base.metadata.create_all(engine)


class WebhookIn(BaseModel):
    source: str
    event_type: str | None = None
    email: str | None = None
    payload: dict[str, Any]


app = FastAPI()


def save(item: WebhookIn) -> int:
    with Session(engine) as session:
        row = WebhookEvent(
            source=item.source,
            event_type=item.event_type,
            email=item.email,
            payload=json.dumps(item.payload),
            received_at=datetime.now(UTC),
        )
        session.add(row)
        session.commit()
        return row.id


@app.post("/hooks/{source}/{rest:path}", status_code=202)
@app.post("/hooks/{source}", status_code=202)
async def receive(source: str, request: Request, rest: str = "") -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.lstrip()[:1] in (b"{", b"[") else dict(parse_qsl(raw.decode()))
        if isinstance(data, list):
            data = {"items": data}
        if isinstance(data.get("data"), str):
            data["data"] = json.loads(data["data"])
        inner = data.get("payload") or data.get("data") or data
        lead = data.get("lead") or {}
        item = WebhookIn(
            source=source,
            event_type=inner.get("type") or data.get("action"),
            email=(lead.get("email") if isinstance(lead, dict) else None) or data.get("email"),
            payload=data,
        )
    except (ValueError, AttributeError, ValidationError):
        raise HTTPException(400, "bad body") from None
    return {"status": "accepted", "id": await run_in_threadpool(save, item)}
