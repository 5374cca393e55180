"""Management groups as the sandbox serves them: the tenant root group, and under it
`mg-platform` (the first two subscriptions, by id) and `mg-landingzones` (the rest), split into
`mg-corp` and `mg-online` when there are more than four. Deterministic, so tests and benchmarks
can name a group; ARM's shapes: `GET /providers/Microsoft.Management/managementGroups/{id}` and
`…/{id}/descendants` (2020-05-01), and Resource Graph's `managementGroups` scope."""

from __future__ import annotations

from typing import Any

GROUP_TYPE = "Microsoft.Management/managementGroups"
SUBSCRIPTION_TYPE = "Microsoft.Management/managementGroups/subscriptions"


def hierarchy(tenant_id: str, subscriptions: list[str]) -> dict[str, tuple[str | None, list[str]]]:
    """group name -> (parent group name, subscriptions directly in it)."""
    subs = sorted(subscriptions, key=str.lower)
    platform, zones = subs[:2], subs[2:]
    groups: dict[str, tuple[str | None, list[str]]] = {tenant_id: (None, []), "mg-platform": (tenant_id, platform)}
    if len(zones) > 4:
        half = len(zones) // 2
        groups["mg-landingzones"] = (tenant_id, [])
        groups["mg-corp"] = ("mg-landingzones", zones[:half])
        groups["mg-online"] = ("mg-landingzones", zones[half:])
    else:
        groups["mg-landingzones"] = (tenant_id, zones)
    return groups


def _group_id(name: str) -> str:
    return f"/providers/{GROUP_TYPE}/{name}"


def find(groups: dict[str, tuple[str | None, list[str]]], name: str) -> str | None:
    return next((g for g in groups if g.lower() == name.lower()), None)


def descendants(groups: dict[str, tuple[str | None, list[str]]], name: str,
                display: dict[str, str]) -> list[dict[str, Any]]:
    """Every group and subscription below `name`, parents before children."""
    out: list[dict[str, Any]] = []
    todo = [name]
    while todo:
        current = todo.pop(0)
        for sub in groups[current][1]:
            out.append({"id": f"{_group_id(current)}/subscriptions/{sub}", "type": SUBSCRIPTION_TYPE, "name": sub,
                        "properties": {"displayName": display.get(sub.lower(), sub),
                                       "parent": {"id": _group_id(current)}}})
        for child, (parent, _subs) in groups.items():
            if parent == current:
                out.append({"id": _group_id(child), "type": GROUP_TYPE, "name": child,
                            "properties": {"displayName": child, "parent": {"id": _group_id(current)}}})
                todo.append(child)
    return out


def subscriptions_under(groups: dict[str, tuple[str | None, list[str]]], names: list[str]) -> set[str]:
    out: set[str] = set()
    display: dict[str, str] = {}
    for name in names:
        found = find(groups, name)
        if found is None:
            continue
        out |= {d["name"].lower() for d in descendants(groups, found, display) if d["type"] == SUBSCRIPTION_TYPE}
    return out


def group(name: str, parent: str | None, tenant_id: str) -> dict[str, Any]:
    return {"id": _group_id(name), "type": GROUP_TYPE, "name": name,
            "properties": {"tenantId": tenant_id, "displayName": "Tenant Root Group" if parent is None else name,
                           "details": {"parent": {"id": _group_id(parent)} if parent else None}}}
