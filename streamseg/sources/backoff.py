"""Exponential backoff with jitter, capped: how long a live camera waits between reconnect attempts."""

from __future__ import annotations

import random


class Backoff:
    """`next()` gives initial, 2*initial, 4*initial ... up to `cap`, each spread by +-`jitter` (a fraction).

    Jitter keeps cameras that dropped together (a switch reboot) from reconnecting in lockstep.
    """

    def __init__(self, initial: float = 1.0, cap: float = 30.0, jitter: float = 0.2, rng: random.Random | None = None):
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * 2.0**self._attempt)
        self._attempt += 1
        return base * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        """After a good connection the next drop starts again from `initial`."""
        self._attempt = 0
