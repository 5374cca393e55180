"""What the sandbox checks in a request before it acts: the api-version per resource type, and a
PUT/PATCH body against the operation's schema (specs/schemas.json, derived from the REST specs by
scripts/derive_schemas.py).

As ARM and its providers do: an unknown api-version is refused (400 NoRegisteredProviderFound,
or InvalidApiVersionParameter for ARM's own endpoints); a body of the wrong shape, a missing
required property or a value outside an enum is refused (400); read-only and unknown properties
are ignored, but counted in a `Stats`, so tests can assert the wizard sends none."""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from functools import cache
from importlib import resources
from typing import Any

Refusal = tuple[int, str, str]  # (status, ARM error code, message)

# The api-versions this sandbox answers, per provider namespace or resource type (a type entry
# wins over its namespace). Those the wizard and the installed azure-mgmt clients send.
SUPPORTED_API_VERSIONS: dict[str, tuple[str, ...]] = {
    "microsoft.resources": ("2022-12-01", "2025-04-01"),
    "microsoft.storage": ("2026-09-01",),
    "microsoft.network": ("2026-03-01",),
    "microsoft.compute": ("2026-04-01",),
    "microsoft.compute/disks": ("2026-03-02",),
    "microsoft.compute/snapshots": ("2026-03-02",),
    "microsoft.compute/diskencryptionsets": ("2026-03-02",),
    "microsoft.security": ("2024-04-01",),
    "microsoft.security/pricings": ("2024-01-01",),
    "microsoft.security/settings": ("2022-05-01",),
    "microsoft.security/defenderforstoragesettings": ("2022-12-01-preview",),
    "microsoft.security/assessments": ("2021-06-01",),
    "microsoft.security/securescores": ("2020-01-01",),
    "microsoft.security/locations/jitnetworkaccesspolicies": ("2020-01-01",),
    "microsoft.security/jitnetworkaccesspolicies": ("2020-01-01",),
    "microsoft.security/alerts": ("2022-01-01",),
    "microsoft.security/securitycontacts": ("2023-12-01-preview", "2020-01-01-preview"),
    "microsoft.authorization": ("2022-04-01",),
    "microsoft.authorization/policyassignments": ("2023-04-01", "2025-01-01", "2026-06-01"),
    "microsoft.authorization/policydefinitions": ("2025-01-01", "2026-06-01"),
    "microsoft.authorization/policysetdefinitions": ("2025-01-01", "2026-06-01"),
    "microsoft.authorization/policyexemptions": ("2022-07-01-preview", "2026-06-01"),
    "microsoft.resources/deployments": ("2022-12-01", "2025-04-01", "2026-06-01"),
    "microsoft.authorization/locks": ("2020-05-01",),
    "microsoft.insights": ("2021-05-01-preview",),
    "microsoft.insights/metricalerts": ("2018-03-01",),
    "microsoft.insights/actiongroups": ("2023-01-01",),
    "microsoft.operationalinsights": ("2022-10-01",),
    "microsoft.keyvault": ("2023-07-01",),
    "microsoft.resourcegraph": ("2021-03-01", "2022-10-01", "2024-04-01"),
    "microsoft.features": ("2021-07-01",),
    "microsoft.compute/skus": ("2021-07-01",),
}

# Enums longer than this are catalogues the platform extends all the time (VM sizes, SKUs): a value
# outside the published list is not refused. Shorter ones (Allow/Deny, TLS1_0..TLS1_3) are.
MAX_CLOSED_ENUM = 24

# The code each provider answers a body it cannot accept with (network: its generic
# "Cannot parse the request"; the others ARM's InvalidRequestContent).
_BAD_BODY_CODE = {"microsoft.network": "InvalidRequestFormat"}


class Stats:
    """Read-only and unknown properties seen in accepted bodies: totals as (type, path) -> count,
    and `requests`, one (method, type, read-only paths, unknown paths) per request that sent any
    (the most recent 10,000), so a test can name the request that sent them."""

    def __init__(self) -> None:
        self.read_only: Counter[tuple[str, str]] = Counter()
        self.unknown: Counter[tuple[str, str]] = Counter()
        self.requests: deque[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = deque(maxlen=10_000)
        self._lock = threading.Lock()

    def add(self, rtype: str, read_only: list[str], unknown: list[str], method: str = "PUT") -> None:
        with self._lock:
            self.read_only.update((rtype, p) for p in read_only)
            self.unknown.update((rtype, p) for p in unknown)
            if read_only or unknown:
                self.requests.append((method, rtype, tuple(read_only), tuple(unknown)))

    def clear(self) -> None:
        with self._lock:
            self.read_only.clear()
            self.unknown.clear()
            self.requests.clear()


def request_type(path: str, method: str) -> str:
    """The resource type a request path addresses, lower-cased ('microsoft.resources' for ARM's
    own endpoints, '' for the sandbox's operation monitors)."""
    segs = [s for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    if not low or low[0] == "sandbox":
        return ""
    if "providers" not in low:
        return "microsoft.resources"
    if "microsoft.features" in low:  # …/providers/Microsoft.Features/providers/{ns}/features/{name}
        return "microsoft.features"
    at = max(i for i, s in enumerate(low) if s == "providers")
    rest = low[at + 1:]
    if not rest:
        return "microsoft.resources"
    ns, tail = rest[0], rest[1:]
    if len(tail) % 2 == 1 and len(tail) >= 3 and (method == "POST" or tail[-1] == "instanceview"):
        tail = tail[:-1]  # an action or a view on a resource: the resource's own type
    return "/".join([ns, *tail[0::2]])


def _supported(rtype: str) -> tuple[str, ...] | None:
    parts = rtype.split("/")
    for n in range(len(parts), 0, -1):
        versions = SUPPORTED_API_VERSIONS.get("/".join(parts[:n]))
        if versions is not None:
            return versions
    return None


def supported_api_versions(method: str, path: str) -> tuple[str, ...] | None:
    """The api-versions the sandbox answers for this request (None: any)."""
    rtype = request_type(path, method.upper())
    return _supported(rtype) if rtype else None


def api_version_refusal(method: str, path: str, api_version: str) -> Refusal | None:
    """ARM's answer to an api-version the type does not support, or None."""
    rtype = request_type(path, method.upper())
    versions = _supported(rtype) if rtype else None
    if versions is None or api_version in versions:
        return None
    listed = ", ".join(versions)
    if rtype == "microsoft.resources":
        return (400, "InvalidApiVersionParameter",
                f"The api-version '{api_version}' is invalid. The supported versions are '{listed}'.")
    shown = rtype.split("/", 1)[1] if "/" in rtype else rtype
    return (400, "NoRegisteredProviderFound",
            f"No registered resource provider found for location 'global' and API version '{api_version}' "
            f"for type '{shown}'. The supported api-versions are '{listed}'.")


# Required members the swagger leaves optional but the provider does not: a security rule's
# `properties` is flattened by the clients and not marked required, yet a rule without it has no
# protocol, access, priority or direction (required inside it), and Network refuses it.
_REQUIRED_BEYOND_SPEC: dict[str, tuple[str, ...]] = {"network.SecurityRule": ("properties",)}


@cache
def _schemas() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(__package__).joinpath("specs/schemas.json").read_text())
    for name, extra in _REQUIRED_BEYOND_SPEC.items():
        node = data["defs"][name]
        node["req"] = [*node.get("req", []), *(e for e in extra if e not in node.get("req", []))]
    return data


def covered_types() -> dict[str, str]:
    """Resource type -> the api-version its body schema was derived at."""
    return {t: e["api_version"] for t, e in _schemas()["types"].items()}


@cache
def location_is_read_only(rtype: str) -> bool:
    """The spec marks the type's `location` read-only: the provider answers with its own."""
    ref = ((_schemas()["types"].get(rtype.lower()) or {}).get("PUT") or {}).get("ref")
    node = _schemas()["defs"].get(ref) if ref else None
    return bool(((node or {}).get("p", {}).get("location") or {}).get("ro"))


class _Walk:
    def __init__(self, defs: dict[str, Any], method: str, normalise: bool = False) -> None:
        self.defs = defs
        self.patch = method == "PATCH"
        self.normalise = normalise
        self.problems: list[str] = []
        self.read_only: list[str] = []
        self.unknown: list[str] = []
        # where they are: (the object holding the key, the key, its path of keys and indices)
        self.ignored: list[tuple[dict[str, Any], str, tuple[str | int, ...], bool]] = []

    def node(self, spec: dict[str, Any]) -> dict[str, Any]:
        while "ref" in spec:
            ref = self.defs.get(spec["ref"]) or {"t": "any"}
            spec = {**ref, **{k: v for k, v in spec.items() if k != "ref"}}
        return spec

    def check(self, value: Any, spec: dict[str, Any], path: str, trail: tuple[str | int, ...] = ()) -> None:
        spec = self.node(spec)
        if value is None:
            return  # null clears or is ignored (provider's choice), never a shape error
        kind = spec.get("t", "any")
        if kind == "object":
            if not isinstance(value, dict):
                self.problems.append(f"'{path or 'body'}' must be an object")
                return
            self.members(value, spec, path, trail)
        elif kind == "array":
            if not isinstance(value, list):
                self.problems.append(f"'{path}' must be an array")
                return
            for i, item in enumerate(value):
                self.check(item, spec.get("items") or {"t": "any"}, f"{path}[{i}]", (*trail, i))
        elif kind == "string":
            if isinstance(value, (dict, list)):
                self.problems.append(f"'{path}' must be a string")
            elif "enum" in spec and len(spec["enum"]) <= MAX_CLOSED_ENUM and isinstance(value, str) \
                    and value.lower() not in {e.lower() for e in spec["enum"]}:
                allowed = ", ".join(spec["enum"])
                self.problems.append(f"'{path}' has the value '{value}', which is not one of: {allowed}")
        elif kind in ("boolean", "integer", "number"):
            if isinstance(value, (dict, list)):
                self.problems.append(f"'{path}' must be a {kind}")

    def members(self, value: dict[str, Any], spec: dict[str, Any], path: str, trail: tuple[str | int, ...]) -> None:
        disc = spec.get("disc")
        if disc and isinstance(value.get(disc), str):
            kinds = {k.lower(): v for k, v in (spec.get("kinds") or {}).items()}
            chosen = kinds.get(value[disc].lower())
            if chosen is not None:
                spec = self.node(chosen)
        props: dict[str, Any] = spec.get("p") or {}
        if "p" not in spec:
            return  # a free-form object (tags, settings): nothing to check inside
        lowered = {k.lower(): k for k in props}
        for k, v in value.items():
            sub = props.get(k) or props.get(lowered.get(k.lower(), ""))
            where = f"{path}.{k}" if path else k
            if sub is None:
                self.unknown.append(where)
                self.ignored.append((value, k, (*trail, k), False))
                continue
            if sub.get("ro") or self.node(sub).get("ro"):
                self.read_only.append(where)
                self.ignored.append((value, k, (*trail, k), True))
                continue
            self.check(v, sub, where, (*trail, k))
            if self.normalise and isinstance(v, str):
                node = self.node(sub)
                canon = next((e for e in node.get("enum") or () if isinstance(e, str) and e.lower() == v.lower()), v)
                value[k] = canon  # the provider answers with the spec's spelling ("tcp" -> "Tcp")
        if not self.patch:
            for name in spec.get("req") or []:
                if value.get(name) is None and not (props.get(name) or {}).get("ro"):  # null is not given
                    where = f"{path}.{name}" if path else name
                    self.problems.append(f"the required property '{where}' is missing")


def body_refusal(method: str, rtype: str, api_version: str, body: Any, stats: Stats | None = None,
                 *, normalise: bool = False, ignored: list[tuple[tuple[str | int, ...], bool]] | None = None
                 ) -> Refusal | None:
    """Check a PUT/PATCH body for `rtype` (lower-cased type); None when it is accepted. Read-only
    and unknown properties are counted in `stats`, not refused; with `ignored` given they are also
    taken out of `body` (as providers ignore them) and their paths, with whether each was
    read-only, appended to it. `normalise` rewrites enum values in `body` to the spec's casing,
    as the providers that normalise answer."""
    rtype = rtype.lower()
    code = _BAD_BODY_CODE.get(rtype.split("/")[0], "InvalidRequestContent")
    if not isinstance(body, dict):
        return 400, code, "The request content was invalid: the body must be a JSON object."
    entry = _schemas()["types"].get(rtype)
    if entry is None or method.upper() not in entry:
        spec: dict[str, Any] = {"t": "object", "p": {
            "properties": {"t": "object"}, "tags": {"t": "object"}, "sku": {"t": "object"},
            "identity": {"t": "object"}, "location": {"t": "string"}, "kind": {"t": "string"}}}
        walk = _Walk({}, "PATCH")  # no schema for this type: only the envelope's shape
        for k, v in body.items():
            if k in spec["p"]:
                walk.check(v, spec["p"][k], k)
    else:
        walk = _Walk(_schemas()["defs"], method.upper(), normalise)
        walk.check(body, entry[method.upper()], "")
        if stats is not None:
            stats.add(rtype, walk.read_only, walk.unknown, method.upper())
    tags = body.get("tags")
    if isinstance(tags, dict) and any(not isinstance(v, str) for v in tags.values()):
        walk.problems.append("every value of 'tags' must be a string")
    if walk.problems:
        more = f" (and {len(walk.problems) - 1} more)" if len(walk.problems) > 1 else ""
        return 400, code, f"The request content was invalid: {walk.problems[0]}{more}."
    if ignored is not None:
        for holder, k, trail, read_only in walk.ignored:
            holder.pop(k, None)
            ignored.append((trail, read_only))
    return None
