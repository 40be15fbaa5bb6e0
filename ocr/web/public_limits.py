"""What keeps the public results site cheap under many readers: a short-lived cache of what its pages compute, and a
token bucket per client address (in this process: each `formc serve` process counts its own)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

MAX_ENTRIES = 10_000  # past this many, entries that no longer matter are dropped (a crawler must not fill memory)


class TtlCache:
    """Values kept for `seconds` after they were computed: a page read by many costs one computation per period."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._kept: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        if len(self._kept) >= MAX_ENTRIES:
            self._kept = {k: v for k, v in self._kept.items() if v[0] > now}
        value = compute()
        self._kept[key] = (now + self.seconds, value)
        return value

    def clear(self) -> None:
        """Forgets every value: the next read of each computes it (bench/recap_bench.py's uncached times)."""
        self._kept.clear()


class TokenBuckets:
    """`burst` requests at once per address, then `rate` a second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when counted)

    def take(self, address: str) -> float:
        """Takes a token of `address`: 0 when it had one, else the seconds until it has."""
        now = time.monotonic()
        tokens, then = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if len(self._buckets) >= MAX_ENTRIES:  # a full bucket is the same as none
            self._buckets = {a: (t, w) for a, (t, w) in self._buckets.items()
                             if t + (now - w) * self.rate < self.burst}
        if tokens < 1:
            self._buckets[address] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[address] = (tokens - 1, now)
        return 0.0
