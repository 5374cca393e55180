"""The sandbox's ARM core: one stateful `handle(method, url, headers, body)` that answers the way
Azure Resource Manager and each resource provider do, so the real azure-mgmt clients work unchanged.

Design points a caller can rely on:
* Writes apply at once and are saved before the response leaves (no acknowledged write is lost);
  a long-running operation then only moves provisioningState from Creating/Updating to Succeeded.
* An injected `lro-fail` rolls the write back when the operation settles (the resource is as it
  was before the request, etag included) and the monitor reports Failed: the write did not happen.
  `lro-hang` does not settle and keeps the resource busy (409 AnotherOperationInProgress): for
  ever, or for `lro_hang_seconds` when set (a stuck provider that finally finishes, Succeeded).
* An operation settles after `lro_polls` InProgress answers or `lro_seconds`, whichever is first,
  so a client that never polls does not leave a resource busy for ever.
* Request faults (429/500/503/reset) are decided before the request is looked at, so they never
  change state; `reset-after` drops the connection after a write was applied and saved.

The parts, one concept each: routing.py (route tables), reads.py, writes.py (PUT/PATCH/DELETE),
lro.py (operations), power.py (VM power state), graph_service.py (Resource Graph),
persistence.py (+ store.py), model.py (the sandbox's own resource model and composition),
profiles.py (how each provider answers), request.py (a request and ARM's error shape)."""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import schema
from .faults import ConnectionReset, Faults, Throttle
from .graph_service import GraphService
from .power import FEATURES, take_platform_state
from .request import JSON, Reply, Request, arm_error
from .routing import Router
from .store import clone, ingest, parse, strip_composed
from .throttle import ArmThrottle, Tally


class Sandbox(Router, GraphService):
    """An embedded stand-in for Azure Resource Manager (product.md §2).

    `estate` is "reference", "scale:N", an estate file path, or a list of ARM resources; it is
    used only when the state dir holds no state yet (or on `reset`). `read_only` refuses every
    write with 403. Keyword knobs for tests: `page_size`, `lro_polls`, `lro_seconds`, `lro_hang_seconds`,
    `retry_after` (on monitors), `reads_per_hour`/`writes_per_hour`/`throttle_window`, `clock`,
    `graph_lag_ms` (how long a write takes to show in Resource Graph; 0 here, 300 in `serve`)."""

    def __init__(self, state_dir: Path | None = None, estate: str | list[dict[str, Any]] | None = "reference", *,
                 latency_ms: int = 0, faults: str | None = None, read_only: bool = False, seed: int = 0,
                 page_size: int = 100, lro_polls: int = 1, lro_seconds: float = 1.0, retry_after: int = 0,
                 lro_hang_seconds: float | None = None, fault_retry_after: int = 1, reads_per_hour: int | None = None, writes_per_hour: int | None = None,
                 throttle_window: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 snapshot_threshold: int = 5000, compact_every: int = 1000, graph_lag_ms: int = 0,
                 throttle: str = "off") -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.latency_ms = max(0, int(latency_ms))
        self.faults = Faults.parse(faults, seed)
        self.read_only = read_only
        self.page_size = max(1, int(page_size))
        self.lro_polls = max(0, int(lro_polls))
        self.lro_seconds = lro_seconds
        self.lro_hang_seconds = lro_hang_seconds
        self.retry_after = retry_after
        self.fault_retry_after = fault_retry_after
        self.clock = clock  # the throttle buckets' and Resource Graph's lag; a test may pass its own
        # the classic hourly buckets, only when a test sets them (None: unlimited)
        self.throttle = Throttle(reads_per_hour or 10**12, writes_per_hour or 10**12, throttle_window, clock)
        # `throttle="arm"`: ARM's 2024 buckets and provider limits (throttle.py) answer instead
        self.arm_throttle = ArmThrottle(self._region_of, clock) if throttle == "arm" else None
        self.tally = Tally()  # what `serve` reports on exit
        # (method, path, status) of recent requests, for tests; never headers, bodies or tokens
        self.request_log: deque[tuple[str, str, int]] = deque(maxlen=100_000)
        self._lock = threading.RLock()
        self._dirty = False
        self.snapshot_threshold = snapshot_threshold
        self.compact_every = max(1, compact_every)
        self._seq = 0
        self._log_records = 0
        self._ops_changed: set[str] = set()
        self._graph_cache: dict[Any, tuple[int, list[str]]] = {}
        self.graph_lag = max(0, int(graph_lag_ms)) / 1000.0
        self._graph_shadow = {}
        self.ops: dict[str, dict[str, Any]] = {}
        self.power: dict[str, str] = {}
        self.features: dict[str, dict[str, str]] = {}
        self.schema_stats = schema.Stats()  # read-only/unknown body properties seen
        loaded = self._load()
        if not loaded:
            self.tenant_id = str(uuid.uuid4())
            self.principals = {
                "owner": {"token": secrets.token_urlsafe(32), "object_id": str(uuid.uuid4())},
                "reader": {"token": secrets.token_urlsafe(32), "object_id": str(uuid.uuid4())},
            }
            resources, self.power, self.features = take_platform_state(_resolve_estate(estate))
            self.store = ingest(resources, self.tenant_id)
            self._store_replaced()
            self._save(full=True)

    # ---- identity ----------------------------------------------------------------------
    @property
    def token(self) -> str:
        return str(self.principals["owner"]["token"])

    @property
    def reader_token(self) -> str:
        return str(self.principals["reader"]["token"])

    def __repr__(self) -> str:  # never show tokens
        return f"Sandbox(state_dir={self.state_dir!s}, resources={len(self.store)})"

    def reset(self, estate: str | list[dict[str, Any]] | None = "reference") -> None:
        """Replace the estate (tokens and tenant are kept) and save."""
        resources, power, features = take_platform_state(_resolve_estate(estate))
        with self._lock:
            self.store = ingest(resources, self.tenant_id)
            self._store_replaced()
            self._graph_cache = {}
            self.ops = {}
            self.power, self.features = power, features
            self._save(full=True)

    def export(self) -> list[dict[str, Any]]:
        """The estate as an estate file: resource groups and every resource as ARM returns it,
        children (subnets, rules, routes, peerings, extensions) as entries of their own and not
        inline in their parents, so nothing appears twice; a VM that is not running carries its
        power state in `properties.instanceView`, and registered features are entries of their
        own. Loads back into an equal estate."""
        with self._lock:
            out = []
            for e in sorted(self.store, key=lambda e: e["id"].lower()):
                if not parse(e["id"]).subscription:
                    continue  # management-group policy objects are the tenant's, not the estate's
                e = clone(e)
                code = self.power.get(e["id"].lower())
                if code and isinstance(e.get("properties"), dict):
                    e["properties"]["instanceView"] = {"statuses": [{"code": code}]}
                out.append(e)
            for sub, feats in sorted(self.features.items()):
                sid = self.store.subscriptions.get(sub, {}).get("subscriptionId", sub)
                for feature, state in sorted(feats.items()):
                    ns, _, name = FEATURES.get(feature, feature).partition("/")
                    # no "type": an estate file's id decides it, and this id names no resource type
                    out.append({"id": f"/subscriptions/{sid}/providers/Microsoft.Features/providers/{ns}/features/{name}",
                                "name": f"{ns}/{name}", "properties": {"state": state}})
            return out

    def transport(self) -> Any:
        """An azure-core transport that routes every request to `handle` in-process."""
        from .transport import make_transport

        return make_transport(self.handle)

    # ---- the protocol ------------------------------------------------------------------
    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        ctx = Request(method, url, headers, body)
        reset_after = False
        with self._lock:
            try:
                status, out_headers, payload, reset_after = self._dispatch(ctx)
            except ConnectionReset:
                self.request_log.append((ctx.method, ctx.path, 0))
                raise
            self.request_log.append((ctx.method, ctx.path, status))
            self.tally.count(ctx.method, ctx.path, status)
        if reset_after:
            raise ConnectionReset("fault injection: connection reset after the write")
        return status, out_headers, payload

    def _dispatch(self, ctx: Request) -> tuple[int, dict[str, str], bytes, bool]:
        base = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}
        reset_after = False
        try:
            self._authenticate(ctx)
            if not ctx.api_version:
                raise arm_error(400, "MissingApiVersionParameter",
                             "The api-version query parameter (?api-version=) is required for all requests.")
            refusal = schema.api_version_refusal(ctx.method, ctx.path, ctx.api_version)
            if refusal:
                raise arm_error(*refusal)
            fault = self.faults.for_request() if self.faults else None
            if fault == "reset":
                raise ConnectionReset("fault injection: connection reset")
            if fault == "429":
                raise arm_error(429, "TooManyRequests", "The request is being throttled (fault injection).",
                             {"Retry-After": str(self.fault_retry_after)})
            if fault == "500":
                raise arm_error(500, "InternalServerError", "Encountered internal server error (fault injection).")
            if fault == "503":
                raise arm_error(503, "ServiceUnavailable", "The service is temporarily unavailable (fault injection).")
            reset_after = fault == "reset-after"
            base.update(self._admit(ctx))
            self._settle_due()
            reply = self._route(ctx)
            reset_after = reset_after and ctx.dirty
        except Reply as r:
            reply = r
            reset_after = False
        except ConnectionReset:
            raise
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must not leave a half-applied write
            if self.state_path is not None and self.state_path.exists():
                self._load()
                ctx.dirty = self._dirty = False
            reply = arm_error(500, "InternalServerError",
                           f"The sandbox failed on this request ({type(exc).__name__}); nothing was changed.")
            reset_after = False
        if self._dirty or ctx.dirty:
            try:
                self._save()
            except OSError as exc:
                # not durable means not done: go back to what the disk holds and say so
                self._load()
                reply = arm_error(500, "InternalServerError", f"The sandbox could not save its state ({exc.strerror}); "
                               "the request was not applied.")
                reset_after = False
            self._dirty = False
        headers = dict(base)
        headers.update(reply.headers)
        if reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode()
            headers["Content-Type"] = JSON
        headers["Content-Length"] = str(len(payload))
        return reply.status, headers, payload, reset_after

    def _authenticate(self, ctx: Request) -> None:
        auth = ctx.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            for name, principal in self.principals.items():
                if hmac.compare_digest(token.strip().encode(), str(principal["token"]).encode()):
                    ctx.principal = principal["object_id"]
                    ctx.reader = name == "reader"
                    return
        challenge = (f'Bearer authorization_uri="https://login.microsoftonline.com/{self.tenant_id}", '
                     'error="invalid_token", error_description="The access token is missing or invalid."')
        msg = ("Authentication failed. The 'Authorization' header is missing." if not auth
               else "Authentication failed. The access token is invalid.")
        raise arm_error(401, "AuthenticationFailed", msg, {"WWW-Authenticate": challenge})

    def _region_of(self, path: str) -> str:
        """The location of the top-level resource a request addresses ('' when none)."""
        segs = [s for s in path.split("/") if s]
        low = [s.lower() for s in segs]
        if "providers" not in low:
            return ""
        at = low.index("providers")
        entry = self.store.get("/" + "/".join(segs[:at + 4])) if len(segs) >= at + 4 else None
        return str((entry or {}).get("location") or "").lower()

    def _admit(self, ctx: Request) -> dict[str, str]:
        if self.arm_throttle is not None:
            verdict = self.arm_throttle.admit(ctx.method, ctx.path, ctx.principal)
            if verdict.retry_after is not None:
                extra = {"Retry-After": str(verdict.retry_after)} if verdict.retry_after else {}
                raise arm_error(429, "TooManyRequests" if extra else "RateLimiting", verdict.message,
                                {**verdict.headers, **extra})
            return verdict.headers
        reads = ctx.method in ("GET", "HEAD") or ctx.path.lower() == "/providers/microsoft.resourcegraph/resources"
        sub = parse(ctx.path).subscription if ctx.path.lower().startswith("/subscriptions/") else None
        wait, headers = self.throttle.admit(sub, ctx.principal, "reads" if reads else "writes")
        if wait:
            raise arm_error(429, "TooManyRequests",
                         f"Number of {'read' if reads else 'write'} requests for subscription '{sub or ''}' "
                         f"exceeded the limit. Retry after {wait} seconds.", {"Retry-After": str(wait)})
        return headers


def _resolve_estate(estate: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if estate is None:
        return []
    if isinstance(estate, list):
        return estate
    from .estates import load_estate  # the reference estate, scale:N and estate files

    return load_estate(estate)


__all__ = ["Sandbox", "ConnectionReset", "strip_composed"]
