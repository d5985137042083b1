"""A circuit breaker per destination: after repeated failures stop sending, probe later.

closed: send. After ``threshold`` consecutive failed attempts it opens: nothing is sent
for a cooldown (the retry schedule's first bound, doubling each time it opens again, up
to its cap). Then half-open: one probe message; success closes the circuit, failure
opens it again. A destination that asks to wait (429/503 with Retry-After) is held for
that long the same way.
"""

from __future__ import annotations

from typing import Literal

CircuitState = Literal["closed", "open", "half_open"]


class Circuit:
    def __init__(self, cooldown: float, max_cooldown: float, threshold: int = 5) -> None:
        self.base = cooldown
        self.max_cooldown = max_cooldown
        self.threshold = threshold
        self.failures = 0
        self.opened = 0
        self.until = 0.0
        self.probing = False

    def state(self, now: float) -> CircuitState:
        if self.until > now:
            return "open"
        if self.opened:
            return "half_open"
        return "closed"

    def can_send(self, now: float) -> bool:
        """Whether a message may be sent now (without taking the half-open probe)."""
        state = self.state(now)
        return state == "closed" or (state == "half_open" and not self.probing)

    def allowance(self, now: float, wanted: int) -> int:
        """How many messages may be sent now, out of ``wanted``."""
        state = self.state(now)
        if state == "open":
            return 0
        if state == "half_open":
            if self.probing:
                return 0
            if wanted > 0:
                self.probing = True
            return min(wanted, 1)
        return wanted

    def success(self) -> None:
        self.failures = 0
        self.opened = 0
        self.probing = False
        self.until = 0.0

    def failure(self, now: float) -> bool:
        """Count a failure; True when it opens the circuit."""
        if self.until > now:
            return False  # already open: attempts that were in flight when it opened
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.probing = False
            self.opened += 1
            self.failures = 0
            self.until = now + min(self.max_cooldown, self.base * 2 ** min(self.opened - 1, 62))
            return True
        return False

    def hold(self, until: float) -> None:
        """The destination asked us to wait (Retry-After)."""
        self.until = max(self.until, until)
        self.opened = max(self.opened, 1)
        self.probing = False

    def give_back_probe(self) -> None:
        """The probe was not sent after all (the process stops)."""
        self.probing = False
