"""Realism knobs: injected faults at a seeded rate, and ARM-like throttling by token bucket."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import UsageError

# Faults decided before a request is processed: the request has no effect at all.
REQUEST_FAULTS = ("429", "500", "503", "reset")
# `reset-after`: the write is applied and saved, then the connection drops before the answer,
# the case a client cannot tell from a lost request.
AFTER_FAULTS = ("reset-after",)
# Decided when a long-running operation starts.
LRO_FAULTS = ("lro-fail", "lro-hang")
# `partial`: a Defender plan or Defender for Storage PUT is applied but answers 201 with a part
# that failed (an extension's operationStatus), as those providers do.
PARTIAL_FAULTS = ("partial",)
KINDS = REQUEST_FAULTS + AFTER_FAULTS + LRO_FAULTS + PARTIAL_FAULTS


class ConnectionReset(ConnectionError):
    """The sandbox drops the connection: no response at all."""


@dataclass
class Faults:
    """A parsed `faults` spec such as "429:0.1,500:0.05,reset:0.02,lro-fail:0.1" and its seeded
    random streams (one for requests, one for operations, so each is reproducible on its own)."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        self._requests = random.Random(self.seed)
        self._ops = random.Random(self.seed + 1)
        self._partial = random.Random(self.seed + 2)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> Faults:
        rates: dict[str, float] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            kind, sep, rate = part.partition(":")
            kind = kind.strip().lower()
            if kind not in KINDS or not sep:
                raise UsageError(f"Unknown fault {part!r} in the faults spec.",
                                 hint=f"Use KIND:RATE with KIND one of {', '.join(KINDS)}, e.g. 429:0.1,reset:0.02.")
            try:
                value = float(rate)
            except ValueError:
                value = -1.0
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"Fault rate {rate!r} for {kind} is not a number between 0 and 1.",
                                 hint="Write rates as fractions, e.g. 500:0.05.")
            rates[kind] = value
        for group in (REQUEST_FAULTS + AFTER_FAULTS, LRO_FAULTS):
            if sum(rates.get(k, 0.0) for k in group) > 1.0:
                raise UsageError("The fault rates add up to more than 1.",
                                 hint="Lower the rates so that each group sums to at most 1.")
        return cls(rates, seed)

    def __bool__(self) -> bool:
        return any(self.rates.values())

    def _pick(self, rng: random.Random, kinds: tuple[str, ...]) -> str | None:
        if not any(self.rates.get(k) for k in kinds):
            return None
        u = rng.random()
        acc = 0.0
        for k in kinds:
            acc += self.rates.get(k, 0.0)
            if u < acc:
                return k
        return None

    def for_request(self) -> str | None:
        return self._pick(self._requests, REQUEST_FAULTS + AFTER_FAULTS)

    def for_operation(self) -> str | None:
        return self._pick(self._ops, LRO_FAULTS)

    def for_partial(self) -> bool:
        return self._pick(self._partial, PARTIAL_FAULTS) is not None


class TokenBucket:
    """ARM's throttling model: a bucket that refills continuously up to its capacity."""

    def __init__(self, capacity: int, per_seconds: float, clock: Callable[[], float]) -> None:
        self.capacity = capacity
        self.rate = capacity / per_seconds
        self.tokens = float(capacity)
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> float:
        """Take one token; 0.0 when granted, else the seconds until one is available."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    @property
    def remaining(self) -> int:
        self._refill()
        return int(self.tokens)


class Throttle:
    """Buckets per subscription and per principal within it, separately for reads and writes.
    Defaults follow ARM's classic quotas: 12000 reads and 1200 writes an hour."""

    def __init__(self, reads: int = 12000, writes: int = 1200, per_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"reads": reads, "writes": writes}
        self.per_seconds = per_seconds
        self.clock = clock
        self.buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def _bucket(self, scope: str, who: str, kind: str) -> TokenBucket:
        k = (scope, who, kind)
        if k not in self.buckets:
            self.buckets[k] = TokenBucket(self.limits[kind], self.per_seconds, self.clock)
        return self.buckets[k]

    def admit(self, subscription: str | None, principal: str, kind: str) -> tuple[int, dict[str, str]]:
        """(retry_after_seconds or 0, headers to send). Both buckets must grant; a refusal
        takes nothing from either."""
        scope_kind = "subscription" if subscription else "tenant"
        sub_bucket = self._bucket("sub", (subscription or "").lower(), kind)
        who_bucket = self._bucket("principal", f"{(subscription or '').lower()}/{principal}", kind)
        wait = max(sub_bucket.take(), 0.0)
        if wait:
            return max(1, math.ceil(wait)), {}
        wait2 = who_bucket.take()
        if wait2:
            sub_bucket.tokens += 1.0
            return max(1, math.ceil(wait2)), {}
        return 0, {f"x-ms-ratelimit-remaining-{scope_kind}-{kind}": str(sub_bucket.remaining)}
