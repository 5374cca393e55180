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
  change state; `reset-after` drops the connection after a write was applied and saved."""

from __future__ import annotations

import bisect
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..errors import UsageError
from . import graph, management, schema
from .faults import ConnectionReset, Faults, Throttle
from .store import (
    INLINE_CHILDREN,
    READ_ONLY_INLINE,
    RG_TYPE,
    Store,
    _holder,
    atomic_write_json,
    clone,
    ingest,
    key,
    new_etag,
    normalize_entry,
    parse,
    strip_composed,
)
from .throttle import ArmThrottle, Tally

STATE_FORMAT = "ztwizard.sandbox/v1"
JSON = "application/json; charset=utf-8"

DEFAULT_RULES = [
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork",
     "Allow inbound traffic from all VMs in VNET"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*",
     "Allow inbound traffic from azure load balancer"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork",
     "Allow outbound traffic from all VMs to all VMs in VNET"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet",
     "Allow outbound traffic from all VMs to Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"),
]

# Extension resources: they attach to a scope (here, a resource group) rather than live in it.
EXTENSION_TYPES = {"microsoft.authorization/roleassignments", "microsoft.authorization/policyassignments",
                   "microsoft.authorization/locks", "microsoft.insights/diagnosticsettings",
                   "microsoft.resources/deployments"}
# Collections ARM answers in one piece (their SDK models have no nextLink).
UNPAGED = {"microsoft.security/pricings", "microsoft.insights/diagnosticsettings"}
VM_ACTIONS = {"deallocate": "PowerState/deallocated", "poweroff": "PowerState/stopped",
              "start": "PowerState/running", "restart": "PowerState/running"}


class _Reply(Exception):
    """Raised inside the router to answer at once (errors, mostly)."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, {"error": {"code": code, "message": message}}, headers)


class _Ctx:
    """One request, parsed."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        parts = urlsplit(url)
        self.method = method.upper()
        self.host = f"{parts.scheme}://{parts.netloc}"
        self.path = "/" + unquote(parts.path).strip("/")
        self.query = {k.lower(): v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body or b""
        self.principal = ""
        self.reader = False

    @property
    def api_version(self) -> str:
        return self.query.get("api-version", "")

    def json(self) -> Any:
        try:
            data = json.loads(self.body.decode("utf-8") if self.body else "{}")
        except (UnicodeDecodeError, ValueError) as exc:
            raise _error(400, "InvalidRequestContent",
                         f"The request content was invalid and could not be deserialized: '{exc}'.") from exc
        return data


# Extension resources that ARM lists for a whole subscription, wherever they sit in it
# (assessments of a VM or a subnet come back from GET /subscriptions/{s}/…/assessments).
SCOPE_WIDE_LISTS = {"microsoft.security/assessments"}
# Read-only properties ARM computes and keeps across PUTs that omit them (`size`: a firewall
# policy's and a rule collection group's; no type here has a writable properties.size).
SERVER_COMPUTED = ("resourceGuid", "creationTime", "timeCreated", "uniqueId", "vmId", "size")


# Defender plans exist on every subscription, on the Free tier until someone chooses otherwise.
DEFENDER_PLANS = ("VirtualMachines", "StorageAccounts", "CloudPosture", "Arm", "AppServices", "SqlServers",
                  "SqlServerVirtualMachines", "OpenSourceRelationalDatabases", "CosmosDbs", "Containers",
                  "KeyVaults", "Dns", "Api", "AI")


def _platform_default(path: str) -> dict[str, Any] | None:
    """What ARM returns for a resource that exists implicitly (a Free Defender plan)."""
    p = parse(path)
    if p.type.lower() == "microsoft.security/pricings" and p.resource_group is None and p.subscription:
        name = next((n for n in DEFENDER_PLANS if n.lower() == p.name.lower()), None)
        if name:
            return {"id": f"/subscriptions/{p.subscription}/providers/Microsoft.Security/pricings/{name}",
                    "name": name, "type": "Microsoft.Security/pricings",
                    "properties": {"pricingTier": "Free", "freeTrialRemainingTime": "PT0S"}}
    return None


class Sandbox:
    """An embedded stand-in for Azure Resource Manager (product.md §2).

    `estate` is "reference", "scale:N", an estate file path, or a list of ARM resources; it is
    used only when the state dir holds no state yet (or on `reset`). `read_only` refuses every
    write with 403. Keyword knobs for tests: `page_size`, `lro_polls`, `lro_seconds`, `lro_hang_seconds`,
    `retry_after` (on monitors), `reads_per_hour`/`writes_per_hour`/`throttle_window`, `clock`."""

    def __init__(self, state_dir: Path | None = None, estate: str | list[dict[str, Any]] | None = "reference", *,
                 latency_ms: int = 0, faults: str | None = None, read_only: bool = False, seed: int = 0,
                 page_size: int = 100, lro_polls: int = 1, lro_seconds: float = 1.0, retry_after: int = 0,
                 lro_hang_seconds: float | None = None, fault_retry_after: int = 1, reads_per_hour: int | None = None, writes_per_hour: int | None = None,
                 throttle_window: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 snapshot_threshold: int = 5000, compact_every: int = 1000, throttle: str = "off") -> None:
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
        self.ops: dict[str, dict[str, Any]] = {}
        self.power: dict[str, str] = {}
        self.schema_stats = schema.Stats()  # read-only/unknown body properties seen
        loaded = self._load()
        if not loaded:
            self.tenant_id = str(uuid.uuid4())
            self.principals = {
                "owner": {"token": secrets.token_urlsafe(32), "object_id": str(uuid.uuid4())},
                "reader": {"token": secrets.token_urlsafe(32), "object_id": str(uuid.uuid4())},
            }
            self.store = ingest(_resolve_estate(estate), self.tenant_id)
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

    # ---- persistence -------------------------------------------------------------------
    @property
    def state_path(self) -> Path | None:
        return self.state_dir / "sandbox" / "state.json" if self.state_dir else None

    @property
    def log_path(self) -> Path | None:
        return self.state_dir / "sandbox" / "state.log" if self.state_dir else None

    def _load(self) -> bool:
        path = self.state_path
        if path is None or not path.exists():
            return False
        try:
            data = json.loads(path.read_text())
            if data.get("format") != STATE_FORMAT:
                raise ValueError("unknown format")
            self.tenant_id = data["tenant_id"]
            self.principals = data["principals"]
            self.store = Store.from_snapshot(data)
            self.ops = data.get("ops", {})
            self.power = data.get("power", {})
            self._seq = int(data.get("seq", 0))
            self._log_records = 0
            self._graph_cache = {}
            self._replay()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"The sandbox state {path} is unreadable ({exc}).",
                             hint="Run `ztwizard sandbox reset` to start from a fresh estate.") from exc
        self.store.changed.clear()
        return True

    def _replay(self) -> None:
        """Apply the write log over the snapshot. A torn last line is a write that was never
        acknowledged (the answer waits for the fsync), so it is dropped."""
        log = self.log_path
        if log is None or not log.exists():
            return
        for line in log.read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if rec["seq"] <= self._seq:
                continue
            for entry in rec["put"]:
                self.store.put(entry)
            for k in rec["del"]:
                self.store.delete(k)
            self.ops.update(rec["ops"])
            self.power = rec["power"]
            self._seq = rec["seq"]
            self._log_records += 1

    def _save(self, full: bool = False) -> None:
        """Make every change durable before the answer leaves. Small estates rewrite the whole
        state file (atomic: temp file, fsync, rename); large ones append the changed entries to
        `state.log` (fsync) and fold it into the state file every `compact_every` writes."""
        path, log = self.state_path, self.log_path
        if path is None or log is None:
            self.store.changed.clear()
            return
        self._seq += 1
        if full or len(self.store) <= self.snapshot_threshold or self._log_records >= self.compact_every:
            finished = [k for k, op in self.ops.items() if op["status"] != "InProgress"]
            for k in finished[:-2000]:
                del self.ops[k]
            data = {"format": STATE_FORMAT, "seq": self._seq, "tenant_id": self.tenant_id,
                    "principals": self.principals, **self.store.snapshot(), "ops": self.ops, "power": self.power}
            atomic_write_json(path, data)
            log.unlink(missing_ok=True)
            self._log_records = 0
        else:
            changed = self.store.changed
            rec = {"seq": self._seq,
                   "put": [self.store.entries[k] for k in sorted(changed) if k in self.store.entries],
                   "del": [k for k in sorted(changed) if k not in self.store.entries],
                   "ops": {i: self.ops[i] for i in sorted(self._ops_changed) if i in self.ops},
                   "power": self.power}
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, json.dumps(rec, separators=(",", ":")).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._log_records += 1
        self.store.changed.clear()
        self._ops_changed.clear()

    def reset(self, estate: str | list[dict[str, Any]] | None = "reference") -> None:
        """Replace the estate (tokens and tenant are kept) and save."""
        resources = _resolve_estate(estate)
        with self._lock:
            self.store = ingest(resources, self.tenant_id)
            self._graph_cache = {}
            self.ops = {}
            self.power = {}
            self._save(full=True)

    def export(self) -> list[dict[str, Any]]:
        """The estate as an estate file: resource groups and every resource as ARM returns it,
        children (subnets, rules, routes, peerings, extensions) as entries of their own and not
        inline in their parents, so nothing appears twice. Loads back into an equal estate."""
        with self._lock:
            return [clone(e) for e in sorted(self.store, key=lambda e: e["id"].lower())]

    def transport(self) -> Any:
        """An azure-core transport that routes every request to `handle` in-process."""
        from .transport import make_transport

        return make_transport(self.handle)

    # ---- the protocol ------------------------------------------------------------------
    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        ctx = _Ctx(method, url, headers, body)
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

    def _dispatch(self, ctx: _Ctx) -> tuple[int, dict[str, str], bytes, bool]:
        base = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}
        reset_after = False
        dirty = [False]
        try:
            self._authenticate(ctx)
            if not ctx.api_version:
                raise _error(400, "MissingApiVersionParameter",
                             "The api-version query parameter (?api-version=) is required for all requests.")
            refusal = schema.api_version_refusal(ctx.method, ctx.path, ctx.api_version)
            if refusal:
                raise _error(*refusal)
            fault = self.faults.for_request() if self.faults else None
            if fault == "reset":
                raise ConnectionReset("fault injection: connection reset")
            if fault == "429":
                raise _error(429, "TooManyRequests", "The request is being throttled (fault injection).",
                             {"Retry-After": str(self.fault_retry_after)})
            if fault == "500":
                raise _error(500, "InternalServerError", "Encountered internal server error (fault injection).")
            if fault == "503":
                raise _error(503, "ServiceUnavailable", "The service is temporarily unavailable (fault injection).")
            reset_after = fault == "reset-after"
            base.update(self._admit(ctx))
            self._settle_due()
            reply = self._route(ctx, dirty)
            reset_after = reset_after and dirty[0]
        except _Reply as r:
            reply = r
            reset_after = False
        except ConnectionReset:
            raise
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must not leave a half-applied write
            if self.state_path is not None and self.state_path.exists():
                self._load()
                dirty[0] = self._dirty = False
            reply = _error(500, "InternalServerError",
                           f"The sandbox failed on this request ({type(exc).__name__}); nothing was changed.")
            reset_after = False
        if self._dirty or dirty[0]:
            try:
                self._save()
            except OSError as exc:
                # not durable means not done: go back to what the disk holds and say so
                self._load()
                reply = _error(500, "InternalServerError", f"The sandbox could not save its state ({exc.strerror}); "
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

    def _authenticate(self, ctx: _Ctx) -> None:
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
        raise _error(401, "AuthenticationFailed", msg, {"WWW-Authenticate": challenge})

    def _region_of(self, path: str) -> str:
        """The location of the top-level resource a request addresses ('' when none)."""
        segs = [s for s in path.split("/") if s]
        low = [s.lower() for s in segs]
        if "providers" not in low:
            return ""
        at = low.index("providers")
        entry = self.store.get("/" + "/".join(segs[:at + 4])) if len(segs) >= at + 4 else None
        return str((entry or {}).get("location") or "").lower()

    def _admit(self, ctx: _Ctx) -> dict[str, str]:
        if self.arm_throttle is not None:
            verdict = self.arm_throttle.admit(ctx.method, ctx.path, ctx.principal)
            if verdict.retry_after is not None:
                extra = {"Retry-After": str(verdict.retry_after)} if verdict.retry_after else {}
                raise _error(429, "TooManyRequests" if extra else "RateLimiting", verdict.message,
                             {**verdict.headers, **extra})
            return verdict.headers
        reads = ctx.method in ("GET", "HEAD") or ctx.path.lower() == "/providers/microsoft.resourcegraph/resources"
        sub = parse(ctx.path).subscription if ctx.path.lower().startswith("/subscriptions/") else None
        wait, headers = self.throttle.admit(sub, ctx.principal, "reads" if reads else "writes")
        if wait:
            raise _error(429, "TooManyRequests",
                         f"Number of {'read' if reads else 'write'} requests for subscription '{sub or ''}' "
                         f"exceeded the limit. Retry after {wait} seconds.", {"Retry-After": str(wait)})
        return headers

    # ---- routing -----------------------------------------------------------------------
    def _route(self, ctx: _Ctx, dirty: list[bool]) -> _Reply:
        segs = [s for s in ctx.path.split("/") if s]
        low = [s.lower() for s in segs]
        if low[:2] == ["sandbox", "operations"] and len(low) == 3 and ctx.method == "GET":
            return self._monitor(ctx, segs[2], dirty)
        if low == ["providers", "microsoft.resourcegraph", "resources"] and ctx.method == "POST":
            return self._graph(ctx)
        if low[:3] == ["providers", "microsoft.management", "managementgroups"] and ctx.method == "GET":
            return self._management_group(segs[3:])
        if not low or low[0] != "subscriptions":
            raise _error(404, "NotFound", f"No route for '{ctx.path}'.")
        if len(low) == 1:
            if ctx.method != "GET":
                raise self._method_not_allowed(ctx)
            subs = sorted(self.store.subscriptions.values(), key=lambda s: s["subscriptionId"].lower())
            return self._page(ctx, [clone(s) for s in subs], key_of=lambda s: s["id"].lower())
        sub = self.store.subscriptions.get(low[1])
        if sub is None:
            raise _error(404, "SubscriptionNotFound", f"The subscription '{segs[1]}' could not be found.")
        if len(low) == 2:
            if ctx.method != "GET":
                raise self._method_not_allowed(ctx)
            return _Reply(200, clone(sub))
        if "providers" in low:
            return self._provider_route(ctx, segs, low, dirty)
        if len(low) == 3 and low[2] == "resourcegroups" and ctx.method == "GET":
            rgs = [clone(e) for e in self.store.resource_groups(segs[1])]
            return self._page(ctx, rgs, key_of=lambda e: e["id"].lower())
        if len(low) == 3 and low[2] == "resources" and ctx.method == "GET":
            return self._generic_list(ctx, f"/subscriptions/{segs[1]}")
        if len(low) == 4 and low[2] == "resourcegroups":
            return self._resource_group(ctx, segs, dirty)
        if len(low) == 5 and low[2] == "resourcegroups" and low[4] == "resources" and ctx.method == "GET":
            self._require_rg(segs[1], segs[3])
            return self._generic_list(ctx, f"/subscriptions/{segs[1]}/resourceGroups/{segs[3]}")
        raise _error(404, "NotFound", f"No route for '{ctx.path}'.")

    def _method_not_allowed(self, ctx: _Ctx) -> _Reply:
        return _error(405, "MethodNotAllowed", f"The requested method '{ctx.method}' is not allowed on '{ctx.path}'.")

    def _provider_route(self, ctx: _Ctx, segs: list[str], low: list[str], dirty: list[bool]) -> _Reply:
        last = max(i for i, s in enumerate(low) if s == "providers")
        if len(low) >= 4 and low[2] == "resourcegroups":
            self._require_rg(segs[1], segs[3])
        scope = "/" + "/".join(segs[:last])
        rest = segs[last + 1:]
        if len(rest) < 2:
            raise _error(404, "NotFound", f"No route for '{ctx.path}'.")
        ns, tail = rest[0], rest[1:]
        self._default_services(segs, low, dirty)
        if len(tail) % 2 == 1:
            if ctx.method == "POST" and len(tail) >= 3:
                return self._action(ctx, "/" + "/".join(segs[:-1]), segs[-1], dirty)
            if ctx.method == "GET" and len(tail) >= 3 and tail[-1].lower() == "instanceview":
                return self._instance_view(ctx, "/" + "/".join(segs[:-1]))
            if ctx.method != "GET":
                raise self._method_not_allowed(ctx)
            rtype = "/".join([ns, *tail[0::2]])
            parent = scope if len(tail) == 1 else "/".join([scope, "providers", ns, *tail[:-1]])
            return self._list(ctx, parent, rtype, child=len(tail) > 1)
        # `locations/{region}` (JIT policies, for one) is a path segment, never a resource
        if len(tail) > 2 and tail[-4].lower() != "locations" and self.store.get("/" + "/".join(segs[:-2])) is None:
            pid = "/" + "/".join(segs[:-2])
            if ctx.method in ("PUT", "PATCH"):
                raise _error(404, "ParentResourceNotFound",
                             f"Can not perform requested operation on nested resource. Parent resource "
                             f"'{parse(pid).name}' not found.")
            raise self._not_found(pid)
        if len(tail) == 2 and scope.count("/") > 4 and self.store.get(scope) is None \
                and parse(scope).type != RG_TYPE:
            raise self._not_found(scope)
        if ctx.method in ("GET", "HEAD"):
            entry = self.store.get(ctx.path)
            if entry is None:
                default = _platform_default(ctx.path)
                if default is not None:
                    return _Reply(200, default)
                raise self._not_found(ctx.path)
            if ctx.method == "HEAD":
                return _Reply(204)
            out = self.compose(entry)
            if ctx.query.get("$expand", "").lower() == "instanceview" and entry["type"].lower() == \
                    "microsoft.compute/virtualmachines":
                out.setdefault("properties", {})["instanceView"] = self._vm_instance_view(entry)
            return _Reply(200, out)
        if ctx.method in ("PUT", "PATCH"):
            return self._write(ctx, dirty)
        if ctx.method == "DELETE":
            return self._delete(ctx, dirty)
        raise self._method_not_allowed(ctx)

    def _default_services(self, segs: list[str], low: list[str], dirty: list[bool]) -> None:
        """Every storage account has blobServices/default and fileServices/default in ARM, even
        if nobody wrote them: make them on first touch, with ARM's defaults."""
        try:
            at = low.index("microsoft.storage")
        except ValueError:
            return
        if low[at + 1:at + 2] != ["storageaccounts"] or len(low) < at + 4:
            return
        service = low[at + 3]
        if service not in ("blobservices", "fileservices") or (len(low) > at + 4 and low[at + 4] != "default"):
            return
        account = self.store.get("/" + "/".join(segs[:at + 3]))
        if account is None:
            return
        sid = f"{account['id']}/{'blobServices' if service == 'blobservices' else 'fileServices'}/default"
        if self.store.get(sid) is not None:
            return
        kind = (account.get("kind") or "StorageV2").lower()
        if (service == "blobservices" and kind == "filestorage") or \
                (service == "fileservices" and kind == "blobstorage"):
            return
        props: dict[str, Any] = {"cors": {"corsRules": []}}
        if service == "blobservices":
            props["deleteRetentionPolicy"] = {"allowPermanentDelete": False, "enabled": False}
        else:
            props["shareDeleteRetentionPolicy"] = {"enabled": True, "days": 7}
        entry = normalize_entry({"id": sid, "sku": clone(account.get("sku")), "properties": props})
        if entry["sku"] is None:
            entry.pop("sku")
        self.store.put(entry)
        dirty[0] = True

    def _require_rg(self, sub: str, rg: str) -> None:
        if self.store.get(f"/subscriptions/{sub}/resourceGroups/{rg}") is None:
            raise _error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")

    def _not_found(self, resource_id: str) -> _Reply:
        parts = resource_id.strip("/").split("/")
        low = [x.lower() for x in parts]
        at = max((i for i, x in enumerate(low) if x == "providers"), default=-1)
        shown = "/".join(parts[at + 1:]) if at >= 0 else resource_id
        rg = parse(resource_id).resource_group
        where = f" under resource group '{rg}'" if rg else ""
        return _error(404, "ResourceNotFound", f"The Resource '{shown}'{where} was not found. "
                      "For more details please go to https://aka.ms/ARMResourceNotFoundFix")

    # ---- reading -----------------------------------------------------------------------
    def compose(self, entry: dict[str, Any], *, for_graph: bool = False) -> dict[str, Any]:
        """The resource as ARM returns it: inline children and the back-references ARM keeps.
        A shallow copy (top level and `properties`): it is serialised at once, under the lock."""
        out = dict(entry)
        if isinstance(out.get("properties"), dict):
            out["properties"] = dict(out["properties"])
        t = out["type"].lower()
        for path, seg in INLINE_CHILDREN.get(t, []):
            if for_graph and (t, path) in READ_ONLY_INLINE:
                continue
            kids = self.store.children(entry["id"], f"{entry['type']}/{seg}")
            if not kids and (t, path) in READ_ONLY_INLINE:
                continue
            holder: Any = out
            parts = path.split(".")
            for p in parts[:-1]:
                holder = holder.setdefault(p, {})
            holder[parts[-1]] = [self.compose(k) for k in kids]
        if t == "microsoft.network/virtualnetworks/virtualnetworkpeerings":
            state = self._peering_state(entry)
            if state:
                out["properties"]["peeringState"] = state
                out["properties"]["peeringSyncLevel"] = "FullyInSync" if state == "Connected" else "RemoteNotInSync"
        if t == "microsoft.network/firewallpolicies":
            groups = self.store.children(entry["id"], f"{entry['type']}/ruleCollectionGroups")
            if groups:  # ARM lists the groups by reference only
                out.setdefault("properties", {})["ruleCollectionGroups"] = [{"id": g["id"]} for g in groups]
        if t in ("microsoft.network/networksecuritygroups", "microsoft.network/routetables"):
            props = out.setdefault("properties", {})
            subnets, nics = [], []
            for k in self.store.referrers(entry["id"]):
                ref = self.store.entries.get(k)
                if ref is None:
                    continue
                if ref["type"].lower() == "microsoft.network/virtualnetworks/subnets":
                    subnets.append({"id": ref["id"]})
                elif ref["type"].lower() == "microsoft.network/networkinterfaces":
                    nics.append({"id": ref["id"]})
            if subnets:
                props["subnets"] = subnets
            if nics and t == "microsoft.network/networksecuritygroups":
                props["networkInterfaces"] = nics
            if t == "microsoft.network/networksecuritygroups":
                props["defaultSecurityRules"] = self._default_rules(entry)
        return out

    def _peering_state(self, peering: dict[str, Any]) -> str | None:
        """ARM's view of a peering: Connected when the remote VNet peers back, Initiated while it
        does not, Disconnected once the remote VNet is gone. None for a remote outside the sandbox's
        subscriptions (the stored state stands)."""
        remote = ((peering.get("properties") or {}).get("remoteVirtualNetwork") or {}).get("id")
        if not isinstance(remote, str) or not isinstance(peering.get("properties"), dict):
            return None
        if (parse(remote).subscription or "").lower() not in self.store.subscriptions:
            return None
        if self.store.get(remote) is None:
            return "Disconnected"
        home = key(parse(peering["id"]).parent or "")
        for back in self.store.children(remote, "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"):
            target = ((back.get("properties") or {}).get("remoteVirtualNetwork") or {}).get("id")
            if isinstance(target, str) and key(target) == home:
                return "Connected"
        return "Initiated"

    def _default_rules(self, nsg: dict[str, Any]) -> list[dict[str, Any]]:
        rules = []
        for name, prio, direction, access, src, dst, desc in DEFAULT_RULES:
            rules.append({
                "id": f"{nsg['id']}/defaultSecurityRules/{name}", "name": name, "etag": nsg.get("etag"),
                "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
                "properties": {"provisioningState": "Succeeded", "description": desc, "protocol": "*",
                               "sourcePortRange": "*", "destinationPortRange": "*",
                               "sourceAddressPrefix": src, "destinationAddressPrefix": dst, "access": access,
                               "priority": prio, "direction": direction, "sourcePortRanges": [],
                               "destinationPortRanges": [], "sourceAddressPrefixes": [],
                               "destinationAddressPrefixes": []},
            })
        return rules

    def _page(self, ctx: _Ctx, items: list[dict[str, Any]], *, key_of: Callable[[dict[str, Any]], str],
              paged: bool = True) -> _Reply:
        """One page of a list, in id order, with an opaque `$skiptoken` that survives inserts."""
        if not paged:
            return _Reply(200, {"value": items})
        start = ctx.query.get("$skiptoken")
        if start:
            try:
                after = graph.decode_token(start)
            except graph.InvalidQuery as exc:
                raise _error(400, "InvalidSkipToken", str(exc)) from exc
            items = [i for i in items if key_of(i) > after]
        page, more = items[: self.page_size], len(items) > self.page_size
        body: dict[str, Any] = {"value": page}
        if more:
            q = {k: v for k, v in ctx.query.items() if k != "$skiptoken"}
            q["$skiptoken"] = graph.encode_token(key_of(page[-1]))
            body["nextLink"] = f"{ctx.host}{quote(ctx.path)}?" + "&".join(
                f"{quote(k, safe='$-')}={quote(v, safe='')}" for k, v in q.items())
        return _Reply(200, body)

    def _list(self, ctx: _Ctx, parent: str, rtype: str, *, child: bool) -> _Reply:
        t = rtype.lower()
        p = parse(parent)
        if child or (p.type not in (RG_TYPE, "Microsoft.Resources/subscriptions")):
            if self.store.get(parent) is None and p.type != "Microsoft.Resources/subscriptions" \
                    and not p.type.lower().endswith("/locations"):
                raise self._not_found(parent)
        if t == "microsoft.authorization/roleassignments":
            entries = self._role_assignments(parent, at_scope="atscope()" in ctx.query.get("$filter", "").lower())
        elif p.type == "Microsoft.Resources/subscriptions" and not child:
            sub_key = key(parent)
            entries = []
            for k in self.store.of_type(rtype):
                e = self.store.entries[k]
                par = key(parse(e["id"]).parent or "")
                if par == sub_key or (par.startswith(sub_key + "/resourcegroups/") and par.count("/") == 4) \
                        or (t in SCOPE_WIDE_LISTS and par.startswith(sub_key + "/")):
                    entries.append(e)
        else:
            entries = self.store.children(parent, rtype)
        items = sorted((self.compose(e) for e in entries), key=lambda e: e["id"].lower())
        return self._page(ctx, items, key_of=lambda e: e["id"].lower(), paged=t not in UNPAGED)

    def _role_assignments(self, scope: str, *, at_scope: bool) -> list[dict[str, Any]]:
        s = key(scope)
        out = []
        for k in self.store.of_type("Microsoft.Authorization/roleAssignments"):
            e = self.store.entries[k]
            at = key(parse(e["id"]).parent or "/")
            above_or_at = s == at or s.startswith(at + "/")
            below = at.startswith(s + "/")
            if above_or_at or (below and not at_scope):
                out.append(e)
        return out

    def _generic_list(self, ctx: _Ctx, scope: str) -> _Reply:
        """`resources.list` / `list_by_resource_group`: top-level resources, `resourceType eq` honoured."""
        flt = ctx.query.get("$filter", "")
        wanted = None
        if "resourcetype eq" in flt.lower():
            wanted = flt.split("'")[1].lower() if "'" in flt else None
        # top-level resources are the direct children of their resource group in the index
        groups = [scope] if parse(scope).type == RG_TYPE else \
            [g["id"] for g in self.store.resource_groups(parse(scope).subscription or "")]
        items = []
        for e in (e for g in groups for e in self.store.children(g)):
            if e["type"].lower() in EXTENSION_TYPES or e["type"].lower().startswith("microsoft.security/"):
                continue  # extension resources on the group itself are not resources of the group
            if wanted and e["type"].lower() != wanted:
                continue
            items.append({str(k): clone(e.get(k)) for k in
                          ("id", "name", "type", "location", "tags", "sku", "kind", "identity") if k in e})
        items.sort(key=lambda e: e["id"].lower())
        return self._page(ctx, items, key_of=lambda e: str(e["id"]).lower())

    # ---- resource groups ---------------------------------------------------------------
    def _resource_group(self, ctx: _Ctx, segs: list[str], dirty: list[bool]) -> _Reply:
        rg_id = f"/subscriptions/{segs[1]}/resourceGroups/{segs[3]}"
        entry = self.store.get(rg_id)
        if ctx.method in ("GET", "HEAD"):
            if entry is None:
                raise _error(404, "ResourceGroupNotFound", f"Resource group '{segs[3]}' could not be found.")
            return _Reply(200 if ctx.method == "GET" else 204, clone(entry) if ctx.method == "GET" else None)
        self._authorize_write(ctx, "Microsoft.Resources/subscriptions/resourceGroups", rg_id)
        if ctx.method == "DELETE":
            if entry is None:
                raise _error(404, "ResourceGroupNotFound", f"Resource group '{segs[3]}' could not be found.")
            self._check_conditions(ctx, entry)
            before = self._snapshot([key(rg_id), *self.store.descendants(rg_id)])
            for k in list(before):
                self.store.delete(k)
            dirty[0] = True
            return self._start_op(ctx, key(rg_id), "location", before, delete=True)
        body = ctx.json()
        if not isinstance(body, dict):
            raise _error(400, "InvalidRequestContent", "The request content must be a JSON object.")
        if ctx.method == "PATCH":
            if entry is None:
                raise _error(404, "ResourceGroupNotFound", f"Resource group '{segs[3]}' could not be found.")
            new = _merge(clone(entry), body)
        else:
            if not body.get("location"):
                raise _error(400, "LocationRequired", "The location property is required for this definition.")
            new = clone(body)
        new.update({"id": entry["id"] if entry else rg_id, "name": segs[3], "type": RG_TYPE})
        new.setdefault("properties", {})["provisioningState"] = "Succeeded"
        new["etag"] = new_etag()
        self.store.put(new)
        dirty[0] = True
        return _Reply(201 if entry is None else 200, clone(new))

    # ---- writes ------------------------------------------------------------------------
    def _authorize_write(self, ctx: _Ctx, rtype: str, scope: str, action: str | None = None) -> None:
        if not (ctx.reader or self.read_only):
            return
        verb = action or ("delete" if ctx.method == "DELETE" else "write")
        oid = ctx.principal
        raise _error(403, "AuthorizationFailed",
                     f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
                     f"'{rtype}/{verb}' over scope '{scope}' or the scope is invalid. If access was recently "
                     "granted, please refresh your credentials.")

    def _check_conditions(self, ctx: _Ctx, entry: dict[str, Any] | None) -> None:
        if_match = ctx.headers.get("if-match")
        if_none = ctx.headers.get("if-none-match")
        failed = False
        if if_match is not None:
            if entry is None:
                failed = True
            elif if_match.strip() != "*":
                failed = _bare_etag(if_match) != _bare_etag(entry.get("etag") or "")
        if if_none is not None and entry is not None:
            failed = failed or if_none.strip() == "*" or _bare_etag(if_none) == _bare_etag(entry.get("etag") or "")
        if failed:
            raise _error(412, "PreconditionFailed",
                         "The condition specified using HTTP conditional header(s) is not met.")

    def _check_busy(self, resource_id: str) -> None:
        p = parse(resource_id)
        keys = {key(resource_id)}
        if p.parent:
            keys.add(key(p.parent))
        for op in self.ops.values():
            if op["status"] == "InProgress" and op["rid"] in keys:
                raise _error(409, "AnotherOperationInProgress",
                             f"Operation on '{resource_id}' cannot be performed because another operation "
                             f"({op['id']}) on '{op['rid']}' is still in progress.")

    def _snapshot(self, keys: list[str]) -> dict[str, Any]:
        return {k: clone(self.store.entries.get(k)) for k in keys}

    def _write(self, ctx: _Ctx, dirty: list[bool]) -> _Reply:
        existing = self.store.get(ctx.path)
        rid_ = existing["id"] if existing else ctx.path
        p = parse(rid_)
        self._authorize_write(ctx, p.type, rid_)
        self._check_conditions(ctx, existing)
        body = ctx.json()
        refusal = schema.body_refusal(ctx.method, p.type, ctx.api_version, body, self.schema_stats)
        if refusal:
            raise _error(*refusal)
        if ctx.method == "PATCH" and existing is None:
            raise self._not_found(ctx.path)
        self._check_busy(rid_)
        t = p.type.lower()
        provider = t.split("/")[0]
        # children given inline replace the child set; read-only inline lists are dropped
        child_sets: list[tuple[str, list[Any]]] = []
        for path, seg in INLINE_CHILDREN.get(t, []):
            holder, prop = _holder(body, path)
            if holder is None:
                continue
            kids = holder.pop(prop)
            if (t, path) not in READ_ONLY_INLINE and isinstance(kids, list):
                child_sets.append((seg, kids))
        if ctx.method == "PATCH":
            assert existing is not None
            new = _merge(clone(existing), body)
        else:
            new = clone(body)
            # ARM computes these; a PUT that leaves them out keeps them.
            for prop in SERVER_COMPUTED:
                kept = (existing or {}).get("properties", {}).get(prop) if isinstance(existing, dict) else None
                if kept is not None and isinstance(new.get("properties", {}), dict):
                    new.setdefault("properties", {}).setdefault(prop, kept)
        new["id"] = rid_
        new = normalize_entry(new)
        new["etag"] = new_etag()
        created = existing is None
        if created and provider == "microsoft.network" and t.count("/") == 1:
            new.setdefault("properties", {}).setdefault("resourceGuid", str(uuid.uuid4()))
        lro = self._lro_kind(t, ctx.method, created)
        tracked = provider in ("microsoft.network", "microsoft.compute", "microsoft.storage")
        if tracked:
            state = ("Creating" if created else "Updating") if lro else "Succeeded"
            new.setdefault("properties", {})["provisioningState"] = state
        touched = [key(rid_)]
        child_entries: list[dict[str, Any]] = []
        removed: list[str] = []
        for seg, kids in child_sets:
            listed = set()
            for kid in kids:
                if not isinstance(kid, dict) or not (kid.get("name") or kid.get("id")):
                    raise _error(400, "InvalidRequestContent", f"Every item of '{seg}' needs a name.")
                name = kid.get("name") or parse(kid["id"]).name
                child = clone(kid)
                child["id"] = f"{rid_}/{seg}/{name}"
                child = normalize_entry(child)
                child["etag"] = new_etag()
                if tracked:
                    child.setdefault("properties", {})["provisioningState"] = "Succeeded"
                child_entries.append(child)
                listed.add(key(child["id"]))
            for old in self.store.children(rid_, f"{p.type}/{seg}"):
                if key(old["id"]) not in listed:
                    removed.append(key(old["id"]))
                    removed.extend(self.store.descendants(old["id"]))
        parent_key = None
        if p.parent and _is_inline_child(p.type):
            parent_key = key(p.parent)
        old_links, new_links = _back_links(existing), _back_links(new)
        linked = sorted({k for links in (old_links, new_links) for k in links})
        before = self._snapshot(touched + [key(c["id"]) for c in child_entries] + removed
                                + ([parent_key] if parent_key else []) + linked)
        self.store.put(new)
        for c in child_entries:
            self.store.put(c)
        for k in removed:
            self.store.delete(k)
        if parent_key and parent_key in self.store.entries:
            parent = clone(self.store.entries[parent_key])
            parent["etag"] = new_etag()
            self.store.put(parent)
        self._relink(rid_, old_links, new_links, _BACK_LINK_PROP.get(t, ""))
        dirty[0] = True
        if lro is None:
            # Storage, Security and Insights answer 200 whether they created or not (their SDK
            # methods accept nothing else); the others say 201 Created.
            status = 201 if created and provider not in ("microsoft.security", "microsoft.insights",
                                                         "microsoft.storage") else 200
            return _Reply(status, self.compose(new))
        return self._start_op(ctx, key(rid_), lro, before, created=created)

    def _relink(self, owner_id: str, old: dict[str, str], new: dict[str, str], prop: str) -> None:
        """ARM keeps some references in both directions: a public IP's `ipConfiguration` names the
        NIC configuration that uses it, a NIC's `virtualMachine` the VM that holds it. Writing or
        deleting the owner updates the other side (and its etag)."""
        owner = owner_id.lower()
        for k in sorted(set(old) | set(new)):
            if old.get(k) == new.get(k):
                continue  # the owner did not change this link: the other side stays as it is
            target = self.store.entries.get(k)
            if target is None:
                continue
            current = ((target.get("properties") or {}).get(prop) or {}).get("id")
            if k in new:
                if current == new[k]:
                    continue
                updated = clone(target)
                updated.setdefault("properties", {})[prop] = {"id": new[k]}
            elif current and (current.lower() == owner or current.lower().startswith(owner + "/")):
                updated = clone(target)
                updated["properties"].pop(prop, None)
            else:
                continue
            updated["etag"] = new_etag()
            self.store.put(updated)

    def _lro_kind(self, t: str, method: str, created: bool) -> str | None:
        """How the resource provider answers this write (azure-sdk.md §2)."""
        provider = t.split("/")[0]
        if provider == "microsoft.storage":
            return "location" if (t == "microsoft.storage/storageaccounts" and method == "PUT" and created) else None
        if provider == "microsoft.network":
            return "async" if method == "PUT" else None
        if provider == "microsoft.compute":
            if t in ("microsoft.compute/disks", "microsoft.compute/snapshots"):
                return "location"
            return "async"
        return None

    def _delete(self, ctx: _Ctx, dirty: list[bool]) -> _Reply:
        existing = self.store.get(ctx.path)
        p = parse(ctx.path)
        self._authorize_write(ctx, p.type, ctx.path)
        self._check_conditions(ctx, existing)
        if existing is None:
            return _Reply(204)
        self._check_busy(existing["id"])
        t = p.type.lower()
        if t in ("microsoft.network/networksecuritygroups", "microsoft.network/routetables"):
            users = self.store.referrers(existing["id"])
            if users:
                what = "NetworkSecurityGroup" if "security" in t else "RouteTable"
                raise _error(400, f"InUse{what}CannotBeDeleted",
                             f"{what} {existing['id']} cannot be deleted because it is in use by "
                             f"{self.store.entries[users[0]]['id']}.")
        keys = [key(existing["id"]), *self.store.descendants(existing["id"])]
        parent_key = key(p.parent) if p.parent and _is_inline_child(p.type) else None
        old_links = _back_links(existing)
        before = self._snapshot(keys + ([parent_key] if parent_key else []) + sorted(old_links))
        for k in keys:
            self.store.delete(k)
        self._relink(existing["id"], old_links, {}, _BACK_LINK_PROP.get(t, ""))
        self.power.pop(key(existing["id"]), None)
        if parent_key and parent_key in self.store.entries:
            parent = clone(self.store.entries[parent_key])
            parent["etag"] = new_etag()
            self.store.put(parent)
        dirty[0] = True
        provider = t.split("/")[0]
        if provider in ("microsoft.network", "microsoft.compute"):
            return self._start_op(ctx, key(existing["id"]), "location", before, delete=True)
        return _Reply(200)

    def _action(self, ctx: _Ctx, resource_id: str, action: str, dirty: list[bool]) -> _Reply:
        entry = self.store.get(resource_id)
        p = parse(resource_id)
        self._authorize_write(ctx, p.type, resource_id, action=f"{action}/action")
        if entry is None:
            raise self._not_found(resource_id)
        if p.type.lower() != "microsoft.compute/virtualmachines" or action.lower() not in VM_ACTIONS:
            raise _error(400, "InvalidResourceOperation", f"The action '{action}' is not supported by the sandbox.")
        self._check_busy(entry["id"])
        before = self._snapshot([key(entry["id"])])
        self.power[key(entry["id"])] = VM_ACTIONS[action.lower()]
        dirty[0] = True
        return self._start_op(ctx, key(entry["id"]), "location", before, delete=True, action=True)

    def _vm_instance_view(self, entry: dict[str, Any]) -> dict[str, Any]:
        power = self.power.get(key(entry["id"]), "PowerState/running")
        state = (entry.get("properties") or {}).get("provisioningState", "Succeeded")
        return {"statuses": [{"code": f"ProvisioningState/{state.lower()}", "level": "Info",
                              "displayStatus": f"Provisioning {state.lower()}"},
                             {"code": power, "level": "Info",
                              "displayStatus": "VM " + power.split("/")[1]}]}

    def _instance_view(self, ctx: _Ctx, resource_id: str) -> _Reply:
        entry = self.store.get(resource_id)
        if entry is None:
            raise self._not_found(resource_id)
        return _Reply(200, self._vm_instance_view(entry))

    # ---- long-running operations -------------------------------------------------------
    def _start_op(self, ctx: _Ctx, rkey: str, kind: str, before: dict[str, Any], *, created: bool = False,
                  delete: bool = False, action: bool = False) -> _Reply:
        op_id = uuid.uuid4().hex
        outcome = self.faults.for_operation() if self.faults else None
        op = {"id": op_id, "rid": rkey, "kind": kind, "delete": delete, "action": action,
              "polls_left": self.lro_polls, "created": time.time(), "outcome": outcome or "ok",
              "status": "InProgress", "before": before, "error": None}
        self.ops[op_id] = op
        self._ops_changed.add(op_id)
        monitor = f"{ctx.host}/sandbox/operations/{op_id}?api-version={quote(ctx.api_version, safe='')}"
        headers = {"Retry-After": str(self.retry_after)}
        if kind == "location":
            headers["Location"] = monitor
            return _Reply(202, None, headers)
        headers["Azure-AsyncOperation"] = monitor
        entry = self.store.entries.get(rkey)
        body = self.compose(entry) if entry else None
        status = 201 if created else 200
        return _Reply(status, body, headers)

    def _settle_due(self) -> None:
        now = time.time()
        for op in list(self.ops.values()):
            if op["status"] != "InProgress":
                continue
            if op["outcome"] == "lro-hang":
                if self.lro_hang_seconds is not None and now - op["created"] >= self.lro_hang_seconds:
                    op["outcome"] = "ok"
                    self._finish(op)
            elif now - op["created"] >= self.lro_seconds:
                self._finish(op)

    def _finish(self, op: dict[str, Any]) -> None:
        if op["outcome"] == "lro-fail":
            for k, old in op["before"].items():
                if old is None:
                    self.store.delete(k)
                else:
                    self.store.put(clone(old))
            if op.get("action"):
                self.power.pop(op["rid"], None)
            op["status"] = "Failed"
            op["error"] = {"code": "InternalOperationError",
                           "message": "The operation failed (sandbox fault injection: lro-fail); the resource "
                                      "was left as it was before the request."}
        else:
            entry = self.store.entries.get(op["rid"])
            if entry is not None and not op["delete"]:
                props = entry.setdefault("properties", {})
                if props.get("provisioningState") in ("Creating", "Updating"):
                    props["provisioningState"] = "Succeeded"
            op["status"] = "Succeeded"
        op["before"] = {}
        op["ended"] = time.time()
        self._ops_changed.add(op["id"])
        self._dirty = True

    def _monitor(self, ctx: _Ctx, op_id: str, dirty: list[bool]) -> _Reply:
        op = self.ops.get(op_id)
        if op is None:
            raise _error(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        if op["status"] == "InProgress" and op["outcome"] != "lro-hang":
            op["polls_left"] -= 1
            self._ops_changed.add(op_id)
            self._dirty = True
            if op["polls_left"] < 0:
                self._finish(op)
        retry = {"Retry-After": str(self.retry_after)}
        if op["kind"] == "async":
            body: dict[str, Any] = {"id": f"{ctx.path}", "name": op_id, "status": op["status"]}
            if op["error"]:
                body["error"] = op["error"]
            return _Reply(200, body, retry if op["status"] == "InProgress" else {})
        if op["status"] == "InProgress":
            return _Reply(202, None, {**retry, "Location": f"{ctx.host}{ctx.path}?api-version="
                                                              f"{quote(ctx.api_version, safe='')}"})
        if op["status"] == "Failed":
            return _Reply(400, {"error": op["error"]})
        if op["delete"]:
            return _Reply(200 if op.get("action") else 204)
        entry = self.store.entries.get(op["rid"])
        if entry is None:
            raise self._not_found(op["rid"])
        return _Reply(200, self.compose(entry))

    # ---- management groups (management.py) ----------------------------------------------
    def _groups(self) -> dict[str, tuple[str | None, list[str]]]:
        subs = [s["subscriptionId"] for s in self.store.subscriptions.values()]
        return management.hierarchy(self.tenant_id, subs)

    def _management_group(self, rest: list[str]) -> _Reply:
        groups = self._groups()
        found = management.find(groups, rest[0]) if rest else None
        if found is None:
            raise _error(404, "NotFound", f"The management group '{rest[0] if rest else ''}' was not found.")
        if len(rest) == 1:
            return _Reply(200, management.group(found, groups[found][0], self.tenant_id))
        if len(rest) == 2 and rest[1].lower() == "descendants":
            display = {k: str(v.get("displayName") or k) for k, v in self.store.subscriptions.items()}
            return _Reply(200, {"value": management.descendants(groups, found, display)})
        raise _error(404, "NotFound", f"No route for management group '{found}'.")

    # ---- Resource Graph ----------------------------------------------------------------
    def _graph_ids(self, q: graph.Query, subs: set[str]) -> list[str]:
        """Matching keys in result order, cached until the next write (paging re-asks often)."""
        sig = (q.signature(), tuple(sorted(subs)))
        hit = self._graph_cache.get(sig)
        if hit is not None and hit[0] == self.store.version:
            return hit[1]
        type_filter = next((vals for col, vals in q.filters if col == "type"), None)
        keys = [k for t in type_filter for k in self.store.of_type(t)] if type_filter is not None \
            else list(self.store.entries)
        out = []
        for k in keys:
            e = self.store.entries[k]
            if graph.table_of(e["type"]) != q.table:
                continue
            if (parse(e["id"]).subscription or "").lower() not in subs:
                continue
            if graph.matches(e, q):
                out.append(k)
        out.sort(reverse=q.descending)
        if len(self._graph_cache) > 64:
            self._graph_cache.clear()
        self._graph_cache[sig] = (self.store.version, out)
        return out

    def _graph(self, ctx: _Ctx) -> _Reply:
        req = ctx.json()
        if not isinstance(req, dict) or not isinstance(req.get("query"), str):
            raise _error(400, "InvalidRequestContent", "The request needs a `query` string.")
        try:
            q = graph.parse_query(req["query"])
            opts = req.get("options") or {}
            after = graph.decode_token(opts["$skipToken"]) if opts.get("$skipToken") else None
        except graph.InvalidQuery as exc:
            raise _error(400, "InvalidQuery", f"Query is invalid: {exc}") from exc
        top = opts.get("$top") or 100
        try:
            top = max(1, min(1000, int(top)))
        except (TypeError, ValueError) as exc:
            raise _error(400, "InvalidQuery", "Query is invalid: $top must be a number.") from exc
        skip = int(opts.get("$skip") or 0)
        subs = req.get("subscriptions")
        wanted_subs = {s.lower() for s in subs} if subs else set(self.store.subscriptions)
        if req.get("managementGroups") and not subs:  # the scope of a query without subscriptions
            wanted_subs = management.subscriptions_under(self._groups(), [str(g) for g in req["managementGroups"]])
        ids = self._graph_ids(q, wanted_subs)
        total = len(ids)
        if after is not None:
            # ids are sorted lower-cased ids; the token is the last id of the previous page
            if q.descending:
                start = next((i for i, x in enumerate(ids) if x < after), len(ids))
            else:
                start = bisect.bisect_right(ids, after)
            ids = ids[start:]
        elif skip:
            ids = ids[skip:]
        rows = [self.store.entries[k] for k in ids[: top + 1]]
        page, more = rows[:top], len(rows) > top
        data = [graph.row(self.compose(e, for_graph=True), self.tenant_id) for e in page]
        body: dict[str, Any] = {"totalRecords": total, "count": len(data), "resultTruncated": "false",
                                "facets": []}
        if more:
            body["$skipToken"] = graph.encode_token(key(page[-1]["id"]))
        if (opts.get("resultFormat") or "objectArray").lower() == "table":
            body["data"] = {"columns": [{"name": c, "type": "object"} for c in graph.COLUMNS],
                            "rows": [[r[c] for c in graph.COLUMNS] for r in data]}
        else:
            body["data"] = data
        quota = {} if self.arm_throttle else {"x-ms-user-quota-remaining": "14", "x-ms-user-quota-resets-after": "00:00:05"}
        return _Reply(200, body, quota)


# owner type -> property of the referenced resource that points back at the owner
_BACK_LINK_PROP = {"microsoft.network/networkinterfaces": "ipConfiguration",
                   "microsoft.compute/virtualmachines": "virtualMachine"}


def _back_links(owner: dict[str, Any] | None) -> dict[str, str]:
    """Referenced resource key -> the id it should point back to: a NIC's public IPs -> its ip
    configuration, a VM's NICs -> the VM."""
    if not owner:
        return {}
    t = owner.get("type", "").lower()
    props = owner.get("properties") or {}
    out = {}
    if t == "microsoft.network/networkinterfaces":
        for ipc in props.get("ipConfigurations") or []:
            if not isinstance(ipc, dict):
                continue
            pip = ((ipc.get("properties") or {}).get("publicIPAddress") or {}).get("id")
            if isinstance(pip, str) and pip:
                out[key(pip)] = f"{owner['id']}/ipConfigurations/{ipc.get('name', '')}"
    elif t == "microsoft.compute/virtualmachines":
        for nic in (props.get("networkProfile") or {}).get("networkInterfaces") or []:
            nid = nic.get("id") if isinstance(nic, dict) else None
            if isinstance(nid, str) and nid:
                out[key(nid)] = owner["id"]
    return out


def _bare_etag(value: str) -> str:
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"')


def _is_inline_child(rtype: str) -> bool:
    parent, _, seg = rtype.rpartition("/")
    return any(s.lower() == seg.lower() for _, s in INLINE_CHILDREN.get(parent.lower(), []))


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch: objects merge key by key, null removes, anything else replaces."""
    for k, v in patch.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = clone(v)
    return base


def _resolve_estate(estate: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if estate is None:
        return []
    if isinstance(estate, list):
        return estate
    from .estates import load_estate  # the reference estate, scale:N and estate files

    return load_estate(estate)


__all__ = ["Sandbox", "ConnectionReset", "strip_composed"]
