"""Knowledge more than one article needs: resource types, built-in role GUIDs, and how ARM
spells the values the checks compare."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ztwizard import resource_id as rid
from ztwizard.armjson import get_path
from ztwizard.inventory import Inventory

from ._base import Context, memo

STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
VNET = "Microsoft.Network/virtualNetworks"
SUBNET = f"{VNET}/subnets"
NIC = "Microsoft.Network/networkInterfaces"
PRIVATE_ENDPOINT = "Microsoft.Network/privateEndpoints"
VM = "Microsoft.Compute/virtualMachines"
PRICING = "Microsoft.Security/pricings"
ASSESSMENT = "Microsoft.Security/assessments"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
ROLE_DEFINITION = "Microsoft.Authorization/roleDefinitions"

# Built-in role definition GUIDs (steps.md appendix B).
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
STORAGE_ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"


def is_true(value: Any) -> bool:
    """Security resources spell booleans as strings ("True"); ARM elsewhere as JSON booleans."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def role_guid(role_definition_id: str | None) -> str:
    """The GUID at the end of a role definition id, lower-cased."""
    return (role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def assignment_scope(assignment: dict[str, Any]) -> str:
    return get_path(assignment, "properties.scope") or rid.parse(assignment["id"]).parent or ""


def broad_user_assignments(inv: Inventory, scopes: list[str],
                           roles: dict[str, str]) -> list[tuple[dict[str, Any], str]]:
    """Role assignments of `roles` held directly by users at any of `scopes`."""
    def by_scope() -> dict[str, list[dict[str, Any]]]:
        index: dict[str, list[dict[str, Any]]] = {}
        for a in inv.of_type(ROLE_ASSIGNMENT):
            index.setdefault(assignment_scope(a).rstrip("/").lower(), []).append(a)
        return index

    index = memo(inv, "assignments_by_scope", by_scope)
    out = []
    for scope in dict.fromkeys(s.rstrip("/").lower() for s in scopes):
        for a in index.get(scope, []):
            role = roles.get(role_guid(get_path(a, "properties.roleDefinitionId")))
            if role and (get_path(a, "properties.principalType") or "").lower() == "user":
                out.append((a, role))
    return out


def pricing(inv: Inventory, sub: str, name: str) -> dict[str, Any]:
    """The subscription's Defender plan `name`; absent means the platform default, Free."""
    pid = f"/subscriptions/{sub}/providers/{PRICING}/{name}"
    return inv.get(pid) or {"id": pid, "name": name, "type": PRICING, "properties": {"pricingTier": "Free"}}


# ---- vm article: types the spoke and hub articles also use (the spoke
# article appended NSG … FIREWALL too: one copy kept) ------------------------------------
NSG = "Microsoft.Network/networkSecurityGroups"
NSG_RULE = f"{NSG}/securityRules"
PEERING = f"{VNET}/virtualNetworkPeerings"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
BASTION = "Microsoft.Network/bastionHosts"
FIREWALL = "Microsoft.Network/azureFirewalls"
VNET_GATEWAY = "Microsoft.Network/virtualNetworkGateways"


def defender_plans(ctx: Context, names: tuple[str, ...], subs: list[str], where: str) -> None:
    """Defender plans `names` on Standard in every subscription of `subs` (no subscription: not
    applicable, "No `where` in scope."). A plan missing from the inventory is Free, the platform
    default, so it is judged and upgraded like any other; the title is the check's change_title
    with {name} (the plan) and {subscription}."""
    if not subs:
        ctx.not_applicable(where)
        return
    for sub in subs:
        for name in names:
            res = pricing(ctx.inv, sub, name)
            tier = get_path(res, "properties.pricingTier") or "Free"
            if str(tier).lower() == "standard":
                ctx.finding(res["id"], "pass", "properties.pricingTier", tier, "Standard",
                            f"Defender plan {name} is on Standard.")
                continue
            ctx.finding(res["id"], "fail", "properties.pricingTier", tier, "Standard",
                        f"Defender plan {name} is {tier}; Standard enables its threat detection for subscription {sub}.")
            ctx.put(res, {"properties.pricingTier": "Standard"}, fields={"subscription": sub},
                    risk=ctx.check.risk, billable=True)


# ---- hub article: what hub-4d's Network Watcher create is for, so spoke-5d can wait for it --------
def watcher_anchor(subscription: str, region: str) -> str:
    """The anchor of the Network Watcher hub-4d creates for one region of one subscription."""
    return f"/subscriptions/{subscription}|networkWatcher|{region.lower()}"


# ---- custom roles: one definition for every subscription (vm-2b, spoke-1b) ---------------------
def covers_scope(assignable: str, scope: str) -> bool:
    """A role assignable at a scope can be assigned at that scope and below it."""
    a, s = assignable.rstrip("/").lower(), scope.rstrip("/").lower()
    return a == "" or a == s or s.startswith(a + "/")


def _definitions(inv: Inventory) -> list[dict[str, Any]]:
    """Role definitions once each: the same definition is listed under every subscription it is
    assignable in, under a different id, with the same GUID name."""
    seen: dict[str, dict[str, Any]] = {}
    for r in inv.of_type(ROLE_DEFINITION):
        seen.setdefault(str(r.get("name") or rid.parse(r["id"]).name).lower(), r)
    return list(seen.values())


def one_custom_role(ctx: Context, subs: list[str], fits: Callable[[dict[str, Any]], bool], *, default_name: str,
                    seed: str, description: str, actions: list[str], subject: str, where_field: str) -> None:
    """Custom role names are unique in the tenant (a second create with the same name is refused
    with 409 RoleDefinitionWithSameNameExists), so the subscriptions in scope share ONE definition:
    each gets a verdict; an existing definition that `fits` is extended with the subscriptions its
    `assignableScopes` misses; otherwise one is created that lists them all. `subject` names what
    the role grants in findings; the change title's `where_field` gets the subscriptions."""
    if not subs:
        return
    roles = [r for r in _definitions(ctx.inv) if fits(r)]
    missing: list[str] = []
    for sub in subs:
        scope = f"/subscriptions/{sub}"
        mine = [r for r in roles if any(covers_scope(s, scope) for s in get_path(r, "properties.assignableScopes") or [])]
        if mine:
            ctx.finding(scope, "pass", "properties.assignableScopes", scope, scope,
                        f"Custom role {get_path(mine[0], 'properties.roleName')} grants {subject} in {sub}.")
        else:
            missing.append(sub)
    if not missing:
        return
    scopes = [f"/subscriptions/{s}" for s in missing]
    if roles:
        role = roles[0]
        name = get_path(role, "properties.roleName")
        for scope in scopes:
            ctx.finding(scope, "fail", "properties.assignableScopes", None, scope,
                        f"Custom role {name} grants {subject} but cannot be assigned in {rid.parse(scope).name}.")

        def mutate(body: dict[str, Any]) -> None:
            have = body.setdefault("properties", {}).setdefault("assignableScopes", [])
            have.extend(s for s in scopes if not any(covers_scope(h, s) for h in have))

        ctx.put_mutated(role, mutate, ["properties.assignableScopes"],
                        title=f"Make custom role {name} assignable in {', '.join(missing)}",
                        risk="None until it is assigned there: a definition grants nothing by itself.")
        return
    taken = {str(get_path(r, "properties.roleName") or "").lower() for r in _definitions(ctx.inv)}
    default, n = default_name, 1
    while default.lower() in taken:
        n += 1
        default = f"{default_name} ({n})"
    first = sorted(subs, key=str.lower)[0]
    anchor = f"/subscriptions/{first}|{seed}"  # one definition for the tenant's subscriptions in scope
    p = ctx.params(anchor, roleName=default)
    if p["roleName"].lower() in taken:  # an edited name another role holds: ARM would answer 409
        ctx.finding(ctx.scope(), "error", "properties.roleName", p["roleName"], None,
                    f"A custom role named {p['roleName']!r} already exists in the tenant; role names are unique.")
        return
    for scope in scopes:
        ctx.finding(scope, "fail", "properties.assignableScopes", None, scope,
                    f"No custom role grants {subject} in {rid.parse(scope).name}.")
    # the GUID comes from what the role is for, so a renamed role keeps its id
    guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ztwizard/{seed}/{first.lower()}"))
    body = {"name": guid, "type": ROLE_DEFINITION, "properties": {
        "roleName": p["roleName"], "type": "CustomRole", "description": description,
        "permissions": [{"actions": list(actions), "notActions": [], "dataActions": [], "notDataActions": []}],
        "assignableScopes": scopes}}
    ctx.create(f"/subscriptions/{first}/providers/{ROLE_DEFINITION}/{guid}", body, anchor=anchor, params=p,
               fields={"roleName": p["roleName"], where_field: ", ".join(missing)},
               risk="None until it is assigned: a definition grants nothing by itself.")
