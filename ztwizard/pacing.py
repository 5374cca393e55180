"""Pacing reads within ARM's limits instead of colliding with them.

ARM (2024) throttles with token buckets per subscription, region and principal, and some
resource providers add their own (Storage: 800 reads and 100 lists per 5 minutes per region and
subscription). The gateway keeps its own model of each bucket it draws on, keyed by
(subscription, region, bucket), starts it from the published limits, and lowers it to what the
`x-ms-ratelimit-remaining-*` headers say is left. A request waits for a token in every bucket
it draws on before it is sent, so at steady state no 429 comes back. Resource Graph's per-user
quota (`x-ms-user-quota-remaining`, `-resets-after`) is one more bucket."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# bucket -> (capacity, refill per second): the published limits (notes §6, §7)
LIMITS: dict[str, tuple[float, float]] = {
    "reads": (250, 25.0),
    "writes": (200, 10.0),
    "deletes": (200, 10.0),
    "storage-reads": (800, 800 / 300),
    "storage-lists": (100, 100 / 300),
    "storage-writes": (10, 10.0),
    "storage-writes-hour": (1200, 1200 / 3600),  # Storage writes: 10 per second and 1,200 per hour
    "network-reads": (10_000, 10_000 / 300),
    "network-writes": (1_000, 1_000 / 300),
    "graph": (15, 15 / 5),
}
# response header -> the bucket of the request it reports on. "{provider}" is the provider bucket
# this request drew on: ARM reports a write's provider budget in `resource-requests` too, so
# reading that header as the provider's reads would drain the read budget with every write. (A
# provider's hourly window, paced beside it, is counted here: one header cannot say which
# window it reports, and lowering the hour to a second's count would stall every write.)
HEADERS: dict[str, str] = {
    "x-ms-ratelimit-remaining-subscription-reads": "reads",
    "x-ms-ratelimit-remaining-subscription-writes": "writes",
    "x-ms-ratelimit-remaining-subscription-deletes": "deletes",
    "x-ms-ratelimit-remaining-subscription-resource-requests": "{provider}",
    "x-ms-ratelimit-remaining-subscription-resource-entities-read": "{provider}",
    "x-ms-user-quota-remaining": "graph",
}
PROVIDERS = {"microsoft.storage": "storage", "microsoft.network": "network"}
# Keep a little of each bucket for the person's other tools (the portal, az) sharing the principal.
RESERVE = 0.05

Key = tuple[str, str, str]  # (subscription, region, bucket)


@dataclass
class _Budget:
    capacity: float
    rate: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


def provider_of(path: str) -> str | None:
    """'storage' or 'network' for a path under those providers (the last `providers/` segment)."""
    low = [s.lower() for s in path.split("?")[0].split("/") if s]
    idx = [i for i, s in enumerate(low) if s == "providers"]
    if not idx or idx[-1] + 1 >= len(low):
        return None
    return PROVIDERS.get(low[idx[-1] + 1])


def is_list(path: str) -> bool:
    """A path naming a collection (it ends on a type segment, not a resource name)."""
    segs = [s for s in path.split("?")[0].split("/") if s]
    low = [s.lower() for s in segs]
    idx = [i for i, s in enumerate(low) if s == "providers"]
    tail = segs[idx[-1] + 2:] if idx else segs
    return len(tail) % 2 == 1


def buckets_for(method: str, path: str) -> list[str]:
    """The buckets one request draws on: ARM's, then its provider's."""
    m = method.upper()
    arm = "reads" if m in ("GET", "HEAD") else "deletes" if m == "DELETE" else "writes"
    out = [arm]
    provider = provider_of(path)
    if provider:
        kind = ("lists" if is_list(path) else "reads") if arm == "reads" else "writes"
        if f"{provider}-{kind}" not in LIMITS:
            kind = "reads"  # Network counts every GET, lists included
        out.append(f"{provider}-{kind}")
        if f"{provider}-{kind}-hour" in LIMITS:  # a second window on the same requests
            out.append(f"{provider}-{kind}-hour")
    return out


_RESETS = re.compile(r"(\d+):(\d+):(\d+(?:\.\d+)?)")


class Pacer:
    """The budgets of one gateway; thread-safe. `acquire` blocks until every bucket named has a
    token and takes one from each; `observe` lowers a budget to what ARM says is left."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 limits: dict[str, tuple[float, float]] | None = None) -> None:
        self.clock, self.sleep = clock, sleep
        self.limits = dict(LIMITS if limits is None else limits)
        self._budgets: dict[Key, _Budget] = {}
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting for budget, all threads together
        self.sent = 0

    def _budget(self, key: Key, now: float) -> _Budget:
        b = self._budgets.get(key)
        if b is None:
            cap, rate = self.limits[key[2]]
            usable = cap * (1 - RESERVE)
            b = self._budgets[key] = _Budget(usable, rate * (1 - RESERVE), usable, now)
        b.refill(now)
        return b

    def acquire(self, keys: Iterable[Key]) -> None:
        keys = [k for k in keys if k[2] in self.limits]
        while True:
            with self._lock:
                now = self.clock()
                budgets = [self._budget(k, now) for k in keys]
                short = [(1.0 - b.tokens) / b.rate for b in budgets if b.tokens < 1.0 - 1e-9]
                if not short:
                    for b in budgets:
                        b.tokens -= 1.0
                    self.sent += 1
                    return
                wait = max(max(short), 0.001)  # a float's last bit must not spin the loop
                self.waited += wait
            self.sleep(wait)

    def headroom(self, keys: Iterable[Key]) -> tuple[Key, float, float]:
        """Of `keys`, the budget with the fewest tokens now: (key, tokens, refill per second);
        unlimited when none of them is paced."""
        keys = list(keys)
        paced = [k for k in keys if k[2] in self.limits]
        if not paced:
            return (keys[0] if keys else ("", "", "")), float("inf"), float("inf")
        with self._lock:
            now = self.clock()
            budgets = {k: self._budget(k, now) for k in paced}
            key = min(budgets, key=lambda k: budgets[k].tokens)
            return key, budgets[key].tokens, budgets[key].rate

    def observe(self, key: Key, remaining: float, resets_after: float | None = None) -> None:
        """ARM says `remaining` requests are left in this bucket: never count on more."""
        if key[2] not in self.limits:
            return
        with self._lock:
            b = self._budget(key, self.clock())
            usable = remaining - self.limits[key[2]][0] * RESERVE
            if usable < b.tokens:
                b.tokens = usable
            if resets_after is not None and remaining < 1.0:
                # a fixed window (Resource Graph): the next token comes when the window resets
                b.tokens = min(b.tokens, 1.0 - b.rate * resets_after)

    def observe_headers(self, subscription: str, region: str, method: str, path: str,
                        headers: Any) -> None:
        drawn = buckets_for(method, path)
        provider = drawn[1] if len(drawn) > 1 else ""
        for name, bucket in HEADERS.items():
            value = headers.get(name)
            if value is None:
                continue
            try:
                remaining = float(value)
            except ValueError:
                continue
            bucket = bucket.format(provider=provider)
            if not bucket:
                continue  # a provider header on a request that drew on no provider bucket
            resets = None
            if bucket == "graph":
                m = _RESETS.fullmatch(str(headers.get("x-ms-user-quota-resets-after") or "").strip())
                resets = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None
                self.observe(("", "", "graph"), remaining, resets)
            else:
                self.observe((subscription.lower(), region.lower(), bucket), remaining)

    def lowest(self) -> tuple[Key, int] | None:
        """The budget closest to running out, for progress lines."""
        with self._lock:
            now = self.clock()
            if not self._budgets:
                return None
            key = min(self._budgets, key=lambda k: self._budget(k, now).tokens / self._budgets[k].capacity)
            return key, int(self._budgets[key].tokens)


def describe(key: Key, left: int) -> str:
    sub, region, bucket = key
    if bucket == "graph":
        return f"Resource Graph quota {left} left"
    return f"{bucket} {sub[:8]}…/{region or 'global'} {left} left"

