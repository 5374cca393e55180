"""Management groups as the sandbox serves them: the tenant root group, and under it
`mg-platform` (the first two subscriptions, by id) and `mg-landingzones` (the rest), split into
`mg-corp` and `mg-online` when there are more than four. Deterministic, so tests and benchmarks
can name a group; ARM's shapes: `GET /providers/Microsoft.Management/managementGroups/{id}` and
`…/{id}/descendants` (2020-05-01), and Resource Graph's `managementGroups` scope."""

from __future__ import annotations

from typing import Any

from .request import Reply, Request, arm_error

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


def groups_of(sb: Any) -> dict[str, tuple[str | None, list[str]]]:
    return hierarchy(sb.tenant_id, [s["subscriptionId"] for s in sb.store.subscriptions.values()])


def route(sb: Any, ctx: Request) -> Reply | None:
    """`GET …/managementGroups/{id}` and `…/{id}/descendants`, or None for any other path."""
    low = ctx.low
    if low[:3] != ["providers", "microsoft.management", "managementgroups"] or ctx.method != "GET":
        return None
    if not (len(low) == 4 or (len(low) == 5 and low[4] == "descendants")):
        return None
    groups = groups_of(sb)
    found = find(groups, ctx.segs[3])
    if found is None:
        raise arm_error(404, "NotFound", f"The management group '{ctx.segs[3]}' was not found.")
    if len(low) == 4:
        return Reply(200, group(found, groups[found][0], sb.tenant_id))
    display = {k: str(v.get("displayName") or k) for k, v in sb.store.subscriptions.items()}
    return Reply(200, {"value": descendants(groups, found, display)})
