"""Reference 2: the receiver people usually write. FastAPI + pydantic + SQLAlchemy, one
fsync'd commit per request (SQLite in WAL mode, synchronous=FULL, like ours).

    RECEIVER_TYPICAL_DB=/tmp/typical.db uvicorn bench.typical_app:app
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import DateTime, Integer, String, Text, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

engine = create_engine(f"sqlite:///{os.environ.get('RECEIVER_TYPICAL_DB', '/tmp/typical.db')}")


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


@app.post("/hooks/{source}/{rest:path}")
@app.post("/hooks/{source}")
async def receive(source: str, request: Request, rest: str = "") -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.lstrip()[:1] in (b"{", b"[") else dict(parse_qsl(raw.decode()))
    except ValueError:
        raise HTTPException(400, "bad body") from None
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
        return {"status": "accepted", "id": row.id}
