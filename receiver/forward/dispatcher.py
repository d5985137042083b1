"""The forwarder: one loop per process that claims due messages from the outbox and sends
them, on the event loop, with ``httpx.AsyncClient``.

Each destination has its own lane: its own client (connection pool), ``concurrency``
workers, a small queue of claimed messages and a circuit breaker, so one slow or dead
destination never delays another, and none delays ingest (no request waits on the
forwarder). The loop talks to the store once per cycle, in one transaction: record what
was attempted, give back what will not be sent, claim what the lanes have room for.
A cycle runs when something happened (a delivery was committed, a lane ran low), when a
retry falls due, and at least once a second (other processes' messages, expired leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable

import httpx
import msgspec

from ..metrics import Metrics
from .circuit import Circuit
from .config import Destination
from .message import Signer, body
from .outbox import Claimed, Outbox, Outcome
from .schedule import backoff, retry_after
from .transport import PrivateAddressRefused, client_for

log = logging.getLogger("receiver.forward")

POLL_SECONDS = 1.0
CYCLE_SECONDS = 0.05
"""Least time between two cycles: outcomes and commits arriving together share one."""
BUSY_CYCLE_SECONDS = 0.2
BUSY_CLAIM = 10
"""While deliveries wait for the writer (ingest is saturated), a lane claims at most this
many messages per cycle: forwarding yields the CPU to ingest and catches up after."""
BUSY_HOLD_SECONDS = 1.0
SWEEP_SECONDS = 10.0
STOP_SECONDS = 10.0
LEASE_MARGIN_SECONDS = 5.0
WINDOW = 4
"""A lane holds at most ``WINDOW * concurrency`` claimed messages (queued or in flight)."""
RESPONSE_BYTES = 64 * 1024
"""A destination's answer is read up to this much, then dropped (it is not kept)."""


class Lane:
    """One destination: its client, workers, claimed messages and circuit."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.signer = Signer(destination.secret)
        self.client: httpx.AsyncClient | None = None
        self.queue: asyncio.Queue[Claimed] = asyncio.Queue()
        self.in_flight: dict[str, Claimed] = {}
        self.circuit = Circuit(destination.retry_first, min(destination.retry_max, 300.0))
        self.disabled = False
        self.workers: list[asyncio.Task[None]] = []

    @property
    def window(self) -> int:
        return WINDOW * self.destination.concurrency

    @property
    def lease(self) -> float:
        """Long enough to send every message of a full window, each taking its timeout."""
        return (
            self.destination.timeout * math.ceil(self.window / self.destination.concurrency)
            + LEASE_MARGIN_SECONDS
        )

    def room(self) -> int:
        return max(0, self.window - self.queue.qsize() - len(self.in_flight))

    def want(self, now: float, cap: int | None = None) -> int:
        if self.disabled:
            return 0
        room = self.room()
        return self.circuit.allowance(now, room if cap is None else min(room, cap))

    def sendable(self, now: float) -> bool:
        return not self.disabled and self.circuit.state(now) != "open"

    def drain(self) -> list[str]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait().id)
        return out


class Forwarder:
    def __init__(
        self,
        outbox: Outbox,
        destinations: list[Destination],
        metrics: Metrics | None = None,
        pressure: Callable[[], int] | None = None,
    ) -> None:
        self.outbox = outbox
        self.pressure = pressure
        """Deliveries waiting for the writer (ingest pressure), when known."""
        self.lanes = {d.name: Lane(d) for d in destinations}
        self.metrics = metrics
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._outcomes: list[Outcome] = []
        self._released: list[str] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_due: dict[str, float] = {}
        self._next_sweep = 0.0
        self._failing = False
        self._stopping = False
        self._last_cycle = 0.0
        self._busy_until = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        for lane in self.lanes.values():
            lane.client = client_for(lane.destination)
            lane.workers = [
                asyncio.create_task(self._work(lane), name=f"forward-{lane.destination.name}-{i}")
                for i in range(lane.destination.concurrency)
            ]
        self._task = asyncio.create_task(self._run(), name="forward-dispatcher")

    async def stop(self) -> None:
        """Stop sending; record what was attempted and give back every claim not sent (an
        attempt cut short is given back too: it will be sent again, with the same id)."""
        if self._task is None:
            return
        self._stopping = True  # let a cycle under way finish: its claims are then known
        self._wake.set()
        # If the store hangs, give up: what it did not record is sent again later.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._task, STOP_SECONDS)
        self._task = None
        for lane in self.lanes.values():
            for w in lane.workers:
                w.cancel()
            await asyncio.gather(*lane.workers, return_exceptions=True)
            lane.workers = []
            self._released += lane.drain()
            if lane.client is not None:
                await lane.client.aclose()
                lane.client = None
        try:
            await self.outbox.cycle(self.owner, self._outcomes, self._released, {}, sweep=False)
        except Exception as e:  # the store is gone: the leases expire on their own
            log.warning("forwarder: could not record the last outcomes: %s", type(e).__name__)
        self._outcomes, self._released = [], []

    def wake(self) -> None:
        """Something may be due (a delivery was committed, a message retried)."""
        self._wake.set()

    def enabled(self, name: str) -> None:
        """The destination was re-enabled (POST /v1/destinations/{name}/enable)."""
        lane = self.lanes[name]
        lane.disabled = False
        lane.circuit.success()
        self._wake.set()

    def lane_state(self, name: str) -> dict[str, object]:
        lane = self.lanes[name]
        return {
            "circuit": lane.circuit.state(time.time()),
            "in_flight": len(lane.in_flight),
            "queued": lane.queue.qsize(),
        }

    # -- the loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            delay = self._sleep_time(time.time())
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            now = time.time()
            interval = BUSY_CYCLE_SECONDS if now < self._busy_until else CYCLE_SECONDS
            await asyncio.sleep(max(0.001, self._last_cycle + interval - now))
            if self._stopping:
                return
            try:
                await self._cycle()
                if self._failing:
                    log.info("forwarder: the store answers again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store is unavailable: try again shortly
                if not self._failing:
                    log.warning("forwarder: cycle failed: %s", type(e).__name__)
                self._failing = True
                await asyncio.sleep(POLL_SECONDS)

    def _sleep_time(self, now: float) -> float:
        """Until a lane that can take messages has one due, a circuit reopens, or a poll."""
        until = now + POLL_SECONDS
        for name, lane in self.lanes.items():
            if lane.disabled:
                continue
            if lane.circuit.state(now) == "open":
                until = min(until, lane.circuit.until)
            elif lane.room() > 0 and lane.circuit.can_send(now) and name in self._next_due:
                until = min(until, self._next_due[name])
        return max(0.0, until - now)

    async def _cycle(self) -> None:
        now = self._last_cycle = time.time()
        if self.pressure is not None and self.pressure() > 0:
            self._busy_until = now + BUSY_HOLD_SECONDS
        busy = now < self._busy_until
        outcomes, self._outcomes = self._outcomes, []
        released, self._released = self._released, []
        wants = {
            name: (lane.want(now, BUSY_CLAIM if busy else None), lane.lease)
            for name, lane in self.lanes.items()
        }
        sweep = now >= self._next_sweep
        try:
            result = await self.outbox.cycle(self.owner, outcomes, released, wants, sweep)
        except BaseException:
            self._outcomes[:0] = outcomes
            self._released[:0] = released
            for name, lane in self.lanes.items():
                if wants[name][0] > 0:  # a probe taken for this cycle was not sent
                    lane.circuit.give_back_probe()
            raise
        if sweep:
            self._next_sweep = now + SWEEP_SECONDS
        self._next_due = result.next_due
        for name, lane in self.lanes.items():
            lane.disabled = name in result.disabled
            claimed = result.claimed.get(name, [])
            if not claimed and wants[name][0] > 0:
                lane.circuit.give_back_probe()
            for message in claimed:
                lane.queue.put_nowait(message)

    # -- sending -----------------------------------------------------------------------------
    async def _work(self, lane: Lane) -> None:
        while True:
            message = await lane.queue.get()
            if not lane.sendable(time.time()):
                self._released.append(message.id)
                continue
            lane.in_flight[message.id] = message
            try:
                outcome = await self._attempt(lane, message)
            except asyncio.CancelledError:
                self._released.append(message.id)  # cut short: send again later
                raise
            finally:
                lane.in_flight.pop(message.id, None)
            self._settle(lane, outcome)

    def _settle(self, lane: Lane, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        now = time.time()
        if outcome.state == "delivered":
            lane.circuit.success()
        elif outcome.gone:
            lane.disabled = True
            self._released += lane.drain()
        elif lane.circuit.failure(now) or lane.circuit.state(now) == "open":
            self._released += lane.drain()
        if lane.queue.qsize() <= lane.destination.concurrency or len(self._outcomes) >= 256:
            self._wake.set()

    async def _attempt(self, lane: Lane, message: Claimed) -> Outcome:
        d = lane.destination
        assert lane.client is not None
        started = time.time()
        payload = body(d.format, message.id, message.body)
        headers = lane.signer.headers(d.format, message.id, int(started), payload)
        status: int | None = None
        error: str | None = None
        wait: float | None = None
        kind = "error"
        t0 = time.perf_counter()
        try:
            async with (
                asyncio.timeout(d.timeout),
                lane.client.stream("POST", d.url, content=payload, headers=headers) as r,
            ):
                status = r.status_code
                if status in (429, 503):
                    wait = retry_after(r.headers.get("retry-after"))
                read = 0
                async for chunk in r.aiter_raw():
                    read += len(chunk)
                    if read > RESPONSE_BYTES:
                        break
        except (TimeoutError, httpx.TimeoutException):
            kind, error = "timeout", f"no answer within {d.timeout:g} s"
        except PrivateAddressRefused as e:
            kind, error = "refused", str(e)
        except httpx.HTTPError as e:
            kind, error = "error", _describe(e, d)
        except OSError as e:
            kind, error = "error", f"{type(e).__name__}: {e.strerror or e}"
        except (ValueError, msgspec.DecodeError) as e:  # a stored body that cannot be sent
            kind, error = "error", f"{type(e).__name__}: cannot build the message"
        duration_ms = round((time.perf_counter() - t0) * 1000)
        now = time.time()
        if status is not None:
            kind = "delivered" if 200 <= status < 300 else f"http_{status // 100}xx"
        if self.metrics is not None:
            self.metrics.forward_attempt(d.name, kind)
        outcome = Outcome(
            message_id=message.id,
            destination=d.name,
            at=started,
            status=status,
            duration_ms=duration_ms,
            error=error,
            state="pending",
            next_attempt_at=now,
        )
        if kind == "delivered":
            outcome.state = "delivered"
        elif status == 410:
            outcome.gone = True
            outcome.error = "410 Gone: the destination is disabled until re-enabled"
        elif now >= message.expires_at:
            outcome.state, outcome.reason = "failed", "max_age reached"
        else:
            delay = backoff(message.attempts + 1, d.retry_first, d.retry_max)
            if wait is not None:  # the destination said when: not sooner, for any message
                wait = min(wait, d.retry_max)
                delay = max(delay, wait)
                lane.circuit.hold(now + wait)
            outcome.next_attempt_at = min(now + delay, message.expires_at)
        return outcome


def _describe(e: Exception, d: Destination) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text.replace(d.url, d.shown_url)[:300]
