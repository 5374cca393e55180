"""`-g` means scope: a resource-group scope proposes no subscription-wide change (Defender plans,
security contacts, activity-log settings, subscription role definitions…), says so in the plan,
and a resource group that does not exist is an input error, not an empty plan."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import resource_id as rid
from .errors import UsageError
from .waivers import describe, withhold_changes


def check_resource_groups(gateway: Any, resource_groups: Iterable[str],
                          subscriptions: Iterable[str] | None = None) -> None:
    """Every -g names a resource group in at least one subscription in scope (before inspecting)."""
    wanted = [g for g in resource_groups if g]
    if not wanted:
        return
    subs = list(subscriptions or gateway.target.subscriptions or gateway.list_subscriptions())
    existing: set[str] = set()
    for sub in subs:
        existing |= {str(g.get("name", "")).lower() for g in gateway.list_resource_groups(sub)}
    missing = [g for g in wanted if g.lower() not in existing]
    if missing:
        where = f"subscription {subs[0]}" if len(subs) == 1 else f"the {len(subs)} subscriptions in scope"
        raise UsageError(f"Resource group {missing[0]!r} does not exist in {where}.",
                         hint="Check the -g name (resource group names, not ids), or the -s subscriptions.")


def subscription_scoped(resource_id: str) -> bool:
    """A resource that lives at subscription scope, outside every resource group."""
    p = rid.parse(resource_id)
    return p.subscription is not None and p.resource_group is None


def scope_plan(plan: Any, resource_groups: Iterable[str]) -> Any:
    """With -g, leave out subscription-scope changes (and what needs them), noting each one."""
    groups = [g for g in resource_groups if g]
    if not groups:
        return plan
    out_of_scope = {c.id: c for s in plan.steps for c in s.changes if subscription_scoped(c.resource_id)}
    if not out_of_scope:
        return plan
    for c in out_of_scope.values():
        plan.notes.append({
            "kind": "scope", "change": c.id, "check": c.check, "resource_id": c.resource_id,
            "message": f"{c.check}: {describe(c)} is left out because of -g {' -g '.join(groups)}: "
                       "it changes the whole subscription."})
    withhold_changes(plan.steps, {cid: "scope" for cid in out_of_scope}, plan.notes, "scope")
    return plan
