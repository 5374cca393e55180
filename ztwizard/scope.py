"""`-g` means scope: a resource-group scope proposes no subscription-wide change (Defender plans,
security contacts, activity-log settings, subscription role definitions…), says so in the plan,
and a resource group that does not exist is an input error, not an empty plan."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import resource_id as rid
from .errors import UsageError
from .steps import CHECK_BY_ID
from .waivers import describe, withhold_changes


def check_resource_groups(gateway: Any, resource_groups: Iterable[str],
                          subscriptions: Iterable[str] | None = None) -> None:
    """Every -g names a resource group in at least one subscription in scope (before inspecting)."""
    wanted = [g for g in resource_groups if g]
    if not wanted:
        return
    subs = list(subscriptions or gateway.target.subscriptions or [])
    management_groups = list(getattr(gateway.target, "management_groups", None) or [])
    if management_groups:  # the subscriptions the groups hold, as the inventory will read them
        subs, _whole = gateway.scope_subscriptions(management_groups, subs)
    elif not subs:
        subs = gateway.list_subscriptions()
    existing: set[str] = set()
    for sub in subs:
        existing |= {str(g.get("name", "")).lower() for g in gateway.list_resource_groups(sub)}
    missing = [g for g in wanted if g.lower() not in existing]
    if missing:
        where = f"subscription {subs[0]}" if len(subs) == 1 else f"the {len(subs)} subscriptions in scope"
        if management_groups:
            where += f" under management group {' or '.join(dict.fromkeys(management_groups))}"
        raise UsageError(f"Resource group {missing[0]!r} does not exist in {where}.",
                         hint="Check the -g name (resource group names, not ids), or the -s subscriptions.")


def subscription_scoped(resource_id: str) -> bool:
    """A subscription, or a resource that lives at subscription scope, outside every resource group."""
    p = rid.parse(resource_id)
    return p.subscription is not None and p.resource_group is None


def scope_plan(plan: Any, resource_groups: Iterable[str]) -> Any:
    """With -g, leave out subscription-scope changes (and what needs them), noting each one, and
    note the subscription-wide failures the wizard would fix itself without -g (their inputs,
    e.g. a workspace in another group, may lie outside the scope, so no change was built)."""
    groups = [g for g in resource_groups if g]
    if not groups:
        return plan
    flag = " -g ".join(groups)
    out_of_scope = {c.id: c for s in plan.steps for c in s.changes if subscription_scoped(c.resource_id)}
    noted = {(c.check, rid.subscription_of(c.resource_id)) for c in out_of_scope.values()}
    for s in plan.steps:
        for f in s.findings:
            key = (f.check, rid.subscription_of(f.resource_id))
            if f.status == "fail" and key not in noted and subscription_scoped(f.resource_id) \
                    and CHECK_BY_ID[f.check].remediation != "advisory":
                noted.add(key)
                plan.notes.append({
                    "kind": "scope", "check": f.check, "resource_id": f.resource_id,
                    "message": f"{f.check} ({CHECK_BY_ID[f.check].title.rstrip('.')}): the change for subscription "
                               f"{key[1]} is left out because of -g {flag}: it changes the whole subscription."})
    if not out_of_scope:
        return plan
    for c in out_of_scope.values():
        plan.notes.append({
            "kind": "scope", "change": c.id, "check": c.check, "resource_id": c.resource_id,
            "message": f"{c.check}: {describe(c)} is left out because of -g {flag}: "
                       "it changes the whole subscription."})
    withhold_changes(plan.steps, {cid: "scope" for cid in out_of_scope}, plan.notes, "scope")
    return plan
