"""Parsing ARM resource ids: type, parent, subscription and resource group, case-insensitively."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value or ""))


@dataclass(frozen=True, slots=True)  # slots: the cache below holds one per id in the estate
class ResourceId:
    """A parsed ARM id. `type` is the full type of the last resource, e.g.
    Microsoft.Network/virtualNetworks/subnets, or Microsoft.Security/pricings for
    /subscriptions/x/providers/Microsoft.Security/pricings/VirtualMachines."""

    id: str
    subscription: str | None
    resource_group: str | None
    type: str
    name: str
    parent: str | None  # id of the enclosing resource (or scope for extension resources)


@lru_cache(maxsize=131072)  # ids repeat constantly while checks cross-reference resources
def parse(resource_id: str) -> ResourceId:
    # The cache holds an entry per id at scale: reuse the id itself when it is already in
    # shape, and share the few distinct subscriptions, groups and types (interned) instead of
    # holding a copy of each in every entry.
    stripped = resource_id.strip("/")
    rid = resource_id if len(resource_id) == len(stripped) + 1 and resource_id[0] == "/" else "/" + stripped
    parts = stripped.split("/")
    sub = rg = None
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        sub = sys.intern(parts[1])
    if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
        rg = sys.intern(parts[3])
    # find the last "providers" segment: what follows is namespace/type/name[/type/name...]
    last_prov = None
    for i, p in enumerate(parts):
        if p.lower() == "providers":
            last_prov = i
    if last_prov is None:
        if rg is not None and len(parts) == 4:
            return ResourceId(rid, sub, rg, "Microsoft.Resources/resourceGroups", rg, f"/subscriptions/{sub}")
        if sub is not None and len(parts) == 2:
            return ResourceId(rid, sub, None, "Microsoft.Resources/subscriptions", sub, None)
        return ResourceId(rid, sub, rg, "", parts[-1] if parts else "", None)
    ns = parts[last_prov + 1] if len(parts) > last_prov + 1 else ""
    rest = parts[last_prov + 2:]
    types = rest[0::2]
    names = rest[1::2]
    rtype = sys.intern("/".join([ns, *types]))
    name = names[-1] if names and len(names) == len(types) else ""
    parent: str | None
    if len(types) > 1:
        parent = "/" + "/".join(parts[: len(parts) - 2])
    else:
        scope = "/" + "/".join(parts[:last_prov])
        parent = sys.intern(scope) if scope != "/" else None  # a group's id, shared by its resources
    return ResourceId(rid, sub, rg, rtype, name, parent)


def type_of(resource_id: str) -> str:
    return parse(resource_id).type


def subscription_of(resource_id: str) -> str | None:
    return parse(resource_id).subscription


def resource_group_id(resource_id: str) -> str | None:
    p = parse(resource_id)
    if p.subscription and p.resource_group:
        return f"/subscriptions/{p.subscription}/resourceGroups/{p.resource_group}"
    return None


def same(a: str | None, b: str | None) -> bool:
    """ARM ids compare case-insensitively."""
    return (a or "").rstrip("/").lower() == (b or "").rstrip("/").lower()
