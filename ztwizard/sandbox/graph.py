"""Resource Graph for the sandbox: the query shapes the wizard sends, served from the store.

No KQL engine: a query is `<table>` followed by `where <column> in~ (...)` / `=~ '...'` filters on
type, subscriptionId, resourceGroup, name or id, and an optional `order by id [asc|desc]`.
Anything else is answered 400 InvalidQuery, so an unsupported query fails loudly."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .store import parse

TABLES = ("resources", "resourcecontainers", "securityresources", "authorizationresources")

# Resource Graph names resource groups by their place under the subscription, in the
# resourcecontainers table ("Azure Resource Graph table and resource type reference":
# microsoft.resources/subscriptions/resourcegroups). Store type -> the type Graph shows.
GRAPH_TYPE_NAMES = {"microsoft.resources/resourcegroups": "microsoft.resources/subscriptions/resourcegroups"}
STORE_TYPE_NAMES = {v: k for k, v in GRAPH_TYPE_NAMES.items()}

# Child types Resource Graph does not index as rows of their own (lower case).
NOT_INDEXED = {
    "microsoft.network/virtualnetworks/subnets",
    "microsoft.network/virtualnetworks/virtualnetworkpeerings",
    "microsoft.network/networksecuritygroups/securityrules",
    "microsoft.network/routetables/routes",
    "microsoft.storage/storageaccounts/blobservices",
    "microsoft.storage/storageaccounts/fileservices",
    "microsoft.insights/diagnosticsettings",
    "microsoft.security/defenderforstoragesettings",
    "microsoft.network/firewallpolicies/rulecollectiongroups",
    # not in Resource Graph's supported-tables reference: read with the provider's list call
    "microsoft.security/locations/jitnetworkaccesspolicies",
    "microsoft.security/jitnetworkaccesspolicies",
}

COLUMNS = ("id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId",
           "managedBy", "sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation")
FILTER_COLUMNS = {"type": "type", "subscriptionid": "subscriptionId", "resourcegroup": "resourceGroup",
                  "name": "name", "id": "id"}

_STR = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_WHERE = re.compile(
    rf"^where\s+(?P<col>\w+)\s+(?:(?P<in>in~|in)\s*\((?P<list>\s*(?:{_STR})(?:\s*,\s*(?:{_STR}))*\s*)\)"
    rf"|(?P<op>=~|==)\s*(?P<one>{_STR}))$", re.IGNORECASE | re.DOTALL)
_ORDER = re.compile(r"^(?:order|sort)\s+by\s+id(?:\s+(?P<dir>asc|desc))?$", re.IGNORECASE)


class InvalidQuery(ValueError):
    """The query is not one of the shapes the sandbox understands."""


@dataclass
class Query:
    table: str
    filters: list[tuple[str, set[str]]] = field(default_factory=list)  # column, lower-cased values
    descending: bool = False

    def signature(self) -> tuple[object, ...]:
        return (self.table, tuple((c, tuple(sorted(v))) for c, v in self.filters), self.descending)


def _strings(text: str) -> list[str]:
    return [m[1:-1] for m in re.findall(_STR, text)]


def parse_query(text: str) -> Query:
    stages = [s.strip() for s in (text or "").split("|")]
    if not stages or not stages[0]:
        raise InvalidQuery("The query is empty.")
    table = stages[0].lower()
    if table not in TABLES:
        raise InvalidQuery(f"Table '{stages[0]}' is not supported; use one of {', '.join(TABLES)}.")
    q = Query(table)
    ordered = False
    for stage in stages[1:]:
        m = _WHERE.match(stage)
        if m and not ordered:
            col = FILTER_COLUMNS.get(m["col"].lower())
            if col is None:
                raise InvalidQuery(f"Filtering on '{m['col']}' is not supported; use type, subscriptionId, "
                                   "resourceGroup, name or id.")
            values = _strings(m["list"]) if m["list"] is not None else _strings(m["one"])
            q.filters.append((col, {v.lower() for v in values}))
            continue
        m = _ORDER.match(stage)
        if m and not ordered:
            ordered = True
            q.descending = (m["dir"] or "asc").lower() == "desc"
            continue
        raise InvalidQuery(f"The query stage '{stage}' is not supported; the sandbox answers "
                           "`<table> | where <column> in~ (...) | order by id asc`.")
    return q


def graph_type(rtype: str) -> str:
    """The lower-cased type Resource Graph shows (and filters on) for a stored type."""
    t = rtype.lower()
    return GRAPH_TYPE_NAMES.get(t, t)


def table_of(rtype: str) -> str | None:
    t = rtype.lower()
    if t in NOT_INDEXED:
        return None
    if t in GRAPH_TYPE_NAMES:
        return "resourcecontainers"
    if t.startswith("microsoft.security/"):
        return "securityresources"
    if t.startswith("microsoft.authorization/"):
        return "authorizationresources"
    return "resources"


def row(res: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """A resource as Resource Graph shows it: lower-cased type and resource group, every column."""
    p = parse(res["id"])
    out: dict[str, Any] = {c: res.get(c) for c in COLUMNS}
    out["type"] = graph_type(res["type"])
    out["subscriptionId"] = p.subscription or ""
    out["resourceGroup"] = (p.resource_group or "").lower()
    out["tenantId"] = tenant_id
    out["name"] = res.get("name") or p.name
    out["kind"] = res.get("kind") or ""
    out["location"] = res.get("location") or ""
    out["tags"] = res.get("tags") or {}
    out["properties"] = res.get("properties") or {}
    return out


def encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        pad = "=" * (-len(token) % 4)
        return str(json.loads(base64.urlsafe_b64decode(token + pad))["after"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidQuery("The $skipToken is not one this sandbox issued.") from exc


def matches(res: dict[str, Any], q: Query) -> bool:
    p = parse(res["id"])
    values = {"type": graph_type(res["type"]), "subscriptionId": (p.subscription or "").lower(),
              "resourceGroup": (p.resource_group or "").lower(), "name": (res.get("name") or "").lower(),
              "id": res["id"].lower()}
    return all(values[col] in wanted for col, wanted in q.filters)
