"""The one way to Azure Resource Manager. Nothing else imports azure-mgmt-*.

The gateway builds every client from one place for any target (Azure, a custom endpoint, the
sandbox), inventories a scope (Resource Graph first, typed list calls as the fallback, child
and extension resources by their own reads), reads and writes single resources with etags,
waits for long-running operations, and turns ARM errors into sentences a person can act on."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    ResponseNotReadError,
    ServiceRequestError,
    ServiceResponseError,
    StreamClosedError,
    StreamConsumedError,
    map_error,
)
from azure.core.pipeline.policies import RetryPolicy
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.core.polling.arm_polling import ARMPolling

from . import resource_id as rid
from .armjson import get_path
from .credentials import SignInError, describe_failure
from .errors import (
    BUSY_NOTE,
    ArmError,
    Conflict,
    EtagMismatch,
    NotFound,
    OperationTimedOut,
    PermissionDenied,
    Throttled,
    UsageError,
    ZtwError,
)
from .inputs import DEFAULT_LRO_TIMEOUT
from .inventory import Inventory
from .pacing import Key, Pacer, buckets_for, describe
from .ports import ChildRead

log = logging.getLogger("ztwizard.gateway")

# What ARM answers when something went wrong on its side or on the way: these become "could not
# read X" in an inventory. Anything else (TypeError, KeyError, ...) is a bug and propagates.
ARM_ERRORS = (HttpResponseError, ServiceRequestError, ServiceResponseError)

Progress = Callable[[int, int, str], None]
# The region a thread's current read draws budget from (set around each paced read).
_pacing = threading.local()
# A resource id's top-level resource (a storage account of its blob service): what ARM's region is of.
_TOP_LEVEL = re.compile(r"^(/subscriptions/[^/]+(?:/resourcegroups/[^/]+)?/providers/[^/]+/[^/]+/[^/]+)",
                        re.IGNORECASE)
# Subscriptions per Resource Graph request: bounded, well under az's 1,000 (notes §6).
GRAPH_BATCH = 100
# Concurrent reads: many, since each waits mostly on the network; the budgets pace them.
READ_WORKERS = 32

# api-version per resource type (lower-cased), pinned to the installed SDKs' defaults
# (tests/test_gateway.py checks them against the clients, so an SDK upgrade shows up).
API_VERSIONS: dict[str, str] = {
    "microsoft.storage": "2026-09-01",
    "microsoft.network": "2026-03-01",
    "microsoft.compute": "2026-04-01",
    "microsoft.compute/disks": "2026-03-02",
    "microsoft.compute/snapshots": "2026-03-02",
    "microsoft.compute/diskencryptionsets": "2026-03-02",
    "microsoft.security/pricings": "2024-01-01",
    "microsoft.security/settings": "2022-05-01",
    "microsoft.security/defenderforstoragesettings": "2022-12-01-preview",
    "microsoft.security/assessments": "2021-06-01",
    "microsoft.security/securescores": "2020-01-01",
    "microsoft.security/locations/jitnetworkaccesspolicies": "2020-01-01",
    "microsoft.security": "2024-04-01",
    "microsoft.authorization/roleassignments": "2022-04-01",
    "microsoft.authorization/roledefinitions": "2022-04-01",
    "microsoft.authorization/policyassignments": "2023-04-01",
    "microsoft.authorization": "2022-04-01",
    "microsoft.insights/diagnosticsettings": "2021-05-01-preview",
    "microsoft.insights/metricalerts": "2018-03-01",
    "microsoft.insights/actiongroups": "2023-01-01",
    "microsoft.insights": "2021-05-01-preview",
    "microsoft.operationalinsights": "2022-10-01",
    "microsoft.keyvault": "2023-07-01",
    "microsoft.resources/resourcegroups": "2025-04-01",
    "microsoft.resources": "2025-04-01",
    "microsoft.features": "2021-07-01",
}

# What the catalog reads, by Resource Graph table. Child types ARG does not index are read
# per parent (see _CHILD_READS).
GRAPH_TYPES: dict[str, list[str]] = {
    "resources": [
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Compute/virtualMachines/extensions",
        "Microsoft.Compute/disks",
        "Microsoft.Compute/diskEncryptionSets",
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/routeTables",
        "Microsoft.Network/publicIPAddresses",
        "Microsoft.Network/azureFirewalls",
        "Microsoft.Network/firewallPolicies",
        "Microsoft.Network/bastionHosts",
        "Microsoft.Network/applicationSecurityGroups",
        "Microsoft.Network/ddosProtectionPlans",
        "Microsoft.Network/networkWatchers",
        "Microsoft.Network/networkWatchers/flowLogs",
        "Microsoft.Network/applicationGateways",
        "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies",
        "Microsoft.Network/virtualNetworkGateways",
        "Microsoft.Network/privateEndpoints",
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.KeyVault/vaults",
        "Microsoft.Insights/actionGroups",
        "Microsoft.Insights/metricAlerts",
    ],
    "securityresources": [
        "Microsoft.Security/pricings",
        "Microsoft.Security/assessments",
        "Microsoft.Security/secureScores",
        "Microsoft.Security/locations/alerts",
    ],
    "authorizationresources": [
        "Microsoft.Authorization/roleAssignments",
        "Microsoft.Authorization/roleDefinitions",
    ],
    # Resource groups, by Graph's own name for them ("Azure Resource Graph table and resource type
    # reference", resourcecontainers): one query instead of a list call per subscription.
    "resourcecontainers": [
        "Microsoft.Resources/subscriptions/resourceGroups",
    ],
}
# Resource Graph's name of a type -> ARM's, for the rows the inventory keeps.
GRAPH_TYPE_ALIASES = {"microsoft.resources/subscriptions/resourcegroups": "Microsoft.Resources/resourceGroups"}
# Columns Graph fills with null or "" where ARM's own answer leaves them out.
_GRAPH_EMPTY_COLUMNS = ("kind", "managedBy", "sku", "plan", "identity", "zones", "extendedLocation")

# Types read across the whole subscription even when -g narrows the scope: the platform allows one
# Network Watcher per region and subscription (conventionally in NetworkWatcherRG, with the flow
# logs under it), so a create must see the existing one wherever it lives.
SUBSCRIPTION_WIDE = ("Microsoft.Network/networkWatchers", "Microsoft.Network/networkWatchers/flowLogs")
_WIDE = {t.lower() for t in SUBSCRIPTION_WIDE}


def _in_scope(res: dict[str, Any], rgs: list[str]) -> bool:
    """In the -g resource groups (or no -g), or a type read across the subscription."""
    p = rid.parse(res["id"])
    return not rgs or (p.resource_group or "").lower() in rgs or p.type.lower() in _WIDE


_ACTION_RE = re.compile(r"perform action '([^']+)' over scope '([^']+)'")


def api_version_for(resource_id: str) -> str:
    rtype = rid.type_of(resource_id).lower()
    parts = rtype.split("/")
    for n in range(len(parts), 0, -1):
        key = "/".join(parts[:n])
        if key in API_VERSIONS:
            return API_VERSIONS[key]
    raise ZtwError(f"No api-version is known for resource type {rtype or resource_id!r}.",
                   hint="This resource type is not one the catalog manages.")


def wire(obj: Any) -> dict[str, Any]:
    """An SDK model (hybrid or msrest) or a dict, as ARM's wire JSON."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, MutableMapping):  # hybrid models keep the raw JSON
        return obj.as_dict()  # type: ignore[attr-defined,no-any-return]
    return obj.serialize(keep_readonly=True)  # type: ignore[no-any-return]


def translate(exc: Exception, resource_id: str = "", doing: str = "") -> ZtwError:
    """ARM's error as one sentence and a hint. 403 names the permission and scope; 404 names the
    resource; 412 says someone else changed it."""
    what = _describe(resource_id) if resource_id else "the request"
    if isinstance(exc, ZtwError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        return describe_failure(exc)  # raised by a credential, not by ARM: nobody signed in
    if isinstance(exc, ClientAuthenticationError) and exc.status_code == 401:
        return SignInError("ARM rejected the credential (401): the sign-in is missing, expired or for another "
                           "tenant or cloud.", hint="Run `az login` (or check AZURE_* variables and --cloud) and try again.")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return ZtwError(f"Could not reach ARM while {doing or 'reading ' + what}: {_first_line(exc)}.",
                        hint="Check the network, the endpoint and the CA bundle, then try again.")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = (exc.error.code if exc.error else "") or ""
        message = (exc.error.message if exc.error else "") or _first_line(exc)
        if status == 403 or code == "AuthorizationFailed":
            m = _ACTION_RE.search(message)
            action, scope = (m.group(1), m.group(2)) if m else ("this operation", resource_id or "this scope")
            return PermissionDenied(f"Permission denied: the signed-in principal may not perform {action} on {scope}.",
                                    hint=f"Ask for a role that grants {action} at that scope (or run as a reader: plan only).",
                                    status=403, code=code, resource_id=resource_id)
        if status == 404 and code == "ParentResourceNotFound" and resource_id:
            parent = _describe(rid.parse(resource_id).parent or "")
            return NotFound(f"Cannot write {what}: its parent {parent} was not found.",
                            hint="It may have been deleted or moved; re-run the plan.",
                            status=404, code=code, resource_id=resource_id)
        if status == 404:
            return NotFound(f"{what[0].upper()}{what[1:]} was not found ({code or 'ResourceNotFound'}).",
                            hint="It may have been deleted or moved; re-run the plan.",
                            status=404, code=code, resource_id=resource_id)
        if status == 412 or isinstance(exc, ResourceModifiedError):
            return EtagMismatch(f"{what[0].upper()}{what[1:]} was changed by someone else since it was read.",
                                hint="Re-run the plan to see its current state; nothing was overwritten.",
                                status=412, code=code or "PreconditionFailed", resource_id=resource_id)
        if status == 409 and code.lower() in BUSY_CODES:
            return Conflict(f"ARM refused the write to {what}: {BUSY_NOTE} after the retries ({message})",
                            hint="Wait until that operation has finished (the resource's Activity log shows who "
                                 "started it), then try again.",
                            status=409, code=code, resource_id=resource_id)
        if status == 409:
            return Conflict(f"ARM refused the write to {what}: {message}",
                            hint="Another operation may be running on it; wait and retry.",
                            status=409, code=code, resource_id=resource_id)
        if status == 429:
            return Throttled(f"ARM is throttling requests for {what} even after retries.",
                             hint="Wait a minute and retry, or narrow the scope with -s/-g.",
                             status=429, code=code, resource_id=resource_id)
        return ArmError(f"ARM answered {status} {code} for {what}: {message}",
                        hint="Retry; if it persists, check the Azure status page or the request details with --debug.",
                        status=status, code=code, resource_id=resource_id)
    return ZtwError(f"Unexpected error while {doing or 'talking to ARM'}: {_first_line(exc)}.",
                    hint="Re-run with --debug for details.")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _singular(kind: str) -> str:
    if kind.endswith("sses"):
        return kind[:-2]
    if kind.endswith("ies"):
        return kind[:-3] + "y"
    return kind[:-1] if kind.endswith("s") else kind


def _describe(resource_id: str) -> str:
    p = rid.parse(resource_id)
    kind = _singular(p.type.rsplit("/", 1)[-1]) if p.type else "resource"
    where = f" in resource group {p.resource_group}" if p.resource_group else ""
    return f"{kind} {p.name}{where}"


# ---- retries: the one layer ------------------------------------------------------------------

# azure-core's RetryPolicy retries 408/429/5xx and connection errors for idempotent methods, and
# any status with Retry-After. ArmRetryPolicy adds the ARM states it leaves out, and nothing else
# in ztwizard retries a request:
# * 409 AnotherOperationInProgress: the resource is busy with an earlier operation; back off.
# * PATCH: azure-core treats it as not idempotent, but an ARM PATCH sets fixed values, so sending it
#   again after a reset or a 429 lands the same state (and apply reads back what landed).
# * Resource Graph's POST is a query: a 429 without Retry-After (ARG's quota answer) or a 5xx is
#   retried, waiting for `x-ms-user-quota-resets-after` when ARG sends it.
BUSY_CODES = frozenset({"anotheroperationinprogress"})
RETRY = {"retry_total": 8, "retry_connect": 3, "retry_read": 3, "retry_status": 6,
         "retry_backoff_factor": 0.8, "retry_backoff_max": 60}
_GRAPH_PATH = "/providers/microsoft.resourcegraph/"
SETTLE_SECONDS = 120.0
MANAGEMENT_GROUPS_API = "2020-05-01"
# Subscription states in which ARM refuses reads: such subscriptions are left out of a scope.
SKIPPED_STATES = frozenset({"disabled", "deleted"})
# provisioningState values of a resource whose last write is still being carried out.
BUSY_STATES = frozenset({"accepted", "creating", "updating", "deleting", "provisioning"})


def _is_graph(request: Any) -> bool:
    return _GRAPH_PATH in str(request.url).lower()


def _error_code(response: Any) -> str:
    """ARM's error code in a (small) error response; an LRO's first response is streamed, so read it."""
    try:
        try:
            body = response.text()
        except ResponseNotReadError:
            response.read()
            body = response.text()
    except (StreamConsumedError, StreamClosedError, UnicodeDecodeError):  # nothing left to see
        return ""
    m = re.search(r'"code"\s*:\s*"([^"]+)"', body or "")
    return m.group(1) if m else ""


def _quota_reset_seconds(value: str | None) -> float | None:
    """Resource Graph's `x-ms-user-quota-resets-after: hh:mm:ss`."""
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", (value or "").strip())
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


class ArmRetryPolicy(RetryPolicy):
    """azure-core's retry policy, with the ARM states it does not cover (see above)."""

    def _is_method_retryable(self, settings: dict[str, Any], request: Any, response: Any = None) -> bool:
        method = request.method.upper()
        if method == "PATCH" or (method == "POST" and _is_graph(request)):
            return True
        return bool(super()._is_method_retryable(settings, request, response=response))

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        if super().is_retry(settings, response):
            return True
        http = response.http_response
        return bool(settings["total"]) and http.status_code == 409 and _error_code(http).lower() in BUSY_CODES

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        if after is None and _is_graph(response.http_request):
            after = _quota_reset_seconds(response.http_response.headers.get("x-ms-user-quota-resets-after"))
        return after

    def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
        again = bool(super().increment(settings, response=response, error=error))
        request = getattr(response, "http_request", None)
        what = f"{request.method} {_scrub_url(request.url)}" if request is not None else "a request"
        why = (f"{type(error).__name__}: {_first_line(error)}" if error is not None
               else str(getattr(getattr(response, "http_response", None), "status_code", "?")))
        if again:
            log.info("retrying %s after %s (%d left)", what, why, settings["total"])
        else:
            log.warning("giving up on %s after %s", what, why)
        return again


def _scrub_url(url: str) -> str:
    """A URL as logged: no query string beyond api-version (a SAS or a skip token may sit there)."""
    base, _, query = str(url).partition("?")
    keep = [q for q in query.split("&") if q.lower().startswith("api-version=")]
    return base + ("?" + "&".join(keep) if keep else "")


def _log_response(response: Any) -> None:
    """Every request ARM answered (each attempt), at DEBUG: method, url, status."""
    if log.isEnabledFor(logging.DEBUG):
        request = response.http_request
        log.debug("%s %s -> %s", request.method, _scrub_url(request.url), response.http_response.status_code)


# How long one write waits for its long-running operation. Real ARM operations (a Bastion, a
# Firewall) take up to ~20 min; past this the outcome is unknown and resume reconciles it.
LRO_TIMEOUT_SECONDS = float(DEFAULT_LRO_TIMEOUT)


class _LroDeadlinePassed(Exception):
    """Raised in the poller's thread so the poll loop stops instead of running for ever."""


class DeadlinePolling(ARMPolling):  # type: ignore[misc]
    """ARM's polling with a deadline: an operation that never ends (a stuck provider) stops
    the wait after `deadline` seconds, counted from the initial response."""

    def __init__(self, interval: float, deadline: float, **kwargs: Any) -> None:
        super().__init__(interval, **kwargs)
        self._deadline_seconds = deadline
        self._ends = time.monotonic() + deadline

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        self._ends = time.monotonic() + self._deadline_seconds
        super().initialize(*args, **kwargs)

    def _delay(self) -> None:
        left = self._ends - time.monotonic()
        if left <= 0:
            raise _LroDeadlinePassed()
        self._sleep(min(self._extract_delay(), left))


class Gateway:
    """All ARM traffic for one target. Thread-safe: clients are built once per subscription."""

    def __init__(self, target: Any, *, polling_interval: float | None = None, retry_total: int | None = None,
                 max_workers: int = 8, lro_timeout: float | None = None, read_workers: int = READ_WORKERS,
                 graph_batch: int = GRAPH_BATCH, pacer: Pacer | None = None) -> None:
        self.target = target
        self.lro_timeout = LRO_TIMEOUT_SECONDS if lro_timeout is None else float(lro_timeout)
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._building: dict[tuple[str, str], threading.Lock] = {}  # one per client being built
        self._skus: dict[tuple[str, str], dict[str, dict[str, str]]] = {}  # per subscription and region
        self.max_workers = max_workers
        self.read_workers = max(1, read_workers)
        self.graph_batch = max(1, graph_batch)
        self.pacer = pacer or Pacer()
        self.skipped_subscriptions: list[tuple[str, str, str]] = []  # (id, name, state) left out
        kwargs: dict[str, Any] = {"base_url": target.endpoint}
        self._session: Any = None
        if target.transport is not None:
            kwargs["transport"] = target.transport
        else:
            kwargs["transport"] = self._shared_transport(target.endpoint, target.ca_bundle)
        if target.ca_bundle:
            kwargs["connection_verify"] = target.ca_bundle
        if target.credential_scopes:
            kwargs["credential_scopes"] = target.credential_scopes
        if polling_interval is None:
            polling_interval = 2.0 if target.kind == "azure" else 0.0
        kwargs["polling_interval"] = polling_interval
        retry = dict(RETRY)
        if retry_total is not None:
            retry.update(retry_total=retry_total, retry_status=min(retry["retry_status"], retry_total))
        kwargs["retry_policy"] = ArmRetryPolicy(**retry)
        kwargs["raw_request_hook"] = self._before_send
        kwargs["raw_response_hook"] = self._after_send
        self._kwargs = kwargs
        # top-level resource id (lower) -> its region, as reads showed it: ARM's budgets are per
        # subscription and region, so a write draws on its resource's region's budget.
        self._regions: dict[str, str] = {}

    # ---- clients ---------------------------------------------------------------------------
    def _shared_transport(self, endpoint: str, ca_bundle: str | None) -> Any:
        """One connection pool for every client, as large as the reads in flight: a pool per
        client (one per subscription and kind) meant a TLS handshake for almost every read."""
        import requests
        from azure.core.pipeline.transport import RequestsTransport
        from requests.adapters import HTTPAdapter

        self._session = requests.Session()
        # requests reads the proxy and CA variables again for every request (scanning os.environ
        # twice, ~1.4 ms); every request here goes to one endpoint, so read them once, for it.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(endpoint))
        env_ca = None if ca_bundle else os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.read_workers + 8)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        verify = ca_bundle or env_ca
        return RequestsTransport(session=self._session, session_owner=False,
                                 **({"connection_verify": verify} if verify else {}))

    def client(self, kind: str, subscription: str = "") -> Any:
        key = (kind, subscription.lower())
        built = self._clients.get(key)  # every read asks: a built client needs no lock
        if built is not None:
            return built
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        # Built under its own lock, not the gateway's: a first build imports an SDK package
        # (seconds for compute or network on a loaded machine), and reads through clients
        # already built must not wait for it.
        with building:
            with self._lock:
                built = self._clients.get(key)
            if built is None:
                built = self._build(kind, subscription)
                with self._lock:
                    self._clients[key] = built
            return built

    def _build(self, kind: str, sub: str) -> Any:
        cred, kw = self.target.credential, self._kwargs
        if kind == "resources":
            from azure.mgmt.resource.resources import ResourceManagementClient

            return ResourceManagementClient(cred, sub, **kw)
        if kind == "subscriptions":
            from azure.mgmt.resource.subscriptions import SubscriptionClient

            return SubscriptionClient(cred, **kw)
        if kind == "graph":
            from azure.mgmt.resourcegraph import ResourceGraphClient

            return ResourceGraphClient(cred, **kw)
        if kind == "storage":
            from azure.mgmt.storage import StorageManagementClient

            return StorageManagementClient(cred, sub, **kw)
        if kind == "network":
            from azure.mgmt.network import NetworkManagementClient

            return NetworkManagementClient(cred, sub, **kw)
        if kind == "compute":
            from azure.mgmt.compute import ComputeManagementClient

            return ComputeManagementClient(cred, sub, **kw)
        if kind == "security":  # multi-api client: base_url must be a keyword
            from azure.mgmt.security import SecurityCenter

            return SecurityCenter(cred, sub, **kw)
        if kind == "authorization":
            from azure.mgmt.authorization import AuthorizationManagementClient

            return AuthorizationManagementClient(cred, sub, **kw)
        if kind == "monitor":
            from azure.mgmt.monitor import MonitorManagementClient

            return MonitorManagementClient(cred, sub, **kw)
        raise ValueError(kind)

    def close(self) -> None:
        """Release the clients' connections; a later call builds them again."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()
        if self._session is not None:
            self._session.close()  # drops the pooled connections; the session opens new ones if used again

    # ---- single resources ------------------------------------------------------------------
    def api_version_for(self, resource_id: str) -> str:
        return api_version_for(resource_id)

    def read(self, resource_id: str) -> dict[str, Any] | None:
        """The resource as ARM holds it now (with its etag), or None when it does not exist."""
        sub = rid.subscription_of(resource_id) or ""
        try:
            res = self.client("resources", sub).resources.get_by_id(
                resource_id, api_version=api_version_for(resource_id))
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise translate(exc, resource_id, "reading") from exc
        except ARM_ERRORS as exc:
            raise translate(exc, resource_id, "reading") from exc
        out = wire(res)
        self._remember_region(resource_id, out)
        return out

    def read_settled(self, resource_id: str, timeout: float = SETTLE_SECONDS) -> dict[str, Any] | None:
        """The resource once no operation is running on it (an interrupted run may have left an LRO
        going): judging or writing it mid-operation would be judging a moving target."""
        delay, deadline = 0.25, time.monotonic() + timeout
        while True:
            res = self.read(resource_id)
            state = str(get_path(res or {}, ("properties", "provisioningState")) or "").lower()
            if state not in BUSY_STATES or time.monotonic() >= deadline:
                return res
            log.info("%s is %s; waiting %.2fs for its operation to finish", resource_id, state, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def write(self, method: str, resource_id: str, body: dict[str, Any] | None, *,
              etag: str | None = None) -> dict[str, Any] | None:
        """PUT, PATCH or DELETE one resource and wait for ARM to finish. `etag` becomes If-Match,
        so a resource changed by someone else is refused (EtagMismatch) rather than overwritten."""
        if self.target.read_only:
            raise ZtwError("This target is read-only: nothing was changed.",
                           hint="An estate file is for auditing; use --sandbox or Azure to apply.")
        sub = rid.subscription_of(resource_id) or ""
        ops = self.client("resources", sub).resources
        version = api_version_for(resource_id)
        headers = {"If-Match": etag} if etag else {}
        method = method.upper()
        polling = DeadlinePolling(self._kwargs["polling_interval"], self.lro_timeout,
                                  path_format_arguments={"endpoint": self._kwargs["base_url"]})
        try:
            if method == "PUT":
                poller = ops.begin_create_or_update_by_id(resource_id, body or {}, api_version=version,
                                                          headers=headers, polling=polling)
            elif method == "PATCH":
                poller = ops.begin_update_by_id(resource_id, body or {}, api_version=version, headers=headers,
                                                polling=polling)
            elif method == "DELETE":
                poller = ops.begin_delete_by_id(resource_id, api_version=version, headers=headers, polling=polling)
            else:
                raise ValueError(method)
            result = poller.result()
            if method == "DELETE":
                return None
        except _LroDeadlinePassed as exc:
            raise OperationTimedOut(
                f"ARM's operation {method} on {_describe(resource_id)} did not finish within "
                f"{self.lro_timeout:g} s; whether it took effect is unknown.",
                "Run `ztwizard resume` later to reconcile it by reading ARM (raise --lro-timeout for slow operations).",
                resource_id=resource_id) from exc
        except HttpResponseError as exc:
            raise translate(exc, resource_id, f"writing ({method})") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise translate(exc, resource_id, f"writing ({method})") from exc
        out = wire(result)
        if not out or ("etag" not in out and etag):
            # Some LRO shapes return no body, or one without the etag the resource has: read back
            # what ARM now holds. A resource without etags (a storage account) has nothing to add.
            return self.read(resource_id) or out
        return out

    # ---- power state and prerequisites -------------------------------------------------------
    def power_state(self, vm_id: str) -> str:
        """The VM's power state from its instance view (`running`, `deallocated`, `stopped`,
        `deallocating`, `starting`, …); `unknown` when the view has no PowerState status."""
        p = rid.parse(vm_id)
        try:
            view = self.client("compute", p.subscription or "").virtual_machines.instance_view(
                p.resource_group, p.name)
        except ARM_ERRORS as exc:
            raise translate(exc, vm_id, "reading the power state of") from exc
        for status in wire(view).get("statuses") or []:
            code = str(status.get("code") or "")
            if code.lower().startswith("powerstate/"):
                return code.split("/", 1)[1].lower()
        return "unknown"

    def vm_action(self, vm_id: str, action: str) -> None:
        """POST deallocate, start or powerOff on a VM and wait for the operation (--lro-timeout)."""
        p = rid.parse(vm_id)
        if self.target.read_only:
            raise ZtwError("This target is read-only: nothing was changed.",
                           hint="An estate file is for auditing; use --sandbox or Azure to apply.")
        vms = self.client("compute", p.subscription or "").virtual_machines
        begin = {"deallocate": vms.begin_deallocate, "start": vms.begin_start,
                 "powerOff": vms.begin_power_off}[action]
        polling = DeadlinePolling(self._kwargs["polling_interval"], self.lro_timeout,
                                  path_format_arguments={"endpoint": self._kwargs["base_url"]})
        try:
            begin(p.resource_group, p.name, polling=polling).result()
        except _LroDeadlinePassed as exc:
            raise OperationTimedOut(
                f"ARM's {action} of {_describe(vm_id)} did not finish within {self.lro_timeout:g} s.",
                "Run `ztwizard resume` later: it reads the power state and restores it.",
                resource_id=vm_id) from exc
        except ARM_ERRORS as exc:
            raise translate(exc, vm_id, f"sending {action} to") from exc

    def feature_state(self, subscription: str, namespace: str, name: str) -> str | None:
        """A subscription feature's registration state (`Registered`, `NotRegistered`, …), or
        None when ARM cannot tell (the Features API is unreachable or unknown here)."""
        from azure.core.rest import HttpRequest

        url = (f"/subscriptions/{subscription}/providers/Microsoft.Features/providers/{namespace}/features/{name}"
               f"?api-version={API_VERSIONS['microsoft.features']}")
        try:
            resp = self.client("resources", subscription).send_request(HttpRequest("GET", url))
        except ARM_ERRORS as exc:
            log.info("feature %s/%s unreadable: %s", namespace, name, _first_line(exc))
            return None
        if resp.status_code == 404:
            return "NotRegistered"
        if resp.status_code >= 400:
            log.info("feature %s/%s unreadable: HTTP %s", namespace, name, resp.status_code)
            return None
        return str(get_path(resp.json(), ("properties", "state")) or "") or None

    def sku_capabilities(self, subscription: str, location: str, size: str) -> dict[str, str] | None:
        """The capabilities of a VM size in a region (`EncryptionAtHostSupported`,
        `HyperVGenerations`, …), or None when the size is not listed or the list is unreadable."""
        key = (subscription.lower(), location.lower())
        with self._lock:
            skus = self._skus.get(key)
        if skus is None:
            try:
                listed = self.client("compute", subscription).resource_skus.list(filter=f"location eq '{location}'")
                skus = {}
                for sku in listed:
                    raw = wire(sku)
                    if str(raw.get("resourceType") or "").lower() == "virtualmachines":
                        skus[str(raw.get("name") or "").lower()] = {
                            str(c.get("name")): str(c.get("value")) for c in raw.get("capabilities") or []}
            except ARM_ERRORS as exc:
                log.info("compute skus in %s unreadable: %s", location, _first_line(exc))
                return None
            with self._lock:
                self._skus[key] = skus
        return skus.get(size.lower())

    # ---- scope -----------------------------------------------------------------------------
    def list_subscriptions(self) -> list[str]:
        return [sid for sid, _name in self.subscription_names()]

    def subscription_names(self) -> list[tuple[str, str]]:
        """(id, display name) of every enabled subscription the credential can see, by id. A
        disabled or deleted one refuses reads, so it is skipped, and said so (`skipped`)."""
        try:
            listed = list(self.client("subscriptions").subscriptions.list())
        except ARM_ERRORS as exc:
            raise translate(exc, "", "listing subscriptions") from exc
        subs: list[tuple[str, str]] = []
        skipped: list[tuple[str, str, str]] = []
        for s in listed:
            raw = getattr(s, "state", None) or "Enabled"
            state = str(getattr(raw, "value", raw))  # an SDK enum, or its text
            name = s.display_name or s.subscription_id
            if state.lower() in SKIPPED_STATES:
                skipped.append((s.subscription_id, name, state))
            else:
                subs.append((s.subscription_id, name))
        self.skipped_subscriptions = sorted(skipped)
        for sid, name, state in self.skipped_subscriptions:
            log.warning("Skipping subscription %s (%s): it is %s.", name, sid, state)
        return sorted(subs)

    def management_group_subscriptions(self, group: str) -> list[str]:
        """Every subscription below management group `group` (ARM's descendants list)."""
        from azure.core.rest import HttpRequest

        client = self.client("resources", "")
        next_url: str | None = (f"/providers/Microsoft.Management/managementGroups/{group}/descendants"
                                f"?api-version={MANAGEMENT_GROUPS_API}")
        out: list[str] = []
        while next_url:
            try:
                resp = client.send_request(HttpRequest("GET", next_url))
            except ARM_ERRORS as exc:
                raise translate(exc, "", f"listing management group {group}") from exc
            if resp.status_code in (403, 404):
                raise UsageError(f"Management group {group!r} was not found, or this sign-in may not read it.",
                                 hint="Check the --management-group id (its name, not its display name) and the "
                                      "sign-in's role on it.")
            if resp.status_code >= 400:
                raise translate(HttpResponseError(response=resp), "", f"listing management group {group}")
            page = resp.json()
            out += [str(d["name"]) for d in page.get("value", [])
                    if str(d.get("type", "")).lower() == "microsoft.management/managementgroups/subscriptions"]
            next_url = page.get("nextLink")
        return out

    def scope_subscriptions(self, groups: list[str], narrowed: list[str]) -> tuple[list[str], bool]:
        """The enabled subscriptions under `groups`, or those of `narrowed` (-s), which must be
        under them; and whether they are all the groups hold. Disabled ones are skipped (and
        said so, see subscription_names)."""
        under: dict[str, str] = {}
        for group in groups:
            for sub in self.management_group_subscriptions(group):
                under.setdefault(sub.lower(), sub)
        named = " or ".join(dict.fromkeys(groups))
        if not under:
            raise UsageError(f"Management group {named} holds no subscription.",
                             hint="Name a group with subscriptions below it, or the subscriptions themselves with -s.")
        if narrowed:
            outside = [s for s in narrowed if s.lower() not in under]
            if outside:
                raise UsageError(f"Subscription {outside[0]} is not under management group "
                                 f"{named}.", hint="-s narrows --management-group: name a "
                                 "subscription under it, or drop -s.")
            return narrowed, False
        enabled = {s.lower() for s in self.list_subscriptions()}
        # only the groups' own subscriptions are said to be skipped
        self.skipped_subscriptions = [s for s in self.skipped_subscriptions if s[0].lower() in under]
        subs = [sub for key, sub in sorted(under.items()) if key in enabled]
        if not subs:
            skipped = ", ".join(f"{sid} ({state})" for sid, _name, state in self.skipped_subscriptions)
            raise UsageError(f"Management group {named} holds no enabled subscription"
                             + (f": {skipped} are skipped." if skipped else " this sign-in can see."),
                             hint="Name another group, or check the subscriptions' state and the sign-in's roles.")
        return subs, len(subs) == len(under)

    def list_resource_groups(self, subscription: str) -> list[dict[str, Any]]:
        try:
            return [wire(g) for g in self.client("resources", subscription).resource_groups.list()]
        except ARM_ERRORS as exc:
            raise translate(exc, f"/subscriptions/{subscription}", "listing resource groups") from exc

    # ---- inventory -------------------------------------------------------------------------
    def inventory(self, subscriptions: Iterable[str] | None = None, resource_groups: Iterable[str] | None = None,
                  progress: Progress | None = None, use_graph: bool = True,
                  reads: Sequence[ChildRead] | None = None) -> Inventory:
        """Everything the catalog reads in the scope. Types the credential cannot read are
        recorded in `Inventory.unreadable` (checks then report `error`) instead of failing.
        `reads` are the child reads the selected checks need (None: every child the catalog
        knows); a child is read only for a resource some check needs it for."""
        groups = list(getattr(self.target, "management_groups", None) or [])
        narrowed = list(subscriptions or self.target.subscriptions or [])
        self.skipped_subscriptions = []  # this scope's, as listing it finds them
        subs, whole_groups = self.scope_subscriptions(groups, narrowed) if groups else \
            (narrowed or self.list_subscriptions(), False)
        rgs = [g.lower() for g in (resource_groups or self.target.resource_groups or [])]
        resources: list[dict[str, Any]] = []
        unreadable: dict[str, str] = {}
        report = progress or (lambda done, total, label: None)
        total_phases = 4
        read_ok, first_failure = False, None
        graph_rows: list[dict[str, Any]] | None = None
        if use_graph:
            report(0, total_phases, "Resource Graph")
            try:
                # the groups' own scope when it is exactly the scope; else bounded subscription batches
                graph_rows = self._graph_inventory(subs, rgs, groups if whole_groups else None)
            except SignInError:
                raise
            except Throttled:
                raise  # a throttle is waited out, never answered with thousands of list calls
            except ZtwError as exc:
                log.info("Resource Graph unavailable (%s); falling back to list calls", exc.message)
        graph_ok = graph_rows is not None
        if graph_rows is not None:
            # resource groups first, by subscription in scope order, as the lists below give them
            order = {s.lower(): i for i, s in enumerate(subs)}
            listed_groups = sorted((r for r in graph_rows if r["type"] == "Microsoft.Resources/resourceGroups"),
                                   key=lambda g: (order.get((rid.subscription_of(g["id"]) or "").lower(), len(order)),
                                                  g["id"].lower()))
            resources.extend(g for g in listed_groups if not rgs or g["name"].lower() in rgs)
            resources.extend(r for r in graph_rows if r["type"] != "Microsoft.Resources/resourceGroups")
            del graph_rows
        else:
            report(0, total_phases, f"Resource groups of {len(subs)} subscription(s)")
            for listed in self._parallel([functools.partial(self._try_resource_groups, s) for s in subs]):
                if isinstance(listed, SignInError):
                    raise listed  # a refused sign-in refuses every read: stop, not 23 `error` steps
                if isinstance(listed, ZtwError):
                    unreadable["microsoft.resources/resourcegroups"] = listed.message
                    first_failure = first_failure or listed
                    continue
                read_ok = True
                resources.extend(g for g in listed if not rgs or g["name"].lower() in rgs)
            report(1, total_phases, "List calls")
            groups = [r for r in resources if rid.type_of(r["id"]).lower() == "microsoft.resources/resourcegroups"]
            resources.extend(self._list_inventory(subs, rgs, groups, unreadable))
        if not (read_ok or graph_ok or resources) and unreadable:  # nothing was inspected: an error, exit 1
            raise first_failure or ZtwError(f"No read succeeded: {next(iter(unreadable.values()))}",
                                            hint="Check the sign-in and its roles on the scope, then try again.")
        if rgs:  # subscription-scope resources stay; everything in another resource group goes
            resources = [r for r in resources if _in_scope(r, rgs) or rid.parse(r["id"]).resource_group is None]
        inv = Inventory()
        for res in resources:
            inv.add(res)
            self._remember_region(res["id"], res)
        del resources
        inv.normalize()  # a read's `when` sees inline children (subnets, rules) as the checks do
        report(2, total_phases, "Child resources")
        self._child_inventory(inv, unreadable, reads, lambda label: report(2, total_phases, label))
        report(3, total_phases, "Subscription settings")
        for res in self._subscription_inventory(subs, unreadable, reads, inv):
            inv.add(res)
        inv.finish(subscriptions=subs)
        inv.unreadable.update(unreadable)
        report(4, total_phases, "Done")
        return inv

    # ---- pacing and parallel reads --------------------------------------------------------
    def _before_send(self, request: Any) -> None:
        """Every attempt of every request waits for its budgets (raw_request_hook)."""
        http = request.http_request
        path = urlsplit(str(http.url)).path
        if _is_graph(http):
            self.pacer.acquire([("", "", "graph")])
            return
        sub = (rid.subscription_of(path) or "").lower() if path.lower().startswith("/subscriptions/") else ""
        if not sub:
            return
        self.pacer.acquire([(sub, self._region_for(path), b) for b in buckets_for(http.method, path)])

    def _after_send(self, response: Any) -> None:
        _log_response(response)
        http = response.http_request
        path = urlsplit(str(http.url)).path
        sub = (rid.subscription_of(path) or "") if path.lower().startswith("/subscriptions/") else ""
        self.pacer.observe_headers(sub, self._region_for(path), http.method, path, response.http_response.headers)

    def _region_for(self, path: str) -> str:
        """The region a request draws budget from: the one its caller named (inventory reads),
        else the region of the top-level resource it addresses once a read has shown it."""
        named = getattr(_pacing, "region", "")
        if named:
            return str(named)
        m = _TOP_LEVEL.match(path)
        return self._regions.get(m.group(1).lower(), "") if m else ""

    def _remember_region(self, resource_id: str, res: dict[str, Any] | None) -> None:
        m = _TOP_LEVEL.match(resource_id)
        location = str((res or {}).get("location") or "").lower().replace(" ", "")
        if m and location and m.group(1).lower() == resource_id.lower():
            self._regions[m.group(1).lower()] = location

    def write_headroom(self, resource_id: str) -> tuple[Key, float, float]:
        """The tightest write budget a write to `resource_id` draws on: (its key, tokens left
        now, refill per second). Apply gives a worker to a subscription whose budget has room."""
        sub = (rid.subscription_of(resource_id) or "").lower()
        return self.pacer.headroom([(sub, self._region_for(resource_id), b) for b in buckets_for("PUT", resource_id)])

    def _parallel(self, jobs: Sequence[Callable[[], Any]], region_of: Sequence[str] | None = None,
                  on_done: Callable[[int], None] | None = None) -> list[Any]:
        """Run independent reads concurrently (results in job order); each may name the region
        its requests draw budget from."""
        if not jobs:
            return []

        def run(i: int) -> Any:
            _pacing.region = (region_of[i] if region_of else "") or ""
            try:
                return jobs[i]()
            finally:
                _pacing.region = ""

        if len(jobs) == 1:
            return [run(0)]
        out: list[Any] = [None] * len(jobs)
        with ThreadPoolExecutor(max_workers=min(self.read_workers, len(jobs))) as pool:
            futures = {pool.submit(run, i): i for i in range(len(jobs))}
            for n, fut in enumerate(as_completed(futures), 1):
                out[futures[fut]] = fut.result()
                if on_done:
                    on_done(n)
        return out

    def _try_resource_groups(self, sub: str) -> list[dict[str, Any]] | ZtwError:
        try:
            return self.list_resource_groups(sub)
        except ZtwError as exc:
            return exc

    # ---- Resource Graph -------------------------------------------------------------------
    def graph_query(self, subscriptions: list[str] | None, query: str, page_size: int = 1000,
                    management_groups: list[str] | None = None) -> list[dict[str, Any]]:
        """All rows of a Resource Graph query, following $skipToken, one bounded batch of
        subscriptions per request (batches concurrently, pages of a batch in order)."""
        if management_groups:
            return self._graph_pages(None, management_groups, query, page_size)
        subs = list(subscriptions or [])
        batches = [subs[i:i + self.graph_batch] for i in range(0, len(subs), self.graph_batch)] or [[]]
        pages = self._parallel([functools.partial(self._graph_pages, b, None, query, page_size) for b in batches])
        return [row for rows in pages for row in rows]

    def _graph_pages(self, subscriptions: list[str] | None, management_groups: list[str] | None, query: str,
                     page_size: int) -> list[dict[str, Any]]:
        """One query's pages in order. Sent through the graph client's pipeline (retries,
        pacing, logging) as plain JSON: the SDK's model would deserialize every row's every
        property into objects only for the gateway to turn them back into JSON."""
        from azure.core.rest import HttpRequest

        graph = self.client("graph")
        body: dict[str, Any] = {"query": query, "options": {"$top": page_size, "resultFormat": "objectArray"}}
        if subscriptions:
            body["subscriptions"] = subscriptions
        if management_groups:
            body["managementGroups"] = management_groups
        url = f"/providers/Microsoft.ResourceGraph/resources?api-version={graph._config.api_version}"
        rows: list[dict[str, Any]] = []
        followed: set[str] = set()
        try:
            while True:
                resp = graph._send_request(HttpRequest("POST", url, json=body))  # this SDK names it so
                if resp.status_code >= 400:
                    raise HttpResponseError(response=resp)
                page = resp.json()
                rows.extend(page.get("data") or [])
                token = page.get("$skipToken")
                if not token:
                    # ARG says "true" (a string in its API) when it left rows out with no token to
                    # page on: what came back is not the scope, and checks must not pass on it
                    if str(page.get("resultTruncated") or "false").lower() == "true":
                        raise ZtwError("Resource Graph truncated the result of a query and gave no $skipToken "
                                       "to page on.", hint="The inventory is read by list calls instead.")
                    return rows
                if token in followed:  # the same rows again and again: a page loop, not more rows
                    raise ZtwError("Resource Graph answered a $skipToken it had given before.",
                                   hint="The inventory is read by list calls instead.")
                followed.add(token)
                body["options"]["$skipToken"] = token
        except ARM_ERRORS as exc:
            raise translate(exc, "", "querying Resource Graph") from exc

    def _graph_inventory(self, subs: list[str], rgs: list[str],
                         management_groups: list[str] | None = None) -> list[dict[str, Any]]:
        all_queries: list[str] = []
        for table, types in GRAPH_TYPES.items():
            # Every resource (resource-group checks judge what else a group holds); the other
            # tables only for the types the catalog reads.
            query = table
            if table != "resources":
                query += " | where type in~ (" + ", ".join(f"'{t.lower()}'" for t in types) + ")"
            queries = [query]
            if rgs and table == "resources":
                queries = [query + " | where resourceGroup in~ (" + ", ".join(f"'{g}'" for g in rgs) + ")",
                           query + " | where type in~ (" + ", ".join(f"'{t}'" for t in sorted(_WIDE)) + ")"]
            all_queries.extend(q + " | order by id asc" for q in queries)
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        jobs = [functools.partial(self.graph_query, subs, q, management_groups=management_groups)
                for q in all_queries]
        for rows in self._parallel(jobs):
            for row in rows:
                if row["id"].lower() in seen:  # a watcher inside -g comes back from both queries
                    continue
                seen.add(row["id"].lower())
                for column in ("subscriptionId", "resourceGroup", "tenantId"):
                    row.pop(column, None)
                alias = GRAPH_TYPE_ALIASES.get(str(row.get("type") or "").lower())
                if alias:  # a resource group as ARM's list shows it
                    row["type"] = alias
                # as ARM's own answer: without the columns it leaves out (and 10,000 rows hold
                # 70,000 fewer keys)
                for column in _GRAPH_EMPTY_COLUMNS:
                    if row.get(column, 0) in (None, ""):
                        del row[column]
                out.append(row)
        return out

    def _list_inventory(self, subs: list[str], rgs: list[str], groups: list[dict[str, Any]],
                        unreadable: dict[str, str]) -> list[dict[str, Any]]:
        """Typed list calls, one per type and subscription: slower, but works without Graph."""
        out: list[dict[str, Any]] = []
        for sub in subs:
            for rtype, lister in _LISTERS.items():
                try:
                    items = [wire(x) for x in lister(self, sub)]
                except ZtwError as exc:
                    unreadable[rtype.lower()] = exc.message
                    continue
                except ARM_ERRORS as exc:
                    unreadable[rtype.lower()] = translate(exc, f"/subscriptions/{sub}").message
                    continue
                out.extend(i for i in items if _in_scope(i, rgs))
        for sub in subs:  # everything else, by ARM's generic list (no properties, but ids and types)
            try:
                known = {r["id"].lower() for r in out}
                for item in self.client("resources", sub).resources.list():
                    res = wire(item)
                    in_scope = not rgs or (rid.parse(res["id"]).resource_group or "").lower() in rgs
                    if res["id"].lower() not in known and in_scope:
                        out.append(res)
            except ARM_ERRORS as exc:
                unreadable["microsoft.resources/resources"] = translate(exc, f"/subscriptions/{sub}").message
        out = self._with_properties(out, unreadable)
        for group in groups:  # some providers only list per resource group
            p = rid.parse(group["id"])
            try:
                gws = self.client("network", p.subscription or "").virtual_network_gateways.list(p.name)
                out.extend(wire(x) for x in gws)
            except ARM_ERRORS as exc:
                unreadable["microsoft.network/virtualnetworkgateways"] = translate(exc, group["id"]).message
        vms = [r for r in out if rid.type_of(r["id"]).lower() == "microsoft.compute/virtualmachines"]
        for vm in vms:
            p = rid.parse(vm["id"])
            try:
                exts = self.client("compute", p.subscription or "").virtual_machine_extensions.list(
                    p.resource_group, p.name)
                out.extend(wire(e) for e in (exts.value or []))
            except ARM_ERRORS as exc:
                unreadable["microsoft.compute/virtualmachines/extensions"] = translate(exc, vm["id"]).message
        return out

    def _with_properties(self, items: list[dict[str, Any]], unreadable: dict[str, str]) -> list[dict[str, Any]]:
        """Resources of a type the catalog reads that a generic list gave without properties,
        read each by GET (in a small thread pool)."""
        wanted = {t.lower() for t in GRAPH_TYPES["resources"]}
        bare = [i for i, r in enumerate(items)
                if "properties" not in r and rid.type_of(r["id"]).lower() in wanted]
        if not bare:
            return items
        out = list(items)
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            reads = [(i, pool.submit(self.read, items[i]["id"])) for i in bare]
            for i, fut in reads:
                try:
                    res = fut.result()
                except ZtwError as exc:
                    unreadable[rid.type_of(items[i]["id"]).lower()] = exc.message
                    continue
                if res is not None:
                    out[i] = res
        return out

    def _child_inventory(self, inv: Inventory, unreadable: dict[str, str], reads: Sequence[ChildRead] | None,
                         say: Callable[[str], None]) -> None:
        """Children and extension resources that Resource Graph does not index, read per parent
        concurrently within the budgets, and only where a selected check needs them (and the
        parent's kind has such a child). Reads run in rounds: a check may need one child only
        once another read says so."""
        wanted: dict[tuple[str, str], list[ChildRead | None]] = {}
        for parent_type, pairs in _CHILD_READS.items():
            for child_type, _reader in pairs:
                if reads is None:
                    wanted[(parent_type, child_type.lower())] = [None]
        for r in reads or []:
            key = (r.of.lower(), r.child.lower())
            if any(c.lower() == key[1] for c, _ in _CHILD_READS.get(key[0], [])):
                wanted.setdefault(key, []).append(r)
        readers = {(p, c.lower()): (c, fn) for p, pairs in _CHILD_READS.items() for c, fn in pairs}
        done: set[tuple[str, str]] = set()
        sent = 0
        while True:
            jobs: list[tuple[str, str, Callable[[], list[dict[str, Any]]], str]] = []
            for (parent_type, child_type), needs in wanted.items():
                child_name, reader = readers[(parent_type, child_type)]
                parents = [parent for parent in inv.of_type(parent_type)
                           if (parent["id"].lower(), child_type) not in done and _has_service(parent, child_name)
                           and any(n is None or n.needed(parent, inv) for n in needs)]
                for parent in parents:
                    done.add((parent["id"].lower(), child_type))
                if child_type in _BULK_READS:  # one paged list per subscription, per parent only where it falls short
                    parents = _BULK_READS[child_type](self, parents, unreadable)
                for parent in parents:
                    jobs.append((child_name, parent["id"], functools.partial(reader, self, parent),
                                 str(parent.get("location") or "")))
            if not jobs:
                return
            total = sent + len(jobs)

            def tick(n: int, base: int = sent, total: int = total) -> None:
                if n % 50 == 0 or n == total - base:
                    low = self.pacer.lowest()
                    budget = f"; lowest budget: {describe(*low)}" if low else ""
                    say(f"Child resources: {base + n}/{total} read{budget}")

            # interleaved across (subscription, region): in job order, every worker would wait on
            # the one budget that ran out while the others' budgets sat unused
            order = _interleaved([(rid.subscription_of(p) or "").lower() + "|" + r.lower() for _t, p, _j, r in jobs])
            ran = self._parallel([functools.partial(_guarded, jobs[i][2]) for i in order],
                                 [jobs[i][3] for i in order], tick)
            results: list[Any] = [None] * len(jobs)
            for i, result in zip(order, ran, strict=True):
                results[i] = result
            sent = total
            for (child_type, parent_id, _job, _region), result in zip(jobs, results, strict=True):
                if isinstance(result, HttpResponseError) and result.status_code == 404:
                    continue
                if isinstance(result, Exception):
                    unreadable[child_type.lower()] = translate(result, parent_id, "reading").message
                    continue
                for child in result:
                    inv.add(child)

    def _subscription_inventory(self, subs: list[str], unreadable: dict[str, str],
                                reads: Sequence[ChildRead] | None, inv: Inventory) -> list[dict[str, Any]]:
        """Settings listed per subscription, each only for the subscriptions a selected check
        needs it for (`of = "Microsoft.Resources/subscriptions"` in the catalog; None: all)."""
        def needed(sub: str, rtype: str) -> bool:
            if reads is None:
                return True
            scope = {"id": f"/subscriptions/{sub}", "name": sub, "type": SUBSCRIPTION}
            return any(r.needed(scope, inv) for r in reads
                       if r.of.lower() == SUBSCRIPTION.lower() and r.child.lower() == rtype.lower())

        jobs = [(sub, rtype, functools.partial(_guarded, functools.partial(reader, self, sub)))
                for sub in subs for rtype, reader in _SUBSCRIPTION_READS.items() if needed(sub, rtype)]
        out: list[dict[str, Any]] = []
        for (sub, rtype, _job), result in zip(jobs, self._parallel([j for *_x, j in jobs]), strict=True):
            if isinstance(result, HttpResponseError) and result.status_code == 404:
                continue
            if isinstance(result, Exception):
                unreadable[rtype.lower()] = translate(result, f"/subscriptions/{sub}").message
                continue
            out.extend(wire(x) for x in result)
        return out


def _interleaved(keys: Sequence[str]) -> list[int]:
    """Indexes of `keys` taking one of each key in turn (round robin), each key's own in order."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    queues = list(groups.values())
    return [q[depth] for depth in range(max(map(len, queues), default=0)) for q in queues if depth < len(q)]


def _guarded(job: Callable[[], Any]) -> Any:
    """The job's result, or the ARM error it raised (a bug still propagates)."""
    try:
        result = job()
        return list(result) if not isinstance(result, list) else result
    except ARM_ERRORS as exc:
        return exc


# ---- per-type readers ----------------------------------------------------------------------

def _rg_name(res: dict[str, Any]) -> tuple[str, str, str]:
    p = rid.parse(res["id"])
    return p.subscription or "", p.resource_group or "", p.name


def _arm(gw: Gateway, resource_id: str) -> Any:
    """The client whose pipeline carries a raw read: every client is built from the same gateway
    kwargs (transport, retry, auth, pacing hooks), and this one is built for every plan anyway,
    so a raw read imports no SDK package (storage, security, monitor, compute: ~0.2 s each)."""
    return gw.client("resources", rid.subscription_of(resource_id) or "")


def _storage_request(gw: Gateway, res: dict[str, Any], path: str) -> tuple[Any, str]:
    """The client to send a read of `path` under the account through, and its URL."""
    return _arm(gw, res["id"]), f"{res['id']}/{path}?api-version={API_VERSIONS['microsoft.storage']}"


def _storage_children(gw: Gateway, res: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """A storage account's child list as ARM's JSON: the typed list built an SDK model per item
    only for `wire` to turn it back into this JSON."""
    return _all_pages(*_storage_request(gw, res, path))


def _blob_services(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    return _storage_children(gw, res, "blobServices")  # no check reads these: only all-children plans


def _file_services(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    """The account's one fileServices/default, by GET rather than by listing fileServices: the
    same JSON, but Storage counts a GET against its 800 reads per 5 minutes and a list against
    its 100 lists, the budget that binds at scale (notes §7)."""
    return [_raw_json(*_storage_request(gw, res, "fileServices/default"))]


def _blob_containers(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    return _storage_children(gw, res, "blobServices/default/containers")


def _file_shares(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    return _storage_children(gw, res, "fileServices/default/shares")


def _defender_for_storage(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    """The account's Defender setting (404, ResourceNotFoundError, where it has none)."""
    version = API_VERSIONS["microsoft.security/defenderforstoragesettings"]
    url = f"{res['id']}/providers/Microsoft.Security/defenderForStorageSettings/current?api-version={version}"
    return [_raw_json(_arm(gw, res["id"]), url)]


def _diagnostic_settings_of(gw: Gateway, scope: str) -> list[dict[str, Any]]:
    """A resource's or subscription's diagnostic settings: one GET, as the typed list sent (the
    collection has no nextLink)."""
    version = API_VERSIONS["microsoft.insights/diagnosticsettings"]
    page = _raw_json(_arm(gw, scope), f"{scope}/providers/Microsoft.Insights/diagnosticSettings?api-version={version}")
    return list(page.get("value") or [])


def _diagnostic_settings(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    return _diagnostic_settings_of(gw, res["id"])


def _vm_instance_view(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    """GET {vm}/instanceView: the agent's and extensions' own status, which neither Resource Graph
    nor a VM GET carries. It is not a resource of its own, so it goes where ARM's
    `$expand=instanceView` puts it, the VM's properties.instanceView."""
    view = _raw_json(_arm(gw, res["id"]), f"{res['id']}/instanceView?api-version={API_VERSIONS['microsoft.compute']}")
    res.setdefault("properties", {})["instanceView"] = view
    return []


def _vm_instance_views(gw: Gateway, vms: list[dict[str, Any]], unreadable: dict[str, str]) -> list[dict[str, Any]]:
    """Every VM's instance view from one paged `virtualMachines?statusOnly=true` list per
    subscription (VirtualMachines_ListAll) instead of a GET per VM. Returns the VMs still to read
    one by one: those the list left out, and running ones deployed with the agent whose listed
    view has no agent status (a stopped VM's agent, or one deployed without it, reports nothing
    either way)."""
    by_sub: dict[str, list[dict[str, Any]]] = {}
    for vm in vms:
        by_sub.setdefault((rid.subscription_of(vm["id"]) or "").lower(), []).append(vm)
    if not by_sub:
        return []
    version = API_VERSIONS["microsoft.compute"]
    subs = list(by_sub)
    jobs = [functools.partial(_guarded, functools.partial(
        _all_pages, gw.client("resources", sub),
        f"/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?api-version={version}&statusOnly=true"))
        for sub in subs]
    views: dict[str, dict[str, Any]] = {}
    for result in gw._parallel(jobs):
        if isinstance(result, Exception):  # the per-VM reads below then say what is unreadable
            log.info("instance views by list unreadable: %s", _first_line(result))
            continue
        for item in result:
            view = get_path(item, ("properties", "instanceView"))
            if isinstance(item.get("id"), str) and isinstance(view, dict):
                views[item["id"].lower()] = view
    rest = []
    for vm in vms:
        view = views.get(vm["id"].lower())
        if view is None:
            rest.append(vm)
            continue
        vm.setdefault("properties", {})["instanceView"] = view
        running = any(str(s.get("code") or "").lower() == "powerstate/running" for s in view.get("statuses") or [])
        no_agent = any(get_path(vm, ("properties", "osProfile", cfg, "provisionVMAgent")) is False
                       for cfg in ("windowsConfiguration", "linuxConfiguration"))
        if running and "vmAgent" not in view and not no_agent:
            rest.append(vm)
    return rest


# Child reads that also have a list form across a subscription: (gateway, parents, unreadable)
# -> the parents still to read one by one.
_BULK_READS: dict[str, Callable[[Gateway, list[dict[str, Any]], dict[str, str]], list[dict[str, Any]]]] = {
    "microsoft.compute/virtualmachines/instanceview": _vm_instance_views,
}


# The typed operations' error map: a raw read raises what they raise (translate() tells a
# refused sign-in by ClientAuthenticationError).
_ERROR_MAP: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError,
    304: ResourceNotModifiedError}


def _raw_json(client: Any, url: str) -> dict[str, Any]:
    """ARM's JSON for one GET through the client's own pipeline (retry, auth, pacing hooks),
    with no SDK model in between."""
    from azure.core.rest import HttpRequest

    resp = client.send_request(HttpRequest("GET", url, headers={"Accept": "application/json"}))
    if resp.status_code != 200:  # the typed GETs accept nothing else: a 204 is no resource to hold
        map_error(status_code=resp.status_code, response=resp, error_map=_ERROR_MAP)
        raise HttpResponseError(response=resp, error_format=ARMErrorFormat)
    return resp.json() if resp.content else {}  # type: ignore[no-any-return]


def next_page_url(next_link: str, first_url: str) -> str:
    """ARM's `nextLink` with the first request's api-version, as the typed operations send it:
    a provider may leave it out of the link or give another one."""
    version = parse_qs(urlsplit(first_url).query).get("api-version")
    if not version:
        return next_link
    parts = urlsplit(next_link)
    if parse_qs(parts.query).get("api-version") == version:
        return next_link  # as ARM gave it, byte for byte
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "api-version"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("api-version", version[0])])))


def _all_pages(client: Any, url: str) -> list[dict[str, Any]]:
    """Every `value` of a raw ARM list, following `nextLink` (no typed client for these lists,
    or none worth a model per item)."""
    out: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        page = _raw_json(client, next_url)
        out.extend(page.get("value", []))
        next_url = next_page_url(page["nextLink"], url) if page.get("nextLink") else None
    return out


def _vault_keys(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    """The vault's keys (management plane: names, type, URIs, enabled; never key material), which
    Resource Graph does not index. A vault from the generic list has no properties: read it too."""

    sub = rid.subscription_of(res["id"]) or ""
    client = gw.client("resources", sub)
    if not res.get("properties"):  # ARM's errors propagate as such: the pool records them as unreadable
        res.update(wire(client.resources.get_by_id(res["id"], api_version=API_VERSIONS["microsoft.keyvault"])))
    return _all_pages(client, f"{res['id']}/keys?api-version={API_VERSIONS['microsoft.keyvault']}")


def _rule_collection_groups(gw: Gateway, res: dict[str, Any]) -> list[dict[str, Any]]:
    sub, rg, name = _rg_name(res)
    return [wire(x) for x in gw.client("network", sub).firewall_policy_rule_collection_groups.list(rg, name)]


# Storage kinds without a service: ARM answers 400 FeatureNotSupportedForAccount, which is no
# read error. Every other kind (StorageV2, Storage, FileStorage) has fileServices/default.
_NO_SERVICE = {"blobservices": {"filestorage"}, "fileservices": {"blobstorage", "blockblobstorage"}}


def _has_service(res: dict[str, Any], child_type: str) -> bool:
    parts = child_type.lower().split("/")
    if parts[:2] != ["microsoft.storage", "storageaccounts"] or len(parts) < 3:
        return True
    return str(res.get("kind") or "StorageV2").lower() not in _NO_SERVICE.get(parts[2], set())


_CHILD_READS: dict[str, list[tuple[str, Callable[[Gateway, dict[str, Any]], list[dict[str, Any]]]]]] = {
    "microsoft.storage/storageaccounts": [
        ("Microsoft.Storage/storageAccounts/blobServices", _blob_services),
        ("Microsoft.Storage/storageAccounts/fileServices", _file_services),
        ("Microsoft.Storage/storageAccounts/blobServices/containers", _blob_containers),
        ("Microsoft.Storage/storageAccounts/fileServices/shares", _file_shares),
        ("Microsoft.Security/defenderForStorageSettings", _defender_for_storage),
    ],
    "microsoft.compute/virtualmachines": [("Microsoft.Compute/virtualMachines/instanceView", _vm_instance_view)],
    "microsoft.keyvault/vaults": [("Microsoft.KeyVault/vaults/keys", _vault_keys)],
    "microsoft.network/azurefirewalls": [("Microsoft.Insights/diagnosticSettings", _diagnostic_settings)],
    "microsoft.network/publicipaddresses": [("Microsoft.Insights/diagnosticSettings", _diagnostic_settings)],
    "microsoft.network/firewallpolicies": [
        ("Microsoft.Network/firewallPolicies/ruleCollectionGroups", _rule_collection_groups)],
}


def _settings(gw: Gateway, sub: str) -> Iterable[Any]:
    url = f"/subscriptions/{sub}/providers/Microsoft.Security/settings"
    return _all_pages(gw.client("resources", sub), f"{url}?api-version={API_VERSIONS['microsoft.security/settings']}")


def _activity_log(gw: Gateway, sub: str) -> Iterable[Any]:
    return _diagnostic_settings_of(gw, f"/subscriptions/{sub}")


def _policy_assignments(gw: Gateway, sub: str) -> Iterable[Any]:
    # No typed policy client is installed; ARM's generic list is enough for assignments.

    client = gw.client("resources", sub)
    url = f"/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments"
    return _all_pages(client, f"{url}?api-version={API_VERSIONS['microsoft.authorization/policyassignments']}")


def _jit_policies(gw: Gateway, sub: str) -> Iterable[Any]:
    """JIT access policies by the provider's own list call (every region of the subscription at
    once: a policy may sit in a region no VM in scope is in); Resource Graph does not index them."""
    url = f"/subscriptions/{sub}/providers/Microsoft.Security/jitNetworkAccessPolicies"
    version = API_VERSIONS["microsoft.security/locations/jitnetworkaccesspolicies"]
    return _all_pages(gw.client("resources", sub), f"{url}?api-version={version}")


# Lists per subscription, by the type they hold; a catalog read `of` SUBSCRIPTION asks for one.
SUBSCRIPTION = "Microsoft.Resources/subscriptions"
_SUBSCRIPTION_READS: dict[str, Callable[[Gateway, str], Iterable[Any]]] = {
    "Microsoft.Security/settings": _settings,
    "Microsoft.Insights/diagnosticSettings": _activity_log,
    "Microsoft.Authorization/policyAssignments": _policy_assignments,
    "Microsoft.Security/locations/jitNetworkAccessPolicies": _jit_policies,
}


def _paged(items: Any) -> Iterable[Any]:
    value = getattr(items, "value", None)
    return value if value is not None and not hasattr(items, "by_page") else items


def _generic(rtype: str) -> Callable[[Gateway, str], Iterable[Any]]:
    """Types without a typed client here: ARM's generic list (ids, names, locations; no properties)."""
    return lambda g, s: g.client("resources", s).resources.list(filter=f"resourceType eq '{rtype}'")


_LISTERS: dict[str, Callable[[Gateway, str], Iterable[Any]]] = {
    "Microsoft.OperationalInsights/workspaces": _generic("Microsoft.OperationalInsights/workspaces"),
    "Microsoft.KeyVault/vaults": _generic("Microsoft.KeyVault/vaults"),
    "Microsoft.Insights/actionGroups": lambda g, s: g.client("monitor", s).action_groups.list_by_subscription_id(),
    "Microsoft.Insights/metricAlerts": lambda g, s: g.client("monitor", s).metric_alerts.list_by_subscription(),
    "Microsoft.Security/locations/alerts": lambda g, s: g.client("security", s).alerts.list(),
    "Microsoft.Storage/storageAccounts": lambda g, s: g.client("storage", s).storage_accounts.list(),
    "Microsoft.Compute/virtualMachines": lambda g, s: g.client("compute", s).virtual_machines.list_all(),
    "Microsoft.Compute/disks": lambda g, s: g.client("compute", s).disks.list(),
    "Microsoft.Compute/diskEncryptionSets": lambda g, s: g.client("compute", s).disk_encryption_sets.list(),
    "Microsoft.Network/networkInterfaces": lambda g, s: g.client("network", s).network_interfaces.list_all(),
    "Microsoft.Network/networkSecurityGroups": lambda g, s: g.client("network", s).network_security_groups.list_all(),
    "Microsoft.Network/virtualNetworks": lambda g, s: g.client("network", s).virtual_networks.list_all(),
    "Microsoft.Network/routeTables": lambda g, s: g.client("network", s).route_tables.list_all(),
    "Microsoft.Network/publicIPAddresses": lambda g, s: g.client("network", s).public_ip_addresses.list_all(),
    "Microsoft.Network/azureFirewalls": lambda g, s: g.client("network", s).azure_firewalls.list_all(),
    "Microsoft.Network/firewallPolicies": lambda g, s: g.client("network", s).firewall_policies.list_all(),
    "Microsoft.Network/bastionHosts": lambda g, s: g.client("network", s).bastion_hosts.list(),
    "Microsoft.Network/applicationSecurityGroups":
        lambda g, s: g.client("network", s).application_security_groups.list_all(),
    "Microsoft.Network/ddosProtectionPlans": lambda g, s: g.client("network", s).ddos_protection_plans.list(),
    "Microsoft.Network/networkWatchers": lambda g, s: g.client("network", s).network_watchers.list_all(),
    "Microsoft.Network/applicationGateways": lambda g, s: g.client("network", s).application_gateways.list_all(),
    "Microsoft.Network/privateEndpoints": lambda g, s: g.client("network", s).private_endpoints.list_by_subscription(),
    "Microsoft.Security/pricings": lambda g, s: _paged(g.client("security", s).pricings.list(f"subscriptions/{s}")),
    "Microsoft.Security/assessments": lambda g, s: g.client("security", s).assessments.list(f"subscriptions/{s}"),
    "Microsoft.Security/secureScores": lambda g, s: g.client("security", s).secure_scores.list(),
    "Microsoft.Authorization/roleAssignments":
        lambda g, s: g.client("authorization", s).role_assignments.list_for_subscription(),
    # Built-in and custom roles, as Resource Graph's authorizationresources lists them.
    "Microsoft.Authorization/roleDefinitions":
        lambda g, s: g.client("authorization", s).role_definitions.list(f"/subscriptions/{s}"),
}
