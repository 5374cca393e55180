"""ARM's throttling as of 2024, for `sandbox serve --throttle arm`: token buckets per
subscription, region and principal, the Storage and Network resource providers' own limits on
top, and Resource Graph's per-user quota. Each answer carries the headers real ARM sends, and a
refusal is a 429 with `Retry-After` (Resource Graph's quota answer has none, as on Azure).

Sources (notes §6, §7): reads 250 + 25/s, writes 200 + 10/s, deletes 200 + 10/s per bucket;
Storage management 800 reads and 100 lists per 5 minutes, 10 writes/s and 1,200 per hour, per
region and subscription; Network 10,000 GETs and 1,000 PUT/DELETE per 5 minutes; Resource Graph 15
queries per 5 seconds per user. A refusal takes no token from any bucket."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .store import parse

MODES = ("arm", "off")

# bucket -> (capacity, refill per second)
ARM_LIMITS: dict[str, tuple[int, float]] = {"reads": (250, 25.0), "writes": (200, 10.0), "deletes": (200, 10.0)}
STORAGE_LIMITS: dict[str, tuple[int, float]] = {"reads": (800, 800 / 300), "lists": (100, 100 / 300),
                                                "writes": (10, 10.0)}
NETWORK_LIMITS: dict[str, tuple[int, float]] = {"reads": (10_000, 10_000 / 300), "writes": (1_000, 1_000 / 300)}
PROVIDER_LIMITS = {"microsoft.storage": STORAGE_LIMITS, "microsoft.network": NETWORK_LIMITS}
# A provider's second window on the same requests: Storage writes are 10 per second *and* 1,200
# per hour (Learn, "Scalability and performance targets for the Azure Storage resource provider").
PROVIDER_HOURLY: dict[str, dict[str, tuple[int, float]]] = {"microsoft.storage": {"writes": (1200, 1200 / 3600)}}
GRAPH_QUOTA, GRAPH_WINDOW = 15, 5.0
GRAPH_PATH = "/providers/microsoft.resourcegraph/resources"
# Headers a provider's own limit is reported in (ARM's names for "resource type requests").
PROVIDER_HEADER = {"reads": "x-ms-ratelimit-remaining-subscription-resource-requests",
                   "lists": "x-ms-ratelimit-remaining-subscription-resource-entities-read",
                   "writes": "x-ms-ratelimit-remaining-subscription-resource-requests"}


class Bucket:
    """A bucket that refills continuously up to its capacity."""

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity, self.rate, self.tokens, self.stamp = capacity, rate, float(capacity), now

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.capacity), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self) -> float:
        """Seconds until one token is there (0 when one is there now)."""
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


@dataclass
class Admission:
    """What the throttle says about one request: refused when `retry_after` is set."""

    headers: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None
    message: str = ""


def arm_bucket(method: str) -> str:
    return {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(method.upper(), "writes")


def provider_bucket(method: str, path: str) -> str | None:
    """The provider bucket a request draws on: a GET of a collection is a list."""
    if method.upper() in ("GET", "HEAD"):
        return "lists" if _is_list(path) else "reads"
    return "writes"


def _is_list(path: str) -> bool:
    """A provider path ends on a type segment when it has an even number of segments after the
    last `providers/{namespace}` (type/name pairs), else on a name."""
    segs = [s for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    last = max((i for i, s in enumerate(low) if s == "providers"), default=-1)
    tail = segs[last + 2:] if last >= 0 else segs
    return len(tail) % 2 == 1


def namespace_of(path: str) -> str | None:
    low = [s.lower() for s in path.split("/") if s]
    idx = [i for i, s in enumerate(low) if s == "providers"]
    if not idx or idx[-1] + 1 >= len(low):
        return None
    return low[idx[-1] + 1]


class ArmThrottle:
    """The buckets of one sandbox. `region_of(path)` names the region of the resource a request
    addresses (its top-level resource's location); thread-safe."""

    def __init__(self, region_of: Callable[[str], str], clock: Callable[[], float] = time.monotonic) -> None:
        self.region_of = region_of
        self.clock = clock
        self._buckets: dict[tuple[str, ...], Bucket] = {}
        self._graph: dict[str, tuple[float, int]] = {}  # principal -> (window start, used)
        self._lock = threading.Lock()

    def _bucket(self, key: tuple[str, ...], limit: tuple[int, float], now: float) -> Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = Bucket(limit[0], limit[1], now)
        b.refill(now)
        return b

    def admit(self, method: str, path: str, principal: str) -> Admission:
        if path.lower().rstrip("/") == GRAPH_PATH and method.upper() == "POST":
            return self._admit_graph(principal)
        low = path.lower()
        sub = parse(path).subscription if low.startswith("/subscriptions/") else None
        if not sub:
            return Admission()  # tenant-level reads (the subscription list): not modelled
        sub = sub.lower()
        kind = arm_bucket(method)
        region = self.region_of(path) or "global"
        namespace = namespace_of(path)
        limits = PROVIDER_LIMITS.get(namespace or "")
        pkind = provider_bucket(method, path) if limits else None
        if limits and pkind not in limits:
            pkind = "reads"  # Network counts every GET, lists included
        with self._lock:
            now = self.clock()
            arm = self._bucket(("arm", sub, region, principal, kind), ARM_LIMITS[kind], now)
            prov = (self._bucket(("provider", namespace or "", sub, region, pkind), limits[pkind], now)
                    if limits and pkind else None)
            hourly_limit = PROVIDER_HOURLY.get(namespace or "", {}).get(pkind or "") if prov else None
            hourly = (self._bucket(("provider-hour", namespace or "", sub, region, pkind or ""), hourly_limit, now)
                      if hourly_limit else None)
            provider_wait = max(prov.wait() if prov else 0.0, hourly.wait() if hourly else 0.0)
            wait = max(arm.wait(), provider_wait)
            if wait > 0:
                what = (f"{namespace} {pkind}" if provider_wait > 0 else f"subscription {kind}")
                return Admission(retry_after=max(1, math.ceil(wait)),
                                 message=f"Number of {what} requests for subscription '{sub}' in region "
                                         f"'{region}' exceeded the limit. Retry after {max(1, math.ceil(wait))} seconds.")
            arm.tokens -= 1.0
            headers = {f"x-ms-ratelimit-remaining-subscription-{kind}": str(int(arm.tokens))}
            if prov is not None and pkind:
                prov.tokens -= 1.0
                left = prov.tokens
                if hourly is not None:  # what is left is what the tighter window leaves
                    hourly.tokens -= 1.0
                    left = min(left, hourly.tokens)
                headers[PROVIDER_HEADER[pkind]] = str(int(left))
            return Admission(headers)

    def _admit_graph(self, principal: str) -> Admission:
        with self._lock:
            now = self.clock()
            start, used = self._graph.get(principal, (now, 0))
            if now - start >= GRAPH_WINDOW:
                start, used = now, 0
            resets = max(0.0, GRAPH_WINDOW - (now - start))
            reset_text = f"00:00:{resets:05.2f}"
            if used >= GRAPH_QUOTA:
                return Admission({"x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": reset_text},
                                 retry_after=0, message="Please provide below info when asking for support: "
                                 "the user quota of Resource Graph queries is exhausted; retry after the quota resets.")
            self._graph[principal] = (start, used + 1)
            return Admission({"x-ms-user-quota-remaining": str(GRAPH_QUOTA - used - 1),
                              "x-ms-user-quota-resets-after": reset_text})


class Tally:
    """What `serve` says on exit: requests served, reads, writes, throttled."""

    def __init__(self) -> None:
        self.requests = self.reads = self.writes = self.throttled = 0
        self._lock = threading.Lock()

    def count(self, method: str, path: str, status: int) -> None:
        read = method.upper() in ("GET", "HEAD") or path.lower().rstrip("/") == GRAPH_PATH
        with self._lock:
            self.requests += 1
            if read:
                self.reads += 1
            else:
                self.writes += 1
            if status == 429:
                self.throttled += 1

    def summary(self) -> str:
        return f"served {self.requests} requests ({self.reads} reads, {self.writes} writes, {self.throttled} throttled)"
